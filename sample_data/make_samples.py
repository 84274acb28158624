"""Regenerate the sample embedding files in ``sample_data/``.

The embeddings are real: scikit-learn's bundled 8x8 digits images (1797
samples, 64 pixels) are standardised per feature, projected to 32 dimensions
by PCA (numpy SVD) and L2-normalised per row. Everything is deterministic
(``np.random.default_rng(0)``), so re-running gives byte-identical ``.npy``
files.

Usage::

    python sample_data/make_samples.py   # needs scikit-learn
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_digits

OUT_DIR = Path(__file__).resolve().parent
DIM = 32
N_CANDIDATE_ANCHORS = 200
N_POS_CANDIDATES = 3
N_NEG_CANDIDATES = 5
LATER_STRENGTH = 0.3
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Scale every row to unit euclidean length and cast to float32."""
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def pca_basis(x: np.ndarray, dim: int) -> np.ndarray:
    """Top ``dim`` principal axes of centred ``x``, as a (features, dim) matrix."""
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    basis = vt[:dim].T
    # Fix the SVD sign ambiguity: largest-magnitude loading of each axis is positive.
    signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(dim)])
    return basis * signs


def pick_other(rng: np.random.Generator, pool: np.ndarray, exclude: int, k: int) -> np.ndarray:
    """Draw ``k`` distinct indices from ``pool`` without ``exclude``."""
    return rng.choice(pool[pool != exclude], size=k, replace=False)


def embedding_table(x: np.ndarray, **columns: pa.Array) -> pa.Table:
    """Build a table whose ``embedding`` column is ``fixed_size_list<float32>[dim]``."""
    values = pa.array(x.ravel(), type=pa.float32())
    embedding = pa.FixedSizeListArray.from_arrays(values, x.shape[1])
    return pa.table({"embedding": embedding, **columns})


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` compactly (float data does not benefit from dictionaries)."""
    pq.write_table(table, path, compression="zstd", use_dictionary=False)


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    """Write ``rows`` under ``header`` as a plain CSV file."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main() -> None:
    """Compute the embeddings, mine the triplets and write every sample file."""
    rng = np.random.default_rng(0)
    digits = load_digits()
    pixels = digits.data.astype(np.float64)
    labels = digits.target.astype(np.int64)
    n = len(labels)

    std = pixels.std(axis=0)
    standardised = (pixels - pixels.mean(axis=0)) / np.where(std > 0, std, 1.0)
    basis = pca_basis(standardised, DIM)
    embeddings = l2_normalise(standardised @ basis)

    idx = np.arange(n)
    same = {c: idx[labels == c] for c in range(10)}
    other = {c: idx[labels != c] for c in range(10)}
    pos_idx = np.array([pick_other(rng, same[labels[i]], i, 1)[0] for i in idx], dtype=np.int64)
    neg_idx = np.array([rng.choice(other[labels[i]]) for i in idx], dtype=np.int64)

    first = idx[:N_CANDIDATE_ANCHORS]
    cand_pos = np.stack([pick_other(rng, same[labels[i]], i, N_POS_CANDIDATES) for i in first])
    cand_neg = np.stack([pick_other(rng, other[labels[i]], i, N_NEG_CANDIDATES) for i in first])

    # "Later checkpoint": blend a random rotation into the data, then redo the PCA.
    n_features = standardised.shape[1]
    rotation, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
    mix = (1 - LATER_STRENGTH) * np.eye(n_features) + LATER_STRENGTH * rotation
    mixed = standardised @ mix
    projected = mixed @ pca_basis(mixed, DIM)
    # Rotate onto the original axes (orthogonal Procrustes; distances are unchanged)
    # so each row stays close to its earlier version, as in a later checkpoint.
    u, _, vt = np.linalg.svd(projected.T @ (standardised @ basis))
    embeddings_later = l2_normalise(projected @ u @ vt)

    anchors, positives, negatives = embeddings, embeddings[pos_idx], embeddings[neg_idx]
    arrays = {
        "embeddings": embeddings,
        "embeddings_later": embeddings_later,
        "labels": labels,
        "anchors": anchors,
        "positives": positives,
        "negatives": negatives,
        "anchors_200": anchors[:N_CANDIDATE_ANCHORS],
        "candidates_positives": embeddings[cand_pos],
        "candidates_negatives": embeddings[cand_neg],
    }
    for name, array in arrays.items():
        np.save(OUT_DIR / f"{name}.npy", np.ascontiguousarray(array))

    for name, array in (
        ("anchors", anchors),
        ("positives", positives),
        ("negatives", negatives),
    ):
        write_parquet(embedding_table(array), OUT_DIR / f"{name}.parquet")

    names = [WORDS[c] for c in labels]
    labelled = embedding_table(
        embeddings,
        label=pa.array(labels, type=pa.int64()),
        name=pa.array(names, type=pa.string()),
    )
    write_parquet(labelled, OUT_DIR / "labelled.parquet")
    write_csv(OUT_DIR / "labels.csv", ["label"], [[w] for w in names])

    triplets = {
        "anchor": idx.astype(np.int64),
        "positive": pos_idx,
        "negative": neg_idx,
    }
    write_parquet(
        pa.table({k: pa.array(v, type=pa.int64()) for k, v in triplets.items()}),
        OUT_DIR / "triplets.parquet",
    )
    write_csv(
        OUT_DIR / "triplets.csv",
        list(triplets),
        np.column_stack(list(triplets.values())).tolist(),
    )
    write_csv(OUT_DIR / "pairs.csv", ["query", "positive"], negatives_pairs(labels, pos_idx))


def negatives_pairs(labels: np.ndarray, pos_idx: np.ndarray) -> list[list[int]]:
    """(query, positive) pairs for mine-negatives, rows into embeddings.npy: the first
    N_CANDIDATE_ANCHORS samples, each with the triplets' positive and, for even rows, also the
    next same-digit sample after it (so some queries have two positives)."""
    rows = []
    for i in range(N_CANDIDATE_ANCHORS):
        rows.append([i, int(pos_idx[i])])
        later = [k for k in np.flatnonzero(labels == labels[i]) if k > i and k != pos_idx[i]]
        if i % 2 == 0 and later:
            rows.append([i, int(later[0])])
    return rows


if __name__ == "__main__":
    main()
