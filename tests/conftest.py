"""Shared fixtures for the CLI tests: the sample data folder and a CliRunner-backed `cli`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


@pytest.fixture(scope="session")
def sample() -> Path:
    """The repository's sample_data folder (absolute, so tests may change directory)."""
    return SAMPLE_DATA


@pytest.fixture
def cli() -> Callable[..., Result]:
    """`cli(*argv, input=None)`: run `triplet-loss` in-process, stdout and stderr kept apart."""
    from triplet_cli.cli import app

    runner = CliRunner()

    def invoke(*argv: object, input: bytes | str | None = None) -> Result:
        return runner.invoke(app, [str(a) for a in argv], input=input, prog_name="triplet-loss")

    return invoke
