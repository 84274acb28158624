"""Blocked mining kernels: a block of anchor rows against every candidate, never an m x m matrix.

Distances for ranking come from one matrix product per block where the distance allows it
(euclidean, squared-euclidean, cosine, dot). That expansion is fast but inexact for near points,
so every choice is made on exact distances: candidates whose ranking value lies within the
expansion's error bound `delta` of a decision boundary are recomputed directly (float64
accumulation, the same function `compute` uses) before they are compared. Other distances are
computed directly for the block (delta = 0).

Semi-hard over all positives of an anchor costs one pass over its negatives, not one per positive:
positives are sorted by distance and each negative is placed by binary search among them.
Ties are broken by the lowest row index everywhere, so results are deterministic.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, parallel_jit, prange
from .distances import COSINE, DOT, EUCLIDEAN, SQUARED_EUCLIDEAN, distance, squared_euclidean
from .losses import triplet_loss

# How a block's ranking values are stored.
RANK_SQUARED, RANK_COSINE, RANK_DOT, RANK_DIRECT = range(4)
# Strategies, in the order of params.Strategy / params.PositiveStrategy.
SEMI_HARD, HARD, EASY, ALL = range(4)
POS_ALL, POS_HARD, POS_EASY = range(3)


def rank_kind(code: int, placement: int) -> int:
    """Which matrix-product expansion ranks this distance (RANK_DIRECT: none, compute it)."""
    if placement != 0:
        return RANK_DIRECT
    return {EUCLIDEAN: RANK_SQUARED, SQUARED_EUCLIDEAN: RANK_SQUARED, COSINE: RANK_COSINE,
            DOT: RANK_DOT}.get(code, RANK_DIRECT)


@jit
def exact_rank(x: np.ndarray, y: np.ndarray, code: int, p: float, eps: float,
               placement: int) -> float:
    """The exact value that ranks candidates: squared distance for euclidean, else d itself."""
    if code == EUCLIDEAN and placement == 0:
        return squared_euclidean(x, y, 0.0)
    return distance(x, y, code, p, eps, placement)


@jit
def rank_to_distance(v: float, code: int, placement: int) -> float:
    if code == EUCLIDEAN and placement == 0:
        return math.sqrt(v)
    return v


@jit
def approx_rank(g: float, kind: int, norm_i: float, norm_k: float, eps: float) -> float:
    """Ranking value from a matrix-product entry g = x_i . x_k (or the distance itself)."""
    if kind == RANK_SQUARED:
        return norm_i * norm_i + norm_k * norm_k - 2.0 * g
    if kind == RANK_COSINE:
        return 1.0 - g / (max(norm_i, eps) * max(norm_k, eps))
    if kind == RANK_DOT:
        return -g
    return g


@jit
def _insert(vals: np.ndarray, idx: np.ndarray, count: int, v: float, k: int, largest: bool
            ) -> int:
    """Insert (v, k) into the sorted top list (smallest first, or largest first); ties keep the
    lower index, which arrives first. Returns the new count (capped at the list's length)."""
    cap = vals.shape[0]
    pos = count
    while pos > 0:
        u = vals[pos - 1]
        better = v > u if largest else v < u
        if not better:
            break
        pos -= 1
    if pos >= cap:
        return count
    end = min(count, cap - 1)
    for q in range(end, pos, -1):
        vals[q] = vals[q - 1]
        idx[q] = idx[q - 1]
    vals[pos] = v
    idx[pos] = k
    return min(count + 1, cap)


@jit
def _worth(vals: np.ndarray, count: int, v: float, largest: bool) -> bool:
    """Whether (v, later index) would enter a sorted top list: a cheap test before _insert."""
    if count < vals.shape[0]:
        return True
    return v > vals[count - 1] if largest else v < vals[count - 1]


@jit
def _bisect(t: np.ndarray, v: float) -> int:
    """Number of entries of ascending t that are < v (numpy's searchsorted, side='left')."""
    n = t.shape[0]
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
def _extreme_negatives(X, i, row, kind, norms, labels, c, code, p, eps, placement, delta, K,
                       largest, out_vals, out_idx) -> int:
    """The K closest (or farthest) negatives of anchor i by exact distance; returns how many."""
    m = X.shape[0]
    approx_v = np.empty(K)
    approx_i = np.empty(K, np.int64)
    n = 0
    for k in range(m):
        if labels[k] != c:
            a = approx_rank(row[k], kind, norms[i], norms[k], eps)
            if _worth(approx_v, n, a, largest):
                n = _insert(approx_v, approx_i, n, a, k, largest)
    if n == 0:
        return 0
    bound = approx_v[n - 1] - 2.0 * delta if largest else approx_v[n - 1] + 2.0 * delta
    count = 0
    for k in range(m):
        if labels[k] != c:
            a = approx_rank(row[k], kind, norms[i], norms[k], eps)
            if (a >= bound) if largest else (a <= bound):
                e = exact_rank(X[i], X[k], code, p, eps, placement)
                if _worth(out_vals, count, e, largest):
                    count = _insert(out_vals, out_idx, count, e, k, largest)
    return count


@jit
def _positives(X, i, row, kind, norms, members, c_lo, c_hi, code, p, eps, placement, delta,
               strategy, out_vals, out_idx) -> int:
    """The chosen positives of anchor i (all in index order, or the hardest / easiest one)."""
    if strategy == POS_ALL:
        n = 0
        for q in range(c_lo, c_hi):
            j = members[q]
            if j != i:
                out_vals[n] = exact_rank(X[i], X[j], code, p, eps, placement)
                out_idx[n] = j
                n += 1
        return n
    largest = strategy == POS_HARD
    best_a = -np.inf if largest else np.inf
    for q in range(c_lo, c_hi):
        j = members[q]
        if j != i:
            a = approx_rank(row[j], kind, norms[i], norms[j], eps)
            if (a > best_a) if largest else (a < best_a):
                best_a = a
    bound = best_a - 2.0 * delta if largest else best_a + 2.0 * delta
    vals = np.empty(1)
    idx = np.empty(1, np.int64)
    n = 0
    for q in range(c_lo, c_hi):
        j = members[q]
        if j != i:
            a = approx_rank(row[j], kind, norms[i], norms[j], eps)
            if (a >= bound) if largest else (a <= bound):
                n = _insert(vals, idx, n, exact_rank(X[i], X[j], code, p, eps, placement), j,
                            largest)
    out_vals[0] = vals[0]
    out_idx[0] = idx[0]
    return n


@jit
def _semi_hard(X, i, row, kind, norms, labels, c, code, p, eps, placement, delta, K,
               thresholds, order, res_vals, res_idx, res_count) -> None:
    """For each positive threshold T_j: the K closest negatives with exact rank > T_j.

    `order` sorts the thresholds ascending. Pass 1 finds, per threshold, the K-th smallest
    negative that is surely beyond it (approx - delta > T); pass 2 recomputes only negatives in
    the band (T - delta, that K-th value + 2 delta] and keeps the K closest exact ones.
    """
    m = X.shape[0]
    npos = order.shape[0]
    t = np.empty(npos)
    for q in range(npos):
        t[q] = thresholds[order[q]]
    bucket_v = np.full((npos + 1, K), np.inf)
    bucket_i = np.full((npos + 1, K), -1, np.int64)
    bucket_n = np.zeros(npos + 1, np.int64)
    for k in range(m):
        if labels[k] != c:
            a = approx_rank(row[k], kind, norms[i], norms[k], eps)
            r = _bisect(t, a - delta)  # surely beyond t[0..r-1]
            if r > 0 and _worth(bucket_v[r], bucket_n[r], a, False):
                bucket_n[r] = _insert(bucket_v[r], bucket_i[r], bucket_n[r], a, k, False)
    upper = np.empty(npos)
    run_v = np.full(K, np.inf)
    run_i = np.full(K, -1, np.int64)
    run_n = 0
    for q in range(npos, 0, -1):  # suffix merge: threshold q-1 may use buckets q..npos
        for s in range(bucket_n[q]):
            run_n = _insert(run_v, run_i, run_n, bucket_v[q, s], bucket_i[q, s], False)
        upper[q - 1] = run_v[K - 1] + 2.0 * delta if run_n == K else np.inf
    top = upper[npos - 1]
    for k in range(m):
        if labels[k] != c:
            a = approx_rank(row[k], kind, norms[i], norms[k], eps)
            if a > top or a + delta <= t[0]:
                continue  # beyond every threshold's candidates, or below every threshold
            hi = _bisect(t, a + delta)
            lo = _bisect(upper, a)
            if lo < hi:
                e = exact_rank(X[i], X[k], code, p, eps, placement)
                for q in range(lo, hi):
                    j = order[q]
                    if e > t[q] and _worth(res_vals[j], res_count[j], e, False):
                        res_count[j] = _insert(res_vals[j], res_idx[j], res_count[j], e, k,
                                               False)


@jit
def _emit(i, j, dj, negs_v, negs_i, count, code, placement, margin, soft, slot, out_idx,
          out_d, out_loss) -> None:
    d_ap = rank_to_distance(dj, code, placement)
    for s in range(count):
        d_an = rank_to_distance(negs_v[s], code, placement)
        out_idx[slot + s, 0] = i
        out_idx[slot + s, 1] = j
        out_idx[slot + s, 2] = negs_i[s]
        out_d[slot + s, 0] = d_ap
        out_d[slot + s, 1] = d_an
        out_loss[slot + s] = triplet_loss(d_ap, d_an, margin, soft)


@parallel_jit
def mine_block(X, labels, norms, members, class_ptr, start, G, kind, delta, code, p, eps,
               placement, margin, soft, pos_strategy, strategy, fallback_easiest,
               threshold_hardest, K, offsets, out_idx, out_d, out_loss):
    """Mine anchors start..start+G.shape[0]: G holds their matrix-product row (or distances).

    threshold_hardest: semi-hard negatives must lie beyond the anchor's hardest positive
    whichever positive is paired (TF Similarity), not beyond the paired positive (FaceNet).

    Anchor r writes its triplets to slots offsets[r]..offsets[r+1] (unused slots keep anchor
    -1); the caller sized them as (#chosen positives) x K.
    """
    b = G.shape[0]
    for r in prange(b):
        i = start + r
        c = labels[i]
        c_lo, c_hi = class_ptr[c], class_ptr[c + 1]
        npos = c_hi - c_lo - 1
        if npos < 1 or c_hi - c_lo == X.shape[0]:
            continue
        row = G[r]
        d = delta[r]
        cap = npos if pos_strategy == POS_ALL else 1
        pos_v = np.empty(cap)
        pos_i = np.empty(cap, np.int64)
        npicked = _positives(X, i, row, kind, norms, members, c_lo, c_hi, code, p, eps,
                             placement, d, pos_strategy, pos_v, pos_i)
        negs_v = np.empty(K)
        negs_i = np.empty(K, np.int64)
        slot = offsets[r]
        if strategy in (HARD, EASY):
            count = _extreme_negatives(X, i, row, kind, norms, labels, c, code, p, eps,
                                       placement, d, K, strategy == EASY, negs_v, negs_i)
            for q in range(npicked):
                _emit(i, pos_i[q], pos_v[q], negs_v, negs_i, count, code, placement, margin,
                      soft, slot + q * K, out_idx, out_d, out_loss)
            continue
        res_v = np.full((npicked, K), np.inf)
        res_i = np.full((npicked, K), -1, np.int64)
        res_n = np.zeros(npicked, np.int64)
        thresholds = pos_v[:npicked].copy()
        if threshold_hardest and pos_strategy != POS_HARD:
            hard_v = np.empty(1)
            hard_i = np.empty(1, np.int64)
            _positives(X, i, row, kind, norms, members, c_lo, c_hi, code, p, eps, placement, d,
                       POS_HARD, hard_v, hard_i)
            thresholds[:] = hard_v[0]
        order = np.argsort(thresholds, kind="mergesort")
        _semi_hard(X, i, row, kind, norms, labels, c, code, p, eps, placement, d, K,
                   thresholds, order, res_v, res_i, res_n)
        fallback_n = -1
        for q in range(npicked):
            if res_n[q] > 0:
                _emit(i, pos_i[q], pos_v[q], res_v[q], res_i[q], res_n[q], code, placement,
                      margin, soft, slot + q * K, out_idx, out_d, out_loss)
            elif fallback_easiest:
                if fallback_n < 0:
                    fallback_n = _extreme_negatives(X, i, row, kind, norms, labels, c, code, p,
                                                    eps, placement, d, K, True, negs_v, negs_i)
                _emit(i, pos_i[q], pos_v[q], negs_v, negs_i, fallback_n, code, placement,
                      margin, soft, slot + q * K, out_idx, out_d, out_loss)


@parallel_jit
def direct_block(X, start, stop, code, p, eps, placement, out):
    """Exact ranking values of anchors start..stop against every row (no matrix product)."""
    m = X.shape[0]
    for r in prange(stop - start):
        for k in range(m):
            out[r, k] = exact_rank(X[start + r], X[k], code, p, eps, placement)


@parallel_jit
def mine_all_block(X, labels, members, class_ptr, start, stop, code, p, eps, placement, margin,
                   soft, pos_strategy, offsets, out_idx, out_d, out_loss):
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
        for k in range(m):
            exact[k] = exact_rank(X[i], X[k], code, p, eps, placement)
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
            d_ap = rank_to_distance(exact[j], code, placement)
            for k in range(m):
                if labels[k] != c:
                    d_an = rank_to_distance(exact[k], code, placement)
                    out_idx[slot, 0] = i
                    out_idx[slot, 1] = j
                    out_idx[slot, 2] = k
                    out_d[slot, 0] = d_ap
                    out_d[slot, 1] = d_an
                    out_loss[slot] = triplet_loss(d_ap, d_an, margin, soft)
                    slot += 1
