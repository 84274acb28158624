"""The library and the CLI refuse bad option values up front and run on any machine size.

Each test here failed before the first-contact fixes: numba's ValueError for more threads than
cores, `pathlib.Path` inputs read as object arrays, typos that silently meant a default
(`pair_reduction="bogus"` was sum, `swap="no"` was True), mine's bad reduction found only after
mining, and `--p` silently ignored by distances other than minkowski.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triplet_cli import TripletLossError, compute_loss, mine_triplets
from triplet_cli._jit import max_threads
from triplet_cli.compute import prepare_compute
from triplet_cli.mine import prepare_mine

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
MISSING = "no-such-file.npy"  # a bad option must be reported before any file is opened


def aligned(n: int = 20, d: int = 4, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, d)) for _ in range(3)]


def labelled(n: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3)), np.arange(n) % 3


# ---- threads ----------------------------------------------------------------------------------
def test_more_threads_than_cores_runs_and_says_so():
    a, p, n = aligned()
    many = max_threads() + 3
    r = compute_loss(a, p, n, threads=many)
    base = compute_loss(a, p, n, threads=1)
    assert r.loss.tobytes() == base.loss.tobytes()
    notes = [w for w in r.summary["warnings"] if "--threads" in w]
    k = max_threads()
    assert notes == [f"--threads {many}: {k} thread{'s' if k > 1 else ''} available here "
                     f"(NUMBA_NUM_THREADS, or the CPUs this process may use); using {k}"]
    x, y = labelled()
    m = mine_triplets(x, y, threads=many)
    assert any(w.startswith(f"--threads {many}:") for w in m.summary["warnings"])


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_usage_errors(threads):
    a, p, n = aligned()
    for call in (lambda: compute_loss(a, p, n, threads=threads),
                 lambda: mine_triplets(*labelled(), threads=threads)):
        with pytest.raises(TripletLossError, match="--threads") as e:
            call()
        assert e.value.exit_code == 2


def test_cli_threads_above_cores_warns_once(cli, tmp_path: Path):
    many = str(max_threads() + 6)
    r = cli("compute", "--anchors", SAMPLE / "anchors.npy", "--positives",
            SAMPLE / "positives.npy", "--negatives", SAMPLE / "negatives.npy",
            "--threads", many, "-f", "json")
    assert r.exit_code == 0
    assert r.stderr.count("--threads") == 1
    r = cli("mine", "--embeddings", SAMPLE / "embeddings.npy", "--labels", SAMPLE / "labels.npy",
            "--threads", many, "-f", "json", "--strategy", "hard")
    assert r.exit_code == 0
    assert r.stderr.count("--threads") == 1


# ---- path-like inputs -------------------------------------------------------------------------
def test_pathlib_paths_are_accepted_everywhere():
    r = compute_loss(SAMPLE / "anchors.npy", SAMPLE / "positives.npy", SAMPLE / "negatives.npy")
    want = compute_loss(*(str(SAMPLE / f) for f in ("anchors.npy", "positives.npy",
                                                     "negatives.npy")))
    assert r.loss.tobytes() == want.loss.tobytes()
    t = compute_loss(embeddings=SAMPLE / "embeddings.npy", triplets=SAMPLE / "triplets.parquet")
    assert t.loss.size > 0
    m = mine_triplets(SAMPLE / "embeddings.npy", SAMPLE / "labels.npy", strategy="hard")
    want_m = mine_triplets(str(SAMPLE / "embeddings.npy"), str(SAMPLE / "labels.npy"),
                           strategy="hard")
    assert m.triplets.tobytes() == want_m.triplets.tobytes()
    labels_from_parquet = mine_triplets(SAMPLE / "labelled.parquet", strategy="hard")
    assert labels_from_parquet.triplets.size > 0


# ---- option values ----------------------------------------------------------------------------
COMPUTE_BAD = [
    ({"distance": "hamming"}, "--distance"),
    ({"pair_reduction": "bogus"}, "--pair-reduction"),
    ({"swap": "no"}, "--swap"),
    ({"reduction": "avg"}, "--reduction"),
    ({"eps_placement": "inside"}, "--eps-placement"),
    ({"normalize": "yes"}, "--normalize"),
    ({"margin": "1"}, "--margin"),
    ({"margin": float("nan")}, "--margin"),
    ({"p": 3.0, "distance": "cosine"}, "--p"),
    ({"p": 3.0, "distance": "euclidean"}, "--p"),
]
MINE_BAD = [
    ({"strategy": "hardest"}, "--strategy"),
    ({"positive_strategy": "farthest"}, "--positive-strategy"),
    ({"reduction": "bogus"}, "--reduction"),
    ({"semi_hard_fallback": "none"}, "--semi-hard-fallback"),
    ({"margin_filter": "soft"}, "--margin-filter"),
    ({"per_anchor": 1.5}, "--per-anchor"),
    ({"active_only": "true"}, "--active-only"),
    ({"distance": "hamming"}, "--distance"),
    ({"p": 1.0, "distance": "manhattan"}, "--p"),
]


@pytest.mark.parametrize(("options", "flag"), COMPUTE_BAD)
def test_bad_compute_options_are_usage_errors_before_any_work(options, flag):
    with pytest.raises(TripletLossError) as e:
        prepare_compute(MISSING, MISSING, MISSING, **options)
    assert e.value.exit_code == 2
    assert flag in str(e.value)


@pytest.mark.parametrize(("options", "flag"), MINE_BAD)
def test_bad_mine_options_are_usage_errors_before_any_work(options, flag):
    with pytest.raises(TripletLossError) as e:
        prepare_mine(MISSING, MISSING, **options)
    assert e.value.exit_code == 2
    assert flag in str(e.value)


def test_good_spellings_still_work():
    a, p, n = aligned()
    assert compute_loss(a, p, n, swap=np.bool_(True), margin=np.float32(0.5),
                        pair_reduction="mean").loss.size == 20
    minkowski = compute_loss(a, p, n, p=3)  # --p alone still selects minkowski
    assert minkowski.summary["params"]["distance"] == "minkowski"
    assert minkowski.summary["params"]["sources"]["distance"] == "implied by --p"
    x, y = labelled()
    assert mine_triplets(x, y, per_anchor=np.int64(2), strategy="hard").triplets.size > 0


@pytest.mark.parametrize("argv", [
    ["mine", "--embeddings", "EMB", "--labels", "LAB", "--fail-above", "nan"],
    ["compute", "--anchors", "A", "--positives", "A", "--negatives", "A", "--p", "3",
     "--distance", "cosine"],
    ["mine", "--embeddings", "EMB", "--labels", "LAB", "--p", "3", "--distance", "euclidean"],
])
def test_cli_usage_errors_are_one_line(cli, argv):
    files = {"EMB": SAMPLE / "embeddings.npy", "LAB": SAMPLE / "labels.npy",
             "A": SAMPLE / "anchors.npy"}
    r = cli(*(files.get(a, a) for a in argv))
    assert r.exit_code == 2
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("triplet-loss: error: ")
