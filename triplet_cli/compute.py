"""The compute job and compute_loss(): per-triplet losses of aligned or indexed triplets.

Units are consecutive row ranges, each carrying its rows (aligned inputs, streamed from disk)
or its index triples (the embeddings are the shared input every unit reads).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from . import validate
from ._jit import together
from .arrow import TRIPLET_COLUMNS, ArrowMatrix, ArrowTriplets
from .errors import InputError, UsageError
from .inputs import (
    ArrayLike,
    Matrix,
    at_most_one_stdin,
    load_matrix,
    normalized,
    path_or_array,
    unread_columns,
)
from .jobs import Block, Job, run_here
from .params import EpsPlacement, Params, check_count, ignored_flags
from .presets import resolve, with_recorded
from .readers import open_triplets, shown_name

INPUT_BLOCK_BYTES = 192 << 20  # one block of the three inputs; bounds memory for streamed inputs
BLOCK_ROWS = 1 << 20
_HUGE = 1e150  # a value whose square overflows float64 in a product of d terms or so
ROLES = ("anchors", "positives", "negatives")
_NO_INDEX = np.empty(0, np.int64)


@dataclass(frozen=True)
class Rows:
    """A compute unit: rows start.. given as aligned input rows or as index triples."""

    start: int
    part: dict[str, np.ndarray] | None = None
    triplets: np.ndarray | None = None


@dataclass
class ComputeResult:
    """Per-triplet distances and losses with the summary object of SPEC section 3. The three
    columns are views of one allocation (np.copy one to keep it alone)."""

    d_ap: np.ndarray
    d_an: np.ndarray
    loss: np.ndarray
    summary: dict[str, object]
    triplets: np.ndarray | None = None

    @property
    def value(self) -> float | None:
        """The headline loss for the chosen reduction (None for reduction 'none')."""
        return self.summary["loss"]  # type: ignore[return-value]

    def __repr__(self) -> str:  # (not every row: a notebook cell shows this)
        return (f"ComputeResult({self.loss.size} triplets, loss={self.value!r} "
                f"({self.summary['reduction']}))")


@dataclass
class ComputeJob(Job):
    """Validated inputs and resolved settings for one compute run."""

    arrays: dict[str, Matrix] = field(default_factory=dict)
    triplets: np.ndarray | ArrowTriplets | None = None
    count: int = 0
    block_rows: int | None = None
    whole: dict[str, np.ndarray] | None = None  # keep_rows(): the columns blocks are views of

    title = "triplet-loss compute"
    keys = ("count", "mean", "sum", "mean_nonzero", "active_fraction", "accuracy")
    progress_what = "triplets"
    npy_columns = ("d_ap", "d_an", "loss")

    @property
    def candidates(self) -> bool:
        """k candidates per anchor: (n, k, d) inputs, or one anchor (d,) against (k, d) sets."""
        anchors = self.loaded.get("anchors")
        return any(a.ndim == 3 for a in self.loaded.values()) or (
            anchors is not None and anchors.ndim == 1)

    @property
    def progress_total(self) -> int:
        return self.count

    def schema(self) -> dict[str, np.dtype]:
        ints = ("index", "anchor", "positive", "negative") if self.triplets is not None else (
            "index",)
        return {**dict.fromkeys(ints, np.dtype(np.int64)),
                **dict.fromkeys(("d_ap", "d_an", "loss"), np.dtype(np.float64))}

    def metadata(self) -> dict[str, str]:
        from .writers import settings_metadata

        x = self.loaded.get("embeddings")
        return settings_metadata("compute", self.params.values,
                                 None if x is None else x.shape)

    def rows_per_unit(self) -> int:
        """Rows per unit: all three inputs' rows of a unit fit in INPUT_BLOCK_BYTES."""
        if self.block_rows:
            return self.block_rows
        if self.whole and not any(isinstance(a, ArrowMatrix) for a in self.arrays.values()):
            return BLOCK_ROWS  # rows kept anyway, inputs addressable: fewer kernel launches
        row_bytes = sum(int(np.prod(a.shape[1:])) * a.dtype.itemsize for a in self.arrays.values())
        return int(min(BLOCK_ROWS, max(4096, INPUT_BLOCK_BYTES // max(row_bytes, 1))))

    def units(self) -> Iterator[Rows]:
        """Row blocks in order; no reference to one is kept while the next is read (streamed
        inputs hold one block being computed and one being filled)."""
        rows = self.rows_per_unit()
        indexed = self.triplets is not None
        blocks = self._triplet_blocks(rows) if indexed else self._input_blocks(rows)
        for start in range(0, self.count, rows):
            yield Rows(start, triplets=next(blocks)) if indexed else Rows(start, part=next(blocks))

    def shared(self) -> dict[str, np.ndarray]:
        return {k: self.arrays[k] for k in ("embeddings", "corpus") if k in self.arrays}

    def without_shared(self) -> ComputeJob:
        """Settings, names and input ranks: what a unit needs besides its rows."""
        return replace(self, arrays={}, triplets=None if self.triplets is None else _NO_INDEX,
                       loaded={k: np.empty((0,) * a.ndim) for k, a in self.loaded.items()})

    def with_shared(self, arrays: dict[str, np.ndarray]) -> ComputeJob:
        return replace(self, arrays={**self.arrays, **arrays})

    def keep_rows(self) -> dict[str, np.ndarray]:
        """Every row's d_ap, d_an and loss, allocated once: a library run keeps them all (at
        10^6 rows the per-block arrays and their concatenation cost 0.3x the kernel). One
        allocation holds the three: as three, their first touch took 4.7 ms more a call in a
        loop at 10^6 rows (the C allocator handed 8 MB blocks back to the system each time, and
        keeps one 24 MB block for the next call). Its blocks leave out the row index, which
        compute_loss does not return (its position says it)."""
        n, names = self.count, ("d_ap", "d_an", "loss")
        rows = np.empty(len(names) * n)  # 1-d: the summary joins views of it without a copy
        self.whole = {c: rows[k * n:(k + 1) * n] for k, c in enumerate(names)}
        return self.whole

    def run(self, unit: Rows) -> Block:
        from .losses import aligned_losses, candidate_losses

        metric, rule = self.params.distance.kernel(), self.params.loss.rule()
        t = unit.triplets
        n = len(t) if t is not None else len(unit.part["anchors"])
        rows = slice(unit.start, unit.start + n)
        d_ap, d_an, loss = ((self.whole[c][rows] for c in ("d_ap", "d_an", "loss"))
                            if self.whole else (np.empty(n) for _ in range(3)))
        correct = None
        part = unit.part or {}
        if t is not None:
            x = self.arrays["embeddings"]
            c = self.arrays.get("corpus", x)  # --corpus: positives and negatives index it
            index = tuple(np.ascontiguousarray(t[:, k]) for k in range(3))
            finite = aligned_losses(x, c, c, index, metric, rule, (d_ap, d_an, loss))
        else:
            normalize = self.params.distance.normalize
            a, p, neg = (normalized(part[k]) if normalize else part[k] for k in ROLES)
            if self.candidates:
                correct = np.empty(n)
                finite = candidate_losses(a, p, neg, metric, rule, self.params.pair_mean,
                                          (d_ap, d_an, loss, correct))
            else:
                finite = aligned_losses(a, p, neg, None, metric, rule, (d_ap, d_an, loss))
        if not finite:
            self._check_finite(unit.start, d_ap, d_an, part)
        columns = {} if self.whole else {
            "index": np.arange(unit.start, unit.start + n, dtype=np.int64)}
        if t is not None:
            columns.update(anchor=t[:, 0], positive=t[:, 1], negative=t[:, 2])
        columns.update(d_ap=d_ap, d_an=d_an, loss=loss)
        return Block(columns, n, correct)

    def _input_blocks(self, rows: int) -> Iterator[dict[str, np.ndarray]]:
        """The aligned inputs' rows, block by block, streamed where they live on disk."""
        def stream(role: str) -> Iterator[np.ndarray]:
            a = self.arrays[role]
            if isinstance(a, ArrowMatrix):
                return map(partial(validate.as_float_array, path=self.names[role]),
                           a.blocks(rows))
            return (a[start:start + rows] for start in range(0, self.count, rows))

        streams = {r: stream(r) for r in ROLES}
        files = any(isinstance(self.arrays[r], ArrowMatrix) for r in ROLES)
        for _ in range(0, self.count, rows):
            if files:  # decoded side by side (pyarrow lets go of the GIL): 0.64x the time
                yield dict(zip(streams, together(*(partial(next, s) for s in streams.values())),
                               strict=True))
            else:
                yield {r: next(s) for r, s in streams.items()}

    def _triplet_blocks(self, rows: int) -> Iterator[np.ndarray]:
        """The index triples block by block, range-checked (streamed from parquet/Arrow)."""
        t, name = self.triplets, self.names["triplets"]
        m = self.arrays["embeddings"].shape[0]
        if "corpus" in self.arrays:
            m = (m, self.arrays["corpus"].shape[0], self.arrays["corpus"].shape[0])
        parts = (t.blocks(rows) if isinstance(t, ArrowTriplets) else
                 (t[s:s + rows] for s in range(0, self.count, rows)))
        start = 0
        for part in parts:
            validate.require_indices(part, m, name, start)
            start += len(part)
            yield part

    def _check_finite(self, start: int, d_ap: np.ndarray, d_an: np.ndarray,
                      part: dict[str, np.ndarray]) -> None:
        """A non-finite distance points at a NaN/inf input row (named), or at an overflow.

        Legacy MLX (eps placement legacy-root) gives NaN from finite input for odd p: that is
        the library's defect, reproduced and reported in the warnings, not an input error.
        """
        bad = np.flatnonzero(~(np.isfinite(d_ap) & np.isfinite(d_an)))
        for i in bad:
            for role, a in part.items():
                if not np.isfinite(a[int(i)]).all():
                    raise InputError(self._where(role, a, int(i), start + int(i)),
                                     self.names[role])
        if bad.size and self.params.distance.eps_placement is not EpsPlacement.legacy_root:
            i = int(bad[0])
            where, name = f"row {start + i}", self.names["anchors" if part else "embeddings"]
            if self.triplets is not None:  # the values are the embeddings' (by --triplets row)
                where = f"{self.names['triplets']} row {start + i}"
            huge = any(float(np.abs(a[i]).max()) > _HUGE for a in part.values())
            if not huge and (np.isnan(d_ap[i]) or np.isnan(d_an[i])):
                raise InputError(f"{where}: the distance is undefined (NaN) for finite "
                                 "values (a zero vector with cosine and --eps 0?)", name)
            p = self.params.distance.norm_p
            why = f"the p = {p:g} distance" if 2 < p < math.inf else "the distance"
            raise InputError(f"{where}: {why} overflows float64 (values too large); "
                             "rescale the embeddings" + (" or use a smaller p" if p > 2 else ""),
                             name)

    def _where(self, role: str, a: np.ndarray, i: int, row: int) -> str:
        """Which row (and candidate) of an input holds the non-finite value, and what it is."""
        what = validate.describe_nonfinite(a, i)
        values = a[i]
        one_anchor = self.loaded["anchors"].ndim == 1
        if values.ndim == 2 and (one_anchor or self.loaded[role].ndim == 3):
            # k candidates: the row of a (k, d) set, or row and candidate of (n, k, d)
            k = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
            return f"row {k} contains {what}" if one_anchor else \
                f"row {row}, candidate {k} contains {what}"
        return f"row {row} contains {what}"


def prepare_compute(anchors: ArrayLike | None = None, positives: ArrayLike | None = None,
                    negatives: ArrayLike | None = None, *, embeddings: ArrayLike | None = None,
                    triplets: ArrayLike | None = None, corpus: ArrayLike | None = None,
                    preset: str | None = None, column: str | None = None,
                    block_rows: int | None = None, **options: object) -> ComputeJob:
    """Read, validate and resolve everything a compute run needs, without computing."""
    params = resolve("compute", preset, options)
    check_count("block_rows", block_rows)
    given = [path_or_array(x) for x in (anchors, positives, negatives, embeddings, triplets,
                                        corpus)]
    at_most_one_stdin(given)
    anchors, positives, negatives, embeddings, triplets, corpus = given
    if corpus is not None and triplets is None:
        raise UsageError("--corpus goes with --embeddings and --triplets (positive and negative "
                         "index it)")
    aligned = [x is not None for x in (anchors, positives, negatives)]
    if embeddings is not None or triplets is not None:
        if any(aligned):
            raise UsageError("use --embeddings with --triplets, or --anchors --positives "
                             "--negatives, not a mix")
        if embeddings is None or triplets is None:
            raise UsageError(f"--{'triplets' if triplets is None else 'embeddings'} is missing: "
                             "--embeddings and --triplets go together")
        job = _indexed(params, embeddings, triplets, column, preset, options, corpus)
    elif not all(aligned):
        raise UsageError("give --anchors, --positives and --negatives (or --embeddings with "
                         "--triplets)")
    else:
        arrays, names, picked = {}, {}, {}
        for role, x in zip(ROLES, (anchors, positives, negatives), strict=True):
            arrays[role], names[role] = load_matrix(x, role, column, stream=True,  # type: ignore
                                                    picked=picked)
        job = _aligned(ComputeJob(params, names, arrays=arrays, columns=picked))
    job.block_rows = block_rows
    job.warnings += ignored_flags(job.params) + unread_columns(given, column)
    if job.params.sources.get("pair_reduction") == "flag" and not job.candidates:
        job.warnings.append("--pair-reduction has no effect: it reduces k candidates per anchor "
                            "((n, k, d) positives or negatives); these inputs have one each")
    return job


def _aligned(job: ComputeJob) -> ComputeJob:
    a = job.arrays["anchors"]
    validate.require_rank(a, job.names["anchors"], (1, 2), "anchors")
    one_anchor = a.ndim == 1
    for role in ("positives", "negatives"):
        ranks = (2,) if one_anchor else (2, 3)
        validate.require_rank(job.arrays[role], job.names[role], ranks, role)
    for role, x in job.arrays.items():
        validate.require_rows(x, job.names[role])
    validate.require_same({r: x.shape[-1] for r, x in job.arrays.items()}, job.names,
                          "dimensions", "d = ")
    job.loaded = dict(job.arrays)
    if one_anchor or job.candidates:  # reshaped below: streamed inputs are read whole
        job.arrays = {r: validate.as_float_array(x.read(), job.names[r])
                      if isinstance(x, ArrowMatrix) else x for r, x in job.arrays.items()}
    if one_anchor:  # one anchor against k_p positive and k_n negative candidates
        job.arrays = {"anchors": a[None], **{r: job.arrays[r][None] for r in ROLES[1:]}}
        job.count = 1
        return job
    if job.candidates:  # (n, d) next to (n, k, d): one candidate each
        job.arrays = {r: x[:, None] if x.ndim == 2 and r != "anchors" else x
                      for r, x in job.arrays.items()}
    validate.require_same({r: x.shape[0] for r, x in job.arrays.items()}, job.names,
                          "row counts")
    job.count = job.arrays["anchors"].shape[0]
    return job


def _indexed(params: Params, embeddings: ArrayLike, triplets: ArrayLike, column: str | None,
             preset: str | None, options: dict[str, object], corpus: ArrayLike | None = None
             ) -> ComputeJob:
    picked: dict[str, str] = {}
    x, name = load_matrix(embeddings, "embeddings", column, picked=picked)
    validate.require_matrix(x, name, "embeddings")
    c = cname = None
    if corpus is not None:  # mine-negatives' triplets: anchor indexes x, the others the corpus
        c, cname = load_matrix(corpus, "corpus", column, picked=picked)
        validate.require_matrix(c, cname, "corpus")
        validate.require_same({"embeddings": x.shape[1], "corpus": c.shape[1]},
                              {"embeddings": name, "corpus": cname}, "dimensions", "d = ")
    if isinstance(triplets, str):
        t, tname = open_triplets(triplets), shown_name(triplets)
    else:
        tname = "triplets"
        t = validate.as_triplets(validate.as_array(triplets, tname, TRIPLET_COLUMNS), tname)
    warnings: list[str] = []
    if isinstance(t, ArrowTriplets) and t.recorded:  # how the triplets were mined
        params, warnings = with_recorded(params, t.recorded, tname, preset, options)
        warnings += _shape_warning(t.recorded, tname, x.shape, name)
        recorded = t.recorded.get("corpus")
        if recorded is not None and c is None and not (isinstance(recorded, dict)
                                                       and recorded.get("queries") is True):
            shape = recorded.get("shape") if isinstance(recorded, dict) else None
            rows = shape[0] if isinstance(shape, list) and shape else 0
            if type(rows) is int and rows > x.shape[0]:  # its indices would be out of range
                raise InputError(f"was mined from a corpus of {rows} rows (positive and negative "
                                 f"index it; {name} has {x.shape[0]}): give the corpus with "
                                 "--corpus", tname)
            warnings.append(f"{tname} was mined from a corpus (positive and negative index it): "
                            "give it with --corpus, or these rows index --embeddings instead")
    if t.shape[0] == 0:  # (mine writes such a file when nothing passes its filter)
        warnings.append(f"no triplet to score: {tname} holds zero rows, so the loss is 0")
    if isinstance(t, np.ndarray):  # streamed triplets are checked block by block
        validate.require_indices(t, x.shape[0] if c is None else
                                 (x.shape[0], c.shape[0], c.shape[0]), tname)
    validate.require_finite(x, name)
    arrays, names = {"embeddings": x}, {"embeddings": name, "triplets": tname}
    if c is not None:
        validate.require_finite(c, cname)
        arrays["corpus"], names["corpus"] = c, cname
    if params.distance.normalize:
        arrays = {k: normalized(a) for k, a in arrays.items()}
    return ComputeJob(params, names, warnings, arrays=arrays, triplets=t, count=t.shape[0],
                      loaded={**arrays, "triplets": t}, columns=picked)


def _shape_warning(record: dict, tname: str, shape: tuple[int, ...], name: str) -> list[str]:
    """Embeddings of another shape than the triplets were mined on: another row count may put
    other samples under the same indices; another width, another model. Both may be meant (a
    later checkpoint), so a warning, not an error: row indices still index rows."""
    embeddings = record.get("embeddings")
    was = embeddings.get("shape") if isinstance(embeddings, dict) else None
    if (not isinstance(was, list) or len(was) != 2 or not all(type(n) is int for n in was)
            or [int(n) for n in shape] == was):
        return []
    return [f"{tname} was written for embeddings of shape ({was[0]}, {was[1]}); {name} has "
            f"shape ({shape[0]}, {shape[1]}): are these the same rows in the same order?"]


def compute_loss(anchors: ArrayLike | None = None, positives: ArrayLike | None = None,
                 negatives: ArrayLike | None = None, *, threads: int | None = None,
                 **options: object) -> ComputeResult:
    """Per-triplet losses and their summary for aligned arrays or indexed triplets.

    Inputs are arrays or file paths: anchors, positives, negatives, or embeddings and triplets
    (with `corpus`, a triplet's positive and negative index the corpus and its anchor the
    embeddings: mine-negatives' rows). Other keywords as prepare_compute's (preset, column,
    block_rows), `threads`, and the settings: the CLI's flags in snake case: distance, p, margin,
    eps, eps_placement, normalize, soft_margin, swap, reduction, pair_reduction.
    """
    columns, summary = run_here(
        lambda: prepare_compute(anchors, positives, negatives, **options), threads)
    return ComputeResult(columns["d_ap"], columns["d_an"], columns["loss"], summary,
                         np.stack([columns[c] for c in ("anchor", "positive", "negative")],
                                  axis=1) if "anchor" in columns else None)
