"""The exact top-k primitive against a brute-force oracle: the k best candidates by the exact
distance compute gives (ties by the lowest index), exclusions honoured, and the same answer
for any candidate chunk size and thread count; its run prefilter changes no decision."""

from __future__ import annotations

import numpy as np
import reference as R
from hypothesis import given, settings
from hypothesis import strategies as st
from test_mining import DISTS, MINING, TOL, Dist, build

from triplet_cli import compute_loss
from triplet_cli.distances import distance
from triplet_cli.params import DistanceParams
from triplet_cli.topk import _select, exact_top_k, top_k


def exact_matrix(q: np.ndarray, c: np.ndarray, dist: Dist) -> np.ndarray:
    """D[i, j] = d(q_i, c_j) exactly as compute_loss gives it."""
    i, j = np.divmod(np.arange(len(q) * len(c)), len(c))
    r = compute_loss(q[i], c[j], c[j], threads=1, **dist.api())
    return r.d_ap.reshape(len(q), len(c))


def oracle(D: np.ndarray, k: int, excluded: list[set[int]], largest: bool):
    """Per query: the k best allowed candidates by (distance, index)."""
    rows = []
    for i, d in enumerate(D):
        allowed = [j for j in range(D.shape[1]) if j not in excluded[i]]
        allowed.sort(key=lambda j: (-d[j] if largest else d[j], j))
        rows.append(allowed[:k])
    return rows


@MINING
@given(data=st.data(), dist=st.sampled_from(DISTS), largest=st.booleans())
def test_top_k_equals_brute_force(data, dist: Dist, largest: bool) -> None:
    b = data.draw(st.integers(1, 9), "queries")
    m = data.draw(st.integers(1, 40), "candidates")
    d = data.draw(st.integers(1, 12), "d")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), "dtype")
    layout = data.draw(st.sampled_from(["integers", "normal", "near", "tiny"]), "layout")
    seed = data.draw(st.integers(0, 2**16), "seed")
    x = build(b + m + 3, d, dtype, layout, 2, seed)[0][: b + m]
    q, c = x[:b], x[b:]
    k = data.draw(st.integers(1, m + 2), "k")
    rng = np.random.default_rng(seed)
    excluded = [set(rng.choice(m, size=rng.integers(0, min(m, 4) + 1), replace=False).tolist())
                for _ in range(b)]
    ptr = np.concatenate([[0], np.cumsum([len(e) for e in excluded])]).astype(np.int64)
    idx = np.array([j for e in excluded for j in sorted(e)], np.int64)
    kernel = DistanceParams(dist.distance, dist.p, dist.eps, dist.placement).kernel()
    chunk = data.draw(st.sampled_from([None, 1, 3, 7]), "chunk_rows")
    vals, got, counts = top_k(q, c, k, kernel, largest=largest, exclude=(ptr, idx),
                              chunk_rows=chunk)
    D = exact_matrix(q, c, dist)
    ref = R.distance_matrix(np.concatenate([q, c]), **dist.ref())[:b, b:]
    for i, want in enumerate(oracle(D, k, excluded, largest)):
        assert counts[i] == len(want)
        assert got[i, :counts[i]].tolist() == want
        assert (got[i, counts[i]:] == -1).all()
        np.testing.assert_array_equal(vals[i, :counts[i]], D[i, want])
        np.testing.assert_allclose(vals[i, :counts[i]], ref[i, want], rtol=TOL, atol=TOL)
    again = top_k(q, c, k, kernel, largest=largest, exclude=(ptr, idx), chunk_rows=1)
    for a, e in zip(again, (vals, got, counts), strict=True):
        np.testing.assert_array_equal(a, e)


def test_top_k_breaks_ties_by_lowest_index_across_chunks() -> None:
    """Duplicated candidates: the earlier copy wins whichever chunk it falls in."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(5, 8)).astype(np.float32)
    c = np.concatenate([base, base, base])
    kernel = DistanceParams().kernel()
    for chunk in (None, 2, 5, 6):
        _, idx, _ = top_k(base, c, 3, kernel, chunk_rows=chunk)
        assert idx.tolist() == [[i, i + 5, i + 10] for i in range(5)]


@MINING
@given(data=st.data(), dist=st.sampled_from([Dist(), Dist("cosine"), Dist("dot"),
                                             Dist("manhattan")]), largest=st.booleans())
def test_top_k_with_a_large_k_equals_brute_force(data, dist: Dist, largest: bool) -> None:
    """K above 64 (evaluate --k all, or a large --k): candidates sorted, not inserted one by one
    into the top list (quadratic: 184 s for 6,000 queries against 6,000 rows), with lists
    carried across chunks, exclusions and ties; among many candidates, after the run
    prefilter (more than K + 1 runs of 16 rows)."""
    m = data.draw(st.integers(66, 300) | st.integers(1100, 2400), "candidates")
    k = data.draw(st.integers(65, m + 3) | st.integers(65, 120), "k")
    layout = data.draw(st.sampled_from(["integers", "normal", "near", "tiny"]), "layout")
    x = build(m + 3, 5, np.float32, layout, 2, data.draw(st.integers(0, 2**16), "seed"))[0]
    q, c = x[:3], x[3:]
    kernel = DistanceParams(dist.distance, dist.p, dist.eps, dist.placement).kernel()
    exclude = (np.array([0, 0, 2, 2], np.int64), np.array([5, 40], np.int64))
    chunk = data.draw(st.sampled_from([None, 17, 64, 150]), "chunk_rows")
    vals, got, counts = top_k(q, c, k, kernel, largest=largest, exclude=exclude,
                              chunk_rows=chunk)
    D = exact_matrix(q, c, dist)
    for i, want in enumerate(oracle(D, k, [set(), {5, 40}, set()], largest)):
        assert counts[i] == len(want)
        assert got[i, :counts[i]].tolist() == want
        np.testing.assert_array_equal(vals[i, :counts[i]], D[i, want])


@MINING
@given(data=st.data(), dist=st.sampled_from([Dist(), Dist("cosine"), Dist("dot"),
                                             Dist("manhattan")]), largest=st.booleans())
def test_top_k_over_many_runs_equals_brute_force(data, dist: Dist, largest: bool) -> None:
    """Candidate sets long enough for the run prefilter (more than K + 1 runs; runs shorten
    from 256 rows to 16 as K grows)."""
    m = data.draw(st.integers(600, 1600), "candidates")
    k = data.draw(st.integers(1, 3) | st.integers(4, 40), "k")
    layout = data.draw(st.sampled_from(["integers", "normal", "near"]), "layout")
    x = build(m + 4, 6, np.float32, layout, 2, data.draw(st.integers(0, 2**16), "seed"))[0]
    q, c = x[:3], x[3:]
    kernel = DistanceParams(dist.distance, dist.p, dist.eps, dist.placement).kernel()
    exclude = (np.array([0, 0, 2, 2], np.int64), np.array([5, 700], np.int64))
    vals, got, counts = top_k(q, c, k, kernel, largest=largest, exclude=exclude)
    D = exact_matrix(q, c, dist)
    for i, want in enumerate(oracle(D, k, [set(), {5, 700}, set()], largest)):
        assert got[i, :counts[i]].tolist() == want
        np.testing.assert_array_equal(vals[i, :counts[i]], D[i, want])


@settings(MINING, max_examples=MINING.max_examples * 10)
@given(data=st.data())
def test_run_prefilter_changes_no_decision(data) -> None:
    """exact_top_k over every row (pruned by runs) equals the same scan over all rows as ids
    (never pruned), for any ranking row: lattice values with ties, sentinels, carried lists."""
    k = data.draw(st.integers(1, 5) | st.integers(6, 60), "k")
    m = data.draw(st.integers(1, 3000) | st.integers(min(16 * (k + 1) + 1, 3000), 3000), "m")
    largest = data.draw(st.booleans(), "largest")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "seed"))
    c = rng.integers(-2, 3, size=(m, 3)).astype(np.float32)
    q = c[0] + np.float32(0.5)
    delta = data.draw(st.sampled_from([0.0, 0.5, 3.0]), "delta")
    r = np.array([distance(q, row, 0, 2.0, 0.0, 0) for row in c]) ** 2
    r += rng.uniform(-delta, delta, m) if delta else 0.0
    r[rng.random(m) < 0.1] = -np.inf if largest else np.inf  # excluded rows
    carried = data.draw(st.booleans(), "carried") and np.isfinite(r).sum() >= k
    results = []
    for every in (True, False):
        vals = np.full(k, -np.inf if largest else np.inf)
        idx = np.full(k, -1, np.int64)
        count = np.int64(0)
        if carried:  # a full list from an earlier chunk (rows offset by m)
            vals[:] = np.sort(r[np.isfinite(r)])[::-1][:k] if largest else np.sort(
                r[np.isfinite(r)])[:k]
            vals = np.sqrt(np.abs(vals))
            idx[:] = np.arange(k) + 10 * m
            count = np.int64(k)
        n = exact_top_k(q, c, r, np.arange(m), np.bool_(every), np.int64(0), np.int64(0), 2.0,
                        0.0, np.int64(0), delta, np.bool_(largest), vals, idx, count)
        results.append((n, vals.tolist(), idx.tolist()))
    assert results[0] == results[1]


@settings(MINING, max_examples=MINING.max_examples * 10)
@given(values=st.lists(st.one_of(st.integers(-3, 3).map(float),
                                 st.floats(allow_nan=False)), min_size=1, max_size=300),
       data=st.data())
def test_select_is_the_sorted_rank(values, data) -> None:
    """topk._select (the prefilter's quickselect) gives np.sort's value at every rank: ties,
    infinities, sorted and reversed runs."""
    a = np.array(values)
    order = data.draw(st.sampled_from(["as drawn", "sorted", "reversed"]))
    a = np.sort(a) if order == "sorted" else np.sort(a)[::-1].copy() if order == "reversed" else a
    k = data.draw(st.integers(0, a.size - 1))
    assert _select(a.copy(), np.int64(k)) == np.sort(a)[k]


def _cancelling_rows(m: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Rows whose products lose the most to float32 rounding: 2^24 at both ends (their sum is
    0, the ones between are rounded away by any order that adds the ends early), ones, and
    random rows; each scaled by a random power of two."""
    x = rng.normal(size=(m, d))
    x[0::3] = 1.0
    x[0::3, 0], x[0::3, -1] = 2.0**24, -(2.0**24)
    x[1::3] = 1.0
    return x * 2.0 ** rng.integers(-3, 4, size=(m, 1))


@settings(max_examples=40, deadline=None)
@given(d=st.sampled_from([2, 64, 700, 1536]), dtype=st.sampled_from([np.float32, np.float64]),
       layout=st.sampled_from(["normal", "cancelling", "tiny"]), parts=st.sampled_from([1, 3]),
       distance_name=st.sampled_from(["euclidean", "cosine", "dot"]),
       seed=st.integers(0, 2**16))
def test_ranking_values_lie_within_their_bound(d, dtype, layout, parts, distance_name,
                                               seed) -> None:
    """|ranking value - exact distance (squared for euclidean)| <= rank_error for every pair,
    from one product or from partial products over slices of d, on rows built to round badly."""
    from triplet_cli.distances import (
        fill_ranks,
        product_terms,
        rank_error,
        rank_kind,
        rank_scale,
        split_products,
    )
    from triplet_cli.topk import norms_of

    rng = np.random.default_rng(seed)
    m = 12
    if layout == "cancelling":
        x = _cancelling_rows(m, d, rng)
    else:
        x = rng.normal(scale=1e-19 if layout == "tiny" else 1.0, size=(m, d))
    x = x.astype(dtype)
    code, p, eps, placement = DistanceParams(distance=distance_name).kernel()
    kind = rank_kind(code, placement)
    norms = norms_of(x)
    scale = rank_scale(kind, norms, eps)
    g = split_products(x, x, parts)
    delta = rank_error(kind, norms, norms, d, x.dtype, eps, product_terms(d, parts))
    r = np.empty(m)
    for i in range(m):
        fill_ranks(r, g[i], kind, scale[i], scale)
        exact = np.array([distance(x[i], x[k], code, p, eps, placement) for k in range(m)])
        target = exact * exact if distance_name == "euclidean" else exact
        assert np.all(np.abs(r - target) <= delta[i]), (i, np.abs(r - target).max(), delta[i])


def test_a_jobs_rooms_are_reused_and_travel_empty() -> None:
    """Rooms hands back the same memory for a block of the same size or smaller, and a pickled
    job (Dask) carries none of it."""
    import pickle

    from triplet_cli.distances import Rooms

    rooms = Rooms()
    first = rooms(0, (40, 50), np.dtype(np.float32))
    assert np.shares_memory(first, rooms(0, (30, 50), np.dtype(np.float32)))
    assert not np.shares_memory(first, rooms(1, (40, 50), np.dtype(np.float32)))
    assert rooms(0, (40, 60), np.dtype(np.float32)).shape == (40, 60)  # larger: a new buffer
    assert pickle.loads(pickle.dumps(rooms))._kept == {}


def test_top_k_into_reused_rooms_equals_fresh_products() -> None:
    """Calls of several sizes through one job's rooms give what fresh products give (the
    buffer's old contents never leak into a ranking)."""
    from triplet_cli.distances import Rooms

    rng = np.random.default_rng(5)
    c = rng.standard_normal((700, 24)).astype(np.float32)
    kernel = DistanceParams().kernel()
    rooms = Rooms()
    for b, chunk in ((64, 300), (17, 700), (64, 128), (5, 300)):
        q = rng.standard_normal((b, 24)).astype(np.float32)
        got = top_k(q, c, 4, kernel, chunk_rows=chunk, rooms=rooms)
        want = top_k(q, c, 4, kernel, chunk_rows=chunk)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
