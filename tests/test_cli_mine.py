"""`triplet-loss mine` end to end: reports, row formats, outputs, presets, exit codes, bad input.

Runs on sample_data (1797 digit embeddings, 10 classes). Row formats use one positive per anchor
(`--positive-strategy hard`: 1797 triplets) to keep stdout small; the default (every positive,
semi-hard) mines 321,192 triplets and is used for reports only. The bad-input table runs
through the shared harness (tests/hostile.py), as compute's does: each case in a fresh folder of
good inputs (x.npy: (8, 4) float32; y.npy: 4 classes of 2; lab.parquet: both, with string names).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import csv_rows, jsonl_rows, ok
from hostile import (
    OUT,
    Case,
    Maker,
    Table,
    both,
    copied,
    fifo,
    hardlink,
    npy,
    spoil,
    symlink,
    table,
    text,
)

from triplet_cli import compute_loss, mine_triplets

COLUMNS = ["anchor", "positive", "negative", "d_ap", "d_an", "loss"]
SUMMARY_KEYS = ("anchors", "anchors_without_positive", "anchors_without_negative", "triplets",
                "loss", "mean_nonzero", "active_fraction", "d_ap", "d_an", "labels", "params")
STAT_KEYS = ["mean", "std", "min", "p50", "max"]
N = 1797
ONE_POSITIVE = ("--positive-strategy", "hard")


@pytest.fixture
def mine(sample: Path) -> list[str]:
    return ["mine", "--embeddings", str(sample / "embeddings.npy"), "--labels",
            str(sample / "labels.npy")]


def as_rows(result) -> dict[str, np.ndarray]:
    t = result.triplets
    return {"anchor": t[:, 0], "positive": t[:, 1], "negative": t[:, 2], "d_ap": result.d_ap,
            "d_an": result.d_an, "loss": result.loss}


def assert_same_rows(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == COLUMNS
    for k in COLUMNS:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


# ---- reports ----------------------------------------------------------------------------------


def test_table_report(cli, mine) -> None:
    out = ok(cli(*mine, *ONE_POSITIVE, "--strategy", "hard", "--top", "3"))
    rows = jsonl_rows(ok(cli(*mine, *ONE_POSITIVE, "--strategy", "hard", "-f", "jsonl")))
    assert "triplet-loss mine" in out
    for key in ("loss (mean)", "anchors ", "anchors_without_positive", "anchors_without_negative",
                "triplets", "mean_nonzero", "active_fraction", "d_ap", "d_an",
                "3 hardest triplets", "anchor", "positive", "negative",
                "params: distance=euclidean"):
        assert key in out, key
    flat = " ".join(out.split())
    assert "strategy=hard (flag)" in flat and "positive_strategy=hard (flag)" in flat
    assert f"triplets {N}" in flat
    hardest = np.argsort(-rows["loss"], kind="stable")[:3]
    table = out.split("3 hardest triplets", 1)[1]
    positions = [table.index(f"{rows['loss'][i]:.6g}") for i in hardest]
    assert positions == sorted(positions), "hardest first"
    for i in hardest:
        assert re.search(rf"│\s+{rows['anchor'][i]} │\s+{rows['positive'][i]} │\s+"
                         rf"{rows['negative'][i]} │", table)


def test_json_keys_and_numbers(cli, mine, sample: Path) -> None:
    summary = json.loads(ok(cli(*mine, "-f", "json")))
    assert set(SUMMARY_KEYS) <= set(summary)
    assert list(summary)[:4] == list(SUMMARY_KEYS[:4])
    assert list(summary["d_ap"]) == STAT_KEYS and list(summary["d_an"]) == STAT_KEYS
    _, counts = np.unique(np.load(sample / "labels.npy"), return_counts=True)
    assert summary["labels"] == {"classes": 10, "smallest_class": int(counts.min()),
                                 "largest_class": int(counts.max())}
    assert summary["anchors"] == N
    assert summary["anchors_without_positive"] == summary["anchors_without_negative"] == 0
    params = summary["params"]
    assert {"strategy", "positive_strategy", "semi_hard_fallback", "semi_hard_threshold",
            "per_anchor", "active_only", "batch_size", "seed", "distance", "margin"} <= set(params)
    assert params["strategy"] == "semi-hard" and params["positive_strategy"] == "all"
    assert set(params["sources"]) == set(params) - {"sources"}
    # the library gives the same summary and these triplets
    lib = mine_triplets(str(sample / "embeddings.npy"), str(sample / "labels.npy"))
    assert summary["triplets"] == len(lib.triplets) == 321192
    for key in ("loss", "mean_nonzero", "active_fraction", "accuracy", "d_ap", "d_an"):
        assert summary[key] == lib.summary[key], key
    assert summary["loss"] == pytest.approx(lib.loss.mean(), rel=1e-12)


def test_json_summary_counts_skipped_anchors(cli, tmp_path: Path, sample: Path) -> None:
    labels = np.load(sample / "labels.npy").copy()
    labels[[5, 17, 40]] = [100, 101, 102]  # three classes of one row
    np.save(tmp_path / "labels.npy", labels)
    result = cli("mine", "--embeddings", sample / "embeddings.npy", "--labels",
                 tmp_path / "labels.npy", *ONE_POSITIVE, "-f", "json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["anchors_without_positive"] == 3
    assert summary["triplets"] == N - 3
    assert summary["labels"]["classes"] == 13 and summary["labels"]["smallest_class"] == 1
    assert result.stderr == ("triplet-loss: warning: 3 anchors have no positive (a class of one "
                             "row): skipped\n")
    assert ok(cli("mine", "--embeddings", sample / "embeddings.npy", "--labels",
                  tmp_path / "labels.npy", *ONE_POSITIVE, "-f", "json", "-q"))


# ---- rows -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_rows_on_stdout(cli, mine, sample: Path, fmt: str) -> None:
    out = ok(cli(*mine, *ONE_POSITIVE, "-f", fmt))
    rows = (jsonl_rows if fmt == "jsonl" else csv_rows)(out)
    assert out.count("\n") == N + (fmt == "csv")
    lib = mine_triplets(str(sample / "embeddings.npy"), str(sample / "labels.npy"),
                        positive_strategy="hard")
    assert_same_rows(rows, as_rows(lib))
    assert "hardest" not in out and "params" not in out


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".npy"])
def test_output_files(cli, mine, tmp_path: Path, sample: Path, suffix: str) -> None:
    out = tmp_path / f"mined{suffix}"
    ok(cli(*mine, *ONE_POSITIVE, "-o", out, "-q", "-f", "json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name], "no temp file left"
    lib = as_rows(mine_triplets(str(sample / "embeddings.npy"), str(sample / "labels.npy"),
                                positive_strategy="hard"))
    if suffix == ".npy":
        array = np.load(out)
        assert array.dtype == np.int64 and array.shape == (N, 3)
        np.testing.assert_array_equal(array, np.stack([lib["anchor"], lib["positive"],
                                                       lib["negative"]], axis=1))
        return
    if suffix == ".parquet":
        table = pq.read_table(out)
        assert [str(t) for t in table.schema.types] == ["int64"] * 3 + ["double"] * 3
        written = {k: table.column(k).to_numpy() for k in table.column_names}
    else:
        written = (csv_rows if suffix == ".csv" else jsonl_rows)(out.read_text())
    assert_same_rows(written, lib)


def test_readme_recipe_rescores_mined_triplets(cli, mine, tmp_path: Path, sample: Path) -> None:
    """mine -o t.parquet, then compute --triplets t.parquet: on the same embeddings it gives
    mine's numbers bit for bit; on the later checkpoint, compute_loss's."""
    t = tmp_path / "t.parquet"
    mined = jsonl_rows(ok(cli(*mine, *ONE_POSITIVE, "--strategy", "semi-hard", "-o", t,
                              "-f", "jsonl")))
    same = jsonl_rows(ok(cli("compute", "--embeddings", sample / "embeddings.npy",
                             "--triplets", t, "-f", "jsonl")))
    for k in COLUMNS:
        np.testing.assert_array_equal(same[k], mined[k], err_msg=k)
    later = ok(cli("compute", "--embeddings", sample / "embeddings_later.npy", "--triplets", t,
                   "-f", "json"))
    summary = json.loads(later)
    assert summary["count"] == N
    triplets = np.stack([mined["anchor"], mined["positive"], mined["negative"]], axis=1)
    expected = compute_loss(embeddings=str(sample / "embeddings_later.npy"), triplets=triplets)
    assert summary["loss"] == expected.summary["loss"]
    assert summary["loss"] != pytest.approx(mined["loss"].mean(), rel=1e-3)


def test_swap_is_recorded_and_rescored(cli, mine, tmp_path: Path, sample: Path) -> None:
    """mine --swap -o t.parquet: the file records swap, and compute --triplets on it gives
    mine's swapped d_an and losses bit for bit (params.sources: the triplets file)."""
    t = tmp_path / "t.parquet"
    mined = jsonl_rows(ok(cli(*mine, *ONE_POSITIVE, "--swap", "-o", t, "-f", "jsonl")))
    plain = jsonl_rows(ok(cli(*mine, *ONE_POSITIVE, "-f", "jsonl")))
    assert (mined["d_an"] <= plain["d_an"]).all() and (mined["d_an"] < plain["d_an"]).any()
    again = ok(cli("compute", "--embeddings", sample / "embeddings.npy", "--triplets", t,
                   "-f", "json", "-o", tmp_path / "again.jsonl"))
    assert json.loads(again)["params"]["sources"]["swap"] == "triplets file"
    same = jsonl_rows((tmp_path / "again.jsonl").read_text())
    for k in ("d_ap", "d_an", "loss"):
        np.testing.assert_array_equal(same[k], mined[k], err_msg=k)


# ---- labels from other files ------------------------------------------------------------------


@pytest.mark.parametrize("source", ["labels.csv", "labelled.parquet", "labelled.parquet:name"])
def test_string_and_parquet_labels_mine_the_same(cli, mine, sample: Path, source: str) -> None:
    """The digit words of labels.csv and the parquet columns partition the rows as labels.npy."""
    if source == "labels.csv":
        argv = ["mine", "--embeddings", sample / "embeddings.npy", "--labels",
                sample / "labels.csv"]
    else:
        argv = ["mine", "--embeddings", sample / "labelled.parquet"]
        if source.endswith(":name"):
            argv += ["--label-column", "name"]
    expected = ok(cli(*mine, *ONE_POSITIVE, "-f", "csv"))
    assert ok(cli(*argv, *ONE_POSITIVE, "-f", "csv")) == expected
    summary = json.loads(ok(cli(*argv, *ONE_POSITIVE, "-f", "json")))
    assert summary["labels"]["classes"] == 10
    assert set(summary["inputs"]) == {"embeddings", "labels"}


def test_mini_batches_through_the_cli(cli, mine, sample: Path) -> None:
    argv = (*mine, "--batch-size", "64", "--seed", "3", "--strategy", "hard")
    rows = csv_rows(ok(cli(*argv, "-f", "csv", "-q")))
    lib = mine_triplets(str(sample / "embeddings.npy"), str(sample / "labels.npy"),
                        batch_size=64, seed=3, strategy="hard")
    assert_same_rows(rows, as_rows(lib))
    result = cli(*argv, "-f", "json")
    summary = json.loads(result.stdout)
    assert summary["params"]["batch_size"] == 64 and summary["params"]["seed"] == 3
    assert summary["anchors_without_positive"] == lib.summary["anchors_without_positive"] > 0
    assert result.stderr == (f"triplet-loss: warning: {summary['anchors_without_positive']} "
                             "anchors have no positive (a class of one row in their mini-batch)"
                             ": skipped\ntriplet-loss: warning: the last mini-batch, the 5 rows "
                             "left over, holds no two rows of one class: it gives no triplet\n")


# ---- exit codes and presets -------------------------------------------------------------------


def test_fail_above_exits_3_and_still_reports(cli, mine) -> None:
    argv = (*mine, *ONE_POSITIVE, "--strategy", "hard")
    result = cli(*argv, "-f", "json", "--fail-above", "1.0")
    assert result.exit_code == 3 and isinstance(result.exception, SystemExit)
    loss = json.loads(result.stdout)["loss"]
    assert loss > 1.0
    table = cli(*argv, "--fail-above", "1.0")
    assert table.exit_code == 3 and "loss (mean)" in table.stdout
    assert cli(*argv, "-f", "json", "--fail-above", str(loss)).exit_code == 0
    assert cli(*argv, "-f", "json", "--fail-above", "100").exit_code == 0


PRESET_RUNS = {
    "tf-addons": ("--positive-strategy", "hard"),
    "tf-similarity": (),
    "sentence-transformers": (),
    "pytorch-metric-learning": ("--batch-size", "96"),  # batch-all: 2.5e6 triplets per 1797 rows
}


@pytest.mark.parametrize("preset", list(PRESET_RUNS))
def test_mining_presets_run(cli, mine, sample: Path, preset: str) -> None:
    extra = PRESET_RUNS[preset]
    result = cli(*mine, "--preset", preset, *extra, "-f", "json", "-q")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    sources = summary["params"]["sources"]
    assert f"preset {preset}" in sources.values()
    assert all(sources[k] == "flag" for k in ("positive_strategy", "batch_size")
               if f"--{k.replace('_', '-')}" in extra)
    options = {extra[0].lstrip("-").replace("-", "_"): extra[1]} if extra else {}
    if "batch_size" in options:
        options["batch_size"] = int(options["batch_size"])
    lib = mine_triplets(str(sample / "embeddings.npy"), str(sample / "labels.npy"),
                        preset=preset, **options)
    assert summary["triplets"] == len(lib.triplets) > 0
    assert summary["loss"] == lib.summary["loss"]
    assert np.isfinite(summary["loss"])


def test_explicit_flag_beats_preset(cli, mine) -> None:
    summary = json.loads(ok(cli(*mine, "--preset", "sentence-transformers", "--margin", "0.5",
                                "-f", "json")))
    params = summary["params"]
    assert params["margin"] == 0.5 and params["sources"]["margin"] == "flag"
    assert params["strategy"] == "hard" and params["sources"]["strategy"] == \
        "preset sentence-transformers"
    assert summary["triplets"] == N


# ---- bad input: one table, run by the shared harness (tests/hostile.py) ------------------------

ROWS, DIM = 8, 4
LABELS = np.array([0, 0, 1, 1, 2, 2, 3, 3])


def _vectors(rows: int = ROWS) -> pa.Array:
    values = np.random.default_rng(1).normal(size=rows * DIM).astype(np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values), DIM)


def _good_inputs(d: Path) -> None:
    np.save(d / "x.npy", np.random.default_rng(0).normal(size=(ROWS, DIM)).astype(np.float32))
    np.save(d / "y.npy", LABELS)
    pq.write_table(pa.table({"embedding": _vectors(), "label": pa.array(LABELS),
                             "name": pa.array([f"c{v}" for v in LABELS])}), d / "lab.parquet")


def spoil_zero_row(name: str, row: int) -> Maker:
    def make(d: Path, _: object) -> None:
        x = np.load(d / name)
        x[row] = 0
        np.save(d / name, x)
    return make


def mine_argv(x: str = "x.npy", y: str | None = "y.npy", *extra: str) -> tuple[str, ...]:
    labels = ("--labels", f"{{d}}/{y}") if y else ()
    return ("mine", "--embeddings", f"{{d}}/{x}", *labels, *extra)


CASES = [
    # -- labels that do not fit the embeddings
    Case("labels-length-differs", npy("y7.npy", LABELS[:7]), mine_argv("x.npy", "y7.npy", *OUT),
         1, r"/y7\.npy: 7 labels for 8 embedding rows in .*/x\.npy$"),
    Case("labels-csv-length-differs", text("y.csv", "label\n" + "a\n" * 9),
         mine_argv("x.npy", "y.csv", *OUT), 1, r"/y\.csv: 9 labels for 8 embedding rows"),
    Case("labels-longer", npy("y9.npy", np.arange(9) % 3), mine_argv("x.npy", "y9.npy", *OUT),
         1, r"/y9\.npy: 9 labels for 8 embedding rows in .*/x\.npy$"),
    Case("labels-parquet-length-differs", table("y6.parquet", {"label": pa.array(LABELS[:6])}),
         mine_argv("x.npy", "y6.parquet", *OUT), 1,
         r"/y6\.parquet: 6 labels for 8 embedding rows in .*/x\.npy$"),
    Case("labels-2d", npy("y2.npy", np.zeros((ROWS, 2), np.int64)),
         mine_argv("x.npy", "y2.npy", *OUT), 1,
         r"/y2\.npy: labels must be one value per row, got shape \(8, 2\)$"),
    Case("null-label-parquet", table("nul.parquet", {"label": pa.array([0, 0, 1, None, 2, 2, 3,
                                                                        3])}),
         mine_argv("x.npy", "nul.parquet", *OUT), 1,
         r"/nul\.parquet: label column 'label': row 3 is null$"),
    Case("null-label-in-embeddings-parquet", table("both.parquet", {
        "embedding": _vectors(), "label": pa.array([0, 0, 1, 1, 2, None, 3, 3])}),
         mine_argv("both.parquet", None, *OUT), 1,
         r"/both\.parquet: label column 'label': row 5 is null$"),
    Case("null-label-csv", text("nul.csv", "id,label\n0,0\n1,0\n2,1\n3,\n4,2\n5,2\n6,3\n7,3\n"),
         mine_argv("x.npy", "nul.csv", *OUT), 1,
         r"/nul\.csv: label column 'label': row 3 is null$"),
    Case("empty-string-label-csv",
         text("nul.csv", "id,label\n0,a\n1,a\n2,b\n3,\n4,c\n5,c\n6,d\n7,d\n"),
         mine_argv("x.npy", "nul.csv", *OUT), 1,
         r"/nul\.csv: label column 'label': row 3 is (null|empty)$"),
    Case("nan-label", npy("ynan.npy", np.array([0, 0, 1, 1, 2, 2, 3, np.nan])),
         mine_argv("x.npy", "ynan.npy", *OUT), 1, r"/ynan\.npy: label row 7 is NaN$"),
    Case("float-labels-with-fractions", npy("yf.npy", np.array([0, 0, 1, 1, 2, 2, 3, 3.5])),
         mine_argv("x.npy", "yf.npy", *OUT), 1,
         r"/yf\.npy: labels are non-integer floats; use integers or strings$"),
    Case("float-labels-parquet", table("yf.parquet", {"label": pa.array([0.5] * 8)}),
         mine_argv("x.npy", "yf.parquet", *OUT), 1, r"/yf\.parquet: labels are non-integer"),
    # -- label sets that allow no triplet
    Case("single-class", npy("y1.npy", np.zeros(ROWS, np.int64)),
         mine_argv("x.npy", "y1.npy", *OUT), 1,
         r"/y1\.npy: every row has label .*: a single class gives no negatives$"),
    Case("single-class-says-the-label", npy("y1.npy", np.full(ROWS, 7)),
         mine_argv("x.npy", "y1.npy", *OUT), 1, r"/y1\.npy: every row has label 7: "),
    Case("single-string-class", npy("ys.npy", np.array(["a"] * ROWS)),
         mine_argv("x.npy", "ys.npy", *OUT), 1, r"/ys\.npy: every row has label "),
    Case("all-labels-distinct", npy("yd.npy", np.arange(ROWS)),
         mine_argv("x.npy", "yd.npy", *OUT), 1, r"/yd\.npy: no label occurs twice"),
    Case("all-string-labels-distinct", text("yd.csv", "label\n" + "".join(
        f"w{i}\n" for i in range(ROWS))), mine_argv("x.npy", "yd.csv", *OUT), 1,
         r"/yd\.csv: no label occurs twice"),
    # -- columns
    Case("unknown-label-column", None, mine_argv("lab.parquet", None, "--label-column", "lab",
                                                 *OUT), 1,
         r"/lab\.parquet: no column 'lab'; columns: embedding, label, name$"),
    Case("no-label-column", table("nolab.parquet", {"embedding": _vectors()}),
         mine_argv("nolab.parquet", None, *OUT), 1,
         r"/nolab\.parquet: holds no label column \(columns: embedding\); give the labels with "
         r"--labels$"),
    Case("labels-missing-for-npy", None, mine_argv("x.npy", None, *OUT), 1,
         r"/x\.npy: .*--labels"),
    Case("labels-missing-for-1-column-npy", npy("x.npy", LABELS[:, None].astype(np.float32)),
         mine_argv("x.npy", None, *OUT), 1, r"/x\.npy: .*--labels"),
    # -- embeddings
    Case("nan-embedding-row", spoil("x.npy", 5, 2, np.nan), mine_argv("x.npy", "y.npy", *OUT), 1,
         r"/x\.npy: row 5 contains NaN$"),
    Case("inf-embedding-row", spoil("x.npy", 2, 0, np.inf), mine_argv("x.npy", "y.npy", *OUT), 1,
         r"/x\.npy: row 2 contains inf$"),
    Case("missing-embeddings", None, mine_argv("missing.npy", "y.npy", *OUT), 1,
         r"/missing\.npy: no such file$"),
    Case("missing-labels", None, mine_argv("x.npy", "missing.npy", *OUT), 1,
         r"/missing\.npy: no such file$"),
    Case("1d-embeddings", npy("x1.npy", np.zeros(ROWS, np.float32)),
         mine_argv("x1.npy", "y.npy", *OUT), 1, r"/x1\.npy: embeddings must have shape \(n, d\)"),
    # -- flags (usage errors: exit 2)
    Case("per-anchor-0", None, mine_argv("x.npy", "y.npy", "--per-anchor", "0", *OUT), 2,
         r"--per-anchor must be from 1 to 2147483647 \(got 0\)$"),
    Case("batch-size-1", None, mine_argv("x.npy", "y.npy", "--batch-size", "1", *OUT), 2,
         r"--batch-size must be >= 2 \(got 1\)$"),
    Case("batch-size-negative", None, mine_argv("x.npy", "y.npy", "--batch-size", "-4", *OUT), 2,
         r"--batch-size must be >= 2 \(got -4\)$"),
    Case("unknown-strategy", None, mine_argv("x.npy", "y.npy", "--strategy", "medium", *OUT), 2,
         r"--strategy: unknown value 'medium'; choose from semi-hard, hard, easy, all$"),
    Case("framework-spelling-of-a-strategy", None,  # pytorch-metric-learning's spelling
         mine_argv("x.npy", "y.npy", "--strategy", "semihard", *OUT), 2,
         r"--strategy: unknown value 'semihard'; choose from semi-hard, hard, easy, all \(did "
         r"you mean 'semi-hard'\?\)$"),
    Case("strategy-combination-name", None,  # batch-hard is two flags, not a --strategy value
         mine_argv("x.npy", "y.npy", "--strategy", "batch-hard", *OUT), 2,
         r"--strategy: unknown value 'batch-hard'; .* \(batch-hard is --positive-strategy hard "
         r"--strategy hard\)$"),
    Case("unknown-positive-strategy", None,
         mine_argv("x.npy", "y.npy", "--positive-strategy", "medium", *OUT), 2,
         r"--positive-strategy: unknown value 'medium'"),
    Case("unknown-margin-filter", None,
         mine_argv("x.npy", "y.npy", "--margin-filter", "soft", *OUT), 2,
         r"--margin-filter: unknown value 'soft'"),
    Case("unknown-semi-hard-fallback", None,
         mine_argv("x.npy", "y.npy", "--semi-hard-fallback", "none", *OUT), 2,
         r"--semi-hard-fallback: unknown value 'none'"),
    Case("fail-above-nan", None, mine_argv("x.npy", "y.npy", "--fail-above", "nan", *OUT), 2,
         r"--fail-above must be a number \(got nan\)$"),
    Case("p-with-cosine", None,
         mine_argv("x.npy", "y.npy", "--p", "3", "--distance", "cosine", *OUT), 2,
         r"--p applies to the minkowski distance, not cosine"),
    Case("p-with-euclidean", None,
         mine_argv("x.npy", "y.npy", "--p", "2", "--distance", "euclidean", *OUT), 2,
         r"--p applies to the minkowski distance, not euclidean"),
    Case("p-below-1", None, mine_argv("x.npy", "y.npy", "--p", "0.5", *OUT), 2,
         r"--p must be >= 1 \(got 0\.5\)$"),
    Case("threads-zero", None, mine_argv("x.npy", "y.npy", "--threads", "0", *OUT), 2,
         r"Invalid value for '--threads'"),
    Case("workers-zero", None,
         mine_argv("x.npy", "y.npy", "--scheduler", "local", "--workers", "0", *OUT), 2,
         r"Invalid value for '--workers'"),
    Case("seed-negative", None,
         mine_argv("x.npy", "y.npy", "--batch-size", "4", "--seed", "-1", *OUT), 2, r"--seed"),
    Case("per-anchor-huge", None,
         mine_argv("x.npy", "y.npy", "--per-anchor", "99999999999999999999", *OUT), 2,
         r"--per-anchor"),
    Case("compute-only-preset", None, mine_argv("x.npy", "y.npy", "--preset", "torch", *OUT), 2,
         r"preset 'torch' has no mine operation"),
    Case("negative-margin", None, mine_argv("x.npy", "y.npy", "--margin", "-1", *OUT), 2,
         r"--margin must be a finite number >= 0"),
    Case("output-is-labels", None, mine_argv("x.npy", "y.npy", "-o", "{d}/y.npy"), 2,
         r"--output .*/y\.npy is also an input; refusing to overwrite it$"),
    Case("output-is-embeddings", None, mine_argv("x.npy", "y.npy", "-o", "{d}/x.npy"), 2,
         r"--output .*/x\.npy is also an input; refusing to overwrite it$"),
    Case("output-is-labelled-parquet", None,
         mine_argv("lab.parquet", None, "-o", "{d}/lab.parquet"), 2,
         r"--output .*/lab\.parquet is also an input"),
    Case("output-is-input-via-symlink", symlink("link.npy", "x.npy"),
         mine_argv("x.npy", "y.npy", "-o", "{d}/link.npy"), 2,
         r"--output .*/link\.npy is also an input"),
    Case("output-is-input-via-hard-link", hardlink("hard.npy", "x.npy"),
         mine_argv("x.npy", "y.npy", "-o", "{d}/hard.npy"), 2,
         r"--output .*/hard\.npy is also an input"),
    Case("output-is-a-named-pipe", fifo("pipe.csv"),
         mine_argv("x.npy", "y.npy", "-o", "{d}/pipe.csv"), 2,
         r"--output .*/pipe\.csv is not a regular file \(a named pipe or a device\)"),
    Case("output-is-input-named-with-a-colon", copied("a:b.npy", "x.npy"),
         mine_argv("a:b.npy", "y.npy", "-o", "{d}/a:b.npy"), 2,
         r"--output .*/a:b\.npy is also an input"),
    # -- found by a second audit: each crashed, or ran on and gave something meaningless
    Case("values-overflow-products", npy("big.npy", np.full((ROWS, DIM), 1e200)),
         mine_argv("big.npy", "y.npy", *OUT), 1,
         r"/big\.npy: row 0 holds values beyond \d\.\d+e\+153, too large for float64 matrix "
         r"products; rescale the embeddings$"),
    Case("values-underflow-squares",
         npy("tiny.npy", lambda: np.random.default_rng(0).normal(size=(ROWS, DIM)) * 1e-170),
         mine_argv("tiny.npy", "y.npy", *OUT), 1,
         r"/tiny\.npy: values are at most \d\.\d+e-170: their squares underflow float64 "
         r"\(every distance would round to 0, every neighbour a tie\); rescale the embeddings$"),
    Case("values-underflow-minkowski-powers",  # every |x - y|^100 below 2.2e-308
         npy("near.npy", lambda: np.random.default_rng(0).random((ROWS, DIM)) * 5e-4),
         mine_argv("near.npy", "y.npy", "--p", "100", *OUT), 1,
         r"/near\.npy: values differ by at most 0\.000\d+ in one dimension: their p = 100 "
         r"powers are below float64's smallest normal number \(every distance would lose its "
         r"precision or round to 0, and neighbours tie\); rescale the embeddings or use a "
         r"smaller p$"),
    Case("values-underflow-minkowski-powers-beside-an-unused-eps",  # eps not in the distance
         npy("near.npy", lambda: np.random.default_rng(0).random((ROWS, DIM)) * 1e-20),
         mine_argv("near.npy", "y.npy", "--p", "20", *OUT), 1,
         r"/near\.npy: values differ by at most \d\.\d+e-2\d in one dimension: their p = 20 "),
    Case("float32-values-overflow-products",
         npy("big32.npy", np.full((ROWS, DIM), 1e19, np.float32)),
         mine_argv("big32.npy", "y.npy", "--distance", "cosine", *OUT), 1,
         r"/big32\.npy: row 0 holds values beyond .* float32 matrix products"),
    Case("cosine-zero-row-eps-0", spoil_zero_row("x.npy", 3),
         mine_argv("x.npy", "y.npy", "--distance", "cosine", "--eps", "0", *OUT), 1,
         r"/x\.npy: row 3 is a zero vector \(or too small to square in float64\): its cosine "
         r"distance is undefined with --eps 0$"),
    Case("legacy-root-odd-p", None,
         mine_argv("x.npy", "y.npy", "--p", "3", "--eps-placement", "legacy-root", *OUT), 2,
         r"--eps-placement legacy-root with p = 3 gives NaN distances for finite rows"),
    Case("label-column-holds-lists", None,
         ("mine", "--embeddings", "{d}/lab.parquet", "--label-column", "embedding", *OUT), 1,
         r"/lab\.parquet: label row 0 holds a list of 4 values; labels must be integers or "
         r"strings \(is this the embedding column\?\)$"),
    Case("labels-inf", npy("yinf.npy", np.where(LABELS == 2, np.inf, LABELS)),
         mine_argv("x.npy", "yinf.npy", *OUT), 1, r"/yinf\.npy: label row 4 is inf$"),
    Case("labels-float-ids-beyond-2-53", npy("yid.npy", LABELS * 1e20),
         mine_argv("x.npy", "yid.npy", *OUT), 1,
         r"/yid\.npy: float labels beyond 2\^53 are not exact"),
    Case("seed-beyond-64-bits", None,
         mine_argv("x.npy", "y.npy", "--batch-size", "4", "--seed", str(2**64), *OUT), 2,
         r"--seed must be from 0 to 2\^64 - 1 \(got 18446744073709551616\)$"),
    Case("output-ends-with-slash", None, mine_argv("x.npy", "y.npy", "-o", "{d}/new.parquet/"),
         1, r"/new\.parquet/: ends with /; --output needs a file name$"),
    Case("labels-given-as-a-column-name", None, mine_argv("lab.parquet", "label", *OUT), 1,
         r"/label: no such file \(a column of --embeddings is chosen with --label-column\)$"),
    Case("output-new-folder", None, mine_argv("x.npy", "y.npy", "-o", "{d}/newdir/"), 1,
         r"/newdir/: ends with /; --output needs a file name$"),
    Case("output-folder-is-a-file", None, mine_argv("x.npy", "y.npy", "-o", "{d}/y.npy/m.csv"),
         1, r"/y\.npy/m\.csv: .*/y\.npy is a file, not a folder$"),
]


MINE = Table("mine", _good_inputs, CASES)
test_bad_input = MINE.test()


# ---- odd but fine -----------------------------------------------------------------------------

FINE = [
    ("class-of-one-member", npy("y.npy", np.array([0, 0, 1, 1, 2, 2, 3, 4])), mine_argv(),
     {"anchors_without_positive": 2, "triplets": 6}),
    ("string-labels-npy", npy("y.npy", np.array(list("aabbccdd"))), mine_argv(),
     {"triplets": 8}),
    ("bool-labels", npy("y.npy", np.array([True, False] * 4)), mine_argv(), {"triplets": 24}),
    ("integral-float-labels", npy("y.npy", LABELS.astype(np.float64)), mine_argv(),
     {"triplets": 8}),
    ("labels-csv-words", text("y.csv", "label\n" + "".join(f"w{v}\n" for v in LABELS)),
     mine_argv("x.npy", "y.csv"), {"triplets": 8}),
    ("labels-in-embeddings-parquet", None, mine_argv("lab.parquet", None), {"triplets": 8}),
    ("label-column-name", None, mine_argv("lab.parquet", None, "--label-column", "name"),
     {"triplets": 8}),
    ("labels-from-other-parquet", None, mine_argv("x.npy", "lab.parquet"), {"triplets": 8}),
    ("int32-labels-parquet", table("y32.parquet", {"label": pa.array(LABELS, pa.int32())}),
     mine_argv("x.npy", "y32.parquet"), {"triplets": 8}),
    ("manhattan-on-values-whose-squares-underflow",  # no square: exact, not refused
     npy("x.npy", lambda: np.random.default_rng(0).random((ROWS, DIM)) * 1e-170),
     mine_argv("x.npy", "y.npy", "--distance", "manhattan"), {"triplets": 8}),
    ("smallest-set", both(npy("x.npy", np.array([[0.0], [1.0], [3.0]])),
                                npy("y.npy", np.array([0, 0, 1]))), mine_argv(),
     {"anchors": 3, "triplets": 2}),
]


@pytest.mark.parametrize(("make", "argv", "expect"), [pytest.param(m, a, e, id=i)
                                                      for i, m, a, e in FINE])
def test_fine_input(make: Maker | None, argv: tuple[str, ...], expect: dict, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch, cli) -> None:
    _good_inputs(tmp_path)
    if make is not None:
        make(tmp_path, monkeypatch)
    result = cli(*(a.format(d=tmp_path) for a in argv), "--format", "json")
    assert result.exit_code == 0, (result.stderr, result.exception)
    summary = json.loads(result.stdout)
    for key, value in expect.items():
        assert summary[key] == value, key
    assert ("anchors have no positive" in result.stderr) == bool(
        summary["anchors_without_positive"])


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl", "npy"])
def test_nothing_mined_is_scored_as_nothing(cli, tmp_path: Path, suffix: str) -> None:
    """A filter that keeps no triplet writes an empty file; compute scores it as no triplet
    (loss 0, as mine reports it, with a warning) instead of refusing it, so `mine -o F &&
    compute --triplets F` holds in a job; a gate is not passed by nothing."""
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, np.array([[0, 0], [0, 0.1], [10, 0], [10, 0.1]], np.float32))
    np.save(y, np.array([0, 0, 1, 1]))
    mined = tmp_path / f"t.{suffix}"
    run = cli("mine", "--embeddings", x, "--labels", y, "--margin-filter", "violating",
              "-o", mined, "-q")
    assert run.exit_code == 0, run.stderr
    scored = cli("compute", "--embeddings", x, "--triplets", mined, "-f", "json")
    assert scored.exit_code == 0, scored.stderr
    summary = json.loads(scored.stdout)
    assert (summary["count"], summary["loss"]) == (0, 0.0)
    warning = f"no triplet to score: {mined} holds zero rows, so the loss is 0"
    assert summary["warnings"][-1] == warning
    assert scored.stderr == f"triplet-loss: warning: {warning}\n"
    gated = cli("compute", "--embeddings", x, "--triplets", mined, "--fail-above", "1", "-q")
    assert gated.exit_code == 3
    assert gated.stderr == "triplet-loss: gate failed: --fail-above 1.0: no triplet to score\n"
    rows = cli("compute", "--embeddings", x, "--triplets", mined, "-f", "csv", "-q")
    assert rows.stdout == '"index","anchor","positive","negative","d_ap","d_an","loss"\n'


def test_output_that_is_stdouts_file_is_refused(tmp_path) -> None:
    """`-o rows.csv > report.txt` where rows.csv links to report.txt (or /dev/stdout): the rows
    would replace the file the report is going to, and the report be lost, exit 0."""
    import subprocess
    import sys

    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, np.arange(24.0).reshape(6, 4))
    np.save(y, np.array([0, 0, 0, 1, 1, 1]))
    report = tmp_path / "report.txt"
    report.write_text("before\n")
    (tmp_path / "rows.csv").symlink_to(report)
    with report.open("a") as out:
        run = subprocess.run([sys.executable, "-m", "triplet_cli", "mine", "--embeddings", str(x),
                              "--labels", str(y), "-o", str(tmp_path / "rows.csv")],
                             stdout=out, stderr=subprocess.PIPE, text=True, check=False)
    assert run.returncode == 2
    assert run.stderr.strip() == (f"triplet-loss: error: --output {tmp_path / 'rows.csv'} is the "
                                  "file this run's stdout is written to; refusing to overwrite it")
    assert report.read_text() == "before\n"


def test_mini_batches_without_a_pair_are_counted(cli, tmp_path) -> None:
    """Pairs (the face-verification layout) in batches of 8: most batches hold no two rows of
    a class and give nothing; the run says how many."""
    from triplet_cli.mine import prepare_mine

    x = np.random.default_rng(2).normal(size=(64, 4))
    y = np.repeat(np.arange(32), 2)
    job = prepare_mine(x, y, batch_size=8, seed=1)
    sets = [y[rows] for rows in job.batches()]
    empty = sum(np.unique(s).size == s.size for s in sets)
    assert 0 < empty < len(sets)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    r = cli("mine", "--embeddings", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
            "--batch-size", "8", "--seed", "1", "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert (f"{empty} of {len(sets)} mini-batches hold no two rows of one class, so they give "
            "no triplet") in r.stderr
    whole = cli("mine", "--embeddings", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
                "-f", "json")
    assert "mini-batches" not in whole.stderr


@pytest.mark.parametrize(("argv", "refused"), [
    (("--p", "100", "--normalize"), False),  # unit rows: far apart
    (("--p", "100", "--eps-placement", "difference", "--eps", "0.01"), False),  # |x-y+eps|
    (("--p", "100"), True)])
def test_underflow_is_judged_on_the_rows_as_ranked(cli, tmp_path: Path, argv, refused) -> None:
    """Rows within 1.6e-4 of each other: their 100th powers underflow, unless --normalize makes
    them unit rows or --eps-placement difference adds 0.01 to every difference."""
    x = np.random.default_rng(1).normal(size=(ROWS, DIM))
    np.save(tmp_path / "x.npy", x / np.linalg.norm(x, axis=1, keepdims=True) * 4e-5)
    np.save(tmp_path / "y.npy", LABELS)
    result = cli(*(a.format(d=tmp_path) for a in mine_argv("x.npy", "y.npy", *argv)),
                 "--format", "json")
    assert result.exit_code == (1 if refused else 0), result.stderr
    assert ("powers are below float64's smallest normal number" in result.stderr) is refused
