"""Helpers shared by the CLI tests: parsing output, and proving a failed run changed nothing."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np


def ok(result) -> str:
    """stdout of a successful run (stderr must be quiet: sample_data raises no warning)."""
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert result.stderr == "", result.stderr
    return result.stdout


def jsonl_rows(text: str) -> dict[str, np.ndarray]:
    rows = [json.loads(line) for line in text.splitlines()]
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def csv_rows(text: str) -> dict[str, np.ndarray]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    values = np.array(list(reader), dtype=np.float64)
    return {k: values[:, i] for i, k in enumerate(header)}


def snapshot(d: Path) -> dict[str, object]:
    """Every file's bytes (stat for folders and unreadable files): proof a run changed nothing."""
    def state(p: Path) -> object:
        if p.is_file():
            with contextlib.suppress(PermissionError):
                return p.read_bytes()
        st = p.stat()
        return (st.st_mode, st.st_size, st.st_mtime_ns)
    return {str(p.relative_to(d)): state(p) for p in sorted(d.rglob("*")) if not p.is_symlink()}
