"""Readers for embedding, label and triplet files. They know files, not maths.

.npy is memory-mapped and never unpickled; .npz by key; .parquet (a file or a folder of files)
and Arrow IPC (.arrow/.feather/.ipc files, .arrows streams) by a fixed_size_list<float> or
constant-length list<float> column; .csv for labels and triplets. `-` is stdin, copied once to a
temporary file and then read like a path. Every failure is an InputError naming the file.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

NPY_MAGIC = b"\x93NUMPY"
PARQUET_MAGIC = b"PAR1"
ARROW_MAGIC = b"ARROW1"
ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"  # an IPC stream opens with a continuation marker
PARQUET_SUFFIXES = {".parquet", ".pq"}
ARROW_SUFFIXES = {".arrow", ".arrows", ".feather", ".ipc"}
STDIN = "-"
STDIN_NAME = "<stdin>"  # how messages name it
# Parquet is read through a buffer of this size, page by page: without one pyarrow reads a whole
# column chunk at once (a 500,000-row group of 128 float32 is 256 MB per input).
READ_BUFFER_BYTES = 1 << 20
# Values decoded per record batch. pyarrow's working memory for a list column is about 5x the
# batch (values, levels, builders: 174 MB at 65,536 rows of 128 float32). Measured on 2,000,000
# x 128 float32 in 500,000-row groups: 1 MiB batches (2,048 rows) read in 1.1 s at 111 MB peak
# RSS, 16 MiB batches in 1.4 s at 245 MB.
READ_BATCH_BYTES = 1 << 20


def split_key(path: str) -> tuple[str, str]:
    """`file.npz:key` -> (file.npz, key); any path that exists as written has no key."""
    if path == STDIN or os.path.exists(path) or ":" not in path:
        return path, ""
    file, _, key = path.rpartition(":")
    return file, key


def _check_readable(path: str) -> None:
    path = split_key(path)[0]
    if path == STDIN:
        return
    if not os.path.exists(path):
        raise InputError("no such file", path)
    if os.path.isdir(path) and Path(path).suffix.lower() not in PARQUET_SUFFIXES:
        if not any(Path(path).glob("*.parquet")):
            raise InputError("is a directory, not a file (nor a folder of .parquet files)", path)
    elif not os.access(path, os.R_OK):
        raise InputError("permission denied", path)


# --------------------------------------------------------------------------------------------
# stdin: copied once to a temporary file, then read like a path


_spool: dict[str, object] = {}  # the stdin object copied, and the file holding its bytes


def _drop_spool() -> None:
    path = _spool.pop("path", None)
    _spool.pop("stream", None)
    if isinstance(path, str):
        with contextlib.suppress(OSError):
            os.unlink(path)


atexit.register(_drop_spool)


def _stdin_file() -> str:
    """The bytes of stdin in a temporary file ($TMPDIR), copied once per stdin and removed at
    exit: every format then reads as from a path (parquet needs its footer first, .npy is
    memory-mapped, parquet streams), in the memory a path takes, and labels can come from the
    same table as the embeddings."""
    stream = sys.stdin
    if stream is not None and _spool.get("stream") is stream:
        return str(_spool["path"])
    if stream is None or getattr(stream, "closed", False):
        raise InputError("no stdin to read (it is closed)", STDIN_NAME)
    if getattr(stream, "isatty", lambda: False)():
        raise InputError("stdin is a terminal: pipe or redirect a file into it "
                         "(`triplet-loss ... - < FILE`)", STDIN_NAME)
    _drop_spool()
    source = getattr(stream, "buffer", stream)
    fd, path = tempfile.mkstemp(prefix="triplet-loss-stdin-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk.encode() if isinstance(chunk, str) else chunk)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise InputError(f"cannot copy stdin to {tempfile.gettempdir()} ({e.strerror or e})",
                         STDIN_NAME) from None
    _spool.update(stream=stream, path=path)
    if not os.path.getsize(path):
        raise InputError("nothing on stdin", STDIN_NAME)
    return path


def _renamed(e: InputError, file: str, shown: str) -> InputError:
    """An error about `file` (stdin's temporary copy) as one about `shown`; in the message, the
    file is spelled `-`, as the user typed it."""
    if e.path is not None and e.path.startswith(file):
        e.path = shown + e.path[len(file):]
    e.message = e.message.replace(file, STDIN)
    e.args = (e.message,)
    return e


@contextlib.contextmanager
def _as_shown(file: str, shown: str) -> Iterator[None]:
    """Errors raised inside about `file` name `shown` instead."""
    try:
        yield
    except InputError as e:
        if file == shown:
            raise
        raise _renamed(e, file, shown) from None


@contextlib.contextmanager
def _from_stdin(path: str) -> Iterator[str]:
    """`-` (or `-:KEY` for an .npz) as the path of stdin's copy; errors name <stdin>."""
    key = split_key(path)[1]
    file = _stdin_file()
    with _as_shown(file, STDIN_NAME):
        yield file + (f":{key}" if key else "")


def _is_stdin(path: str) -> bool:
    return split_key(path)[0] == STDIN


def shown_name(path: str) -> str:
    """How messages name an input: `-` (stdin) is <stdin>, any other path itself."""
    return STDIN_NAME + path[len(STDIN):] if _is_stdin(path) else path


# --------------------------------------------------------------------------------------------
# Formats


def _sniff(path: str, head: bytes) -> str:
    """The format of a file: by its magic bytes, else by its suffix, else (no known suffix, as
    for stdin) text is CSV, or JSON lines when it opens with `{`."""
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(ARROW_MAGIC) or head.startswith(ARROW_STREAM_MAGIC):
        return "arrow"
    if head.startswith(b"PK"):
        return "npz"
    suffix = Path(path.split(":")[0]).suffix.lower()
    kind = {
        ".npy": "npy",
        ".npz": "npz",
        ".csv": "csv",
        ".tsv": "csv",
        ".txt": "csv",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        **{s: "parquet" for s in PARQUET_SUFFIXES},
        **{s: "arrow" for s in ARROW_SUFFIXES},
    }.get(suffix, "unknown")
    if kind == "unknown" and head and b"\0" not in head:
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(head)  # a cut last character
        except UnicodeDecodeError:
            return kind
        return "jsonl" if text.lstrip().startswith("{") else "csv"
    return kind


def _format_of(path: str) -> str:
    if path != STDIN and os.path.isdir(path):
        return "parquet"
    with open(path, "rb") as f:
        head = f.read(4096)
    return _sniff(path, head)


# --------------------------------------------------------------------------------------------
# .npy / .npz


def _read_npy(path: str) -> np.ndarray:
    """Memory-map a .npy file after checking its header, dtype and size against the file."""
    fmt = np.lib.format
    file, key = split_key(path)
    if key:
        raise InputError(f"':{key}' names an array in an .npz, but {file} is a .npy file", path)
    try:
        with open(path, "rb") as f:
            if f.read(6) != NPY_MAGIC:
                raise InputError("not a .npy file (bad magic bytes)", path)
            f.seek(0)
            version = fmt.read_magic(f)
            read_header = (fmt.read_array_header_1_0 if version == (1, 0)
                           else fmt.read_array_header_2_0)
            shape, fortran, dtype = read_header(f, max_header_size=100_000)
            offset = f.tell()
    except InputError:
        raise
    except (ValueError, OSError, SyntaxError) as e:
        raise InputError(f"not a valid .npy file ({e})", path) from None
    if dtype.hasobject:
        raise InputError("holds Python objects (a pickled array); refusing to load it", path)
    if any(n < 0 for n in shape):
        raise InputError(f"not a valid .npy file (negative dimension in shape {shape})", path)
    expected = math.prod(shape) * dtype.itemsize  # Python ints: np.prod wraps past 2^63
    found = os.path.getsize(path) - offset
    if found < expected:
        raise InputError(f"truncated: header promises {expected} data bytes, found {found}", path)
    if expected == 0:
        return np.empty(shape, dtype)
    array = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                      order="F" if fortran else "C")
    return np.asarray(array)


def _read_npz(path: str) -> np.ndarray:
    """`file.npz:key`, or the only array of `file.npz`."""
    file, key = split_key(path)
    try:
        with np.load(file, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if not key:
                if len(keys) != 1:
                    raise InputError(f"holds {len(keys)} arrays ({', '.join(keys)}); "
                                     f"name one as {file}:KEY", file)
                key = keys[0]
            if key not in keys:
                raise InputError(f"no array '{key}'; it holds: {', '.join(keys)}", file)
            return archive[key]
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as e:
        msg = "holds Python objects (pickled); refusing to load it" if "pickle" in str(e) else (
            f"not a valid .npz file ({e})")
        raise InputError(msg, file) from None


# --------------------------------------------------------------------------------------------
# Arrow: parquet files and folders, IPC files and streams


def _arrow_table(path: str, kind: str, columns: list[str] | None, data: bytes | None = None
                 ) -> pa.Table:
    import pyarrow as pa

    try:
        if kind == "parquet":
            if data is not None:
                import pyarrow.parquet as pq

                return pq.read_table(pa.BufferReader(data), columns=columns)
            import pyarrow.dataset as ds

            return ds.dataset(path, format="parquet").to_table(columns=columns)
        table = _ipc_reader(path, data).read_all()
        return table.select(columns) if columns else table
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, KeyError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"cannot read as {kind} ({first})", path) from None


def _ipc_reader(path: str, data: bytes | None
                ) -> pa.ipc.RecordBatchFileReader | pa.ipc.RecordBatchStreamReader:
    """The reader of an Arrow IPC file or stream, memory-mapped: its batches are views of the
    file (pages the kernel reads and drops as for a memory-mapped .npy), not copies."""
    import pyarrow as pa

    def source() -> pa.NativeFile:
        return pa.BufferReader(data) if data is not None else pa.memory_map(path)

    try:
        return pa.ipc.open_file(source())
    except pa.ArrowInvalid:
        return pa.ipc.open_stream(source())


def _ipc_batches(path: str, data: bytes | None) -> Iterator[pa.RecordBatch]:
    """An IPC file's or stream's record batches, one at a time."""
    import pyarrow as pa

    reader = _ipc_reader(path, data)
    if isinstance(reader, pa.ipc.RecordBatchFileReader):
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)
    else:
        yield from reader


def _schema(path: str, kind: str, data: bytes | None) -> pa.Schema:
    import pyarrow as pa

    try:
        if kind == "parquet" and data is None:
            import pyarrow.dataset as ds

            return ds.dataset(path, format="parquet").schema
        if kind == "arrow":
            return _ipc_reader(path, data).schema  # the schema message alone, no batch read
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"cannot read as {kind} ({str(e).splitlines()[0]})", path) from None
    return _arrow_table(path, kind, None, data).schema


def _is_vector_type(t: pa.DataType, floats_only: bool = False) -> bool:
    import pyarrow.types as pt

    if pt.is_fixed_size_list(t) or pt.is_list(t) or pt.is_large_list(t):
        v = t.value_type
        return pt.is_floating(v) or (pt.is_integer(v) and not floats_only)
    return False


def _pick_column(path: str, schema: pa.Schema, column: str | None, flag: str) -> str:
    """The embedding column: `column`, else the only list of floats. Lists of integers (token
    ids and attention masks in a tokenised dataset) are taken only when named, or when one is
    the file's only list column."""
    names = schema.names
    if column is not None:
        if column not in names:
            raise InputError(f"no column '{column}'; columns: {', '.join(names)}", path)
        if not _is_vector_type(schema.field(column).type):
            raise InputError(f"column '{column}' is {schema.field(column).type}, not a list of "
                             "floats", path)
        return column
    floats = [f.name for f in schema if _is_vector_type(f.type, floats_only=True)]
    integers = [f.name for f in schema if _is_vector_type(f.type) and f.name not in floats]
    candidates = floats or integers
    if len(candidates) == 1:
        return candidates[0]
    if len(floats) > 1:
        raise InputError(f"several list<float> columns ({', '.join(floats)}); choose one with "
                         f"{flag}", path)
    held = (f" ({', '.join(integers[:-1])} and {integers[-1]} hold integers: name one with "
            f"{flag} to use it)" if integers else "")
    raise InputError(f"no list<float> column{held}; columns: {', '.join(names)}", path)


def _list_column_to_matrix(path: str, name: str, column: pa.Array | pa.ChunkedArray,
                           width: int | None = None, row0: int = 0) -> np.ndarray:
    """A fixed_size_list or constant-length list column as an (n, width) array, checked for
    nulls and ragged rows; row0 numbers the first row in messages (for streamed batches)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    if column.null_count:
        row = row0 + int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"column '{name}': row {row} is null", path)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if width is None:
        width = int(lengths[0]) if lengths.size else 0
    if (lengths != width).any():
        row = int(np.flatnonzero(lengths != width)[0])
        raise InputError(f"column '{name}' is ragged: row {row0 + row} has {lengths[row]} "
                         f"values, row 0 has {width}", path)
    values = column.flatten()
    if values.null_count:
        at = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"column '{name}': row {row0 + at // max(width, 1)} holds a null value",
                         path)
    return values.to_numpy(zero_copy_only=False).reshape(len(column), width)


def _rechunk(parts: Iterator[np.ndarray], rows: int) -> Iterator[np.ndarray]:
    """Arrays of exactly `rows` rows (the last may be shorter) from arrays of any length."""
    pending: list[np.ndarray] = []
    have = 0
    for part in parts:
        pending.append(part)
        have += len(part)
        while have >= rows:
            merged = pending[0] if len(pending) == 1 else np.concatenate(pending)
            yield merged[:rows]
            pending, have = [merged[rows:]], have - rows
    if have:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending)


def _parquet_files(path: str) -> list[str]:
    """A parquet file, or the .parquet files of a folder (a dataset) in name order."""
    if os.path.isdir(path):
        return sorted(str(f) for f in Path(path).rglob("*.parquet"))
    return [path]


def _record_batches(path: str, kind: str, data: bytes | None, columns: list[str],
                    batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """`columns` of a parquet file or folder, or of an Arrow IPC file or stream, batch by batch
    in order, never more than `batch_rows` rows at a time however the producer grouped them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if kind == "parquet":
            sources = [pa.BufferReader(data)] if data is not None else _parquet_files(path)
            for source in sources:
                # pre_buffer=False: with it, pyarrow keeps every row group read so far
                # (measured: +70 MB per 131,072-row block of 128 floats; memory unbounded).
                # buffer_size: without it, each column chunk is read whole before its first
                # page is decoded (`compute` on three 6,000,000 x 128 float32 files in
                # 500,000-row groups: peak RSS 2.44 GB; 0.79 GB with it and 1 MiB batches).
                reader = pq.ParquetFile(source, pre_buffer=False,
                                        buffer_size=READ_BUFFER_BYTES)
                yield from reader.iter_batches(batch_size=batch_rows, columns=columns)
            return
        for batch in _ipc_batches(path, data):  # zero-copy views: slicing costs nothing
            batch = batch.select(columns)
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"cannot read as {kind} ({str(e).splitlines()[0]})", path) from None


def _count_rows(path: str, kind: str, data: bytes | None, columns: list[str]) -> int:
    """Rows of a parquet file or folder from its metadata (other sources: by reading them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind == "parquet" and data is None:
        try:
            return sum(pq.ParquetFile(f).metadata.num_rows for f in _parquet_files(path))
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"cannot read as parquet ({str(e).splitlines()[0]})",
                             path) from None
    return sum(len(b) for b in _record_batches(path, kind, data, columns))


class ArrowMatrix:
    """An embedding column of a .parquet file, a folder of them, or an Arrow IPC file or stream,
    read in record batches: inputs larger than memory stream through `blocks`. `shown` names
    the input in messages (<stdin> for stdin's temporary copy)."""

    def __init__(self, path: str, kind: str, column: str | None, flag: str,
                 shown: str | None = None) -> None:
        import pyarrow as pa

        self.path, self.kind, self.data, self.shown = path, kind, None, shown or path
        with _as_shown(path, self.shown):
            schema = _schema(path, kind, None)
            self.name = _pick_column(path, schema, column, flag)
            column_type = schema.field(self.name).type
            if pa.types.is_fixed_size_list(column_type):
                self.width = column_type.list_size
            else:  # constant-length lists: the first row's length (checked on every batch)
                with contextlib.closing(self._batches(1)) as batches:
                    first = next(batches, None)
                self.width = (len(first[0]) if first is not None and len(first)
                              and first[0].is_valid else 0)
            self.dtype = np.dtype(column_type.value_type.to_pandas_dtype())
            self.rows = _count_rows(path, kind, None, [self.name])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.width)

    @property
    def ndim(self) -> int:
        return 2

    def _batches(self, batch_rows: int = 65_536) -> Iterator[pa.Array]:
        """The embedding column's record batches, in file order."""
        for batch in _record_batches(self.path, self.kind, self.data, [self.name], batch_rows):
            yield batch.column(0)

    def batch_rows(self, rows: int) -> int:
        """Rows per record batch read for blocks of `rows`: at most READ_BATCH_BYTES of values."""
        row_bytes = max(self.width * self.dtype.itemsize, 1)
        return max(1, min(rows, READ_BATCH_BYTES // row_bytes))

    def blocks(self, rows: int) -> Iterator[np.ndarray]:
        """(rows, width) arrays in order (the last may be shorter), checked for nulls. Each is
        filled batch by batch in place: reading holds one block and one batch (and pyarrow's
        working memory for that batch), whatever the producer's row groups."""
        block: np.ndarray | None = None
        filled = emitted = 0
        with _as_shown(self.path, self.shown):
            for batch in self._batches(self.batch_rows(rows)):
                values = _list_column_to_matrix(self.path, self.name, batch, self.width,
                                                emitted + filled)
                start = 0
                while start < len(values):
                    if block is None:  # the last block is as long as the rows left
                        block = np.empty((max(1, min(rows, self.rows - emitted)), self.width),
                                         values.dtype)
                    take = min(len(block) - filled, len(values) - start)
                    block[filled:filled + take] = values[start:start + take]
                    filled, start = filled + take, start + take
                    if filled == len(block):
                        yield block
                        block, filled, emitted = None, 0, emitted + filled
        if block is not None:
            yield block[:filled]

    def read(self) -> np.ndarray:
        """The whole column in memory (one allocation)."""
        parts = list(self.blocks(max(self.rows, 1)))
        return np.concatenate(parts) if len(parts) > 1 else (
            parts[0] if parts else np.empty((0, self.width), self.dtype))


# --------------------------------------------------------------------------------------------
# Public readers


def read_matrix(path: str, column: str | None = None, flag: str = "--column") -> np.ndarray:
    """The numeric array stored in `path` (embeddings), as a numpy array; .npy is memory-mapped."""
    m = open_matrix(path, column, flag)
    return m.read() if isinstance(m, ArrowMatrix) else m


def open_matrix(path: str, column: str | None = None, flag: str = "--column"
                ) -> np.ndarray | ArrowMatrix:
    """Like read_matrix, but a parquet/Arrow file stays on disk and streams (ArrowMatrix).
    `-` is stdin (`-:KEY` an array of an .npz on stdin), in any of these formats."""
    if _is_stdin(path):
        with _from_stdin(path) as file:
            return _open_matrix(file, column, flag, STDIN_NAME)
    return _open_matrix(path, column, flag, path)


def _open_matrix(path: str, column: str | None, flag: str, shown: str
                 ) -> np.ndarray | ArrowMatrix:
    _check_readable(path)
    kind = _format_of_path(path)
    if kind == "npy":
        return _read_npy(path)
    if kind == "npz":
        return _read_npz(path)
    if kind in ("parquet", "arrow"):
        return ArrowMatrix(path, kind, column, flag, shown)
    raise InputError("unknown format: use .npy, .npz, .parquet, .arrow or .feather", path)


def _format_of_path(path: str) -> str:
    try:
        return _format_of(split_key(path)[0])
    except OSError as e:
        raise InputError(e.strerror or str(e), path) from None


def read_labels(path: str, column: str | None = None) -> np.ndarray:
    """A 1-D array of integer or string labels from .npy/.npz, .parquet/.arrow or .csv (`-`:
    stdin, in any of these)."""
    if _is_stdin(path):
        with _from_stdin(path) as file:
            return read_labels(file, column)
    _check_readable(path)
    kind = _format_of_path(path)
    if kind == "npy":
        labels = _read_npy(path)
    elif kind == "npz":
        labels = _read_npz(path)
    elif kind in ("parquet", "arrow", "csv"):
        table = _read_label_csv(path, column) if kind == "csv" else None
        schema = table.schema if table is not None else _schema(path, kind, None)
        name = _pick_label_column(path, schema, column)
        if table is None:
            table = _arrow_table(path, kind, [name], None)
        col = table.column(name)
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"label column '{name}': row {row} is null", path)
        labels = col.to_numpy(zero_copy_only=False)
    else:
        raise InputError("unknown label format: use .npy, .parquet, .arrow or .csv", path)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise InputError(f"labels must be one value per row, got shape {labels.shape}", path)
    if labels.dtype.kind == "f":
        if np.isnan(labels).any():
            raise InputError(f"label row {int(np.flatnonzero(np.isnan(labels))[0])} is NaN", path)
        if (labels != np.round(labels)).any():
            raise InputError("labels are non-integer floats; use integers or strings", path)
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iubUSO":
        raise InputError(f"labels have dtype {labels.dtype}; use integers or strings", path)
    return labels


def read_labels_beside(path: str, column: str | None = None) -> np.ndarray:
    """The labels stored next to the embeddings of `path` (`mine` without --labels): only a
    parquet or Arrow table holds both."""
    if _is_stdin(path):
        with _from_stdin(path) as file:
            return read_labels_beside(file, column)
    _check_readable(path)
    if _format_of_path(path) not in ("parquet", "arrow"):
        raise InputError("holds no labels; give them with --labels (only a parquet or Arrow file "
                         "can hold both)", path)
    return read_labels(path, column)


def _read_label_csv(path: str, column: str | None) -> pa.Table:
    """Labels from a CSV file. With several columns the first row is the header. With one, it is
    a header when it says `label` (any case) or the --label-column name, or when it does not
    parse like the rows below it (text above numbers); otherwise it is the first label (a
    headerless file: numbers all the way down, or strings all the way down)."""
    import pyarrow as pa

    headed = _read_csv(path)
    if headed.num_columns != 1:
        return headed
    first = headed.column_names[0]
    if first.strip().lower() == "label" or first == column:
        return headed
    bare = _read_csv(path, header=False)
    if headed.num_rows and bare.schema.types[0] != headed.schema.types[0]:
        return headed
    if column is not None:
        raise InputError(f"no column '{column}'; the file has one column and no header (its "
                         f"first row, {first!r}, parses like the others)", path)
    return pa.table({"label": bare.column(0)})


def _pick_label_column(path: str, schema: pa.Schema, column: str | None) -> str:
    import pyarrow.types as pt

    names = schema.names
    if column is not None:
        if column not in names:
            raise InputError(f"no column '{column}'; columns: {', '.join(names)}", path)
        return column
    if "label" in names:
        return "label"
    scalars = [f.name for f in schema if not _is_vector_type(f.type)
               and (pt.is_integer(f.type) or pt.is_string(f.type) or pt.is_large_string(f.type))]
    if len(scalars) == 1:
        return scalars[0]
    raise InputError(f"cannot tell the label column; choose one with --label-column "
                     f"(columns: {', '.join(names)})", path)


def _read_csv(path: str, header: bool = True) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        # An empty cell is a missing value (null), also in a column of strings.
        return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(strings_can_be_null=True),
                             read_options=pcsv.ReadOptions(autogenerate_column_names=not header))
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"cannot read as CSV ({str(e).splitlines()[0]})", path) from None


TRIPLET_COLUMNS = ("anchor", "positive", "negative")


class ArrowTriplets:
    """Index triples (anchor, positive, negative) of a .parquet file or folder, or an Arrow IPC
    file, streamed by record batch so that hundreds of millions of triplets stay on disk."""

    ndim = 2
    dtype = np.dtype(np.int64)

    def __init__(self, path: str, kind: str) -> None:
        import pyarrow.types as pt

        self.path, self.kind = path, kind
        schema = _schema(path, kind, None)
        missing = [c for c in TRIPLET_COLUMNS if c not in schema.names]
        if missing:
            raise InputError(f"no column {', '.join(repr(c) for c in missing)}; columns: "
                             f"{', '.join(schema.names)}", path)
        for c in TRIPLET_COLUMNS:
            kind_of = schema.field(c).type
            if not pt.is_integer(kind_of):
                shown = np.dtype(kind_of.to_pandas_dtype()) if pt.is_primitive(kind_of) else kind_of
                raise InputError(f"triplet indices must be integers, got {shown}", path)
        self.rows = _count_rows(path, kind, None, list(TRIPLET_COLUMNS))
        if self.rows == 0:
            raise InputError("holds zero triplets", path)
        self.recorded = _recorded_settings(path, schema)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, 3)

    def blocks(self, rows: int) -> Iterator[np.ndarray]:
        """(rows, 3) int64 arrays in order, checked for nulls."""
        def parts() -> Iterator[np.ndarray]:
            done = 0
            for batch in _record_batches(self.path, self.kind, None, list(TRIPLET_COLUMNS)):
                yield _triplet_columns(self.path, batch, done).astype(np.int64, copy=False)
                done += batch.num_rows

        return _rechunk(parts(), rows)


def _triplet_columns(path: str, table: pa.Table | pa.RecordBatch, row0: int = 0) -> np.ndarray:
    cols = []
    for c in TRIPLET_COLUMNS:
        col = table.column(c)
        if col.null_count:
            row = row0 + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"column '{c}': row {row} is null", path)
        cols.append(col.to_numpy(zero_copy_only=False))
    return np.stack(cols, axis=1) if len(cols[0]) else np.empty((0, 3), np.int64)


def _recorded_settings(path: str, schema: pa.Schema) -> dict[str, object] | None:
    """What the writer of a triplets file recorded in its schema metadata (how the rows were
    mined: see writers.settings_metadata), or None. Its values are checked where they are used."""
    import json

    from .writers import SETTINGS_KEY

    raw = (schema.metadata or {}).get(SETTINGS_KEY.encode())
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("params"), dict):
        raise InputError(f"its '{SETTINGS_KEY}' metadata (the settings its rows were computed "
                         "with) is not readable; remove it or rewrite the file", path)
    return record


def _read_jsonl(path: str) -> pa.Table:
    """JSON lines (one object per line, as `mine -o x.jsonl` writes them) as a table."""
    import pyarrow as pa
    import pyarrow.json as pj

    if not os.path.getsize(path):
        raise InputError("holds zero triplets", path)
    try:
        return pj.read_json(path)
    except (pa.ArrowInvalid, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"cannot read as JSON lines ({first})", path) from None


JSONL_SUFFIXES = {".jsonl", ".ndjson"}


def open_triplets(path: str) -> np.ndarray | ArrowTriplets:
    """Like read_triplets, but a parquet/Arrow file stays on disk and streams (and carries the
    settings its writer recorded, `.recorded`)."""
    if path != STDIN:
        _check_readable(path)
        kind = _format_of_path(path)
        if kind in ("parquet", "arrow"):
            return ArrowTriplets(path, kind)
    return read_triplets(path)


def read_triplets(path: str) -> np.ndarray:
    """An (t, 3) int64 array of (anchor, positive, negative) row indices."""
    if _is_stdin(path):
        with _from_stdin(path) as file:
            return read_triplets(file)
    _check_readable(path)
    kind = _format_of_path(path)
    if kind == "unknown" and Path(path).suffix.lower() in JSONL_SUFFIXES:
        kind = "jsonl"
    if kind in ("npy", "npz"):
        t = _read_npy(path) if kind == "npy" else _read_npz(path)
        if t.ndim != 2 or t.shape[1] != 3:
            raise InputError(f"triplets must have shape (t, 3), got {t.shape}", path)
    elif kind in ("parquet", "arrow", "csv", "jsonl"):
        table = (_read_csv(path) if kind == "csv" else _read_jsonl(path) if kind == "jsonl"
                 else _arrow_table(path, kind, None))
        missing = [c for c in TRIPLET_COLUMNS if c not in table.column_names]
        if missing:
            raise InputError(f"no column {', '.join(repr(c) for c in missing)}; columns: "
                             f"{', '.join(table.column_names)}", path)
        t = _triplet_columns(path, table)
    else:
        raise InputError("unknown triplet format: use .parquet, .arrow, .csv, .jsonl or .npy",
                         path)
    if t.dtype.kind not in "iu":
        raise InputError(f"triplet indices must be integers, got {t.dtype}", path)
    if t.shape[0] == 0:
        raise InputError("holds zero triplets", path)
    return np.ascontiguousarray(t, dtype=np.int64)
