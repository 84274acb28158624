"""Readers for embedding, label and triplet files. They know files, not maths.

.npy is memory-mapped and never unpickled; .npz by key; .parquet (a file or a folder of files)
and Arrow IPC (.arrow/.feather/.ipc) by a fixed_size_list<float> or constant-length list<float>
column; .csv for labels and triplets. Every failure is an InputError naming the file.
"""

from __future__ import annotations

import io
import math
import os
import sys
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
PARQUET_SUFFIXES = {".parquet", ".pq"}
ARROW_SUFFIXES = {".arrow", ".feather", ".ipc"}
STDIN = "-"


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


def _stdin_bytes() -> bytes:
    return sys.stdin.buffer.read()


def _sniff(path: str, head: bytes) -> str:
    """The format of a file: by its magic bytes, else by its suffix."""
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(ARROW_MAGIC):
        return "arrow"
    if head.startswith(b"PK"):
        return "npz"
    suffix = Path(path.split(":")[0]).suffix.lower()
    return {
        ".npy": "npy",
        ".npz": "npz",
        ".csv": "csv",
        ".tsv": "csv",
        ".txt": "csv",
        **{s: "parquet" for s in PARQUET_SUFFIXES},
        **{s: "arrow" for s in ARROW_SUFFIXES},
    }.get(suffix, "unknown")


def _format_of(path: str) -> str:
    if path != STDIN and os.path.isdir(path):
        return "parquet"
    with open(path, "rb") as f:
        head = f.read(8)
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


def _read_npy_bytes(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        raise InputError(f"not a valid .npy stream ({e})", name) from None


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
        source = pa.BufferReader(data) if data is not None else pa.memory_map(path)
        try:
            table = pa.ipc.open_file(source).read_all()
        except pa.ArrowInvalid:
            source = pa.BufferReader(data) if data is not None else pa.memory_map(path)
            table = pa.ipc.open_stream(source).read_all()
        return table.select(columns) if columns else table
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, KeyError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"cannot read as {kind} ({first})", path) from None


def _schema(path: str, kind: str, data: bytes | None) -> pa.Schema:
    import pyarrow as pa

    try:
        if kind == "parquet" and data is None:
            import pyarrow.dataset as ds

            return ds.dataset(path, format="parquet").schema
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"cannot read as parquet ({str(e).splitlines()[0]})", path) from None
    return _arrow_table(path, kind, None, data).schema


def _is_vector_type(t: pa.DataType) -> bool:
    import pyarrow.types as pt

    if pt.is_fixed_size_list(t) or pt.is_list(t) or pt.is_large_list(t):
        v = t.value_type
        return pt.is_floating(v) or pt.is_integer(v)
    return False


def _pick_column(path: str, schema: pa.Schema, column: str | None, flag: str) -> str:
    names = schema.names
    if column is not None:
        if column not in names:
            raise InputError(f"no column '{column}'; columns: {', '.join(names)}", path)
        if not _is_vector_type(schema.field(column).type):
            raise InputError(f"column '{column}' is {schema.field(column).type}, not a list of "
                             "floats", path)
        return column
    vectors = [f.name for f in schema if _is_vector_type(f.type)]
    if len(vectors) == 1:
        return vectors[0]
    if not vectors:
        raise InputError(f"no list<float> column; columns: {', '.join(names)}", path)
    raise InputError(f"several list<float> columns ({', '.join(vectors)}); choose one with {flag}",
                     path)


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
    """`columns` of a parquet file or folder, or of an Arrow IPC file, batch by batch in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if kind == "parquet":
            sources = [pa.BufferReader(data)] if data is not None else _parquet_files(path)
            for source in sources:
                # pre_buffer=False: with it, pyarrow keeps every row group read so far
                # (measured: +70 MB per 131,072-row block of 128 floats; memory unbounded).
                reader = pq.ParquetFile(source, pre_buffer=False)
                yield from reader.iter_batches(batch_size=batch_rows, columns=columns)
            return
        yield from _arrow_table(path, kind, columns, data).to_batches()
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
    """An embedding column of a .parquet file, a folder of them, or an Arrow IPC file, read in
    record batches: inputs larger than memory stream through `blocks`."""

    def __init__(self, path: str, kind: str, column: str | None, flag: str,
                 data: bytes | None = None) -> None:
        import pyarrow as pa

        self.path, self.kind, self.data = path, kind, data
        self.name = _pick_column(path, _schema(path, kind, data), column, flag)
        first = next(self._batches(), None)
        column_type = _schema(path, kind, data).field(self.name).type
        self.width = (column_type.list_size if pa.types.is_fixed_size_list(column_type) else
                      len(first[0]) if first is not None and len(first) and first[0].is_valid
                      else 0)
        self.dtype = np.dtype(column_type.value_type.to_pandas_dtype())
        self.rows = _count_rows(path, kind, data, [self.name])

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

    def blocks(self, rows: int) -> Iterator[np.ndarray]:
        """(rows, width) arrays in order (the last may be shorter), checked for nulls."""
        def parts() -> Iterator[np.ndarray]:
            done = 0
            for batch in self._batches(min(rows, 1 << 16)):
                yield _list_column_to_matrix(self.path, self.name, batch, self.width, done)
                done += len(batch)

        return _rechunk(parts(), rows)

    def read(self) -> np.ndarray:
        """The whole column in memory."""
        parts = list(self.blocks(1 << 20))
        return np.concatenate(parts) if len(parts) > 1 else (
            parts[0] if parts else np.empty((0, self.width), self.dtype))


# --------------------------------------------------------------------------------------------
# Public readers


def read_matrix(path: str, column: str | None = None, flag: str = "--column") -> np.ndarray:
    """The numeric array stored in `path` (embeddings), as a numpy array; .npy is memory-mapped."""
    _check_readable(path)
    data = _stdin_bytes() if path == STDIN else None
    if data is not None:
        path = "<stdin>"  # how messages name it; `data` is what gets read
        if not data:
            raise InputError("nothing on stdin", path)
    kind = _sniff(path, data[:8]) if data is not None else _format_of_path(path)
    if kind == "npy":
        return _read_npy_bytes(data, "<stdin>") if data is not None else _read_npy(path)
    if kind == "npz":
        if data is not None:
            raise InputError("read .npz from a file, not from stdin", "<stdin>")
        return _read_npz(path)
    if kind in ("parquet", "arrow"):
        return ArrowMatrix(path, kind, column, flag, data).read()
    raise InputError("unknown format: use .npy, .npz, .parquet, .arrow or .feather", path)


def open_matrix(path: str, column: str | None = None, flag: str = "--column"
                ) -> np.ndarray | ArrowMatrix:
    """Like read_matrix, but a parquet/Arrow file stays on disk and streams (ArrowMatrix)."""
    if path != STDIN:
        _check_readable(path)
        kind = _format_of_path(path)
        if kind in ("parquet", "arrow"):
            return ArrowMatrix(path, kind, column, flag)
    return read_matrix(path, column, flag)


def _format_of_path(path: str) -> str:
    try:
        return _format_of(split_key(path)[0])
    except OSError as e:
        raise InputError(e.strerror or str(e), path) from None


def read_labels(path: str, column: str | None = None) -> np.ndarray:
    """A 1-D array of integer or string labels from .npy/.npz, .parquet/.arrow or .csv."""
    _check_readable(path)
    kind = _format_of_path(path)
    if kind == "npy":
        labels = _read_npy(path)
    elif kind == "npz":
        labels = _read_npz(path)
    elif kind in ("parquet", "arrow", "csv"):
        table = _read_csv(path) if kind == "csv" else None
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


def _read_csv(path: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        # An empty cell is a missing value (null), also in a column of strings.
        return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
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


def open_triplets(path: str) -> np.ndarray | ArrowTriplets:
    """Like read_triplets, but a parquet/Arrow file stays on disk and streams."""
    if path != STDIN:
        _check_readable(path)
        kind = _format_of_path(path)
        if kind in ("parquet", "arrow"):
            return ArrowTriplets(path, kind)
    return read_triplets(path)


def read_triplets(path: str) -> np.ndarray:
    """An (t, 3) int64 array of (anchor, positive, negative) row indices."""
    if path == STDIN:
        raise InputError("read triplets from a file, not from stdin", "<stdin>")
    _check_readable(path)
    kind = _format_of_path(path)
    if kind in ("npy", "npz"):
        t = _read_npy(path) if kind == "npy" else _read_npz(path)
        if t.ndim != 2 or t.shape[1] != 3:
            raise InputError(f"triplets must have shape (t, 3), got {t.shape}", path)
    elif kind in ("parquet", "arrow", "csv"):
        table = _read_csv(path) if kind == "csv" else _arrow_table(path, kind, None)
        missing = [c for c in TRIPLET_COLUMNS if c not in table.column_names]
        if missing:
            raise InputError(f"no column {', '.join(repr(c) for c in missing)}; columns: "
                             f"{', '.join(table.column_names)}", path)
        t = _triplet_columns(path, table)
    else:
        raise InputError("unknown triplet format: use .parquet, .arrow, .csv or .npy", path)
    if t.dtype.kind not in "iu":
        raise InputError(f"triplet indices must be integers, got {t.dtype}", path)
    if t.shape[0] == 0:
        raise InputError("holds zero triplets", path)
    return np.ascontiguousarray(t, dtype=np.int64)
