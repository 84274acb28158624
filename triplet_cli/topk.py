"""Exact top-k: a query's K best candidates by exact distance, ties by the lowest index.

Ranking values come from one matrix product per block (distances.fill_ranks) and are inexact for
near points; every candidate whose ranking value lies within twice the product's error bound
`delta` of the running K-th is recomputed exactly (float64, the function `compute` uses) before
it is kept. With delta = 0 the ranking values are exact distances. mine (hard and easy
negatives, the hardest or easiest positive), evaluate (nearest neighbours) and mine-negatives (a
query's top candidates) all select through exact_top_k, or for a large K among few candidates
(evaluate's k = all) through _sorted_top_k, which sorts them instead: the only places that do.

Scanning a whole row, the best value of each run of 256 candidates comes first from an integer
reduction that vectorises; only the runs whose best lies within 2 delta of the K-th best of them
are scanned one by one (batch-hard reads its row about once, not twice at scalar speed).

A top list is sorted best first (smallest distance, or largest with `largest`); candidates are
offered in index order and a tie keeps the one already there, so the lowest index wins. A list
can be carried from one candidate chunk to the next (its entries are exact), which lets a
corpus larger than one matrix-product block be searched chunk by chunk.
"""

from __future__ import annotations

import numpy as np

from ._jit import borrowed, in_parallel, inline_jit, jit, one_of
from .distances import (
    EPS_NONE,
    EUCLIDEAN,
    RANK_DIRECT,
    Metric,
    Rooms,
    distance,
    fill_ranks,
    rank_error,
    rank_kind,
    rank_scale,
)
from .lanes import AHEAD, prefetch

BLOCK_BYTES = 256 << 20  # a block's matrix-product rows (float64 ranking rows are as large)


@jit
def insert(vals: np.ndarray, idx: np.ndarray, count: int, v: float, k: int, largest: bool
           ) -> int:
    """Insert (v, k) into the top list vals/idx[:count], sorted best first and ties by the lower
    index, whatever order candidates come in. Returns the new count (capped at the list's
    length)."""
    cap = vals.shape[0]
    pos = count
    while pos > 0:
        u = vals[pos - 1]
        better = (v > u if largest else v < u) or (v == u and k < idx[pos - 1])
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
def stable_order(values: np.ndarray) -> np.ndarray:
    """np.argsort(values, kind="stable"): ascending, NaN last, ties in index order. A bottom-up
    merge sort of the positions; numba's own argsort compiled for 1.3-1.7 s of a first `mine`."""
    n = values.shape[0]
    order = np.empty(n, np.int64)
    for k in range(n):  # (np.arange compiles for 0.3 s)
        order[k] = k
    spare = np.empty(n, np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            a, b = lo, mid
            for k in range(lo, hi):
                if b < hi and (a == mid or _before(values[order[b]], values[order[a]])):
                    spare[k] = order[b]
                    b += 1
                else:
                    spare[k] = order[a]
                    a += 1
        order, spare = spare, order
        width *= 2
    return order


@jit
def _before(x: float, y: float) -> bool:
    """x sorts strictly before y: smaller, or a number before NaN."""
    return x < y or (y != y and x == x)


@jit
def worth(vals: np.ndarray, count: int, v: float, largest: bool) -> bool:
    """Whether (v, a later index) would enter the sorted top list: a cheap test before insert."""
    if count < vals.shape[0]:
        return True
    return v > vals[count - 1] if largest else v < vals[count - 1]


@jit
def _within(v: float, bound: float, largest: bool) -> bool:
    """Whether v is on the kept side of bound: >= it when looking for the largest, else <=."""
    return v >= bound if largest else v <= bound


@jit
def _tighter(a: float, b: float, largest: bool) -> float:
    return max(a, b) if largest else min(a, b)


_BAND_BUFFER = 256
_RUN = 256  # most candidates per run of the prefilter (each run's best value bounds the list)
_LOW = np.int64(0x7FFFFFFFFFFFFFFF)


@jit
def _best_key(bits: np.ndarray, largest: bool) -> int:
    """The best of a run of float64 values given as their int64 bits, as an order-preserving
    integer key (bits ^ ((bits >> 63) & _LOW): the sign bit flips the order of the rest). An
    integer min or max reduction vectorises; a float one does not without fast-math."""
    if largest:
        best = -_LOW - 1
        for k in range(bits.shape[0]):
            v = bits[k]
            best = max(best, v ^ ((v >> 63) & _LOW))
    else:
        best = _LOW
        for k in range(bits.shape[0]):
            v = bits[k]
            best = min(best, v ^ ((v >> 63) & _LOW))
    return best


@jit
def _run_length(m: int, K: int) -> int:
    """Candidates per prefilter run: up to _RUN, shorter for a large K so that there are about 8K
    runs (the K best runs then bound the list tightly); 0 when too few runs could be skipped."""
    run = _RUN
    while run > 16 and run * 8 * K > m:
        run //= 2
    return run if m > run * (K + 1) else 0


@jit
def _select(a: np.ndarray, k: int) -> float:
    """The value of rank k (from 0, ascending) of a (no NaN), which it reorders: quickselect.
    (np.partition's numba version compiled for 4.7 s of a first `mine`'s 25 s.)"""
    lo, hi = 0, a.shape[0] - 1
    while lo < hi:
        mid = (lo + hi) >> 1  # the median of three as pivot: sorted or reversed runs stay fast
        pivot = max(min(a[lo], a[mid]), min(max(a[lo], a[mid]), a[hi]))
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@jit
def _prefilter(r: np.ndarray, K: int, delta: float, largest: bool, bound: float, run: int
               ) -> np.ndarray:
    """The rows exact_top_k's scan of every row of r could keep or recompute, in index order.

    The K best of the runs' best values bound the K-th best value T of the row (they are K
    distinct rows); a kept or recomputed row lies within 2 delta of the row's K-th (or within
    `bound`, a carried list's), so only the runs whose best lies within min(T + 2 delta, bound)
    (max(T - 2 delta, bound) for the largest) are read again."""
    m = r.shape[0]
    runs = (m + run - 1) // run
    bits = r.view(np.int64)
    best = np.empty(runs, np.int64)
    for j in range(runs):
        best[j] = _best_key(bits[j * run:(j + 1) * run], largest)
    for j in range(runs):  # back to values (the key is its own inverse)
        best[j] = best[j] ^ ((best[j] >> 63) & _LOW)
    values = best.view(np.float64)
    inside = 0
    for j in range(runs):
        inside += _within(values[j], bound, largest)
    if inside >= K:  # else the K-th best run lies beyond a carried list's bound: no tighter
        t = _select(values.copy(), runs - K if largest else K - 1)
        bound = _tighter(bound, t - 2.0 * delta if largest else t + 2.0 * delta, largest)
    n = 0
    for j in range(runs):
        if _within(values[j], bound, largest):
            for k in range(j * run, min(m, (j + 1) * run)):
                n += _within(r[k], bound, largest)
    ids = np.empty(n, np.int64)
    n = 0
    for j in range(runs):
        if _within(values[j], bound, largest):
            for k in range(j * run, min(m, (j + 1) * run)):
                if _within(r[k], bound, largest):
                    ids[n] = k
                    n += 1
    return ids


@jit
def exact_top_k(q, C, r, ids, every, offset, code, p, eps, placement, delta, largest, vals, idx,
                count) -> int:
    """Offer candidates to query q's exact top list vals/idx[:count]; returns the new count.

    The candidates are C's rows ids (every row when `every`), reported as offset + row. r holds
    their ranking values indexed by row, excluded rows set to a sentinel that never qualifies
    (+inf when looking for the smallest, -inf for the largest). One pass keeps the approximate
    top K and a buffer of every row within 2 delta of it; only those are recomputed exactly.
    """
    K = vals.shape[0]
    n_cand = C.shape[0] if every else ids.shape[0]
    sentinel = -np.inf if largest else np.inf
    top_v = np.empty(K)
    top_i = np.empty(K, np.int64)
    buf_v = np.empty(_BAND_BUFFER)
    buf_i = np.empty(_BAND_BUFFER, np.int64)
    n, nb = np.int64(0), 0  # n is passed on: typed, not a literal (numba specialises literals)
    bound = _carried_bound(vals, count, code, placement, delta, largest)
    run = _run_length(n_cand, 1 if count == K else K) if every else 0
    if run:  # enough runs for some to be skipped
        ids = _prefilter(r, K, delta, largest, bound, run)
        every = False
        n_cand = ids.shape[0]
    overflow = False
    for t in range(n_cand):
        k = t if every else ids[t]
        a = r[k]
        if _within(a, bound, largest) and a != sentinel:
            if worth(top_v, n, a, largest):
                n = insert(top_v, top_i, n, a, k, largest)
                if n == K:
                    own = top_v[K - 1] - 2.0 * delta if largest else top_v[K - 1] + 2.0 * delta
                    bound = _tighter(bound, own, largest)
            if nb == _BAND_BUFFER:  # compact: drop rows the bound has since excluded
                kept = 0
                for s in range(nb):
                    v = buf_v[s]
                    if _within(v, bound, largest):
                        buf_v[kept] = v
                        buf_i[kept] = buf_i[s]
                        kept += 1
                nb = kept
                if nb == _BAND_BUFFER:
                    overflow = True
                    nb = 0
            buf_v[nb] = a
            buf_i[nb] = k
            nb += 1
    if n == 0:
        return count
    if overflow:  # more near-ties than the buffer holds: scan again
        for t in range(n_cand):
            k = t if every else ids[t]
            if _within(r[k], bound, largest) and r[k] != sentinel:
                count = _keep_exact(q, C, k, offset, code, p, eps, placement, largest, vals,
                                    idx, count)
        return count
    for s in range(nb):
        if _within(buf_v[s], bound, largest):
            count = _keep_exact(q, C, buf_i[s], offset, code, p, eps, placement, largest, vals,
                                idx, count)
    return count


@jit
def _carried_bound(vals, count, code, placement, delta, largest) -> float:
    """A carried full list bounds the chunk at once: a ranking value beyond its K-th (in ranking
    space: squared for euclidean) by more than 2 delta (delta, and the square's rounding) loses.
    No bound (the sentinel) while the list is not full."""
    if count < vals.shape[0]:
        return -np.inf if largest else np.inf
    v = vals[count - 1]
    if code == EUCLIDEAN and placement == EPS_NONE:
        v = v * v
    return v - 2.0 * delta if largest else v + 2.0 * delta


_SORTED_K = 64  # above this K, candidates are sorted, not inserted one by one


@jit
def _sorted_top_k(q, C, r, offset, code, p, eps, placement, delta, largest, vals, idx,
                  count) -> int:
    """exact_top_k over every row of C for a large K, where inserting into a sorted list one
    candidate at a time is quadratic (184 s for 6,000 queries of 6,000 rows at k = all; 19 s for
    20,000 x 20,000 at k = 1,000): the rows the run prefilter keeps (all, among too few runs),
    the approximate K-th ranking value T among them (a selection), then every candidate within
    2 delta of T (and of a carried list's bound) recomputed, sorted by exact distance (ties in
    index order) and merged with the carried list."""
    K = vals.shape[0]
    sentinel = -np.inf if largest else np.inf
    bound = _carried_bound(vals, count, code, placement, delta, largest)
    run = _run_length(C.shape[0], 1 if count == K else K)
    ids = _prefilter(r, K, delta, largest, bound, run) if run else np.empty(0, np.int64)
    n_cand = ids.shape[0] if run else C.shape[0]
    rows = np.empty(n_cand, np.int64)  # the candidates within bound, in index order
    ranks = np.empty(n_cand)
    n = 0
    for t in range(n_cand):
        k = ids[t] if run else t
        a = r[k]
        if _within(a, bound, largest) and a != sentinel:
            rows[n] = k
            ranks[n] = a
            n += 1
    if n > K:
        t = _select(ranks[:n].copy(), n - K if largest else K - 1)
        bound = _tighter(bound, t - 2.0 * delta if largest else t + 2.0 * delta, largest)
    band = 0
    for s in range(n):  # the rows to recompute, listed first so that they can be prefetched
        rows[band] = rows[s]
        band += _within(ranks[s], bound, largest)
    exact = np.empty(band)
    exact_at(q, C, rows[:band], code, p, eps, placement, exact)
    kept = 0
    for s in range(band):
        e = exact[s]
        if e == e:  # a NaN distance is no neighbour
            rows[kept] = rows[s]
            exact[kept] = -e if largest else e
            kept += 1
    order = stable_order(exact[:kept])
    merged_v = np.empty(K)
    merged_i = np.empty(K, np.int64)
    a = b = out = 0
    v, i = 0.0, np.int64(0)
    while out < K and (a < count or b < kept):
        if b < kept:
            v, i = exact[order[b]], offset + rows[order[b]]
            v = -v if largest else v
        if a < count and (b == kept or (vals[a] > v if largest else vals[a] < v)
                          or (vals[a] == v and idx[a] < i)):
            merged_v[out] = vals[a]
            merged_i[out] = idx[a]
            a += 1
        else:
            merged_v[out] = v
            merged_i[out] = i
            b += 1
        out += 1
    for s in range(out):
        vals[s] = merged_v[s]
        idx[s] = merged_i[s]
    return out


@jit
def _keep_exact(q, C, k, offset, code, p, eps, placement, largest, vals, idx, count) -> int:
    """Offer row k of C, by its exact distance to q, to the sorted top list; returns the count."""
    e = distance(q, C[k], code, p, eps, placement)
    if worth(vals, count, e, largest):
        return insert(vals, idx, count, e, offset + k, largest)
    return count


@jit
def exact_row(q, C, code, p, eps, placement, out) -> None:
    """out[k] = the exact distance of q to row k of C, for every row."""
    for k in range(C.shape[0]):
        out[k] = distance(q, C[k], code, p, eps, placement)


@inline_jit
def exact_at(q, C, rows, code, p, eps, placement, out) -> None:
    """out[s] = the exact distance of q to row rows[s] of C, each row asked for AHEAD rows before
    its turn (rows in an order no hardware prefetcher can guess)."""
    n = rows.shape[0]
    for s in range(min(AHEAD, n)):
        prefetch(C[rows[s]])
    for s in range(n):
        if s + AHEAD < n:
            prefetch(C[rows[s + AHEAD]])
        out[s] = distance(q, C[rows[s]], code, p, eps, placement)


def exact_rows(Q, C, code, p, eps, placement, out):
    """Exact distances of every row of Q to every row of C (the ranking of RANK_DIRECT)."""
    in_parallel(_exact_rows, Q.shape[0], Q, C, code, p, eps, placement, out)


@jit
def _exact_rows(lo, hi, Q, C, code, p, eps, placement, out):
    """exact_rows for rows lo..hi of Q."""
    Q, C = borrowed(Q), borrowed(C)
    for r in range(lo, hi):
        exact_row(Q[r], C, code, p, eps, placement, out[r])


_CHUNK = 8  # queries per parallel task: each task reuses one ranking row


@jit
def _ranking_row(r, g, kind, q_scale, c_scale, excluded, q_class, c_classes, offset,
                 largest) -> None:
    """A query's ranking values against a chunk (rows offset..), its excluded rows, and the
    rows of its own class (c_classes[j] == q_class; no classes: none), set to the sentinel that
    never qualifies."""
    fill_ranks(r, g, kind, q_scale, c_scale)
    never = -np.inf if largest else np.inf
    for e in range(excluded.shape[0]):
        j = excluded[e] - offset
        if 0 <= j < r.shape[0]:
            r[j] = never
    if c_classes.shape[0]:
        for j in range(r.shape[0]):
            if c_classes[j] == q_class:
                r[j] = never


@jit
def _top_k_block(lo, hi, Q, C, G, kind, q_scale, c_scale, delta, code, p, eps, placement,
                 largest, offset, excl_ptr, excl_idx, q_classes, c_classes, vals, idx, counts,
                 few, many):
    """exact_top_k (few not None) or, for a large K, _sorted_top_k (many not None) for the
    query rows of tasks lo..hi (of _CHUNK rows) against the chunk C. _jit.one_of gives few
    and many, so that a run compiles one of the two (the sort: 1.5 s of a first run)."""
    b, m = G.shape
    Q, C, G = borrowed(Q), borrowed(C), borrowed(G)
    no_ids = excl_idx[:0]
    for chunk in range(lo, hi):
        r = np.empty(m)
        for row in range(chunk * _CHUNK, min(b, (chunk + 1) * _CHUNK)):
            _ranking_row(r, G[row], kind, q_scale[row], c_scale,
                         excl_idx[excl_ptr[row]:excl_ptr[row + 1]],
                         q_classes[row] if q_classes.shape[0] else -1, c_classes, offset,
                         largest)
            if few is not None:
                counts[row] = exact_top_k(Q[row], C, r, no_ids, np.bool_(True), offset, code, p,
                                          eps, placement, delta[row], largest, vals[row],
                                          idx[row], counts[row])
            if many is not None:
                counts[row] = _sorted_top_k(Q[row], C, r, offset, code, p, eps, placement,
                                            delta[row], largest, vals[row], idx[row],
                                            counts[row])


def norms_of(x: np.ndarray) -> np.ndarray:
    """Row norms in float64 (what the ranking expansions and their error bound use)."""
    return np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))


def top_k(queries: np.ndarray, candidates: np.ndarray, k: int,
          kernel: Metric, *, largest: bool = False,
          exclude: tuple[np.ndarray, np.ndarray] | None = None,
          classes: tuple[np.ndarray, np.ndarray] | None = None,
          candidate_norms: np.ndarray | None = None, chunk_rows: int | None = None,
          rooms: Rooms | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query's k best candidates by exact distance: (distances, indices, counts).

    kernel is DistanceParams.kernel(). exclude = (ptr, idx): query row r never gets the
    candidates idx[ptr[r]:ptr[r+1]] (itself, its positives); classes = (query codes, candidate
    codes): nor any candidate of its own class. Rows are sorted best first; a query
    with fewer than k candidates has counts[r] < k and index -1 (distance inf) in the rest.
    Candidates are taken in chunks whose matrix-product block stays within BLOCK_BYTES; the
    result does not depend on the chunk size or the thread count. rooms: where the products
    go (a job's, kept for its next call; else buffers for this call's chunks).
    """
    code, p, eps, placement = kernel
    b, m = queries.shape[0], candidates.shape[0]
    vals = np.full((b, k), -np.inf if largest else np.inf)
    idx = np.full((b, k), -1, np.int64)
    counts = np.zeros(b, np.int64)
    if exclude is None:
        exclude = (np.zeros(b + 1, np.int64), np.empty(0, np.int64))
    ptr, excluded = (np.ascontiguousarray(a, np.int64) for a in exclude)
    no_classes = np.empty(0, np.int64)
    q_classes, c_classes = (no_classes, no_classes) if classes is None else (
        np.ascontiguousarray(a, np.int64) for a in classes)
    kind = rank_kind(code, placement)
    c_norms = norms_of(candidates) if candidate_norms is None else candidate_norms
    q_norms = norms_of(queries)
    q_scale, c_scale = rank_scale(kind, q_norms, eps), rank_scale(kind, c_norms, eps)
    rows = chunk_rows or max(1, BLOCK_BYTES // max(8 * b, 1))
    queries = np.ascontiguousarray(queries)
    rooms = rooms or Rooms()  # one buffer for every chunk's product: a fresh 256 MiB array
    for lo in range(0, m, rows):  # page-faults (15-25% of a 1,024 x 32,768 x 384 sgemm)
        chunk = np.ascontiguousarray(candidates[lo:lo + rows])
        if kind == RANK_DIRECT:
            g = np.empty((b, chunk.shape[0]))
            exact_rows(queries, chunk, code, p, eps, placement, g)
            delta = np.zeros(b)
        else:
            products = rooms(0, (b, chunk.shape[0]), np.result_type(queries, chunk))
            g = np.matmul(queries, chunk.T, out=products)
            delta = rank_error(kind, q_norms, c_norms[lo:lo + rows], queries.shape[1],
                               queries.dtype, eps)
        in_parallel(_top_k_block, (b + _CHUNK - 1) // _CHUNK, queries, chunk, g, kind, q_scale,
                    c_scale[lo:lo + rows], delta, code, p, eps, placement, np.bool_(largest),
                    np.int64(lo), ptr, excluded, q_classes, c_classes[lo:lo + rows], vals, idx,
                    counts, *one_of(k <= _SORTED_K))
    return vals, idx, counts
