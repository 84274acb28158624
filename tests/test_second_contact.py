"""What a second round of new users tripped over: each test here failed before its fix.

Library arguments that ran on silently (a block of -3 rows computed nothing, fractional triplet
indices were truncated, NaN labels made a class), a closed stdout that cost the --output file or
exited 1, SIGTERM that left a temporary file, semi-hard mining that crashed on NaN distances,
and reports that said the wrong thing (an on-margin warning under soft margin, the p of a file's
minkowski beside euclidean, the first of two files blamed for the second's width).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import reference as R

from triplet_cli import TripletLossError, compute_loss, mine_triplets, writers
from triplet_cli.evaluation import evaluate
from triplet_cli.negatives import mine_negatives

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


def labelled(n: int = 30, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), np.arange(n) % 3


# ---- library arguments ------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, -3, 2.5, "3", True])
def test_block_sizes_are_whole_numbers_from_1(value: object) -> None:
    x, y = labelled()
    runs = [lambda: compute_loss(x, x, x[::-1], block_rows=value),
            lambda: mine_triplets(x, y, block_rows=value),
            lambda: evaluate(x, y, block_rows=value),
            lambda: mine_negatives(x, positives=x[::-1], block_rows=value),
            lambda: mine_negatives(x, positives=x[::-1], chunk_rows=value)]
    for run in runs:
        with pytest.raises(TripletLossError, match=r"_rows must be a whole number >= 1") as e:
            run()
        assert e.value.exit_code == 2


def test_plot_must_be_a_path() -> None:
    x, y = labelled()
    with pytest.raises(TripletLossError, match="plot must be a file path"):
        evaluate(x, y, plot=5)
    with pytest.raises(TripletLossError, match="--plot: the path holds a NUL character"):
        evaluate(x, y, plot="a\0b.png")  # (os.stat's ValueError before)


def test_fractional_triplet_indices_are_refused() -> None:
    x, _ = labelled()
    with pytest.raises(TripletLossError, match=r"row 0: negative index 2\.5 is not an integer"):
        compute_loss(embeddings=x, triplets=np.array([[0, 1, 2.5], [0.9, 1, 2]]))


def test_integral_float_indices_are_taken() -> None:
    """What pandas writes once an index column has held a NaN (0.0, 1.0, ...)."""
    x, _ = labelled()
    taken = compute_loss(embeddings=x, triplets=np.array([[0.0, 1.0, 2.0], [3.0, 1.0, 2.0]]))
    np.testing.assert_array_equal(
        taken.loss, compute_loss(embeddings=x, triplets=np.array([[0, 1, 2], [3, 1, 2]])).loss)
    with pytest.raises(TripletLossError, match=r"row 1: anchor index nan is not an integer"):
        compute_loss(embeddings=x, triplets=np.array([[0.0, 1.0, 2.0], [np.nan, 1.0, 2.0]]))
    with pytest.raises(TripletLossError, match=r"row 0: anchor index 1e\+19 is out of range"):
        compute_loss(embeddings=x, triplets=np.array([[1e19, 1.0, 2.0]]))


@pytest.mark.parametrize(("labels", "message"), [
    (np.where(np.arange(30) % 3 == 0, np.nan, np.arange(30) % 3), "label row 0 is NaN"),
    (np.array([1, "a"] * 15, dtype=object), "labels mix strings and integers"),
    ([None] + ["a", "b"] * 14 + ["a"], "label row 0 holds NoneType None"),
    (np.arange(30) % 3 * 1e20, r"float labels beyond 2\^53 are not exact"),
])
def test_bad_label_arrays_are_input_errors(labels: object, message: str) -> None:
    x, _ = labelled()
    for run in (mine_triplets, evaluate):
        with pytest.raises(TripletLossError, match=message):
            run(x, labels)


def test_string_and_integer_label_lists_still_work() -> None:
    x, y = labelled()
    ints = mine_triplets(x, y.tolist())
    strings = mine_triplets(x, [f"c{v}" for v in y])
    np.testing.assert_array_equal(ints.triplets, strings.triplets)


def test_flags_that_change_nothing_are_warned_about() -> None:
    x, y = labelled()
    cases = [(mine_triplets(x, y, strategy="all", per_anchor=2), "--per-anchor"),
             (mine_triplets(x, y, strategy="hard", semi_hard_fallback="skip"),
              "--semi-hard-fallback"),
             (evaluate(x, y, margin=0.5), "--margin"),
             (evaluate(x, y, reference=x[::-1], reference_labels=y[::-1], self_match="first"),
              "--self-match"),
             (compute_loss(x, x[::-1], x[1:].tolist() + x[:1].tolist(), eps=0.5), "--eps"),
             (mine_triplets(x, y, seed=3), "--seed"),
             (mine_negatives(x, positives=x[::-1], seed=5), "--seed"),
             (mine_negatives(x, positives=x[::-1], margin_positive="hardest"),
              "--margin-positive")]
    for result, flag in cases:
        assert [w for w in result.summary["warnings"] if "has no effect" in w] == [
            next(w for w in result.summary["warnings"] if w.startswith(f"{flag} has no effect"))]
    quiet = [mine_triplets(x, y, preset="tf-similarity", strategy="hard"),
             mine_triplets(x, y, strategy="hard", per_anchor=2),
             evaluate(x, y, margin=0.5, batch_hard_loss=True),
             compute_loss(x, x[::-1], x, eps=0.5, distance="cosine"),
             mine_triplets(x, y, seed=3, batch_size=10),
             mine_negatives(x, positives=x[::-1], seed=5, sampling="random")]
    for result in quiet:  # a preset's settings, or a flag that is read
        assert not any("has no effect" in w for w in result.summary["warnings"])


# ---- NaN and overflow -------------------------------------------------------------------------
def test_semi_hard_kernel_survives_nan_distances() -> None:
    """NaN distances cannot reach the kernels from the CLI any more (legacy-root with p != 2 and
    zero rows under cosine --eps 0 are refused), but the semi-hard kernel must not index memory
    with int(NaN) if one does: it crashed the process."""
    from triplet_cli.distances import kernel_args
    from triplet_cli.mine import KernelPlan, MineSet, mine_range
    from triplet_cli.mining import POSITIVE_CODES, STRATEGY_CODES

    x, y = labelled(60, 5, seed=3)
    args = kernel_args("minkowski", 3.0, 1e-6, "legacy-root")  # NaN for half the pairs
    plan = KernelPlan(*args, 1.0, False, POSITIVE_CODES["all"], STRATEGY_CODES["semi-hard"],
                      True, 1, False, False)
    block = mine_range(MineSet.build(x, y, plan), plan, 0, 60)
    d = R.distance_matrix(x, "minkowski", 3.0, 1e-6, "legacy-root")
    assert np.isnan(d).mean() > 0.3
    t = np.stack([block.columns[c] for c in ("anchor", "positive", "negative")], axis=1)
    assert len(t) and (t >= 0).all() and (t < 60).all()
    assert (y[t[:, 0]] == y[t[:, 1]]).all() and (y[t[:, 0]] != y[t[:, 2]]).all()


def test_soft_margin_has_no_on_margin_warning() -> None:
    """d_an - d_ap equal to the margin: loss 0 under the hinge, ln 2 (active) under softplus."""
    a = np.zeros((1, 2))
    p, n = np.array([[1.0, 0.0]]), np.array([[1.5, 0.0]])
    hinge = compute_loss(a, p, n, margin=0.5)
    soft = compute_loss(a, p, n, margin=0.5, soft_margin=True)
    assert any("exactly on the margin" in w for w in hinge.summary["warnings"])
    assert soft.value == pytest.approx(np.log(2.0))
    assert not any("margin" in w for w in soft.summary["warnings"])


def test_torch_preset_with_cosine_is_triplet_margin_with_distance_loss() -> None:
    """--preset torch --distance cosine was refused ('--eps-placement difference applies to
    p-norm distances'), a flag the user never typed. Live PyTorch 2.14,
    TripletMarginWithDistanceLoss(distance_function=1 - F.cosine_similarity, reduction='none')
    on these rows: [0, 0.554565] (its cosine's norm floor is 1e-8: 1e-6 gives 0.829 for row 0)."""
    a, p, n = [[1e-7, 0, 0], [1, 2, 3]], [[1, 1, 0], [1, 2, 2]], [[-1, 0, 0], [0, 1, 0]]
    r = compute_loss(a, p, n, preset="torch", distance="cosine", reduction="none")
    np.testing.assert_allclose(r.loss, [0.0, 0.554565], atol=1e-6)
    sources = r.summary["params"]["sources"]
    assert (sources["eps"], sources["eps_placement"]) == ("preset torch (cosine)",) * 2
    dot = compute_loss(a, p, n, preset="mlx", distance="dot", reduction="none")
    assert dot.summary["params"]["eps_placement"] == "none"


def test_mine_negatives_p_alone_selects_minkowski() -> None:
    x, _ = labelled()
    r = mine_negatives(x, positives=x[::-1], p=3.0)
    assert r.summary["params"]["similarity"] == "minkowski"
    assert r.summary["params"]["sources"]["similarity"] == "implied by --p"


def test_range_max_beyond_the_corpus_allocates_for_the_corpus() -> None:
    """range_max 10^7 on 30 rows: the same rows as range_max 30, and range_max reported as
    given (it took 24 GB before)."""
    x, _ = labelled()
    big = mine_negatives(x, positives=x[::-1], range_max=10**7)
    whole = mine_negatives(x, positives=x[::-1], range_max=30)
    for k, v in whole.columns.items():
        np.testing.assert_array_equal(big.columns[k], v)
    assert big.summary["range_max"] == 10**7


def test_positives_are_found_in_a_corpus_of_another_float_type() -> None:
    """Rows were matched by their bytes: float32 positives were not rows of a float64 corpus,
    and -0.0 was not 0.0."""
    rng = np.random.default_rng(5)
    corpus = rng.standard_normal((40, 4)).astype(np.float32)
    corpus[7, 2] = 0.0
    positives = corpus[[3, 7, 11]].copy()
    positives[1, 2] = -0.0
    queries = rng.standard_normal((3, 4))
    want = mine_negatives(queries, corpus, np.array([[0, 3], [1, 7], [2, 11]]))
    got = mine_negatives(queries, corpus.astype(np.float64), positives=positives)
    for k, v in want.columns.items():
        np.testing.assert_array_equal(got.columns[k], v, err_msg=k)


def test_triplets_from_stdin_keep_their_recorded_settings(cli, tmp_path: Path) -> None:
    mined = tmp_path / "m.parquet"
    x, y = SAMPLE / "embeddings.npy", SAMPLE / "labels.npy"
    assert cli("mine", "--embeddings", x, "--labels", y, "--distance", "cosine", "--margin",
               "0.2", "-q", "-o", mined).exit_code == 0
    by_path = json.loads(cli("compute", "--embeddings", x, "--triplets", mined, "-f", "json",
                             "-q").stdout)
    piped = cli("compute", "--embeddings", x, "--triplets", "-", "-f", "json", "-q",
                input=mined.read_bytes())
    assert piped.exit_code == 0, piped.stderr
    report = json.loads(piped.stdout)
    assert report["loss"] == by_path["loss"]
    assert report["params"]["sources"]["distance"] == "triplets file"


def test_file_recorded_minkowski_p_is_not_reported_beside_euclidean(cli, tmp_path: Path
                                                                     ) -> None:
    mined = tmp_path / "m.parquet"
    result = cli("mine", "--embeddings", SAMPLE / "embeddings.npy", "--labels",
                 SAMPLE / "labels.npy", "--p", "3", "-q", "-o", mined)
    assert result.exit_code == 0, result.stderr
    r = compute_loss(embeddings=SAMPLE / "embeddings.npy", triplets=mined, distance="euclidean")
    params = r.summary["params"]
    assert (params["distance"], params["p"], params["sources"]["p"]) == (
        "euclidean", 2.0, "default")
    recorded = compute_loss(embeddings=SAMPLE / "embeddings.npy", triplets=mined)
    assert recorded.summary["params"]["p"] == 3.0


def test_the_input_that_differs_is_the_one_named(tmp_path: Path) -> None:
    for name in "apn":
        np.save(tmp_path / f"{name}.npy", np.zeros((4, 5 if name == "n" else 3)))
    with pytest.raises(TripletLossError) as e:
        compute_loss(*(str(tmp_path / f"{n}.npy") for n in "apn"))
    assert e.value.path.endswith("n.npy")


# ---- the process ------------------------------------------------------------------------------
def _closed_stdout(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI with its stdout's reader gone before it writes a byte."""
    run = subprocess.Popen([sys.executable, "-m", "triplet_cli", *argv], cwd=cwd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run.stdout.close()
    stderr = run.stderr.read()
    return subprocess.CompletedProcess(argv, run.wait(timeout=120), b"", stderr)


@pytest.mark.parametrize("argv", [["--help"], ["presets", "-f", "json"], ["presets"],
                                  ["mine-negatives", "--help"]])
def test_closed_stdout_ends_quietly_everywhere(argv: list[str], tmp_path: Path) -> None:
    """Click and rich exited 1 on EPIPE (the README says 1 is bad input)."""
    result = _closed_stdout(argv, tmp_path)
    assert (result.returncode, result.stderr) == (0, b"")


def test_output_file_is_written_when_the_stdout_reader_leaves(tmp_path: Path) -> None:
    """`-f csv -o rows.npy | head -1`: the file was silently not written, exit 0."""
    aligned = [f"--{r}={SAMPLE}/{r}.npy" for r in ("anchors", "positives", "negatives")]
    result = _closed_stdout(["compute", *aligned, "-q", "-f", "csv", "-o", "rows.npy"],
                            tmp_path)
    assert (result.returncode, result.stderr) == (0, b"")
    whole = compute_loss(*(SAMPLE / f"{r}.npy" for r in ("anchors", "positives", "negatives")))
    np.testing.assert_array_equal(np.load(tmp_path / "rows.npy"),
                                  np.stack([whole.d_ap, whole.d_an, whole.loss], axis=1))
    assert sorted(os.listdir(tmp_path)) == ["rows.npy"]


def test_atomic_path_exit_leaves_no_temp_file(tmp_path: Path) -> None:
    with pytest.raises(SystemExit), writers.atomic_path(str(tmp_path / "rows.npy")) as tmp:
        Path(tmp).write_bytes(b"x" * 100)
        raise SystemExit(143)
    assert os.listdir(tmp_path) == []


def _waits_on_a_pipe(pid: int) -> bool:
    try:
        return "pipe" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:  # no /proc: give it time
        time.sleep(3)
        return True


@pytest.mark.parametrize(("signum", "said"), [(signal.SIGTERM, "terminated"),
                                              (signal.SIGHUP, "hung up"),
                                              (signal.SIGINT, "interrupted")])
def test_a_stop_signal_is_one_line_and_leaves_no_file(tmp_path: Path, signum: int,
                                                      said: str) -> None:
    """A run waiting on stdin gets SIGTERM (a scheduler's timeout), SIGHUP (its terminal
    closed) or SIGINT: it unwinds, one line, exit 128 + the signal, no file left (SIGHUP left
    the temporary output and the stdin spool)."""
    run = subprocess.Popen([sys.executable, "-m", "triplet_cli", "compute", "--anchors", "-",
                            f"--positives={SAMPLE}/positives.npy",
                            f"--negatives={SAMPLE}/negatives.npy", "-o", "rows.csv"],
                           cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _waits_on_a_pipe(run.pid):
        time.sleep(0.05)  # until it reads stdin: its imports done, its handler in place
    run.send_signal(signum)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 128 + signum, stderr
    assert stderr.decode().splitlines() == [f"triplet-loss: {said}; no output written"]
    assert os.listdir(tmp_path) == []


# ---- third contact: a README walkthrough ------------------------------------------------------
def test_a_gate_keeps_its_exit_code_when_the_row_reader_leaves(tmp_path: Path) -> None:
    argv = ["mine", f"--embeddings={SAMPLE}/embeddings.npy", f"--labels={SAMPLE}/labels.npy",
            "--fail-above", "0.1", "-f", "csv", "-q"]
    assert _closed_stdout(argv, tmp_path).returncode == 3
    argv = ["evaluate", f"--embeddings={SAMPLE}/embeddings.npy", f"--labels={SAMPLE}/labels.npy",
            "--fail-below", "map_at_r=0.95", "-f", "csv", "-q"]
    assert _closed_stdout(argv, tmp_path).returncode == 3


@pytest.mark.parametrize(("redirect", "code", "stderr"), [
    (">&-", 0, ""), ("> /dev/full", 1, "triplet-loss: error: stdout: No space left on device\n")])
def test_stdout_closed_or_full(redirect: str, code: int, stderr: str, tmp_path: Path) -> None:
    """A closed stdout gave a 45-line traceback, a full one another (presets, --help)."""
    if not Path("/dev/full").exists() and "full" in redirect:
        pytest.skip("no /dev/full")
    for argv in ("presets", "compute --help",
                 f"compute --anchors {SAMPLE}/anchors.npy --positives {SAMPLE}/positives.npy "
                 f"--negatives {SAMPLE}/negatives.npy"):
        run = subprocess.run(["bash", "-c", f"{sys.executable} -m triplet_cli {argv} {redirect}"],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert (run.returncode, run.stderr) == (code, stderr), argv


@pytest.mark.parametrize("call", [
    lambda E: compute_loss(embeddings=E, triplets=[[0, 1, 2], [3, 4]]),
    lambda E: compute_loss([[1, 2], [3]], E[:2, :2], E[:2, :2]),
    lambda E: mine_triplets([[1, 2], [3]], [0, 1]),
    lambda E: mine_negatives(E, E, [[0, 1], [2]]),
    lambda E: evaluate(E[:4], [[0], [1, 2], [0], [1]]),
])
def test_ragged_lists_are_input_errors(call) -> None:
    with pytest.raises(TripletLossError, match="its rows differ in length"):
        call(np.zeros((30, 8)))


@pytest.mark.parametrize("flag", ["-o", "--embeddings"])
def test_an_empty_path_is_a_usage_error(cli, flag: str) -> None:
    argv = {"--embeddings": SAMPLE / "embeddings.npy", "--labels": SAMPLE / "labels.npy",
            "-o": "x.csv"}
    result = cli("mine", *[a for k, v in {**argv, flag: ""}.items() for a in (k, v)])
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("is empty: give a path")


def test_prepare_twins_come_from_the_package() -> None:
    import triplet_cli

    x, y = labelled()
    job = triplet_cli.prepare_mine(x, y)
    assert job.x.shape == x.shape and callable(triplet_cli.prepare_compute)
    assert callable(triplet_cli.prepare_evaluate) and callable(triplet_cli.prepare_negatives)


def test_evaluate_takes_numpy_at_and_one_gate_string() -> None:
    x, y = labelled(60)
    listed = evaluate(x, y, at=[1, 3], fail_below=["map_at_r=0.1"])
    given = evaluate(x, y, at=np.array([1, 3]), fail_below="map_at_r=0.1")
    assert given.metrics == listed.metrics


# ---- scale-out and disks: a fourth audit -------------------------------------------------------
def test_a_local_cluster_without_workers_fails_instead_of_waiting(monkeypatch) -> None:
    """Workers that exit on a SIGINT the run ignores (a background job) are not replaced: the
    client waited in as_completed for ever (observed for 10 minutes)."""
    from triplet_cli import distributed

    class NoWorkers:
        def nthreads(self) -> dict:
            return {}

    class Pending:
        def has_ready(self) -> bool:
            return False

    monkeypatch.setattr(distributed, "WORKERLESS_SECONDS", 0.05)
    cluster = distributed.Cluster(NoWorkers(), "local cluster tcp://127.0.0.1:1", local=True)
    started = time.monotonic()
    with pytest.raises(TripletLossError, match="every worker has exited"):
        cluster._next(Pending())
    assert time.monotonic() - started < 10


def test_a_malformed_scheduler_address_is_a_usage_error(cli) -> None:
    result = cli("mine", "--embeddings", SAMPLE / "embeddings.npy", "--labels",
                 SAMPLE / "labels.npy", "--scheduler", "foo")
    assert result.exit_code == 2
    assert "--scheduler foo: give local, or the scheduler's address" in result.stderr


def test_a_failed_write_names_its_file() -> None:
    """A full disk said 'No space left on device' naming nothing (and stdout is named so)."""
    import errno
    import io

    class Full(io.BytesIO):
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    for name in ("out.jsonl", "stdout"):
        writer = writers.RowWriter(Full(), "jsonl", {"a": np.dtype(np.int64)}, name=name)
        with pytest.raises(OSError) as e:
            writer.write({"a": np.arange(3)})
        assert (e.value.errno, e.value.filename) == (errno.ENOSPC, name)
