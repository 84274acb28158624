"""_jit.in_parallel, which runs every kernel on threads: each task once, a thread's error raised
in the caller, and every command's results the same bits whatever the number of parts (more
parts than this machine has cores included)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from triplet_cli import _jit, compute_loss, evaluate, mine_negatives, mine_triplets

PARTS = [2, 3, 8]


def _parts(monkeypatch: pytest.MonkeyPatch, parts: int) -> None:
    monkeypatch.setattr(_jit, "threads_in_use", lambda: parts)


@pytest.mark.parametrize("threads", [1, 2, 5])
@pytest.mark.parametrize("tasks", [0, 1, 4, 17])
def test_every_task_runs_once(monkeypatch, threads: int, tasks: int) -> None:
    _parts(monkeypatch, threads)
    seen: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def kernel(lo: int, hi: int) -> None:
        with lock:
            seen.extend((t, threading.current_thread().name) for t in range(lo, hi))

    _jit.in_parallel(kernel, tasks)
    assert sorted(t for t, _ in seen) == list(range(tasks))
    assert len({name for _, name in seen}) <= min(threads, tasks)


@pytest.mark.parametrize(("tasks", "per_thread", "threads"), [
    (17, 1, 5), (17, 8, 2), (15, 8, 1), (7, 8, 1), (0, 8, 1), (64, 16, 4)])
def test_a_thread_takes_at_least_per_thread_tasks(monkeypatch, tasks: int, per_thread: int,
                                                  threads: int) -> None:
    _parts(monkeypatch, 5)
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()

    def kernel(lo: int, hi: int) -> None:
        with lock:
            seen.extend((t, threading.current_thread().name) for t in range(lo, hi))

    _jit.in_parallel(kernel, tasks, per_thread=per_thread)
    assert sorted(t for t, _ in seen) == list(range(tasks))
    assert len({name for _, name in seen}) <= threads


def test_short_compute_runs_on_the_calling_thread(monkeypatch) -> None:
    """compute_loss's kernel takes a second thread only from THREAD_VALUES input values a
    thread (at d = 128: 42 tasks of 256 rows, so two threads from 84 tasks), with the same
    bits."""
    from triplet_cli import losses

    assert losses.THREAD_VALUES == 1 << 22
    started: list[int] = []
    together = _jit.together

    def counted(*tasks):
        started.append(len(tasks))
        return together(*tasks)

    monkeypatch.setattr(_jit, "together", counted)
    rng = np.random.default_rng(3)
    for rows, threads in ((4_096, 1), (83 * 256, 1), (83 * 256 + 1, 2), (65_536, 2)):
        a, p, n = (rng.standard_normal((rows, 128)).astype(np.float32) for _ in range(3))
        _parts(monkeypatch, 1)
        want = compute_loss(a, p, n).loss
        _parts(monkeypatch, 2)
        started.clear()
        np.testing.assert_array_equal(compute_loss(a, p, n).loss, want)
        assert max(started, default=1) == threads


def test_a_slow_thread_leaves_its_ranges_to_the_others(monkeypatch) -> None:
    """Ranges are taken one at a time: while one thread is held up in its first range, the
    other runs the rest, its own share and then the held thread's."""
    _parts(monkeypatch, 2)
    held, seen, lock = threading.Event(), {}, threading.Lock()
    tasks = 2 * _jit.PIECES_PER_THREAD  # one task a range

    def kernel(lo: int, hi: int) -> None:
        name = threading.current_thread().name
        with lock:
            first = not seen
            seen.setdefault(name, [])
        if first:
            held.wait(10)
        with lock:
            seen[name].extend(range(lo, hi))
            if sum(map(len, seen.values())) == tasks - 1:  # all but the held range: let it go
                held.set()

    _jit.in_parallel(kernel, tasks)
    ranges = sorted(seen.values(), key=len)
    assert len(ranges) == 2 and sorted(ranges[0] + ranges[1]) == list(range(tasks))
    assert len(ranges[0]) == 1  # the held thread ran only its first range


def test_a_part_error_reaches_the_caller(monkeypatch) -> None:
    _parts(monkeypatch, 3)

    def kernel(lo: int, hi: int) -> None:
        if hi == 10:
            raise ValueError(f"tasks {lo}..{hi}")

    with pytest.raises(ValueError, match=r"tasks 9\.\.10"):
        _jit.in_parallel(kernel, 10)


def test_after_an_error_no_thread_takes_another_range(monkeypatch) -> None:
    """A failed range (an error, or Ctrl-C in the caller's thread) ends the call after the
    ranges already under way, not after all of them."""
    _parts(monkeypatch, 2)
    ran, lock = [], threading.Lock()

    def kernel(lo: int, hi: int) -> None:
        with lock:
            ran.append(lo)
        if lo == 0:
            raise KeyboardInterrupt
        time.sleep(0.01)  # a range takes a while, as a kernel's does

    with pytest.raises(KeyboardInterrupt):
        _jit.in_parallel(kernel, 1000)
    assert len(ran) < 8  # of 32 ranges: the other thread stopped too


def test_together_raises_the_first_task_error_whichever_fails_sooner(monkeypatch) -> None:
    """Reading several files side by side: two bad files give the error of the first named,
    the same message on every run, although the second fails sooner."""
    _parts(monkeypatch, 2)

    def slow_failure() -> None:
        time.sleep(0.05)
        raise ValueError("first")

    def quick_failure() -> None:
        raise ValueError("second")

    for _ in range(3):
        with pytest.raises(ValueError, match="first"):
            _jit.together(slow_failure, quick_failure, lambda: None)


def test_parquet_inputs_read_side_by_side_give_the_same_rows(monkeypatch, tmp_path) -> None:
    """compute on three parquet files, their blocks decoded on threads, equals the arrays."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from triplet_cli import compute

    rng = np.random.default_rng(11)
    arrays = [rng.standard_normal((5000, 8)).astype(np.float32) for _ in range(3)]
    paths = []
    for k, a in enumerate(arrays):
        paths.append(tmp_path / f"{k}.parquet")
        pq.write_table(pa.table({"embedding": list(a)}), paths[-1], row_group_size=700)
    want = compute_loss(*arrays)
    monkeypatch.setattr(compute, "BLOCK_ROWS", 1024)
    for parts in (1, 2, 3):
        _parts(monkeypatch, parts)
        got = compute_loss(*(str(p) for p in paths), block_rows=1024)
        for c in ("d_ap", "d_an", "loss"):
            np.testing.assert_array_equal(getattr(got, c), getattr(want, c))
        assert got.summary["mean"] == want.summary["mean"]


def _labelled(seed: int, m: int = 300, d: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 9, m)
    return (rng.standard_normal((9, d))[y] + rng.standard_normal((m, d))).astype(np.float32), y


def _runs() -> dict[str, object]:
    """Every kernel's bits: compute (aligned, indexed, candidates, both loss kernels), mine
    (each negative strategy, batch-all, exact rankings, split products), evaluate and
    mine-negatives."""
    rng = np.random.default_rng(7)
    a, p, n = (rng.standard_normal((1000, 16)).astype(np.float32) for _ in range(3))
    x, y = _labelled(8)
    out: dict[str, object] = {}
    for distance in ("euclidean", "manhattan"):
        r = compute_loss(a, p, n, distance=distance, swap=True)
        out[f"compute {distance}"] = (r.d_ap.tobytes(), r.d_an.tobytes(), r.loss.tobytes())
    triplets = rng.integers(0, len(x), (700, 3))
    r = compute_loss(embeddings=x, triplets=triplets)
    out["indexed"] = (r.d_ap.tobytes(), r.d_an.tobytes(), r.loss.tobytes())
    r = compute_loss(a[:600], *(rng.standard_normal((600, k, 16)).astype(np.float32)
                                for k in (3, 2)))
    out["candidates"] = (r.d_ap.tobytes(), r.d_an.tobytes(), r.loss.tobytes())
    for strategy in ("hard", "semi-hard", "easy", "all"):
        m = mine_triplets(x, y, strategy=strategy)
        out[f"mine {strategy}"] = (m.triplets.tobytes(), m.d_ap.tobytes(), m.d_an.tobytes())
    m = mine_triplets(x, y, strategy="semi-hard", distance="chebyshev")
    out["mine direct"] = (m.triplets.tobytes(), m.d_an.tobytes())
    wide = rng.standard_normal((400, 1536)).astype(np.float32)  # crowded: split products
    wide /= np.linalg.norm(wide, axis=1, keepdims=True)
    m = mine_triplets(wide, np.arange(400) % 20, strategy="semi-hard")
    out["mine split"] = (m.triplets.tobytes(), m.d_an.tobytes())
    e = evaluate(x, y, at="1,5")
    out["evaluate"] = (repr(e.metrics), *(v.tobytes() for v in e.rows.values()))
    g = mine_negatives(x[:100], corpus=x, pairs=np.stack([np.arange(100), np.arange(100, 200)], 1),
                       range_max=20, false_negative_eps=0.5)
    out["negatives"] = tuple(v.tobytes() for v in g.columns.values())
    return out


@pytest.mark.parametrize("parts", PARTS)
def test_results_do_not_depend_on_parts(monkeypatch, parts: int) -> None:
    from triplet_cli import distances, losses

    monkeypatch.setattr(losses, "THREAD_VALUES", 1)  # these short runs' loss kernels split too
    split = []
    add_part = distances.add_part
    monkeypatch.setattr(distances, "add_part", lambda *a: (split.append(1), add_part(*a)))
    _parts(monkeypatch, 1)
    one = _runs()
    assert split  # the split products' sum ran
    _parts(monkeypatch, parts)
    assert _runs() == one


@pytest.mark.parametrize("parts", PARTS)
def test_summary_does_not_depend_on_parts(monkeypatch, parts: int) -> None:
    """The summary's chunks, taken one at a time by the threads, merge to the same values."""
    from triplet_cli import reductions

    monkeypatch.setattr(reductions, "CHUNK_ROWS", 100)
    rng = np.random.default_rng(11)
    d_ap, d_an = rng.random(5_050) * 2, rng.random(5_050) * 2
    loss = np.maximum(d_ap - d_an + 1.0, 0.0)

    def summary() -> str:
        stats = reductions.TripletStats(margin=1.0, sample_size=2_000)
        for lo in range(0, 5_050, 1_234):
            stats.add(d_ap[lo:lo + 1_234], d_an[lo:lo + 1_234], loss[lo:lo + 1_234])
        return repr((stats.summary("mean"), stats.warnings()))

    _parts(monkeypatch, 1)
    one = summary()
    _parts(monkeypatch, parts)
    assert summary() == one


def test_each_thread_starts_its_own_share_then_helps_the_largest_left() -> None:
    """Threads begin far apart (a fresh output's pages are first touched by one thread each)."""
    shares = _jit.Shares(8, 2)
    assert [shares.take(0), shares.take(1)] == [0, 4]
    assert [shares.take(1) for _ in range(3)] == [5, 6, 7]
    assert [shares.take(1), shares.take(1)] == [3, 2]  # thread 0's run, from its end
    assert [shares.take(0), shares.take(0), shares.take(1)] == [1, None, None]
