"""mine_triplets(...): labelled embeddings in, triplets out, in blocks of anchors.

Memory is O(m*d + block*m): the block size is chosen so that one block's matrix-product rows
take at most BLOCK_BYTES, and its output slots at most MAX_SLOTS triplets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from . import validate
from .api import ArrayLike, Resolved, _load_matrix, _normalized, path_or_array, summarize
from .errors import InputError, UsageError
from .params import DistanceParams, LossParams, MiningParams, Settings, check_threads
from .presets import resolve
from .readers import STDIN, read_labels, read_labels_beside, shown_name
from .reductions import TripletStats

BLOCK_BYTES = 256 << 20
MAX_SLOTS = 4 << 20
MINE_COLUMNS = ("anchor", "positive", "negative", "d_ap", "d_an", "loss")
# Unit roundoff of the matrix product's input dtype, for the expansion's error bound.
_ROUNDOFF = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}


@dataclass
class MineBlock:
    """Triplets numbered start.. with their distances and losses."""

    start: int
    triplets: np.ndarray
    d_ap: np.ndarray
    d_an: np.ndarray
    loss: np.ndarray
    anchors: int = 0
    correct: None = None

    def __len__(self) -> int:
        return self.loss.size

    @property
    def progress(self) -> int:
        """Anchors this block covers (progress is counted in anchors)."""
        return self.anchors

    def columns(self) -> dict[str, np.ndarray]:
        t = self.triplets
        return {"anchor": t[:, 0], "positive": t[:, 1], "negative": t[:, 2],
                "d_ap": self.d_ap, "d_an": self.d_an, "loss": self.loss}


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


@dataclass
class _Classes:
    """Rows grouped by class: members[ptr[c]:ptr[c+1]] are class c's rows in index order."""

    codes: np.ndarray
    members: np.ndarray
    ptr: np.ndarray

    @classmethod
    def of(cls, codes: np.ndarray) -> _Classes:
        counts = np.bincount(codes)
        ptr = np.zeros(counts.size + 1, np.int64)
        np.cumsum(counts, out=ptr[1:])
        return cls(codes.astype(np.int32), np.argsort(codes, kind="stable").astype(np.int64), ptr)

    def sizes(self) -> np.ndarray:
        """Each row's class size."""
        return np.diff(self.ptr)[self.codes]


@dataclass
class MineJob(Resolved):
    """Validated embeddings and labels with resolved settings, mined batch by batch."""

    settings: Settings
    x: np.ndarray
    codes: np.ndarray
    names: dict[str, str]
    loaded: dict[str, np.ndarray]
    anchors_without_positive: int = 0
    anchors_without_negative: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def mining(self) -> MiningParams:
        v = self.settings.values
        return MiningParams(v["strategy"], v["positive_strategy"], v["semi_hard_fallback"],
                            int(v["per_anchor"]), bool(v["active_only"]), v["batch_size"],
                            int(v["seed"]), v["semi_hard_threshold"], v["margin_filter"])

    def inputs(self) -> dict[str, dict[str, object]]:
        """JSON `inputs`: by role, so one file in two roles keeps both (path None: an array)."""
        return {k: {"path": None if self.names[k] == k else self.names[k],
                    "shape": list(a.shape), "dtype": str(a.dtype)}
                for k, a in self.loaded.items()}

    def batches(self) -> Iterator[np.ndarray]:
        """Row indices of each mini-batch (sorted), or all rows at once."""
        m = self.x.shape[0]
        size = self.mining.batch_size
        if size is None or size >= m:
            yield np.arange(m, dtype=np.int64)
            return
        perm = np.random.default_rng(self.mining.seed).permutation(m)
        for s in range(0, m, size):
            yield np.sort(perm[s:s + size]).astype(np.int64)

    def plan(self) -> KernelPlan:
        dist, lp, mp = self.distance, self.loss_params, self.mining
        from .distances import kernel_code

        def index(choice: object) -> int:
            return list(type(choice)).index(choice)

        return KernelPlan(kernel_code(dist.distance.value, dist.p), dist.norm_p, dist.eps,
                          dist.eps_placement.code, lp.margin, lp.soft_margin,
                          index(mp.positive_strategy), index(mp.strategy),
                          mp.semi_hard_fallback.value == "easiest", mp.per_anchor,
                          mp.active_only, mp.semi_hard_threshold.value == "hardest-positive",
                          mp.margin_filter.value)

    def blocks(self, block_rows: int | None = None) -> Iterator[MineBlock]:
        """Mined triplets in order: by batch, then anchor, positive, negative rank."""
        self.anchors_without_positive = self.anchors_without_negative = 0
        plan = self.plan()
        produced = 0
        for rows in self.batches():
            whole = rows.size == self.x.shape[0]
            data = MineSet.build(self.x if whole else self.x[rows], self.codes[rows], plan)
            self.anchors_without_positive += data.without_positive
            self.anchors_without_negative += data.without_negative
            for start, stop in data.ranges(block_rows):
                block = mine_range(data, plan, start, stop)
                if not whole:
                    block.triplets = rows[block.triplets]
                block.start = produced
                produced += len(block)
                yield block


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


@dataclass
class MineSet:
    """One set of rows mined together (the whole file or one mini-batch), ready for kernels."""

    x: np.ndarray
    classes: _Classes
    norms: np.ndarray
    caps: np.ndarray

    @classmethod
    def build(cls, x: np.ndarray, codes: np.ndarray, plan: KernelPlan) -> MineSet:
        from .mining import ALL

        x = np.ascontiguousarray(x)
        classes = _Classes.of(np.unique(codes, return_inverse=True)[1].astype(np.int64))
        m = x.shape[0]
        sizes = classes.sizes()
        valid = (sizes >= 2) & (sizes < m)
        positives = sizes - 1 if plan.pos_strategy == 0 else 1
        negatives = m - sizes if plan.strategy == ALL else plan.per_anchor
        caps = np.where(valid, positives * negatives, 0).astype(np.int64)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
        return cls(x, classes, norms, caps)

    @property
    def without_positive(self) -> int:
        return int((self.classes.sizes() < 2).sum())

    @property
    def without_negative(self) -> int:
        sizes = self.classes.sizes()
        return int(((sizes == self.x.shape[0]) & (sizes >= 2)).sum())

    def ranges(self, block_rows: int | None = None) -> list[tuple[int, int]]:
        return list(_block_ranges(self.caps, self.x.shape[0], self.x.dtype.itemsize,
                                  block_rows))


def mine_range(data: MineSet, plan: KernelPlan, start: int, stop: int) -> MineBlock:
    """Mine anchors start..stop of one set: the unit of work (a Dask task runs one)."""
    from .mining import ALL, RANK_DIRECT, direct_block, mine_all_block, mine_block, rank_kind

    x, classes = data.x, data.classes
    m = x.shape[0]
    args = (plan.code, plan.p, plan.eps, plan.placement)
    offsets = np.zeros(stop - start + 1, np.int64)
    np.cumsum(data.caps[start:stop], out=offsets[1:])
    slots = int(offsets[-1])
    out_idx = np.full((slots, 3), -1, np.int64)
    out_d = np.empty((slots, 2))
    out_loss = np.empty(slots)
    if plan.strategy == ALL:
        mine_all_block(x, classes.codes, classes.members, classes.ptr, start, stop, *args,
                       plan.margin, plan.soft, plan.pos_strategy, offsets, out_idx, out_d,
                       out_loss)
    else:
        kind = rank_kind(plan.code, plan.placement)
        if kind == RANK_DIRECT:
            g = np.empty((stop - start, m))
            direct_block(x, start, stop, *args, g)
            delta = np.zeros(stop - start)
        else:
            g = x[start:stop] @ x.T
            delta = _expansion_error(kind, data.norms, start, stop, x)
        mine_block(x, classes.codes, data.norms, classes.members, classes.ptr, start, g, kind,
                   delta, *args, plan.margin, plan.soft, plan.pos_strategy, plan.strategy,
                   plan.fallback_easiest, plan.threshold_hardest, plan.per_anchor, offsets,
                   out_idx, out_d, out_loss)
    keep = out_idx[:, 0] >= 0
    if plan.active_only:
        keep &= out_loss > 0
    if plan.margin_filter != "any":
        keep &= _margin_band(out_d[:, 1] - out_d[:, 0], plan.margin, plan.margin_filter)
    return MineBlock(0, out_idx[keep], out_d[keep, 0], out_d[keep, 1], out_loss[keep],
                     stop - start)


def _margin_band(gap: np.ndarray, margin: float, band: str) -> np.ndarray:
    """Triplets whose gap d_an - d_ap lies in pytorch-metric-learning's TripletMarginMiner band."""
    if band == "easy":
        return gap > margin
    keep = gap <= margin
    if band == "hard":
        keep &= gap <= 0
    elif band == "semi-hard":
        keep &= gap > 0
    return keep


def _expansion_error(kind: int, norms: np.ndarray, start: int, stop: int, x: np.ndarray
                     ) -> np.ndarray:
    """A bound on |approx - exact| ranking value per anchor (twice the classic gamma_d bound).

    |fl(x.y) - x.y| <= gamma_d |x||y| with gamma_d = d u / (1 - d u) for any summation order.
    """
    from .mining import RANK_COSINE, RANK_SQUARED

    d = x.shape[1]
    u = _ROUNDOFF[x.dtype]
    gamma = 2.0 * d * u / (1.0 - d * u)
    top = float(norms.max()) if norms.size else 0.0
    ni = norms[start:stop]
    if kind == RANK_SQUARED:
        return 2.0 * gamma * (ni * ni + top * top) + 8 * u * (ni * ni + top * top)
    if kind == RANK_COSINE:
        return np.full(stop - start, 2.0 * gamma + 16 * u)
    return 2.0 * gamma * ni * top


def _block_ranges(caps: np.ndarray, m: int, itemsize: int, block_rows: int | None
                  ) -> Iterator[tuple[int, int]]:
    """Consecutive anchor ranges within the matrix-product and output-slot budgets."""
    rows = block_rows or max(1, BLOCK_BYTES // max(m * max(itemsize, 8), 1))
    start = 0
    cum = np.concatenate([[0], np.cumsum(caps)])
    while start < m:
        stop = min(start + rows, m)
        fit = int(np.searchsorted(cum, cum[start] + MAX_SLOTS, side="right")) - 1
        stop = max(start + 1, min(stop, fit))
        yield start, stop
        start = stop


def _load_labels(labels: ArrayLike | None, embeddings: ArrayLike, label_column: str | None
                 ) -> tuple[np.ndarray, str]:
    if labels is None:
        if not isinstance(embeddings, str):
            raise InputError("holds no labels; give them with --labels (only a parquet or "
                             "Arrow file can hold both)", "embeddings")
        return read_labels_beside(embeddings, label_column), shown_name(embeddings)
    if isinstance(labels, str):
        return read_labels(labels, label_column), shown_name(labels)
    return np.asarray(labels), "labels"


def prepare_mine(
    embeddings: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    preset: str | None = None,
    column: str | None = None,
    label_column: str | None = None,
    **options: object,
) -> MineJob:
    """Read, validate and resolve everything a mining run needs."""
    settings = resolve("mine", preset, options)
    embeddings, labels = path_or_array(embeddings), path_or_array(labels)
    if isinstance(embeddings, str) and isinstance(labels, str) and embeddings == labels == STDIN:
        raise UsageError("only one input can be read from stdin (-)")
    v = settings.values
    DistanceParams(v["distance"], float(v["p"]), float(v["eps"]), v["eps_placement"])
    LossParams(float(v["margin"]))
    MiningParams(v["strategy"], v["positive_strategy"], v["semi_hard_fallback"],
                 int(v["per_anchor"]), bool(v["active_only"]), v["batch_size"], int(v["seed"]),
                 v["semi_hard_threshold"], v["margin_filter"])
    x, xname = _load_matrix(embeddings, "embeddings", column)
    validate.require_rank(x, xname, (2,), "embeddings")
    validate.require_rows(x, xname)
    y, yname = _load_labels(labels, embeddings, label_column)
    if y.ndim != 1:
        raise InputError(f"labels must be one value per row, got shape {y.shape}", yname)
    if y.shape[0] != x.shape[0]:
        raise InputError(f"{y.shape[0]} labels for {x.shape[0]} embedding rows in {xname}", yname)
    validate.require_finite(x, xname)
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    if classes.size == 1:
        raise InputError(f"every row has label {classes[0].item()!r}: a single class gives no "
                         "negatives", yname)
    if counts.max() < 2:
        raise InputError("no label occurs twice, so no anchor has a positive (each class needs "
                         ">= 2 rows)", yname)
    warnings = []
    if preset == "tf-similarity" and v["distance"] == "cosine" and not v["normalize"]:
        norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
        if np.abs(norms - 1).max() > 1e-3:
            warnings.append("tf-similarity assumes L2-normalised rows; these are not, and TF "
                            "Similarity would compute 1 - x.y clipped at 0 on them, not the "
                            "cosine distance computed here")
    if v["normalize"]:
        x = _normalized(x)
    job = MineJob(settings, np.ascontiguousarray(x), codes.astype(np.int64),
                  {"embeddings": xname, "labels": yname}, {"embeddings": x, "labels": y},
                  warnings=warnings)
    job.label_counts = counts  # type: ignore[attr-defined]
    return job


def mine_summary(job: MineJob, stats: TripletStats) -> dict[str, object]:
    """SPEC section 4's summary object."""
    summary = summarize(job.settings, stats, job.inputs(), job.warnings)
    summary.pop("count")
    counts = job.label_counts  # type: ignore[attr-defined]
    head = {
        "anchors": int(job.x.shape[0]),
        "anchors_without_positive": job.anchors_without_positive,
        "anchors_without_negative": job.anchors_without_negative,
        "triplets": stats.count,
    }
    summary["labels"] = {"classes": int(counts.size), "smallest_class": int(counts.min()),
                         "largest_class": int(counts.max())}
    extra = []
    if job.anchors_without_positive:
        extra.append(f"{job.anchors_without_positive} anchors have no positive (a class of one "
                     "row" + (" in their mini-batch" if job.mining.batch_size else "") +
                     "): skipped")
    if job.anchors_without_negative:
        extra.append(f"{job.anchors_without_negative} anchors have no negative (one class in "
                     "their mini-batch): skipped")
    if stats.count == 0:
        extra.append("no triplet was mined")
    summary["warnings"] = extra + summary["warnings"]  # type: ignore[operator]
    return {**head, **summary}


def mine_triplets(
    embeddings: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    preset: str | None = None,
    threads: int | None = None,
    column: str | None = None,
    label_column: str | None = None,
    block_rows: int | None = None,
    **options: object,
) -> MineResult:
    """Mine triplets from labelled embeddings (arrays or file paths), SPEC section 4.

    Options are the CLI's flags in snake case: strategy, positive_strategy, semi_hard_fallback,
    per_anchor, active_only, batch_size, seed, distance, p, margin, eps, eps_placement,
    normalize, soft_margin, reduction.
    """
    from ._jit import set_threads

    check_threads(threads)
    job = prepare_mine(embeddings, labels, preset=preset, column=column,
                       label_column=label_column, **options)
    note = set_threads(threads)
    if note:
        job.warnings.append(note)
    stats = TripletStats(margin=job.loss_params.margin)
    blocks = []
    for b in job.blocks(block_rows):
        stats.add(b.start, b.d_ap, b.d_an, b.loss)
        blocks.append(b)
    summary = mine_summary(job, stats)
    if not blocks:
        empty = np.empty(0)
        return MineResult(np.empty((0, 3), np.int64), empty, empty, empty, summary)
    return MineResult(np.concatenate([b.triplets for b in blocks]),
                      *(np.concatenate([getattr(b, n) for b in blocks])
                        for n in ("d_ap", "d_an", "loss")), summary)
