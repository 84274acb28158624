"""Fixtures for mine-negatives from the live sentence-transformers `util.mine_hard_negatives`.

Run in a virtualenv with torch (CPU), sentence-transformers, datasets and tokenizers (not the
project's): `python tests/conformance/negatives/generate.py`. Each case's embeddings are random
float32 rows served by a tiny StaticEmbedding model: one word-level token per text ("q12" is
query row 12, "d34" corpus row 34), so the model's embedding of a text is exactly its row and no
download is needed. Draws are repeated (seed + 1000) until no two scores near a query's window
lie within GUARD of each other or of a filter's threshold, so float32 rounding cannot change
a decision. The outputs are stored as indices and scores; tests/test_mine_negatives_conformance.py
compares mine_negatives(..., preset="sentence-transformers") with them (numpy only).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GUARD = 2e-6  # float32 cosines are good to about 1e-7

# name, queries, corpus rows, d, positives per query (list or int), ST keyword arguments, seed
CASES = [
    ("basic", 30, 200, 16, 1, {}, 1),
    ("multi_positive", 25, 150, 12, [1, 2, 3], {"num_negatives": 4}, 2),
    ("filters", 30, 300, 16, 2, {"relative_margin": 0.05, "max_score": 0.6}, 3),
    ("absolute_range", 30, 250, 8, 1, {"absolute_margin": 0.1, "range_min": 2, "range_max": 20,
                                       "num_negatives": 4}, 4),
    ("min_score", 20, 200, 16, 1, {"min_score": 0.2, "range_max": 30}, 5),
    ("negative_positive_scores", 30, 200, 16, 1, {"relative_margin": 0.2, "range_max": 190}, 6),
    ("n_tuple", 30, 200, 16, 2, {"output_format": "n-tuple", "num_negatives": 3,
                                 "max_score": 0.5}, 7),
    ("labeled_pair", 20, 150, 16, 2, {"output_format": "labeled-pair", "num_negatives": 3}, 8),
]
OURS = {"relative_margin", "absolute_margin", "max_score", "min_score", "range_min", "range_max",
        "num_negatives", "output_format"}


def draw(n: int, m: int, d: int, per: int | list[int], seed: int, anti: bool):
    """Queries, corpus and (query, positive) pairs: each positive a noisy copy of its query (an
    opposite one with `anti`, so positive scores are negative)."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, d))
    c = rng.normal(size=(m, d))
    counts = [per[i % len(per)] for i in range(n)] if isinstance(per, list) else [per] * n
    slots = rng.permutation(m)[: sum(counts)]
    pairs = []
    at = 0
    for i, k in enumerate(counts):
        for j in slots[at:at + k]:
            c[j] = (-1.0 if anti else 1.0) * q[i] + rng.normal(size=d) * 1.2
            pairs.append((i, int(j)))
        at += k
    return q.astype(np.float32), c.astype(np.float32), np.array(pairs, np.int64)


def safe(q, c, pairs, kw) -> bool:
    """No near-ties among each query's top candidates, nor near a filter's threshold."""
    qn = q / np.linalg.norm(q.astype(np.float64), axis=1, keepdims=True)
    cn = c / np.linalg.norm(c.astype(np.float64), axis=1, keepdims=True)
    s = qn @ cn.T
    thresholds = [kw[k] for k in ("max_score", "min_score") if k in kw]
    for i in range(len(q)):
        pos = pairs[pairs[:, 0] == i, 1]
        top = np.sort(s[i])[::-1][:min(kw.get("range_max", 45), 45) + 5]
        if np.diff(top).size and np.abs(np.diff(top)).min() < GUARD:
            return False
        sp = s[i, pos].min()
        marks = thresholds + ([sp - kw["absolute_margin"]] if "absolute_margin" in kw else [])
        marks += [sp - abs(sp) * kw["relative_margin"]] if "relative_margin" in kw else []
        if any(np.abs(top - t).min() < GUARD for t in marks):
            return False
    return True


def model_for(texts: list[str], rows: np.ndarray):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"[UNK]": 0, **{t: i + 1 for i, t in enumerate(texts)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    weights = np.concatenate([np.zeros((1, rows.shape[1]), np.float32), rows])
    return SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights)],
                               device="cpu")


def run_case(name, n, m, d, per, kw, seed) -> dict:
    import sentence_transformers
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    while True:
        q, c, pairs = draw(n, m, d, per, seed, anti=name == "negative_positive_scores")
        if safe(q, c, pairs, kw):
            break
        seed += 1000
    qt, ct = [f"q{i}" for i in range(n)], [f"d{j}" for j in range(m)]
    model = model_for(qt + ct, np.concatenate([q, c]))
    data = Dataset.from_dict({"query": [qt[i] for i in pairs[:, 0]],
                              "answer": [ct[j] for j in pairs[:, 1]]})
    fmt = kw.get("output_format", "triplet")
    call = {**kw, "corpus": "all corpus texts d0..d{m-1}", "output_scores": fmt != "labeled-pair",
            "sampling_strategy": "top", "batch_size": 64, "verbose": True}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        out = mine_hard_negatives(data, model, corpus=ct, output_scores=fmt != "labeled-pair",
                                  batch_size=64, verbose=True, **kw)
    rows = out.to_dict()
    num = lambda texts: np.array([int(t[1:]) for t in texts], np.int64)  # noqa: E731
    fixture = {"queries": q, "corpus": c, "pairs": pairs}
    if fmt == "triplet":
        fixture.update(anchor=num(rows["query"]), positive=num(rows["answer"]),
                       negative=num(rows["negative"]),
                       scores=np.array(rows["scores"], np.float64).reshape(-1, 2))
    elif fmt == "n-tuple":
        k = kw["num_negatives"]
        fixture.update(anchor=num(rows["query"]), positive=num(rows["answer"]),
                       negatives=np.stack([num(rows[f"negative_{t}"]) for t in range(1, k + 1)],
                                          axis=1).reshape(-1, k),
                       scores=np.array(rows["scores"], np.float64).reshape(-1, k + 1))
    else:
        fixture.update(anchor=num(rows["query"]), candidate=num(rows["answer"]),
                       label=np.array(rows["label"], np.int64))
    np.savez_compressed(HERE / f"{name}.npz", **fixture)
    return {"name": name, "file": f"{name}.npz", "seed": seed,
            "params": {k: v for k, v in kw.items() if k in OURS},
            "library_call": call, "library": f"sentence-transformers "
            f"{sentence_transformers.__version__}", "printed": printed.getvalue().splitlines()}


def main() -> None:
    manifest = [run_case(*case) for case in CASES]
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for entry in manifest:
        print(entry["name"], entry["seed"], len(entry["printed"]), "lines printed")


if __name__ == "__main__":
    main()
