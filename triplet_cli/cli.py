"""The Typer app: parse flags, call the library, print, map errors to exit codes. Nothing else.

Heavy modules (numba, pyarrow, the kernels) are imported inside the commands, so that
`triplet-loss --help` stays fast.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_exceptions
from typer.core import TyperGroup

from . import __version__
from .errors import TripletLossError
from .params import (
    Distance,
    EpsPlacement,
    Fallback,
    Format,
    MarginFilter,
    PairReduction,
    PositiveStrategy,
    Reduction,
    SemiHardThreshold,
    Strategy,
    help_text,
)

PROG = "triplet-loss"


class _OneLineErrors(TyperGroup):
    """Usage errors as one line on stderr (exit 2), and a closed stdout pipe ends quietly."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exceptions.NoArgsIsHelpError as e:
            e.show()
            rv = e.exit_code
        except click_exceptions.ClickException as e:
            print(f"{PROG}: error: {e.format_message()}", file=sys.stderr)
            rv = e.exit_code
        except typer.Abort:
            print(f"{PROG}: interrupted", file=sys.stderr)
            rv = 130
        except BrokenPipeError:
            _silence_stdout()
            rv = 0
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)

    def parse_args(self, ctx: Any, args: list[str]) -> Any:
        _coerce_directly(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            _coerce_directly(command.get_params(ctx))  # (its --help option is made once)
        return name, command, rest


# -- start-up: Typer's coercion without pydantic ---------------------------------------------
# Typer 0.29 coerces every option, given or not, through a pydantic TypeAdapter it builds on
# each run: importing pydantic and building 26 adapters took 0.06-0.1 s of a 0.6 s `compute`.
# Values of the types our options use (str, int, float, str-Enum) are coerced here as Typer
# would; anything else, and every error, still goes through Typer's own adapter, so behaviour and
# messages stay Typer's (tests/test_first_contact_terminal.py compares the two). This uses
# Typer's private RuntimeParam: with a Typer without it, its own coercion runs unchanged.
try:
    from typer._coercion import RuntimeParam as _RuntimeParam
    from typer._coercion import build_runtime_param as _typer_runtime_param
except ImportError:  # pragma: no cover - another Typer
    _RuntimeParam = None

_NUMBER = {int: re.compile(r"[+-]?(0|[1-9][0-9]*)"),
           float: re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")}
_TYPER = object()  # "let Typer coerce this value"


def _direct_value(kind: Any, info: Any, value: Any, ctx: Any) -> Any:
    if kind is str and isinstance(value, str):
        return value
    if kind in _NUMBER and not info.clamp:
        if isinstance(value, str) and _NUMBER[kind].fullmatch(value):
            number = kind(value)
        elif type(value) is kind:
            number = value
        else:
            return _TYPER
        inside = ((info.min is None or number >= info.min)
                  and (info.max is None or number <= info.max))
        return number if inside else _TYPER
    if isinstance(kind, type) and issubclass(kind, Enum) and info.case_sensitive \
            and getattr(ctx, "token_normalize_func", None) is None:
        if isinstance(value, kind):
            return value
        if isinstance(value, str):
            return next((c for c in kind if c.value == value), _TYPER)
    return _TYPER


if _RuntimeParam is not None:
    @dataclass(frozen=True)
    class _DirectParam(_RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            direct = _direct_value(self.annotation, self.parameter_info, value, ctx)
            if direct is not _TYPER:
                return direct
            typer_own = _typer_runtime_param(param.type_descriptor)
            return typer_own._coerce_value(value, param=param, ctx=ctx)


def _coerce_directly(params: list[Any]) -> None:
    if _RuntimeParam is None:
        return
    for param in params:
        if getattr(param, "_runtime_param", False) is None and hasattr(param, "type_descriptor"):
            param._runtime_param = _direct_param(param)


def _direct_param(param: Any) -> Any:
    """The runtime coercion of one of our options (Typer's own for file arguments)."""
    descriptor = param.type_descriptor
    if descriptor.file_annotation is not None:
        return _typer_runtime_param(descriptor)
    return _DirectParam(parameter_info=descriptor.parameter_info,
                        annotation=descriptor.annotation)
# -- end start-up ---------------------------------------------------------------------------------


def _silence_stdout() -> None:
    """After the reader of our stdout went away (`| head`), drop what is left to flush."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


app = typer.Typer(
    cls=_OneLineErrors,
    name=PROG,
    help="Triplet losses and triplet mining over embedding files (.npy, .npz, .parquet, .arrow).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        print(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Triplet losses and triplet mining over embedding files."""


@contextmanager
def _errors_to_exit(quiet: bool = False) -> Iterator[None]:
    """Library errors become one `triplet-loss: error:` line and their exit code."""
    try:
        yield
    except TripletLossError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no output written", file=sys.stderr)
        raise typer.Exit(130) from None
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        raise typer.Exit(1) from None
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(0) from None
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"{PROG}: error: {where}{e.strerror or e}", file=sys.stderr)
        raise typer.Exit(1) from None


# Options shared by compute and mine: defined once. None means "not given" so presets can fill in.
_DIST = "Distance"
_LOSS = "Loss"
_OUT = "Output"
_MINE = "Mining"
PresetOpt = Annotated[str | None, typer.Option(
    "--preset", help="Reproduce a framework: torch, mlx, mlx-legacy, tf-similarity, tf-addons, "
    "pytorch-metric-learning, sentence-transformers (see `triplet-loss presets`).",
    show_default=False)]
DistanceOpt = Annotated[Distance | None, typer.Option(
    "--distance", help=help_text("distance"), rich_help_panel=_DIST,
    show_default=False)]
POpt = Annotated[float | None, typer.Option(
    "--p", help=help_text("p"),
    rich_help_panel=_DIST, show_default=False)]
EpsOpt = Annotated[float | None, typer.Option(
    "--eps", help=help_text("eps"), rich_help_panel=_DIST, show_default=False)]
EpsPlacementOpt = Annotated[EpsPlacement | None, typer.Option(
    "--eps-placement", help=help_text("eps_placement"), rich_help_panel=_DIST,
    show_default=False)]
NormalizeOpt = Annotated[bool | None, typer.Option(
    "--normalize/--no-normalize", help=help_text("normalize"),
    rich_help_panel=_DIST, show_default=False)]
MarginOpt = Annotated[float | None, typer.Option(
    "--margin", help=help_text("margin"),
    rich_help_panel=_LOSS, show_default=False)]
SoftOpt = Annotated[bool | None, typer.Option(
    "--soft-margin/--hard-margin", help=help_text("soft_margin"), rich_help_panel=_LOSS,
    show_default=False)]
ReductionOpt = Annotated[Reduction | None, typer.Option(
    "--reduction", help=help_text("reduction"),
    rich_help_panel=_LOSS, show_default=False)]
OutputOpt = Annotated[str | None, typer.Option(
    "--output", "-o", help="Write per-triplet rows to .parquet, .csv, .jsonl or .npy "
    "(atomically).", rich_help_panel=_OUT, show_default=False)]
FormatOpt = Annotated[Format, typer.Option(
    "--format", "-f", help="stdout: table or json (the report), jsonl or csv (per-triplet rows).",
    rich_help_panel=_OUT)]
TopOpt = Annotated[int, typer.Option("--top", min=0, help="Hardest triplets in the table.",
                                     rich_help_panel=_OUT)]
FailOpt = Annotated[float | None, typer.Option(
    "--fail-above", help="Exit 3 when the headline loss (with --reduction none: any triplet's "
    "loss) is above this.", rich_help_panel=_OUT, show_default=False)]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", min=1, help="Kernel threads (results do not depend on it). (default: all cores)",
    show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No warnings or progress.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Timings on stderr.")]
ColumnOpt = Annotated[str | None, typer.Option(
    "--column", help="Embedding column of .parquet/.arrow inputs (auto when there is one).",
    show_default=False)]

_DASK = "Distributed"
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", help="Run the blocks on a Dask cluster: its scheduler (tcp://host:8786), or "
    "local to start one here. Same rows, same order, same bytes; --threads then means numba "
    "threads per worker (default: the worker's share of its host's cores). Needs "
    "pip install 'triplet-loss\\[dask]'.", rich_help_panel=_DASK, show_default=False)]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", min=1, help="Worker processes of --scheduler local, 1 thread each. "
    "(default: one per core)", rich_help_panel=_DASK, show_default=False)]


@app.command()
def compute(
    anchors: Annotated[str | None, typer.Option(
        "--anchors", help="Anchors (n, d), or one anchor (d,).", show_default=False)] = None,
    positives: Annotated[str | None, typer.Option(
        "--positives", help="Positives (n, d) or k per anchor (n, k, d).",
        show_default=False)] = None,
    negatives: Annotated[str | None, typer.Option(
        "--negatives", help="Negatives (n, d) or k per anchor (n, k, d).",
        show_default=False)] = None,
    embeddings: Annotated[str | None, typer.Option(
        "--embeddings", help="Embedding matrix (m, d) that --triplets indexes.",
        show_default=False)] = None,
    triplets: Annotated[str | None, typer.Option(
        "--triplets", help="Index triples: columns anchor, positive, negative (e.g. from mine).",
        show_default=False)] = None,
    column: ColumnOpt = None,
    preset: PresetOpt = None,
    distance: DistanceOpt = None,
    p: POpt = None,
    eps: EpsOpt = None,
    eps_placement: EpsPlacementOpt = None,
    normalize: NormalizeOpt = None,
    margin: MarginOpt = None,
    soft_margin: SoftOpt = None,
    swap: Annotated[bool | None, typer.Option(
        "--swap/--no-swap", help=help_text("swap"),
        rich_help_panel=_LOSS, show_default=False)] = None,
    reduction: ReductionOpt = None,
    pair_reduction: Annotated[PairReduction | None, typer.Option(
        "--pair-reduction", help=help_text("pair_reduction"), rich_help_panel=_LOSS,
        show_default=False)] = None,
    output: OutputOpt = None,
    format: FormatOpt = Format.table,
    top: TopOpt = 10,
    fail_above: FailOpt = None,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Per-triplet losses for aligned anchors / positives / negatives, or indexed triplets."""
    from .compute import prepare_compute
    from .console import Run, run

    inputs = dict(anchors=anchors, positives=positives, negatives=negatives,
                  embeddings=embeddings, triplets=triplets)
    options = dict(distance=distance, p=p, eps=eps, eps_placement=eps_placement,
                   normalize=normalize, margin=margin, soft_margin=soft_margin, swap=swap,
                   reduction=reduction, pair_reduction=pair_reduction)
    with _errors_to_exit():
        code = run(lambda: prepare_compute(**inputs, preset=preset, column=column, **options),
                   [p for p in inputs.values() if p],
                   Run(output, format.value, top, fail_above, threads, quiet, verbose,
                       scheduler, workers))
    raise typer.Exit(code)


@app.command()
def mine(
    embeddings: Annotated[str, typer.Option(
        "--embeddings", help="Embedding matrix (m, d): .npy, .npz, .parquet, .arrow.",
        show_default=False)],
    labels: Annotated[str | None, typer.Option(
        "--labels", help="Labels (m,), integers or strings: .npy, .parquet, .arrow, .csv. "
        "(default: the label column of --embeddings)", show_default=False)] = None,
    column: ColumnOpt = None,
    label_column: Annotated[str | None, typer.Option(
        "--label-column", help="Label column of a .parquet/.arrow/.csv file. (default: 'label', "
        "or the only integer/string column)", show_default=False)] = None,
    preset: PresetOpt = None,
    strategy: Annotated[Strategy | None, typer.Option(
        "--strategy", help=help_text("strategy"), rich_help_panel=_MINE,
        show_default=False)] = None,
    positive_strategy: Annotated[PositiveStrategy | None, typer.Option(
        "--positive-strategy", help=help_text("positive_strategy"), rich_help_panel=_MINE,
        show_default=False)] = None,
    semi_hard_fallback: Annotated[Fallback | None, typer.Option(
        "--semi-hard-fallback", help=help_text("semi_hard_fallback"), rich_help_panel=_MINE,
        show_default=False)] = None,
    semi_hard_threshold: Annotated[SemiHardThreshold | None, typer.Option(
        "--semi-hard-threshold", help=help_text("semi_hard_threshold"),
        rich_help_panel=_MINE, show_default=False)] = None,
    margin_filter: Annotated[MarginFilter | None, typer.Option(
        "--margin-filter", help=help_text("margin_filter"), rich_help_panel=_MINE,
        show_default=False)] = None,
    per_anchor: Annotated[int | None, typer.Option(
        "--per-anchor", help=help_text("per_anchor"), rich_help_panel=_MINE,
        show_default=False)] = None,
    active_only: Annotated[bool | None, typer.Option(
        "--active-only/--all-triplets", help=help_text("active_only"),
        rich_help_panel=_MINE, show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", help=help_text("batch_size"), rich_help_panel=_MINE,
        show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help=help_text("seed"), rich_help_panel=_MINE,
        show_default=False)] = None,
    distance: DistanceOpt = None,
    p: POpt = None,
    eps: EpsOpt = None,
    eps_placement: EpsPlacementOpt = None,
    normalize: NormalizeOpt = None,
    margin: MarginOpt = None,
    soft_margin: SoftOpt = None,
    reduction: ReductionOpt = None,
    output: OutputOpt = None,
    format: FormatOpt = Format.table,
    top: TopOpt = 10,
    fail_above: FailOpt = None,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Mine triplets from labelled embeddings in blocks (memory never grows as m x m).

    Rows anchor, positive, negative, d_ap, d_an, loss go to --output (.parquet, .csv, .jsonl;
    .npy holds the (t, 3) int64 indices) or to stdout with --format jsonl/csv.
    """
    from .console import Run, run
    from .mine import prepare_mine

    options = dict(
        strategy=strategy, positive_strategy=positive_strategy,
        semi_hard_fallback=semi_hard_fallback, semi_hard_threshold=semi_hard_threshold,
        margin_filter=margin_filter, per_anchor=per_anchor, active_only=active_only,
        batch_size=batch_size, seed=seed, distance=distance, p=p, eps=eps,
        eps_placement=eps_placement, normalize=normalize, margin=margin, soft_margin=soft_margin,
        reduction=reduction)
    with _errors_to_exit():
        code = run(lambda: prepare_mine(embeddings, labels, preset=preset, column=column,
                                        label_column=label_column, **options),
                   [p for p in (embeddings, labels) if p],
                   Run(output, format.value, top, fail_above, threads, quiet, verbose,
                       scheduler, workers))
    raise typer.Exit(code)


@app.command()
def presets(
    format: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table,
) -> None:
    """List the presets and the settings each one implies."""
    from .report import print_presets

    print_presets(format.value)


def main() -> None:
    """Console-script entry point.

    Typer converts every command's options to Click parameters before it reads argv: 7 ms of
    a 0.13 s `--help` for the 60 options of compute and mine. Only the command argv names is
    built, and the top-level help lists the commands from their help text alone.
    """
    from typer.main import get_command_name

    args = sys.argv[1:]
    registered = app.registered_commands
    if args and not args[0].startswith("-"):  # (`--help compute` is the top-level help)
        app.registered_commands = [
            c for c in registered
            if (c.name or get_command_name(c.callback.__name__)) == args[0]] or registered
    elif args in ([], ["--help"]):
        app.registered_commands = [_listed(c) for c in registered]
    try:
        app(prog_name=PROG)
    finally:
        app.registered_commands = registered


def _listed(command: Any) -> Any:
    """A command as the top-level help lists it: its name and help, no options."""
    import inspect

    from typer.main import get_command_name
    from typer.models import CommandInfo

    return CommandInfo(
        name=command.name or get_command_name(command.callback.__name__),
        callback=lambda: None, help=command.help or inspect.getdoc(command.callback),
        short_help=command.short_help, hidden=command.hidden, deprecated=command.deprecated,
        rich_help_panel=command.rich_help_panel)
