"""The unit-of-work seam: a job lists picklable units and runs one unit into a block of rows.

compute_loss, mine_triplets, the console and the Dask executor all drive a job through this
seam and nothing else; none of them knows what the job computes. A new command is a new job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

import numpy as np

from .distances import Rooms
from .params import Params, check_count
from .reductions import NUMPY_ROWS, TripletStats
from .report import Hardest, render


def record_gate(summary: dict[str, object], metric: str, at_most: float, value: object,
                why: str | None) -> None:
    """A --fail-above gate's outcome in the summary's gates (as evaluate records its own)."""
    summary["gates"] = [{"metric": metric, "at_most": at_most, "value": value,
                         "passed": why is None}]


@dataclass
class Block:
    """The output rows of one unit (columns in output order) and what statistics need."""

    columns: dict[str, np.ndarray]
    progress: int  # how much of the job's progress total this block covers
    correct: np.ndarray | None = None  # per-row accuracy when not d_ap < d_an (k candidates)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))  # (every column has a row per row)


@dataclass
class Tally:
    """What a run keeps of the blocks it has seen: running statistics, the hardest rows."""

    stats: TripletStats
    hardest: Hardest

    def add(self, block: Block) -> None:
        """A block's rows (blocks arrive in output order)."""
        c = block.columns
        self.stats.add(c["d_ap"], c["d_an"], c["loss"], block.correct)
        self.hardest.add(c)


@dataclass
class Job:
    """What every command's job provides; subclasses fill in units() and run()."""

    params: Params
    names: dict[str, str]  # role -> the file (or role, for an array) it came from
    warnings: list[str] = field(default_factory=list)
    loaded: dict[str, Any] = field(default_factory=dict)  # role -> the input as read
    columns: dict[str, str] = field(default_factory=dict)  # role -> the table column read
    rooms: Rooms = field(default_factory=Rooms, repr=False, compare=False)  # for its products

    title: ClassVar[str] = "triplet-loss"
    keys: ClassVar[tuple[str, ...]] = ()  # summary keys the table report shows
    progress_what: ClassVar[str] = "rows"
    npy_columns: ClassVar[tuple[str, ...]] = ()  # what an .npy output holds
    numpy_rows: ClassVar[int] = NUMPY_ROWS  # runs this short: a summary with nothing to compile

    def units(self) -> Iterator[Any]:
        """Picklable units of work, in output order."""
        raise NotImplementedError

    def run(self, unit: Any) -> Block:
        """One unit's rows: pure computation on the job's inputs (a Dask task runs one)."""
        raise NotImplementedError

    def keep_rows(self) -> dict[str, np.ndarray] | None:
        """Whole output columns the following blocks fill as views (one allocation), or None."""
        return None

    def shared(self) -> dict[str, np.ndarray]:
        """The large inputs every unit reads: an executor ships them once, not per unit."""
        return {}

    def without_shared(self) -> Job:
        """This job without shared(), to travel to workers; with_shared() puts them back."""
        return self

    def with_shared(self, arrays: dict[str, np.ndarray]) -> Job:
        return self

    @property
    def progress_total(self) -> int:
        raise NotImplementedError

    def schema(self) -> dict[str, np.dtype]:
        """The output columns and their dtypes."""
        raise NotImplementedError

    def inputs(self) -> dict[str, dict[str, object]]:
        """JSON `inputs`, by role, so one file in two roles keeps both (path None: an array),
        with the column read from a table (the one chosen when none was named)."""
        return {k: {"path": None if self.names[k] == k else self.names[k],
                    "shape": list(a.shape), "dtype": str(a.dtype),
                    **({"column": self.columns[k]} if k in self.columns else {})}
                for k, a in self.loaded.items()}

    def metadata(self) -> dict[str, str] | None:
        """Schema metadata of a .parquet output (how its rows were made)."""
        return None

    def tally(self, top: int = 0) -> Tally:
        """What a run keeps of the blocks it has seen (the `top` hardest rows for the table)."""
        loss = self.params.loss
        return Tally(TripletStats(loss.margin, loss.soft_margin, numpy_rows=self.numpy_rows),
                     Hardest(top))

    def summary(self, tally: Tally) -> dict[str, object]:
        """The JSON summary: statistics, params with their sources, inputs and warnings."""
        return {**tally.stats.summary(self.params.reduction),
                "params": {**self.params.values, "sources": self.params.sources},
                "inputs": self.inputs(),
                "warnings": self.warnings + tally.stats.warnings()}

    def render(self, out: IO[str], summary: dict[str, object], tally: Tally) -> None:
        """The table report."""
        render(out, self.title, summary, self.keys, tally.hardest.rows, tally.stats.sample)

    def gated(self, gate: float | None) -> bool:
        """Whether the exit code depends on every row (a --fail-above or --fail-below gate)."""
        return gate is not None

    def failure(self, summary: dict[str, object], tally: Tally, gate: float | None
                ) -> str | None:
        """--fail-above: why the run fails it (the headline loss, with reduction none any
        triplet's loss, above the gate, or a NaN loss), or None; its outcome goes into the
        summary's gates."""
        if gate is None:
            return None
        stats, headline = tally.stats, summary["loss"] is not None
        value = summary["loss"] if headline else stats.loss_max if stats.count else None
        what = "the loss" if headline else "the largest triplet loss"
        why = ("no triplet to score" if not stats.count  # a gate is not passed by nothing
               else f"{stats.nan_count} triplets have a NaN loss" if stats.nan_count
               else None if value <= gate else f"{what} is {value!r}")  # type: ignore[operator]
        record_gate(summary, "loss" if headline else "max_loss", gate,
                    None if stats.nan_count else value, why)
        return f"--fail-above {gate!r}: {why}" if why else None

    def blocks(self) -> Iterator[Block]:
        """Every unit run here, in order (a unit is let go before the next is made)."""
        for unit in self.units():
            block = self.run(unit)
            del unit
            yield block


Results = tuple[dict[str, np.ndarray], dict[str, object]]


def run_here(prepare: Callable[[], Job], threads: int | None) -> Results:
    """The library's run: prepare a job, run its units here with `threads` kernel threads."""
    check_count("--threads", threads)
    job = prepare()
    use_threads(job, threads)
    return collect(job, job.blocks())


def collect(job: Job, blocks: Iterator[Block]) -> Results:
    """All rows of a job's blocks as whole columns, and its summary: the library's results."""
    tally = job.tally()
    whole = job.keep_rows() or {}
    parts: list[Block] = []
    for block in blocks:
        tally.add(block)
        parts.append(block)
    columns = {}
    for c, dtype in job.schema().items():
        if parts and c not in parts[0].columns:  # left out by a job that keeps rows
            continue
        pieces = [b.columns[c] for b in parts]
        if c in whole and all(np.may_share_memory(p, whole[c]) for p in pieces):  # in place
            columns[c] = whole[c]
        elif len(pieces) == 1 and pieces[0].flags.owndata:  # one block's own array: no copy
            columns[c] = pieces[0]
        else:
            columns[c] = np.concatenate(pieces) if pieces else np.empty(0, dtype)
    return columns, job.summary(tally)


def use_threads(job: Job, threads: int | None) -> None:
    """Kernel threads for a run here, capped at the machine's (said once, in the warnings)."""
    from ._jit import set_threads

    note = set_threads(threads)
    if note:
        job.warnings.append(note)
