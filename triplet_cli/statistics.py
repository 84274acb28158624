"""Jitted passes behind reductions.TripletStats: one chunk's summary, and the exact median.

The summary's values stay those numpy gave (and the JSON keeps them bit for bit): minima,
maxima and the largest loss are numpy's own (reductions.py calls them on the chunk: numba's
min and max do not vectorise), and chunk_summary gives the rest from the chunk's columns in
L2 cache, without the temporary arrays numpy needed (masks, compressed copies, absolute
values, differences, squared deviations): every count, and the sums as numpy's pairwise sum
orders them. The median is then one more pass that collects the values of the bucket holding
it. As numpy calls, the summary of 10^6 triplets made about 25 passes over temporary arrays
plus two np.partition calls (100-140 ms, more than the kernel).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import inline_jit, jit
from .lanes import deviation_sum, value_sum

BUCKETS = 4096  # the median's histogram: about 250 values per bucket at 10^6 values
SORT_BELOW = 4096  # candidates handed back for sorting once this few remain
FIELDS = 12  # chunk_summary's values
PAIRWISE_BLOCK = 128  # numpy's pairwise sum: ranges this long or shorter are summed in lanes
# numpy before 2.3 reduces in buffers of this many values, each summed pairwise, one after the
# other (2.3 sums a contiguous array in one range): np.sum's bits depend on it from 8,193 values
NUMPY_BUFFER = 8192 if np.lib.NumpyVersion(np.__version__) < "2.3.0" else 1 << 62
STACK = 192  # room for its recursion (3 entries a level, 64 levels)
GROUP = 64  # values the median's last pass tests at once before looking at each


@jit
def chunk_summary(d_ap: np.ndarray, d_an: np.ndarray, loss: np.ndarray, margin: float,
                  tie_tolerance: float, loss_scale: float, extremes: np.ndarray,
                  scratch: np.ndarray, buckets: np.ndarray, grid: np.ndarray, counts: np.ndarray,
                  out: np.ndarray) -> None:
    """One chunk's summary into out, each value the bits of the numpy expression it stands
    for: the sums of losses, of active losses (> 0) and of d_ap and d_an (np.sum), the sums of
    their squared deviations from the chunk's means ((d - d.mean())**2), and counts: active
    losses, NaN losses, rows with d_ap < d_an, ties (|d_an - d_ap| <= tie_tolerance times
    loss_scale, or times |d_an|.max() when loss_scale is 0), rows on the margin, zero distances.
    extremes: numpy's min and max of d_ap and of d_an (NaN when one is NaN: numba's own min and
    max do not vectorise). Also counts d_ap and d_an into their histograms (counts[k]) on their
    grids (grid[k] = lo, scale). scratch: room for the active losses, compacted; buckets: for
    bucket numbers."""
    n = loss.shape[0]
    active = np.int64(0)  # typed: a literal 0 would compile _sum once more
    for i in range(n):  # its own loop: the others vectorise
        value = loss[i]
        scratch[active] = value
        active += value > 0.0
    far = max(abs(extremes[2]), abs(extremes[3]))  # |d_an|.max()
    bound = tie_tolerance * (loss_scale if loss_scale > 0 else far)
    nans = right = on_margin = zeros = ties = 0
    for i in range(n):
        value, ap, an = loss[i], d_ap[i], d_an[i]
        nans += value != value
        right += ap < an
        on_margin += an - ap == margin
        zeros += (ap == 0.0) + (an == 0.0)
        ties += abs(an - ap) <= bound
    plain, squares = np.bool_(False), np.bool_(True)  # typed: one specialisation
    ap_mean, an_mean = _sum(d_ap, n, 0.0, plain) / n, _sum(d_an, n, 0.0, plain) / n
    out[0], out[1] = _sum(loss, n, 0.0, plain), _sum(scratch, active, 0.0, plain)
    out[2], out[3] = ap_mean, an_mean
    out[4], out[5] = _sum(d_ap, n, ap_mean, squares), _sum(d_an, n, an_mean, squares)
    out[6], out[7], out[8], out[9], out[10] = active, nans, right, ties, on_margin
    out[11] = zeros
    _histogram(d_ap, grid[0], counts[0], buckets)
    _histogram(d_an, grid[1], counts[1], buckets)


@jit
def _sum(values: np.ndarray, n: int, mean: float, squares: bool) -> float:
    """np.sum of values[:n] (or of their squared deviations from mean), bit for bit: 0.0 plus
    numpy's pairwise sums (_pairwise) of successive ranges of NUMPY_BUFFER values, in turn."""
    total = 0.0
    for lo in range(0, n, NUMPY_BUFFER):
        total += _pairwise(values, lo, min(NUMPY_BUFFER, n - lo), mean, squares)
    return total


@jit
def _pairwise(values: np.ndarray, lo: int, n: int, mean: float, squares: bool) -> float:
    """The recursion of numpy's pairwise sum over values[lo:lo + n], run on a stack (numba's
    cache does not hold recursive functions: one loaded from it crashed)."""
    starts, sizes = np.empty(STACK, np.int64), np.empty(STACK, np.int64)
    joins = np.zeros(STACK, np.bool_)  # a range whose two halves' sums are on `sums`
    sums = np.empty(STACK)
    starts[0], sizes[0] = lo, n
    depth, done = 1, 0
    while depth:
        depth -= 1
        start, size = starts[depth], sizes[depth]
        if joins[depth]:
            joins[depth] = False
            done -= 1
            sums[done - 1] += sums[done]
        elif size > PAIRWISE_BLOCK:
            half = size // 2
            half -= half % 8
            joins[depth] = True
            starts[depth + 1], sizes[depth + 1] = start + half, size - half
            starts[depth + 2], sizes[depth + 2] = start, half
            depth += 3
        else:
            sums[done] = _block(values, start, size, mean, squares)
            done += 1
    return sums[0]


@jit
def _block(values: np.ndarray, lo: int, n: int, mean: float, squares: bool) -> float:
    """numpy's sum of at most PAIRWISE_BLOCK values: in 8 lanes, then the rest. numpy starts
    its lanes from the first eight values, the lane sums from +0.0: the two differ only in the
    sign of a zero, which _sum's 0.0 + clears. As vector code: 2x as fast as eight scalar sums
    (LLVM did not vectorise them)."""
    v = values[lo:lo + n]
    if n < 8:
        total = -0.0
        for i in range(n):
            total += _term(v[i], mean, squares)
        return total
    whole = n - n % 8
    total = deviation_sum(v[:whole], mean) if squares else value_sum(v[:whole])
    for i in range(whole, n):
        total += _term(v[i], mean, squares)
    return total


@inline_jit
def _term(value: float, mean: float, squares: bool) -> float:
    """A value, or its squared deviation from mean."""
    if squares:
        deviation = value - mean
        return deviation * deviation
    return value


@jit
def _histogram(values: np.ndarray, grid: np.ndarray, counts: np.ndarray,
               buckets: np.ndarray) -> None:
    """Count values by bucket of the grid (lo, scale), when it is usable (the buckets found
    first, in a loop that vectorises, then counted)."""
    lo, scale = grid[0], grid[1]
    if _usable(scale):
        n = values.shape[0]
        for i in range(n):
            buckets[i] = _bucket(values[i], lo, scale)
        for i in range(n):
            counts[buckets[i]] += 1


@jit
def _usable(scale: float) -> bool:
    """A grid spreads values over the buckets (not a range of 0, inf, NaN or subnormal width)."""
    return math.isfinite(scale) and scale > 0.0


@jit
def _bucket(v: float, lo: float, scale: float) -> int:
    """A non-decreasing map onto 0..BUCKETS+1: 0 below lo (or NaN), BUCKETS+1 at or above
    lo + BUCKETS / scale, the grid's buckets between."""
    x = (v - lo) * scale
    if not x >= 0.0:
        return 0
    if x >= BUCKETS:
        return BUCKETS + 1
    return int(x) + 1


@jit
def _may_hold(values: np.ndarray, start: int, stop: int, lo: float, scale: float, first: int,
              last: int) -> bool:
    """Whether any of values[start:stop] (none NaN) falls in buckets first..last of the grid
    (lo, scale): a test that vectorises (8 values at a time, where the bucket numbers' loop
    takes one), so that middle() looks closely only at the few groups of GROUP values holding
    its buckets (a median of 10^6 values: 0.88 ms to 0.30 ms)."""
    below = -math.inf if first == 0 else first - 1.0  # x of bucket b: b - 1 <= x < b
    above, top = float(last), np.int64(last > BUCKETS)  # (the top bucket: x >= BUCKETS)
    hits = np.int64(0)
    for i in range(np.uint64(start), np.uint64(stop)):  # unsigned: no negative index to wrap
        x = (values[i] - lo) * scale
        hits |= np.int64(x >= below) & (np.int64(x < above) | top)
    return hits != 0


@jit
def middle(values: np.ndarray, low: float, high: float, grid: np.ndarray, counts: np.ndarray
           ) -> tuple[float, float, np.ndarray, int, int]:
    """The values of sorted ranks (n-1)//2 and n//2 (numpy.median averages them), NaN if any
    value is NaN: (first, second, an empty array, 0, 0), or (NaN, NaN, candidates, i, j) when
    the two are ranks i and j of the few candidates, for the caller to sort (numba's sort would
    add 3 s to the first run's compile). A histogram finds the bucket holding both ranks (or the
    two neighbouring buckets, when the ranks straddle a boundary: the largest of one, the
    smallest of the other); its values are bucketed again until few enough remain. low and
    high: the values' min and max when known without NaN (the running statistics' own), else
    NaN; grid and counts: a histogram of exactly these values already made (grid (lo, scale);
    NaN scale: none)."""
    n = values.shape[0]
    k1, k2 = (n - 1) // 2, n // 2
    cand = values
    lo, hi = low, high
    given = _usable(grid[1])
    while True:
        if given:
            lo, scale = grid[0], grid[1]
        else:
            if lo != lo or hi != hi:  # not known: find them, and any NaN
                lo, hi = cand[0], cand[0]
                for v in cand:
                    if v != v:
                        return math.nan, math.nan, cand[:0], 0, 0
                    lo = min(lo, v)
                    hi = max(hi, v)
            scale = BUCKETS / (hi - lo)
            if cand.shape[0] <= SORT_BELOW or not _usable(scale):
                return math.nan, math.nan, cand, k1, k2
            counts = np.zeros(BUCKETS + 2, np.int64)
            for v in cand:
                counts[_bucket(v, lo, scale)] += 1
        given = False
        below, b1 = 0, 0
        while below + counts[b1] <= k1:
            below += counts[b1]
            b1 += 1
        if counts[b1] == cand.shape[0]:  # rounding put every value in one bucket: sort
            return math.nan, math.nan, cand, k1, k2
        if below + counts[b1] > k2:  # both ranks in bucket b1: narrow down to it
            keep = np.empty(counts[b1])
            j = 0
            for g in range(0, cand.shape[0], GROUP):
                end = min(g + GROUP, cand.shape[0])
                if _may_hold(cand, g, end, lo, scale, b1, b1):
                    for i in range(g, end):
                        if _bucket(cand[i], lo, scale) == b1:
                            keep[j] = cand[i]
                            j += 1
            cand, k1, k2, lo, hi = keep, k1 - below, k2 - below, math.nan, math.nan
            continue
        b2 = b1 + 1
        while counts[b2] == 0:
            b2 += 1
        first, second = -math.inf, math.inf  # rank k1 ends bucket b1, rank k2 opens b2
        for g in range(0, cand.shape[0], GROUP):
            end = min(g + GROUP, cand.shape[0])
            if _may_hold(cand, g, end, lo, scale, b1, b2):  # (the buckets between are empty)
                for i in range(g, end):
                    b = _bucket(cand[i], lo, scale)
                    if b == b1:
                        first = max(first, cand[i])
                    elif b == b2:
                        second = min(second, cand[i])
        return first, second, cand[:0], 0, 0
