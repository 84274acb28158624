"""The Typer app: parse flags, call the library, print, map errors to exit codes. Nothing else.

Heavy modules (numba, pyarrow, the kernels) are imported inside the commands, so that
`triplet-loss --help` stays fast.
"""

from __future__ import annotations

import difflib
import errno
import inspect
import io
import os
import re
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum
from typing import Annotated, Any, NoReturn

import typer
from typer._click import exceptions as click_exceptions
from typer.core import TyperCommand, TyperGroup

from . import THREAD_SPIN, __version__
from .errors import PROG, STOP_SIGNALS, TripletLossError, one_line, stopped
from .params import (
    CHOICE_OPTIONS,
    COMMAND_OPTIONS,
    Format,
    ReportFormat,
    flag,
    help_text,
    option_type,
    unknown_choice,
)


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
            _say(f"error: {_message(e)}")
            rv = e.exit_code
        except typer.Abort:
            _say("interrupted")
            rv = 130
        except TripletLossError as e:  # before a run: the environment (NUMBA_DISABLE_JIT)
            _say(f"error: {e}")
            rv = e.exit_code
        except BrokenPipeError:  # (one Click did not turn into an exit)
            _silence_stdout()
            rv = 0
        except OSError as e:  # --help or presets into a full disk (/dev/full)
            _say(f"error: {_failed_write(e)}")
            rv = 1
        except _Stopped as e:  # SIGTERM or SIGHUP outside a run
            _say(stopped(e.signum))
            rv = e.code
        except SystemExit as e:  # Click and rich exit 1 when stdout's reader went away
            if not isinstance(e.__context__, BrokenPipeError):
                raise
            _silence_stdout()
            rv = 0
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)

    def parse_args(self, ctx: Any, args: list[str]) -> Any:
        _coerce_directly(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # before the run's own answer (importing it): Typer's is silent
            _exit(130, "interrupted; no output written")

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            _coerce_directly(command.get_params(ctx))  # (its --help option is made once)
        return name, command, rest

    def get_help_option(self, ctx: Any) -> Any:
        return _no_value(super().get_help_option(ctx))


# Start-up: Typer 0.29 coerces every option, given or not, through a pydantic TypeAdapter built
# on each run (0.06-0.1 s of a 0.6 s `compute`). Values of our options' types (str, int, float,
# str-Enum) are coerced here as Typer would; anything else, and every error, goes through Typer's
# own adapter (tests/test_first_contact_terminal.py compares the two). With a Typer without its
# private RuntimeParam, its own coercion runs unchanged.
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


class _Command(TyperCommand):
    """A command whose --help shows no value type (Typer writes <bool> for a flag) and cuts no
    flag name on a narrow terminal."""

    def get_help_option(self, ctx: Any) -> Any:
        return _no_value(super().get_help_option(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> Any:
        _whole_names_in_help()
        return super().format_help(ctx, formatter)


def _whole_names_in_help() -> None:
    """rich fits a table to the terminal by cutting cells: '--positive-strate…' and
    'pytorch-metric-le…' at 80 columns. Typer's options tables (the columns [required], names,
    short names, secondary names (--no-...), secondary short names, value, help) become tables
    whose name columns keep their width and whose help texts fold a long word."""
    from rich.table import Table
    from rich.text import Text
    from typer import rich_utils

    class WholeNames(Table):
        def __rich_console__(self, console: Any, options: Any) -> Any:
            if len(self.columns) >= 6:
                first = len(self.columns) - 6
                for names in (self.columns[first], self.columns[first + 2]):
                    names.no_wrap = True
                    names.min_width = max((len(str(c)) for c in names.cells), default=0)
                for cell in self.columns[-1].cells:
                    for text in getattr(cell, "renderables", [cell]):
                        if isinstance(text, Text):
                            text.overflow = "fold"
            yield from super().__rich_console__(console, options)

    rich_utils.Table = WholeNames


def _no_value(option: Any) -> Any:
    """A flag's help row without a value type: it takes none."""
    if option is not None:
        option.metavar = ""
    return option


def _silence_stdout() -> None:
    """writers.silence_stdout, imported only when stdout's reader went away."""
    from .writers import silence_stdout

    silence_stdout()


app = typer.Typer(cls=_OneLineErrors, name=PROG, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode="rich",
                  context_settings={"help_option_names": ["-h", "--help"]})


def _version(value: bool) -> None:
    if value:
        print(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          metavar="", help="Print the version and exit.")
                       ] = False,
) -> None:
    """Triplet losses and triplet mining over embedding files (.npy, .npz, .parquet, .arrow)."""


def _run(command: str, prepare: Callable[..., Any], given: dict[str, Any], inputs: str,
         **extra: Any) -> NoReturn:
    """Run `command`'s job through the console routine and exit with its code: `prepare` gets
    the input options named in `inputs`, `extra`, and the settings, from the parameters
    (`given`), which also hold the run options. Library errors become one `triplet-loss:
    error:` line and their exit code."""
    from .console import Run, run

    paths = {name: given[name] for name in inputs.split()}
    settings = {name: given[name] for name in COMMAND_OPTIONS[command]}
    how = Run(fmt=given["format"].value, **{f.name: given[f.name] for f in fields(Run)
                                             if f.name in given})
    files = [p for v in paths.values() for p in (v if isinstance(v, list) else [v]) if p]
    for name in (*paths, "output", "plot"):  # `-o "$UNSET"` must not mean "no output"
        value = given.get(name)
        if "" in (value if isinstance(value, list) else [value]):
            _exit(2, f"error: {flag(name)} is empty: give a path")
    try:
        code = run(lambda: prepare(**paths, **extra, preset=given["preset"],
                                   column=given["column"], **settings),
                   files, how, committing=_past_stopping)
    except TripletLossError as e:
        _exit(e.exit_code, f"error: {e}")
    except KeyboardInterrupt:
        _exit(130, "interrupted; no output written")
    except _Stopped as e:  # said once the progress bar is gone, as Ctrl-C is
        _exit(int(e.code), f"{stopped(e.signum)}; no output written")
    except MemoryError:
        _exit(1, "error: out of memory")
    except BrokenPipeError:
        _silence_stdout()
        _exit(0)
    except OSError as e:
        _exit(1, f"error: {_failed_write(e)}")
    except Exception:
        if not _received:
            raise
        _stopping(_received[0])  # a compiler interrupted mid-way fails in its own words
    _exit(code)


# Flags one command spells otherwise than the others (the name the user typed -> this one's).
_SPELT_HERE = {
    "mine-negatives": {"--distance": "--similarity", "--embeddings": "--queries",
                       "--per-anchor": "--num-negatives"},
    "compute": {"--similarity": "--distance"},
    "mine": {"--queries": "--embeddings", "--similarity": "--distance",
             "--num-negatives": "--per-anchor"},
    "evaluate": {"--queries": "--embeddings", "--similarity": "--distance"},
}


def _message(e: click_exceptions.ClickException) -> str:
    """A usage error's line: a value that is none of an option's choices as the library says it
    (with the one meant: 'semihard' is 'semi-hard'), a flag another command spells otherwise
    with this one's name, others as Click words them."""
    if isinstance(e, click_exceptions.NoSuchOption):
        command = getattr(getattr(getattr(e, "ctx", None), "command", None), "name", None)
        here = _SPELT_HERE.get(command or "", {}).get(e.option_name)
        if here:
            return f"No such option: {e.option_name} ({command} calls it {here})"
    param = getattr(e, "param", None)
    value = re.match(r"(?:Value error, )?'(.*)' is not one of (.*)\.$",
                     str(getattr(e, "message", "")))
    if value is None or param is None:
        return e.format_message()
    if param.name in CHOICE_OPTIONS:
        return unknown_choice(param.name, value.group(1))
    spellings = re.findall(r"'([^']*)'", value.group(2))  # (--format's)
    close = difflib.get_close_matches(value.group(1).lower(), spellings, n=1, cutoff=0.75)
    return (f"{flag(param.name)}: unknown value {value.group(1)!r}; choose from "
            f"{', '.join(spellings)}" + (f" (did you mean {close[0]!r}?)" if close else ""))


_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF)


def _failed_write(e: OSError) -> str:
    """An OSError as one line: its file, or stdout for a failed write that names none (what
    stdout still holds is dropped: flushed again at exit, it would fail again, exit 120)."""
    where = e.filename or ("stdout" if e.errno in _WRITE_ERRORS else "")
    if where == "stdout":
        _silence_stdout()
    return f"{where}: {e.strerror or e}" if where else f"{e.strerror or e}"


def _exit(code: int, message: str = "") -> NoReturn:
    """Exit with `code`, after a `triplet-loss: message` line on stderr."""
    if message:
        _say(message)
    raise typer.Exit(code)


def _say(message: str) -> None:
    """`triplet-loss: message` on stderr, as one line whatever file names it quotes."""
    print(one_line(f"{PROG}: {message}"), file=sys.stderr)


# Options. None means "not given": a setting then comes from a preset or the defaults table
# (params.OPTIONS), which also holds its help text. Each option is declared once: in _OPTIONS,
# or at a command that says it otherwise; a command lists the names it takes in --help order.
def _option(kind: Any, flags: str, help: str, panel: str | None = None, **extra: Any) -> Any:
    """An option of type `kind` (or None), its flags space-separated; --help shows no default."""
    return Annotated[kind | None, typer.Option(*flags.split(), help=help, rich_help_panel=panel,
                                               show_default=False, **_shown(kind, extra))]


def _valued(kind: Any, flags: str, help: str, panel: str | None = None, **extra: Any) -> Any:
    """An option that always has a value (its default written in its help, as the others')."""
    return Annotated[kind, typer.Option(*flags.split(), help=help, rich_help_panel=panel,
                                        show_default=False, **_shown(kind, extra))]


def _shown(kind: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """The value --help shows an option taking: none for a flag, <path> for a file (Typer
    writes <bool> and <str>, as if a flag took a value and any text were a path)."""
    if "metavar" not in extra and kind in (bool, str, list[str]):
        extra = {**extra, "metavar": "" if kind is bool else "<path>"}
    return extra


_DISTANCE, _LOSS, _MINING, _OUT, _DASK = "Distance", "Loss", "Mining", "Output", "Distributed"
_RETRIEVAL, _NEGATIVES = "Retrieval", "Negatives"
# The settings of params.OPTIONS by help panel, in --help order.
_PANELS = {
    _DISTANCE: "distance p eps eps_placement normalize",
    _LOSS: "margin soft_margin swap reduction pair_reduction",
    _MINING: "strategy positive_strategy semi_hard_fallback semi_hard_threshold margin_filter "
             "per_anchor active_only batch_size seed",
    _RETRIEVAL: "k at average target self_match map_divisor recall batch_hard_loss",
    _NEGATIVES: "similarity num_negatives range_min range_max max_score min_score "
                "absolute_margin relative_margin margin_positive false_negative_eps sampling "
                "output_format",
}
_SPELT = {"soft_margin": "--soft-margin/--hard-margin",
          "active_only": "--active-only/--all-triplets"}  # (other bools: --name/--no-name)


def _setting(name: str, panel: str) -> Any:
    """A setting of params.OPTIONS: its type, help and default from there."""
    kind = option_type(name)
    off = f"/--no-{flag(name)[2:]}" if kind is bool else ""
    return _option(kind, _SPELT.get(name, flag(name) + off), help_text(name), panel,
                   **({"metavar": _TEXT_VALUES[name]} if name in _TEXT_VALUES else {}))


_TEXT_VALUES = {"k": "<value>", "at": "<int,...>", "target": "<metric=value>"}


def _texts(**helps: str) -> dict[str, Any]:
    """Text options (inputs, mostly: paths; columns and presets: names) of the main panel,
    spelt --name, by name."""
    return {name: _option(str, flag(name), text,
                          metavar="<name>" if name.endswith(("column", "preset")) else "<path>")
            for name, text in helps.items()}


_OPTIONS: dict[str, Any] = {
    **{name: _setting(name, panel) for panel, names in _PANELS.items() for name in names.split()},
    **_texts(
        anchors="Anchors (n, d), or one anchor (d,).",
        positives="Positives (n, d) or k per anchor (n, k, d).",
        negatives="Negatives (n, d) or k per anchor (n, k, d).",
        embeddings="Embedding matrix (m, d) that --triplets indexes.",
        triplets="Index triples: columns anchor, positive, negative (e.g. from mine; a .parquet "
                 "from mine also sets the settings it was mined with, flags given win).",
        corpus="With --triplets: the matrix positive and negative index (anchor indexes "
               "--embeddings), e.g. for mine-negatives' rows.",
        labels="Labels (m,), integers or strings: .npy, .parquet, .arrow, .csv. (default: the "
               "label column of --embeddings)",
        label_column="Label column of a .parquet/.arrow/.csv file. (default: 'label', or the "
                     "only integer, string or category column)",
        column="Embedding column of .parquet/.arrow inputs (auto when there is one)."),
    "output": _option(str, "--output -o", "Write per-triplet rows to .parquet, .csv, .jsonl or "
                      ".npy (atomically).", _OUT),
    "format": _valued(Format, "--format -f", "stdout: table or json (the report), jsonl or csv "
                      "(per-triplet rows). (default: table)", _OUT),
    "top": _valued(int, "--top", "Hardest triplets in the table. (default: 10)", _OUT,
                   min=0),
    "fail_above": _option(float, "--fail-above", "Exit 3 when the headline loss (with "
                          "--reduction none: any triplet's loss) is above this.", _OUT),
    "threads": _option(int, "--threads", "Kernel threads (results do not depend on it). "
                       "(default: all cores)", min=1),
    "quiet": _valued(bool, "--quiet -q", "No warnings or progress."),
    "verbose": _valued(bool, "--verbose -v", "Timings on stderr."),
    "scheduler": _option(str, "--scheduler", "Run the blocks on a Dask cluster: its scheduler "
                         "(tcp://host:8786), or local to start one here. Same rows, same order, "
                         "same bytes; --threads then means kernel threads per worker (default: "
                         "the worker's share of its host's cores). Needs pip install "
                         "'triplet-loss\\[dask]'.", _DASK, metavar="<address>"),
    "workers": _option(int, "--workers", "Worker processes of --scheduler local, 1 thread each; "
                       "at most one per CPU this process may use. (default: one per CPU)", _DASK,
                       min=1),
}
_DEFAULTS = {"format": Format.table, "top": 10, "quiet": False, "verbose": False}  # others None
_RUN = "threads quiet verbose scheduler workers"


def _command(options: str, name: str | None = None, required: str = "", **own: Any) -> Any:
    """Register a command taking `options` (names, in --help order) as keyword arguments, each
    as `own` declares it for this command or else as _OPTIONS does; `required` has no default."""
    def parameter(n: str) -> inspect.Parameter:
        default = inspect.Parameter.empty if n == required else _DEFAULTS.get(n)
        return inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=default,
                                 annotation=own[n] if n in own else _OPTIONS[n])

    def register(command: Callable[..., None]) -> Callable[..., None]:
        parameters = [parameter(n) for n in options.split()]
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        return app.command(name, cls=_Command, help=_unwrapped(command.__doc__ or ""))(command)
    return register


def _unwrapped(doc: str) -> str:
    """A docstring's paragraphs each on one line, for rich to wrap once at the terminal's
    width (it keeps the docstring's own line breaks: ragged lines at 80 columns)."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _presets_of(command: str) -> dict[str, Any]:
    """--preset, listing the presets that have `command`."""
    from .presets import PRESETS

    names = ", ".join(n for n, p in PRESETS.items() if p.settings()[command] is not None)
    return _texts(preset=f"Reproduce a framework: {names} (see `triplet-loss presets`).")


@_command(f"anchors positives negatives embeddings triplets corpus column preset "
          f"{_PANELS[_DISTANCE]} {_PANELS[_LOSS]} output format top fail_above {_RUN}",
          **_presets_of("compute"))
def compute(**given: Any) -> None:
    """Per-triplet losses for aligned anchors / positives / negatives, or indexed triplets."""
    from .compute import prepare_compute

    _run("compute", prepare_compute, given, "anchors positives negatives embeddings triplets "
         "corpus")


@_command(f"embeddings labels column label_column preset {_PANELS[_MINING]} {_PANELS[_DISTANCE]} "
          f"margin soft_margin swap reduction output format top fail_above {_RUN}",
          required="embeddings",
          **_texts(embeddings="Embedding matrix (m, d): .npy, .npz, .parquet, .arrow."),
          **_presets_of("mine"))
def mine(**given: Any) -> None:
    """Mine triplets from labelled embeddings in blocks (memory never grows as m x m).

    Rows anchor, positive, negative, d_ap, d_an, loss go to --output (.parquet, .csv, .jsonl;
    .npy holds the (t, 3) int64 indices) or to stdout with --format jsonl/csv.
    """
    from .mine import prepare_mine

    _run("mine", prepare_mine, given, "embeddings labels", label_column=given["label_column"])


@_command(
    f"embeddings labels reference reference_labels column label_column preset "
    f"{_PANELS[_RETRIEVAL]} margin {_PANELS[_DISTANCE]} output format top fail_below fail_drop "
    f"plot {_RUN}", required="embeddings",
    embeddings=_option(list[str], "--embeddings", "Query embeddings (n, d); give it once per "
                       "checkpoint (same rows, same order) for one row of metrics each."),
    reference=_option(list[str], "--reference", "Reference rows to retrieve from (m, d), once "
                      "or once per --embeddings. (default: the queries, each without its own "
                      "row)"),
    **_texts(labels="Query labels (n,), integers or strings. (default: the label column of "
                    "--embeddings)",
             reference_labels="Labels of --reference (m,). (default: the label column of a "
                              "parquet/Arrow --reference)",
             preset="Reproduce a framework's retrieval metrics: pytorch-metric-learning, "
                    "tf-similarity, sentence-transformers (see `triplet-loss presets`)."),
    margin=_option(float, "--margin", "Margin of --batch-hard-loss (>= 0). (default: 1.0)",
                   _RETRIEVAL),
    output=_option(str, "--output -o", "Write per-query rows to .parquet, .csv, .jsonl or .npy "
                   "(atomically).", _OUT),
    format=_valued(Format, "--format -f", "stdout: table or json (the report), jsonl or csv "
                   "(per-query rows). (default: table)", _OUT),
    top=_valued(int, "--top", "Worst classes in the table (the JSON lists 10). (default: 10)",
                _OUT, min=0),
    fail_below=_option(list[str], "--fail-below", "METRIC=V: exit 3 when a checkpoint's metric "
                       "is below V or undefined (repeatable), e.g. map_at_r=0.5.", _OUT,
                       metavar="<metric=value>"),
    fail_drop=_option(list[str], "--fail-drop", "METRIC=D: exit 3 when a later checkpoint's "
                      "metric falls more than D below the first's, or is undefined "
                      "(repeatable), e.g. precision_at_1=0.01.", _OUT,
                      metavar="<metric=value>"),
    plot=_option(str, "--plot", "Draw distance distributions and precision/recall against the "
                 "threshold to FILE.png/.pdf/.svg. Needs pip install 'triplet-loss\\[plot]'.",
                 _OUT))
def evaluate(**given: Any) -> None:
    """Retrieval metrics of labelled embeddings, exact, one row per checkpoint.

    precision@1, R-precision, MAP@R, MRR, precision/recall/MAP/NDCG/MRR@K and a distance
    threshold calibration, from exact nearest neighbours in blocks (memory never grows as n x m).
    Rows query, label, R, nn, nn_distance, nn_label, first_relevant_rank, p_at_1, r_precision,
    ap_at_r go to --output or to stdout with --format jsonl/csv.
    """
    from .evaluation import prepare_evaluate

    _run("evaluate", prepare_evaluate, given, "embeddings labels reference reference_labels",
         label_column=given["label_column"], fail_below=given["fail_below"] or (),
         fail_drop=given["fail_drop"] or (),
         plot=given["plot"])


@_command(
    f"queries corpus pairs positives labels corpus_labels column label_column preset "
    f"{' '.join(COMMAND_OPTIONS['mine-negatives'])} "
    f"output format fail_above {_RUN}",
    "mine-negatives", required="queries",
    **_texts(queries="Query embeddings (n, d): .npy, .npz, .parquet, .arrow.",
             corpus="Corpus embeddings (m, d) the negatives come from (the same file as "
                    "--queries: a query never gets its own row). (default: the rows of "
                    "--positives, each distinct row once; a --corpus given is taken as it is)",
             pairs="(query, positive) pairs: integer columns query, positive (.csv, .jsonl, "
                   ".parquet, .arrow; other columns are not read) or an (n, 2) .npy; positive "
                   "indexes --corpus.",
             positives="Positive embeddings aligned with --queries (instead of --pairs); "
                       "identical queries are one query with all their positives.",
             labels="Classes of the queries (n,): no negative of a query's own class (the "
                    "same person, the same product). Alone when --corpus is --queries.",
             corpus_labels="Classes of the --corpus rows (m,), with --labels.",
             label_column="Label column of a .parquet/.arrow/.csv --labels or --corpus-labels. "
                          "(default: 'label', or the only integer, string or category column)",
             preset="Reproduce a framework: sentence-transformers (util.mine_hard_negatives; "
                    "see `triplet-loss presets`)."),
    p=_option(float, "--p", "p of the minkowski distance (>= 1); given without --similarity it "
              "selects minkowski. (default: 2, with --similarity minkowski)", _DISTANCE),
    eps=_option(float, "--eps", "Cosine's norm floor. (default: 1e-6)", _DISTANCE),
    seed=_option(int, "--seed", "Seed of --sampling random. (default: 0)", _NEGATIVES),
    output=_option(str, "--output -o", "Write rows to .parquet, .csv, .jsonl or .npy (the index "
                   "columns; atomically).", _OUT),
    format=_valued(Format, "--format -f", "stdout: table or json (the statistics), jsonl or csv "
                   "(rows). (default: table)", _OUT),
    fail_above=_option(float, "--fail-above", "Exit 3 when more than this fraction of the pairs "
                       "got fewer than --num-negatives.", _OUT))
def mine_negatives(**given: Any) -> None:
    """Hard negatives for (query, positive) pairs from a corpus: exact scores, bounded memory.

    sentence-transformers' mine_hard_negatives on embedding files: every positive of a query is
    excluded, the filters keep their names and meanings. Rows anchor (a --queries row),
    positive, negative (--corpus rows), rank, score_ap, score_an; rescore them with
    `compute --embeddings QUERIES --corpus CORPUS --triplets FILE`.
    """
    from .negatives import prepare_negatives

    fraction = given["fail_above"]
    if fraction is not None and not 0 <= fraction <= 1:
        _exit(2, f"error: --fail-above is a fraction of the pairs, from 0 to 1 (got {fraction:g})")
    _run("mine-negatives", prepare_negatives, given,
         "queries corpus pairs positives labels corpus_labels", label_column=given["label_column"])


@app.command(cls=_Command)
def presets(
    format: Annotated[ReportFormat, typer.Option("--format", "-f", help="table or json. (default: "
                                                   "table)", show_default=False)
                      ] = ReportFormat.table,
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

    # A short spin for idle BLAS threads (THREAD_SPIN), set before numpy loads OpenBLAS; a value
    # already set wins, and Dask workers inherit it.
    for name, value in THREAD_SPIN.items():
        os.environ.setdefault(name, value)
    _open_standard_streams()
    _whole_stdout()

    args = sys.argv[1:]
    registered = app.registered_commands
    named = {c.name or get_command_name(c.callback.__name__): c for c in registered}
    if args and not args[0].startswith("-"):  # (`--help compute` is the top-level help)
        app.registered_commands = [named[args[0]]] if args[0] in named else registered
    elif args in ([], ["--help"], ["-h"]):
        app.registered_commands = [_listed(name, c) for name, c in named.items()]
    before = {s: signal.signal(s, _stop) for s in STOP_SIGNALS}
    try:
        app(prog_name=PROG)
    finally:
        app.registered_commands = registered
        for s, handler in before.items():  # (ignored once the run finished: kept so to the end)
            if signal.getsignal(s) is _stop:
                signal.signal(s, handler)


def _open_standard_streams() -> None:
    """Standard streams closed at start (`>&-`, `2>&-`) open on /dev/null: what they would
    carry is dropped, and no file the run opens takes their descriptor (a warning written into
    --output's temporary file, an error line into a file opened as stdout)."""
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115


class _WholeWrites(io.RawIOBase):
    """A descriptor whose every write completes or raises (a full disk: ENOSPC)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:  # a non-blocking pipe that is full: wait for its reader
                select.select([], [self.fd], [])
        return memoryview(data).nbytes


def _whole_stdout() -> None:
    """stdout on _WholeWrites where Python's own would lose rows: unbuffered (PYTHONUNBUFFERED,
    python -u: the raw file, of which a write keeps what one system call took, so a full disk
    cut the output short with exit 0) or non-blocking (a parent's pipe: what it could not hold
    was lost, or the run failed)."""
    out = sys.stdout
    try:
        fd = out.fileno()
        unbuffered = isinstance(out.buffer, io.RawIOBase)
        if not unbuffered and os.get_blocking(fd):
            return
    except (AttributeError, OSError, ValueError):  # (not a file: a test's capture)
        return
    whole = _WholeWrites(fd)
    sys.stdout = io.TextIOWrapper(whole if unbuffered else io.BufferedWriter(whole),
                                  encoding=out.encoding, errors=out.errors,
                                  line_buffering=out.line_buffering, write_through=unbuffered)


# A stop signal unwinds the run, so no partial file is left.
_received: list[int] = []  # a raise inside a compiler's callback is swallowed: asked again


def _stop(signum: int, frame: Any) -> NoReturn:
    _received.append(signum)
    if _compiling():  # no raise into the compiler: end here
        _end_now(signum)
    # Raised here, the stop unwinds the run; a compile that another thread starts meanwhile (a
    # kernel's other half on a first run) would hold it for seconds: it ends the run then.
    threading.Thread(target=_end_if_compiling, args=(signum,), daemon=True).start()
    _stopping(signum)


def _compiling() -> bool:
    compiling = getattr(sys.modules.get(f"{__package__}._jit"), "compiling", None)
    return compiling is not None and compiling()


def _end_if_compiling(signum: int) -> None:
    while not _compiling():
        time.sleep(0.05)
    _end_now(signum)


def _end_now(signum: int) -> NoReturn:
    """End the process at once (a compile under way cannot be unwound): temporary files and
    the progress bar removed, one line said."""
    from .readers import drop_copies
    from .report import clear_progress
    from .writers import abandon

    abandon()
    drop_copies()
    clear_progress()
    print(f"{PROG}: {stopped(signum)}; no output written", file=sys.stderr, flush=True)
    os._exit(128 + signum)


class _Stopped(SystemExit):
    """SIGTERM or SIGHUP, raised where the run is: it unwinds (temporary files go, the
    progress bar is cleared) and then says so."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def _stopping(signum: int) -> NoReturn:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise _Stopped(signum)


def _past_stopping() -> None:
    """Every row is written: stop now if asked (the signal's raise may have been swallowed),
    else finish, replacing --output and reporting, with stop signals ignored."""
    if _received:
        _stopping(_received[0])
    for s in STOP_SIGNALS:
        if signal.getsignal(s) is _stop:  # (main() set it: not under a test's runner)
            signal.signal(s, signal.SIG_IGN)


def _listed(name: str, command: Any) -> Any:
    """A command as the top-level help lists it: its name and help, no options."""
    from typer.models import CommandInfo

    return CommandInfo(
        name=name, callback=lambda: None, help=command.help or inspect.getdoc(command.callback),
        short_help=command.short_help, hidden=command.hidden, deprecated=command.deprecated,
        rich_help_panel=command.rich_help_panel)
