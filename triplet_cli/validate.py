"""Checks of what inputs hold, made once at the boundary: dtype, shape, finiteness, nulls, row
counts, labels and indices. Readers only read; a check here names the file (and the row) of the
first offending value, and the as_* functions return the array normalised for the kernels."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import DTypeLike

from .errors import InputError, first_line

if TYPE_CHECKING:
    import pyarrow as pa

    from .params import DistanceParams

# Integers and float16 convert exactly to these float types; wider ones only when every value fits.
_EXACT_FLOAT = {1: np.float32, 2: np.float32, 4: np.float64}
_FINITE_BLOCK_ROWS = 65_536


def as_array(x: object, name: str, named: Sequence[str] = ()) -> np.ndarray:
    """A library argument as an array: numpy arrays and lists, torch tensors (detached;
    bfloat16 as float32), pandas, polars and pyarrow objects (a table's columns side by side,
    the `named` ones by name when it has them, a column of rows stacked, nullable numbers with
    their missing values as NaN); ragged rows are an input error."""
    x = detached(x)
    try:
        columns = _table_columns(x, named, name)
        if columns is None:
            if type(x).__module__.startswith("pyarrow"):  # an Array or ChunkedArray
                x = x.to_numpy(zero_copy_only=False)  # type: ignore[attr-defined]
            columns = [np.asarray(x)]
            if columns[0].ndim == 0 and columns[0].dtype.kind in "OSUV":  # (a dict, a generator)
                raise InputError(f"is a {type(x).__name__}, not an array of numbers", name)
        columns = [_unboxed(c, name) if c.dtype == object and c.size else c for c in columns]
        if len(columns) == 1:
            return columns[0]
        return np.column_stack(one_integer_type(columns, [f"column {i}" for i in
                                                          range(len(columns))], name))
    except (ValueError, TypeError) as e:
        why = ("its rows differ in length" if "inhomogeneous" in str(e) or "same shape" in str(e)
               else first_line(e))
        raise InputError(f"cannot be made an array: {why}", name) from None


def require_one_label_type(labels: object, name: str) -> None:
    """Labels given as a list hold numbers or strings, not both: numpy would make them all
    strings, 1 and '1' one class (an object array says so in as_labels)."""
    if not isinstance(labels, list | tuple):
        return
    if any(isinstance(v, str) for v in labels) and \
            any(isinstance(v, numbers.Number) for v in labels):
        raise InputError("labels mix strings and integers; use one kind (1 and '1' would be "
                         "one class)", name)


def _table_columns(x: object, named: Sequence[str], name: str) -> list[np.ndarray] | None:
    """The columns of a pyarrow Table or RecordBatch, a pandas or polars DataFrame or a dict of
    columns, else None: the `named` ones when the table has them all (as the file readers take
    them), every column in order when it has none of them (a frame made from an array: 0, 1, 2)."""
    module = type(x).__module__.split(".")[0]
    t: Any = x
    if module == "pyarrow" and hasattr(t, "columns"):
        labels, columns = t.column_names, [c.to_numpy(zero_copy_only=False) for c in t.columns]
    elif module == "pandas" and getattr(t, "ndim", 0) == 2:
        labels, columns = list(t.columns), [t.iloc[:, i].to_numpy() for i in range(t.shape[1])]
    elif module == "polars" and hasattr(t, "get_columns"):
        labels, columns = t.columns, [s.to_numpy() for s in t.get_columns()]
    elif isinstance(t, dict):  # columns by name (a result's .columns)
        labels, columns = list(t), [np.asarray(detached(v)) for v in t.values()]
    else:
        return None
    present = [n for n in named if n in labels]
    if present and len(present) < len(named):
        missing = next(n for n in named if n not in labels)
        raise InputError(f"has no column '{missing}' (its columns: {', '.join(map(str, labels))})",
                         name)
    return [columns[list(labels).index(n)] for n in named] if present else columns


def table_schema(x: object) -> pa.Schema | None:
    """The Arrow schema of a table in memory (a pyarrow Table or RecordBatch, a pandas or polars
    DataFrame), else None: its columns are then picked as a file's are."""
    module = type(x).__module__.split(".")[0]
    t: Any = x
    if module == "pyarrow" and hasattr(t, "schema") and hasattr(t, "columns"):
        return t.schema
    if module == "pandas" and getattr(t, "ndim", 0) == 2:
        import pyarrow as pa

        with contextlib.suppress(ValueError, TypeError, pa.ArrowException):
            return pa.Schema.from_pandas(t, preserve_index=False)
        return None  # (columns pyarrow cannot type: taken as they are)
    if module == "polars" and hasattr(t, "get_columns"):  # a DataFrame (a Series is a column)
        return t.head(0).to_arrow().schema
    return None


def table_part(x: Any, positions: list[int]) -> Any:
    """Columns of a table in memory by position (pandas' names need not be strings, as its
    schema's are): one column as a column, several as a table."""
    module = type(x).__module__.split(".")[0]
    if len(positions) == 1:
        k = positions[0]
        return x.iloc[:, k] if module == "pandas" else x.to_series(k) if module == "polars" \
            else x.column(k)
    if module == "pandas":
        return x.iloc[:, positions]
    return x.select([x.columns[k] for k in positions] if module == "polars" else positions)


def detached(x: object) -> object:
    """A torch tensor as numpy can take it: without its gradient, bfloat16 as float32 (exact).
    (Duck-typed: torch is not imported.)"""
    if type(x).__module__.split(".")[0] != "torch":
        return x
    if getattr(x, "requires_grad", False):
        x = x.detach()  # type: ignore[attr-defined]
    if str(getattr(x, "dtype", "")) == "torch.bfloat16":
        x = x.float()  # type: ignore[attr-defined]
    return x


def one_integer_type(columns: Sequence[np.ndarray], names: Sequence[str], path: str,
                     row0: int = 0) -> list[np.ndarray]:
    """Integer columns of several types as int64 (int64 beside uint64 would stack as floats;
    a uint64 beyond int64 is named as as_indices names it); other columns as they are."""
    if len({c.dtype for c in columns}) == 1 or not all(c.dtype.kind in "iu" for c in columns):
        return list(columns)
    return [as_indices(c[:, None], (n,), path, row0)[:, 0]
            for c, n in zip(columns, names, strict=True)]


def _unboxed(a: np.ndarray, name: str) -> np.ndarray:
    """An object array of rows (a pandas or pyarrow column of lists) stacked, or of numbers with
    missing values (pandas' nullable and pyarrow-backed dtypes) as floats with NaN; strings
    stay as they are (labels)."""
    flat = a.ravel()
    if isinstance(flat[0], np.ndarray | list | tuple):
        bad = next((i for i, v in enumerate(flat) if not isinstance(v, np.ndarray | list | tuple)),
                   None)
        if bad is not None:
            raise InputError(f"row {bad} is {flat[bad]!r:.20}, not a row of values", name)
        return np.stack([np.asarray(v) for v in flat]).reshape(*a.shape, -1)
    if isinstance(flat[0], str | bytes):
        return a
    kinds = set(map(type, flat))
    missing = {k for k in kinds if k is type(None) or k.__name__ == "NAType"}  # None, pd.NA
    if all(issubclass(k, int | float | np.number) for k in kinds - missing):
        values = [math.nan if type(v) in missing else v for v in flat] if missing else list(flat)
        return np.array(values).reshape(a.shape)
    return a


def as_float_array(array: np.ndarray, path: str) -> np.ndarray:
    """float32/float64 kept (no copy when C-contiguous), float16 upcast, safe integers converted."""
    if array.ndim == 0:  # (np.ascontiguousarray would make it a vector of one value)
        raise InputError("holds a single number (a 0-d array), not vectors", path)
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "f" and size in (4, 8):  # big-endian files are swapped: numba takes native only
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    if (kind == "f" and size == 2) or (kind in "iu" and size in _EXACT_FLOAT):
        return array.astype(_EXACT_FLOAT[size])
    if kind in "iu" and size == 8:
        if array.size and np.abs(array).max() > 2**53:
            raise InputError(f"{array.dtype} values beyond 2^53 cannot be used as floats "
                             "exactly", path)
        return array.astype(np.float64)
    if kind == "f":  # float16/32/64 are taken above: this is long double
        raise InputError(f"dtype {array.dtype} (long double) is not supported; use float32 or "
                         "float64", path)
    if kind == "V" and size == 2 and array.dtype.names is None:
        raise InputError(f"dtype {array.dtype} (2 raw bytes a value) is not a float type; "
                         "bfloat16 arrays saved from JAX or ml_dtypes look like this: save them "
                         "as float32 (x.astype(np.float32))", path)
    raise InputError(f"dtype {array.dtype} is not a float type", path)


def require_rank(array: np.ndarray, path: str, ranks: tuple[int, ...], what: str) -> None:
    if array.ndim not in ranks:
        shapes = " or ".join({1: "(d,)", 2: "(n, d)", 3: "(n, k, d)"}[r] for r in ranks)
        raise InputError(f"{what} must have shape {shapes}, got {array.shape}", path)


def require_rows(array: np.ndarray, path: str) -> None:
    if array.shape[0] == 0:
        raise InputError("has zero rows", path)
    if array.shape[-1] == 0:
        raise InputError("has zero dimensions (d = 0)", path)
    if array.ndim == 3 and array.shape[1] == 0:
        raise InputError(f"has shape {array.shape}: zero candidates per anchor (k = 0)", path)


def require_matrix(array: np.ndarray, path: str, what: str) -> None:
    """An (n, d) matrix with rows and dimensions."""
    require_rank(array, path, (2,), what)
    require_rows(array, path)


def same_rows(a: np.ndarray, b: np.ndarray, block: int = 4096) -> bool:
    """Whether two matrices hold the same rows (one file saved twice), compared a block of rows
    at a time: no temporary of their size, and a difference ends it early."""
    return a.shape == b.shape and a.dtype == b.dtype and all(
        np.array_equal(a[i:i + block], b[i:i + block]) for i in range(0, a.shape[0], block))


def require_same(sizes: dict[str, int], names: dict[str, str], what: str, unit: str = ""
                 ) -> None:
    """Inputs (`sizes` by role) agree on a size, or an error naming them all, on the first
    input whose size is not the most common one (the one to look at)."""
    values = list(sizes.values())
    if len(set(values)) > 1:
        usual = max(values, key=values.count)  # (ties: the first input's size)
        odd = next(r for r, n in sizes.items() if n != usual)
        each: dict[str, int] = {}  # a file given for two roles is named once
        for r, n in sizes.items():
            each.setdefault(names[r], n)
        raise InputError(f"{what} differ: " + ", ".join(f"{name} has {unit}{n}"
                                                        for name, n in each.items()), names[odd])


def describe_nonfinite(array: np.ndarray, row: int) -> str:
    return "NaN" if np.isnan(np.asarray(array[row])).any() else "inf"


def require_finite(array: np.ndarray, path: str, products: DTypeLike | None = None) -> None:
    """Raise naming the first row (axis 0) with NaN or inf, read in blocks to bound memory.

    products: the float type matrix products of these (n, d) rows are computed in; a value so
    large that a product or |x|^2 + |y|^2 - 2 x.y could overflow it (|x.y| <= d max|x|^2) is
    refused too, rather than ranking on inf.
    """
    limit = (math.sqrt(float(np.finfo(products).max) / (4 * array.shape[-1]))
             if products is not None and array.size else math.inf)
    for start in range(0, array.shape[0], _FINITE_BLOCK_ROWS):
        block = array[start:start + _FINITE_BLOCK_ROWS]
        rows = block.reshape(block.shape[0], -1)
        bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
        if bad.size:
            row = start + int(bad[0])
            raise InputError(f"row {row} contains {describe_nonfinite(array, row)}", path)
        if limit < math.inf and rows.size and float(max(rows.max(), -rows.min())) > limit:
            row = start + int(np.flatnonzero(np.abs(rows).max(axis=1) > limit)[0])
            raise InputError(f"row {row} holds values beyond {limit:.3g}, too large for "
                             f"{np.dtype(products).name} matrix products; rescale the "
                             "embeddings", path)


TINY = math.sqrt(float(np.finfo(np.float64).tiny))  # 1.49e-154: below, squares are subnormal
_LOG_TINY = math.log(float(np.finfo(np.float64).tiny))  # of float64's smallest normal number


def require_rankable(array: np.ndarray, path: str, distance: DistanceParams) -> None:
    """Rows mine, evaluate and mine-negatives can rank: finite, within the range of the matrix
    products, and (cosine with --eps 0) no zero row, whose distances would be 0/0."""
    products = distance.product_type(array.dtype)
    require_finite(array, path, products)
    largest = max(-float(array.min()), float(array.max())) if array.size else 0.0  # no |x| copy
    if products is not None and 0 < largest < TINY:  # (direct p-norms: require_in_range)
        raise InputError(f"values are at most {largest:.3g}: their squares underflow float64 "
                         "(every distance would round to 0, every neighbour a tie); rescale the "
                         "embeddings", path)
    if distance.distance == "cosine" and distance.eps == 0:
        zero = np.flatnonzero(np.einsum("ij,ij->i", array, array, dtype=np.float64) == 0)
        if zero.size:  # (values near 1e-170 square to 0 in float64: as good as zero)
            raise InputError(f"row {int(zero[0])} is a zero vector (or too small to square in "
                             "float64): its cosine distance is "
                             "undefined with --eps 0", path)


def require_in_range(arrays: Sequence[tuple[np.ndarray, str]], distance: DistanceParams
                     ) -> None:
    """A distance computed directly (a p-norm without matrix products) stays finite in float64
    between any two of these rows, as ranked (unit rows with --normalize): d (R + eps)^p below
    float64's maximum, R the largest difference of one coordinate between two rows (their
    columns' ranges, taken together). Past it, mining would rank on inf. At the other end, a
    largest term R^p (R + eps with eps added to each difference) below float64's smallest
    normal number leaves every distance imprecise or 0: refused too."""
    if not arrays or distance.product_type(np.float64) is not None:
        return
    p, d = distance.norm_p, arrays[0][0].shape[-1]
    low, high = _column_range([a for a, _ in arrays], distance.normalize)
    reach = float((high - low).max())
    spread = reach + abs(distance.eps)
    if not spread > 0:  # every row the same: every distance 0
        return
    # log of the largest distance's p-th power: d terms of spread^p (chebyshev: spread itself)
    power = math.log(spread) if math.isinf(p) else p * math.log(spread) + math.log(d)
    if power >= math.log(float(np.finfo(np.float64).max)):
        raise InputError(f"values differ by up to {spread:.3g} in one dimension: the p = {p:g} "
                         "distance overflows float64; rescale the embeddings or use a smaller "
                         "p", arrays[0][1])
    if distance.eps_placement.value == "difference":
        reach += abs(distance.eps)
    if 1 < p < math.inf and reach > 0 and p * math.log(reach) < _LOG_TINY:
        raise InputError(f"values differ by at most {reach:.3g} in one dimension: their p = "
                         f"{p:g} powers are below float64's smallest normal number (every "
                         "distance would lose its precision or round to 0, and neighbours "
                         "tie); rescale the embeddings or use a smaller p", arrays[0][1])


def _column_range(arrays: Sequence[np.ndarray], normalize: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Each column's min and max over all rows of the arrays, in float64 (of the unit rows
    with normalize, made block by block: no copy of a whole input)."""
    from .inputs import normalized

    lows, highs = [], []
    with np.errstate(over="ignore"):
        for a in arrays:
            step = _FINITE_BLOCK_ROWS if normalize else max(a.shape[0], 1)
            for start in range(0, a.shape[0], step):
                block = normalized(a[start:start + step]) if normalize else a
                lows.append(block.min(axis=0).astype(np.float64))
                highs.append(block.max(axis=0).astype(np.float64))
    return np.min(lows, axis=0), np.max(highs, axis=0)


def require_no_nulls(column: pa.Array | pa.ChunkedArray, what: str, path: str, row0: int = 0,
                     width: int | None = None) -> None:
    """Raise naming the first null row of an Arrow column (row0 numbers a streamed batch); with
    `width`, `column` holds the values of rows of `width` values, flattened."""
    if not column.null_count:
        return
    at = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
    if width is None:
        raise InputError(f"{what}: row {row0 + at} is null", path)
    raise InputError(f"{what}: row {row0 + at // max(width, 1)} holds a null value", path)


def require_width(lengths: np.ndarray, width: int, what: str, path: str, row0: int = 0) -> None:
    """Every row of a list column holds `width` values (the first row's count)."""
    bad = np.flatnonzero(lengths != width)
    if bad.size:
        row = int(bad[0])
        raise InputError(f"{what} is ragged: row {row0 + row} has {lengths[row]} values, row 0 "
                         f"has {width}", path)


def as_labels(labels: np.ndarray, path: str) -> np.ndarray:
    """A label file's values as a 1-D array of integers or strings: an (n, 1) column flattened,
    integral floats as int64; NaN, inf, fractions, floats beyond 2^53 (large IDs read as floats
    lose digits) and other values refused."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise InputError(f"labels must be one value per row, got shape {labels.shape}", path)
    if labels.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(labels))
        if bad.size:
            value = float(labels[bad[0]])
            raise InputError(f"label row {int(bad[0])} is {'NaN' if math.isnan(value) else value}",
                             path)
        if (labels != np.round(labels)).any():
            raise InputError("labels are non-integer floats; use integers or strings", path)
        if labels.size and float(np.abs(labels).max()) > 2**53:
            raise InputError("float labels beyond 2^53 are not exact (large IDs read as floats "
                             "lose digits); store them as integers or strings", path)
        labels = labels.astype(np.int64)
    if labels.dtype.kind == "O":  # a list, or a pyarrow column: strings or integers only
        values = labels.tolist()
        kinds = set(map(type, values))
        if not kinds <= {str, int}:
            row = next(i for i, v in enumerate(values) if type(v) not in (str, int))
            v = values[row]
            what = (f"a list of {len(v)} values" if isinstance(v, list | tuple | np.ndarray)
                    else "a struct" if isinstance(v, dict) else f"{type(v).__name__} {v!r:.40}")
            hint = ("text that is not UTF-8? save the file as UTF-8" if isinstance(v, bytes)
                    else "is this the embedding column?")
            raise InputError(f"label row {row} holds {what}; labels must be integers or strings "
                             f"({hint})", path)
        if kinds == {str, int}:
            raise InputError("labels mix strings and integers; use one kind", path)
    if labels.dtype.kind == "S":  # bytes: their text (a JSON report cannot hold bytes)
        try:
            labels = np.char.decode(labels, "utf-8")
        except UnicodeDecodeError:
            raise InputError("labels are bytes that are not UTF-8 text; use integers or "
                             "strings", path) from None
    if labels.dtype.kind not in "iubUO":
        raise InputError(f"labels have dtype {labels.dtype}; use integers or strings", path)
    return labels


def one_kind(y: np.ndarray, ry: np.ndarray, yname: str, ryname: str
             ) -> tuple[np.ndarray, np.ndarray]:
    """Query and reference labels (as_labels' output) of one kind, so that equal labels meet:
    text with text, and integers in one integer type (int64 and uint64 would meet as floats,
    which merge IDs beyond 2^53)."""
    kinds = [_label_kind(a) for a in (y, ry)]
    if kinds[0] != kinds[1]:
        raise InputError(f"these labels are {kinds[1]}, those of {yname} {kinds[0]}: use one "
                         "kind", ryname)
    if kinds[0] != "integers" or np.result_type(y, ry).kind != "f":
        return y, ry
    signed, unsigned = (y, ry) if y.dtype.kind == "i" else (ry, y)
    if not unsigned.size or unsigned.max() <= np.iinfo(np.int64).max:
        common: DTypeLike = np.int64
    elif not signed.size or signed.min() >= 0:
        common = np.uint64
    else:
        raise InputError(f"these labels and those of {yname} hold negative integers and "
                         "integers beyond int64: no integer type holds both", ryname)
    return y.astype(common), ry.astype(common)


def _label_kind(labels: np.ndarray) -> str:
    """Strings or integers: as_labels made bytes text and refused other objects."""
    first = labels[0] if labels.dtype.kind == "O" and labels.size else None
    return "strings" if labels.dtype.kind == "U" or isinstance(first, str) else "integers"


def unlabelled_note(labels: np.ndarray, name: str) -> list[str]:
    """A warning when integer labels hold -1 beside non-negative ones: the usual mark of an
    unlabelled row (datasets' test splits, scikit-learn's semi-supervised tools), which is
    taken here as one more class, its rows each other's positives."""
    if labels.dtype.kind not in "iu" or not labels.size:
        return []
    unlabelled = int(np.count_nonzero(labels == -1))
    if not unlabelled or labels.min() < -1 or unlabelled == labels.size:
        return []
    return [f"{name}: label -1 ({unlabelled} rows) is taken as a class like the others; if it "
            "marks unlabelled rows, leave those rows out first"]


def require_labels(labels: np.ndarray, n_rows: int, yname: str, xname: str) -> np.ndarray:
    """Labels that can give triplets for the `n_rows` embedding rows of `xname`: one per row, at
    least two classes, some class twice. Returns each row's class code (int64, classes sorted)."""
    if labels.ndim != 1:
        raise InputError(f"labels must be one value per row, got shape {labels.shape}", yname)
    require_label_rows(labels, n_rows, yname, xname)
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if classes.size == 1:
        raise InputError(f"every row has label {classes[0].item()!r}: a single class gives no "
                         "negatives", yname)
    if counts.max() < 2:
        raise InputError("no label occurs twice, so no anchor has a positive (each class needs "
                         ">= 2 rows)", yname)
    return codes.astype(np.int64)


def require_index_dtype(dtype: object, path: str) -> None:
    """Triplet indices are integers, or floats that as_indices finds integral (`dtype`: a
    numpy dtype, or how a file's type is named)."""
    if not (isinstance(dtype, np.dtype) and dtype.kind in "iuf"):
        raise InputError(f"triplet indices must be integers, got {dtype}", path)


def as_triplets(triplets: np.ndarray, path: str) -> np.ndarray:
    """A (t, 3) integer array as C-contiguous int64 (t = 0: nothing to score, as mine may write)."""
    if triplets.ndim != 2 or triplets.shape[1] != 3:
        raise InputError(f"triplets must have shape (t, 3), got {triplets.shape}", path)
    require_index_dtype(triplets.dtype, path)
    return as_indices(triplets, ("anchor", "positive", "negative"), path)


def as_indices(table: np.ndarray, columns: tuple[str, ...], path: str, row0: int = 0
               ) -> np.ndarray:
    """Index columns as C-contiguous int64: integers, or floats with integral values (what
    pandas writes once a column has held a NaN). An index beyond int64 is out of any range and
    named with its own value (a cast would show it negative)."""
    if table.dtype.kind == "f" and table.size:
        with np.errstate(invalid="ignore", over="ignore"):  # (2^63 is inf as float16: beyond all)
            fractional = ~(table == np.floor(table))  # NaN and inf too
            beyond = np.abs(table) >= 2.0**63
        if fractional.any():
            r, c = (int(v) for v in np.argwhere(fractional)[0])
            raise InputError(f"row {row0 + r}: {columns[c]} index {float(table[r, c])!r} is not "
                             "an integer", path)
    else:
        beyond = table > np.iinfo(np.int64).max if table.dtype.kind == "u" and table.size else None
    if beyond is not None and beyond.any():
        r, c = (int(v) for v in np.argwhere(beyond)[0])
        value = float(table[r, c]) if table.dtype.kind == "f" else int(table[r, c])
        raise InputError(f"row {row0 + r}: {columns[c]} index {value!r} is out of range", path)
    return np.ascontiguousarray(table, dtype=np.int64)


def require_indices(triplets: np.ndarray, rows: int | tuple[int, int, int], path: str,
                    row0: int = 0) -> None:
    """Every index must address a row of the embedding matrix (row0 numbers a streamed block);
    `rows` per column (anchor, positive, negative) when they index different matrices."""
    limits = np.broadcast_to(np.asarray(rows, np.int64), (3,))
    bad = (triplets < 0) | (triplets >= limits)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        name = ("anchor", "positive", "negative")[c]
        raise InputError(f"row {row0 + r}: {name} index {int(triplets[r, c])} is out of range "
                         f"[0, {int(limits[c])})", path)


def require_label_rows(labels: np.ndarray, n_rows: int, yname: str, xname: str) -> None:
    """One label per embedding row of `xname`."""
    if labels.shape[0] != n_rows:
        raise InputError(f"{labels.shape[0]} labels for {n_rows} embedding rows in {xname}", yname)
