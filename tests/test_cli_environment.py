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


EARLY_STOP = """
import os, signal, sys, time, types
loading = types.ModuleType("triplet_cli.cli")  # the CLI still loading when the signal comes
loading.main = lambda: (os.kill(os.getpid(), signal.{name}), time.sleep(30))
sys.modules["triplet_cli.cli"] = loading
from triplet_cli.__main__ import main
main()
"""


@pytest.mark.parametrize(("name", "said"), [("SIGINT", "interrupted"), ("SIGTERM", "terminated"),
                                            ("SIGHUP", "hung up")])
def test_a_stop_while_the_cli_loads_is_one_line(name: str, said: str) -> None:
    """The CLI takes 60-160 ms to import: a stop then gave Python's KeyboardInterrupt traceback
    (SIGINT) or a silent death (SIGTERM, SIGHUP)."""
    import subprocess

    run = subprocess.run([sys.executable, "-c", EARLY_STOP.format(name=name)],
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout, run.stderr) == (
        128 + getattr(signal, name), "", f"triplet-loss: {said}\n")
