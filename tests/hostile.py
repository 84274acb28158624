"""One harness for every command's bad input: a table of cases, run through the `cli` fixture.

A command's test module declares its table and gets its test from it:

    MINE = Table("mine", good_inputs=_good_inputs, cases=[
        Case("labels-length-differs", npy("y7.npy", LABELS[:7]),
             ("mine", "--embeddings", "{d}/x.npy", "--labels", "{d}/y7.npy", *OUT), 1,
             r"/y7\\.npy: 7 labels for 8 embedding rows"),
        ...])
    test_bad_input = MINE.test()

Each case runs in a fresh folder (`{d}` in argv) that `good_inputs` has filled; the case's file
factory then adds or spoils files there. The run must:
- end by SystemExit with the case's exit code (a crash also exits 1, so the type is checked);
- print no traceback and nothing on stdout;
- print exactly one stderr line, `triplet-loss: error: ...`, matching the case's pattern; for
  exit 1 (bad input) the line starts with the file it is about: a path of argv (without a
  `:KEY` suffix) or `<stdin>`;
- change nothing in the folder. A case with `-o PATH` runs twice: "fresh" (no file at PATH: none
  may appear, nor a temp file next to it) and "sentinel" (a file at PATH must keep its bytes).
"""

from __future__ import annotations

import builtins
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import snapshot

Maker = Callable[[Path, pytest.MonkeyPatch], None]
OUT = ("-o", "{d}/out.parquet")
SENTINEL = b"sentinel: must survive a failed run\n"
PREFIX = "triplet-loss: error: "


@dataclass(frozen=True)
class Case:
    id: str
    make: Maker | None  # adds or spoils files in the folder; None: the good inputs as they are
    argv: tuple[str, ...]  # "{d}" stands for the folder
    code: int  # 1 bad input, 2 usage error
    pattern: str  # re.search'ed in the one stderr line
    stdin: bytes | None = None
    xfail: str | None = None  # a known bug in the package: the case runs as a strict xfail


@dataclass(frozen=True)
class Table:
    """A command's bad-input cases and the good inputs every case starts from."""

    command: str
    good_inputs: Callable[[Path], None]
    cases: Sequence[Case]

    def __post_init__(self) -> None:
        ids = [c.id for c in self.cases]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        assert not duplicates, f"{self.command}: duplicate case ids {duplicates}"

    def params(self) -> list:
        params = []
        for case in self.cases:
            modes = ("fresh", "sentinel") if _output(case.argv) else ("fresh",)
            marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
            params += [pytest.param(case, mode, id=f"{case.id}-{mode}", marks=marks)
                       for mode in modes]
        return params

    def test(self) -> Callable[..., None]:
        """The parametrized test function; bind it to a `test_...` name in the test module."""
        @pytest.mark.parametrize(("case", "mode"), self.params())
        def test_bad_input(case: Case, mode: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch, cli) -> None:
            run_case(self, case, mode, tmp_path, monkeypatch, cli)
        return test_bad_input


def _output(argv: Sequence[str]) -> str | None:
    """The -o value, unless it is missing or `-` (not a file)."""
    value = argv[argv.index("-o") + 1] if "-o" in argv[:-1] else None
    return value if value != "-" else None


def run_case(table: Table, case: Case, mode: str, d: Path, monkeypatch: pytest.MonkeyPatch,
             cli) -> None:
    monkeypatch.chdir(d)
    table.good_inputs(d)
    argv = [a.format(d=d) for a in case.argv]
    output = d / _output(argv) if _output(argv) else None
    if case.make is not None:
        case.make(d, monkeypatch)
    existed = output is not None and (output.exists() or output.is_symlink())
    sentinel = (mode == "sentinel" and output is not None and not existed
                and output.parent.is_dir())
    if sentinel:
        output.write_bytes(SENTINEL)
    before = snapshot(d)

    result = cli(*argv, input=case.stdin)
    monkeypatch.undo()  # the factories' patches (os.access, open) must not fool the checks below

    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert isinstance(result.exception, SystemExit), (  # a crash also exits 1
        f"exit {result.exit_code}, exception {result.exception!r}, stderr {result.stderr!r}")
    assert result.exit_code == case.code, result.stderr
    assert result.stdout == "", "stdout carries data only, and a failed run has none"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), result.stderr
    assert lines[0].startswith(PREFIX), lines[0]
    assert re.search(case.pattern, lines[0]), lines[0]
    if case.code == 1:
        subject = lines[0].removeprefix(PREFIX).split(": ", 1)[0]
        named = {"<stdin>"} if case.stdin is not None else set()
        named |= {p for a in argv if "/" in a for p in (a, a.rsplit(":", 1)[0])}
        assert subject in named, f"a bad-input line starts with its file: {lines[0]}"
    assert snapshot(d) == before, "a failed run must not create or change any file"
    if output is not None and sentinel:
        assert output.read_bytes() == SENTINEL
    if output is not None and not existed and not sentinel:
        assert not output.exists(), "a failed run leaves no output file"
        if output.parent.is_dir():
            left = [p.name for p in output.parent.iterdir() if p.name.endswith(".tmp")]
            assert not left, f"temp files left behind: {left}"


# ---- file factories: each writes or spoils one file of the case's folder ---------------------


def npy(name: str, array: np.ndarray | Callable[[], np.ndarray], **kw: object) -> Maker:
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        np.save(d / name, array() if callable(array) else array, **kw)
    return make


def raw(name: str, data: bytes) -> Maker:
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        (d / name).write_bytes(data)
    return make


def text(name: str, data: str) -> Maker:
    return raw(name, data.encode())


def table(name: str, columns: dict[str, object]) -> Maker:
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        pq.write_table(pa.table(columns), d / name)
    return make


def npz(name: str, **arrays: np.ndarray) -> Maker:
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        np.savez(d / name, **arrays)
    return make


def spoil(name: str, row: int, col: int, value: float) -> Maker:
    """Overwrite one value of a good input, e.g. a NaN in row 3 of a.npy."""
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        a = np.load(d / name)
        a[row, col] = value
        np.save(d / name, a)
    return make


def truncated(name: str, source: str, cut: int = 7) -> Maker:
    """`source` (a good input) without its last `cut` bytes."""
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        (d / name).write_bytes((d / source).read_bytes()[:-cut])
    return make


def npy_header(name: str, shape: str, descr: str = "<f4") -> Maker:
    """A .npy whose header promises `shape` (written by hand: numpy refuses some of these)."""
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
        text += " " * (-(10 + len(text) + 1) % 64) + "\n"
        head = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()
        (d / name).write_bytes(head + b"\0" * 64)
    return make


def folder(name: str) -> Maker:
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        (d / name).mkdir()
    return make


def symlink(name: str, target: str) -> Maker:
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        (d / name).symlink_to(d / target)
    return make


def hardlink(name: str, target: str) -> Maker:
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        os.link(d / target, d / name)
    return make


def fifo(name: str) -> Maker:
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        os.mkfifo(d / name)
    return make


def copied(name: str, source: str) -> Maker:
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        (d / name).write_bytes((d / source).read_bytes())
    return make


def chmod_000(name: str) -> Maker:
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        if os.geteuid() == 0:
            pytest.skip("root reads a chmod 000 file; the simulated cases cover it")
        (d / name).chmod(0)
    return make


def access_denied(name: str) -> Maker:
    """As root, make os.access report `name` unreadable (what chmod 000 does for other users)."""
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        target, real = str(d / name), os.access

        def access(path: object, mode: int, **kw: object) -> bool:
            if str(path) == target and mode & os.R_OK:
                return False
            return real(path, mode, **kw)  # type: ignore[arg-type]

        mp.setattr(os, "access", access)
    return make


def open_denied(name: str) -> Maker:
    """os.access says yes but open() fails (ACLs, NFS root squash, a race): still one line."""
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        target, real = str(d / name), builtins.open

        def fake_open(file: object, *args: object, **kw: object) -> object:
            if str(file) == target:
                raise PermissionError(13, "Permission denied", target)
            return real(file, *args, **kw)  # type: ignore[call-overload]

        mp.setattr(builtins, "open", fake_open)
    return make


def both(*makers: Maker) -> Maker:
    def make(d: Path, mp: pytest.MonkeyPatch) -> None:
        for m in makers:
            m(d, mp)
    return make
