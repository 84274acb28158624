"""evaluate's bad input: exit 1 (usage 2), one `triplet-loss: error:` line, nothing written.

Runs through the shared harness (tests/hostile.py). Good inputs in each case's folder: x.npy and
x2.npy (12, 3) float32 checkpoints of the same rows, y.npy (12,) with classes of 4, 4, 3 and 1
rows, r.npy (20, 3) with ry.npy (20,).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hostile import OUT, Case, Table, both, npy, spoil, table, text

Y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3])


def _good_inputs(d: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(d / "x.npy", rng.normal(size=(12, 3)).astype(np.float32))
    np.save(d / "x2.npy", rng.normal(size=(12, 3)).astype(np.float32))
    np.save(d / "y.npy", Y)
    np.save(d / "r.npy", rng.normal(size=(20, 3)).astype(np.float32))
    np.save(d / "ry.npy", np.arange(20) % 4)


def ev(*extra: str, x: str = "x.npy", y: str | None = "y.npy") -> tuple[str, ...]:
    labels = ("--labels", f"{{d}}/{y}") if y else ()
    return ("evaluate", "--embeddings", f"{{d}}/{x}", *labels, *extra)


REF = ("--reference", "{d}/r.npy", "--reference-labels", "{d}/ry.npy")

CASES = [
    Case("stdin-twice", None, ("evaluate", "--embeddings", "-", "--labels", "-", *OUT), 2,
         r"only one input can be read from stdin \(-\)$", stdin=b""),
    Case("labels-missing", None, ev(*OUT, y=None), 1,
         r"/x\.npy: holds no labels; give them with --labels"),
    Case("labels-wrong-length", npy("y7.npy", Y[:7]), ev(*OUT, y="y7.npy"), 1,
         r"/y7\.npy: 7 labels for 12 embedding rows in .*/x\.npy$"),
    Case("labels-2d", npy("y2.npy", np.zeros((12, 2), np.int64)), ev(*OUT, y="y2.npy"), 1,
         r"/y2\.npy: labels must be one value per row"),
    Case("single-class", npy("one.npy", np.zeros(12, np.int64)), ev(*OUT, y="one.npy"), 1,
         r"/one\.npy: every reference row has label 0: with one class"),
    Case("every-class-a-singleton", npy("uniq.npy", np.arange(12)), ev(*OUT, y="uniq.npy"), 1,
         r"/uniq\.npy: no query has another row of its class"),
    Case("k-zero", None, ev("--k", "0", *OUT), 2,
         r"--k must be max-bin-count, all or a whole number >= 1 \(got '0'\)$"),
    Case("k-word", None, ev("--k", "many", *OUT), 2, r"--k must be max-bin-count"),
    Case("at-zero", None, ev("--at", "0,5", *OUT), 2,
         r"--at must be whole numbers from 1 to 2\^63 - 1"),
    Case("at-beyond-int64", None, ev("--at", f"1,{10**400}", *OUT), 2,
         r"--at must be whole numbers from 1 to 2\^63 - 1, comma-separated"),
    Case("at-garbage", None, ev("--at", "1,five", *OUT), 2, r"--at must be whole numbers"),
    Case("target-unknown", None, ev("--target", "f1=0.9", *OUT), 2,
         r"--target must be precision=V or recall=V"),
    Case("target-above-one", None, ev("--target", "precision=2", *OUT), 2,
         r"--target must be precision=V"),
    Case("fail-below-unknown-metric", None, ev("--fail-below", "accuracy=0.5", *OUT), 2,
         r"--fail-below: unknown metric 'accuracy'; choose from precision_at_1, "),
    Case("fail-below-at-not-asked", None, ev("--fail-below", "recall_at_3=0.5", *OUT), 2,
         r"unknown metric 'recall_at_3'"),
    Case("fail-below-no-value", None, ev("--fail-below", "map_at_r", *OUT), 2,
         r"--fail-below must be METRIC=V"),
    Case("fail-below-nan", None, ev("--fail-below", "map_at_r=nan", *OUT), 2,
         r"--fail-below must be METRIC=V"),
    Case("fail-below-above-one", None, ev("--fail-below", "map_at_r=2", *OUT), 2,
         r"--fail-below must be METRIC=V with V from 0 to 1, e\.g\. map_at_r=0\.5 "
         r"\(got 'map_at_r=2'\)$"),
    Case("fail-below-negative", None, ev("--fail-below", "map_at_r=-1", *OUT), 2,
         r"--fail-below must be METRIC=V with V from 0 to 1"),
    Case("fail-drop-above-one", None, ev("--fail-drop", "map_at_r=1.5", *OUT), 2,
         r"--fail-drop must be METRIC=D with D from 0 to 1"),
    Case("reference-without-labels", None, ev("--reference", "{d}/r.npy", *OUT), 2,
         r"--reference needs --reference-labels \(the class of every reference row\), unless it "
         r"is a parquet or Arrow file with a label column$"),
    Case("reference-labels-without-reference", None,
         ev("--reference-labels", "{d}/ry.npy", *OUT), 2, r"--reference-labels needs --reference"),
    Case("reference-labels-wrong-length", npy("ry5.npy", np.arange(5)),
         ev("--reference", "{d}/r.npy", "--reference-labels", "{d}/ry5.npy", *OUT), 1,
         r"/ry5\.npy: 5 labels for 20 embedding rows in .*/r\.npy$"),
    Case("reference-other-width", npy("r4.npy", np.ones((20, 4), np.float32)),
         ev("--reference", "{d}/r4.npy", "--reference-labels", "{d}/ry.npy", *OUT), 1,
         r"/r4\.npy: has shape \(20, 4\); its queries .*/x\.npy have width 3"),
    Case("reference-twice-for-one-checkpoint", None,
         ev(*REF, "--reference", "{d}/r.npy", *OUT), 2,
         r"--reference given 2 times for 1 --embeddings"),
    Case("batch-hard-loss-with-reference", None, ev(*REF, "--batch-hard-loss", *OUT), 2,
         r"--batch-hard-loss mines triplets among the queries: it takes no --reference$"),
    Case("margin-negative", None, ev("--batch-hard-loss", "--margin", "-1", *OUT), 2,
         r"--margin must be"),
    Case("checkpoints-of-different-rows", npy("x9.npy", np.ones((9, 3), np.float32)),
         ev("--embeddings", "{d}/x9.npy", *OUT), 1,
         r"/x9\.npy: has shape \(9, 3\), .*/x\.npy has \(12, 3\): checkpoints must have the "
         r"same shape"),
    Case("checkpoints-of-different-widths", npy("x4.npy", np.ones((12, 4), np.float32)),
         ev("--embeddings", "{d}/x4.npy", *OUT), 1,
         r"/x4\.npy: has shape \(12, 4\), .*/x\.npy has \(12, 3\): checkpoints must have"),
    Case("checkpoint-nan", spoil("x2.npy", 5, 1, np.nan), ev("--embeddings", "{d}/x2.npy", *OUT),
         1, r"/x2\.npy: row 5 contains NaN$"),
    Case("checkpoint-1d", npy("flat.npy", np.ones(12, np.float32)),
         ev("--embeddings", "{d}/flat.npy", *OUT), 1, r"/flat\.npy: embeddings must have shape"),
    Case("unknown-preset-for-evaluate", None, ev("--preset", "torch", *OUT), 2,
         r"preset 'torch' has no evaluate operation; presets for evaluate: tf-similarity, "
         r"pytorch-metric-learning, sentence-transformers$"),
    Case("p-without-minkowski", None, ev("--distance", "cosine", "--p", "3", *OUT), 2,
         r"--p applies to the minkowski distance"),
    Case("plot-unknown-suffix", None, ev("--plot", "{d}/p.gif", *OUT), 2,
         r"--plot .*/p\.gif: unknown suffix; use \.png, \.pdf, \.svg$"),
    Case("plot-folder-missing", None, ev("--plot", "{d}/gone/p.png", *OUT), 1,
         r"/gone/p\.png: folder .*/gone does not exist or is not writable$"),
    Case("output-is-input", None, ev("-o", "{d}/y.npy"), 2,
         r"--output .*/y\.npy is also an input"),
    Case("labels-csv-empty", text("y.csv", "label\n"), ev(*OUT, y="y.csv"), 1,
         r"/y\.csv: 0 labels for 12 embedding rows"),
    # -- found by a second audit: each ran on and gave meaningless metrics, or crashed
    Case("values-overflow-products", npy("big.npy", np.full((12, 3), 1e160)),
         ev("--distance", "cosine", *OUT, x="big.npy"), 1,
         r"/big\.npy: row 0 holds values beyond .* float64 matrix products"),
    Case("cosine-zero-row-eps-0", npy("z.npy", np.eye(12, 3)),
         ev("--distance", "cosine", "--eps", "0", *OUT, x="z.npy"), 1,
         r"/z\.npy: row 3 is a zero vector"),
    Case("legacy-root-odd-p", None, ev("--p", "3", "--eps-placement", "legacy-root", *OUT), 2,
         r"evaluate ranks rows by distance: use root$"),
    Case("labels-large-float-ids", text("ids.csv", "label\n" + "".join(
        f"{10**19 + 1000 * (v % 2)}.0\n" for v in range(12))), ev(*OUT, y="ids.csv"), 1,
        r"/ids\.csv: float labels beyond 2\^53 are not exact"),
    Case("labels-struct-column", table("ys.parquet", {"label": [{"a": int(v)} for v in Y]}),
         ev(*OUT, y="ys.parquet"), 1, r"/ys\.parquet: label row 0 holds a struct"),
    Case("checkpoint-labels-differ", both(
        table("c1.parquet", {"embedding": [[1.0, float(i)] for i in range(12)], "label": Y}),
        table("c2.parquet", {"embedding": [[1.0, float(i)] for i in range(12)],
                             "label": Y[::-1].copy()})),
        ("evaluate", "--embeddings", "{d}/c1.parquet", "--embeddings", "{d}/c2.parquet", *OUT),
        1, r"/c2\.parquet: its labels differ from .*c1\.parquet's: checkpoints must hold the "
           r"same rows in the same order$"),
]

EVALUATE = Table("evaluate", _good_inputs, CASES)
test_bad_input = EVALUATE.test()
