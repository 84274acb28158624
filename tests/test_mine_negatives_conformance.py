"""mine-negatives with --preset sentence-transformers against the live library's output.

The fixtures (tests/conformance/negatives/, made by generate.py there with sentence-transformers'
util.mine_hard_negatives on a static-embedding model that returns stored rows) hold the inputs,
the mined indices and the library's float32 cosine scores. Indices must be equal; scores agree
within 2e-6 (float32 cosines of normalised rows against our float64 ones). The draws keep every
score near a decision 2e-6 away from the next, so rounding decides nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from triplet_cli.negatives import mine_negatives

HERE = Path(__file__).resolve().parent / "conformance" / "negatives"
MANIFEST = json.loads((HERE / "manifest.json").read_text())
SCORE_TOL = 2e-6


def _load(case: dict) -> dict[str, np.ndarray]:
    with np.load(HERE / case["file"]) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("case", MANIFEST, ids=[c["name"] for c in MANIFEST])
def test_matches_sentence_transformers(case: dict) -> None:
    f = _load(case)
    r = mine_negatives(f["queries"], f["corpus"], f["pairs"], preset="sentence-transformers",
                       **case["params"])
    got = r.columns
    fmt = case["params"].get("output_format", "triplet")
    if fmt == "triplet":
        for ours, theirs in (("anchor", "anchor"), ("positive", "positive"),
                             ("negative", "negative")):
            np.testing.assert_array_equal(got[ours], f[theirs], err_msg=ours)
        np.testing.assert_allclose(got["score_ap"], f["scores"][:, 0], rtol=0, atol=SCORE_TOL)
        np.testing.assert_allclose(got["score_an"], f["scores"][:, 1], rtol=0, atol=SCORE_TOL)
    elif fmt == "n-tuple":
        k = case["params"]["num_negatives"]
        np.testing.assert_array_equal(got["anchor"], f["anchor"])
        np.testing.assert_array_equal(got["positive"], f["positive"])
        ours = np.stack([got[f"negative_{t}"] for t in range(1, k + 1)], axis=1)
        np.testing.assert_array_equal(ours.reshape(-1, k), f["negatives"])
        scores = np.stack([got["score_ap"], *(got[f"score_an_{t}"] for t in range(1, k + 1))],
                          axis=1)
        np.testing.assert_allclose(scores.reshape(-1, k + 1), f["scores"], rtol=0,
                                   atol=SCORE_TOL)
    else:
        np.testing.assert_array_equal(got["anchor"], f["anchor"])
        np.testing.assert_array_equal(got["candidate"], f["candidate"])
        np.testing.assert_array_equal(got["label"], f["label"])
    # The library's printed count of positive and negative scores is ours too.
    counts = next(line for line in case["printed"] if line.startswith("Count")).split()
    assert r.summary["scores"]["positive"]["count"] == int(counts[1].replace(",", ""))
    if fmt != "labeled-pair":
        assert r.summary["scores"]["negative"]["count"] == int(counts[2].replace(",", ""))
