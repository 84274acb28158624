"""The console entry point tells OpenBLAS to stop spinning soon after a product (its threads
would hold the cores numba's kernels need), unless the user chose a value."""

from __future__ import annotations

import os
import sys

import pytest

from triplet_cli import cli


@pytest.mark.parametrize(("given", "expected"), [(None, "4"), ("28", "28")])
def test_openblas_spin_default(monkeypatch, given, expected) -> None:
    if given is None:
        monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", given)
    monkeypatch.setattr(sys, "argv", ["triplet-loss", "--version"])
    with pytest.raises(SystemExit):
        cli.main()
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == expected
