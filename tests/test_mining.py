"""mine_triplets (SPEC section 4) against the brute-force miner of tests/reference.py.

Two oracles, both `reference.brute_force_mine` (SPEC read literally, full m x m matrix):
- on the library's own exact distances (D_lib: compute_loss over every pair (i, j)): the
  decisions must match bit for bit, ties included (lowest row index), whatever the data;
- on the numpy float64 distances (reference.distance_matrix): D_lib must agree with them to 1e-9,
  and the mined set must be the same triplets when no two candidate distances of an anchor lie
  within 1e-9 of each other. With ties it is compared per position (anchor, d_ap, d_an) to 1e-9,
  unless numpy and the kernels round a tie apart differently (a semi-hard threshold or the hinge
  boundary falls inside the rounding): then only the D_lib oracle applies (counted as an event).

Inputs are drawn as (rows, dimensions, dtype, layout, classes, seed) and built with numpy, so
hypothesis shrinks towards small sets. Layouts: small integers (exact ties, duplicate and zero
rows), normal, near-duplicates (noise 1e-6: the matrix-product expansion is inexact) and tiny
rows (1e-7, below cosine's eps, with zero rows).

Known bugs are pinned by strict xfails on minimal examples (none open now); every layout is
drawn, normalised or not.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial

import numpy as np
import pytest
import reference as R
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from triplet_cli import TripletLossError, compute_loss, mine_triplets

# deadline=None: the first example of each kernel signature pays numba's JIT compile.
# MINING_EXAMPLES=200 soaks it (default 8: about 20 s on 2 idle cores, kernels cached).
settings.register_profile("mining", deadline=None,
                          max_examples=int(os.environ.get("MINING_EXAMPLES", "8")),
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
MINING = settings.get_profile("mining")
TOL = 1e-9  # numpy's pairwise sums against the kernels' four running sums: ~1e-15 relative

COMBOS = list(itertools.product(R.MINE_STRATEGIES, R.POSITIVE_STRATEGIES, (1, 3), R.FALLBACKS,
                                R.THRESHOLDS))
LAYOUTS = ("integers", "normal", "near", "tiny")


@dataclass(frozen=True)
class Dist:
    """A distance as mine_triplets / compute_loss take it, and as the reference takes it."""

    distance: str = "euclidean"
    p: float = 2.0
    placement: str = "none"
    eps: float = 1e-6

    @property
    def id(self) -> str:
        p = f"-p{self.p:g}" if self.distance == "minkowski" else ""
        return f"{self.distance}{p}-{self.placement}"

    def api(self, normalize: bool = False) -> dict[str, object]:
        kw: dict[str, object] = dict(distance=self.distance, eps_placement=self.placement,
                                     eps=self.eps, normalize=normalize)
        if self.distance == "minkowski":  # --p belongs to minkowski; elsewhere it is refused
            kw["p"] = self.p
        return kw

    def ref(self, normalize: bool = False) -> dict[str, object]:
        return dict(distance=self.distance, p=self.p, placement=self.placement, eps=self.eps,
                    normalize_rows=normalize)


# Every distance of SPEC section 2 with every eps placement that gives finite distances: not
# legacy-root for manhattan or p != 2 (a power of the signed difference: NaN for finite input),
# nor for chebyshev (an infinite order: refused, test_kernels.py checks it).
DISTS = [
    *(Dist(d, 2.0, pl) for d in ("euclidean", "squared-euclidean", "manhattan", "chebyshev")
      for pl in ("none", "difference", "root")),
    Dist("euclidean", 2.0, "legacy-root"), Dist("squared-euclidean", 2.0, "legacy-root"),
    Dist("euclidean", 2.0, "root", 1e-3),
    Dist("cosine"), Dist("cosine", eps=1e-3), Dist("dot"),
    *(Dist("minkowski", p, pl) for p in (1.5, 3.0) for pl in ("none", "difference", "root")),
    *(Dist("minkowski", p) for p in (1.0, 2.0, math.inf)),  # the kernels' fast paths
    Dist("minkowski", 2.0, "legacy-root"),
]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def build(m: int, d: int, dtype: type, layout: str, classes: int, seed: int,
          string_labels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A labelled set where some label occurs twice and there are at least two classes."""
    rng = np.random.default_rng(seed)
    if layout == "integers":
        x = rng.integers(-2, 3, size=(m, d)).astype(np.float64)
    elif layout == "normal":
        x = rng.normal(size=(m, d))
    elif layout == "near":
        base = rng.normal(size=(max(1, m // 4), d))
        x = base[rng.integers(0, base.shape[0], m)] + rng.normal(scale=1e-6, size=(m, d))
    else:
        x = rng.normal(scale=1e-7, size=(m, d))
        x[rng.random(m) < 0.2] = 0.0
    labels = rng.integers(0, classes, size=m)
    labels[:3] = (0, 0, 1)
    labels = labels[rng.permutation(m)]
    if string_labels:
        labels = np.array([f"class-{v}" for v in labels])
    return x.astype(dtype), labels


@st.composite
def labelled_sets(draw, normalize: bool = False, max_m: int = 60):
    layouts = LAYOUTS
    return build(draw(st.integers(3, max_m)), draw(st.integers(1, 20)),
                 draw(st.sampled_from([np.float32, np.float64])), draw(st.sampled_from(layouts)),
                 draw(st.integers(2, 8)), draw(st.integers(0, 2**32 - 1)), draw(st.booleans()))


@dataclass(frozen=True)
class Loss:
    margin: float = 1.0
    soft: bool = False
    active_only: bool = False

    def api(self) -> dict[str, object]:
        return dict(margin=self.margin, soft_margin=self.soft, active_only=self.active_only)

    def ref(self) -> dict[str, object]:
        return dict(margin=self.margin, soft=self.soft, active_only=self.active_only)


LOSSES = st.builds(Loss, st.sampled_from([0.0, 0.5, 1.0]), st.booleans(), st.booleans())


def combo_api(combo: tuple) -> dict[str, object]:
    strategy, positive, k, fallback, threshold = combo
    return dict(strategy=strategy, positive_strategy=positive, per_anchor=k,
                semi_hard_fallback=fallback, semi_hard_threshold=threshold)


def combo_ref(combo: tuple) -> dict[str, object]:
    strategy, positive, k, fallback, threshold = combo
    return dict(strategy=strategy, positive_strategy=positive, per_anchor=k, fallback=fallback,
                threshold=threshold)


def combo_id(combo: tuple) -> str:
    return "{}-pos_{}-K{}-{}-{}".format(*combo)


# ---------------------------------------------------------------------------------------------
# Oracles and comparisons
# ---------------------------------------------------------------------------------------------


def library_distances(x: np.ndarray, dist: Dist, normalize: bool = False) -> np.ndarray:
    """D[i, j] = d(x_i, x_j) as compute_loss gives it (the triplet (i, j, j) for every pair)."""
    m = x.shape[0]
    i, j = np.divmod(np.arange(m * m, dtype=np.int64), m)
    r = compute_loss(embeddings=x, triplets=np.stack([i, j, j], axis=1), threads=1,
                     **dist.api(normalize))
    return r.d_ap.reshape(m, m)


def assert_identical(result, expected) -> None:
    """Same triplets in the same order, distances bit for bit, losses to rounding."""
    t, d_ap, d_an, loss = expected
    assert result.triplets.dtype == np.int64
    assert result.triplets.shape == t.shape, (result.triplets.shape, t.shape)
    np.testing.assert_array_equal(result.triplets, t)
    np.testing.assert_array_equal(result.d_ap, d_ap)
    np.testing.assert_array_equal(result.d_an, d_an)
    np.testing.assert_allclose(result.loss, loss, rtol=1e-14, atol=0)  # log1p/exp: numpy vs libm


def per_position_equal(a, b, scale: float) -> bool:
    """Same length, same anchor at every position, d_ap / d_an / loss within TOL."""
    if a[0].shape != b[0].shape or not np.array_equal(a[0][:, 0], b[0][:, 0]):
        return False
    return all(np.allclose(u, v, rtol=TOL, atol=TOL * scale) for u, v in zip(a[1:], b[1:],
                                                                            strict=True))


def near_ties(D: np.ndarray, loss: Loss, scale: float) -> bool:
    """Whether two candidate distances of some anchor lie within TOL (or, for active_only with
    the hinge, a pair of them sits within TOL of the margin boundary d_an - d_ap = margin)."""
    m = D.shape[0]
    for i in range(m):
        v = np.sort(np.delete(D[i], i))
        if v.size > 1 and np.min(np.diff(v)) <= TOL * scale:
            return True
        if loss.active_only and not loss.soft and v.size > 1:
            at = np.searchsorted(v, v + loss.margin - TOL * scale)
            upto = np.searchsorted(v, v + loss.margin + TOL * scale, side="right")
            if np.any(upto > at):
                return True
    return False


def check_against_references(x, labels, combo, dist: Dist, loss: Loss, normalize: bool):
    """The whole contract for one input: both oracles, the summary, and compute_loss."""
    result = mine_triplets(x, labels, threads=1, **combo_api(combo), **dist.api(normalize),
                           **loss.api())
    d_lib = library_distances(x, dist, normalize)
    lib = R.brute_force_mine(x, labels, **combo_ref(combo), **loss.ref(), D=d_lib)
    assert_identical(result, lib)

    d_ref = R.distance_matrix(x, **dist.ref(normalize))
    scale = max(1.0, float(np.abs(d_ref).max()))
    np.testing.assert_allclose(d_lib, d_ref, rtol=TOL, atol=TOL * scale)
    ref = R.brute_force_mine(x, labels, **combo_ref(combo), **loss.ref(), D=d_ref)
    ours = (result.triplets, result.d_ap, result.d_an, result.loss)
    if not near_ties(d_ref, loss, scale):
        event("no ties: exact triplets against numpy")
        np.testing.assert_array_equal(result.triplets, ref[0])
        assert per_position_equal(ours, ref, scale)
    elif per_position_equal(lib, ref, scale):
        event("ties: per position against numpy")
        assert per_position_equal(ours, ref, scale)
    else:
        event("ties rounded apart by numpy: D_lib oracle only")

    check_summary(result, labels, x.shape[0])
    check_compute_loss(result, x, dist, loss, normalize)
    return result


def check_summary(result, labels, m: int) -> None:
    s = result.summary
    without_positive, without_negative = R.anchors_without(labels)
    _, counts = np.unique(labels, return_counts=True)
    assert s["anchors"] == m
    assert s["anchors_without_positive"] == without_positive
    assert s["anchors_without_negative"] == without_negative
    assert s["triplets"] == len(result.loss)
    assert s["labels"] == {"classes": counts.size, "smallest_class": int(counts.min()),
                           "largest_class": int(counts.max())}
    assert s["loss"] == pytest.approx(R.reduce(result.loss, "mean"), rel=1e-12, abs=1e-300)
    assert s["mean_nonzero"] == pytest.approx(R.reduce(result.loss, "mean-nonzero"), rel=1e-12)
    assert s["active_fraction"] == pytest.approx(R.active_fraction(result.loss), rel=1e-12)


def check_compute_loss(result, x, dist: Dist, loss: Loss, normalize: bool) -> None:
    """compute_loss on the mined indices gives the same numbers, bit for bit."""
    if not len(result.triplets):
        return
    again = compute_loss(embeddings=x, triplets=result.triplets, threads=1,
                         **dist.api(normalize), margin=loss.margin, soft_margin=loss.soft)
    np.testing.assert_array_equal(again.d_ap, result.d_ap)
    np.testing.assert_array_equal(again.d_an, result.d_an)
    np.testing.assert_array_equal(again.loss, result.loss)


# ---------------------------------------------------------------------------------------------
# Properties: every combination, every distance
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
@MINING
@given(data=st.data(), dist=st.sampled_from(DISTS), loss=LOSSES, normalize=st.booleans())
def test_every_combination_equals_brute_force(combo, data, dist, loss, normalize) -> None:
    x, labels = data.draw(labelled_sets(normalize))
    check_against_references(x, labels, combo, dist, loss, normalize)


@pytest.mark.parametrize("dist", DISTS, ids=lambda d: d.id)
@MINING
@given(data=st.data(), combo=st.sampled_from(COMBOS), loss=LOSSES, normalize=st.booleans())
def test_every_distance_equals_brute_force(dist, data, combo, loss, normalize) -> None:
    x, labels = data.draw(labelled_sets(normalize))
    check_against_references(x, labels, combo, dist, loss, normalize)


@pytest.mark.parametrize(("dist", "normalize", "soft"), [
    (Dist(), False, False), (Dist("cosine"), False, True), (Dist("squared-euclidean"), True, False),
    (Dist("manhattan", placement="difference"), False, False), (Dist("minkowski", 3.0), True, True),
    (Dist("dot"), False, False)], ids=lambda v: getattr(v, "id", str(v)))
def test_compute_loss_reproduces_mined_numbers(sample, dist: Dist, normalize: bool,
                                               soft: bool) -> None:
    """On sample_data (float32, 1797 rows): compute --triplets gives mine's numbers bit for bit."""
    x = np.load(sample / "embeddings.npy")
    labels = np.load(sample / "labels.npy")
    r = mine_triplets(x, labels, per_anchor=2, positive_strategy="easy", soft_margin=soft,
                      **dist.api(normalize))
    assert len(r.triplets) == 2 * len(labels)
    check_compute_loss(r, x, dist, Loss(margin=r.summary["params"]["margin"], soft=soft),
                       normalize)


@settings(MINING, max_examples=80)
@given(data=st.data(), combo=st.sampled_from(COMBOS), dist=st.sampled_from(DISTS), loss=LOSSES,
       normalize=st.booleans())
def test_swap_mines_the_same_triplets_and_scores_them_swapped(data, combo, dist, loss,
                                                              normalize) -> None:
    """--swap (PyTorch, pytorch-metric-learning): the miner's choice is unchanged, the loss sees
    d_an = min(d_an, d_pn) (SPEC 1), --active-only keeps the rows whose swapped loss is
    positive, --margin-filter keeps by the miner's own distances; compute_loss with swap
    gives the same bits, numpy float64 the same numbers."""
    x, labels = data.draw(labelled_sets(normalize))
    band = data.draw(st.sampled_from(["any", "violating", "hard", "semi-hard", "easy"]), "band")
    common = dict(threads=1, **combo_api(combo), **dist.api(normalize), margin=loss.margin,
                  soft_margin=loss.soft, margin_filter=band)
    plain = mine_triplets(x, labels, **common)
    swapped = mine_triplets(x, labels, swap=True, active_only=loss.active_only, **common)
    if len(plain.triplets):
        again = compute_loss(embeddings=x, triplets=plain.triplets, threads=1, swap=True,
                             **dist.api(normalize), margin=loss.margin, soft_margin=loss.soft)
        keep = again.loss > 0 if loss.active_only else np.ones(len(again.loss), bool)
        np.testing.assert_array_equal(swapped.triplets, plain.triplets[keep])
        np.testing.assert_array_equal(swapped.d_ap, plain.d_ap[keep])
        np.testing.assert_array_equal(swapped.d_an, again.d_an[keep])
        np.testing.assert_array_equal(swapped.loss, again.loss[keep])
        t = plain.triplets
        d = R.distance_matrix(x, **dist.ref(normalize))
        scale = max(1.0, float(np.abs(d).max()))
        d_an = np.fmin(d[t[:, 0], t[:, 2]], d[t[:, 1], t[:, 2]])
        np.testing.assert_allclose(again.d_an, d_an, rtol=TOL, atol=TOL * scale)
        np.testing.assert_allclose(again.loss, R.pair_loss(plain.d_ap, d_an, loss.margin,
                                                           loss.soft), rtol=TOL, atol=TOL * scale)
    else:
        assert not len(swapped.triplets)
    assert swapped.summary["params"]["swap"] is True


# ---------------------------------------------------------------------------------------------
# Properties: each mined triplet satisfies its definition
# ---------------------------------------------------------------------------------------------


def _rank(d: np.ndarray, candidates: np.ndarray, k: int, farthest: bool) -> int:
    """How many candidates come before k in the order (distance, then lower row index)."""
    dk = d[k]
    ahead = d[candidates] > dk if farthest else d[candidates] < dk
    return int((ahead | ((d[candidates] == dk) & (candidates < k))).sum())


@settings(MINING, max_examples=MINING.max_examples * 10)
@given(data=labelled_sets(), combo=st.sampled_from(COMBOS), dist=st.sampled_from(DISTS),
       loss=LOSSES)
def test_every_mined_triplet_satisfies_its_definition(data, combo, dist, loss) -> None:
    x, labels = data
    strategy, positive, K, fallback, threshold = combo
    r = mine_triplets(x, labels, threads=1, **combo_api(combo), **dist.api(), **loss.api())
    D = library_distances(x, dist)
    m = len(labels)
    rows = np.arange(m)
    t = r.triplets
    assert np.all(np.diff(t[:, 0]) >= 0), "anchors ascending"
    np.testing.assert_array_equal(r.d_ap, D[t[:, 0], t[:, 1]])
    np.testing.assert_array_equal(r.d_an, D[t[:, 0], t[:, 2]])
    np.testing.assert_allclose(r.loss, R.pair_loss(r.d_ap, r.d_an, loss.margin, loss.soft),
                               rtol=1e-14)
    if loss.active_only:
        assert np.all(r.loss > 0)
    for i in range(m):
        mine = t[t[:, 0] == i]
        P = rows[(labels == labels[i]) & (rows != i)]
        N = rows[labels != labels[i]]
        if not P.size or not N.size:
            assert not mine.size, f"anchor {i} has no positive or no negative"
            continue
        assert np.all(labels[mine[:, 1]] == labels[i]) and np.all(mine[:, 1] != i)
        assert np.all(labels[mine[:, 2]] != labels[i])
        d = D[i]
        hardest = P[d[P] == d[P].max()].min()  # farthest; ties: the lowest row index
        if positive == "hard":
            assert set(mine[:, 1]) <= {hardest}
        elif positive == "easy":
            assert set(mine[:, 1]) <= {P[d[P] == d[P].min()].min()}
        else:
            assert np.all(np.diff(mine[:, 1]) >= 0), "positives ascending"
        complete = not loss.active_only and not (strategy == "semi-hard" and fallback == "skip")
        if complete:
            want = P if positive == "all" else [hardest] if positive == "hard" else [
                P[d[P] == d[P].min()].min()]
            np.testing.assert_array_equal(np.unique(mine[:, 1]), want)
        for j in np.unique(mine[:, 1]):
            negs = mine[mine[:, 1] == j, 2]
            if strategy == "all":
                assert np.all(np.diff(negs) > 0), "every negative, ascending"
                if not loss.active_only:
                    np.testing.assert_array_equal(negs, N)
                continue
            assert negs.size <= K
            pool, farthest = N, strategy == "easy"
            if strategy == "semi-hard":
                thr = d[hardest] if threshold == "hardest-positive" else d[j]
                beyond = N[d[N] > thr]
                if beyond.size:
                    assert np.all(d[negs] > thr), "semi-hard: strictly beyond the threshold"
                    pool = beyond
                else:
                    assert fallback == "easiest", "skip: nothing when no negative is beyond"
                    farthest = True
            order = [_rank(d, pool, k, farthest) for k in negs]
            if not loss.active_only:
                assert order == list(range(min(K, pool.size))), (i, j, negs, order)
            else:
                assert order == sorted(order) and len(set(order)) == len(order)
        if strategy == "hard" and K == 1 and not loss.active_only:
            assert np.all(d[mine[:, 2]] == d[N].min()), "hard is the minimum over negatives"
        if strategy == "easy" and K == 1 and not loss.active_only:
            assert np.all(d[mine[:, 2]] == d[N].max()), "easy is the maximum over negatives"


# ---------------------------------------------------------------------------------------------
# Pinned numbers: SPEC section 7 and CONFORMANCE.md C8-C15 where they are our own semantics
# ---------------------------------------------------------------------------------------------


def rounded(text: str):
    """Equal to `text` when rounded to its printed digits."""
    half_unit = 0.5 * 10.0 ** Decimal(text).as_tuple().exponent
    return pytest.approx(float(text), rel=0, abs=half_unit * (1 + 1e-9))


def line(*v: float) -> np.ndarray:
    """Points (v, 0): D_ij = |v_i - v_j|, exact in float64 for these dyadic values."""
    return np.stack([np.array(v, dtype=np.float64), np.zeros(len(v))], axis=1)


SPEC7 = (line(0, 1, 3, 2, 5), [0, 0, 0, 1, 1])
M = (line(0, 1, 2.25, 1.5, 3.25), [0, 0, 0, 1, 1])  # CONFORMANCE C8
C14 = (line(0, 1, 1.5), [0, 0, 1])
C15 = (line(0, 1, 0), [0, 0, 1])
SEMI_ALL = dict(strategy="semi-hard", positive_strategy="all")
BATCH_HARD = dict(strategy="hard", positive_strategy="hard")
BATCH_ALL = dict(strategy="all", positive_strategy="all")
TF_SIM = dict(strategy="semi-hard", positive_strategy="hard",
              semi_hard_threshold="hardest-positive")
PAIRS_M = [[0, 1, 3], [0, 2, 4], [1, 0, 4], [1, 2, 4], [2, 0, 4], [2, 1, 4], [3, 4, 0], [4, 3, 1]]


@dataclass(frozen=True)
class Pin:
    name: str
    data: tuple
    options: dict
    triplets: list | None = None
    d_ap: list | None = None
    d_an: list | None = None
    loss: list | None = None
    summary: dict = field(default_factory=dict)


def exact(v: float):
    return pytest.approx(v, rel=0, abs=1e-12)


PINS = [
    # SPEC 7: anchor 0 pairs (0,1) -> row 3 (d 2) and (0,2) -> row 4 (d 5), losses 0; the other
    # anchors worked by hand: (2,0) and (2,1) have no negative beyond 3 / 2 (row 4 is at exactly
    # 2: not beyond) and fall back to the farthest, row 4; (3,4) falls back to row 0.
    Pin("spec7-semi-hard", SPEC7, {}, PAIRS_M, [1, 3, 1, 2, 3, 2, 3, 3], [2, 5, 4, 4, 2, 2, 2, 4],
        [0, 0, 0, 0, 2, 1, 2, 0]),
    Pin("spec7-semi-hard-skip", SPEC7, {"semi_hard_fallback": "skip"},
        [[0, 1, 3], [0, 2, 4], [1, 0, 4], [1, 2, 4], [4, 3, 1]], loss=[0, 0, 0, 0, 0]),
    Pin("spec7-semi-hard-K2", SPEC7, {"per_anchor": 2},
        [[0, 1, 3], [0, 1, 4], [0, 2, 4], [1, 0, 4], [1, 2, 4], [2, 0, 4], [2, 0, 3],
         [2, 1, 4], [2, 1, 3], [3, 4, 0], [3, 4, 1], [4, 3, 1], [4, 3, 0]]),
    # C8, TF Addons triplet_semihard_loss = sbert BatchSemiHard: all positives + semi-hard
    Pin("C8-semihard", M, SEMI_ALL, PAIRS_M, [1, 2.25, 1, 1.25, 2.25, 1.25, 1.75, 1.75],
        [1.5, 3.25, 2.25, 2.25, 1, 1, 1.5, 2.25], [0.5, 0, 0, 0, 2.25, 1.25, 1.25, 0.5],
        {"loss": exact(0.71875), "triplets": 8}),
    Pin("C8-semihard-squared", M, {**SEMI_ALL, "distance": "squared-euclidean"},
        summary={"loss": rounded("1.05469")}),
    Pin("C8-semihard-margin5", M, {**SEMI_ALL, "margin": 5.0}, summary={"loss": exact(4.6875)}),
    # C8 / C10: batch hard = TF Addons triplet_hard_loss = sbert BatchHard = PML BatchHardMiner
    Pin("C8-batch-hard", M, BATCH_HARD, [[0, 2, 3], [1, 2, 3], [2, 0, 3], [3, 4, 1], [4, 3, 2]],
        summary={"loss": exact(2.0)}),
    Pin("C8-batch-hard-margin5", M, {**BATCH_HARD, "margin": 5.0}, summary={"loss": exact(6.0)}),
    Pin("C8-batch-hard-soft", M, {**BATCH_HARD, "soft_margin": True},
        summary={"loss": rounded("1.32279"), "params": {"margin": 0.0}}),
    # C8, TF Similarity semantics: one positive per anchor, threshold its hardest positive
    Pin("C8-hard-semihard", M, TF_SIM, d_an=[3.25, 2.25, 1, 1.5, 2.25],
        loss=[0, 0, 2.25, 1.25, 0.5], summary={"loss": exact(0.8)}),
    Pin("C8-hard-semihard-soft", M, {**TF_SIM, "soft_margin": True},
        loss=[rounded("0.313262"), rounded("0.313262"), rounded("1.50193"),
              rounded("0.825939"), rounded("0.474077")], summary={"loss": rounded("0.685694")}),
    Pin("C8-easy-semihard-hardest", M, {**TF_SIM, "positive_strategy": "easy"},
        summary={"loss": exact(0.6)}),
    # the same with the paired positive as threshold (worked by hand): anchor 0 pairs with row 1
    # (d 1) and takes row 3 (d 1.5, loss 0.5) instead of row 4
    Pin("easy-semihard-positive", M, {**TF_SIM, "positive_strategy": "easy",
                                      "semi_hard_threshold": "positive"},
        [[0, 1, 3], [1, 0, 4], [2, 1, 4], [3, 4, 0], [4, 3, 1]], summary={"loss": exact(0.7)}),
    Pin("C8-easy-easy", M, {"strategy": "easy", "positive_strategy": "easy"},
        summary={"loss": exact(0.5)}),
    # C9: batch all
    Pin("C9-batch-all", M, BATCH_ALL, summary={
        "triplets": 18, "loss": rounded("1.15278"), "mean_nonzero": rounded("1.59615"),
        "active_fraction": rounded("0.722222"), "sum": exact(20.75)}),
    Pin("C9-batch-all-mean-nonzero", M, {**BATCH_ALL, "reduction": "mean-nonzero"},
        summary={"triplets": 18, "loss": rounded("1.59615")}),
    Pin("C9-batch-all-active-only", M, {**BATCH_ALL, "active_only": True},
        summary={"triplets": 13, "loss": rounded("1.59615"), "active_fraction": 1.0}),
    # C14: anchor 2 has no positive: skipped and counted (TF Addons semihard and PML: 1.0)
    Pin("C14-semihard", C14, SEMI_ALL, [[0, 1, 2], [1, 0, 2]], loss=[0.5, 1.5],
        summary={"loss": exact(1.0), "anchors_without_positive": 1}),
    Pin("C14-batch-hard", C14, BATCH_HARD, [[0, 1, 2], [1, 0, 2]],
        summary={"loss": exact(1.0), "anchors_without_positive": 1}),
    # C15: the negative duplicates the anchor; (1,0) has d_ap 1 = d_an: not beyond -> fallback
    Pin("C15-semihard", C15, SEMI_ALL, [[0, 1, 2], [1, 0, 2]], [1, 1], [0, 1], [2, 1],
        {"loss": exact(1.5), "anchors_without_positive": 1}),
    Pin("C15-semihard-skip", C15, {**SEMI_ALL, "semi_hard_fallback": "skip"}, [],
        summary={"loss": 0.0, "triplets": 0}),
    Pin("C15-batch-hard", C15, BATCH_HARD, [[0, 1, 2], [1, 0, 2]], summary={"loss": exact(1.5)}),
    Pin("C15-batch-all", C15, BATCH_ALL, [[0, 1, 2], [1, 0, 2]], summary={"loss": exact(1.5)}),
]


@pytest.mark.parametrize("pin", PINS, ids=lambda p: p.name)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pinned_examples(pin: Pin, dtype: type) -> None:
    x, labels = pin.data
    r = mine_triplets(x.astype(dtype), np.array(labels), **pin.options)
    if pin.triplets is not None:
        np.testing.assert_array_equal(r.triplets, np.array(pin.triplets, np.int64).reshape(-1, 3))
    for name in ("d_ap", "d_an", "loss"):
        want = getattr(pin, name)
        if want is not None:
            assert list(getattr(r, name)) == [w if hasattr(w, "expected") else exact(w)
                                              for w in want]
    for key, want in pin.summary.items():
        if key == "params":
            for k, v in want.items():
                assert r.summary["params"][k] == v
        else:
            assert r.summary[key] == want, key
    # the brute force agrees on every pinned case
    opts = {**dict(strategy="semi-hard", positive_strategy="all", per_anchor=1,
                   semi_hard_fallback="easiest", semi_hard_threshold="positive"), **pin.options}
    expected = R.brute_force_mine(
        x, np.array(labels), opts["strategy"], opts["positive_strategy"], opts["per_anchor"],
        opts["semi_hard_fallback"], opts["semi_hard_threshold"],
        opts.get("distance", "euclidean"), margin=r.summary["params"]["margin"],
        soft=bool(opts.get("soft_margin")), active_only=bool(opts.get("active_only")))
    np.testing.assert_array_equal(r.triplets, expected[0])
    np.testing.assert_allclose(r.loss, expected[3], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("labels", "pattern"), [
    ([0, 0, 0], r"every row has label"),  # C12: a single class has no negatives
    (["a", "a", "a"], r"every row has label"),
    ([0, 1, 2], r"no label occurs twice"),  # C13: all labels distinct
    ([0, 0, 1, 1], r"4 labels for 3 embedding rows"),
])
def test_sets_without_triplets_are_input_errors(labels, pattern: str) -> None:
    with pytest.raises(TripletLossError, match=pattern) as error:
        mine_triplets(line(0, 1, 3), np.array(labels))
    assert error.value.exit_code == 1, "bad input (exit 1), not a usage error"


# ---------------------------------------------------------------------------------------------
# --margin-filter: pytorch-metric-learning's TripletMarginMiner over batch-all
# ---------------------------------------------------------------------------------------------

# Distances of every kind: p-norms with and without a root, a non-norm (cosine), a similarity
# (dot: gap = ap_sim - an_sim, PML's is_inverted), and a shifted eps placement.
FILTER_DISTS = [Dist(), Dist("squared-euclidean"), Dist("manhattan"), Dist("chebyshev"),
                Dist("minkowski", 3.0), Dist("euclidean", placement="difference"),
                Dist("cosine"), Dist("dot")]
FILTER_MARGINS = (0.0, 0.05, 0.2, 1.0)  # 0: violating = hard; 0.05 and 0.2: PML's defaults


@settings(MINING, max_examples=MINING.max_examples * 20)
@given(data=labelled_sets(max_m=24), band=st.sampled_from(R.MARGIN_FILTERS[1:]),
       margin=st.sampled_from(FILTER_MARGINS), dist=st.sampled_from(FILTER_DISTS),
       normalize=st.booleans(), soft=st.booleans())
def test_margin_filter_equals_reference(data, band, margin, dist, normalize, soft) -> None:
    """strategy all + margin_filter keeps exactly reference.margin_band()'s triplets.

    Against the numpy float64 reference: the same triplets, distances within TOL. Where numpy
    and the kernels round a gap to opposite sides of 0 or of the margin (a gap within TOL of
    it), the reference run on the library's own distances decides, bit for bit.
    """
    x, labels = data
    result = mine_triplets(x, labels, threads=1, strategy="all", margin_filter=band,
                           margin=margin, soft_margin=soft, **dist.api(normalize))
    options = dict(strategy="all", margin=margin, soft=soft, margin_filter=band)
    d_ref = R.distance_matrix(x, **dist.ref(normalize))
    ref = R.brute_force_mine(x, labels, **options, D=d_ref)
    d_lib = library_distances(x, dist, normalize)
    lib = R.brute_force_mine(x, labels, **options, D=d_lib)
    assert_identical(result, lib)
    assert result.summary["params"]["margin_filter"] == band

    scale = max(1.0, float(np.abs(d_ref).max()))
    np.testing.assert_allclose(d_lib, d_ref, rtol=TOL, atol=TOL * scale)
    if ref[0].shape == lib[0].shape and np.array_equal(ref[0], lib[0]):
        event(f"{band}: exact triplets against numpy")
    else:  # the sets differ only by triplets whose gap numpy puts within TOL of a boundary
        every = R.brute_force_mine(x, labels, strategy="all", D=d_ref)
        gap = every[2] - every[1]
        kept_ref = set(map(tuple, ref[0].tolist()))
        kept_lib = set(map(tuple, lib[0].tolist()))
        moved = np.array([tuple(t) in kept_ref ^ kept_lib for t in every[0].tolist()])
        edge = np.minimum(np.abs(gap), np.abs(gap - margin))[moved]
        assert np.all(edge <= TOL * scale), (band, margin, edge.max())
        event(f"{band}: a gap rounded across a boundary; library distances decide")
        return
    np.testing.assert_array_equal(result.triplets, ref[0])
    np.testing.assert_allclose(result.d_ap, ref[1], rtol=TOL, atol=TOL * scale)
    np.testing.assert_allclose(result.d_an, ref[2], rtol=TOL, atol=TOL * scale)
    np.testing.assert_allclose(result.loss, ref[3], rtol=TOL, atol=TOL * scale)


# Rows on a line: anchor 0 (class 0) with positive 1 at d 1 has negatives 2, 3, 4 at d 1, 2, 3:
# gaps exactly 0, 1 and 2, so margin 1 puts one on each boundary and one beyond.
BOUNDARY_X, BOUNDARY_Y = line(0, 1, 1, 2, 3), np.array([0, 0, 1, 1, 1])


@pytest.mark.parametrize(("band", "negatives"), [
    ("violating", [2, 3]), ("hard", [2]), ("semi-hard", [3]), ("easy", [4]), ("any", [2, 3, 4])])
@pytest.mark.parametrize("distance", ["euclidean", "squared-euclidean", "manhattan"])
def test_margin_filter_boundaries(band: str, negatives: list, distance: str) -> None:
    """gap = 0 is hard, not semi-hard; gap = margin is violating, not easy (ties exact)."""
    margin = 3.0 if distance == "squared-euclidean" else 1.0  # d 1, 4, 9: gaps 0, 3, 8
    r = mine_triplets(BOUNDARY_X, BOUNDARY_Y, strategy="all", margin=margin, margin_filter=band,
                      distance=distance)
    first = r.triplets[(r.triplets[:, 0] == 0) & (r.triplets[:, 1] == 1)]
    assert first[:, 2].tolist() == negatives
    expected = R.brute_force_mine(BOUNDARY_X, BOUNDARY_Y, "all", distance=distance,
                                  margin=margin, margin_filter=band)
    assert_identical(r, expected)


def test_margin_filter_bands_partition_batch_all() -> None:
    """violating = hard + semi-hard, and violating + easy = every triplet, in the same order."""
    x, labels = build(30, 6, np.float32, "integers", 4, 5)
    for margin in (0.5, 2.0):
        every = mine_triplets(x, labels, strategy="all", margin=margin).triplets
        got = {band: mine_triplets(x, labels, strategy="all", margin=margin,
                                   margin_filter=band).triplets for band in R.MARGIN_FILTERS}
        assert len(every) == len(got["any"]) and np.array_equal(every, got["any"])
        for parts, whole in ((("hard", "semi-hard"), "violating"), (("violating", "easy"), "any")):
            union = np.concatenate([got[b] for b in parts])
            order = np.lexsort(union.T[::-1])
            np.testing.assert_array_equal(union[order], got[whole])
            assert all(len(got[b]) for b in parts), (margin, parts)  # no empty band here


# ---------------------------------------------------------------------------------------------
# Mini-batches
# ---------------------------------------------------------------------------------------------


def mine_batches_by_hand(x, labels, batch_size, seed, combo, loss, D):
    """Each chunk of the seeded permutation mined alone, its rows mapped back, in batch order."""
    parts, without = [], np.zeros(2, np.int64)
    for rows in R.minibatches(len(labels), batch_size, seed):
        t, d_ap, d_an, l_ = R.brute_force_mine(x[rows], labels[rows], **combo_ref(combo),
                                               **loss.ref(), D=D[np.ix_(rows, rows)])
        parts.append((rows[t], d_ap, d_an, l_))
        without += R.anchors_without(labels[rows])
    return tuple(np.concatenate([p[n] for p in parts]) for n in range(4)), tuple(without)


@MINING
@given(data=labelled_sets(), combo=st.sampled_from(COMBOS), loss=LOSSES,
       batch=st.integers(2, 64), seed=st.integers(0, 2**31))
def test_mini_batches_equal_each_chunk_mined_alone(data, combo, loss, batch, seed) -> None:
    x, labels = data
    r = mine_triplets(x, labels, threads=1, batch_size=batch, seed=seed, **combo_api(combo),
                      **loss.api())
    expected, (without_positive, without_negative) = mine_batches_by_hand(
        x, labels, batch, seed, combo, loss, library_distances(x, Dist()))
    assert_identical(r, expected)
    assert r.summary["anchors_without_positive"] == without_positive
    assert r.summary["anchors_without_negative"] == without_negative
    assert r.summary["triplets"] == len(expected[0])


def test_mini_batch_counts_anchors_alone_in_their_batch() -> None:
    """Every class has two rows, but batches of 3 split them: counted per batch, not errors."""
    x = line(*range(12))
    labels = np.repeat(np.arange(6), 2)
    r = mine_triplets(x, labels, batch_size=3, seed=7, strategy="hard", positive_strategy="hard")
    batches = R.minibatches(12, 3, 7)
    without = np.sum([R.anchors_without(labels[b]) for b in batches], axis=0)
    assert without[0] > 0, "the example must split a class"
    assert r.summary["anchors_without_positive"] == without[0]
    assert r.summary["anchors_without_negative"] == without[1]
    assert any("no positive" in w and "mini-batch" in w for w in r.summary["warnings"])
    whole = mine_triplets(x, labels, strategy="hard", positive_strategy="hard")
    assert whole.summary["anchors_without_positive"] == 0


def test_mini_batch_of_one_class_counts_anchors_without_negative() -> None:
    x = line(*range(8))
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    for seed in range(50):  # find a seed whose first batch of 4 is all class 0
        if np.all(labels[R.minibatches(8, 4, seed)[0]] == 0):
            break
    else:
        pytest.fail("no seed puts four rows of class 0 in one batch")
    r = mine_triplets(x, labels, batch_size=4, seed=seed)
    assert r.summary["anchors_without_negative"] == 4
    assert any("no negative" in w for w in r.summary["warnings"])


def test_batch_size_at_least_m_is_the_whole_set() -> None:
    x, labels = build(40, 5, np.float32, "integers", 4, 3)
    whole = mine_triplets(x, labels)
    for b in (40, 41, 1000):
        assert_identical(mine_triplets(x, labels, batch_size=b, seed=5),
                         (whole.triplets, whole.d_ap, whole.d_an, whole.loss))


# ---------------------------------------------------------------------------------------------
# Determinism: threads and block sizes never change a bit
# ---------------------------------------------------------------------------------------------


def near_duplicate_set() -> tuple[np.ndarray, np.ndarray]:
    """300 float32 rows: 12 centres far from the origin, each row a centre + 1e-6 noise, so the
    ||x||^2 + ||y||^2 - 2xy expansion cannot rank them (its error ~1e-5 >> the gaps)."""
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(12, 24)) + 3.0
    x = centres[rng.integers(0, 12, 300)] + rng.normal(scale=1e-6, size=(300, 24))
    return x.astype(np.float32), rng.integers(0, 6, 300)


def tied_crowd_set() -> tuple[np.ndarray, np.ndarray]:
    """400 float32 rows: 300 copies of one point (class 1) and 100 scattered rows of classes
    0 and 2, so each of those anchors has 300 negatives at exactly the same distance (more
    near-ties than any fixed-size candidate buffer)."""
    rng = np.random.default_rng(12)
    x = np.concatenate([np.full((300, 16), 0.5), rng.normal(size=(100, 16)) + 5.0])
    labels = np.concatenate([np.ones(300, np.int64), rng.integers(0, 2, 100) * 2])
    order = rng.permutation(400)
    return x[order].astype(np.float32), labels[order]


DETERMINISM = [
    ("semi-hard", "all", 1), ("semi-hard", "hard", 3), ("hard", "all", 3), ("easy", "easy", 1),
    ("all", "hard", 1),
]


@pytest.mark.parametrize("dataset", [near_duplicate_set, tied_crowd_set],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("distance", ["euclidean", "cosine", "dot"])
def test_threads_and_block_rows_change_nothing(dataset, distance: str) -> None:
    x, labels = dataset()
    D = library_distances(x, Dist(distance))
    for strategy, positive, k in DETERMINISM:
        if dataset is tied_crowd_set and positive == "all":
            continue  # 300 x 299 positive pairs: slow, and the ties are the point here
        opts = dict(strategy=strategy, positive_strategy=positive, per_anchor=k,
                    distance=distance)
        first = mine_triplets(x, labels, threads=1, **opts)
        for threads, block_rows in ((2, None), (1, 1), (1, 7)):
            other = mine_triplets(x, labels, threads=threads, block_rows=block_rows, **opts)
            assert_identical(other, (first.triplets, first.d_ap, first.d_an, first.loss))
            if block_rows is None:
                assert other.summary == first.summary
            else:  # see test_summary_does_not_depend_on_block_rows
                assert other.summary["loss"] == pytest.approx(first.summary["loss"], rel=1e-14)
        # and the choices are the exact ones, despite the inexact expansion
        assert_identical(first, R.brute_force_mine(x, labels, strategy, positive, k, D=D))


def test_summary_does_not_depend_on_block_rows() -> None:
    x, labels = near_duplicate_set()
    seven = mine_triplets(x, labels, threads=1, block_rows=7)
    whole = mine_triplets(x, labels, threads=1)
    assert_identical(seven, (whole.triplets, whole.d_ap, whole.d_an, whole.loss))
    assert seven.summary["loss"] == whole.summary["loss"]


# ---------------------------------------------------------------------------------------------
# Rows long enough for the pruning paths: semi-hard's grid filter (mining._windows) and the top-k
# primitive's runs (topk._prefilter: K + 1 runs of 256 candidates at least)
# ---------------------------------------------------------------------------------------------


def long_rows_set(kind: str, m: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """m float32 rows, about 25 per class. random: unit vectors (concentrated distances, every
    negative among the positives); clustered: class centres plus noise; integers: few distinct
    values (exact ties); near: near-duplicates closer than the expansion's error; crowd: half the
    rows one point of one class; same: every row the same point (no spread to grid); wide:
    random unit vectors of 700 dimensions (semi-hard ranks them by partial products); wide-near:
    near-duplicates of 600 dimensions."""
    rng = np.random.default_rng(sorted(LONG_ROWS).index(kind))
    labels = rng.integers(0, m // 25, m)
    if kind in ("random", "wide"):
        x = rng.normal(size=(m, 700 if kind == "wide" else 32))
    elif kind == "wide-near":
        x = rng.normal(size=(20, 600))[rng.integers(0, 20, m)] + rng.normal(scale=1e-5,
                                                                             size=(m, 600))
    elif kind == "clustered":
        x = rng.normal(size=(m // 25, 32))[labels] + 0.9 * rng.normal(size=(m, 32))
    elif kind == "integers":
        x = rng.integers(-1, 2, size=(m, 5)).astype(np.float64)
    elif kind == "near":
        x = rng.normal(size=(20, 16))[rng.integers(0, 20, m)] + rng.normal(scale=1e-6,
                                                                            size=(m, 16))
    elif kind == "crowd":
        x = rng.normal(size=(m, 8))
        x[: m // 2] = 0.25
        labels[: m // 2] = m
    else:
        x = np.full((m, 4), 0.5)
    if kind in ("random", "clustered", "wide"):
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


LONG_ROWS = ("random", "clustered", "integers", "near", "crowd", "same", "wide", "wide-near")
LONG_OPTIONS = [
    dict(strategy="semi-hard", positive_strategy="all"),
    dict(strategy="semi-hard", positive_strategy="all", per_anchor=3,
         semi_hard_fallback="skip"),
    dict(strategy="semi-hard", positive_strategy="easy", per_anchor=2,
         semi_hard_threshold="hardest-positive"),
    dict(strategy="hard", positive_strategy="hard"),
    dict(strategy="hard", positive_strategy="all", per_anchor=2),
    dict(strategy="easy", positive_strategy="easy"),
]


def _reference_options(options: dict) -> dict:
    ref = dict(options)
    ref["fallback"] = ref.pop("semi_hard_fallback", "easiest")
    ref["threshold"] = ref.pop("semi_hard_threshold", "positive")
    return ref


@pytest.mark.parametrize(("kind", "distance"), [
    *((kind, "euclidean") for kind in LONG_ROWS), ("random", "cosine"), ("clustered", "dot"),
    ("integers", "manhattan"), ("wide", "cosine"), ("wide-near", "dot")])
def test_long_rows_equal_brute_force(kind: str, distance: str) -> None:
    """Every pruning decision is exact: the brute-force miner on the library's own distances
    gives the same triplets, with 2 threads as with 1."""
    x, labels = long_rows_set(kind)
    m = len(labels) if kind != "same" else 300
    x, labels = x[:m], labels[:m]
    D = library_distances(x, Dist(distance))
    for options in LONG_OPTIONS:
        got = mine_triplets(x, labels, threads=2, distance=distance, **options)
        assert_identical(got, R.brute_force_mine(x, labels, **_reference_options(options),
                                                 distance=distance, D=D))
        if options["strategy"] == "semi-hard" and options["positive_strategy"] == "all":
            one = mine_triplets(x, labels, threads=1, block_rows=5, distance=distance,
                                **options)
            assert_identical(one, (got.triplets, got.d_ap, got.d_an, got.loss))


@pytest.mark.parametrize("distance", ["euclidean", "cosine", "dot"])
def test_partial_products_change_no_row(distance: str) -> None:
    """Semi-hard ranks wide random rows by partial products over slices of d (a narrower
    bound: fewer recomputations), and clustered ones by one product (little to save); the
    mined rows are the same whichever it takes."""
    from triplet_cli.mine import MineSet, mine_range, prepare_mine

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 32, 800)
    clustered = rng.normal(size=(32, 700))[labels] + 0.3 * rng.normal(size=(800, 700))
    for x, y, split in (*((*long_rows_set(kind), 4) for kind in ("wide", "wide-near")),
                        (clustered.astype(np.float32), labels, 1)):
        job = prepare_mine(x, y, strategy="semi-hard", positive_strategy="all",
                           distance=distance)
        data = MineSet.build(job.x, job.codes, job.plan())
        assert data.parts == split
        blocks = {}
        for parts in (1, 4):
            data.parts = parts
            blocks[parts] = [mine_range(data, job.plan(), a, b).columns
                             for a, b in data.ranges(block_rows=97)]
        for one, split in zip(*blocks.values(), strict=True):
            for name, column in one.items():
                np.testing.assert_array_equal(column, split[name])


@st.composite
def lattice_rows(draw):
    """(r, ta, delta, K): a ranking row on a lattice of quarter-deltas (ties, and values at
    every distance from the thresholds that matters) with its anchor's class at -inf, and
    ascending thresholds on the same lattice."""
    m = draw(st.integers(20, 3000), "m")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), "seed"))
    delta = draw(st.sampled_from([0.0, 1e-6, 1e-3, 0.25]), "delta")
    step = (delta or draw(st.sampled_from([1e-9, 0.01, 1.0]), "step")) / 4
    span = draw(st.sampled_from([4, 40, 4000, 10**6]), "span")
    centre = draw(st.sampled_from([0.0, 2.0, -3.0, 1e4]), "centre")
    r = centre + step * rng.integers(-span, span + 1, m)
    if draw(st.booleans(), "spread"):  # some values off the lattice, far out
        far = rng.random(m) < 0.1
        r[far] += rng.normal(scale=step * span * 10 + 1e-300, size=far.sum())
    npos = draw(st.integers(1, min(60, m - 1)), "positives")
    r[rng.choice(m, size=npos + 1, replace=False)] = -np.inf  # the anchor's class
    ta = np.sort(centre + step * rng.integers(-span, span + 1, npos))
    if draw(st.booleans(), "edges"):  # values an ulp or two from T - delta and T + delta
        edge = np.flatnonzero(np.isfinite(r) & (rng.random(m) < 0.2))
        at = ta[rng.integers(0, npos, edge.size)] + delta * rng.choice([-1.0, 1.0], edge.size)
        for _ in range(2):
            at = np.nextafter(at, rng.choice([-np.inf, np.inf], edge.size))
        r[edge] = at
    return r, ta, delta, draw(st.integers(1, 4), "K")


@settings(MINING, max_examples=MINING.max_examples * 25)
@given(case=lattice_rows())
def test_windows_hold_every_band(case) -> None:
    """mining._windows: each threshold's slice holds every negative of its band (T - delta,
    V + 2 delta], V the K-th ranking value surely beyond T (approx - delta > T), computed here
    over the whole row; the slices hold each negative once, at most, and nothing of the class."""
    from triplet_cli.mining import _grid_scratch, _windows

    r, ta, delta, K = case
    scratch = _grid_scratch(r.shape[0])
    win = np.empty((ta.shape[0], 2), np.int64)
    _windows(r, ta, delta, np.int64(K), scratch, np.int32(1), win)
    gathered = scratch[3][: win[:, 1].max()]
    assert len(set(gathered.tolist())) == gathered.size
    assert np.all(np.isfinite(r[gathered]))
    floor = ta[0] - delta
    for q, t in enumerate(ta):
        beyond = np.sort(r[r - delta > t])
        v = beyond[K - 1] + 2.0 * delta if beyond.size >= K else np.inf
        band = np.flatnonzero((r > floor) & (t < r + delta) & (r <= v))
        held = set(gathered[win[q, 0]:win[q, 1]].tolist())
        assert held >= set(band.tolist()), (q, sorted(set(band.tolist()) - held)[:5])


# Euclidean ties are decided on the reported distance, not on the squared distance it comes
# from: (1, E) has s = 1 + 2^-52, whose square root rounds to 1.0, a tie with (1, 0).
E = 2.0**-26  # (1, E) has s = 1 + 2^-52, and sqrt(1 + 2^-52) rounds to 1.0


def test_euclidean_ties_semi_hard_is_strictly_beyond() -> None:
    x = np.array([[0, 0], [1, 0], [1, E], [3, 0]])
    r = mine_triplets(x, np.array([0, 0, 1, 1]))
    # d(0, 1) = 1 and d(0, 2) = 1.0 (reported): row 2 is not beyond; row 3 (d 3) is
    assert r.triplets[0].tolist() == [0, 1, 3], (r.triplets[0], r.d_ap[0], r.d_an[0])


def test_euclidean_ties_hard_negative_lowest_index() -> None:
    x = np.array([[0, 0], [5, 0], [1, E], [1, 0]])
    r = mine_triplets(x, np.array([0, 0, 1, 1]), strategy="hard")
    assert r.d_an[0] == 1.0 == np.linalg.norm(x[2]) == np.linalg.norm(x[3])
    assert r.triplets[0].tolist() == [0, 1, 2]


def test_euclidean_ties_easy_positive_lowest_index() -> None:
    x = np.array([[0, 0], [1, E], [1, 0], [9, 0]])
    r = mine_triplets(x, np.array([0, 0, 0, 1]), strategy="hard", positive_strategy="easy")
    assert r.triplets[0].tolist() == [0, 1, 3]


@settings(deadline=None, max_examples=80)
@given(values=st.lists(st.sampled_from([0.0, -0.0, 1.0, 2.5, -3.0, np.inf, -np.inf, np.nan])
                       | st.floats(-10, 10), max_size=70))
def test_stable_order_is_numpy_stable_argsort(values):
    """Semi-hard's threshold order: ascending, NaN last, ties (and -0.0 = 0.0) by index."""
    from triplet_cli.topk import stable_order

    a = np.array(values, dtype=np.float64)
    np.testing.assert_array_equal(stable_order(a), np.argsort(a, kind="stable"))


def test_tf_similarity_preset_with_a_margin_is_a_hinge() -> None:
    """TripletLoss(margin=None) is TF Similarity's soft margin, TripletLoss(margin=1.0) a hinge
    (0.8 on C8 with l2, live, TF Similarity 0.17.1); --margin kept the soft margin: 1.24250."""
    x, labels = M
    run = partial(mine_triplets, x, np.array(labels), preset="tf-similarity",
                  distance="euclidean")
    hinge = run(margin=1.0).summary
    assert (hinge["loss"], hinge["params"]["soft_margin"]) == (exact(0.8), False)
    assert hinge["params"]["sources"]["soft_margin"] == \
        "implied by --margin (preset tf-similarity: a margin is a hinge)"
    assert run().summary["loss"] == rounded("0.685694")
    assert run(margin=1.0, soft_margin=True).summary["loss"] == rounded("1.24250")
