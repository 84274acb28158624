"""The library: compute_loss(...) and friends, composing readers, validation, kernels and stats.

The CLI calls exactly these functions; so can any Python program.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from . import validate
from .errors import InputError, UsageError
from .params import (
    Distance,
    DistanceParams,
    EpsPlacement,
    LossParams,
    PairReduction,
    Reduction,
    Settings,
    check_threads,
)
from .presets import FROM_FILE, resolve
from .readers import (
    STDIN,
    ArrowMatrix,
    ArrowTriplets,
    open_matrix,
    open_triplets,
    shown_name,
)
from .reductions import TripletStats

ArrayLike = np.ndarray | str | os.PathLike[str]
Matrix = np.ndarray | ArrowMatrix  # in memory (or memory-mapped), or streamed from parquet/Arrow
BLOCK_BYTES = 192 << 20  # one block of the three inputs; bounds memory for streamed inputs
BLOCK_ROWS = 1 << 20
NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's eps, as pytorch-metric-learning uses it
_NO_INDEX = np.empty(0, np.int64)


@dataclass
class Block:
    """Per-triplet results for rows start..start+len of one run."""

    start: int
    d_ap: np.ndarray
    d_an: np.ndarray
    loss: np.ndarray
    correct: np.ndarray | None = None
    triplets: np.ndarray | None = None

    def __len__(self) -> int:
        return self.loss.size

    @property
    def progress(self) -> int:
        return len(self)

    def columns(self) -> dict[str, np.ndarray]:
        """The per-triplet output rows: index, [anchor, positive, negative,] d_ap, d_an, loss."""
        cols = {"index": np.arange(self.start, self.start + len(self), dtype=np.int64)}
        if self.triplets is not None:
            cols.update(anchor=self.triplets[:, 0], positive=self.triplets[:, 1],
                        negative=self.triplets[:, 2])
        cols.update(d_ap=self.d_ap, d_an=self.d_an, loss=self.loss)
        return cols


@dataclass
class ComputeResult:
    """Per-triplet distances and losses with the summary object of SPEC section 3."""

    d_ap: np.ndarray
    d_an: np.ndarray
    loss: np.ndarray
    summary: dict[str, object]
    triplets: np.ndarray | None = None

    @property
    def value(self) -> float | None:
        """The headline loss for the chosen reduction (None for reduction 'none')."""
        return self.summary["loss"]  # type: ignore[return-value]


class Resolved:
    """The parameter objects of a job's resolved settings (shared by compute and mine jobs)."""

    settings: Settings

    @property
    def distance(self) -> DistanceParams:
        v = self.settings.values
        return DistanceParams(v["distance"], float(v["p"]), float(v["eps"]), v["eps_placement"],
                              bool(v["normalize"]))

    @property
    def loss_params(self) -> LossParams:
        v = self.settings.values
        return LossParams(float(v["margin"]), bool(v["soft_margin"]), bool(v.get("swap", False)))


@dataclass
class ComputeJob(Resolved):
    """Validated inputs and resolved settings for one compute run, processed in blocks."""

    settings: Settings
    arrays: dict[str, Matrix]
    names: dict[str, str]
    triplets: np.ndarray | ArrowTriplets | None = None
    count: int = 0
    warnings: list[str] = field(default_factory=list)
    loaded: dict[str, Matrix] = field(default_factory=dict)

    @property
    def candidates(self) -> bool:
        return any(a.ndim == 3 for a in self.arrays.values())

    def inputs(self) -> dict[str, dict[str, object]]:
        """JSON `inputs`: by role, so one file in two roles keeps both (path None: an array)."""
        return {k: {"path": None if self.names[k] == k else self.names[k],
                    "shape": list(a.shape), "dtype": str(a.dtype)}
                for k, a in self.loaded.items()}

    def block_rows(self) -> int:
        """Rows per block: all three inputs' rows of a block fit in BLOCK_BYTES."""
        row_bytes = sum(int(np.prod(a.shape[1:])) * a.dtype.itemsize for a in self.arrays.values())
        return int(min(BLOCK_ROWS, max(4096, BLOCK_BYTES // max(row_bytes, 1))))

    def _input_blocks(self, rows: int) -> Iterator[dict[str, np.ndarray]]:
        """The aligned inputs' rows, block by block, streamed where they live on disk."""
        def stream(role: str) -> Iterator[np.ndarray]:
            a = self.arrays[role]
            if isinstance(a, ArrowMatrix):
                for block in a.blocks(rows):
                    yield validate.as_float_array(block, self.names[role])
            else:
                for start in range(0, self.count, rows):
                    yield a[start:start + rows]

        roles = ("anchors", "positives", "negatives")
        for parts in zip(*(stream(r) for r in roles), strict=True):
            yield dict(zip(roles, parts, strict=True))

    def blocks(self, block_rows: int | None = None) -> Iterator[Block]:
        """Per-triplet results block by block, inputs streamed where they live on disk."""
        rows = block_rows or self.block_rows()
        if self.triplets is not None:
            for start, t in zip(range(0, self.count, rows), self._triplet_blocks(rows),
                                strict=True):
                yield self.compute_block(start, {}, t)
        else:
            for start, part in zip(range(0, self.count, rows), self._input_blocks(rows),
                                   strict=True):
                yield self.compute_block(start, part)

    def compute_block(self, start: int, part: dict[str, np.ndarray],
                      triplets: np.ndarray | None = None, x: np.ndarray | None = None,
                      candidates: bool | None = None) -> Block:
        """One block, the unit of work (a Dask task runs one): rows start.. of the aligned
        inputs `part` (role -> rows), or the index `triplets` into x (default: the embeddings).
        """
        from .distances import kernel_code
        from .losses import aligned_losses, candidate_losses

        dist, lp = self.distance, self.loss_params
        code = kernel_code(dist.distance.value, dist.p)
        common = (code, dist.norm_p, dist.eps, dist.eps_placement.code, lp.margin, lp.soft_margin)
        n = len(triplets) if triplets is not None else len(part["anchors"])
        d_ap, d_an, loss = np.empty(n), np.empty(n), np.empty(n)
        correct = None
        if triplets is not None:
            x = self.arrays["embeddings"] if x is None else x
            aligned_losses(x, x, x, np.ascontiguousarray(triplets[:, 0]),
                           np.ascontiguousarray(triplets[:, 1]),
                           np.ascontiguousarray(triplets[:, 2]), *common, lp.swap, d_ap, d_an,
                           loss)
        else:
            a, p, neg = (self._prepared(part[k]) for k in ("anchors", "positives", "negatives"))
            if self.candidates if candidates is None else candidates:
                correct = np.empty(n)
                pair_mean = self.settings.values["pair_reduction"] == PairReduction.mean.value
                candidate_losses(a, p, neg, *common, lp.swap, pair_mean, d_ap, d_an, loss,
                                 correct)
            else:
                aligned_losses(a, p, neg, _NO_INDEX, _NO_INDEX, _NO_INDEX, *common, lp.swap,
                               d_ap, d_an, loss)
        self._check_finite(start, d_ap, d_an, part)
        return Block(start, d_ap, d_an, loss, correct, triplets)

    def _triplet_blocks(self, rows: int) -> Iterator[np.ndarray]:
        """The index triples block by block, range-checked (streamed from parquet/Arrow)."""
        t, m, name = self.triplets, self.arrays["embeddings"].shape[0], self.names["triplets"]
        parts = (t.blocks(rows) if isinstance(t, ArrowTriplets) else
                 (t[s:s + rows] for s in range(0, self.count, rows)))
        start = 0
        for part in parts:
            validate.require_indices(part, m, name, start)
            start += len(part)
            yield part

    def _prepared(self, a: np.ndarray) -> np.ndarray:
        return _normalized(a) if self.settings.values["normalize"] else a

    def _check_finite(self, start: int, d_ap: np.ndarray, d_an: np.ndarray,
                      part: dict[str, np.ndarray]) -> None:
        """A non-finite distance points at a NaN/inf input row (named), or at an overflow.

        Legacy MLX (eps placement legacy-root) gives NaN from finite input for odd p: that is
        the library's defect, reproduced and reported in the warnings, not an input error.
        """
        bad = np.flatnonzero(~(np.isfinite(d_ap) & np.isfinite(d_an)))
        for i in bad:
            row = start + int(i)
            for role, a in part.items():
                values = a[int(i)]
                if not np.isfinite(values).all():
                    what = validate.describe_nonfinite(a, int(i))
                    where = f"row {row}"
                    one_anchor = self.loaded["anchors"].ndim == 1
                    if values.ndim == 2 and (one_anchor or self.loaded[role].ndim == 3):
                        # k candidates: the row of a (k, d) set, or row and candidate of (n, k, d)
                        k = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
                        where = f"row {k}" if one_anchor else f"{where}, candidate {k}"
                    raise InputError(f"{where} contains {what}", self.names[role])
        if bad.size and self.distance.eps_placement.value != "legacy-root":
            i = int(bad[0])
            name = self.names["triplets" if self.triplets is not None else "anchors"]
            if np.isnan(d_ap[i]) or np.isnan(d_an[i]):
                raise InputError(f"row {start + i}: the distance is undefined (NaN) for finite "
                                 "values (a zero vector with cosine and --eps 0?)", name)
            raise InputError(f"row {start + i}: the distance overflows float64 (values too "
                             "large); rescale the embeddings", name)


def path_or_array(x: object) -> object:
    """A path-like input as its str path (arrays and None pass through)."""
    return os.fspath(x) if isinstance(x, os.PathLike) else x


def _normalized(a: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float64 (x / max(|x|, 1e-12), as torch's normalize)."""
    a = a.astype(np.float64)
    norm = np.sqrt(np.einsum("...i,...i->...", a, a))[..., None]
    return a / np.maximum(norm, NORMALIZE_EPS)


def _load_matrix(x: ArrayLike, role: str, column: str | None, stream: bool = False
                 ) -> tuple[Matrix, str]:
    """An input as a float array, or (stream=True) as an ArrowMatrix left on disk."""
    if isinstance(x, str):
        m, name = open_matrix(x, column), shown_name(x)
        if isinstance(m, ArrowMatrix):
            validate.as_float_array(np.empty((0, m.width), m.dtype), name)  # dtype check first
            return (m, name) if stream else (validate.as_float_array(m.read(), name), name)
        return validate.as_float_array(m, name), name
    array = np.asarray(x)
    return validate.as_float_array(array, role), role


def prepare_compute(
    anchors: ArrayLike | None = None,
    positives: ArrayLike | None = None,
    negatives: ArrayLike | None = None,
    *,
    embeddings: ArrayLike | None = None,
    triplets: ArrayLike | None = None,
    preset: str | None = None,
    column: str | None = None,
    **options: object,
) -> ComputeJob:
    """Read, validate and resolve everything a compute run needs, without computing."""
    settings = resolve("compute", preset, options)
    anchors, positives, negatives, embeddings, triplets = (
        path_or_array(x) for x in (anchors, positives, negatives, embeddings, triplets))
    if sum(isinstance(x, str) and x == STDIN
           for x in (anchors, positives, negatives, embeddings, triplets)) > 1:
        raise UsageError("only one input can be read from stdin (-)")
    DistanceParams(*(settings.values[k] for k in ("distance", "p", "eps", "eps_placement")))
    LossParams(float(settings.values["margin"]))
    Reduction(settings.values["reduction"])
    aligned = [x is not None for x in (anchors, positives, negatives)]
    if embeddings is not None or triplets is not None:
        if any(aligned) or embeddings is None or triplets is None:
            raise UsageError("use --embeddings with --triplets, or --anchors --positives "
                             "--negatives, not a mix")
        return _prepare_indexed(settings, embeddings, triplets, column, preset, options)
    if not all(aligned):
        raise UsageError("give --anchors, --positives and --negatives (or --embeddings with "
                         "--triplets)")
    arrays, names = {}, {}
    for role, x in (("anchors", anchors), ("positives", positives), ("negatives", negatives)):
        arrays[role], names[role] = _load_matrix(x, role, column, stream=True)  # type: ignore
    return _check_aligned(ComputeJob(settings, arrays, names))


def _check_aligned(job: ComputeJob) -> ComputeJob:
    a = job.arrays["anchors"]
    validate.require_rank(a, job.names["anchors"], (1, 2), "anchors")
    one_anchor = a.ndim == 1
    for role in ("positives", "negatives"):
        ranks = (2,) if one_anchor else (2, 3)
        validate.require_rank(job.arrays[role], job.names[role], ranks, role)
    for role, x in job.arrays.items():
        validate.require_rows(x, job.names[role])
    dims = {role: x.shape[-1] for role, x in job.arrays.items()}
    if len(set(dims.values())) > 1:
        raise InputError("dimensions differ: " + ", ".join(f"{job.names[r]} has d = {d}"
                                                           for r, d in dims.items()),
                         job.names["anchors"])
    job.loaded = dict(job.arrays)
    if one_anchor or job.candidates:  # reshaped below: streamed inputs are read whole
        job.arrays = {r: validate.as_float_array(x.read(), job.names[r])
                      if isinstance(x, ArrowMatrix) else x for r, x in job.arrays.items()}
    if one_anchor:  # one anchor against k_p positive and k_n negative candidates
        job.arrays = {"anchors": a[None], **{r: job.arrays[r][None] for r in ("positives",
                                                                               "negatives")}}
        job.count = 1
        return job
    if job.candidates:  # (n, d) next to (n, k, d): one candidate each
        job.arrays = {r: x[:, None] if x.ndim == 2 and r != "anchors" else x
                      for r, x in job.arrays.items()}
    rows = {role: x.shape[0] for role, x in job.arrays.items()}
    if len(set(rows.values())) > 1:
        raise InputError("row counts differ: " + ", ".join(f"{job.names[r]} has {n}"
                                                          for r, n in rows.items()),
                         job.names["anchors"])
    job.count = rows["anchors"]
    return job


def _prepare_indexed(settings: Settings, embeddings: ArrayLike, triplets: ArrayLike,
                     column: str | None, preset: str | None = None,
                     options: dict[str, object] | None = None) -> ComputeJob:
    x, name = _load_matrix(embeddings, "embeddings", column)
    validate.require_rank(x, name, (2,), "embeddings")
    validate.require_rows(x, name)
    if isinstance(triplets, str):
        t, tname = open_triplets(triplets), shown_name(triplets)
    else:
        t, tname = np.ascontiguousarray(np.asarray(triplets), dtype=np.int64), "triplets"
        if t.ndim != 2 or t.shape[1] != 3 or t.shape[0] == 0:
            raise InputError(f"triplets must have shape (t, 3) with t > 0, got {t.shape}", tname)
    warnings: list[str] = []
    if isinstance(t, ArrowTriplets) and t.recorded:  # how the triplets were mined
        settings, warnings = _with_recorded(settings, t.recorded, tname, preset, options or {})
        warnings += _shape_warning(t.recorded, tname, x.shape, name)
    if isinstance(t, np.ndarray):  # streamed triplets are checked block by block
        validate.require_indices(t, x.shape[0], tname)
    validate.require_finite(x, name)
    if settings.values["normalize"]:
        x = _normalized(x)
    job = ComputeJob(settings, {"embeddings": x}, {"embeddings": name}, t, t.shape[0],
                     warnings=warnings)
    job.loaded = {"embeddings": x, "triplets": t}
    job.names["triplets"] = tname
    return job


# Settings a triplets file records that define its losses: compute's defaults for it.
RECORDED_KEYS = ("distance", "p", "eps", "eps_placement", "normalize", "margin", "soft_margin",
                 "swap", "reduction")


def _recorded_value(key: str, value: object) -> object:
    """A recorded setting as resolve takes it, or None when this version cannot use it."""
    choices = {"distance": Distance, "eps_placement": EpsPlacement, "reduction": Reduction}
    if key in choices:
        return value if value in {c.value for c in choices[key]} else None
    if key in ("normalize", "soft_margin", "swap"):
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    lowest = 1.0 if key == "p" else 0.0
    finite = key == "p" or math.isfinite(value)
    return float(value) if finite and value >= lowest else None


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _with_recorded(settings: Settings, record: dict, tname: str, preset: str | None,
                   options: dict[str, object]) -> tuple[Settings, list[str]]:
    """The settings with those a triplets file records as defaults (flags win; a preset
    replaces them), and a warning naming every setting that contradicts the file."""
    params = record["params"]
    given = {k for k, v in options.items() if v is not None}
    usable = {}
    for key in (k for k in RECORDED_KEYS if k in params):
        value = _recorded_value(key, params[key])
        if value is None and key not in given and preset is None:
            raise InputError(f"records {key} = {params[key]!r}, which this version cannot use; "
                             f"choose one with --{key.replace('_', '-')}", tname)
        if value is not None:
            usable[key] = value
    if preset is None:
        try:
            settings = resolve("compute", None, options, recorded=usable)
            v = settings.values
            DistanceParams(v["distance"], float(v["p"]), float(v["eps"]), v["eps_placement"])
            LossParams(float(v["margin"]))
        except UsageError as e:
            raise UsageError(f"{e.message} (with the settings {tname} records)", e.path) from None
    v, sources = settings.values, settings.sources
    differ = [k for k in usable if sources[k] != FROM_FILE and v[k] != usable[k]]
    if not differ:
        return settings, []
    was = ", ".join(f"{k}={_shown(usable[k])}" for k in differ)
    now = ", ".join(f"{k}={_shown(v[k])} ({sources[k]})" for k in differ)
    return settings, [f"{tname} records {was} (the settings its rows were computed with); "
                      f"scoring with {now} instead"]


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


def summarize(job_settings: Settings, stats: TripletStats, inputs: dict[str, object],
              extra_warnings: list[str]) -> dict[str, object]:
    """The JSON summary object: statistics, params with their sources, inputs and warnings."""
    values = job_settings.values
    summary = stats.summary(Reduction(values["reduction"]))
    summary["params"] = {**values, "sources": job_settings.sources}
    summary["inputs"] = inputs
    summary["warnings"] = extra_warnings + stats.warnings(bool(values["soft_margin"]))
    return summary


def compute_loss(
    anchors: ArrayLike | None = None,
    positives: ArrayLike | None = None,
    negatives: ArrayLike | None = None,
    *,
    embeddings: ArrayLike | None = None,
    triplets: ArrayLike | None = None,
    preset: str | None = None,
    threads: int | None = None,
    column: str | None = None,
    **options: object,
) -> ComputeResult:
    """Per-triplet losses and their summary for aligned arrays or indexed triplets.

    Arrays or file paths are accepted. Options are the CLI's flags in snake case: distance, p,
    margin, eps, eps_placement, normalize, soft_margin, swap, reduction, pair_reduction.
    """
    from ._jit import set_threads

    check_threads(threads)
    job = prepare_compute(anchors, positives, negatives, embeddings=embeddings,
                          triplets=triplets, preset=preset, column=column, **options)
    note = set_threads(threads)
    if note:
        job.warnings.append(note)
    stats = TripletStats(margin=job.loss_params.margin)
    blocks = list(job.blocks())
    for b in blocks:
        stats.add(b.start, b.d_ap, b.d_an, b.loss, b.correct)
    summary = summarize(job.settings, stats, job.inputs(), job.warnings)
    d_ap, d_an, loss = (np.concatenate([getattr(b, name) for b in blocks])
                        for name in ("d_ap", "d_an", "loss"))
    triplets = None if job.triplets is None else np.concatenate([b.triplets for b in blocks])
    return ComputeResult(d_ap, d_an, loss, summary, triplets)
