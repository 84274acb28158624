"""A job's inputs as given: a path (str or path-like) or an array, made a checked float matrix."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import arrow, validate
from .arrow import ArrowMatrix
from .errors import UsageError
from .params import flag
from .readers import STDIN, is_table, open_matrix, same_file, shown_name

if TYPE_CHECKING:
    import pyarrow as pa

# A library input: a path (str or path-like), or what validate.as_array takes (numpy arrays,
# lists, torch tensors, pandas / polars / pyarrow tables and columns, dicts of columns), which
# no narrower type spells: type checkers would refuse a tensor.
ArrayLike = Any
Matrix = np.ndarray | ArrowMatrix  # in memory (or memory-mapped), or streamed from parquet/Arrow
NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's eps, as pytorch-metric-learning uses it


def path_or_array(x: object) -> object:
    """A path-like input as its str path (arrays and None pass through)."""
    return os.fspath(x) if isinstance(x, os.PathLike) else x


def at_most_one_stdin(inputs: Iterable[object]) -> None:
    """At most one input may be stdin (`-`): its bytes can be read once."""
    if sum(isinstance(x, str) and x == STDIN for x in inputs) > 1:
        raise UsageError("only one input can be read from stdin (-)")


def same_input(a: object, b: object) -> bool:
    """Two inputs are one: the same file (by path, link or inode; never stdin), or the same
    array (the same object, or arrays or tensors viewing the same memory alike: x[:] and
    t.detach() are x's and t's rows)."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and STDIN not in (a, b) and \
            same_file(a, b)
    if a is b:
        return True
    a, b = _memory(a), _memory(b)
    if a is None or b is None:
        return False
    return (a.shape, a.strides, a.dtype) == (b.shape, b.strides, b.dtype) and (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _memory(x: object) -> np.ndarray | None:
    """An array over x's own memory: a numpy array, or a (CPU) torch tensor's."""
    x = validate.detached(x)
    if type(x).__module__.split(".")[0] == "torch":
        try:
            x = np.asarray(x)
        except (TypeError, RuntimeError, ValueError):  # on another device: not the same rows
            return None
    return x if isinstance(x, np.ndarray) else None


def load_matrix(x: ArrayLike, role: str, column: str | None, stream: bool = False,
                label_column: str | None = None, picked: dict[str, str] | None = None
                ) -> tuple[Matrix, str]:
    """An input as a float array and the name errors give it, or (stream=True) a parquet/Arrow
    input left on disk to be read block by block. The list column read from a table goes into
    picked[role]."""
    if column is not None and not isinstance(column, str):
        raise UsageError(f"column must be a column name (got {column!r})")
    picked = {} if picked is None else picked
    if isinstance(x, str):
        m, name = open_matrix(x, column), shown_name(x)
        if isinstance(m, ArrowMatrix):
            picked[role] = m.name
            validate.as_float_array(np.empty((0, m.width), m.dtype), name)  # dtype check first
            return (m, name) if stream else (validate.as_float_array(m.read(), name), name)
        return validate.as_float_array(m, name), name
    schema = validate.table_schema(x)
    if schema is not None:
        x = _embedding_columns(x, schema, role, column, label_column, picked)
    return validate.as_float_array(validate.as_array(x, role), role), role


def _embedding_columns(table: Any, schema: pa.Schema, role: str, column: str | None,
                       label_column: str | None, picked: dict[str, str]) -> Any:
    """A table's embeddings as a file's are found: `column`, else its one list of floats. A
    table without a list column holds one column per dimension: its float columns (labels,
    ids and text are not dimensions), or every column when none is float, less the label
    column (`label_column` or `label`)."""
    import pyarrow.types as pt

    if column is not None or any(arrow.is_vector_type(f.type) for f in schema):
        name = picked[role] = arrow.pick_embedding_column(role, schema, column, "column=")
        return validate.table_part(table, [schema.get_field_index(name)])
    floats = [k for k, f in enumerate(schema) if pt.is_floating(f.type)]
    keep = [k for k in floats or range(len(schema))
            if schema.field(k).name != (label_column or "label")]
    return table if len(keep) == len(schema) else validate.table_part(table, keep)


def unread_columns(inputs: Iterable[object], column: object, label_column: object = None
                   ) -> list[str]:
    """Warnings for --column and --label-column where no input is a table to name them in
    (arrays, .npy files): a misspelt name would pass unseen."""
    named = [flag(n) for n, v in (("column", column), ("label_column", label_column))
             if v is not None]
    if not named or any(holds_columns(x) for x in inputs if x is not None):
        return []
    return [f"{n} has no effect: no input is a table (.parquet, .arrow, .csv, .jsonl, a data "
            "frame)" for n in named]


def holds_columns(x: object) -> bool:
    """Whether an input has named columns: a table file (or stdin, which may be one), or a
    table in memory (a label column, a --column to pick)."""
    return is_table(x) if isinstance(x, str) else validate.table_schema(x) is not None


def normalized(a: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float64 (x / max(|x|, 1e-12), as torch's normalize)."""
    a = a.astype(np.float64)
    norm = np.sqrt(np.einsum("...i,...i->...", a, a))[..., None]
    return a / np.maximum(norm, NORMALIZE_EPS)
