"""Reducing per-triplet values to a summary, block by block, in float64.

Counts, sums, means, standard deviations, minima and maxima are exact whatever the block sizes
(up to float64 rounding of the running sums). Quantiles and the histogram come from the values
themselves while there are at most SAMPLE_SIZE triplets, and beyond that from a deterministic
bottom-k sample (keyed by a hash of the triplet's row number, so it does not depend on block
sizes or worker counts): a rank error of about 1/sqrt(SAMPLE_SIZE) = 0.1%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .params import Reduction

SAMPLE_SIZE = 1 << 20
CHUNK_ROWS = 1 << 16
# |d_an - d_ap| below this (relative to the distance scale) counts as a tie: collapsed embeddings.
TIE_TOLERANCE = 1e-6


@dataclass
class Moments:
    """Count, mean, M2 (sum of squared deviations), min and max, merged with Chan's formula."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    def add(self, values: np.ndarray) -> None:
        n = values.size
        if n == 0:
            return
        mean = float(values.mean(dtype=np.float64))
        m2 = float(np.square(values - mean, dtype=np.float64).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else math.nan


def _hash_keys(start: int, n: int) -> np.ndarray:
    """splitmix64 of the row numbers start..start+n-1: a fixed pseudo-random key per row."""
    z = np.arange(start, start + n, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass
class TripletStats:
    """Running summary of (d_ap, d_an, loss, correct) over blocks of triplets."""

    margin: float
    sample_size: int = SAMPLE_SIZE
    count: int = 0
    loss_sum: float = 0.0
    nonzero_count: int = 0
    nonzero_sum: float = 0.0
    correct_sum: float = 0.0
    nan_count: int = 0
    zero_distances: int = 0
    on_margin: int = 0
    ties: int = 0
    loss_max: float = -math.inf
    d_ap: Moments = field(default_factory=Moments)
    d_an: Moments = field(default_factory=Moments)
    _keys: list[np.ndarray] = field(default_factory=lambda: [np.empty(0, np.uint64)])
    _sample: list[np.ndarray] = field(default_factory=lambda: [np.empty((0, 2))])  # float64
    _pending: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    _pending_rows: int = 0

    def add(self, d_ap: np.ndarray, d_an: np.ndarray, loss: np.ndarray,
            correct: np.ndarray | None = None) -> None:
        """Add the next triplets (in output order: they are numbered from the first).

        They are summarised in chunks of CHUNK_ROWS rows counted from the first triplet, so
        every running sum sees the same values in the same order whatever the callers' blocks.
        """
        if loss.size == 0:
            return
        right = correct if correct is not None else (d_ap < d_an).astype(np.float64)
        self._pending.append((d_ap, d_an, loss, right))
        self._pending_rows += loss.size
        while self._pending_rows >= CHUNK_ROWS:
            self._process(CHUNK_ROWS)

    def settle(self) -> None:
        """Summarise what is still pending (the last, partial chunk)."""
        if self._pending_rows:
            self._process(self._pending_rows)

    def _process(self, rows: int) -> None:
        parts = [np.concatenate(c) for c in zip(*self._pending, strict=True)]
        d_ap, d_an, loss, correct = (p[:rows] for p in parts)
        self._pending = [tuple(p[rows:] for p in parts)] if parts[0].size > rows else []
        self._pending_rows -= rows
        start, self.count = self.count, self.count + rows
        with np.errstate(invalid="ignore", over="ignore"):
            self.loss_sum += float(loss.sum(dtype=np.float64))
            active = loss > 0
            self.nonzero_count += int(active.sum())
            self.nonzero_sum += float(loss[active].sum(dtype=np.float64))
            self.correct_sum += float(correct.sum(dtype=np.float64))
            nan = np.isnan(loss)
            self.nan_count += int(nan.sum())
            if not nan.all():
                self.loss_max = max(self.loss_max, float(loss[~nan].max()))
            scale = max(float(np.abs(d_an).max()), 1.0)
            gap = d_an - d_ap
            self.ties += int((np.abs(gap) <= TIE_TOLERANCE * scale).sum())
            self.on_margin += int((gap == self.margin).sum())
            self.zero_distances += int((d_ap == 0).sum() + (d_an == 0).sum())
            self.d_ap.add(d_ap)
            self.d_an.add(d_an)
        self._keys.append(_hash_keys(start, rows))
        self._sample.append(np.stack([d_ap, d_an], axis=1))
        if sum(k.size for k in self._keys) > 2 * self.sample_size:
            self._compact()

    def _compact(self) -> None:
        """Keep the sample_size rows with the smallest keys (the order of arrival is irrelevant:
        splitmix64 is a bijection, so keys are distinct)."""
        keys, sample = np.concatenate(self._keys), np.concatenate(self._sample)
        if keys.size > self.sample_size:
            keep = np.argpartition(keys, self.sample_size)[: self.sample_size]
            keys, sample = keys[keep], sample[keep]
        self._keys, self._sample = [keys], [sample]

    @property
    def sample(self) -> np.ndarray:
        """(k, 2) array of (d_ap, d_an): every triplet, or the bottom-k sample."""
        self.settle()
        if len(self._keys) > 1:
            self._compact()
        return self._sample[0]

    def _distances(self, which: str) -> dict[str, float]:
        m = self.d_ap if which == "d_ap" else self.d_an
        column = self.sample[:, 0 if which == "d_ap" else 1]
        p50 = float(np.median(column)) if column.size else math.nan
        return {"mean": m.mean, "std": m.std, "min": m.min, "p50": p50, "max": m.max}

    def summary(self, reduction: Reduction) -> dict[str, object]:
        """The stable summary keys of SPEC section 3 (without params, inputs and warnings)."""
        self.settle()
        n, reduction = self.count, Reduction(reduction)
        mean = self.loss_sum / n if n else 0.0
        # over losses > 0; 0 when none is (as pytorch-metric-learning, not NaN from 0/0)
        mean_nonzero = self.nonzero_sum / self.nonzero_count if self.nonzero_count else 0.0
        return {
            "count": n,
            "loss": {Reduction.mean: mean, Reduction.sum: self.loss_sum,
                     Reduction.mean_nonzero: mean_nonzero, Reduction.none: None}[reduction],
            "reduction": reduction.value,
            "mean": mean,
            "sum": self.loss_sum,
            "mean_nonzero": mean_nonzero,
            "active_fraction": self.nonzero_count / n if n else 0.0,
            "accuracy": self.correct_sum / n if n else 0.0,
            "d_ap": self._distances("d_ap"),
            "d_an": self._distances("d_an"),
            "quantiles": "exact" if n <= self.sample_size else f"sample of {self.sample_size}",
        }

    def warnings(self, soft_margin: bool) -> list[str]:
        """What users otherwise discover late (CONFORMANCE.md, 'What users ask for')."""
        self.settle()
        out = []
        if not self.count:
            return out
        if self.ties >= 0.9 * self.count:
            stuck = "ln 2" if soft_margin and self.margin == 0 else "the margin"
            out.append(f"collapsed embeddings: {self.ties / self.count:.0%} of triplets have "
                       f"d_ap = d_an, so the loss sits at {stuck}; check the embedding norms")
        if self.zero_distances:
            out.append(f"duplicate points: {self.zero_distances} zero distances (a positive or "
                       "negative identical to its anchor)")
        if self.on_margin:
            out.append(f"{self.on_margin} triplets sit exactly on the margin (d_an - d_ap = "
                       f"{self.margin:g}): loss 0 but not active")
        if self.nonzero_count == 0 and self.nan_count == 0 and not soft_margin:
            out.append("no active triplet: every triplet already satisfies the margin, so the "
                       "loss is 0")
        if self.nan_count:
            out.append(f"{self.nan_count} triplets have a NaN loss")
        return out
