"""The summary statistics (reductions.py, statistics.py) against plain numpy, bit for bit.

The summary was numpy expressions per chunk of CHUNK_ROWS rows (sums, means, squared deviations,
min/max, counts) and np.median over the sample; the jitted passes that replaced them must give
the same JSON values exactly, whatever the block sizes. `numpy_summary` below is that numpy
formulation, kept as the oracle.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from triplet_cli import compute_loss, reductions, statistics
from triplet_cli.statistics import middle


def _moments(columns: list[np.ndarray]) -> dict[str, float]:
    """Chan's merge of per-chunk numpy mean / squared deviations, Python min/max."""
    count, mean, m2, low, high = 0, 0.0, 0.0, math.inf, -math.inf
    for v in columns:  # (inf - inf is NaN here as in the tool: numpy's warning is silenced)
        with np.errstate(invalid="ignore", over="ignore"):
            n, m = v.size, float(v.mean())
            s = float(np.square(v - m).sum())
        total = count + n
        delta = m - mean
        mean += delta * n / total
        m2 += s + delta * delta * count * n / total
        count = total
        low, high = min(low, float(v.min())), max(high, float(v.max()))
    return {"mean": mean, "std": math.sqrt(m2 / count), "min": low, "max": high}


def numpy_summary(d_ap, d_an, loss, correct, margin, chunk, sample_size, soft=False):
    """(summary numbers, warning counts) as numpy computes them chunk by chunk; a tie is a gap
    within 1e-6 of the loss' scale (1 for softplus, else the margin; |d_an| at margin 0)."""
    sums = dict(loss=0.0, nonzero=0.0, correct=0.0)
    counts = dict(active=0, nan=0, ties=0, on_margin=0, zeros=0)
    top = -math.inf
    right = correct if correct is not None else (d_ap < d_an).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        for s in range(0, loss.size, chunk):
            c = slice(s, s + chunk)
            sums["loss"] += float(loss[c].sum())
            counts["active"] += int((loss[c] > 0).sum())
            sums["nonzero"] += float(loss[c][loss[c] > 0].sum())
            sums["correct"] += float(right[c].sum())
            nan = np.isnan(loss[c])
            counts["nan"] += int(nan.sum())
            if not nan.all():
                top = max(top, float(loss[c][~nan].max()))
            scale = 1.0 if soft else abs(margin) or float(np.abs(d_an[c]).max())
            gap = d_an[c] - d_ap[c]
            counts["ties"] += int((np.abs(gap) <= reductions.TIE_TOLERANCE * scale).sum())
            counts["on_margin"] += int((gap == margin).sum())
            counts["zeros"] += int((d_ap[c] == 0).sum() + (d_an[c] == 0).sum())
    keys = reductions._hash_keys(np.arange(loss.size))
    kept = (np.arange(loss.size) if loss.size <= sample_size else
            np.argpartition(keys, sample_size)[:sample_size])
    out = {"sums": sums, "counts": counts, "top": top}
    for name, v in (("d_ap", d_ap), ("d_an", d_an)):
        out[name] = {**_moments([v[s:s + chunk] for s in range(0, v.size, chunk)]),
                     "p50": float(np.median(v[kept]))}
    return out


def summary_of(stats: reductions.TripletStats):
    stats.settle()
    s = stats.summary("mean")
    return {"sums": dict(loss=stats.loss_sum, nonzero=stats.nonzero_sum,
                         correct=stats.correct_sum),
            "counts": dict(active=stats.nonzero_count, nan=stats.nan_count, ties=stats.ties,
                           on_margin=stats.on_margin, zeros=stats.zero_distances),
            "top": stats.loss_max,
            **{k: {f: s[k][f] for f in ("mean", "std", "min", "max", "p50")}
               for k in ("d_ap", "d_an")}}


KINDS = ("plain", "dot", "nan", "ties", "huge", "constant", "tiny")


def _columns(rng, n, kind, margin):
    d_ap, d_an = rng.random(n) * 2, rng.random(n) * 2
    if kind == "dot":  # negative distances and signed zeros
        d_ap -= 1
        d_an -= 1
        d_ap[::7], d_an[::11] = -0.0, 0.0
    elif kind == "nan":
        d_ap[rng.integers(0, n, 2)] = np.nan
        d_an[rng.integers(0, n, 2)] = np.nan
    elif kind == "ties":
        d_an[::3] = d_ap[::3]
        d_an[1::5] = d_ap[1::5] + margin
    elif kind == "huge":
        d_an *= 1e300
        d_an[::9] = np.inf
    elif kind == "constant":
        d_ap[:], d_an[:] = 0.5, 0.5
    elif kind == "tiny":  # distances of 1e-7: ties relative to them, or to the margin
        d_ap *= 1e-7
        d_an *= 1e-7
        d_an[::4] = d_ap[::4] * (1 + 1e-9)
    with np.errstate(invalid="ignore"):
        loss = np.maximum(d_ap - d_an + margin, 0.0)
    loss[np.isnan(d_ap) | np.isnan(d_an)] = np.nan
    return d_ap, d_an, loss


def _same(got, want) -> bool:
    """Equal as the JSON shows them: repr of every number (NaN equal to NaN, -0.0 not 0.0)."""
    return repr(got) == repr(want)


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 1200), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1),
       chunk=st.sampled_from([8, 100, 128, 1000]), sample_size=st.sampled_from([50, 10**6]),
       with_correct=st.booleans(), cuts=st.lists(st.integers(0, 1200), max_size=4),
       margin=st.sampled_from([1.0, 0.0, 0.2]), soft=st.booleans())
def test_summary_equals_numpy(n, kind, seed, chunk, sample_size, with_correct, cuts, margin,
                              soft):
    rng = np.random.default_rng(seed)
    d_ap, d_an, loss = _columns(rng, n, kind, margin)
    correct = rng.random(n) if with_correct else None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reductions, "CHUNK_ROWS", chunk)
        stats = reductions.TripletStats(margin, soft, sample_size=sample_size)
        bounds = [0, *sorted(c for c in cuts if c < n), n]
        for a, b in itertools.pairwise(bounds):
            stats.add(d_ap[a:b], d_an[a:b], loss[a:b],
                      None if correct is None else correct[a:b])
        got = summary_of(stats)
    want = numpy_summary(d_ap, d_an, loss, correct, margin, chunk, sample_size, soft)
    assert _same(got, want)


@settings(deadline=None, max_examples=60)
@given(n=st.one_of(st.integers(0, 300), st.integers(300, 70_000)), seed=st.integers(0, 2**32 - 1))
def test_pairwise_sum_is_numpys(n, seed):
    """statistics._sum orders a sum as np.sum does (pairwise halves at multiples of 8, blocks of
    128 in 8 lanes): the same bits, on values of mixed magnitudes where the order shows."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)
    mean = float(values.mean()) if n else 0.0
    assert repr(statistics._sum(values, n, 0.0, np.bool_(False))) == repr(float(values.sum()))
    assert repr(statistics._sum(values, n, mean, np.bool_(True))) == \
        repr(float(np.square(values - mean).sum()))


def test_sum_follows_numpys_buffers(monkeypatch):
    """numpy before 2.3 reduces buffers of 8,192 values one after the other, each pairwise (the
    test above checks the installed numpy's order): with NUMPY_BUFFER at 8,192, _sum is that
    order, np.sum of each buffer (the same bits in every numpy) added in turn."""
    monkeypatch.setattr(statistics, "NUMPY_BUFFER", 8192)
    rng = np.random.default_rng(3)
    for n in (0, 1, 8192, 8193, 20_000, 70_000):
        values = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)
        mean = float(values.mean()) if n else 0.0
        plain = squares = 0.0
        for lo in range(0, n, 8192):
            plain += float(values[lo:lo + 8192].sum())
            squares += float(np.square(values[lo:lo + 8192] - mean).sum())
        assert repr(statistics._sum.py_func(values, n, 0.0, np.bool_(False))) == repr(plain)
        assert repr(statistics._sum.py_func(values, n, mean, np.bool_(True))) == repr(squares)


@settings(deadline=None, max_examples=60)
@given(n=st.one_of(st.integers(1, 300), st.integers(300, 70_000)), kind=st.sampled_from(KINDS),
       seed=st.integers(0, 2**32 - 1), margin=st.sampled_from([1.0, 0.0, 0.2, -0.5]),
       soft=st.booleans())
def test_numpy_path_gives_the_passes_bits(n, kind, seed, margin, soft):
    """A short run is summarised by numpy's expressions (no compile); they and the jitted pass
    give the same bits for every field, on the columns that test the edges
    (signed zeros, NaN, infinities, ties, constant and tiny distances)."""
    d_ap, d_an, loss = _columns(np.random.default_rng(seed), n, kind, margin)
    stats = reductions.TripletStats(margin, soft)
    extremes = np.array([d_ap.min(), d_ap.max(), d_an.min(), d_an.max()])
    by_numpy, by_pass = np.empty(statistics.FIELDS), np.empty(statistics.FIELDS)
    reductions._numpy_summary(d_ap, d_an, loss, margin, stats._loss_scale, extremes, by_numpy)
    statistics.chunk_summary(d_ap, d_an, loss, margin, reductions.TIE_TOLERANCE,
                             stats._loss_scale, extremes, np.empty(n), np.empty(n, np.uint16),
                             np.full((2, 2), np.nan), np.zeros((2, statistics.BUCKETS + 2),
                                                                 np.int64), by_pass)
    assert [repr(v) for v in by_numpy.tolist()] == [repr(v) for v in by_pass.tolist()]


def test_which_runs_take_the_numpy_path():
    """A run of NUMPY_ROWS is summarised by numpy, a longer one by the jitted passes (whose
    histograms then hold every row); both give np.median's p50."""
    rng = np.random.default_rng(7)
    for n, by_numpy in ((reductions.NUMPY_ROWS, True), (reductions.NUMPY_ROWS + 1, False),
                        (reductions.CHUNK_ROWS + 1, False)):
        d_ap, d_an, loss = _columns(rng, n, "plain", 1.0)
        stats = reductions.TripletStats(1.0)
        stats.add(d_ap, d_an, loss)
        got = stats.summary("mean")
        assert stats._by_numpy is by_numpy
        assert int(stats._counts.sum()) == (0 if by_numpy else 2 * n)
        assert repr(got["d_ap"]["p50"]) == repr(float(np.median(d_ap)))


def test_medians_side_by_side_only_for_long_columns(monkeypatch):
    """The two medians take a second thread only from MEDIANS_SIDE_BY_SIDE rows (below, the
    thread's start costs more than a median); the values are np.median's either way."""
    rng = np.random.default_rng(8)
    side_by_side = []

    def together(*tasks):
        side_by_side.append(len(tasks) > 1)
        return [task() for task in tasks]

    monkeypatch.setattr(reductions, "together", together)
    for n, two in ((100, False), (reductions.MEDIANS_SIDE_BY_SIDE - 1, False),
                   (reductions.MEDIANS_SIDE_BY_SIDE, True)):
        d_ap, d_an, loss = _columns(rng, n, "plain", 1.0)
        stats = reductions.TripletStats(1.0)
        stats.add(d_ap, d_an, loss)
        stats.settle()
        side_by_side.clear()
        got = stats.summary("mean")
        assert any(side_by_side) is two
        assert repr(got["d_an"]["p50"]) == repr(float(np.median(d_an)))


@pytest.mark.parametrize("kind", ["negative zeros", "signed zeros", "infinities", "nan", "huge"])
@pytest.mark.parametrize("n", [5, 13, 128, 131, 256, 1000, 65_539])
def test_pairwise_sum_of_special_values_is_numpys(kind, n):
    """The lane sums start from +0.0 where numpy starts from the first eight values: the same
    bits for zeros of either sign, infinities, NaN and sums that overflow."""
    rng = np.random.default_rng(n)
    values = rng.standard_normal(n)
    if kind == "negative zeros":
        values[:] = -0.0
    elif kind == "signed zeros":
        values[:] = np.where(rng.random(n) < 0.5, -0.0, 0.0)
    elif kind == "infinities":
        values[rng.integers(0, n, 3)] = np.inf
        values[rng.integers(0, n, 1)] = -np.inf
    elif kind == "nan":
        values[rng.integers(0, n, 2)] = np.nan
    else:  # sums of 1e308 overflow to inf, and so do some squares
        values = values.clip(-1.7, 1.7) * 1e308
    with np.errstate(invalid="ignore", over="ignore"):
        mean = float(values.mean())
        assert repr(statistics._sum(values, n, 0.0, np.bool_(False))) == repr(float(values.sum()))
        assert repr(statistics._sum(values, n, mean, np.bool_(True))) == \
            repr(float(np.square(values - mean).sum()))


@pytest.mark.parametrize("kind", ["uniform", "outlier", "duplicates", "two-values", "inf",
                                  "tiny", "nan"])
@pytest.mark.parametrize("n", [1, 2, 3, 10, 4097, 10_000, 100_001])
def test_median_is_numpy_median(kind, n):
    """middle() finds numpy.median's middle values on spread, skewed, tied and extreme data."""
    rng = np.random.default_rng(n)
    v = rng.random(n)
    if kind == "outlier":
        v[0] = 1e300
    elif kind == "duplicates":
        v = rng.integers(0, 5, n).astype(np.float64)
    elif kind == "two-values":
        v = np.where(rng.random(n) < 0.5, -1.0, 1e-300)
    elif kind == "inf":
        v[::3] = np.inf
        v[1::7] = -np.inf
    elif kind == "tiny":
        v *= 1e-310
    elif kind == "nan":
        v[n // 2] = np.nan
    with np.errstate(invalid="ignore"):  # -inf and inf in the middle: NaN, as numpy says
        want = repr(float(np.median(v)))
    for bounds in ((math.nan, math.nan), (np.min(v), np.max(v)), (-np.inf, np.inf)):
        if kind == "nan" and not math.isnan(bounds[0]):
            continue  # bounds are given only when no value is NaN
        low, high, candidates, i, j = middle(v, *bounds, reductions._NO_GRID,
                                             np.zeros(0, np.int64))
        if candidates.size:
            low, high = np.sort(candidates)[[i, j]]
        with np.errstate(invalid="ignore"):
            got = repr(float(np.mean(np.array([low] if n % 2 else [low, high]))))
        assert got == want, bounds


@settings(deadline=None, max_examples=200)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 200), first=st.integers(0, 4097),
       width=st.integers(0, 3), start=st.integers(0, 50))
@example(seed=1, n=200, first=4097, width=0, start=0)  # the top bucket alone (x >= BUCKETS)
@example(seed=2, n=200, first=4096, width=1, start=0)
@example(seed=3, n=200, first=0, width=0, start=0)  # below the grid
def test_may_hold_finds_every_value_of_its_buckets(seed, n, first, width, start):
    """The median's group test misses no value of buckets first..last: values on bucket
    edges, below and above the grid, and infinite ones, against the buckets' own numbers."""
    rng = np.random.default_rng(seed)
    lo, scale = rng.uniform(-2, 2), statistics.BUCKETS / rng.uniform(0.5, 4)
    edges = lo + rng.integers(-2, statistics.BUCKETS + 3, n) / scale  # on (or next to) an edge
    v = np.where(rng.random(n) < 0.5, edges, lo + rng.uniform(-0.1, 1.1, n) * 4096 / scale)
    v[rng.random(n) < 0.05] = np.inf
    v[rng.random(n) < 0.05] = -np.inf
    last = min(first + width, statistics.BUCKETS + 1)
    stop = min(start + n, n)
    start = min(start, stop)
    want = any(first <= statistics._bucket(x, lo, scale) <= last for x in v[start:stop])
    assert statistics._may_hold(v, start, stop, lo, scale, first, last) == want


@pytest.mark.parametrize("where", ["above", "below"])
def test_median_outside_the_first_chunks_grid(where):
    """The histogram's grid comes from the first chunk: a median that falls in the bucket below
    it or in the top bucket above it (with infinities there) is still numpy's."""
    n, chunk = 5_001, 100
    rng = np.random.default_rng(5)
    d_ap = rng.random(n)
    shift = 10.0 if where == "above" else -10.0
    d_ap[chunk:] += shift  # every later row outside the first chunk's range
    d_ap[chunk::7] = np.inf if where == "above" else -np.inf
    d_an = d_ap + 1.0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reductions, "CHUNK_ROWS", chunk)
        stats = reductions.TripletStats(1.0)
        stats.add(d_ap, d_an, np.zeros(n))
        got = stats.summary("mean")
    assert repr(got["d_ap"]["p50"]) == repr(float(np.median(d_ap)))
    assert repr(got["d_an"]["p50"]) == repr(float(np.median(d_an)))


def test_library_columns_are_not_copied():
    """compute_loss's columns are the one allocation the kernel filled (keep_rows), and the
    summary reads them in place."""
    rng = np.random.default_rng(3)
    a, p, n = (rng.standard_normal((3000, 8)) for _ in range(3))
    r = compute_loss(a, p, n)
    rows = r.d_ap.base
    assert rows is not None and rows.shape == (9000,) and rows.flags.owndata
    assert r.d_an.base is rows and r.loss.base is rows
    assert r.summary["d_ap"]["p50"] == float(np.median(r.d_ap))


def _hardest_of_all(blocks, k):
    """The k hardest rows of all blocks: NaN first, then the largest loss, ties by row."""
    loss = np.concatenate([b["loss"] for b in blocks])
    key = np.where(np.isnan(loss), math.inf, loss)
    order = np.argsort(-key, kind="stable")[:k]
    return {c: np.concatenate([b[c] for b in blocks])[order] for c in blocks[0]}


@settings(deadline=None, max_examples=60)
@given(n=st.integers(0, 400), k=st.integers(1, 12), levels=st.integers(1, 5),
       seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_hardest_rows(n, k, levels, seed, cuts):
    """The table's hardest rows, block by block, equal the stable sort of every row (few loss
    levels: many ties; NaN rows)."""
    from triplet_cli.report import Hardest

    rng = np.random.default_rng(seed)
    loss = rng.integers(0, levels, n).astype(np.float64)
    loss[rng.random(n) < 0.05] = np.nan
    rows = {"index": np.arange(n), "loss": loss}
    bounds = [0, *sorted(c for c in cuts if c < n), n]
    blocks = [{c: v[a:b] for c, v in rows.items()} for a, b in itertools.pairwise(bounds)]
    hardest = Hardest(k)
    for block in blocks:
        hardest.add(block)
    want = _hardest_of_all(blocks, k) if n else {}
    assert hardest.rows.keys() == want.keys()
    for c in want:
        np.testing.assert_array_equal(hardest.rows[c], want[c])


@pytest.mark.parametrize("seed", range(5))
def test_report_histogram_counts(seed):
    """The sparkline counts each value in the bin of np.linspace(lo, hi, bins + 1) it falls in
    (NaN and inf left out): skewed data, values on the edges."""
    from triplet_cli.report import BARS, HIST_BINS, histogram

    rng = np.random.default_rng(seed)
    d_ap = rng.random(10_000) ** 3 * rng.uniform(0.1, 100)
    d_an = np.concatenate([d_ap[:5000] * 0.5, [np.nan, np.inf, -np.inf]])
    d_an[:50] = np.linspace(d_ap.min(), d_ap.max(), HIST_BINS + 1)[rng.integers(0, HIST_BINS, 50)]
    both = np.concatenate([d_ap, d_an])
    both = both[np.isfinite(both)]
    edges = np.linspace(both.min(), both.max(), HIST_BINS + 1)
    counts = [np.histogram(v[np.isfinite(v)], bins=edges)[0] for v in (d_ap, d_an)]
    top = max(int(c.max()) for c in counts)
    bars = ["".join(BARS[v] for v in np.ceil(c / top * (len(BARS) - 1)).astype(int))
            for c in counts]
    lines = histogram(d_ap, d_an)
    assert [line.split("│")[1] for line in lines[:2]] == bars


def test_mine_summarises_its_rows_by_numpy(monkeypatch):
    """mine's summary takes numpy's expressions up to SAMPLE_SIZE rows (mining takes far longer,
    and a first mine then compiles no summary pass), with the compiled passes' bits."""
    from triplet_cli import mine_triplets

    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((200, 8)).astype(np.float32), np.arange(200) % 2
    want = mine_triplets(x, y, strategy="semi-hard")
    assert want.loss.size > reductions.NUMPY_ROWS
    stats = reductions.TripletStats(1.0, numpy_rows=0)  # the compiled passes
    stats.add(want.d_ap, want.d_an, want.loss)
    passes = stats.summary("mean")
    assert {k: repr(want.summary[k]) for k in passes} == {k: repr(v) for k, v in passes.items()}

    def refused(*args):
        raise AssertionError("a jitted summary pass ran")

    monkeypatch.setattr(reductions, "chunk_summary", refused)
    monkeypatch.setattr(reductions, "middle", refused)
    assert repr(mine_triplets(x, y, strategy="semi-hard").summary) == repr(want.summary)
