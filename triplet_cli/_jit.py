"""The one place numba is configured: its cache folder, `cache=True` (a second process loads
compiled kernels), `error_model="numpy"` (0/0 is NaN), no fastmath (NaN checks hold), and how
kernels run on threads (numba's prange, or in_parallel)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
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
# Small dispatch functions inlined into their callers at numba's level: a call between jitted
# functions costs a reference-count update per array argument (at d = 128, 60 of a euclidean
# distance's 85 ns went to the four calls between `distance` and its sum).
inline_jit = partial(numba.njit, cache=True, error_model="numpy", nogil=True, inline="always")
parallel_jit = partial(numba.njit, cache=True, error_model="numpy", nogil=True, parallel=True)
prange = numba.prange


def in_parallel(kernel: Callable[..., None], tasks: int, *args: object) -> None:
    """kernel(lo, hi, *args) over consecutive ranges lo..hi that cover tasks 0..tasks, one per
    thread: this one and up to threads_in_use() - 1 started for the call. Kernels are nogil
    jitted functions writing disjoint outputs, so results do not depend on the split.

    For kernels whose rows are spent in jitted callees (mining, top-k, exact rows): as a numba
    prange each compiled 2-5 s longer on a first run, for the same speed. The per-triplet loss
    kernels keep prange: their rows are short, and its loop body, free of reference counting
    on row views, ran 14% faster per row at d = 128 on one thread."""
    parts = max(1, min(threads_in_use(), tasks))
    bounds = [tasks * k // parts for k in range(parts + 1)]
    if parts == 1:
        kernel(0, tasks, *args)
        return
    failed: list[BaseException] = []

    def run(k: int) -> None:
        try:
            kernel(bounds[k], bounds[k + 1], *args)
        except BaseException as e:  # re-raised in the caller's thread
            failed.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(1, parts)]
    for t in threads:
        t.start()
    run(0)
    for t in threads:
        t.join()
    if failed:
        raise failed[0]


def set_threads(threads: int | None) -> str | None:
    """Use `threads` kernel threads (None: all), capped at this machine's; a note when capped."""
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
