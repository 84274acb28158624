"""Regenerate the conformance fixtures in tests/conformance/fixtures/.

Every fixture holds inputs and the numbers a reference library produced for them. Libraries that
are importable are run live (PyTorch, pytorch-metric-learning, sentence-transformers; TensorFlow
Similarity and TF Addons through a second interpreter, see --tf-python); the others come from the
float64 transcriptions in transcriptions.py. stdout says which source every fixture used.

    python tests/conformance/generate_fixtures.py [--tf-python PATH] [--only TEXT] [--dry-run]

--tf-python (or $TRIPLET_CONF_TF_PYTHON) names a Python with tensorflow, tf-keras,
tensorflow-similarity and tensorflow-addons installed; the float32 TF cases are then computed live
in that interpreter (this file is re-run there as a worker with --tf-worker). Without it they come
from the transcriptions. float64 TF cases always come from the transcriptions: both TF libraries
reject float64 input (they multiply by float32 masks).

Self-checks run on every regeneration (the run fails when one does not hold):
* each worked case of shared/CONFORMANCE.md is compared with the figure it quotes;
* every float32 case is recomputed in float64 (the live library on float64 copies of the inputs,
  or the transcription) and must agree within a quarter of the tests' tolerance, so an exact
  implementation can pass;
* random mining batches are drawn until no triplet sits within a guard band of a decision
  boundary (d_an = d_ap, d_an - d_ap = margin), so float rounding cannot flip a mined set.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"

_spec = importlib.util.spec_from_file_location("conformance_transcriptions",
                                               HERE / "transcriptions.py")
tr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tr)

RTOL = {"float32": 1e-5, "float64": 1e-10}
ATOL = {"float32": 1e-7, "float64": 1e-12}

SRC_MLX = "transcription: ml-explore/mlx python/mlx/nn/losses.py triplet_loss v0.32.0"
SRC_MLX_LEGACY = "transcription: ml-explore/mlx python/mlx/nn/losses.py triplet_loss v0.31"
SRC_TFA = ("transcription: tensorflow/addons tensorflow_addons/losses/triplet.py "
           "{fn} 0.23.0")
SRC_TFSIM = ("transcription: tensorflow/similarity tensorflow_similarity/losses/triplet_loss.py "
             "triplet_loss (+ losses/utils.py, algebra.py) 0.17.1")


# ============================================================================================
# cases
# ============================================================================================


@dataclass
class Case:
    name: str
    preset: str
    op: str  # "compute" | "mine"
    dtype: str
    params: dict
    lib: dict  # how the reference library is called
    make: Callable[[int], dict]  # seed -> inputs (float64 values; cast to dtype on use)
    seed: int = 0
    note: str = ""
    expect: dict = field(default_factory=dict)  # CONFORMANCE.md figures to cross-check
    random: bool = False  # random inputs: guard-band redraws allowed
    artefact: str = ""  # why the library's number is an artefact ("" if it is not)


def fixed(**arrays) -> Callable[[int], dict]:
    frozen = {k: np.asarray(v) for k, v in arrays.items()}
    return lambda seed: dict(frozen)


def line(v) -> np.ndarray:
    """Points (v_i, 0): D_ij = |v_i - v_j| (the mining batches of CONFORMANCE.md)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v, np.zeros_like(v)], axis=1)


def balanced_labels(rng, n: int, classes: int) -> np.ndarray:
    y = np.arange(n) % classes
    rng.shuffle(y)
    return y.astype(np.int64)


def rand_triplets(n, d, normalize=False, dup=None, scale=1.0):
    def make(seed):
        rng = np.random.default_rng(seed)
        a, p, q = (rng.standard_normal((n, d)) * scale for _ in range(3))
        if normalize:
            a, p, q = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (a, p, q))
        if dup == "ap":  # every third anchor equals its positive, every fifth its negative
            p[::3] = a[::3]
            q[1::5] = a[1::5]
        elif dup == "all":  # quantised coordinates: many exact duplicates, exact arithmetic
            a, p, q = (rng.integers(-2, 3, (n, d)) * 0.5 for _ in range(3))
            p[::4] = a[::4]
        return {"anchors": a, "positives": p, "negatives": q}
    return make


def rand_batch(n, d, classes, normalize=False, quantised=False, scale=1.0):
    def make(seed):
        rng = np.random.default_rng(seed)
        if quantised:  # exact duplicates and exact ties; every computation is exact
            x = rng.integers(-2, 3, (n, d)) * 0.5
        else:
            x = rng.standard_normal((n, d)) * scale
            if normalize:
                x /= np.linalg.norm(x, axis=1, keepdims=True)
        return {"embeddings": x, "labels": balanced_labels(rng, n, classes)}
    return make


# -------------------------------------------------------------------------------- worked cases
C1 = {"anchors": [[0.0, 0.0]], "positives": [[0.0, 0.0]], "negatives": [[0.5, 0.0]]}
C2 = {"anchors": [[0.0, 0.0]], "positives": [[0.0, 0.0]], "negatives": [[-0.5, 0.0]]}
C3 = {"anchors": [[0.0, 0.0]], "positives": [[1.0, 1.0]], "negatives": [[2.0, 0.0]]}
C3_MLX_TEST = {"anchors": [[0.0, 0.0]], "positives": [[2.0, 0.0]], "negatives": [[0.0, 3.0]]}
C4 = {"anchors": [[1.0, 2, 3], [1, 2, 3]], "positives": [[4.0, 5, 6], [0, -1, 2]],
      "negatives": [[7.0, 8, 9], [3, 2, 3]]}
C5 = {"anchors": [[0.0, 0], [0, 0], [1, 1]], "positives": [[1.0, 0], [0, 2], [1, 1]],
      "negatives": [[2.0, 0], [1, 0], [4, 5]]}
C6 = {"anchors": [[0.0, 0]], "positives": [[1.0, 0]], "negatives": [[1.5, 0]]}
C16_TORCH = {"anchors": [[np.nan, 0], [0, 0]], "positives": [[0.0, 0], [0, 0]],
             "negatives": [[1.0, 0], [0.5, 0]]}
C17 = {"anchors": [[0.0, 0]], "positives": [[1.0, 0]], "negatives": [[1.5, 0]]}
C17_COLLAPSED = {"anchors": [[0.0, 0]], "positives": [[1.0, 0]], "negatives": [[-1.0, 0]]}
C19 = {"anchors": [[1.0, 0], [1, 0], [1, 0]], "positives": [[1.0, 0], [1, 1], [0, 1]],
       "negatives": [[0.0, 1], [1, -1], [1, 0.1]]}
SEED_B2A = {"anchors": [[1.0, 2]], "positives": [[2.0, 3]], "negatives": [[4.0, 5]]}
SEED_EUCLID = {"anchors": [[0.0, 0]], "positives": [[3.0, 4]], "negatives": [[0.0, 1]]}

M = {"embeddings": line([0, 1, 2.25, 1.5, 3.25]), "labels": [0, 0, 0, 1, 1]}
M_NAN = {"embeddings": line([0, 1, 2.25, 1.5, np.nan]), "labels": [0, 0, 0, 1, 1]}
S = {"embeddings": line([0, 1, 3]), "labels": [0, 0, 0]}
U = {"embeddings": line([0, 1, 3]), "labels": [0, 1, 2]}
C14 = {"embeddings": line([0, 1, 1.5]), "labels": [0, 0, 1]}
C15 = {"embeddings": line([0, 1, 0]), "labels": [0, 0, 1]}
C7 = {"embeddings": [[2.0, 0], [1, 1], [0, 1]], "labels": [0, 0, 1]}
C7N = {"embeddings": np.array(C7["embeddings"]) / np.linalg.norm(C7["embeddings"], axis=1,
                                                                 keepdims=True),
       "labels": [0, 0, 1]}
C11X = {"embeddings": [[0.0, 0], [2, 0], [1, 1], [0, 3]], "labels": [0, 0, 1, 1]}
C18 = {"embeddings": [[1.0, 0], [0.5, 0.8660254], [0, 1], [0.01010049, 0.999949]],
       "labels": [0, 0, 1, 1]}
C20 = {"embeddings": [[0.0, 1], [1, 0]], "labels": [0, 0]}
SEMIHARD_LINE = {"embeddings": line([0, 1, 3, 2, 5]), "labels": [0, 0, 0, 1, 1]}
SINGLE = {"embeddings": [[0.3, -0.2, 0.9]], "labels": [7]}


def torch_cases() -> list[Case]:
    def lib(p=2.0, margin=1.0, eps=1e-6, swap=False, reduction="mean"):
        return {"kind": "torch", "p": p, "margin": margin, "eps": eps, "swap": swap,
                "reduction": reduction}

    out = []
    for dt in ("float32", "float64"):
        s = dt[-2:]
        out += [
            Case(f"torch_C1_eps_a_eq_p_f{s}", "torch", "compute", dt, {}, lib(), fixed(**C1),
                 note="C1: a = p; eps added to every component of the difference",
                 expect={"loss": [0.5000024 if dt == "float32" else 0.500002]}),
            Case(f"torch_C2_asymmetry_f{s}", "torch", "compute", dt, {}, lib(), fixed(**C2),
                 note="C2: n = (-0.5, 0); d_an = 0.500001 (eps in the difference)",
                 expect={"loss": [0.5000004 if dt == "float32" else 0.5]}),
            Case(f"torch_C3_p1_f{s}", "torch", "compute", dt, {"p": 1}, lib(p=1.0),
                 fixed(**C3), note="C3: p = 1 (d_ap 1.999998, d_an 2.000000)",
                 expect={"loss": [0.999998]}),
            Case(f"torch_C5_mean_f{s}", "torch", "compute", dt, {}, lib(), fixed(**C5),
                 note="C5: hinge boundary (triplet 0 sits exactly on the margin)",
                 expect={"loss": [0, 2, 0], "batch_loss": 0.666667}),
            Case(f"torch_C5_sum_f{s}", "torch", "compute", dt, {"reduction": "sum"},
                 lib(reduction="sum"), fixed(**C5), note="C5 with reduction sum",
                 expect={"batch_loss": 2.0}),
            Case(f"torch_C6_swap_f{s}", "torch", "compute", dt, {"swap": True},
                 lib(swap=True), fixed(**C6), note="C6: swap; d(p, n) = 0.5 replaces d(a, n)",
                 expect={"loss": [1.5]}),
        ]
    out += [
        Case("torch_C4_mean_f32", "torch", "compute", "float32", {}, lib(), fixed(**C4),
             note="C4: MLX unit-test triplets under PyTorch",
             expect={"loss": [0, 2.3166275], "batch_loss": 1.15831}),
        Case("torch_C4_none_f64", "torch", "compute", "float64", {"reduction": "none"},
             lib(reduction="none"), fixed(**C4), note="C4, reduction none",
             expect={"loss": [0, 2.31663]}),
        Case("torch_C6_noswap_f32", "torch", "compute", "float32", {}, lib(), fixed(**C6),
             note="C6 without swap", expect={"loss": [0.5]}),
        Case("torch_C16_nan_f32", "torch", "compute", "float32", {}, lib(), fixed(**C16_TORCH),
             note="C16: a NaN input row gives a NaN loss for that row and a NaN mean "
                  "(NaN from NaN input, not from finite input)",
             expect={"loss": [np.nan, 0.5000024]}),
        Case("torch_seed_euclid_f64", "torch", "compute", "float64", {"swap": True},
             lib(swap=True), fixed(**SEED_EUCLID),
             note="SPEC 7: a=(0,0), p=(3,4), n=(0,1); swap keeps d_an = 1", expect={"loss": [5]}),
    ]
    R = [  # name, n, d, dtype, params, lib, kwargs for rand_triplets, seed
        ("n1_d3", 1, 3, "float32", {}, lib(), {}, 11),
        ("n7_d512_raw", 7, 512, "float32", {}, lib(), {"scale": 0.05}, 12),
        ("n64_d64_raw_sum", 64, 64, "float64", {"reduction": "sum"}, lib(reduction="sum"),
         {"scale": 0.15}, 13),
        ("n300_d3_unit_none", 300, 3, "float64", {"reduction": "none"}, lib(reduction="none"),
         {"normalize": True}, 14),
        ("n32_d512_unit", 32, 512, "float32", {}, lib(), {"normalize": True}, 15),
        ("n64_d64_p1", 64, 64, "float32", {"p": 1}, lib(p=1.0), {"scale": 0.02}, 16),
        ("n64_d3_p3", 64, 3, "float64", {"p": 3}, lib(p=3.0), {}, 17),
        ("n64_d64_p1.5", 64, 64, "float32", {"p": 1.5}, lib(p=1.5), {"scale": 0.05}, 18),
        ("n64_d3_unit_swap", 64, 3, "float32", {"swap": True}, lib(swap=True),
         {"normalize": True}, 19),
        ("n64_d64_swap_sum", 64, 64, "float64", {"swap": True, "reduction": "sum"},
         lib(swap=True, reduction="sum"), {"scale": 0.15}, 20),
        ("n64_d1_dup", 64, 1, "float64", {}, lib(), {"dup": "ap"}, 21),
        ("n300_d1", 300, 1, "float32", {}, lib(), {}, 22),
        ("n7_d3_dup_f32_none", 7, 3, "float32", {"reduction": "none"}, lib(reduction="none"),
         {"dup": "ap"}, 23),
        ("n64_d3_quantised", 64, 3, "float32", {}, lib(), {"dup": "all"}, 24),
        ("n64_d64_margin0.2_eps1e-3", 64, 64, "float64", {"margin": 0.2, "eps": 1e-3},
         lib(margin=0.2, eps=1e-3), {"normalize": True}, 25),
    ]
    for name, n, d, dt, params, lb, kw, seed in R:
        out.append(Case(f"torch_rand_{name}", "torch", "compute", dt, params, lb,
                        rand_triplets(n, d, **kw), seed=seed, random=True,
                        note=f"random {n} x {d} {dt} {kw or ''}".strip()))
    return out


def mlx_cases(preset: str) -> list[Case]:
    kind = "mlx" if preset == "mlx" else "mlx-legacy"
    tag = preset.replace("-", "_")

    def lib(p=2.0, margin=1.0, eps=1e-6, reduction="none"):
        return {"kind": kind, "p": p, "margin": margin, "eps": eps, "reduction": reduction}

    out = [
        Case(f"{tag}_C1_eps_a_eq_p_f64", preset, "compute", "float64", {}, lib(), fixed(**C1),
             note="C1: eps inside the root, d(x, x) = eps^(1/2) = 1e-3",
             expect={"loss": [0.500999]}),
        Case(f"{tag}_C2_f32", preset, "compute", "float32", {}, lib(), fixed(**C2),
             note="C2: symmetric, unlike PyTorch", expect={"loss": [0.500999]}),
        Case(f"{tag}_C4_none_f32", preset, "compute", "float32", {}, lib(), fixed(**C4),
             note="C4: MLX's own unit-test triplets, default reduction none",
             expect={"loss": [0, 2.31662]}),
        Case(f"{tag}_C4_mean_f64", preset, "compute", "float64", {"reduction": "mean"},
             lib(reduction="mean"), fixed(**C4), note="C4, reduction mean",
             expect={"batch_loss": 1.15831}),
        Case(f"{tag}_C4_sum_f64", preset, "compute", "float64", {"reduction": "sum"},
             lib(reduction="sum"), fixed(**C4), note="C4, reduction sum",
             expect={"batch_loss": 2.31662}),
        Case(f"{tag}_C5_mean_f64", preset, "compute", "float64", {"reduction": "mean"},
             lib(reduction="mean"), fixed(**C5),
             note="C5: eps makes the boundary triplet active (2.5e-7)",
             expect={"loss": [2.5e-7, 2, 0], "batch_loss": 0.666667}),
        Case(f"{tag}_C3_p1_f64", preset, "compute", "float64", {"p": 1}, lib(p=1.0),
             fixed(**C3), note="C3: p = 1",
             expect={"loss": [1.0] if preset == "mlx" else [np.nan]}),
        Case(f"{tag}_C3_mlxtest_p1_f32", preset, "compute", "float32", {"p": 1}, lib(p=1.0),
             fixed(**C3_MLX_TEST), note="C3: MLX's own test, p = 1",
             expect={"loss": [0.0] if preset == "mlx" else [np.nan]}),
        Case(f"{tag}_C3_mlxtest_p3_f64", preset, "compute", "float64", {"p": 3}, lib(p=3.0),
             fixed(**C3_MLX_TEST), note="C3: MLX's own test, p = 3",
             expect={"loss": [4.62963e-8] if preset == "mlx" else [np.nan]}),
    ]
    R = [
        ("n7_d3", 7, 3, "float32", {}, lib(), {}, 31),
        ("n64_d64_mean", 64, 64, "float64", {"reduction": "mean"}, lib(reduction="mean"),
         {"scale": 0.15}, 32),
        ("n64_d64_p1_sum", 64, 64, "float32", {"p": 1, "reduction": "sum"},
         lib(p=1.0, reduction="sum"), {"scale": 0.02}, 33),
        ("n64_d3_p3", 64, 3, "float64", {"p": 3}, lib(p=3.0), {}, 34),
        ("n64_d8_p4", 64, 8, "float64", {"p": 4}, lib(p=4.0), {"scale": 0.5}, 38),
        ("n7_d512_unit", 7, 512, "float32", {}, lib(), {"normalize": True}, 35),
        ("n64_d1_dup_mean", 64, 1, "float64", {"reduction": "mean"}, lib(reduction="mean"),
         {"dup": "ap"}, 36),
        ("n300_d1_mean", 300, 1, "float32", {"reduction": "mean"}, lib(reduction="mean"),
         {}, 37),
    ]
    for name, n, d, dt, params, lb, kw, seed in R:
        note = f"random {n} x {d} {dt} {kw or ''}".strip()
        if preset == "mlx-legacy" and lb["p"] == 4:
            note += "; legacy computes sqrt(sum (x-y)^4 + eps), not the 4-norm"
        out.append(Case(f"{tag}_rand_{name}", preset, "compute", dt, params, lb,
                        rand_triplets(n, d, **kw), seed=seed, random=True, note=note))
    return out


def tfsim_cases() -> list[Case]:
    def lib(distance="cosine", pos="hard", neg="semi-hard", margin=None):
        return {"kind": "tfsim", "distance": distance, "pos": pos, "neg": neg, "margin": margin}

    e1 = {"distance": "euclidean", "soft_margin": False, "margin": 1.0}
    out = []
    for dt in ("float32", "float64"):
        s = dt[-2:]
        out += [
            Case(f"tfsim_C8_margin1_f{s}", "tf-similarity", "mine", dt, e1,
                 lib("euclidean", margin=1.0), fixed(**M),
                 note="C8: per-anchor (0, 0, 2.25, 1.25, 0.5); anchors 2, 3 use the fallback",
                 expect={"batch_loss": 0.8}),
            Case(f"tfsim_C8_soft_f{s}", "tf-similarity", "mine", dt, {"distance": "euclidean"},
                 lib("euclidean"), fixed(**M), note="C8 with the default soft margin",
                 expect={"batch_loss": 0.685694}),
        ]
    out += [
        Case("tfsim_C8_hard_hard_f32", "tf-similarity", "mine", "float32",
             {**e1, "strategy": "hard"}, lib("euclidean", neg="hard", margin=1.0), fixed(**M),
             note="C8: hard positive, hard negative", expect={"batch_loss": 2.0}),
        Case("tfsim_C8_easy_semihard_f32", "tf-similarity", "mine", "float32",
             {**e1, "positive_strategy": "easy"}, lib("euclidean", pos="easy", margin=1.0),
             fixed(**M), note="C8: easy positive, semi-hard negative (threshold = hardest "
                              "positive)", expect={"batch_loss": 0.6}),
        Case("tfsim_C8_easy_easy_f64", "tf-similarity", "mine", "float64",
             {**e1, "positive_strategy": "easy", "strategy": "easy"},
             lib("euclidean", pos="easy", neg="easy", margin=1.0), fixed(**M),
             note="C8: easy positive, easy negative", expect={"batch_loss": 0.5}),
        Case("tfsim_C7_raw_hard_f64", "tf-similarity", "mine", "float64",
             {"soft_margin": False, "margin": 1.0, "strategy": "hard"},
             lib(neg="hard", margin=1.0), fixed(**C7),
             note="C7: cosine = 1 - x.y clipped at 0 on RAW rows (the library assumes unit "
                  "rows); per-anchor (0, 1, 0.999999)", expect={"batch_loss": 1.999999 / 3}),
        Case("tfsim_C7_unit_hard_f32", "tf-similarity", "mine", "float32",
             {"soft_margin": False, "margin": 1.0, "strategy": "hard"},
             lib(neg="hard", margin=1.0), fixed(**C7N),
             note="C7 on normalised rows: per-anchor (0.292893, 1, 0.707106)",
             expect={"batch_loss": (0.292893 + 1 + 0.707106) / 3}),
        Case("tfsim_C12_single_class_f32", "tf-similarity", "mine", "float32", e1,
             lib("euclidean", margin=1.0), fixed(**S),
             note="C12: no negatives; per-anchor (4, 2, 1): d_an = distance to row 0",
             expect={"batch_loss": 2.33333}),
        Case("tfsim_C12_single_class_hard_f64", "tf-similarity", "mine", "float64",
             {**e1, "strategy": "hard"}, lib("euclidean", neg="hard", margin=1.0), fixed(**S),
             note="C12 hard/hard: d_an = row max + 1e-6", expect={"batch_loss": 0.999999}),
        Case("tfsim_C12_single_class_soft_f64", "tf-similarity", "mine", "float64",
             {"distance": "euclidean"}, lib("euclidean"), fixed(**S),
             note="C12 soft margin", expect={"batch_loss": 1.685}),
        Case("tfsim_C13_distinct_f32", "tf-similarity", "mine", "float32", e1,
             lib("euclidean", margin=1.0), fixed(**U), note="C13: no positives; d_ap = -1e-6",
             expect={"batch_loss": 0.0}),
        Case("tfsim_C13_distinct_soft_f64", "tf-similarity", "mine", "float64",
             {"distance": "euclidean"}, lib("euclidean"), fixed(**U), note="C13 soft margin",
             expect={"batch_loss": 0.25115}),
        Case("tfsim_C13_distinct_easy_f64", "tf-similarity", "mine", "float64",
             {**e1, "positive_strategy": "easy"}, lib("euclidean", pos="easy", margin=1.0),
             fixed(**U), note="C13 easy/semi-hard: d_ap = row max + 1e-6, per-anchor "
                              "(3, 2, 2) + 1e-6", expect={"batch_loss": 2.33333}),
        Case("tfsim_C14_singleton_f32", "tf-similarity", "mine", "float32", e1,
             lib("euclidean", margin=1.0), fixed(**C14),
             note="C14: anchor 2 has no positive; per-anchor (0.5, 1.5, 0.499999)",
             expect={"batch_loss": 0.833333}),
        Case("tfsim_C15_duplicates_f64", "tf-similarity", "mine", "float64", e1,
             lib("euclidean", margin=1.0), fixed(**C15),
             note="C15: negative identical to the anchor; per-anchor (2, 1, 0.999999)",
             expect={"batch_loss": 1.33333}),
        Case("tfsim_C18_reference_test_f32", "tf-similarity", "mine", "float32",
             {"soft_margin": False, "margin": 1.0, "positive_strategy": "easy"},
             lib(pos="easy", margin=1.0), fixed(**C18),
             note="C18: the library's own test (Reduction.NONE per-anchor 0.5101, 1.36603, "
                  "0.866076, 0.871082; batch = their mean); anchor 1 uses the fallback",
             expect={"batch_loss": (0.5101 + 1.36603 + 0.866076 + 0.871082) / 4}),
    ]
    R = [
        ("n64_d64_unit_soft", 64, 64, "float32", {}, lib(), {"normalize": True}, 8, 41),
        ("n300_d64_unit_soft", 300, 64, "float64", {}, lib(), {"normalize": True}, 10, 42),
        ("n64_d3_unit_margin1", 64, 3, "float32", {"soft_margin": False, "margin": 1.0},
         lib(margin=1.0), {"normalize": True}, 8, 43),
        ("n64_d3_euclid_margin1", 64, 3, "float64", e1, lib("euclidean", margin=1.0), {}, 6,
         44),
        ("n64_d1_euclid_easy_margin3", 64, 1, "float32",
         {**e1, "positive_strategy": "easy", "margin": 3.0},
         lib("euclidean", pos="easy", margin=3.0), {}, 4, 45),
        ("n64_d64_unit_hard_hard", 64, 64, "float32",
         {"soft_margin": False, "margin": 0.5, "strategy": "hard"},
         lib(neg="hard", margin=0.5), {"normalize": True}, 8, 46),
        ("n7_d3_unit_soft", 7, 3, "float32", {}, lib(), {"normalize": True}, 3, 47),
        ("n32_d512_unit_easy_easy", 32, 512, "float32",
         {"positive_strategy": "easy", "strategy": "easy"}, lib(pos="easy", neg="easy"),
         {"normalize": True}, 4, 48),
        ("n24_d2_quantised_euclid", 24, 2, "float64", e1, lib("euclidean", margin=1.0),
         {"quantised": True}, 4, 49),
    ]
    for name, n, d, dt, params, lb, kw, k, seed in R:
        out.append(Case(f"tfsim_rand_{name}", "tf-similarity", "mine", dt, params, lb,
                        rand_batch(n, d, k, **kw), seed=seed, random=True,
                        note=f"random {n} x {d} {dt}, {k} classes {kw or ''}".strip()))
    return out


def tfa_cases() -> list[Case]:
    def lib(fn="semihard", margin=1.0, soft=False, metric="L2"):
        return {"kind": "tfa", "fn": fn, "margin": margin, "soft": soft, "metric": metric}

    hard = {"strategy": "hard", "positive_strategy": "hard"}
    soft = {**hard, "soft_margin": True}
    out = []
    for dt in ("float32", "float64"):
        s = dt[-2:]
        out += [
            Case(f"tfa_C8_semihard_f{s}", "tf-addons", "mine", dt, {}, lib(), fixed(**M),
                 note="C8: every ordered positive pair, semi-hard, fallback farthest",
                 expect={"batch_loss": 0.71875}),
            Case(f"tfa_C8_hard_f{s}", "tf-addons", "mine", dt, hard, lib("hard"), fixed(**M),
                 note="C8: triplet_hard_loss", expect={"batch_loss": 2.0}),
            Case(f"tfa_C8_hard_soft_f{s}", "tf-addons", "mine", dt, soft,
                 lib("hard", soft=True), fixed(**M), note="C8: triplet_hard_loss soft=True",
                 expect={"batch_loss": 1.32279}),
        ]
    out += [
        Case("tfa_C8_semihard_squared_f32", "tf-addons", "mine", "float32",
             {"distance": "squared-euclidean"}, lib(metric="squared-L2"), fixed(**M),
             note="C8 with distance_metric='squared-L2'", expect={"batch_loss": 1.05469}),
        Case("tfa_C8_semihard_margin5_f64", "tf-addons", "mine", "float64", {"margin": 5.0},
             lib(margin=5.0), fixed(**M), note="C8 with margin 5",
             expect={"batch_loss": 4.6875}),
        Case("tfa_semihard_spec7_line_f64", "tf-addons", "mine", "float64", {}, lib(),
             fixed(**SEMIHARD_LINE),
             note="SPEC 7 semi-hard example x = (0, 1, 3, 2, 5), labels (0, 0, 0, 1, 1)"),
        Case("tfa_C7_angular_hard_f32", "tf-addons", "mine", "float32",
             {**hard, "distance": "cosine"}, lib("hard", metric="angular"), fixed(**C7),
             note="C7: distance_metric='angular' (1 - cosine of l2-normalised rows)",
             expect={"batch_loss": 0.666667}),
        Case("tfa_C12_single_class_semihard_f32", "tf-addons", "mine", "float32", {}, lib(),
             fixed(**S), note="C12: no negatives, every pair margin + d_ap",
             expect={"batch_loss": 3.0}),
        Case("tfa_C12_single_class_semihard_squared_f64", "tf-addons", "mine", "float64",
             {"distance": "squared-euclidean"}, lib(metric="squared-L2"), fixed(**S),
             note="C12 squared-L2", expect={"batch_loss": 5.66667}),
        Case("tfa_C12_single_class_hard_f32", "tf-addons", "mine", "float32", hard,
             lib("hard"), fixed(**S), note="C12: = margin", expect={"batch_loss": 1.0}),
        Case("tfa_C12_single_class_soft_f64", "tf-addons", "mine", "float64", soft,
             lib("hard", soft=True), fixed(**S), note="C12 soft: ln 2",
             expect={"batch_loss": 0.693147}),
        Case("tfa_C13_distinct_semihard_f32", "tf-addons", "mine", "float32", {}, lib(),
             fixed(**U), note="C13: no positive pair in the batch: 0/0 = NaN",
             expect={"batch_loss": np.nan}),
        Case("tfa_C13_distinct_hard_f64", "tf-addons", "mine", "float64", hard, lib("hard"),
             fixed(**U), note="C13 hard: d_ap = 0 for every anchor", expect={"batch_loss": 0.0}),
        Case("tfa_C13_distinct_soft_f32", "tf-addons", "mine", "float32", soft,
             lib("hard", soft=True), fixed(**U), note="C13 soft",
             expect={"batch_loss": 0.25115}),
        Case("tfa_C14_singleton_semihard_f32", "tf-addons", "mine", "float32", {}, lib(),
             fixed(**C14), note="C14: only anchors 0 and 1 have pairs: (0.5 + 1.5) / 2",
             expect={"batch_loss": 1.0}),
        Case("tfa_C14_singleton_hard_f64", "tf-addons", "mine", "float64", hard, lib("hard"),
             fixed(**C14), note="C14 hard: anchor 2 counted with d_ap = 0",
             expect={"batch_loss": 0.833333}),
        Case("tfa_C15_duplicates_semihard_f32", "tf-addons", "mine", "float32", {}, lib(),
             fixed(**C15), note="C15: negative identical to the anchor",
             expect={"batch_loss": 1.5}),
        Case("tfa_C15_duplicates_hard_f64", "tf-addons", "mine", "float64", hard, lib("hard"),
             fixed(**C15), note="C15 hard", expect={"batch_loss": 1.33333}),
        Case("tfa_C20_docstring_semihard_f32", "tf-addons", "mine", "float32", {}, lib(),
             fixed(**C20), note="C20: labels (0, 0), no negatives: 1 + 1.41421 - 0",
             expect={"batch_loss": 2.41421}),
        Case("tfa_C20_docstring_hard_f64", "tf-addons", "mine", "float64", hard, lib("hard"),
             fixed(**C20), note="C20 hard: 1.41421 - 1.41421 + 1", expect={"batch_loss": 1.0}),
        Case("tfa_single_row_semihard_f64", "tf-addons", "mine", "float64", {}, lib(),
             fixed(**SINGLE), note="one row: no positive pair, 0/0 = NaN",
             expect={"batch_loss": np.nan}),
        Case("tfa_single_row_hard_f32", "tf-addons", "mine", "float32", hard, lib("hard"),
             fixed(**SINGLE), note="one row: hard loss = margin", expect={"batch_loss": 1.0}),
    ]
    R = [
        ("n64_d64_unit_semihard", 64, 64, "float32", {}, lib(), {"normalize": True}, 8, 51),
        ("n300_d3_semihard", 300, 3, "float64", {}, lib(), {}, 10, 52),
        ("n64_d1_semihard_fallbacks", 64, 1, "float32", {}, lib(), {}, 4, 53),
        ("n32_d8_squared", 32, 8, "float32", {"distance": "squared-euclidean"},
         lib(metric="squared-L2"), {"scale": 0.3}, 4, 54),
        ("n64_d64_unit_hard", 64, 64, "float32", hard, lib("hard"), {"normalize": True}, 8,
         55),
        ("n64_d3_hard_soft", 64, 3, "float64", soft, lib("hard", soft=True), {}, 8, 56),
        ("n64_d64_angular_semihard", 64, 64, "float32", {"distance": "cosine"},
         lib(metric="angular"), {}, 8, 57),
        ("n7_d512_semihard_margin0.2", 7, 512, "float32", {"margin": 0.2}, lib(margin=0.2),
         {"normalize": True}, 3, 58),
        ("n24_d2_quantised_semihard", 24, 2, "float32", {}, lib(), {"quantised": True}, 4, 59),
        ("n24_d2_quantised_hard", 24, 2, "float64", hard, lib("hard"), {"quantised": True}, 4,
         60),
    ]
    for name, n, d, dt, params, lb, kw, k, seed in R:
        out.append(Case(f"tfa_rand_{name}", "tf-addons", "mine", dt, params, lb,
                        rand_batch(n, d, k, **kw), seed=seed, random=True,
                        note=f"random {n} x {d} {dt}, {k} classes {kw or ''}".strip()))
    return out


def pml_cases() -> list[Case]:
    P = "pytorch-metric-learning"

    def clib(margin=0.05, normalize=True, swap=False, smooth=False, reducer="mean-nonzero",
             distance="lp"):
        return {"kind": "pml-compute", "margin": margin, "normalize": normalize, "swap": swap,
                "smooth": smooth, "reducer": reducer, "distance": distance}

    def mlib(miner="none", typ="all", margin=0.05, normalize=True, reducer="mean-nonzero",
             distance="lp"):
        return {"kind": "pml-mine", "miner": miner, "type": typ, "margin": margin,
                "normalize": normalize, "reducer": reducer, "distance": distance}

    raw = {"normalize": False}
    out = [
        Case("pml_C5_given_f32", P, "compute", "float32", raw, clib(normalize=False),
             fixed(**C5), note="C5 as given indices, LpDistance(normalize_embeddings=False)",
             expect={"loss": [0, 1.05, 0], "batch_loss": 1.05}),
        Case("pml_C5_given_meanreducer_f64", P, "compute", "float64",
             {**raw, "reduction": "mean"}, clib(normalize=False, reducer="mean"), fixed(**C5),
             note="C5 with MeanReducer", expect={"batch_loss": 0.35}),
        Case("pml_C5_given_sumreducer_f64", P, "compute", "float64",
             {**raw, "reduction": "sum"}, clib(normalize=False, reducer="sum"), fixed(**C5),
             note="C5 with SumReducer", expect={"batch_loss": 1.05}),
        Case("pml_C5_defaults_f32", P, "compute", "float32", {}, clib(), fixed(**C5),
             note="C5 with PML defaults (normalised rows; the zero rows stay zero)"),
        Case("pml_C6_swap_f64", P, "compute", "float64", {**raw, "swap": True, "margin": 1.0},
             clib(margin=1.0, normalize=False, swap=True), fixed(**C6),
             note="C6 with swap=True, margin 1", expect={"loss": [1.5]}),
        Case("pml_C17_smooth_f64", P, "compute", "float64",
             {**raw, "soft_margin": True, "margin": 0.05},
             clib(normalize=False, smooth=True), fixed(**C17),
             note="C17: smooth_loss, margin 0.05 inside the softplus: softplus(-0.45)",
             expect={"loss": [0.493249]}),
        Case("pml_C17_smooth_collapsed_f32", P, "compute", "float32",
             {**raw, "soft_margin": True, "margin": 0.05},
             clib(normalize=False, smooth=True), fixed(**C17_COLLAPSED),
             note="C17: d_ap = d_an: softplus(0.05)", expect={"loss": [0.718460]}),
        Case("pml_C16_nan_given_f32", P, "compute", "float32", raw, clib(normalize=False),
             fixed(**C16_TORCH),
             note="C16-style NaN input row (NaN from NaN input): no loss passes AvgNonZero's "
                  "filter (NaN > 0 is False, the other loss is 0), and its 'zero' is "
                  "sum(embeddings * 0), which is NaN",
             artefact="ARTEFACT: AvgNonZeroReducer drops NaN losses; with nothing left it "
                      "returns sum(embeddings * 0)"),
    ]
    R = [
        ("n7_d3", 7, 3, "float32", {}, clib(), {}, 61),
        ("n64_d64", 64, 64, "float32", {}, clib(), {}, 62),
        ("n300_d3", 300, 3, "float64", {}, clib(), {}, 63),
        ("n8_d512", 8, 512, "float32", {}, clib(), {}, 64),
        ("n64_d3_swap", 64, 3, "float64", {"swap": True}, clib(swap=True), {}, 65),
        ("n64_d64_raw_margin1_mean", 64, 64, "float64",
         {**raw, "margin": 1.0, "reduction": "mean"},
         clib(margin=1.0, normalize=False, reducer="mean"), {"scale": 0.15}, 66),
        ("n64_d3_smooth", 64, 3, "float32", {"soft_margin": True, "margin": 0.05},
         clib(smooth=True), {}, 67),
        ("n64_d64_sum", 64, 64, "float64", {"reduction": "sum"}, clib(reducer="sum"), {}, 68),
        ("n8_d3_dup", 8, 3, "float32", {}, clib(), {"dup": "ap"}, 69),
        ("n1_d3", 1, 3, "float64", {}, clib(), {}, 70),
        ("n7_d64_none", 7, 64, "float64", {"reduction": "none"}, clib(reducer="none"), {}, 80),
    ]
    for name, n, d, dt, params, lb, kw, seed in R:
        out.append(Case(f"pml_rand_{name}", P, "compute", dt, params, lb,
                        rand_triplets(n, d, **kw), seed=seed, random=True,
                        note=f"random {n} x {d} {dt} {kw or ''}".strip()))

    m1 = {"normalize": False, "margin": 1.0}
    m02 = {"normalize": False, "margin": 0.2}
    counts = {0.2: {"hard": 11, "semi-hard": 0, "easy": 7},
              1.0: {"hard": 11, "semi-hard": 4, "easy": 3}}
    # TripletMarginMiner types are our batch-all ("strategy": "all") filtered by d_an - d_ap
    # against the margin ("margin_filter": violating = its "all", hard, semi-hard, easy).
    for margin, mp in ((0.2, m02), (1.0, m1)):
        for strat, typ in (("hard", "hard"), ("semi-hard", "semihard"), ("easy", "easy")):
            dt = "float32" if strat == "semi-hard" else "float64"
            out.append(Case(
                f"pml_C10_tmm_{typ}_margin{margin:g}_f{dt[-2:]}", P, "mine", dt,
                {**mp, "strategy": "all", "margin_filter": strat},
                mlib("tmm", typ=typ, margin=margin, normalize=False), fixed(**M),
                note=f"C10: TripletMarginMiner(margin={margin:g}, type_of_triplets='{typ}') + "
                     f"TripletMarginLoss(margin={margin:g}); with m = d_an - d_ap the miner "
                     "keeps hard: m <= 0, semihard: 0 < m <= margin, easy: m > margin, over "
                     "every (anchor, positive, negative); (0,2,4) and (1,2,4) have m = 1 "
                     "exactly",
                expect={"count": counts[margin][strat]}))
    out += [
        Case("pml_C10_batchhard_f32", P, "mine", "float32",
             {**m1, "strategy": "hard", "positive_strategy": "hard"},
             mlib("batchhard", margin=1.0, normalize=False), fixed(**M),
             note="C10: BatchHardMiner -> (0,2,3), (1,2,3), (2,0,3), (3,4,1), (4,3,2); "
                  "TripletMarginLoss(margin=1), AvgNonZero",
             expect={"batch_loss": 2.0, "count": 5}),
        Case("pml_C9_batch_all_f64", P, "mine", "float64", {**m1, "strategy": "all"},
             mlib("none", margin=1.0, normalize=False), fixed(**M),
             note="C9: TripletMarginLoss(margin=1) without a miner: all 18 triplets, "
                  "AvgNonZero over the 13 active", expect={"batch_loss": 1.59615}),
        Case("pml_C9_batch_all_meanreducer_f32", P, "mine", "float32",
             {**m1, "strategy": "all", "reduction": "mean"},
             mlib("none", margin=1.0, normalize=False, reducer="mean"), fixed(**M),
             note="C9: MeanReducer over all 18 triplets", expect={"batch_loss": 1.15278}),
        Case("pml_C11_defaults_f32", P, "mine", "float32", {"strategy": "all"}, mlib("none"),
             fixed(**M),
             note="C11: TripletMarginLoss() with PML defaults on M (normalised: the zero row "
                  "stays (0,0), the others become (1,0)), no miner",
             expect={"batch_loss": 0.3}),
        Case("pml_C11_X4_f64", P, "mine", "float64", {"strategy": "all"}, mlib("none"),
             fixed(**C11X), note="C11: X = {(0,0), (2,0), (1,1), (0,3)}, defaults",
             expect={"batch_loss": 0.108658}),
        Case("pml_C11_X4_cosine_f32", P, "mine", "float32",
             {"strategy": "all", "distance": "cosine", "margin": 0.2},
             mlib("none", margin=0.2, distance="cosine"), fixed(**C11X),
             note="C11: CosineSimilarity(), margin 0.2 (s_an - s_ap = d_ap - d_an for "
                  "d = 1 - s)", expect={"batch_loss": 0.341421}),
        Case("pml_C12_single_class_f32", P, "mine", "float32", {**m1, "strategy": "all"},
             mlib("none", margin=1.0, normalize=False), fixed(**S), note="C12: no triplets, loss 0",
             expect={"batch_loss": 0.0, "count": 0}),
        Case("pml_C13_distinct_f64", P, "mine", "float64", {**m1, "strategy": "all"},
             mlib("none", margin=1.0, normalize=False), fixed(**U), note="C13: no triplets, loss 0",
             expect={"batch_loss": 0.0, "count": 0}),
        Case("pml_C14_singleton_f32", P, "mine", "float32", {**m1, "strategy": "all"},
             mlib("none", margin=1.0, normalize=False), fixed(**C14),
             note="C14: anchors 0 and 1 only", expect={"batch_loss": 1.0}),
        Case("pml_C15_duplicates_f64", P, "mine", "float64", {**m1, "strategy": "all"},
             mlib("none", margin=1.0, normalize=False), fixed(**C15), note="C15",
             expect={"batch_loss": 1.5}),
        Case("pml_C16_nan_f32", P, "mine", "float32", {**m1, "strategy": "all"},
             mlib("none", margin=1.0, normalize=False), fixed(**M_NAN),
             note="C16: M with v_4 = NaN: the NaN triplets are dropped by AvgNonZero",
             expect={"batch_loss": 1.58333},
             artefact="ARTEFACT: AvgNonZeroReducer silently drops NaN losses"),
    ]
    R = [
        ("n32_d8_all", 32, 8, "float32", {"strategy": "all"}, mlib("none"), {}, 4, 71),
        ("n32_d8_hard_margin0.2", 32, 8, "float32",
         {"strategy": "all", "margin_filter": "hard", "margin": 0.2},
         mlib("tmm", typ="hard", margin=0.2), {}, 4, 72),
        ("n48_d16_semihard_margin0.2", 48, 16, "float64",
         {"strategy": "all", "margin_filter": "semi-hard", "margin": 0.2},
         mlib("tmm", typ="semihard", margin=0.2), {}, 6,
         73),
        ("n32_d3_easy_margin0.2", 32, 3, "float64",
         {"strategy": "all", "margin_filter": "easy", "margin": 0.2},
         mlib("tmm", typ="easy", margin=0.2), {}, 4, 74),
        ("n64_d64_batchhard", 64, 64, "float32",
         {"strategy": "hard", "positive_strategy": "hard"}, mlib("batchhard"), {}, 8, 75),
        ("n300_d3_batchhard_margin0.2", 300, 3, "float64",
         {"strategy": "hard", "positive_strategy": "hard", "margin": 0.2},
         mlib("batchhard", margin=0.2), {}, 10, 76),
        ("n24_d2_quantised_batchhard_raw", 24, 2, "float64",
         {"strategy": "hard", "positive_strategy": "hard", **m1},
         mlib("batchhard", margin=1.0, normalize=False), {"quantised": True}, 4, 77),
        ("n24_d2_quantised_all_raw", 24, 2, "float32", {"strategy": "all", **m1},
         mlib("none", margin=1.0, normalize=False), {"quantised": True}, 4, 78),
        ("n7_d512_all", 7, 512, "float32", {"strategy": "all"}, mlib("none"), {}, 3, 79),
    ]
    for name, n, d, dt, params, lb, kw, k, seed in R:
        out.append(Case(f"pml_rand_{name}", P, "mine", dt, params, lb,
                        rand_batch(n, d, k, **kw), seed=seed, random=True,
                        note=f"random {n} x {d} {dt}, {k} classes {kw or ''}".strip()))
    return out


def sbert_cases() -> list[Case]:
    P = "sentence-transformers"

    def clib(metric="euclidean", margin=5.0):
        return {"kind": "sbert-compute", "metric": metric, "margin": margin}

    def mlib(loss="hard", metric="euclidean", margin=5.0):
        return {"kind": "sbert-mine", "loss": loss, "metric": metric, "margin": margin}

    hard = {"strategy": "hard", "positive_strategy": "hard"}
    semi = {"strategy": "semi-hard", "positive_strategy": "all"}
    ball = {"strategy": "all", "positive_strategy": "all", "reduction": "mean-nonzero"}
    soft = {**hard, "soft_margin": True}
    out = [
        Case("sbert_C5_f32", P, "compute", "float32", {}, clib(), fixed(**C5),
             note="C5, TripletLoss defaults (Euclidean, margin 5): live 6.2.0 gives 3.33333; "
                  "CONFORMANCE.md's 6.66667 is v5.0-5.3 (negated distances, fixed in 5.4.0)",
             expect={"batch_loss": 3.33333}),
        Case("sbert_C5_margin1_f64", P, "compute", "float64", {"margin": 1.0},
             clib(margin=1.0), fixed(**C5), note="C5, margin 1",
             expect={"batch_loss": 0.666667}),
        Case("sbert_C19_cosine_f32", P, "compute", "float32", {"distance": "cosine"},
             clib("cosine"), fixed(**C19),
             note="C19 rows with the COSINE metric; accuracy 1/3 (the exact tie in row 2 "
                  "counts as wrong)"),
        Case("sbert_C19_euclid_f64", P, "compute", "float64", {}, clib(), fixed(**C19),
             note="C19 rows with the Euclidean metric; accuracy 1/3"),
        Case("sbert_seed_b2a_f64", P, "compute", "float64", {"margin": 1.0}, clib(margin=1.0),
             fixed(**SEED_B2A), note="SPEC 7 seed B2a under Euclidean (not squared) distance"),
    ]
    R = [
        ("n7_d3", 7, 3, "float32", {}, clib(), {}, 81),
        ("n64_d64_raw", 64, 64, "float32", {}, clib(), {"scale": 0.5}, 82),
        ("n7_d512_f64", 7, 512, "float64", {}, clib(), {"scale": 0.2}, 83),
        ("n64_d64_cosine", 64, 64, "float32", {"distance": "cosine", "margin": 0.5},
         clib("cosine", 0.5), {}, 84),
        ("n64_d3_manhattan", 64, 3, "float64", {"distance": "manhattan", "margin": 1.0},
         clib("manhattan", 1.0), {}, 85),
        ("n300_d3_unit_margin0.5", 300, 3, "float64", {"margin": 0.5}, clib(margin=0.5),
         {"normalize": True}, 86),
        ("n7_d3_dup", 7, 3, "float32", {"margin": 1.0}, clib(margin=1.0), {"dup": "ap"}, 87),
    ]
    for name, n, d, dt, params, lb, kw, seed in R:
        out.append(Case(f"sbert_rand_{name}", P, "compute", dt, params, lb,
                        rand_triplets(n, d, **kw), seed=seed, random=True,
                        note=f"random {n} x {d} {dt} {kw or ''}".strip()))

    for dt in ("float32", "float64"):
        s = dt[-2:]
        out += [
            Case(f"sbert_C8_batchhard_margin1_f{s}", P, "mine", dt, {**hard, "margin": 1.0},
                 mlib(margin=1.0), fixed(**M), note="C8: BatchHardTripletLoss(margin=1)",
                 expect={"batch_loss": 2.0}),
            Case(f"sbert_C8_semihard_margin1_f{s}", P, "mine", dt, {**semi, "margin": 1.0},
                 mlib("semihard", margin=1.0), fixed(**M),
                 note="C8: BatchSemiHardTripletLoss(margin=1)", expect={"batch_loss": 0.71875}),
        ]
    out += [
        Case("sbert_C8_batchhard_f32", P, "mine", "float32", hard, mlib(), fixed(**M),
             note="C8: BatchHardTripletLoss defaults (margin 5)", expect={"batch_loss": 6.0}),
        Case("sbert_C8_semihard_f64", P, "mine", "float64", semi, mlib("semihard"),
             fixed(**M), note="C8: BatchSemiHardTripletLoss defaults (margin 5)",
             expect={"batch_loss": 4.6875}),
        Case("sbert_C9_batchall_margin1_f32", P, "mine", "float32", {**ball, "margin": 1.0},
             mlib("all", margin=1.0), fixed(**M),
             note="C9: BatchAllTripletLoss(margin=1): sum / #(losses > 1e-16)",
             expect={"batch_loss": 1.59615}),
        Case("sbert_C8_softmargin_f64", P, "mine", "float64", soft, mlib("soft"), fixed(**M),
             note="C8: BatchHardSoftMarginTripletLoss", expect={"batch_loss": 1.32279}),
        Case("sbert_C12_single_class_semihard_f32", P, "mine", "float32",
             {**semi, "margin": 1.0}, mlib("semihard", margin=1.0), fixed(**S),
             note="C12: no negatives", expect={"batch_loss": 3.0}),
        Case("sbert_C12_single_class_semihard_margin5_f64", P, "mine", "float64", semi,
             mlib("semihard"), fixed(**S), note="C12, margin 5", expect={"batch_loss": 7.0}),
        Case("sbert_C12_single_class_batchhard_f32", P, "mine", "float32",
             {**hard, "margin": 1.0}, mlib(margin=1.0), fixed(**S), note="C12: = margin",
             expect={"batch_loss": 1.0}),
        Case("sbert_C12_single_class_batchall_f64", P, "mine", "float64", ball,
             mlib("all"), fixed(**S), note="C12: no triplets, 0",
             expect={"batch_loss": 0.0}),
        Case("sbert_C13_distinct_semihard_f32", P, "mine", "float32", {**semi, "margin": 1.0},
             mlib("semihard", margin=1.0), fixed(**U),
             note="C13: no positive pair; 6.2.0 divides by num_positives.clamp(min=1e-16): "
                  "0, where CONFORMANCE.md (older 0/0) says NaN"),
        Case("sbert_C13_distinct_batchhard_f64", P, "mine", "float64", hard, mlib(),
             fixed(**U), note="C13: margin 5 - (distance to the nearest row)",
             expect={"batch_loss": 3.66667}),
        Case("sbert_C13_distinct_batchhard_margin1_f32", P, "mine", "float32",
             {**hard, "margin": 1.0}, mlib(margin=1.0), fixed(**U), note="C13, margin 1",
             expect={"batch_loss": 0.0}),
        Case("sbert_C13_distinct_batchall_f32", P, "mine", "float32", ball, mlib("all"),
             fixed(**U), note="C13: no triplets, 0", expect={"batch_loss": 0.0}),
        Case("sbert_C14_singleton_batchhard_f64", P, "mine", "float64",
             {**hard, "margin": 1.0}, mlib(margin=1.0), fixed(**C14),
             note="C14: anchor 2 counted with d_ap = 0", expect={"batch_loss": 0.833333}),
        Case("sbert_C15_duplicates_batchhard_f32", P, "mine", "float32",
             {**hard, "margin": 1.0}, mlib(margin=1.0), fixed(**C15), note="C15",
             expect={"batch_loss": 1.33333}),
    ]
    R = [
        ("n64_d64_unit_batchhard", 64, 64, "float32", {**hard, "margin": 0.5},
         mlib(margin=0.5), {"normalize": True}, 8, 91),
        ("n64_d64_unit_semihard", 64, 64, "float32", {**semi, "margin": 0.5},
         mlib("semihard", margin=0.5), {"normalize": True}, 8, 92),
        ("n300_d3_semihard", 300, 3, "float64", semi, mlib("semihard"), {}, 10, 93),
        ("n64_d3_batchall", 64, 3, "float32", ball, mlib("all"), {}, 8, 94),
        ("n64_d64_batchall_margin1", 64, 64, "float64", {**ball, "margin": 1.0},
         mlib("all", margin=1.0), {"scale": 0.15}, 8, 95),
        ("n64_d3_softmargin", 64, 3, "float32", soft, mlib("soft"), {}, 8, 96),
        ("n64_d1_semihard_fallbacks", 64, 1, "float64", {**semi, "margin": 1.0},
         mlib("semihard", margin=1.0), {}, 4, 97),
        ("n32_d8_cosine_batchhard", 32, 8, "float32", {**hard, "distance": "cosine",
                                                       "margin": 0.5},
         mlib(metric="cosine", margin=0.5), {}, 4, 98),
        ("n32_d8_squared_semihard", 32, 8, "float64",
         {**semi, "distance": "squared-euclidean", "margin": 1.0},
         mlib("semihard", metric="squared", margin=1.0), {"scale": 0.3}, 4, 99),
        ("n24_d2_quantised_batchall", 24, 2, "float32", {**ball, "margin": 1.0},
         mlib("all", margin=1.0), {"quantised": True}, 4, 100),
        ("n24_d2_quantised_semihard", 24, 2, "float64", {**semi, "margin": 1.0},
         mlib("semihard", margin=1.0), {"quantised": True}, 4, 101),
    ]
    for name, n, d, dt, params, lb, kw, k, seed in R:
        out.append(Case(f"sbert_rand_{name}", P, "mine", dt, params, lb,
                        rand_batch(n, d, k, **kw), seed=seed, random=True,
                        note=f"random {n} x {d} {dt}, {k} classes {kw or ''}".strip()))
    return out


def all_cases() -> list[Case]:
    return [*torch_cases(), *mlx_cases("mlx"), *mlx_cases("mlx-legacy"), *tfsim_cases(),
            *tfa_cases(), *pml_cases(), *sbert_cases()]


# ============================================================================================
# exact float64 distances (guard bands and tolerance scales)
# ============================================================================================


def lib_margin(lib: dict) -> float:
    m = lib.get("margin")
    return 0.0 if m is None else abs(float(m))


def ref_metric(lib: dict) -> tuple[str, float, bool]:
    """(metric, p, normalise first) describing the library's distance without any eps."""
    kind = lib["kind"]
    if kind in ("torch", "mlx", "mlx-legacy"):
        return "minkowski", float(lib["p"]), False
    if kind in ("pml-compute", "pml-mine"):
        if lib["distance"] == "cosine":
            return "cosine", 2.0, False
        return "minkowski", 2.0, bool(lib["normalize"])
    if kind == "sbert-compute":
        return {"euclidean": ("minkowski", 2.0, False), "cosine": ("cosine", 2.0, False),
                "manhattan": ("minkowski", 1.0, False)}[lib["metric"]]
    if kind == "sbert-mine":
        return {"euclidean": ("minkowski", 2.0, False), "squared": ("squared", 2.0, False),
                "cosine": ("cosine", 2.0, False)}[lib["metric"]]
    if kind == "tfa":
        return {"L2": ("minkowski", 2.0, False), "squared-L2": ("squared", 2.0, False),
                "angular": ("cosine", 2.0, False)}[lib["metric"]]
    if kind == "tfsim":
        return {"euclidean": ("minkowski", 2.0, False), "cosine": ("dot", 2.0, False)}[
            lib["distance"]]
    raise ValueError(kind)


def _unit(x: np.ndarray) -> np.ndarray:
    nrm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(nrm > 0, x / np.where(nrm > 0, nrm, 1.0), 0.0)


def ref_dist(x: np.ndarray, y: np.ndarray, lib: dict) -> np.ndarray:
    """Row-wise (broadcasting) distance between x and y in float64."""
    metric, p, normalise = ref_metric(lib)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if normalise:
        x, y = _unit(x), _unit(y)
    if metric == "minkowski":
        diff = np.abs(x - y)
        if p == 2.0:
            return np.sqrt(np.sum(diff * diff, axis=-1))
        return np.power(np.sum(np.power(diff, p), axis=-1), 1.0 / p)
    if metric == "squared":
        return np.sum((x - y) ** 2, axis=-1)
    if metric == "cosine":
        return 1.0 - np.sum(_unit(x) * _unit(y), axis=-1)
    if metric == "dot":
        return np.maximum(1.0 - np.sum(x * y, axis=-1), 0.0)
    raise ValueError(metric)


def ref_pdist(x: np.ndarray, lib: dict) -> np.ndarray:
    return ref_dist(x[:, None, :], x[None, :, :], lib)


def guard_ok(case: Case, inputs: dict) -> bool:
    """No triplet within a guard band of a decision boundary (random cases only)."""
    rel = 1e-6 if case.dtype == "float32" else 1e-10
    margin = lib_margin(case.lib)
    if case.op == "compute":
        d_ap = ref_dist(inputs["anchors"], inputs["positives"], case.lib)
        d_an = ref_dist(inputs["anchors"], inputs["negatives"], case.lib)
        if case.lib.get("swap"):
            d_an = np.minimum(d_an, ref_dist(inputs["positives"], inputs["negatives"],
                                             case.lib))
        band = rel * (np.abs(d_ap) + np.abs(d_an) + margin + 1e-30)
        return bool(np.all(np.abs(d_ap - d_an + margin) > band))
    x, y = inputs["embeddings"], inputs["labels"]
    if case.random and case.name.find("quantised") >= 0:
        return True  # exact arithmetic: ties are exact, not accidents of rounding
    d = ref_pdist(x, case.lib)
    band = rel * max(float(np.median(d)), 1e-30)
    for a in range(len(y)):
        pos = (y == y[a]) & (np.arange(len(y)) != a)
        neg = y != y[a]
        if not pos.any() or not neg.any():
            continue
        m = d[a, neg][None, :] - d[a, pos][:, None]
        if np.any(np.abs(m) < band) or np.any(np.abs(m - margin) < band):
            return False
    return True


def make_inputs(case: Case) -> dict:
    seed = case.seed
    for _ in range(50):
        raw = case.make(seed)
        inputs = {k: (np.asarray(v, dtype=np.int64) if k == "labels"
                      else np.asarray(v, dtype=case.dtype)) for k, v in raw.items()}
        if not case.random or guard_ok(case, inputs):
            case.seed = seed
            return inputs
        seed += 1000
    raise RuntimeError(f"{case.name}: no seed passes the guard band")


def scales(case: Case, inputs: dict, result: dict) -> dict:
    """Magnitudes the tests' relative tolerances refer to (see README)."""
    margin = lib_margin(case.lib)
    if case.op == "compute":
        s = (ref_dist(inputs["anchors"], inputs["positives"], case.lib)
             + ref_dist(inputs["anchors"], inputs["negatives"], case.lib) + margin)
        s = np.nan_to_num(s, nan=0.0)
        red = case.lib.get("reduction", case.lib.get("reducer", "mean"))
        if case.lib["kind"] in ("sbert-compute",):
            red = "mean"
        if np.ndim(result["batch_loss"]) > 0:
            b = s
        elif red == "sum":
            b = np.float64(s.sum())
        else:
            b = np.float64(s.mean() if s.size else margin)
        return {"loss_scale": s, "batch_loss_scale": b}
    x = inputs["embeddings"]
    d = ref_pdist(x, case.lib)
    n = len(x)
    off = d[~np.eye(n, dtype=bool)] if n > 1 else np.zeros(1)
    dist_scale = float(np.nanmean(off)) if np.isfinite(off).any() else 0.0
    return {"distance_scale": np.float64(dist_scale),
            "batch_loss_scale": np.float64(2 * dist_scale + margin)}


# ============================================================================================
# artefacts: anchors without a positive or a negative that a library still counts
# ============================================================================================

ARTEFACT_TEXT = {
    "tfsim": "ARTEFACT: TF Similarity counts every anchor; one without a positive/negative gets "
             "distances from the +-1e-6 offsets and index 0 of algebra.masked_max/masked_min",
    "tfa-hard": "ARTEFACT: triplet_hard_loss averages over every anchor; one without positives "
                "gets d_ap = 0 (row minimum), one without negatives d_an = row maximum",
    "tfa-semihard": "ARTEFACT: an anchor with positives but no negative gets d_an = 0 (the row "
                    "minimum from _masked_maximum), so each of its pairs counts margin + d_ap",
    "sbert-hard": "ARTEFACT: BatchHard(SoftMargin)TripletLoss averages over every anchor; one "
                  "without positives gets d_ap = 0, one without negatives d_an = row maximum",
    "sbert-semihard": "ARTEFACT: BatchSemiHardTripletLoss gives an anchor with positives but no "
                      "negative d_an = row minimum (0), so each of its pairs counts margin + d_ap",
}


def _family(lib: dict) -> str | None:
    kind = lib["kind"]
    if kind == "tfsim":
        return "tfsim"
    if kind == "tfa":
        return "tfa-semihard" if lib["fn"] == "semihard" else "tfa-hard"
    if kind == "sbert-mine" and lib["loss"] != "all":
        return "sbert-semihard" if lib["loss"] == "semihard" else "sbert-hard"
    return None  # PML and BatchAll only ever form real triplets


def anchor_validity(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    same = y[:, None] == y[None, :]
    has_pos = (same.sum(axis=1) - 1) > 0
    has_neg = (~same).any(axis=1)
    return has_pos, has_neg


def artefact_of(case: Case, inputs: dict) -> str:
    if case.op != "mine":
        return case.artefact
    fam = _family(case.lib)
    if fam is None:
        return case.artefact
    has_pos, has_neg = anchor_validity(inputs["labels"])
    bad = (has_pos & ~has_neg) if fam.endswith("semihard") else ~(has_pos & has_neg)
    return ARTEFACT_TEXT[fam] if bad.any() else case.artefact


def _tfa_args(lib: dict) -> tuple[str, float, bool]:
    """(TF Addons distance_metric, margin, soft) equivalent to a TFA or sbert batch loss."""
    if lib["kind"] == "tfa":
        return lib["metric"], lib["margin"], lib["soft"]
    metric = {"euclidean": "L2", "squared": "squared-L2", "cosine": "angular"}[lib["metric"]]
    return metric, lib["margin"], lib["loss"] == "soft"


def per_anchor_reference(case: Case, inputs: dict):
    """float64 transcription of the library's loss: full value and the value restricted to the
    anchors that have a positive and a negative (None when no such anchor/pair exists).

    sentence-transformers' BatchHard/BatchHardSoftMargin/BatchSemiHard losses compute exactly
    TF Addons' triplet_hard_loss / triplet_semihard_loss (same masks, same fallbacks), so the TF
    Addons transcription serves for them; the full value is checked against the live number.
    """
    x, y = inputs["embeddings"], inputs["labels"]
    has_pos, has_neg = anchor_validity(y)
    valid = has_pos & has_neg
    fam = _family(case.lib)
    if fam == "tfsim":
        lib = case.lib
        per = tr.tfsim_triplet_loss(y, x, distance=lib["distance"],
                                    positive_mining_strategy=lib["pos"],
                                    negative_mining_strategy=lib["neg"], margin=lib["margin"],
                                    reduction="none")
        return float(per.mean()), (float(per[valid].mean()) if valid.any() else None)
    metric, margin, soft = _tfa_args(case.lib)
    if fam.endswith("hard") and not fam.endswith("semihard"):
        per = tr.tfa_hard_anchor_losses(y, x, margin=margin, soft=soft, distance_metric=metric)
        return float(per.mean()), (float(per[valid].mean()) if valid.any() else None)
    losses, mask = tr.tfa_semihard_pair_losses(y, x, margin=margin, distance_metric=metric)
    with np.errstate(invalid="ignore", divide="ignore"):
        full = float(losses.sum() / mask.sum())
    if case.lib["kind"] == "sbert-mine" and mask.sum() == 0:
        full = 0.0  # 6.2.0 divides by num_positives.clamp(min=1e-16)
    rows = has_neg
    restricted = (float(losses[rows].sum() / mask[rows].sum()) if mask[rows].sum() > 0
                  else None)
    return full, restricted


# ============================================================================================
# live libraries (in this interpreter)
# ============================================================================================


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist).split("+")[0]


def have(module: str) -> bool:
    try:
        __import__(module)
    except Exception:
        return False
    return True


def live_torch(lib, a, p, n):
    import torch
    import torch.nn.functional as F

    A, Pp, N = (torch.from_numpy(np.ascontiguousarray(v)) for v in (a, p, n))
    kw = {"margin": lib["margin"], "p": lib["p"], "eps": lib["eps"], "swap": lib["swap"]}
    per = F.triplet_margin_loss(A, Pp, N, reduction="none", **kw)
    batch = torch.nn.TripletMarginLoss(reduction=lib["reduction"], **kw)(A, Pp, N)
    batch_f = F.triplet_margin_loss(A, Pp, N, reduction=lib["reduction"], **kw)
    assert torch.equal(batch.nan_to_num(7.0), batch_f.nan_to_num(7.0))
    return {"loss": per.double().numpy(), "batch_loss": batch.double().numpy()}


def _pml_distance(lib):
    from pytorch_metric_learning import distances

    if lib["distance"] == "cosine":
        return distances.CosineSimilarity()
    return distances.LpDistance(normalize_embeddings=lib["normalize"], p=2, power=1)


def _pml_reducer(name):
    from pytorch_metric_learning import reducers

    return {"mean-nonzero": reducers.AvgNonZeroReducer, "mean": reducers.MeanReducer,
            "sum": reducers.SumReducer, "none": reducers.DoNothingReducer}[name]()


def _pml_losses(out) -> np.ndarray:
    losses = out["loss"]["losses"]
    if isinstance(losses, int | float):
        return np.zeros(0)
    return losses.detach().double().numpy()


def live_pml_compute(lib, a, p, n):
    import torch
    from pytorch_metric_learning import losses

    emb = torch.from_numpy(np.concatenate([a, p, n]))
    k = a.shape[0]
    ar = torch.arange(k)
    idx = (ar, ar + k, ar + 2 * k)

    def run(reducer):
        fn = losses.TripletMarginLoss(margin=lib["margin"], swap=lib["swap"],
                                      smooth_loss=lib["smooth"], distance=_pml_distance(lib),
                                      reducer=_pml_reducer(reducer))
        return fn(emb, indices_tuple=idx)

    per = _pml_losses(run("none"))
    if lib["reducer"] == "none":  # DoNothingReducer: the per-triplet losses are the output
        return {"loss": per, "batch_loss": per}
    batch = run(lib["reducer"])
    return {"loss": per, "batch_loss": np.float64(batch.item())}


def live_pml_mine(lib, x, y):
    import torch
    from pytorch_metric_learning import losses, miners
    from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

    emb, lab = torch.from_numpy(x), torch.from_numpy(y)
    dist = _pml_distance(lib)
    if lib["miner"] == "tmm":
        trip = miners.TripletMarginMiner(margin=lib["margin"], type_of_triplets=lib["type"],
                                         distance=dist)(emb, lab)
    elif lib["miner"] == "batchhard":
        trip = miners.BatchHardMiner(distance=dist)(emb, lab)
    else:
        trip = lmu.get_all_triplets_indices(lab)

    def loss(reducer, indices):
        fn = losses.TripletMarginLoss(margin=lib["margin"], distance=dist,
                                      reducer=_pml_reducer(reducer))
        return fn(emb, lab, indices)

    batch = loss(lib["reducer"], None if lib["miner"] == "none" else trip)
    if lib["miner"] == "tmm" and lib["type"] == "all":
        # the miner's 'all' set and no miner give the same AvgNonZero batch loss
        plain = loss(lib["reducer"], None)
        if lib["reducer"] == "mean-nonzero":
            assert torch.allclose(batch, plain, equal_nan=True), (batch, plain)
    per = _pml_losses(loss("none", trip))
    mat = dist(emb).detach().double().numpy()
    t = np.stack([v.numpy() for v in trip], axis=1).astype(np.int64).reshape(-1, 3)
    d_ap, d_an = mat[t[:, 0], t[:, 1]], mat[t[:, 0], t[:, 2]]
    if lib["distance"] == "cosine":  # similarity -> distance 1 - s
        d_ap, d_an = 1.0 - d_ap, 1.0 - d_an
    if per.size == 0:
        per = np.zeros(len(t))
    return {"batch_loss": np.float64(batch.item()), "triplets": t, "d_ap": d_ap,
            "d_an": d_an, "loss": per}


def _sbert_losses():
    try:
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers < 5.4
        from sentence_transformers import losses
    return losses


def live_sbert_compute(lib, a, p, n):
    import torch
    import torch.nn.functional as F

    losses = _sbert_losses()
    metric = getattr(losses.TripletDistanceMetric, lib["metric"].upper())
    fn = losses.TripletLoss(model=torch.nn.Module(), distance_metric=metric,
                            triplet_margin=lib["margin"])
    A, Pp, N = (torch.from_numpy(np.ascontiguousarray(v)) for v in (a, p, n))
    batch = fn.compute_loss_from_embeddings([A, Pp, N], None)
    d_ap, d_an = metric(A, Pp), metric(A, N)
    per = F.relu(d_ap - d_an + lib["margin"])
    return {"loss": per.double().numpy(), "batch_loss": np.float64(batch.item()),
            "accuracy": np.float64((d_ap < d_an).double().mean().item())}


def live_sbert_mine(lib, x, y):
    import torch

    losses = _sbert_losses()
    dfun = losses.BatchHardTripletLossDistanceFunction
    metric = {"euclidean": dfun.euclidean_distance, "cosine": dfun.cosine_distance,
              "squared": lambda e: dfun.euclidean_distance(e, squared=True)}[lib["metric"]]
    model = torch.nn.Module()
    if lib["loss"] == "hard":
        fn = losses.BatchHardTripletLoss(model, distance_metric=metric, margin=lib["margin"])
    elif lib["loss"] == "semihard":
        fn = losses.BatchSemiHardTripletLoss(model, distance_metric=metric,
                                             margin=lib["margin"])
    elif lib["loss"] == "all":
        fn = losses.BatchAllTripletLoss(model, distance_metric=metric, margin=lib["margin"])
    else:
        fn = losses.BatchHardSoftMarginTripletLoss(model, distance_metric=metric)
    out = fn.compute_loss_from_embeddings([torch.from_numpy(x)], torch.from_numpy(y))
    return {"batch_loss": np.float64(out.item())}


# ============================================================================================
# transcriptions
# ============================================================================================


def transcribed(case: Case, inputs: dict) -> dict:
    lib = case.lib
    if lib["kind"] in ("mlx", "mlx-legacy"):
        fn = tr.mlx_triplet_loss if lib["kind"] == "mlx" else tr.mlx_legacy_triplet_loss
        args = (inputs["anchors"], inputs["positives"], inputs["negatives"])
        kw = {"p": lib["p"], "margin": lib["margin"], "eps": lib["eps"]}
        return {"loss": fn(*args, **kw, reduction="none"),
                "batch_loss": np.asarray(fn(*args, **kw, reduction=lib["reduction"]))}
    x, y = inputs["embeddings"], inputs["labels"]
    if lib["kind"] == "tfa":
        if lib["fn"] == "semihard":
            v = tr.tfa_triplet_semihard_loss(y, x, margin=lib["margin"],
                                             distance_metric=lib["metric"])
        else:
            v = tr.tfa_triplet_hard_loss(y, x, margin=lib["margin"], soft=lib["soft"],
                                         distance_metric=lib["metric"])
        return {"batch_loss": np.float64(v)}
    if lib["kind"] == "tfsim":
        return {"batch_loss": np.float64(tr.tfsim_triplet_loss(
            y, x, distance=lib["distance"], positive_mining_strategy=lib["pos"],
            negative_mining_strategy=lib["neg"], margin=lib["margin"]))}
    raise ValueError(lib["kind"])


def transcription_source(lib: dict) -> str:
    if lib["kind"] == "mlx":
        return SRC_MLX
    if lib["kind"] == "mlx-legacy":
        return SRC_MLX_LEGACY
    if lib["kind"] == "tfa":
        return SRC_TFA.format(fn="triplet_semihard_loss" if lib["fn"] == "semihard"
                              else "triplet_hard_loss")
    return SRC_TFSIM


# ============================================================================================
# TensorFlow worker (runs in the --tf-python interpreter)
# ============================================================================================


def _load_tfa_triplet():
    """Import tensorflow_addons/losses/triplet.py without the package __init__.

    TF Addons 0.23.0 (end of life) no longer imports on TensorFlow 2.16+ (its utils import
    keras.src.engine); the loss functions themselves are plain TensorFlow. The package modules
    they import are replaced by stubs: types (TensorLike, FloatTensorLike) and the Keras
    LossFunctionWrapper base class of the unused Loss classes.
    """
    import types
    import typing

    root = Path(importlib.util.find_spec("tensorflow_addons").origin).parent
    for name in ("tensorflow_addons", "tensorflow_addons.utils", "tensorflow_addons.losses"):
        mod = types.ModuleType(name)
        mod.__path__ = []
        sys.modules[name] = mod
    tmod = types.ModuleType("tensorflow_addons.utils.types")
    tmod.TensorLike = tmod.FloatTensorLike = typing.Any
    sys.modules[tmod.__name__] = tmod
    kmod = types.ModuleType("tensorflow_addons.utils.keras_utils")
    kmod.LossFunctionWrapper = type("LossFunctionWrapper", (), {"get_config": lambda s: {}})
    sys.modules[kmod.__name__] = kmod

    def load(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod

    ml = load("tensorflow_addons.losses.metric_learning", root / "losses" / "metric_learning.py")
    sys.modules["tensorflow_addons.losses"].metric_learning = ml
    return load("tensorflow_addons.losses.triplet", root / "losses" / "triplet.py")


def tf_worker(jobs_path: str, out_path: str) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    info = {"tensorflow": tf.__version__}
    try:
        from tensorflow_similarity.losses import TripletLoss

        info["tensorflow-similarity"] = _version("tensorflow-similarity")
    except Exception as e:  # pragma: no cover - depends on the environment
        TripletLoss = None
        info["tfsim_error"] = repr(e)
    try:
        tfa = _load_tfa_triplet()
        info["tensorflow-addons"] = _version("tensorflow-addons")
    except Exception as e:  # pragma: no cover
        tfa = None
        info["tfa_error"] = repr(e)
    jobs = json.loads(Path(jobs_path).read_text())
    arrays = np.load(jobs_path + ".npz")
    results = {}
    for i, job in enumerate(jobs):
        x, y = tf.constant(arrays[f"x{i}"]), tf.constant(arrays[f"y{i}"])
        if job["kind"] == "tfsim" and TripletLoss is not None:
            fn = TripletLoss(distance=job["distance"], positive_mining_strategy=job["pos"],
                             negative_mining_strategy=job["neg"], margin=job["margin"])
            results[f"r{i}"] = np.float64(fn(y, x).numpy())
        elif job["kind"] == "tfa" and tfa is not None:
            if job["fn"] == "semihard":
                v = tfa.triplet_semihard_loss(y, x, margin=job["margin"],
                                              distance_metric=job["metric"])
            else:
                v = tfa.triplet_hard_loss(y, x, margin=job["margin"], soft=job["soft"],
                                          distance_metric=job["metric"])
            results[f"r{i}"] = np.float64(v.numpy())
    np.savez(out_path, **results)
    Path(out_path + ".json").write_text(json.dumps(info))


def run_tf_jobs(tf_python: str, cases: list[Case], inputs: dict) -> tuple[dict, dict]:
    jobs, arrays = [], {}
    for c in cases:
        i = len(jobs)
        jobs.append({"name": c.name, **c.lib})
        arrays[f"x{i}"] = inputs[c.name]["embeddings"]
        arrays[f"y{i}"] = inputs[c.name]["labels"]
    with tempfile.TemporaryDirectory() as tmp:
        jp, op = os.path.join(tmp, "jobs.json"), os.path.join(tmp, "out.npz")
        Path(jp).write_text(json.dumps(jobs))
        np.savez(jp + ".npz", **arrays)
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        subprocess.run([tf_python, str(Path(__file__).resolve()), "--tf-worker", jp, op],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        res = dict(np.load(op))
        info = json.loads(Path(op + ".json").read_text())
    by_name = {c.name: res[f"r{i}"] for i, c in enumerate(cases) if f"r{i}" in res}
    return by_name, info


# ============================================================================================
# driver
# ============================================================================================


def tolerance(dtype: str, expected, scale):
    return ATOL[dtype] + RTOL[dtype] * np.maximum(np.abs(expected), scale)


def close(a, b, tol) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(both_nan | (np.abs(a - b) <= tol)))


def fmt(v) -> str:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return f"{float(a):.6g}"
    return "[" + ", ".join(f"{float(t):.6g}" for t in a.ravel()[:6]) + \
        (", ..." if a.size > 6 else "") + "]"


def check_expect(case: Case, result: dict, problems: list[str]) -> None:
    for key, want in case.expect.items():
        if key == "count":
            got = len(result["triplets"])
            ok = got == want
        else:
            got = result[key]
            ok = close(np.asarray(got, np.float64).ravel(), np.ravel(want),
                       5e-6 * np.maximum(np.abs(np.ravel(want)), 1e-3) + 1e-9)
        if not ok:
            problems.append(f"{case.name}: CONFORMANCE.md says {key} = {fmt(want)}, "
                            f"library gives {fmt(got) if key != 'count' else got}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tf-python", default=os.environ.get("TRIPLET_CONF_TF_PYTHON"),
                    help="a Python with tensorflow + tf-keras + tensorflow-similarity + "
                         "tensorflow-addons, to run the float32 TF cases live")
    ap.add_argument("--only", help="only cases whose name contains this text (no writing of "
                                   "the manifest unless all cases run)")
    ap.add_argument("--dry-run", action="store_true", help="compute and check, write nothing")
    ap.add_argument("--tf-worker", nargs=2, metavar=("JOBS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tf_worker:
        tf_worker(*args.tf_worker)
        return 0

    cases = all_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    if args.only:
        cases = [c for c in cases if args.only in c.name]

    live = {
        "torch": have("torch"),
        "pml": have("pytorch_metric_learning"),
        "sbert": have("sentence_transformers"),
    }
    versions = {}
    if live["torch"]:
        versions["torch"] = _version("torch")
    if live["pml"]:
        versions["pml"] = _version("pytorch-metric-learning")
    if live["sbert"]:
        versions["sbert"] = _version("sentence-transformers")
    print("live in this interpreter: " + (", ".join(f"{k} {v}" for k, v in versions.items())
                                          or "nothing"))

    inputs = {c.name: make_inputs(c) for c in cases}

    tf_live, tf_info = {}, {}
    tf_cases = [c for c in cases if c.lib["kind"] in ("tfsim", "tfa") and c.dtype == "float32"]
    if args.tf_python and tf_cases:
        tf_live, tf_info = run_tf_jobs(args.tf_python, tf_cases, inputs)
        print(f"TensorFlow worker ({args.tf_python}): {json.dumps(tf_info)}")
    elif tf_cases:
        print("no --tf-python: TF Similarity / TF Addons cases come from the transcriptions")

    problems: list[str] = []
    manifest = []
    total = 0
    if not args.dry_run:
        FIXTURES.mkdir(parents=True, exist_ok=True)
        if not args.only:
            for old in FIXTURES.glob("*.npz"):
                old.unlink()

    for c in cases:
        inp = inputs[c.name]
        kind = c.lib["kind"]
        ref = None  # float64 recomputation for float32 cases
        if kind == "torch" and live["torch"]:
            args3 = (inp["anchors"], inp["positives"], inp["negatives"])
            res = live_torch(c.lib, *args3)
            src = f"live torch {versions['torch']}"
            if c.dtype == "float32":
                ref = live_torch(c.lib, *(v.astype(np.float64) for v in args3))
        elif kind == "pml-compute" and live["pml"]:
            args3 = (inp["anchors"], inp["positives"], inp["negatives"])
            res = live_pml_compute(c.lib, *args3)
            src = f"live pytorch-metric-learning {versions['pml']}"
            if c.dtype == "float32":
                ref = live_pml_compute(c.lib, *(v.astype(np.float64) for v in args3))
        elif kind == "pml-mine" and live["pml"]:
            res = live_pml_mine(c.lib, inp["embeddings"], inp["labels"])
            src = f"live pytorch-metric-learning {versions['pml']}"
            if c.dtype == "float32":
                ref = live_pml_mine(c.lib, inp["embeddings"].astype(np.float64), inp["labels"])
        elif kind == "sbert-compute" and live["sbert"]:
            args3 = (inp["anchors"], inp["positives"], inp["negatives"])
            res = live_sbert_compute(c.lib, *args3)
            src = f"live sentence-transformers {versions['sbert']}"
            if c.dtype == "float32":
                ref = live_sbert_compute(c.lib, *(v.astype(np.float64) for v in args3))
        elif kind == "sbert-mine" and live["sbert"]:
            res = live_sbert_mine(c.lib, inp["embeddings"], inp["labels"])
            src = f"live sentence-transformers {versions['sbert']}"
            if c.dtype == "float32":
                ref = live_sbert_mine(c.lib, inp["embeddings"].astype(np.float64),
                                      inp["labels"])
        elif kind in ("tfsim", "tfa") and c.name in tf_live:
            res = {"batch_loss": np.float64(tf_live[c.name])}
            if kind == "tfsim":
                src = (f"live tensorflow-similarity {tf_info['tensorflow-similarity']} "
                       f"(TensorFlow {tf_info['tensorflow']}, tf-keras)")
            else:
                src = (f"live tensorflow-addons {tf_info['tensorflow-addons']} "
                       f"(losses/triplet.py on TensorFlow {tf_info['tensorflow']}, package "
                       "imports stubbed)")
            ref = transcribed(c, inp)
        elif kind in ("mlx", "mlx-legacy", "tfsim", "tfa"):
            res = transcribed(c, inp)
            src = transcription_source(c.lib)
        else:
            problems.append(f"{c.name}: library for {kind} not importable; case skipped")
            continue

        sc = scales(c, inp, res)
        if ref is not None:
            for key, skey in (("loss", "loss_scale"), ("batch_loss", "batch_loss_scale")):
                if key in res and skey in sc and not close(
                        res[key], ref[key],
                        0.25 * tolerance(c.dtype, ref[key], sc[skey])):
                    problems.append(f"{c.name}: float32 {key} {fmt(res[key])} differs from "
                                    f"the float64 recomputation {fmt(ref[key])} beyond 1/4 of "
                                    "the tolerance")
            if "triplets" in res and len(res["triplets"]) != len(ref["triplets"]):
                problems.append(f"{c.name}: float32 mined {len(res['triplets'])} triplets, "
                                f"float64 {len(ref['triplets'])}")
        check_expect(c, res, problems)
        artefact = artefact_of(c, inp)
        valid_value = None
        if c.op == "mine" and _family(c.lib) is not None:
            full, valid_value = per_anchor_reference(c, inp)
            if c.lib["kind"] == "sbert-mine" and not close(
                    res["batch_loss"], full,
                    0.25 * tolerance(c.dtype, full, sc["batch_loss_scale"])):
                problems.append(f"{c.name}: live {fmt(res['batch_loss'])} differs from the TF "
                                f"Addons transcription of the same loss {fmt(full)}")

        finite_in = all(np.all(np.isfinite(v)) for k, v in inp.items() if k != "labels")
        outs = [res["batch_loss"], res.get("loss", np.zeros(0))]
        undefined = bool(finite_in and any(np.any(np.isnan(o)) for o in outs))
        note = c.note
        if undefined:
            note = "UNDEFINED: NaN from finite input. " + note
        if artefact:
            note = artefact + ". " + note
        entry = {"name": c.name, "preset": c.preset, "op": c.op, "source": src,
                 "params": c.params, "file": f"{c.name}.npz", "dtype": c.dtype,
                 "undefined": undefined, "note": note}
        arrays = dict(inp)
        if c.op == "compute":
            arrays["loss"] = np.asarray(res["loss"], np.float64)
            if "accuracy" in res:
                arrays["accuracy"] = np.asarray(res["accuracy"], np.float64)
        else:
            for key in ("triplets", "d_ap", "d_an", "loss"):
                if key in res:
                    arrays[key] = np.asarray(res[key],
                                             np.int64 if key == "triplets" else np.float64)
        arrays["batch_loss"] = np.asarray(res["batch_loss"], np.float64)
        arrays.update({k: np.asarray(v, np.float64) for k, v in sc.items()})
        if artefact and valid_value is not None:
            arrays["batch_loss_valid_anchors"] = np.asarray(valid_value, np.float64)
        if c.random:
            arrays["seed"] = np.asarray(c.seed, np.int64)
        arrays["library_call"] = np.asarray(json.dumps(c.lib, sort_keys=True))
        shown = f"{fmt(res['batch_loss'])}"
        if "triplets" in res:
            shown += f" ({len(res['triplets'])} triplets)"
        print(f"{c.name:52s} {src.split(':')[0].split(' (')[0]:34s} "
              f"{'UNDEFINED ' if undefined else ''}{shown}")
        if not args.dry_run:
            path = FIXTURES / entry["file"]
            np.savez_compressed(path, **arrays)
            total += path.stat().st_size
        manifest.append(entry)

    if not args.dry_run and not args.only:
        (FIXTURES / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        total += (FIXTURES / "manifest.json").stat().st_size
        print(f"wrote {len(manifest)} fixtures, {total / 1e6:.2f} MB, to {FIXTURES}")
    by_source: dict[str, int] = {}
    for e in manifest:
        by_source[e["source"]] = by_source.get(e["source"], 0) + 1
    for s, k in sorted(by_source.items()):
        print(f"  {k:4d}  {s}")
    if problems:
        print("\nCHECKS THAT DID NOT HOLD:")
        for p in problems:
            print("  " + p)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
