"""Row writers for per-triplet output (.parquet, .csv, .jsonl, .npy), always atomic.

Rows go to a private (0600) temporary file beside the target, renamed over it only when the run
succeeded, with the mode a new file would get (0666 & ~umask) or that of the file it replaces.
A .parquet file also records the settings its rows were computed with (SETTINGS_KEY).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import InputError, UsageError
from .report import json_safe

STDOUT = "-"
SUFFIX_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
                  ".ndjson": "jsonl", ".npy": "npy"}
Batch = dict[str, np.ndarray]
SETTINGS_KEY = "triplet_loss"  # schema metadata key of the recorded settings (JSON)
SETTINGS_VERSION = 1
NPY_HEADER_BYTES = 128  # a .npy v1.0 header, written after the rows: fits any shape to 10**18 x 999


def output_format(path: str) -> str:
    """The row format a path's suffix asks for."""
    fmt = SUFFIX_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"--output {path}: unknown suffix; use "
                         f"{', '.join(sorted(SUFFIX_FORMATS))}")
    return fmt


def check_output(path: str, inputs: Sequence[str]) -> None:
    """Refuse an output that is an input or inside an input folder, or cannot be written."""
    try:
        os.getcwd()
    except FileNotFoundError:
        if not os.path.isabs(path):
            raise InputError("is a relative path, and the working directory no longer exists",
                             path) from None
    if os.path.isdir(path) or path.endswith(os.sep):
        what = "is a directory" if os.path.isdir(path) else f"ends with {os.sep}"
        raise InputError(f"{what}; --output needs a file name", path)
    output_format(path)
    require_replaceable(path, "--output")
    from .readers import same_file, split_key, tilde

    target = os.path.realpath(path)
    for source in inputs:
        if source == STDOUT:
            continue
        file = split_key(source)[0]  # (an .npz:key input: its file)
        real = os.path.realpath(file)
        if same_file(file, path):
            raise UsageError(f"--output {path} is also an input; refusing to overwrite it")
        if os.path.isdir(real) and os.path.commonpath([real, target]) == real:
            # A folder input is read as every file below it: a new file there joins the dataset.
            raise UsageError(f"--output {path} is inside the input dataset {source}; refusing "
                             "to write into it (it would become part of that input)")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError(f"{folder} is a file, not a folder", path)
    if not os.path.isdir(folder):
        raise InputError(f"output folder {folder} does not exist{tilde(path)}", path)
    if not os.access(folder, os.W_OK):
        raise InputError(f"output folder {folder} is not writable", path)


PENDING: set[str] = set()  # temporary files of this run, removed by abandon()


def abandon() -> None:
    """Remove this run's temporary files now (a run that ends without unwinding its stack)."""
    for tmp in list(PENDING):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    PENDING.clear()


def require_replaceable(path: str, flag: str) -> None:
    """An existing output is a regular file: a named pipe or a device would be replaced by one
    (and a pipe's reader wait forever), a loop of symbolic links by a file."""
    if "\0" in path:  # (a library caller's: os.stat would raise ValueError)
        raise UsageError(f"{flag}: the path holds a NUL character, which no file name can")
    try:
        mode: int | None = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UsageError(f"{flag} {path} is a loop of symbolic links; give a file name "
                             "or a link to one") from None
        mode = None  # (no such file yet)
    if mode is not None and not stat.S_ISREG(mode):
        raise UsageError(f"{flag} {path} is not a regular file (a named pipe or a device): it "
                         "would be replaced by one" + ("; to stream rows, use --format csv or "
                                                       "jsonl and redirect stdout"
                                                       if flag == "--output" else ""))
    for fd, stream in ((1, "stdout"), (2, "stderr")):  # (a link to /dev/stdout, say)
        with contextlib.suppress(OSError):  # (no such file yet, or a closed stream)
            if os.path.samestat(os.stat(path), os.fstat(fd)):
                raise UsageError(f"{flag} {path} is the file this run's {stream} is written "
                                 "to; refusing to overwrite it")


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.
    A symbolic link is written through: its target gets the new file, the link stays."""
    path = os.path.realpath(path) if os.path.islink(path) else path
    folder = os.path.dirname(os.path.abspath(path))
    name = Path(path).name.encode()[:200].decode(errors="ignore")  # + 14: within NAME_MAX
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    except OSError as e:  # named by the user's path, not the temporary file's
        raise OSError(e.errno, f"cannot write in folder {folder} ({e.strerror})", path) from None
    os.close(fd)
    PENDING.add(tmp)
    try:
        yield tmp
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode) & 0o777  # overwriting keeps the mode
        except OSError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        try:
            os.replace(tmp, path)
        except OSError as e:  # named by the user's path, not the temporary file's
            raise OSError(e.errno, e.strerror, path) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        PENDING.discard(tmp)


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc)."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe; we write one file)
    os.umask(mask)
    return mask


def settings_metadata(command: str, settings: dict[str, object],
                      embeddings_shape: Sequence[int] | None = None, **extra: object
                      ) -> dict[str, str]:
    """Schema metadata recording how rows were computed: the command, every resolved setting,
    the shape of the embeddings the row indices point into, and `extra` records."""
    from . import __version__

    record: dict[str, object] = {"version": SETTINGS_VERSION,
                                 "tool": f"triplet-loss {__version__}", "command": command,
                                 "params": {k: getattr(v, "value", v) for k, v in settings.items()}}
    if embeddings_shape is not None:
        record["embeddings"] = {"shape": [int(n) for n in embeddings_shape]}
    return {SETTINGS_KEY: json.dumps(record | extra)}


@contextlib.contextmanager
def _naming(name: str) -> Iterator[None]:
    """A failed write (a full disk) names the file written, or stdout."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OSError(e.errno, e.strerror, e.filename or name) from None


class RowWriter:
    """Writes batches of equal-length columns to one stream in one format."""

    def __init__(self, stream: BinaryIO, fmt: str, columns: dict[str, np.dtype],
                 npy_columns: Sequence[str] = (), metadata: dict[str, str] | None = None,
                 name: str = "stdout") -> None:
        self.stream, self.fmt, self.columns, self.name = stream, fmt, columns, name
        self.metadata = metadata  # recorded in a parquet schema; other formats have no place
        self.npy_columns = tuple(npy_columns) or tuple(columns)
        self.rows = 0
        self._arrow_writer = None
        if fmt == "npy":
            self.npy_dtype = np.result_type(*(columns[c] for c in self.npy_columns))
            stream.write(b"\0" * NPY_HEADER_BYTES)

    def write(self, batch: Batch) -> None:
        n = len(next(iter(batch.values())))
        if n == 0:
            return
        self.rows += n
        with _naming(self.name):
            if self.fmt == "jsonl":
                self.stream.write(_jsonl(batch).encode())
            elif self.fmt == "npy":
                block = np.stack([batch[c] for c in self.npy_columns], axis=1)
                self.stream.write(block.astype(self.npy_dtype, copy=False).tobytes())
            else:
                self._write_arrow(batch)

    def _write_arrow(self, batch: Batch) -> None:
        import pyarrow as pa

        table = pa.table(batch)
        if self.fmt == "parquet" and self.metadata:
            table = table.replace_schema_metadata(self.metadata)
        if self._arrow_writer is None:
            if self.fmt == "parquet":
                from pyarrow.parquet import ParquetWriter

                # Dictionaries only for the index columns: distances and losses hardly repeat,
                # and trying a dictionary on them took 44% of a 1.6M-row file's write (and the
                # file came out 16% larger).
                self._arrow_writer = ParquetWriter(self.stream, table.schema, use_dictionary=[
                    f.name for f in table.schema if not pa.types.is_floating(f.type)])
            else:
                from pyarrow.csv import CSVWriter

                self._arrow_writer = CSVWriter(self.stream, table.schema)
        self._arrow_writer.write_table(table)

    def abort(self) -> None:
        """Release the Arrow writer of a failed run (its file is about to be deleted)."""
        if self._arrow_writer is not None:
            with contextlib.suppress(Exception):
                self._arrow_writer.close()
            self._arrow_writer = None

    def close(self) -> None:
        """Finish the stream; a run with no rows still gets a valid file with its columns."""
        with _naming(self.name):
            if self.rows == 0 and self.fmt in ("parquet", "csv"):
                self._write_arrow({c: np.empty(0, dtype) for c, dtype in self.columns.items()})
            if self._arrow_writer is not None:
                self._arrow_writer.close()
            if self.fmt == "npy":
                self.stream.seek(0)
                self.stream.write(_npy_header(self.npy_dtype, (self.rows, len(self.npy_columns))))
            self.stream.flush()


def _npy_header(dtype: np.dtype, shape: tuple[int, int]) -> bytes:
    """A version 1.0 .npy header, space-padded to NPY_HEADER_BYTES (64-byte aligned)."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": shape})
    text += " " * (NPY_HEADER_BYTES - 11 - len(text)) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


def _jsonl(batch: Batch) -> str:
    """One JSON object per row; integers and finite floats as their repr (what json.dumps
    writes, faster), anything else through json.dumps."""
    names = list(batch)
    columns = [batch[c].tolist() for c in names]
    numbers = all(c.dtype.kind in "iu" or (c.dtype.kind == "f" and np.isfinite(c).all())
                  for c in batch.values())
    if numbers:  # one %-template a row: 1.8 us a row, against 2.8 us joined field by field
        template = "{" + ", ".join(f"{json.dumps(c)}: %r" for c in names) + "}\n"
        return "".join([template % row for row in zip(*columns, strict=True)])
    return "".join(json.dumps(json_safe(dict(zip(names, row, strict=True)))) + "\n"
                   for row in zip(*columns, strict=True))


def silence_stdout() -> None:
    """After the reader of our stdout went away (`| head`), drop what is left to flush."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)


class UntilReaderLeaves:
    """stdout for rows that also go to --output: when its reader leaves (`| head`), the rest
    is dropped quietly and the run goes on, so the file is still written whole."""

    closed = False

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.gone = stream, False

    def write(self, data: bytes) -> int:
        self._attempt(self.stream.write, data)
        return len(data)

    def flush(self) -> None:
        self._attempt(self.stream.flush)

    def _attempt(self, call: object, *args: object) -> None:
        if not self.gone:
            try:
                call(*args)  # type: ignore[operator]
            except BrokenPipeError:
                self.gone = True
                silence_stdout()


@contextlib.contextmanager
def open_rows(path: str, columns: dict[str, np.dtype], npy_columns: Sequence[str] = (),
              fmt: str | None = None, stdout: BinaryIO | None = None,
              metadata: dict[str, str] | None = None) -> Iterator[RowWriter]:
    """A RowWriter on `path` (atomically), or on `stdout` in `fmt` when path is '-'."""
    if path == STDOUT:
        writer = RowWriter(stdout, fmt or "csv", columns, npy_columns, metadata)
        yield writer
        writer.close()
        return
    with atomic_path(path) as tmp:
        stream = open(tmp, "wb")  # noqa: SIM115 (closed below: quietly when the run failed)
        writer = RowWriter(stream, fmt or output_format(path), columns, npy_columns, metadata,
                           path)
        try:
            yield writer
            writer.close()
        except BaseException:
            writer.abort()
            with contextlib.suppress(OSError):  # (its buffer's flush into a full disk)
                stream.close()
            raise
        with _naming(path):
            stream.close()
