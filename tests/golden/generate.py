"""Write the golden corpus from the package as it is now: `python tests/golden/generate.py`.

Regenerating replaces the numbers every later version is held to: do it only on purpose, and say
so in the commit message (see README.md beside this file).

Writes, beside this file:
- inputs.npz: the random inputs (fixed seeds), stored so that a numpy upgrade cannot change them;
- corpus.json: per case, how it was run (`spec`), its row count, sha256 of its columns, the
  summary's headline values (loss, mean, count) and the distance scale;
- corpus.npz: per case, a sample of up to 200 rows (d_ap, d_an, loss and the triplet) and a
  16-bit digest per chunk of rows (to name the first differing row).
Every library case is run twice, the second time with one numba thread: a case whose rows depend
on the thread count is refused rather than stored.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def _load_runner() -> Any:
    spec = importlib.util.spec_from_file_location("golden_runner", HERE / "runner.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["golden_runner"] = module
    spec.loader.exec_module(module)
    return module


# -- random inputs ------------------------------------------------------------------------------

def _aligned(seed: int, n: int, d: int, dtype: type, scale: float, duplicates: bool = True
             ) -> dict[str, np.ndarray]:
    """Aligned a, p, n with duplicates (p = a, n = a, n = p, all three equal) and zero rows."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d)) * scale
    p = a + 0.7 * scale * rng.standard_normal((n, d))
    neg = rng.standard_normal((n, d)) * scale
    if not duplicates:
        return {"anchors": a.astype(dtype), "positives": p.astype(dtype),
                "negatives": neg.astype(dtype)}
    p[0:5] = a[0:5]
    neg[5:10] = a[5:10]
    neg[10:15] = p[10:15]
    p[15] = neg[15] = a[15]
    a[16] = 0.0
    p[17] = 0.0
    return {"anchors": a.astype(dtype), "positives": p.astype(dtype),
            "negatives": neg.astype(dtype)}


def _clusters(seed: int, m: int, d: int, classes: int, dtype: type, noise: float,
              strings: bool = False) -> dict[str, np.ndarray]:
    """Labelled points around class centres, with exact duplicate rows within and across
    classes (ties: the lowest row index wins)."""
    rng = np.random.default_rng(seed)
    y = np.arange(m) % classes
    rng.shuffle(y)
    centres = rng.standard_normal((classes, d))
    x = centres[y] + noise * rng.standard_normal((m, d))
    same = np.flatnonzero(y == y[0])
    x[same[1]] = x[0]  # a duplicate in the same class
    other = np.flatnonzero(y != y[2])[:2]
    x[other[0]] = x[2]  # duplicates across classes
    x[other[1]] = x[2]
    labels = np.array([f"class-{v:02d}" for v in y]) if strings else y.astype(np.int64)
    return {"x": x.astype(dtype), "y": labels}


def _units(seed: int, m: int, d: int, classes: int, dtype: type) -> dict[str, np.ndarray]:
    """Random unit vectors with random labels: no structure, many near ties."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.integers(0, classes, m).astype(np.int64)
    return {"x": x.astype(dtype), "y": y}


def make_inputs() -> dict[str, np.ndarray]:
    groups: dict[str, dict[str, np.ndarray]] = {
        "a32": _aligned(1, 300, 24, np.float32, 1.0),
        "a64": _aligned(2, 300, 24, np.float64, 3.0),
        "a16": _aligned(3, 100, 8, np.float16, 1.0),
        "c32": _aligned(4, 60 * 4, 16, np.float32, 1.0),
        "c64": _aligned(5, 40 * 5, 12, np.float64, 1.0),
        "one64": _aligned(6, 7, 10, np.float64, 1.0, duplicates=False),
        "clusters32": _clusters(7, 400, 16, 20, np.float32, 0.6),
        "clusters64": _clusters(8, 600, 12, 30, np.float64, 0.8, strings=True),
        "units32": _units(9, 300, 8, 10, np.float32),
        "units64": _units(10, 500, 8, 25, np.float64),
        "small32": _clusters(11, 60, 8, 6, np.float32, 0.7),
        "small64": _units(12, 48, 6, 5, np.float64),
    }
    c32, c64, one = groups["c32"], groups["c64"], groups["one64"]
    groups["c32"] = {"anchors": c32["anchors"][:60],
                     "positives": c32["positives"][:180].reshape(60, 3, 16),
                     "negatives": c32["negatives"].reshape(60, 4, 16)}
    groups["c64"] = {"anchors": c64["anchors"][:40], "positives": c64["positives"][:40],
                     "negatives": c64["negatives"].reshape(40, 5, 12)}
    groups["one64"] = {"anchors": one["anchors"][0], "positives": one["positives"][:5],
                       "negatives": one["negatives"]}
    return {f"{g}/{k}": v for g, arrays in groups.items() for k, v in arrays.items()}


# -- cases --------------------------------------------------------------------------------------

SAMPLE_ALIGNED = {r: f"sample_data/{r}.npy" for r in ("anchors", "positives", "negatives")}
SAMPLE_PARQUET = {r: f"sample_data/{r}.parquet" for r in ("anchors", "positives", "negatives")}
SAMPLE_CANDIDATES = {"anchors": "sample_data/anchors_200.npy",
                     "positives": "sample_data/candidates_positives.npy",
                     "negatives": "sample_data/candidates_negatives.npy"}
SAMPLE_INDEXED = {"embeddings": "sample_data/embeddings.npy",
                  "triplets": "sample_data/triplets.parquet"}
SAMPLE_LABELLED = ("sample_data/embeddings.npy", "sample_data/labels.npy")


def _stored(group: str) -> dict[str, str]:
    return {r: f"inputs:{group}/{r}" for r in ("anchors", "positives", "negatives")}


def _labelled(group: str) -> tuple[str, str]:
    return f"inputs:{group}/x", f"inputs:{group}/y"


def cases() -> dict[str, dict[str, Any]]:
    """Every case: name -> spec. Each option value appears at least once, not the product."""
    out: dict[str, dict[str, Any]] = {}

    def compute(name: str, inputs: dict[str, str], preset: str | None = None,
                same_rows_as: str | None = None, **options: Any) -> None:
        out[name] = {"kind": "compute", "inputs": inputs, "preset": preset, "options": options}
        if same_rows_as:
            out[name]["same_rows_as"] = same_rows_as

    def mine(name: str, data: tuple[str, str], preset: str | None = None,
             block_rows: int | None = None, same_rows_as: str | None = None,
             **options: Any) -> None:
        out[name] = {"kind": "mine", "embeddings": data[0], "labels": data[1],
                     "preset": preset, "block_rows": block_rows, "options": options}
        if same_rows_as:
            out[name]["same_rows_as"] = same_rows_as

    def command(kind: str, name: str, steps: list[list[str]], rows: str, report: str | None,
                same_rows_as: str | None = None) -> None:
        out[name] = {"kind": kind, "steps": steps, "rows": rows, "report": report}
        if same_rows_as:
            out[name]["same_rows_as"] = same_rows_as

    # compute on sample_data: the README's inputs
    compute("compute-sample-npy", SAMPLE_ALIGNED)
    compute("compute-sample-parquet", SAMPLE_PARQUET, same_rows_as="compute-sample-npy")
    compute("compute-sample-parquet-cosine", SAMPLE_PARQUET, distance="cosine", margin=0.2,
            reduction="sum")
    compute("compute-sample-candidates-sum", SAMPLE_CANDIDATES, pair_reduction="sum")
    compute("compute-sample-candidates-mean", SAMPLE_CANDIDATES, pair_reduction="mean",
            distance="squared-euclidean")
    compute("compute-sample-indexed", SAMPLE_INDEXED)
    compute("compute-sample-indexed-later",
            {**SAMPLE_INDEXED, "embeddings": "sample_data/embeddings_later.npy"}, margin=0.2,
            reduction="mean-nonzero")
    compute("compute-sample-indexed-csv", {**SAMPLE_INDEXED, "triplets": "sample_data/"
                                           "triplets.csv"}, same_rows_as="compute-sample-indexed")
    for preset in ("torch", "mlx", "mlx-legacy", "pytorch-metric-learning",
                   "sentence-transformers"):
        compute(f"compute-sample-preset-{preset}", SAMPLE_ALIGNED, preset=preset)
    compute("compute-sample-preset-torch-swap", SAMPLE_ALIGNED, preset="torch", swap=True)

    # compute on random data: every distance and eps placement, normalize, soft margin, swap
    a32, a64 = _stored("a32"), _stored("a64")
    compute("compute-euclidean-f32", a32)
    compute("compute-euclidean-difference-f64", a64, eps_placement="difference")
    compute("compute-euclidean-root-f32", a32, eps_placement="root", eps=1e-4)
    compute("compute-euclidean-legacy-root-f64", a64, eps_placement="legacy-root")
    compute("compute-euclidean-normalize-f32", a32, normalize=True, margin=0.2)
    compute("compute-euclidean-soft-f32", a32, soft_margin=True)
    compute("compute-euclidean-soft-margin-f64", a64, soft_margin=True, margin=0.5)
    compute("compute-euclidean-swap-f32", a32, swap=True, reduction="none")
    compute("compute-euclidean-margin0-f64", a64, margin=0.0, reduction="sum")
    compute("compute-squared-euclidean-f64", a64, distance="squared-euclidean", margin=5.0)
    compute("compute-squared-euclidean-difference-f32", a32, distance="squared-euclidean",
            eps_placement="difference")
    compute("compute-squared-euclidean-root-f64", a64, distance="squared-euclidean",
            eps_placement="root")
    compute("compute-squared-euclidean-legacy-root-f32", a32, distance="squared-euclidean",
            eps_placement="legacy-root")
    compute("compute-squared-euclidean-swap-soft-f32", a32, distance="squared-euclidean",
            swap=True, soft_margin=True)
    compute("compute-cosine-f32", a32, distance="cosine", margin=0.2)
    compute("compute-cosine-eps-f64", a64, distance="cosine", eps=1e-3, reduction="none")
    compute("compute-cosine-normalize-f64", a64, distance="cosine", normalize=True)
    compute("compute-cosine-soft-f32", a32, distance="cosine", soft_margin=True)
    compute("compute-manhattan-f64", a64, distance="manhattan", margin=2.0)
    compute("compute-manhattan-difference-f32", a32, distance="manhattan",
            eps_placement="difference")
    compute("compute-manhattan-root-f64", a64, distance="manhattan", eps_placement="root")
    compute("compute-manhattan-normalize-swap-f64", a64, distance="manhattan", normalize=True,
            swap=True, margin=0.5)
    compute("compute-chebyshev-f32", a32, distance="chebyshev")
    compute("compute-chebyshev-difference-f64", a64, distance="chebyshev",
            eps_placement="difference", reduction="mean-nonzero")
    compute("compute-chebyshev-root-f32", a32, distance="chebyshev", eps_placement="root")
    compute("compute-minkowski3-f64", a64, distance="minkowski", p=3.0)
    compute("compute-minkowski3-difference-f32", a32, distance="minkowski", p=3.0,
            eps_placement="difference")
    compute("compute-minkowski3-root-f64", a64, distance="minkowski", p=3.0,
            eps_placement="root", soft_margin=True)
    compute("compute-minkowski4-legacy-root-f64", a64, distance="minkowski", p=4.0,
            eps_placement="legacy-root")
    compute("compute-minkowski1.5-normalize-f32", a32, p=1.5, normalize=True)
    compute("compute-dot-f32", a32, distance="dot", margin=0.5)
    compute("compute-dot-soft-swap-f64", a64, distance="dot", soft_margin=True, swap=True)
    compute("compute-euclidean-f16", _stored("a16"))
    compute("compute-preset-torch-swap-f64", a64, preset="torch", swap=True)
    compute("compute-preset-mlx-p3-f32", a32, preset="mlx", p=3.0)
    compute("compute-preset-pml-soft-f64", a64, preset="pytorch-metric-learning",
            soft_margin=True)
    compute("compute-preset-st-cosine-f32", a32, preset="sentence-transformers",
            distance="cosine")
    compute("compute-candidates-swap-f32", _stored("c32"), swap=True, pair_reduction="mean")
    compute("compute-candidates-mixed-cosine-f64", _stored("c64"), distance="cosine",
            pair_reduction="sum", margin=0.3)
    compute("compute-one-anchor-f64", _stored("one64"), distance="manhattan",
            pair_reduction="mean")

    # mine on sample_data
    mine("mine-sample-semi-hard", SAMPLE_LABELLED)
    mine("mine-sample-batch-hard", SAMPLE_LABELLED, strategy="hard", positive_strategy="hard")
    mine("mine-sample-batch-hard-blocks7", SAMPLE_LABELLED, block_rows=7, strategy="hard",
         positive_strategy="hard", same_rows_as="mine-sample-batch-hard")
    mine("mine-sample-semi-hard-easy-k3", ("sample_data/embeddings.npy",
                                           "sample_data/labels.csv"),
         positive_strategy="easy", per_anchor=3)
    mine("mine-sample-parquet-batches", ("sample_data/labelled.parquet", None),
         strategy="hard", batch_size=64, seed=1)
    out["mine-sample-parquet-batches"]["label_column"] = "name"
    mine("mine-sample-all-batches16", SAMPLE_LABELLED, strategy="all", batch_size=16, seed=3,
         active_only=True)
    mine("mine-sample-preset-tf-similarity", SAMPLE_LABELLED, preset="tf-similarity")
    mine("mine-sample-semi-hard-pos-hard-margin0.2", SAMPLE_LABELLED, positive_strategy="hard",
         margin=0.2)

    # mine on random data: strategy x positive strategy, and every option
    c32, c64 = _labelled("clusters32"), _labelled("clusters64")
    u32, u64 = _labelled("units32"), _labelled("units64")
    s32, s64 = _labelled("small32"), _labelled("small64")
    for strategy in ("semi-hard", "hard", "easy"):
        for positive in ("all", "hard", "easy"):
            data = c32 if positive != "easy" else u64
            mine(f"mine-{strategy}-pos-{positive}", data, strategy=strategy,
                 positive_strategy=positive)
    for positive, data in (("all", s32), ("hard", s64), ("easy", s32)):
        mine(f"mine-all-pos-{positive}", data, strategy="all", positive_strategy=positive)
    mine("mine-semi-hard-blocks7", c32, block_rows=7, same_rows_as="mine-semi-hard-pos-all")
    mine("mine-semi-hard-k3-f64", c64, per_anchor=3)
    mine("mine-hard-k3-f32", u32, strategy="hard", per_anchor=3, margin=0.3)
    mine("mine-easy-k3-f64", u64, strategy="easy", positive_strategy="hard", per_anchor=3)
    mine("mine-semi-hard-skip-f64", u64, semi_hard_fallback="skip")
    mine("mine-semi-hard-skip-k3-f32", c32, semi_hard_fallback="skip", per_anchor=3,
         positive_strategy="easy")
    mine("mine-threshold-hardest-f32", c32, semi_hard_threshold="hardest-positive")
    mine("mine-threshold-hardest-easy-f64", u64, semi_hard_threshold="hardest-positive",
         positive_strategy="easy", semi_hard_fallback="skip")
    for band in ("violating", "hard", "semi-hard", "easy"):
        mine(f"mine-all-filter-{band}", s32 if band != "easy" else s64, strategy="all",
             margin_filter=band, margin=0.5)
    mine("mine-hard-filter-violating-f32", c32, strategy="hard", margin_filter="violating")
    mine("mine-all-active-only-f64", s64, strategy="all", active_only=True, margin=0.2)
    mine("mine-semi-hard-active-only-f32", c32, active_only=True)
    mine("mine-semi-hard-batches-f32", c32, batch_size=50, seed=7)
    mine("mine-hard-batches-f64", u64, strategy="hard", positive_strategy="hard",
         batch_size=37, seed=2)
    mine("mine-squared-euclidean-f64", c64, distance="squared-euclidean",
         positive_strategy="hard")
    mine("mine-cosine-f32", u32, distance="cosine", margin=0.2)
    mine("mine-cosine-normalize-f64", c64, distance="cosine", normalize=True,
         strategy="hard")
    mine("mine-euclidean-normalize-soft-f32", c32, normalize=True, soft_margin=True,
         positive_strategy="hard")
    mine("mine-manhattan-f32", c32, distance="manhattan", positive_strategy="hard")
    mine("mine-manhattan-difference-f64", u64, distance="manhattan",
         eps_placement="difference", strategy="hard")
    mine("mine-chebyshev-f64", c64, distance="chebyshev", positive_strategy="easy")
    mine("mine-minkowski3-f32", u32, distance="minkowski", p=3.0, strategy="easy")
    mine("mine-minkowski3-root-f64", c64, distance="minkowski", p=3.0, eps_placement="root",
         positive_strategy="hard")
    mine("mine-dot-f32", c32, distance="dot", positive_strategy="hard", reduction="sum")
    mine("mine-dot-f64", u64, distance="dot", margin=0.1)
    mine("mine-euclidean-difference-f32", u32, eps_placement="difference", soft_margin=True,
         margin=0.3)
    mine("mine-preset-tf-similarity-f32", u32, preset="tf-similarity")
    mine("mine-preset-tf-similarity-normalize-f64", c64, preset="tf-similarity",
         normalize=True)
    mine("mine-preset-tf-addons-f64", c64, preset="tf-addons")
    mine("mine-preset-tf-addons-hard-f32", c32, preset="tf-addons", strategy="hard",
         positive_strategy="hard")
    mine("mine-preset-pml-f32", s32, preset="pytorch-metric-learning")
    mine("mine-preset-pml-filter-semi-hard-f64", s64, preset="pytorch-metric-learning",
         margin_filter="semi-hard", margin=0.2)
    mine("mine-preset-pml-batch-hard-f32", c32, preset="pytorch-metric-learning",
         strategy="hard", positive_strategy="hard")
    mine("mine-preset-st-f64", c64, preset="sentence-transformers")
    mine("mine-preset-st-soft-f32", u32, preset="sentence-transformers", soft_margin=True)

    # streaming: compute through the block loop with small blocks (parquet record batches)
    def blocks(name: str, inputs: dict[str, str], block_rows: int, same_rows_as: str,
               **options: Any) -> None:
        out[name] = {"kind": "compute-blocks", "inputs": inputs, "block_rows": block_rows,
                     "options": options, "same_rows_as": same_rows_as}

    blocks("stream-compute-parquet-blocks100", SAMPLE_PARQUET, 100, "compute-sample-npy")
    blocks("stream-compute-parquet-cosine-blocks257", SAMPLE_PARQUET, 257,
           "compute-sample-parquet-cosine", distance="cosine", margin=0.2, reduction="sum")
    blocks("stream-compute-indexed-blocks100", SAMPLE_INDEXED, 100, "compute-sample-indexed")

    # the CLI (CliRunner): rows read back from the output file, or stdout jsonl text
    s = "{root}/sample_data/"
    aligned = ["--anchors", s + "anchors.npy", "--positives", s + "positives.npy",
               "--negatives", s + "negatives.npy"]
    parquet = ["--anchors", s + "anchors.parquet", "--positives", s + "positives.parquet",
               "--negatives", s + "negatives.parquet"]
    labelled = ["--embeddings", s + "embeddings.npy", "--labels", s + "labels.npy"]
    rows = "{tmp}/rows.parquet"
    command("cli", "cli-compute-parquet-output", [["compute", *aligned, "-o", rows,
                                                   "--format", "json"]],
            rows, "json", same_rows_as="compute-sample-npy")
    command("cli", "cli-compute-npy-output", [["compute", *aligned, "--preset", "torch",
                                               "-o", "{tmp}/rows.npy", "--format", "json"]],
            "{tmp}/rows.npy", "json", same_rows_as="compute-sample-preset-torch")
    command("cli", "cli-compute-cosine-jsonl", [["compute", *parquet, "--distance", "cosine",
                                                 "--margin", "0.2", "--format", "jsonl"]],
            "stdout-jsonl", None, same_rows_as="compute-sample-parquet-cosine")
    command("cli", "cli-compute-candidates-parquet",
            [["compute", "--anchors", s + "anchors_200.npy", "--positives",
              s + "candidates_positives.npy", "--negatives", s + "candidates_negatives.npy",
              "--pair-reduction", "mean", "-o", rows, "--format", "json"]], rows, "json")
    command("cli", "cli-mine-batch-hard-parquet",
            [["mine", *labelled, "--strategy", "hard", "--positive-strategy", "hard", "-o",
              rows, "--format", "json"]], rows, "json", same_rows_as="mine-sample-batch-hard")
    command("cli", "cli-mine-labelled-batches-parquet",
            [["mine", "--embeddings", s + "labelled.parquet", "--label-column", "name",
              "--batch-size", "64", "--seed", "1", "--strategy", "hard", "-o", rows,
              "--format", "json"]], rows, "json", same_rows_as="mine-sample-parquet-batches")
    command("cli", "cli-mine-semi-hard-jsonl",
            [["mine", "--embeddings", s + "embeddings.npy", "--labels", s + "labels.csv",
              "--strategy", "semi-hard", "--positive-strategy", "easy", "--per-anchor", "3",
              "--format", "jsonl"]], "stdout-jsonl", None,
            same_rows_as="mine-sample-semi-hard-easy-k3")
    command("cli", "cli-recipe-rescore-later",
            [["mine", *labelled, "--strategy", "semi-hard", "--positive-strategy", "hard",
              "--margin", "0.2", "--output", "{tmp}/mined.parquet", "--format", "json"],
             ["compute", "--embeddings", s + "embeddings_later.npy", "--triplets",
              "{tmp}/mined.parquet", "-o", rows, "--format", "json"]], rows, "json")

    # compute --triplets on mine's own output and embeddings: mine's rows, bit for bit
    command("cli", "cli-recipe-rescore-same",
            [["mine", *labelled, "--positive-strategy", "hard", "--margin", "0.2", "--output",
              "{tmp}/mined.parquet", "--format", "json"],
             ["compute", "--embeddings", s + "embeddings.npy", "--triplets",
              "{tmp}/mined.parquet", "-o", rows, "--format", "json"]], rows, "json",
            same_rows_as="mine-sample-semi-hard-pos-hard-margin0.2")

    # Dask: a LocalCluster of 2 workers in a subprocess (rows identical to one process)
    command("dask", "dask-mine-batch-hard",
            [["mine", *labelled, "--strategy", "hard", "--positive-strategy", "hard",
              "--scheduler", "local", "--workers", "2", "-o", rows, "--format", "json",
              "--quiet"]], rows, "json", same_rows_as="mine-sample-batch-hard")
    # .csv triplets: a .parquet --triplets file fails on Dask today (distributed._slim slices an
    # ArrowTriplets: "'ArrowTriplets' object is not subscriptable").
    command("dask", "dask-compute-indexed",
            [["compute", "--embeddings", s + "embeddings.npy", "--triplets",
              s + "triplets.csv", "--scheduler", "local", "--workers", "2", "-o", rows,
              "--format", "json", "--quiet"]], rows, "json",
            same_rows_as="compute-sample-indexed")
    return out


# -- writing ------------------------------------------------------------------------------------

def same_rows_problems(corpus: dict[str, Any]) -> list[str]:
    """Cases that must have another case's rows (streamed vs in memory, CLI vs library)."""
    problems = []
    for name, entry in corpus.items():
        other = entry["spec"].get("same_rows_as")
        if other is None:
            continue
        mine, theirs = entry["sha256"], corpus[other]["sha256"]
        for column in ("triplets", "d_ap", "d_an", "loss"):
            if column in mine and column in theirs and mine[column] != theirs[column]:
                problems.append(f"{name}: {column} differs from {other}'s")
    return problems


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=HERE.parents[1], capture_output=True, text=True,
                          check=False)
    return done.stdout.rstrip("\n")


def provenance() -> dict[str, Any]:
    import numba
    import pyarrow

    import triplet_cli

    package = Path(triplet_cli.__file__).parent
    sources = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        sources.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    changed = _git("status", "--porcelain", "--", "triplet_cli").splitlines()
    return {"commit": _git("rev-parse", "HEAD").strip(),
            "triplet_cli_uncommitted": sorted(line[3:] for line in changed),
            "triplet_cli_sources_sha256": sources.hexdigest(),
            "triplet_cli": triplet_cli.__version__, "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__, "pyarrow": pyarrow.__version__,
            "machine": platform.machine()}


def main() -> int:
    runner = _load_runner()
    from triplet_cli._jit import set_threads

    np.savez_compressed(runner.INPUTS, **make_inputs())
    runner.stored_inputs.cache_clear()
    has_dask = find_spec("distributed") is not None
    corpus: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    problems = []
    for name, spec in cases().items():
        if spec["kind"] == "dask" and not has_dask:
            sys.exit(f"{name} needs Dask: pip install 'triplet-loss[dask]'")
        with tempfile.TemporaryDirectory() as tmp:
            set_threads(None)
            rows = runner.run_case(spec, Path(tmp))
        entry, chunks = runner.fingerprint(spec, rows)
        if spec["kind"] in ("compute", "mine", "compute-blocks"):
            set_threads(1)
            with tempfile.TemporaryDirectory() as tmp:
                again = runner.run_case(spec, Path(tmp))
            set_threads(None)
            if runner.hashes(again) != entry["sha256"]:
                problems.append(f"{name}: rows depend on the thread count")
        values = np.concatenate([rows.d_ap, rows.d_an, rows.loss])
        if not np.isfinite(values).all():
            problems.append(f"{name}: non-finite values (the tolerance mode cannot hold them)")
        corpus[name] = entry
        arrays.update({f"{name}/{k}": v for k, v in chunks.items()})
        print(f"{name}: {entry['rows']} rows", file=sys.stderr)
    problems += same_rows_problems(corpus)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    document = {"about": "golden corpus of triplet-loss rows: see tests/golden/README.md",
                "generated_by": provenance(), "sample_head": runner.SAMPLE_HEAD,
                "sample_spread": runner.SAMPLE_SPREAD, "cases": corpus}
    runner.CORPUS.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    np.savez_compressed(runner.ARRAYS, **arrays)
    size = sum(p.stat().st_size for p in (runner.CORPUS, runner.INPUTS, runner.ARRAYS))
    print(f"{len(corpus)} cases, {size / 1e6:.2f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
