"""evaluate: retrieval metrics against a brute-force numpy oracle, the worked example pinned,
block-size and thread independence, presets, calibration, and the CLI's outputs and gate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from cli_helpers import csv_rows, jsonl_rows, ok
from hypothesis import given
from hypothesis import strategies as st
from test_mining import DISTS, MINING, Dist, build
from test_topk import exact_matrix

from triplet_cli import evaluate
from triplet_cli.calibration import calibrate

# ---- the oracle: whole distance matrix, a Python loop per query ----------------------------


def oracle(D: np.ndarray, qy: np.ndarray, ry: np.ndarray, own: bool, k: str | int,
           at: tuple[int, ...], self_match: str = "index", map_divisor: str = "r",
           recall: str = "hit") -> tuple[list[dict], int]:
    """Per query: R and every metric (None when R = 0), from the neighbours sorted by
    (exact distance, index); and the k used."""
    n, m = D.shape
    r_of = [int((ry == y).sum()) - int(own) for y in qy]
    kk = {"max-bin-count": max(r_of), "all": m - int(own)}.get(k, k)
    kk = min(int(kk), m - int(own))
    rows = []
    for i in range(n):
        order = sorted(range(m), key=lambda j: (D[i, j], j))
        if own and self_match == "index":
            order.remove(i)
        elif own:
            order = order[1:]
        rel = [int(ry[j] == qy[i]) for j in order]
        rel += [0] * (max(kk, *at) - len(rel))
        R = r_of[i]
        if R == 0:
            rows.append({"R": 0})
            continue
        prec = [sum(rel[:t + 1]) / (t + 1) for t in range(len(rel))]
        first = next((t + 1 for t in range(kk) if rel[t]), 0)
        row = {"R": R, "nn": order[0], "p_at_1": rel[0],
               "r_precision": sum(rel[:min(R, kk)]) / min(R, kk),
               "ap_at_r": sum(prec[t] * rel[t] for t in range(min(R, kk))) / R,
               "mrr": 1 / first if first else 0.0, "first": first}
        for K in at:
            row[f"precision_at_{K}"] = sum(rel[:K]) / K
            row[f"recall_at_{K}"] = float(any(rel[:K])) if recall == "hit" else sum(rel[:K]) / R
            div = R if map_divisor == "r" else min(K, R)
            row[f"map_at_{K}"] = sum(prec[t] * rel[t] for t in range(K)) / div
            # sentence-transformers' compute_dcg_at_k, on the ranking and on R relevant rows
            dcg = sum(rel[t] / math.log2(t + 2) for t in range(K))
            row[f"ndcg_at_{K}"] = dcg / sum(1 / math.log2(t + 2) for t in range(min(R, K)))
            row[f"mrr_at_{K}"] = next((1 / (t + 1) for t in range(K) if rel[t]), 0.0)
        rows.append(row)
    return rows, kk


def averaged(rows: list[dict], qy: np.ndarray, key: str, how: str) -> float:
    scored = [(r[key], y) for r, y in zip(rows, qy, strict=True) if r["R"]]
    if how == "micro":
        return sum(v for v, _ in scored) / len(scored)
    classes = sorted({y for _, y in scored})
    return sum(np.mean([v for v, y in scored if y == c]) for c in classes) / len(classes)


NAMES = {"p_at_1": "precision_at_1", "r_precision": "r_precision", "ap_at_r": "map_at_r",
         "mrr": "mrr"}
EVAL_DISTS = [d for d in DISTS if d.placement in ("none", "difference")]


@MINING
@given(data=st.data(), dist=st.sampled_from(EVAL_DISTS))
def test_evaluate_equals_brute_force(data, dist: Dist) -> None:
    n = data.draw(st.integers(3, 30), "queries")
    own = data.draw(st.booleans(), "self-retrieval")
    m = n if own else data.draw(st.integers(2, 30), "reference rows")
    d = data.draw(st.integers(1, 6), "d")
    layout = data.draw(st.sampled_from(["integers", "normal", "near"]), "layout")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), "dtype")
    seed = data.draw(st.integers(0, 2**16), "seed")
    classes = data.draw(st.integers(2, 5), "classes")
    x, y = build(n + m, d, dtype, layout, classes, seed)
    q, qy = x[:n], y[:n]
    r, ry = (q, qy) if own else (x[n:], y[n:])
    k = data.draw(st.sampled_from(["max-bin-count", "all", 1, 3, 50]), "k")
    at = tuple(sorted(data.draw(st.sets(st.integers(1, 12), min_size=1, max_size=3), "at")))
    options = dict(average=data.draw(st.sampled_from(["micro", "macro"]), "average"),
                   self_match=data.draw(st.sampled_from(["index", "first"]), "self_match"),
                   map_divisor=data.draw(st.sampled_from(["r", "min-k-r"]), "map_divisor"),
                   recall=data.draw(st.sampled_from(["hit", "fraction"]), "recall"))
    r_count = [(ry == c).sum() - own for c in qy]
    if max(r_count) < 1 or np.unique(ry).size < 2:
        return  # refused as bad input (tested elsewhere)
    block = data.draw(st.sampled_from([None, 1, 4]), "block_rows")
    got = evaluate(q, qy, reference=None if own else r, reference_labels=None if own else ry,
                   k=str(k), at=",".join(map(str, at)), block_rows=block, threads=1,
                   **options, **dist.api())
    D = exact_matrix(q, r, dist)
    rows, kk = oracle(D, qy, ry, own, k, at, options["self_match"], options["map_divisor"],
                      options["recall"])
    assert got.summary["k"] == kk
    assert got.rows["R"].tolist() == [row["R"] for row in rows]
    scored = got.rows["R"] > 0
    for i in np.flatnonzero(scored):
        assert got.rows["nn"][i] == rows[i]["nn"]
        assert got.rows["first_relevant_rank"][i] == rows[i]["first"]
        for key in ("p_at_1", "r_precision", "ap_at_r"):
            assert got.rows[key][i] == pytest.approx(rows[i][key], abs=1e-12)
    assert np.isnan(got.rows["ap_at_r"][~scored]).all()
    metrics = got.metrics[0]
    for key, name in NAMES.items():
        assert metrics[name] == pytest.approx(averaged(rows, qy, key, options["average"]),
                                              abs=1e-12)
    for K in at:
        for name in (f"precision_at_{K}", f"recall_at_{K}", f"map_at_{K}", f"ndcg_at_{K}",
                     f"mrr_at_{K}"):
            assert metrics[name] == pytest.approx(averaged(rows, qy, name, options["average"]),
                                                  abs=1e-12)
    assert got.summary["excluded_queries"] == int((~scored).sum())


# ---- the worked example (SPEC section 7's line, as retrieval) ------------------------------

LINE = np.array([[0.0], [1.0], [3.0], [2.0], [5.0]])
LINE_LABELS = np.array([0, 0, 0, 1, 1])


def test_worked_example_pinned() -> None:
    """By hand: k = 2 (largest class 3, minus the query). Query 1 has rows 0 and 3 at distance 1
    (row 0 first, the lower index); query 2's second and third neighbours tie at 2 (a tie at
    k), query 3's first two tie at 1 (a tie at R = 1)."""
    r = evaluate(LINE, LINE_LABELS, at="1,2")
    assert r.summary["k"] == 2
    assert r.rows["nn"].tolist() == [1, 0, 3, 1, 2]
    assert r.rows["first_relevant_rank"].tolist() == [1, 1, 2, 0, 2]
    assert r.rows["r_precision"].tolist() == [0.5, 0.5, 0.5, 0.0, 0.0]
    assert r.rows["ap_at_r"].tolist() == [0.5, 0.5, 0.25, 0.0, 0.0]
    m = r.metrics[0]
    assert m["precision_at_1"] == 0.4 and m["r_precision"] == pytest.approx(0.3)
    assert m["map_at_r"] == 0.25 and m["mrr"] == pytest.approx(0.6)
    assert m["precision_at_2"] == pytest.approx(0.4) and m["recall_at_2"] == pytest.approx(0.8)
    assert m["map_at_2"] == pytest.approx((0.5 + 0.5 + 0.25 + 0 + 0.5) / 5)
    # NDCG@2 with gains 1 and g = 1/log2(3): queries 0, 1 rank (1, 0) of R = 2, query 2 (0, 1),
    # query 3 none, query 4 (0, 1) of R = 1.
    g = 1 / math.log2(3)
    assert m["ndcg_at_2"] == pytest.approx((2 / (1 + g) + g / (1 + g) + 0 + g) / 5, abs=1e-15)
    assert m["ndcg_at_1"] == m["precision_at_1"] == m["mrr_at_1"]
    assert m["mrr_at_2"] == pytest.approx((1 + 1 + 0.5 + 0 + 0.5) / 5)  # first relevant <= 2
    c = r.summary["checkpoints"][0]
    assert (c["ties_at_k"], c["ties_at_r"]) == (1, 2)
    macro = evaluate(LINE, LINE_LABELS, average="macro").metrics[0]
    assert macro["map_at_r"] == pytest.approx((1.25 / 3 + 0) / 2)
    assert macro["precision_at_1"] == pytest.approx((2 / 3 + 0) / 2)
    # Calibration on nearest distances (1 same, 1 same, 1 other, 1 other, 2 other): t = 1 gives
    # precision 0.5, recall 1, F1 2/3; t = 2 gives F1 4/7. No threshold reaches precision 0.99.
    assert c["calibration"]["best_f1"] == {"threshold": 1.0, "precision": 0.5, "recall": 1.0,
                                           "f1": pytest.approx(2 / 3)}
    assert c["calibration"]["target"]["threshold"] is None


def test_presets_differ_where_the_frameworks_do() -> None:
    """sentence-transformers divides MAP@k by min(k, R) and its recall@k is a fraction of R
    (InformationRetrievalEvaluator.compute_metrics); TF Similarity drops the first lookup."""
    st_ = evaluate(LINE, LINE_LABELS, preset="sentence-transformers", distance="euclidean",
                   at="2").metrics[0]
    # map@2: queries 0, 1: (1 + 0) / min(2, 2); query 2: (1/2) / 2; query 4: (1/2) / 1.
    assert st_["map_at_2"] == pytest.approx((0.5 + 0.5 + 0.25 + 0 + 0.5) / 5)
    assert st_["recall_at_2"] == pytest.approx((0.5 + 0.5 + 0.5 + 0 + 1) / 5)
    dup = np.array([[0.0], [0.0], [4.0], [4.0]])
    index = evaluate(dup, [0, 0, 1, 1])
    first = evaluate(dup, [0, 0, 1, 1], self_match="first")
    assert index.rows["nn"].tolist() == [1, 0, 3, 2]
    # Row 1's first neighbour is row 0 (distance 0, lower index): dropping "position 0" drops
    # the duplicate, not row 1 itself, which then finds itself.
    assert first.rows["nn"].tolist() == [1, 1, 3, 3]
    preset = evaluate(dup, [0, 0, 1, 1], preset="tf-similarity", distance="euclidean")
    assert preset.rows["nn"].tolist() == [1, 1, 3, 3]
    assert preset.summary["params"]["sources"]["self_match"] == "preset tf-similarity"
    assert any("dropped another row" in w for w in first.summary["warnings"])


def test_block_rows_and_threads_change_nothing() -> None:
    x, y = build(157, 7, np.float32, "normal", 9, 3)
    runs = [evaluate([x, x[::-1].copy()], y, block_rows=b, threads=t, at="1,3,20")
            for b, t in ((None, 2), (1, 1), (13, 2), (64, 1))]
    for r in runs[1:]:
        assert json.dumps(r.summary, default=str) == json.dumps(runs[0].summary, default=str)
        for c in r.rows:
            np.testing.assert_array_equal(r.rows[c], runs[0].rows[c])


def test_calibration_target_and_best_threshold() -> None:
    d = np.array([0.1, 0.2, 0.2, 0.3, 0.5, 0.9])
    same = np.array([True, True, False, True, False, True])
    result, curve = calibrate(d, same, ("precision", 0.75))
    assert curve.thresholds.tolist() == [0.1, 0.2, 0.3, 0.5, 0.9]
    assert curve.precision.tolist() == [1.0, 2 / 3, 0.75, 0.6, 4 / 6]
    assert result["target"]["threshold"] == 0.3  # the largest with precision >= 0.75
    assert result["best_f1"]["threshold"] == 0.9  # F1 8/10 at 0.9 (the last argmax)
    recall, _ = calibrate(d, same, ("recall", 0.5))
    assert recall["target"]["threshold"] == 0.2  # the smallest with recall >= 0.5
    # F1 ties: 2/3 at 1 (TP 1, FN 1) and at 4 (TP 2, FP 2): the last argmax is 4
    tied, _ = calibrate(np.array([1.0, 2, 3, 4]), np.array([True, False, False, True]),
                        ("precision", 0.5))
    assert tied["best_f1"]["threshold"] == 4.0


def test_reference_with_an_unseen_class_is_counted_not_scored() -> None:
    q = np.array([[0.0], [10.0], [20.0]])
    ref = np.array([[0.5], [1.0], [9.0], [11.0]])
    r = evaluate(q, [0, 1, 7], reference=ref, reference_labels=[0, 0, 1, 1])
    assert r.rows["R"].tolist() == [2, 2, 0]
    assert r.summary["excluded_queries"] == 1 and r.summary["k"] == 2
    assert r.metrics[0]["precision_at_1"] == 1.0
    assert any("excluded" in w for w in r.summary["warnings"])


def test_a_nested_list_is_one_checkpoint_and_a_list_of_matrices_several() -> None:
    x, y = np.random.default_rng(4).normal(size=(20, 3)), np.arange(20) % 2
    one = evaluate(x, y)
    assert evaluate(x.tolist(), y.tolist()).metrics == one.metrics
    assert evaluate([x, x.tolist()], y).metrics == one.metrics * 2


def test_library_gates_are_reported(sample: Path) -> None:
    r = evaluate(str(sample / "embeddings.npy"), str(sample / "labels.npy"),
                 fail_below=["map_at_r=1", "precision_at_1=0.1"])
    value = r.metrics[0]["map_at_r"]
    assert r.summary["gates"] == [
        {"metric": "map_at_r", "at_least": 1.0, "checkpoint": str(sample / "embeddings.npy"),
         "value": value, "passed": False},
        {"metric": "precision_at_1", "at_least": 0.1,
         "checkpoint": str(sample / "embeddings.npy"),
         "value": r.metrics[0]["precision_at_1"], "passed": True}]


def test_reference_that_is_the_queries_is_said(tmp_path: Path) -> None:
    """Every query would find itself first: a warning, for the same array, the same file, a
    hard link to it, and (said so) a copy; not for other rows of that shape."""
    x, y = np.random.default_rng(2).normal(size=(30, 3)), np.arange(30) % 3
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "linked.npy").hardlink_to(tmp_path / "x.npy")
    itself = "--reference is the --embeddings input"
    for q, ref in ((x, x), (str(tmp_path / "x.npy"), str(tmp_path / "linked.npy"))):
        r = evaluate(q, y, reference=ref, reference_labels=y)
        assert any(w.startswith(itself) for w in r.summary["warnings"])
        assert r.metrics[0]["precision_at_1"] == 1.0
    copy = evaluate(x, y, reference=x.copy(), reference_labels=y)
    assert "--reference holds the --embeddings rows (a copy): every query finds its own row " \
        "first" in " ".join(copy.summary["warnings"])
    other = x.copy()
    other[-1, -1] += 1.0  # one value apart
    moved = evaluate(x, y, reference=other, reference_labels=y)
    assert not any(w.startswith("--reference") for w in moved.summary["warnings"])


def test_a_reference_table_gives_its_own_labels(tmp_path: Path) -> None:
    """As --labels defaults to the --embeddings file's label column, --reference-labels defaults
    to the --reference file's (it was required)."""
    import pyarrow as pa

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 4
    r, ry = rng.normal(size=(30, 3)), np.arange(30) % 3
    pq.write_table(pa.table({"embedding": list(r), "label": ry}), tmp_path / "r.parquet")
    given = evaluate(x, y, reference=r, reference_labels=ry)
    for ref in (str(tmp_path / "r.parquet"), pa.table({"embedding": list(r), "label": ry})):
        assert evaluate(x, y, reference=ref).metrics == given.metrics


# ---- CLI -----------------------------------------------------------------------------------

TWO = ("evaluate", "--embeddings", "embeddings.npy", "--embeddings", "embeddings_later.npy",
       "--labels", "labels.npy")


@pytest.fixture
def at_sample(sample: Path, monkeypatch) -> Path:
    monkeypatch.chdir(sample)
    return sample


def test_cli_two_checkpoints_json(cli, at_sample) -> None:
    report = json.loads(ok(cli(*TWO, "-f", "json")))
    assert [c["name"] for c in report["checkpoints"]] == ["embeddings.npy",
                                                          "embeddings_later.npy"]
    assert report["k"] == 182 and report["excluded_queries"] == 0
    lib = evaluate(["embeddings.npy", "embeddings_later.npy"], "labels.npy")
    assert [c["metrics"] for c in report["checkpoints"]] == lib.metrics
    assert len(report["checkpoints"][0]["worst_classes"]) == 10
    top = json.loads(ok(cli(*TWO, "-f", "json", "--top", "2")))  # --top trims the table only
    assert len(top["checkpoints"][0]["worst_classes"]) == 10
    assert report["inputs"]["embeddings"][1]["path"] == "embeddings_later.npy"


def test_cli_rows_and_outputs(cli, at_sample, tmp_path: Path) -> None:
    rows = jsonl_rows(ok(cli(*TWO, "-f", "jsonl")))
    assert list(rows) == ["checkpoint", "query", "label", "R", "nn", "nn_distance", "nn_label",
                          "first_relevant_rank", "p_at_1", "r_precision", "ap_at_r"]
    assert len(rows["query"]) == 2 * 1797
    one = csv_rows(ok(cli(*TWO[:3], *TWO[5:], "-f", "csv")))
    assert "checkpoint" not in one and len(one["query"]) == 1797
    np.testing.assert_array_equal(one["ap_at_r"], rows["ap_at_r"][:1797])
    out = tmp_path / "rows.parquet"
    ok(cli(*TWO, "-o", out, "-f", "json"))
    assert pq.read_table(out).num_rows == 2 * 1797
    # .npy: the numeric columns, the checkpoint first (its rows were not told apart before)
    ok(cli(*TWO, "-o", tmp_path / "rows.npy", "-f", "json"))
    matrix = np.load(tmp_path / "rows.npy")
    assert matrix.shape == (2 * 1797, len(rows))
    for i, c in enumerate(rows):
        np.testing.assert_array_equal(matrix[:, i], rows[c], err_msg=c)


def test_cli_table_fits_and_names_checkpoints(cli, at_sample, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = ok(cli(*TWO))
    assert "checkpoint 2      embeddings_later.npy" in text
    assert "worst classes" in text and "same  │" in text
    assert max(map(len, text.splitlines())) <= 80


def test_column_flags_without_a_table_are_said(cli, at_sample) -> None:
    r = cli(*TWO, "--column", "emb", "--label-column", "y", "-f", "json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["warnings"] == [
        f"{f} has no effect: no input is a table (.parquet, .arrow, .csv, .jsonl, a data frame)"
        for f in ("--column", "--label-column")]


def test_fail_below_gates_every_checkpoint(cli, at_sample) -> None:
    report = json.loads(ok(cli(*TWO, "-f", "json")))
    low = min(c["metrics"]["map_at_r"] for c in report["checkpoints"])
    high = max(c["metrics"]["map_at_r"] for c in report["checkpoints"])
    assert cli(*TWO, "-f", "json", "--fail-below", f"map_at_r={low}").exit_code == 0
    failed = cli(*TWO, "-f", "json", "--fail-below", f"map_at_r={high}")
    assert failed.exit_code == 3 and json.loads(failed.stdout)["checkpoints"]
    missed = [c for c in report["checkpoints"] if c["metrics"]["map_at_r"] < high]
    assert failed.stderr == ("triplet-loss: gate failed: --fail-below: " + "; ".join(
        f"map_at_r {c['metrics']['map_at_r']!r} < {high!r} ({c['name']})" for c in missed)
        + "\n")
    assert cli(*TWO, "-f", "json", "--fail-below", "precision_at_1=0.9",
               "--fail-below", "recall_at_10=0.999").exit_code == 3


def test_fail_drop_compares_later_checkpoints_with_the_first(cli, at_sample) -> None:
    """A CI job fails when a new checkpoint is worse than the baseline by more than D (a
    fixed --fail-below floor cannot say that)."""
    first, later = (c["metrics"] for c in json.loads(ok(cli(*TWO, "-f", "json")))["checkpoints"])
    drop = first["precision_at_1"] - later["precision_at_1"]
    assert drop > 0  # (sample_data's later checkpoint is worse)
    kept = cli(*TWO, "-f", "json", "--fail-drop", f"precision_at_1={drop + 1e-9}")
    assert kept.exit_code == 0 and json.loads(kept.stdout)["drops"][0]["passed"]
    failed = cli(*TWO, "-f", "json", "--fail-drop", f"precision_at_1={drop / 2}")
    assert failed.exit_code == 3
    entry = json.loads(failed.stdout)["drops"][0]
    assert (entry["baseline"], entry["checkpoint"]) == ("embeddings.npy", "embeddings_later.npy")
    assert entry["drop"] == first["precision_at_1"] - later["precision_at_1"]
    assert failed.stderr == (
        f"triplet-loss: gate failed: --fail-drop: precision_at_1 {first['precision_at_1']!r} "
        f"(embeddings.npy) -> {later['precision_at_1']!r} (embeddings_later.npy): a drop of "
        f"{drop:.6g} > {drop / 2!r}\n")
    one = cli("evaluate", "--embeddings", "embeddings.npy", "--labels", "labels.npy",
              "--fail-drop", "map_at_r=0.1")
    assert one.exit_code == 2 and "give --embeddings twice or more" in one.stderr
    assert cli(*TWO, "--fail-drop", "map_at_r=-0.1").exit_code == 2


def test_string_labels_and_parquet_rows(cli, tmp_path: Path) -> None:
    x = np.array([[0.0, 0], [0, 1], [5, 5], [5, 6], [9, 9]], np.float32)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "y.csv").write_text("label\ncat\ncat\ndog\ndog\nemu\n")
    out = tmp_path / "rows.parquet"
    r = cli("evaluate", "--embeddings", tmp_path / "x.npy", "--labels", tmp_path / "y.csv",
            "-o", out, "-f", "json", "-q")
    assert r.exit_code == 0, r.stderr
    table = pq.read_table(out).to_pydict()
    assert table["label"] == ["cat", "cat", "dog", "dog", "emu"]
    assert table["nn_label"][:4] == ["cat", "cat", "dog", "dog"]
    assert json.loads(r.stdout)["excluded_queries"] == 1


def test_plot_without_matplotlib_is_one_line(cli, at_sample, monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    r = cli(*TWO, "--plot", tmp_path / "p.png")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.strip() == ("triplet-loss: error: --plot needs matplotlib: pip install "
                                "'triplet-loss[plot]'")
    assert not (tmp_path / "p.png").exists()


def test_plot_is_drawn(cli, at_sample, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    ok(cli(*TWO, "--plot", tmp_path / "p.png", "-f", "json"))
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_library_accepts_paths_and_reports_nan_free_json(sample: Path) -> None:
    r = evaluate(sample / "embeddings.npy", sample / "labels.npy", preset="pytorch-metric-learning")
    assert all(math.isfinite(v) for v in r.metrics[0].values())
    assert r.summary["params"]["sources"]["k"] == "preset pytorch-metric-learning"


def test_k_below_r_and_k_beyond_the_reference_are_said() -> None:
    short = evaluate(LINE, LINE_LABELS, k=1)
    assert short.summary["k"] == 1
    assert any("k = 1 is below R for 3 queries" in w for w in short.summary["warnings"])
    capped = evaluate(LINE, LINE_LABELS, k=99)
    assert capped.summary["k"] == 4
    assert any("--k 99: the reference offers 4 neighbours" in w
               for w in capped.summary["warnings"])
    assert capped.metrics[0] == evaluate(LINE, LINE_LABELS, k="all").metrics[0]


def test_string_labels_as_json_lines(cli, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.array([[0.0, 0], [0, 1], [5, 5], [5, 6]], np.float32))
    (tmp_path / "y.csv").write_text("label\ncat\ncat\ndog\ndog\n")
    r = cli("evaluate", "--embeddings", tmp_path / "x.npy", "--labels", tmp_path / "y.csv",
            "-f", "jsonl")
    assert jsonl_rows(ok(r))["label"].tolist() == ["cat", "cat", "dog", "dog"]


def test_batch_hard_loss_column_is_mines() -> None:
    from triplet_cli import mine_triplets

    x, y = build(120, 5, np.float32, "normal", 6, 11)
    got = evaluate([x, 2 * x], y, batch_hard_loss=True, margin=0.5, block_rows=17)
    for i, scale in enumerate((1, 2)):
        mined = mine_triplets(scale * x, y, strategy="hard", positive_strategy="hard",
                              margin=0.5)
        assert got.metrics[i]["batch_hard_loss"] == mined.value
    assert "batch_hard_loss" not in evaluate(x, y).metrics[0]


def test_rows_number_checkpoints_as_the_table_does() -> None:
    x, y = np.random.default_rng(6).normal(size=(20, 3)), np.arange(20) % 2
    rows = evaluate([x, x * 2], y).rows
    assert np.unique(rows["checkpoint"]).tolist() == [1, 2]


def test_plot_onto_a_folder_is_refused_before_any_work(cli, at_sample, tmp_path: Path) -> None:
    (tmp_path / "d.png").mkdir()
    r = cli("evaluate", "--embeddings", "embeddings.npy", "--labels", "labels.npy", "--plot",
            tmp_path / "d.png")
    assert r.exit_code == 1 and r.stderr.endswith("d.png: is a directory; --plot needs a file "
                                                  "name\n")


def test_plot_onto_a_named_pipe_is_refused(cli, at_sample, tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "p.png")
    r = cli("evaluate", "--embeddings", "embeddings.npy", "--labels", "labels.npy", "--plot",
            tmp_path / "p.png")
    assert r.exit_code == 2
    assert r.stderr.endswith("p.png is not a regular file (a named pipe or a device): it would "
                             "be replaced by one\n")


def test_labels_with_control_characters_stay_in_their_cell(cli, tmp_path: Path) -> None:
    """A label with a newline split a worst-classes row in two; one with ESC reached the
    terminal as an escape sequence."""
    import pyarrow as pa

    rng = np.random.default_rng(6)
    labels = ["line1\nline2", "\x1b[31mred", "tab\there", "plain"]
    x = rng.normal(size=(12, 4)).astype(np.float32)
    pq.write_table(pa.table({"embedding": list(x), "label": [labels[i % 4] for i in range(12)]}),
                   tmp_path / "odd.parquet")
    r = cli("evaluate", "--embeddings", tmp_path / "odd.parquet", "--top", "4")
    assert r.exit_code == 0, r.stderr
    assert "\x1b" not in r.stdout and "\t" not in r.stdout
    assert "line1\\nline2" in r.stdout and "\\x1b[31mred" in r.stdout


def test_each_checkpoint_ranks_against_its_own_reference() -> None:
    """--reference once per checkpoint: checkpoint i's queries against reference i."""
    q = np.array([[0.0], [10.0]])
    r = evaluate([q, q], [0, 1], reference=[q, q[::-1].copy()], reference_labels=[0, 1])
    assert [m["precision_at_1"] for m in r.metrics] == [1.0, 0.0]


def test_jsonl_rows_are_strict_json(cli, tmp_path: Path) -> None:
    """A lone query's metrics are NaN in the rows: null in JSON lines (RFC 8259 has no NaN)."""
    np.save(tmp_path / "x.npy", np.array([[0.0], [1.0], [5.0]]))
    np.save(tmp_path / "y.npy", np.array([0, 0, 1]))
    result = cli("evaluate", "--embeddings", tmp_path / "x.npy", "--labels",
                 tmp_path / "y.npy", "-f", "jsonl")
    assert result.exit_code == 0 and "R = 0" in result.stderr
    out = result.stdout

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    rows = [json.loads(line, parse_constant=refuse) for line in out.splitlines()]
    assert rows[2]["R"] == 0 and rows[2]["p_at_1"] is None


def test_each_checkpoint_is_checked_for_underflow_on_its_own(tmp_path: Path) -> None:
    """A checkpoint whose rows lie within 5e-4 has 100th powers below float64's smallest
    normal number: refused by its own name, though the other checkpoint is fine. Manhattan
    takes no power: values of 1e-170 rank."""
    from triplet_cli.errors import InputError

    rng = np.random.default_rng(2)
    y = np.arange(12) % 3
    np.save(tmp_path / "fine.npy", rng.random((12, 4)))
    np.save(tmp_path / "near.npy", rng.random((12, 4)) * 5e-4)
    with pytest.raises(InputError, match="powers are below float64's smallest normal") as e:
        evaluate([str(tmp_path / "fine.npy"), str(tmp_path / "near.npy")], y, p=100)
    assert e.value.path.endswith("near.npy")
    tiny = rng.random((12, 4)) * 1e-170
    assert evaluate(tiny, y, distance="manhattan").metrics == evaluate(tiny * 1e170, y,
                                                                       distance="manhattan").metrics
