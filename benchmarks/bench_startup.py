"""What a short `triplet-loss` run costs on top of numba and Typer. Run by hand, not in CI.

    python benchmarks/bench_startup.py              # 21 interleaved rounds
    python benchmarks/bench_startup.py --repeats 31
    python benchmarks/bench_startup.py --haswell    # NUMBA_CPU_NAME=haswell,
                                                    # OPENBLAS_CORETYPE=Haswell

Evaluation jobs call the tool once per checkpoint and per split, so what the tool adds to a
process that has to import numba anyway is paid on every call. This script measures, in one run:

  floor: numba   a process that imports numpy and numba, loads the three .npy inputs and calls
                 one cached parallel kernel (its cache warmed first);
  floor: typer   `--help` of a two-command Typer app;
  compute        `triplet-loss compute` on 1,000 x 16 float32 .npy inputs (--format json, and
                 the default table);
  --help         `triplet-loss --help`;

each program run once per round, rounds interleaved so a burst of load from other processes hits
every contender alike; medians over the rounds. Targets (issue 8, item 7): compute <= 1.1x
(floor numba + floor typer), --help <= 1.1x floor typer. Every process gets its own numba cache
folder in the temp dir (the tool's kernels are compiled once before timing), so other work in the
tree cannot invalidate it mid-run, and writes .pyc files, as an installed tool has them. It
prints the BLAS kernel and thread counts (threadpoolctl), numba's CPU name and threads, whether
the CPU has avx512f, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROWS, DIM = 1_000, 16
ROLES = ("anchors", "positives", "negatives")
HASWELL = {"NUMBA_CPU_NAME": "haswell", "OPENBLAS_CORETYPE": "Haswell"}
SHOWN_ENV = ("NUMBA_CPU_NAME", "OPENBLAS_CORETYPE", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")

FLOOR_NUMBA = '''\
import sys

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def distances(a, p, n, d_ap, d_an):
    for i in numba.prange(a.shape[0]):
        s = 0.0
        t = 0.0
        for j in range(a.shape[1]):
            u = np.float64(a[i, j]) - np.float64(p[i, j])
            v = np.float64(a[i, j]) - np.float64(n[i, j])
            s += u * u
            t += v * v
        d_ap[i] = np.sqrt(s)
        d_an[i] = np.sqrt(t)


a, p, n = (np.load(f, mmap_mode="r") for f in sys.argv[1:4])
d_ap, d_an = np.empty(a.shape[0]), np.empty(a.shape[0])
distances(a, p, n, d_ap, d_an)
print(float(np.maximum(d_ap - d_an + 1.0, 0.0).mean()))
'''

FLOOR_TYPER = '''\
import typer

app = typer.Typer(add_completion=False)


@app.command()
def compute(anchors: str, margin: float = 1.0) -> None:
    """Score triplets."""
    print(anchors, margin)


@app.command()
def mine(embeddings: str, seed: int = 0) -> None:
    """Mine triplets."""
    print(embeddings, seed)


if __name__ == "__main__":
    app()
'''

ENVIRONMENT = '''\
import os
import numba
import numpy as np
from threadpoolctl import threadpool_info

print(f"  numba {numba.__version__}: CPU name {numba.config.CPU_NAME or 'host'} "
      f"({__import__('llvmlite.binding', fromlist=['x']).get_host_cpu_name()} detected), "
      f"{numba.config.NUMBA_NUM_THREADS} threads, threading layer "
      f"{numba.config.THREADING_LAYER}")
for pool in threadpool_info():
    extra = pool.get("architecture") or ""
    print(f"  {pool['user_api']}: {pool['internal_api']} {pool.get('version')} {extra} "
          f"kernel, {pool['num_threads']} threads ({os.path.basename(pool['filepath'])})")
'''


def cli_path() -> str:
    """The `triplet-loss` console script next to this interpreter (else on PATH)."""
    beside = Path(sys.executable).parent / "triplet-loss"
    found = str(beside) if beside.exists() else shutil.which("triplet-loss")
    if not found:
        sys.exit("bench_startup: no triplet-loss script; install the package first")
    return found


def avx512f() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown (no /proc/cpuinfo)"
    return "present" if "avx512f" in flags else "absent"


def make_inputs(folder: Path) -> list[str]:
    rng = np.random.default_rng(8)
    a = rng.standard_normal((ROWS, DIM), dtype=np.float32)
    arrays = {"anchors": a, "positives": a + 0.5 * rng.standard_normal((ROWS, DIM), np.float32),
              "negatives": rng.standard_normal((ROWS, DIM), dtype=np.float32)}
    paths = []
    for role in ROLES:
        np.save(folder / f"{role}.npy", arrays[role])
        paths.append(str(folder / f"{role}.npy"))
    return paths


def run(argv: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench_startup: {' '.join(argv)} exited {done.returncode}:\n"
                         f"{done.stderr}")
    return elapsed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="interleaved rounds (median)")
    parser.add_argument("--haswell", action="store_true",
                        help="set NUMBA_CPU_NAME=haswell and OPENBLAS_CORETYPE=Haswell")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "NUMBA_CACHE_DIR": str(folder / "numba-cache"),
               **(HASWELL if args.haswell else {})}
        env.pop("COLUMNS", None)
        env.pop("NUMBA_DEBUG_CACHE", None)
        # An installed tool has its .pyc files; without them every run compiles our modules
        # (+8 ms of a 0.13 s --help). The warm-up runs write them.
        no_bytecode = env.pop("PYTHONDONTWRITEBYTECODE", None) is not None
        inputs = make_inputs(folder)
        (folder / "floor_numba.py").write_text(FLOOR_NUMBA)
        (folder / "floor_typer.py").write_text(FLOOR_TYPER)
        py, cli = sys.executable, cli_path()
        compute = [cli, "compute", *(x for role, path in zip(ROLES, inputs, strict=True)
                                     for x in (f"--{role}", path))]
        programs = {
            "floor: numba": [py, str(folder / "floor_numba.py"), *inputs],
            "floor: typer --help": [py, str(folder / "floor_typer.py"), "--help"],
            "compute --format json": [*compute, "--format", "json"],
            "compute (table)": compute,
            "triplet-loss --help": [cli, "--help"],
        }

        print(f"bench_startup: {ROWS:,} x {DIM} float32, {args.repeats} interleaved rounds, "
              "medians")
        print(f"  python {sys.version.split()[0]}, {os.cpu_count()} cores, avx512f "
              f"{avx512f()}; environment: " + (", ".join(f"{k}={env[k]}" for k in SHOWN_ENV
                                                         if k in env) or "none of "
                                               + ", ".join(SHOWN_ENV) + " set"))
        subprocess.run([py, "-c", ENVIRONMENT], env=env, check=False)
        if no_bytecode:
            print("  PYTHONDONTWRITEBYTECODE was set: unset for the timed runs")
        print(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for argv_ in programs.values():  # warm-up: numba caches, .pyc files, page cache
            run(argv_, env)
            run(argv_, env)
        times: dict[str, list[float]] = {name: [] for name in programs}
        for _ in range(args.repeats):
            for name, argv_ in programs.items():
                times[name].append(run(argv_, env))
        print(f"  load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"  {name:<24} median {med[name]:.3f} s  (min {min(t):.3f}, max {max(t):.3f})")
    floor = med["floor: numba"] + med["floor: typer --help"]
    checks = [
        ("compute --format json / floors", med["compute --format json"] / floor, 1.1),
        ("compute (table) / floors", med["compute (table)"] / floor, 1.1),
        ("--help / typer --help", med["triplet-loss --help"] / med["floor: typer --help"], 1.1),
    ]
    print(f"  floors: numba + typer --help = {floor:.3f} s")
    for name, ratio, target in checks:
        verdict = "ok" if ratio <= target else "MISSED"
        print(f"  {name:<32} {ratio:.2f}x  (target <= {target}x) {verdict}")


if __name__ == "__main__":
    main()
