"""A job's inputs as given: a path (str or path-like) or an array, made a checked float matrix."""

from __future__ import annotations

import os

import numpy as np

from . import validate
from .arrow import ArrowMatrix
from .readers import STDIN, open_matrix, same_file, shown_name

ArrayLike = np.ndarray | str | os.PathLike[str]
Matrix = np.ndarray | ArrowMatrix  # in memory (or memory-mapped), or streamed from parquet/Arrow
NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's eps, as pytorch-metric-learning uses it


def path_or_array(x: object) -> object:
    """A path-like input as its str path (arrays and None pass through)."""
    return os.fspath(x) if isinstance(x, os.PathLike) else x


def same_input(a: object, b: object) -> bool:
    """Two inputs are one: the same file (by path, link or inode; never stdin), or the same
    array (the same object, or arrays viewing the same memory alike: x[:] is x's rows)."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and STDIN not in (a, b) and \
            same_file(a, b)
    if a is b:
        return True
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return False
    return (a.shape, a.strides, a.dtype) == (b.shape, b.strides, b.dtype) and (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def load_matrix(x: ArrayLike, role: str, column: str | None, stream: bool = False
                ) -> tuple[Matrix, str]:
    """An input as a float array and the name errors give it, or (stream=True) a parquet/Arrow
    input left on disk to be read block by block."""
    if isinstance(x, str):
        m, name = open_matrix(x, column), shown_name(x)
        if isinstance(m, ArrowMatrix):
            validate.as_float_array(np.empty((0, m.width), m.dtype), name)  # dtype check first
            return (m, name) if stream else (validate.as_float_array(m.read(), name), name)
        return validate.as_float_array(m, name), name
    return validate.as_float_array(validate.as_array(x, role), role), role


def normalized(a: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float64 (x / max(|x|, 1e-12), as torch's normalize)."""
    a = a.astype(np.float64)
    norm = np.sqrt(np.einsum("...i,...i->...", a, a))[..., None]
    return a / np.maximum(norm, NORMALIZE_EPS)
