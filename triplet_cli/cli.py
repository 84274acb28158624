"""The Typer app: parse flags, call the library, print, map errors to exit codes. Nothing else.

Heavy modules (numba, pyarrow, the kernels) are imported inside the commands, so that
`triplet-loss --help` stays fast.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, NoReturn

import typer
from typer._click import exceptions as click_exceptions
from typer.core import TyperGroup

from . import __version__
from .errors import TripletLossError
from .params import (
    COMMAND_OPTIONS,
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
    flag,
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
    """Triplet losses and triplet mining over embedding files (.npy, .npz, .parquet, .arrow)."""


def _run(prepare: Callable[[], Any], inputs: Iterable[str | None], how: Any) -> NoReturn:
    """Run a command's job through the console routine and exit with its code; library errors
    become one `triplet-loss: error:` line and their exit code."""
    from .console import run

    try:
        code = run(prepare, [path for path in inputs if path], how)
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
    raise typer.Exit(code)


# Options. None means "not given": a setting then comes from a preset or the defaults table
# (params.OPTIONS), which also holds its help text. Typer evaluates the calls in the commands'
# annotations when it builds a command.
def _option(kind: Any, flags: str, help: str, panel: str | None = None, **extra: Any) -> Any:
    """An option of type `kind` (or None), its flags space-separated; --help shows no default."""
    return Annotated[kind | None, typer.Option(*flags.split(), help=help, rich_help_panel=panel,
                                               show_default=False, **extra)]


def _setting(name: str, kind: Any, panel: str, flags: str = "") -> Any:
    """A setting of params.OPTIONS, its help and default from there; spelt --name (a bool:
    --name/--no-name) unless `flags` say otherwise."""
    off = f"/--no-{flag(name)[2:]}" if kind is bool else ""
    return _option(kind, flags or flag(name) + off, help_text(name), panel)


_DIST, _LOSS, _MINE, _OUT, _DASK = "Distance", "Loss", "Mining", "Output", "Distributed"
# Shared by compute and mine: defined once.
DistanceOpt = _setting("distance", Distance, _DIST)
POpt = _setting("p", float, _DIST)
EpsOpt = _setting("eps", float, _DIST)
EpsPlacementOpt = _setting("eps_placement", EpsPlacement, _DIST)
NormalizeOpt = _setting("normalize", bool, _DIST)
MarginOpt = _setting("margin", float, _LOSS)
SoftOpt = _setting("soft_margin", bool, _LOSS, "--soft-margin/--hard-margin")
ReductionOpt = _setting("reduction", Reduction, _LOSS)
PresetOpt = _option(str, "--preset", "Reproduce a framework: torch, mlx, mlx-legacy, "
                    "tf-similarity, tf-addons, pytorch-metric-learning, sentence-transformers "
                    "(see `triplet-loss presets`).")
ColumnOpt = _option(str, "--column", "Embedding column of .parquet/.arrow inputs (auto when there "
                    "is one).")
OutputOpt = _option(str, "--output -o", "Write per-triplet rows to .parquet, .csv, .jsonl or .npy "
                    "(atomically).", _OUT)
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="stdout: table or json (the "
                      "report), jsonl or csv (per-triplet rows).", rich_help_panel=_OUT)]
TopOpt = Annotated[int, typer.Option("--top", min=0, help="Hardest triplets in the table.",
                                     rich_help_panel=_OUT)]
FailOpt = _option(float, "--fail-above", "Exit 3 when the headline loss (with --reduction none: "
                  "any triplet's loss) is above this.", _OUT)
ThreadsOpt = _option(int, "--threads", "Kernel threads (results do not depend on it). (default: "
                     "all cores)", min=1)
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No warnings or progress.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Timings on stderr.")]
SchedulerOpt = _option(str, "--scheduler", "Run the blocks on a Dask cluster: its scheduler "
                       "(tcp://host:8786), or local to start one here. Same rows, same order, "
                       "same bytes; --threads then means numba threads per worker (default: the "
                       "worker's share of its host's cores). Needs pip install "
                       "'triplet-loss\\[dask]'.", _DASK)
WorkersOpt = _option(int, "--workers", "Worker processes of --scheduler local, 1 thread each. "
                     "(default: one per core)", _DASK, min=1)


def _settings(command: str, given: dict[str, Any]) -> dict[str, Any]:
    """The settings `command` takes (params.COMMAND_OPTIONS), from its parameters."""
    return {name: given[name] for name in COMMAND_OPTIONS[command]}


@app.command()
def compute(
    anchors: _option(str, "--anchors", "Anchors (n, d), or one anchor (d,).") = None,
    positives: _option(str, "--positives", "Positives (n, d) or k per anchor (n, k, d).") = None,
    negatives: _option(str, "--negatives", "Negatives (n, d) or k per anchor (n, k, d).") = None,
    embeddings: _option(str, "--embeddings",
                        "Embedding matrix (m, d) that --triplets indexes.") = None,
    triplets: _option(str, "--triplets",
                      "Index triples: columns anchor, positive, negative (e.g. from mine).") = None,
    column: ColumnOpt = None,
    preset: PresetOpt = None,
    distance: DistanceOpt = None,
    p: POpt = None,
    eps: EpsOpt = None,
    eps_placement: EpsPlacementOpt = None,
    normalize: NormalizeOpt = None,
    margin: MarginOpt = None,
    soft_margin: SoftOpt = None,
    swap: _setting("swap", bool, _LOSS) = None,
    reduction: ReductionOpt = None,
    pair_reduction: _setting("pair_reduction", PairReduction, _LOSS) = None,
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
    from .console import Run

    settings = _settings("compute", locals())
    inputs = dict(anchors=anchors, positives=positives, negatives=negatives,
                  embeddings=embeddings, triplets=triplets)
    _run(lambda: prepare_compute(**inputs, preset=preset, column=column, **settings),
         inputs.values(),
         Run(output, format.value, top, fail_above, threads, quiet, verbose, scheduler, workers))


@app.command()
def mine(
    embeddings: _option(str, "--embeddings", "Embedding matrix (m, d): .npy, .npz, .parquet, "
                        ".arrow."),
    labels: _option(str, "--labels", "Labels (m,), integers or strings: .npy, .parquet, .arrow, "
                    ".csv. (default: the label column of --embeddings)") = None,
    column: ColumnOpt = None,
    label_column: _option(str, "--label-column", "Label column of a .parquet/.arrow/.csv file. "
                          "(default: 'label', or the only integer/string column)") = None,
    preset: PresetOpt = None,
    strategy: _setting("strategy", Strategy, _MINE) = None,
    positive_strategy: _setting("positive_strategy", PositiveStrategy, _MINE) = None,
    semi_hard_fallback: _setting("semi_hard_fallback", Fallback, _MINE) = None,
    semi_hard_threshold: _setting("semi_hard_threshold", SemiHardThreshold, _MINE) = None,
    margin_filter: _setting("margin_filter", MarginFilter, _MINE) = None,
    per_anchor: _setting("per_anchor", int, _MINE) = None,
    active_only: _setting("active_only", bool, _MINE, "--active-only/--all-triplets") = None,
    batch_size: _setting("batch_size", int, _MINE) = None,
    seed: _setting("seed", int, _MINE) = None,
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
    from .console import Run
    from .mine import prepare_mine

    settings = _settings("mine", locals())
    _run(lambda: prepare_mine(embeddings, labels, preset=preset, column=column,
                              label_column=label_column, **settings),
         [embeddings, labels],
         Run(output, format.value, top, fail_above, threads, quiet, verbose, scheduler, workers))


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

    # OpenBLAS threads spin after each matrix product, on the cores numba's kernels need
    # between products: with a short spin, batch-hard mining ran 1.54x the blocked-product floor
    # instead of 2.03x (N = 16,384, d = 128, 2 cores). Results do not depend on it; a value
    # already set wins. Set here, before numpy loads OpenBLAS (Dask workers inherit it).
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

    args = sys.argv[1:]
    registered = app.registered_commands
    named = {c.name or get_command_name(c.callback.__name__): c for c in registered}
    if args and not args[0].startswith("-"):  # (`--help compute` is the top-level help)
        app.registered_commands = [named[args[0]]] if args[0] in named else registered
    elif args in ([], ["--help"]):
        app.registered_commands = [_listed(name, c) for name, c in named.items()]
    try:
        app(prog_name=PROG)
    finally:
        app.registered_commands = registered


def _listed(name: str, command: Any) -> Any:
    """A command as the top-level help lists it: its name and help, no options."""
    import inspect

    from typer.models import CommandInfo

    return CommandInfo(
        name=name, callback=lambda: None, help=command.help or inspect.getdoc(command.callback),
        short_help=command.short_help, hidden=command.hidden, deprecated=command.deprecated,
        rich_help_panel=command.rich_help_panel)
