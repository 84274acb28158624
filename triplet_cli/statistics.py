"""Jitted passes behind reductions.TripletStats: one chunk's counts, and the exact median.

The summary's values stay those numpy gave (and the JSON keeps them bit for bit): the sums,
means, minima, maxima and the largest loss stay numpy's own (reductions.py calls them on
contiguous float64 chunks, in L2 cache), and chunk_counts gives what took numpy a temporary
array each (masks, compressed copies, absolute values, differences): every count, the active
losses compacted for their sum, the squared deviations for theirs, and the median's histogram;
the median is then one more pass that collects the values of the bucket holding it. As numpy
calls, the summary of 10^6 triplets made about 25 passes over temporary arrays plus two
np.partition calls (100-140 ms, more than the kernel).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit

BUCKETS = 4096  # the median's histogram: about 250 values per bucket at 10^6 values
SORT_BELOW = 4096  # candidates handed back for sorting once this few remain
FIELDS = 6  # chunk_counts' values


@jit
def chunk_counts(d_ap: np.ndarray, d_an: np.ndarray, loss: np.ndarray, margin: float,
                 tie_tolerance: float, extremes: np.ndarray, means: np.ndarray,
                 scratch: np.ndarray, buckets: np.ndarray, grid: np.ndarray, counts: np.ndarray,
                 out: np.ndarray) -> None:
    """One chunk's counts into out, as its numpy expressions computed them: active losses
    (compacted into scratch[0, :active] for their sum), NaN losses, rows with d_ap < d_an, ties
    (|d_an - d_ap| <= tie_tolerance * max(|d_an|.max(), 1)), rows on the margin, zero
    distances; and the squared deviations (d_ap - means[0])^2 and (d_an - means[1])^2 into
    scratch[1] and scratch[2] for their sums. extremes: numpy's min and max of d_ap and of d_an
    (NaN when one is NaN). Also counts d_ap and d_an into their histograms (counts[k]) on their
    grids (grid[k] = lo, scale); `buckets`: room for a chunk's bucket numbers.

    Each loop has one job, so that all but the compaction vectorise: as one loop the chunk
    took twice as long."""
    n = loss.shape[0]
    active = 0
    compacted, ap_deviations, an_deviations = scratch[0], scratch[1], scratch[2]
    for i in range(n):
        value = loss[i]
        compacted[active] = value
        active += value > 0.0
    far = max(abs(extremes[2]), abs(extremes[3]))  # |d_an|.max()
    bound = tie_tolerance * (math.nan if far != far else max(far, 1.0))
    nan_losses = 0
    right = 0
    on_margin = 0
    zeros = 0
    ties = 0
    for i in range(n):
        value, ap, an = loss[i], d_ap[i], d_an[i]
        nan_losses += value != value
        right += ap < an
        on_margin += an - ap == margin
        zeros += (ap == 0.0) + (an == 0.0)
        ties += abs(an - ap) <= bound
        ap_deviation, an_deviation = ap - means[0], an - means[1]
        ap_deviations[i] = ap_deviation * ap_deviation
        an_deviations[i] = an_deviation * an_deviation
    out[0], out[1], out[2], out[3], out[4], out[5] = (active, nan_losses, right, ties,
                                                      on_margin, zeros)
    _histogram(d_ap, grid[0], counts[0], buckets)
    _histogram(d_an, grid[1], counts[1], buckets)


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
            for v in cand:
                if _bucket(v, lo, scale) == b1:
                    keep[j] = v
                    j += 1
            cand, k1, k2, lo, hi = keep, k1 - below, k2 - below, math.nan, math.nan
            continue
        b2 = b1 + 1
        while counts[b2] == 0:
            b2 += 1
        first, second = -math.inf, math.inf  # rank k1 ends bucket b1, rank k2 opens b2
        for v in cand:
            b = _bucket(v, lo, scale)
            if b == b1:
                first = max(first, v)
            elif b == b2:
                second = min(second, v)
        return first, second, cand[:0], 0, 0
