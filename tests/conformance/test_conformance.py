"""Conformance: with --preset, our API reproduces the reference libraries' numbers.

The expected numbers are fixtures (tests/conformance/fixtures/, see README.md there for where each
comes from); no reference library is needed here. Cases whose library output is NaN from finite
input are marked `undefined` in the manifest and are not compared.

Tolerances: 1e-5 relative for float32 inputs, 1e-10 for float64, with an absolute floor of 1e-7 /
1e-12. A triplet loss is a difference of two distances, so "relative" is taken against the larger
of |expected| and the magnitude of the terms it is computed from (`loss_scale` = d_ap + d_an +
|margin| per triplet, `batch_loss_scale` for the batch value, `distance_scale` for mined
distances; the generator stores them in each fixture). A loss that cancels to 1e-3 from distances
of 30 is thus compared at the precision the distances carry.

Two kinds of case accept more than the library's number (SPEC 5 and 6):
* non-finite input (a NaN row): our tool may refuse it as bad input (TripletLossError) instead of
  propagating the NaN the way the library does;
* artefacts (note starting with "ARTEFACT:"): the library counts anchors that have no positive or
  no negative with made-up distances. Our result must carry a warning, and its loss is either the
  library's number (copied, not silently) or the library's loss over the anchors that have both
  (`batch_loss_valid_anchors`, the skip-and-count rule of SPEC 4). When no anchor has both, a
  refusal is accepted too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
RTOL = {"float32": 1e-5, "float64": 1e-10}
ATOL = {"float32": 1e-7, "float64": 1e-12}


def _cases(op: str) -> list:
    return [pytest.param(c, id=c["name"]) for c in MANIFEST
            if c["op"] == op and not c["undefined"]]


def _load(case: dict) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / case["file"]) as z:
        return {k: z[k] for k in z.files}


def _tolerance(dtype: str, expected, scale) -> np.ndarray:
    return ATOL[dtype] + RTOL[dtype] * np.maximum(np.abs(expected), scale)


def _within(got, expected, scale, dtype) -> np.ndarray:
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    both_nan = np.isnan(got) & np.isnan(expected)
    with np.errstate(invalid="ignore"):
        return both_nan | (np.abs(got - expected) <= _tolerance(dtype, expected, scale))


def assert_close(got, expected, scale, dtype: str, what: str, case: dict) -> None:
    assert got is not None, f"{what}: got None, the library gives {expected!r}"
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, \
        f"{what}: shape {got.shape}, the library gives {expected.shape}"
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), expected.shape)
    ok = _within(got, expected, scale, dtype)
    if not ok.all():
        i = np.unravel_index(np.argmin(ok), ok.shape) if ok.ndim else ()
        tol = _tolerance(dtype, expected[i], scale[i])
        raise AssertionError(
            f"{what}: {int((~ok).sum())} of {ok.size} values differ from "
            f"{case['source']}; first at {tuple(int(t) for t in i)}: got {got[i]!r}, "
            f"expected {expected[i]!r} (tolerance {tol:.3g}). Note: {case['note']}")


def _finite_inputs(f: dict) -> bool:
    return all(np.isfinite(f[k]).all() for k in ("anchors", "positives", "negatives",
                                                 "embeddings") if k in f)


def _run(case: dict, f: dict, call):
    """The API's result, or None where refusing is acceptable (non-finite input)."""
    from triplet_cli import TripletLossError

    if _finite_inputs(f):
        return call()
    try:
        return call()
    except TripletLossError:
        return None  # NaN input refused as bad input (SPEC 5): accepted


@pytest.mark.parametrize("case", _cases("compute"))
def test_compute_matches_library(case):
    from triplet_cli import compute_loss

    f = _load(case)
    r = _run(case, f, lambda: compute_loss(f["anchors"], f["positives"], f["negatives"],
                                           preset=case["preset"], **case["params"]))
    if r is None:
        return
    assert_close(r.loss, f["loss"], f["loss_scale"], case["dtype"], "per-triplet loss", case)
    if f["batch_loss"].ndim == 0:
        assert_close(r.summary["loss"], f["batch_loss"], f["batch_loss_scale"], case["dtype"],
                     "batch loss (summary['loss'])", case)
    if "accuracy" in f:
        assert r.summary["accuracy"] == pytest.approx(float(f["accuracy"]), abs=1e-12), \
            "accuracy (d_ap < d_an, ties count as wrong)"


def _sorted_by_indices(t: np.ndarray) -> np.ndarray:
    return np.lexsort((t[:, 2], t[:, 1], t[:, 0]))


def assert_same_triplets(r, f: dict, case: dict) -> None:
    """Equal mined sets: identical indices, or equal up to ties in distance.

    Where distances tie, a library may pick another row than ours (or order them differently), so
    the sets are compared as multisets of (anchor, d_ap, d_an) per anchor.
    """
    dtype = case["dtype"]
    exp_t = f["triplets"].reshape(-1, 3)
    got_t = np.asarray(r.triplets, dtype=np.int64).reshape(-1, 3)
    assert len(got_t) == len(exp_t), \
        f"mined {len(got_t)} triplets, {case['source']} mines {len(exp_t)}. {case['note']}"
    if len(exp_t) == 0:
        return
    got_ap = np.asarray(r.d_ap, dtype=np.float64)
    got_an = np.asarray(r.d_an, dtype=np.float64)
    assert got_ap.shape == (len(got_t),) and got_an.shape == (len(got_t),)
    scale = float(f["distance_scale"])
    if set(map(tuple, got_t.tolist())) == set(map(tuple, exp_t.tolist())):
        og, oe = _sorted_by_indices(got_t), _sorted_by_indices(exp_t)
        assert_close(got_ap[og], f["d_ap"][oe], scale, dtype, "d_ap of the mined triplets", case)
        assert_close(got_an[og], f["d_an"][oe], scale, dtype, "d_an of the mined triplets", case)
        return
    got = np.column_stack([got_t[:, 0], got_ap, got_an])
    exp = np.column_stack([exp_t[:, 0], f["d_ap"], f["d_an"]])
    for a in np.unique(exp_t[:, 0]):
        g, e = got[got[:, 0] == a], exp[exp[:, 0] == a]
        assert len(g) == len(e), \
            f"anchor {a}: {len(g)} triplets, {case['source']} has {len(e)}"
        g = g[np.lexsort((g[:, 2], g[:, 1]))]
        e = e[np.lexsort((e[:, 2], e[:, 1]))]
        if _within(g[:, 1:], e[:, 1:], scale, dtype).all():
            continue
        free = np.ones(len(g), dtype=bool)  # near-ties may sort differently: match greedily
        for row in e:
            hit = free & _within(g[:, 1:], row[1:], scale, dtype).all(axis=1)
            assert hit.any(), (
                f"anchor {a}: the library's triplet with d_ap={row[1]!r}, d_an={row[2]!r} has "
                f"no counterpart among ours. {case['note']}")
            free[np.argmax(hit)] = False


def _check_artefact(case: dict, f: dict, call) -> None:
    from triplet_cli import TripletLossError

    some_valid = "batch_loss_valid_anchors" in f
    try:
        r = call()
    except TripletLossError:
        assert not some_valid, (
            "refused, although some anchors have a positive and a negative; the library gives "
            f"{float(f['batch_loss'])!r} ({case['note']})")
        return
    assert r.summary.get("warnings"), (
        f"the library's number {float(f['batch_loss'])!r} is an artefact here; the report must "
        f"say so in summary['warnings'] (SPEC 6). {case['note']}")
    got = r.summary["loss"]
    dtype, scale = case["dtype"], f["batch_loss_scale"]
    if got is not None and _within(got, f["batch_loss"], scale, dtype).all():
        return  # the library's number, reproduced with a warning
    if not some_valid:
        return  # no anchor has both: whatever we report besides the warning is not comparable
    assert_close(got, f["batch_loss_valid_anchors"], scale, dtype,
                 "batch loss over the anchors that have a positive and a negative "
                 f"(the library's artefact number is {float(f['batch_loss'])!r})", case)


def _no_triplet_possible(labels: np.ndarray) -> bool:
    """One class, or no label twice: the libraries return 0 or NaN, we refuse."""
    _, counts = np.unique(labels, return_counts=True)
    return counts.size < 2 or counts.max() < 2


def _raw_rows_for_tf_similarity(case: dict, f: dict) -> bool:
    """TF Similarity's 1 - x.y is a cosine distance only on unit rows (it assumes them)."""
    x = f["embeddings"].astype(np.float64)
    return (case["preset"] == "tf-similarity" and
            case["params"].get("distance", "cosine") == "cosine" and
            np.abs(np.linalg.norm(x, axis=1) - 1).max() > 1e-3)


@pytest.mark.parametrize("case", _cases("mine"))
def test_mine_matches_library(case):
    from triplet_cli import TripletLossError, mine_triplets

    f = _load(case)

    def call():
        return mine_triplets(f["embeddings"], f["labels"], preset=case["preset"],
                             **case["params"])

    if _no_triplet_possible(f["labels"]):
        with pytest.raises(TripletLossError, match=r"single class|no label occurs twice"):
            call()
        return
    if _raw_rows_for_tf_similarity(case, f):
        assert any("L2-normalised" in w for w in call().summary["warnings"])
        return

    if case["note"].startswith("ARTEFACT:") and _finite_inputs(f):
        _check_artefact(case, f, call)
        return
    r = _run(case, f, call)
    if r is None:
        return
    assert_close(r.summary["loss"], f["batch_loss"], f["batch_loss_scale"], case["dtype"],
                 "batch loss (summary['loss'])", case)
    if "triplets" in f:
        assert_same_triplets(r, f, case)


def test_manifest_is_consistent():
    """Every manifest entry has its file, the documented keys and consistent arrays."""
    keys = {"name", "preset", "op", "source", "params", "file", "dtype", "undefined", "note"}
    names = [c["name"] for c in MANIFEST]
    assert len(names) == len(set(names))
    on_disk = {p.name for p in FIXTURES.glob("*.npz")}
    assert on_disk == {c["file"] for c in MANIFEST}
    for c in MANIFEST:
        assert set(c) == keys, c["name"]
        assert c["op"] in ("compute", "mine") and c["dtype"] in ("float32", "float64")
        assert c["source"].startswith(("live ", "transcription: "))
        f = _load(c)
        if c["op"] == "compute":
            for k in ("anchors", "positives", "negatives"):
                assert f[k].dtype == np.dtype(c["dtype"]), (c["name"], k)
            assert f["loss"].dtype == np.float64 and f["loss"].shape == (len(f["anchors"]),)
        else:
            assert f["embeddings"].dtype == np.dtype(c["dtype"])
            assert f["labels"].dtype == np.int64
            assert f["labels"].shape == (len(f["embeddings"]),)
            if "triplets" in f:
                assert f["triplets"].dtype == np.int64 and f["triplets"].shape[1:] == (3,)
        assert f["batch_loss"].dtype == np.float64
        finite = all(np.isfinite(f[k]).all() for k in ("anchors", "positives", "negatives",
                                                       "embeddings") if k in f)
        nan_out = np.isnan(f["batch_loss"]).any() or ("loss" in f and np.isnan(f["loss"]).any())
        assert c["undefined"] == bool(finite and nan_out), c["name"]
