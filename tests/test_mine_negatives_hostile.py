"""mine-negatives' bad input: exit 1 (usage 2), one `triplet-loss: error:` line, nothing written.

Runs through the shared harness (tests/hostile.py). Good inputs: q.npy (6, 4) and c.npy (12, 4)
float32, pairs.csv / pairs.npy / pairs.parquet with 8 (query, positive) rows, pos.npy (6, 4).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hostile import OUT, Case, Table, both, npy, spoil, table, text

Q, C, DIM = 6, 12, 4
PAIRS = [(0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (5, 8)]


def _good_inputs(d: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(d / "q.npy", rng.normal(size=(Q, DIM)).astype(np.float32))
    np.save(d / "c.npy", rng.normal(size=(C, DIM)).astype(np.float32))
    np.save(d / "pos.npy", rng.normal(size=(Q, DIM)).astype(np.float32))
    np.save(d / "pairs.npy", np.array(PAIRS, np.int64))
    (d / "pairs.csv").write_text("query,positive\n" + "".join(f"{a},{b}\n" for a, b in PAIRS))
    pq.write_table(pa.table({"query": [a for a, _ in PAIRS], "positive": [b for _, b in PAIRS]}),
                   d / "pairs.parquet")


BASE = ("mine-negatives", "--queries", "{d}/q.npy", "--corpus", "{d}/c.npy")


def run(*extra: str, pairs: str = "{d}/pairs.csv") -> tuple[str, ...]:
    return (*BASE, "--pairs", pairs, *extra, *OUT)


NEGATIVES = Table("mine-negatives", good_inputs=_good_inputs, cases=[
    Case("stdin-twice", None, ("mine-negatives", "--queries", "-", "--corpus", "-", "--pairs",
                               "{d}/pairs.csv", *OUT), 2,
         r"only one input can be read from stdin \(-\)$", stdin=b""),
    Case("pair-positive-out-of-range", text("bad.csv", "query,positive\n0,1\n1,12\n"),
         run(pairs="{d}/bad.csv"), 1, r"bad\.csv: row 1: positive index 12 is out of range "
         r"\[0, 12\)"),
    Case("pair-query-negative", npy("bad.npy", np.array([[0, 1], [-1, 2]])),
         run(pairs="{d}/bad.npy"), 1, r"bad\.npy: row 1: query index -1 is out of range"),
    Case("pair-query-out-of-range", table("bad.parquet", {"query": [6], "positive": [0]}),
         run(pairs="{d}/bad.parquet"), 1, r"row 0: query index 6 is out of range \[0, 6\)"),
    Case("pairs-float", npy("bad.npy", np.array([[0.0, 1.5]])), run(pairs="{d}/bad.npy"), 1,
         r"bad\.npy: row 0: positive index 1\.5 is not an integer"),
    Case("pairs-text", npy("bad.npy", np.array([["0", "1"]])), run(pairs="{d}/bad.npy"), 1,
         r"bad\.npy: pair indices must be integers, got <U1"),
    Case("pairs-wrong-shape", npy("bad.npy", np.array([[0, 1, 2]])), run(pairs="{d}/bad.npy"), 1,
         r"bad\.npy: pairs must have shape \(n, 2\)"),
    Case("distance-is-similarity-here", None, run("--distance", "cosine"), 2,
         r"No such option: --distance \(mine-negatives calls it --similarity\)$"),
    Case("pairs-no-column", text("bad.csv", "source,positive\n0,1\n"), run(pairs="{d}/bad.csv"), 1,
         r"bad\.csv: no column 'query'"),
    Case("pairs-null", table("bad.parquet", {"query": [0, None], "positive": [1, 2]}),
         run(pairs="{d}/bad.parquet"), 1, r"bad\.parquet: column 'query': row 1 is null"),
    Case("pairs-empty", npy("bad.npy", np.zeros((0, 2), np.int64)), run(pairs="{d}/bad.npy"), 1,
         r"bad\.npy: holds zero pairs"),
    Case("widths-differ", npy("c.npy", np.zeros((C, DIM + 1), np.float32)), run(), 1,
         r"c\.npy: dimensions differ: \S*q\.npy has d = 4, \S*c\.npy has d = 5"),
    Case("range-min-not-below-max", None, run("--range-min", "5", "--range-max", "5"), 2,
         r"--range-min \(5\) must be smaller than --range-max \(5\)"),
    Case("num-negatives-beyond-window", None, run("--range-max", "3", "--num-negatives", "4"), 2,
         r"--num-negatives 4 does not fit in the 3 candidates"),
    Case("min-score-above-max-score", None, run("--min-score", "0.5", "--max-score", "0.1"), 2,
         r"--min-score 0\.5 is above --max-score 0\.1: no candidate could be kept"),
    Case("fail-above-not-a-fraction", None, run("--fail-above", "1.5"), 2,
         r"--fail-above is a fraction of the pairs, from 0 to 1 \(got 1\.5\)"),
    Case("fail-above-negative", None, run("--fail-above", "-1"), 2,
         r"--fail-above is a fraction of the pairs, from 0 to 1 \(got -1\)"),
    Case("absolute-margin-nan", None, run("--absolute-margin", "nan"), 2,
         r"--absolute-margin must be a number \(got nan\)"),
    Case("relative-margin-nan", None, run("--relative-margin", "nan"), 2,
         r"--relative-margin must be a number \(got nan\)"),
    Case("num-negatives-zero", None, run("--num-negatives", "0"), 2,
         r"--num-negatives must be >= 1"),
    Case("false-negative-eps-negative", None, run("--false-negative-eps", "-1"), 2,
         r"--false-negative-eps must be >= 0"),
    Case("nan-query-row", spoil("q.npy", 3, 1, np.nan), run(), 1, r"q\.npy: row 3 contains NaN"),
    Case("inf-corpus-row", spoil("c.npy", 7, 0, np.inf), run(), 1, r"c\.npy: row 7 contains inf"),
    Case("pairs-and-positives", None, (*run(), "--positives", "{d}/pos.npy"), 2,
         r"give --pairs \(with --corpus\) or --positives, one of them"),
    Case("pairs-without-corpus", None, ("mine-negatives", "--queries", "{d}/q.npy", "--pairs",
                                        "{d}/pairs.csv", *OUT), 2, r"give --corpus"),
    Case("positives-not-aligned", npy("pos.npy", np.zeros((Q + 1, DIM), np.float32)),
         ("mine-negatives", "--queries", "{d}/q.npy", "--positives", "{d}/pos.npy", *OUT), 1,
         r"pos\.npy: 7 positives for 6 queries in \S*q\.npy"),
    Case("positive-not-in-corpus", None,
         (*BASE, "--positives", "{d}/pos.npy", *OUT), 1,
         r"pos\.npy: row 0 is not a row of \S*c\.npy"),
    Case("unknown-similarity", None, run("--similarity", "jaccard"), 2, r"jaccard"),
    Case("p-without-minkowski", None, run("--similarity", "cosine", "--p", "3"), 2,
         r"--p applies to the minkowski distance, not cosine \(drop --p, or use --similarity "
         r"minkowski\)"),
    Case("preset-without-negatives", None, run("--preset", "torch"), 2,
         r"preset 'torch' has no mine-negatives operation"),
    # -- found by a second audit
    Case("seed-beyond-64-bits", None, run("--sampling", "random", "--seed", str(2**64)), 2,
         r"--seed must be from 0 to 2\^64 - 1"),
    Case("range-max-beyond-int64", None, run("--range-max", str(2**63)), 2,
         r"--range-max must be from 1 to 2\^63 - 1"),
    Case("values-overflow-products", npy("c.npy", np.full((C, DIM), 1e200)), run(), 1,
         r"/c\.npy: row 0 holds values beyond .* float64 matrix products"),
    Case("pairs-csv-without-header", text("nohdr.csv", "0,1\n1,2\n"), run(pairs="{d}/nohdr.csv"),
         1, r"nohdr\.csv: no column 'query', 'positive'; columns: 0, 1 \(its first line was read "
         r"as the header: add one\)$"),
    Case("pair-index-beyond-int64", npy("bad.npy", np.array([[0, 1], [2**63 + 5, 2]], np.uint64)),
         run(pairs="{d}/bad.npy"), 1, r"bad\.npy: row 1: query index 9223372036854775813 is "
         r"out of range$"),
    # -- found by a fourth audit
    Case("n-tuple-beyond-the-corpus", None,
         run("--output-format", "n-tuple", "--num-negatives", "1000000"), 2,
         r"/c\.npy: --num-negatives 1000000 with --output-format n-tuple: no pair can get that "
         r"many negatives from 12 rows, and n-tuple keeps only full pairs$"),
    Case("dimensions-differ-each-file-once", npy("c5.npy", np.zeros((C, 5), np.float32)),
         ("mine-negatives", "--queries", "{d}/q.npy", "--corpus", "{d}/c5.npy", "--positives",
          "{d}/q.npy", *OUT), 1,
         r"/c5\.npy: dimensions differ: \S*/q\.npy has d = 4, \S*/c5\.npy has d = 5$"),
    Case("labels-of-two-kinds",
         both(npy("y.npy", np.arange(Q) % 2), npy("cy.npy", np.array(["a", "b"] * (C // 2)))),
         run("--labels", "{d}/y.npy", "--corpus-labels", "{d}/cy.npy"), 1,
         r"/cy\.npy: these labels are strings, those of \S*/y\.npy integers: use one kind$"),
])

test_bad_input = NEGATIVES.test()
