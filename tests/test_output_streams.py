"""Rows are never lost where a write fails or must wait: a full disk or a file-size limit (here:
RLIMIT_FSIZE), Python run unbuffered (PYTHONUNBUFFERED, as containers often set it: stdout's
bytes layer is then the raw file, whose write may take part of the bytes), and a non-blocking
pipe (a parent such as Node.js may hand one down). Each test failed before its fix: the output
was cut short with exit 0, the run failed on a slow reader, or the error named no file or the
wrong one."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
COMPUTE = ("compute", "--anchors", SAMPLE / "anchors.npy", "--positives",
           SAMPLE / "positives.npy", "--negatives", SAMPLE / "negatives.npy", "--top", "500")


def _env(unbuffered: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return {**env, "PYTHONUNBUFFERED": "1"} if unbuffered else env


def _argv(*args: object) -> list[str]:
    return [sys.executable, "-m", "triplet_cli", *(str(a) for a in args)]


def _limited(size: int):  # type: ignore[no-untyped-def]
    """preexec_fn: files the run writes may hold at most `size` bytes (EFBIG beyond)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(
            resource.RLIMIT_FSIZE)[1]))
    return limit


@pytest.mark.parametrize("unbuffered", [True, False])
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "table", "json"])
def test_stdout_into_a_full_file_is_an_error(tmp_path: Path, fmt: str, unbuffered: bool) -> None:
    with open(tmp_path / "out", "wb") as out:
        run = subprocess.run(_argv(*COMPUTE, "-f", fmt), stdout=out, stderr=subprocess.PIPE,
                             env=_env(unbuffered), preexec_fn=_limited(1024))
    assert (run.returncode, run.stderr) == (1, b"triplet-loss: error: stdout: File too large\n")


@pytest.mark.parametrize(("fmt", "unbuffered"), [("jsonl", True), ("csv", False),
                                                 ("table", True)])
def test_a_non_blocking_pipe_gets_every_row(fmt: str, unbuffered: bool) -> None:
    """The reader starts after the run has filled the pipe: the run waits for it."""
    argv = _argv(*COMPUTE, "-f", fmt, "--top", "1797")  # (the table: every triplet listed)
    want = subprocess.run(argv, capture_output=True, env=_env(unbuffered), check=True).stdout
    assert len(want) > 1 << 16  # more than a pipe holds
    r, w = os.pipe()
    os.set_blocking(w, False)
    run = subprocess.Popen(argv, stdout=w, stderr=subprocess.PIPE, env=_env(unbuffered))
    os.close(w)
    time.sleep(1.5)
    got = b""
    with os.fdopen(r, "rb") as pipe:
        while chunk := pipe.read(1 << 16):
            got += chunk
    assert (run.wait(), run.stderr.read()) == (0, b"")
    assert got == want


def test_a_file_limit_anywhere_names_the_output(tmp_path: Path) -> None:
    """Wherever the limit falls, in a write or in the last flush as the file is closed, the
    error names --output and no file is left."""
    whole = tmp_path / "whole.csv"
    subprocess.run(_argv(*COMPUTE, "-o", whole, "-q"), check=True, capture_output=True)
    size = whole.stat().st_size
    for limit in range(size - 10 * 1024, size, 2048):
        out = tmp_path / "rows.csv"
        run = subprocess.run(_argv(*COMPUTE, "-o", out, "-q"), capture_output=True,
                             preexec_fn=_limited(limit))
        assert (run.returncode, run.stderr.decode()) == (
            1, f"triplet-loss: error: {out}: File too large\n"), limit
        assert sorted(p.name for p in tmp_path.iterdir()) == ["whole.csv"]
