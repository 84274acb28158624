"""Distance thresholds for "same class" on nearest-neighbour distances (TF Similarity's
calibrate, SPEC section 8).

At threshold t a query's nearest neighbour is a match when its distance is <= t: a true positive
when it has the query's class, a false positive otherwise; a same-class neighbour beyond t is a
false negative. Every distinct distance is a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Curve:
    """Precision, recall and F1 at every threshold (ascending)."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray

    def point(self, i: int) -> dict[str, float]:
        return {"threshold": float(self.thresholds[i]), "precision": float(self.precision[i]),
                "recall": float(self.recall[i]), "f1": float(self.f1[i])}


def curve(distances: np.ndarray, same: np.ndarray) -> Curve:
    """The curve over the distinct values of `distances` (same: the neighbour's class matches)."""
    order = np.argsort(distances, kind="stable")
    d, s = distances[order], same[order]
    last = np.flatnonzero(np.append(d[1:] != d[:-1], True))  # the last row of each value
    tp = np.cumsum(s, dtype=np.int64)[last]
    fp = np.cumsum(~s, dtype=np.int64)[last]
    positives = int(s.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / positives if positives else np.full(tp.shape, np.nan)
        f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + (positives - tp)), 0.0)
    return Curve(d[last], precision, recall, f1)


def calibrate(distances: np.ndarray, same: np.ndarray, target: tuple[str, float]
              ) -> tuple[dict[str, object], Curve]:
    """The best-F1 threshold (the last argmax, as TF Similarity) and the threshold that reaches
    the target: for precision the largest one with precision >= value (the most recall at that
    precision), for recall the smallest one with recall >= value; None when unreachable."""
    c = curve(distances, same)
    metric, value = target
    none = dict.fromkeys(("threshold", "precision", "recall", "f1"))
    best = c.point(int(c.f1.size - 1 - np.argmax(c.f1[::-1])))
    reached = np.flatnonzero((c.precision if metric == "precision" else c.recall) >= value)
    at = int(reached[-1] if metric == "precision" else reached[0]) if reached.size else None
    return {"best_f1": best, "target": {"metric": metric, "value": value,
                                        **(none if at is None else c.point(at))}}, c
