"""First contact: the terminal, the README and start-up.

Each test here failed before its fix: at 60-80 columns the report and `presets` cut numbers and
settings with an ellipsis, piped `presets` was 200 columns wide, README examples printed 963,512
rows, JSON `inputs` was keyed by path (a file in two roles kept one entry), the first run compiled
for seconds with no sign of life, compiled callees once per constant argument and (compute) every
distance, and Typer's pydantic coercion was imported on every run. The console entry's lighter
Typer app is checked against the whole app's output. No test times anything:
benchmarks/bench_startup.py does, by hand.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import csv_rows, ok
from numba.core import event
from test_readme import COMMANDS

from triplet_cli import compute_loss, mine_triplets
from triplet_cli.report import fmt

WIDTHS = (60, 80)
BOX_OR_SPACE = r"[\s│┃║|,]+"  # what separates values in a rendered table or settings list


def tokens(text: str) -> set[str]:
    return set(re.split(BOX_OR_SPACE, text))


def check_fits(text: str, width: int) -> None:
    assert "…" not in text
    too_long = [line for line in text.splitlines() if len(line) > width]
    assert not too_long, f"{len(too_long)} lines over {width} columns:\n" + "\n".join(too_long)


def hardest_values(rows: dict[str, np.ndarray], k: int = 10) -> set[str]:
    order = np.argsort(-rows["loss"], kind="stable")[:k]
    return {fmt(v.item()) for column in rows.values() for v in column[order]}


def summary_values(summary: dict) -> set[str]:
    keys = ("loss", "mean", "mean_nonzero", "active_fraction", "accuracy")
    return ({fmt(summary[k]) for k in keys if k in summary}
            | {fmt(v) for which in ("d_ap", "d_an") for v in summary[which].values()})


# ---- the report at terminal widths --------------------------------------------------------------
REPORTS = {
    "compute-triplets": lambda s: ["compute", "--embeddings", s / "embeddings.npy",
                                   "--triplets", s / "triplets.parquet"],
    "mine": lambda s: ["mine", "--embeddings", s / "embeddings.npy", "--labels",
                       s / "labels.npy", "--positive-strategy", "hard", "--strategy", "hard"],
}


@pytest.mark.parametrize("width", [*WIDTHS, None], ids=["60", "80", "piped"])
@pytest.mark.parametrize("report", list(REPORTS))
def test_report_never_cuts_a_number(report, width, cli, sample: Path, monkeypatch) -> None:
    if width is None:
        monkeypatch.delenv("COLUMNS", raising=False)  # piped: the usual 80 columns
    else:
        monkeypatch.setenv("COLUMNS", str(width))
    argv = REPORTS[report](sample)
    table = ok(cli(*argv))
    check_fits(table, width or 80)
    shown = tokens(table)
    summary = json.loads(ok(cli(*argv, "-f", "json")))
    assert summary_values(summary) <= shown
    assert hardest_values(csv_rows(ok(cli(*argv, "-f", "csv")))) <= shown
    assert all(line == line.rstrip() for line in table.splitlines())  # no trailing blanks


def test_report_on_a_wide_terminal_is_one_table(cli, sample: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    table = ok(cli(*REPORTS["compute-triplets"](sample)))
    header = [line for line in table.splitlines() if "index" in line]
    assert len(header) == 1 and all(c in header[0] for c in ("anchor", "d_an", "loss"))


def test_narrow_report_repeats_the_key_column(cli, sample: Path, monkeypatch) -> None:
    """Columns that do not fit are folded into a second table that repeats the row key."""
    monkeypatch.setenv("COLUMNS", "60")
    table = ok(cli(*REPORTS["compute-triplets"](sample)))
    headers = [line for line in table.splitlines() if re.search(r"\bindex\b", line)]
    assert len(headers) == 2


# ---- presets ----------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [*WIDTHS, None], ids=["60", "80", "piped"])
def test_presets_never_cut_a_setting(width, cli, monkeypatch) -> None:
    if width is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(width))
    text = ok(cli("presets"))
    check_fits(text, width or 80)
    shown = tokens(text)
    for name, preset in json.loads(ok(cli("presets", "-f", "json"))).items():
        assert name in shown
        for settings in (preset["compute"], preset["mine"]):
            for key, value in (settings or {}).items():
                assert f"{key}={value}" in shown, (name, key)


# ---- --help -----------------------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("command", ["compute", "mine", "evaluate", "mine-negatives", "presets"])
def test_help_cuts_no_flag_name_nor_word(command: str, width: int, cli, monkeypatch) -> None:
    """rich cut '--positive-strate…' and 'pytorch-metric-le…' at 80 columns: every flag of the
    command is shown whole, and nothing is cut."""
    import typer.main
    from typer import rich_utils

    from triplet_cli.cli import app

    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setattr(rich_utils, "MAX_WIDTH", None)  # (read once, from TERMINAL_WIDTH)
    text = ok(cli(command, "--help"))
    check_fits(text, width)
    shown = tokens(text)
    params = typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]
    for name in (n for p in params for n in (*p.opts, *p.secondary_opts)):
        assert name in shown, name


# ---- README examples --------------------------------------------------------------------------
ROW_FORMAT = re.compile(r"(--format|-f) (csv|jsonl)\b")


def test_readme_examples_never_flood_the_terminal() -> None:
    """Rows on stdout are piped (`| head`) or written with -o: a person runs these lines."""
    flooding = [c for c in COMMANDS if ROW_FORMAT.search(c) and "|" not in c]
    assert not flooding


def test_readme_describes_inputs_by_role() -> None:
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    assert "inputs{anchors: {path, shape, dtype}, ...}" in readme


# ---- JSON inputs keyed by role ----------------------------------------------------------------
def test_one_file_in_two_roles_keeps_both(cli, sample: Path) -> None:
    a, n = str(sample / "anchors.npy"), str(sample / "negatives.npy")
    result = cli("compute", "--anchors", a, "--positives", a, "--negatives", n, "-f", "json")
    assert result.exit_code == 0, result.stderr  # (it warns: every d_ap is 0)
    summary = json.loads(result.stdout)
    entry = {"shape": [1797, 32], "dtype": "float32"}
    assert summary["inputs"] == {"anchors": {"path": a, **entry},
                                 "positives": {"path": a, **entry},
                                 "negatives": {"path": n, **entry}}


def test_indexed_and_mined_inputs_by_role(cli, sample: Path) -> None:
    x, t = str(sample / "embeddings.npy"), str(sample / "triplets.parquet")
    summary = json.loads(ok(cli("compute", "--embeddings", x, "--triplets", t, "-f", "json")))
    assert list(summary["inputs"]) == ["embeddings", "triplets"]
    assert summary["inputs"]["triplets"] == {"path": t, "shape": [1797, 3], "dtype": "int64"}
    both = str(sample / "labelled.parquet")
    mined = json.loads(ok(cli("mine", "--embeddings", both, "-f", "json")))
    assert {r: v["path"] for r, v in mined["inputs"].items()} == {"embeddings": both,
                                                                  "labels": both}
    assert mined["inputs"]["labels"]["shape"] == [1797]


def test_library_arrays_have_no_path() -> None:
    rng = np.random.default_rng(0)
    a, p, n = (rng.standard_normal((5, 3)) for _ in range(3))
    inputs = compute_loss(a, p, n).summary["inputs"]
    assert inputs["anchors"] == {"path": None, "shape": [5, 3], "dtype": "float64"}
    x, y = rng.standard_normal((12, 3)), np.arange(12) % 3
    assert mine_triplets(x, y).summary["inputs"]["labels"]["path"] is None


# ---- first run: the compile notice ------------------------------------------------------------
class _Terminal:
    """A stderr that says it is a terminal, keeping what is written."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, s: str) -> int:
        self.parts.append(s)
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _compile(notice_fired: threading.Event | None = None) -> None:
    """What numba broadcasts around a kernel compile (a cache load broadcasts nothing)."""
    with event.trigger_event("numba:compile", data={}):
        with event.trigger_event("numba:compile", data={}):  # a nested callee
            pass
        if notice_fired is not None:
            assert notice_fired.wait(10)


def test_compile_notice_once_while_compiling() -> None:
    from triplet_cli.report import CompileNotice

    said: list[str] = []
    fired = threading.Event()
    with CompileNotice(lambda m: (said.append(m), fired.set()), after=0.0):
        _compile(fired)
        _compile(None)  # a second compile in the same run says nothing more
    assert len(said) == 1 and "compil" in said[0] and "first run" in said[0]


def test_no_compile_notice_for_a_short_compile_or_a_cache_load() -> None:
    from triplet_cli.report import CompileNotice

    said: list[str] = []
    with CompileNotice(said.append, after=3600.0) as notice:
        _compile(None)  # ends long before the notice is due: the timer is cancelled
    assert said == [] and not notice.pending
    with CompileNotice(said.append, after=0.0):
        pass  # no compile event at all (kernels loaded from the cache)
    assert said == []


def test_progress_tells_a_terminal_about_the_first_compile(monkeypatch) -> None:
    from triplet_cli import report

    notices: list[report.CompileNotice] = []

    class Recorded(report.CompileNotice):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            notices.append(self)

    for quiet, tty in ((False, True), (True, True), (False, False)):
        monkeypatch.setattr(report, "COMPILE_NOTICE_AFTER", 0.0)
        monkeypatch.setattr(report, "CompileNotice", Recorded)
        stderr = _Terminal()
        if not tty:
            monkeypatch.setattr(stderr, "isatty", lambda: False)
        monkeypatch.setattr(sys, "stderr", stderr)
        notices.clear()
        with report.progress(10, "triplets", enabled=not quiet) as advance:
            _compile(notices[0].said if notices else None)
            advance(10)
        monkeypatch.undo()
        told = "first run" in stderr.text
        assert told == (tty and not quiet), (quiet, tty, stderr.text)


# ---- start-up ---------------------------------------------------------------------------------
def test_typer_values_are_coerced_as_typer_does() -> None:
    """The direct coercion of common values gives what Typer's pydantic adapters give, and
    anything else (errors included) still goes through Typer."""
    from typer._click import Context
    from typer._click.exceptions import BadParameter
    from typer._coercion import build_runtime_param
    from typer.main import get_command

    from triplet_cli.cli import _direct_param, app

    values = ["1", "-3", "0", "007", "1.5", "-2e-3", ".5", "5.", "1e400", "nan", "inf", "x",
              "", " 2", "euclidean", "squared-euclidean", "EUCLIDEAN", "table", "json", "hard"]
    group = get_command(app)
    checked = 0
    for command in group.commands.values():
        ctx = Context(command)
        for param in command.params:
            if param.type_descriptor.annotation is bool:
                continue
            direct = _direct_param(param)
            typer_own = build_runtime_param(param.type_descriptor)
            for value in [*values, param.default]:
                try:
                    expected: object = typer_own.coerce(value, param, ctx)
                except BadParameter as e:
                    expected = ("error", e.format_message())
                try:
                    got: object = direct.coerce(value, param, ctx)
                except BadParameter as e:
                    got = ("error", e.format_message())
                same = got == expected or (got != got and expected != expected)  # nan
                assert same and type(got) is type(expected), (param.name, value, got, expected)
                checked += 1
    assert checked > 500


def test_json_run_imports_no_rich_pydantic_or_pyarrow(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for role in ("a", "p", "n"):
        np.save(tmp_path / f"{role}.npy", rng.standard_normal((100, 8), dtype=np.float32))
    code = (
        "import sys\n"
        "from triplet_cli.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, sorted(m for m in ('rich', 'pydantic', 'pyarrow') if m in sys.modules),"
        " file=sys.stderr)\n")
    argv = ["compute", "--anchors", "a.npy", "--positives", "p.npy", "--negatives", "n.npy",
            "--format", "json"]
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=600)
    assert json.loads(done.stdout)["count"] == 100
    assert done.stderr.strip().splitlines()[-1] == "0 []"


FIRST_RUN = """
import json, sys
import numpy as np
from numba.core import event, types
from triplet_cli import compute_loss, mine_triplets

compiled = []
class Recorder(event.Listener):
    def on_start(self, e):
        d = e.data["dispatcher"]
        compiled.append([d.py_func.__module__ + "." + d.py_func.__qualname__,
                         any(isinstance(t, types.Literal) for t in e.data["args"])])
    def on_end(self, e):
        pass
event.register("numba:compile", Recorder())
rng = np.random.default_rng(3)
x, y = rng.standard_normal((40, 4)).astype(np.float32), np.arange(40) % 4
a, p, n = (rng.standard_normal((9, 4)).astype(np.float32) for _ in range(3))
compute_loss(a, p, n)
phases = {"compute": list(compiled)}
for strategy in sys.argv[1:]:
    before = len(compiled)
    mine_triplets(x, y, strategy=strategy)
    phases[strategy] = compiled[before:]
print(json.dumps({**phases, "all": compiled}))
"""


def test_first_run_compiles_only_what_it_needs(tmp_path: Path) -> None:
    """A constant passed to a jitted callee (`False`, `0`, POS_HARD) compiles the callee once
    more per value (numba specialises on literal types): the first `mine` compiled six copies of
    mining._insert and five of _worth (now topk.insert, topk.worth). Callers pass typed values
    (np.bool_, np.int64) instead. A fresh numba cache in tmp_path: this is what the first run
    after installing compiles."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", FIRST_RUN, "hard", "semi-hard"], env=env,
                          capture_output=True, text=True, check=False, timeout=900)
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)
    compiled = runs["all"]
    ours = [name for name, _ in compiled if name.startswith("triplet_cli.")]
    assert "triplet_cli.mining._mine_tasks" in ours
    assert [name for name, literal in compiled if literal and name in ours] == []
    # one specialisation each (the same dtypes throughout), but for the mining kernel: one for
    # semi-hard, one for hard and easy (and the one-line choice of scratch inside it)
    kernels = Counter(name for name in ours if "<lambda>" not in name)
    assert kernels.pop("triplet_cli.mining._mine_tasks") == 2
    assert set(kernels.values()) == {1}
    # a first hard run compiles none of semi-hard's code, and a euclidean one no other distance
    by_hard = {name.rsplit(".", 1)[1] for name, _ in runs["hard"]
               if name.startswith("triplet_cli.")}
    assert "exact_top_k" in by_hard
    assert not by_hard & {"_semi_hard", "_windows", "stable_order", "_grid_scratch", "cosine",
                          "dot", "power_sum", "chebyshev", "manhattan"}
    assert "_semi_hard" in {name.rsplit(".", 1)[1] for name, _ in runs["semi-hard"]}
    # A euclidean `compute` compiles the kernel's square-sum path alone (square_pair, inlined
    # into it), not every distance: no call to distance or distance_pair is compiled. Nor,
    # for a short run (reductions.NUMPY_ROWS), the summary's passes.
    by_compute = {name.rsplit(".", 1)[1] for name, _ in runs["compute"]
                  if name.startswith("triplet_cli.")}
    assert "_aligned_losses" in by_compute
    assert not by_compute & {"distance", "distance_pair", "power_sum", "general",
                             "chunk_summary", "middle"}


RECORDED_RUN = """
import json, sys
import numpy as np
from numba.core import event
from triplet_cli import compute_loss
from triplet_cli.params import DistanceParams
from triplet_cli.topk import top_k

compiled = []
class Recorder(event.Listener):
    def on_start(self, e):
        compiled.append(e.data["dispatcher"].py_func.__qualname__)
    def on_end(self, e):
        pass
event.register("numba:compile", Recorder())
distance, k, calls = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
x = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
if "compute" in calls:
    compute_loss(x[:20], x[20:40], x[40:60], distance=distance, swap=True)
if "candidates" in calls:  # k positives and k negatives an anchor
    compute_loss(x[:20], x[20:80].reshape(20, 3, 8), x[80:140].reshape(20, 3, 8),
                 distance=distance)
top_k(x[:50], x, k, DistanceParams(distance).kernel())
print(json.dumps(compiled))
"""


def _compiled(tmp_path: Path, *args: str) -> set[str]:
    """What RECORDED_RUN compiles (function names) with a fresh numba cache."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", RECORDED_RUN, *args], env=env,
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    return {name.rsplit(".", 1)[-1] for name in json.loads(done.stdout)}


@pytest.mark.parametrize(("k", "needed", "not_needed"), [(5, "exact_top_k", "_sorted_top_k"),
                                                          (200, "_sorted_top_k", "exact_top_k")])
def test_top_k_compiles_one_selection(k: int, needed: str, not_needed: str,
                                      tmp_path: Path) -> None:
    """The block kernel compiles the selection its K needs, not the other."""
    compiled = _compiled(tmp_path, "euclidean", str(k))
    assert needed in compiled
    assert not_needed not in compiled


@pytest.mark.parametrize("distance", ["cosine", "dot"])
def test_cosine_and_dot_compile_no_other_distance(distance: str, tmp_path: Path) -> None:
    """compute and the top-k selection under cosine or dot (mine-negatives' similarities)
    compile that distance's path alone: not the bodies that dispatch on any code (`general`),
    nor the p-norms' (power_sum)."""
    compiled = _compiled(tmp_path, distance, "5", "compute")
    assert {"_aligned_losses", "distance", "exact_top_k"} <= compiled
    assert not compiled & {"general", "power_sum"}


def test_candidates_compile_the_square_path_alone(tmp_path: Path) -> None:
    """The k-candidates form under euclidean compiles distance_pair's square path, not the
    body that dispatches on any code (its first run on sample_data: 6.2 s to 5.2 s)."""
    compiled = _compiled(tmp_path, "euclidean", "5", "candidates")
    assert "_candidate_losses" in compiled
    assert not compiled & {"general", "power_sum"}


SQUARE_SETTINGS = [(code, p, placement) for code, p in ((0, 2.0), (1, 2.0), (3, 2.0), (5, 2.0))
                   for placement in range(4)]


@pytest.mark.parametrize("swap", [False, True])
def test_square_path_gives_the_general_paths_bits(swap: bool) -> None:
    """The loss kernel's square-sum path (which compiles only the square terms) gives the
    bits of its path for any distance."""
    from triplet_cli import _jit, distances, losses

    rng = np.random.default_rng(5)
    n, d = 300, 19  # d not a multiple of 4: the running sums' tail too
    x = rng.standard_normal((50, d)).astype(np.float32)
    ia, ip, ineg = (rng.integers(0, 50, n) for _ in range(3))
    checked = 0
    for code, p, placement in SQUARE_SETTINGS:
        if not distances.square_family(code, p, placement):
            continue
        out = {}
        for square in (True, False):
            rows = [np.empty(n) for _ in range(3)]
            tasks = -(-n // losses.ROWS_PER_TASK)  # all of them, on this thread
            losses._aligned_losses(0, tasks, x, x, x, ia, ip, ineg, code, p, 1e-3, placement,
                                   0.5, False, swap, *rows, np.empty(tasks, np.bool_),
                                   *_jit.one_of(square))
            out[square] = b"".join(r.tobytes() for r in rows)
        assert len(set(out.values())) == 1, (code, p, placement)
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("argv", [["--help"], [], ["compute", "--help"], ["mine", "--help"],
                                  ["presets"], ["bogus"], ["--version"], ["--help", "compute"],
                                  ["compute", "--bogus"]],
                         ids=["help", "no-args", "compute-help", "mine-help", "presets", "bogus",
                              "version", "help-first", "bad-option"])
def test_console_entry_builds_only_what_it_shows(argv, cli, capsys, monkeypatch) -> None:
    """main() builds only the command argv names (the top-level help: names and help text);
    what it prints is what the whole app prints."""
    from triplet_cli import cli as module

    registered = list(module.app.registered_commands)
    expected = cli(*argv)
    monkeypatch.setattr(sys, "argv", ["triplet-loss", *argv])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    out, err = capsys.readouterr()
    assert (out, err, exit_.value.code or 0) == (expected.stdout, expected.stderr,
                                                 expected.exit_code)
    assert module.app.registered_commands == registered
