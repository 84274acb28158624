"""`--scheduler`: Dask runs give the single-process rows, in order, byte for byte.

One LocalCluster of 2 worker processes serves the module (clusters of 1 and 3 in-process
workers are started where the worker count is the point); small data, many small blocks.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from triplet_cli import distributed as tl_dask
from triplet_cli import evaluation
from triplet_cli import mine as mine_module
from triplet_cli.compute import ComputeJob, prepare_compute
from triplet_cli.errors import InputError
from triplet_cli.evaluation import prepare_evaluate
from triplet_cli.jobs import collect
from triplet_cli.mine import prepare_mine

distributed = pytest.importorskip("distributed")

M, D, CLASSES = 300, 8, 12
BLOCK = 7  # anchor rows per block: 43 tasks for 300 anchors
MINE_OPTIONS = {
    "semi-hard": {},
    "batch-hard": {"strategy": "hard", "positive_strategy": "hard"},
    "mini-batches": {"batch_size": 64, "seed": 3},
    "all-semi-hard-band": {"strategy": "all", "positive_strategy": "hard",
                           "margin_filter": "semi-hard"},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """L2-normalised float32 embeddings (~25 rows per class), labels, and indexed triplets."""
    folder = tmp_path_factory.mktemp("dask-data")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((M, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    paths = {"x": folder / "x.npy", "labels": folder / "labels.npy",
             "triplets": folder / "triplets.npy"}
    np.save(paths["x"], x)
    np.save(paths["labels"], rng.integers(0, CLASSES, M))
    np.save(paths["triplets"], rng.integers(0, M, (2000, 3)))
    return paths


def test_a_job_travels_without_its_inputs(tmp_path: Path) -> None:
    """What an executor sends each worker once (without_shared) holds no input rows: the
    embeddings travel apart (by path for an .npy). evaluate's job carried every checkpoint and
    reference as read."""
    from triplet_cli.negatives import prepare_negatives

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 64)).astype(np.float32)
    y = rng.integers(0, 20, 2000)
    np.save(tmp_path / "x.npy", x)
    path = str(tmp_path / "x.npy")
    jobs = {"compute": prepare_compute(embeddings=path, triplets=rng.integers(0, 2000, (50, 3))),
            "mine": prepare_mine(path, y),
            "evaluate": prepare_evaluate(path, y, reference=path, reference_labels=y),
            "mine-negatives": prepare_negatives(path, path, positives=None,
                                                pairs=np.stack([np.arange(50)] * 2, axis=1))}
    for name, job in jobs.items():
        slim = len(pickle.dumps(job.without_shared()))
        assert slim < x.nbytes / 8, (name, slim)


def _processes() -> Iterator[tl_dask.Cluster]:
    """2 worker processes, 1 thread each: the shape `--scheduler local --workers 2` starts."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address="127.0.0.1:0",
                                  silence_logs=logging.CRITICAL) as lc, \
            distributed.Client(lc, set_as_default=False) as client:
        yield tl_dask.Cluster(client, f"scheduler {lc.scheduler_address}")


cluster = pytest.fixture(scope="module")(_processes)
own_cluster = pytest.fixture(_processes)  # for the test that kills a worker


@pytest.fixture
def threaded() -> Iterator[Callable[[int], tl_dask.Cluster]]:
    """`threaded(n)`: a Cluster of n in-process workers (quick to start), closed afterwards."""
    opened = []

    def start(n: int) -> tl_dask.Cluster:
        lc = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=False,
                                      dashboard_address="127.0.0.1:0",
                                      silence_logs=logging.CRITICAL)
        client = distributed.Client(lc, set_as_default=False)
        opened.append((client, lc))
        return tl_dask.Cluster(client, f"scheduler {lc.scheduler_address}")

    yield start
    for client, lc in opened:
        client.close()
        lc.close()


def same_blocks(expected: list, got: list) -> None:
    assert [(len(b), b.progress) for b in got] == [(len(b), b.progress) for b in expected]
    for a, b in zip(expected, got, strict=True):
        assert (a.correct is None) == (b.correct is None)
        for name, column in a.columns.items():
            assert np.array_equal(column, b.columns[name]), name


def summary_of(job, blocks: list) -> dict:
    return collect(job, iter(blocks))[1]


# ---- the same blocks as one process -----------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("options", MINE_OPTIONS.values(), ids=MINE_OPTIONS)
def test_mine_blocks_equal_single_process(data, cluster, threaded, workers: int,
                                          options: dict) -> None:
    job = prepare_mine(str(data["x"]), str(data["labels"]), block_rows=BLOCK, **options)
    expected = list(job.blocks())
    summary = summary_of(job, expected)
    on = cluster if workers == 2 else threaded(workers)
    for transfer in ("path", "send"):
        got = list(on.blocks(job, transfer=transfer))
        same_blocks(expected, got)
        assert summary_of(job, got) == summary


def test_normalised_embeddings_are_sent(data, cluster) -> None:
    job = prepare_mine(str(data["x"]), str(data["labels"]), normalize=True, block_rows=BLOCK)
    assert tl_dask.NpyFile.of(job.x) is None, "normalised rows are not the file's"
    expected = list(job.blocks())
    same_blocks(expected, list(cluster.blocks(job)))
    with pytest.raises(tl_dask.UsageError, match=r"transfer 'path' needs \.npy"):
        next(cluster.blocks(job, transfer="path"))


def test_embeddings_workers_cannot_read_are_sent(data, cluster, tmp_path) -> None:
    gone = tmp_path / "gone.npy"
    gone.write_bytes(data["x"].read_bytes())
    job = prepare_mine(str(gone), str(data["labels"]), block_rows=BLOCK)
    expected = list(job.blocks())
    gone.unlink()  # the client keeps its mapping; workers find no file
    with pytest.raises(InputError, match="no such file on worker tcp://"):
        list(cluster.blocks(job, transfer="path"))
    got = list(cluster.blocks(job))
    same_blocks(expected, got)
    assert any("embeddings sent, not read by path" in n for n in cluster.notes)


def test_a_changed_file_is_refused(data) -> None:
    job = prepare_mine(str(data["x"]), str(data["labels"]))
    file = tl_dask.NpyFile.of(job.x)
    assert file is not None and file.path == str(data["x"])
    stale = tl_dask.NpyFile(file.path, file.shape, file.dtype, "0" * 64)
    with pytest.raises(InputError, match=r"differs on .* from the client's copy"):
        stale.load()


def test_a_killed_worker_changes_nothing(data, own_cluster) -> None:
    cluster = own_cluster
    job = prepare_mine(str(data["x"]), str(data["labels"]), block_rows=2)
    expected = list(job.blocks())  # 150 small tasks: the run outlasts the kill
    client = cluster.client
    pids = client.run(os.getpid)
    got, busy = [], {}
    for block in cluster.blocks(job):
        got.append(block)
        if not busy:  # kill a worker while it runs one of this run's tasks
            busy = {w: keys for w, keys in client.processing().items() if keys}
            if busy:
                victim = sorted(busy)[0]
                os.kill(pids[victim], signal.SIGKILL)
                killed_after = len(got)
    assert busy and killed_after < len(expected) / 2, "killed early in the run"
    assert len(got) == len(expected) > 100
    same_blocks(expected, got)

    def starts(keys: list[str], dask_scheduler=None) -> int:
        return sum(1 for key, _, finish, *_ in dask_scheduler.transition_log
                   if key in keys and finish == "processing")

    keys = list(busy[victim])
    assert client.run_on_scheduler(starts, keys) > len(keys), "its task ran again elsewhere"
    assert victim not in client.nthreads()


# ---- compute ----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_compute_blocks_equal_single_process(data, sample, cluster, threaded,
                                             workers: int) -> None:
    on = cluster if workers == 2 else threaded(workers)
    roles = ("anchors", "positives", "negatives")
    jobs = [
        prepare_compute(embeddings=str(data["x"]), triplets=str(data["triplets"]), swap=True,
                        block_rows=150),
        prepare_compute(*(str(sample / f"{r}.parquet") for r in roles), margin=0.3,
                        block_rows=150),
        prepare_compute(str(sample / "anchors_200.npy"), str(sample / "candidates_positives.npy"),
                        str(sample / "candidates_negatives.npy"), pair_reduction="mean",
                        block_rows=150),
    ]
    for job in jobs:
        same_blocks(list(job.blocks()), list(on.blocks(job)))


@pytest.mark.parametrize("options", [
    {}, {"batch_hard_loss": True, "at": "1,3,40"}, {"reference": "each", "self_match": "first"},
    {"reference": "once", "normalize": True}],
    ids=["own rows", "batch-hard loss", "a reference each", "one reference"])
def test_evaluate_equals_single_process(data, cluster, options: dict) -> None:
    """Two checkpoints (the second a file of its own), 23 queries a unit: every per-query row
    and the whole summary as one process gives them. One reference for both is shipped once."""
    x = np.load(data["x"])
    later = data["x"].with_name("later.npy")
    np.save(later, (x + 0.1 * np.roll(x, 1, axis=0)).astype(np.float32))
    checkpoints = [str(data["x"]), str(later)]
    given = options.pop("reference", None)
    reference = {"each": checkpoints[::-1], "once": checkpoints[1:], None: None}[given]
    job = prepare_evaluate(checkpoints, str(data["labels"]), reference=reference,
                           reference_labels=reference and str(data["labels"]), block_rows=23,
                           **options)
    shipped = [k for k in job.shared() if k.startswith("reference")]
    assert len(shipped) == {"each": 2, "once": 1, None: 0}[given]
    expected = collect(job, job.blocks())
    got = collect(job, cluster.blocks(job))
    assert got[1] == expected[1]
    assert got[0].keys() == expected[0].keys()
    for name, column in expected[0].items():
        assert np.array_equal(column, got[0][name], equal_nan=column.dtype.kind == "f"), name


# ---- the CLI: same bytes, one error line, no partial output -----------------------------------


@pytest.fixture
def small_blocks(monkeypatch) -> None:
    """Many blocks through the CLI too (its block sizes come from the byte budgets)."""
    monkeypatch.setattr(mine_module, "BLOCK_BYTES", M * 8 * BLOCK)
    monkeypatch.setattr(ComputeJob, "rows_per_unit", lambda self: 150)


def _flags(options: dict) -> list[str]:
    flags = []
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        flags += [flag] if v is True else [flag, str(v)]
    return flags


def _outputs(cli, argv: list[str], folder: Path, extra: list[str]) -> dict[str, bytes]:
    folder.mkdir()
    files = {}
    for suffix in (".parquet", ".csv", ".npy"):
        out = folder / f"rows{suffix}"
        result = cli(*argv, "-o", out, "-f", "json", "-q", *extra)
        assert result.exit_code == 0, (result.stderr, result.exception)
        assert result.stderr == ""
        files[suffix] = out.read_bytes()
        files[f"json{suffix}"] = result.stdout.encode()
    assert sorted(os.listdir(folder)) == sorted(f"rows{s}" for s in (".parquet", ".csv", ".npy"))
    return files


@pytest.mark.parametrize("options", MINE_OPTIONS.values(), ids=MINE_OPTIONS)
def test_cli_mine_writes_the_same_bytes(cli, data, cluster, small_blocks, tmp_path,
                                        options: dict) -> None:
    argv = ["mine", "--embeddings", data["x"], "--labels", data["labels"], *_flags(options)]
    scheduler = cluster.client.scheduler.address
    assert _outputs(cli, argv, tmp_path / "one", []) == \
        _outputs(cli, argv, tmp_path / "dask", ["--scheduler", scheduler])


def test_cli_scheduler_local_starts_and_stops_a_cluster(cli, data, tmp_path) -> None:
    argv = ["mine", "--embeddings", data["x"], "--labels", data["labels"], "-f", "json"]
    one = cli(*argv, "-o", tmp_path / "one.parquet")
    local = cli(*argv, "-o", tmp_path / "local.parquet", "--scheduler", "local", "--workers", "2",
                "--verbose")
    assert local.exit_code == 0, local.stderr
    assert local.stdout == one.stdout
    assert (tmp_path / "local.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()
    assert "mine on local cluster tcp://127.0.0.1:" in local.stderr
    assert ": 2 workers, 2 threads, embeddings by path" in local.stderr



def test_cli_workers_beyond_the_cpus_are_capped_with_a_note(cli, data, tmp_path,
                                                           monkeypatch) -> None:
    """--workers 64 on a small machine started 64 processes (about 200 MB each)."""
    monkeypatch.setattr(tl_dask, "_cores", lambda: 1)
    argv = ["mine", "--embeddings", data["x"], "--labels", data["labels"], "-f", "json"]
    local = cli(*argv, "--scheduler", "local", "--workers", "3", "--verbose")
    note = "--workers 3: 1 CPU available here (the CPUs this process may use); starting 1"
    assert local.exit_code == 0, local.stderr
    assert f"triplet-loss: warning: {note}\n" in local.stderr
    assert ": 1 workers, 1 threads, embeddings by path" in local.stderr
    assert json.loads(local.stdout)["warnings"][-1] == note
    assert tl_dask.local_workers(None) == (None, None)
    assert tl_dask.local_workers(1) == (1, None)

def test_cli_compute_writes_the_same_bytes(cli, data, sample, cluster, small_blocks,
                                           tmp_path) -> None:
    scheduler = cluster.client.scheduler.address
    aligned = [a for r in ("anchors", "positives", "negatives")
               for a in (f"--{r}", sample / f"{r}.npy")]
    for i, argv in enumerate((
            ["compute", "--embeddings", data["x"], "--triplets", data["triplets"]],
            ["compute", "--embeddings", sample / "embeddings.npy", "--triplets",
             sample / "triplets.parquet"],  # streamed triplets (crashed: not subscriptable)
            ["compute", *aligned])):
        assert _outputs(cli, argv, tmp_path / f"one{i}", []) == \
            _outputs(cli, argv, tmp_path / f"dask{i}", ["--scheduler", scheduler])


def test_cli_evaluate_writes_the_same_bytes(cli, data, cluster, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(evaluation, "BLOCK_BYTES", M * 8 * 20)  # 20 queries a unit
    argv = ["evaluate", "--embeddings", data["x"], "--embeddings", data["x"], "--labels",
            data["labels"], "--at", "1,5"]
    scheduler = cluster.client.scheduler.address
    assert _outputs(cli, argv, tmp_path / "one", []) == \
        _outputs(cli, argv, tmp_path / "dask", ["--scheduler", scheduler])


def test_unreachable_scheduler_is_one_line(cli, data, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tl_dask, "CONNECT_TIMEOUT", 1.0)
    out = tmp_path / "rows.parquet"
    result = cli("mine", "--embeddings", data["x"], "--labels", data["labels"], "-o", out,
                 "--scheduler", "tcp://127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "triplet-loss: error: scheduler tcp://127.0.0.1:1: cannot connect (Timed out trying "
        "to connect to tcp://127.0.0.1:1 after 1 s)"]
    assert os.listdir(tmp_path) == [], "no output, no temp file"



@pytest.mark.parametrize("scheme", ["tls", "wss"])
def test_tls_without_settings_is_one_line_at_once(cli, data, tmp_path, monkeypatch,
                                                  scheme) -> None:
    """Without Dask's TLS settings, a Client failed with a TypeError and then hung 20 s in
    __del__, printing a traceback."""
    for key in [k for k in os.environ if k.startswith("DASK_DISTRIBUTED__COMM__TLS")]:
        monkeypatch.delenv(key)
    result = cli("mine", "--embeddings", data["x"], "--labels", data["labels"],
                 "-o", tmp_path / "rows.parquet", "--scheduler", f"{scheme}://127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"triplet-loss: error: scheduler {scheme}://127.0.0.1:1: cannot connect ({scheme} needs "
        f"Dask's TLS settings: {tl_dask.TLS_SETTINGS})"]
    assert os.listdir(tmp_path) == []

class _Http(socketserver.StreamRequestHandler):
    """Answers like a web server once it has read a request line (Dask's handshake has none)."""

    def handle(self) -> None:
        self.rfile.readline()
        self.wfile.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")


class _Eager(socketserver.StreamRequestHandler):
    """Answers at once with bytes that are no Dask frame (a proxy, another protocol)."""

    def handle(self) -> None:
        self.wfile.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")


@pytest.mark.parametrize(("handler", "message"), [
    (_Http, "no Dask handshake within 3 s: the dashboard's port instead of the scheduler's?"),
    (_Eager, "something answered that does not speak Dask: the dashboard's port instead of the "
     "scheduler's?"),
])
def test_something_else_on_the_port_is_one_line(cli, data, monkeypatch, handler,
                                                message) -> None:
    monkeypatch.setattr(tl_dask, "CONNECT_TIMEOUT", 1.0)
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        address = f"tcp://127.0.0.1:{server.server_address[1]}"
        result = cli("mine", "--embeddings", data["x"], "--labels", data["labels"],
                     "--scheduler", address)
        server.shutdown()
    assert result.exit_code == 1
    assert result.stderr == f"triplet-loss: error: scheduler {address}: cannot connect " \
        f"({message})\n"


def test_a_worker_error_is_one_line_and_leaves_no_output(cli, sample, cluster, small_blocks,
                                                         tmp_path) -> None:
    anchors = np.load(sample / "anchors.npy")
    anchors[1234, 5] = np.nan
    np.save(tmp_path / "anchors.npy", anchors)
    out = tmp_path / "out" / "rows.npy"  # .parquet: see the note in the interrupted test
    out.parent.mkdir()
    argv = ["compute", "--anchors", tmp_path / "anchors.npy", "--positives",
            sample / "positives.npy", "--negatives", sample / "negatives.npy", "-o", out]
    one = cli(*argv)
    dask = cli(*argv, "--scheduler", cluster.client.scheduler.address)
    assert (dask.exit_code, dask.stderr) == (one.exit_code, one.stderr) == (
        1, f"triplet-loss: error: {tmp_path / 'anchors.npy'}: row 1234 contains NaN\n")
    assert os.listdir(out.parent) == []


def test_an_interrupted_run_leaves_no_output(cli, data, cluster, small_blocks, tmp_path,
                                             monkeypatch) -> None:
    in_order = tl_dask.Cluster._in_order

    def interrupted(self, tasks):
        results = in_order(self, tasks)
        yield next(results)
        raise KeyboardInterrupt  # as Ctrl-C lands while the client waits for a block

    monkeypatch.setattr(tl_dask.Cluster, "_in_order", interrupted)
    out = tmp_path / "rows.npy"
    result = cli("mine", "--embeddings", data["x"], "--labels", data["labels"], "-o", out,
                 "--scheduler", cluster.client.scheduler.address)
    assert result.exit_code == 130
    assert result.stderr == "triplet-loss: interrupted; no output written\n"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["--workers", "2"], 2, "--workers starts a local cluster: use it with --scheduler local"),
    (["--workers", "2", "--scheduler", "tcp://h:1"], 2, "--workers applies to --scheduler local"),
    (["--scheduler", "tcp://h:99999"], 2, "--scheduler tcp://h:99999: port 99999 is not a port"),
    (["--scheduler", "local"], 1, "--scheduler needs Dask: pip install 'triplet-loss[dask]'"),
])
def test_flag_errors(cli, data, monkeypatch, argv, code, message) -> None:
    monkeypatch.setattr(tl_dask, "find_spec", lambda name: None)  # dask "not installed"
    result = cli("mine", "--embeddings", data["x"], "--labels", data["labels"], *argv)
    assert result.exit_code == code
    assert result.stderr.startswith(f"triplet-loss: error: {message}")
    assert len(result.stderr.splitlines()) == 1


def test_runs_without_scheduler_never_import_dask(data) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import triplet_cli, triplet_cli.distributed\n"
        "from triplet_cli.cli import app\n"
        f"r = CliRunner().invoke(app, ['mine', '--embeddings', {str(data['x'])!r}, "
        f"'--labels', {str(data['labels'])!r}, '-f', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "assert not loaded, loaded\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def _answer_ctrl_c() -> None:
    """The CLI under test takes Ctrl-C as a terminal's job does, even when this test runs where
    SIGINT is ignored (a shell's background job, `nohup`): an ignored SIGINT is inherited
    across exec, and Python then keeps ignoring it, as it should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_on_a_local_cluster_is_one_line(tmp_path) -> None:
    """Ctrl-C reaches the whole process group, workers included: one line, exit 130, no output
    file, no worker process left behind (before: 67 lines of worker tracebacks), and nothing
    in the temporary folder (Dask's scratch space was left there, after any run)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40_000, 64)).astype(np.float32)  # about a minute of mining
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(40_000) % 800)
    out = tmp_path / "mined.parquet"
    spool = tmp_path / "tmp"
    spool.mkdir()
    run = subprocess.Popen(
        [sys.executable, "-m", "triplet_cli", "mine", "--embeddings", tmp_path / "x.npy",
         "--labels", tmp_path / "y.npy", "--scheduler", "local", "--workers", "2", "-o", out],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=_answer_ctrl_c, env={**os.environ, "TMPDIR": str(spool)})

    def children() -> set[int]:
        found = subprocess.run(["pgrep", "-P", str(run.pid)], capture_output=True, text=True)
        return {int(p) for p in found.stdout.split()}

    for _ in range(600):  # the workers are spawned children of the CLI process
        if len(children()) >= 2 or run.poll() is not None:
            break
        threading.Event().wait(0.1)
    workers = children()
    threading.Event().wait(1.0)
    os.killpg(run.pid, signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err.decode()
    assert err.decode().splitlines() == ["triplet-loss: interrupted; no output written"]
    assert not out.exists()
    assert not list(tmp_path.glob(".mined.parquet.*"))
    assert list(spool.iterdir()) == []

    def alive(pid: int) -> bool:
        status = Path(f"/proc/{pid}/status")
        return status.exists() and "zombie" not in status.read_text().lower()

    for _ in range(150):  # the resource tracker leaves a moment after its parent
        if not any(alive(pid) for pid in workers):
            break
        threading.Event().wait(0.1)
    assert not [pid for pid in workers if alive(pid)]


def test_a_local_cluster_leaves_nothing_in_the_temporary_folder(tmp_path, sample) -> None:
    """Dask's scratch space ($TMPDIR/dask-scratch-space and its lock files) stayed after every
    run: the local cluster's goes with it."""
    spool = tmp_path / "tmp"
    spool.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "triplet_cli", "mine", "--embeddings", sample / "embeddings.npy",
         "--labels", sample / "labels.npy", "--scheduler", "local", "--workers", "2", "-q",
         "-f", "json"], capture_output=True, env={**os.environ, "TMPDIR": str(spool)},
        timeout=300)
    assert run.returncode == 0, run.stderr.decode()
    assert list(spool.iterdir()) == []
