"""The console entry point tells OpenBLAS and libgomp to stop spinning soon after their work
(their threads would hold the cores the other pool needs), unless the user chose a value."""

from __future__ import annotations

import os
import sys

import pytest

from triplet_cli import cli


@pytest.mark.parametrize(("name", "default"), [("OPENBLAS_THREAD_TIMEOUT", "4")])
@pytest.mark.parametrize("given", [None, "28"])
def test_thread_spin_default(monkeypatch, name, default, given) -> None:
    if given is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, given)
    monkeypatch.setattr(sys, "argv", ["triplet-loss", "--version"])
    with pytest.raises(SystemExit):
        cli.main()
    assert os.environ[name] == (given or default)
