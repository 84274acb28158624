"""One routine for every command: a job's blocks to the writers, progress, statistics, the
report and the exit code. It knows the seam (jobs.py), not what a job computes.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial

from .errors import PROG, UsageError, one_line
from .jobs import Block, Job, use_threads
from .params import check_count
from .report import progress, to_json, warn
from .writers import STDOUT, UntilReaderLeaves, check_output, open_rows, silence_stdout

FAIL_EXIT = 3
ROW_FORMATS = ("jsonl", "csv")


@dataclass(frozen=True)
class Run:
    """Where a command's results go and how it runs: the flags every command shares."""

    output: str | None = None
    fmt: str = "table"
    top: int = 10
    fail_above: float | None = None
    threads: int | None = None
    quiet: bool = False
    verbose: bool = False
    scheduler: str | None = None
    workers: int | None = None

    @property
    def on_cluster(self) -> bool:
        return self.scheduler is not None or self.workers is not None

    def check(self, inputs: Sequence[str]) -> None:
        """Flags every command checks before it reads anything."""
        if self.output == STDOUT:
            raise UsageError("--output - is not needed: use --format jsonl or csv for rows on "
                             "stdout")
        if self.fail_above is not None and math.isnan(self.fail_above):
            raise UsageError("--fail-above must be a number (got nan)")
        check_count("--threads", self.threads)
        if self.on_cluster:
            from .distributed import check_flags

            check_flags(self.scheduler, self.workers)
        if self.output:
            check_output(self.output, inputs)


def run(prepare: Callable[[], Job], inputs: Sequence[str], how: Run,
        committing: Callable[[], None] = lambda: None) -> int:
    """Prepare the job, stream its blocks to --output and stdout, report; the exit code.
    `committing` is called once every row is written and summarised, before --output
    replaces its file."""
    how.check(inputs)
    started = time.perf_counter()
    job = prepare()
    # On a cluster --threads means threads per worker, and each worker caps it itself.
    use_threads(job, None if how.on_cluster else how.threads)
    tally = job.tally(how.top if how.fmt == "table" else 0)
    loaded = time.perf_counter()
    rows = partial(open_rows, columns=job.schema(), npy_columns=job.npy_columns)
    with ExitStack() as stack:
        writers = ([stack.enter_context(rows(how.output, metadata=job.metadata()))]
                   if how.output else [])
        if how.fmt in ROW_FORMATS:
            sys.stdout.flush()
            # The run goes on after `| head` when a file or the exit code needs every row.
            keep_going = how.output or job.gated(how.fail_above)
            stdout = UntilReaderLeaves(sys.stdout.buffer) if keep_going else sys.stdout.buffer
            writers.append(stack.enter_context(rows(STDOUT, fmt=how.fmt, stdout=stdout)))
        advance = stack.enter_context(progress(job.progress_total, job.progress_what,
                                               enabled=not how.quiet))
        for block in _blocks(job, how):
            for writer in writers:
                writer.write(block.columns)
            tally.add(block)
            advance(block.progress)
        summary = job.summary(tally)  # (before the commit: it can still fail or be stopped)
        committing()
    if how.verbose:
        from ._jit import threads_in_use

        print(f"{PROG}: read {loaded - started:.3f} s, kernels and output "
              f"{time.perf_counter() - loaded:.3f} s, {threads_in_use()} threads", file=sys.stderr)
    warn(summary["warnings"], how.quiet)
    failure = job.failure(summary, tally, how.fail_above)  # (recorded in the JSON's gates)
    try:
        if how.fmt == "table":
            job.render(sys.stdout, summary, tally)
        elif how.fmt == "json":
            print(to_json(summary))
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left (`| true`): the gate's exit code still holds
        silence_stdout()
    if failure:  # said even with --quiet: a CI log should say which gate an exit 3 is
        print(one_line(f"{PROG}: gate failed: {failure}"), file=sys.stderr)
    return FAIL_EXIT if failure else 0


def _blocks(job: Job, how: Run) -> Iterator[Block]:
    """The job's blocks, run here or (--scheduler) on Dask workers: same blocks, same order."""
    if not how.on_cluster:
        yield from job.blocks()
        return
    from .distributed import connect, local_workers  # imports dask only when it connects

    workers, note = local_workers(how.workers)
    job.warnings += [note] if note else []
    with connect(how.scheduler, workers, quiet=not how.verbose) as cluster:
        yield from cluster.blocks(job, threads=how.threads, verbose=how.verbose)
