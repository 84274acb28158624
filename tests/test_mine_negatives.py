"""mine-negatives against a brute-force oracle, and its promises: every positive excluded,
exact scores with ties by the lowest index, results independent of block size, chunk size and
threads, the --positives shortcut, false negatives, and rescoring with compute --corpus."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import reference as R
from cli_helpers import jsonl_rows
from hypothesis import given, settings
from hypothesis import strategies as st

from triplet_cli import compute_loss
from triplet_cli.errors import InputError, UsageError
from triplet_cli.negatives import mine_negatives
from triplet_cli.negatives_select import random_keys

SIMILARITIES = ["cosine", "dot", "euclidean", "manhattan", "squared-euclidean", "chebyshev"]
REF_NAMES = {"cosine": "cosine", "dot": "dot", "euclidean": "euclidean", "manhattan": "manhattan",
             "squared-euclidean": "squared-euclidean", "chebyshev": "chebyshev"}


def exact_scores(q: np.ndarray, c: np.ndarray, similarity: str) -> np.ndarray:
    """S[i, j] = s(q_i, c_j) from compute's exact distance (the scores mine-negatives reports)."""
    i, j = np.divmod(np.arange(len(q) * len(c)), len(c))
    d = compute_loss(q[i], c[j], c[j], distance=similarity, threads=1).d_ap.reshape(len(q), -1)
    return 1.0 - d if similarity == "cosine" else -d


def oracle(S: np.ndarray, pairs: np.ndarray, opts: dict, near: np.ndarray | None = None,
           own: bool = False, classes: tuple[np.ndarray, np.ndarray] | None = None
           ) -> list[tuple[int, int, int, int]]:
    """(query, positive, negative, rank) rows by SPEC section 9, pair by pair; classes (query
    labels, corpus labels): no negative of the query's class."""
    k, rmin = opts.get("num_negatives", 3), opts.get("range_min", 0)
    queries = sorted(set(pairs[:, 0].tolist()))
    positives = {q: list(dict.fromkeys(p for qq, p in pairs.tolist() if qq == q)) for q in queries}
    most = max(len(v) for v in positives.values())
    widened = any(opts.get(f) is not None for f in ("absolute_margin", "relative_margin",
                                                    "max_score", "false_negative_eps"))
    window = opts.get("range_max") or rmin + k * (10 if widened else 1) + most
    rows = []
    for q in queries:
        allowed = [j for j in range(S.shape[1]) if j not in positives[q] and not (own and j == q)
                   and not (classes is not None and classes[1][j] == classes[0][q])]
        ranked = sorted(allowed, key=lambda j: (-S[q, j], j))[:window]
        hardest = min(S[q, p] for p in positives[q])
        for p in positives[q]:
            sp = hardest if opts.get("margin_positive") == "hardest" else S[q, p]
            kept = []
            for rank, j in enumerate(ranked, start=1):
                s = S[q, j]
                if near is not None and near[q, j]:
                    continue
                if opts.get("absolute_margin") is not None and s + opts["absolute_margin"] > sp:
                    continue
                if (opts.get("relative_margin") is not None
                        and s > sp - abs(sp) * opts["relative_margin"]):
                    continue
                if opts.get("max_score") is not None and s > opts["max_score"]:
                    continue
                if opts.get("min_score") is not None and s < opts["min_score"]:
                    continue
                kept.append((j, rank))
            rows += [(q, p, j, rank) for j, rank in kept[rmin:rmin + k]]
    return rows


def rows_of(columns: dict[str, np.ndarray]) -> list[tuple[int, int, int, int]]:
    return list(zip(*(columns[c].tolist() for c in ("anchor", "positive", "negative", "rank")),
                    strict=True))


def draw(seed: int, n: int, m: int, d: int, layout: str, dtype=np.float64):
    rng = np.random.default_rng(seed)
    if layout == "integers":  # exact ties everywhere: the lowest index must win
        x = rng.integers(-2, 3, size=(n + m, d)).astype(dtype)
    else:
        x = rng.normal(size=(n + m, d)).astype(dtype)
    x[np.abs(x).sum(axis=1) == 0] = 1  # no zero rows: cosine of a zero row is a tie with all
    q, c = x[:n], x[n:]
    count = rng.integers(1, 4, size=n)
    pairs = np.array([(i, int(j)) for i in range(n) for j in rng.choice(m, count[i], False)])
    return q, c, pairs[rng.permutation(len(pairs))]


@settings(deadline=None, max_examples=60)
@given(seed=st.integers(0, 2**16), similarity=st.sampled_from(SIMILARITIES),
       layout=st.sampled_from(["integers", "normal"]), data=st.data())
def test_equals_brute_force(seed: int, similarity: str, layout: str, data) -> None:
    n, m = data.draw(st.integers(1, 8)), data.draw(st.integers(8, 40))
    q, c, pairs = draw(seed, n, m, data.draw(st.integers(1, 6)), layout,
                       data.draw(st.sampled_from([np.float32, np.float64])))
    opts = {"num_negatives": data.draw(st.integers(1, 4)),
            "range_min": data.draw(st.integers(0, 2)),
            "margin_positive": data.draw(st.sampled_from(["pair", "hardest"]))}
    S = exact_scores(q, c, similarity)
    scale = float(np.abs(S).max()) or 1.0
    for name in ("absolute_margin", "relative_margin", "max_score", "min_score"):
        if data.draw(st.booleans(), name):
            limits = [0.0, 0.1 * scale, -0.2 * scale, 0.5]
            if name.endswith("score"):  # a limit some score equals: kept, as SPEC 9 says
                limits.append(float(data.draw(st.sampled_from(S.ravel().tolist()), "at")))
            opts[name] = data.draw(st.sampled_from(limits), name)
    if data.draw(st.booleans(), "range_max"):
        opts["range_max"] = opts["range_min"] + opts["num_negatives"] + data.draw(
            st.integers(0, 10))
    if opts.get("min_score", -np.inf) > opts.get("max_score", np.inf):  # an empty filter
        with pytest.raises(UsageError, match="is above --max-score"):
            mine_negatives(q, c, pairs, similarity=similarity, **opts)
        return
    r = mine_negatives(q, c, pairs, similarity=similarity, threads=1, **opts)
    assert rows_of(r.columns) == oracle(S, pairs, opts)
    np.testing.assert_array_equal(r.columns["score_an"], S[r.columns["anchor"],
                                                           r.columns["negative"]])
    np.testing.assert_array_equal(r.columns["score_ap"], S[r.columns["anchor"],
                                                           r.columns["positive"]])
    # the exact scores are the float64 reference's, to rounding
    ref = R.distance_matrix(np.concatenate([q, c]).astype(np.float64),
                            REF_NAMES[similarity])[:n, n:]
    ref = 1.0 - ref if similarity == "cosine" else -ref
    np.testing.assert_allclose(S, ref, rtol=1e-9, atol=1e-9)
    # block size, chunk size and threads change nothing
    again = mine_negatives(q, c, pairs, similarity=similarity, block_rows=2, chunk_rows=3,
                           **opts)
    for k, v in r.columns.items():
        np.testing.assert_array_equal(again.columns[k], v)


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**16), similarity=st.sampled_from(SIMILARITIES),
       layout=st.sampled_from(["integers", "normal"]), data=st.data())
def test_labels_leave_out_the_query_class(seed: int, similarity: str, layout: str,
                                          data) -> None:
    """With labels, a query's own class gives no negative (a face-recognition corpus: the same
    person is no negative), whatever the block and chunk sizes."""
    n, m = data.draw(st.integers(1, 8)), data.draw(st.integers(8, 40))
    q, c, pairs = draw(seed, n, m, data.draw(st.integers(1, 6)), layout)
    classes = data.draw(st.integers(1, 4))
    rng = np.random.default_rng(seed)
    qy, cy = rng.integers(0, classes, n), rng.integers(0, classes, m)
    as_text = data.draw(st.booleans())
    labels = (qy.astype(str), cy.astype(str)) if as_text else (qy, cy)
    opts = {"num_negatives": data.draw(st.integers(1, 4)), "range_min": data.draw(
        st.integers(0, 2))}
    if np.unique(np.concatenate([qy, cy])).size == 1:  # no negative for anyone: refused
        with pytest.raises(InputError, match="one class"):
            mine_negatives(q, c, pairs, labels=labels[0], corpus_labels=labels[1], **opts)
        return
    r = mine_negatives(q, c, pairs, similarity=similarity, labels=labels[0],
                       corpus_labels=labels[1], threads=1, **opts)
    S = exact_scores(q, c, similarity)
    assert rows_of(r.columns) == oracle(S, pairs, opts, classes=(qy, cy))
    assert not (qy[r.columns["anchor"]] == cy[r.columns["negative"]]).any()
    again = mine_negatives(q, c, pairs, similarity=similarity, labels=labels[0],
                           corpus_labels=labels[1], block_rows=2, chunk_rows=3, **opts)
    assert rows_of(again.columns) == rows_of(r.columns)


def test_labels_of_a_corpus_that_is_the_queries(cli, tmp_path) -> None:
    """--labels alone when the corpus is the queries; the pairs of a labelled dump (one person
    per class) then give no negative of the same person."""
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(12), 5)
    x = rng.normal(size=(12, 16))[y] + 0.3 * rng.normal(size=(60, 16))  # tight classes
    pairs = np.array([(i, i + 1) for i in range(0, 60, 5)])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "pairs.npy", pairs)
    np.save(tmp_path / "short.npy", y[:12])
    unlabelled = mine_negatives(x, x, pairs, num_negatives=3)
    assert (y[unlabelled.columns["anchor"]] == y[unlabelled.columns["negative"]]).any()
    r = cli("mine-negatives", "--queries", tmp_path / "x.npy", "--corpus", tmp_path / "x.npy",
            "--pairs", tmp_path / "pairs.npy", "--labels", tmp_path / "y.npy",
            "--num-negatives", "3", "-f", "jsonl")
    assert r.exit_code == 0, r.stderr
    rows = jsonl_rows(r.stdout)
    assert not (y[rows["anchor"]] == y[rows["negative"]]).any()
    assert rows_of({k: np.asarray(v) for k, v in rows.items()}) == rows_of(
        mine_negatives(x, x, pairs, labels=y, num_negatives=3).columns)
    for argv, message in (
            (["--corpus-labels", tmp_path / "y.npy"], "--labels (of the queries) and "
             "--corpus-labels go together"),
            (["--labels", tmp_path / "short.npy"], "12 labels for 60 embedding rows")):
        bad = cli("mine-negatives", "--queries", tmp_path / "x.npy", "--corpus",
                  tmp_path / "x.npy", "--pairs", tmp_path / "pairs.npy", *argv)
        assert bad.exit_code in (1, 2) and message in bad.stderr, bad.stderr
    with pytest.raises(UsageError, match="give --corpus"):
        mine_negatives(x, positives=x, labels=y)


def test_labels_from_a_table_column(cli, tmp_path) -> None:
    """--label-column picks the labels' column of a table (as mine's and evaluate's does), and
    the JSON names the column read; the queries' own labels otherwise come from the 'label'
    column."""
    import pyarrow as pa

    rng = np.random.default_rng(6)
    y = np.repeat(np.arange(6), 4)
    x = rng.normal(size=(6, 8))[y] + 0.2 * rng.normal(size=(24, 8))
    pairs = np.array([(i, i + 1) for i in range(0, 24, 4)])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "pairs.npy", pairs)
    pq.write_table(pa.table({"label": y // 3, "person": y.astype(str)}),
                   tmp_path / "y.parquet")
    argv = ("mine-negatives", "--queries", tmp_path / "x.npy", "--corpus", tmp_path / "x.npy",
            "--pairs", tmp_path / "pairs.npy", "--labels", tmp_path / "y.parquet", "-f", "json",
            "-q", "-o", tmp_path / "out.parquet")
    r = cli(*argv, "--label-column", "person")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["inputs"]["labels"]["column"] == "person"
    rows = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert rows_of({k: np.asarray(v) for k, v in rows.items()}) == rows_of(
        mine_negatives(x, x, pairs, labels=y, num_negatives=3).columns)
    coarse = cli(*argv)  # the 'label' column: classes of two people each
    assert json.loads(coarse.stdout)["inputs"]["labels"]["column"] == "label"
    rows = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert rows_of({k: np.asarray(v) for k, v in rows.items()}) == rows_of(
        mine_negatives(x, x, pairs, labels=y // 3, num_negatives=3).columns)


def test_pairs_named_anchor_positive_are_read(tmp_path) -> None:
    """mine-negatives writes anchor, positive: its rows (or mine's) are pairs again."""
    import pandas as pd

    q, c, pairs = draw(3, 6, 30, 4, "normal")
    expected = rows_of(mine_negatives(q, c, pairs).columns)
    (tmp_path / "p.csv").write_text("anchor,positive\n" + "".join(f"{a},{b}\n" for a, b in pairs))
    assert rows_of(mine_negatives(q, c, str(tmp_path / "p.csv")).columns) == expected
    frame = pd.DataFrame({"positive": pairs[:, 1], "anchor": pairs[:, 0]})
    assert rows_of(mine_negatives(q, c, frame).columns) == expected


def test_every_positive_excluded_and_ties_by_lowest_index() -> None:
    """Query 0 has three positives that are the three best candidates, and duplicates of a
    fourth row: none of the positives comes back; of equal scores the lowest index does."""
    q = np.array([[1.0, 0.0]])
    c = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5],
                  [0.5, 0.5]])
    pairs = np.array([[0, 0], [0, 1], [0, 2]])
    r = mine_negatives(q, c, pairs, num_negatives=2, similarity="dot")
    assert set(r.columns["negative"].tolist()) == {4, 5}
    assert r.columns["anchor"].tolist() == [0] * 6
    assert r.columns["positive"].tolist() == [0, 0, 1, 1, 2, 2]


def test_queries_as_corpus_exclude_their_own_row(tmp_path) -> None:
    x = np.random.default_rng(0).normal(size=(30, 4))
    np.save(tmp_path / "x.npy", x)
    pairs = np.stack([np.arange(30), (np.arange(30) + 1) % 30], axis=1)
    r = mine_negatives(str(tmp_path / "x.npy"), str(tmp_path / "x.npy"), pairs, num_negatives=5)
    assert not (r.columns["negative"] == r.columns["anchor"]).any()
    assert len(r.columns["anchor"]) == 150


def test_queries_as_corpus_through_a_hard_link_exclude_their_own_row(tmp_path) -> None:
    x = np.random.default_rng(1).normal(size=(30, 4))
    np.save(tmp_path / "x.npy", x)
    os.link(tmp_path / "x.npy", tmp_path / "linked.npy")
    pairs = np.stack([np.arange(30), (np.arange(30) + 1) % 30], axis=1)
    r = mine_negatives(str(tmp_path / "x.npy"), str(tmp_path / "linked.npy"), pairs,
                       num_negatives=5)
    assert not (r.columns["negative"] == r.columns["anchor"]).any()


def test_a_copy_of_the_queries_as_corpus_is_said(tmp_path) -> None:
    """A copy is not the same input (its own row stays a candidate, as the framework's would),
    but the run says so; the same file says nothing."""
    x = np.random.default_rng(2).normal(size=(30, 4))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "copy.npy", x)
    pairs = np.stack([np.arange(30), (np.arange(30) + 1) % 30], axis=1)
    copy = mine_negatives(str(tmp_path / "x.npy"), str(tmp_path / "copy.npy"), pairs,
                          num_negatives=5)
    said = [w for w in copy.summary["warnings"] if "(a copy)" in w]
    assert said == [f"--corpus {tmp_path / 'copy.npy'} holds the rows of --queries "
                    f"{tmp_path / 'x.npy'} (a copy): a query's own row is a candidate, at the "
                    "top; give the same file (or array) to leave it out"]
    assert (copy.columns["negative"][::5] == copy.columns["anchor"][::5]).all()
    same = mine_negatives(str(tmp_path / "x.npy"), str(tmp_path / "x.npy"), pairs,
                          num_negatives=5)
    assert not any("(a copy)" in w for w in same.summary["warnings"])


def test_a_corpus_smaller_than_k_plus_positives_gives_short_pairs() -> None:
    """Query 0 has 30 of the 40 corpus rows as positives, query 1 one: with K = 11, query 1
    gets 11 negatives and query 0's pairs the 10 rows left each, counted as short, with a
    warning; K beyond the corpus gives every row that is not a positive."""
    rng = np.random.default_rng(0)
    c, q = rng.normal(size=(40, 4)), rng.normal(size=(2, 4))
    pairs = np.concatenate([np.stack([np.zeros(30, int), np.arange(30)], axis=1), [[1, 0]]])
    r = mine_negatives(q, c, pairs, num_negatives=11)
    per_pair: dict[tuple[int, int], set[int]] = {}
    for a, p, n in zip(*(r.columns[k].tolist() for k in ("anchor", "positive", "negative")),
                       strict=True):
        per_pair.setdefault((a, p), set()).add(n)
    assert len(per_pair[(1, 0)]) == 11 and 0 not in per_pair[(1, 0)]
    assert all(per_pair[(0, p)] == set(range(30, 40)) for p in range(30))
    assert r.summary["short"]["pairs"] == 30
    assert any("fewer than --num-negatives 11 + 30 positives" in w for w in r.summary["warnings"])
    every = mine_negatives(q[1:], c, np.array([[0, 0]]), num_negatives=100)
    assert sorted(every.columns["negative"].tolist()) == list(range(1, 40))
    assert every.summary["short"]["pairs"] == 1


def test_positives_shortcut_collapses_duplicates() -> None:
    """Queries 0 and 2 are the same row: one query with both positives; positives 1 and 3 are
    the same row: one corpus row (the first), never a negative of query 0."""
    rng = np.random.default_rng(1)
    q = rng.normal(size=(4, 3))
    q[2] = q[0]
    p = rng.normal(size=(4, 3))
    p[3] = p[1]
    r = mine_negatives(q, positives=p, num_negatives=1, similarity="euclidean")
    rows = rows_of(r.columns)
    assert {(a, b) for a, b, _, _ in rows} == {(0, 0), (0, 2), (1, 1), (3, 1)}
    for a, _, neg, _ in rows:
        assert neg != 3  # the duplicate row is not in the corpus
        assert not (a == 0 and neg in (0, 2))  # query 0's positives are both excluded


def test_positives_located_in_a_corpus() -> None:
    rng = np.random.default_rng(2)
    c = rng.normal(size=(20, 3))
    q = rng.normal(size=(5, 3))
    r = mine_negatives(q, c, positives=c[[4, 9, 4, 0, 19]], num_negatives=2)
    assert sorted({(a, b) for a, b, _, _ in rows_of(r.columns)}) == [
        (0, 4), (1, 9), (2, 4), (3, 0), (4, 19)]


def test_false_negative_eps_drops_duplicates_of_a_positive() -> None:
    q = np.array([[1.0, 0.0, 0.0]])
    c = np.array([[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.9, 0.1, 1e-4], [0.0, 1.0, 0.0],
                  [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    plain = mine_negatives(q, c, np.array([[0, 0]]), num_negatives=2)
    assert plain.columns["negative"].tolist() == [1, 2]  # the duplicate is the hardest "negative"
    r = mine_negatives(q, c, np.array([[0, 0]]), num_negatives=2, false_negative_eps=1e-6)
    assert r.columns["negative"].tolist() == [4, 3]
    assert r.summary["candidates"]["false_negative_eps"] == 2
    near = np.zeros((1, 6), bool)
    near[0, [1, 2]] = True
    S = exact_scores(q, c, "cosine")
    assert rows_of(r.columns) == oracle(S, np.array([[0, 0]]), {
        "num_negatives": 2, "false_negative_eps": 1e-6}, near)


def test_random_sampling_is_seeded_and_block_independent() -> None:
    q, c, pairs = draw(3, 12, 60, 5, "normal")
    opts = {"num_negatives": 3, "range_max": 15, "sampling": "random"}
    a = mine_negatives(q, c, pairs, seed=7, **opts)
    b = mine_negatives(q, c, pairs, seed=7, block_rows=1, chunk_rows=7, **opts)
    other = mine_negatives(q, c, pairs, seed=8, **opts)
    assert rows_of(a.columns) == rows_of(b.columns)
    assert rows_of(a.columns) != rows_of(other.columns)
    window = {(x, y, z) for x, y, z, _ in oracle(exact_scores(q, c, "cosine"), pairs,
                                                  {"num_negatives": 15, "range_max": 15})}
    assert all((x, y, z) in window for x, y, z, _ in rows_of(a.columns))
    assert len(a.columns["anchor"]) == 3 * len(np.unique(pairs, axis=0))
    # the ranks within a pair come best first, as sentence-transformers re-sorts its sample
    for x, y in set(zip(a.columns["anchor"].tolist(), a.columns["positive"].tolist(),
                        strict=True)):
        ranks = a.columns["rank"][(a.columns["anchor"] == x) & (a.columns["positive"] == y)]
        assert (np.diff(ranks) > 0).all()


def test_random_keys_are_uniform_enough() -> None:
    keys = random_keys(0, np.arange(2000), 10)
    first = np.argmin(keys, axis=1)
    counts = np.bincount(first, minlength=10)
    assert counts.min() > 140 and counts.max() < 260


def test_relative_margin_is_right_for_negative_scores() -> None:
    """s_p = -0.5, relative margin 0.1: keep s_n <= -0.55 (sentence-transformers before #3819
    kept s_n <= -0.45, more similar than the threshold it meant)."""
    q = np.array([[1.0, 0.0]])
    angles = np.array([120.0, 110.0, 115.0, 125.0, 140.0, 170.0])  # cos: -.5 -.34 -.42 -.57 ...
    c = np.stack([np.cos(np.radians(angles)), np.sin(np.radians(angles))], axis=1)
    r = mine_negatives(q, c, np.array([[0, 0]]), relative_margin=0.1, num_negatives=2,
                       range_max=5)
    assert r.columns["negative"].tolist() == [3, 4]
    assert (r.columns["score_an"] <= -0.55).all()


def test_output_formats(tmp_path) -> None:
    q, c, pairs = draw(4, 6, 30, 4, "normal")
    tri = mine_negatives(q, c, pairs, num_negatives=2, max_score=0.3)
    tup = mine_negatives(q, c, pairs, num_negatives=2, max_score=0.3, output_format="n-tuple")
    lab = mine_negatives(q, c, pairs, num_negatives=2, max_score=0.3,
                         output_format="labeled-pair")
    full = {}
    for a, p, n, _ in rows_of(tri.columns):
        full.setdefault((a, p), []).append(n)
    want = sorted((k, tuple(v)) for k, v in full.items() if len(v) == 2)
    got = sorted(((a, p), (n1, n2)) for a, p, n1, n2 in zip(
        *(tup.columns[k].tolist() for k in ("anchor", "positive", "negative_1", "negative_2")),
        strict=True))
    assert got == want
    positives = lab.columns["label"] == 1
    assert sorted(zip(lab.columns["anchor"][positives].tolist(),
                      lab.columns["candidate"][positives].tolist(), strict=True)) == sorted(
        {tuple(x) for x in pairs.tolist()})
    assert set(zip(lab.columns["anchor"][~positives].tolist(),
                   lab.columns["candidate"][~positives].tolist(), strict=True)) == {
        (a, n) for a, _, n, _ in rows_of(tri.columns)}
    short = tri.summary["short"]
    assert short["pairs"] == sum(1 for v in full.values() if len(v) < 2) + sum(
        1 for x in {tuple(x) for x in pairs.tolist()} if x not in full)
    assert short["pairs"] == tup.summary["short"]["pairs"]


def test_cli_rows_rescore_with_compute_corpus(cli, tmp_path) -> None:
    """compute --embeddings Q --corpus C --triplets rows gives d_ap = -score_ap and d_an =
    -score_an bit for bit (euclidean), and reads the distance from the file."""
    q, c, pairs = draw(5, 9, 40, 6, "normal", np.float32)
    for name, a in (("q", q), ("c", c), ("pairs", pairs)):
        np.save(tmp_path / f"{name}.npy", a)
    out = tmp_path / "negs.parquet"
    r = cli("mine-negatives", "--queries", tmp_path / "q.npy", "--corpus", tmp_path / "c.npy",
            "--pairs", tmp_path / "pairs.npy", "--similarity", "euclidean", "-o", out, "-f",
            "json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["pairs"] == len(np.unique(pairs, axis=0))
    recorded = json.loads(pq.read_schema(out).metadata[b"triplet_loss"])["params"]
    assert recorded["range_max"] == summary["range_max"] == summary["params"]["range_max"] > 0
    rows = cli("mine-negatives", "--queries", tmp_path / "q.npy", "--corpus", tmp_path / "c.npy",
               "--pairs", tmp_path / "pairs.npy", "--similarity", "euclidean", "-f", "jsonl")
    mined = jsonl_rows(rows.stdout)
    res = compute_loss(embeddings=str(tmp_path / "q.npy"), corpus=str(tmp_path / "c.npy"),
                       triplets=str(out), reduction="none")
    assert res.summary["params"]["distance"] == "euclidean"
    assert res.summary["warnings"] == []
    np.testing.assert_array_equal(res.d_ap, -mined["score_ap"])
    np.testing.assert_array_equal(res.d_an, -mined["score_an"])
    np.testing.assert_array_equal(res.triplets[:, 2], mined["negative"])
    lone = compute_loss(embeddings=str(tmp_path / "c.npy"), triplets=str(out))
    assert any("--corpus" in w for w in lone.summary["warnings"])
    queries_only = cli("compute", "--embeddings", tmp_path / "q.npy", "--triplets", out)
    assert queries_only.exit_code == 1
    assert queries_only.stderr.endswith(f"{out}: was mined from a corpus of 40 rows (positive "
                                        f"and negative index it; {tmp_path / 'q.npy'} has 9): "
                                        "give the corpus with --corpus\n")
    own = tmp_path / "own.parquet"  # the queries are the corpus: no --corpus to ask for
    assert cli("mine-negatives", "--queries", tmp_path / "c.npy", "--corpus", tmp_path / "c.npy",
               "--pairs", tmp_path / "pairs.npy", "-o", own, "-q").exit_code == 0
    assert compute_loss(embeddings=str(tmp_path / "c.npy"), triplets=str(own)).summary[
        "warnings"] == []


def test_threads_change_nothing() -> None:
    q, c, pairs = draw(6, 50, 400, 8, "normal", np.float32)
    one = mine_negatives(q, c, pairs, threads=1, num_negatives=5, relative_margin=0.05)
    two = mine_negatives(q, c, pairs, threads=2, num_negatives=5, relative_margin=0.05,
                         block_rows=7, chunk_rows=33)
    for k, v in one.columns.items():
        np.testing.assert_array_equal(two.columns[k], v)
    assert one.summary["scores"] == two.summary["scores"]


def test_preset_and_usage_errors() -> None:
    q, c, pairs = draw(7, 4, 30, 3, "normal")
    r = mine_negatives(q, c, pairs, preset="sentence-transformers")
    assert r.summary["params"]["margin_positive"] == "hardest"
    assert r.summary["params"]["sources"]["margin_positive"] == "preset sentence-transformers"
    from triplet_cli.errors import UsageError

    with pytest.raises(UsageError, match="range-min"):
        mine_negatives(q, c, pairs, range_min=5, range_max=5)
    with pytest.raises(UsageError, match="nan"):
        mine_negatives(q, c, pairs, absolute_margin=float("nan"))
    with pytest.raises(UsageError, match="preset 'torch' has no mine-negatives"):
        mine_negatives(q, c, pairs, preset="torch")


def test_dask_workers_give_the_same_bytes(cli, tmp_path) -> None:
    pytest.importorskip("distributed")
    q, c, pairs = draw(8, 30, 200, 6, "normal", np.float32)
    for name, a in (("q", q), ("c", c), ("pairs", pairs)):
        np.save(tmp_path / f"{name}.npy", a)
    argv = ("mine-negatives", "--queries", tmp_path / "q.npy", "--corpus", tmp_path / "c.npy",
            "--pairs", tmp_path / "pairs.npy", "--relative-margin", "0.05", "-f", "csv")
    here = cli(*argv)
    there = cli(*argv, "--scheduler", "local", "--workers", "2")
    assert here.exit_code == there.exit_code == 0, there.stderr
    assert here.stdout == there.stdout


def test_fail_above_counts_short_pairs(cli, tmp_path) -> None:
    """--fail-above X: exit 3 when more than a fraction X of the pairs got fewer than K; the
    report is still printed, and the JSON names the short pairs' queries."""
    q, c, pairs = draw(9, 10, 60, 4, "normal")
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "c.npy", c)
    np.save(tmp_path / "pairs.npy", pairs)
    argv = ("mine-negatives", "--queries", tmp_path / "q.npy", "--corpus", tmp_path / "c.npy",
            "--pairs", tmp_path / "pairs.npy", "--max-score", "0.7", "--range-max", "6",
            "-f", "json", "-q")
    r = cli(*argv)
    assert r.exit_code == 0, r.stderr
    short = json.loads(r.stdout)["short"]
    assert 0 < short["pairs"] < len(pairs)
    res = mine_negatives(q, c, pairs, max_score=0.7, range_max=6)
    got: dict[tuple[int, int], int] = {}
    for a, p, _, _ in rows_of(res.columns):
        got[(a, p)] = got.get((a, p), 0) + 1
    lacking = {(a, p) for a, p in pairs.tolist() if got.get((a, p), 0) < 3}
    assert short["pairs"] == len(lacking)
    assert short["named"] == sorted({a for a, _ in lacking})
    fraction = short["pairs"] / json.loads(r.stdout)["pairs"]
    failed = cli(*argv, "--fail-above", str(fraction * 0.99))
    assert failed.exit_code == 3
    assert failed.stderr.endswith(f"{short['pairs']} of {len(pairs)} pairs ({fraction:.1%}) got "
                                  "fewer than --num-negatives 3\n")
    assert json.loads(failed.stdout)["gates"] == [{"metric": "short_fraction",
                                                   "at_most": fraction * 0.99,
                                                   "value": fraction, "passed": False}]
    held = cli(*argv, "--fail-above", str(fraction))
    assert held.exit_code == 0 and json.loads(held.stdout)["gates"][0]["passed"] is True


def test_one_class_everywhere_is_refused() -> None:
    """With labels, a corpus of the queries' one class has no negative for anyone: refused as
    mine refuses a single class (it gave zero rows, with advice to widen --range-max)."""
    x = np.random.default_rng(8).normal(size=(12, 4))
    pairs = np.array([(0, 1), (2, 3)])
    with pytest.raises(InputError, match="one class: with labels no row can be a negative"):
        mine_negatives(x, x, pairs, labels=np.full(12, 7))
    assert mine_negatives(x, x, pairs, labels=np.arange(12) % 2).columns["negative"].size


@pytest.mark.parametrize(("limit", "kept"), [({"max_score": 0.5}, [1, 2]),
                                             ({"min_score": 0.25}, [1, 2]),
                                             ({"max_score": 0.25}, [2, 3])])
def test_a_score_equal_to_its_limit_is_kept(limit: dict, kept: list[int]) -> None:
    """SPEC 9: --max-score drops s > max and --min-score s < min; exact binary scores."""
    q = np.array([[1.0, 0.0]])
    c = np.array([[1.0, 0.0], [0.5, 0.0], [0.25, 0.0], [0.125, 0.0]])
    r = mine_negatives(q, c, np.array([[0, 0]]), similarity="dot", num_negatives=2,
                       range_max=3, **limit)
    assert r.columns["negative"].tolist() == kept
    assert r.columns["score_an"].tolist() == [c[j, 0] for j in kept]


def test_repeated_pairs_are_kept_once_and_counted() -> None:
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    c = np.array([[1.0, 0.1], [0.9, 0.0], [0.0, 1.0], [0.5, 0.5]])
    r = mine_negatives(q, c, np.array([[0, 1], [0, 1], [1, 2]]), num_negatives=1)
    assert r.summary["pairs"] == 2
    assert "1 repeated (query, positive) pairs: each kept once" in r.summary["warnings"]
    assert sorted(set(zip(r.columns["anchor"].tolist(), r.columns["positive"].tolist(),
                          strict=True))) == [(0, 1), (1, 2)]


def test_underflowing_powers_are_refused_and_manhattan_ranks_tiny_values() -> None:
    rng = np.random.default_rng(5)
    q, c = rng.random((4, 3)) * 5e-4, rng.random((10, 3)) * 5e-4
    pairs = np.array([[i, i] for i in range(4)])
    with pytest.raises(InputError, match="powers are below float64's smallest normal"):
        mine_negatives(q, c, pairs, similarity="minkowski", p=100)
    tiny = mine_negatives(q * 1e-166, c * 1e-166, pairs, similarity="manhattan")
    plain = mine_negatives(q, c, pairs, similarity="manhattan")
    assert tiny.columns["negative"].tolist() == plain.columns["negative"].tolist()
