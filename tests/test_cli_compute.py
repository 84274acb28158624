"""`triplet-loss compute` end to end on sample_data: reports, row formats, outputs, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from cli_helpers import csv_rows, jsonl_rows, ok

from triplet_cli import __version__
from triplet_cli.presets import PRESETS

SUMMARY_KEYS = ("count", "loss", "reduction", "mean", "sum", "mean_nonzero", "active_fraction",
                "accuracy", "d_ap", "d_an", "params", "inputs", "warnings")
STAT_KEYS = ["mean", "std", "min", "p50", "max"]
ROW_COLUMNS = ["index", "d_ap", "d_an", "loss"]
INDEXED_COLUMNS = ["index", "anchor", "positive", "negative", "d_ap", "d_an", "loss"]
N = 1797  # triplets in sample_data


@pytest.fixture
def aligned(sample: Path) -> list[str]:
    return ["compute", "--anchors", str(sample / "anchors.npy"), "--positives",
            str(sample / "positives.npy"), "--negatives", str(sample / "negatives.npy")]


@pytest.fixture
def indexed(sample: Path) -> list[str]:
    return ["compute", "--embeddings", str(sample / "embeddings.npy"), "--triplets",
            str(sample / "triplets.parquet")]








def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "triplet_cli", *argv], capture_output=True,
                          timeout=120, **kw)


# ---- reports ----------------------------------------------------------------------------------


def test_table_has_summary_and_hardest_triplets(cli, aligned) -> None:
    out = ok(cli(*aligned, "--top", "3"))
    rows = jsonl_rows(ok(cli(*aligned, "-f", "jsonl")))
    assert "triplet-loss compute" in out
    for key in ("loss (mean)", "count", "mean_nonzero", "active_fraction", "accuracy", "d_ap",
                "d_an", "params: distance=euclidean"):
        assert key in out
    assert "3 hardest triplets" in out
    hardest = np.argsort(-rows["loss"], kind="stable")[:3]
    table = out.split("3 hardest triplets", 1)[1]
    positions = [table.index(f"│ {i:>5} │") for i in hardest]
    assert positions == sorted(positions), "hardest first"
    assert f"{rows['loss'].mean():.6g}" in out


def test_json_has_the_stable_keys(cli, aligned) -> None:
    summary = json.loads(ok(cli(*aligned, "--format", "json")))
    assert [k for k in summary if k in SUMMARY_KEYS] == list(SUMMARY_KEYS)
    assert summary["count"] == N
    assert summary["reduction"] == "mean"
    assert summary["loss"] == summary["mean"]
    assert list(summary["d_ap"]) == STAT_KEYS and list(summary["d_an"]) == STAT_KEYS
    assert 0 < summary["active_fraction"] <= 1 and 0.8 < summary["accuracy"] < 0.95
    assert summary["warnings"] == []
    assert summary["inputs"]["anchors"] == {"path": str(aligned[2]), "shape": [N, 32],
                                            "dtype": "float32"}
    params = summary["params"]
    assert {"distance", "p", "margin", "eps", "soft_margin", "swap", "reduction"} <= set(params)
    assert set(params["sources"]) == set(params) - {"sources"}
    assert set(params["sources"].values()) == {"default"}
    rows = jsonl_rows(ok(cli(*aligned, "-f", "jsonl")))
    assert summary["sum"] == pytest.approx(rows["loss"].sum(), rel=1e-12)
    assert summary["mean_nonzero"] == pytest.approx(rows["loss"][rows["loss"] > 0].mean())
    assert summary["d_an"]["max"] == rows["d_an"].max()


def test_json_sources_say_flag_preset_or_default(cli, aligned) -> None:
    summary = json.loads(ok(cli(*aligned, "-f", "json", "--preset", "torch", "--margin", "0.2")))
    sources, params = summary["params"]["sources"], summary["params"]
    assert sources["margin"] == "flag" and params["margin"] == 0.2
    assert sources["distance"] == sources["eps_placement"] == "preset torch"
    assert params["eps_placement"] == "difference"
    assert sources["swap"] == sources["normalize"] == "default"
    soft = json.loads(ok(cli(*aligned, "-f", "json", "--soft-margin")))["params"]
    assert soft["margin"] == 0.0 and soft["sources"]["margin"] == "default with --soft-margin"
    minkowski = json.loads(ok(cli(*aligned, "-f", "json", "--p", "3")))["params"]
    assert minkowski["distance"] == "minkowski"
    assert minkowski["sources"]["distance"] == "implied by --p"


def test_table_marks_non_default_params(cli, aligned) -> None:
    out = " ".join(ok(cli(*aligned, "--preset", "pytorch-metric-learning", "--swap")).split())
    assert "margin=0.05 (preset pytorch-metric-learning)" in out
    assert "swap=True (flag)" in out
    st = " ".join(ok(cli(*aligned, "--preset", "sentence-transformers")).split())
    assert "margin=5 (preset sentence-transformers)" in st


@pytest.mark.parametrize(("command", "preset"), [
    (c, name) for name, preset in PRESETS.items() for c in ("compute", "mine")
    if preset.settings()[c] is not None])
def test_swap_outside_its_framework_is_said(cli, aligned, sample: Path, command: str,
                                             preset: str) -> None:
    """--swap under a preset whose framework has none (MLX, TF, sentence-transformers) is
    still applied, and a warning says the number is no longer that framework's."""
    inputs = aligned if command == "compute" else [
        "mine", "--embeddings", sample / "embeddings.npy", "--labels", sample / "labels.npy"]
    result = cli(*inputs, "--preset", preset, "--swap", "-f", "json")
    assert result.exit_code == 0, result.stderr
    said = f"--swap is not part of preset {preset}"
    foreign = preset not in ("torch", "pytorch-metric-learning")
    assert (said in result.stderr) == foreign
    assert json.loads(result.stdout)["params"]["swap"] is True


# ---- per-triplet rows on stdout -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_rows_on_stdout(cli, aligned, indexed, fmt: str) -> None:
    parse = jsonl_rows if fmt == "jsonl" else csv_rows
    rows = parse(ok(cli(*aligned, "--format", fmt)))
    assert list(rows) == ROW_COLUMNS
    assert len(rows["index"]) == N and (rows["index"] == np.arange(N)).all()
    expected = np.maximum(rows["d_ap"] - rows["d_an"] + 1.0, 0.0)
    np.testing.assert_allclose(rows["loss"], expected, rtol=1e-12, atol=1e-12)
    with_triplets = parse(ok(cli(*indexed, "--format", fmt)))
    assert list(with_triplets) == INDEXED_COLUMNS
    t = pq.read_table(Path(indexed[2]).with_name("triplets.parquet"))
    for c in ("anchor", "positive", "negative"):
        assert (with_triplets[c] == t.column(c).to_numpy()).all()


def test_rows_stdout_carries_no_report(cli, aligned) -> None:
    out = ok(cli(*aligned, "-f", "csv"))
    assert out.count("\n") == N + 1
    assert "hardest" not in out and "params" not in out


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".npy"])
def test_output_files_hold_the_same_numbers(cli, aligned, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"rows{suffix}"
    printed = jsonl_rows(ok(cli(*aligned, "-o", out, "-f", "jsonl")))
    assert sorted(os.listdir(tmp_path)) == [out.name], "no temp file left beside the output"
    if suffix == ".npy":
        array = np.load(out)
        assert array.dtype == np.float64 and array.shape == (N, 3)
        written = {"d_ap": array[:, 0], "d_an": array[:, 1], "loss": array[:, 2]}
    elif suffix == ".parquet":
        written = {k: v.to_numpy() for k, v in zip(*(lambda t: (t.column_names, t.columns))(
            pq.read_table(out)), strict=True)}
        assert list(written) == ROW_COLUMNS
    elif suffix == ".csv":
        written = csv_rows(out.read_text())
        assert list(written) == ROW_COLUMNS
    else:
        written = jsonl_rows(out.read_text())
        assert list(written) == ROW_COLUMNS
    for k in written:
        np.testing.assert_array_equal(written[k], printed[k], err_msg=k)


def test_output_replaces_an_existing_file(cli, aligned, tmp_path: Path) -> None:
    out = tmp_path / "rows.npy"
    out.write_bytes(b"old")
    ok(cli(*aligned, "-o", out, "-q"))
    assert np.load(out).shape == (N, 3)


def test_output_with_triplets_has_index_columns(cli, indexed, tmp_path: Path) -> None:
    out = tmp_path / "rows.parquet"
    ok(cli(*indexed, "-o", out, "-q"))
    assert pq.read_table(out).column_names == INDEXED_COLUMNS


# ---- exit codes and reductions -----------------------------------------------------------------


def test_fail_above_exits_3_and_still_reports(cli, aligned) -> None:
    result = cli(*aligned, "-f", "json", "--fail-above", "0.5")
    assert result.exit_code == 3 and isinstance(result.exception, SystemExit)
    summary = json.loads(result.stdout)
    assert summary["loss"] > 0.5
    assert result.stderr == (f"triplet-loss: gate failed: --fail-above 0.5: the loss is "
                             f"{summary['loss']!r}\n")  # every digit: X < X is no reason
    assert summary["gates"] == [{"metric": "loss", "at_most": 0.5, "value": summary["loss"],
                                 "passed": False}]
    table = cli(*aligned, "--fail-above", "0.5")
    assert table.exit_code == 3 and "loss (mean)" in table.stdout
    passed = cli(*aligned, "-f", "json", "--fail-above", "0.7")
    assert passed.exit_code == 0 and json.loads(passed.stdout)["gates"][0]["passed"] is True
    assert "gates" not in json.loads(cli(*aligned, "-f", "json").stdout)
    # reduction none: any single triplet above the limit fails
    every = cli(*aligned, "-f", "json", "--reduction", "none", "--fail-above", "1.7", "-q")
    assert every.exit_code == 3  # (said with --quiet too)
    gate = json.loads(every.stdout)["gates"][0]
    assert gate["metric"] == "max_loss" and gate["value"] > 1.7 and not gate["passed"]
    assert every.stderr.startswith("triplet-loss: gate failed: --fail-above 1.7: the largest "
                                   "triplet loss is 1.7")  # (1.70...: its digits follow)
    assert cli(*aligned, "-f", "json", "--reduction", "none", "--fail-above", "1.8").exit_code == 0


@pytest.mark.parametrize(("reduction", "key"), [("mean", "mean"), ("sum", "sum"),
                                                ("mean-nonzero", "mean_nonzero"), ("none", None)])
def test_reduction_picks_the_headline(cli, aligned, reduction: str, key: str | None) -> None:
    summary = json.loads(ok(cli(*aligned, "-f", "json", "--reduction", reduction)))
    assert summary["reduction"] == reduction
    assert summary["loss"] == (summary[key] if key else None)
    assert summary["params"]["sources"]["reduction"] == "flag"
    table = ok(cli(*aligned, "--reduction", reduction))
    headline = next(line for line in table.splitlines() if line.startswith("loss ("))
    assert headline.split() == [
        "loss", f"({reduction})", "-" if key is None else f"{summary[key]:.6g}"]


def test_margin_zero_works(cli, aligned) -> None:
    summary = json.loads(ok(cli(*aligned, "-f", "json", "--margin", "0")))
    assert summary["params"]["margin"] == 0.0
    assert summary["active_fraction"] == pytest.approx(1 - summary["accuracy"], abs=1e-9)


# ---- inputs -------------------------------------------------------------------------------------


def test_parquet_inputs_match_npy_inputs(cli, aligned, sample: Path) -> None:
    parquet = ["compute", *(x for r in ("anchors", "positives", "negatives")
                            for x in (f"--{r}", str(sample / f"{r}.parquet")))]
    assert ok(cli(*parquet, "-f", "jsonl")) == ok(cli(*aligned, "-f", "jsonl"))
    a = json.loads(ok(cli(*parquet, "-f", "json")))
    b = json.loads(ok(cli(*aligned, "-f", "json")))
    assert {k: a[k] for k in SUMMARY_KEYS if k != "inputs"} == \
        {k: b[k] for k in SUMMARY_KEYS if k != "inputs"}


@pytest.mark.parametrize("triplets", ["triplets.parquet", "triplets.csv"])
def test_indexed_triplets_match_aligned_files(cli, aligned, sample: Path, triplets: str) -> None:
    by_index = jsonl_rows(ok(cli("compute", "--embeddings", sample / "embeddings.npy",
                                 "--triplets", sample / triplets, "-f", "jsonl")))
    by_rows = jsonl_rows(ok(cli(*aligned, "-f", "jsonl")))
    for k in ("d_ap", "d_an", "loss"):
        np.testing.assert_allclose(by_index[k], by_rows[k], rtol=1e-12, atol=1e-15, err_msg=k)


def test_later_checkpoint_rescores_the_same_triplets(cli, sample: Path) -> None:
    """README of sample_data: margin 0.2 gives about 0.060, then about 0.065."""
    losses = [json.loads(ok(cli("compute", "--embeddings", sample / name, "--triplets",
                                sample / "triplets.parquet", "--margin", "0.2", "-f", "json")))
              ["loss"] for name in ("embeddings.npy", "embeddings_later.npy")]
    assert losses[0] == pytest.approx(0.060, abs=0.0015)
    assert losses[1] == pytest.approx(0.065, abs=0.0015)


def test_k_candidates(cli, sample: Path) -> None:
    argv = ["compute", "--anchors", sample / "anchors_200.npy", "--positives",
            sample / "candidates_positives.npy", "--negatives", sample / "candidates_negatives.npy"]
    summary = json.loads(ok(cli(*argv, "-f", "json")))
    assert summary["count"] == 200
    shapes = {role: v["shape"] for role, v in summary["inputs"].items()}
    assert shapes == {"anchors": [200, 32], "positives": [200, 3, 32], "negatives": [200, 5, 32]}
    summed = jsonl_rows(ok(cli(*argv, "-f", "jsonl")))
    mean = jsonl_rows(ok(cli(*argv, "-f", "jsonl", "--pair-reduction", "mean")))
    np.testing.assert_allclose(summed["loss"], 15 * mean["loss"], rtol=1e-12, atol=1e-12)
    assert "200 hardest" not in ok(cli(*argv))


def test_stdin_for_one_npy_input(cli, aligned, sample: Path) -> None:
    piped = run("compute", "--anchors", "-", *aligned[3:], "-f", "jsonl",
                input=(sample / "anchors.npy").read_bytes())
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == b""
    assert piped.stdout.decode() == ok(cli(*aligned, "-f", "jsonl"))


# ---- the process: pipes, imports, version, presets -----------------------------------------------


def test_head_ends_quietly(sample: Path) -> None:
    """~270 kB of rows against a 64 kB pipe: the writes after `head` exits hit EPIPE."""
    cmd = (f"set -o pipefail; {sys.executable} -m triplet_cli compute "
           f"--anchors {sample}/anchors.npy --positives {sample}/positives.npy "
           f"--negatives {sample}/negatives.npy -f jsonl | head -1")
    result = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr and b"Error" not in result.stderr
    assert result.stderr == b""
    assert result.stdout.count(b"\n") == 1


def test_help_imports_neither_numba_nor_pyarrow() -> None:
    code = (
        "import sys\n"
        "from triplet_cli.cli import app\n"
        "for argv in (['--help'], ['compute', '--help'], ['--version']):\n"
        "    try:\n"
        "        app(argv, prog_name='triplet-loss')\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), e.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'pyarrow'))\n"
        "print(heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().strip() == "[]"
    assert b"--anchors" in result.stdout and b"--fail-above" in result.stdout


def test_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"triplet-loss {__version__}\n"
    assert run("--version").stdout.decode() == f"triplet-loss {__version__}\n"


def test_presets_json_lists_every_preset(cli) -> None:
    presets = json.loads(ok(cli("presets", "--format", "json")))
    assert list(presets) == list(PRESETS)
    assert presets["torch"]["compute"]["eps_placement"] == "difference"
    assert presets["tf-similarity"]["compute"] is None
    # which frameworks have PyTorch's swap (--swap under the others warns)
    assert {n for n, p in presets.items() if p["swap"]} == {"torch", "pytorch-metric-learning"}


def test_presets_table_lists_every_preset(cli) -> None:
    out = ok(cli("presets"))
    for name in PRESETS:
        assert name in out, name


def test_verbose_times_the_run_on_stderr(cli, aligned) -> None:
    """-v: one timing line on stderr; stdout as without it."""
    quiet = cli(*aligned, "-f", "json")
    loud = cli(*aligned, "-f", "json", "-v")
    assert loud.exit_code == 0 and quiet.exit_code == 0
    assert json.loads(loud.stdout)["loss"] == json.loads(quiet.stdout)["loss"]
    assert re.fullmatch(r"triplet-loss: read \d+\.\d{3} s, kernels and output \d+\.\d{3} s, "
                        r"\d+ threads\n", loud.stderr), loud.stderr


def test_no_triplet_does_not_pass_a_gate(cli, tmp_path: Path, sample: Path) -> None:
    """An empty triplets file scores loss 0 with a warning; --fail-above fails on it (exit 3):
    a gate is not passed by nothing."""
    np.save(tmp_path / "none.npy", np.empty((0, 3), np.int64))
    result = cli("compute", "--embeddings", sample / "embeddings.npy", "--triplets",
                 tmp_path / "none.npy", "--fail-above", "1", "-f", "json")
    assert result.exit_code == 3, result.stderr
    gates = json.loads(result.stdout)["gates"]
    assert [g["passed"] for g in gates] == [False]
