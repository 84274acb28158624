"""A Dask executor for any job (`--scheduler`, the extra triplet-loss[dask]): connect, ship the
job's shared inputs once, run one task per unit in an in-order window, rerun lost tasks.

It knows the job seam (jobs.py), not what a job computes, and imports dask only once it runs.
Sent data is held by a task, which the scheduler reruns when lost, not scattered (killing 1 of
2 workers mid-run: scatter(broadcast=True) failed within a few runs, held data 18 of 18 passed).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.util import find_spec
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .errors import InputError, TripletLossError, UsageError, first_line

if TYPE_CHECKING:
    from distributed import Client

    from .jobs import Block, Job

LOCAL = "local"
CONNECT_TIMEOUT = 10.0  # seconds to reach --scheduler, and again for its first worker
RETRIES = 2
WORKERLESS_SECONDS = 20.0  # a local cluster with no worker this long has lost them all
INSTALL = "pip install 'triplet-loss[dask]'"
TRANSFERS = ("auto", "path", "send")
NOT_DASK = "the dashboard's port instead of the scheduler's?"
TLS_SETTINGS = ("distributed.comm.tls.ca-file, .client.cert and .client.key in the Dask config "
                "or DASK_DISTRIBUTED__COMM__TLS__* variables")


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
    if scheduler != LOCAL and ":" not in scheduler:
        raise UsageError(f"--scheduler {scheduler}: give local, or the scheduler's address with "
                         "its port (tcp://host:8786)")
    port = scheduler.rsplit(":", 1)[-1]
    if scheduler != LOCAL and port.isdigit() and not 0 < int(port) < 65536:
        raise UsageError(f"--scheduler {scheduler}: port {port} is not a port (1 to 65535)")
    if find_spec("distributed") is None:
        raise TripletLossError(f"--scheduler needs Dask: {INSTALL}")


def local_workers(workers: int | None) -> tuple[int | None, str | None]:
    """--workers capped at the CPUs this process may use (a process each: more only take
    memory), and a note when capped."""
    cores = _cores()
    if workers is None or workers <= cores:
        return workers, None
    return cores, (f"--workers {workers}: {cores} CPU{'s' if cores > 1 else ''} available here "
                   f"(the CPUs this process may use); starting {cores}")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def _quiet_logs(quiet: bool) -> Iterator[None]:
    """Dask's loggers silenced while it runs (a run ends in our one line instead), then restored."""
    names = ["distributed", *(n for n in logging.root.manager.loggerDict
                              if n.startswith("distributed."))] if quiet else []
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
    """Local workers start with stderr on /dev/null (unless --verbose) and Ctrl-C held until they
    are up: a cluster interrupted half-built cannot be shut down."""
    held: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: held.append(1)) if main else None
    saved = None
    if quiet:
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
def connect(scheduler: str, workers: int | None = None, *, quiet: bool = False
            ) -> Iterator[Cluster]:
    """A Cluster on the scheduler at `scheduler` (tcp://host:8786), or on a LocalCluster of
    `workers` processes (1 thread each; default one per core) started for the run ('local')."""
    check_flags(scheduler, workers)
    try:
        import dask
        import distributed as dd
    except ImportError:
        raise TripletLossError(f"--scheduler needs Dask: {INSTALL}") from None
    timeout, where = CONNECT_TIMEOUT, f"scheduler {scheduler}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_logs(quiet))
        try:
            if scheduler == LOCAL:
                # Its scratch space goes with it (Dask's default leaves $TMPDIR/dask-scratch-space).
                scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="triplet-loss-"))
                stack.enter_context(dask.config.set({"temporary-directory": scratch}))
                with _starting_workers(quiet):
                    local = stack.enter_context(dd.LocalCluster(
                        n_workers=workers or _cores(), threads_per_worker=1, processes=True,
                        dashboard_address="127.0.0.1:0", worker_dashboard_address=None,
                        silence_logs=logging.CRITICAL if quiet else logging.WARNING))
                    client = stack.enter_context(dd.Client(local, timeout=timeout,
                                                           set_as_default=False))
                where = f"local cluster {local.scheduler_address}"
            else:
                _identify(scheduler, where)
                client = stack.enter_context(dd.Client(scheduler, timeout=timeout,
                                                       set_as_default=False))
        except TripletLossError:
            raise
        except (OSError, TimeoutError) as e:
            raise SchedulerError(f"cannot connect ({first_line(e)})", where) from None
        except Exception as e:  # e.g. an HTTP server on that port: the handshake makes no sense
            raise SchedulerError(f"cannot connect (no Dask scheduler answered: "
                                 f"{type(e).__name__})", where) from None
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise SchedulerError(f"no worker joined within {timeout:g} s", where) from None
        yield Cluster(client, where, local=scheduler == LOCAL)


def _identify(scheduler: str, where: str) -> None:
    """Ask the address who it is before a Client does: a Client that meets something else (the
    dashboard's HTTP port 8787 instead of 8786) fails oddly and then hangs 20 s in __del__."""
    import asyncio

    if scheduler.startswith(("tls://", "wss://")):  # a Client gets the settings from Dask's
        from distributed.security import Security  # config; without them it fails, then hangs

        if Security().get_connection_args("client")["ssl_context"] is None:
            raise SchedulerError(f"cannot connect ({scheduler.split(':', 1)[0]} needs Dask's "
                                 f"TLS settings: {TLS_SETTINGS})", where)
        return
    from distributed.comm import connect as open_comm

    async def identity() -> Any:
        comm = await open_comm(scheduler, timeout=CONNECT_TIMEOUT)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    wait = CONNECT_TIMEOUT + 2  # Dask's handshake waits for ever on an HTTP server
    try:
        reply = asyncio.run(asyncio.wait_for(identity(), wait))
    except TimeoutError:
        raise SchedulerError(f"cannot connect (no Dask handshake within {wait:g} s: {NOT_DASK})",
                             where) from None
    except (OSError, ValueError) as e:
        raise SchedulerError(f"cannot connect ({first_line(e)})", where) from None
    except Exception:
        raise SchedulerError(f"cannot connect (something answered that does not speak Dask: "
                             f"{NOT_DASK})", where) from None
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        raise SchedulerError(f"cannot connect (this is a Dask {kind or 'peer'}, not a "
                             "scheduler)", where)


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
        if worker is None:
            here = _this_worker()
            worker = "a worker" if here is None else f"worker {here.address}"
        with _LOADED_LOCK:
            return _cached(_LOADED, self, lambda: self._read(worker))

    def _read(self, worker: str) -> np.ndarray:
        from .readers import open_matrix

        hint = ("--scheduler reads .npy embeddings by path: keep them on storage every worker "
                "shares")
        try:
            x = open_matrix(self.path)
        except InputError as e:
            raise InputError(f"{e.message} on {worker} ({hint})", self.path) from None
        if (not isinstance(x, np.ndarray) or x.shape != self.shape or x.dtype.str != self.dtype
                or digest(x) != self.sha256):
            raise InputError(f"differs on {worker} from the client's copy ({hint})", self.path)
        return x


_LOADED: dict[NpyFile, np.ndarray] = {}
_LOADED_LOCK = threading.Lock()
_KERNEL_LOCK = threading.Lock()
_JOBS: dict[str, Any] = {}  # run -> its job with shared inputs, on this worker (under the lock)


def _cached(cache: dict[Any, Any], key: Any, make: Callable[[], Any]) -> Any:
    """cache[key], made on first use; only this run's entry and perhaps the previous one stay."""
    value = cache.get(key)
    if value is None:
        value = cache[key] = make()
        while len(cache) > 2:
            cache.pop(next(iter(cache)))
    return value


def _this_worker() -> Any:
    """The Dask worker running this task, or None outside one."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


@contextlib.contextmanager
def _kernel_slot(threads: int | None, by_host: dict[str, int]) -> Iterator[None]:
    """One unit's kernels at a time per process, on --threads, else the process's share of its
    host's cores (Dask sets BLAS to 1 thread): two at once would share those cores."""
    from ._jit import set_threads

    here = _this_worker()
    share = None if here is None else by_host.get(here.ip)
    with _KERNEL_LOCK:
        set_threads(max(1, threads or share or _cores()))
        yield


def _held(data: Any) -> Any:
    """The task that holds data the client sent (see the module docstring)."""
    return data


def _run_unit(run: str, job: Job, shared: dict[str, np.ndarray | NpyFile], unit: Any,
              threads: int | None, by_host: dict[str, int]) -> Block | TripletLossError:
    """One unit of a job, rebuilt with its shared inputs once per worker. A user error (a NaN
    row) is returned, not raised: Dask does not retry it, and the client raises it as itself."""
    try:
        with _kernel_slot(threads, by_host):
            here = _cached(_JOBS, run, lambda: job.with_shared(
                {k: v.load() if isinstance(v, NpyFile) else v for k, v in shared.items()}))
            return here.run(unit)
    except TripletLossError as e:
        return e


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


@dataclass
class Cluster:
    """A connected Dask client and what to call it in messages; runs jobs' blocks in order."""

    client: Client
    where: str
    local: bool = False  # a LocalCluster started for the run (its workers are not replaced)
    notes: list[str] = field(default_factory=list)

    def blocks(self, job: Job, *, threads: int | None = None, transfer: str = "auto",
               verbose: bool = False) -> Iterator[Block]:
        """job.blocks(), run on the workers: the same blocks in the same order."""
        if transfer not in TRANSFERS:
            raise UsageError(f"transfer must be one of {', '.join(TRANSFERS)}, got {transfer!r}")
        sources: dict[str, np.ndarray | NpyFile] = {}
        infos = None
        for name, x in job.shared().items():
            file = NpyFile.of(x) if transfer != "send" else None
            if transfer == "path" and file is None:
                raise UsageError("transfer 'path' needs .npy embeddings used unchanged (not "
                                 "converted or --normalize'd)")
            infos = self._ask_workers(file)
            unread = [info["reads"] for info in infos.values() if info["reads"]]
            if file is not None and unread:
                if transfer == "path":
                    raise InputError(unread[0], file.path)
                self.notes.append(f"embeddings sent, not read by path: {file.path}: {unread[0]}")
                file = None
            sources[name] = x if file is None else file
        cores: dict[str, list[int]] = {}
        for info in (infos or self._ask_workers(None)).values():
            cores.setdefault(info["host"], []).append(info["cores"])
        by_host = {host: max(1, min(c) // len(c)) for host, c in cores.items()}
        if verbose:
            source = next(iter(sources.values()), None)
            how = ("by path" if isinstance(source, NpyFile) else
                   "sent once" if source is not None else "sent block by block")
            print(f"triplet-loss: {job.title.split()[-1]} on {self.where}: "
                  f"{len(self.client.nthreads())} workers, {self._slots()} threads, "
                  f"embeddings {how}{''.join(f'; {n}' for n in self.notes)}", file=sys.stderr)
        run = uuid.uuid4().hex[:12]
        refs = {name: self._send(source, f"{name}-{run}") for name, source in sources.items()}
        slim = self._send(job.without_shared(), f"job-{run}")
        yield from self._in_order((run, slim, refs, unit, threads, by_host) for unit in job.units())

    def _slots(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def _ask_workers(self, file: NpyFile | None) -> dict[str, dict[str, Any]]:
        """Every worker's _probe(file), refused when a worker runs another version."""
        try:
            infos = self.client.run(_probe, file)
        except Exception as e:
            raise SchedulerError(f"workers cannot run triplet-loss ({type(e).__name__}: "
                                 f"{first_line(e)}); install triplet-loss[dask] on them",
                                 self.where) from None
        for address, info in infos.items():
            if info["version"] != __version__:
                raise SchedulerError(f"worker {address} runs triplet-loss {info['version']}, "
                                     f"this is {__version__}", self.where)
        return infos

    def _send(self, data: Any, key: str) -> Any:
        """A future holding `data` (an NpyFile travels as it is: workers map the file)."""
        return data if isinstance(data, NpyFile) else self._submit(_held, (data,), key, retries=0)

    def _submit(self, function: Callable[..., Any], args: tuple[Any, ...], key: str,
                retries: int = RETRIES) -> Any:
        with warnings.catch_warnings():  # data inside tasks is the point (module docstring)
            warnings.filterwarnings("ignore", message="Sending large graph")
            return self.client.submit(function, *args, key=f"triplet-loss-{key}",
                                      retries=retries, pure=False)

    def _next(self, done: Any) -> tuple[Any, Any]:
        """The next finished unit. A local cluster's workers that all exited (a SIGINT to the
        process group that the run itself ignores, in a background job) are not replaced:
        fail then, rather than wait for ever."""
        checked, workerless = 0.0, None
        while self.local and not done.has_ready():
            now = time.monotonic()
            if now - checked >= 1.0:
                checked = now
                workerless = None if self.client.nthreads() else workerless or now
                if workerless is not None and now - workerless >= WORKERLESS_SECONDS:
                    raise SchedulerError(f"every worker has exited (none for "
                                         f"{WORKERLESS_SECONDS:g} s); no output written",
                                         self.where)
            time.sleep(0.01)
        return next(done)

    def _in_order(self, tasks: Iterable[tuple[Any, ...]]) -> Iterator[Block]:
        """_run_unit on each tuple of arguments, at most a window (2 per worker thread, + 2)
        ahead of the oldest block not handed on: blocks leave in order, memory holds a window."""
        from distributed import as_completed

        tasks = iter(tasks)
        window = 2 * self._slots() + 2
        run = uuid.uuid4().hex[:12]
        done = as_completed(loop=self.client.loop, with_results=True, raise_errors=False)
        position: dict[Any, int] = {}
        early: dict[int, Any] = {}
        submitted = handed = 0
        try:
            while True:
                for args in islice(tasks, window - (submitted - handed)):
                    future = self._submit(_run_unit, args, f"unit-{submitted}-{run}")
                    position[future] = submitted
                    done.add(future)
                    submitted += 1
                if not position:
                    return
                future, result = self._next(done)
                i = position.pop(future)
                if isinstance(result, TripletLossError):
                    raise result
                if isinstance(result, BaseException):  # judged by the result in hand: the future's
                    # status may have changed since (its worker died after handing it over)
                    if "scheduler-connection-lost" in str(result):
                        raise SchedulerError("lost the connection to the scheduler", self.where)
                    raise SchedulerError(f"task unit-{i} failed ({type(result).__name__}: "
                                         f"{first_line(result)})", self.where)
                early[i] = result
                future.release()
                while handed in early:
                    yield early.pop(handed)
                    handed += 1
        finally:
            if position:
                with contextlib.suppress(Exception):
                    self.client.cancel(list(position), force=True)
