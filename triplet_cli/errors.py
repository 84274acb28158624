"""Errors a user can cause, each carrying its exit code and the path it concerns."""

from __future__ import annotations

import re
import signal

PROG = "triplet-loss"  # how every message to the user names the tool


class TripletLossError(Exception):
    """Bad input or a failed run: one line for the user, exit code 1."""

    exit_code = 1

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InputError(TripletLossError):
    """A file that is missing, unreadable, or holds data we cannot use."""


class UsageError(TripletLossError):
    """A flag value or combination that makes no sense: exit code 2."""

    exit_code = 2


# Ctrl-C, a job scheduler or `timeout` (SIGTERM), a closed terminal (SIGHUP): a run stops with
# one line (`stopped`), no partial file left.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


def stopped(signum: int) -> str:
    """What a stop signal did, as the one line says it."""
    return {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}.get(signum, "hung up")


def first_line(e: BaseException) -> str:
    """An exception's first line of text, or its type's name: how a library's error is quoted."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def one_line(text: str) -> str:
    """text with its control characters escaped as Python writes them (a newline as \\n): a file
    name holding one must not split the line a script reads, nor drive the terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
