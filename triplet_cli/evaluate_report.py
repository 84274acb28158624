"""evaluate's table report: one row of metrics per checkpoint, calibration, the worst classes
and where same-class and other-class nearest neighbours lie."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from .report import (
    HIST_BINS,
    fitted_tables,
    fmt,
    histogram,
    key_values,
    output_width,
    params_line,
    write,
)


def render(out: IO[str], title: str, summary: dict[str, Any],
           nearest: Sequence[tuple[np.ndarray, np.ndarray]],
           worst: tuple[list[object], np.ndarray, np.ndarray]) -> None:
    """The report, laid out for the terminal's width like every command's (numbers never cut).
    Checkpoints are numbered from 1 in the order given. `nearest`: per checkpoint, the scored
    queries' nearest distances and whether that neighbour has the query's class; `worst`: the
    worst classes' labels, query counts and MAP@R per checkpoint (rows: classes)."""
    from rich.text import Text

    width = output_width(out)
    checkpoints = summary["checkpoints"]
    head = key_values([*((f"checkpoint {i}", c["name"]) for i, c in enumerate(checkpoints, 1)),
                       ("queries", summary["queries"]),
                       ("reference rows", summary["reference_rows"]),
                       ("excluded (R = 0)", summary["excluded_queries"]),
                       ("classes", summary["labels"]["classes"]), ("k", summary["k"]),
                       ("average", summary["average"])], width)
    parts: list[Any] = [Text(title, style="italic"), head]
    names = list(checkpoints[0]["metrics"])
    rows = [[str(i), *(fmt(c["metrics"][m]) for m in names), fmt(c["ties_at_k"])]
            for i, c in enumerate(checkpoints, 1)]
    parts += fitted_tables("metrics", ["#", *names, "ties_at_k"], rows, width)
    target = checkpoints[0]["calibration"]["target"]
    rows = [[str(i), *(fmt(c["calibration"]["best_f1"][k])
                       for k in ("threshold", "f1", "precision", "recall")),
             *(fmt(c["calibration"]["target"][k]) for k in ("threshold", "precision", "recall"))]
            for i, c in enumerate(checkpoints, 1)]
    parts += fitted_tables(f"calibration: nearest neighbour within the threshold = same class "
                           f"(target {target['metric']} >= {fmt(target['value'])})",
                           ["#", "f1_threshold", "f1", "precision", "recall",
                            "target_threshold", "target_precision", "target_recall"], rows,
                           width)
    labels_shown, counts, maps = worst
    if len(labels_shown):
        rows = [[fmt(label), fmt(int(n)), *(fmt(float(v)) for v in m)]
                for label, n, m in zip(labels_shown, counts, maps, strict=True)]
        parts += fitted_tables(f"{len(rows)} worst classes (by checkpoint {len(checkpoints)}'s "
                               "map_at_r)", ["label", "queries",
                                             *(f"map_at_r #{i}" for i in
                                               range(1, len(checkpoints) + 1))], rows, width)
    bins = max(10, min(HIST_BINS, width - 9))
    for i, (d, same) in enumerate(nearest, 1):
        parts.append(Text(f"nearest-neighbour distance, same vs other class, #{i}",
                          style="bold"))
        parts += map(Text, histogram(d[same], d[~same], bins, ("same", "other")))
    parts.append(params_line(summary))
    write(out, width, parts)
