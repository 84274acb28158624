"""Pin the float64 transcriptions (transcriptions.py) to shared/CONFORMANCE.md and the fixtures.

numpy only. The figures below are the worked cases C1-C20 of CONFORMANCE.md (six significant
digits there, hence rel=1e-5), the TF Similarity and TF Addons docstring/test values they quote,
and the fixtures: every fixture that came from a transcription is recomputed exactly, and every
fixture that came from a live TensorFlow library must be reproduced by the transcription within
the conformance tolerance.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("conformance_transcriptions",
                                               HERE / "transcriptions.py")
tr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tr)

FIXTURES = HERE / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())


def approx(x, rel=1e-5, abs=1e-9):
    return pytest.approx(x, rel=rel, abs=abs, nan_ok=True)


def line(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v, np.zeros_like(v)], axis=1)


M, YM = line([0, 1, 2.25, 1.5, 3.25]), [0, 0, 0, 1, 1]
S, YS = line([0, 1, 3]), [0, 0, 0]
U, YU = line([0, 1, 3]), [0, 1, 2]
C14, Y14 = line([0, 1, 1.5]), [0, 0, 1]
C15, Y15 = line([0, 1, 0]), [0, 0, 1]
C4A = [[1, 2, 3], [1, 2, 3]]
C4P = [[4, 5, 6], [0, -1, 2]]
C4N = [[7, 8, 9], [3, 2, 3]]


# ------------------------------------------------------------------------------------ MLX
@pytest.mark.parametrize("fn", [tr.mlx_triplet_loss, tr.mlx_legacy_triplet_loss])
def test_mlx_c1_c2_eps_inside_the_root(fn):
    assert fn([[0, 0]], [[0, 0]], [[0.5, 0]]) == approx([0.500999])
    assert fn([[0, 0]], [[0, 0]], [[-0.5, 0]]) == approx([0.500999])  # symmetric (C2)
    # d(x, x) = eps^(1/2) = 1e-3 for any dimension
    assert fn([[1, 2, 3]], [[1, 2, 3]], [[1, 2, 3]], margin=0.0) == approx([0.0])


def test_mlx_c3_p1():
    assert tr.mlx_triplet_loss([[0, 0]], [[1, 1]], [[2, 0]], p=1) == approx([1.0])
    assert tr.mlx_triplet_loss([[0, 0]], [[2, 0]], [[0, 3]], p=1) == approx([0.0])
    assert tr.mlx_triplet_loss([[0, 0]], [[2, 0]], [[0, 3]], p=3) == \
        approx([4.62963e-8], abs=1e-13)
    # the p = 1 distances themselves: (2 + 1e-6)^(1/1) = 2.000001
    assert tr.mlx_triplet_loss([[0, 0]], [[1, 1]], [[0, 0]], p=1, margin=0.0) == \
        approx([2.000001 - 1e-6])


def test_mlx_legacy_c3_nan_for_odd_p():
    assert np.isnan(tr.mlx_legacy_triplet_loss([[0, 0]], [[1, 1]], [[2, 0]], p=1)).all()
    assert np.isnan(tr.mlx_legacy_triplet_loss([[0, 0]], [[2, 0]], [[0, 3]], p=1)).all()
    assert np.isnan(tr.mlx_legacy_triplet_loss([[0, 0]], [[2, 0]], [[0, 3]], p=3)).all()
    # even p: defined, but sqrt(sum d^4 + eps) rather than the 4-norm
    got = tr.mlx_legacy_triplet_loss([[0, 0]], [[1, 1]], [[2, 0]], p=4, margin=0.0)
    assert got == approx([max(math.sqrt(2 + 1e-6) - math.sqrt(16 + 1e-6), 0.0)])


@pytest.mark.parametrize("fn", [tr.mlx_triplet_loss, tr.mlx_legacy_triplet_loss])
def test_mlx_c4_unit_test_triplets(fn):
    assert fn(C4A, C4P, C4N) == approx([0.0, 2.31662])
    assert fn(C4A, C4P, C4N, reduction="mean") == approx(1.15831)
    assert fn(C4A, C4P, C4N, reduction="sum") == approx(2.31662)


def test_mlx_c5_eps_activates_the_boundary_triplet():
    a, p, n = [[0, 0], [0, 0], [1, 1]], [[1, 0], [0, 2], [1, 1]], [[2, 0], [1, 0], [4, 5]]
    got = tr.mlx_triplet_loss(a, p, n)
    assert got == approx([2.5e-7, 2.0, 0.0], rel=1e-2)
    assert got[0] > 0  # active under MLX, exactly 0 without eps
    assert tr.mlx_triplet_loss(a, p, n, reduction="mean") == approx(0.666667)


def test_mlx_reduction_must_be_known():
    with pytest.raises(ValueError):
        tr.mlx_triplet_loss(C4A, C4P, C4N, reduction="avg")


# ------------------------------------------------------------------------------ TF Addons
def test_tfa_c8_semihard_and_hard():
    assert tr.tfa_triplet_semihard_loss(YM, M) == 0.71875  # exact: 5.75 / 8
    assert tr.tfa_triplet_semihard_loss(YM, M, distance_metric="squared-L2") == \
        approx(1.05469)
    assert tr.tfa_triplet_semihard_loss(YM, M, margin=5.0) == approx(4.6875)
    assert tr.tfa_triplet_hard_loss(YM, M) == 2.0
    assert tr.tfa_triplet_hard_loss(YM, M, soft=True) == approx(1.32279)


def test_tfa_spec7_semihard_example():
    x, y = line([0, 1, 3, 2, 5]), [0, 0, 0, 1, 1]
    # pairs (0,1): d_an 2 -> 0; (0,2): d_an 5 -> 0; (1,0): closest > 1 is 4 -> 0;
    # (1,2): closest > 2 is 4 -> 0; (2,0): none > 3, farthest 2 -> 2; (2,1): none > 2, farthest
    # 2 -> 1; (3,4): none > 3, farthest 2 -> 2; (4,3): closest > 3 is 5 -> 0: 5 / 8
    assert tr.tfa_triplet_semihard_loss(y, x) == 0.625


def test_tfa_c7_angular():
    x = np.array([[2.0, 0], [1, 1], [0, 1]])
    assert tr.tfa_triplet_hard_loss([0, 0, 1], x, distance_metric="angular") == approx(0.666667)


def test_tfa_c12_single_class():
    assert tr.tfa_triplet_semihard_loss(YS, S) == approx(3.0)
    assert tr.tfa_triplet_semihard_loss(YS, S, distance_metric="squared-L2") == approx(5.66667)
    assert tr.tfa_triplet_hard_loss(YS, S) == approx(1.0)
    assert tr.tfa_triplet_hard_loss(YS, S, soft=True) == approx(math.log(2))


def test_tfa_c13_all_labels_distinct():
    assert np.isnan(tr.tfa_triplet_semihard_loss(YU, U))
    assert tr.tfa_triplet_hard_loss(YU, U) == approx(0.0)
    assert tr.tfa_triplet_hard_loss(YU, U, soft=True) == approx(0.25115)


def test_tfa_c14_c15_c20():
    assert tr.tfa_triplet_semihard_loss(Y14, C14) == approx(1.0)
    assert tr.tfa_triplet_hard_loss(Y14, C14) == approx(0.833333)
    assert tr.tfa_triplet_semihard_loss(Y15, C15) == approx(1.5)
    assert tr.tfa_triplet_hard_loss(Y15, C15) == approx(1.33333)
    x = np.array([[0.0, 1], [1, 0]])
    assert tr.tfa_triplet_semihard_loss([0, 0], x) == approx(2.41421)
    assert tr.tfa_triplet_hard_loss([0, 0], x) == approx(1.0)


# -------------------------------------------------------------------------- TF Similarity
def tfsim(y, x, distance="euclidean", pos="hard", neg="semi-hard", margin=1.0, red="mean"):
    return tr.tfsim_triplet_loss(y, x, distance=distance, positive_mining_strategy=pos,
                                 negative_mining_strategy=neg, margin=margin, reduction=red)


def test_tfsim_c8():
    assert tfsim(YM, M, red="none") == approx([0, 0, 2.25, 1.25, 0.5])
    assert tfsim(YM, M) == approx(0.8)
    assert tfsim(YM, M, margin=None, red="none") == \
        approx([0.313262, 0.313262, 1.50193, 0.825939, 0.474077])
    assert tfsim(YM, M, margin=None) == approx(0.685694)
    assert tfsim(YM, M, neg="hard") == approx(2.0)
    assert tfsim(YM, M, pos="easy") == approx(0.6)
    assert tfsim(YM, M, pos="easy", neg="easy") == approx(0.5)


def test_tfsim_c7_cosine_is_one_minus_dot():
    x = np.array([[2.0, 0], [1, 1], [0, 1]])
    assert tfsim([0, 0, 1], x, "cosine", neg="hard", red="none") == approx([0, 1, 0.999999])
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert tfsim([0, 0, 1], xn, "cosine", neg="hard", red="none") == \
        approx([0.292893, 1, 0.707106], rel=2e-6)


def test_tfsim_c12_c13_c14_c15_artefacts():
    assert tfsim(YS, S, red="none") == approx([4, 2, 1])
    assert tfsim(YS, S) == approx(2.33333)
    assert tfsim(YS, S, neg="hard") == approx(0.999999)
    assert tfsim(YS, S, margin=None) == approx(1.685, rel=1e-3)
    assert tfsim(YU, U) == approx(0.0)
    assert tfsim(YU, U, margin=None) == approx(0.25115)
    assert tfsim(YU, U, pos="easy", red="none") == approx([3.000001, 2.000001, 2.000001])
    assert tfsim(YU, U, pos="easy") == approx(2.33333)
    assert tfsim(Y14, C14, red="none") == approx([0.5, 1.5, 0.499999])
    assert tfsim(Y14, C14) == approx(0.833333)
    assert tfsim(Y15, C15, red="none") == approx([2, 1, 0.999999])
    assert tfsim(Y15, C15) == approx(1.33333)


def test_tfsim_c17_soft_margin():
    # one triplet d_ap = 1, d_an = 1.5 inside a labelled batch: anchor 0 of C14-like rows
    assert tfsim([0, 0, 1], line([0, 1, 1.5]), margin=None, red="none")[0] == approx(0.474077)
    assert tfsim([0, 0, 1, 1], line([0, 1, 2, 3]), margin=None, red="none")[0] == \
        approx(math.log1p(math.exp(-1.0)))  # softplus(-1) = 0.31326169, the library's test
    assert tr.softplus(-1.0) == approx(0.31326169)


def test_tfsim_c18_reference_test():
    x = np.array([[1, 0], [0.5, 0.8660254], [0, 1], [0.01010049, 0.999949]])
    got = tfsim([0, 0, 1, 1], x, "cosine", pos="easy", red="none")
    assert got == approx([0.5101, 1.36603, 0.866076, 0.871082], rel=2e-5)


def test_tfsim_strategy_checks():
    with pytest.raises(ValueError):
        tfsim(YM, M, pos="semi-hard")
    with pytest.raises(ValueError):
        tfsim(YM, M, neg="all")


# ------------------------------------------------------------------------------ fixtures
def _transcribed(lib: dict, f: dict):
    if lib["kind"] in ("mlx", "mlx-legacy"):
        fn = tr.mlx_triplet_loss if lib["kind"] == "mlx" else tr.mlx_legacy_triplet_loss
        kw = {"p": lib["p"], "margin": lib["margin"], "eps": lib["eps"]}
        args = (f["anchors"], f["positives"], f["negatives"])
        return fn(*args, **kw), fn(*args, **kw, reduction=lib["reduction"])
    x, y = f["embeddings"], f["labels"]
    if lib["kind"] == "tfa" and lib["fn"] == "semihard":
        return None, tr.tfa_triplet_semihard_loss(y, x, margin=lib["margin"],
                                                  distance_metric=lib["metric"])
    if lib["kind"] == "tfa":
        return None, tr.tfa_triplet_hard_loss(y, x, margin=lib["margin"], soft=lib["soft"],
                                              distance_metric=lib["metric"])
    return None, tr.tfsim_triplet_loss(y, x, distance=lib["distance"],
                                       positive_mining_strategy=lib["pos"],
                                       negative_mining_strategy=lib["neg"],
                                       margin=lib["margin"])


ULPS = 64


def assert_within_ulps(got, stored, scale) -> None:
    """|got - stored| <= ULPS * spacing(max(|stored|, scale)) elementwise; NaN where NaN.

    A loss is a difference of distances, so its rounding error is in units of the distances'
    size (the fixture's scale), not of the (possibly tiny) loss itself.
    """
    got, stored = np.asarray(got, np.float64), np.asarray(stored, np.float64)
    size = np.maximum(np.abs(np.nan_to_num(stored)), np.asarray(scale, np.float64))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(stored))
    ok = np.isnan(stored) | (np.abs(got - stored) <= ULPS * np.spacing(size))
    assert ok.all(), (got[~ok] if got.ndim else got, stored[~ok] if stored.ndim else stored)


TRANSCRIBED = [c for c in MANIFEST
               if c["source"].startswith("transcription:")
               or c["source"].startswith(("live tensorflow-similarity", "live tensorflow-addons"))]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in TRANSCRIBED])
def test_fixture_reproduced_by_transcription(case):
    with np.load(FIXTURES / case["file"]) as z:
        f = {k: z[k] for k in z.files}
    lib = json.loads(str(f["library_call"]))
    loss, batch = _transcribed(lib, f)
    if case["source"].startswith("transcription:"):
        # Stored by numpy's power/exp/log1p on the generating machine: their SIMD paths differ
        # by a few ULP between CPUs (AVX-512 or not), so the bound is ULPS units in the last
        # place of the value's scale, not equality.
        assert_within_ulps(batch, f["batch_loss"], f["batch_loss_scale"])
        if loss is not None:
            assert_within_ulps(loss, f["loss"], f["loss_scale"])
        return
    # live float32 TensorFlow number vs the float64 transcription: the conformance tolerance
    tol = 1e-7 + 1e-5 * max(abs(float(f["batch_loss"])), float(f["batch_loss_scale"]))
    assert float(batch) == pytest.approx(float(f["batch_loss"]), abs=tol, nan_ok=True)
