"""Output files as other people and programs find them .

- Modes: a new file gets 0666 & ~umask, an overwritten file keeps its mode (the 0600 of the
  temporary file never survives the rename).
- Settings: a .parquet (or an Arrow file made from it) records how its rows were mined or scored,
  and `compute --triplets` takes them as defaults ("triplets file" in params.sources); a flag or
  a preset that contradicts them, or embeddings of another shape, is a warning.
- mine's .jsonl output is a --triplets input.
- --output inside a folder that is an input parquet dataset is refused (exit 2, nothing written).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import jsonl_rows, ok, snapshot

from triplet_cli import compute_loss, writers

N, D = 1797, 32
ROWS = ("anchor", "positive", "negative", "d_ap", "d_an", "loss")
ONE_POSITIVE = ("--positive-strategy", "hard")
KEY = b"triplet_loss"


@pytest.fixture
def umask() -> Iterator[object]:
    """`umask(mask)` sets the process umask for the test; the old one comes back afterwards."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def one_error_line(result, code: int, pattern: str) -> str:
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("triplet-loss: error: "), result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def warnings_of(result) -> tuple[list[str], list[str]]:
    """(the summary's warnings, stderr's warning lines) of a successful --format json run."""
    assert result.exit_code == 0, (result.stderr, result.exception)
    summary = json.loads(result.stdout)
    lines = result.stderr.splitlines()
    assert all(line.startswith("triplet-loss: warning: ") for line in lines), lines
    return summary["warnings"], [line.removeprefix("triplet-loss: warning: ") for line in lines]


@pytest.fixture
def aligned(sample: Path) -> list[str]:
    return ["compute", "--anchors", str(sample / "anchors.npy"), "--positives",
            str(sample / "positives.npy"), "--negatives", str(sample / "negatives.npy")]


@pytest.fixture
def mine(sample: Path) -> list[str]:
    return ["mine", "--embeddings", str(sample / "embeddings.npy"), "--labels",
            str(sample / "labels.npy"), *ONE_POSITIVE]


# ---- modes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".npy"])
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_new_output_gets_the_umask_mode(cli, aligned, tmp_path: Path, umask, suffix: str,
                                        mask: int) -> None:
    out = tmp_path / f"rows{suffix}"
    umask(mask)
    ok(cli(*aligned, "-o", out, "-q"))
    assert mode(out) == 0o666 & ~mask, oct(mode(out))


@pytest.mark.parametrize("existing", [0o644, 0o640, 0o664, 0o600])
def test_overwritten_output_keeps_its_mode(cli, aligned, tmp_path: Path, umask,
                                           existing: int) -> None:
    out = tmp_path / "rows.parquet"
    out.write_bytes(b"old rows")
    out.chmod(existing)
    umask(0o077)  # the umask only decides for new files
    ok(cli(*aligned, "-o", out, "-q"))
    assert pq.read_table(out).num_rows == N
    assert mode(out) == existing, oct(mode(out))


def test_output_through_a_symlink_writes_its_target(cli, aligned, tmp_path: Path) -> None:
    """`latest.csv -> runs/one.csv`: the run replaces runs/one.csv, the link stays a link."""
    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "one.csv"
    target.write_text("old\n")
    (tmp_path / "latest.csv").symlink_to(target)
    ok(cli(*aligned, "-o", tmp_path / "latest.csv", "-q"))
    assert (tmp_path / "latest.csv").is_symlink()
    assert target.read_text().startswith('"index",')
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["one.csv"]  # no temporary left


def test_output_on_a_loop_of_symlinks_is_refused(cli, aligned, tmp_path: Path) -> None:
    """`a.csv -> b.csv -> a.csv` has no file to write through to: refused before any work (it
    was replaced by a regular file), both links left as they were."""
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    r = cli(*aligned, "-o", tmp_path / "a.csv", "-q")
    assert (r.exit_code, r.stdout) == (2, "")
    assert r.stderr == (f"triplet-loss: error: --output {tmp_path / 'a.csv'} is a loop of "
                        "symbolic links; give a file name or a link to one\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv"]
    assert (tmp_path / "a.csv").is_symlink() and (tmp_path / "b.csv").is_symlink()


def test_a_line_break_in_a_file_name_keeps_each_message_one_line(cli, sample: Path,
                                                                 tmp_path: Path) -> None:
    """A file name's newline (or escape) is written as Python writes it, in errors and
    warnings alike: a script reading stderr line by line sees one line per message."""
    missing = cli("compute", "--anchors", tmp_path / "no\nsuch.npy", "--positives",
                  tmp_path / "p.npy", "--negatives", tmp_path / "n.npy")
    assert missing.exit_code == 1
    assert missing.stderr == f"triplet-loss: error: {tmp_path}/no\\nsuch.npy: no such file\n"
    x = np.load(sample / "anchors.npy")[:40]
    np.save(tmp_path / "q\x1b[2Jx.npy", x)
    np.save(tmp_path / "copy.npy", x)
    pairs = tmp_path / "pairs.npy"
    np.save(pairs, np.stack([np.arange(40), (np.arange(40) + 1) % 40], axis=1))
    copy = cli("mine-negatives", "--queries", tmp_path / "q\x1b[2Jx.npy", "--corpus",
               tmp_path / "copy.npy", "--pairs", pairs, "-f", "json")
    assert copy.exit_code == 0, copy.stderr
    [line] = copy.stderr.splitlines()
    assert line.startswith(f"triplet-loss: warning: --corpus {tmp_path}/copy.npy holds the rows "
                           f"of --queries {tmp_path}/q\\x1b[2Jx.npy (a copy)")


def test_mine_output_gets_the_umask_mode(cli, mine, tmp_path: Path, umask) -> None:
    out = tmp_path / "mined.parquet"
    umask(0o022)
    ok(cli(*mine, "-o", out, "-q"))
    assert mode(out) == 0o644


def test_partial_file_is_private_while_it_is_written(tmp_path: Path, umask) -> None:
    """Nobody reads rows before the run succeeded: 0600 until the rename."""
    umask(0o022)
    target = tmp_path / "rows.csv"
    with writers.atomic_path(str(target)) as tmp:
        Path(tmp).write_bytes(b"a\n1\n")
        assert mode(Path(tmp)) == 0o600
    assert mode(target) == 0o644


# ---- settings recorded in a mined file ----------------------------------------------------------


def recorded(path: Path) -> dict:
    return json.loads(pq.read_schema(path).metadata[KEY])


def test_mined_parquet_records_how_it_was_mined(cli, mine, tmp_path: Path) -> None:
    out = tmp_path / "m.parquet"
    ok(cli(*mine, "--distance", "cosine", "--margin", "0.2", "-o", out, "-q"))
    meta = recorded(out)
    assert meta["command"] == "mine"
    assert meta["tool"].startswith("triplet-loss ")
    assert meta["embeddings"] == {"shape": [N, D]}
    p = meta["params"]
    assert (p["distance"], p["margin"], p["soft_margin"], p["normalize"]) == ("cosine", 0.2,
                                                                            False, False)
    assert (p["p"], p["eps"], p["eps_placement"], p["reduction"]) == (2.0, 1e-6, "none", "mean")
    assert (p["strategy"], p["positive_strategy"]) == ("semi-hard", "hard")
    assert pq.read_table(out).column_names == list(ROWS)  # the rows are unchanged


def test_compute_takes_the_settings_of_a_mined_file(cli, mine, tmp_path: Path,
                                                    sample: Path) -> None:
    """mine --distance cosine --margin 0.2 -o m.parquet, then compute --triplets m.parquet on
    the same embeddings: mine's numbers bit for bit, not euclidean with margin 1."""
    out = tmp_path / "m.parquet"
    mined = jsonl_rows(ok(cli(*mine, "--distance", "cosine", "--margin", "0.2", "-o", out,
                              "-f", "jsonl")))
    argv = ("compute", "--embeddings", sample / "embeddings.npy", "--triplets", out)
    rows = jsonl_rows(ok(cli(*argv, "-f", "jsonl")))
    for k in ROWS:
        np.testing.assert_array_equal(rows[k], mined[k], err_msg=k)
    summary = json.loads(ok(cli(*argv, "-f", "json")))
    assert summary["loss"] == pytest.approx(mined["loss"].mean(), rel=1e-12)
    params, sources = summary["params"], summary["params"]["sources"]
    assert (params["distance"], params["margin"]) == ("cosine", 0.2)
    for key in ("distance", "p", "eps", "eps_placement", "normalize", "margin", "soft_margin",
                "swap", "reduction"):  # (mine records its swap, as compute -o does)
        assert sources[key] == "triplets file", key
    assert sources["pair_reduction"] == "default"
    table = ok(cli(*argv))
    assert "distance=cosine (triplets file)" in table


def test_library_takes_the_settings_too(cli, mine, tmp_path: Path, sample: Path) -> None:
    out = tmp_path / "m.parquet"
    ok(cli(*mine, "--distance", "manhattan", "--margin", "0.5", "-o", out, "-q"))
    r = compute_loss(embeddings=str(sample / "embeddings.npy"), triplets=str(out))
    assert r.summary["params"]["distance"] == "manhattan"
    assert r.summary["params"]["sources"]["margin"] == "triplets file"
    assert r.summary["warnings"] == []


def test_soft_margin_and_normalize_come_along(cli, sample: Path, tmp_path: Path) -> None:
    """tf-similarity mines with cosine and a soft margin of 0; pytorch-metric-learning with
    normalised rows and mean-nonzero: compute reproduces both headline losses."""
    for preset, extra in (("tf-similarity", ()), ("pytorch-metric-learning",
                                                  ("--batch-size", "32"))):
        out = tmp_path / f"{preset}.parquet"
        argv = ["mine", "--embeddings", sample / "embeddings.npy", "--labels",
                sample / "labels.npy", "--preset", preset, *extra]
        mined = json.loads(cli(*argv, "-o", out, "-f", "json", "-q").stdout)
        scored = json.loads(ok(cli("compute", "--embeddings", sample / "embeddings.npy",
                                   "--triplets", out, "-f", "json")))
        for key in ("distance", "margin", "soft_margin", "normalize", "reduction"):
            assert scored["params"][key] == mined["params"][key], (preset, key)
        assert scored["loss"] == pytest.approx(mined["loss"], rel=1e-12), preset


def test_a_flag_wins_and_a_contradiction_is_warned(cli, mine, tmp_path: Path,
                                                   sample: Path) -> None:
    out = tmp_path / "m.parquet"
    ok(cli(*mine, "--distance", "cosine", "--margin", "0.2", "-o", out, "-q"))
    argv = ("compute", "--embeddings", sample / "embeddings.npy", "--triplets", out)
    result = cli(*argv, "--margin", "1", "-f", "json")
    summary = json.loads(result.stdout)
    assert summary["params"]["margin"] == 1.0
    assert summary["params"]["sources"]["margin"] == "flag"
    assert summary["params"]["distance"] == "cosine"  # the rest still comes from the file
    listed, printed = warnings_of(result)
    assert listed == printed and len(listed) == 1, listed
    assert "margin" in listed[0] and "0.2" in listed[0] and str(out) in listed[0]
    assert "distance" not in listed[0]
    # a flag that agrees with the file is no contradiction
    same = cli(*argv, "--margin", "0.2", "--distance", "cosine", "-f", "json")
    assert warnings_of(same) == ([], [])
    # --quiet keeps stderr quiet; the summary still says it
    quiet = cli(*argv, "--distance", "euclidean", "-f", "json", "-q")
    assert quiet.stderr == "" and any("distance" in w for w in json.loads(quiet.stdout)[
        "warnings"])


def test_hard_margin_flag_on_a_soft_margin_file(cli, sample: Path, tmp_path: Path) -> None:
    """The recorded margin 0 belongs to the soft margin: --hard-margin gets the default 1."""
    out = tmp_path / "soft.parquet"
    ok(cli("mine", "--embeddings", sample / "embeddings.npy", "--labels", sample / "labels.npy",
           *ONE_POSITIVE, "--soft-margin", "-o", out, "-q"))
    result = cli("compute", "--embeddings", sample / "embeddings.npy", "--triplets", out,
                 "--hard-margin", "-f", "json")
    summary = json.loads(result.stdout)
    assert (summary["params"]["soft_margin"], summary["params"]["margin"]) == (False, 1.0)
    assert summary["params"]["sources"]["margin"] == "default"
    listed, _ = warnings_of(result)
    assert len(listed) == 1 and "soft_margin" in listed[0] and "margin" in listed[0]


def test_a_preset_replaces_the_file_settings_and_says_what_differs(cli, mine, tmp_path: Path,
                                                                   sample: Path) -> None:
    out = tmp_path / "m.parquet"
    ok(cli(*mine, "--distance", "cosine", "--margin", "0.2", "--normalize", "-o", out, "-q"))
    result = cli("compute", "--embeddings", sample / "embeddings.npy", "--triplets", out,
                 "--preset", "torch", "-f", "json")
    summary = json.loads(result.stdout)
    t = pq.read_table(out)
    plain = compute_loss(embeddings=str(sample / "embeddings.npy"), preset="torch",
                         triplets=np.stack([t.column(c).to_numpy() for c in ROWS[:3]], axis=1))
    assert summary["loss"] == plain.summary["loss"]
    assert summary["params"]["sources"]["normalize"] == "default"  # not the file's True
    assert "triplets file" not in summary["params"]["sources"].values()
    listed, printed = warnings_of(result)
    assert listed == printed and len(listed) == 1, listed
    for key in ("distance", "margin", "normalize", "eps_placement"):
        assert key in listed[0], key


@pytest.mark.parametrize(("shape", "warned"), [((N, D), False), ((N + 3, D), True),
                                              ((N, D + 4), True)])
def test_embeddings_of_another_shape_are_warned(cli, mine, tmp_path: Path, sample: Path,
                                                shape: tuple[int, int], warned: bool) -> None:
    """A later checkpoint of the same rows is the recipe (no warning); another row count or
    width means other rows or another model: a warning, not an error (indices still index)."""
    out = tmp_path / "m.parquet"
    ok(cli(*mine, "-o", out, "-q"))
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = cli("compute", "--embeddings", tmp_path / "x.npy", "--triplets", out, "-f", "json")
    listed, printed = warnings_of(result)
    mentions = [w for w in listed if "shape" in w]
    assert listed == printed
    if warned:
        assert len(mentions) == 1, listed
        assert f"({N}, {D})" in mentions[0] and f"({shape[0]}, {shape[1]})" in mentions[0]
    else:
        assert mentions == []


def test_arrow_file_converted_from_parquet_keeps_the_settings(cli, mine, tmp_path: Path,
                                                             sample: Path) -> None:
    out = tmp_path / "m.parquet"
    ok(cli(*mine, "--distance", "chebyshev", "-o", out, "-q"))
    with pa.ipc.new_file(tmp_path / "m.arrow", pq.read_schema(out)) as f:
        f.write_table(pq.read_table(out))
    summary = json.loads(ok(cli("compute", "--embeddings", sample / "embeddings.npy",
                                "--triplets", tmp_path / "m.arrow", "-f", "json")))
    assert summary["params"]["distance"] == "chebyshev"
    assert summary["params"]["sources"]["distance"] == "triplets file"


def test_compute_parquet_output_records_its_settings(cli, sample: Path, tmp_path: Path) -> None:
    """compute's rows with --triplets are triplets too: rescoring them scores them alike."""
    out = tmp_path / "scored.parquet"
    ok(cli("compute", "--embeddings", sample / "embeddings.npy", "--triplets",
           sample / "triplets.parquet", "--distance", "manhattan", "--swap", "-o", out, "-q"))
    meta = recorded(out)
    assert meta["command"] == "compute" and meta["embeddings"] == {"shape": [N, D]}
    assert (meta["params"]["distance"], meta["params"]["swap"]) == ("manhattan", True)
    summary = json.loads(ok(cli("compute", "--embeddings", sample / "embeddings.npy",
                                "--triplets", out, "-f", "json")))
    assert (summary["params"]["distance"], summary["params"]["swap"]) == ("manhattan", True)


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".jsonl"])
def test_other_formats_record_nothing(cli, mine, tmp_path: Path, sample: Path,
                                      suffix: str) -> None:
    """Only .parquet (and Arrow) carry settings: other files score with the defaults, as ever."""
    out = tmp_path / f"m{suffix}"
    ok(cli(*mine, "--distance", "cosine", "-o", out, "-q"))
    summary = json.loads(ok(cli("compute", "--embeddings", sample / "embeddings.npy",
                                "--triplets", out, "-f", "json")))
    assert summary["params"]["distance"] == "euclidean"
    assert "triplets file" not in summary["params"]["sources"].values()


def _with_settings(path: Path, params: dict) -> None:
    t = pa.table({"anchor": [0, 1], "positive": [1, 2], "negative": [3, 4]})
    meta = {"tool": "triplet-loss 9.9", "command": "mine", "params": params}
    pq.write_table(t.replace_schema_metadata({KEY: json.dumps(meta)}), path)


def test_unusable_recorded_setting_is_one_error_line(cli, sample: Path, tmp_path: Path) -> None:
    """A setting this version does not know (a newer writer, a hand edit) is not silently
    replaced by a default: one error line, unless a flag decides instead."""
    t = tmp_path / "t.parquet"
    _with_settings(t, {"distance": "hamming", "margin": 0.3})
    argv = ("compute", "--embeddings", sample / "embeddings.npy", "--triplets", t)
    before = snapshot(tmp_path)
    one_error_line(cli(*argv, "-o", tmp_path / "out.parquet"), 1,
                   rf"^triplet-loss: error: {re.escape(str(t))}: .*distance.*'hamming'.*"
                   r"--distance")
    assert snapshot(tmp_path) == before
    summary = json.loads(ok(cli(*argv, "--distance", "euclidean", "-f", "json")))
    assert summary["params"]["margin"] == 0.3
    for bad in ({"margin": -1.0}, {"soft_margin": "yes"}, {"p": 0.5}):
        _with_settings(t, bad)
        one_error_line(cli(*argv), 1, rf"^triplet-loss: error: {re.escape(str(t))}: ")


@pytest.mark.parametrize("corpus", [{"shape": 5}, {"shape": []}, {"shape": ["40"]},
                                    {"shape": [True, 3]}, {"shape": None}, "c.npy", 7])
def test_hand_edited_corpus_record_is_a_warning(sample: Path, tmp_path: Path,
                                                corpus: object) -> None:
    """A corpus record that is no shape list (a hand edit) gives the --corpus warning, not a
    TypeError: only a recorded row count larger than the embeddings' is an error."""
    t = tmp_path / "t.parquet"
    table = pa.table({"anchor": [0, 1], "positive": [1, 2], "negative": [3, 4]})
    meta = {"tool": "triplet-loss 9.9", "command": "mine-negatives", "params": {},
            "corpus": corpus}
    pq.write_table(table.replace_schema_metadata({KEY: json.dumps(meta)}), t)
    res = compute_loss(embeddings=str(sample / "embeddings.npy"), triplets=str(t))
    assert any("--corpus" in w for w in res.summary["warnings"])


def test_corrupt_settings_metadata_is_one_error_line(cli, sample: Path, tmp_path: Path) -> None:
    t = tmp_path / "t.parquet"
    table = pa.table({"anchor": [0], "positive": [1], "negative": [2]})
    pq.write_table(table.replace_schema_metadata({KEY: b"{not json"}), t)
    one_error_line(cli("compute", "--embeddings", sample / "embeddings.npy", "--triplets", t),
                   1, rf"^triplet-loss: error: {re.escape(str(t))}: .*metadata")


# ---- mine's .jsonl is a --triplets input --------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_mined_jsonl_is_a_triplets_input(cli, mine, tmp_path: Path, sample: Path,
                                         suffix: str) -> None:
    out = tmp_path / f"m{suffix}"
    mined = jsonl_rows(ok(cli(*mine, "-o", out, "-f", "jsonl")))
    rows = jsonl_rows(ok(cli("compute", "--embeddings", sample / "embeddings.npy",
                             "--triplets", out, "-f", "jsonl")))
    for k in ROWS:
        np.testing.assert_array_equal(rows[k], mined[k], err_msg=k)


@pytest.mark.parametrize(("text", "pattern"), [
    (b'{"anchor": 0, "positive": 1, "negative": 2}\n{"anchor": 1, "positive"\n',
     r"cannot read as JSON lines"),
    (b'{"anchor": 0, "positive": 1}\n', r"no column 'negative'"),
    (b'{"anchor": 0.5, "positive": 1, "negative": 2}\n',
     r"row 0: anchor index 0\.5 is not an integer"),
    (b'{"anchor": 0, "positive": 1, "negative": null}\n', r"column 'negative': row 0 is null"),
])
def test_bad_jsonl_triplets_are_one_error_line(cli, sample: Path, tmp_path: Path, text: bytes,
                                               pattern: str) -> None:
    t = tmp_path / "t.jsonl"
    t.write_bytes(text)
    one_error_line(cli("compute", "--embeddings", sample / "embeddings.npy", "--triplets", t),
                   1, rf"^triplet-loss: error: {re.escape(str(t))}: .*{pattern}")


# ---- --output inside an input dataset folder ----------------------------------------------------


def _dataset(d: Path) -> None:
    """ds_A/: a parquet dataset of 5 embedding rows with labels; p.npy, n.npy beside it."""
    rng = np.random.default_rng(0)
    (d / "ds_A" / "sub").mkdir(parents=True)
    rows = rng.normal(size=(5, 4)).astype(np.float32)
    table = pa.table({"embedding": pa.array(rows.tolist(), pa.list_(pa.float32(), 4)),
                      "label": pa.array([0, 0, 1, 1, 1])})
    pq.write_table(table.slice(0, 3), d / "ds_A" / "part-0.parquet")
    pq.write_table(table.slice(3), d / "ds_A" / "sub" / "part-1.parquet")
    for name in ("p", "n"):
        np.save(d / f"{name}.npy", rng.normal(size=(5, 4)).astype(np.float32))
    (d / "ds_A2").mkdir()
    (d / "ds_link").symlink_to(d / "ds_A")


@pytest.mark.parametrize("output", ["ds_A/part-9.parquet", "ds_A/part-0.parquet",
                                    "ds_A/sub/part-9.parquet", "ds_A/rows.csv",
                                    "ds_link/part-9.parquet", "ds_A/../ds_A/x.npy"])
@pytest.mark.parametrize("command", ["compute", "mine"])
def test_output_inside_an_input_dataset_is_refused(cli, tmp_path: Path, monkeypatch,
                                                   output: str, command: str) -> None:
    monkeypatch.chdir(tmp_path)
    _dataset(tmp_path)
    argv = (["compute", "--anchors", "ds_A", "--positives", "p.npy", "--negatives", "n.npy"]
            if command == "compute" else ["mine", "--embeddings", "ds_A"])
    before = snapshot(tmp_path)
    line = one_error_line(cli(*argv, "-o", output), 2,
                          rf"--output {re.escape(output)} is inside the input dataset ds_A")
    assert "refusing" in line
    assert snapshot(tmp_path) == before, "a refused run writes nothing"


@pytest.mark.parametrize("output", ["ds_A2/rows.parquet", "rows.parquet"])
def test_output_beside_an_input_dataset_is_fine(cli, tmp_path: Path, monkeypatch,
                                                output: str) -> None:
    monkeypatch.chdir(tmp_path)
    _dataset(tmp_path)
    result = cli("compute", "--anchors", "ds_A", "--positives", "p.npy", "--negatives", "n.npy",
                 "-o", output, "-q")
    assert result.exit_code == 0, result.stderr
    assert pq.read_table(output).num_rows == 5


def test_output_beside_an_input_file_of_a_dataset_is_fine(cli, tmp_path: Path,
                                                          monkeypatch) -> None:
    """Reading one file of a folder does not make the folder an input."""
    monkeypatch.chdir(tmp_path)
    _dataset(tmp_path)
    np.save("x.npy", np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32))
    result = cli("compute", "--anchors", "ds_A/part-0.parquet", "--positives", "x.npy",
                 "--negatives", "x.npy", "-o", "ds_A/rows.parquet", "-q")
    assert result.exit_code == 0, result.stderr
