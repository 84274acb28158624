"""compute's bad input: exit 1 (usage 2), one `triplet-loss: error:` line, no output touched.

The table runs through the shared harness (tests/hostile.py: what every case must satisfy). Each
case starts in a fresh folder of good inputs (a.npy, p.npy, n.npy: (5, 4) float32; x.npy: (6, 4);
t.parquet and t.csv: 3 index triples into x.npy); its factory adds or spoils files.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hostile import (
    OUT,
    SENTINEL,
    Case,
    Maker,
    Table,
    access_denied,
    both,
    chmod_000,
    folder,
    npy,
    npy_header,
    npz,
    open_denied,
    raw,
    spoil,
    symlink,
    table,
    truncated,
)

from triplet_cli import writers

ROWS, DIM, EMB_ROWS = 5, 4, 6


def _good_inputs(d: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "p", "n"):
        np.save(d / f"{name}.npy", rng.normal(size=(ROWS, DIM)).astype(np.float32))
    np.save(d / "x.npy", rng.normal(size=(EMB_ROWS, DIM)).astype(np.float32))
    triplets = pa.table({"anchor": [0, 1, 2], "positive": [1, 2, 3], "negative": [3, 4, 5]})
    pq.write_table(triplets, d / "t.parquet")
    (d / "t.csv").write_text("anchor,positive,negative\n0,1,3\n1,2,4\n2,3,5\n")


def fixed_list(values: list[list[float] | None], value_type: pa.DataType | None = None
               ) -> pa.Array:
    return pa.array(values, type=pa.list_(value_type or pa.float32()))


def _vectors(rows: int = ROWS, dim: int = DIM) -> list[list[float]]:
    return np.random.default_rng(1).normal(size=(rows, dim)).tolist()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.ones((ROWS, DIM)))
    return buffer.getvalue()


def _parquet_bytes(columns: dict[str, pa.Array]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue().to_pybytes()


# ---- argv ---------------------------------------------------------------------------------------


def aligned(a: str = "a.npy", p: str = "p.npy", n: str = "n.npy", *extra: str) -> tuple:
    return ("compute", "--anchors", f"{{d}}/{a}", "--positives", f"{{d}}/{p}",
            "--negatives", f"{{d}}/{n}", *extra)


def indexed(x: str = "x.npy", t: str = "t.parquet", *extra: str) -> tuple:
    return ("compute", "--embeddings", f"{{d}}/{x}", "--triplets", f"{{d}}/{t}", *extra)


CASES = [
    # -- files that are not there or cannot be read
    Case("missing-file", None, aligned("missing.npy", "p.npy", "n.npy", *OUT), 1,
         r"/missing\.npy: no such file$"),
    Case("broken-symlink", symlink("dangling.npy", "gone.npy"),
         aligned("a.npy", "dangling.npy", "n.npy", *OUT), 1, r"/dangling\.npy: no such file$"),
    Case("unreadable-chmod-000", chmod_000("a.npy"), aligned("a.npy", "p.npy", "n.npy", *OUT),
         1, r"/a\.npy: permission denied$"),
    Case("unreadable-access", access_denied("p.npy"), aligned("a.npy", "p.npy", "n.npy", *OUT),
         1, r"/p\.npy: permission denied$"),
    Case("unreadable-open", open_denied("n.npy"), aligned("a.npy", "p.npy", "n.npy", *OUT), 1,
         r"/n\.npy: .*[Pp]ermission denied"),
    Case("directory", folder("adir"), aligned("adir", "p.npy", "n.npy", *OUT), 1,
         r"/adir: is a directory"),
    Case("directory-named-npy", folder("d.npy"), aligned("a.npy", "d.npy", "n.npy", *OUT), 1,
         r"/d\.npy: is a directory"),
    # -- .npy files that are not what they claim
    Case("truncated-npy", truncated("cut.npy", "a.npy"),
         aligned("cut.npy", "p.npy", "n.npy", *OUT), 1,
         r"/cut\.npy: truncated: header promises 80 data bytes, found 73$"),
    Case("text-named-npy", raw("text.npy", b"anchor,positive\n1,2\n"),
         aligned("a.npy", "text.npy", "n.npy", *OUT), 1, r"/text\.npy: not a \.npy file"),
    Case("empty-named-npy", raw("empty.npy", b""), aligned("a.npy", "p.npy", "empty.npy", *OUT),
         1, r"/empty\.npy: is empty \(0 bytes\)"),
    Case("garbage-header-npy", raw("bad.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}\n\0\0"),
         aligned("bad.npy", "p.npy", "n.npy", *OUT), 1, r"/bad\.npy: not a valid \.npy file"),
    Case("header-overflows-int64", npy_header("huge.npy", "(4294967296, 4294967296)"),
         aligned("huge.npy", "p.npy", "n.npy", *OUT), 1,
         r"/huge\.npy: truncated: header promises 73786976294838206464 data bytes, found 64$"),
    Case("header-negative-shape", npy_header("neg.npy", "(-5, 4)"),
         aligned("neg.npy", "p.npy", "n.npy", *OUT), 1,
         r"/neg\.npy: not a valid \.npy file \(negative dimension in shape \(-5, 4\)\)$"),
    Case("pickled-object-npy",
         npy("obj.npy", np.array([{"a": 1}, [1, 2]], dtype=object), allow_pickle=True),
         aligned("obj.npy", "p.npy", "n.npy", *OUT), 1, r"/obj\.npy: holds Python objects"),
    Case("pickle-named-npy", raw("dumped.npy", pickle.dumps(np.ones((4, 2)), protocol=4)),
         aligned("dumped.npy", "p.npy", "n.npy", *OUT), 1,
         r"/dumped\.npy: is a pickle, which can run code and is not loaded here: save the array "
         r"with numpy\.save\(PATH, ARRAY\)$"),
    Case("unknown-format", raw("a.txt", b"1 2 3 4\n"), aligned("a.txt", "p.npy", "n.npy", *OUT),
         1, r"/a\.txt: holds text \(CSV\): embeddings are read from \.npy"),
    Case("empty-parquet-folder", folder("e.parquet"),
         aligned("e.parquet", "p.npy", "n.npy", *OUT), 1, r"/e\.parquet: no list<float> column"),
    Case("parquet-folder-columns-differ", both(
        folder("mix"), table("mix/p0.parquet", {"emb": fixed_list(_vectors(2))}),
        table("mix/p1.parquet", {"vec": fixed_list(_vectors(3))})),
        aligned("mix", "p.npy", "n.npy", *OUT), 1,
        r"/mix: .*/p1\.parquet has columns vec; .*/p0\.parquet has emb: a folder's files must "
        r"name the same columns$"),
    Case("corrupt-parquet", raw("bad.parquet", b"PAR1" + b"\x07" * 40),
         aligned("bad.parquet", "p.npy", "n.npy", *OUT), 1, r"/bad\.parquet: cannot read"),
    # -- stdin (`-`)
    Case("stdin-empty", None, ("compute", "--anchors", "-", *aligned()[3:], *OUT), 1,
         r"<stdin>: nothing on stdin$", stdin=b""),
    Case("stdin-garbage", None, ("compute", "--anchors", "-", *aligned()[3:], *OUT), 1,
         r"<stdin>: holds text \(CSV\): embeddings are read from", stdin=b"1,2,3\n"),
    Case("stdin-truncated-npy", None, ("compute", "--anchors", "-", *aligned()[3:], *OUT), 1,
         r"<stdin>: truncated: header promises 160 data bytes, found 151$",
         stdin=_npy_bytes(np.zeros((ROWS, DIM)))[:-9]),
    Case("stdin-pickled-npy", None, ("compute", "--anchors", "-", *aligned()[3:], *OUT), 1,
         r"<stdin>: holds Python objects \(a pickled array\); refusing to load it \(such as "
         r"strings from pandas: save labels with .*\)$",
         stdin=_npy_bytes(np.array([None, {}], dtype=object))),
    Case("stdin-npz-no-such-key", None, ("compute", "--anchors", "-:y", *aligned()[3:], *OUT),
         1, r"<stdin>: no array 'y'; it holds: x$", stdin=_npz_bytes()),
    Case("stdin-twice", None, ("compute", "--anchors", "-", "--positives", "-",
                               "--negatives", "{d}/n.npy", *OUT), 2,
         r"only one input can be read from stdin \(-\)$", stdin=_npy_bytes(np.ones((5, 4)))),
    Case("stdin-triplets", None, (*indexed("x.npy", "t.csv")[:3], "--triplets", "-", *OUT), 1,
         r"<stdin>: no column 'negative'; columns: anchor, positive$",
         stdin=b"anchor,positive\n0,1\n"),
    Case("stdin-ragged-parquet", None, ("compute", "--anchors", "-", *aligned()[3:], *OUT), 1,
         r"<stdin>: column 'v' is ragged: row 2 has 1 values, row 0 has 4$",
         stdin=_parquet_bytes({"v": fixed_list([[1.0] * 4, [2.0] * 4, [3.0], [4.0] * 4,
                                                [5.0] * 4])})),
    # -- shapes
    Case("3d-anchors", npy("a3.npy", np.zeros((ROWS, 2, DIM), np.float32)),
         aligned("a3.npy", "p.npy", "n.npy", *OUT), 1,
         r"/a3\.npy: anchors must have shape \(d,\) or \(n, d\), got \(5, 2, 4\)$"),
    Case("1d-positives", npy("p1.npy", np.zeros(DIM, np.float32)),
         aligned("a.npy", "p1.npy", "n.npy", *OUT), 1,
         r"/p1\.npy: positives must have shape \(n, d\) or \(n, k, d\), got \(4,\)$"),
    Case("4d-negatives", npy("n4.npy", np.zeros((ROWS, 1, 1, DIM), np.float32)),
         aligned("a.npy", "p.npy", "n4.npy", *OUT), 1, r"/n4\.npy: negatives must have shape"),
    Case("1d-embeddings", npy("x1.npy", np.zeros(DIM, np.float32)),
         indexed("x1.npy", "t.parquet", *OUT), 1,
         r"/x1\.npy: embeddings must have shape \(n, d\), got \(4,\)$"),
    Case("row-counts-differ", npy("p4.npy", np.zeros((ROWS - 1, DIM), np.float32)),
         aligned("a.npy", "p4.npy", "n.npy", *OUT), 1,
         r"/p4\.npy: row counts differ: .*p4\.npy has 4"),
    Case("dimensions-differ", npy("n3.npy", np.zeros((ROWS, DIM - 1), np.float32)),
         aligned("a.npy", "p.npy", "n3.npy", *OUT), 1,
         r"/n3\.npy: dimensions differ: .*n3\.npy has d = 3"),
    Case("zero-rows", npy("a0.npy", np.zeros((0, DIM), np.float32)),
         aligned("a0.npy", "p.npy", "n.npy", *OUT), 1, r"/a0\.npy: has zero rows$"),
    Case("zero-rows-embeddings", npy("x0.npy", np.zeros((0, DIM), np.float32)),
         indexed("x0.npy", "t.parquet", *OUT), 1, r"/x0\.npy: has zero rows$"),
    Case("zero-dimensions", npy("ad.npy", np.zeros((ROWS, 0), np.float32)),
         aligned("ad.npy", "p.npy", "n.npy", *OUT), 1, r"/ad\.npy: has zero dimensions"),
    Case("zero-candidates", npy("p0.npy", np.zeros((ROWS, 0, DIM), np.float32)),
         aligned("a.npy", "p0.npy", "n.npy", *OUT), 1,
         rf"/p0\.npy: has shape \({ROWS}, 0, {DIM}\): zero candidates per anchor \(k = 0\)$"),
    # -- values
    Case("nan-anchors", spoil("a.npy", 3, 1, np.nan), aligned("a.npy", "p.npy", "n.npy", *OUT),
         1, r"/a\.npy: row 3 contains NaN$"),
    Case("inf-negatives", spoil("n.npy", 2, 0, -np.inf), aligned("a.npy", "p.npy", "n.npy", *OUT),
         1, r"/n\.npy: row 2 contains inf$"),
    Case("nan-first-bad-row", both(spoil("p.npy", 4, 0, np.nan), spoil("p.npy", 1, 3, np.inf)),
         aligned("a.npy", "p.npy", "n.npy", *OUT), 1, r"/p\.npy: row 1 contains inf$"),
    Case("nan-embeddings", spoil("x.npy", 5, 2, np.nan), indexed("x.npy", "t.parquet", *OUT), 1,
         r"/x\.npy: row 5 contains NaN$"),
    Case("nan-jsonl-stdout", spoil("a.npy", 0, 0, np.nan),
         aligned("a.npy", "p.npy", "n.npy", "--format", "jsonl", *OUT), 1,
         r"/a\.npy: row 0 contains NaN$"),
    Case("nan-parquet-list", table("nan.parquet", {"embedding": fixed_list(
        [[0.0, 1.0, 2.0, 3.0], [0.0, float("nan"), 2.0, 3.0], *_vectors(3)])}),
         aligned("nan.parquet", "p.npy", "n.npy", *OUT), 1, r"/nan\.parquet: row 1 contains NaN$"),
    Case("overflowing-values", both(npy("big.npy", np.full((ROWS, DIM), 1e200)),
                                    npy("nbig.npy", np.full((ROWS, DIM), -1e200))),
         aligned("big.npy", "nbig.npy", "n.npy", *OUT), 1, r"/big\.npy: row 0: .*overflow"),
    Case("bool-dtype", npy("b.npy", np.ones((ROWS, DIM), bool)),
         aligned("b.npy", "p.npy", "n.npy", *OUT), 1, r"/b\.npy: dtype bool is not a float type$"),
    Case("complex-dtype", npy("c.npy", np.ones((ROWS, DIM), np.complex64)),
         aligned("a.npy", "c.npy", "n.npy", *OUT), 1, r"/c\.npy: dtype complex64 is not a float"),
    Case("string-dtype", npy("s.npy", np.full((ROWS, DIM), "x")),
         aligned("a.npy", "p.npy", "s.npy", *OUT), 1, r"/s\.npy: dtype <U1 is not a float type"),
    Case("bfloat16-as-ml_dtypes-saves-it",
         npy("bf.npy", np.ones((ROWS, DIM), np.uint16).view("V2")),
         aligned("a.npy", "bf.npy", "n.npy", *OUT), 1,
         r"/bf\.npy: dtype \|V2 \(2 raw bytes a value\) is not a float type; bfloat16 arrays "
         r"saved from JAX or ml_dtypes look like this: save them as float32 "
         r"\(x\.astype\(np\.float32\)\)$"),
    Case("int64-beyond-2^53", npy("big.npy", np.full((ROWS, DIM), 2**53 + 1, np.int64)),
         aligned("big.npy", "p.npy", "n.npy", *OUT), 1, r"/big\.npy: int64 values beyond 2\^53"),
    Case("uint64-beyond-2^53", npy("ubig.npy", np.full((ROWS, DIM), 2**63, np.uint64)),
         aligned("a.npy", "ubig.npy", "n.npy", *OUT), 1, r"/ubig\.npy: uint64 values beyond 2\^53"),
    # -- parquet columns
    Case("string-column", table("lab.parquet", {"embedding": fixed_list(_vectors()),
                                                "name": pa.array(list("abcde"))}),
         aligned("lab.parquet", "p.npy", "n.npy", "--column", "name", *OUT), 1,
         r"/lab\.parquet: column 'name' is string, not a list of floats$"),
    Case("unknown-column", table("lab.parquet", {"embedding": fixed_list(_vectors()),
                                                 "label": pa.array([1, 2, 3, 4, 5])}),
         aligned("lab.parquet", "p.npy", "n.npy", "--column", "emb", *OUT), 1,
         r"/lab\.parquet: no column 'emb'; columns: embedding, label$"),
    Case("no-list-column", table("flat.parquet", {"x": pa.array([1.0] * ROWS)}),
         aligned("flat.parquet", "p.npy", "n.npy", *OUT), 1,
         r"/flat\.parquet: no list<float> column; columns: x$"),
    Case("two-list-columns", table("two.parquet", {"e1": fixed_list(_vectors()),
                                                   "e2": fixed_list(_vectors())}),
         aligned("two.parquet", "p.npy", "n.npy", *OUT), 1,
         r"/two\.parquet: several list<float> columns \(e1, e2\); choose one with --column$"),
    Case("ragged-list", table("rag.parquet", {"embedding": fixed_list(
        [[0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0], *_vectors(3)])}),
         aligned("rag.parquet", "p.npy", "n.npy", *OUT), 1,
         r"/rag\.parquet: column 'embedding' is ragged: row 1 has 3 values, row 0 has 4$"),
    Case("null-row", table("nul.parquet", {"embedding": fixed_list(
        [*_vectors(2), None, *_vectors(2)])}),
         aligned("a.npy", "nul.parquet", "n.npy", *OUT), 1,
         r"/nul\.parquet: column 'embedding': row 2 is null$"),
    Case("null-value-in-list", table("nv.parquet", {"embedding": fixed_list(
        [*_vectors(3), [0.0, None, 1.0, 2.0], *_vectors(1)])}),
         aligned("a.npy", "p.npy", "nv.parquet", *OUT), 1,
         r"/nv\.parquet: column 'embedding': row 3 holds a null value$"),
    # -- .npz
    Case("npz-several-arrays", npz("two.npz", x=np.zeros((ROWS, DIM)), y=np.zeros((ROWS, DIM))),
         aligned("two.npz", "p.npy", "n.npy", *OUT), 1,
         r"/two\.npz: holds 2 arrays \(x, y\); name one as .*two\.npz:KEY$"),
    Case("npz-unknown-key", npz("two.npz", x=np.zeros((ROWS, DIM)), y=np.zeros((ROWS, DIM))),
         aligned("two.npz:zz", "p.npy", "n.npy", *OUT), 1,
         r"/two\.npz: no array 'zz'; it holds: x, y$"),
    Case("npy-with-key", None, aligned("a.npy:emb", "p.npy", "n.npy", *OUT), 1,
         r"/a\.npy:emb: ':emb' names an array in an \.npz, but .*/a\.npy is a \.npy file$"),
    Case("npz-pickled", npz("obj.npz", x=np.array([None, 1], dtype=object)),
         aligned("a.npy", "obj.npz", "n.npy", *OUT), 1, r"/obj\.npz: holds Python objects"),
    # -- --triplets
    Case("triplet-out-of-range", table("t9.parquet", {
        "anchor": pa.array([0, 1]), "positive": pa.array([1, 2]), "negative": pa.array([3, 99])}),
         indexed("x.npy", "t9.parquet", *OUT), 1,
         r"/t9\.parquet: row 1: negative index 99 is out of range \[0, 6\)$"),
    Case("triplet-index-one-past-the-end", raw("t6.csv", b"anchor,positive,negative\n0,6,2\n"),
         indexed("x.npy", "t6.csv", *OUT), 1,
         r"/t6\.csv: row 0: positive index 6 is out of range \[0, 6\)$"),
    Case("triplet-negative-index", raw("tn.csv", b"anchor,positive,negative\n0,1,2\n-1,1,2\n"),
         indexed("x.npy", "tn.csv", *OUT), 1,
         r"/tn\.csv: row 1: anchor index -1 is out of range \[0, 6\)$"),
    Case("triplet-missing-column", table("t2.parquet", {"anchor": pa.array([0]),
                                                       "positive": pa.array([1])}),
         indexed("x.npy", "t2.parquet", *OUT), 1,
         r"/t2\.parquet: no column 'negative'; columns: anchor, positive$"),
    Case("triplet-float-indices", table("tf.parquet", {
        "anchor": pa.array([0.5]), "positive": pa.array([1.0]), "negative": pa.array([2.0])}),
         indexed("x.npy", "tf.parquet", *OUT), 1,
         r"/tf\.parquet: row 0: anchor index 0\.5 is not an integer$"),
    Case("triplet-null-index", table("tnull.parquet", {
        "anchor": pa.array([0, None]), "positive": pa.array([1, 1]),
        "negative": pa.array([2, 2])}), indexed("x.npy", "tnull.parquet", *OUT), 1,
         r"/tnull\.parquet: column 'anchor': row 1 is null$"),
    Case("triplet-npy-wrong-shape", npy("t4.npy", np.zeros((3, 4), np.int64)),
         indexed("x.npy", "t4.npy", *OUT), 1, r"/t4\.npy: triplets must have shape \(t, 3\)"),
    # -- flags (usage errors: exit 2)
    Case("p-below-1", None, aligned("a.npy", "p.npy", "n.npy", "--p", "0.5", *OUT), 2,
         r"--p must be >= 1 \(got 0\.5\)$"),
    Case("negative-margin", None, aligned("a.npy", "p.npy", "n.npy", "--margin", "-1", *OUT), 2,
         r"--margin must be a finite number >= 0 \(got -1\.0\)$"),
    Case("nan-margin", None, aligned("a.npy", "p.npy", "n.npy", "--margin", "nan", *OUT), 2,
         r"--margin must be a finite number >= 0"),
    Case("negative-eps", None, aligned("a.npy", "p.npy", "n.npy", "--eps", "-1e-6", *OUT), 2,
         r"--eps must be a finite number >= 0"),
    Case("margin-not-a-number", None, aligned("a.npy", "p.npy", "n.npy", "--margin", "x", *OUT),
         2, r"Invalid value for '--margin': .*number"),
    Case("unknown-distance", None, aligned("a.npy", "p.npy", "n.npy", "--distance", "l3", *OUT),
         2, r"--distance: unknown value 'l3'; choose from euclidean, .*, dot$"),
    Case("distance-typo", None, aligned("a.npy", "p.npy", "n.npy", "--distance", "cosin", *OUT),
         2, r"--distance: unknown value 'cosin'; .* \(did you mean 'cosine'\?\)$"),
    Case("format-typo", None, aligned("a.npy", "p.npy", "n.npy", "--format", "jsonn"), 2,
         r"--format: unknown value 'jsonn'; choose from table, json, jsonl, csv \(did you mean "
         r"'json'\?\)$"),
    Case("unknown-preset", None, aligned("a.npy", "p.npy", "n.npy", "--preset", "keras", *OUT),
         2, r"unknown preset 'keras'; presets: torch, .*, sentence-transformers$"),
    Case("preset-framework-name", None, aligned("a.npy", "p.npy", "n.npy", "--preset", "pml",
                                                 *OUT),
         2, r"unknown preset 'pml'; .* \(did you mean 'pytorch-metric-learning'\?\)$"),
    Case("mine-only-preset", None, aligned("a.npy", "p.npy", "n.npy", "--preset",
                                           "tf-similarity", *OUT),
         2, r"preset 'tf-similarity' has no compute operation"),
    Case("fail-above-nan", None, aligned("a.npy", "p.npy", "n.npy", "--fail-above", "nan", *OUT),
         2, r"--fail-above must be a number \(got nan\)$"),
    Case("top-negative", None, aligned("a.npy", "p.npy", "n.npy", "--top", "-1", *OUT), 2,
         r"Invalid value for '--top'"),
    Case("threads-zero", None, aligned("a.npy", "p.npy", "n.npy", "--threads", "0", *OUT), 2,
         r"Invalid value for '--threads'"),
    Case("unknown-option", None, aligned("a.npy", "p.npy", "n.npy", "--bogus", *OUT), 2,
         r"No such option: --bogus"),
    Case("unknown-command", None, ("computer", "--anchors", "{d}/a.npy"), 2,
         r"No such command 'computer'"),
    Case("anchors-with-embeddings", None,
         aligned("a.npy", "p.npy", "n.npy", "--embeddings", "{d}/x.npy", *OUT), 2,
         r"use --embeddings with --triplets, or --anchors --positives --negatives, not a mix$"),
    Case("embeddings-without-triplets", None,
         ("compute", "--embeddings", "{d}/x.npy", *OUT), 2,
         r"--triplets is missing: --embeddings and --triplets go together$"),
    Case("missing-negatives", None,
         ("compute", "--anchors", "{d}/a.npy", "--positives", "{d}/p.npy", *OUT), 2,
         r"give --anchors, --positives and --negatives"),
    Case("no-inputs", None, ("compute",), 2, r"give --anchors, --positives and --negatives"),
    Case("option-missing-value", None, ("compute", "--anchors"), 2,
         r"Option '--anchors' requires an argument"),
    # -- output
    Case("output-is-input", None, aligned("a.npy", "p.npy", "n.npy", "-o", "{d}/p.npy"), 2,
         r"--output .*/p\.npy is also an input; refusing to overwrite it$"),
    Case("output-is-input-via-symlink", symlink("link.npy", "n.npy"),
         aligned("a.npy", "p.npy", "n.npy", "-o", "{d}/link.npy"), 2,
         r"--output .*/link\.npy is also an input"),
    Case("output-is-triplets", None, indexed("x.npy", "t.csv", "-o", "{d}/t.csv"), 2,
         r"--output .*/t\.csv is also an input"),
    Case("output-folder-missing", None,
         aligned("a.npy", "p.npy", "n.npy", "-o", "{d}/nowhere/out.parquet"), 1,
         r"/nowhere/out\.parquet: output folder .*/nowhere does not exist$"),
    Case("output-is-directory", folder("dir.parquet"),
         aligned("a.npy", "p.npy", "n.npy", "-o", "{d}/dir.parquet"), 1,
         r"/dir\.parquet: is a directory; --output needs a file name$"),
    Case("output-unknown-suffix", None, aligned("a.npy", "p.npy", "n.npy", "-o", "{d}/out.txt"),
         2, r"--output .*/out\.txt: unknown suffix; use \.csv, "),
    Case("output-dash", None, aligned("a.npy", "p.npy", "n.npy", "-o", "-"), 2,
         r"--output - is not needed"),
]

COMPUTE = Table("compute", _good_inputs, CASES)
test_hostile_input = COMPUTE.test()


# ---- inputs that look odd but are fine -------------------------------------------------------

FINE = [
    ("int16", npy("i.npy", np.arange(ROWS * DIM, dtype=np.int16).reshape(ROWS, DIM)),
     aligned("i.npy", "p.npy", "n.npy")),
    ("uint8", npy("u.npy", np.ones((ROWS, DIM), np.uint8)), aligned("a.npy", "u.npy", "n.npy")),
    ("int64-at-2^53", npy("big.npy", np.full((ROWS, DIM), 2**53, np.int64)),
     aligned("big.npy", "p.npy", "n.npy")),
    ("float16", npy("h.npy", np.ones((ROWS, DIM), np.float16)), aligned("a.npy", "p.npy", "h.npy")),
    ("big-endian-float32", npy("be.npy", np.ones((ROWS, DIM), ">f4")),
     aligned("be.npy", "p.npy", "n.npy")),
    ("fortran-order", npy("f.npy", lambda: np.asfortranarray(np.ones((ROWS, DIM), np.float32))),
     aligned("a.npy", "f.npy", "n.npy")),
    ("margin-zero", None, aligned("a.npy", "p.npy", "n.npy", "--margin", "0")),
    ("one-anchor", npy("a1.npy", np.zeros(DIM, np.float32)), aligned("a1.npy", "p.npy", "n.npy")),
    ("npz-only-array", npz("one.npz", emb=np.ones((ROWS, DIM))),
     aligned("a.npy", "p.npy", "one.npz")),
    ("npz-key", npz("two.npz", x=np.ones((ROWS, DIM)), y=np.zeros((ROWS, 1))),
     aligned("a.npy", "two.npz:x", "n.npy")),
    ("int-list-column", table("il.parquet", {"embedding": fixed_list(
        [[1, 2, 3, 4]] * ROWS, pa.int32())}), aligned("il.parquet", "p.npy", "n.npy")),
    ("triplets-csv", None, indexed("x.npy", "t.csv")),
    ("triplets-int32", table("t32.parquet", {c: pa.array([0, 1], pa.int32()) for c in
                                             ("anchor", "positive", "negative")}),
     indexed("x.npy", "t32.parquet")),
]


@pytest.mark.parametrize(("make", "argv"), [pytest.param(m, a, id=i) for i, m, a in FINE])
def test_fine_input(make: Maker | None, argv: tuple[str, ...], tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch, cli) -> None:
    _good_inputs(tmp_path)
    if make is not None:
        make(tmp_path, monkeypatch)
    result = cli(*(a.format(d=tmp_path) for a in argv), "--format", "json", "--quiet")
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert result.stderr == ""
    summary = json.loads(result.stdout)
    assert summary["count"] >= 1
    assert summary["loss"] is not None and np.isfinite(summary["loss"])


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i2"])
def test_byte_order_does_not_change_the_numbers(dtype: str, tmp_path: Path, cli) -> None:
    _good_inputs(tmp_path)
    for name in ("a", "p", "n"):
        a = np.load(tmp_path / f"{name}.npy")
        a = np.round(a * 100) if dtype[1] == "i" else a
        np.save(tmp_path / f"{name}.npy", a.astype(np.float32))
        np.save(tmp_path / f"{name}-swapped.npy", a.astype(dtype))
    native = cli(*(x.format(d=tmp_path) for x in aligned()), "-f", "jsonl")
    swapped = cli(*(x.format(d=tmp_path) for x in aligned("a-swapped.npy", "p-swapped.npy",
                                                          "n-swapped.npy")), "-f", "jsonl")
    assert native.exit_code == swapped.exit_code == 0, swapped.stderr
    assert swapped.stdout == native.stdout


# ---- writers.atomic_path: a failure after writing started leaves nothing behind ----------------


@pytest.mark.parametrize("existing", [None, b"old bytes\n"])
def test_atomic_path_failure_leaves_target_untouched(tmp_path: Path,
                                                     existing: bytes | None) -> None:
    target = tmp_path / "out.parquet"
    if existing is not None:
        target.write_bytes(existing)
    with pytest.raises(RuntimeError, match="boom"), writers.atomic_path(str(target)) as tmp:
        assert Path(tmp).parent == tmp_path
        Path(tmp).write_bytes(b"partial rows")
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == ([] if existing is None else ["out.parquet"])
    if existing is not None:
        assert target.read_bytes() == existing


def test_atomic_path_interrupt_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "rows.npy"
    with pytest.raises(KeyboardInterrupt), writers.atomic_path(str(target)) as tmp:
        Path(tmp).write_bytes(b"x" * 100)
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_atomic_path_success_replaces_target(tmp_path: Path) -> None:
    target = tmp_path / "rows.csv"
    target.write_bytes(b"old")
    with writers.atomic_path(str(target)) as tmp:
        Path(tmp).write_bytes(b"new")
    assert os.listdir(tmp_path) == ["rows.csv"]
    assert target.read_bytes() == b"new"


@pytest.mark.parametrize("existing", [None, SENTINEL], ids=["fresh", "sentinel"])
def test_failed_run_after_writing_started_leaves_no_output(existing: bytes | None, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           cli) -> None:
    """A NaN is found after the kernels ran, i.e. after --output's temp file was opened: in
    every output format, no file appears, or the one there keeps its bytes."""
    _good_inputs(tmp_path)
    spoil("a.npy", 4, 0, np.nan)(tmp_path, monkeypatch)
    for suffix in (".parquet", ".csv", ".jsonl", ".npy"):
        out = tmp_path / f"out{suffix}"
        if existing is not None:
            out.write_bytes(existing)
        result = cli(*(a.format(d=tmp_path) for a in aligned()), "-o", out)
        assert result.exit_code == 1
        assert result.stderr.endswith("a.npy: row 4 contains NaN\n")
        assert out.read_bytes() == existing if existing is not None else not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
