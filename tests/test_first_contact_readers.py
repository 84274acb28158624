"""First contact: inputs as producers write them, and memory when they write large
parquet row groups.

- A Hugging Face tokenised dataset: integer token lists next to one float embedding list.
- A headerless one-column CSV of labels: its first row is data.
- stdin (`-`): every format a path may hold (an Arrow IPC stream too), labels and triplets
  included, at most one `-` per run; checked in-process and through real pipes.
- Parquet row groups far larger than a block: reads and batches stay bounded.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import csv_rows, ok

from triplet_cli import arrow, readers
from triplet_cli.errors import InputError

ROWS, DIM = 40, 8


def _error_line(result, code: int = 1) -> str:
    """The one stderr line of a failed run (no traceback, the right exit code)."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("triplet-loss: error: "), result.stderr
    return lines[0]


def _vectors(seed: int, rows: int = ROWS, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)


def _labels(rows: int = ROWS) -> np.ndarray:
    return np.arange(rows, dtype=np.int64) % 4


def _float_list(x: np.ndarray, fixed: bool = False) -> pa.Array:
    flat = pa.array(x.reshape(-1))
    if fixed:
        return pa.FixedSizeListArray.from_arrays(flat, x.shape[1])
    offsets = pa.array(np.arange(0, x.size + 1, x.shape[1], dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, flat)


def _table_bytes(table: pa.Table, kind: str) -> bytes:
    """`table` as the bytes of a parquet file, an Arrow IPC file or an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    if kind == "parquet":
        pq.write_table(table, sink)
    else:
        new = pa.ipc.new_file if kind == "arrow" else pa.ipc.new_stream
        with new(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """a.npy, p.npy, n.npy (aligned), x.npy with y.npy labels, and x.parquet holding both."""
    for seed, name in enumerate(("a", "p", "n", "x")):
        np.save(tmp_path / f"{name}.npy", _vectors(seed))
    np.save(tmp_path / "y.npy", _labels())
    pq.write_table(pa.table({"embedding": _float_list(_vectors(3), fixed=True),
                             "label": _labels()}), tmp_path / "x.parquet")
    return tmp_path


# ---- a Hugging Face tokenised dataset ---------------------------------------------------------


def _tokenised(embedding: bool = True) -> pa.Table:
    """What `datasets` writes for a tokenised, embedded split: int64 token lists of varying
    length, an int64 label, and (when embedded) a list<float32> embedding."""
    rng = np.random.default_rng(9)
    lengths = rng.integers(3, 12, size=ROWS)
    columns = {
        "input_ids": pa.array([rng.integers(0, 30_000, n).tolist() for n in lengths],
                              pa.list_(pa.int64())),
        "attention_mask": pa.array([[1] * n for n in lengths], pa.list_(pa.int64())),
        "label": pa.array(_labels()),
    }
    if embedding:
        columns["embedding"] = _float_list(_vectors(3))
    return pa.table(columns)


def test_tokenised_dataset_finds_its_float_embedding(inputs: Path, cli) -> None:
    pq.write_table(_tokenised(), inputs / "hf.parquet")
    hf = str(inputs / "hf.parquet")
    computed = json.loads(ok(cli("compute", "--anchors", hf, "--positives", inputs / "p.npy",
                                 "--negatives", inputs / "n.npy", "--format", "json")))
    assert computed["count"] == ROWS
    assert {v["shape"][1] for v in computed["inputs"].values()} == {DIM}
    mined = ok(cli("mine", "--embeddings", hf, "--format", "json"))
    by_path = ok(cli("mine", "--embeddings", inputs / "x.npy", "--labels", inputs / "y.npy",
                     "--format", "json"))
    assert json.loads(mined)["loss"] == json.loads(by_path)["loss"]


def test_token_lists_alone_are_not_taken_for_embeddings(inputs: Path, cli) -> None:
    pq.write_table(_tokenised(embedding=False), inputs / "tokens.parquet")
    line = _error_line(cli("mine", "--embeddings", inputs / "tokens.parquet"))
    assert line.endswith("tokens.parquet: no list<float> column (input_ids and attention_mask "
                         "hold integers: name one with --column to use it); columns: input_ids, "
                         "attention_mask, label"), line


def test_several_float_lists_still_ask_for_a_column(inputs: Path, cli) -> None:
    table = _tokenised().append_column("pooled", _float_list(_vectors(4)))
    pq.write_table(table, inputs / "two.parquet")
    line = _error_line(cli("mine", "--embeddings", inputs / "two.parquet"))
    assert line.endswith("several list<float> columns (embedding, pooled); choose one with "
                         "--column"), line
    ok(cli("mine", "--embeddings", inputs / "two.parquet", "--column", "pooled", "-f", "json"))


# ---- labels in a CSV: is the first row a header? ------------------------------------------------


def test_headerless_integer_labels_keep_their_first_row(tmp_path: Path, cli) -> None:
    x, y = _vectors(0, 400), np.arange(400) % 7
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "y.csv").write_text("".join(f"{v}\n" for v in y))
    from_csv = ok(cli("mine", "--embeddings", tmp_path / "x.npy", "--labels",
                      tmp_path / "y.csv", "-f", "json"))
    from_npy = ok(cli("mine", "--embeddings", tmp_path / "x.npy", "--labels",
                      tmp_path / "y.npy", "-f", "json"))
    assert json.loads(from_csv)["labels"] == json.loads(from_npy)["labels"]
    assert json.loads(from_csv)["triplets"] == json.loads(from_npy)["triplets"]


@pytest.mark.parametrize(("text", "column", "expected"), [
    ("3\n1\n2\n", None, [3, 1, 2]),                        # numbers all the way down: data
    ("label\n3\n1\n2\n", None, [3, 1, 2]),                 # text above numbers: a header
    ("class\n3\n1\n", None, [3, 1]),
    ("0.0\n1.0\n1.0\n", None, [0, 1, 1]),
    ("cat\ndog\ncat\n", None, ["cat", "dog", "cat"]),      # strings all the way down: data
    ("label\ncat\ndog\n", None, ["cat", "dog"]),           # ... unless it says "label"
    ("species\ncat\ndog\n", "species", ["cat", "dog"]),    # ... or the --label-column name
    ("3\n1\n2\n", "3", [1, 2]),
    ("id,label\n0,cat\n1,dog\n", None, ["cat", "dog"]),    # several columns: always a header
], ids=["ints", "header-ints", "other-header-ints", "floats", "strings", "header-strings",
        "named-header", "numeric-header-named", "two-columns"])
def test_one_column_csv_header_rule(tmp_path: Path, text: str, column: str | None,
                                    expected: list) -> None:
    (tmp_path / "y.csv").write_text(text)
    assert readers.read_labels(str(tmp_path / "y.csv"), column).tolist() == expected


def test_headerless_csv_has_no_named_column(tmp_path: Path) -> None:
    (tmp_path / "y.csv").write_text("3\n1\n2\n")
    with pytest.raises(InputError, match=r"no column 'label'; the file has one column and no "
                                         r"header"):
        readers.read_labels(str(tmp_path / "y.csv"), "label")


# ---- stdin: every format a path may hold --------------------------------------------------------


def _embedding_table(x: np.ndarray, labels: np.ndarray | None = None) -> pa.Table:
    columns = {"embedding": _float_list(x, fixed=True)}
    if labels is not None:
        columns["label"] = pa.array(labels)
    return pa.table(columns)


EMBEDDING_STREAMS = {
    "npy": lambda x: _npy_bytes(x),
    "npz": lambda x: _npz_bytes(emb=x),
    "parquet": lambda x: _table_bytes(_embedding_table(x), "parquet"),
    "arrow-file": lambda x: _table_bytes(_embedding_table(x), "arrow"),
    "arrow-stream": lambda x: _table_bytes(_embedding_table(x), "stream"),
}


@pytest.mark.parametrize("kind", EMBEDDING_STREAMS)
def test_stdin_embeddings_in_every_format(kind: str, inputs: Path, cli) -> None:
    a = np.load(inputs / "a.npy")
    rest = ("--positives", inputs / "p.npy", "--negatives", inputs / "n.npy", "-f", "jsonl")
    piped = ok(cli("compute", "--anchors", "-", *rest, input=EMBEDDING_STREAMS[kind](a)))
    assert piped == ok(cli("compute", "--anchors", inputs / "a.npy", *rest))


LABEL_STREAMS = {
    "npy": lambda y: _npy_bytes(y),
    "npz": lambda y: _npz_bytes(y=y),
    "csv-headerless": lambda y: "".join(f"{v}\n" for v in y).encode(),
    "csv-header": lambda y: ("label\n" + "".join(f"{v}\n" for v in y)).encode(),
    "parquet": lambda y: _table_bytes(pa.table({"label": y}), "parquet"),
    "arrow-file": lambda y: _table_bytes(pa.table({"label": y}), "arrow"),
    "arrow-stream": lambda y: _table_bytes(pa.table({"label": y}), "stream"),
}


@pytest.mark.parametrize("kind", LABEL_STREAMS)
def test_stdin_labels_in_every_format(kind: str, inputs: Path, cli) -> None:
    argv = ("mine", "--embeddings", inputs / "x.npy", "-f", "csv")
    piped = ok(cli(*argv, "--labels", "-", input=LABEL_STREAMS[kind](_labels())))
    assert piped == ok(cli(*argv, "--labels", inputs / "y.npy"))


@pytest.mark.parametrize("kind", ["parquet", "arrow-file", "arrow-stream"])
def test_stdin_labelled_table_gives_embeddings_and_labels(kind: str, inputs: Path, cli) -> None:
    table = pq.read_table(inputs / "x.parquet")
    data = _table_bytes(table, {"arrow-file": "arrow", "arrow-stream": "stream"}.get(kind, kind))
    piped = ok(cli("mine", "--embeddings", "-", "-f", "csv", input=data))
    assert piped == ok(cli("mine", "--embeddings", inputs / "x.parquet", "-f", "csv"))


def test_stdin_triplets_from_mine(inputs: Path, cli) -> None:
    mined = ok(cli("mine", "--embeddings", inputs / "x.npy", "--labels", inputs / "y.npy",
                   "--strategy", "hard", "-f", "csv"))
    rescored = ok(cli("compute", "--embeddings", inputs / "x.npy", "--triplets", "-", "-f",
                      "csv", input=mined.encode()))
    mined_rows, rescored_rows = csv_rows(mined), csv_rows(rescored)
    for key in ("anchor", "positive", "negative", "d_ap", "d_an", "loss"):
        np.testing.assert_array_equal(rescored_rows[key], mined_rows[key])


def test_stdin_npy_holds_no_labels(inputs: Path, cli) -> None:
    line = _error_line(cli("mine", "--embeddings", "-", input=_npy_bytes(_vectors(3))))
    assert line == ("triplet-loss: error: <stdin>: holds no labels; give them with --labels "
                    "(only a parquet or Arrow file can hold both)")


def test_stdin_twice_in_one_mine_run(inputs: Path, cli) -> None:
    data = _table_bytes(pq.read_table(inputs / "x.parquet"), "parquet")
    line = _error_line(cli("mine", "--embeddings", "-", "--labels", "-", input=data), code=2)
    assert line.endswith("only one input can be read from stdin (-)")


def test_stdin_npz_with_several_arrays_names_them(inputs: Path, cli) -> None:
    data = _npz_bytes(x=_vectors(5), y=_vectors(6))
    rest = ("--positives", inputs / "p.npy", "--negatives", inputs / "n.npy")
    line = _error_line(cli("compute", "--anchors", "-", *rest, input=data))
    assert line.endswith("<stdin>: holds 2 arrays (x, y); name one as -:KEY"), line
    ok(cli("compute", "--anchors", "-:y", *rest, "-f", "json", input=data))


def test_stdin_terminal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.BytesIO):
        buffer = property(lambda self: self)

        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    with pytest.raises(InputError, match="stdin is a terminal"):
        readers.read_labels("-")


def test_arrows_suffix_is_an_ipc_stream(inputs: Path, cli) -> None:
    data = _table_bytes(_embedding_table(np.load(inputs / "a.npy")), "stream")
    (inputs / "a.arrows").write_bytes(data)
    rest = ("--positives", inputs / "p.npy", "--negatives", inputs / "n.npy", "-f", "jsonl")
    assert (ok(cli("compute", "--anchors", inputs / "a.arrows", *rest))
            == ok(cli("compute", "--anchors", inputs / "a.npy", *rest)))


def _tool(*argv: object) -> list[str]:
    return [sys.executable, "-m", "triplet_cli", *(str(a) for a in argv)]


def test_real_pipes_through_stdin(inputs: Path) -> None:
    """`mine --embeddings - < labelled.parquet`, and mine | compute --triplets -, as processes;
    stdin is copied to a temporary file that is gone when the process ends."""
    spool = inputs / "tmp"
    spool.mkdir()
    env = {**os.environ, "TMPDIR": str(spool)}
    with open(inputs / "x.parquet", "rb") as stdin:
        piped = subprocess.run(_tool("mine", "--embeddings", "-", "-f", "json"), stdin=stdin,
                               capture_output=True, env=env, timeout=120)
    assert piped.returncode == 0 and piped.stderr == b"", piped.stderr
    by_path = subprocess.run(_tool("mine", "--embeddings", inputs / "x.parquet", "-f", "json"),
                             capture_output=True, timeout=120)
    assert json.loads(piped.stdout)["loss"] == json.loads(by_path.stdout)["loss"]

    mine = subprocess.Popen(_tool("mine", "--embeddings", inputs / "x.npy", "--labels",
                                  inputs / "y.npy", "-f", "csv"), stdout=subprocess.PIPE, env=env)
    compute = subprocess.run(_tool("compute", "--embeddings", inputs / "x.npy", "--triplets",
                                   "-", "-f", "json"), stdin=mine.stdout, capture_output=True,
                             env=env, timeout=120)
    mine.stdout.close()  # type: ignore[union-attr]
    assert mine.wait(timeout=120) == 0
    assert compute.returncode == 0 and compute.stderr == b"", compute.stderr
    assert json.loads(compute.stdout)["loss"] == pytest.approx(json.loads(piped.stdout)["loss"],
                                                               rel=1e-12)
    assert list(spool.iterdir()) == []



def test_a_binary_stream_of_no_format_is_refused_at_its_first_bytes(inputs: Path) -> None:
    """Zeros on stdin (`< /dev/zero`, or a stream of a format we do not read) were copied to the
    temporary folder to the end, which /dev/zero does not have: refused after one chunk."""
    spool = inputs / "tmp"
    spool.mkdir()
    run = subprocess.Popen(_tool("compute", "--anchors", "-", "--positives", inputs / "p.npy",
                                 "--negatives", inputs / "n.npy"), stdin=subprocess.PIPE,
                           stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(spool)})
    sent, chunk = 0, bytes(1 << 20)
    with contextlib.suppress(BrokenPipeError):
        while sent < 256 << 20:
            run.stdin.write(chunk)  # type: ignore[union-attr]
            sent += len(chunk)
    with contextlib.suppress(BrokenPipeError):
        run.stdin.close()  # type: ignore[union-attr]
    assert run.wait(timeout=120) == 1
    assert run.stderr.read() == (  # type: ignore[union-attr]
        b"triplet-loss: error: <stdin>: opens with binary bytes of no format read here (.npy, "
        b".npz, .parquet, .arrow; CSV and JSON lines are text): not copied further\n")
    assert sent < 256 << 20
    assert list(spool.iterdir()) == []


# ---- pipes: a shell's <(...) and named pipes, read as files -----------------------------------


@contextlib.contextmanager
def _fifo(folder: Path, data: bytes) -> Iterator[Path]:
    """A named pipe in `folder` that a thread fills with `data` once it is opened."""
    path = folder / f"pipe{len(list(folder.iterdir()))}"
    os.mkfifo(path)

    def fill() -> None:
        with contextlib.suppress(BrokenPipeError), open(path, "wb") as f:
            f.write(data)

    writer = threading.Thread(target=fill, daemon=True)
    writer.start()
    yield path
    if writer.is_alive():  # never opened for reading: let the writer's open return
        with open(path, "rb"):
            pass
    writer.join(timeout=10)


@pytest.mark.parametrize("kind", EMBEDDING_STREAMS)
def test_named_pipe_embeddings_in_every_format(kind: str, inputs: Path, cli) -> None:
    """A pipe was read as a file whose head had been consumed by the format check: `lseek
    failed`, or a truncated file."""
    a = np.load(inputs / "a.npy")
    rest = ("--positives", inputs / "p.npy", "--negatives", inputs / "n.npy", "-f", "jsonl")
    with _fifo(inputs, EMBEDDING_STREAMS[kind](a)) as pipe:
        piped = ok(cli("compute", "--anchors", pipe, *rest))
    assert piped == ok(cli("compute", "--anchors", inputs / "a.npy", *rest))


def test_named_pipes_for_labels_and_a_labelled_table(inputs: Path, cli) -> None:
    table = _table_bytes(pq.read_table(inputs / "x.parquet"), "parquet")
    with _fifo(inputs, table) as pipe:
        piped = ok(cli("mine", "--embeddings", pipe, "-f", "csv"))
    assert piped == ok(cli("mine", "--embeddings", inputs / "x.parquet", "-f", "csv"))
    labels = LABEL_STREAMS["csv-headerless"](_labels())
    with _fifo(inputs, labels) as pipe:
        piped = ok(cli("mine", "--embeddings", inputs / "x.npy", "--labels", pipe, "-f", "csv"))
    assert piped == ok(cli("mine", "--embeddings", inputs / "x.npy", "--labels",
                           inputs / "y.npy", "-f", "csv"))


@pytest.mark.parametrize(("data", "message"), [
    (b"", "is empty"),
    (b"PAR1" + bytes(100), "cannot read as parquet"),
])
def test_a_bad_pipe_is_named_by_its_path(inputs: Path, cli, data: bytes, message: str) -> None:
    (inputs / "t.csv").write_text("anchor,positive,negative\n0,1,2\n")
    with _fifo(inputs, data) as pipe:
        line = _error_line(cli("compute", "--embeddings", pipe, "--triplets", inputs / "t.csv"))
    assert line.startswith(f"triplet-loss: error: {pipe}: {message}"), line
    assert "triplet-loss-input-" not in line


def test_an_empty_triplet_stream_is_no_triplet(inputs: Path, cli) -> None:
    """What `mine -f jsonl` writes when nothing passes its filters (no byte), through a pipe or
    stdin, is scored as a file of it is: no triplet."""
    argv = ("compute", "--embeddings", inputs / "x.npy", "-f", "json", "--triplets")
    with _fifo(inputs, b"") as pipe:
        piped = cli(*argv, pipe)
    for run in (piped, cli(*argv, "-", input=b"")):
        assert run.exit_code == 0, run.stderr
        assert json.loads(run.stdout)["count"] == 0


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for <(...)")
def test_process_substitution(inputs: Path) -> None:
    """`--labels <(...)` and `--embeddings <(...)` in one run, as a shell user writes them; the
    copies are gone when the process ends."""
    spool = inputs / "tmp"
    spool.mkdir()
    tool = " ".join(shlex.quote(a) for a in _tool("mine"))
    line = (f"{tool} --embeddings <(cat {shlex.quote(str(inputs / 'x.npy'))}) --labels "
            f"<(cat {shlex.quote(str(inputs / 'y.npy'))}) -f csv")
    piped = subprocess.run(["bash", "-c", line], capture_output=True, timeout=120,
                           env={**os.environ, "TMPDIR": str(spool)})
    assert piped.returncode == 0 and piped.stderr == b"", piped.stderr
    by_path = subprocess.run(_tool("mine", "--embeddings", inputs / "x.npy", "--labels",
                                   inputs / "y.npy", "-f", "csv"), capture_output=True,
                             timeout=120)
    assert piped.stdout == by_path.stdout
    assert list(spool.iterdir()) == []

# ---- parquet row groups larger than a block --------------------------------------------------


class _ReadSpy:
    """A file object that records the size of every read pyarrow makes."""

    def __init__(self, path: str, reads: list[int]) -> None:
        self._file, self._reads = open(path, "rb"), reads  # noqa: SIM115

    def read(self, n: int = -1) -> bytes:
        data = self._file.read(n)
        self._reads.append(len(data))
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._file, name)


def _big_row_group(path: Path, rows: int = 40_000, dim: int = 32, fixed: bool = True) -> None:
    """One uncompressed row group of rows x dim float32 (5 MB), pages of 64 kB."""
    pq.write_table(_embedding_table(_vectors(7, rows, dim)) if fixed else
                   pa.table({"embedding": _float_list(_vectors(7, rows, dim))}), path,
                   row_group_size=rows, compression="none", data_page_size=64 << 10)


def test_parquet_reads_stay_small_in_a_large_row_group(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow reads a whole column chunk at once unless told a buffer size: a 500,000-row
    group of 128 floats is 256 MB per input. Reads must stay within the reader's buffer."""
    _big_row_group(tmp_path / "big.parquet")
    reads: list[int] = []
    real = pq.ParquetFile

    def spied(source: object, **kw: object) -> pq.ParquetFile:
        return real(_ReadSpy(str(source), reads), **kw) if isinstance(source, str) else (
            real(source, **kw))

    monkeypatch.setattr(pq, "ParquetFile", spied)
    matrix = arrow.ArrowMatrix(str(tmp_path / "big.parquet"), "parquet", None, "--column")
    blocks = list(matrix.blocks(3_000))
    assert sum(len(b) for b in blocks) == 40_000
    assert max(reads) <= 2 * arrow.READ_BUFFER_BYTES, max(reads)


@pytest.mark.parametrize("kind", ["parquet", "parquet-list", "arrow", "stream"])
def test_batches_never_exceed_the_requested_rows(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "big.data"
    if kind.startswith("parquet"):
        _big_row_group(path, fixed=kind == "parquet")
    else:
        table = _embedding_table(_vectors(7, 40_000, 32))
        path.write_bytes(_table_bytes(table, kind))  # one record batch of 40,000 rows
    source = "parquet" if kind.startswith("parquet") else "arrow"
    sizes = [b.num_rows for b in arrow.record_batches(str(path), source, ["embedding"],
                                                      1_000)]
    assert sum(sizes) == 40_000 and max(sizes) <= 1_000, max(sizes)
    matrix = arrow.ArrowMatrix(str(path), source, None, "--column")
    blocks = list(matrix.blocks(777))
    assert [len(b) for b in blocks[:-1]] == [777] * (len(blocks) - 1)
    np.testing.assert_array_equal(np.concatenate(blocks), _vectors(7, 40_000, 32))
    np.testing.assert_array_equal(matrix.read(), _vectors(7, 40_000, 32))


def test_decoded_batches_are_bounded_in_bytes(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide rows are read in fewer rows per batch: a batch decodes at most READ_BATCH_BYTES
    of values (pyarrow's working memory is a few times a batch)."""
    _big_row_group(tmp_path / "wide.parquet", rows=3_000, dim=1_024)
    asked: list[int] = []
    real = pq.ParquetFile.iter_batches

    def spied(self: pq.ParquetFile, batch_size: int = 65_536, **kw: object):
        asked.append(batch_size)
        return real(self, batch_size=batch_size, **kw)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spied)
    matrix = arrow.ArrowMatrix(str(tmp_path / "wide.parquet"), "parquet", None, "--column")
    assert sum(len(b) for b in matrix.blocks(5_000)) == 3_000
    assert max(asked) * 1_024 * 4 <= arrow.READ_BATCH_BYTES


# ---- damaged archives, text labels, loose CSV headers, 0-d arrays ------------------------------


def _npz_variants(folder: Path) -> dict[str, Path]:
    """A cut archive, a member that is no .npy, a bad CRC and a bad deflate stream."""
    np.savez(folder / "e.npz", x=_vectors(0))
    whole = (folder / "e.npz").read_bytes()
    (folder / "cut.npz").write_bytes(whole[:len(whole) // 2])
    with zipfile.ZipFile(folder / "junk.npz", "w") as z:
        z.writestr("x.npy", b"hello")
    flipped = bytearray(whole)
    flipped[whole.find(readers.NPY_MAGIC) + 150] ^= 0xFF
    (folder / "crc.npz").write_bytes(bytes(flipped))
    np.savez_compressed(folder / "c.npz", x=_vectors(0))
    deflated = bytearray((folder / "c.npz").read_bytes())
    deflated[60:70] = bytes(10)
    (folder / "deflate.npz").write_bytes(bytes(deflated))
    return {k: folder / f"{k}.npz" for k in ("cut", "junk", "crc", "deflate")}


@pytest.mark.parametrize(("kind", "reason"), [
    ("cut", "File is not a zip file"), ("junk", "member 'x' is not a .npy array"),
    ("crc", "Bad CRC-32 for file 'x.npy'"), ("deflate", "Error -3 while decompressing data")])
def test_a_damaged_npz_is_one_line(inputs: Path, cli, kind: str, reason: str) -> None:
    """Each raised a traceback (zipfile.BadZipFile, zlib.error, bytes with no dtype)."""
    path = _npz_variants(inputs)[kind]
    line = _error_line(cli("compute", "--anchors", path, "--positives", inputs / "p.npy",
                           "--negatives", inputs / "n.npy"))
    assert line.startswith(f"triplet-loss: error: {path}: not a valid .npz file ({reason}"), line


@pytest.mark.parametrize("name", ["NA", "N/A", "nan", "null", "NULL"])
def test_csv_labels_that_pyarrow_calls_missing_are_classes(inputs: Path, cli, name: str) -> None:
    """North America is a class: the run was refused as 'row 9 is null'."""
    text = ["EU", "AS", "AF", name] * (ROWS // 4)
    (inputs / "y.csv").write_text("".join(f"{v}\n" for v in text))
    np.save(inputs / "y.npy", np.array(text))
    argv = ("mine", "--embeddings", inputs / "x.npy", "-f", "csv")
    assert ok(cli(*argv, "--labels", inputs / "y.csv")) == ok(cli(*argv, "--labels",
                                                                   inputs / "y.npy"))
    (inputs / "gap.csv").write_text("label\n" + "".join(f"{v}\n" for v in text[:-1]) + '""\n')
    line = _error_line(cli(*argv, "--labels", inputs / "gap.csv"))
    assert line.endswith(f"row {ROWS - 1} is null"), line


def test_csv_header_with_spaces_after_the_commas(inputs: Path, cli) -> None:
    (inputs / "t.csv").write_text("anchor, positive, negative\n0, 1, 2\n3, 4, 5\n")
    (inputs / "u.csv").write_text("anchor,positive,negative\n0,1,2\n3,4,5\n")
    argv = ("compute", "--embeddings", inputs / "x.npy", "-f", "csv", "--triplets")
    assert ok(cli(*argv, inputs / "t.csv")) == ok(cli(*argv, inputs / "u.csv"))


def test_a_zero_d_array_is_refused(inputs: Path, cli) -> None:
    """np.ascontiguousarray made it a vector of one value: a d = 1 anchor."""
    np.save(inputs / "s.npy", np.array(2.0))
    line = _error_line(cli("compute", "--anchors", inputs / "s.npy", "--positives",
                           inputs / "p.npy", "--negatives", inputs / "n.npy"))
    assert line == f"triplet-loss: error: {inputs / 's.npy'}: holds a single number (a 0-d " \
        "array), not vectors"


def test_a_name_too_long_says_so(inputs: Path, cli) -> None:
    long = inputs / ("a" * 300 + ".npy")
    line = _error_line(cli("compute", "--anchors", long, "--positives", inputs / "p.npy",
                           "--negatives", inputs / "n.npy"))
    assert line == f"triplet-loss: error: {long}: File name too long"


def test_an_overflow_by_triplets_names_the_embeddings(inputs: Path, cli) -> None:
    x = np.ones((4, 3))
    x[1], x[2] = 1e300, -1e300
    np.save(inputs / "big.npy", x)
    (inputs / "t.csv").write_text("anchor,positive,negative\n0,3,3\n1,0,2\n")
    line = _error_line(cli("compute", "--embeddings", inputs / "big.npy", "--triplets",
                           inputs / "t.csv"))
    assert line == (f"triplet-loss: error: {inputs / 'big.npy'}: {inputs / 't.csv'} row 1: the "
                    "distance overflows float64 (values too large); rescale the embeddings")


@pytest.mark.parametrize(("name", "data", "message"), [
    ("t.json", b'[{"anchor": 0, "positive": 1, "negative": 2}]',
     "is a JSON array: give triplets and pairs as JSON lines (one object per line, .jsonl) or "
     "CSV, labels as .npy or CSV, embeddings as .npy (numpy.save(PATH, "
     "numpy.array(json.load(open(FILE)))))"),
    ("t.csv", gzip.compress(b"anchor,positive,negative\n0,1,2\n"),
     "is gzip-compressed: decompress it first (`zcat FILE | triplet-loss ... -` reads it from "
     "stdin)"),
])
def test_formats_we_do_not_read_say_what_they_are(inputs: Path, cli, name: str, data: bytes,
                                                  message: str) -> None:
    """They were read as CSV ('CSV parse error')."""
    (inputs / name).write_bytes(data)
    line = _error_line(cli("compute", "--embeddings", inputs / "x.npy", "--triplets",
                           inputs / name))
    assert line == f"triplet-loss: error: {inputs / name}: {message}"
