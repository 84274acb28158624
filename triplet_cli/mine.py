"""The mine job and mine_triplets(): triplets from labelled embeddings, in blocks of anchors.

Units are ranges of anchors of one row set (the whole file or one mini-batch); the embeddings
and labels are the shared input. Memory is O(m*d + block*m): a unit's matrix-product rows take
at most BLOCK_BYTES, and its output slots at most MAX_SLOTS triplets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from . import validate
from .distances import Rooms
from .inputs import (
    ArrayLike,
    at_most_one_stdin,
    load_matrix,
    normalized,
    path_or_array,
    unread_columns,
)
from .jobs import Block, Job, Tally, run_here
from .params import check_count, ignored_flags
from .presets import resolve
from .readers import labels_for
from .reductions import SAMPLE_SIZE
from .topk import BLOCK_BYTES

MAX_SLOTS = 4 << 20
# narrow_parts' cost model (wall time per anchor on 2 cores, measured at d = 1,536): an exact
# recomputation costs about _RECOMPUTE_NS per dimension, a product part _PART_NS per candidate.
_RECOMPUTE_NS, _PART_NS, _SAMPLE = 0.37, 0.65, 32


@dataclass(frozen=True)
class Anchors:
    """A mine unit: anchors start..stop of row set `batch` (rows: its rows, None for all)."""

    batch: int
    rows: np.ndarray | None
    start: int
    stop: int


@dataclass
class MineResult:
    """Mined (anchor, positive, negative) row indices with distances, losses and the summary."""

    triplets: np.ndarray
    d_ap: np.ndarray
    d_an: np.ndarray
    loss: np.ndarray
    summary: dict[str, object]

    @property
    def value(self) -> float | None:
        return self.summary["loss"]  # type: ignore[return-value]

    def __repr__(self) -> str:  # (not every row: a notebook cell shows this)
        return (f"MineResult({len(self.triplets)} triplets, loss={self.value!r} "
                f"({self.summary['params']['reduction']}))")  # type: ignore[index]


@dataclass
class _Classes:
    """Rows grouped by class: members[ptr[c]:ptr[c+1]] are class c's rows in index order."""

    codes: np.ndarray
    members: np.ndarray
    ptr: np.ndarray

    @classmethod
    def of(cls, codes: np.ndarray) -> _Classes:
        ptr = np.concatenate([[0], np.cumsum(np.bincount(codes))])
        return cls(codes.astype(np.int32), np.argsort(codes, kind="stable").astype(np.int64), ptr)

    def sizes(self) -> np.ndarray:
        """Each row's class size."""
        return np.diff(self.ptr)[self.codes]


@dataclass
class MineJob(Job):
    """Validated embeddings and labels with resolved settings, mined set by set."""

    x: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    codes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    label_counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    block_rows: int | None = None
    anchors_without_positive: int = 0
    anchors_without_negative: int = 0
    pairless_batches: list[int] = field(default_factory=list)  # rows of each such mini-batch
    _set: tuple[int, MineSet] | None = None  # the row set the last unit ran on

    title = "triplet-loss mine"
    # Mining takes far longer than summarising: numpy's summary of its rows (6 ms for the
    # 321,192 of sample_data, 19 ms for 10^6) spares a first mine 2.1 s of compiling.
    numpy_rows = SAMPLE_SIZE
    keys = ("anchors", "anchors_without_positive", "anchors_without_negative", "triplets",
            "mean", "mean_nonzero", "active_fraction", "accuracy")
    progress_what = "anchors"
    npy_columns = ("anchor", "positive", "negative")

    @property
    def progress_total(self) -> int:
        return int(self.x.shape[0])

    def schema(self) -> dict[str, np.dtype]:
        return {**dict.fromkeys(("anchor", "positive", "negative"), np.dtype(np.int64)),
                **dict.fromkeys(("d_ap", "d_an", "loss"), np.dtype(np.float64))}

    def metadata(self) -> dict[str, str]:
        from .writers import settings_metadata

        return settings_metadata("mine", self.params.values, self.x.shape)

    def plan(self) -> KernelPlan:
        from .mining import POSITIVE_CODES, STRATEGY_CODES

        lp, mp = self.params.loss, self.params.mining
        return KernelPlan(*self.params.distance.kernel(), lp.margin, lp.soft_margin,
                          POSITIVE_CODES[mp.positive_strategy.value],
                          STRATEGY_CODES[mp.strategy.value],
                          mp.semi_hard_fallback.value == "easiest", mp.per_anchor,
                          mp.active_only, mp.semi_hard_threshold.value == "hardest-positive",
                          mp.margin_filter.value, lp.swap)

    def batches(self) -> Iterator[np.ndarray | None]:
        """Row indices of each mini-batch (sorted), or None once for all rows."""
        m = self.x.shape[0]
        size = self.params.mining.batch_size
        if size is None or size >= m:
            yield None
            return
        perm = np.random.default_rng(self.params.mining.seed).permutation(m)
        for s in range(0, m, size):
            yield np.sort(perm[s:s + size]).astype(np.int64)

    def units(self) -> Iterator[Anchors]:
        """Anchor ranges set by set; counts the anchors each set must skip as it goes."""
        self.anchors_without_positive = self.anchors_without_negative = 0
        self.pairless_batches = []
        for batch, rows in enumerate(self.batches()):
            data = self._mine_set(batch, rows)
            sizes = data.classes.sizes()  # each row's class size
            self.anchors_without_positive += int((sizes < 2).sum())
            if rows is not None and (sizes < 2).all():
                self.pairless_batches.append(rows.size)
            self.anchors_without_negative += int(((sizes == sizes.size) & (sizes >= 2)).sum())
            for start, stop in data.ranges(self.block_rows):
                yield Anchors(batch, rows, start, stop)

    def run(self, unit: Anchors) -> Block:
        block = mine_range(self._mine_set(unit.batch, unit.rows), self.plan(), unit.start,
                           unit.stop)
        if unit.rows is not None:
            for c in ("anchor", "positive", "negative"):
                block.columns[c] = unit.rows[block.columns[c]]
        return block

    def _mine_set(self, batch: int, rows: np.ndarray | None) -> MineSet:
        if self._set is None or self._set[0] != batch:
            x = self.x if rows is None else self.x[rows]
            codes = self.codes if rows is None else self.codes[rows]
            self._set = (batch, MineSet.build(x, codes, self.plan()))
        return self._set[1]

    def shared(self) -> dict[str, np.ndarray]:
        return {"embeddings": self.x}

    def without_shared(self) -> MineJob:
        return replace(self, x=np.empty((0, self.x.shape[1]), self.x.dtype), loaded={},
                       _set=None)

    def with_shared(self, arrays: dict[str, np.ndarray]) -> MineJob:
        return replace(self, x=arrays["embeddings"], _set=None)

    def summary(self, tally: Tally) -> dict[str, object]:
        """SPEC section 4's summary object."""
        summary = super().summary(tally)
        count = summary["count"]  # (also as triplets, beside anchors)
        counts = self.label_counts
        summary["labels"] = {"classes": int(counts.size), "smallest_class": int(counts.min()),
                             "largest_class": int(counts.max())}
        skipped, batch = [], " in their mini-batch" if self.params.mining.batch_size else ""
        if self.anchors_without_positive:
            skipped.append(f"{self.anchors_without_positive} anchors have no positive (a class "
                           f"of one row{batch}): skipped")
        if self.anchors_without_negative:
            skipped.append(f"{self.anchors_without_negative} anchors have no negative (one class "
                           "in their mini-batch): skipped")
        pairless, size = self.pairless_batches, self.params.mining.batch_size or 1
        if len(pairless) == 1 and pairless[0] < size:  # only the short last batch
            skipped.append(f"the last mini-batch, the {pairless[0]} rows left over, holds no "
                           "two rows of one class: it gives no triplet")
        elif pairless:
            skipped.append(f"{len(pairless)} of {-(-self.x.shape[0] // size)} mini-batches hold "
                           "no two rows of one class, so they give no triplet (a training loop "
                           "sees an empty batch); online mining needs batches of P classes x K "
                           "rows each")
        skipped += ["no triplet was mined"] if count == 0 else []
        return {"anchors": int(self.x.shape[0]),
                "anchors_without_positive": self.anchors_without_positive,
                "anchors_without_negative": self.anchors_without_negative, "triplets": count,
                **summary, "warnings": skipped + summary["warnings"]}  # type: ignore[operator]


@dataclass(frozen=True)
class KernelPlan:
    """What the mining kernels need besides the data: small and picklable (one per run)."""

    code: int
    p: float
    eps: float
    placement: int
    margin: float
    soft: bool
    pos_strategy: int
    strategy: int
    fallback_easiest: bool
    per_anchor: int
    active_only: bool
    threshold_hardest: bool
    margin_filter: str = "any"
    swap: bool = False


@dataclass
class MineSet:
    """One set of rows mined together (the whole file or one mini-batch), ready for kernels."""

    x: np.ndarray
    classes: _Classes
    norms: np.ndarray
    caps: np.ndarray
    per_anchor: int  # the plan's, at most the negatives an anchor here can have: slots per pair
    parts: int = 1  # the matrix product's slices of d (distances.product_parts)
    rooms: Rooms = field(default_factory=Rooms, repr=False, compare=False)  # for its products

    @classmethod
    def build(cls, x: np.ndarray, codes: np.ndarray, plan: KernelPlan) -> MineSet:
        from .distances import RANK_DIRECT, rank_kind
        from .mining import ALL, SEMI_HARD
        from .topk import norms_of

        x = np.ascontiguousarray(x)
        classes = _Classes.of(np.unique(codes, return_inverse=True)[1].astype(np.int64))
        m = x.shape[0]
        sizes = classes.sizes()
        valid = (sizes >= 2) & (sizes < m)
        positives = sizes - 1 if plan.pos_strategy == 0 else 1
        k = min(plan.per_anchor, int((m - sizes[valid]).max(initial=1)))
        negatives = m - sizes if plan.strategy == ALL else k
        caps = np.where(valid, positives * negatives, 0).astype(np.int64)
        data = cls(x, classes, norms_of(x), caps, k)
        if plan.strategy == SEMI_HARD and rank_kind(plan.code, plan.placement) != RANK_DIRECT:
            data.parts = data.narrow_parts(plan, np.flatnonzero(valid))
        return data

    def narrow_parts(self, plan: KernelPlan, anchors: np.ndarray) -> int:
        """Partial products (distances.product_parts) where they pay for themselves: their
        narrower bound sends fewer negatives to exact recomputation (each a read of d values),
        at the cost of writing and reading each part (per candidate). The negatives within the
        bound of a positive, which semi-hard recomputes, are counted on a sample of anchors:
        many where distances crowd (random rows, an early checkpoint), few on clustered ones.
        anchors: those with a positive and a negative."""
        from .distances import (
            fill_ranks,
            product_parts,
            product_terms,
            rank_error,
            rank_kind,
            rank_scale,
        )

        x, codes = self.x, self.classes.codes
        (m, d), parts = x.shape, product_parts(x.shape[1], x.dtype)
        if parts == 1 or anchors.size == 0:
            return 1
        anchors = anchors[np.linspace(0, anchors.size - 1, min(anchors.size, _SAMPLE)).astype(int)]
        kind = rank_kind(plan.code, plan.placement)
        scale = rank_scale(kind, self.norms, plan.eps)
        wide, narrow = (rank_error(kind, self.norms[anchors], self.norms, d, x.dtype, plan.eps,
                                   product_terms(d, n)) for n in (1, parts))
        g, r, near = x[anchors] @ x.T, np.empty(m), 0
        for row, i in enumerate(anchors):
            fill_ranks(r, g[row], kind, scale[i], scale)
            positive = codes == codes[i]
            positive[i] = False
            negatives = np.sort(r[codes != codes[i]])
            ends = np.searchsorted(negatives, r[positive] + wide[row])
            near += int((ends - np.searchsorted(negatives, r[positive] - wide[row])).sum())
        saved = near / anchors.size * (1.0 - float(np.mean(narrow / wide))) * d * _RECOMPUTE_NS
        return parts if saved > m * (parts - 1) * _PART_NS else 1

    def ranges(self, block_rows: int | None = None) -> list[tuple[int, int]]:
        """Consecutive anchor ranges within the matrix-product and output-slot budgets."""
        m = self.x.shape[0]
        rows = block_rows or max(1, BLOCK_BYTES // max(m * max(self.x.dtype.itemsize, 8), 1))
        cum = np.concatenate([[0], np.cumsum(self.caps)])
        ranges, start = [], 0
        while start < m:
            fit = int(np.searchsorted(cum, cum[start] + MAX_SLOTS, side="right")) - 1
            stop = max(start + 1, min(start + rows, m, fit))
            ranges.append((start, stop))
            start = stop
        return ranges


def mine_range(data: MineSet, plan: KernelPlan, start: int, stop: int) -> Block:
    """Mine anchors start..stop of one set: the unit of work (a Dask task runs one)."""
    from .distances import (
        RANK_DIRECT,
        product_terms,
        rank_error,
        rank_kind,
        rank_scale,
        split_products,
    )
    from .losses import aligned_losses, pair_losses
    from .mining import ALL, mine_all_block, mine_block
    from .topk import exact_rows

    x, classes = data.x, data.classes
    m = x.shape[0]
    metric = (plan.code, plan.p, plan.eps, plan.placement)
    groups = (classes.codes, classes.members, classes.ptr)
    offsets = np.concatenate([[0], np.cumsum(data.caps[start:stop])])
    slots = int(offsets[-1])
    out_idx = np.full((slots, 3), -1, np.int64)
    out_d = np.empty((slots, 2))
    out = (offsets, out_idx, out_d)
    if plan.strategy == ALL:
        mine_all_block(x, groups, start, stop, metric, plan.pos_strategy, out)
    else:
        kind = rank_kind(plan.code, plan.placement)
        if kind == RANK_DIRECT:
            g = np.empty((stop - start, m))
            exact_rows(x[start:stop], x, *metric, g)
            delta = np.zeros(stop - start)
        else:
            g = split_products(x[start:stop], x, data.parts, data.rooms)
            delta = rank_error(kind, data.norms[start:stop], data.norms, x.shape[1], x.dtype,
                               plan.eps, product_terms(x.shape[1], data.parts))
        scale = rank_scale(kind, data.norms, plan.eps)
        choice = (plan.pos_strategy, plan.strategy, plan.fallback_easiest,
                  plan.threshold_hardest, data.per_anchor)
        mine_block(x, groups, start, (g, kind, delta, scale), metric, choice, out)
    rows = _kept(out_idx[:, 0] >= 0)  # slots filled (semi-hard with a fallback: every one)
    t, d_ap, d_an = (np.ascontiguousarray(a) if rows is None else a[rows]
                     for a in (out_idx, out_d[:, 0], out_d[:, 1]))
    seen = d_an  # the miner's d_an; with --swap the loss's is min(d_an, d_pn), as compute's
    if plan.swap:
        seen, loss = np.empty(len(t)), np.empty(len(t))
        aligned_losses(x, x, x, tuple(np.ascontiguousarray(t[:, k]) for k in range(3)), metric,
                       (plan.margin, plan.soft, True), (d_ap, seen, loss))  # d_ap: same bits
    else:
        loss = pair_losses(d_ap, d_an, plan.margin, np.bool_(plan.soft))
    keep = np.ones(len(t), bool)
    if plan.active_only:
        keep &= loss > 0
    if plan.margin_filter != "any":  # the miner's choice: on its own distances
        keep &= _margin_band(d_an - d_ap, plan.margin, plan.margin_filter)
    rows = _kept(keep)
    columns = {"anchor": t[:, 0], "positive": t[:, 1], "negative": t[:, 2], "d_ap": d_ap,
               "d_an": seen, "loss": loss}
    return Block({c: np.ascontiguousarray(a if rows is None else a[rows])
                  for c, a in columns.items()}, stop - start)


def _kept(mask: np.ndarray) -> np.ndarray | None:
    """The rows a mask keeps, or None when it keeps them all (at 10^6 mined rows, masking
    every column anyway took 0.05x a semi-hard run)."""
    return None if mask.all() else np.flatnonzero(mask)


def _margin_band(gap: np.ndarray, margin: float, band: str) -> np.ndarray:
    """Triplets whose gap d_an - d_ap lies in pytorch-metric-learning's TripletMarginMiner band
    (the margin is >= 0: within it is all of hard)."""
    if band == "easy":
        return gap > margin
    if band == "hard":
        return gap <= 0
    return (gap > 0) & (gap <= margin) if band == "semi-hard" else gap <= margin


def prepare_mine(embeddings: ArrayLike, labels: ArrayLike | None = None, *,
                 preset: str | None = None, column: str | None = None,
                 label_column: str | None = None, block_rows: int | None = None,
                 **options: object) -> MineJob:
    """Read, validate and resolve everything a mining run needs."""
    params = resolve("mine", preset, options)
    check_count("block_rows", block_rows)
    embeddings, labels = path_or_array(embeddings), path_or_array(labels)
    at_most_one_stdin((embeddings, labels))
    picked: dict[str, str] = {}
    x, xname = load_matrix(embeddings, "embeddings", column, label_column=label_column,
                           picked=picked)
    validate.require_matrix(x, xname, "embeddings")
    y, yname = labels_for(labels, embeddings, label_column, picked)
    codes = validate.require_labels(y, x.shape[0], yname, xname)
    validate.require_rankable(x, xname, params.distance)
    validate.require_in_range([(x, xname)], params.distance)
    warnings = (ignored_flags(params) + unread_columns((embeddings, labels), column, label_column)
                + validate.unlabelled_note(y, yname))
    band = params.mining.margin_filter.value
    if params.loss.margin == 0 and band in ("semi-hard", "violating"):
        why = " (the default with --soft-margin)" if params.loss.soft_margin else ""
        warnings.append(f"--margin-filter {band} with margin 0{why}: " + (
            "0 < d_an - d_ap <= 0 keeps no triplet" if band == "semi-hard" else
            "d_an - d_ap <= 0 is the same as hard") + "; give --margin")
    dist = params.distance
    if preset == "tf-similarity" and dist.distance.value == "cosine" and not dist.normalize:
        norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
        if np.abs(norms - 1).max() > 1e-3:
            warnings.append("tf-similarity assumes L2-normalised rows; these are not, and TF "
                            "Similarity would compute 1 - x.y clipped at 0 on them, not the "
                            "cosine distance computed here")
    if dist.normalize:
        x = normalized(x)
    return MineJob(params, {"embeddings": xname, "labels": yname}, warnings,
                   x=np.ascontiguousarray(x), codes=codes, label_counts=np.bincount(codes),
                   loaded={"embeddings": x, "labels": y}, columns=picked, block_rows=block_rows)


def mine_triplets(embeddings: ArrayLike, labels: ArrayLike | None = None, *,
                  threads: int | None = None, **options: object) -> MineResult:
    """Mine triplets from labelled embeddings (arrays or file paths), SPEC section 4.

    Keywords as prepare_mine's (preset, column, label_column, block_rows), `threads`, and the
    settings: the CLI's flags in snake case: strategy, positive_strategy, semi_hard_fallback,
    per_anchor, active_only, batch_size, seed, distance, p, margin, eps, eps_placement,
    normalize, soft_margin, swap, reduction, margin_filter, semi_hard_threshold.
    """
    columns, summary = run_here(lambda: prepare_mine(embeddings, labels, **options), threads)
    triplets = np.stack([columns[c] for c in ("anchor", "positive", "negative")], axis=1)
    return MineResult(triplets, columns["d_ap"], columns["d_an"], columns["loss"], summary)
