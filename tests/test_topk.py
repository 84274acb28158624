"""The exact top-k primitive against a brute-force oracle: the k best candidates by the exact
distance compute gives (ties by the lowest index), exclusions honoured, and the same answer
for any candidate chunk size and thread count."""

from __future__ import annotations

import numpy as np
import reference as R
from hypothesis import given
from hypothesis import strategies as st
from test_mining import DISTS, MINING, TOL, Dist, build

from triplet_cli import compute_loss
from triplet_cli.params import DistanceParams
from triplet_cli.topk import top_k


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
