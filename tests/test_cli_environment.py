"""The console entry point's process: OpenBLAS and libgomp told to stop spinning soon after their
work (their threads would hold the cores the other pool needs), unless the user chose a value,
and stop signals answered in one line whenever they come."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest

from triplet_cli import cli as cli_module


@pytest.mark.parametrize(("name", "default"), [("OPENBLAS_THREAD_TIMEOUT", "4")])
@pytest.mark.parametrize("given", [None, "28"])
def test_thread_spin_default(monkeypatch, name, default, given) -> None:
    if given is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, given)
    monkeypatch.setattr(sys, "argv", ["triplet-loss", "--version"])
    with pytest.raises(SystemExit):
        cli_module.main()
    assert os.environ[name] == (given or default)


def test_ctrl_c_before_the_run_answers_is_one_line(cli, sample, monkeypatch) -> None:
    """Ctrl-C while a command still imports its run (0.25-0.9 s after start) was turned by Typer
    into a silent exit 130; it says what a run says."""
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "_run", interrupted)
    r = cli("compute", "--anchors", sample / "anchors.npy", "--positives",
            sample / "positives.npy", "--negatives", sample / "negatives.npy")
    assert (r.exit_code, r.stdout, r.stderr) == (130, "",
                                                 "triplet-loss: interrupted; no output written\n")


def test_a_stop_that_a_compile_would_hold_ends_the_run(monkeypatch) -> None:
    """A stop raised where no compile runs unwinds the run; when another thread starts a
    compile meanwhile (a kernel's other half, on a first run), the run ends as at a stop during
    a compile, not after it (10-17 s later)."""
    ended = threading.Event()
    answers = iter([False])  # not compiling when the signal comes, then compiling
    monkeypatch.setattr(cli_module, "_compiling", lambda: next(answers, True))
    monkeypatch.setattr(cli_module, "_end_now", lambda signum: ended.set())
    monkeypatch.setattr(cli_module, "_received", [])
    with pytest.raises(cli_module._Stopped):
        cli_module._stop(signal.SIGTERM, None)
    assert ended.wait(timeout=30)
