"""What each CLI command does once its flags are parsed: run the library, stream rows, report.

Kept apart from cli.py so the Typer layer stays declarative and `--help` stays light.
"""

from __future__ import annotations

import io
import math
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import Any

import numpy as np

from .errors import UsageError
from .params import check_threads
from .report import Hardest, progress, render, to_json, warn
from .writers import STDOUT, check_output, open_rows, settings_metadata

FAIL_EXIT = 3
COMPUTE_KEYS = ("count", "mean", "sum", "mean_nonzero", "active_fraction", "accuracy")
ROW_FORMATS = ("jsonl", "csv")


def _row_schema(with_triplets: bool) -> dict[str, np.dtype]:
    ints = ("index", "anchor", "positive", "negative") if with_triplets else ("index",)
    return {**{c: np.dtype(np.int64) for c in ints},
            **{c: np.dtype(np.float64) for c in ("d_ap", "d_an", "loss")}}


def exceeds(fail_above: float | None, summary: dict[str, Any], loss_max: float,
            has_nan: bool) -> bool:
    """--fail-above: the headline loss (or, with reduction none, any loss) is above the limit."""
    if fail_above is None:
        return False
    value = summary["loss"] if summary["loss"] is not None else loss_max
    return has_nan or value is None or not value <= fail_above


def stream_rows(
    blocks: Iterable[Any],
    *,
    schema: dict[str, np.dtype],
    npy_columns: Sequence[str],
    output: str | None,
    fmt: str,
    stats: Any,
    hardest: Hardest,
    total: int,
    quiet: bool,
    what: str,
    metadata: dict[str, str] | None = None,
) -> None:
    """Send each block's rows to --output and/or stdout while summarising them; `metadata`
    (the settings, see writers.settings_metadata) goes into a .parquet output's schema."""
    with ExitStack() as stack:
        writers = []
        if output:
            writers.append(stack.enter_context(open_rows(output, schema, npy_columns,
                                                         metadata=metadata)))
        if fmt in ROW_FORMATS:
            sys.stdout.flush()
            writers.append(stack.enter_context(open_rows(STDOUT, schema, npy_columns, fmt=fmt,
                                                         stdout=sys.stdout.buffer)))
        advance = stack.enter_context(progress(total, what, enabled=not quiet))
        for block in blocks:
            columns = block.columns()
            for writer in writers:
                writer.write(columns)
            stats.add(block.start, block.d_ap, block.d_an, block.loss, block.correct)
            hardest.add(columns)
            advance(block.progress)


def finish(summary: dict[str, Any], *, title: str, keys: Sequence[str], hardest: Hardest,
           stats: Any, fmt: str, fail_above: float | None, quiet: bool) -> int:
    """Print warnings and the report; the exit code (3 when --fail-above is exceeded)."""
    warn(summary["warnings"], quiet)
    if fmt == "table":
        render(sys.stdout, title, summary, keys, hardest.rows, stats.sample)
    elif fmt == "json":
        print(to_json(summary))
    sys.stdout.flush()
    failed = exceeds(fail_above, summary, stats.loss_max, stats.nan_count > 0)
    return FAIL_EXIT if failed else 0


def _check_run_flags(output: str | None, fail_above: float | None, threads: int | None) -> None:
    """Flags every command checks before it reads anything."""
    if output == STDOUT:
        raise UsageError("--output - is not needed: use --format jsonl or csv for rows on stdout")
    if fail_above is not None and math.isnan(fail_above):
        raise UsageError("--fail-above must be a number (got nan)")
    check_threads(threads)


def _use_threads(job: Any, threads: int | None, scheduler: str | None,
                 workers: int | None) -> None:
    """Kernel threads here (capped at this machine's, said once among the warnings); on a
    cluster --threads means threads per worker and each worker caps it itself."""
    from ._jit import set_threads

    note = set_threads(None if scheduler or workers else threads)
    if note:
        job.warnings.append(note)


def run_compute(*, inputs: dict[str, str | None], column: str | None, preset: str | None,
                options: dict[str, Any], output: str | None, fmt: str, top: int,
                fail_above: float | None, threads: int | None, quiet: bool,
                verbose: bool, scheduler: str | None = None, workers: int | None = None) -> int:
    from ._jit import threads_in_use
    from .api import prepare_compute, summarize
    from .reductions import TripletStats

    _check_run_flags(output, fail_above, threads)
    started = time.perf_counter()
    _check_cluster(scheduler, workers)  # distributed (issue #5)
    if output:
        check_output(output, [p for p in inputs.values() if p])
    job = prepare_compute(**inputs, preset=preset, column=column, **options)
    _use_threads(job, threads, scheduler, workers)
    stats = TripletStats(margin=job.loss_params.margin)
    hardest = Hardest(top if fmt == "table" else 0)
    loaded = time.perf_counter()
    stream_rows(_blocks(job, "compute", scheduler, workers, threads, verbose),
                schema=_row_schema(job.triplets is not None),
                npy_columns=("d_ap", "d_an", "loss"), output=output, fmt=fmt, stats=stats,
                hardest=hardest, total=job.count, quiet=quiet, what="triplets",
                metadata=settings_metadata("compute", job.settings.values, None
                                           if job.triplets is None else
                                           job.arrays["embeddings"].shape))
    summary = summarize(job.settings, stats, job.inputs(), job.warnings)
    if verbose:
        done = time.perf_counter()
        print(f"{__package__}: read {loaded - started:.3f} s, kernels and output "
              f"{done - loaded:.3f} s, {threads_in_use()} threads", file=sys.stderr)
    return finish(summary, title="triplet-loss compute", keys=COMPUTE_KEYS, hardest=hardest,
                  stats=stats, fmt=fmt, fail_above=fail_above, quiet=quiet)


MINE_KEYS = ("anchors", "anchors_without_positive", "anchors_without_negative", "triplets",
             "mean", "mean_nonzero", "active_fraction", "accuracy")
MINE_SCHEMA = {**{c: np.dtype(np.int64) for c in ("anchor", "positive", "negative")},
               **{c: np.dtype(np.float64) for c in ("d_ap", "d_an", "loss")}}


def run_mine(*, embeddings: str, labels: str | None, column: str | None,
             label_column: str | None, preset: str | None, options: dict[str, Any],
             output: str | None, fmt: str, top: int, fail_above: float | None,
             threads: int | None, quiet: bool, verbose: bool, scheduler: str | None = None,
             workers: int | None = None) -> int:
    from ._jit import threads_in_use
    from .mining_api import mine_summary, prepare_mine
    from .reductions import TripletStats

    _check_run_flags(output, fail_above, threads)
    started = time.perf_counter()
    _check_cluster(scheduler, workers)  # distributed (issue #5)
    if output:
        check_output(output, [p for p in (embeddings, labels) if p])
    job = prepare_mine(embeddings, labels, preset=preset, column=column,
                       label_column=label_column, **options)
    _use_threads(job, threads, scheduler, workers)
    stats = TripletStats(margin=job.loss_params.margin)
    hardest = Hardest(top if fmt == "table" else 0)
    loaded = time.perf_counter()
    stream_rows(_blocks(job, "mine", scheduler, workers, threads, verbose), schema=MINE_SCHEMA,
                npy_columns=("anchor", "positive", "negative"),
                output=output, fmt=fmt, stats=stats, hardest=hardest, total=job.x.shape[0],
                quiet=quiet, what="anchors",
                metadata=settings_metadata("mine", job.settings.values, job.x.shape))
    summary = mine_summary(job, stats)
    if verbose:
        print(f"{__package__}: read {loaded - started:.3f} s, mining and output "
              f"{time.perf_counter() - loaded:.3f} s, {threads_in_use()} threads",
              file=sys.stderr)
    return finish(summary, title="triplet-loss mine", keys=MINE_KEYS, hardest=hardest,
                  stats=stats, fmt=fmt, fail_above=fail_above, quiet=quiet)


# -- distributed (issue #5) --------------------------------------------------------------------
def _check_cluster(scheduler: str | None, workers: int | None) -> None:
    """--scheduler/--workers make sense and dask is installed: before any data is read."""
    if scheduler is not None or workers is not None:
        from .distributed import check_flags

        check_flags(scheduler, workers)


def _blocks(job: Any, command: str, scheduler: str | None, workers: int | None,
            threads: int | None, verbose: bool) -> Iterable[Any]:
    """The job's blocks, computed here or (--scheduler) on Dask workers: same blocks, same order."""
    if scheduler is None and workers is None:
        return job.blocks()
    from .distributed import cluster_blocks  # imports dask only when it connects

    return cluster_blocks(command, job, scheduler, workers, threads=threads, verbose=verbose)
# -- end distributed ----------------------------------------------------------------------------


def print_presets(fmt: str) -> None:
    """The presets, one block each (what it follows, its compute and mine settings, wrapped
    between settings), in the terminal's width (80 columns when piped): nothing is cut."""
    from .presets import PRESETS

    if fmt == "json":
        print(to_json({n: {"follows": p.follows, "compute": p.compute, "mine": p.mine}
                       for n, p in PRESETS.items()}))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .report import output_width

    tty = sys.stdout.isatty()
    buffer = io.StringIO()
    console = Console(file=buffer, highlight=False, force_terminal=tty,
                      width=output_width(sys.stdout))
    console.print(Text("presets (explicit flags override them)", style="italic"))
    for name, p in PRESETS.items():
        console.print(Text(name, style="bold"))
        grid = Table.grid(padding=(0, 2), pad_edge=True)
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        grid.add_row("follows", Text(p.follows))
        for command, values in (("compute", p.compute), ("mine", p.mine)):
            grid.add_row(command, Text("-" if values is None else ", ".join(
                f"{k}={v}" for k, v in values.items())))
        console.print(grid)
    sys.stdout.write("\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n")
