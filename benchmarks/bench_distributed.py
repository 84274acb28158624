"""`triplet-loss mine --scheduler` on a 2-worker LocalCluster against the single-process run.
Run by hand, not in CI (needs `pip install 'triplet-loss[dask]'`).

    python benchmarks/bench_distributed.py              # 200,000 x 128, ~50 rows per class
    python benchmarks/bench_distributed.py --quick      # 20,000 x 128
    python benchmarks/bench_distributed.py --data DIR   # keep the generated .npy files in DIR

For each mining setting (semi-hard with all positives, batch-hard) it runs, as separate
processes writing .parquet:
  single   `triplet-loss mine` on this machine (numba on all cores);
  dask     the same command with --scheduler tcp://... of a LocalCluster of --workers worker
           processes (1 thread each) started here beforehand, so its start-up is not counted;
  local    the same command with --scheduler local --workers N (start-up and shut-down counted).
and prints the wall time, the peak RSS of the CLI process (from wait4), of each worker (ru_maxrss
via client.run) and of this process (which hosts the scheduler), and the SHA-256 of each output
file: the Dask files must be the single-process bytes. The machine is often shared: the load
average is printed before and after each run.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SETTINGS = {
    "semi-hard": [],  # the defaults: semi-hard negatives for all positives
    "batch-hard": ["--strategy", "hard", "--positive-strategy", "hard"],
}
CLI = [sys.executable, "-m", "triplet_cli"]


@dataclass
class Run:
    name: str
    seconds: float
    cli_rss: int  # bytes
    worker_rss: list[int]
    digest: str
    load: tuple[float, float]

    def line(self, reference: str) -> str:
        workers = ", ".join(f"{r / 2**20:.0f}" for r in self.worker_rss) or "-"
        same = "same bytes" if self.digest == reference else "DIFFERENT"
        return (f"  {self.name:<7} {self.seconds:8.1f} s   CLI {self.cli_rss / 2**20:6.0f} MiB   "
                f"workers [{workers}] MiB   {self.digest[:16]}  {same}   "
                f"load {self.load[0]:.1f} -> {self.load[1]:.1f}")


def make_data(folder: Path, n: int, d: int, per_class: int, seed: int) -> tuple[Path, Path]:
    """L2-normalised float32 rows: a class centre plus as much noise, exactly per_class rows per
    class (shuffled), so positives and negatives overlap as in training."""
    x_path, y_path = folder / f"x_{n}x{d}.npy", folder / f"y_{n}_{per_class}.npy"
    if x_path.exists() and y_path.exists():
        return x_path, y_path
    rng = np.random.default_rng(seed)
    labels = rng.permutation(n) % (n // per_class)
    centres = rng.standard_normal((n // per_class, d), dtype=np.float32)
    x = centres[labels] + rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(x_path, x)
    np.save(y_path, labels.astype(np.int64))
    return x_path, y_path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def run_cli(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one CLI process; its stderr is passed through."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {process.returncode}")
    return seconds, usage.ru_maxrss * 1024


def worker_rss(client) -> list[int]:
    return sorted(v * 1024 for v in client.run(
        lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="n = 20,000")
    parser.add_argument("--data", type=Path, help="folder for the generated .npy files")
    parser.add_argument("--only", choices=sorted(SETTINGS), action="append")
    parser.add_argument("--skip-local", action="store_true", help="no --scheduler local run")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.n

    import distributed

    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        folder = args.data or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        x, y = make_data(folder, n, args.d, args.per_class, seed=0)
        print(f"mine {n:,} x {args.d} float32 (L2-normalised, {args.per_class} rows per class), "
              f"{os.cpu_count()} cores, {args.workers} workers; output .parquet in {tmp}")
        for name in args.only or SETTINGS:
            base = [*CLI, "mine", "--embeddings", str(x), "--labels", str(y), "-q", "-f", "json",
                    *SETTINGS[name]]
            runs = []
            out = Path(tmp) / f"{name}-single.parquet"
            load0 = os.getloadavg()[0]
            seconds, rss = run_cli([*base, "-o", str(out)])
            runs.append(Run("single", seconds, rss, [], sha256(out), (load0, os.getloadavg()[0])))
            out.unlink()

            with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                          processes=True, dashboard_address="127.0.0.1:0",
                                          silence_logs=logging.ERROR) as cluster, \
                    distributed.Client(cluster, set_as_default=False) as client:
                out = Path(tmp) / f"{name}-dask.parquet"
                load0 = os.getloadavg()[0]
                seconds, rss = run_cli([*base, "-o", str(out), "--scheduler",
                                        cluster.scheduler_address])
                runs.append(Run("dask", seconds, rss, worker_rss(client), sha256(out),
                                (load0, os.getloadavg()[0])))
                out.unlink()
            if not args.skip_local:
                out = Path(tmp) / f"{name}-local.parquet"
                load0 = os.getloadavg()[0]
                seconds, rss = run_cli([*base, "-o", str(out), "--scheduler", "local",
                                        "--workers", str(args.workers)])
                runs.append(Run("local", seconds, rss, [], sha256(out),
                                (load0, os.getloadavg()[0])))
                out.unlink()
            print(f"{name}:")
            for run in runs:
                print(run.line(runs[0].digest))
            scheduler = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
            print(f"  this process (the dask run's scheduler) peaked at {scheduler:.0f} MiB")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
