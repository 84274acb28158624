"""A Dask executor for any job (`--scheduler`): the optional extra triplet-loss[dask].

Nothing else in the package imports this module's Dask side: `import triplet_cli` and every run
without --scheduler stay free of dask (it is imported inside `connect`). It knows the job seam
(jobs.py), not what a job computes.

How a run is shaped:
- Tasks. One per unit of the job (`job.units()`, each task calls `job.run(unit)`), so blocks
  have the single-process boundaries and every writer sees the same `write` calls.
- Data. The job's shared inputs (`job.shared()`: the embedding matrix) reach each worker once: by
  path when it is a .npy file the client memory-mapped unchanged (workers map it from shared
  storage; its SHA-256 is checked on each worker), otherwise sent once by the client, as is the
  job without them. Sent data is held by a task, not scattered: the scheduler keeps that task,
  so data lost with a worker is sent again. Scattered data is gone for good once its last holder
  dies, and Dask's active memory manager trims broadcast copies down to one: with
  `client.scatter(broadcast=True)`, a loop killing 1 of 2 workers mid-run failed within a few
  runs ("cancelled: already forgotten"); with held data, 18 of 18 passed. Units travel inside
  their tasks (row blocks of aligned inputs, triplet rows, anchor ranges).
- Order. At most `window` tasks are in flight beyond the oldest block not yet handed on; results
  arrive in any order (`as_completed`) and wait in a reorder buffer, so blocks leave in order
  and client memory holds at most `window` blocks.
- Failures. Each task has `retries=RETRIES`; a task lost with its worker is rerun elsewhere by the
  scheduler. A user error (TripletLossError, e.g. a NaN row found by a compute block) comes back
  as a value, is not retried, and is raised as itself; anything else is one SchedulerError line.
- Threads. One kernel at a time per worker process (a lock: concurrent parallel launches would
  oversubscribe the cores, and numba's workqueue threading layer is not thread-safe), with numba
  set to the process's share of its host's cores: cores // worker processes on that host, or
  --threads. Dask already limits BLAS in workers to 1 thread (OMP/OPENBLAS_NUM_THREADS=1).
- No worker left: the run waits for workers to join, as Dask does (Ctrl-C stops it cleanly).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import sys
import threading
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .errors import InputError, TripletLossError, UsageError

if TYPE_CHECKING:
    from distributed import Client

    from .jobs import Block, Job

LOCAL = "local"
CONNECT_TIMEOUT = 10.0  # seconds to reach --scheduler, and again for its first worker
RETRIES = 2
INSTALL = "pip install 'triplet-loss[dask]'"
TRANSFERS = ("auto", "path", "send")


class SchedulerError(TripletLossError):
    """The cluster was unreachable or failed the run (named as `scheduler ADDRESS`)."""


def check_flags(scheduler: str | None, workers: int | None) -> None:
    """Flag combinations and the dask extra, checked before any data is read; imports no dask."""
    if scheduler is None:
        if workers is not None:
            raise UsageError("--workers starts a local cluster: use it with --scheduler local")
        return
    if workers is not None and scheduler != LOCAL:
        raise UsageError(f"--workers applies to --scheduler local; the cluster at {scheduler} "
                         "has its own workers")
    if find_spec("distributed") is None:
        raise TripletLossError(f"--scheduler needs Dask: {INSTALL}")


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise TripletLossError(f"--scheduler needs Dask: {INSTALL}") from None
    return distributed


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@contextlib.contextmanager
def _quiet_logs(quiet: bool) -> Iterator[None]:
    """Dask's own log lines (a worker restarting, a lost connection) off stderr: the run ends in
    our one line instead. Restored afterwards."""
    if not quiet:
        yield
        return
    names = ["distributed", *(n for n in logging.root.manager.loggerDict
                              if n.startswith("distributed."))]  # dask sets some levels itself
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


@contextlib.contextmanager
def _starting_workers(quiet: bool) -> Iterator[None]:
    """Start local workers with their stderr on /dev/null (unless --verbose), and Ctrl-C held
    until they are up. Ctrl-C reaches the whole process group: each worker would print a
    KeyboardInterrupt traceback (their logs are off then anyway), and a cluster interrupted
    half-built cannot be shut down (Dask's atexit hook then prints its own traceback); this
    process answers the Ctrl-C once the cluster can be closed: one line."""
    held: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: held.append(1)) if main else None
    if not quiet:
        saved = None
    else:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    try:
        yield
    except Exception:
        if not held:
            raise
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
        if main:
            signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if held:  # the workers took the Ctrl-C too, so a failed start is that Ctrl-C
        raise KeyboardInterrupt


@contextlib.contextmanager
def connect(scheduler: str, workers: int | None = None, *, quiet: bool = False,
            timeout: float | None = None) -> Iterator[Cluster]:
    """A Cluster on the scheduler at `scheduler` (tcp://host:8786), or on a LocalCluster of
    `workers` processes (1 thread each; default one per core) started for the run ('local')."""
    check_flags(scheduler, workers)
    dd = _distributed()
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    where = f"scheduler {scheduler}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_logs(quiet))
        try:
            if scheduler == LOCAL:
                with _starting_workers(quiet):
                    local = stack.enter_context(dd.LocalCluster(
                        n_workers=workers or _cores(), threads_per_worker=1, processes=True,
                        dashboard_address="127.0.0.1:0", worker_dashboard_address=None,
                        silence_logs=logging.CRITICAL if quiet else logging.WARNING))
                    client = stack.enter_context(dd.Client(local, timeout=timeout,
                                                           set_as_default=False))
                where = f"local cluster {local.scheduler_address}"
            else:
                _identify(scheduler, timeout, where)
                client = stack.enter_context(dd.Client(scheduler, timeout=timeout,
                                                       set_as_default=False))
        except TripletLossError:
            raise
        except (OSError, TimeoutError) as e:
            raise SchedulerError(f"cannot connect ({_first_line(e)})", where) from None
        except Exception as e:  # e.g. an HTTP server on that port: the handshake makes no sense
            raise SchedulerError(f"cannot connect (no Dask scheduler answered: "
                                 f"{type(e).__name__})", where) from None
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise SchedulerError(f"no worker joined within {timeout:g} s", where) from None
        yield Cluster(client, where)


def _identify(scheduler: str, timeout: float, where: str) -> None:
    """Ask the address who it is before a Client does: a Client that meets something else (the
    dashboard's HTTP port 8787 instead of 8786) fails oddly and then hangs 20 s in __del__."""
    import asyncio

    if scheduler.startswith(("tls://", "wss://")):
        return  # needs the security settings only a Client is given
    from distributed.comm import connect as open_comm

    async def identity() -> Any:
        comm = await open_comm(scheduler, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    async def bounded() -> Any:  # Dask's own handshake waits for ever on an HTTP server;
        return await asyncio.wait_for(identity(), timeout + 2)  # +2 s: its connect fails first

    try:
        reply = asyncio.run(bounded())
    except TimeoutError:
        raise SchedulerError(f"cannot connect (no Dask handshake within {timeout + 2:g} s: "
                             "the dashboard's port instead of the scheduler's?)", where) from None
    except (OSError, ValueError) as e:
        raise SchedulerError(f"cannot connect ({_first_line(e)})", where) from None
    except Exception:
        raise SchedulerError("cannot connect (something answered that does not speak Dask: "
                             "the dashboard's port instead of the scheduler's?)", where) from None
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        raise SchedulerError(f"cannot connect (this is a Dask {kind or 'peer'}, not a "
                             "scheduler)", where)


def cluster_blocks(job: Job, scheduler: str | None, workers: int | None, *,
                   threads: int | None = None, verbose: bool = False) -> Iterator[Block]:
    """The CLI's entry: flags checked now, then (lazily) connect and yield the job's blocks."""
    check_flags(scheduler, workers)

    def blocks() -> Iterator[Block]:
        with connect(scheduler, workers, quiet=not verbose) as cluster:
            yield from cluster.blocks(job, threads=threads, verbose=verbose)

    return blocks()


# ------------------------------------------------------------------------------------------------
# what workers hold


def digest(x: np.ndarray) -> str:
    """SHA-256 of an array's bytes (1.7 GB/s here: 0.06 s for 200,000 x 128 float32)."""
    return hashlib.sha256(np.ascontiguousarray(x).data).hexdigest()


@dataclass(frozen=True)
class NpyFile:
    """An embedding matrix that workers memory-map by path, with what the client saw in it."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    sha256: str

    @classmethod
    def of(cls, x: np.ndarray) -> NpyFile | None:
        """The .npy file `x` maps unchanged (not converted, not normalised), else None."""
        base = x
        while base is not None and not isinstance(base, np.memmap):
            base = base.base
        if base is None or not isinstance(getattr(base, "filename", None), str):
            return None
        if not (x.flags.c_contiguous and x.shape == base.shape and x.dtype == base.dtype
                and x.ctypes.data == base.ctypes.data and x.dtype.isnative):
            return None
        return cls(os.path.abspath(base.filename), x.shape, x.dtype.str, digest(x))

    def load(self, worker: str | None = None) -> np.ndarray:
        """The mapped matrix, checked against the client's digest once per worker process."""
        with _LOADED_LOCK:
            x = _LOADED.get(self)
            if x is None:
                x = self._read(worker or _worker_name())
                _LOADED[self] = x
                while len(_LOADED) > 2:  # this run's matrix and perhaps the previous run's
                    _LOADED.pop(next(iter(_LOADED)))
            return x

    def _read(self, worker: str) -> np.ndarray:
        from .readers import read_matrix

        hint = ("--scheduler reads .npy embeddings by path: keep them on storage every worker "
                "shares")
        try:
            x = read_matrix(self.path)
        except InputError as e:
            raise InputError(f"{e.message} on {worker} ({hint})", self.path) from None
        if x.shape != self.shape or x.dtype.str != self.dtype or digest(x) != self.sha256:
            raise InputError(f"differs on {worker} from the client's copy ({hint})", self.path)
        return x


_LOADED: dict[NpyFile, np.ndarray] = {}
_LOADED_LOCK = threading.Lock()
_KERNEL_LOCK = threading.Lock()
_JOBS: dict[str, Any] = {}  # run -> its job with shared inputs, on this worker (under the lock)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return f"worker {get_worker().address}"
    except (ImportError, ValueError):
        return "a worker"


def _matrix(source: np.ndarray | NpyFile) -> np.ndarray:
    return source.load() if isinstance(source, NpyFile) else source


@dataclass(frozen=True)
class Threads:
    """numba threads per worker process: `requested` (--threads) or its host's core share."""

    requested: int | None = None
    by_host: dict[str, int] = field(default_factory=dict)

    def here(self) -> int:
        if self.requested:
            return self.requested
        try:
            from distributed import get_worker

            return self.by_host.get(get_worker().ip) or _cores()
        except (ImportError, ValueError):
            return _cores()


@contextlib.contextmanager
def _kernel_slot(threads: Threads) -> Iterator[None]:
    """One kernel launch at a time in this process, with this thread's numba thread count set
    (numba's count is per calling thread, and Dask runs tasks on a thread pool)."""
    from ._jit import max_threads, set_threads

    with _KERNEL_LOCK:
        set_threads(max(1, min(threads.here(), max_threads())))
        yield


@dataclass
class _Failed:
    """A user error raised in a task, returned as a value so that it is not retried."""

    error: TripletLossError


# ------------------------------------------------------------------------------------------------
# tasks (run on workers; module-level so that workers import them by name)


def _held(data: Any) -> Any:
    """The task that holds data the client sent (see the module docstring)."""
    return data


def _run_unit(run: str, job: Job, shared: dict[str, np.ndarray | NpyFile], unit: Any,
              threads: Threads) -> Block | _Failed:
    """One unit of a job; the job is rebuilt with its shared inputs once per worker and run."""
    try:
        with _kernel_slot(threads):
            here = _JOBS.get(run)
            if here is None:
                here = job.with_shared({k: _matrix(v) for k, v in shared.items()})
                _JOBS[run] = here
                while len(_JOBS) > 2:  # this run's job and perhaps the previous run's
                    _JOBS.pop(next(iter(_JOBS)))
            return here.run(unit)
    except TripletLossError as e:
        return _Failed(e)


def _probe(x: NpyFile | None, dask_worker: Any = None) -> dict[str, Any]:
    """What the client needs to know of a worker: version, host, cores, and whether it reads x."""
    info: dict[str, Any] = {"version": __version__, "host": dask_worker.ip, "cores": _cores(),
                            "reads": None}
    if x is not None:
        try:
            x.load(f"worker {dask_worker.address}")
        except TripletLossError as e:
            info["reads"] = e.message
    return info


# ------------------------------------------------------------------------------------------------
# the client side


Task = tuple[str, Callable[..., Any], tuple[Any, ...]]


@dataclass
class Cluster:
    """A connected Dask client and what to call it in messages; runs jobs' blocks in order."""

    client: Client
    where: str
    window: int | None = None
    notes: list[str] = field(default_factory=list)

    def blocks(self, job: Job, *, threads: int | None = None, transfer: str = "auto",
               verbose: bool = False) -> Iterator[Block]:
        """job.blocks(), run on the workers: the same blocks in the same order."""
        shared = job.shared()
        sources: dict[str, Any] = {}
        share = None
        for name, x in shared.items():
            sources[name], share = self._setup(x, transfer, threads)
        if share is None:
            _, share = self._setup(None, "send", threads)
        self._note(verbose, job.title.split()[-1], next(iter(sources.values()), None))
        refs = {name: self._send(source, name) for name, source in sources.items()}
        run = uuid.uuid4().hex[:12]
        slim = self._send(job.without_shared(), "job")
        yield from self._in_order((f"unit-{i}", _run_unit, (run, slim, refs, unit, share))
                                  for i, unit in enumerate(job.units()))

    # ---- machinery -----------------------------------------------------------------------------

    def _slots(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def _setup(self, x: np.ndarray | None, transfer: str, threads: int | None = None
               ) -> tuple[np.ndarray | NpyFile | None, Threads]:
        """How x reaches the workers (its NpyFile, or x itself to send) and their threads."""
        if transfer not in TRANSFERS:
            raise UsageError(f"transfer must be one of {', '.join(TRANSFERS)}, got {transfer!r}")
        file = NpyFile.of(x) if x is not None and transfer != "send" else None
        if transfer == "path" and file is None:
            raise UsageError("transfer 'path' needs .npy embeddings used unchanged (not "
                             "converted or --normalize'd)")
        try:
            infos = self.client.run(_probe, file)
        except Exception as e:
            raise SchedulerError(f"workers cannot run triplet-loss ({type(e).__name__}: "
                                 f"{_first_line(e)}); install triplet-loss[dask] on them",
                                 self.where) from None
        for address, info in infos.items():
            if info["version"] != __version__:
                raise SchedulerError(f"worker {address} runs triplet-loss {info['version']}, "
                                     f"this is {__version__}", self.where)
        per_host = Counter(info["host"] for info in infos.values())
        cores = {}
        for info in infos.values():
            cores[info["host"]] = min(cores.get(info["host"], info["cores"]), info["cores"])
        share = Threads(threads, {h: max(1, cores[h] // n) for h, n in per_host.items()})
        unread = [info["reads"] for info in infos.values() if info["reads"]]
        if file is not None and unread:
            if transfer == "path":
                raise InputError(unread[0], file.path)
            self.notes.append(f"embeddings sent, not read by path: {file.path}: {unread[0]}")
            return x, share
        return (file if file is not None else x), share

    def _note(self, verbose: bool, command: str, source: object) -> None:
        if not verbose:
            return
        import sys

        how = ("by path" if isinstance(source, NpyFile) else
               "sent once" if source is not None else "sent block by block")
        workers = len(self.client.nthreads())
        extra = "".join(f"; {n}" for n in self.notes)
        print(f"triplet-loss: {command} on {self.where}: {workers} workers, {self._slots()} "
              f"threads, embeddings {how}{extra}", file=sys.stderr)

    def _send(self, data: Any, label: str) -> Any:
        """A future holding `data` (an NpyFile travels as it is: workers map the file)."""
        if isinstance(data, NpyFile):
            return data
        return self._submit(_held, (data,), f"{label}-{uuid.uuid4().hex[:12]}", retries=0)

    def _submit(self, function: Callable[..., Any], args: tuple[Any, ...], key: str,
                retries: int = RETRIES) -> Any:
        with warnings.catch_warnings():  # data inside tasks is the point (module docstring)
            warnings.filterwarnings("ignore", message="Sending large graph")
            return self.client.submit(function, *args, key=f"triplet-loss-{key}",
                                      retries=retries, pure=False)

    def _in_order(self, tasks: Iterable[Task]) -> Iterator[Any]:
        """Submit tasks at most `window` ahead of the oldest unfinished one; yield their results
        in submission order (a reorder buffer holds the early ones)."""
        dd = _distributed()
        tasks = iter(tasks)
        window = self.window or 2 * self._slots() + 2
        run = uuid.uuid4().hex[:12]
        done = dd.as_completed(loop=self.client.loop, with_results=True, raise_errors=False)
        position: dict[Any, int] = {}
        labels: dict[int, str] = {}
        early: dict[int, Any] = {}
        submitted = handed = 0
        try:
            while True:
                while submitted - handed < window:
                    task = next(tasks, None)
                    if task is None:
                        break
                    label, function, args = task
                    future = self._submit(function, args, f"{label}-{run}")
                    position[future] = submitted
                    labels[submitted] = label
                    done.add(future)
                    submitted += 1
                if not position:
                    return
                future, result = next(done)
                i = position.pop(future)
                if future.status != "finished":
                    if "scheduler-connection-lost" in str(result):
                        raise SchedulerError("lost the connection to the scheduler",
                                             self.where)
                    raise SchedulerError(f"task {labels[i]} failed ({type(result).__name__}: "
                                         f"{_first_line(result)})", self.where)
                if isinstance(result, _Failed):
                    raise result.error
                early[i] = result
                future.release()
                while handed in early:
                    yield early.pop(handed)
                    labels.pop(handed)
                    handed += 1
        finally:
            if position:
                with contextlib.suppress(Exception):
                    self.client.cancel(list(position), force=True)
