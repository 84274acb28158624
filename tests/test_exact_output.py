"""Exact CLI output, so that a change to the help texts or the JSON report shows in review.

The expected texts live in tests/expected/; after a deliberate change, regenerate them with
`UPDATE_EXPECTED=1 python -m pytest tests/test_exact_output.py` and review the diff. The tiny
inputs use dyadic values, so every number is exact on any CPU but NDCG's, whose discounts
1/log2(i + 1) come from numpy's log2 (its SIMD paths differ by an ULP across CPUs): those
match the stored value to within 4 ULP.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

EXPECTED = Path(__file__).resolve().parent / "expected"
UPDATE = os.environ.get("UPDATE_EXPECTED") == "1"
HELP = [[], ["compute"], ["mine"], ["presets"], ["evaluate"], ["mine-negatives"]]


TRANSCENDENTAL = re.compile(r'("ndcg_at_\d+": )(-?[0-9.e+-]+)')
ULPS = 4


def check(name: str, text: str) -> None:
    path = EXPECTED / name
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_EXPECTED=1 and review it"
    stored = path.read_text()
    got, want = TRANSCENDENTAL.findall(text), TRANSCENDENTAL.findall(stored)
    assert [k for k, _ in got] == [k for k, _ in want], f"{name} changed: compare with {path}"
    for (key, g), (_, w) in zip(got, want, strict=True):
        a, b = float(g), float(w)
        assert abs(a - b) <= ULPS * np.spacing(abs(b)), f"{key}{g}: stored {w} in {path}"
    values = iter(w for _, w in want)
    text = TRANSCENDENTAL.sub(lambda m: m.group(1) + next(values), text)
    assert text == stored, f"{name} changed: compare with {path}"


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch) -> Path:
    """Four 2-d rows on a line, two classes: triplets whose distances are exact."""
    x = np.array([[0.0, 0.0], [1.0, 0.0], [2.25, 0.0], [1.5, 0.0], [3.25, 0.0]])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.array([0, 0, 0, 1, 1]))
    np.save(tmp_path / "a.npy", x[[0, 1, 2]])
    np.save(tmp_path / "p.npy", x[[1, 0, 0]])
    np.save(tmp_path / "n.npy", x[[3, 4, 3]])
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("argv", HELP, ids=lambda a: "-".join(a) or "top")
def test_help_text(cli, monkeypatch, argv: list[str]) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("TERMINAL_WIDTH", "100")
    r = cli(*argv, "--help")
    assert r.exit_code == 0, r.stderr
    check(f"help-{'-'.join(argv) or 'top'}.txt", r.stdout)
    assert cli(*argv, "-h").stdout == r.stdout
    assert "<bool>" not in r.stdout and "<str>" not in r.stdout  # (a flag takes no value)


@pytest.mark.parametrize(("name", "argv"), [
    ("compute", ["compute", "--anchors", "a.npy", "--positives", "p.npy", "--negatives",
                 "n.npy", "-f", "json"]),
    ("compute-indexed", ["compute", "--embeddings", "x.npy", "--triplets", "t.npy", "--margin",
                         "0.5", "-f", "json"]),
    ("mine", ["mine", "--embeddings", "x.npy", "--labels", "y.npy", "-f", "json"]),
    ("mine-batch-hard", ["mine", "--embeddings", "x.npy", "--labels", "y.npy", "--strategy",
                         "hard", "--positive-strategy", "hard", "--preset",
                         "sentence-transformers", "-f", "json"]),
    ("evaluate", ["evaluate", "--embeddings", "x.npy", "--embeddings", "x2.npy", "--labels",
                  "y.npy", "--at", "1,2", "--target", "precision=0.5", "-f", "json"]),
    ("mine-negatives", ["mine-negatives", "--queries", "a.npy", "--corpus", "x.npy",
                        "--positives", "p.npy", "--similarity", "euclidean", "--num-negatives",
                        "2", "--absolute-margin", "0.5", "-f", "json"]),
])
def test_json_report(cli, tiny: Path, name: str, argv: list[str]) -> None:
    np.save(tiny / "t.npy", np.array([[0, 1, 3], [1, 2, 4], [3, 4, 0]]))
    np.save(tiny / "x2.npy", np.load(tiny / "x.npy")[:, ::-1] * 2)  # evaluate's 2nd checkpoint
    r = cli(*argv)
    assert r.exit_code == 0, r.stderr
    check(f"json-{name}.json", re.sub(r"\s+$", "", r.stdout) + "\n")
