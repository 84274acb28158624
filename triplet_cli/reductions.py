"""Reducing per-triplet values to a summary, block by block, in float64.

Counts, sums, means, standard deviations, minima and maxima do not depend on the block sizes
(fixed chunks of CHUNK_ROWS). Quantiles and the histogram come from every value up to
SAMPLE_SIZE triplets, beyond that from a bottom-k sample keyed by a hash of the row number
(independent of blocks and workers): a rank error of about 1/sqrt(SAMPLE_SIZE) = 0.1%. A chunk
is summarised by numpy's sums and extremes and one jitted pass (statistics.py), bit for bit
the numpy expressions it replaced. Chunks wait until BATCH_CHUNKS of them are pending; with two
kernel threads, a batch's chunks are taken one at a time by two threads, merged in chunk order
(histogram counts added), and from MEDIANS_SIDE_BY_SIDE rows the two medians are found side by
side: the same bits with any thread count. The sample holds the blocks' own arrays until it
must be thinned.

A run of at most `numpy_rows` triplets (by default NUMPY_ROWS: sample_data's, a batch's) is
summarised by those numpy expressions themselves and np.median: the same bits, without compiling
the jitted passes (about 2.8 s of compiling in the first `compute` on sample_data after
installing: 4.1 s in all, 1.6-1.8 s without them), at about 0.1 ms more per call once they are
compiled.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ._jit import together
from .params import Reduction
from .statistics import BUCKETS, FIELDS, chunk_summary, middle

SAMPLE_SIZE = 1 << 20
CHUNK_ROWS = 1 << 16
BATCH_CHUNKS = 16  # chunks summarised at once: each batch starts the second thread once
NUMPY_ROWS = 8192  # runs this short are summarised by numpy's expressions (nothing to compile)
# Columns this long have their two medians found on two threads. Below, a thread's start costs
# more than the second median: 2^18 rows 0.26 ms one after the other, 0.55 ms side by side; 10^6
# rows 1.20 and 1.15 ms; a 2^20 sample of 4 x 10^6 rows 51.7 and 47.8 ms (with its thinning).
MEDIANS_SIDE_BY_SIDE = 1 << 19
# |d_an - d_ap| below this, relative to the loss' scale (the margin, or 1 under softplus; the
# distances under a hinge with margin 0), counts as a tie: collapsed embeddings.
TIE_TOLERANCE = 1e-6


@dataclass
class Moments:
    """Count, mean, M2 (sum of squared deviations), min and max, merged with Chan's formula."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    def merge(self, n: int, mean: float, m2: float, low: float, high: float) -> None:
        """Add n values with this mean, M2, min and max (a NaN min or max is ignored, as by
        Python's min and max)."""
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.min = min(self.min, low)
        self.max = max(self.max, high)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else math.nan


_NO_CORRECT = np.empty(0)  # a block whose accuracy is d_ap < d_an
_NO_GRID = np.full(2, np.nan)  # no histogram made for the median


def _part(column: np.ndarray, start: int, stop: int | None) -> np.ndarray:
    """Rows start:stop of a column as contiguous float64 (a view when it already is)."""
    return np.ascontiguousarray(column[start:stop], dtype=np.float64) if column.size else column


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """The pieces as one array: without a copy when they are consecutive views of one array
    (a library run's columns, filled in place), else concatenated."""
    base = pieces[0].base if pieces else None
    if base is not None and base.ndim == 1 and all(p.base is base for p in pieces):
        start = (_address(pieces[0]) - _address(base)) // base.itemsize
        offsets = np.cumsum([start] + [p.size for p in pieces])
        if all(_address(p) == _address(base) + o * base.itemsize and p.strides == base.strides
               for p, o in zip(pieces, offsets[:-1].tolist(), strict=True)):
            return base[start:offsets[-1]]
    return np.concatenate(pieces) if pieces else np.empty(0)


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _hash_keys(rows: np.ndarray) -> np.ndarray:
    """splitmix64 of the row numbers: a fixed pseudo-random key per row."""
    z = rows.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass
class TripletStats:
    """Running summary of (d_ap, d_an, loss, correct) over blocks of triplets."""

    margin: float
    soft_margin: bool = False
    sample_size: int = SAMPLE_SIZE
    numpy_rows: int = NUMPY_ROWS  # a run of at most this many rows is summarised by numpy
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
    # The sample: pieces of (row numbers, d_ap, d_an), a piece's rows given by its first row
    # while it holds consecutive ones; the columns are the chunks' own arrays, copied only when
    # the sample is thinned or (several pieces) its median taken.
    _pieces: list[tuple[int | np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    _size: int = 0
    _nan: list[bool] = field(default_factory=lambda: [False, False])  # in d_ap, d_an so far
    # The median's histogram of every d_ap and d_an row (statistics.middle), on grids set by
    # the first chunk's range: (lo, scale) per column, NaN when that range spreads nothing.
    _grid: np.ndarray = field(default_factory=lambda: np.full((2, 2), np.nan))
    _counts: np.ndarray = field(default_factory=lambda: np.zeros((2, BUCKETS + 2), np.int64))
    _pending: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    _pending_rows: int = 0
    _by_numpy: bool = False  # the run was short, summarised by numpy's own expressions
    # Per thread: room for the active losses' compaction, and bucket numbers.
    _scratch: np.ndarray = field(default_factory=lambda: np.empty((2, CHUNK_ROWS)))
    _buckets: np.ndarray = field(default_factory=lambda: np.empty((2, CHUNK_ROWS), np.uint16))

    def add(self, d_ap: np.ndarray, d_an: np.ndarray, loss: np.ndarray,
            correct: np.ndarray | None = None) -> None:
        """Add the next triplets, in output order (summarised by chunks of CHUNK_ROWS rows from
        the first triplet: the same sums in the same order whatever the callers' blocks; held,
        not copied, until BATCH_CHUNKS chunks are pending or the run settles)."""
        if loss.size == 0:
            return
        right = _NO_CORRECT if correct is None else correct
        self._pending.append((d_ap, d_an, loss, right))
        self._pending_rows += loss.size
        if self._pending_rows >= BATCH_CHUNKS * CHUNK_ROWS:
            self._process(self._pending_rows // CHUNK_ROWS)

    def settle(self) -> None:
        """Summarise what is still pending (the last chunk partial)."""
        if self._pending_rows:
            self._process(math.ceil(self._pending_rows / CHUNK_ROWS))

    def _take(self, rows: int) -> tuple[np.ndarray, ...]:
        """The next `rows` pending rows (or all, when fewer) as contiguous float64 columns:
        views when one block holds them, else a copy of just those rows (a job's blocks all
        have their own accuracy column or none do)."""
        rows = min(rows, self._pending_rows)
        self._pending_rows -= rows
        parts = []
        while rows:
            block = self._pending.pop(0)
            n = min(rows, block[2].size)
            parts.append(tuple(_part(c, 0, n) for c in block))
            if block[2].size > n:
                self._pending.insert(0, tuple(_part(c, n, None) for c in block))
            rows -= n
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(c) if c[0].size else c[0] for c in zip(*parts, strict=True))

    def _process(self, chunks: int) -> None:
        """Summarise the next `chunks` chunks of pending rows (the last one partial only when
        settling)."""
        columns = [self._take(CHUNK_ROWS) for _ in range(chunks)]
        self._by_numpy = self.count == 0 and sum(c[2].size for c in columns) <= self.numpy_rows
        if self.count == 0 and not self._by_numpy:  # the first chunk sets the histograms' grids
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                for grid, column in zip(self._grid, columns[0][:2], strict=True):
                    low, high = column.min(), column.max()
                    grid[:] = low, BUCKETS / (high - low)
        done: list[tuple[Any, ...]] = [()] * chunks  # each chunk's summary, in order
        claim = itertools.count()  # chunks are taken one at a time by two threads
        # the second thread's histograms, added after (one chunk: no second thread)
        other = np.zeros_like(self._counts) if chunks > 1 else None
        together(*(partial(self._chunks, columns, claim, done, counts, k)
                   for k, counts in enumerate((self._counts, other)[:chunks])))
        if other is not None:
            self._counts += other
        for (d_ap, d_an, *_), (n, loss_sum, nonzero_sum, right, counts, ap, an) in zip(
                columns, done, strict=True):
            active, nans, top, _, ties, on_margin, zeros = counts
            self.loss_sum += loss_sum
            self.nonzero_sum += nonzero_sum
            self.correct_sum += right
            self.d_ap.merge(n, *ap)
            self.d_an.merge(n, *an)
            self.count += n
            self.nonzero_count += int(active)
            self.nan_count += int(nans)
            self.loss_max = max(self.loss_max, top)
            self.ties += int(ties)
            self.on_margin += int(on_margin)
            self.zero_distances += int(zeros)
            self._nan = [self._nan[0] or math.isnan(ap[3]), self._nan[1] or math.isnan(an[3])]
            self._keep(d_ap, d_an)

    def _chunks(self, columns: list[tuple[np.ndarray, ...]], claim: Iterator[int],
                done: list[tuple[Any, ...]], counts: np.ndarray, thread: int) -> None:
        """The chunks of `columns` that this thread takes (`claim`: the next chunk's index), each
        into done[index]: its rows, sums of losses, of active losses and of accuracy,
        chunk_summary's counts, and (mean, M2, min, max) of d_ap and of d_an, whose values are
        counted into the histograms `counts`. thread: whose scratch rows to use."""
        out, extremes = np.empty(FIELDS), np.empty(4)
        while (i := next(claim)) < len(columns):
            ap, an, lost, correct = columns[i]
            extremes[:] = ap.min(), ap.max(), an.min(), an.max()
            if self._by_numpy:
                _numpy_summary(ap, an, lost, self.margin, self._loss_scale, extremes, out)
            else:
                chunk_summary(ap, an, lost, self.margin, TIE_TOLERANCE, self._loss_scale,
                              extremes, self._scratch[thread], self._buckets[thread], self._grid,
                              counts, out)
            loss_sum, nonzero_sum, ap_mean, an_mean, ap_m2, an_m2, *tally = out.tolist()
            active, nans, right, ties, on_margin, zeros = tally
            top = float(np.fmax.reduce(lost))  # the largest loss that is not NaN
            top = -math.inf if math.isnan(top) else top
            if correct.size:
                right = float(correct.sum())
            low_high = extremes.tolist()
            done[i] = (lost.size, loss_sum, nonzero_sum, right,
                       (active, nans, top, right, ties, on_margin, zeros),
                       (ap_mean, ap_m2, *low_high[:2]), (an_mean, an_m2, *low_high[2:]))

    def _keep(self, d_ap: np.ndarray, d_an: np.ndarray) -> None:
        """Append a chunk to the sample; thin it to sample_size rows past twice that."""
        self._pieces.append((self.count - d_ap.size, d_ap, d_an))
        self._size += d_ap.size
        if self._size > 2 * self.sample_size:
            self._thin()

    def _thin(self) -> None:
        """Keep the sample_size rows with the smallest keys (splitmix64 of the row number: a
        bijection, so which rows stay does not depend on when this runs)."""
        if self._size <= self.sample_size:
            return
        rows = np.concatenate([np.arange(r, r + a.size) if isinstance(r, int) else r
                               for r, a, _ in self._pieces])
        keys = _hash_keys(rows)  # distinct (a bijection): sample_size of them up to the cut
        cut = np.partition(keys, self.sample_size - 1)[self.sample_size - 1]
        keep = np.flatnonzero(keys <= cut)  # in row order (argpartition, then sort: 3x longer)
        d_ap, d_an = (_joined([p[k] for p in self._pieces])[keep] for k in (1, 2))
        self._pieces, self._size = [(rows[keep], d_ap, d_an)], keep.size

    def _column(self, which: int) -> np.ndarray:
        """d_ap (1) or d_an (2) of every triplet, or of the bottom-k sample."""
        self.settle()
        self._thin()
        return _joined([p[which] for p in self._pieces])

    @property
    def sample(self) -> np.ndarray:
        """(k, 2) array of (d_ap, d_an): every triplet, or the bottom-k sample."""
        return np.stack([self._column(1), self._column(2)], axis=1)

    def _distances(self) -> list[dict[str, float]]:
        """The statistics of d_ap and of d_an, their medians found side by side from
        MEDIANS_SIDE_BY_SIDE rows; of no triplet, None (as the JSON says it, not inf and NaN)."""
        columns = self._column(1), self._column(2)  # settled and thinned before the threads
        if not self.count:
            return [{"mean": 0.0, "std": None, "min": None, "p50": None, "max": None}
                    for _ in range(2)]

        def statistics(k: int) -> dict[str, float]:
            m, column = (self.d_ap, self.d_an)[k], columns[k]
            # min and max of every row bound the sample too; with a NaN the median looks for
            # it. The histogram counts every row: of use while the sample is every row.
            bounds = (math.nan, math.nan) if self._nan[k] else (m.min, m.max)
            whole = column.size == self.count and not self._nan[k]
            grid = self._grid[k] if whole else _NO_GRID
            p50 = (float(np.median(column)) if self._by_numpy else
                   _median(column, *bounds, grid, self._counts[k]))
            return {"mean": m.mean, "std": m.std, "min": m.min, "p50": p50, "max": m.max}

        if columns[0].size < MEDIANS_SIDE_BY_SIDE:
            return [statistics(0), statistics(1)]
        return together(lambda: statistics(0), lambda: statistics(1))

    def summary(self, reduction: Reduction) -> dict[str, object]:
        """The stable summary keys of SPEC section 3 (without params, inputs and warnings)."""
        self.settle()
        n, reduction = self.count, Reduction(reduction)
        mean = self.loss_sum / n if n else 0.0
        # over losses > 0; 0 when none is (as pytorch-metric-learning, not NaN from 0/0)
        mean_nonzero = self.nonzero_sum / self.nonzero_count if self.nonzero_count else 0.0
        d_ap, d_an = self._distances()
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
            "d_ap": d_ap,
            "d_an": d_an,
            "quantiles": "exact" if n <= self.sample_size else f"sample of {self.sample_size}",
        }

    @property
    def _loss_scale(self) -> float:
        """The difference d_an - d_ap that moves the loss visibly: the margin (a hinge), or 1
        (softplus bends over a width of about 1). A tie is a difference below TIE_TOLERANCE
        times this (times the distances under a hinge with margin 0): at 1e-7-sized distances
        the loss sits at margin 1, at margin 0 it is not stuck anywhere; dot distances of 1e6
        that differ by 0.5 leave the loss free."""
        return 1.0 if self.soft_margin else abs(self.margin)

    def warnings(self) -> list[str]:
        """What users otherwise discover late (CONFORMANCE.md, 'What users ask for')."""
        self.settle()
        out = []
        if not self.count:
            return []
        if self.ties >= 0.9 * self.count:
            stuck = ("the margin" if not self.soft_margin else "ln 2" if self.margin == 0 else
                     f"softplus({self.margin:g}) = {math.log1p(math.exp(self.margin)):.4g}")
            out.append(f"collapsed embeddings: {self.ties / self.count:.0%} of triplets have "
                       f"d_ap = d_an, so the loss sits at {stuck}; check the embedding norms")
        if self.zero_distances:
            out.append(f"duplicate points: {self.zero_distances} zero distances (a positive or "
                       "negative identical to its anchor, or so close that float64 rounds the "
                       "distance to 0)")
        if self.on_margin and not self.soft_margin:  # (softplus(0) = ln 2: active)
            out.append(f"{self.on_margin} triplets sit exactly on the margin (d_an - d_ap = "
                       f"{self.margin:g}): loss 0 but not active")
        if self.nonzero_count == 0 and self.nan_count == 0 and not self.soft_margin:
            out.append("no active triplet: every triplet already satisfies the margin, so the "
                       "loss is 0")
        if self.nan_count:
            out.append(f"{self.nan_count} triplets have a NaN loss")
        return out


def _numpy_summary(d_ap: np.ndarray, d_an: np.ndarray, loss: np.ndarray, margin: float,
                   loss_scale: float, extremes: np.ndarray, out: np.ndarray) -> None:
    """statistics.chunk_summary's values (not its histograms) as the numpy expressions it
    stands for: a short run needs no compiled pass."""
    n = loss.size
    far = max(abs(float(extremes[2])), abs(float(extremes[3])))  # |d_an|.max(), as the pass
    bound = TIE_TOLERANCE * (loss_scale if loss_scale > 0 else far)
    with np.errstate(invalid="ignore", over="ignore"):
        active, gap = loss > 0.0, d_an - d_ap
        ap_mean, an_mean = float(d_ap.sum()) / n, float(d_an.sum()) / n
        out[:] = (loss.sum(), loss[active].sum(), ap_mean, an_mean,
                  np.square(d_ap - ap_mean).sum(), np.square(d_an - an_mean).sum(),
                  np.count_nonzero(active), np.count_nonzero(np.isnan(loss)),
                  np.count_nonzero(d_ap < d_an), np.count_nonzero(np.abs(gap) <= bound),
                  np.count_nonzero(gap == margin),
                  np.count_nonzero(d_ap == 0.0) + np.count_nonzero(d_an == 0.0))


def _median(column: np.ndarray, low: float, high: float, grid: np.ndarray,
            counts: np.ndarray) -> float:
    """float(np.median(column)) bit for bit: numpy's mean of the middle value or two (0.0 plus
    them: a middle -0.0 gives 0.0)."""
    if not column.size:
        return math.nan
    first, second, candidates, i, j = middle(column, low, high, grid, counts)
    if candidates.size:
        ordered = np.sort(candidates)
        first, second = ordered[i], ordered[j]
    with np.errstate(invalid="ignore"):  # -inf and inf in the middle: NaN, as numpy says
        return float(np.mean(np.array([first] if column.size % 2 else [first, second])))
