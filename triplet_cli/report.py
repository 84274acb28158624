"""Renderings of a run's results: the Rich report, JSON, and progress on stderr."""

from __future__ import annotations

import io
import json
import math
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

import numpy as np

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
        merged = (columns if not self.rows else
                  {c: np.concatenate([self.rows[c], columns[c]]) for c in columns})
        key = np.where(np.isnan(merged["loss"]), math.inf, merged["loss"])
        order = np.argsort(-key, kind="stable")[: self.k]  # rows arrive in order: ties stay
        self.rows = {c: v[order] for c, v in merged.items()}


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "value"):  # str-Enum
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(obj: Any) -> Any:
    """JSON has no NaN or inf: they become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(_finite(summary), indent=2, default=json_default)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def histogram(d_ap: np.ndarray, d_an: np.ndarray, bins: int = HIST_BINS) -> list[str]:
    """Two rows of bars on one shared axis: where d_ap and d_an fall (separation at a glance)."""
    both = np.concatenate([d_ap, d_an])
    both = both[np.isfinite(both)]
    if not both.size:
        return []
    lo, hi = float(both.min()), float(both.max())
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    counts = [np.histogram(v[np.isfinite(v)], bins=edges)[0] for v in (d_ap, d_an)]
    top = max(int(c.max()) for c in counts) or 1
    lines = []
    for name, c in zip(("d_ap", "d_an"), counts, strict=True):
        levels = np.ceil(c / top * (len(BARS) - 1)).astype(int)
        lines.append(f"{name} │" + "".join(BARS[v] for v in levels) + "│")
    left, right = f"{lo:.4g}", f"{hi:.4g}"
    lines.append("      " + left + " " * max(bins - len(left) - len(right) + 2, 1) + right)
    return lines


def render(
    out: IO[str],
    title: str,
    summary: dict[str, Any],
    summary_keys: Sequence[str],
    hardest: dict[str, np.ndarray],
    sample: np.ndarray,
) -> None:
    """The human report: summary, the hardest triplets, the d_ap / d_an histogram, params."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    tty = out.isatty()
    buffer = io.StringIO()
    console = Console(file=buffer, highlight=False, force_terminal=tty,
                      width=shutil.get_terminal_size().columns if tty else 100)
    head = Table(title=title, show_header=False, title_justify="left", box=None, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row(f"loss ({summary['reduction']})", Text(fmt(summary["loss"])))
    for key in summary_keys:
        head.add_row(key, Text(fmt(summary.get(key))))
    console.print(head)
    stats = Table(title=f"distances (quantiles: {summary.get('quantiles', 'exact')})",
                  title_justify="left")
    stats.add_column("")
    for name in ("mean", "std", "min", "p50", "max"):
        stats.add_column(name, justify="right")
    for which in ("d_ap", "d_an"):
        stats.add_row(which, *(Text(fmt(v)) for v in summary[which].values()))
    console.print(stats)
    if hardest and len(hardest.get("loss", ())):
        top = Table(title=f"{len(hardest['loss'])} hardest triplets", title_justify="left")
        for name in hardest:
            top.add_column(name, justify="right")
        for i in range(len(hardest["loss"])):
            top.add_row(*(Text(fmt(hardest[c][i].item())) for c in hardest))
        console.print(top)
    if sample.size:
        console.print(Text("d_ap against d_an", style="bold"))
        for line in histogram(sample[:, 0], sample[:, 1]):
            console.print(Text(line))
    params = summary.get("params", {})
    sources = params.get("sources", {})
    shown = ", ".join(f"{k}={fmt(v)}" + (f" ({sources[k]})" if sources.get(k, "default")
                                          != "default" else "")
                      for k, v in params.items() if k != "sources")
    console.print(Text("params: " + shown, style="dim"))
    out.write(buffer.getvalue())  # one write: a closed pipe raises here, where we handle it


def warn(lines: Sequence[str], quiet: bool) -> None:
    if quiet:
        return
    for line in lines:
        print(f"triplet-loss: warning: {line}", file=sys.stderr)


@contextmanager
def progress(total: int, description: str, enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal (and enabled); otherwise a no-op."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda advance: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda advance: bar.update(task, advance=advance)
