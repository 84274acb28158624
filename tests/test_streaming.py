"""Out-of-core compute: inputs read block by block (memory-mapped .npy slices, parquet record
batches, folders of parquet files) give exactly the in-memory results."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triplet_cli import compute, compute_loss, reductions
from triplet_cli.errors import InputError

N, D = 1_000, 7


def _embedding_table(x: np.ndarray) -> pa.Table:
    flat = pa.array(x.reshape(-1))
    return pa.table({"id": np.arange(len(x)), "embedding":
                     pa.FixedSizeListArray.from_arrays(flat, x.shape[1])})


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {role: rng.normal(size=(N, D)).astype(np.float32)
            for role in ("anchors", "positives", "negatives")}


@pytest.fixture
def small_blocks(monkeypatch) -> None:
    """Blocks of 97 rows (a prime: block edges never align with parquet row groups)."""
    monkeypatch.setattr(compute, "BLOCK_ROWS", 97)


def _write_inputs(tmp_path, arrays, layout: str) -> dict[str, str]:
    paths = {}
    for role, x in arrays.items():
        if layout == "npy":
            paths[role] = str(tmp_path / f"{role}.npy")
            np.save(paths[role], x)
        elif layout == "parquet":
            paths[role] = str(tmp_path / f"{role}.parquet")
            pq.write_table(_embedding_table(x), paths[role], row_group_size=64)
        else:  # a folder of parquet files read as one dataset, in file-name order
            folder = tmp_path / role
            folder.mkdir()
            for k, s in enumerate(range(0, N, 300)):
                pq.write_table(_embedding_table(x[s:s + 300]), folder / f"part-{k:03d}.parquet",
                               row_group_size=50)
            paths[role] = str(folder)
    return paths


@pytest.mark.parametrize("layout", ["npy", "parquet", "dataset"])
def test_streamed_compute_equals_in_memory(tmp_path, arrays, small_blocks, layout, cli) -> None:
    expected = compute_loss(**arrays)
    paths = _write_inputs(tmp_path, arrays, layout)
    streamed = compute_loss(paths["anchors"], paths["positives"], paths["negatives"])
    np.testing.assert_array_equal(streamed.loss, expected.loss)
    np.testing.assert_array_equal(streamed.d_ap, expected.d_ap)
    for key in ("count", "mean", "mean_nonzero", "active_fraction", "accuracy", "d_ap", "d_an"):
        assert streamed.summary[key] == pytest.approx(expected.summary[key], rel=1e-12), key
    out = tmp_path / "rows.parquet"
    result = cli("compute", "--anchors", paths["anchors"], "--positives", paths["positives"],
                 "--negatives", paths["negatives"], "-o", out, "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["count"] == N
    rows = pq.read_table(out)
    np.testing.assert_array_equal(rows.column("index").to_numpy(), np.arange(N))
    np.testing.assert_array_equal(rows.column("loss").to_numpy(), expected.loss)


def test_streamed_triplets_equal_in_memory(tmp_path, small_blocks) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(50, D))
    t = rng.integers(0, 50, size=(N, 3))
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"anchor": t[:, 0], "positive": t[:, 1], "negative": t[:, 2]}),
                   path, row_group_size=128)
    streamed = compute_loss(embeddings=x, triplets=str(path))
    in_memory = compute_loss(embeddings=x, triplets=t)
    np.testing.assert_array_equal(streamed.loss, in_memory.loss)
    np.testing.assert_array_equal(streamed.triplets, t)


def test_streamed_triplet_out_of_range_names_its_row(tmp_path, small_blocks) -> None:
    t = np.zeros((N, 3), np.int64)
    t[700, 2] = 50
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"anchor": t[:, 0], "positive": t[:, 1], "negative": t[:, 2]}),
                   path, row_group_size=128)
    with pytest.raises(InputError, match=r"row 700: negative index 50 is out of range"):
        compute_loss(embeddings=np.ones((50, D)), triplets=str(path))


def test_nan_in_a_later_parquet_block_names_the_global_row(tmp_path, arrays,
                                                          small_blocks) -> None:
    arrays["positives"][555, 3] = np.nan
    paths = _write_inputs(tmp_path, arrays, "parquet")
    with pytest.raises(InputError, match=r"positives\.parquet: row 555 contains NaN"):
        compute_loss(paths["anchors"], paths["positives"], paths["negatives"])


def test_sampled_quantiles_do_not_depend_on_block_size(arrays, monkeypatch) -> None:
    results = []
    for rows in (97, 333, 1 << 20):
        monkeypatch.setattr(compute, "BLOCK_ROWS", rows)
        stats = reductions.TripletStats(margin=1.0, sample_size=100)
        job = compute.prepare_compute(**arrays)
        for block in job.blocks():
            stats.add(*(block.columns[c] for c in ("d_ap", "d_an", "loss")))
        results.append((stats.summary("mean")["d_ap"], stats.summary("mean")["quantiles"]))
    (first, how), *others = results
    assert how == "sample of 100"
    for summary, other_how in others:  # the sample is keyed by row number: p50 is identical
        assert other_how == how and summary["p50"] == first["p50"]
        assert summary == pytest.approx(first, rel=1e-12)  # running sums: last-bit rounding
