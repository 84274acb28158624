"""evaluate's speed and memory, measured in one run (by hand, not in CI).

    python benchmarks/bench_evaluate.py                       # N = 100,000 and N = 20,000
    python benchmarks/bench_evaluate.py --quick               # N = 20,000 and 5,000
    python benchmarks/bench_evaluate.py --peer-python /work/venv-eval/bin/python
    python benchmarks/bench_evaluate.py --quick --k 1000      # a large k (top-k sorted, K > 64)
    python benchmarks/bench_evaluate.py --quick --data random # random unit rows (hard data)

Data: bench_mine.py's clustered (or, --data random, random: concentrated distances, many
near-ties) L2-normalised float32 rows, d = 128, about 50 rows per class, self-retrieval with k
= max-bin-count (or --k). Each size runs in a fresh process, so its peak RSS is its own:
evaluate() (peak RSS read right after the first run), then the floor, the same blocked matrix
products evaluate's units make (X[block] @ X.T over every block of query rows, same BLAS, same
process), interleaved --repeat times, the best of each. With --peer-python (a Python with torch
and pytorch-metric-learning), the smaller size also runs pytorch-metric-learning's
AccuracyCalculator with CustomKNN(LpDistance(normalize_embeddings=False)) (no faiss) in its own
process on the same file: time, peak RSS, and whether its numbers equal ours. Children run with
triplet_cli.THREAD_SPIN's spin settings unless they are set, as `triplet-loss` itself does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from bench_mine import environment, make_data

from triplet_cli import THREAD_SPIN

OURS = """
import json, resource, sys, time
import numpy as np
from triplet_cli import evaluate
from triplet_cli.evaluation import prepare_evaluate
x = np.load(sys.argv[1]); y = np.load(sys.argv[2]); repeat = int(sys.argv[3]); k = sys.argv[4]
evaluate(x[:512], np.arange(512) % 8, k="100")  # load the kernels (both top-k paths)
evaluate(x[:512], np.arange(512) % 8)
units = list(prepare_evaluate(x, y, k=k).units())
took, floor_s, rss = [], [], None
for _ in range(repeat):  # interleaved, so a change of load hits both
    t = time.perf_counter(); r = evaluate(x, y, k=k); took.append(time.perf_counter() - t)
    rss = rss or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    for u in units:
        x[u.start:u.stop] @ x.T
    floor_s.append(time.perf_counter() - t)
print(json.dumps({"seconds": min(took), "floor": min(floor_s), "blocks": len(units),
                  "rss_mb": rss, "k": r.summary["k"], "metrics": r.metrics[0]}))
"""

PEER = """
import json, resource, sys, time
import numpy as np, torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
x = np.load(sys.argv[1]); y = np.load(sys.argv[2])
names = ("precision_at_1", "r_precision", "mean_average_precision_at_r", "mean_reciprocal_rank")
calc = AccuracyCalculator(include=names, k="max_bin_count", device=torch.device("cpu"),
                          knn_func=CustomKNN(LpDistance(normalize_embeddings=False)))
t = time.perf_counter()
got = calc.get_accuracy(x, y)
took = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": took, "rss_mb": rss, "threads": torch.get_num_threads(),
                  "metrics": got}))
"""
PEER_NAMES = {"precision_at_1": "precision_at_1", "r_precision": "r_precision",
              "mean_average_precision_at_r": "map_at_r", "mean_reciprocal_rank": "mrr"}


def child(python: str, code: str, *args: object) -> dict:
    # As the CLI runs: idle pool threads stop spinning soon (cli.main sets THREAD_SPIN).
    env = {**THREAD_SPIN, **os.environ}
    out = subprocess.run([python, "-c", code, *map(str, args)], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(n: int, repeat: int, peer_python: str | None, k: str, data: str) -> None:
    x, y = make_data(n, data)
    with tempfile.TemporaryDirectory() as folder:
        xp, yp = Path(folder, "x.npy"), Path(folder, "y.npy")
        np.save(xp, x)
        np.save(yp, y)
        r = child(sys.executable, OURS, xp, yp, repeat, k)
        print(f"\nN = {n:,}, d = {x.shape[1]}, {data}, k = {r['k']} (an N x N float32 matrix alone "
              f"would be {n * n * 4 / 2**30:.2f} GiB)")
        print(f"  evaluate {r['seconds']:.2f} s, peak RSS {r['rss_mb']:.0f} MB; floor (blocked "
              f"X[block] @ X.T, {r['blocks']} blocks) {r['floor']:.2f} s: "
              f"{r['seconds'] / r['floor']:.2f}x the floor")
        if peer_python is None or k != "max-bin-count":  # (the peer's k is max_bin_count)
            return
        p = child(peer_python, PEER, xp, yp)
        diff = max(abs(p["metrics"][k] - r["metrics"][v]) for k, v in PEER_NAMES.items())
        print(f"  pytorch-metric-learning AccuracyCalculator + CustomKNN ({p['threads']} torch "
              f"threads): {p['seconds']:.2f} s, peak RSS {p['rss_mb']:.0f} MB; evaluate is "
              f"{p['seconds'] / r['seconds']:.2f}x faster with {p['rss_mb'] / r['rss_mb']:.1f}x "
              f"less peak memory; largest metric difference {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--repeat", type=int, default=3, help="best of R runs (default 3)")
    parser.add_argument("--peer-python", help="a Python with torch + pytorch-metric-learning")
    parser.add_argument("--k", default="max-bin-count", help="evaluate's --k (default "
                        "max-bin-count)")
    parser.add_argument("--data", choices=("clustered", "random"), default="clustered")
    args = parser.parse_args()
    environment()
    large, small = (20_000, 5_000) if args.quick else (100_000, 20_000)
    run(small, args.repeat, args.peer_python, args.k, args.data)
    run(large, args.repeat, None, args.k, args.data)


if __name__ == "__main__":
    main()
