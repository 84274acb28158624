"""Jitted distance kernels between two rows, chosen by an integer code (see params.Distance).

Accumulation is in float64 whatever the input dtype. Each function is one formula; eps
placement (SPEC section 2) is an integer code too, so one compiled kernel serves every choice.

Every sum over a row's terms (squares, absolute differences, products, powers) runs in one
fixed order, the lane order of lanes.py: term i in lane i % 8, lanes combined in a fixed tree.
`compute`, mining's exact recomputation and the top-k selection all call these functions, so
they agree bit for bit, whatever the CPU, thread count or block size.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import in_parallel, inline_jit, jit, overload, typeof
from .lanes import (
    LANES,
    abs_max,
    abs_maxes,
    abs_sum,
    abs_sums,
    cosine_pair_sums,
    cosine_sums,
    product_sum,
    product_sums,
    square_sum,
    square_sums,
)

# Distance codes and eps placements (DISTANCE_CODES and PLACEMENT_CODES name them).
EUCLIDEAN, SQUARED_EUCLIDEAN, COSINE, MANHATTAN, CHEBYSHEV, MINKOWSKI, DOT = range(7)
EPS_NONE, EPS_DIFFERENCE, EPS_ROOT, EPS_LEGACY_ROOT = range(4)
Metric = tuple[int, float, float, int]  # (code, p, eps, placement code): kernel_args


@inline_jit
def dot(x: np.ndarray, y: np.ndarray) -> float:
    """sum_i x_i y_i in float64, in the lane order."""
    return product_sum(x, y)


@inline_jit
def squared_euclidean(x: np.ndarray, y: np.ndarray, shift: float) -> float:
    """sum_i (x_i - y_i + shift)^2; shift is PyTorch's eps (0 otherwise)."""
    return square_sum(x, y, shift)


@inline_jit
def manhattan(x: np.ndarray, y: np.ndarray, shift: float) -> float:
    """sum_i |x_i - y_i + shift|."""
    return abs_sum(x, y, shift)


@inline_jit
def chebyshev(x: np.ndarray, y: np.ndarray, shift: float) -> float:
    """max_i |x_i - y_i + shift|; a NaN component makes the result NaN (lane by lane, then
    the lanes: as one loop with a branch per term it took 3.3-6x a read of the inputs)."""
    return abs_max(x, y, shift)


@jit
def power_sum(x: np.ndarray, y: np.ndarray, p: float, shift: float, signed: bool) -> float:
    """sum_i |x_i - y_i + shift|^p, or sum_i (x_i - y_i)^p on the signed difference (legacy
    MLX), in the lane order (written out: the power, not memory, bounds this loop)."""
    lanes = np.zeros(LANES)
    for i in range(x.shape[0]):
        v = np.float64(x[i]) - np.float64(y[i]) + shift
        lanes[i % LANES] += v**p if signed else abs(v) ** p
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + (
        (lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))


@inline_jit
def cosine(x: np.ndarray, y: np.ndarray, eps: float) -> float:
    """1 - x.y / (max(|x|, eps) max(|y|, eps)); a zero vector is at distance 1."""
    xx, yy, xy = cosine_sums(x, y)
    return cosine_of(xx, yy, xy, eps)


@inline_jit
def cosine_of(xx: float, yy: float, xy: float, eps: float) -> float:
    """Cosine distance from x.x, y.y and x.y: one formula for single and paired distances."""
    return 1.0 - xy / (max(math.sqrt(xx), eps) * max(math.sqrt(yy), eps))


@inline_jit
def sums_squares(code: int, p: float, placement: int) -> bool:
    """Whether pnorm_sum is squared_euclidean (the legacy placement ignores the code's order)."""
    if placement == EPS_LEGACY_ROOT:
        return p == 2.0
    return code not in (MINKOWSKI, CHEBYSHEV, MANHATTAN)


@inline_jit
def _shift(eps: float, placement: int) -> float:
    """What is added to each difference: PyTorch's eps under EPS_DIFFERENCE, else 0."""
    return eps if placement == EPS_DIFFERENCE else 0.0


@inline_jit
def pnorm_sum(x: np.ndarray, y: np.ndarray, code: int, p: float, eps: float,
              placement: int) -> float:
    """The sum (or, for chebyshev, the max) inside a p-norm family distance that does not sum
    squares (not sums_squares: those are square_distance)."""
    shift = _shift(eps, placement)
    if placement == EPS_LEGACY_ROOT:
        # MLX <= 0.31: power of the signed difference, then always a square root.
        return power_sum(x, y, p, 0.0, np.bool_(True))  # typed: one specialisation
    if code == CHEBYSHEV:
        return chebyshev(x, y, shift)
    if code == MANHATTAN:
        return manhattan(x, y, shift)
    return power_sum(x, y, p, shift, np.bool_(False))


@inline_jit
def pnorm_finish(s: float, code: int, p: float, eps: float, placement: int) -> float:
    """The distance from pnorm_sum's value: eps where `placement` says, then the root."""
    if code == EUCLIDEAN and placement < EPS_ROOT:  # the default first: fewer tests a row
        return math.sqrt(s)
    if placement == EPS_LEGACY_ROOT:  # squared-euclidean stays the square of euclidean
        return s + eps if code == SQUARED_EUCLIDEAN else math.sqrt(s + eps)
    if code in (CHEBYSHEV, MANHATTAN):
        return s + eps if placement == EPS_ROOT else s
    if placement == EPS_ROOT:
        s += eps
    if code == SQUARED_EUCLIDEAN:
        return s
    if code == EUCLIDEAN:
        return math.sqrt(s)
    return s ** (1.0 / p)


@inline_jit
def pnorm(x: np.ndarray, y: np.ndarray, code: int, p: float, eps: float, placement: int) -> float:
    """A p-norm family distance with eps placed as `placement` says (SPEC section 2)."""
    if sums_squares(code, p, placement):
        return square_distance(x, y, code, p, eps, placement)
    return pnorm_finish(pnorm_sum(x, y, code, p, eps, placement), code, p, eps, placement)


@inline_jit
def square_distance(x: np.ndarray, y: np.ndarray, code: int, p: float, eps: float,
                    placement: int) -> float:
    """pnorm when sums_squares(code, p, placement): the square sum, then eps and the root."""
    return pnorm_finish(squared_euclidean(x, y, _shift(eps, placement)), code, p, eps, placement)


@jit
def distance(
    x: np.ndarray, y: np.ndarray, code: int, p: float, eps: float, placement: int
) -> float:
    """d(x, y) for any distance code; `dot` is the negated similarity -(x.y). A code given as a
    SquareCode (square_family) compiles the square-terms path alone."""
    return _distance(x, y, code, p, eps, placement)


# A distance code of one of these types promises one path (typed_code): square_family, COSINE
# or DOT; an int64 code may be any.
SquareCode, CosineCode, DotCode = np.uint8, np.int8, np.int16
_SQUARE_CODE, _COSINE_CODE, _DOT_CODE = (typeof(t(0)) for t in (SquareCode, CosineCode, DotCode))


def typed_code(code: int, p: float, placement: int) -> np.integer:
    """The code as kernels take it: its type tells them which one distance's path is used, so
    that they compile no other (the README's first `mine-negatives`, cosine: 12.3 s to 5.5 s)."""
    if square_family(code, p, placement):
        return SquareCode(code)
    return {COSINE: CosineCode, DOT: DotCode}.get(code, np.int64)(code)


def _distance(x, y, code, p, eps, placement):  # type: ignore[no-untyped-def]
    """distance's body, chosen by the type of code (an overload: no untaken branch compiles)."""


@overload(_distance, inline="always")
def _distance_by_type(x, y, code, p, eps, placement):  # type: ignore[no-untyped-def]
    if code == _SQUARE_CODE:
        return lambda x, y, code, p, eps, placement: square_distance(x, y, code, p, eps,
                                                                     placement)
    if code == _COSINE_CODE:
        return lambda x, y, code, p, eps, placement: cosine(x, y, eps)
    if code == _DOT_CODE:
        return lambda x, y, code, p, eps, placement: -dot(x, y)

    def general(x, y, code, p, eps, placement):  # type: ignore[no-untyped-def]
        if code == COSINE:
            return cosine(x, y, eps)
        if code == DOT:
            return -dot(x, y)
        return pnorm(x, y, code, p, eps, placement)
    return general


@inline_jit
def distance_pair(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, code: int, p: float, eps: float, placement: int
) -> tuple[float, float]:
    """(d(x, y), d(x, z)) equal to `distance` bit for bit (the sums of both in one pass over x
    where the distance allows: cosine's took 1.39x a read of the inputs as two calls)."""
    return _distance_pair(x, y, z, code, p, eps, placement)


def _distance_pair(x, y, z, code, p, eps, placement):  # type: ignore[no-untyped-def]
    """distance_pair's body, chosen by the type of code (as _distance's)."""


@overload(_distance_pair)
def _distance_pair_by_type(x, y, z, code, p, eps, placement):  # type: ignore[no-untyped-def]
    if code == _SQUARE_CODE:
        return lambda x, y, z, code, p, eps, placement: square_pair(x, y, z, code, p, eps,
                                                                    placement)
    if code == _COSINE_CODE:
        return lambda x, y, z, code, p, eps, placement: cosine_pair(x, y, z, eps)
    if code == _DOT_CODE:
        return lambda x, y, z, code, p, eps, placement: dot_pair(x, y, z)

    def general(x, y, z, code, p, eps, placement):  # type: ignore[no-untyped-def]
        if code == COSINE:
            return cosine_pair(x, y, z, eps)
        if code == DOT:
            return dot_pair(x, y, z)
        if code in (MANHATTAN, CHEBYSHEV) and placement != EPS_LEGACY_ROOT:
            shift = _shift(eps, placement)
            s, r = abs_sums(x, y, z, shift) if code == MANHATTAN else abs_maxes(x, y, z, shift)
            return (pnorm_finish(s, code, p, eps, placement),
                    pnorm_finish(r, code, p, eps, placement))
        if not sums_squares(code, p, placement):
            return (distance(x, y, code, p, eps, placement),
                    distance(x, z, code, p, eps, placement))
        return square_pair(x, y, z, code, p, eps, placement)
    return general


@inline_jit
def dot_pair(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """(-(x.y), -(x.z)) bit for bit as distance gives them, x read once."""
    xy, xz = product_sums(x, y, z)
    return -xy, -xz


@inline_jit
def cosine_pair(x: np.ndarray, y: np.ndarray, z: np.ndarray, eps: float) -> tuple[float, float]:
    """(cosine(x, y), cosine(x, z)) bit for bit, in one loop that reads x once."""
    xx, yy, xy, zz, xz = cosine_pair_sums(x, y, z)
    return cosine_of(xx, yy, xy, eps), cosine_of(xx, zz, xz, eps)


@inline_jit
def square_pair(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, code: int, p: float, eps: float, placement: int
) -> tuple[float, float]:
    """distance_pair when square_family(code, p, placement): (square_distance(x, y),
    square_distance(x, z)) bit for bit, both sums in one pass that reads x once."""
    s, r = square_sums(x, y, z, _shift(eps, placement))
    return pnorm_finish(s, code, p, eps, placement), pnorm_finish(r, code, p, eps, placement)


def square_family(code: int, p: float, placement: int) -> bool:
    """Whether distance_pair takes its square-terms path (the distance sums squares: euclidean,
    squared-euclidean, or any p = 2 under legacy-root). Plain Python, to choose a kernel."""
    return code not in (COSINE, DOT) and sums_squares.py_func(code, p, placement)


# ---- ranking by one matrix product (mining) ---------------------------------------------------
# Per distance: how a block's ranking values come from G = X[block] @ X.T and the row norms
# (rank_kind, fill_ranks), and a bound on their error (rank_error); the other distances and
# placements are computed directly (RANK_DIRECT). Decisions are then taken on exact distances.
# How a block's ranking values are stored.
RANK_SQUARED, RANK_COSINE, RANK_DOT, RANK_DIRECT = range(4)


def rank_kind(code: int, placement: int) -> int:
    """Which matrix-product expansion ranks this distance (RANK_DIRECT: none, compute it)."""
    if placement != EPS_NONE:
        return RANK_DIRECT
    return {EUCLIDEAN: RANK_SQUARED, SQUARED_EUCLIDEAN: RANK_SQUARED, COSINE: RANK_COSINE,
            DOT: RANK_DOT}.get(code, RANK_DIRECT)


def rank_scale(kind: int, norms: np.ndarray, eps: float) -> np.ndarray:
    """The per-row factor fill_ranks takes, once per candidate set: squared norms (RANK_SQUARED)
    or reciprocal norms (RANK_COSINE: a product vectorises where a division per value is slow);
    the norms themselves otherwise (unused)."""
    if kind == RANK_SQUARED:
        return norms * norms
    if kind == RANK_COSINE:
        with np.errstate(divide="ignore"):  # a zero row with --eps 0: inf, its distances NaN
            return 1.0 / np.maximum(norms, eps)
    return norms


@jit
def fill_ranks(r: np.ndarray, g: np.ndarray, kind: int, si: float, scale: np.ndarray) -> None:
    """Ranking values of a query against every candidate from its matrix-product row g, given
    rank_scale of the query (si) and of the candidates (one branch-free loop per kind, so it
    vectorises). Within rank_error of the exact distance: a reciprocal costs two roundings
    more than a division, inside its 16 u."""
    m = r.shape[0]
    if kind == RANK_SQUARED:
        for k in range(m):
            r[k] = si + scale[k] - 2.0 * np.float64(g[k])
    elif kind == RANK_COSINE:
        for k in range(m):
            r[k] = 1.0 - np.float64(g[k]) * si * scale[k]
    elif kind == RANK_DOT:
        for k in range(m):
            r[k] = -np.float64(g[k])
    else:
        for k in range(m):
            r[k] = g[k]


def add_part(total: np.ndarray, part: np.ndarray) -> None:
    """total += part, rows on threads (split_products' sum, in its dtype)."""
    in_parallel(_add_rows, part.shape[0], total, part)


@jit
def _add_rows(lo: int, hi: int, total: np.ndarray, part: np.ndarray) -> None:
    """total[i] += part[i] for rows lo..hi."""
    for i in range(lo, hi):
        row, add = total[i], part[i]
        for k in range(add.shape[0]):
            row[k] += add[k]


# Semi-hard recomputes every negative within the bound of some positive, and on wide rows whose
# distances crowd (random, or an early checkpoint) that is many of them. There its product may be
# split into slices of about PART_TERMS dimensions (mine.MineSet.narrow_parts decides), so that
# the bound is a slice's, not d's: at d = 1,536 an eighth as wide.
PART_TERMS = 192


def product_parts(d: int, dtype: np.dtype) -> int:
    """How many slices of d a narrow-bound product takes (1: not split)."""
    return -(-d // PART_TERMS) if np.dtype(dtype) == np.float32 and d > 2 * PART_TERMS else 1


def product_terms(d: int, parts: int) -> int:
    """The terms whose rounding one entry of split_products(.., parts) carries (rank_error's
    `terms`): a slice's, then the parts added."""
    return d if parts == 1 else -(-d // parts) + parts - 1


class Rooms:
    """Buffers for blocks' matrix products, kept from one block to the next: a fresh block of
    that size is page-faulted in anew each time (X[block] @ X.T at N = 32,768: 2.3 s, into one
    reused buffer 1.8 s). A job holds one for its run (jobs.Job.rooms); it travels to Dask
    workers empty."""

    def __init__(self) -> None:
        self._kept: dict[int, np.ndarray] = {}

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return Rooms, ()

    def __call__(self, k: int, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        """Buffer k as a C-contiguous array of this shape and dtype (its contents undefined)."""
        size = shape[0] * shape[1]
        kept = self._kept.get(k)
        if kept is None or kept.size < size or kept.dtype != dtype:
            kept = self._kept[k] = np.empty(size, dtype)
        return kept[:size].reshape(shape)


def split_products(q: np.ndarray, c: np.ndarray, parts: int,
                   rooms: Rooms | None = None) -> np.ndarray:
    """q @ c.T: one product, or (parts > 1) partial products over consecutive slices of d
    added in order, whose error bound is product_terms' (a slice's, not d's). One part at a
    time: the block takes twice the product's memory, not parts + 1 times. rooms: where the
    total (buffer 0) and the part (1) go (a job's, kept for its next block; else new ones)."""
    d = q.shape[1]
    shape, dtype = (q.shape[0], c.shape[0]), np.result_type(q, c)
    rooms = rooms or Rooms()
    total = rooms(0, shape, dtype)
    part = rooms(1, shape, dtype) if parts > 1 else total
    bounds = [d * s // parts for s in range(parts + 1)]
    for s in range(parts):
        lo, hi = bounds[s], bounds[s + 1]
        np.matmul(q[:, lo:hi], c[:, lo:hi].T, out=total if s == 0 else part)
        if s:
            add_part(total, part)
    return total


def rank_error(kind: int, query_norms: np.ndarray, candidate_norms: np.ndarray, d: int,
               dtype: np.dtype, eps: float, terms: int | None = None) -> np.ndarray:
    """A bound on |ranking value - exact distance| (squared for RANK_SQUARED), per query.

    The product: |fl(x.y) - x.y| <= gamma_n sum_i |x_i y_i| <= gamma_n |x||y|, gamma_n =
    n u / (1 - n u), whatever the summation order, with n the terms one entry carries (d, or
    product_terms of a split product: `terms`), plus n times the smallest normal number for
    underflow. The exact side: float64 lane sums of d terms (gamma in float64) and a few
    roundings, with room to spare so that a sure decision in squared space stays sure after
    the square root.
    """
    u = float(np.finfo(dtype).eps) / 2
    n = terms or d
    product = n * u / (1.0 - n * u)
    underflow = n * float(np.finfo(dtype).tiny)
    exact = 4.0 * (d + 4) * 2.0**-53 / (1.0 - (d + 4) * 2.0**-53) + 16 * 2.0**-53
    ni = query_norms
    top = float(candidate_norms.max()) if candidate_norms.size else 0.0
    if kind == RANK_SQUARED:
        return 2.0 * (product * ni * top + underflow) + exact * (ni * ni + top * top)
    if kind == RANK_COSINE:
        nonzero = candidate_norms[candidate_norms > 0]
        widest = 1.0 / max(float(nonzero.min()), eps) if nonzero.size else 0.0
        query = np.divide(1.0, np.maximum(ni, eps), out=np.zeros(ni.shape), where=ni > 0)
        return product + exact + underflow * widest * query
    return (product + exact) * ni * top + underflow


# The kernels' integer codes for the CLI spellings of params.Distance and params.EpsPlacement.
DISTANCE_CODES = {"euclidean": EUCLIDEAN, "squared-euclidean": SQUARED_EUCLIDEAN,
                  "cosine": COSINE, "manhattan": MANHATTAN, "chebyshev": CHEBYSHEV,
                  "minkowski": MINKOWSKI, "dot": DOT}
PLACEMENT_CODES = {"none": EPS_NONE, "difference": EPS_DIFFERENCE, "root": EPS_ROOT,
                   "legacy-root": EPS_LEGACY_ROOT}
_EXACT_P = {1.0: MANHATTAN, 2.0: EUCLIDEAN, math.inf: CHEBYSHEV}  # minkowski orders as such


def kernel_code(distance_name: str, p: float) -> int:
    """The code a kernel runs: minkowski with p = 1, 2 or inf takes the faster exact path."""
    if distance_name == "minkowski" and p in _EXACT_P:
        return _EXACT_P[p]
    return DISTANCE_CODES[distance_name]


def kernel_args(distance_name: str, p: float, eps: float, placement: str) -> Metric:
    """(code, p, eps, placement code): the distance arguments every kernel takes. `p` is the
    distance's own order (params.DistanceParams.norm_p)."""
    return kernel_code(distance_name, p), p, eps, PLACEMENT_CODES[placement]
