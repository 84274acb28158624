"""Files as the field's tools write them (a field-formats audit): what is read, and for what is
not, one line that says what the file is and how to make one that is."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

X = np.random.default_rng(3).normal(size=(40, 8)).astype(np.float32)
Y = np.arange(40) % 4


@pytest.fixture
def here(tmp_path: Path, monkeypatch) -> Path:
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def mined(cli, *argv: object) -> dict:
    r = cli("mine", *argv, "-f", "json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def refused(cli, *argv: object) -> str:
    r = cli(*argv)
    assert r.exit_code == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def test_a_category_column_is_the_labels_not_the_pandas_index(cli, here) -> None:
    """pandas wrote its index (row ids, 2 rows each) and a category column: the categories are
    the classes (the index was taken, silently: 20 classes of 2)."""
    import pandas as pd

    frame = pd.DataFrame({"embedding": list(X), "species": pd.Categorical(Y.astype(str))},
                         index=pd.Index(np.arange(40) // 2, name="doc"))
    frame.to_parquet("table.parquet")
    report = mined(cli, "--embeddings", "table.parquet")
    assert report["inputs"]["labels"]["column"] == "species"
    assert report["labels"]["classes"] == 4
    assert mined(cli, "--embeddings", "x.npy", "--labels", "y.npy")["loss"] == report["loss"]
    # A boolean column is a flag (is_train): taken when named, never guessed.
    pq.write_table(pa.table({"embedding": list(X), "cls": Y, "is_train": Y % 2 == 0}),
                   "flagged.parquet")
    assert mined(cli, "--embeddings", "flagged.parquet")["inputs"]["labels"]["column"] == "cls"
    pq.write_table(pa.table({"ok": pa.array(Y % 2 == 0)}), "flags.parquet")
    assert "choose one with --label-column" in refused(
        cli, "mine", "--embeddings", "x.npy", "--labels", "flags.parquet")
    assert mined(cli, "--embeddings", "x.npy", "--labels", "flags.parquet", "--label-column",
                 "ok")["labels"]["classes"] == 2
    # An index that is all there is (set_index("cls")) is the labels.
    pd.DataFrame({"embedding": list(X), "cls": Y}).set_index("cls").to_parquet("idx.parquet")
    assert mined(cli, "--embeddings", "idx.parquet")["inputs"]["labels"]["column"] == "cls"
    pq.write_table(pa.table({"score": pa.array(Y * 0.5), "when": pa.array(
        np.arange(40).astype("datetime64[s]"))}), "other.parquet")
    assert "holds no label column: no integer, string or category column (columns: score, " \
           "when); choose one with --label-column or give the labels with --labels" in refused(
        cli, "mine", "--embeddings", "x.npy", "--labels", "other.parquet")


def test_label_minus_one_is_a_class_and_said(cli, here) -> None:
    np.save("marked.npy", np.where(np.arange(40) < 12, -1, Y))
    warnings = mined(cli, "--embeddings", "x.npy", "--labels", "marked.npy")["warnings"]
    assert "marked.npy: label -1 (12 rows) is taken as a class like the others; if it marks " \
           "unlabelled rows, leave those rows out first" in warnings
    assert not any("-1" in w for w in mined(cli, "--embeddings", "x.npy", "--labels",
                                            "y.npy")["warnings"])
    r = cli("evaluate", "--embeddings", "x.npy", "--labels", "marked.npy", "-f", "json")
    assert any("label -1 (12 rows)" in w for w in json.loads(r.stdout)["warnings"])


@pytest.mark.parametrize(("name", "make", "said"), [
    ("emb.pt", "torch", "is a PyTorch file (torch.save), which is a pickle and not loaded"),
    ("emb.pkl", b"\x80\x04\x95junk", "is a pickle, which can run code and is not loaded"),
    ("emb.bin", b"\x80\x05\x95junk", "is a pickle"),
    ("emb.h5", b"\x89HDF\r\n\x1a\n\0\0", "is an HDF5 file: save its dataset with numpy.save"),
    ("emb.safetensors", b"\x10\0\0\0\0\0\0\0{}", "is a safetensors file"),
    ("emb.fvecs", b"\x08\0\0\0" + bytes(32), "is an .fvecs/.bvecs/.ivecs file"),
    ("sift.fvecs", b"\x80\0\0\0" + bytes(512), "is an .fvecs/.bvecs/.ivecs file"),  # d = 128
    ("emb.json", b"[[0.1, 0.2], [0.3, 0.4]]", "is a JSON array: give triplets and pairs as "
                                              "JSON lines"),
    ("emb.csv", b"0.1,0.2\n0.3,0.4\n", "holds text (CSV): embeddings are read from .npy"),
    ("emb.jsonl", b'{"embedding": [0.1, 0.2]}\n', "holds JSON lines: embeddings are read"),
])
def test_formats_of_other_tools_say_how_to_convert(cli, here, name: str, make: object,
                                                   said: str) -> None:
    if make == "torch":  # torch.save's layout: a zip archive around a pickle
        with zipfile.ZipFile(name, "w") as z:
            z.writestr("emb/data.pkl", b"\x80\x02}q\x00.")
            z.writestr("emb/data/0", bytes(16))
            z.writestr("emb/version", b"3\n")
    else:
        Path(name).write_bytes(make)  # type: ignore[arg-type]
    assert f"triplet-loss: error: {name}: {said}" in refused(
        cli, "mine", "--embeddings", name, "--labels", "y.npy")


def test_tsv_is_tab_separated(cli, here) -> None:
    """TensorFlow Projector's metadata.tsv (a header, labels with commas) and tab-separated
    triplets."""
    names = [f"City {c}, Country" for c in Y]
    Path("metadata.tsv").write_text("label\tnote\n" + "".join(f"{n}\tx\n" for n in names))
    report = mined(cli, "--embeddings", "x.npy", "--labels", "metadata.tsv")
    assert report["labels"]["classes"] == 4
    piped = cli("mine", "--embeddings", "x.npy", "--labels", "-", "-f", "json",
                input=Path("metadata.tsv").read_bytes())  # (the copy of stdin has no suffix)
    assert piped.exit_code == 0, piped.stderr
    assert json.loads(piped.stdout)["loss"] == report["loss"]
    Path("t.tsv").write_text("anchor\tpositive\tnegative\n0\t4\t1\n2\t6\t3\n")
    r = cli("compute", "--embeddings", "x.npy", "--triplets", "t.tsv", "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["count"] == 2


def test_paths_are_named_as_typed(cli, here) -> None:
    """A colon splits off an .npz key only where that makes a file; ~ after '=' is not the
    shell's to expand."""
    assert refused(cli, "mine", "--embeddings", "2024-01-01T10:00:00.npy", "--labels",
                   "y.npy") == "triplet-loss: error: 2024-01-01T10:00:00.npy: no such file\n"
    assert "error: none.npz: no such file" in refused(cli, "mine", "--embeddings",
                                                      "none.npz:emb", "--labels", "y.npy")
    assert "(~ is not expanded after '='" in refused(cli, "mine", "--embeddings=~/x.npy",
                                                     "--labels", "y.npy")


def test_folders_and_layouts_that_are_not_read_are_named(cli, here) -> None:
    Path("saved").mkdir()
    Path("saved/state.json").write_text("{}")
    Path("saved/data-00000-of-00001.arrow").write_bytes(b"")
    assert "a datasets save_to_disk folder; give its data-*.arrow file" in refused(
        cli, "mine", "--embeddings", "saved", "--labels", "y.npy")
    Path("parts/label=1").mkdir(parents=True)
    assert "a partitioned dataset" in refused(cli, "mine", "--embeddings", "parts", "--labels",
                                              "y.npy")
    wide = pa.table({str(k): X[:, k] for k in range(8)})
    pq.write_table(wide, "wide.parquet")
    assert "one float column per dimension is read from a data frame in Python" in refused(
        cli, "mine", "--embeddings", "wide.parquet", "--labels", "y.npy")
    nested = pa.table({"emb": pa.StructArray.from_arrays([pa.array(list(X)), pa.array(Y)],
                                                         ["vec", "id"])})
    pq.write_table(nested, "nested.parquet")
    assert "emb is a struct holding the list vec" in refused(
        cli, "mine", "--embeddings", "nested.parquet", "--labels", "y.npy")
    np.save("objects.npy", Y.astype(str).astype(object), allow_pickle=True)
    assert "save labels with numpy.save(PATH, labels.astype(str))" in refused(
        cli, "mine", "--embeddings", "x.npy", "--labels", "objects.npy")


def test_an_ignored_seed_names_this_commands_use(cli, here) -> None:
    np.save("pairs.npy", np.array([(0, 4), (1, 5)]))
    r = cli("mine-negatives", "--queries", "x.npy", "--corpus", "x.npy", "--pairs", "pairs.npy",
            "--seed", "3", "-f", "json")
    assert "--seed has no effect: it seeds --sampling random" in r.stderr
    m = cli("mine", "--embeddings", "x.npy", "--labels", "y.npy", "--seed", "3", "-f", "json")
    assert "--seed has no effect: it seeds --batch-size's shuffle" in m.stderr


def test_csv_labels_beyond_int64_stay_exact_integers(tmp_path: Path) -> None:
    """uint64 codes (beyond int64, where doubles lose digits) are read exactly, as integers."""
    from triplet_cli import evaluate

    big = tmp_path / "big.csv"
    big.write_text("label\n" + "".join(f"{2**63 + k // 2}\n" for k in range(4)))
    r = evaluate(np.array([[0.0], [1.0], [5.0], [6.0]]), str(big))
    labels = [c["label"] for c in r.summary["checkpoints"][0]["worst_classes"]]
    assert sorted(labels) == [2**63, 2**63 + 1]
    assert r.summary["inputs"]["labels"]["dtype"] == "uint64"


@pytest.mark.parametrize("suffix", ["parquet", "arrow"])
def test_large_list_embeddings_read_as_lists(tmp_path: Path, suffix: str) -> None:
    """A large_list<float> column (64-bit offsets: polars' default list type) is a vector
    column: the same numbers as the .npy."""
    import pyarrow.feather as feather

    from triplet_cli import evaluate

    x = np.random.default_rng(3).normal(size=(12, 3)).astype(np.float32)
    labels = np.arange(12) % 3
    column = pa.array(list(x), type=pa.large_list(pa.float32()))
    table = pa.table({"embedding": column, "label": labels})
    path = tmp_path / f"x.{suffix}"
    (pq.write_table if suffix == "parquet" else feather.write_feather)(table, path)
    from_file = evaluate(str(path))
    assert from_file.metrics == evaluate(x, labels).metrics
