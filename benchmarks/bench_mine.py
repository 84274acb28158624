"""Mining speed and memory, measured in one run (by hand, not in CI).

    python benchmarks/bench_mine.py                      # N = 32,768 ratios, N = 100,000 processes
    python benchmarks/bench_mine.py --sizes 20000 --large 0          # ratios only
    python benchmarks/bench_mine.py --d 1536 --per-class 20 --sizes 10000 --large 0  # OpenAI-size
    NUMBA_CPU_NAME=haswell OPENBLAS_CORETYPE=Haswell \\
        NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR" python benchmarks/bench_mine.py

Data, both kinds in every run: L2-normalised float32 embeddings, about 50 rows per class
(--per-class), "clustered" (class centres plus noise: what a trained model gives) and "random"
(random unit vectors: concentrated distances, as an untrained or early checkpoint gives them,
when negatives interleave with positives and semi-hard mining is hardest). The floor is the
same blocked matrix products the miner makes (X[block] @ X.T over every block, same BLAS, same
process), measured in the same run, best of three taken in turns; also the same products into
one reused buffer, as the miner makes them (a fresh block is page-faulted in anew: about a fifth
of the products' time at N = 32,768). Three levels:

- kernel: the mine_range loop over the blocks (products, ranking scan, exact recomputation,
  losses) against the floor; batch-hard should stay within 1.25x;
- library: mine_triplets (validation, class grouping, summary too);
- process (--large N): `python -m triplet_cli mine ... -o out.npy` in a fresh process against a
  fresh process that loads the file and makes the same products (into one reused buffer, as
  the miner does); batch-hard within 1.5x, and semi-hard (all positives) within 2x batch-hard
  on both kinds; peak RSS of each.

OPENBLAS_THREAD_TIMEOUT is set here as the CLI sets it (triplet_cli.THREAD_SPIN: idle
OpenBLAS threads otherwise spin on the cores the kernels need). The run prints the CPU, its
vector features, numba's target and the BLAS kernel, so that a figure can be tied to what it
ran on.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from triplet_cli import THREAD_SPIN

os.environ.update({**THREAD_SPIN, **os.environ})  # as the CLI sets them, unless set

import numpy as np

D = 128
PER_CLASS = 50
KINDS = ("clustered", "random")
STRATEGIES = {"batch-hard": {"strategy": "hard", "positive_strategy": "hard"},
              "semi-hard": {"strategy": "semi-hard", "positive_strategy": "all"}}


def make_data(n: int, kind: str = "clustered", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % max(n // PER_CLASS, 2)
    if kind == "random":
        x = rng.normal(size=(n, D))
    else:
        centres = rng.normal(size=(labels.max() + 1, D))
        x = centres[labels] + 0.9 * rng.normal(size=(n, D))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels.astype(np.int64)


def cpu_features() -> str:
    """The CPU's model and the vector extensions that decide the kernels' speed."""
    flags, model = set(), "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl")
    return f"{model}; {' '.join(f for f in wanted if f in flags) or 'no AVX2'}"


def environment() -> None:
    import llvmlite.binding as llvm
    import numba
    from threadpoolctl import threadpool_info

    print(f"CPU: {cpu_features()}")
    target = os.environ.get("NUMBA_CPU_NAME") or f"host ({llvm.get_host_cpu_name()})"
    print(f"numba {numba.__version__}: target {target}, {numba.config.NUMBA_NUM_THREADS} "
          f"threads, layer {numba.config.THREADING_LAYER}")
    for pool in threadpool_info():
        print(f"BLAS: {pool.get('internal_api')} {pool.get('version')} kernel "
              f"{pool.get('architecture')} threads {pool.get('num_threads')}")
    for var in ("OPENBLAS_CORETYPE", *THREAD_SPIN, "NPY_DISABLE_CPU_FEATURES", "OMP_NUM_THREADS"):
        print(f"{var}={os.environ.get(var, '(unset)')}")
    print(f"load average: {os.getloadavg()}")


def interleaved(runs: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, float]:
    """Best of `repeats` wall times of each, the runs taking turns (a shared machine's load
    moves between rounds, not between what a ratio compares). Each starts after a pause, so
    that no pool of the run before still spins on the cores (numba's or OpenBLAS's)."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, fn in runs.items():
            time.sleep(0.5)
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def ratios(n: int, kind: str) -> None:
    """Kernel- and library-level times of both strategies against the floor, one run."""
    from triplet_cli import mine_triplets
    from triplet_cli._jit import threads_in_use
    from triplet_cli.mine import MineSet, mine_range, prepare_mine

    x, y = make_data(n, kind)
    for options in STRATEGIES.values():  # compile and load every kernel first
        mine_triplets(x[:2048], np.arange(2048) % 40, **options)
    plans = {}
    for name, options in STRATEGIES.items():
        job = prepare_mine(x, y, **options)
        plans[name] = (MineSet.build(job.x, job.codes, job.plan()), job.plan())
    ranges = plans["batch-hard"][0].ranges()

    def floor() -> None:
        for start, stop in ranges:
            x[start:stop] @ x.T

    room = np.empty((max(b - a for a, b in ranges), n), x.dtype)

    def reused() -> None:  # the products alone: no fresh pages to fault in per block
        for start, stop in ranges:
            np.matmul(x[start:stop], x.T, out=room[:stop - start])

    runs: dict[str, Callable[[], object]] = {"floor": floor, "reused": reused}
    for name, options in STRATEGIES.items():
        data, plan = plans[name]
        runs[f"{name} kernel"] = lambda d=data, p=plan: [mine_range(d, p, a, b)
                                                         for a, b in d.ranges()]
        runs[f"{name} library"] = lambda o=options: mine_triplets(x, y, **o)
    took = interleaved(runs)
    floor_s, reused_s = took["floor"], took["reused"]
    print(f"\nN = {n:,}, d = {D}, {PER_CLASS} per class, {kind}: floor (blocked X[block] @ "
          f"X.T, {len(ranges)} blocks) {floor_s:.3f} s, into one reused buffer {reused_s:.3f} s; "
          f"load {os.getloadavg()[0]:.1f}; kernel threads {threads_in_use()}")
    for name in STRATEGIES:
        k, lib = took[f"{name} kernel"], took[f"{name} library"]
        print(f"  {name:10s} kernel {k:.3f} s = {k / floor_s:.2f}x the floor "
              f"({k / reused_s:.2f}x the reused-buffer floor); mine_triplets {lib:.3f} s = "
              f"{lib / floor_s:.2f}x")
    print(f"  semi-hard / batch-hard: kernel "
          f"{took['semi-hard kernel'] / took['batch-hard kernel']:.2f}x, mine_triplets "
          f"{took['semi-hard library'] / took['batch-hard library']:.2f}x")


FLOOR_CHILD = """
import os, sys, time
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
import numpy as np
from triplet_cli.mine import BLOCK_BYTES
x = np.load(sys.argv[1])
rows = max(1, BLOCK_BYTES // (x.shape[0] * 8))
room = np.empty((min(rows, x.shape[0]), x.shape[0]), x.dtype)  # one buffer, as the miner's
for start in range(0, x.shape[0], rows):
    block = x[start:start + rows]
    np.matmul(block, x.T, out=room[:block.shape[0]])
"""


def _process(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a fresh process."""
    import resource

    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    took = time.perf_counter() - t
    return took, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def large(n: int, kind: str) -> None:
    """Whole processes: the CLI's mine against a process making the same products."""
    x, y = make_data(n, kind)
    with tempfile.TemporaryDirectory() as folder:
        xp, yp, out = Path(folder, "x.npy"), Path(folder, "y.npy"), Path(folder, "out.npy")
        np.save(xp, x)
        np.save(yp, y)
        subprocess.run([sys.executable, "-m", "triplet_cli", "mine", "--embeddings", str(xp),
                        "--labels", str(yp), "-o", str(out)], check=True, capture_output=True)
        floor_s, _ = min(_process([sys.executable, "-c", FLOOR_CHILD, str(xp)])
                         for _ in range(2))
        print(f"\nN = {n:,}, d = {D}, {kind}, whole processes (an N x N float32 matrix alone "
              f"would be {n * n * 4 / 2**30:.1f} GiB): floor process {floor_s:.2f} s; load "
              f"{os.getloadavg()[0]:.1f}")
        took = {}
        for name, options in STRATEGIES.items():
            flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
            took[name], rss = _process([sys.executable, "-m", "triplet_cli", "mine",
                                        "--embeddings", str(xp), "--labels", str(yp), *flags,
                                        "-o", str(out)])
            print(f"  {name:10s} `triplet-loss mine` {took[name]:.2f} s = "
                  f"{took[name] / floor_s:.2f}x the floor process (peak RSS so far {rss:.0f} MB)")
        print(f"  semi-hard / batch-hard: {took['semi-hard'] / took['batch-hard']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[32_768],
                        help="N for the kernel and library ratios (default 32768)")
    parser.add_argument("--large", type=int, default=100_000,
                        help="N for whole processes (0: none; default 100000)")
    parser.add_argument("--d", type=int, default=D, help="embedding width (default 128)")
    parser.add_argument("--per-class", type=int, default=PER_CLASS,
                        help="rows per class (default 50)")
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    args = parser.parse_args()
    globals()["D"] = args.d
    globals()["PER_CLASS"] = args.per_class
    environment()
    for n in args.sizes:
        for kind in args.kinds:
            ratios(n, kind)
    if args.large:
        for kind in args.kinds:
            large(args.large, kind)


if __name__ == "__main__":
    main()
