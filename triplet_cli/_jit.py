"""The one place numba is configured: its cache folder and `cache=True` (a second process loads
compiled kernels; a cache that fails costs a compile, not the run), `error_model="numpy"` (0/0
is NaN), no fastmath (NaN checks hold), and how kernels run on threads (in_parallel, not
numba's prange)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import UsageError


def _cache_folder() -> bool:
    """Whether numba can keep compiled kernels: in the user's NUMBA_CACHE_DIR when it is
    usable, beside the package when that is writable, else in a versioned user folder, else in
    one of the user's own in the temporary folder (a read-only install with no writable home);
    with none, every run compiles (an unusable cache folder made numba refuse every kernel)."""
    given = os.environ.pop("NUMBA_CACHE_DIR", "")
    if given and _usable(Path(given)):
        os.environ["NUMBA_CACHE_DIR"] = given
        return True
    if os.access(Path(__file__).parent, os.W_OK):
        return True
    uid = getattr(os, "getuid", lambda: -1)()
    for base in _user_folders(uid):
        folder = base / f"numba-{__version__}"
        try:
            mine = _usable(folder) and (uid < 0 or base.stat().st_uid == uid)  # not another's
        except (OSError, RuntimeError):
            continue
        if mine:
            os.environ["NUMBA_CACHE_DIR"] = str(folder)
            return True
    return False


def _usable(folder: Path) -> bool:
    """A folder that exists or can be made, and takes a file (as numba checks it)."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except (OSError, RuntimeError):
        return False
    return True


def _user_folders(uid: int) -> list[Path]:
    """Where a read-only install may cache: the user's cache folder (an absolute
    XDG_CACHE_HOME, as the XDG rules say), the temporary folder (when there is one)."""
    folders = []
    with contextlib.suppress(RuntimeError):  # no home directory
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        folders.append((Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache")
                       / "triplet-loss")
    with contextlib.suppress(OSError):  # no usable temporary folder
        folders.append(Path(tempfile.gettempdir()) / f"triplet-loss-{uid}")
    return folders


def _require_threads() -> None:
    """NUMBA_NUM_THREADS below 1 made numba's import raise (a traceback), and one that is no
    number made it print a warning with a traceback in it."""
    value = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if not value:  # set empty: as unset
        os.environ.pop("NUMBA_NUM_THREADS", None)
    elif not (value.isdigit() and int(value) >= 1):
        raise UsageError(f"NUMBA_NUM_THREADS={value}: give a number of threads >= 1, or unset it")


_require_threads()
_CACHE = _cache_folder()

# numba loads only after the cache-directory decision; the kernel modules take numba's names
# (cgutils, intrinsic, overload, typeof, types) from here for the same reason.
import numba  # noqa: E402
from numba import typeof as typeof  # noqa: E402
from numba.core import caching, cgutils, event  # noqa: E402
from numba.core import types as types  # noqa: E402
from numba.extending import intrinsic  # noqa: E402
from numba.extending import overload as overload  # noqa: E402

if numba.config.DISABLE_JIT:  # the kernels use intrinsics, which need compiling
    raise UsageError("NUMBA_DISABLE_JIT is set: triplet-loss runs compiled kernels only; unset it")


@contextlib.contextmanager
def _cache_at_best_effort(self: object) -> Iterator[None]:
    """A cache that cannot be written (a full disk) or read (a file cut short by an interrupted
    copy) costs a compile, not the run: numba's guard around every load and save of its cache,
    which lets such errors through except on Windows, is this one, which lets none through."""
    with contextlib.suppress(Exception):
        yield


caching.Cache._guard_against_spurious_io_errors = _cache_at_best_effort
_load_index = caching.IndexDataCacheFile._load_index


def _index_or_empty(self: caching.IndexDataCacheFile) -> dict:
    """A cache index that cannot be read (cut short) as an empty one, so that the next save
    rewrites it: numba's save reads the index first, and failing there, never saved again."""
    try:
        return _load_index(self)
    except Exception:
        return {}


caching.IndexDataCacheFile._load_index = _index_or_empty


_PACKAGE = Path(__file__).parent
_file_stamp = caching._SourceFileBackedLocatorMixin.get_source_stamp


def _package_stamp(self: caching._SourceFileBackedLocatorMixin) -> object:
    """The freshness of a cached kernel of this package: every module's source, not only its
    own file's (numba's check). A kernel's cache holds the code of what it calls from other
    modules: after an edit to lanes.py alone (a `git pull` into an editable install), the loss
    kernel went on running the old sums from its cache."""
    if Path(self._py_file).parent == _PACKAGE:
        with contextlib.suppress(OSError):  # a module that cannot be read: numba's own check
            return _sources_hash()
    return _file_stamp(self)


@functools.cache
def _sources_hash() -> str:
    """sha256 of the package's modules, their names and bytes (once a process: the modules it
    runs are the ones it imported), and of numpy's version (statistics.NUMPY_BUFFER)."""
    digest = hashlib.sha256(np.__version__.encode())
    for path in sorted(_PACKAGE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


caching._SourceFileBackedLocatorMixin.get_source_stamp = _package_stamp


class _Compiles(event.Listener):
    """Counts the compiles under way, in any thread (numba's compile events)."""

    under_way = 0

    def on_start(self, event: event.Event) -> None:
        _Compiles.under_way += 1

    def on_end(self, event: event.Event) -> None:
        _Compiles.under_way -= 1


event.register("numba:compile", _Compiles())


def compiling() -> bool:
    """Whether numba is compiling now: an exception raised into it then can be swallowed by an
    LLVM callback, or leave LLVM's lock held (the next compile waits forever)."""
    return _Compiles.under_way > 0

jit = partial(numba.njit, cache=_CACHE, error_model="numpy", nogil=True)
# Small dispatch functions inlined into their callers at numba's level: a call between jitted
# functions costs a reference-count update per array argument (at d = 128, 60 of a euclidean
# distance's 85 ns went to the four calls between `distance` and its sum).
inline_jit = partial(numba.njit, cache=_CACHE, error_model="numpy", nogil=True, inline="always")


def one_of(first: bool) -> tuple[np.bool_ | None, np.bool_ | None]:
    """Two kernel arguments of which exactly one is None: (True, None) when `first`, else
    (None, True). Numba drops a branch guarded by `x is not None` before compiling when x is
    None (never when x is a value), so a kernel that guards each of two paths by one of these
    compiles only the path it takes."""
    return (np.bool_(True), None) if first else (None, np.bool_(True))


# Ranges per thread: a thread that finishes early takes the next range, so one thread slowed
# down (a vCPU the host lends elsewhere for a while) does not leave the others idle at the end.
PIECES_PER_THREAD = 16


def in_parallel(kernel: Callable[..., None], tasks: int, *args: object, per_thread: int = 1
                ) -> None:
    """kernel(lo, hi, *args) over consecutive ranges lo..hi that cover tasks 0..tasks, on
    threads_in_use() threads at most (`together`), and at least `per_thread` tasks a thread (a
    thread's start costs 0.1-0.3 ms), each taking ranges (Shares) until none is left. Kernels
    are nogil jitted functions writing disjoint outputs, so results do not depend on the split
    or on which thread runs a range.

    As numba prange loops, the kernels compiled 1.3-5 s longer each on a first run, and the
    pool's idle threads spun on the cores that the next product or the summary needed. With one
    range per thread, the kernel of compute_loss took 33 ms on one thread and up to 54 ms on
    the other in some calls on this 2-vCPU machine."""
    parts = max(1, min(threads_in_use(), tasks // per_thread))
    if parts == 1:
        kernel(0, tasks, *args)
        return
    pieces = min(tasks, parts * PIECES_PER_THREAD)
    bounds = [tasks * k // pieces for k in range(pieces + 1)]
    shares = Shares(pieces, parts)
    failed: list[bool] = []  # once a range fails (or Ctrl-C), no thread takes another

    def take_ranges(thread: int) -> None:
        try:
            while not failed and (k := shares.take(thread)) is not None:
                kernel(bounds[k], bounds[k + 1], *args)
        except BaseException:
            failed.append(True)
            raise

    together(*(partial(take_ranges, thread) for thread in range(parts)))


class Shares:
    """Pieces 0..pieces in one run of consecutive pieces per thread: a thread takes its own
    from the front, then the last piece of the largest run left. Threads thus write far apart:
    two threads writing neighbouring ranges of a fresh output wait for each other's first touch
    of the same 2 MB page (at 10^6 rows, 3.8 ms of compute_loss's kernel when memory reads at
    60 GB/s, 2 ms in runs apart)."""

    def __init__(self, pieces: int, threads: int) -> None:
        self._next = [pieces * t // threads for t in range(threads)]
        self._end = [*self._next[1:], pieces]
        self._lock = threading.Lock()

    def take(self, thread: int) -> int | None:
        """The next piece for this thread, or None when every piece is taken."""
        with self._lock:
            if self._next[thread] < self._end[thread]:
                self._next[thread] += 1
                return self._next[thread] - 1
            left = [end - start for start, end in zip(self._next, self._end, strict=True)]
            most = max(range(len(left)), key=left.__getitem__)
            if left[most] <= 0:
                return None
            self._end[most] -= 1
            return self._end[most]


def together(*tasks: Callable[[], Any]) -> list[Any]:
    """Each task's result, in order: the first task runs here and the others on threads started
    for the call, when the run has more than one kernel thread (their work must release the
    GIL: nogil jitted functions, numpy's loops, pyarrow's reads), else one after the other. The
    error of the first task (by position) that failed is raised here once all have ended, the
    same one whichever thread failed sooner. Threads per call, not a pool: a pool's threads do
    not survive a fork."""
    if len(tasks) < 2 or threads_in_use() < 2:
        return [task() for task in tasks]
    results: list[Any] = [None] * len(tasks)
    failed: dict[int, BaseException] = {}

    def run(k: int) -> None:
        try:
            results[k] = tasks[k]()
        except BaseException as e:  # raised in the caller's thread
            failed[k] = e

    threads = [threading.Thread(target=run, args=(k,)) for k in range(1, len(tasks))]
    for t in threads:
        t.start()
    run(0)
    for t in threads:
        t.join()
    if failed:
        raise failed[min(failed)]
    return results


@intrinsic
def borrowed(typingctx, array):  # type: ignore[no-untyped-def]
    """The array without its reference count, for a kernel's inputs, which its caller holds for
    the whole call: row views of it then cost no atomic count updates when passed to jitted
    callees (14% of a d = 128 loss kernel's time, one thread)."""
    if not isinstance(array, numba.types.Array):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        given = context.make_array(array)(context, builder, args[0])
        out = context.make_array(array)(context, builder)
        for name in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(out, name, getattr(given, name))
        out.meminfo = cgutils.get_null_value(out.meminfo.type)
        out.parent = cgutils.get_null_value(out.parent.type)
        return out._getvalue()

    return array(array), codegen


_local = threading.local()  # each calling thread's own count


def set_threads(threads: int | None) -> str | None:
    """Use `threads` kernel threads (None: all), capped at this machine's; a note when capped."""
    available = max_threads()
    used = available if threads is None else min(threads, available)
    _local.threads = used
    if threads is not None and used < threads:
        return (f"--threads {threads}: {available} thread{'s' if available > 1 else ''} "
                f"available here (NUMBA_NUM_THREADS, or the CPUs this process may use); using "
                f"{available}")
    return None


def max_threads() -> int:
    return int(numba.config.NUMBA_NUM_THREADS)


def threads_in_use() -> int:
    return int(getattr(_local, "threads", 0) or max_threads())
