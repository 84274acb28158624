"""Jitted per-triplet kernels: hinge or soft-margin loss, optional swap.

Each kernel takes a range of tasks (ROWS_PER_TASK independent rows each; _jit.in_parallel runs
the ranges on threads) and writes only out[i], so results do not depend on the thread count;
sums over rows happen afterwards (reductions.py) in a fixed order.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import borrowed, in_parallel, inline_jit, jit, one_of
from .distances import (
    Metric,
    distance,
    distance_pair,
    square_distance,
    square_family,
    square_pair,
)

# Rows per task: in_parallel splits whole tasks between threads (3,900 of 10^6 rows).
ROWS_PER_TASK = 256
# Input values worth a thread of their own, about what the kernel reads while a thread starts:
# compute_loss at d = 128 took 0.78 ms on one thread and 1.02 ms on two at 4,096 rows, 1.45 and
# 1.46 ms at 16,384, 2.61 and 2.53 ms at 32,768, 6.6 and 4.9 ms at 65,536.
THREAD_VALUES = 1 << 22
_ROWS = np.empty(0, np.int64)  # no index: row i of each input
Index = tuple[np.ndarray, np.ndarray, np.ndarray]  # (anchor, positive, negative) row numbers
Rule = tuple[float, bool, bool]  # (margin, soft margin, swap): LossParams.rule()


@jit
def triplet_loss(d_ap: float, d_an: float, margin: float, soft: bool) -> float:
    """max(d_ap - d_an + margin, 0), or softplus of it; NaN stays NaN."""
    x = d_ap - d_an + margin
    if soft:
        # softplus(x) = log1p(exp(x)); for x > 20 it equals x to double precision.
        return x if x > 20.0 else math.log1p(math.exp(x))
    return x if (x > 0.0 or x != x) else 0.0


@jit
def pair_losses(d_ap: np.ndarray, d_an: np.ndarray, margin: float, soft: bool) -> np.ndarray:
    """triplet_loss of each (d_ap, d_an) pair: the loss of mined triplets, applied once."""
    out = np.empty(d_ap.shape[0])
    for i in range(d_ap.shape[0]):
        out[i] = triplet_loss(d_ap[i], d_an[i], margin, soft)
    return out


def aligned_losses(A: np.ndarray, P: np.ndarray, N: np.ndarray, index: Index | None,
                   metric: Metric, rule: Rule, out: tuple[np.ndarray, ...]) -> bool:
    """Row i of out = (d_ap, d_an, loss) is the triplet (A[ia[i]], P[ip[i]], N[ineg[i]]) for
    index = (ia, ip, ineg), or (A[i], P[i], N[i]) without one; metric: the distance's kernel
    arguments (code, p, eps, placement), rule: (margin, soft margin, swap).

    For distances that sum squares (the default euclidean among them) the kernel compiles only
    those terms, not every distance: the first `compute` on sample_data after installing took
    4.7 s of CPU, 2.5 s with it. Both paths give the same bits.

    Returns whether every d_ap and d_an is finite (see _finished).
    """
    code, p, _, placement = metric
    finite = np.empty(_tasks(out[2].shape[0]), np.bool_)
    in_parallel(_aligned_losses, finite.shape[0], A, P, N, *(index or (_ROWS,) * 3),
                *metric, *rule, *out, finite, *one_of(square_family(code, p, placement)),
                per_thread=_per_thread(3 * A.shape[-1]))
    return _finished(finite)


def _finished(finite: np.ndarray) -> bool:
    """Whether every task found its distances finite: each kernel task notes it as it stores
    its rows, so that the check needs no pass over the columns (numpy's two sums took 0.6 ms a
    10^6 rows, 2% of the kernel when memory is fast)."""
    return bool(finite.all())


def _tasks(rows: int) -> int:
    return (rows + ROWS_PER_TASK - 1) // ROWS_PER_TASK


def _per_thread(row_values: int) -> int:
    """The fewest tasks worth a thread, for rows that read `row_values` input values each."""
    return max(1, THREAD_VALUES // (ROWS_PER_TASK * max(row_values, 1)))


@jit
def _nearer(d_an: float, d_pn: float) -> float:
    """The swap: the positive-negative distance when it is the smaller (or NaN)."""
    return d_pn if d_pn < d_an or d_pn != d_pn else d_an


@inline_jit
def _store(i: int, dap: float, dan: float, margin: float, soft: bool, d_ap: np.ndarray,
           d_an: np.ndarray, loss: np.ndarray) -> None:
    """Row i's outputs: its two distances and their triplet loss. Inlined: as a call, it
    counted references to the three output columns per row (both threads on the same
    counters): 71 ns a row against 56 in cache, one thread, d = 128."""
    d_ap[i] = dap
    d_an[i] = dan
    loss[i] = triplet_loss(dap, dan, margin, soft)


@jit
def _aligned_losses(lo, hi, A, P, N, ia, ip, ineg, code, p, eps, placement, margin, soft, swap,
                    d_ap, d_an, loss, finite, squares, general) -> None:
    """aligned_losses for the rows of tasks lo..hi, by the square-sum path (squares not None:
    square_family) or any distance's (general not None); _jit.one_of gives the two, so that
    one path compiles. The rows are taken here, from inputs without reference counts
    (borrowed): otherwise each row view passed to a distance updates counters both threads
    share (1.7x a read of the inputs at d = 128 instead of 1.04x when a helper returned the
    views; 14% of a thread's time at d = 128). finite[task]: whether the task's d_ap and d_an
    are all finite."""
    n = loss.shape[0]
    indexed = ia.shape[0] > 0
    A, P, N = borrowed(A), borrowed(P), borrowed(N)
    for task in range(lo, hi):
        clean = True
        for i in range(task * ROWS_PER_TASK, min(n, (task + 1) * ROWS_PER_TASK)):
            if indexed:
                a, pos, neg = A[ia[i]], P[ip[i]], N[ineg[i]]
            else:
                a, pos, neg = A[i], P[i], N[i]
            if squares is not None:
                dap, dan = square_pair(a, pos, neg, code, p, eps, placement)
                if swap:
                    dan = _nearer(dan, square_distance(pos, neg, code, p, eps, placement))
            if general is not None:
                dap, dan = distance_pair(a, pos, neg, code, p, eps, placement)
                if swap:
                    dan = _nearer(dan, distance(pos, neg, code, p, eps, placement))
            _store(i, dap, dan, margin, soft, d_ap, d_an, loss)
            clean &= math.isfinite(dap) & math.isfinite(dan)
        finite[task] = clean


def candidate_losses(A: np.ndarray, P: np.ndarray, N: np.ndarray, metric: Metric, rule: Rule,
                     pair_mean: bool, out: tuple[np.ndarray, ...]) -> bool:
    """Anchor A[i] against k_p positives P[i] and k_n negatives N[i], over all (p, n) pairs,
    into out = (d_ap, d_an, loss, correct).

    loss[i] is the sum (or mean) of the k_p x k_n pair losses; d_ap[i] and d_an[i] are the mean
    positive and negative distances; correct[i] is the fraction of pairs with d_ap < d_an.
    Returns whether every d_ap and d_an is finite (as aligned_losses).
    """
    finite = np.empty(_tasks(A.shape[0]), np.bool_)
    in_parallel(_candidate_losses, finite.shape[0], A, P, N, *metric, *rule, pair_mean, *out,
                finite, per_thread=_per_thread((1 + P.shape[1] + N.shape[1]) * A.shape[-1]))
    return _finished(finite)


@jit
def _candidate_losses(lo, hi, A, P, N, code, p, eps, placement, margin, soft, swap, pair_mean,
                      d_ap, d_an, loss, correct, finite) -> None:
    """candidate_losses for the anchors of tasks lo..hi; finite[lo:hi]: whether their d_ap and
    d_an are all finite."""
    kp = P.shape[1]
    kn = N.shape[1]
    A, P, N = borrowed(A), borrowed(P), borrowed(N)
    dps = np.empty(kp)  # once per range, not per anchor
    dns = np.empty(kn)
    both = min(kp, kn)  # a positive and a negative per pass over the anchor
    clean = True
    for i in range(lo * ROWS_PER_TASK, min(A.shape[0], hi * ROWS_PER_TASK)):
        a = A[i]
        for j in range(both):
            dps[j], dns[j] = distance_pair(a, P[i, j], N[i, j], code, p, eps, placement)
        for j in range(both, kp):
            dps[j] = distance(a, P[i, j], code, p, eps, placement)
        for k in range(both, kn):
            dns[k] = distance(a, N[i, k], code, p, eps, placement)
        total = 0.0
        right = 0
        for j in range(kp):
            for k in range(kn):
                dan = dns[k]
                if swap:
                    dan = _nearer(dan, distance(P[i, j], N[i, k], code, p, eps, placement))
                total += triplet_loss(dps[j], dan, margin, soft)
                if dps[j] < dan:
                    right += 1
        pairs = kp * kn
        loss[i] = total / pairs if pair_mean else total
        d_ap[i] = dps.sum() / kp
        d_an[i] = dns.sum() / kn
        correct[i] = right / pairs
        clean &= math.isfinite(d_ap[i]) & math.isfinite(d_an[i])
    finite[lo:hi] = clean
