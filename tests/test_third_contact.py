"""What a third round of new users fed the tool: each test here failed before its fix.

Query and reference labels of different kinds (a traceback) or of int64 beside uint64 (classes
merged through floats), 20-digit IDs in a CSV label file, pair columns of two integer types,
CSV files that are not UTF-8, an empty .npy, pyarrow and nullable containers in the library,
and a view of the queries passed as the corpus.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triplet_cli import TripletLossError, compute_loss, mine_triplets, writers
from triplet_cli.evaluation import evaluate
from triplet_cli.negatives import mine_negatives
from triplet_cli.validate import as_array

BIG = 2**53 + 1  # IDs a float64 cannot tell from their neighbours


def labelled(n: int = 40, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), np.arange(n) % 4


def column_of_rows(m: np.ndarray) -> np.ndarray:
    """A 1-D object array holding one array per row, as a pandas column of lists is."""
    rows = np.empty(len(m), dtype=object)
    rows[:] = list(m)
    return rows


def one_error_line(result, *words: str) -> None:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for w in words:
        assert w in result.stderr, result.stderr


# ---- labels of two files ----------------------------------------------------------------------
def test_reference_labels_of_another_kind_are_one_line(cli, tmp_path: Path) -> None:
    x, y = labelled()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "ry.csv").write_text("".join(f"c{v}\n" for v in y))
    one_error_line(cli("evaluate", "--embeddings", tmp_path / "x.npy", "--labels",
                       tmp_path / "y.npy", "--reference", tmp_path / "x.npy",
                       "--reference-labels", tmp_path / "ry.csv"), "ry.csv", "one kind")
    with pytest.raises(TripletLossError, match="one kind"):
        evaluate(x, y, reference=x, reference_labels=y.astype(str))


def test_int64_and_uint64_labels_keep_their_classes() -> None:
    x, y = labelled()
    ids = (BIG + y).astype(np.int64)
    same = evaluate(x, ids, reference=x.copy(), reference_labels=ids).summary
    mixed = evaluate(x, ids, reference=x.copy(), reference_labels=ids.astype(np.uint64)).summary
    assert mixed["labels"]["classes"] == same["labels"]["classes"] == 4
    assert mixed["checkpoints"] == same["checkpoints"]


def test_csv_integer_ids_beyond_int64_read_exactly(tmp_path: Path) -> None:
    x, y = labelled()
    ids = (np.uint64(2**64 - 1000) + y.astype(np.uint64))
    (tmp_path / "ids.csv").write_text("label\n" + "".join(f"{v}\n" for v in ids.tolist()))
    (tmp_path / "bare.csv").write_text("".join(f"{v}\n" for v in ids.tolist()))
    expected = mine_triplets(x, ids)
    for name in ("ids.csv", "bare.csv"):
        got = mine_triplets(x, str(tmp_path / name))
        np.testing.assert_array_equal(got.triplets, expected.triplets)
        assert got.summary["loss"] == expected.summary["loss"]


@pytest.mark.parametrize("quote", ["", '"'])
def test_csv_codes_with_leading_zeros_and_ids_beyond_uint64_stay_text(tmp_path: Path,
                                                                       quote: str) -> None:
    """'7', '07' and '007' are three classes (as in a string .npy), not the number 7; 20-digit
    IDs beyond uint64 are their text, not floats that lose digits."""
    x, y = labelled()
    for name, names in (("codes", ["7", "07", "007", "8"]),
                        ("ids", ["12345678901234567890", "22345678901234567890",
                                 "22345678901234567891", "32345678901234567890"])):
        labels = np.array(names)[y % 4]
        (tmp_path / f"{name}.csv").write_text(
            "label\n" + "".join(f"{quote}{v}{quote}\n" for v in labels))
        got = mine_triplets(x, str(tmp_path / f"{name}.csv"))
        assert got.summary["labels"]["classes"] == len(set(labels.tolist()))
        np.testing.assert_array_equal(got.triplets, mine_triplets(x, labels).triplets)


def test_csv_float_labels_still_read_as_floats(tmp_path: Path) -> None:
    x, y = labelled()
    (tmp_path / "f.csv").write_text("label\n" + "".join(f"{v}.0\n" for v in y))
    np.testing.assert_array_equal(mine_triplets(x, str(tmp_path / "f.csv")).triplets,
                                  mine_triplets(x, y).triplets)


# ---- index columns ----------------------------------------------------------------------------
def test_pair_columns_of_two_integer_types(tmp_path: Path) -> None:
    x = np.random.default_rng(1).standard_normal((30, 5))
    q, p = np.arange(10), np.arange(10) + 10
    expected = mine_negatives(x, x, np.stack([q, p], axis=1)).columns
    for qt, pt in ((np.int64, np.uint64), (np.int8, np.uint64), (np.uint32, np.int16)):
        table = pa.table({"query": q.astype(qt), "positive": p.astype(pt)})
        pq.write_table(table, tmp_path / "pairs.parquet")
        for pairs in (str(tmp_path / "pairs.parquet"), table):
            got = mine_negatives(x, x, pairs).columns
            assert got.keys() == expected.keys()
            for c in got:
                np.testing.assert_array_equal(got[c], expected[c])


# ---- text that is not UTF-8, empty files -------------------------------------------------------
@pytest.mark.parametrize(("encode", "words"), [
    (lambda text: text.encode("utf-16"), ("UTF-16", "UTF-8")),
    (lambda text: b"\xff" + text.encode(), ("not UTF-8 text", "0xff")),
])
def test_csv_that_is_not_utf8_is_one_line(cli, tmp_path: Path, encode,
                                          words: tuple[str, ...]) -> None:
    x, _ = labelled(n=3)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "y.csv").write_bytes(encode("label\n0\n1\n0\n"))
    (tmp_path / "t.csv").write_bytes(encode("anchor,positive,negative\n0,1,2\n"))
    one_error_line(cli("mine", "--embeddings", tmp_path / "x.npy", "--labels",
                       tmp_path / "y.csv"), "y.csv", *words)
    one_error_line(cli("compute", "--embeddings", tmp_path / "x.npy", "--triplets",
                       tmp_path / "t.csv"), "t.csv", *words)
    with pytest.raises(TripletLossError, match="UTF"):
        mine_triplets(x, str(tmp_path / "y.csv"))


def test_latin1_labels_are_called_text_that_is_not_utf8(cli, tmp_path: Path) -> None:
    x, _ = labelled(n=4)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "y.csv").write_bytes("label\ncafé1\ncafé2\ncafé1\ncafé2\n".encode("latin-1"))
    one_error_line(cli("mine", "--embeddings", tmp_path / "x.npy", "--labels",
                       tmp_path / "y.csv"), "y.csv", "not UTF-8")


def test_an_empty_npy_is_called_empty(cli, tmp_path: Path) -> None:
    x, _ = labelled(n=4)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "e.npy").write_bytes(b"")
    one_error_line(cli("compute", "--anchors", tmp_path / "e.npy", "--positives",
                       tmp_path / "x.npy", "--negatives", tmp_path / "x.npy"), "e.npy",
                   "is empty (0 bytes)")


# ---- library containers ------------------------------------------------------------------------
def test_pyarrow_containers_give_the_numbers_of_their_arrays() -> None:
    rng = np.random.default_rng(2)
    a, p, n = (rng.standard_normal((12, 4)).astype(np.float32) for _ in range(3))
    expected = compute_loss(a, p, n).loss
    lists = [pa.array(list(m), pa.list_(pa.float32())) for m in (a, p, n)]
    for form in (lambda i, m: pa.table({"emb": lists[i]}),
                 lambda i, m: pa.chunked_array([lists[i][:5], lists[i][5:]]),
                 lambda i, m: pa.table({f"c{k}": m[:, k] for k in range(4)}),
                 lambda i, m: column_of_rows(m)):
        got = compute_loss(*(form(i, m) for i, m in enumerate((a, p, n)))).loss
        np.testing.assert_array_equal(got, expected)


def test_object_arrays_of_numbers_and_missing_values() -> None:
    assert as_array(np.array([np.float32(1.5), 2.5, 3], dtype=object), "x").dtype == np.float64
    x, y = labelled(n=6)
    boxed = x.astype(object)
    boxed[3, 2] = None
    with pytest.raises(TripletLossError, match="row 3 contains NaN"):
        compute_loss(boxed, x, x[::-1])
    rows = column_of_rows(x)
    rows[4] = None
    with pytest.raises(TripletLossError, match="row 4 is None, not a row of values"):
        compute_loss(rows, x, x[::-1])
    strings = np.array([f"c{v}" for v in y], dtype=object)  # labels stay strings
    assert as_array(strings, "labels").dtype == object


# ---- the corpus is the queries -----------------------------------------------------------------
def test_a_view_of_the_queries_is_the_queries() -> None:
    x = np.random.default_rng(3).standard_normal((30, 5))
    pairs = np.stack([np.arange(10), np.arange(10) + 10], axis=1)
    same = mine_negatives(x, x, pairs).summary
    assert mine_negatives(x, x[:], pairs).summary == same
    assert mine_negatives(x, x.copy(), pairs).summary != same  # other memory: other rows


# ---- environments: caches, signals, streams, terminals -----------------------------------------
SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
COMPUTE = ["compute", f"--anchors={SAMPLE}/anchors.npy", f"--positives={SAMPLE}/positives.npy",
           f"--negatives={SAMPLE}/negatives.npy"]
CACHED = '''
from triplet_cli._jit import jit

@jit
def twice(x):
    return 2 * x

print(twice(21))
'''


def _cached_run(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(folder / "kernel.py")], capture_output=True,
                          text=True, timeout=120, env={**os.environ,
                                                       "NUMBA_CACHE_DIR": str(folder / "c")})


def test_a_cache_cut_short_or_unwritable_costs_a_compile(tmp_path: Path) -> None:
    """A truncated cache file (an interrupted CI cache restore) failed every later run with an
    UnpicklingError; a cache that cannot be written (a full disk) failed the run."""
    (tmp_path / "kernel.py").write_text(CACHED)
    assert _cached_run(tmp_path).stdout == "42\n"
    saved = list((tmp_path / "c").rglob("*.nb[ci]"))
    assert saved
    for f in saved:
        f.write_bytes(f.read_bytes()[:20])
    run = _cached_run(tmp_path)
    assert (run.returncode, run.stdout) == (0, "42\n"), run.stderr
    for f in (tmp_path / "c").rglob("*.nb[ci]"):
        f.unlink()
        f.mkdir()  # a save there fails as on a full disk
    run = _cached_run(tmp_path)
    assert (run.returncode, run.stdout) == (0, "42\n"), run.stderr



def test_a_cache_index_cut_short_is_rewritten(tmp_path: Path) -> None:
    """numba's save reads the index first: one cut short failed every save, so every later
    run compiled again, silently."""
    (tmp_path / "kernel.py").write_text(CACHED + "print(sum(twice.stats.cache_hits.values()))\n")
    assert _cached_run(tmp_path).stdout == "42\n0\n"
    assert _cached_run(tmp_path).stdout == "42\n1\n"
    for f in (tmp_path / "c").rglob("*.nbi"):
        f.write_bytes(f.read_bytes()[:10])
    assert _cached_run(tmp_path).stdout == "42\n0\n"  # one compile
    assert _cached_run(tmp_path).stdout == "42\n1\n"  # then loaded again


CALLER = '''
import sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]  # this copy
sys.path.insert(0, sys.argv[1])
import numpy as np
from triplet_cli import distances
assert distances.__file__.startswith(sys.argv[1])
x = np.ones(8, np.float32)
print(distances.distance(x, x + 1, distances.SquareCode(0), 2.0, 0.0, 0),
      sum(distances.distance.stats.cache_hits.values()))
'''


def test_an_edit_to_a_callees_module_recompiles(tmp_path: Path) -> None:
    """numba checks a cached kernel against its own file only, and the cache holds the code of
    what it calls: after an edit to lanes.py, distances.distance (whose sums lanes.py writes)
    was loaded from the cache, running the old code."""
    import triplet_cli

    copy = tmp_path / "copy"
    shutil.copytree(Path(triplet_cli.__file__).parent, copy / "triplet_cli",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "caller.py").write_text(CALLER)

    def run() -> str:
        done = subprocess.run([sys.executable, str(tmp_path / "caller.py"), str(copy)],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "c")})
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run() == "2.8284271247461903 0\n"  # compiled
    assert run() == "2.8284271247461903 1\n"  # loaded from the cache
    with (copy / "triplet_cli" / "lanes.py").open("a") as f:
        f.write("# an edit\n")
    assert run() == "2.8284271247461903 0\n"  # compiled again, not the cached code
    assert run() == "2.8284271247461903 1\n"


def test_an_unreadable_module_leaves_numbas_own_check(monkeypatch) -> None:
    """The package-wide stamp reads every module; one that cannot be read must not fail the
    import of a kernel module (numba takes the stamp when a kernel is declared)."""
    from triplet_cli import _jit

    class Locator:
        _py_file = _jit.__file__

    whole = _jit._package_stamp(Locator())

    def unreadable() -> str:
        raise PermissionError("a module without read permission")

    monkeypatch.setattr(_jit, "_sources_hash", unreadable)
    assert _jit._package_stamp(Locator()) == _jit._file_stamp(Locator()) != whole


@pytest.mark.parametrize("given", ["/proc/no-such-folder", "a-file"])
def test_an_unusable_numba_cache_dir_falls_back(monkeypatch, tmp_path: Path, given: str) -> None:
    """With the package read-only and no other folder, numba refused every kernel ('no locator
    available'): a traceback."""
    from triplet_cli import _jit

    (tmp_path / "a-file").write_text("")
    given = str(tmp_path / given) if not given.startswith("/") else given
    package = str(Path(_jit.__file__).parent)
    monkeypatch.setenv("NUMBA_CACHE_DIR", given)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != package)
    assert _jit._cache_folder()
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "home" / "triplet-loss" /
                                                f"numba-{_jit.__version__}")
    monkeypatch.setenv("NUMBA_CACHE_DIR", given)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # not absolute: ignored (XDG rules)
    monkeypatch.setenv("HOME", "/proc/no-home")
    monkeypatch.setattr(tempfile, "gettempdir", lambda: (_ for _ in ()).throw(
        FileNotFoundError("No usable temporary directory found")))
    assert not _jit._cache_folder()  # every run compiles
    assert "NUMBA_CACHE_DIR" not in os.environ
    assert not Path("relative").exists()


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("NUMBA_DISABLE_JIT", "1", "NUMBA_DISABLE_JIT is set: triplet-loss runs compiled kernels "
     "only; unset it"),
    ("NUMBA_NUM_THREADS", "0", "NUMBA_NUM_THREADS=0: give a number of threads >= 1, or unset it"),
    ("NUMBA_NUM_THREADS", "abc", "NUMBA_NUM_THREADS=abc: give a number of threads >= 1, or "
     "unset it"),
])
def test_numba_settings_that_cannot_run_are_one_line(variable: str, value: str,
                                                     message: str) -> None:
    """Each was a traceback (numba's import raised, or intrinsics failed without compiling)."""
    run = subprocess.run([sys.executable, "-m", "triplet_cli", *COMPUTE], capture_output=True,
                         text=True, timeout=120, env={**os.environ, variable: value})
    assert (run.returncode, run.stderr) == (2, f"triplet-loss: error: {message}\n")

IMPORT_FIRST = """
import sys
try:
    import triplet_cli.{}
except Exception as e:
    print(type(e).__name__)
"""


def test_any_module_imported_first_loads_numba_after_its_settings_are_checked() -> None:
    """numba loads through _jit alone (after the cache folder is chosen and NUMBA_NUM_THREADS
    checked), whichever module a library user imports first: a kernel module that imported
    numba itself raised numba's ValueError for NUMBA_NUM_THREADS=0."""
    package = Path(__file__).parents[1] / "triplet_cli"
    modules = sorted(f.stem for f in package.glob("*.py") if f.stem != "__main__")
    assert "mining" in modules and "lanes" in modules
    env = {**os.environ, "NUMBA_NUM_THREADS": "0"}
    for module in modules:
        run = subprocess.run([sys.executable, "-c", IMPORT_FIRST.format(module)], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
        assert run.stdout.strip() in ("", "UsageError"), (module, run.stdout, run.stderr)


def test_a_read_only_install_without_a_writable_home_caches_in_tmp(monkeypatch,
                                                                    tmp_path: Path) -> None:
    from triplet_cli import _jit

    package = str(Path(_jit.__file__).parent)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-such-home")  # no folder can be made there
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != package)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert _jit._cache_folder()
    assert os.environ["NUMBA_CACHE_DIR"].startswith(str(tmp_path / "triplet-loss-"))


def test_a_stop_swallowed_during_a_compile_is_honoured_before_the_commit(cli, monkeypatch,
                                                                         tmp_path: Path) -> None:
    """Ctrl-C during a first run's compile was swallowed by numba's callbacks: exit 0, the
    output written. The signal is remembered and checked before --output replaces its file."""
    from triplet_cli import cli as app

    monkeypatch.setattr(app, "_received", [signal.SIGINT])
    result = cli(*COMPUTE, "-o", tmp_path / "rows.parquet")
    assert result.exit_code == 130
    assert result.stderr == "triplet-loss: interrupted; no output written\n"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_a_gate_holds_when_the_report_reader_left(fmt: str, tmp_path: Path) -> None:
    run = subprocess.run(["bash", "-o", "pipefail", "-c", f"{sys.executable} -m triplet_cli "
                          + " ".join([*COMPUTE, "--fail-above", "0.1", "-f", fmt]) + " | true"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 3, run.stderr


def test_an_ascii_stdout_gets_an_ascii_table(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "triplet_cli", *COMPUTE], capture_output=True,
                         timeout=120, env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.isascii() and b"0.614345" in run.stdout


def test_a_closed_stderr_costs_only_the_messages(tmp_path: Path) -> None:
    """With stderr closed, a run that warns lost its rows and exited 1, and an error line went
    into whatever file took descriptor 2."""
    same = [*COMPUTE[:2], f"--positives={SAMPLE}/anchors.npy", COMPUTE[3]]  # warns: zero d_ap
    run = subprocess.run(["bash", "-c", f"{sys.executable} -m triplet_cli "
                          + " ".join([*same, "-f", "csv"]) + " 2>&-"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0 and len(run.stdout.splitlines()) == 1798


@pytest.mark.parametrize(("columns", "argv", "loss"), [
    ("24", COMPUTE, "0.614345"),
    ("30", ["mine", f"--embeddings={SAMPLE}/embeddings.npy", f"--labels={SAMPLE}/labels.npy"],
     "0.951361"),
])
def test_a_narrow_terminal_never_cuts_a_number(cli, monkeypatch, columns: str,
                                               argv: list[str], loss: str) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    result = cli(*argv)
    assert result.exit_code == 0
    assert loss in result.stdout and "…" not in result.stdout


# ---- a fourth round: the library in loops, numeric edges ----------------------------------------
@pytest.mark.parametrize("call", [
    lambda x, y: mine_triplets(x * 100, y, p=200),
    lambda x, y: mine_triplets(x * 1e31, y, p=10),
    lambda x, y: evaluate(x * 100, y, p=200),
    lambda x, y: mine_negatives(x * 100, x * 100, np.stack([np.arange(8), np.arange(8) + 8], 1),
                                p=200),
])
def test_direct_distances_that_overflow_are_refused(call) -> None:
    """An infinite minkowski distance crashed semi-hard mining (SIGSEGV) or gave NaN losses,
    0 triplets, or -inf scores, with exit 0."""
    x, y = labelled(n=40)
    with pytest.raises(TripletLossError, match="overflows float64"):
        call(x, y)


def test_direct_distances_of_close_values_are_not_refused() -> None:
    x, y = labelled(n=40)
    assert math.isfinite(mine_triplets(x + 100, y, p=200).summary["loss"])  # differences ~ 1


def test_the_semi_hard_grid_clamps_nan_and_inf() -> None:
    from triplet_cli.mining import _cell

    assert _cell(math.nan, 0.0, 1.0, 9.0) == 0
    assert _cell(math.inf, 0.0, 0.0, 9.0) == 0  # inf * 0 is NaN
    assert _cell(math.inf, 0.0, 1.0, 9.0) == 9
    assert _cell(2.5, 0.0, 1.0, 9.0) == 3


def test_cosine_rows_too_small_to_square_are_zero_rows() -> None:
    x, y = labelled(n=40)
    x[5] = 1e-170
    with pytest.raises(TripletLossError, match="row 5 is a zero vector"):
        mine_triplets(x, y, distance="cosine", eps=0)


def test_evaluate_params_are_plain_and_its_own() -> None:
    x, y = labelled(n=40)
    at = [np.int64(1), np.int64(3)]
    summary = evaluate(x, y, k=np.int64(5), at=at).summary
    at.append(99)
    assert summary["params"]["k"] == 5 and summary["params"]["at"] == [1, 3]
    json.dumps(summary)
    assert evaluate(x, y, at=np.array([1, 3])).summary["params"]["at"] == [1, 3]


@pytest.mark.parametrize(("call", "message"), [
    (lambda x, y: compute_loss(x, x, x, preset=["torch"]), "unknown preset"),
    (lambda x, y: evaluate(x, y, fail_below=0.5), "fail_below must be gates"),
    (lambda x, y: evaluate(x, y, fail_below=[1]), "fail_below must be gates"),
    (lambda x, y: mine_negatives(None, x, np.array([[0, 1]])), "give the queries"),
    (lambda x, y: compute_loss(x.astype(np.longdouble), x, x), "long double"),
])
def test_bad_library_arguments_are_triplet_loss_errors(call, message: str) -> None:
    x, y = labelled(n=40)
    if np.dtype(np.longdouble).itemsize == 8 and "long" in message:
        pytest.skip("long double is float64 here")
    with pytest.raises(TripletLossError, match=message):
        call(x, y)


def test_an_infinite_margin_raises_no_numpy_warning(cli, tmp_path: Path) -> None:
    x = np.random.default_rng(4).standard_normal((30, 5))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "pairs.npy", np.stack([np.arange(10), np.arange(10) + 10], 1))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = cli("mine-negatives", "--queries", tmp_path / "x.npy", "--corpus",
                     tmp_path / "x.npy", "--pairs", tmp_path / "pairs.npy", "--absolute-margin",
                     "inf", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert not [w for w in seen if issubclass(w.category, RuntimeWarning)]


def test_evaluate_npy_leaves_out_labels_float64_cannot_hold(tmp_path: Path) -> None:
    """20-digit IDs in evaluate's .npy output were cast to float64: every class one value."""
    x, y = labelled(n=40)
    ids = np.uint64(2**64 - 1000) + y.astype(np.uint64)
    from triplet_cli.evaluation import prepare_evaluate

    assert "label" not in prepare_evaluate(x, ids).npy_columns
    assert "label" in prepare_evaluate(x, y).npy_columns


def test_a_preset_margin_keeps_its_source_under_soft_margin() -> None:
    """tf-similarity lists margin 0 among its settings; its runs credited it to soft margin."""
    x, y = labelled(n=40)
    params = mine_triplets(x, y, preset="tf-similarity").summary["params"]
    assert params["margin"] == 0.0 and params["sources"]["margin"] == "preset tf-similarity"
    assert compute_loss(x, x[::-1], x, soft_margin=True).summary["params"]["sources"][
        "margin"] == "default with --soft-margin"


def test_identical_rows_pass_the_direct_distance_range_check() -> None:
    """The check took the log of a spread of 0 (every row the same, --eps 0): a ValueError."""
    x, y = np.ones((10, 3)), np.arange(10) % 2
    assert mine_triplets(x, y, p=3, eps=0).triplets.shape == (40, 3)


# ---- stopped mid-way (a large-input audit) ----------------------------------------------------


def test_a_signal_during_a_compile_ends_at_once_and_leaves_no_file(tmp_path: Path) -> None:
    """Raised into numba's compiler, an interrupt was swallowed by an LLVM callback (the run
    went on) or left LLVM's lock held (the next compile hung): during a compile the handler
    removes the run's temporary files, says why, and exits."""
    script = f"""
import signal, sys
from triplet_cli import _jit, cli, writers
with writers.atomic_path({str(tmp_path / 'out.parquet')!r}) as tmp:
    open(tmp, "wb").write(b"rows")
    _jit._Compiles.under_way = 1  # as during a compile
    cli._stop(signal.SIGTERM, None)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 128 + signal.SIGTERM
    assert done.stderr == "triplet-loss: terminated; no output written\n"
    assert list(tmp_path.iterdir()) == []


def test_a_signal_during_a_compile_takes_the_progress_bar_down_first() -> None:
    """os._exit skips the bar's own exit: the bar stayed drawn below the message and the
    terminal's cursor hidden. The bar is stopped (cleared, cursor shown) before the line."""
    script = """
import signal, sys
from triplet_cli import _jit, cli, report
class Bar:
    def stop(self):
        print("bar stopped", file=sys.stderr, flush=True)
report._SHOWN.append(Bar())
_jit._Compiles.under_way = 1
cli._stop(signal.SIGINT, None)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 128 + signal.SIGINT
    assert done.stderr == "bar stopped\ntriplet-loss: interrupted; no output written\n"


def test_stdin_copy_cut_short_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C while stdin is being copied: the partial copy is removed at once."""
    from triplet_cli import readers

    class Endless:
        def read(self, n: int) -> bytes:
            if list(tmp_path.iterdir()):
                raise KeyboardInterrupt
            return b"x" * n

    class Stdin:
        buffer = Endless()

        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(readers.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(readers.sys, "stdin", Stdin())
    with pytest.raises(KeyboardInterrupt):
        readers.read_labels("-")
    assert list(tmp_path.iterdir()) == []


def test_an_npy_beyond_the_address_space_limit_is_one_line(tmp_path: Path, monkeypatch) -> None:
    import errno

    np.save(tmp_path / "x.npy", np.zeros((4, 3), np.float32))

    def no_room(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(np, "memmap", no_room)
    with pytest.raises(TripletLossError, match=r"x\.npy: cannot be memory-mapped: 0\.00 GiB of "
                       r"address space is more than this process may have"):
        mine_triplets(str(tmp_path / "x.npy"), [0, 0, 1, 1])


def test_a_folder_of_numbered_parquet_files_is_read_in_number_order(tmp_path: Path) -> None:
    """pyarrow's dataset writer names files part-0 ... part-11 unpadded: part-10 must not come
    before part-2, or aligned inputs pair an anchor with another row's negative."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    a, p, n = (rng.standard_normal((120, 4)).astype(np.float32) for _ in range(3))
    (tmp_path / "neg").mkdir()
    for i in range(12):
        rows = n[10 * i:10 * i + 10]
        pq.write_table(pa.table({"e": pa.array(list(rows), type=pa.list_(pa.float32()))}),
                       tmp_path / "neg" / f"part-{i}.parquet")
    got = compute_loss(a, p, str(tmp_path / "neg"), reduction="none")
    np.testing.assert_array_equal(got.loss, compute_loss(a, p, n, reduction="none").loss)


def test_an_output_name_near_the_length_limit_is_written(tmp_path: Path) -> None:
    """A 254-byte file name is legal; its temporary name (.NAME.xxxxxxxx.tmp) must be too."""
    out = tmp_path / ("a" * 246 + ".parquet")
    with writers.atomic_path(str(out)) as tmp:
        Path(tmp).write_bytes(b"rows")
    assert out.read_bytes() == b"rows"


def test_collapsed_embeddings_under_a_soft_margin_name_its_loss() -> None:
    zero = np.zeros((2, 2))
    r = compute_loss(zero, np.array([[1.0, 0], [3, 0]]), np.array([[0.0, 1], [0, 3]]),
                     preset="pytorch-metric-learning", soft_margin=True)
    assert any("the loss sits at softplus(0.05) = 0.7185" in w for w in r.summary["warnings"])


@pytest.mark.parametrize(("margin", "soft", "collapsed"), [(0.0, False, False),
                                                           (1.0, False, True),
                                                           (0.0, True, True)])
def test_tiny_distances_are_collapsed_only_against_the_loss_scale(margin, soft, collapsed):
    """Distances of 1e-7 leave a loss stuck at margin 1 (or softplus' ln 2), not at margin 0,
    where the relative gaps between d_ap and d_an are what the loss sees."""
    a, p, n = (np.random.default_rng(0).standard_normal((3, 50, 8)) * 1e-7)
    r = compute_loss(a, p, n, margin=margin, soft_margin=soft)
    said = any(w.startswith("collapsed embeddings") for w in r.summary["warnings"])
    assert said is collapsed


def test_subnormal_distances_raise_no_numpy_warning() -> None:
    """The median's histogram grid over a subnormal range is inf (unusable), silently."""
    a = np.zeros((2, 2))
    p, n = np.array([[1e-160, 0], [3e-160, 0]]), np.array([[2e-160, 0], [2e-160, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = compute_loss(a, p, n, distance="squared-euclidean")
    assert r.summary["d_ap"]["p50"] == float(np.median(r.d_ap))


def test_pytorch_metric_learning_soft_margin_keeps_its_margin() -> None:
    """Its smooth_loss is softplus(d_ap - d_an + margin) with the preset's margin 0.05 (not the
    0 other soft losses take)."""
    r = compute_loss([[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]], preset="pytorch-metric-learning",
                     soft_margin=True, reduction="none")
    assert r.summary["params"]["margin"] == 0.05
    assert r.summary["params"]["sources"]["margin"] == "preset pytorch-metric-learning"
    assert r.loss[0] == pytest.approx(math.log1p(math.exp(0.05 - math.sqrt(2))), rel=1e-12)


def test_large_dot_distances_a_margin_apart_are_not_collapsed() -> None:
    """dot distances near -1e6 that differ by about 0.5: the loss moves (not stuck at the
    margin), though the gaps are 5e-7 of the distances."""
    a = np.full((20, 1), 1000.0)
    p = np.full((20, 1), 1000.0)
    n = p - np.linspace(0.0004, 0.0006, 20)[:, None]
    r = compute_loss(a, p, n, distance="dot")
    assert not any(w.startswith("collapsed") for w in r.summary["warnings"])
    assert 0.4 < r.value < 0.7
