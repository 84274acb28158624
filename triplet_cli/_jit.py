"""The one place numba is configured: cache location and compile flags.

`cache=True` lets a second process load compiled kernels instead of compiling them again;
`error_model="numpy"` keeps 0/0 as NaN instead of raising; no fastmath, so NaN checks hold.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from . import __version__


def _use_user_cache_if_read_only() -> None:
    """Point numba's cache at a versioned user folder when the installed package is read-only."""
    if os.environ.get("NUMBA_CACHE_DIR") or os.access(Path(__file__).parent, os.W_OK):
        return
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ["NUMBA_CACHE_DIR"] = str(base / "triplet-loss" / f"numba-{__version__}")


_use_user_cache_if_read_only()

import numba  # noqa: E402  (must follow the cache-directory decision)

jit = partial(numba.njit, cache=True, error_model="numpy", nogil=True)
parallel_jit = partial(numba.njit, cache=True, error_model="numpy", nogil=True, parallel=True)
prange = numba.prange


def set_threads(threads: int | None) -> str | None:
    """Use `threads` numba threads (None: all cores), at most as many as this machine runs, so a
    script written on a big machine runs on a small one; the note returned says when it capped.
    Results do not depend on the count."""
    available = max_threads()
    used = available if threads is None else min(threads, available)
    numba.set_num_threads(used)
    if threads is not None and used < threads:
        return f"--threads {threads}: this machine runs {available} threads; using {available}"
    return None


def max_threads() -> int:
    return int(numba.config.NUMBA_NUM_THREADS)


def threads_in_use() -> int:
    return int(numba.get_num_threads())
