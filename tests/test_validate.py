"""validate: the label, triplet and null checks readers and jobs call, one table of messages."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest

from triplet_cli import validate
from triplet_cli.errors import InputError

ERRORS = [
    (lambda: validate.require_labels(np.zeros((4, 2)), 4, "y", "x"),
     "y: labels must be one value per row, got shape (4, 2)"),
    (lambda: validate.require_labels(np.array([0, 0, 1]), 4, "y", "x"),
     "y: 3 labels for 4 embedding rows in x"),
    (lambda: validate.require_labels(np.array(["a", "a"]), 2, "y", "x"),
     "y: every row has label 'a': a single class gives no negatives"),
    (lambda: validate.require_labels(np.array([3, 1, 2]), 3, "y", "x"),
     "y: no label occurs twice, so no anchor has a positive (each class needs >= 2 rows)"),
    (lambda: validate.as_labels(np.array([[1.0], [np.nan]]), "y"), "y: label row 1 is NaN"),
    (lambda: validate.as_labels(np.array([0.5, 1.0]), "y"),
     "y: labels are non-integer floats; use integers or strings"),
    (lambda: validate.as_triplets(np.zeros((2, 2), np.int64), "t"),
     "t: triplets must have shape (t, 3), got (2, 2)"),
    (lambda: validate.as_triplets(np.full((2, 3), 0.5), "t"),
     "t: row 0: anchor index 0.5 is not an integer"),
    (lambda: validate.as_triplets(np.array([["0", "1", "2"]]), "t"),
     "t: triplet indices must be integers, got <U1"),
    (lambda: validate.require_no_nulls(pa.chunked_array([[1], [2, None]]), "column 'c'", "f", 10),
     "f: column 'c': row 12 is null"),
    (lambda: validate.require_no_nulls(pa.array([1.0, 2.0, 3.0, None]), "column 'v'", "f", 5, 2),
     "f: column 'v': row 6 holds a null value"),
    (lambda: validate.require_width(np.array([4, 4, 1]), 4, "column 'v'", "f", 8),
     "f: column 'v' is ragged: row 10 has 1 values, row 0 has 4"),
]


@pytest.mark.parametrize(("call", "message"), ERRORS)
def test_messages_name_the_file_and_row(call, message: str) -> None:
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        call()


def test_require_labels_gives_sorted_class_codes() -> None:
    codes = validate.require_labels(np.array(["b", "a", "b", "c"]), 4, "y", "x")
    assert codes.dtype == np.int64 and codes.tolist() == [1, 0, 1, 2]


def test_as_labels_flattens_a_column_of_integral_floats() -> None:
    labels = validate.as_labels(np.array([[1.0], [2.0]]), "y")
    assert labels.dtype == np.int64 and labels.tolist() == [1, 2]


@pytest.mark.parametrize("row", [0, 5, 9])
def test_same_rows_reads_every_block(row: int) -> None:
    """A difference in any block (first, middle, last) makes the rows differ; equal rows of
    another dtype or shape differ too."""
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    assert validate.same_rows(x, x.copy(), block=3)
    other = x.copy()
    other[row, 3] = -1
    assert not validate.same_rows(x, other, block=3)
    assert not validate.same_rows(x, x.astype(np.float64), block=3)
    assert not validate.same_rows(x, x[:9], block=3)


def test_float16_indices_raise_no_numpy_warning() -> None:
    """2^63 overflows float16 in the range check: numpy's RuntimeWarning reached the caller."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = validate.as_indices(np.array([[0, 1, 2]], np.float16),
                                  ("anchor", "positive", "negative"), "t.npy")
    assert out.tolist() == [[0, 1, 2]] and out.dtype == np.int64
