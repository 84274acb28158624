"""Renderings of a run's results: the Rich report, JSON, and progress on stderr."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

import numpy as np

from .errors import PROG, one_line

BARS = " ▁▂▃▄▅▆▇█"
HIST_BINS = 40


class Hardest:
    """The K rows with the largest loss seen so far (NaN first, ties by lower row number)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.rows: dict[str, np.ndarray] = {}

    def add(self, columns: dict[str, np.ndarray]) -> None:
        if self.k <= 0 or not len(columns["loss"]):
            return
        key = np.where(np.isnan(columns["loss"]), math.inf, columns["loss"])
        if key.size > self.k:  # only the block's own k hardest can enter (a stable sort of
            # every row took 0.15 s of a 1.6M-row mine)
            kth = np.partition(key, key.size - self.k)[key.size - self.k]
            keep = key > kth
            keep[np.flatnonzero(key == kth)[: self.k - int(keep.sum())]] = True
            columns = {c: v[keep] for c, v in columns.items()}
        merged = (columns if not self.rows else
                  {c: np.concatenate([self.rows[c], columns[c]]) for c in columns})
        key = np.where(np.isnan(merged["loss"]), math.inf, merged["loss"])
        order = np.argsort(-key, kind="stable")[: self.k]  # rows arrive in order: ties stay
        self.rows = {c: v[order] for c, v in merged.items()}


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_safe(obj: Any) -> Any:
    """JSON has no NaN or inf: they become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(json_safe(summary), indent=2, default=json_default)


def fmt(value: Any) -> str:
    """A table cell: numbers to 6 digits, text with its control characters escaped (a label
    holding a newline split a row in two; one holding ESC coloured the terminal)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value).translate(_VISIBLE)


# Control characters (C0, DEL, C1) as their escapes; other unprintable text (bidi marks) kept.
_VISIBLE = {c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7f, 0xa0))}


def histogram(d_ap: np.ndarray, d_an: np.ndarray, bins: int = HIST_BINS,
              names: tuple[str, str] = ("d_ap", "d_an")) -> list[str]:
    """Two rows of bars on one shared axis: where d_ap and d_an (or `names`) fall."""
    finite = [v[np.isfinite(v)] for v in (d_ap, d_an)]
    if not any(v.size for v in finite):
        return []
    lo = min(float(v.min()) for v in finite if v.size)
    hi = max(float(v.max()) for v in finite if v.size)
    if hi <= lo:
        hi = lo + 1.0
    # equal bins as a count and range: numpy's arithmetic path, the counts of
    # bins=np.linspace(lo, hi, bins + 1) without a search per value (0.09 s at 10^6 rows)
    counts = [np.histogram(v, bins=bins, range=(lo, hi))[0] for v in finite]
    top = max(int(c.max()) for c in counts) or 1
    lines = []
    pad = max(map(len, names))
    for name, c in zip(names, counts, strict=True):
        levels = np.ceil(c / top * (len(BARS) - 1)).astype(int)
        lines.append(f"{name:<{pad}} │" + "".join(BARS[v] for v in levels) + "│")
    left, right = f"{lo:.4g}", f"{hi:.4g}"
    lines.append(" " * (pad + 2) + left + " " * max(bins - len(left) - len(right) + 2, 1) + right)
    return lines


MIN_WIDTH = 24  # narrower, and a number would be cut: the lines overflow instead


def output_width(out: IO[str]) -> int:
    """Columns to lay the report out in: $COLUMNS, else the terminal's, else 80; at least
    MIN_WIDTH."""
    columns = os.environ.get("COLUMNS", "")
    width = 80  # the usual terminal: what a report piped to a file or a pager is laid out for
    if columns.isdigit() and int(columns) > 0:
        width = int(columns)
    elif out.isatty():
        with contextlib.suppress(OSError, ValueError):
            width = os.get_terminal_size(out.fileno()).columns
    return max(MIN_WIDTH, width)


def _table_width(widths: Sequence[int]) -> int:
    """Columns a Rich table with the default box takes: one space of padding per side."""
    return sum(w + 2 for w in widths) + len(widths) + 1


def key_values(pairs: Sequence[tuple[str, Any]], width: int) -> Any:
    """The report's head, `key  value` lines in `width` columns, no value ever cut: a grid, or
    when a pair does not fit, each key on its line and its value indented below."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    values = [Text(fmt(v)) for _, v in pairs]
    if max(len(k) for k, _ in pairs) + 2 + max(v.cell_len for v in values) <= width:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(no_wrap=True)
        for (key, _), value in zip(pairs, values, strict=True):
            grid.add_row(key, value)
        return grid
    return Group(*(line for (key, _), value in zip(pairs, values, strict=True)
                   for line in (Text(key, style="bold"), Text("  ") + value)))


def fitted_tables(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], width: int,
                  keys: int = 1) -> list[Any]:
    """A table of short cells in `width` columns, no cell ever cut: too wide, its columns fold
    into several tables each repeating the first `keys` columns; when even one value column does
    not fit beside the keys, each row becomes lines of `name value` pairs."""
    from rich.table import Table
    from rich.text import Text

    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    groups: list[list[int]] = []
    current = list(range(keys))
    for i in range(keys, len(header)):
        if len(current) > keys and _table_width([widths[j] for j in [*current, i]]) > width:
            groups.append(current)
            current = list(range(keys))
        current.append(i)
    groups.append(current)
    parts: list[Any] = [Text(title, style="italic")]
    if any(_table_width([widths[j] for j in g]) > width for g in groups):
        for r in rows:  # narrower than any table: stacked, wrapped between pairs only
            parts.append(Text(", ".join(f"{h} {v}" if h else v
                                        for h, v in zip(header, r, strict=True))))
        return parts
    for group in groups:
        table = Table(pad_edge=True)
        for j in group:
            table.add_column(header[j], justify="right" if header[j] else "left",
                             no_wrap=True, min_width=widths[j])
        for r in rows:
            table.add_row(*(Text(r[j]) for j in group))
        parts.append(table)
    return parts


def render(out: IO[str], title: str, summary: dict[str, Any], summary_keys: Sequence[str],
           hardest: dict[str, np.ndarray], sample: np.ndarray) -> None:
    """The human report in the terminal's width: summary, the hardest triplets, the d_ap / d_an
    histogram, params."""
    from rich.text import Text

    width = output_width(out)
    head = key_values([(f"loss ({summary['reduction']})", summary["loss"]),
                       *((key, summary.get(key)) for key in summary_keys)], width)
    parts: list[Any] = [Text(title, style="italic"), head]
    rows = [[which, *(fmt(v) for v in summary[which].values())] for which in ("d_ap", "d_an")]
    parts += fitted_tables(f"distances (quantiles: {summary.get('quantiles', 'exact')})",
                           ["", "mean", "std", "min", "p50", "max"], rows, width)
    if hardest:  # (Hardest.rows: empty, or at least one row)
        header = list(hardest)
        rows = [[fmt(hardest[c][i].item()) for c in header] for i in range(len(hardest["loss"]))]
        keys = 1 if header[0] == "index" else 3  # compute: the row index; mine: the triplet
        parts += fitted_tables(f"{len(rows)} hardest triplets", header, rows, width, keys)
    if sample.size:
        parts.append(Text("d_ap against d_an", style="bold"))
        parts += map(Text, histogram(sample[:, 0], sample[:, 1],
                                     max(10, min(HIST_BINS, width - 8))))
    parts.append(params_line(summary))
    write(out, width, parts)


def params_line(summary: dict[str, Any]) -> Any:
    """The report's last line: every setting, with its source where that is not the default."""
    from rich.text import Text

    params = summary.get("params", {})
    sources = params.get("sources", {})
    shown = ", ".join(f"{k}={_as_flag(v)}" + (f" ({sources[k]})" if sources.get(k, "default")
                                          != "default" else "")
                      for k, v in params.items() if k != "sources")
    return Text("params: " + shown, style="dim")


def _as_flag(value: Any) -> str:
    """A setting as its flag is spelled (a list: `1,5,10`)."""
    return ",".join(map(fmt, value)) if isinstance(value, list | tuple) else fmt(value)


def write(out: IO[str], width: int, parts: Iterable[Any]) -> None:
    """Rich renderables in `width` columns, right-stripped, written to `out` in one write."""
    from rich.console import Console

    encoding = getattr(out, "encoding", None) or "utf-8"
    buffer = _Buffer(encoding)  # (not UTF-8: rich draws its boxes in ASCII)
    console = Console(file=buffer, highlight=False, force_terminal=out.isatty(), width=width)
    for part in parts:
        console.print(part)
    text = "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"
    out.write(text.encode(encoding, "replace").decode(encoding))  # what it cannot show: ?


class _Buffer(io.StringIO):
    """Text rendered for a stream of this encoding."""

    def __init__(self, encoding: str) -> None:
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding


def warn(lines: Sequence[str], quiet: bool) -> None:
    if quiet:
        return
    for line in lines:
        print(one_line(f"{PROG}: warning: {line}"), file=sys.stderr)


COMPILE_NOTICE_AFTER = 1.0  # seconds one compile must run before we say why nothing moves
COMPILE_NOTICE = ("first run: compiling the kernels (once for these settings and dtypes; later "
                  "runs load them from the cache)")


class CompileNotice:
    """Says once (from a timer thread) that numba is compiling when one compile has run `after`
    seconds (a first run compiles for 4-30 s). Numba broadcasts "numba:compile" around a real
    compile only, never a cache load, so a cached run says nothing."""

    def __init__(self, say: Callable[[str], object], after: float = COMPILE_NOTICE_AFTER) -> None:
        self.say = say
        self.after = after
        self.said = threading.Event()
        self._depth = 0  # nested: compiling a kernel compiles the functions it calls
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._listener: Any = None

    @property
    def pending(self) -> bool:
        return self._timer is not None

    def __enter__(self) -> CompileNotice:
        from numba.core import event

        notice = self

        class Listener(event.Listener):
            def on_start(self, _: object) -> None:
                notice._compiling(1)

            def on_end(self, _: object) -> None:
                notice._compiling(-1)

        self._listener = Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc: object) -> None:
        from numba.core import event

        event.unregister("numba:compile", self._listener)
        with self._lock:
            self._cancel()

    def _compiling(self, step: int) -> None:
        """A compile started (+1) or ended (-1): the outermost one is timed."""
        with self._lock:
            self._depth += step
            if self._depth == 0:
                self._cancel()
            elif self._depth == 1 and step > 0 and not self.said.is_set():
                self._timer = threading.Timer(self.after, self._fire)
                self._timer.daemon = True
                self._timer.start()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        with self._lock:
            if self._depth > 0 and not self.said.is_set():
                self.say(COMPILE_NOTICE)
                self.said.set()


_SHOWN: list[Any] = []  # the progress bar on the terminal now, if any


@contextmanager
def progress(total: int, description: str, enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal (and enabled), with CompileNotice."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda advance: None
        return
    from rich.console import Console
    from rich.progress import Progress
    from rich.text import Text

    with Progress(console=Console(file=sys.stderr), transient=True) as bar:
        def say(message: str) -> None:
            bar.console.print(Text(f"triplet-loss: {message}"), soft_wrap=True)

        task = bar.add_task(description, total=total)
        _SHOWN.append(bar)
        try:
            with CompileNotice(say):
                yield lambda advance: bar.update(task, advance=advance)
        finally:
            _SHOWN.remove(bar)


def clear_progress() -> None:
    """Take the progress bar off the terminal and show the cursor again: for a run that ends
    at once (a stop during a compile), without unwinding through the bar's own exit."""
    for bar in list(_SHOWN):
        bar.stop()


def print_presets(fmt: str) -> None:
    """The presets, one block each (what it follows, its settings per command), uncut."""
    from .presets import PRESETS

    if fmt == "json":
        print(to_json({n: {"follows": p.follows, "swap": p.swap, **p.settings()}
                       for n, p in PRESETS.items()}))
        return
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text("presets (explicit flags override them)", style="italic")]
    for name, p in PRESETS.items():
        grid = Table.grid(padding=(0, 2), pad_edge=True)
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        grid.add_row("follows", Text(p.follows))
        grid.add_row("swap", Text("the framework's option (--swap)" if p.swap else
                                  "not in the framework: --swap adds PyTorch's, with a warning"))
        for command, values in p.settings().items():
            grid.add_row(command, Text("-" if values is None else ", ".join(
                f"{k}={v}" for k, v in values.items())))
        parts += [Text(name, style="bold"), grid]
    write(sys.stdout, output_width(sys.stdout), parts)
