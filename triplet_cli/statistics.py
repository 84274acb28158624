"""Jitted passes behind reductions.TripletStats: one chunk's summary, and the exact median.

The summary's values stay those numpy gave (and the JSON keeps them bit for bit). As numpy
calls, the summary of 10^6 triplets made about 25 passes over temporary arrays (masks, compressed
copies, absolute values, differences) plus two np.partition calls: 100-140 ms, more than the
kernel. Here a chunk is one pass for every count, the largest loss, min and max with numpy's NaN
rule and the median's histogram, and numpy's own pairwise sums (total) over the chunk's columns;
the median is then one more pass that collects the values of the bucket holding it.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit
from .lanes import product_sum, square_sum

BUCKETS = 4096  # the median's histogram: about 250 values per bucket at 10^6 values
SORT_BELOW = 4096  # candidates handed back for sorting once this few remain
FIELDS = 18  # chunk_summary's values
_ONES, _ZEROS = np.ones(128), np.zeros(128)  # a leaf's sums as lane sums (_leaf)


@jit
def chunk_summary(d_ap: np.ndarray, d_an: np.ndarray, loss: np.ndarray, correct: np.ndarray,
                  margin: float, tie_tolerance: float, grid: np.ndarray, counts: np.ndarray,
                  first: bool, out: np.ndarray) -> None:
    """One chunk's values into out, each as its numpy expression computes it: active losses,
    NaN losses, the largest non-NaN loss (-inf: none), rows with d_ap < d_an, ties (|d_an - d_ap|
    <= tie_tolerance * max(|d_an|.max(), 1)), rows on the margin, zero distances, min and max of
    d_ap and of d_an (NaN when one is NaN); then numpy's sums (pairwise): of the losses, of the
    active losses, of `correct` (each row's accuracy, or empty: 0), and the mean and the sum of
    squared deviations of d_ap and of d_an. Also counts d_ap and d_an into their histograms
    (counts[k]) on their grids (grid[k] = lo, scale), which `first` (the run's first chunk) sets
    from this chunk's range."""
    n = loss.shape[0]
    kept = np.empty(n)  # the active losses, compacted for their sum
    active = 0
    nan_losses = 0
    top = -math.inf
    right = 0
    on_margin = 0
    zeros = 0
    far, far_nan = 0.0, False  # np.abs(d_an).max(): NaN when one is
    lo_ap, hi_ap, lo_an, hi_an = d_ap[0], d_ap[0], d_an[0], d_an[0]
    nan_ap, nan_an = False, False
    for i in range(n):  # branch-free: half the comparisons go either way on real data
        value, ap, an = loss[i], d_ap[i], d_an[i]
        kept[active] = value
        active += value > 0.0
        nan_losses += value != value
        top = value if value > top else top
        right += ap < an
        a = abs(an)
        far_nan |= a != a
        far = a if a > far else far
        on_margin += an - ap == margin
        zeros += (ap == 0.0) + (an == 0.0)
        nan_ap |= ap != ap
        nan_an |= an != an
        lo_ap = ap if ap < lo_ap else lo_ap
        hi_ap = ap if ap > hi_ap else hi_ap
        lo_an = an if an < lo_an else lo_an
        hi_an = an if an > hi_an else hi_an
    bound = tie_tolerance * (math.nan if far_nan else max(far, 1.0))
    ties = 0
    for i in range(n):
        ties += abs(d_an[i] - d_ap[i]) <= bound
    extremes = (math.nan if nan_ap else lo_ap, math.nan if nan_ap else hi_ap,
                math.nan if nan_an else lo_an, math.nan if nan_an else hi_an)
    out[0], out[1], out[2], out[3] = active, nan_losses, top, right
    out[4], out[5], out[6] = ties, on_margin, zeros
    out[7], out[8], out[9], out[10] = extremes
    plain, squares = np.bool_(False), np.bool_(True)  # typed: one specialisation of total
    out[11] = total(loss, 0.0, plain)
    out[12] = total(kept[:active], 0.0, plain)
    out[13] = total(correct, 0.0, plain)
    for k, values in enumerate((d_ap, d_an)):
        mean = total(values, 0.0, plain) / n
        out[14 + 2 * k], out[15 + 2 * k] = mean, total(values, mean, squares)
    if first:
        for k in range(2):
            low, high = extremes[2 * k], extremes[2 * k + 1]
            grid[k, 0], grid[k, 1] = low, BUCKETS / (high - low)
    _histogram(d_ap, grid[0], counts[0])
    _histogram(d_an, grid[1], counts[1])


@jit
def total(values: np.ndarray, center: float, squares: bool) -> float:
    """values.sum() as numpy adds (0.0 plus its pairwise sum), or with `squares` the sum of
    (values - center)^2 as numpy adds np.square(values - center). numpy's recursion (up to 128
    terms: a leaf; above: the first half, a multiple of 8 terms, plus the rest) runs on a stack
    here: numba's cache mishandles recursive functions."""
    starts, sizes = np.empty(128, np.int64), np.empty(128, np.int64)
    sums = np.empty(64)
    starts[0], sizes[0] = 0, values.shape[0]
    top, done = 1, 0
    while top:
        top -= 1
        start, n = starts[top], sizes[top]
        if n < 0:  # both halves are summed: add them
            done -= 1
            sums[done - 1] += sums[done]
        elif n <= 128:
            sums[done] = _leaf(values, start, n, center, squares)
            done += 1
        else:  # the halves go on the stack above their sum, the first half on top
            half = n // 2 - n // 2 % 8
            starts[top], sizes[top] = start, -1
            starts[top + 1], sizes[top + 1] = start + half, n - half
            starts[top + 2], sizes[top + 2] = start, half
            top += 3
    return 0.0 + sums[0]


@jit
def _leaf(values: np.ndarray, start: int, n: int, center: float, squares: bool) -> float:
    """numpy's sum of at most 128 terms: below 8 in order, else eight running sums (term i in
    sum i % 8) combined as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the rest in
    order: over the multiples of 8, the lane order of lanes.py. numpy starts the running sums at
    the first eight terms, the lanes at 0.0 plus them: that can only turn a -0.0 into 0.0, and
    total()'s 0.0 + makes every zero sum 0.0 anyway."""
    whole = 0 if n < 8 else n - n % 8
    head = values[start:start + whole]
    # (x - 0.0 + (-center))^2 = (x - center)^2, and x * 1.0 = x
    res = (square_sum(head, _ZEROS[:whole], -center) if squares
           else product_sum(head, _ONES[:whole]))
    for i in range(start + whole, start + n):
        if squares:
            deviation = values[i] - center
            res += deviation * deviation
        else:
            res += values[i]
    return res


@jit
def _histogram(values: np.ndarray, grid: np.ndarray, counts: np.ndarray) -> None:
    """Count values by bucket of the grid (lo, scale), when it is usable."""
    lo, scale = grid[0], grid[1]
    if _usable(scale):
        for v in values:
            counts[_bucket(v, lo, scale)] += 1


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
