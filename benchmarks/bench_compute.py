"""How fast `triplet-loss compute` is, next to what reading the data costs. Run by hand, not in CI.

    python benchmarks/bench_compute.py             # 1,000,000 x 128 and 200,000 x 768 (3.3 GB)
    python benchmarks/bench_compute.py --quick     # 100,000 x 128 and 20,000 x 768
    python benchmarks/bench_compute.py --data DIR  # keep the generated .npy files in DIR for reuse
    python benchmarks/bench_compute.py --in-memory # only the in-memory section (1,000,000 x 128)

On a CPU with AVX-512, the run as an AVX2 machine gives it: NUMBA_CPU_NAME=haswell
OPENBLAS_CORETYPE=Haswell NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR".

What it prints, with the targets of the issue:
  in memory  1,000,000 x 128 float32 arrays in memory, one run against a FLOOR (a jitted parallel
           pass that only reads a, p and n), each as the median over rounds of its time over
           the floor's just before and after it (apart for each memory speed, where the floor
           took two distinct times in the run): the kernel (target <= 1.1x), the summary
           statistics of its rows, compute_loss with its summary (target <= 1.3x), and, when
           importable, PyTorch's triplet_margin_loss (float32, same threads) and a numpy
           float64 reference;
  kernel   losses.aligned_losses as compute.py calls it, best of --repeats after a warm-up, against
           a FLOOR (one parallel numba pass that only reads the three arrays, target kernel <=
           1.1x floor) and a numpy float64 reference (expected 6-12x slower than the kernel);
  start-up `triplet-loss --help` (< 0.3 s, imports neither numba nor pyarrow) and a second
           `compute` process that loads the kernels from numba's cache instead of compiling;
  end to end the CLI on the 1,000,000 x 128 files against a Python process that only
           memory-maps and sums them (target <= 2x);
  read-only the installed package copied to a read-only folder still works, with numba's cache
           in ~/.cache/triplet-loss/numba-<version>.
The machine is often shared: the load average is printed before and after, every timing is a
best of repeats (an upper bound of what an idle machine gives), and the kernel section also shows
CPU seconds per thread, which other processes on the same cores disturb less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numba
import numpy as np
from numpy.lib.format import open_memmap

from triplet_cli._jit import in_parallel, threads_in_use

ROLES = ("anchors", "positives", "negatives")
FULL_SIZES = ((1_000_000, 128), (200_000, 768))
QUICK_SIZES = ((100_000, 128), (20_000, 768))
SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"
GENERATE_ROWS = 65_536  # rows generated per step: 3 x 65,536 x 768 x 4 B = 600 MB at most
NUMPY_CHUNK_BYTES = 8 << 20  # float64 rows per numpy step: 8 MB per temporary array
HEAVY_MODULES = ("numba", "pyarrow")
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "NUMBA_CPU_NAME",
            "NPY_DISABLE_CPU_FEATURES")
IN_MEMORY = (1_000_000, 128)
T = TypeVar("T")


@dataclass
class Check:
    """One figure against its target, for the summary at the end."""

    name: str
    shown: str
    target: str
    ok: bool

    def line(self) -> str:
        verdict = "ok" if self.ok else "MISSED"
        return f"  {self.name:<50} {self.shown:>10}   {self.target:<15} {verdict}"


# ------------------------------------------------------------------------------------------------
# data


def make_data(folder: Path, n: int, d: int, seed: int) -> dict[str, Path]:
    """Seeded float32 (n, d) anchors, positives and negatives as .npy; kept when already there.

    Rows are N(0, 1/d) so distances are O(1); positives are anchors plus 0.8x that noise, so
    d_ap ~ 0.8, d_an ~ 1.4 and nearly every hinge loss (margin 1) is active: no shortcut.
    """
    paths = {role: folder / f"{role}_{n}x{d}_seed{seed}.npy" for role in ROLES}
    if all(p.exists() and np.load(p, mmap_mode="r").shape == (n, d) for p in paths.values()):
        return paths
    rng = np.random.default_rng([seed, n, d])
    scale = np.float32(1.0 / np.sqrt(d))
    arrays = {role: open_memmap(p, mode="w+", dtype=np.float32, shape=(n, d))
              for role, p in paths.items()}
    for start in range(0, n, GENERATE_ROWS):
        rows = min(GENERATE_ROWS, n - start)
        block = slice(start, start + rows)
        anchors = rng.standard_normal((rows, d), dtype=np.float32) * scale
        arrays["anchors"][block] = anchors
        noise = rng.standard_normal((rows, d), dtype=np.float32) * (np.float32(0.8) * scale)
        arrays["positives"][block] = anchors + noise
        arrays["negatives"][block] = rng.standard_normal((rows, d), dtype=np.float32) * scale
    for a in arrays.values():
        a.flush()
    del arrays
    return paths


# ------------------------------------------------------------------------------------------------
# timing helpers


@dataclass
class Timing:
    """Best wall-clock seconds and best CPU seconds per thread of a run (each over repeats).

    CPU time counts only while our threads run, so it is the steadier figure when other
    processes share the cores; wall time is what a user waits.
    """

    wall: float = float("inf")
    cpu: float = float("inf")

    def add(self, wall: float, cpu: float) -> None:
        self.wall = min(self.wall, wall)
        self.cpu = min(self.cpu, cpu)


@contextmanager
def stopwatch(timing: Timing, threads: int = 1) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    timing.add(time.perf_counter() - wall, (time.process_time() - cpu) / threads)


def interleaved_best(runs: dict[str, tuple[Callable[[], object], int]],
                     repeats: int) -> dict[str, Timing]:
    """Best times of each (run, threads): one warm-up each, then `repeats` rounds taking turns,
    so a burst of load from other processes hits every contender alike."""
    for run, _ in runs.values():
        run()
    best = {name: Timing() for name in runs}
    for _ in range(repeats):
        for name, (run, threads) in runs.items():
            with stopwatch(best[name], threads):
                run()
    return best


def floor_ratios(floor: Callable[[], object], runs: dict[str, Callable[[], object]],
                 repeats: int) -> dict[str, list[tuple[float, float, float]]]:
    """Each run's rounds as (floor before, floor after, ratio): its time over the mean of the
    floor runs just before and just after it, `repeats` rounds.

    Ratios of best times mislead where the memory speed changes during a run: on this 2-vCPU
    VM the floor reads at about 35 GB/s or about 60 GB/s from one second to the next (two
    threads as fast as one, or twice as fast: as if the host moved the two vCPUs between one
    physical core and two), so a best floor from one speed and a best run from the other give
    a ratio of neither. Neighbouring runs mostly share their speed."""
    floor()
    for run in runs.values():
        run()
    rounds: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
    before = _timed(floor)
    for _ in range(repeats):
        for name, run in runs.items():
            took = _timed(run)
            after = _timed(floor)
            rounds[name].append((before, after, took / ((before + after) / 2)))
            before = after
    return rounds


def memory_speeds(floors: list[float]) -> list[tuple[float, float]]:
    """The floor's ranges: one, or two where the floors fall into two groups, the machine's two
    memory speeds (the best split of the sorted log times into two, kept when each side holds
    a fifth of them and their medians differ by more than 1.3x). A round counts at a speed
    when the floors before and after it both do."""
    ordered = sorted(floors)
    logs = np.log(ordered)

    def spread(cut: int) -> float:
        return float(logs[:cut].var() * cut + logs[cut:].var() * (len(logs) - cut))

    fifth = max(1, len(ordered) // 5)
    cuts = range(fifth, len(ordered) - fifth + 1)
    if cuts:
        cut = min(cuts, key=spread)
        if np.median(ordered[cut:]) > 1.3 * np.median(ordered[:cut]):
            return [(ordered[0], ordered[cut - 1]), (ordered[cut], ordered[-1])]
    return [(ordered[0], ordered[-1])]


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def run_process(argv: Sequence[str], env: dict[str, str] | None = None,
                check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return elapsed, done


def best_process(argv: Sequence[str], repeats: int, env: dict[str, str] | None = None) -> float:
    run_process(argv, env)  # warm-up: page cache, numba cache, .pyc files
    return min(run_process(argv, env)[0] for _ in range(repeats))


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def cli_path() -> str:
    """The `triplet-loss` console script next to this interpreter (else on PATH)."""
    beside = Path(sys.executable).parent / "triplet-loss"
    found = str(beside) if beside.exists() else shutil.which("triplet-loss")
    if not found:
        sys.exit("bench_compute: no triplet-loss script; install the package first")
    return found


# ------------------------------------------------------------------------------------------------
# kernel, floor and numpy reference


def read_floor(a: np.ndarray, p: np.ndarray, n: np.ndarray, out: np.ndarray) -> None:
    """out[i] = sum of row i of a, p and n in float64: every byte read once, nothing else, on
    the threads the kernels run on (in_parallel)."""
    in_parallel(_read_rows, a.shape[0], a, p, n, out)


@numba.njit(nogil=True, cache=False, fastmath={"reassoc"})
def _read_rows(lo: int, hi: int, a: np.ndarray, p: np.ndarray, n: np.ndarray,
               out: np.ndarray) -> None:
    """read_floor's rows lo..hi. fastmath "reassoc" only (no nnan/ninf): it lets LLVM vectorise
    the sum, so this pass is bound by memory, not by one add chain's latency (that would
    flatter the kernel)."""
    for i in range(lo, hi):
        s = 0.0
        for j in range(a.shape[1]):
            s += np.float64(a[i, j]) + np.float64(p[i, j]) + np.float64(n[i, j])
        out[i] = s


def numpy_reference(a: np.ndarray, p: np.ndarray, n: np.ndarray,
                    margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Euclidean hinge triplet loss in plain numpy float64, in row chunks to bound memory."""
    rows = max(1, NUMPY_CHUNK_BYTES // (8 * a.shape[1]))
    d_ap, d_an = np.empty(a.shape[0]), np.empty(a.shape[0])
    for start in range(0, a.shape[0], rows):
        block = slice(start, start + rows)
        x = a[block].astype(np.float64)
        d_ap[block] = np.sqrt(((x - p[block].astype(np.float64)) ** 2).sum(1))
        d_an[block] = np.sqrt(((x - n[block].astype(np.float64)) ** 2).sum(1))
    return d_ap, d_an, np.maximum(d_ap - d_an + margin, 0.0)


class KernelTimer:
    """Runs ComputeJob.blocks() with losses.aligned_losses wrapped in a stopwatch, so the
    kernel is timed with exactly the arguments compute.py gives it."""

    def __init__(self, paths: dict[str, Path]) -> None:
        from triplet_cli import losses
        from triplet_cli.compute import prepare_compute

        self.job = prepare_compute(*(str(paths[r]) for r in ROLES))
        self.losses = losses
        self.kernel = Timing()
        self.outputs: tuple[np.ndarray, ...] = ()

    @contextmanager
    def _wrapped(self, spent: list[float]) -> Iterator[None]:
        kernel = self.losses.aligned_losses

        def timed(*args: object) -> None:
            wall, cpu = time.perf_counter(), time.process_time()
            kernel(*args)
            spent[0] += time.perf_counter() - wall
            spent[1] += (time.process_time() - cpu) / threads_in_use()

        self.losses.aligned_losses = timed
        try:
            yield
        finally:
            self.losses.aligned_losses = kernel

    def run(self) -> None:
        """One pass of the job's blocks(); the time inside the kernel goes into self.kernel."""
        spent = [0.0, 0.0]
        with self._wrapped(spent):
            blocks = list(self.job.blocks())
        self.kernel.add(*spent)
        self.outputs = tuple(np.concatenate([b.columns[k] for b in blocks])
                             for k in ("d_ap", "d_an", "loss"))


def bench_kernel(paths: dict[str, Path], repeats: int) -> dict[str, float]:
    """Kernel, floor and numpy timings on one data set, printed; returns their ratios."""
    timer = KernelTimer(paths)
    a, p, n = (timer.job.arrays[r] for r in ROLES)
    margin = timer.job.params.loss.margin
    floor_out = np.empty(a.shape[0])
    threads = threads_in_use()
    times = interleaved_best({
        "job": (timer.run, threads),
        "floor": (lambda: read_floor(a, p, n, floor_out), threads),
        "numpy": (lambda: numpy_reference(a, p, n, margin), 1),
    }, repeats)
    kernel, floor, numpy = timer.kernel, times["floor"], times["numpy"]
    ref = numpy_reference(a, p, n, margin)
    # Relative to each column's scale: a loss near 0 is d_ap - d_an + margin after cancellation.
    worst = max(float(np.max(np.abs(k - r)) / np.max(np.abs(r)))
                for k, r in zip(timer.outputs, ref, strict=True))
    gb = (a.nbytes + p.nbytes + n.nbytes) / 1e9
    print(f"  rows x d            {a.shape[0]:,} x {a.shape[1]} float32, {gb:.2f} GB read per "
          f"pass, {threads} kernel threads; best of {repeats}")
    around = (times["job"].wall - kernel.wall) * 1e3
    print("                      wall s     GB/s   cpu s/thread")
    for name, t, note in (
            ("kernel", kernel, f"job.blocks() around it: +{around:.0f} ms"),
            ("floor (read only)", floor, ""),
            ("numpy float64 ref", numpy, f"1 thread, {NUMPY_CHUNK_BYTES >> 20} MB chunks")):
        print(f"  {name:<18} {t.wall:8.4f} {gb / t.wall:8.1f} {t.cpu:10.4f}    {note}")
    print(f"  kernel / floor     {kernel.wall / floor.wall:8.2f}    target <= 1.1   "
          f"(by cpu time: {kernel.cpu / floor.cpu:.2f})")
    print(f"  numpy / kernel     {numpy.wall / kernel.wall:8.2f}    expected 6-12")
    print(f"  kernel vs numpy     max |difference| {worst:.1e} of the largest d_ap, d_an, loss")
    return {"kernel/floor": kernel.wall / floor.wall, "numpy/kernel": numpy.wall / kernel.wall}


def in_memory_arrays(n: int, d: int, seed: int) -> tuple[np.ndarray, ...]:
    """make_data's distribution, generated straight into memory (no files, no page cache)."""
    rng = np.random.default_rng([seed, n, d])
    scale = np.float32(1.0 / np.sqrt(d))
    a = rng.standard_normal((n, d), dtype=np.float32) * scale
    p = a + rng.standard_normal((n, d), dtype=np.float32) * (np.float32(0.8) * scale)
    return a, p, rng.standard_normal((n, d), dtype=np.float32) * scale


def torch_loss() -> Callable[..., object] | None:
    """PyTorch's triplet_margin_loss on the same float32 arrays (reduction none), or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads_in_use())
    tensors: dict[int, object] = {}

    def run(a: np.ndarray, p: np.ndarray, n: np.ndarray) -> object:
        key = id(a)
        if key not in tensors:  # from_numpy shares the memory: no copy in the timing
            tensors[key] = tuple(torch.from_numpy(x) for x in (a, p, n))
        with torch.no_grad():
            return torch.nn.functional.triplet_margin_loss(*tensors[key], margin=1.0,
                                                           reduction="none")
    return run


def bench_in_memory(repeats: int, seed: int, cut: float | None = None) -> dict[str, float]:
    """The issue's measurement: kernel, summary and compute_loss on in-memory arrays, each as a
    ratio to the read floor measured in the same run (interleaved, best of repeats); rounds apart
    for each memory speed, told apart by the floor's time (`cut` seconds, or found)."""
    from triplet_cli import compute_loss, losses
    from triplet_cli.compute import prepare_compute
    from triplet_cli.reductions import TripletStats

    n, d = IN_MEMORY
    a, p, neg = in_memory_arrays(n, d, seed)
    job = prepare_compute(a, p, neg)
    metric, rule = job.params.distance.kernel(), job.params.loss.rule()
    rows = tuple(np.empty(n) for _ in range(3))
    floor_out = np.empty(n)

    def kernel() -> None:
        losses.aligned_losses(a, p, neg, None, metric, rule, rows)

    def summary() -> None:  # as the library sums a run: blocks of a unit's rows
        stats = TripletStats(job.params.loss.margin, job.params.loss.soft_margin)
        step = job.rows_per_unit()
        for start in range(0, n, step):
            stats.add(*(r[start:start + step] for r in rows))
        stats.summary(job.params.reduction)
        stats.warnings()

    threads = threads_in_use()
    runs: dict[str, Callable[[], object]] = {"kernel": kernel, "summary": summary,
                                             "compute_loss": lambda: compute_loss(a, p, neg)}
    peer = torch_loss()
    if peer is not None:
        runs["torch"] = lambda: peer(a, p, neg)
    runs["numpy"] = lambda: numpy_reference(a, p, neg, 1.0)
    rounds = floor_ratios(lambda: read_floor(a, p, neg, floor_out), runs, repeats)
    gb = 3 * a.nbytes / 1e9
    floors = sorted(f for r in rounds.values() for before, after, _ in r for f in (before, after))
    speeds = memory_speeds(floors) if cut is None else [
        (low, high) for low, high in ((floors[0], min(cut, floors[-1])), (cut, floors[-1]))
        if low < high]
    print(f"  {n:,} x {d} float32 in memory, {gb:.2f} GB read per pass, {threads} numba "
          f"threads; {repeats} rounds: the best time, and the median over rounds of the time "
          "over the floor's just before and after")
    notes = {"kernel": "target <= 1.1x",
             "summary": "statistics of the kernel's rows",
             "compute_loss": "kernel + summary + columns; target <= 1.3x",
             "torch": "F.triplet_margin_loss, reduction none",
             "numpy": "float64, 1 thread, 8 MB chunks"}
    ratios: dict[str, float] = {}
    for low, high in speeds:
        speed = f"floor {low * 1e3:.1f}-{high * 1e3:.1f} ms"
        print(f"  {speed}{' (one of two memory speeds in this run)' if len(speeds) > 1 else ''}")
        for name, done in rounds.items():
            here = [(b, a, r) for b, a, r in done if low <= min(b, a) and max(b, a) <= high]
            if not here:
                print(f"  {name:<13} no round at this speed")
                continue
            ratio = float(np.median([r for _, _, r in here]))
            best = min((b + a) / 2 * r for b, a, r in here)
            ratios[f"{name}, {speed}"] = ratio
            print(f"  {name:<13} {best * 1e3:8.1f} ms {ratio:7.2f}x   {notes[name]}"
                  f" ({len(here)} rounds)")
    if peer is None:
        print("  torch         not importable: skipped")
    return ratios


def cpu_features() -> str:
    """What the kernels compile for (numba's CPU name) and what numpy dispatches to."""
    import llvmlite.binding as llvm
    from numpy._core._multiarray_umath import __cpu_features__ as npy

    name = os.environ.get("NUMBA_CPU_NAME") or llvm.get_host_cpu_name()
    info = Path("/proc/cpuinfo")
    avx512 = "avx512f" in info.read_text() if info.exists() else "?"
    used = [f for f in ("AVX2", "AVX512F", "AVX512_SKX", "AVX512_ICL") if npy.get(f)]
    return (f"numba compiles for {name}; this CPU has AVX-512: {avx512}; numpy dispatches to "
            f"{', '.join(used) or 'baseline'}")


# ------------------------------------------------------------------------------------------------
# environment


def print_environment() -> None:
    from threadpoolctl import threadpool_info

    print(f"  python {sys.version.split()[0]}, numpy {np.__version__}, numba {numba.__version__}"
          f", {os.cpu_count()} cores")
    print(f"  {cpu_features()}")
    print(f"  kernels: {threads_in_use()} threads (NUMBA_NUM_THREADS "
          f"{numba.config.NUMBA_NUM_THREADS}), started per call by triplet_cli._jit.in_parallel")
    for pool in threadpool_info():
        extra = ", ".join(f"{k} {pool[k]}" for k in ("threading_layer", "architecture")
                          if pool.get(k))
        print(f"  threadpool: {pool['user_api']} {pool['internal_api']} {pool.get('version')}, "
              f"{pool['num_threads']} threads{', ' + extra if extra else ''} "
              f"({Path(pool['filepath']).name})")
    set_vars = [f"{k}={os.environ[k]}" for k in BLAS_ENV if k in os.environ]
    print(f"  environment: {', '.join(set_vars) if set_vars else 'none of ' + ', '.join(BLAS_ENV)}"
          " set")


# ------------------------------------------------------------------------------------------------
# start-up


def imported_modules(argv: Sequence[str]) -> tuple[set[str], list[tuple[int, str]]]:
    """Modules a Python command imports (python -X importtime), and the slowest top-level ones."""
    _, done = run_process([sys.executable, "-X", "importtime", *argv], check=False)
    modules: set[str] = set()
    top: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            modules.add(m.group(3))
            if len(m.group(2)) == 1:
                top.append((int(m.group(1)), m.group(3)))
    return modules, sorted(top, reverse=True)[:5]


def bench_help(repeats: int) -> tuple[float, bool]:
    """Wall time of `triplet-loss --help` and whether it stays clear of numba and pyarrow."""
    cli = cli_path()
    seconds = best_process([cli, "--help"], repeats)
    help_code = ("import sys; from triplet_cli.cli import main; "
                 "sys.argv = ['triplet-loss', '--help']; main()")
    modules, top = imported_modules(["-c", help_code])
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY_MODULES)
    print(f"  triplet-loss --help      {seconds:7.3f} s  (best of {repeats}; target < 0.3 s)")
    print(f"  imports numba/pyarrow    {'YES: ' + ', '.join(heavy[:5]) if heavy else 'no'}"
          f"  ({len(modules)} modules, python -X importtime)")
    print("  slowest top-level imports " + ", ".join(f"{name} {us / 1e3:.0f} ms"
                                                   for us, name in top))
    return seconds, not heavy


def bench_second_process(scratch: Path) -> tuple[float, float]:
    """`compute` on sample_data with an empty numba cache, then again in a new process.

    Returns the seconds of --verbose's "kernels and output" phase of both runs: the first
    compiles the kernels, the second only loads them from the cache.
    """
    cli = cli_path()
    cache = scratch / "numba-cache"
    cache.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    argv = [cli, "compute", *(x for r in ROLES for x in (f"--{r}", str(SAMPLE_DATA / f"{r}.npy"))),
            "--format", "json", "--verbose"]
    walls, phases, losses = [], [], []
    for label in ("first (empty cache)", "second (cached)"):
        seconds, done = run_process(argv, env)
        phase = re.search(r"kernels and output ([\d.]+) s", done.stderr)
        walls.append(seconds)
        phases.append(float(phase.group(1)) if phase else float("nan"))
        losses.append(json.loads(done.stdout)["loss"])
        print(f"  compute sample_data, {label:<20} {seconds:7.3f} s wall, "
              f"{phases[-1]:.3f} s kernels and output (--verbose)")
    cached = sum(1 for _ in cache.rglob("*.nbi"))
    same = "same loss" if losses[0] == losses[1] else "DIFFERENT losses"
    print(f"  the second process saves {walls[0] - walls[1]:.3f} s of JIT compile "
          f"({cached} cache index files in the empty NUMBA_CACHE_DIR; {same})")
    return phases[0], phases[1]


# ------------------------------------------------------------------------------------------------
# end to end


def bench_end_to_end(paths: dict[str, Path], repeats: int) -> float:
    """The CLI on the .npy files against a process that only memory-maps and sums them."""
    files = [str(paths[r]) for r in ROLES]
    cli = [cli_path(), "compute", *(x for r in ROLES for x in (f"--{r}", str(paths[r]))),
           "--format", "json"]
    minimal = [sys.executable, "-c",
               "import numpy as np; [np.load(f, mmap_mode='r').sum(dtype=np.float64) for f in "
               f"{files!r}]"]
    cli_s = best_process(cli, repeats)
    minimal_s = best_process(minimal, repeats)
    n, d = np.load(files[0], mmap_mode="r").shape
    print(f"  triplet-loss compute --format json, {n:,} x {d}   {cli_s:7.3f} s")
    print(f"  python: np.load(mmap_mode='r').sum(float64) x 3   {minimal_s:7.3f} s")
    print(f"  CLI / minimal process                              {cli_s / minimal_s:7.2f}  "
          f"target <= 2")
    return cli_s / minimal_s


# ------------------------------------------------------------------------------------------------
# read-only install


def _chmod_tree(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        write = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~write)


def check_read_only_install(scratch: Path) -> bool:
    """Copy the installed package to a read-only folder and use it with HOME in a temp dir.

    chmod does not stop root, so as root the copy is also bind-mounted read-only in a private
    mount namespace (unshare -m).
    """
    import triplet_cli

    site = scratch / "read-only-site"
    package = site / "triplet_cli"
    home = scratch / "home"
    shutil.copytree(Path(triplet_cli.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    home.mkdir()
    _chmod_tree(site, writable=False)
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(site))
    code = ("import json, os, sys, triplet_cli; from triplet_cli import compute_loss; "
            "r = compute_loss(*sys.argv[1:4]); "
            "print(json.dumps({'file': triplet_cli.__file__, 'loss': r.value, "
            "'cache': os.environ.get('NUMBA_CACHE_DIR'), "
            "'writable': os.access(os.path.dirname(triplet_cli.__file__), os.W_OK)}))")
    # -P: no working directory on sys.path, so the copy is imported even when the benchmark
    # runs from the project root (which holds the package itself)
    argv = [sys.executable, "-P", "-c", code, *(str(SAMPLE_DATA / f"{r}.npy") for r in ROLES)]
    how = "chmod -R a-w"
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            print("  SKIPPED: running as root (chmod does not bind root) and no unshare")
            return False
        mount = (f'mount --bind "{site}" "{site}" && mount -o remount,bind,ro "{site}" "{site}"'
                 ' && exec "$@"')
        argv = ["unshare", "-m", "sh", "-c", mount, "sh", *argv]
        how += " + read-only bind mount (root)"
    expected = home / ".cache" / "triplet-loss" / f"numba-{triplet_cli.__version__}"
    ok = True
    try:
        for label in ("first run (compiles)", "second run (cached)"):
            seconds, done = run_process(argv, env, check=False)
            if done.returncode != 0:
                print(f"  {label}: FAILED, exit {done.returncode}: {done.stderr.strip()[-500:]}")
                return False
            info = json.loads(done.stdout)
            ok &= (info["file"].startswith(str(package)) and not info["writable"]
                   and info["cache"] == str(expected))
            print(f"  {label:<22} {seconds:7.3f} s  loss {info['loss']:.6f}, package writable: "
                  f"{info['writable']}, NUMBA_CACHE_DIR {info['cache']}")
        cached = sum(1 for _ in expected.rglob("*.nbi")) if expected.exists() else 0
        leaked = any(package.rglob("__pycache__"))
        ok &= cached > 0 and not leaked
        print(f"  {how}; package from the copy, {cached} cache index files under "
              f"~/.cache/triplet-loss, nothing written into the package: {not leaked}"
              f"  -> {'ok' if ok else 'FAILED'}")
    finally:
        _chmod_tree(site, writable=True)
    return ok


# ------------------------------------------------------------------------------------------------


def guarded(section: Callable[..., T], *args: object) -> T | None:
    """Run one section; a failing CLI process is printed and fails its check, not the run."""
    try:
        return section(*args)
    except RuntimeError as e:
        print(f"  FAILED: {str(e).strip().splitlines()[-1]}\n  ({str(e).splitlines()[0]})")
        return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="100,000 x 128 and 20,000 x 768 instead of 10x that")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after the warm-up")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder for the generated .npy files, kept and reused "
                             "(default: a temporary folder, deleted afterwards)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--in-memory", action="store_true",
                        help="only the in-memory section (kernel, summary, compute_loss, peers)")
    parser.add_argument("--speed-cut", type=float, default=None, metavar="MS",
                        help="in memory: report rounds whose floors took under MS ms apart from "
                             "the rest (default: two speeds where the floors form two groups)")
    return parser.parse_args(argv)


def in_memory_checks(repeats: int, seed: int, cut_ms: float | None) -> list[Check]:
    print("in memory")
    r = bench_in_memory(repeats, seed, None if cut_ms is None else cut_ms / 1e3)
    return [Check(f"in memory: {name}", f"{ratio:.2f}x", f"<= {limit}x", ratio <= limit)
            for name, ratio in r.items() for run, limit in (("kernel", 1.1), ("compute_loss", 1.3))
            if name.startswith(f"{run},")]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    print(f"bench_compute: {load_average()}")
    if args.in_memory:
        print("environment")
        print_environment()
        print()
        checks = in_memory_checks(args.repeats, args.seed, args.speed_cut)
        print(f"\nsummary ({load_average()})")
        for check in checks:
            print(check.line())
        return 0 if all(c.ok for c in checks) else 1
    with tempfile.TemporaryDirectory(prefix="bench_compute-") as tmp:
        scratch = Path(tmp)
        folder = args.data or scratch / "data"
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        data = [make_data(folder, n, d, args.seed) for n, d in sizes]
        print(f"data: {folder} ({time.perf_counter() - started:.1f} s, seed {args.seed})\n")

        checks = in_memory_checks(args.repeats, args.seed, args.speed_cut)
        print()
        for paths in data:
            n, d = np.load(paths["anchors"], mmap_mode="r").shape
            print(f"kernel, {n:,} x {d}")
            r = bench_kernel(paths, args.repeats)
            checks += [Check(f"kernel / floor, d = {d}", f"{r['kernel/floor']:.2f}x", "<= 1.1x",
                             r["kernel/floor"] <= 1.1),
                       Check(f"numpy / kernel, d = {d}", f"{r['numpy/kernel']:.1f}x",
                             "6-12x expected", 6 <= r["numpy/kernel"] <= 12)]
            print()

        print("environment")
        print_environment()

        print("\nstart-up")
        help_s, light = bench_help(args.repeats)
        checks += [Check("triplet-loss --help", f"{help_s:.3f} s", "< 0.3 s", help_s < 0.3),
                   Check("--help without numba and pyarrow", "yes" if light else "NO", "yes",
                         light)]
        phases = guarded(bench_second_process, scratch)
        checks.append(Check("2nd process: kernels and output", "failed", "no JIT", False)
                      if phases is None else
                      Check("2nd process: kernels and output", f"{phases[1]:.3f} s",
                            f"<< {phases[0]:.2f} s", phases[1] < 0.1 * phases[0]))

        print("\nend to end")
        ratio = guarded(bench_end_to_end, data[0], args.repeats)
        checks.append(Check("CLI / minimal mmap-and-sum process", "failed", "<= 2x", False)
                      if ratio is None else
                      Check("CLI / minimal mmap-and-sum process", f"{ratio:.2f}x", "<= 2x",
                            ratio <= 2))

        print("\nread-only install")
        ok = bool(guarded(check_read_only_install, scratch))
        checks.append(Check("read-only install works", "yes" if ok else "NO", "yes", ok))

    print(f"\nsummary ({load_average()})")
    for check in checks:
        print(check.line())
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
