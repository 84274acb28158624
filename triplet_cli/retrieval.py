"""Retrieval metrics of one block of queries from their ranked neighbours (SPEC section 8).

Plain numpy on (queries, L) arrays: rel[i, j] says whether query i's (j+1)-th neighbour has its
label. Every value is per query; averages are taken once over the whole run (evaluation.py), so
they do not depend on how queries were split into blocks.
"""

from __future__ import annotations

import numpy as np


def relevance(nn_codes: np.ndarray, query_codes: np.ndarray) -> np.ndarray:
    """rel[i, j]: neighbour j of query i has the query's class (a missing neighbour, code -1,
    never does)."""
    return (nn_codes == query_codes[:, None]) & (nn_codes >= 0)


def _precisions(rel: np.ndarray) -> np.ndarray:
    """P@i * rel_i for every position i (1-based i), the terms of average precision."""
    ranks = np.arange(1, rel.shape[1] + 1, dtype=np.float64)
    return np.cumsum(rel, axis=1, dtype=np.float64) / ranks * rel


def _reciprocal_rank(rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 1-based rank of each query's first relevant neighbour among these (0: none), and
    its reciprocal (0 for none)."""
    first = np.where(rel.any(axis=1), np.argmax(rel, axis=1) + 1, 0)
    return first, np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)


def _ndcg(rel: np.ndarray, ideal_hits: np.ndarray) -> np.ndarray:
    """DCG of the ranked neighbours over the DCG of `ideal_hits` relevant ones ranked first:
    binary gains rel_i / log2(i + 1), summed in rank order as sentence-transformers'
    InformationRetrievalEvaluator sums them."""
    discounts = np.log2(np.arange(2, rel.shape[1] + 2, dtype=np.float64))
    dcg = np.cumsum(rel / discounts, axis=1)[:, -1]
    return dcg / np.cumsum(1.0 / discounts)[ideal_hits - 1]


def per_query(rel: np.ndarray, r: np.ndarray, k: int, at: tuple[int, ...],
              map_divisor: str, recall: str) -> dict[str, np.ndarray]:
    """Every metric of every query whose R >= 1 (others get NaN; the caller counts them).

    rel has L >= max(k, max(at)) columns. k bounds the R-based metrics and the reciprocal
    rank; K of `at` bounds its @K metrics. When R > k, R-precision counts the first k
    neighbours over min(R, k) and MAP@R keeps the divisor R (pytorch-metric-learning's
    AccuracyCalculator does both).
    """
    scored = r > 0
    safe_r = np.where(scored, r, 1).astype(np.float64)
    first, reciprocal = _reciprocal_rank(rel[:, :k])
    within_r = np.arange(k)[None, :] < np.minimum(r, k)[:, None]
    terms = _precisions(rel)
    out = {
        "p_at_1": rel[:, 0].astype(np.float64),
        "r_precision": (rel[:, :k] & within_r).sum(axis=1) / np.minimum(safe_r, k),
        "ap_at_r": (terms[:, :k] * within_r).sum(axis=1) / safe_r,
        "reciprocal_rank": reciprocal,
    }
    for K in at:
        hits = rel[:, :K].sum(axis=1)
        out[f"precision_at_{K}"] = hits / K
        out[f"recall_at_{K}"] = (hits > 0).astype(np.float64) if recall == "hit" \
            else hits / safe_r
        divisor = safe_r if map_divisor == "r" else np.minimum(safe_r, K)
        out[f"map_at_{K}"] = terms[:, :K].sum(axis=1) / divisor
        out[f"ndcg_at_{K}"] = _ndcg(rel[:, :K], np.minimum(safe_r, K).astype(np.int64))
        out[f"mrr_at_{K}"] = _reciprocal_rank(rel[:, :K])[1]
    for v in out.values():
        v[~scored] = np.nan
    out["first_relevant_rank"] = first
    return out


def metric_keys(at: tuple[int, ...]) -> list[tuple[str, str]]:
    """(per-query value, the report's metric: its mean), in table order."""
    fixed = [("p_at_1", "precision_at_1"), ("r_precision", "r_precision"),
             ("ap_at_r", "map_at_r"), ("reciprocal_rank", "mrr")]
    return fixed + [(f"{m}_at_{K}",) * 2 for m in ("precision", "recall", "map", "ndcg", "mrr")
                    for K in at]


def tie_at(vals: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Whether the neighbour at position cut (1-based) ties the next one (same exact distance):
    which of them is inside the cut-off then rests on the lowest-index rule alone."""
    rows = np.arange(vals.shape[0])
    inside = (cut >= 1) & (cut < vals.shape[1])
    c = np.clip(cut, 1, vals.shape[1] - 1)
    a, b = vals[rows, c - 1], vals[rows, c]
    return inside & np.isfinite(b) & (a == b)


def average(values: np.ndarray, codes: np.ndarray, scored: np.ndarray, how: str) -> float:
    """micro: the mean over scored queries; macro: per class first, then the unweighted mean
    over classes with a scored query (pytorch-metric-learning's avg_of_avgs)."""
    v = values[scored]
    if not v.size:
        return float("nan")
    if how == "micro":
        return float(np.mean(v))
    means, counts = per_class(values, codes, scored, 0)
    return float(np.mean(means[counts > 0]))


def per_class(values: np.ndarray, codes: np.ndarray, scored: np.ndarray, classes: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """(mean over each class's scored queries, their count); NaN for a class without one."""
    counts = np.bincount(codes[scored], minlength=classes)
    sums = np.bincount(codes[scored], weights=values[scored], minlength=classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts, counts
