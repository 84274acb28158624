"""Mining speed and memory, measured in one run (by hand, not in CI).

    python benchmarks/bench_mine.py                 # N = 16,384 ratios, N = 100,000 time / RSS
    python benchmarks/bench_mine.py --quick         # N = 4,096 and 20,000
    python benchmarks/bench_mine.py --d 1536        # OpenAI-size embeddings

Data, both kinds in every run: L2-normalised float32 embeddings, about 50 rows per class,
"clustered" (class centres plus noise: what a trained model gives) and "random" (random unit
vectors: concentrated distances, as an untrained or early checkpoint gives them, when negatives
interleave with positives and semi-hard mining is hardest). The floor is the same blocked
matrix products the miner makes (X[block] @ X.T over every block, same BLAS, same process),
measured in the same run: batch-hard should stay within 1.25x of it, semi-hard (all positives)
within 2x batch-hard on both kinds. The large size runs each strategy in a fresh process so its
peak RSS is its own. If torch / pytorch-metric-learning are importable they are timed too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def environment() -> None:
    import numba
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        print(f"BLAS: {pool.get('internal_api')} {pool.get('version')} kernel "
              f"{pool.get('architecture')} threads {pool.get('num_threads')}")
    print(f"numba {numba.__version__}: {numba.config.NUMBA_NUM_THREADS} threads, layer "
          f"{numba.config.THREADING_LAYER}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "OMP_WAIT_POLICY"):
        print(f"{var}={os.environ.get(var, '(unset)')}")
    print(f"load average: {os.getloadavg()}")


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def ratios(n: int, kind: str) -> None:
    from triplet_cli import mine_triplets
    from triplet_cli.mine import MineSet, prepare_mine

    x, y = make_data(n, kind)
    job = prepare_mine(x, y, **STRATEGIES["batch-hard"])
    ranges = MineSet.build(job.x, job.codes, job.plan()).ranges()

    def floor() -> None:
        for start, stop in ranges:
            x[start:stop] @ x.T

    for options in STRATEGIES.values():  # compile and load every kernel first
        mine_triplets(x[:512], np.arange(512) % 8, **options)
    floor_s = best_of(floor)
    print(f"\nN = {n:,}, d = {D}, {kind}: floor (blocked X[block] @ X.T, {len(ranges)} "
          f"blocks) {floor_s:.3f} s")
    took = {}
    for name, options in STRATEGIES.items():
        took[name] = best_of(lambda o=options: mine_triplets(x, y, **o))
        print(f"  {name:10s} {took[name]:.3f} s = {took[name] / floor_s:.2f}x the floor")
    print(f"  semi-hard / batch-hard: {took['semi-hard'] / took['batch-hard']:.2f}x")
    peers(x, y, floor_s)


def peers(x: np.ndarray, y: np.ndarray, floor_s: float) -> None:
    """PyTorch batch-hard and pytorch-metric-learning's BatchHardMiner, when importable."""
    try:
        import torch
    except ImportError:
        print("  (torch not importable: peers skipped)")
        return
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def torch_batch_hard() -> None:
        d = torch.cdist(xt, xt)
        same = yt[:, None] == yt[None, :]
        hardest_pos = torch.where(same, d, torch.zeros_like(d)).max(1).values
        hardest_neg = torch.where(same, torch.full_like(d, float("inf")), d).min(1).values
        torch.relu(hardest_pos - hardest_neg + 1.0).mean()

    took = best_of(torch_batch_hard, 1)
    print(f"  torch batch-hard (cdist, N x N) {took:.3f} s = {took / floor_s:.2f}x the floor")
    try:
        from pytorch_metric_learning import distances, miners
    except ImportError:
        return
    miner = miners.BatchHardMiner(distance=distances.LpDistance(normalize_embeddings=False))
    took = best_of(lambda: miner(xt, yt), 1)
    print(f"  pytorch-metric-learning BatchHardMiner {took:.3f} s = {took / floor_s:.2f}x")


CHILD = """
import json, resource, sys, time
import numpy as np
from triplet_cli import mine_triplets
x = np.load(sys.argv[1], mmap_mode="r"); y = np.load(sys.argv[2])
options = json.loads(sys.argv[3])
mine_triplets(np.asarray(x[:512]), np.arange(512) % 8, **options)  # load the kernels
t = time.perf_counter()
r = mine_triplets(x, y, **options)
took = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": took, "rss_mb": rss, "triplets": int(r.summary["triplets"])}))
"""


def large(n: int, kind: str) -> None:
    x, y = make_data(n, kind)
    with tempfile.TemporaryDirectory() as folder:
        xp, yp = Path(folder, "x.npy"), Path(folder, "y.npy")
        np.save(xp, x)
        np.save(yp, y)
        print(f"\nN = {n:,}, d = {D}, {kind} (an N x N float32 matrix alone would be "
              f"{n * n * 4 / 2**30:.1f} GiB); each run in its own process:")
        for name, options in STRATEGIES.items():
            out = subprocess.run([sys.executable, "-c", CHILD, str(xp), str(yp),
                                  json.dumps(options)], capture_output=True, text=True,
                                 check=True)
            r = json.loads(out.stdout)
            print(f"  {name:10s} {r['seconds']:.2f} s, peak RSS {r['rss_mb']:.0f} MB, "
                  f"{r['triplets']:,} triplets")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--d", type=int, default=D, help="embedding width (default 128)")
    parser.add_argument("--no-large", action="store_true", help="ratios only")
    args = parser.parse_args()
    globals()["D"] = args.d
    environment()
    for kind in KINDS:
        ratios(4_096 if args.quick else 16_384, kind)
    if not args.no_large:
        for kind in KINDS:
            large(20_000 if args.quick else 100_000, kind)


if __name__ == "__main__":
    main()
