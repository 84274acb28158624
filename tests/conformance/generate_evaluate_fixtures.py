"""Regenerate the evaluate fixtures from the live pytorch-metric-learning AccuracyCalculator.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch==2.13.0 \
        pytorch-metric-learning numpy
    /tmp/venv/bin/python tests/conformance/generate_evaluate_fixtures.py

Each case draws random float64 embeddings with a fixed seed and redraws (seed + 1000) until
the labels of every query's k neighbours, as the library ranks them (float32: AccuracyCalculator
casts its inputs; torch.topk orders ties arbitrarily), are those of the exact float64 ranking: a
near-tie float32 reorders between two classes would make the library's number another
input's. The library is called exactly as `library_call` says (CustomKNN(LpDistance(
normalize_embeddings=False)), no faiss); the test reads the stored numbers and needs numpy
only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "evaluate_fixtures"
METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r",
           "mean_reciprocal_rank", "mean_average_precision")

# name, queries, reference rows (0: the queries themselves), d, class sizes, k, avg_of_avgs
CASES = [
    ("self_n300_d8", 300, 0, 8, None, "max_bin_count", False),
    ("self_n300_d8_avg_of_avgs", 300, 0, 8, None, "max_bin_count", True),
    ("self_lone_queries", 120, 0, 4, [1, 1, 2, 5, 9, 17, 30, 55], "max_bin_count", False),
    ("self_lone_avg_of_avgs", 120, 0, 4, [1, 1, 2, 5, 9, 17, 30, 55], "max_bin_count", True),
    ("self_k_below_r", 200, 0, 6, None, 7, False),
    ("self_k_all", 90, 0, 5, None, None, False),
    ("reference_q150_m400", 150, 400, 16, None, "max_bin_count", False),
    ("reference_unseen_class", 80, 240, 3, None, "max_bin_count", True),
]


def draw(n: int, m: int, d: int, sizes: list[int] | None, seed: int):
    """Clustered rows (class centres plus noise) and labels for queries and reference."""
    rng = np.random.default_rng(seed)
    classes = 9
    centres = rng.normal(size=(classes + 1, d))

    def rows(count: int, extra_class: bool) -> tuple[np.ndarray, np.ndarray]:
        if sizes is not None:
            labels = np.repeat(np.arange(len(sizes)), sizes)[:count]
        else:
            labels = rng.integers(0, classes + int(extra_class), size=count)
        x = centres[labels % (classes + 1)] + 1.2 * rng.normal(size=(count, d))
        return x, labels.astype(np.int64)

    q, ql = rows(n, extra_class=True)
    if not m:
        return q, ql, None, None
    r, rl = rows(m, extra_class=False)
    return q, ql, r, rl


def same_ranking(calc, q, ql, r, rl) -> bool:
    """The library's neighbour labels equal those of the exact float64 ranking (and float64
    has no tie at all)."""
    import torch

    own = r is None
    r, rl = (q, ql) if own else (r, rl)
    d = np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1))
    if own:
        np.fill_diagonal(d, np.inf)
    s = np.sort(d, axis=1)[:, : d.shape[1] - int(own)]
    if not (np.diff(s, axis=1) > 0).all():
        return False
    counts = np.array([(rl == c).sum() - int(own) for c in np.unique(ql)])
    k = calc.determine_k(torch.from_numpy(counts + int(own)), len(r), own)
    exact = rl[np.argsort(d, axis=1, kind="stable")[:, :k]]
    f32 = [torch.from_numpy(a).float() for a in (q, r)]
    _, idx = calc.knn_func(f32[0], k, f32[1], own)
    return bool((rl[idx.numpy()] == exact).all())


def main() -> None:
    import pytorch_metric_learning
    import torch
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    OUT.mkdir(exist_ok=True)
    manifest = []
    for name, n, m, d, sizes, k, avg in CASES:
        seed = sum(map(ord, name))
        calc = AccuracyCalculator(include=METRICS, k=k, avg_of_avgs=avg,
                                  device=torch.device("cpu"),
                                  knn_func=CustomKNN(LpDistance(normalize_embeddings=False)))
        while True:
            q, ql, r, rl = draw(n, m, d, sizes, seed)
            if same_ranking(calc, q, ql, r, rl):
                break
            seed += 1000
        if r is None:
            got = calc.get_accuracy(q, ql)
        else:
            got = calc.get_accuracy(q, ql, r, rl, ref_includes_query=False)
        call = (f"AccuracyCalculator(include={list(METRICS)}, k={k!r}, avg_of_avgs={avg}, "
                "knn_func=CustomKNN(LpDistance(normalize_embeddings=False)))"
                + (".get_accuracy(query, query_labels)" if r is None else
                   ".get_accuracy(query, query_labels, reference, reference_labels, "
                   "ref_includes_query=False)"))
        arrays = {"query": q, "query_labels": ql}
        if r is not None:
            arrays |= {"reference": r, "reference_labels": rl}
        np.savez(OUT / f"{name}.npz", **arrays)
        manifest.append({"name": name, "file": f"{name}.npz", "seed": seed, "k": k,
                         "avg_of_avgs": avg, "metrics": {key: float(got[key]) for key in METRICS},
                         "library_call": call,
                         "source": "live pytorch-metric-learning "
                                   f"{pytorch_metric_learning.__version__} (torch "
                                   f"{torch.__version__})"})
        print(name, seed, {key: round(float(v), 6) for key, v in got.items()})
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
