"""Blocked mining kernels: a block of anchor rows against every candidate, never an m x m matrix.

Distances for ranking come from one matrix product per block where the distance allows it
(euclidean, squared-euclidean, cosine, dot). That expansion is fast but inexact for near points,
so every choice is made on exact distances: candidates whose ranking value lies within the
expansion's error bound `delta` of a decision boundary are recomputed directly (float64
accumulation, the same function `compute` uses) before they are compared. Other distances are
computed directly for the block (delta = 0). The K closest or farthest (hard and easy negatives,
the hardest or easiest positive) come from topk.exact_top_k.

Semi-hard over all positives of an anchor costs one pass over its negatives, not one per positive:
positives are sorted by distance and each negative is placed by binary search among them.
Ties are broken by the lowest row index everywhere, so results are deterministic.

Constants passed to a jitted callee are typed (np.bool_(False), np.int64(0)), never bare: numba
compiles a callee once more for each literal value it is called with. The first `mine` after
installing compiled six copies of insert, five of worth and two of _positives,
exact_top_k and power_sum: 14.1 s of CPU on sample_data, 11.0 s without them.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, parallel_jit, prange
from .distances import EPS_NONE, EUCLIDEAN, distance, fill_ranks
from .topk import exact_row, exact_top_k, insert, worth

# Strategy codes, and the CLI spellings (params.Strategy, params.PositiveStrategy) they stand for.
SEMI_HARD, HARD, EASY, ALL = range(4)
POS_ALL, POS_HARD, POS_EASY = range(3)
STRATEGY_CODES = {"semi-hard": SEMI_HARD, "hard": HARD, "easy": EASY, "all": ALL}
POSITIVE_CODES = {"all": POS_ALL, "hard": POS_HARD, "easy": POS_EASY}


@jit
def _count_below(t: np.ndarray, n: int, v: float) -> int:
    """Number of entries of ascending t[:n] that are < v (numpy's searchsorted, side='left')."""
    if n == 0 or v <= t[0]:
        return 0
    if v > t[n - 1]:
        return n
    lo, hi = 1, n - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if t[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit
def _positives(X, i, r, members, c_lo, c_hi, code, p, eps, placement, delta, strategy,
               out_vals, out_idx) -> int:
    """The chosen positives of anchor i (all in index order, or the hardest / easiest one)."""
    if strategy == POS_ALL:
        n = 0
        for q in range(c_lo, c_hi):
            j = members[q]
            if j != i:
                out_vals[n] = distance(X[i], X[j], code, p, eps, placement)
                out_idx[n] = j
                n += 1
        return n
    largest = strategy == POS_HARD
    r[i] = -np.inf if largest else np.inf  # the anchor is not its own positive
    return exact_top_k(X[i], X, r, members[c_lo:c_hi], np.bool_(False), np.int64(0), code, p,
                       eps, placement, delta, largest, out_vals[:1], out_idx[:1], np.int64(0))


@jit
def _semi_hard(X, i, r, code, p, eps, placement, delta, K, thresholds, order, res_vals,
               res_idx, res_count) -> None:
    """For each positive threshold T_j: the K closest negatives with exact distance > T_j.

    r holds ranking values with the anchor's class set to -inf. `order` sorts the thresholds
    ascending. Pass 1 finds, per threshold, the K-th smallest negative that is surely beyond it
    (approx - delta > T); pass 2 recomputes only negatives in the band (T - delta, that K-th
    value + 2 delta] and keeps the K closest exact ones.
    """
    m = r.shape[0]
    npos = order.shape[0]
    smallest = np.bool_(False)  # the `largest` flag of worth/insert, typed (module docstring)
    t = np.empty(npos)
    for q in range(npos):
        t[q] = thresholds[order[q]]
    # The ranking values of euclidean are squared distances: thresholds in that space too.
    ta = t * t if code == EUCLIDEAN and placement == EPS_NONE else t.copy()
    bucket_v = np.full((npos + 1, K), np.inf)
    bucket_i = np.full((npos + 1, K), -1, np.int64)
    bucket_n = np.zeros(npos + 1, np.int64)
    low = ta[0] + delta
    for k in range(m):
        a = r[k]
        if a > low:
            b = _count_below(ta, npos, a - delta)  # surely beyond t[:b]
            if worth(bucket_v[b], bucket_n[b], a, smallest):
                bucket_n[b] = insert(bucket_v[b], bucket_i[b], bucket_n[b], a, k, smallest)
    upper = np.empty(npos)
    run_v = np.full(K, np.inf)
    run_i = np.full(K, -1, np.int64)
    run_n = np.int64(0)
    for q in range(npos, 0, -1):  # suffix merge: threshold q-1 may use buckets q..npos
        for s in range(bucket_n[q]):
            run_n = insert(run_v, run_i, run_n, bucket_v[q, s], bucket_i[q, s], smallest)
        upper[q - 1] = run_v[K - 1] + 2.0 * delta if run_n == K else np.inf
    top = upper[npos - 1]
    floor = ta[0] - delta
    finite = npos
    while finite > 0 and upper[finite - 1] == np.inf:
        finite -= 1
    for k in range(m):
        a = r[k]
        if a > top or a <= floor:
            continue  # beyond every threshold's candidates, or below every threshold
        hi = _count_below(ta, npos, a + delta)
        lo = _count_below(upper, finite, a)
        if lo < hi:
            e = distance(X[i], X[k], code, p, eps, placement)
            for q in range(lo, hi):
                j = order[q]
                if e > t[q] and worth(res_vals[j], res_count[j], e, smallest):
                    res_count[j] = insert(res_vals[j], res_idx[j], res_count[j], e, k,
                                           smallest)


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


@jit
def _mine_anchor(X, i, r, members, c_lo, c_hi, code, p, eps, placement, d,
                 pos_strategy, strategy, fallback_easiest, threshold_hardest, K, slot, out_idx,
                 out_d) -> None:
    """All triplets of anchor i, given its ranking row r (which it overwrites)."""
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
    sentinel = np.inf if strategy == HARD else -np.inf
    for q in range(c_lo, c_hi):
        r[members[q]] = sentinel
    negs_v = np.empty(K)
    negs_i = np.empty(K, np.int64)
    if strategy in (HARD, EASY):
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
    order = np.argsort(thresholds, kind="mergesort")
    _semi_hard(X, i, r, code, p, eps, placement, d, K, thresholds, order, res_v, res_i, res_n)
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


@parallel_jit
def mine_block(X, labels, norms, members, class_ptr, start, G, kind, delta, code, p, eps,
               placement, pos_strategy, strategy, fallback_easiest, threshold_hardest, K,
               offsets, out_idx, out_d):
    """Mine anchors start..start+G.shape[0]: G holds their matrix-product row (or distances).

    threshold_hardest: semi-hard negatives must lie beyond the anchor's hardest positive
    whichever positive is paired (TF Similarity), not beyond the paired positive (FaceNet).
    Anchor r writes its triplets to slots offsets[r]..offsets[r+1] (unused slots keep anchor
    -1); the caller sized them as (#chosen positives) x K.
    """
    b = G.shape[0]
    m = X.shape[0]
    for chunk in prange((b + _CHUNK - 1) // _CHUNK):
        r = np.empty(m)
        for row in range(chunk * _CHUNK, min(b, (chunk + 1) * _CHUNK)):
            i = start + row
            c = labels[i]
            c_lo, c_hi = class_ptr[c], class_ptr[c + 1]
            if c_hi - c_lo < 2 or c_hi - c_lo == m:
                continue
            fill_ranks(r, G[row], kind, norms[i], norms, eps)
            _mine_anchor(X, i, r, members, c_lo, c_hi, code, p, eps, placement, delta[row],
                         pos_strategy, strategy, fallback_easiest, threshold_hardest, K,
                         offsets[row], out_idx, out_d)


@parallel_jit
def mine_all_block(X, labels, members, class_ptr, start, stop, code, p, eps, placement,
                   pos_strategy, offsets, out_idx, out_d):
    """Batch-all: every negative for each chosen positive of anchors start..stop, positives
    and negatives in index order; slots as in mine_block."""
    m = X.shape[0]
    for r in prange(stop - start):
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
