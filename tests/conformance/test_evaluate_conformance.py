"""evaluate --preset pytorch-metric-learning against the live AccuracyCalculator's numbers.

The fixtures (evaluate_fixtures/, made by generate_evaluate_fixtures.py with
pytorch-metric-learning 2.9.0 on torch 2.13.0, CustomKNN(LpDistance(normalize_embeddings=False)),
no faiss) hold random inputs whose neighbour labels rank the same in float32 and float64, so the
library's averages must agree with ours to 1e-6 (the issue's bar); they agree within 7e-8 (its
reciprocal ranks are float32) and to about 1e-15 otherwise (float64 averages of rationals).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from triplet_cli import evaluate

FIXTURES = Path(__file__).resolve().parent / "evaluate_fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
OURS = {"precision_at_1": "precision_at_1", "r_precision": "r_precision",
        "mean_average_precision_at_r": "map_at_r", "mean_reciprocal_rank": "mrr"}


@pytest.mark.parametrize("case", MANIFEST, ids=[c["name"] for c in MANIFEST])
def test_metrics_equal_accuracy_calculator(case: dict) -> None:
    with np.load(FIXTURES / case["file"]) as z:
        f = {k: z[k] for k in z.files}
    k = {None: "all", "max_bin_count": "max-bin-count"}.get(case["k"], case["k"])
    inputs = dict(reference=f.get("reference"), reference_labels=f.get("reference_labels"),
                  preset="pytorch-metric-learning", k=k,
                  average="macro" if case["avg_of_avgs"] else "micro")
    first = evaluate(f["query"], f["query_labels"], **inputs)
    # The library's mean_average_precision is MAP@k over R: our map_at_K with K = k.
    r = evaluate(f["query"], f["query_labels"], at=str(first.summary["k"]), **inputs)
    got = r.metrics[0]
    expected = case["metrics"]
    for theirs, ours in OURS.items():
        assert got[ours] == pytest.approx(expected[theirs], abs=1e-6, rel=0), ours
    assert got[f"map_at_{r.summary['k']}"] == pytest.approx(
        expected["mean_average_precision"], abs=1e-6, rel=0)
    ref_labels = f.get("reference_labels", f["query_labels"])
    r_count = (f["query_labels"][:, None] == ref_labels[None, :]).sum(1) - ("reference" not in f)
    assert r.summary["excluded_queries"] == int((r_count == 0).sum())  # the library's lone queries
