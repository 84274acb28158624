"""Kernels against the numpy oracles of tests/reference.py, through the public compute_loss.

Inputs are drawn as (shape, dtype, scale, seed, special rows) and built with numpy, so hypothesis
shrinks towards small shapes without generating 10,000 floats one by one. The reference always
sees the values the kernel sees: float16 is upcast to float32 at the boundary (exact), and every
dtype is accumulated in float64 by the kernels, so one tolerance fits all dtypes: rtol 1e-9 plus
an atol of 1e-12 times the distance scale (summation order differs: the lane order of lanes.py
vs numpy's pairwise sum, about 1e-15 relative). The lane order itself is pinned bit for bit
against a plain Python sum in that order (test_sums_follow_the_lane_order).

The property tests draw every valid combination of distance, eps placement, p, swap and the rest;
the only invalid one, legacy-root with an infinite p (chebyshev, minkowski p = inf), is refused by
the tool and checked once, in test_legacy_root_refuses_an_infinite_p. Pin a new bug with a strict
xfail on a fixed example (hypothesis would spend seconds shrinking each expected failure) and
keep its combination out of the draws until it is fixed.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pytest
import reference as R
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triplet_cli import compute_loss
from triplet_cli.errors import InputError, UsageError

# deadline=None: the first example of each kernel signature pays numba's JIT compile (seconds).
# 25 examples x ~60 test cases keep the file well under 60 s once the kernels are cached;
# KERNEL_EXAMPLES=500 soaks it.
settings.register_profile("kernels", deadline=None,
                          max_examples=int(os.environ.get("KERNEL_EXAMPLES", "25")),
                          suppress_health_check=[HealthCheck.too_slow])
KERNELS = settings.get_profile("kernels")

DTYPES = (np.float16, np.float32, np.float64)
# 1e-8: below the default eps, so cosine takes its max(norm, eps) branch (and float16 underflows
# to zeros and subnormals); 1e3: float16 still far from its 65504 limit.
SCALES = (1e-8, 1e-3, 1.0, 1e3)
RTOL = 1e-9
ATOL_PER_SCALE = 1e-12

# Every (distance, placement) the tool accepts. legacy-root (MLX <= 0.31) needs a finite order,
# so chebyshev is refused with it (and minkowski takes a finite p there: p_values).
COMBOS = [(d, pl) for d in R.DISTANCES
          for pl in (R.PLACEMENTS if d in R.NORM_DISTANCES else ("none",))
          if (d, pl) != ("chebyshev", "legacy-root")]


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    distance: str = "euclidean"
    placement: str = "none"
    p: float = 2.0
    eps: float = 1e-6
    margin: float = 1.0
    soft: bool = False
    swap: bool = False
    normalize: bool = False
    reduction: str = "mean"
    pair_reduction: str = "sum"

    def api(self) -> dict[str, object]:
        kw: dict[str, object] = dict(
            distance=self.distance, eps=self.eps, eps_placement=self.placement,
            margin=self.margin, soft_margin=self.soft, swap=self.swap, normalize=self.normalize,
            reduction=self.reduction, pair_reduction=self.pair_reduction)
        if self.distance == "minkowski":
            kw["p"] = self.p
        return kw

    def ref(self) -> dict[str, object]:
        return dict(distance=self.distance, p_norm=self.p, eps=self.eps,
                    placement=self.placement, margin=self.margin, soft=self.soft,
                    swap=self.swap, normalize_rows=self.normalize)


FINITE_P_VALUES = st.sampled_from([1.0, 2.0, 3.0]) | st.floats(1.0, 6.0)
P_VALUES = st.sampled_from([1.0, 2.0, 3.0, math.inf]) | st.floats(1.0, 6.0)
MARGINS = st.sampled_from([0.0, 0.5, 1.0, 5.0]) | st.floats(0.0, 10.0)


def p_values(placement: str) -> st.SearchStrategy[float]:
    """minkowski's p: legacy-root refuses p = inf (test_legacy_root_refuses_an_infinite_p)."""
    return FINITE_P_VALUES if placement == "legacy-root" else P_VALUES


@st.composite
def options(draw, combos=COMBOS, eps_values=(1e-6, 1e-3, 0.25, 0.0)) -> Options:
    distance, placement = draw(st.sampled_from(combos))
    # cosine with eps 0 makes a zero vector 0/0: see test_cosine_eps_zero_on_a_zero_vector_*
    eps = draw(st.sampled_from([e for e in eps_values if e > 0 or distance != "cosine"]))
    return Options(
        distance=distance,
        placement=placement,
        p=draw(p_values(placement)) if distance == "minkowski" else 2.0,
        eps=eps,
        margin=draw(MARGINS),
        soft=draw(st.booleans()),
        # legacy-root gives NaN distances from finite input (odd p, manhattan): swap must
        # propagate them like torch.min (test_swap_propagates_nan_distance).
        swap=draw(st.booleans()),
        normalize=draw(st.booleans()),
        reduction=draw(st.sampled_from(R.REDUCTIONS)),
        pair_reduction=draw(st.sampled_from(["sum", "mean"])),
    )


SPECIAL_ROWS = ("zero-anchor", "zero-positive", "zero-negative", "positive=anchor",
                "negative=anchor", "negative=positive", "all-equal")


def _apply_special(a, p, n, row, kind):
    if kind == "zero-anchor":
        a[row] = 0
    elif kind == "zero-positive":
        p[row] = 0
    elif kind == "zero-negative":
        n[row] = 0
    elif kind == "positive=anchor":
        p[row] = a[row]
    elif kind == "negative=anchor":
        n[row] = a[row]
    elif kind == "negative=positive":
        n[row] = p[row]
    else:
        p[row] = a[row]
        n[row] = a[row]


@st.composite
def aligned_arrays(draw, max_n=50, max_d=70, dtypes=DTYPES):
    """(a, p, n) of shape (n, d) in one dtype, with a few zero or duplicated rows."""
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    dtype = draw(st.sampled_from(dtypes))
    scale = draw(st.sampled_from(SCALES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a, p, neg = ((rng.standard_normal((n, d)) * scale).astype(dtype) for _ in range(3))
    for row, kind in draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(SPECIAL_ROWS)),
                                   max_size=3)):
        _apply_special(a, p, neg, row, kind)
    return a, p, neg


@st.composite
def candidate_arrays(draw, max_n=20, max_k=5, max_d=70):
    """Anchors (n, d), positives (n, kp, d), negatives (n, kn, d) with some duplicates."""
    n = draw(st.integers(1, max_n))
    kp, kn = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    d = draw(st.integers(1, max_d))
    dtype = draw(st.sampled_from(DTYPES))
    scale = draw(st.sampled_from(SCALES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = (rng.standard_normal((n, d)) * scale).astype(dtype)
    P = (rng.standard_normal((n, kp, d)) * scale).astype(dtype)
    N = (rng.standard_normal((n, kn, d)) * scale).astype(dtype)
    if draw(st.booleans()):
        P[0, 0] = a[0]  # a positive identical to its anchor
    if draw(st.booleans()):
        N[-1, -1] = P[-1, 0]  # a negative identical to a positive (swap distance 0)
    return a, P, N


def f64(x) -> np.ndarray:
    """The values the kernel sees: float16 -> float32 is exact, and so is -> float64."""
    return np.asarray(x).astype(np.float64)


def assert_close(got, want, name: str, scale: float) -> None:
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL_PER_SCALE * scale,
                               equal_nan=True, err_msg=name)


def distance_scale(*arrays, margin: float = 0.0) -> float:
    finite = [np.abs(a[np.isfinite(a)]) for a in arrays]
    return max([1.0, margin] + [float(f.max()) for f in finite if f.size])


def assert_matches(result, ref, o: Options) -> None:
    d_ap, d_an, loss = ref
    scale = distance_scale(d_ap, d_an, margin=o.margin)
    assert_close(result.d_ap, d_ap, "d_ap", scale)
    assert_close(result.d_an, d_an, "d_an", scale)
    assert_close(result.loss, loss, "loss", scale)


def quiet_compute(*args, **kwargs):
    """compute_loss with numpy's RuntimeWarnings (NaN/inf in the summary statistics) muted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return compute_loss(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Kernel == reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("distance", "placement"), COMBOS)
@KERNELS
@given(arrays=aligned_arrays(), data=st.data())
def test_aligned_matches_reference(distance, placement, arrays, data):
    o = replace(data.draw(options()), distance=distance, placement=placement)
    if distance == "minkowski":
        o = replace(o, p=data.draw(p_values(placement)))
    if distance == "cosine" and o.eps == 0.0:
        o = replace(o, eps=1e-6)
    a, p, n = arrays
    result = quiet_compute(a, p, n, **o.api())
    with np.errstate(all="ignore"):
        ref = R.triplet_losses(f64(a), f64(p), f64(n), **o.ref())
    assert_matches(result, ref, o)


@pytest.mark.parametrize(("distance", "p", "a", "eps", "want"), [
    # a - positive = (2, 1): the power is the distance's own order, whatever --p says
    ("euclidean", 3.0, (3.0, 1.0), 0.25, math.sqrt(4 + 1 + 0.25)),
    ("squared-euclidean", 3.0, (3.0, 1.0), 0.25, 4 + 1 + 0.25),  # no root: euclidean squared
    ("manhattan", 3.0, (3.0, 1.0), 0.25, math.sqrt(2 + 1 + 0.25)),
    ("minkowski", 3.0, (3.0, 1.0), 0.25, math.sqrt(8 + 1 + 0.25)),
    ("minkowski", 1.5, (5.0, 1.0), 0.25, math.sqrt(8 + 1 + 0.25)),  # 4^1.5 = 8
    # the power of the SIGNED difference: a - positive = (-2, 1) or (-2, 1.5)
    ("euclidean", 3.0, (-1.0, 1.0), 0.25, math.sqrt(4 + 1 + 0.25)),
    ("squared-euclidean", 3.0, (-1.0, 1.0), 0.25, 4 + 1 + 0.25),
    ("manhattan", 3.0, (-1.0, 1.0), 0.25, math.nan),  # sqrt(-2 + 1 + 0.25)
    ("manhattan", 3.0, (-1.0, 1.5), 0.75, math.sqrt(-2 + 1.5 + 0.75)),
    ("minkowski", 3.0, (-1.0, 1.0), 0.25, math.nan),  # sqrt(-8 + 1 + 0.25)
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_legacy_root_uses_the_distance_order(distance, p, a, eps, want, dtype):
    """legacy-root (MLX <= 0.31), by hand on dyadic values: sqrt(sum (x-y)^q + eps) with q the
    distance's order (2, 1, minkowski's p) on the signed difference; squared-euclidean is
    sum (x-y)^2 + eps. --p goes to minkowski only (any other distance refuses it)."""
    anchors = np.array([a], dtype=dtype)
    positives = np.array([[1.0, 0.0]], dtype=dtype)
    negatives = np.zeros((1, 2), dtype=dtype)
    given_p = {"p": p} if distance == "minkowski" else {}  # --p is refused elsewhere
    r = quiet_compute(anchors, positives, negatives, distance=distance, eps=eps,
                      eps_placement="legacy-root", **given_p)
    with np.errstate(all="ignore"):
        ref = R.distance(f64(anchors), f64(positives), distance, p, eps, "legacy-root")
    np.testing.assert_allclose(ref, [want], rtol=1e-15, equal_nan=True, err_msg="reference")
    np.testing.assert_allclose(r.d_ap, [want], rtol=1e-15, equal_nan=True, err_msg="d_ap")


@pytest.mark.parametrize(("distance", "p"), [("chebyshev", 2.0), ("chebyshev", 3.0),
                                             ("minkowski", math.inf)])
def test_legacy_root_refuses_an_infinite_p(distance, p):
    """The one place the draws never go: legacy-root needs a finite order. The tool refuses it
    up front (UsageError), and so does the reference (ValueError)."""
    a, pos, neg = np.zeros((2, 3)), np.ones((2, 3)), np.full((2, 3), 2.0)
    given_p = {"p": p} if distance == "minkowski" else {}  # --p is refused elsewhere
    with pytest.raises(UsageError, match="legacy-root needs a finite p"):
        compute_loss(a, pos, neg, distance=distance, eps_placement="legacy-root", **given_p)
    with pytest.raises(UsageError, match="legacy-root needs a finite p"):
        compute_loss(embeddings=a, triplets=np.array([[0, 1, 1]]), distance=distance,
                     eps_placement="legacy-root", **given_p)
    with pytest.raises(ValueError, match="legacy-root needs a finite p"):
        R.distance(a, pos, distance, p, 1e-6, "legacy-root")


@KERNELS
@given(arrays=candidate_arrays(), o=options())
def test_candidates_match_reference(arrays, o):
    a, P, N = arrays
    result = quiet_compute(a, P, N, **o.api())
    with np.errstate(all="ignore"):
        ref = R.candidate_losses(f64(a), f64(P), f64(N), pair_reduction=o.pair_reduction,
                                 **o.ref())
    assert_matches(result, ref, o)


@KERNELS
@given(arrays=candidate_arrays(max_n=8), o=options(), mixed=st.sampled_from(["p", "n", None]))
def test_one_anchor_and_mixed_candidates_match_reference(arrays, o, mixed):
    """A (d,) anchor against (k, d) candidates, and (n, d) next to (n, k, d) (one candidate)."""
    a, P, N = arrays
    if mixed is None:
        a, P, N = a[:1], P[:1], N[:1]
        args = (a[0], P[0], N[0])
    else:  # (n, d) positives (or negatives) next to (n, k, d): one candidate per anchor
        P, N = (P[:, :1], N) if mixed == "p" else (P, N[:, :1])
        args = (a, P[:, 0] if mixed == "p" else P, N[:, 0] if mixed == "n" else N)
    result = quiet_compute(*args, **o.api())
    with np.errstate(all="ignore"):
        ref = R.candidate_losses(f64(a), f64(P), f64(N), pair_reduction=o.pair_reduction,
                                 **o.ref())
    assert_matches(result, ref, o)


@KERNELS
@given(data=st.data(), o=options())
def test_indexed_triplets_match_reference(data, o):
    m = data.draw(st.integers(1, 40))
    d = data.draw(st.integers(1, 70))
    dtype = data.draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    X = (rng.standard_normal((m, d)) * data.draw(st.sampled_from(SCALES))).astype(dtype)
    T = rng.integers(0, m, size=(data.draw(st.integers(1, 60)), 3))
    result = quiet_compute(embeddings=X, triplets=T, **o.api())
    x = f64(X)
    with np.errstate(all="ignore"):
        ref = R.triplet_losses(x[T[:, 0]], x[T[:, 1]], x[T[:, 2]], **o.ref())
    assert_matches(result, ref, o)
    np.testing.assert_array_equal(result.triplets, T)


@pytest.mark.parametrize("d", range(1, 10))
@pytest.mark.parametrize("distance", ["euclidean", "squared-euclidean", "manhattan", "chebyshev",
                                      "cosine", "dot"])
def test_unrolled_tail_exact_on_integers(distance, d):
    """Integer data makes every sum exact: the eight lanes and a partial last chunk (d % 8)
    must give exactly the reference numbers."""
    rng = np.random.default_rng(d)
    a, p, n = (rng.integers(-50, 50, size=(7, d)).astype(np.float64) for _ in range(3))
    result = compute_loss(a, p, n, distance=distance)
    d_ap, d_an, loss = R.triplet_losses(a, p, n, distance=distance)
    np.testing.assert_array_equal(result.d_ap, d_ap)
    np.testing.assert_array_equal(result.d_an, d_an)
    np.testing.assert_array_equal(result.loss, loss)


@pytest.mark.parametrize(("distance", "placement"),
                         [c for c in COMBOS if c[0] in R.NORM_DISTANCES and c[0] != "minkowski"])
def test_p_with_a_distance_that_is_not_minkowski_is_refused(distance, placement):
    """--p belongs to minkowski; given with an explicit other --distance it is a usage error
    (it was silently ignored), under every placement."""
    rng = np.random.default_rng(7)
    a, p, n = (rng.standard_normal((6, 5)) for _ in range(3))
    for other_p in (1.0, 3.0, 4.5):
        with pytest.raises(UsageError, match="--p applies to the minkowski distance"):
            quiet_compute(a, p, n, distance=distance, eps_placement=placement, p=other_p)


def lane_sum(terms) -> float:
    """The lane order of lanes.py in plain Python: term i in lane i % 8 (each from +0.0), then
    ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))."""
    lanes = [0.0] * 8
    for i, t in enumerate(terms):
        lanes[i % 8] += float(t)
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + (
        (lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))


def _rows(rng, d, dtype, strided):
    """Three rows of length d: contiguous, or every other element of a longer row."""
    step = 2 if strided else 1
    return [(rng.standard_normal(d * step) * 10.0 ** rng.uniform(-3, 3, d * step))
            .astype(dtype)[::step] for _ in range(3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strided", [False, True])
def test_sums_follow_the_lane_order(dtype, strided):
    """Every sum over a row (the vector code of lanes.py and power_sum's loop) is the lane
    order bit for bit, for every length around the eight lanes, with and without a shift; the
    pair kernel equals two single sums."""
    from triplet_cli import distances as D

    rng = np.random.default_rng(17)
    for d in [*range(0, 41), 127, 128, 129, 768, 1000]:
        x, y, z = _rows(rng, d, dtype, strided)
        X, Y = f64(x), f64(y)
        assert D.dot(x, y) == lane_sum(X * Y), d
        for shift in (0.0, 1e-3):
            assert D.squared_euclidean(x, y, shift) == lane_sum((X - Y + shift) ** 2), d
            assert D.manhattan(x, y, shift) == lane_sum(np.abs(X - Y + shift)), d
            assert D.square_pair(x, y, z, D.SQUARED_EUCLIDEAN, 2.0, shift, D.EPS_DIFFERENCE) == (
                D.squared_euclidean(x, y, shift), D.squared_euclidean(x, z, shift)), d
        assert D.power_sum(x, y, 3.0, 0.0, np.bool_(False)) == lane_sum(
            [abs(v) ** 3.0 for v in (X - Y).tolist()]), d


def test_rows_of_different_dtypes_sum_in_the_lane_order():
    """float64 anchors next to float32 rows (inputs keep their own dtypes)."""
    from triplet_cli import distances as D

    rng = np.random.default_rng(29)
    for d in (3, 8, 21):
        x = rng.standard_normal(d)
        y = rng.standard_normal(d).astype(np.float32)
        assert D.squared_euclidean(x, y, 0.0) == lane_sum((x - f64(y)) ** 2)
        assert D.square_pair(x, x, y, D.SQUARED_EUCLIDEAN, 2.0, 0.0, D.EPS_NONE) == (
            0.0, lane_sum((x - f64(y)) ** 2))
        assert D.dot(y, x) == lane_sum(f64(y) * x)


def test_compute_distances_equal_the_pairwise_distance():
    """compute's kernels and `distance` (what mining's exact recomputation and the top-k
    selection call) agree bit for bit, for every distance."""
    from triplet_cli import distances as D

    rng = np.random.default_rng(23)
    for dtype in (np.float32, np.float64):
        a, p, n = (rng.standard_normal((40, 37)).astype(dtype) for _ in range(3))
        a[3], p[4], n[5] = 0.0, 0.0, 0.0  # zero rows: cosine's eps guard
        for name in R.DISTANCES:
            for placement in ("none", "difference"):
                if placement != "none" and name not in R.NORM_DISTANCES:
                    continue
                kw = {"p": 3.0} if name == "minkowski" else {}
                r = compute_loss(a, p, n, distance=name, eps_placement=placement, **kw)
                args = D.kernel_args(name, kw.get("p", 2.0), 1e-6, placement)
                for got, other in ((r.d_ap, p), (r.d_an, n)):
                    want = [D.distance(a[i], other[i], *args) for i in range(40)]
                    assert got.tolist() == want, (name, placement, dtype)


# ---------------------------------------------------------------------------------------------
# Edge cases
# ---------------------------------------------------------------------------------------------


def test_cosine_zero_vectors_are_at_distance_one():
    """SPEC section 2 formula (and CONFORMANCE C7): d(0, x) = 1, including d(0, 0) = 1."""
    zero, x = np.zeros((1, 3)), np.array([[1.0, -2.0, 0.5]])
    for a, p, n in ((zero, x, zero), (x, zero, zero), (zero, zero, x)):
        for dtype in DTYPES:
            r = compute_loss(a.astype(dtype), p.astype(dtype), n.astype(dtype),
                             distance="cosine")
            assert r.d_ap[0] == 1.0 and r.d_an[0] == 1.0
            assert r.loss[0] == 1.0  # 1 - 1 + margin


@pytest.mark.parametrize("zero", ["anchors", "positives", "negatives"])
def test_cosine_eps_zero_on_a_zero_vector_is_an_input_error(zero):
    """--eps 0 removes cosine's guard: 1 - 0/0 for a zero vector. A NaN distance from finite
    values is an InputError naming the (anchor) row, never a silent NaN or number."""
    arrays = {"anchors": np.ones((3, 3)), "positives": np.full((3, 3), 2.0),
              "negatives": np.array([[1.0, 0.0, 0.0]] * 3)}
    arrays[zero][2] = 0.0
    with pytest.raises(InputError) as info:
        quiet_compute(**arrays, distance="cosine", eps=0.0)
    text = str(info.value)
    assert "anchors" in text and "row 2: the distance is undefined (NaN) for finite" in text, text
    X = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 1.0]])
    with pytest.raises(InputError) as info:
        quiet_compute(embeddings=X, triplets=np.array([[0, 2, 2], [0, 2, 1]]), distance="cosine",
                      eps=0.0)
    text = str(info.value)
    assert "triplets" in text and "row 1: the distance is undefined (NaN)" in text, text


@pytest.mark.parametrize(("distance", "placement"), [
    ("euclidean", "none"), ("squared-euclidean", "none"), ("squared-euclidean", "root"),
    ("manhattan", "difference"), ("minkowski", "none"), ("dot", "none"),
])
def test_overflowing_distance_is_an_input_error(distance, placement):
    """Finite float64 values whose distance overflows (1e200^2, 1e308 + 1e308, a dot product of
    1e400) give an InputError naming the row, not an inf loss."""
    a, p, n = np.ones((3, 2)), np.full((3, 2), 2.0), np.zeros((3, 2))
    big = 1.5e308 if distance == "manhattan" else 1e200
    a[1], p[1] = (big, big), (-big, -big)
    if distance == "dot":
        p[1] = (big, big)
    with pytest.raises(InputError) as info:
        quiet_compute(a, p, n, distance=distance, eps_placement=placement,
                      **({"p": 3.0} if distance == "minkowski" else {}))
    text = str(info.value)
    assert "anchors" in text and re.search(r"row 1: the (p = 3 )?distance overflows float64",
                                           text), text


@pytest.mark.parametrize("distance", ["euclidean", "manhattan"])  # square path, general path
@pytest.mark.parametrize("bad", [math.nan, math.inf, 1.5e308])  # 1.5e308 twice: sums overflow
@pytest.mark.parametrize("task", [0, 2])
def test_kernels_flag_a_non_finite_distance_in_any_task(distance, bad, task):
    """The kernels' finiteness flag (compute's check reads it instead of summing the columns)
    is False exactly when a d_ap or d_an is not finite, whichever task and thread holds it."""
    from triplet_cli import losses
    from triplet_cli.params import DistanceParams

    n = 3 * losses.ROWS_PER_TASK + 5
    rng = np.random.default_rng(task)
    a, p, neg = (rng.standard_normal((n, 4)) for _ in range(3))
    metric, rule = DistanceParams(distance=distance).kernel(), (1.0, False, False)

    def flags() -> tuple[bool, bool, bool]:
        out = tuple(np.empty(n) for _ in range(3))
        aligned = losses.aligned_losses(a, p, neg, None, metric, rule, out)
        candidates = losses.candidate_losses(a, p[:, None], neg[:, None], metric, rule, False,
                                             tuple(np.empty(n) for _ in range(4)))
        return aligned, candidates, bool(np.isfinite(out[0]).all() and np.isfinite(out[1]).all())

    assert flags() == (True, True, True)
    neg[task * losses.ROWS_PER_TASK + 7, :2] = bad
    assert flags() == (False, False, False)


@pytest.mark.parametrize(("distance", "placement"), COMBOS)
def test_duplicate_rows_give_zero_distance_or_the_eps_artefact(distance, placement):
    """A positive identical to its anchor: d = 0 for our definitions; the presets' eps artefacts
    (difference eps * D^(1/p), root eps^(1/p)) exactly as the reference computes them."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 6))
    n = rng.standard_normal((4, 6))
    kw = dict(distance=distance, eps_placement=placement)
    if distance == "minkowski":
        kw["p"] = 3.0
    r = quiet_compute(a, a.copy(), n, **kw)
    with np.errstate(all="ignore"):
        d_ap, d_an, loss = R.triplet_losses(a, a, n, distance=distance, p_norm=3.0,
                                            placement=placement)
    assert_close(r.d_ap, d_ap, "d_ap", 1.0)
    assert_close(r.d_an, d_an, "d_an", distance_scale(d_an))
    assert_close(r.loss, loss, "loss", distance_scale(d_an, margin=1.0))
    if placement == "none" and distance != "dot":
        assert np.all(r.d_ap <= 1e-15)  # cosine: 1 - x.x/|x|^2 is 0 up to rounding
        if distance != "cosine":
            assert np.all(r.d_ap == 0.0)
            assert any("duplicate points" in w for w in r.summary["warnings"])


@pytest.mark.parametrize("distance", R.DISTANCES)
def test_large_magnitudes_float64(distance):
    """1e30 coordinates: squares (1e60) and dot products stay finite in float64."""
    rng = np.random.default_rng(11)
    a, p, n = (rng.standard_normal((5, 9)) * 1e30 for _ in range(3))
    o = Options(distance=distance, p=3.0)
    r = compute_loss(a, p, n, **o.api())
    ref = R.triplet_losses(a, p, n, **o.ref())
    assert np.all(np.isfinite(r.loss))
    assert_matches(r, ref, o)


@pytest.mark.parametrize(("distance", "a", "p", "n", "margin"), [
    ("euclidean", (0.0, 0.0), (1.0, 0.0), (2.0, 0.0), 1.0),
    ("squared-euclidean", (0.0, 0.0), (1.0, 0.0), (2.0, 0.0), 3.0),
    ("manhattan", (0.0, 0.0), (1.0, 1.0), (3.0, 0.5), 1.5),
    ("chebyshev", (0.0, 0.0), (0.5, 0.25), (2.0, 1.0), 1.5),
    ("dot", (1.0, 2.0), (1.0, 1.0), (2.0, 0.0), 1.0),
])
def test_exact_margin_boundary_is_zero_and_inactive(distance, a, p, n, margin):
    """d_an - d_ap == margin exactly (dyadic values): loss 0, not active, warned about."""
    a, p, n = (np.array([v]) for v in (a, p, n))
    r = compute_loss(a, p, n, distance=distance, margin=margin)
    assert r.d_an[0] - r.d_ap[0] == margin
    assert r.loss[0] == 0.0
    assert r.summary["active_fraction"] == 0.0
    assert r.summary["mean_nonzero"] == 0.0
    assert any("exactly on the margin" in w for w in r.summary["warnings"])
    soft = compute_loss(a, p, n, distance=distance, margin=margin, soft_margin=True)
    assert soft.loss[0] == pytest.approx(math.log(2), rel=1e-15)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

NAN_FREE = options(combos=[c for c in COMBOS if c[1] != "legacy-root"],
                   eps_values=(1e-6, 1e-3, 0.25))


@KERNELS
@given(arrays=aligned_arrays(), o=NAN_FREE)
def test_loss_is_nonnegative(arrays, o):
    for soft in (False, True):
        r = compute_loss(*arrays, **replace(o, soft=soft).api())
        assert np.all(r.loss >= 0), r.loss


@KERNELS
@given(arrays=aligned_arrays(), o=NAN_FREE)
def test_swap_never_lowers_a_loss(arrays, o):
    plain = compute_loss(*arrays, **replace(o, swap=False).api())
    swapped = compute_loss(*arrays, **replace(o, swap=True).api())
    assert np.all(swapped.d_an <= plain.d_an)
    assert np.all(swapped.loss >= plain.loss)


@KERNELS
@given(arrays=candidate_arrays(), o=NAN_FREE)
def test_swap_never_lowers_a_candidate_loss(arrays, o):
    plain = compute_loss(*arrays, **replace(o, swap=False).api())
    swapped = compute_loss(*arrays, **replace(o, swap=True).api())
    assert np.all(swapped.loss >= plain.loss)


@KERNELS
@given(arrays=aligned_arrays(), o=NAN_FREE)
def test_soft_margin_loss_is_at_least_the_hinge_loss(arrays, o):
    """softplus(x) >= max(x, 0) for every x, with the same explicit margin."""
    hinge = compute_loss(*arrays, **replace(o, soft=False).api())
    soft = compute_loss(*arrays, **replace(o, soft=True).api())
    assert np.all(soft.loss >= hinge.loss)


def _nan_error_mentions(err: InputError, role: str, where: str) -> None:
    """The error names the file (role) and the place: "row i", or "row i, candidate k"."""
    text = str(err)
    assert role in text and f"{where} contains NaN" in text, text


@pytest.mark.parametrize("distance", R.DISTANCES)
@KERNELS
@given(arrays=aligned_arrays(), data=st.data())
def test_nan_input_raises_naming_the_row(distance, arrays, data):
    a, p, n = arrays
    roles = {"anchors": a, "positives": p, "negatives": n}
    role = data.draw(st.sampled_from(sorted(roles)))
    row = data.draw(st.integers(0, a.shape[0] - 1))
    col = data.draw(st.integers(0, a.shape[1] - 1))
    roles[role][row, col] = np.nan
    placement = data.draw(st.sampled_from([pl for d, pl in COMBOS if d == distance]))
    o = Options(distance=distance, placement=placement, p=data.draw(p_values(placement)),
                swap=data.draw(st.booleans()), soft=data.draw(st.booleans()),
                normalize=data.draw(st.booleans()))
    with pytest.raises(InputError) as info:
        quiet_compute(a, p, n, **o.api())
    _nan_error_mentions(info.value, role, f"row {row}")


@pytest.mark.parametrize("role", ["anchors", "positives", "negatives"])
@pytest.mark.parametrize("options", [{"distance": "chebyshev"},
                                     {"distance": "minkowski", "p": math.inf},
                                     {"distance": "chebyshev", "eps_placement": "root"}],
                         ids=["chebyshev", "minkowski-p-inf", "chebyshev-root"])
def test_nan_in_chebyshev_raises_naming_the_row(options, role):
    """chebyshev's max propagates NaN: a NaN component followed by a finite one (which a
    `not v <= m` max let through, silently dropping the NaN) still names the row."""
    arrays = {"anchors": np.zeros((3, 4)), "positives": np.ones((3, 4)),
              "negatives": np.full((3, 4), 3.0)}
    arrays[role][1, 0] = np.nan  # not the last component: a later finite one follows
    with pytest.raises(InputError) as info:
        compute_loss(**arrays, **options)
    _nan_error_mentions(info.value, role, "row 1")


@KERNELS
@given(arrays=candidate_arrays(), data=st.data())
def test_nan_candidate_raises_naming_the_anchor_row_and_candidate(arrays, data):
    """(n, k, d) candidates: "row i, candidate k" in the positives/negatives file; "row i" for
    the (n, d) anchors."""
    a, P, N = arrays
    roles = {"anchors": a, "positives": P, "negatives": N}
    role = data.draw(st.sampled_from(sorted(roles)))
    x = roles[role]
    index = tuple(data.draw(st.integers(0, s - 1)) for s in x.shape)
    x[index] = np.nan
    with pytest.raises(InputError) as info:
        quiet_compute(a, P, N, swap=data.draw(st.booleans()))
    where = f"row {index[0]}" if role == "anchors" else f"row {index[0]}, candidate {index[1]}"
    _nan_error_mentions(info.value, role, where)


@pytest.mark.parametrize("role", ["anchors", "positives", "negatives"])
def test_nan_in_one_anchor_candidates_names_the_candidate_row(role):
    """One anchor (d,) with (k, d) candidates: the row of the (k, d) file that holds the NaN
    (the anchor itself is row 0)."""
    arrays = {"anchors": np.zeros(2), "positives": np.zeros((5, 2)), "negatives": np.ones((4, 2))}
    if role == "anchors":
        arrays[role][1] = np.nan
    else:
        arrays[role][3, 1] = np.nan
    with pytest.raises(InputError) as info:
        compute_loss(**arrays, swap=True)
    _nan_error_mentions(info.value, role, "row 0" if role == "anchors" else "row 3")


@pytest.mark.parametrize("role", ["positives", "negatives"])
def test_nan_next_to_mixed_candidates_names_the_row(role):
    """(n, d) positives next to (n, k, d) negatives (or the reverse): a NaN in the (n, d) file
    is in anchor row i ("row i"); one in the (n, k, d) file is "row i, candidate k"."""
    a = np.zeros((4, 2))
    flat, cands = np.ones((4, 2)), np.full((4, 3, 2), 2.0)
    arrays = {"positives": flat, "negatives": cands} if role == "positives" else \
        {"positives": cands, "negatives": flat}
    flat[2, 1] = np.nan
    with pytest.raises(InputError) as info:
        compute_loss(a, **arrays)
    _nan_error_mentions(info.value, role, "row 2")
    flat[2, 1] = 1.0
    cands[1, 2, 0] = np.nan
    other = "negatives" if role == "positives" else "positives"
    with pytest.raises(InputError) as info:
        compute_loss(a, **arrays)
    _nan_error_mentions(info.value, other, "row 1, candidate 2")


@KERNELS
@given(data=st.data())
def test_nan_in_embeddings_raises_naming_the_row(data):
    m, d = data.draw(st.integers(1, 30)), data.draw(st.integers(1, 20))
    X = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).standard_normal((m, d))
    row = data.draw(st.integers(0, m - 1))
    X[row, data.draw(st.integers(0, d - 1))] = np.nan
    T = np.array([[0, min(1, m - 1), m - 1]])
    with pytest.raises(InputError) as info:
        compute_loss(embeddings=X, triplets=T)
    _nan_error_mentions(info.value, "embeddings", f"row {row}")


@pytest.mark.parametrize("shape", ["aligned", "candidates"])
def test_swap_propagates_nan_distance(shape):
    """A NaN d(p, n) (legacy-root, odd p) wins the swap's min, as torch.min propagates it."""
    # legacy-root p=3: d(a,n) = sqrt(1 + eps), d(p,n) = sqrt(sum (p-n)^3 + eps) = sqrt(-8 + eps).
    a, p, n = np.array([[0.0]]), np.array([[-3.0]]), np.array([[-1.0]])
    with np.errstate(all="ignore"):
        ref = R.triplet_losses(a, p, n, distance="minkowski", p_norm=3.0, placement="legacy-root",
                               swap=True)
    assert np.isnan(ref[2][0])
    if shape == "candidates":
        p, n = p[:, None], n[:, None]
    r = quiet_compute(a, p, n, distance="minkowski", p=3.0, eps_placement="legacy-root",
                      swap=True)
    assert np.isnan(r.loss[0]), f"loss {r.loss[0]}, d_an {r.d_an[0]}"
    if shape == "aligned":
        assert np.isnan(r.d_an[0])
    else:  # candidates report the mean of the unswapped d(a, n_k)
        assert r.d_an[0] == math.sqrt(1 + 1e-6)


@KERNELS
@given(data=st.data(), o=options())
def test_threads_do_not_change_results(data, o):
    """Bit-identical per-triplet values and summary with 1 and 2 kernel threads."""
    if data.draw(st.booleans()):
        args = data.draw(aligned_arrays(max_n=400))
    else:
        args = data.draw(candidate_arrays(max_n=60))
    one = quiet_compute(*args, threads=1, **o.api())
    two = quiet_compute(*args, threads=2, **o.api())
    for name in ("d_ap", "d_an", "loss"):
        assert getattr(one, name).tobytes() == getattr(two, name).tobytes(), name
    s1, s2 = dict(one.summary), dict(two.summary)
    assert repr(s1) == repr(s2)


# ---------------------------------------------------------------------------------------------
# Summary keys against the reference reductions
# ---------------------------------------------------------------------------------------------


@KERNELS
@given(arrays=aligned_arrays(), o=NAN_FREE)
def test_summary_matches_reference_reductions(arrays, o):
    r = compute_loss(*arrays, **o.api())
    s = r.summary
    loss = r.loss
    assert s["count"] == loss.size
    assert s["reduction"] == o.reduction
    for key, red in (("mean", "mean"), ("sum", "sum"), ("mean_nonzero", "mean-nonzero")):
        assert s[key] == pytest.approx(R.reduce(loss, red), rel=1e-12, abs=1e-300), key
    assert s["active_fraction"] == R.active_fraction(loss)
    assert s["accuracy"] == R.accuracy(r.d_ap, r.d_an)
    if o.reduction == "none":
        assert s["loss"] is None
    else:
        assert s["loss"] == pytest.approx(R.reduce(loss, o.reduction), rel=1e-12, abs=1e-300)
    # and the reductions of the reference's own losses, with the comparison tolerance
    with np.errstate(all="ignore"):
        _, _, ref_loss = R.triplet_losses(*(f64(x) for x in arrays), **o.ref())
    scale = distance_scale(ref_loss, margin=o.margin)
    assert s["mean"] == pytest.approx(R.reduce(ref_loss, "mean"), rel=RTOL,
                                      abs=ATOL_PER_SCALE * scale)
    assert s["sum"] == pytest.approx(R.reduce(ref_loss, "sum"), rel=RTOL,
                                     abs=ATOL_PER_SCALE * scale * loss.size)


@KERNELS
@given(arrays=candidate_arrays(), o=NAN_FREE)
def test_candidate_summary_accuracy_is_the_pair_fraction(arrays, o):
    r = compute_loss(*arrays, **o.api())
    correct = R.candidate_correct(*(f64(x) for x in arrays), distance=o.distance, p_norm=o.p,
                                  eps=o.eps, placement=o.placement, swap=o.swap,
                                  normalize_rows=o.normalize)
    # Exact ties (planted duplicates, float16 zeros) are ties in both; random data has no
    # near-ties that rounding could decide differently.
    assert r.summary["accuracy"] == pytest.approx(float(correct.mean()), abs=1e-12)
    assert r.summary["mean_nonzero"] == pytest.approx(R.reduce(r.loss, "mean-nonzero"),
                                                      rel=1e-12, abs=1e-300)
    assert r.summary["active_fraction"] == R.active_fraction(r.loss)


def _largest_term(x: np.ndarray, y: np.ndarray, shift: float) -> float:
    """Chebyshev's scalar rule: the largest |x_i - y_i + shift|, NaN from the first NaN term."""
    m = 0.0
    for xi, yi in zip(x.astype(np.float64), y.astype(np.float64), strict=True):
        v = abs(xi - yi + shift)
        if v > m or v != v:
            m = float(v)
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shift", [0.0, 1e-6])
def test_chebyshev_lanes_equal_the_scalar_rule(dtype, shift):
    """The vectorised maximum (lanes, then their tree) equals the one-term-at-a-time rule bit
    for bit: row lengths around the 8 lanes, strided rows, NaN and inf terms; and the pair
    path equals two single distances."""
    from triplet_cli import distances as D

    rng = np.random.default_rng(5)
    placement = "difference" if shift else "none"
    args = D.kernel_args("chebyshev", math.inf, shift, placement)
    for n in [*range(0, 20), 63, 64, 65, 300]:
        rows = rng.standard_normal((3, 2 * n)).astype(dtype)
        if n > 4:
            rows[0, rng.integers(0, 2 * n)] = np.nan if n % 2 else np.inf
        for x, y, z in ((rows[0, :n], rows[1, :n], rows[2, :n]),
                        (rows[0, ::2], rows[1, ::2], rows[2, ::2])):
            assert repr(D.chebyshev(x, y, shift)) == repr(_largest_term(x, y, shift))
            pair = D.distance_pair(x, y, z, *args)
            assert repr(pair) == repr((D.distance(x, y, *args), D.distance(x, z, *args)))


@pytest.mark.parametrize(("kp", "kn"), [(3, 3), (2, 5), (4, 1)])
@pytest.mark.parametrize("name", ["euclidean", "cosine", "manhattan", "chebyshev", "dot"])
def test_candidate_distances_are_the_pairwise_distance(name, kp, kn):
    """k candidates: each mean distance is the running sum of `distance` over the candidates
    in order, divided by k, bit for bit (positive and negative distances taken in one pass
    over the anchor where both exist)."""
    from triplet_cli import distances as D

    rng = np.random.default_rng(kp * 10 + kn)
    a = rng.standard_normal((30, 21)).astype(np.float32)
    P = rng.standard_normal((30, kp, 21)).astype(np.float32)
    N = rng.standard_normal((30, kn, 21)).astype(np.float32)
    r = compute_loss(a, P, N, distance=name, pair_reduction="mean")
    args = D.kernel_args(name, 2.0, 1e-6, "none")
    for got, cand, k in ((r.d_ap, P, kp), (r.d_an, N, kn)):
        for i in range(30):
            total = 0.0
            for j in range(k):
                total += D.distance(a[i], cand[i, j], *args)
            assert got[i] == total / k, (name, i)
