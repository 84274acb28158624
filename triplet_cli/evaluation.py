"""The evaluate job and evaluate(): retrieval quality of labelled embeddings, checkpoint by
checkpoint (SPEC section 8).

Units are ranges of query rows of one checkpoint; the shared input is the reference (the queries
themselves without --reference) with its labels. A unit runs the exact top-k primitive
(topk.top_k: one matrix product per block, decisions on exact distances, ties by the lowest
index) and turns each query's ranked neighbours into per-query values (retrieval.py). The tally
keeps those values, O(queries) per checkpoint, and averages them once at the end, so the metrics
do not depend on the block size or the thread count. Memory: O(block x reference + queries x
checkpoints), never queries x reference.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any

import numpy as np

from . import inputs, retrieval, validate
from .errors import InputError, UsageError
from .inputs import ArrayLike, load_matrix, normalized, path_or_array, same_input
from .jobs import Block, Job, run_here
from .params import DistanceParams, check_count, flag, ignored_flags
from .presets import resolve
from .readers import labels_for
from .topk import BLOCK_BYTES  # a unit's ranking rows (block x reference float64)

WORST_CLASSES = 10  # in the JSON report (the table shows --top of them)
GATE = re.compile(r"\s*([a-z0-9_]+)\s*=\s*([^=]+)")


@dataclass(frozen=True)
class Settings:
    """evaluate's own settings, parsed from the resolved values (a bad one is a usage error)."""

    k: str | int  # "max-bin-count", "all" or a whole number >= 1
    at: tuple[int, ...]
    average: str
    target: tuple[str, float]
    self_match: str
    map_divisor: str
    recall: str
    batch_hard_loss: bool

    @classmethod
    def of(cls, values: dict[str, object]) -> Settings:
        return cls(_k(values["k"]), _at(values["at"]), str(values["average"]),
                   _target(values["target"]), str(values["self_match"]),
                   str(values["map_divisor"]), str(values["recall"]),
                   bool(values["batch_hard_loss"]))

    def metric_keys(self) -> list[tuple[str, str]]:
        """(per-query value, metric) of the report, in table order."""
        loss = [("batch_hard_loss",) * 2] if self.batch_hard_loss else []
        return retrieval.metric_keys(self.at) + loss


def _k(value: object) -> str | int:
    if value in ("max-bin-count", "all"):
        return str(value)
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[+-]?[0-9]+", text) or int(text) < 1:
        raise UsageError(f"--k must be max-bin-count, all or a whole number >= 1 (got {value!r})")
    return int(text)


def _at(value: object) -> tuple[int, ...]:
    parts = (list(value) if isinstance(value, list | tuple | np.ndarray)
             else str(value).split(","))
    try:
        at = tuple(sorted({int(str(p).strip()) for p in parts}))
    except ValueError:
        at = ()
    if not at or at[0] < 1 or at[-1] >= 1 << 63:
        raise UsageError("--at must be whole numbers from 1 to 2^63 - 1, comma-separated (got "
                         f"{value!r})")
    return at


def _target(value: object) -> tuple[str, float]:
    match = GATE.fullmatch(str(value))
    number = _number(match.group(2)) if match else None
    if not match or match.group(1) not in ("precision", "recall") or number is None \
            or not 0 <= number <= 1:
        raise UsageError(f"--target must be precision=V or recall=V with 0 <= V <= 1 (got "
                         f"{value!r})")
    return match.group(1), number


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_gates(texts: object, at: tuple[int, ...], name: str = "fail_below"
                ) -> tuple[tuple[str, float], ...]:
    """--fail-below METRIC=V (or --fail-drop METRIC=D: D >= 0) values, each naming a metric of
    the report."""
    option, example = flag(name), "map_at_r=0.5" if name == "fail_below" else "map_at_r=0.01"
    texts = [texts] if isinstance(texts, str) else texts
    if not (isinstance(texts, list | tuple) and all(isinstance(g, str) for g in texts)):
        raise UsageError(f"{name} must be gates such as {example!r} (got {texts!r})")
    names = [name for _, name in retrieval.metric_keys(at)]
    gates = []
    for text in texts:
        match = GATE.fullmatch(text)
        number = _number(match.group(2)) if match else None
        if not match or number is None or not 0 <= number <= 1:  # (every metric lies in 0..1)
            what = "METRIC=V" if name == "fail_below" else "METRIC=D"
            raise UsageError(f"{option} must be {what} with {what[-1]} from 0 to 1, e.g. "
                             f"{example} (got {text!r})")
        if match.group(1) not in names:
            raise UsageError(f"{option}: unknown metric {match.group(1)!r}; choose from "
                             f"{', '.join(dict.fromkeys(names))}")
        gates.append((match.group(1), number))
    return tuple(gates)


@dataclass(frozen=True)
class Queries:
    """An evaluate unit: query rows start..stop of checkpoint `checkpoint`."""

    checkpoint: int
    start: int
    stop: int


@dataclass
class EvalBlock(Block):
    """A unit's per-query rows, and the per-query values the tally averages."""

    checkpoint: int = 0
    start: int = 0
    values: dict[str, np.ndarray] = field(default_factory=dict)


class EvalTally:
    """Per-query values of every checkpoint, filled block by block at their rows."""

    def __init__(self, checkpoints: int, n: int, names: Sequence[str], top: int) -> None:
        self.top = top
        self.values = [{name: np.zeros(n, bool if name.startswith(("tie", "same", "other_"))
                                       else np.float64) for name in names}
                       for _ in range(checkpoints)]

    def add(self, block: EvalBlock) -> None:
        for name, v in block.values.items():
            self.values[block.checkpoint][name][block.start:block.start + len(v)] = v


@dataclass
class EvaluateJob(Job):
    """Validated checkpoints, reference and labels with resolved settings."""

    queries: list[np.ndarray] = field(default_factory=list)  # one matrix per checkpoint
    references: list[np.ndarray] | None = None  # one per checkpoint; None: the queries
    codes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    ref_codes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    classes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    r: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    settings: Settings | None = None
    k: int = 1
    gates: tuple[tuple[str, float], ...] = ()
    drops: tuple[tuple[str, float], ...] = ()  # --fail-drop: the largest fall from the first
    checkpoint_names: list[str] = field(default_factory=list)
    plot: str | None = None
    block_rows: int | None = None
    _ready: tuple[int, np.ndarray, Any] | None = None  # checkpoint, reference norms, MineSet

    title = "triplet-loss evaluate"
    progress_what = "queries"

    @property
    def npy_columns(self) -> tuple[str, ...]:  # type: ignore[override]
        """The numeric columns (labels too when they are numbers float64 holds exactly: IDs
        beyond 2^53 would merge), as one float64 matrix."""
        numeric = self.classes.dtype.kind in "iub" and (
            not self.classes.size or int(np.abs(self.classes.astype(object)).max()) <= 2**53)
        return (("checkpoint",) if len(self.queries) > 1 else ()) + tuple(
            c for c in ("query", "label", "R", "nn", "nn_distance", "nn_label",
                        "first_relevant_rank", "p_at_1", "r_precision", "ap_at_r")
            if numeric or c not in ("label", "nn_label"))

    @property
    def own(self) -> bool:
        """The queries are the reference (a query's own row must leave its neighbours)."""
        return self.references is None

    @property
    def width(self) -> int:
        """Neighbours a query needs: k for the R-based metrics, the largest K of --at, at most
        what the reference has (a K beyond it counts the missing neighbours as not relevant)."""
        return min(max(self.k, self.settings.at[-1]), self.ref_codes.size - self.own)

    @property
    def progress_total(self) -> int:
        return len(self.queries) * int(self.codes.size)

    def schema(self) -> dict[str, np.dtype]:
        label = self.classes.dtype
        head = {"checkpoint": np.dtype(np.int64)} if len(self.queries) > 1 else {}
        return {**head, "query": np.dtype(np.int64), "label": label, "R": np.dtype(np.int64),
                "nn": np.dtype(np.int64), "nn_distance": np.dtype(np.float64), "nn_label": label,
                "first_relevant_rank": np.dtype(np.int64),
                **dict.fromkeys(("p_at_1", "r_precision", "ap_at_r"), np.dtype(np.float64))}

    def inputs(self) -> dict[str, object]:  # type: ignore[override]
        """By role (a list for the checkpoint roles); path None for a library array."""
        def one(role: str, name: str, a: np.ndarray) -> dict[str, object]:
            array = name == role or name.startswith(f"{role}[")
            return {"path": None if array else name, "shape": list(a.shape),
                    "dtype": str(a.dtype),
                    **({"column": self.columns[role]} if role in self.columns else {})}

        return {role: [one(role, *e) for e in v] if isinstance(v, list) else one(role, *v)
                for role, v in self.loaded.items()}

    def units(self) -> Iterator[Queries]:
        """Query ranges of at most BLOCK_BYTES of ranking values, and of neighbour lists (per
        neighbour about 48 bytes: distance, index, class, relevance, precision terms)."""
        n = int(self.codes.size)
        m = self.ref_codes.size
        rows = self.block_rows or max(1, min(BLOCK_BYTES // (8 * m),
                                             BLOCK_BYTES // (48 * (self.width + 2))))
        for c in range(len(self.queries)):
            for start in range(0, n, rows):
                yield Queries(c, start, min(start + rows, n))

    def shared(self) -> dict[str, np.ndarray]:
        """Each checkpoint's queries and reference (one reference serving all: once), for an
        executor to ship once."""
        refs = self.references or []
        distinct = refs[:1] if all(r is refs[0] for r in refs) else refs
        return {**{f"queries {c}": q for c, q in enumerate(self.queries)},
                **{f"reference {c}": r for c, r in enumerate(distinct)}}

    def without_shared(self) -> EvaluateJob:
        return replace(self, queries=[], references=None if self.references is None else [],
                       loaded={}, _ready=None)

    def with_shared(self, arrays: dict[str, np.ndarray]) -> EvaluateJob:
        n = len(self.checkpoint_names)
        refs = [arrays.get(f"reference {c}", arrays.get("reference 0")) for c in range(n)]
        return replace(self, queries=[arrays[f"queries {c}"] for c in range(n)],
                       references=None if self.references is None else refs)

    def reference(self, c: int) -> np.ndarray:
        return self.queries[c] if self.references is None else self.references[c]

    def _prepare(self, c: int) -> tuple[np.ndarray, Any]:
        """Checkpoint c's reference norms, and its rows ready for batch-hard mining (or None)."""
        from .mine import MineSet
        from .topk import norms_of

        if self._ready is None or self._ready[0] != c:
            mined = MineSet.build(self.queries[c], self.codes, self.plan()) \
                if self.settings.batch_hard_loss else None
            if mined is not None:  # its products and the neighbours' take turns in one buffer
                mined.rooms = self.rooms
            self._ready = (c, norms_of(self.reference(c)), mined)
        return self._ready[1], self._ready[2]

    def plan(self) -> Any:
        """--batch-hard-loss: each query's hardest positive and hardest negative, the hinge."""
        from .mine import KernelPlan
        from .mining import POSITIVE_CODES, STRATEGY_CODES

        return KernelPlan(*self.params.distance.kernel(), self.params.loss.margin, False,
                          POSITIVE_CODES["hard"], STRATEGY_CODES["hard"], True, 1, False, False)

    def run(self, unit: Queries) -> EvalBlock:
        from .topk import top_k

        s = self.settings
        ref = self.reference(unit.checkpoint)
        norms, mined = self._prepare(unit.checkpoint)
        rows = np.arange(unit.start, unit.stop, dtype=np.int64)
        b = rows.size
        drop = int(self.own and s.self_match == "first")
        exclude = None
        if self.own and s.self_match == "index":
            exclude = (np.arange(b + 1, dtype=np.int64), rows)
        # One more than needed: whether the neighbour after a cut-off ties it.
        vals, idx, counts = top_k(self.queries[unit.checkpoint][unit.start:unit.stop], ref,
                                  self.width + 1 + drop, self.params.distance.kernel(),
                                  exclude=exclude, candidate_norms=norms, rooms=self.rooms)
        offered = min(self.width + 1 + drop, ref.shape[0] - (exclude is not None))
        if (counts < offered).any():  # a NaN distance is never a neighbour (the inputs that
            # make one are refused up front: this guards the metrics against any other)
            row = unit.start + int(np.flatnonzero(counts < offered)[0])
            raise InputError(f"row {row}: a distance to it is undefined (NaN)",
                             self.checkpoint_names[unit.checkpoint])
        dropped_other = (idx[:, 0] != rows) if drop else np.zeros(b, bool)
        vals, idx = vals[:, drop:], idx[:, drop:]
        nn_codes = np.where(idx >= 0, self.ref_codes[np.maximum(idx, 0)], -1)
        codes, r = self.codes[unit.start:unit.stop], self.r[unit.start:unit.stop]
        rel = retrieval.relevance(nn_codes[:, :self.width], codes)
        values = retrieval.per_query(rel, r, self.k, s.at, s.map_divisor, s.recall)
        first = values.pop("first_relevant_rank")
        scored = r > 0
        values |= {
            "nn_distance": vals[:, 0],
            "same": rel[:, 0],
            "tie_at_k": scored & retrieval.tie_at(vals, np.full(b, self.k)),
            "tie_at_r": scored & retrieval.tie_at(vals, np.minimum(r, self.k)),
            "other_first": dropped_other,
        }
        if mined is not None:
            from .mine import mine_range

            triplets = mine_range(mined, self.plan(), unit.start, unit.stop).columns
            values["batch_hard_loss"] = np.full(b, np.nan)
            values["batch_hard_loss"][triplets["anchor"] - unit.start] = triplets["loss"]
        columns = {"query": rows, "label": self.classes[codes], "R": r.astype(np.int64),
                   "nn": idx[:, 0], "nn_distance": vals[:, 0],
                   "nn_label": self.classes[np.maximum(nn_codes[:, 0], 0)],
                   "first_relevant_rank": first.astype(np.int64), "p_at_1": values["p_at_1"],
                   "r_precision": values["r_precision"], "ap_at_r": values["ap_at_r"]}
        if len(self.queries) > 1:
            columns = {"checkpoint": np.full(b, unit.checkpoint + 1, np.int64), **columns}
        return EvalBlock(columns, b, checkpoint=unit.checkpoint, start=unit.start,
                         values=values)

    def tally(self, top: int = 0) -> EvalTally:  # type: ignore[override]
        names = [key for key, _ in self.settings.metric_keys()]
        names += ["nn_distance", "same", "tie_at_k", "tie_at_r", "other_first"]
        return EvalTally(len(self.queries), int(self.codes.size), names, top)

    def summary(self, tally: EvalTally) -> dict[str, object]:  # type: ignore[override]
        """The JSON report: one entry per checkpoint (metrics, ties, calibration, nearest
        distances, worst classes), then labels, params, inputs and warnings."""
        from .calibration import calibrate

        s = self.settings
        scored = self.r > 0
        excluded = int((~scored).sum())
        checkpoints, curves = [], []
        for name, v in zip(self.checkpoint_names, tally.values, strict=True):
            metrics = {name: retrieval.average(v[key], self.codes, scored, s.average)
                       for key, name in s.metric_keys()}
            d, same = v["nn_distance"][scored], v["same"][scored]
            calibration, curve = calibrate(d, same, s.target)
            curves.append((name, d, same, curve))
            checkpoints.append({
                "name": name, "metrics": metrics,
                "ties_at_k": int(v["tie_at_k"].sum()), "ties_at_r": int(v["tie_at_r"].sum()),
                "calibration": calibration,
                "nn_distance": {"same_class": _stats(d[same]), "other_class": _stats(d[~same])},
                "worst_classes": self._worst(v, scored, tally.top or WORST_CLASSES),
            })
        if self.plot:
            from .plot import draw

            draw(self.plot, curves)
        sizes = np.bincount(self.ref_codes, minlength=self.classes.size)
        present = sizes[sizes > 0]
        summary: dict[str, object] = {
            "queries": int(self.codes.size), "reference_rows": int(self.ref_codes.size),
            "excluded_queries": excluded, "k": self.k, "at": list(s.at),
            "average": s.average, "checkpoints": checkpoints,
            "labels": {"classes": int(present.size), "smallest_class": int(present.min()),
                       "largest_class": int(present.max())},
            "params": {**self.params.values, "sources": self.params.sources},
            "inputs": self.inputs(),
        }
        if self.gates:  # --fail-below: each gate's outcome per checkpoint
            summary["gates"] = [{"metric": name, "at_least": value, "checkpoint": c["name"],
                                 "value": c["metrics"][name],
                                 "passed": bool(c["metrics"][name] >= value)}
                                for c in checkpoints for name, value in self.gates]
        if self.drops:  # --fail-drop: each later checkpoint against the first
            first = checkpoints[0]
            summary["drops"] = [
                {"metric": name, "max_drop": most, "checkpoint": c["name"],
                 "baseline": first["name"], "value": c["metrics"][name],
                 "baseline_value": first["metrics"][name],
                 "drop": first["metrics"][name] - c["metrics"][name],
                 "passed": bool(first["metrics"][name] - c["metrics"][name] <= most)}
                for c in checkpoints[1:] for name, most in self.drops]
        summary["warnings"] = self._warnings(tally, excluded)
        return summary

    def _worst(self, v: dict[str, np.ndarray], scored: np.ndarray, top: int) -> list[dict]:
        """The classes with the lowest MAP@R (ties: the lower label first)."""
        n = self.classes.size
        means = {key: retrieval.per_class(v[key], self.codes, scored, n)[0]
                 for key in ("p_at_1", "r_precision", "ap_at_r")}
        counts = np.bincount(self.codes[scored], minlength=n)
        order = [c for c in np.argsort(means["ap_at_r"], kind="stable") if counts[c] > 0][:top]
        named = dict(retrieval.metric_keys(()))
        return [{"label": self.classes[c:c + 1].tolist()[0], "queries": int(counts[c]),
                 **{named[key]: float(m[c]) for key, m in means.items()}} for c in order]

    def _warnings(self, tally: EvalTally, excluded: int) -> list[str]:
        out = list(self.warnings)
        if excluded:
            out.append(f"{excluded} queries have no other row of their class in the reference "
                       "(R = 0): excluded from every metric")
        short = int((self.r > self.k).sum())
        if short:
            out.append(f"k = {self.k} is below R for {short} queries: their R-precision counts "
                       "the first k neighbours over min(R, k) and MAP@R misses the rest (as "
                       "pytorch-metric-learning does); use --k max-bin-count")
        others = max(int(v["other_first"].sum()) for v in tally.values)
        if others:
            out.append(f"--self-match first dropped another row than the query itself for "
                       f"{others} queries (a duplicate, or a tie at distance 0, came first)")
        return out

    def render(self, out: IO[str], summary: dict[str, Any], tally: EvalTally) -> None:  # type: ignore[override]
        from .evaluate_report import render

        scored = self.r > 0
        nearest = [(v["nn_distance"][scored], v["same"][scored]) for v in tally.values]
        n = self.classes.size
        maps = np.stack([retrieval.per_class(v["ap_at_r"], self.codes, scored, n)[0]
                         for v in tally.values], axis=1)
        counts = np.bincount(self.codes[scored], minlength=n)
        order = [c for c in np.argsort(maps[:, -1], kind="stable") if counts[c]][:tally.top]
        render(out, self.title, summary, nearest,
               (self.classes[order].tolist(), counts[order], maps[order]))

    def gated(self, gate: float | None) -> bool:
        return bool(self.gates or self.drops)

    def failure(self, summary: dict[str, Any], tally: EvalTally,  # type: ignore[override]
                gate: float | None) -> str | None:
        """--fail-below (the job's gates, checked before any file was read; evaluate takes no
        --fail-above): every checkpoint must reach every gate, and NaN never does. The gates
        missed, by checkpoint, or None."""
        several = len(summary["checkpoints"]) > 1
        missed = [f"{g['metric']} {g['value']!r} < {g['at_least']!r}"
                  + (f" ({g['checkpoint']})" if several else "")
                  for g in summary.get("gates", ()) if not g["passed"]]
        fell = [f"{g['metric']} {g['baseline_value']!r} ({g['baseline']}) -> {g['value']!r} "
                f"({g['checkpoint']}): a drop of {g['drop']:.6g} > {g['max_drop']!r}"
                for g in summary.get("drops", ()) if not g["passed"]]
        said = (["--fail-below: " + "; ".join(missed)] if missed else []) + (
            ["--fail-drop: " + "; ".join(fell)] if fell else [])
        return "; ".join(said) if said else None


def _stats(d: np.ndarray) -> dict[str, float | int | None]:
    if not d.size:
        return {"count": 0, "mean": None, "min": None, "p50": None, "max": None}
    return {"count": int(d.size), "mean": float(d.mean()), "min": float(d.min()),
            "p50": float(np.median(d)), "max": float(d.max())}


@dataclass
class EvaluateResult:
    """Per-query rows (columns), and the summary: one metrics entry per checkpoint."""

    rows: dict[str, np.ndarray]
    summary: dict[str, object]

    @property
    def metrics(self) -> list[dict[str, float]]:
        """Each checkpoint's metrics, in the order the embeddings were given."""
        return [c["metrics"] for c in self.summary["checkpoints"]]  # type: ignore[attr-defined]

    @property
    def passed(self) -> bool:
        """Whether every fail_below and fail_drop gate passed (True without gates): what the
        CLI's exit code 3 says."""
        return all(g["passed"] for key in ("gates", "drops")
                   for g in self.summary.get(key, ()))  # type: ignore[attr-defined]

    def __repr__(self) -> str:  # (not every row: a notebook cell shows this)
        shown = "; ".join(", ".join(f"{k}={m[k]:.4g}" for k in ("precision_at_1", "map_at_r")
                                    if m.get(k) is not None) for m in self.metrics)
        return f"EvaluateResult({self.summary['queries']} queries, {shown})"


def _several(x: ArrayLike | Sequence[ArrayLike] | None) -> list[Any]:
    """Checkpoints: a list or tuple of paths or matrices is several, anything else one (a
    nested list of numbers is one matrix)."""
    if x is None:
        return []
    if isinstance(x, list | tuple) and x and all(_one_input(v) for v in x):
        return [path_or_array(v) for v in x]
    return [path_or_array(x)]


def _one_input(v: object) -> bool:
    """A path, or something that is a matrix by itself (not a row of numbers)."""
    if isinstance(v, str | os.PathLike):
        return True
    try:
        return np.ndim(v) >= 2
    except ValueError:  # ragged: left to the loader's own error
        return True


def _load(x: ArrayLike, role: str, column: str | None, i: int, count: int,
          distance: DistanceParams, picked: dict[str, str]) -> tuple[np.ndarray, str]:
    """Checkpoint i of `role`, checked; the table column it was read from goes into
    picked[role]."""
    found: dict[str, str] = {}
    a, name = load_matrix(x, role if count == 1 else f"{role}[{i}]", column, picked=found)
    if found:
        picked[role] = next(iter(found.values()))
    validate.require_matrix(a, name, role)
    validate.require_rankable(a, name, distance)
    return a, name


def _require_same_labels(y: np.ndarray, checkpoints: list[Any], names: list[str],
                         column: str | None) -> None:
    """Checkpoints whose files hold labels too must hold the first one's: the same rows in the
    same order (a shuffled later file would otherwise be scored with the first's labels)."""
    for x, name in zip(checkpoints[1:], names[1:], strict=True):
        try:
            other, _ = _label_values(None, x, column, "labels")
        except InputError:
            continue  # no label column there: its rows are the first file's
        if not np.array_equal(other, y):
            raise InputError(f"its labels differ from {names[0]}'s: checkpoints must hold the "
                             "same rows in the same order", name)


def _label_values(labels: ArrayLike | None, owner: ArrayLike, column: str | None, role: str,
                  picked: dict[str, str] | None = None) -> tuple[np.ndarray, str]:
    """`role`'s labels and their name; the table column they came from goes into picked[role]."""
    found: dict[str, str] = {}
    y, name = labels_for(labels, owner, column, found)
    if picked is not None and "labels" in found:
        picked[role] = found["labels"]
    name = name if isinstance(labels, str) or labels is None else role
    return validate.as_labels(validate.as_array(y, name), name), name


def prepare_evaluate(embeddings: ArrayLike | Sequence[ArrayLike], labels: ArrayLike | None = None,
                     *, reference: ArrayLike | Sequence[ArrayLike] | None = None,
                     reference_labels: ArrayLike | None = None, preset: str | None = None,
                     column: str | None = None, label_column: str | None = None,
                     fail_below: Sequence[str] = (), fail_drop: Sequence[str] = (),
                     plot: str | None = None,
                     block_rows: int | None = None, **options: object) -> EvaluateJob:
    """Check the settings, then read and validate everything an evaluation needs."""
    params = resolve("evaluate", preset, options)
    check_count("block_rows", block_rows)
    plot = path_or_array(plot)
    if plot is not None and not isinstance(plot, str):
        raise UsageError(f"plot must be a file path (got {plot!r})")
    settings = Settings.of(params.values)
    params.values.update(k=settings.k, at=list(settings.at))  # as used: "5,1,1" is [1, 5]
    gates = parse_gates(fail_below, settings.at)
    drops = parse_gates(fail_drop, settings.at, "fail_drop")
    checkpoints, references = _several(embeddings), _several(reference)
    if drops and len(checkpoints) < 2:
        raise UsageError("--fail-drop compares each later checkpoint with the first: give "
                         "--embeddings twice or more")
    labels, reference_labels = path_or_array(labels), path_or_array(reference_labels)
    if not checkpoints:
        raise UsageError("evaluate needs --embeddings")
    if references and reference_labels is None and not inputs.holds_columns(references[0]):
        raise UsageError("--reference needs --reference-labels (the class of every reference "
                         "row), unless it is a parquet or Arrow file with a label column")
    if reference_labels is not None and not references:
        raise UsageError("--reference-labels needs --reference")
    if references and settings.batch_hard_loss:
        raise UsageError("--batch-hard-loss mines triplets among the queries: it takes no "
                         "--reference")
    if references and len(references) not in (1, len(checkpoints)):
        raise UsageError(f"--reference given {len(references)} times for {len(checkpoints)} "
                         "--embeddings: give it once, or once per --embeddings")
    paths = [p for p in (*checkpoints, labels, *references, reference_labels)
             if isinstance(p, str)]
    inputs.at_most_one_stdin(paths)
    if plot:
        from .plot import check_plot

        check_plot(plot, paths)
    picked: dict[str, str] = {}
    xs = [_load(x, "embeddings", column, i, len(checkpoints), params.distance, picked)
          for i, x in enumerate(checkpoints)]
    y, yname = _label_values(labels, checkpoints[0], label_column, "labels", picked)
    names = [name for _, name in xs]
    if labels is None:
        _require_same_labels(y, checkpoints, names, label_column)
    n = xs[0][0].shape[0]
    validate.require_label_rows(y, n, yname, xs[0][1])
    for x, name in xs[1:]:
        if x.shape != xs[0][0].shape:
            raise InputError(f"has shape {x.shape}, {xs[0][1]} has {xs[0][0].shape}: checkpoints "
                             "must have the same shape (the same rows in the same order)", name)
    refs = None
    loaded: dict[str, Any] = {"embeddings": [(name, x) for x, name in xs], "labels": (yname, y)}
    # each checkpoint's reference: its own, or the one given for all
    paired = references if len(references) == len(xs) else references * len(xs)
    if references:
        rs: list[tuple[np.ndarray, str]] = []
        for i, r in enumerate(references):  # each input read once (one serving every checkpoint)
            same = next((rs[j] for j in range(i) if same_input(references[j], r)), None)
            rs.append(same or _load(r, "reference", column, i, len(references), params.distance,
                                    picked))
        rs = rs if len(rs) == len(xs) else rs * len(xs)
        ry, ryname = _label_values(reference_labels, references[0], label_column,
                                   "reference_labels", picked)
        validate.require_label_rows(ry, rs[0][0].shape[0], ryname, rs[0][1])
        for (x, xname), (r, rname) in zip(xs, rs, strict=True):
            if r.shape[1] != x.shape[1] or r.shape[0] != rs[0][0].shape[0]:
                raise InputError(f"has shape {r.shape}; its queries {xname} have width "
                                 f"{x.shape[1]} and the reference labels {rs[0][0].shape[0]} "
                                 "rows", rname)
        refs = [r for r, _ in rs]
        loaded |= {"reference": [(name, r) for r, name in rs[:len(references)]],
                   "reference_labels": (ryname, ry)}
        y, ry = validate.one_kind(y, ry, yname, ryname)
        classes, inverse = np.unique(np.concatenate([y, ry]), return_inverse=True)
        codes, ref_codes = inverse[:n].astype(np.int64), inverse[n:].astype(np.int64)
        r_count = np.bincount(ref_codes, minlength=classes.size)[codes]
    else:
        ry, ryname = y, yname
        classes, inverse = np.unique(y, return_inverse=True)
        codes = ref_codes = inverse.astype(np.int64)
        r_count = np.bincount(codes)[codes] - 1
    _require_classes(classes, ref_codes, r_count, ryname, yname)
    for i, checkpoint in enumerate(xs):  # each ranked against its own reference
        validate.require_in_range([checkpoint, *(rs[i:i + 1] if references else [])],
                                  params.distance)
    dist = params.distance
    queries = [np.ascontiguousarray(normalized(x) if dist.normalize else x) for x, _ in xs]
    if refs is not None:
        ready = {id(r): np.ascontiguousarray(normalized(r) if dist.normalize else r) for r in refs}
        refs = [ready[id(r)] for r in refs]
    available = int(ref_codes.size) - (refs is None)
    k, warnings = _resolve_k(settings.k, r_count, available)
    warnings += (ignored_flags(params, refs is not None) + validate.unlabelled_note(y, yname)
                 + inputs.unread_columns([*checkpoints, labels, *references, reference_labels],
                                         column, label_column))
    if refs is not None:
        warnings += validate.unlabelled_note(ry, ryname)
    for x, r, q, ref in zip(checkpoints, paired, queries, refs or [], strict=False):
        itself = ("is the --embeddings input" if same_input(x, r) else
                  "holds the --embeddings rows (a copy)" if validate.same_rows(q, ref) else "")
        if itself:
            warnings.append(f"--reference {itself}: every query finds its own row first, at "
                            "distance 0; leave out --reference (and --reference-labels) to rank "
                            "each query against the others")
            break
    return EvaluateJob(params, {"embeddings": names[0], "labels": yname}, warnings,
                       queries=queries, references=refs, codes=codes, ref_codes=ref_codes,
                       classes=classes, r=r_count.astype(np.int64), settings=settings, k=k,
                       gates=gates, drops=drops, checkpoint_names=names, loaded=loaded,
                       columns=picked, plot=plot, block_rows=block_rows)


def _require_classes(classes: np.ndarray, ref_codes: np.ndarray, r: np.ndarray, ryname: str,
                     yname: str) -> None:
    """Labels under which retrieval means something: two classes, and some query with another
    row of its class to find."""
    present = np.unique(ref_codes)
    if present.size == 1:
        only = classes[present[:1]].tolist()[0]
        raise InputError(f"every reference row has label {only!r}: with one class every "
                         "neighbour is relevant", ryname)
    if not (r > 0).any():
        raise InputError("no query has another row of its class in the reference (every class "
                         "is a single row), so no query can be scored", yname)


def _resolve_k(k: str | int, r: np.ndarray, available: int) -> tuple[int, list[str]]:
    if k == "max-bin-count":
        return int(r.max()), []
    if k == "all":
        return available, []
    if int(k) > available:
        return available, [f"--k {k}: the reference offers {available} neighbours per query; "
                           f"using k = {available}"]
    return int(k), []


def evaluate(embeddings: ArrayLike | Sequence[ArrayLike], labels: ArrayLike | None = None, *,
             threads: int | None = None, **options: object) -> EvaluateResult:
    """Retrieval metrics of labelled embeddings (arrays or paths; a list for several
    checkpoints of the same rows), SPEC section 8.

    Arguments as prepare_evaluate's (reference, reference_labels, preset, column, label_column,
    plot, block_rows), and `threads`. The settings are the CLI's flags in snake case: k, at,
    average, target, self_match, map_divisor, recall, distance, p, eps, eps_placement, normalize,
    batch_hard_loss, margin;
    `fail_below` (gates such as "map_at_r=0.5") puts each gate's outcome in summary["gates"],
    `fail_drop` (such as "precision_at_1=0.01": the most a later checkpoint may fall below the
    first) in summary["drops"] (the CLI exits 3 when one fails).
    """
    rows, summary = run_here(lambda: prepare_evaluate(embeddings, labels, **options), threads)
    return EvaluateResult(rows, summary)
