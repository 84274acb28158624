"""evaluate --plot: nearest-neighbour distance distributions and precision / recall / F1 against
the threshold, one column per checkpoint. matplotlib is an optional extra, imported only here."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .calibration import Curve
from .errors import InputError, TripletLossError, UsageError, first_line
from .readers import same_file
from .writers import atomic_path, require_replaceable

FORMATS = (".png", ".pdf", ".svg")
INSTALL = "--plot needs matplotlib: pip install 'triplet-loss[plot]'"


def check_plot(path: str, inputs: Sequence[str]) -> None:
    """Before any work: matplotlib importable, a known suffix, a writable folder, not an input."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"--plot {path}: unknown suffix; use {', '.join(FORMATS)}")
    if os.path.isdir(path):
        raise InputError("is a directory; --plot needs a file name", path)
    if any(same_file(path, p) for p in inputs):
        raise UsageError(f"--plot {path} is also an input; refusing to overwrite it")
    require_replaceable(path, "--plot")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise InputError(f"folder {folder} does not exist or is not writable", path)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise TripletLossError(INSTALL) from None
    except Exception as e:  # (an MPLBACKEND it does not know, a config it cannot read)
        raise TripletLossError(f"--plot: matplotlib does not start: {first_line(e)}") from None


def draw(path: str, checkpoints: Sequence[tuple[str, np.ndarray, np.ndarray, Curve]]) -> None:
    """Per checkpoint (name, nearest distances, same class, calibration curve): the two
    distance histograms on one axis above the curves; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(checkpoints), figsize=(5 * len(checkpoints), 7),
                             squeeze=False)
    for col, (name, d, same, curve) in enumerate(checkpoints):
        top, bottom = axes[0, col], axes[1, col]
        edges = np.histogram_bin_edges(d, bins=60) if d.size else 10
        top.hist(d[same], bins=edges, alpha=0.6, label="same class")
        top.hist(d[~same], bins=edges, alpha=0.6, label="other class")
        top.set_title(name, fontsize=9)
        top.set_xlabel("nearest-neighbour distance")
        top.legend()
        for values, label in ((curve.precision, "precision"), (curve.recall, "recall"),
                              (curve.f1, "F1")):
            bottom.plot(curve.thresholds, values, label=label)
        bottom.set_xlabel("distance threshold")
        bottom.set_ylim(0, 1.02)
        bottom.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix[1:].lower())
    plt.close(fig)
