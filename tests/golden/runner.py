"""Running a golden case and comparing its rows with the corpus: shared by generate.py (which
writes corpus.json, corpus.npz and inputs.npz) and tests/test_golden.py (which checks them).

A case's `spec` (stored in corpus.json) says how it was run, in today's API and CLI terms:
- kind "compute" / "mine": `compute_loss(**inputs, preset=..., **options)` or
  `mine_triplets(embeddings, labels, preset=..., block_rows=..., **options)`;
- kind "compute-blocks": `prepare_compute(..., block_rows=...)` then `job.blocks()` (streaming);
- kind "cli": `triplet-loss` argv lists run in-process through typer's CliRunner;
- kind "dask": the same argv lists run as `python -m triplet_cli` subprocesses.
An input is a path under the repository ("sample_data/anchors.npy") or "inputs:KEY", an array of
inputs.npz. In argv, "{root}" is the repository and "{tmp}" a fresh temporary folder.

When the package's API or flags change, adapt `run_case` here: the corpus is data and stays.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORPUS = HERE / "corpus.json"  # per case: spec, row count, sha256s, summary, scale
ARRAYS = HERE / "corpus.npz"  # per case: the sampled rows and the chunk digests
INPUTS = HERE / "inputs.npz"  # the random inputs

FLOATS = ("d_ap", "d_an", "loss")
SAMPLE_HEAD = 100  # sampled rows: the first SAMPLE_HEAD, then SAMPLE_SPREAD evenly spaced
SAMPLE_SPREAD = 100
MAX_DIGESTS = 2048  # per-chunk digests per case; one row per chunk up to this many rows
# Rows are byte-exact; the summary's loss and mean are float64 reductions whose last bits the
# README lets depend on block boundaries, so outside the tolerance mode they are held to this.
SUMMARY_RTOL = 1e-12
DASK_TIMEOUT = 300  # seconds per subprocess


@dataclass
class Rows:
    """One run's per-triplet rows (float64 d_ap, d_an, loss; int64 triplets and index)."""

    d_ap: np.ndarray
    d_an: np.ndarray
    loss: np.ndarray
    triplets: np.ndarray | None = None
    index: np.ndarray | None = None
    summary: dict[str, Any] | None = None  # headline: loss, mean, count
    text: str | None = None  # stdout rows (--format jsonl), hashed as text


# -- running ------------------------------------------------------------------------------------

@cache
def stored_inputs() -> dict[str, np.ndarray]:
    with np.load(INPUTS, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def resolve_input(ref: str | None) -> Any:
    """A spec's input reference as the library takes it: a path str or an array."""
    if ref is None:
        return None
    if ref.startswith("inputs:"):
        return stored_inputs()[ref.removeprefix("inputs:")]
    return str(ROOT / ref)


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary values the corpus keeps: loss (None for reduction none), mean, count."""
    count = summary["count"] if "count" in summary else summary["triplets"]
    return {"loss": summary["loss"], "mean": summary["mean"], "count": count}


def run_case(spec: dict[str, Any], tmp: Path) -> Rows:
    kind = spec["kind"]
    if kind == "compute":
        from triplet_cli import compute_loss

        inputs = {k: resolve_input(v) for k, v in spec["inputs"].items()}
        r = compute_loss(**inputs, preset=spec.get("preset"), column=spec.get("column"),
                         **spec.get("options", {}))
        return Rows(r.d_ap, r.d_an, r.loss, r.triplets, summary=headline(r.summary))
    if kind == "compute-blocks":
        return _compute_blocks(spec)
    if kind == "mine":
        from triplet_cli import mine_triplets

        r = mine_triplets(resolve_input(spec["embeddings"]), resolve_input(spec.get("labels")),
                          preset=spec.get("preset"), label_column=spec.get("label_column"),
                          block_rows=spec.get("block_rows"), **spec.get("options", {}))
        return Rows(r.d_ap, r.d_an, r.loss, r.triplets, summary=headline(r.summary))
    if kind in ("cli", "dask"):
        return _run_commands(spec, tmp)
    raise ValueError(f"unknown case kind {kind!r}")


def _compute_blocks(spec: dict[str, Any]) -> Rows:
    """compute through the job's block loop with a small block size: streamed parquet input."""
    from triplet_cli.compute import prepare_compute
    from triplet_cli.jobs import collect

    inputs = {k: resolve_input(v) for k, v in spec["inputs"].items()}
    job = prepare_compute(**inputs, preset=spec.get("preset"), column=spec.get("column"),
                          block_rows=spec["block_rows"], **spec.get("options", {}))
    blocks = list(job.blocks())
    if len(blocks) < 2:
        raise AssertionError(f"expected several blocks of {spec['block_rows']} rows, got "
                             f"{len(blocks)}")
    columns, summary = collect(job, iter(blocks))
    triplets = (np.stack([columns[c] for c in ("anchor", "positive", "negative")], axis=1)
                if "anchor" in columns else None)
    return Rows(*(columns[c] for c in FLOATS), triplets, summary=headline(summary))


def _argv(argv: list[str], tmp: Path) -> list[str]:
    return [a.replace("{root}", str(ROOT)).replace("{tmp}", str(tmp)) for a in argv]


def _run_commands(spec: dict[str, Any], tmp: Path) -> Rows:
    """Each step of a cli/dask case must exit 0; the last one's stdout (json report or jsonl
    rows) and its output file give the rows."""
    stdout = ""
    for argv in spec["steps"]:
        args = _argv(argv, tmp)
        if spec["kind"] == "cli":
            from typer.testing import CliRunner

            from triplet_cli.cli import app

            result = CliRunner().invoke(app, args, prog_name="triplet-loss")
            code, stdout, stderr = result.exit_code, result.stdout, result.stderr
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                raise result.exception
        else:
            done = subprocess.run([sys.executable, "-m", "triplet_cli", *args], cwd=tmp,
                                  capture_output=True, text=True, timeout=DASK_TIMEOUT,
                                  check=False, env={**os.environ, "COLUMNS": "100"})
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        if code != 0:
            raise AssertionError(f"triplet-loss {' '.join(argv)} exited {code}: {stderr}")
    summary = headline(json.loads(stdout)) if spec.get("report") == "json" else None
    if spec.get("rows") == "stdout-jsonl":
        rows = _columns_rows([json.loads(line) for line in stdout.splitlines()])
        rows.text = stdout
    else:
        rows = read_rows(Path(_argv([spec["rows"]], tmp)[0]))
    rows.summary = summary
    return rows


def _columns_rows(records: list[dict[str, Any]]) -> Rows:
    names = list(records[0]) if records else list(FLOATS)
    cols = {n: np.array([r[n] for r in records]) for n in names}
    return _rows_of(cols)


def read_rows(path: Path) -> Rows:
    """Rows read back from an --output file (.parquet columns, or compute's (n, 3) .npy)."""
    if path.suffix == ".npy":
        a = np.load(path, allow_pickle=False)
        return Rows(*(np.ascontiguousarray(a[:, i]) for i in range(3)))
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return _rows_of({n: table.column(n).to_numpy() for n in table.column_names})


def _rows_of(cols: dict[str, np.ndarray]) -> Rows:
    ints = ("anchor", "positive", "negative")
    triplets = (np.column_stack([cols[c].astype(np.int64) for c in ints])
                if all(c in cols for c in ints) else None)
    index = cols["index"].astype(np.int64) if "index" in cols else None
    return Rows(*(cols[c].astype(np.float64) for c in FLOATS), triplets, index)


# -- fingerprints -------------------------------------------------------------------------------

def _float_bytes(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float64).tobytes()


def _int_bytes(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.int64).tobytes()


def hashes(rows: Rows) -> dict[str, str]:
    """sha256 of each column's bytes: float64 d_ap, d_an, loss; int64 (t, 3) triplets and index;
    the stdout text of jsonl rows."""
    out = {c: hashlib.sha256(_float_bytes(getattr(rows, c))).hexdigest() for c in FLOATS}
    if rows.triplets is not None:
        out["triplets"] = hashlib.sha256(_int_bytes(rows.triplets.reshape(-1, 3))).hexdigest()
    if rows.index is not None:
        out["index"] = hashlib.sha256(_int_bytes(rows.index)).hexdigest()
    if rows.text is not None:
        out["text"] = hashlib.sha256(rows.text.encode()).hexdigest()
    return out


def sample_rows(n: int) -> np.ndarray:
    """The sampled row numbers: the first SAMPLE_HEAD rows and SAMPLE_SPREAD evenly spaced."""
    if n <= SAMPLE_HEAD + SAMPLE_SPREAD:
        return np.arange(n)
    spread = np.linspace(SAMPLE_HEAD, n - 1, SAMPLE_SPREAD).round().astype(np.int64)
    return np.unique(np.concatenate([np.arange(SAMPLE_HEAD), spread]))


def chunk_rows(n: int) -> int:
    return max(1, math.ceil(n / MAX_DIGESTS))


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 (wrapping)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def chunk_digests(columns: list[np.ndarray], chunk: int) -> np.ndarray:
    """A 16-bit digest per chunk of `chunk` rows of the 8-byte columns: where rows differ (the
    sha256s say whether they do; a digest that collides only makes the row named later)."""
    n = len(columns[0])
    if n == 0:
        return np.empty(0, np.uint16)
    with np.errstate(over="ignore"):
        h = np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        for c in columns:
            dtype = np.float64 if c.dtype.kind == "f" else np.int64
            h = _mix(h ^ np.ascontiguousarray(c, dtype=dtype).view(np.uint64))
        sums = np.add.reduceat(h, np.arange(0, n, chunk))
    return (sums >> np.uint64(48)).astype(np.uint16)


def row_digests(rows: Rows, chunk: int) -> dict[str, np.ndarray]:
    out = {"digest_values": chunk_digests([getattr(rows, c) for c in FLOATS], chunk)}
    if rows.triplets is not None:
        t = rows.triplets.reshape(-1, 3)
        out["digest_triplets"] = chunk_digests([t[:, 0], t[:, 1], t[:, 2]], chunk)
    return out


def fingerprint(spec: dict[str, Any], rows: Rows) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The corpus entry of a run (corpus.json) and its arrays (corpus.npz): the sampled rows
    (sample_values: d_ap, d_an, loss; sample_triplets) and the chunk digests."""
    n = int(rows.loss.size)
    sel = sample_rows(n)
    arrays = {"sample_values": np.column_stack([getattr(rows, c)[sel] for c in FLOATS])}
    if rows.triplets is not None:
        arrays["sample_triplets"] = rows.triplets.reshape(-1, 3)[sel].astype(np.int64)
    distances = np.concatenate([rows.d_ap, rows.d_an])
    scale = float(np.abs(distances).max()) if distances.size else 0.0
    chunk = chunk_rows(n)
    entry = {"spec": spec, "rows": n, "sha256": hashes(rows), "summary": rows.summary,
             "scale": scale, "chunk_rows": chunk}
    return entry, {**arrays, **row_digests(rows, chunk)}


# -- comparing ----------------------------------------------------------------------------------

@cache
def stored_arrays() -> dict[str, np.ndarray]:
    with np.load(ARRAYS, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def case_arrays(name: str) -> dict[str, np.ndarray]:
    prefix = f"{name}/"
    return {k.removeprefix(prefix): v for k, v in stored_arrays().items()
            if k.startswith(prefix)}


def _first_chunk(stored: np.ndarray, now: np.ndarray) -> int | None:
    m = min(stored.size, now.size)
    bad = np.flatnonzero(stored[:m] != now[:m])
    if bad.size:
        return int(bad[0])
    return m if stored.size != now.size else None


def _where(entry: dict[str, Any], arrays: dict[str, np.ndarray], rows: Rows, column: str) -> str:
    """Where `column` (triplets, d_ap, d_an or loss) first differs: from the chunk digests, and
    the first sampled row that differs (with both values)."""
    chunk = entry["chunk_rows"]
    digest = "digest_triplets" if column == "triplets" else "digest_values"
    stored = arrays.get(digest)
    parts = []
    if stored is not None:
        i = _first_chunk(stored, row_digests(rows, chunk)[digest])
        if i is not None:
            lo = i * chunk
            hi = min(lo + chunk, max(entry["rows"], rows.loss.size)) - 1
            which = "" if column == "triplets" else " of d_ap/d_an/loss"
            parts.append(f"first differing row{which}: {lo}" if hi <= lo else
                         f"first differing row{which} in {lo}..{hi}")
    parts.append(_first_sampled_difference(entry, arrays, rows, (column,)) or
                 "every sampled row agrees")
    return "; ".join(parts)


def _first_sampled_difference(entry: dict[str, Any], arrays: dict[str, np.ndarray], rows: Rows,
                              columns: tuple[str, ...], tol: float = 0.0) -> str | None:
    """The first sampled row whose triplet or d_ap, d_an, loss (`columns`) differ from the
    stored ones: exactly, or by more than tol * scale."""
    bound = tol * entry["scale"]
    n = rows.loss.size
    for k, r in enumerate(sample_rows(entry["rows"]).tolist()):
        if r >= n:
            return f"row {r}: stored, now no such row ({n} rows)"
        if columns == ("triplets",):
            old = arrays["sample_triplets"][k].tolist()
            new = rows.triplets.reshape(-1, 3)[r].tolist()
            if old != new:
                return f"row {r}: stored triplet {old}, now {new}"
            continue
        for column in columns:
            c = FLOATS.index(column)
            old, new = float(arrays["sample_values"][k, c]), float(getattr(rows, column)[r])
            same = abs(new - old) <= bound if tol else (
                old == new or (math.isnan(old) and math.isnan(new)))
            if not same:
                return (f"row {r}: stored {column} = {old!r}, now {new!r} "
                        f"(difference {new - old:.3g})")
    return None


def _summary_problems(entry: dict[str, Any], rows: Rows, tol: float) -> list[str]:
    stored, now = entry["summary"], rows.summary
    if stored is None or now is None:
        return [] if stored is None else ["no summary to compare (the run printed none)"]
    problems = []
    if stored["count"] != now["count"]:
        problems.append(f"summary count: stored {stored['count']}, now {now['count']}")
    for key in ("loss", "mean"):
        old, new = stored[key], now[key]
        if old is None or new is None:
            ok = old is new
        elif tol:
            ok = abs(new - old) <= tol * max(entry["scale"], abs(old))
        else:
            ok = abs(new - old) <= SUMMARY_RTOL * abs(old)
        if not ok:
            problems.append(f"summary {key}: stored {old!r}, now {new!r}")
    return problems


def compare(name: str, entry: dict[str, Any], rows: Rows, tol: float = 0.0,
            arrays: dict[str, np.ndarray] | None = None) -> list[str]:
    """What differs between a fresh run and the stored entry (empty: it holds).

    tol = 0: every stored sha256 must match (rows byte-identical). tol > 0 (GOLDEN_TOLERANCE):
    row counts and integer columns (triplet indices) still exact; d_ap, d_an and loss of the
    sampled rows within tol * scale (the largest |distance| of the case); summary loss and mean
    within tol * max(scale, |value|); counts exact.
    """
    arrays = case_arrays(name) if arrays is None else arrays
    head = f"golden case {name!r} ({entry['spec']['kind']})"
    problems = []
    n = int(rows.loss.size)
    ints = rows.triplets is not None and "triplets" in entry["sha256"]
    if n != entry["rows"]:
        problems.append(f"row count: stored {entry['rows']}, now {n}; "
                        + _where(entry, arrays, rows, "triplets" if ints else "loss"))
    now = hashes(rows)
    for column, digest in entry["sha256"].items():
        exact = not tol or column in ("triplets", "index")
        if column not in now:
            problems.append(f"{column}: stored, but this run has no such column")
        elif exact and now[column] != digest and n == entry["rows"]:
            if column == "text":
                where = "the rows parsed from it " + ("agree" if all(
                    now[c] == entry["sha256"][c] for c in FLOATS) else "differ too")
            elif column == "index":
                where = ("index is not 0..n-1" if not np.array_equal(rows.index, np.arange(n))
                         else "index differs")
            else:
                where = _where(entry, arrays, rows, column)
            problems.append(f"{column} differs from the stored sha256: {where}")
    if tol and n == entry["rows"]:
        bad = _first_sampled_difference(entry, arrays, rows, FLOATS, tol)
        if bad:
            problems.append(f"beyond tolerance {tol:g} x scale {entry['scale']:.6g}: {bad}")
    problems += _summary_problems(entry, rows, tol)
    return [f"{head}: {p}" for p in problems]


def load_corpus() -> dict[str, Any]:
    return json.loads(CORPUS.read_text())
