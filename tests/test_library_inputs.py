"""The library with the objects training code holds: data frames read by column name, torch
tensors (a stand-in class: torch is not a test dependency) detached and compared by memory, and
summaries of no triplet that json.dumps can write."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from triplet_cli import TripletLossError, compute_loss, evaluate, mine_negatives, mine_triplets


def labelled(n: int = 60, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, d)).astype(np.float32), np.repeat(np.arange(n // 10), 10)


@pytest.mark.parametrize("frame", [pd.DataFrame, pl.DataFrame])
def test_triplet_frames_are_read_by_column_name(frame) -> None:
    """Columns in another order (or mine's six) are taken by name, as from a file; a frame
    made from an array (columns 0, 1, 2) by position; a frame naming some of them is refused."""
    x, y = labelled()
    mined = mine_triplets(x, y)
    t = mined.triplets
    shuffled = frame({"negative": t[:, 2], "anchor": t[:, 0], "positive": t[:, 1]})
    assert compute_loss(embeddings=x, triplets=shuffled).value == mined.value
    rows = frame({"anchor": t[:, 0], "positive": t[:, 1], "negative": t[:, 2],
                  "d_ap": mined.d_ap, "d_an": mined.d_an, "loss": mined.loss})  # mine's rows
    assert compute_loss(embeddings=x, triplets=rows).value == mined.value
    if frame is pd.DataFrame:
        assert compute_loss(embeddings=x, triplets=frame(t)).value == mined.value
    with pytest.raises(TripletLossError, match=r"triplets: has no column 'negative' \(its "
                       r"columns: anchor, positive, neg\)"):
        compute_loss(embeddings=x, triplets=frame({"anchor": t[:, 0], "positive": t[:, 1],
                                                   "neg": t[:, 2]}))


def test_pair_frames_are_read_by_column_name() -> None:
    x, _ = labelled()
    pairs = np.stack([np.arange(30), np.arange(30) + 30], axis=1)
    want = mine_negatives(x[:30], x, pairs, num_negatives=2).columns
    got = mine_negatives(x[:30], x, pd.DataFrame({"positive": pairs[:, 1], "query": pairs[:, 0]}),
                         num_negatives=2).columns
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v)


def test_a_polars_column_of_rows_is_the_embeddings() -> None:
    x, y = labelled()
    assert mine_triplets(pl.DataFrame({"embedding": list(x)}), y).value == \
        mine_triplets(x, y).value


class Tensor:
    """What the library relies on of a torch tensor (module torch): requires_grad, detach(),
    float(), dtype, and numpy's view of its memory."""

    __module__ = "torch"

    def __init__(self, data: np.ndarray, requires_grad: bool = False,
                 dtype: str = "torch.float32") -> None:
        self.data, self.requires_grad, self.dtype = data, requires_grad, dtype

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad.")
        if self.dtype == "torch.bfloat16":
            raise TypeError("Got unsupported ScalarType BFloat16")
        return self.data

    def detach(self) -> Tensor:
        return Tensor(self.data, False, self.dtype)

    def float(self) -> Tensor:
        return Tensor(self.data.astype(np.float32), self.requires_grad)


def test_tensors_with_gradients_and_bfloat16_are_taken() -> None:
    x, y = labelled()
    want = mine_triplets(x, y).value
    assert mine_triplets(Tensor(x, requires_grad=True), y).value == want
    assert mine_triplets(Tensor(x, dtype="torch.bfloat16"), y).value == want


def test_two_tensors_over_the_same_memory_are_one_input() -> None:
    """t.detach() twice: the corpus is the queries, so no query gets its own row."""
    x, _ = labelled(300, 16)
    pairs = np.stack([np.arange(300), (np.arange(300) + 1) % 300], axis=1)
    r = mine_negatives(Tensor(x).detach(), Tensor(x).detach(), pairs, num_negatives=2)
    assert not (r.columns["anchor"] == r.columns["negative"]).any()
    copy = mine_negatives(Tensor(x), Tensor(x.copy()), pairs, num_negatives=2)
    assert (copy.columns["anchor"] == copy.columns["negative"]).any()


def test_a_summary_of_no_triplet_is_json() -> None:
    y = np.repeat(np.arange(3), 4)
    x = (y[:, None] * 100.0 + np.random.default_rng(0).standard_normal((12, 2))).astype(np.float32)
    m = mine_triplets(x, y, active_only=True)
    assert len(m.triplets) == 0
    assert m.summary["d_ap"] == {"mean": 0.0, "std": None, "min": None, "p50": None, "max": None}
    json.dumps(m.summary, allow_nan=False)


def test_results_show_briefly() -> None:
    """A notebook cell ending in a result shows a line, not every row (23 KB for 540 rows)."""
    from triplet_cli import evaluate

    x, y = labelled()
    pairs = np.stack([np.arange(10), np.arange(10) + 10], axis=1)
    shown = [repr(mine_triplets(x, y)), repr(compute_loss(x, x[::-1], x)), repr(evaluate(x, y)),
             repr(mine_negatives(x[:10], x, pairs))]
    assert shown[0] == f"MineResult(540 triplets, loss={mine_triplets(x, y).value!r} (mean))"
    assert all(len(s) < 120 and "\n" not in s for s in shown), shown


def test_a_column_name_must_be_a_string() -> None:
    x, y = labelled()
    with pytest.raises(TripletLossError, match="column must be a column name"):
        mine_triplets(x, y, column=5)


def test_pair_reduction_without_candidates_is_said() -> None:
    x, _ = labelled()
    said = "--pair-reduction has no effect"
    assert any(w.startswith(said) for w in
               compute_loss(x, x[::-1], x, pair_reduction="mean").summary["warnings"])
    k = compute_loss(x[:30], x.reshape(30, 2, 8), x[:30], pair_reduction="mean")
    assert not any(w.startswith(said) for w in k.summary["warnings"])


def test_labels_mixing_numbers_and_strings_are_refused() -> None:
    x, _ = labelled(12, 4)
    with pytest.raises(TripletLossError, match=r"labels: labels mix strings and integers; use "
                       r"one kind \(1 and '1' would be one class\)"):
        mine_triplets(x, [1, 1, 1, "1", "1", "1", 2, 2, 2, "2", "2", "2"])


TABLES = {
    "pandas": lambda columns: pd.DataFrame(columns),
    "polars": lambda columns: pl.DataFrame(columns),
    "pyarrow": lambda columns: pa.table({k: pa.array(list(v)) for k, v in columns.items()}),
    "record-batch": lambda columns: pa.table({k: pa.array(list(v)) for k, v in columns.items()}
                                             ).to_batches()[0],
}


@pytest.mark.parametrize("kind", TABLES)
def test_a_table_in_memory_is_read_as_its_file(kind: str) -> None:
    """Its list column is the embeddings and its label column the labels, as from a parquet
    file: every column was taken, so a label became one more dimension (silently other
    losses), and labels were asked for separately."""
    x, y = labelled()
    expected = mine_triplets(x, y)
    table = TABLES[kind]({"embedding": list(x), "label": y, "id": np.arange(60)})
    for got in (mine_triplets(table), mine_triplets(table, y),
                mine_triplets(TABLES[kind]({"vec": list(x), "cls": y}))):
        np.testing.assert_array_equal(got.triplets, expected.triplets)
        assert got.value == expected.value
        assert got.summary["inputs"]["embeddings"]["shape"] == [60, 8]
    with pytest.raises(TripletLossError, match=r"embeddings: cannot tell the label column; "
                       r"choose one with label_column="):
        mine_triplets(TABLES[kind]({"embedding": list(x), "a": y, "b": y}))
    assert mine_triplets(TABLES[kind]({"embedding": list(x), "a": y, "b": y}),
                         label_column="b").value == expected.value


def test_the_columns_read_are_named_in_inputs(tmp_path) -> None:
    """Chosen when none was named, they were said nowhere (the README promises every choice is
    visible)."""
    import pyarrow.parquet as pq

    x, y = labelled()
    frame = pd.DataFrame({"vec": list(x), "person_id": [f"p{v}" for v in y]})
    inputs = mine_triplets(frame).summary["inputs"]
    assert (inputs["embeddings"]["column"], inputs["labels"]["column"]) == ("vec", "person_id")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "f.parquet")
    inputs = evaluate(str(tmp_path / "f.parquet")).summary["inputs"]
    assert inputs["embeddings"][0]["column"] == "vec"
    assert inputs["labels"]["column"] == "person_id"
    assert "column" not in mine_triplets(x, y).summary["inputs"]["embeddings"]


def test_a_wide_frame_is_its_float_columns() -> None:
    """A column per dimension: the label column, ids and text are not dimensions."""
    x, y = labelled()
    expected = mine_triplets(x, y).value
    wide = pd.DataFrame(x, columns=[f"d{i}" for i in range(8)])
    assert mine_triplets(wide.assign(label=y)).value == expected
    assert mine_triplets(wide.assign(cls=y, name=[f"n{v}" for v in y]),
                         label_column="cls").value == expected
    assert mine_triplets(pd.DataFrame(x).assign(label=y)).value == expected  # columns 0..7
    codes = pd.DataFrame((x > 0).astype(np.int64))  # integer dimensions: every column
    assert mine_triplets(codes.assign(label=y)).value == mine_triplets(codes.to_numpy(), y).value
    with pytest.raises(TripletLossError, match=r"embeddings: holds no label column \(columns: "
                       r"d0, .*\); give the labels with labels="):
        mine_triplets(wide)


def test_the_public_names_are_listed() -> None:
    import triplet_cli

    assert {"compute_loss", "mine_triplets", "evaluate", "mine_negatives",
            "TripletLossError"} <= set(dir(triplet_cli))


@pytest.mark.parametrize(("band", "said"), [("semi-hard", "keeps no triplet"),
                                            ("violating", "is the same as hard")])
def test_a_margin_filter_band_that_margin_0_empties_is_said(band: str, said: str) -> None:
    x, y = labelled()
    warnings = mine_triplets(x, y, margin_filter=band, soft_margin=True).summary["warnings"]
    assert any(w.startswith(f"--margin-filter {band} with margin 0 (the default with "
                            f"--soft-margin)") and said in w for w in warnings)


def test_a_polars_series_and_a_dict_of_columns_are_inputs() -> None:
    """A polars Series raised an AttributeError from inside; a result's .columns (a dict) could
    not be passed back as triplets."""
    x, y = labelled()
    mined = mine_triplets(x, y)
    assert compute_loss(pl.Series(x[:10]), x[10:20], x[20:30]).value == \
        compute_loss(x[:10], x[10:20], x[20:30]).value
    columns = {"anchor": mined.triplets[:, 0], "positive": mined.triplets[:, 1],
               "negative": mined.triplets[:, 2], "loss": mined.loss}
    assert compute_loss(embeddings=x, triplets=columns).value == mined.value
    negatives = mine_negatives(x, x, {"query": [0, 1], "positive": [1, 2]})
    assert compute_loss(embeddings=x, triplets=negatives.columns).summary["count"] == 6


@pytest.mark.parametrize(("given", "said"), [
    ({1, 2}, "is a set, not an array of numbers"),
    ((r for r in range(3)), "is a generator, not an array of numbers"),
    (b"xx", "is a bytes, not an array of numbers"),
])
def test_a_non_array_says_what_it_is(given: object, said: str) -> None:
    """They were all 'holds a single number (a 0-d array)'."""
    x, _ = labelled()
    with pytest.raises(TripletLossError, match=f"^anchors: {said}$"):
        compute_loss(given, x, x)


def test_bytes_labels_are_text_and_gates_have_an_outcome() -> None:
    """bytes labels made evaluate's summary unwritable as JSON; a failed gate was visible only
    by walking summary['gates']."""
    x, y = labelled()
    text = evaluate(x, [str(v) for v in y])
    raw = evaluate(x, [str(v).encode() for v in y])
    assert json.dumps(raw.summary) == json.dumps(text.summary)
    assert raw.passed and text.passed
    gated = evaluate([x, x[::-1].copy()], y, fail_below="map_at_r=0.999",
                     fail_drop="precision_at_1=0")
    assert not gated.passed
    assert {g["passed"] for g in gated.summary["gates"]} == {False}
    with pytest.raises(TripletLossError, match="bytes that are not UTF-8"):
        mine_triplets(x, [b"\xff", b"a"] * 30)


@pytest.mark.parametrize("strategy", ["hard", "semi-hard", "easy"])
def test_per_anchor_at_its_largest_allocates_for_the_negatives_there_are(strategy: str) -> None:
    """per_anchor = 2^31 - 1 (the largest accepted) on 30 rows: slots for K per pair took 240 GiB
    (a MemoryError); the rows are those of per_anchor = 24, every negative there is."""
    x = np.random.default_rng(0).standard_normal((30, 4))
    y = np.repeat(np.arange(5), 6)
    most = mine_triplets(x, y, strategy=strategy, per_anchor=2**31 - 1)
    every = mine_triplets(x, y, strategy=strategy, per_anchor=24)
    assert np.array_equal(most.triplets, every.triplets)
    assert np.array_equal(most.loss, every.loss)


@pytest.mark.parametrize(("run", "option"), [
    (lambda a: compute_loss(a, a, a, margin=10**400), "--margin"),
    (lambda a: compute_loss(a, a, a, eps=-10**400), "--eps"),
    (lambda a: mine_triplets(a, np.arange(4) % 2, margin=10**400), "--margin"),
    (lambda a: mine_negatives(a, a, np.array([[0, 1]]), max_score=10**400), "--max-score"),
])
def test_a_number_beyond_float_is_a_usage_error(run, option: str) -> None:
    """A Python int too large for a float raised Python's own OverflowError."""
    with pytest.raises(TripletLossError, match=rf"^{option} must be a number within float64's "
                                               r"range \(got one of 401 digits\)$"):
        run(np.eye(4))


def test_a_k_of_at_beyond_int64_is_a_usage_error() -> None:
    """evaluate(at=[10**400]) passed the check and failed in the metrics (OverflowError)."""
    with pytest.raises(TripletLossError, match=r"^--at must be whole numbers from 1 to 2\^63"):
        evaluate(np.eye(4), np.arange(4) % 2, at=[1, 10**400])


def test_column_names_where_no_input_is_a_table_are_said() -> None:
    """The CLI said so, the library not: column="y" with arrays passed unseen; a data frame
    has columns to name."""
    x = np.random.default_rng(0).standard_normal((12, 3))
    y = np.arange(12) % 3
    said = [f"{f} has no effect: no input is a table (.parquet, .arrow, .csv, .jsonl, a data "
            "frame)" for f in ("--column", "--label-column")]
    m = mine_triplets(x, y, column="y", label_column="x")
    assert [w for w in m.summary["warnings"] if "no input is a table" in w] == said
    c = compute_loss(x, x[::-1], [*x[1:].tolist(), x[0].tolist()], column="emb")
    assert [w for w in c.summary["warnings"] if "no input is a table" in w] == said[:1]
    frame = pd.DataFrame({"emb": list(x), "label": y})
    named = mine_triplets(frame, column="emb", label_column="label")
    assert not any("no input is a table" in w for w in named.summary["warnings"])
