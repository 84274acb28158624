"""The README stays honest: its commands run on sample_data/, its Python example works, and CI
runs exactly its test command."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import reference as R

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
COMMANDS = [line for lang, body in BLOCKS if lang == "sh" for line in body.splitlines()
            if line.startswith("triplet-loss ") and "tcp://" not in line]  # no cluster here
SCREENFUL = 120  # lines: an example prints what a person reads, rows go to `| head` or -o


def test_readme_opens_with_two_setup_commands() -> None:
    lang, body = BLOCKS[0]
    lines = body.strip().splitlines()
    assert lang == "sh" and len(lines) == 2
    assert "pip install ." in lines[0] and "triplet-loss compute" in lines[0]
    assert "pip install '.[test]'" in lines[1] and "pytest" in lines[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install '.[test]'" in ci and "ruff check" in ci


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command: str, cli, tmp_path, monkeypatch) -> None:
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    monkeypatch.chdir(tmp_path)
    if "--triplets mined.parquet" in command:  # the recipe's second step needs its first
        first = next(c for c in COMMANDS if "--output mined.parquet" in c)
        assert cli(*shlex.split(first)[1:]).exit_code == 0
    if "|" in command:  # a pipeline: run it as the user would, through a shell
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
               f"{os.environ.get('PATH', '')}"}
        done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                              text=True, env=env, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", done.stderr  # `| head` ends quietly
        stdout = done.stdout
    else:
        result = cli(*shlex.split(command)[1:])
        assert result.exit_code == 0, result.stderr
        stdout = result.stdout
    assert stdout.strip()
    assert len(stdout.splitlines()) <= SCREENFUL


def test_readme_python_example_runs(monkeypatch) -> None:
    """It runs, and what it prints agrees with the float64 references: PyTorch's loss on the
    aligned files, batch-hard by brute force, and mine-negatives' scores."""
    monkeypatch.chdir(ROOT)
    code = next(body for lang, body in BLOCKS if lang == "python")
    names: dict = {}
    exec(compile(code, "README.md", "exec"), names)
    a, p, n = (np.load(f"sample_data/{k}.npy") for k in ("anchors", "positives", "negatives"))
    _, _, loss = R.triplet_losses(a, p, n, "minkowski", eps=1e-6, placement="difference")
    np.testing.assert_allclose(names["r"].value, loss.mean(), rtol=1e-12)
    np.testing.assert_allclose(names["r"].loss, loss, rtol=1e-12, atol=1e-12)
    x, y = np.load("sample_data/embeddings.npy"), np.load("sample_data/labels.npy")
    triplets, *_, mined = R.brute_force_mine(x, y, "hard", "hard")
    np.testing.assert_array_equal(names["m"].triplets, triplets)
    np.testing.assert_allclose(names["m"].summary["loss"], mined.mean(), rtol=1e-12)
    columns = names["n"].columns
    d = R.distance_matrix(x.astype(np.float64), "cosine")
    np.testing.assert_allclose(columns["score_an"], 1 - d[columns["anchor"], columns["negative"]],
                               atol=1e-6)
