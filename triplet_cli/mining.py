"""Blocked mining kernels: a block of anchor rows against every candidate, never an m x m matrix.

Distances for ranking come from one matrix product per block where the distance allows it
(euclidean, squared-euclidean, cosine, dot). That expansion is fast but inexact for near points,
so every choice is made on exact distances: candidates whose ranking value lies within the
expansion's error bound `delta` of a decision boundary are recomputed directly (float64
accumulation, the same function `compute` uses) before they are compared. Other distances are
computed directly for the block (delta = 0). The K closest or farthest (hard and easy negatives,
the hardest or easiest positive) come from topk.exact_top_k; semi-hard's K closest beyond each
threshold are kept by its top list, topk.insert.

Semi-hard over all positives of an anchor costs a few branch-free passes over its negatives, not
one per positive, whatever the data: positives closer than the nearest negative share the K
nearest negatives (clustered data: all of them); for the others a histogram of the ranking row
over a grid bounds each positive's candidates, and only the negatives in those windows are read
again. Ties are broken by the lowest row index everywhere, so results are deterministic.

Constants passed to a jitted callee are typed (np.bool_(False), np.int64(0)), never bare: numba
compiles a callee once more for each literal value it is called with.
"""

from __future__ import annotations

import numpy as np

from ._jit import borrowed, in_parallel, inline_jit, jit, overload, types
from .distances import EPS_NONE, EUCLIDEAN, Metric, fill_ranks
from .topk import exact_at, exact_row, exact_top_k, insert, stable_order

# Strategy codes, and the CLI spellings (params.Strategy, params.PositiveStrategy) they stand for.
SEMI_HARD, HARD, EASY, ALL = range(4)
POS_ALL, POS_HARD, POS_EASY = range(3)
STRATEGY_CODES = {"semi-hard": SEMI_HARD, "hard": HARD, "easy": EASY, "all": ALL}
POSITIVE_CODES = {"all": POS_ALL, "hard": POS_HARD, "easy": POS_EASY}


@inline_jit
def _positives(X, i, r, members, c_lo, c_hi, code, p, eps, placement, delta, strategy,
               out_vals, out_idx) -> int:
    """The chosen positives of anchor i (all in index order, or the hardest / easiest one)."""
    if strategy == POS_ALL:
        n = 0
        for q in range(c_lo, c_hi):
            if members[q] != i:
                out_idx[n] = members[q]
                n += 1
        exact_at(X[i], X, out_idx[:n], code, p, eps, placement, out_vals)
        return n
    largest = strategy == POS_HARD
    r[i] = -np.inf if largest else np.inf  # the anchor is not its own positive
    return exact_top_k(X[i], X, r, members[c_lo:c_hi], np.bool_(False), np.int64(0), code, p,
                       eps, placement, delta, largest, out_vals[:1], out_idx[:1], np.int64(0))


_MAX_CELLS = 1 << 16  # the grid's counts and marks stay within the L2 cache


@jit
def _cell(a: float, lo: float, scale: float, top: float) -> int:
    """The grid cell of ranking value a: 0 below lo, 1..G across [lo, lo + G / scale), G + 1
    (= top) above. Monotone in a (each floating-point step is), which is all the bounds use;
    the clamps are comparisons, so a NaN is cell 0, never an index int(NaN)."""
    x = (a - lo) * scale + 1.0
    x = x if x > 0.0 else 0.0
    return int(x if x < top else top)


@jit
def _fill_cells(r: np.ndarray, lo: float, scale: float, top: float, cells: np.ndarray) -> None:
    """cells[k] = _cell(r[k]) for the whole row: one branch-free loop, so it vectorises. The
    clamps are comparisons, so a NaN (never a valid distance) lands in cell 0, below every
    window, not at an index int(NaN)."""
    for k in range(r.shape[0]):
        a = (r[k] - lo) * scale + 1.0
        a = a if a > 0.0 else 0.0
        cells[k] = np.int32(a if a < top else top)  # stored unsigned: indexes need no sign test


@jit
def _grid_scratch(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                   np.ndarray]:
    """A task's reusable arrays for _windows over rows of m values: the cell of each value,
    counts, marks and gather cursors per cell (about m / 2 cells, plus the two outer ones and
    an end), and the negatives gathered by cell."""
    grid = min(max(m // 2, 16), _MAX_CELLS)
    return (np.empty(m, np.uint32), np.empty(grid + 3, np.int64), np.zeros(grid + 3, np.int32),
            np.empty(m, np.int64), np.empty(grid + 3, np.int64))


def _scratch_for(semi, m):  # type: ignore[no-untyped-def]
    """_grid_scratch(m) for semi-hard, None otherwise (chosen by semi's type, not compiled)."""


@overload(_scratch_for, inline="always")
def _scratch_for_type(semi, m):  # type: ignore[no-untyped-def]
    if isinstance(semi, types.NoneType):
        return lambda semi, m: None
    return lambda semi, m: _grid_scratch(m)


@jit
def _windows(r, ta, delta, K, scratch, stamp, win) -> None:
    """Each threshold's candidate negatives, gathered: scratch[3][win[q, 0]:win[q, 1]].

    r holds ranking values (the anchor's class at -inf), ta the thresholds ascending in ranking
    space. A histogram of the row over a uniform grid bounds each threshold's candidates: the
    first cells wholly beyond ta_q + delta that hold K negatives give a value U_q at least the
    K-th ranking value surely beyond ta_q, so threshold q needs only (ta_q - delta, U_q +
    2 delta]. The cells meeting that window (widened by a quarter cell for rounding) make its
    slice; the negatives of every such cell are gathered by cell (in index order within one).
    Cell indices only need to be monotone in the value for these bounds to hold. A degenerate
    row (no spread to grid) is one cell.
    """
    cells, counts, marks, gathered, cursor = scratch
    m = r.shape[0]
    npos = ta.shape[0]
    grid = counts.shape[0] - 3
    last = np.int64(grid + 1)
    lo = ta[0] - delta
    hi = -np.inf  # the largest ranking value of a sample of the row (the rest: the top cell)
    for k in range(0, m, 16):
        hi = max(hi, r[k])
    if not hi - lo > 1e-12 * max(abs(lo), abs(hi)) * grid:  # too little spread to grid
        grid, last, hi = 1, np.int64(2), lo + max(1.0, abs(lo))
    top = np.float64(last)
    scale = grid / (hi - lo)
    width = (hi - lo) / grid
    slack = 0.25 * width  # far above the rounding of the window's ends, far below a cell
    _fill_cells(r, lo, scale, top, cells)
    counts[:] = 0
    for k in range(m):
        counts[cells[k]] += 1
    total = np.int64(0)  # counts become cum[c]: the values in cells below c
    for c in range(last + 2):
        n = counts[c]
        counts[c] = total
        total += n
    cum = counts
    done = np.int64(0)  # the highest cell marked so far (cell 0 lies below every window)
    at = np.int64(0)  # where the next marked cell's negatives go in `gathered`
    for q in range(npos):
        # Cells wholly beyond ta_q + delta + a quarter cell (rounding): surely beyond ta_q.
        start = min(_cell(ta[q] + delta + slack, lo, scale, top) + 1, last + 1)
        upper = last
        if cum[last] - cum[start] >= K:  # the K-th lies below the top cell
            a, e = start, last - 1  # the first cell e with K values in start..e
            while a < e:
                mid = (a + e) >> 1
                if cum[mid + 1] - cum[start] >= K:
                    e = mid
                else:
                    a = mid + 1
            z = lo + (e + 0.25) * width  # every value of cell e is below z
            while _cell(z, lo, scale, top) <= e:
                z += slack
            upper = min(_cell(z + 2.0 * delta, lo, scale, top), last)
        below = max(_cell(ta[q] - delta - slack, lo, scale, top), 1)
        for c in range(max(below, done + 1), upper + 1):
            marks[c] = stamp
            cursor[c] = at
            at += cum[c + 1] - cum[c]
        done = max(done, upper)
        if below <= upper:
            win[q, 0] = cursor[below]
            win[q, 1] = cursor[upper] + cum[upper + 1] - cum[upper]
        else:
            win[q, 0] = win[q, 1] = 0
    for k in range(m):  # gather by cell, in index order within one
        c = cells[k]
        if marks[c] == stamp:
            gathered[cursor[c]] = k
            cursor[c] += 1


@jit
def _semi_hard(X, i, r, code, p, eps, placement, delta, K, thresholds, order, res_vals,
               res_idx, res_count, near_v, near_i, scratch, stamp) -> None:
    """For each positive threshold T_j: the K closest negatives with exact distance > T_j.

    r holds ranking values with the anchor's class set to -inf; near_v/near_i the K nearest
    negatives (exact, ties by index). `order` sorts the thresholds ascending. A threshold
    below the nearest negative has every negative beyond it: its answer is near (on clustered
    data, every threshold). For the others, among each one's window of negatives (_windows):
    the K-th smallest ranking value surely beyond T (approx - delta > T) bounds the band
    (T - delta, that K-th + 2 delta]; only negatives in some band are recomputed exactly, once
    each, and the K closest beyond T are kept, ties by the lowest index.
    """
    gathered = scratch[3]
    n_all = order.shape[0]
    below = 0
    while below < n_all and near_v.shape[0] > 0 and thresholds[order[below]] < near_v[0]:
        j = order[below]
        res_count[j] = near_v.shape[0]
        for s in range(res_count[j]):  # (a slice assignment compiles numba's shape check: 1.8 s)
            res_vals[j, s] = near_v[s]
            res_idx[j, s] = near_i[s]
        below += 1
    if below == n_all:
        return
    squared = code == EUCLIDEAN and placement == EPS_NONE  # ranking values: squared distances
    floor = thresholds[order[0]]  # below the smallest threshold's band: no candidate
    floor = (floor * floor if squared else floor) - delta
    end = n_all
    while end > below and thresholds[order[end - 1]] != thresholds[order[end - 1]]:
        end -= 1  # a NaN threshold (sorted last) has no negative beyond it
    order = order[below:end]
    npos = order.shape[0]
    if npos == 0:
        return
    t = np.empty(npos)
    for q in range(npos):
        t[q] = thresholds[order[q]]
    ta = t * t if squared else t.copy()  # the thresholds in ranking space
    win = np.empty((npos, 2), np.int64)
    _windows(r, ta, delta, K, scratch, stamp, win)
    size = 0
    for q in range(npos):  # (win[:, 1].max() compiles numba's generic max: 0.4 s)
        size = max(size, win[q, 1])
    vals = np.empty(size)  # the gathered negatives' ranking values, contiguous
    for s in range(size):
        vals[s] = r[gathered[s]]
    band = np.empty(npos)
    near_v = np.empty(K)
    near_i = np.empty(K, np.int64)
    for q in range(npos):
        n = np.int64(0)
        for s in range(win[q, 0], win[q, 1]):
            a = vals[s]
            if a - delta > ta[q] and (n < K or a < near_v[K - 1]):
                n = insert(near_v, near_i, n, a, s, np.bool_(False))
        band[q] = near_v[K - 1] + 2.0 * delta if n == K else np.inf
    # Every negative some band holds is recomputed once, in one loop (a cache miss on a large X).
    at = np.zeros(size, np.int64)  # 1 where some band holds a negative, then its place in todo
    for q in range(npos):
        for s in range(win[q, 0], win[q, 1]):
            a = vals[s]
            at[s] |= (a > floor) & (ta[q] < a + delta) & (a <= band[q])
    todo = np.empty(size, np.int64)  # the rows to recompute
    n = 0
    for s in range(size):
        todo[n] = gathered[s]
        need = at[s]
        at[s] = n
        n += need
    exact = np.empty(n)
    exact_at(X[i], X, todo[:n], code, p, eps, placement, exact)
    for q in range(npos):
        j = order[q]
        for s in range(win[q, 0], win[q, 1]):
            a = vals[s]
            if (a > floor and ta[q] < a + delta and a <= band[q]) and exact[at[s]] > t[q]:
                res_count[j] = insert(res_vals[j], res_idx[j], res_count[j], exact[at[s]],
                                      gathered[s], np.bool_(False))


@jit
def _put(slot, i, j, k, d_ap, d_an, out_idx, out_d) -> None:
    """Triplet (i, j, k) with its two distances into row `slot` of the outputs."""
    out_idx[slot, 0] = i
    out_idx[slot, 1] = j
    out_idx[slot, 2] = k
    out_d[slot, 0] = d_ap
    out_d[slot, 1] = d_an


@jit
def _emit(i, j, d_ap, negs_v, negs_i, count, slot, out_idx, out_d) -> None:
    """Anchor i, positive j at d_ap, and each of its `count` negatives, from row `slot` on."""
    for s in range(count):
        _put(slot + s, i, j, negs_i[s], d_ap, negs_v[s], out_idx, out_d)


# _mine_anchor and _positives are inlined into their callers: compiled apart, each one's code was
# optimised again inside its caller's (a first `mine` on sample_data: 12.2 -> 11.1 s).
@inline_jit
def _mine_anchor(X, i, r, members, c_lo, c_hi, code, p, eps, placement, d,
                 pos_strategy, strategy, fallback_easiest, threshold_hardest, K, slot, out_idx,
                 out_d, semi, scratch, stamp) -> None:
    """All triplets of anchor i, given its ranking row r (which it overwrites). semi: None for
    hard and easy, whose kernels then never type (nor compile) semi-hard's code: numba prunes a
    branch on `semi is None` when the argument is None."""
    npos = c_hi - c_lo - 1
    cap = npos if pos_strategy == POS_ALL else 1
    pos_v = np.empty(cap)
    pos_i = np.empty(cap, np.int64)
    npicked = _positives(X, i, r, members, c_lo, c_hi, code, p, eps, placement, d,
                         pos_strategy, pos_v, pos_i)
    hardest = np.empty(1)
    if strategy == SEMI_HARD and threshold_hardest and pos_strategy != POS_HARD:
        hard_i = np.empty(1, np.int64)
        _positives(X, i, r, members, c_lo, c_hi, code, p, eps, placement, d, np.int64(POS_HARD),
                   hardest, hard_i)
    # The anchor's own class never qualifies as a negative: a sentinel in its ranking row.
    for q in range(c_lo, c_hi):
        r[members[q]] = np.inf
    negs_v = np.empty(K)
    negs_i = np.empty(K, np.int64)
    near_v = np.empty(K)  # semi-hard: the K nearest negatives (thresholds below them take them)
    near_i = np.empty(K, np.int64)
    near_n = np.int64(0)
    if strategy == SEMI_HARD:
        near_n = exact_top_k(X[i], X, r, members[:0], np.bool_(True), np.int64(0), code, p,
                             eps, placement, d, np.bool_(False), near_v, near_i, np.int64(0))
    if strategy != HARD:
        for q in range(c_lo, c_hi):
            r[members[q]] = -np.inf
    if semi is None:  # HARD or EASY
        count = exact_top_k(X[i], X, r, members[:0], np.bool_(True), np.int64(0), code, p, eps,
                            placement, d, strategy == EASY, negs_v, negs_i, np.int64(0))
        for q in range(npicked):
            _emit(i, pos_i[q], pos_v[q], negs_v, negs_i, count, slot + q * K, out_idx, out_d)
        return
    thresholds = pos_v[:npicked].copy()
    if threshold_hardest and pos_strategy != POS_HARD:
        thresholds[:] = hardest[0]
    res_v = np.full((npicked, K), np.inf)
    res_i = np.full((npicked, K), -1, np.int64)
    res_n = np.zeros(npicked, np.int64)
    order = stable_order(thresholds)
    _semi_hard(X, i, r, code, p, eps, placement, d, K, thresholds, order, res_v, res_i, res_n,
               near_v[:near_n], near_i[:near_n], scratch, stamp)
    fallback_n = -1
    for q in range(npicked):
        if res_n[q] > 0:
            _emit(i, pos_i[q], pos_v[q], res_v[q], res_i[q], res_n[q], slot + q * K, out_idx,
                  out_d)
        elif fallback_easiest:
            if fallback_n < 0:
                fallback_n = exact_top_k(X[i], X, r, members[:0], np.bool_(True), np.int64(0),
                                         code, p, eps, placement, d, np.bool_(True), negs_v,
                                         negs_i, np.int64(0))
            _emit(i, pos_i[q], pos_v[q], negs_v, negs_i, fallback_n, slot + q * K, out_idx,
                  out_d)


_CHUNK = 8  # anchors per parallel task: each task reuses one ranking row of m floats
Classes = tuple[np.ndarray, np.ndarray, np.ndarray]  # (labels, members, class_ptr)
Ranks = tuple[np.ndarray, int, np.ndarray, np.ndarray]  # (G, kind, delta, scale)
Slots = tuple[np.ndarray, np.ndarray, np.ndarray]  # (offsets, out_idx, out_d)


def mine_block(X: np.ndarray, classes: Classes, start: int, ranks: Ranks, metric: Metric,
               choice: tuple[int, int, bool, bool, int], out: Slots) -> None:
    """Mine anchors start..start+G.shape[0] of X.

    classes = (labels, members, class_ptr): each row's class code, the rows by class, and where
    each class starts among them. ranks = (G, kind, delta, scale): the anchors' matrix-product
    rows (or distances), their ranking kind, error bound and per-row scale (distances.py).
    choice = (pos_strategy, strategy, fallback_easiest, threshold_hardest, K), where
    threshold_hardest: semi-hard negatives must lie beyond the anchor's hardest positive
    whichever positive is paired (TF Similarity), not beyond the paired positive (FaceNet).
    out = (offsets, out_idx, out_d): anchor r writes its triplets to slots
    offsets[r]..offsets[r+1] (unused slots keep anchor -1); the caller sized them as
    (#chosen positives) x K.
    """
    labels, members, class_ptr = classes
    G, kind, delta, scale = ranks
    semi = np.bool_(True) if choice[1] == SEMI_HARD else None  # the kernel's type: see _mine_anchor
    in_parallel(_mine_tasks, (G.shape[0] + _CHUNK - 1) // _CHUNK, X, labels, scale, members,
                class_ptr, start, G, kind, delta, *metric, *choice, semi, *out)


@jit
def _mine_tasks(lo, hi, X, labels, scale, members, class_ptr, start, G, kind, delta, code,
                p, eps, placement, pos_strategy, strategy, fallback_easiest, threshold_hardest, K,
                semi, offsets, out_idx, out_d) -> None:
    """mine_block's tasks lo..hi (of _CHUNK anchors each); semi: None unless semi-hard."""
    b = G.shape[0]
    m = X.shape[0]
    X, G = borrowed(X), borrowed(G)
    for chunk in range(lo, hi):
        r = np.empty(m)
        scratch = _scratch_for(semi, m)
        for row in range(chunk * _CHUNK, min(b, (chunk + 1) * _CHUNK)):
            i = start + row
            c = labels[i]
            c_lo, c_hi = class_ptr[c], class_ptr[c + 1]
            if c_hi - c_lo < 2 or c_hi - c_lo == m:
                continue
            fill_ranks(r, G[row], kind, scale[i], scale)
            _mine_anchor(X, i, r, members, c_lo, c_hi, code, p, eps, placement, delta[row],
                         pos_strategy, strategy, fallback_easiest, threshold_hardest, K,
                         offsets[row], out_idx, out_d, semi, scratch,
                         np.int32(row % _CHUNK + 1))


def mine_all_block(X: np.ndarray, classes: Classes, start: int, stop: int, metric: Metric,
                   pos_strategy: int, out: Slots) -> None:
    """Batch-all: every negative for each chosen positive of anchors start..stop, positives
    and negatives in index order; classes and slots as in mine_block."""
    in_parallel(_mine_all, stop - start, X, *classes, start, *metric, pos_strategy, *out)


@jit
def _mine_all(lo, hi, X, labels, members, class_ptr, start, code, p, eps, placement,
              pos_strategy, offsets, out_idx, out_d) -> None:
    """mine_all_block for anchors start + lo..start + hi."""
    m = X.shape[0]
    X = borrowed(X)
    for r in range(lo, hi):
        i = start + r
        c = labels[i]
        c_lo, c_hi = class_ptr[c], class_ptr[c + 1]
        if c_hi - c_lo < 2 or c_hi - c_lo == m:
            continue
        exact = np.empty(m)
        exact_row(X[i], X, code, p, eps, placement, exact)
        chosen = -1
        for q in range(c_lo, c_hi):
            j = members[q]
            if j != i and (chosen < 0 or (pos_strategy == POS_HARD and exact[j] > exact[chosen])
                           or (pos_strategy == POS_EASY and exact[j] < exact[chosen])):
                chosen = j
        slot = offsets[r]
        for q in range(c_lo, c_hi):
            j = members[q]
            if j == i or (pos_strategy != POS_ALL and j != chosen):
                continue
            for k in range(m):
                if labels[k] != c:
                    _put(slot, i, j, k, exact[j], exact[k], out_idx, out_d)
                    slot += 1
