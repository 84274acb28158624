"""The console script and `python -m triplet_cli`: stop signals answered from the first moment.

The CLI takes 60-160 ms to import (Typer, rich's pieces); a stop in that time met Python's own
answers (a KeyboardInterrupt traceback, or a silent death by SIGTERM/SIGHUP). Until the CLI sets
its handlers, a stop ends the process with one line: nothing was read or written yet.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from .errors import PROG, STOP_SIGNALS, stopped


def main() -> None:
    for s in STOP_SIGNALS:
        signal.signal(s, _stopped_early)
    from .cli import main as cli

    cli()


def _stopped_early(signum: int, frame: Any) -> None:
    with contextlib.suppress(OSError):  # (stderr closed)
        os.write(2, f"{PROG}: {stopped(signum)}\n".encode())
    os._exit(128 + signum)


if __name__ == "__main__":
    main()
