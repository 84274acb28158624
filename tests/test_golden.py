"""The golden corpus (tests/golden/): every case, run again now, gives the stored rows.

Default: byte-identical rows (sha256 of every column: mined triplet indices, d_ap, d_an, loss,
the CLI's index column and jsonl text), counts exact, the summary's loss and mean to 1e-12.
With GOLDEN_TOLERANCE=1e-10 (for a deliberate change of the float64 summation order): row counts
and triplet indices still exact, d_ap, d_an and loss of the stored sample rows within
1e-10 x the case's distance scale, the summary's loss and mean likewise.

A failure names the case, the column and the first differing row. Regenerating the corpus
(`python tests/golden/generate.py`) is a deliberate act: see tests/golden/README.md.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
TOLERANCE = float(os.environ.get("GOLDEN_TOLERANCE") or 0.0)
HAS_DASK = find_spec("distributed") is not None


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


runner = _load("golden_runner", GOLDEN / "runner.py")
CORPUS = runner.load_corpus()
CASES = CORPUS["cases"]


def _params() -> list[object]:
    params = []
    for name, entry in CASES.items():
        marks = []
        if entry["spec"]["kind"] == "dask":
            marks.append(pytest.mark.skipif(not HAS_DASK, reason="needs Dask (distributed)"))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


@pytest.mark.parametrize("name", _params())
def test_golden_case(name: str, tmp_path: Path) -> None:
    entry = CASES[name]
    rows = runner.run_case(entry["spec"], tmp_path)
    problems = runner.compare(name, entry, rows, TOLERANCE)
    assert not problems, "\n".join(problems)


def test_corpus_matches_generator() -> None:
    """generate.py's cases are the stored ones: a case added or changed there without
    regenerating (a deliberate act) is caught here."""
    generate = _load("golden_generate", GOLDEN / "generate.py")
    specs = generate.cases()
    stored = {name: entry["spec"] for name, entry in CASES.items()}
    assert list(specs) == list(stored), "case names differ from corpus.json: regenerate?"
    changed = [name for name in specs if specs[name] != stored[name]]
    assert not changed, f"specs differ from corpus.json: {changed}"


def test_same_rows_across_paths() -> None:
    """Streamed vs in memory, CLI vs library, Dask vs one process: the stored rows agree."""
    generate = _load("golden_generate", GOLDEN / "generate.py")
    assert not generate.same_rows_problems(CASES)
    assert sum("same_rows_as" in e["spec"] for e in CASES.values()) >= 10


def test_corpus_arrays_present() -> None:
    arrays = runner.stored_arrays()
    for name, entry in CASES.items():
        values = arrays[f"{name}/sample_values"]
        assert values.shape == (min(entry["rows"], 200), 3), name
        assert f"{name}/digest_values" in arrays, name
