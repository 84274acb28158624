"""The Typer app: parse flags, call the library, print, map errors to exit codes. Nothing else.

Heavy modules (numba, pyarrow, the kernels) are imported inside the commands, so that
`triplet-loss --help` stays fast.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from enum import Enum
from typing import Annotated, Any, NoReturn

import typer
from typer._click import exceptions as click_exceptions
from typer.core import TyperGroup

from . import __version__
from .errors import TripletLossError
from .params import COMMAND_OPTIONS, Format, flag, help_text, option_type

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
    return _DirectParam(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation)
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


def _run(prepare: Callable[[], Any], inputs: Iterable[str | None], given: dict[str, Any]
         ) -> NoReturn:
    """Run a command's job through the console routine, with the run options among its
    parameters (`given`: its locals()), and exit with its code; library errors become one
    `triplet-loss: error:` line and their exit code."""
    from .console import Run, run

    how = Run(fmt=given["format"].value, **{f.name: given[f.name] for f in fields(Run)
                                             if f.name in given})
    try:
        code = run(prepare, [path for path in inputs if path], how)
    except TripletLossError as e:
        _exit(e.exit_code, f"error: {e}")
    except KeyboardInterrupt:
        _exit(130, "interrupted; no output written")
    except MemoryError:
        _exit(1, "error: out of memory")
    except BrokenPipeError:
        _silence_stdout()
        _exit(0)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        _exit(1, f"error: {where}{e.strerror or e}")
    _exit(code)


def _exit(code: int, message: str = "") -> NoReturn:
    if message:
        print(f"{PROG}: {message}", file=sys.stderr)
    raise typer.Exit(code)


# Options. None means "not given": a setting then comes from a preset or the defaults table
# (params.OPTIONS), which also holds its help text. Typer evaluates the calls in the commands'
# annotations when it builds a command.
def _option(kind: Any, flags: str, help: str, panel: str | None = None, **extra: Any) -> Any:
    """An option of type `kind` (or None), its flags space-separated; --help shows no default."""
    return Annotated[kind | None, typer.Option(*flags.split(), help=help, rich_help_panel=panel,
                                               show_default=False, **extra)]


def _setting(name: str, panel: str, flags: str = "") -> Any:
    """A setting of params.OPTIONS, its type, help and default from there; spelt --name (a bool:
    --name/--no-name) unless `flags` say otherwise."""
    kind = option_type(name)
    off = f"/--no-{flag(name)[2:]}" if kind is bool else ""
    return _option(kind, flags or flag(name) + off, help_text(name), panel)


_DIST, _LOSS, _MINE, _OUT, _DASK = "Distance", "Loss", "Mining", "Output", "Distributed"
_EVAL = "Retrieval"
# Shared by compute and mine: defined once.
DistanceOpt = _setting("distance", _DIST)
POpt = _setting("p", _DIST)
EpsOpt = _setting("eps", _DIST)
EpsPlacementOpt = _setting("eps_placement", _DIST)
NormalizeOpt = _setting("normalize", _DIST)
MarginOpt = _setting("margin", _LOSS)
SoftOpt = _setting("soft_margin", _LOSS, "--soft-margin/--hard-margin")
ReductionOpt = _setting("reduction", _LOSS)
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
    corpus: _option(str, "--corpus", "With --triplets: the matrix positive and negative index "
                    "(anchor indexes --embeddings), e.g. for mine-negatives' rows.") = None,
    column: ColumnOpt = None,
    preset: PresetOpt = None,
    distance: DistanceOpt = None,
    p: POpt = None,
    eps: EpsOpt = None,
    eps_placement: EpsPlacementOpt = None,
    normalize: NormalizeOpt = None,
    margin: MarginOpt = None,
    soft_margin: SoftOpt = None,
    swap: _setting("swap", _LOSS) = None,
    reduction: ReductionOpt = None,
    pair_reduction: _setting("pair_reduction", _LOSS) = None,
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

    settings = _settings("compute", locals())
    inputs = dict(anchors=anchors, positives=positives, negatives=negatives,
                  embeddings=embeddings, triplets=triplets, corpus=corpus)
    _run(lambda: prepare_compute(**inputs, preset=preset, column=column, **settings),
         inputs.values(), locals())


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
    strategy: _setting("strategy", _MINE) = None,
    positive_strategy: _setting("positive_strategy", _MINE) = None,
    semi_hard_fallback: _setting("semi_hard_fallback", _MINE) = None,
    semi_hard_threshold: _setting("semi_hard_threshold", _MINE) = None,
    margin_filter: _setting("margin_filter", _MINE) = None,
    per_anchor: _setting("per_anchor", _MINE) = None,
    active_only: _setting("active_only", _MINE, "--active-only/--all-triplets") = None,
    batch_size: _setting("batch_size", _MINE) = None,
    seed: _setting("seed", _MINE) = None,
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
    from .mine import prepare_mine

    settings = _settings("mine", locals())
    _run(lambda: prepare_mine(embeddings, labels, preset=preset, column=column,
                              label_column=label_column, **settings),
         [embeddings, labels], locals())


@app.command()
def evaluate(
    embeddings: _option(list[str], "--embeddings", "Query embeddings (n, d); give it once per "
                        "checkpoint (same rows, same order) for one row of metrics each."),
    labels: _option(str, "--labels", "Query labels (n,), integers or strings. (default: the "
                    "label column of --embeddings)") = None,
    reference: _option(list[str], "--reference", "Reference rows to retrieve from (m, d), once "
                       "or once per --embeddings. (default: the queries, each without its own "
                       "row)") = None,
    reference_labels: _option(str, "--reference-labels", "Labels of --reference (m,).") = None,
    column: ColumnOpt = None,
    label_column: _option(str, "--label-column", "Label column of a .parquet/.arrow/.csv file. "
                          "(default: 'label', or the only integer/string column)") = None,
    preset: _option(str, "--preset", "Reproduce a framework's retrieval metrics: "
                    "pytorch-metric-learning, tf-similarity, sentence-transformers (see "
                    "`triplet-loss presets`).") = None,
    k: _setting("k", _EVAL) = None,
    at: _setting("at", _EVAL) = None,
    average: _setting("average", _EVAL) = None,
    target: _setting("target", _EVAL) = None,
    self_match: _setting("self_match", _EVAL) = None,
    map_divisor: _setting("map_divisor", _EVAL) = None,
    recall: _setting("recall", _EVAL) = None,
    batch_hard_loss: _setting("batch_hard_loss", _EVAL) = None,
    margin: _option(float, "--margin", "Margin of --batch-hard-loss (>= 0). (default: 1.0)",
                    _EVAL) = None,
    distance: DistanceOpt = None,
    p: POpt = None,
    eps: EpsOpt = None,
    eps_placement: EpsPlacementOpt = None,
    normalize: NormalizeOpt = None,
    output: _option(str, "--output -o", "Write per-query rows to .parquet, .csv, .jsonl or .npy "
                    "(atomically).", _OUT) = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="stdout: table or json (the "
                      "report), jsonl or csv (per-query rows).", rich_help_panel=_OUT)
                      ] = Format.table,
    top: Annotated[int, typer.Option("--top", min=0, help="Worst classes in the table (the "
                                     "JSON lists 10).", rich_help_panel=_OUT)] = 10,
    fail_below: _option(list[str], "--fail-below", "METRIC=V: exit 3 when a checkpoint's metric "
                        "is below V or undefined (repeatable), e.g. map_at_r=0.5.", _OUT) = None,
    plot: _option(str, "--plot", "Draw distance distributions and precision/recall against the "
                  "threshold to FILE.png/.pdf/.svg. Needs pip install 'triplet-loss\\[plot]'.",
                  _OUT) = None,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Retrieval metrics of labelled embeddings, exact, one row per checkpoint.

    precision@1, R-precision, MAP@R, MRR, precision/recall/MAP@K and a distance threshold
    calibration, from exact nearest neighbours in blocks (memory never grows as n x m).
    Rows query, label, R, nn, nn_distance, nn_label, first_relevant_rank, p_at_1, r_precision,
    ap_at_r go to --output or to stdout with --format jsonl/csv.
    """
    from .evaluation import prepare_evaluate

    settings = _settings("evaluate", locals())
    inputs = [*(embeddings or []), labels, *(reference or []), reference_labels]
    _run(lambda: prepare_evaluate(embeddings or [], labels, reference=reference or None,
                                  reference_labels=reference_labels, preset=preset,
                                  column=column, label_column=label_column,
                                  fail_below=fail_below or (), plot=plot, **settings),
         inputs, locals())


_NEG = "Negatives"


@app.command("mine-negatives")
def mine_negatives(
    queries: _option(str, "--queries", "Query embeddings (n, d): .npy, .npz, .parquet, .arrow."),
    corpus: _option(str, "--corpus", "Corpus embeddings (m, d) the negatives come from (the same "
                    "file as --queries: a query never gets its own row). (default: --positives, "
                    "duplicates collapsed)") = None,
    pairs: _option(str, "--pairs", "(query, positive) pairs: integer columns query, positive "
                   "(.csv, .jsonl, .parquet, .arrow) or an (n, 2) .npy; positive indexes "
                   "--corpus.") = None,
    positives: _option(str, "--positives", "Positive embeddings aligned with --queries (instead "
                       "of --pairs); identical queries are one query with all their "
                       "positives.") = None,
    column: ColumnOpt = None,
    preset: _option(str, "--preset", "Reproduce a framework: sentence-transformers "
                    "(util.mine_hard_negatives; see `triplet-loss presets`).") = None,
    similarity: _setting("similarity", _NEG) = None,
    p: POpt = None,
    eps: _option(float, "--eps", "Cosine's norm floor. (default: 1e-6)", _DIST) = None,
    num_negatives: _setting("num_negatives", _NEG) = None,
    range_min: _setting("range_min", _NEG) = None,
    range_max: _setting("range_max", _NEG) = None,
    max_score: _setting("max_score", _NEG) = None,
    min_score: _setting("min_score", _NEG) = None,
    absolute_margin: _setting("absolute_margin", _NEG) = None,
    relative_margin: _setting("relative_margin", _NEG) = None,
    margin_positive: _setting("margin_positive", _NEG) = None,
    false_negative_eps: _setting("false_negative_eps", _NEG) = None,
    sampling: _setting("sampling", _NEG) = None,
    seed: _option(int, "--seed", "Seed of --sampling random. (default: 0)", _NEG) = None,
    output_format: _setting("output_format", _NEG) = None,
    output: _option(str, "--output -o", "Write rows to .parquet, .csv, .jsonl or .npy (the "
                    "index columns; atomically).", _OUT) = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="stdout: table or json (the "
                      "statistics), jsonl or csv (rows).", rich_help_panel=_OUT)] = Format.table,
    fail_above: _option(float, "--fail-above", "Exit 3 when more than this fraction of the pairs "
                        "got fewer than --num-negatives.", _OUT) = None,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Hard negatives for (query, positive) pairs from a corpus: exact scores, bounded memory.

    sentence-transformers' mine_hard_negatives on embedding files: every positive of a query is
    excluded, the filters keep their names and meanings. Rows anchor (a --queries row),
    positive, negative (--corpus rows), rank, score_ap, score_an; rescore them with
    `compute --embeddings QUERIES --corpus CORPUS --triplets FILE`.
    """
    from .negatives import prepare_negatives

    settings = _settings("mine-negatives", locals())
    _run(lambda: prepare_negatives(queries, corpus, pairs, positives, preset=preset,
                                   column=column, **settings),
         [queries, corpus, pairs, positives], locals())


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
