"""Checks at the boundary: dtype, shape, finiteness, matching sizes. Messages name the file."""

from __future__ import annotations

import numpy as np

from .errors import InputError

# Integers convert exactly to these float types; wider ones only when every value fits.
_EXACT_FLOAT = {1: np.float32, 2: np.float32, 4: np.float64}
_FLOAT64_EXACT_LIMIT = 2**53
_FINITE_BLOCK_ROWS = 65_536


def as_float_array(array: np.ndarray, path: str) -> np.ndarray:
    """float32/float64 kept (no copy when C-contiguous), float16 upcast, safe integers converted."""
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "f" and size in (4, 8):  # big-endian files are swapped: numba takes native only
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    if kind == "f" and size == 2:
        return array.astype(np.float32)
    if kind in "iu" and size in _EXACT_FLOAT:
        return array.astype(_EXACT_FLOAT[size])
    if kind in "iu" and size == 8:
        if array.size and np.abs(array).max() > _FLOAT64_EXACT_LIMIT:
            raise InputError(f"{array.dtype} values beyond 2^53 cannot be used as floats "
                             "exactly", path)
        return array.astype(np.float64)
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


def first_nonfinite_row(array: np.ndarray) -> int | None:
    """The first row (axis 0) holding NaN or inf, read in blocks to bound memory."""
    for start in range(0, array.shape[0], _FINITE_BLOCK_ROWS):
        block = array[start:start + _FINITE_BLOCK_ROWS]
        bad = ~np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1)
        if bad.any():
            return start + int(np.flatnonzero(bad)[0])
    return None


def describe_nonfinite(array: np.ndarray, row: int) -> str:
    values = np.asarray(array[row])
    return "NaN" if np.isnan(values).any() else "inf"


def require_finite(array: np.ndarray, path: str, rows: np.ndarray | None = None) -> None:
    """Raise naming the first row with NaN or inf (among `rows` when given)."""
    if rows is not None:
        checked = np.asarray(array[rows])
        bad = ~np.isfinite(checked.reshape(checked.shape[0], -1)).all(axis=1)
        row = int(rows[np.flatnonzero(bad)[0]]) if bad.any() else None
    else:
        row = first_nonfinite_row(array)
    if row is not None:
        raise InputError(f"row {row} contains {describe_nonfinite(array, row)}", path)


def require_indices(triplets: np.ndarray, rows: int, path: str, row0: int = 0) -> None:
    """Every index must address a row of the embedding matrix (row0 numbers a streamed block)."""
    bad = (triplets < 0) | (triplets >= rows)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        name = ("anchor", "positive", "negative")[c]
        raise InputError(f"row {row0 + r}: {name} index {int(triplets[r, c])} is out of range "
                         f"[0, {rows})", path)
