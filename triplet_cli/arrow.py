"""Parquet (a file or a folder of them) and Arrow IPC inputs, read in bounded record batches
so that files larger than memory stream: the embedding column as (rows, width) blocks, triplet
indices as (rows, 3) blocks, and the settings a writer recorded in the schema metadata.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import validate
from .errors import InputError, first_line

if TYPE_CHECKING:
    import pyarrow as pa

PARQUET_SUFFIXES = {".parquet", ".pq"}
ARROW_SUFFIXES = {".arrow", ".arrows", ".feather", ".ipc"}
TRIPLET_COLUMNS = ("anchor", "positive", "negative")
BATCH_ROWS = 65_536  # rows per record batch where the caller sets no byte bound
# Parquet is read page by page through this buffer, not a column chunk at once (`compute` on 3 x
# 6,000,000 x 128 float32 in 500,000-row groups: peak RSS 2.44 GB without, 0.79 GB with it).
READ_BUFFER_BYTES = 1 << 20
# Values decoded per batch; pyarrow works in ~5x a batch. On 2,000,000 x 128 float32, 1 MiB
# batches read in 1.1 s at 111 MB peak RSS, 16 MiB batches in 1.4 s at 245 MB.
READ_BATCH_BYTES = 1 << 20


@contextlib.contextmanager
def read_errors(what: str, path: str) -> Iterator[None]:
    """pyarrow's failures inside as one InputError: `cannot read as WHAT (its first line)`."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, KeyError) as e:
        raise InputError(f"cannot read as {what} ({first_line(e)})", path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"cannot read as {what}: not UTF-8 text (byte {e.object[e.start]:#x}); "
                         "save it as UTF-8", path) from None


def _parquet_files(path: str) -> list[str]:
    """A parquet file, or the .parquet files of a folder (a dataset) in name order, numbers in
    names by value: pyarrow's writer names them part-0 ... part-10 unpadded, and in plain name
    order part-10 would come before part-2 (rows of aligned inputs then pair up wrongly)."""
    if os.path.isdir(path):
        return sorted((str(f) for f in Path(path).rglob("*.parquet")), key=_natural)
    return [path]


def _natural(name: str) -> list[tuple[int, int | str]]:
    """A sort key that orders the runs of digits in a name by their value."""
    return [(0, int(run)) if run.isdigit() else (1, run) for run in re.split(r"(\d+)", name)]


def _ipc_reader(path: str) -> pa.ipc.RecordBatchFileReader | pa.ipc.RecordBatchStreamReader:
    """An Arrow IPC file or stream, memory-mapped: its batches are views of the file."""
    import pyarrow as pa

    try:
        return pa.ipc.open_file(pa.memory_map(path))
    except pa.ArrowInvalid:
        return pa.ipc.open_stream(pa.memory_map(path))


def _dataset(path: str) -> pa.dataset.Dataset:
    """A parquet file, or a folder's .parquet files (other files there are not rows), which
    must name the same columns: a file with other names would be read as nulls."""
    import pyarrow.dataset as ds

    if not os.path.isdir(path):
        return ds.dataset(path, format="parquet")
    files = _parquet_files(path)
    dataset = ds.dataset(files, format="parquet")
    names = dataset.schema.names
    for fragment in dataset.get_fragments():
        own = fragment.physical_schema.names
        if own != names:
            raise InputError(f"{fragment.path} has columns {', '.join(own)}; {files[0]} has "
                             f"{', '.join(names)}: a folder's files must name the same columns",
                             path)
    return dataset


def read_schema(path: str, kind: str) -> pa.Schema:
    """The schema alone (a parquet footer, an IPC schema message): no batch is read."""
    with read_errors(kind, path):
        return _dataset(path).schema if kind == "parquet" else _ipc_reader(path).schema


def read_table(path: str, kind: str, columns: list[str] | None = None) -> pa.Table:
    """`columns` (all by default) in memory."""
    with read_errors(kind, path):
        if kind == "parquet":
            return _dataset(path).to_table(columns=columns)
        table = _ipc_reader(path).read_all()
        return table.select(columns) if columns else table


def record_batches(path: str, kind: str, columns: list[str], batch_rows: int = BATCH_ROWS
                   ) -> Iterator[pa.RecordBatch]:
    """`columns` in file order, at most `batch_rows` rows at a time whatever the row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with read_errors(kind, path):
        if kind == "parquet":
            for file in _parquet_files(path):
                # pre_buffer would keep every row group read (+70 MB per 131,072 x 128 floats)
                reader = pq.ParquetFile(file, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)
                yield from reader.iter_batches(batch_size=batch_rows, columns=columns)
            return
        reader = _ipc_reader(path)
        batches = ((reader.get_batch(i) for i in range(reader.num_record_batches))
                   if isinstance(reader, pa.ipc.RecordBatchFileReader) else reader)
        for batch in batches:  # zero-copy views: slicing costs nothing
            batch = batch.select(columns)
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)


def _count_rows(path: str, kind: str, columns: list[str]) -> int:
    """Rows of parquet from its metadata; of Arrow IPC by reading its (mapped) batches."""
    if kind == "parquet":
        import pyarrow.parquet as pq

        with read_errors(kind, path):
            return sum(pq.ParquetFile(f).metadata.num_rows for f in _parquet_files(path))
    return sum(len(b) for b in record_batches(path, kind, columns))


def _filled(parts: Iterator[np.ndarray], rows: int, total: int) -> Iterator[np.ndarray]:
    """Blocks of `rows` rows (the last shorter) filled in place from parts of any length."""
    block: np.ndarray | None = None
    filled = emitted = 0
    for part in parts:
        start = 0
        while start < len(part):
            if block is None:
                block = np.empty((max(1, min(rows, total - emitted)), *part.shape[1:]), part.dtype)
            take = min(len(block) - filled, len(part) - start)
            block[filled:filled + take] = part[start:start + take]
            filled, start = filled + take, start + take
            if filled == len(block):
                yield block
                block, filled, emitted = None, 0, emitted + filled
    if block is not None:
        yield block[:filled]


def is_vector_type(t: pa.DataType, floats_only: bool = False) -> bool:
    """A list (fixed-size, variable or large) of floats, or of integers unless floats_only."""
    import pyarrow.types as pt

    if pt.is_fixed_size_list(t) or pt.is_list(t) or pt.is_large_list(t):
        v = t.value_type
        return pt.is_floating(v) or (pt.is_integer(v) and not floats_only)
    return False


def pick_embedding_column(path: str, schema: pa.Schema, column: str | None, flag: str) -> str:
    """The embedding column: `column`, else the only list of floats, else the only list of
    integers (token ids and masks of a tokenised dataset are not embeddings)."""
    names = schema.names
    if column is not None:
        _require_columns(path, names, [column])
        if not is_vector_type(schema.field(column).type):
            raise InputError(f"column '{column}' is {schema.field(column).type}, not a list of "
                             "floats", path)
        return column
    floats = [f.name for f in schema if is_vector_type(f.type, floats_only=True)]
    integers = [f.name for f in schema if is_vector_type(f.type) and f.name not in floats]
    candidates = floats or integers
    if len(candidates) == 1:
        return candidates[0]
    if len(floats) > 1:
        raise InputError(f"several list<float> columns ({', '.join(floats)}); choose one with "
                         f"{flag}", path)
    held = (f" ({', '.join(integers[:-1])} and {integers[-1]} hold integers: name one with "
            f"{flag} to use it)" if integers else "")
    raise InputError(f"no list<float> column{held}; columns: {', '.join(names)}"
                     + _layout_hint(schema), path)


def _layout_hint(schema: pa.Schema) -> str:
    """How to give the embeddings of a table that holds them otherwise than as a list column."""
    import pyarrow.types as pt

    for f in schema:
        if pt.is_struct(f.type) and (inner := [g.name for g in f.type if is_vector_type(g.type)]):
            return (f" ({f.name} is a struct holding the list {inner[0]}: write that list as a "
                    "column of its own)")
    if sum(pt.is_floating(f.type) for f in schema) > 1:
        return (" (one float column per dimension is read from a data frame in Python, not from "
                "a file: write the dimensions as one list column, e.g. df['embedding'] = "
                "list(df[dims].to_numpy()))")
    return ""


def pick_label_column(path: str, schema: pa.Schema, column: str | None,
                      flags: tuple[str, str] = ("--labels", "--label-column")) -> str:
    """The label column: `column`, else `label`, else the only integer or string column;
    `flags` name the options that give labels and choose a column in messages."""
    import pyarrow.types as pt

    names = schema.names
    if column is not None:
        _require_columns(path, names, [column])
        return column
    if "label" in names:
        return "label"
    def is_class(t: pa.DataType) -> bool:  # (a boolean column is a flag: named, it is taken)
        return (pt.is_integer(t) or pt.is_string(t) or pt.is_large_string(t)
                or (pt.is_dictionary(t) and is_class(t.value_type)))

    scalars = [f.name for f in schema if is_class(f.type)]
    index = _pandas_index(schema)  # a data frame's index: row ids, unless it is all there is
    scalars = [n for n in scalars if n not in index] or scalars
    if len(scalars) == 1:
        return scalars[0]
    if not scalars:
        others = [f.name for f in schema
                  if not (is_vector_type(f.type) or pt.is_floating(f.type))]
        listed = f"(columns: {', '.join(names)});"
        choose = (f": no integer, string or category column {listed} choose one with {flags[1]} "
                  "or" if others else f" {listed}")
        raise InputError(f"holds no label column{choose} give the labels with {flags[0]}", path)
    raise InputError(f"cannot tell the label column; choose one with {flags[1]} "
                     f"(columns: {', '.join(names)})", path)


def _pandas_index(schema: pa.Schema) -> set[str]:
    """The columns a pandas data frame's index was written to (none when not from pandas)."""
    try:
        kept = (schema.pandas_metadata or {}).get("index_columns", [])
    except ValueError:  # (metadata that is not JSON)
        return set()
    return {c for c in kept if isinstance(c, str)}


def _require_columns(path: str, names: list[str], wanted: Sequence[str]) -> None:
    if missing := [c for c in wanted if c not in names]:
        numbers = all(n.replace(".", "", 1).lstrip("-").isdigit() for n in names)
        hint = " (its first line was read as the header: add one)" if numbers else ""
        raise InputError(f"no column {', '.join(repr(c) for c in missing)}; columns: "
                         f"{', '.join(names)}{hint}", path)


def index_columns(path: str, table: pa.Table | pa.RecordBatch,
                  columns: Sequence[str] = TRIPLET_COLUMNS, row0: int = 0) -> np.ndarray:
    """Index columns side by side; row0 numbers the first row in messages (streamed batches)."""
    _require_columns(path, table.schema.names, columns)
    for c in columns:
        validate.require_no_nulls(table.column(c), f"column '{c}'", path, row0)
    cols = [table.column(c).to_numpy(zero_copy_only=False) for c in columns]
    cols = validate.one_integer_type(cols, columns, path, row0)
    return np.stack(cols, axis=1) if len(cols[0]) else np.empty((0, len(columns)), np.int64)


def _recorded_settings(path: str, schema: pa.Schema) -> dict[str, object] | None:
    """The settings a triplets file's writer recorded (writers.settings_metadata), or None."""
    import json

    from .writers import SETTINGS_KEY

    raw = (schema.metadata or {}).get(SETTINGS_KEY.encode())
    if raw is None:
        return None
    with contextlib.suppress(ValueError):
        record = json.loads(raw)
        if isinstance(record, dict) and isinstance(record.get("params"), dict):
            return record
    raise InputError(f"its '{SETTINGS_KEY}' metadata (the settings its rows were computed "
                     "with) is not readable; remove it or rewrite the file", path)


class _Streamed:
    """Rows of a parquet or Arrow IPC input, streamed through `blocks`."""

    ndim = 2

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.width)

    def _rows(self, batch: pa.RecordBatch, row0: int) -> np.ndarray:
        raise NotImplementedError

    def blocks(self, rows: int) -> Iterator[np.ndarray]:
        """(rows, width) arrays in order (the last may be shorter), checked; each filled from
        batches of at most READ_BATCH_BYTES of values, so one block and one batch are held."""
        batch_rows = max(1, min(rows, READ_BATCH_BYTES // max(self.width * self.dtype.itemsize, 1)))

        def parts() -> Iterator[np.ndarray]:
            done = 0
            for batch in record_batches(self.path, self.kind, self.columns, batch_rows):
                yield self._rows(batch, done)
                done += batch.num_rows

        return _filled(parts(), rows, self.rows)

    def read(self) -> np.ndarray:
        """All rows in memory: one block (one allocation)."""
        return next(self.blocks(max(self.rows, 1)), np.empty((0, self.width), self.dtype))


class ArrowMatrix(_Streamed):
    """An embedding column (`name`) as (rows, width) blocks."""

    def __init__(self, path: str, kind: str, column: str | None = None, flag: str = "--column"
                 ) -> None:
        import pyarrow as pa

        self.path, self.kind = path, kind
        schema = read_schema(path, kind)
        self.name = pick_embedding_column(path, schema, column, flag)
        self.columns = [self.name]
        column_type = schema.field(self.name).type
        if pa.types.is_fixed_size_list(column_type):
            self.width = column_type.list_size
        else:  # constant-length lists: the first row's length (checked on every batch)
            with contextlib.closing(record_batches(path, kind, self.columns, 1)) as batches:
                first = next(batches, None)
            self.width = (len(first[0][0]) if first is not None and first.num_rows
                          and first[0][0].is_valid else 0)
        self.dtype = np.dtype(column_type.value_type.to_pandas_dtype())
        self.rows = _count_rows(path, kind, self.columns)

    def _rows(self, batch: pa.RecordBatch, row0: int) -> np.ndarray:
        """The list column as (n, width), checked for nulls and ragged rows."""
        import pyarrow.compute as pc

        column, what = batch.column(0), f"column '{self.name}'"
        validate.require_no_nulls(column, what, self.path, row0)
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        validate.require_width(lengths, self.width, what, self.path, row0)
        values = column.flatten()
        validate.require_no_nulls(values, what, self.path, row0, self.width)
        return values.to_numpy(zero_copy_only=False).reshape(len(column), self.width)


class ArrowTriplets(_Streamed):
    """Index triples as (rows, 3) int64 blocks, and the settings their writer `recorded`."""

    width = 3
    dtype = np.dtype(np.int64)

    def __init__(self, path: str, kind: str) -> None:
        import pyarrow as pa

        self.path, self.kind, self.columns = path, kind, list(TRIPLET_COLUMNS)
        schema = read_schema(path, kind)
        _require_columns(path, schema.names, TRIPLET_COLUMNS)
        for c in TRIPLET_COLUMNS:
            t = schema.field(c).type  # messages name a primitive type by its numpy dtype
            validate.require_index_dtype(
                np.dtype(t.to_pandas_dtype()) if pa.types.is_primitive(t) else t, path)
        self.rows = _count_rows(path, kind, self.columns)
        self.recorded = _recorded_settings(path, schema)

    def _rows(self, batch: pa.RecordBatch, row0: int) -> np.ndarray:
        return validate.as_indices(index_columns(self.path, batch, row0=row0),
                                   TRIPLET_COLUMNS, self.path, row0)
