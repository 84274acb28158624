"""Jitted distance kernels between two rows, chosen by an integer code (see params.Distance).

Accumulation is in float64 whatever the input dtype. Each function is one formula; eps
placement (SPEC section 2) is an integer code too, so one compiled kernel serves every choice.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit

# Distance codes: the order of params.Distance.
EUCLIDEAN, SQUARED_EUCLIDEAN, COSINE, MANHATTAN, CHEBYSHEV, MINKOWSKI, DOT = range(7)
# Eps placements: the order of params.EpsPlacement.
EPS_NONE, EPS_DIFFERENCE, EPS_ROOT, EPS_LEGACY_ROOT = range(4)


@jit
def dot(x: np.ndarray, y: np.ndarray) -> float:
    """sum_i x_i y_i in float64, four running sums so the loop pipelines (fixed order)."""
    n = x.shape[0]
    s0 = s1 = s2 = s3 = 0.0
    i = 0
    while i + 4 <= n:
        s0 += np.float64(x[i]) * np.float64(y[i])
        s1 += np.float64(x[i + 1]) * np.float64(y[i + 1])
        s2 += np.float64(x[i + 2]) * np.float64(y[i + 2])
        s3 += np.float64(x[i + 3]) * np.float64(y[i + 3])
        i += 4
    while i < n:
        s0 += np.float64(x[i]) * np.float64(y[i])
        i += 1
    return (s0 + s1) + (s2 + s3)


@jit
def squared_euclidean(x: np.ndarray, y: np.ndarray, shift: float) -> float:
    """sum_i (x_i - y_i + shift)^2; shift is PyTorch's eps (0 otherwise)."""
    n = x.shape[0]
    s0 = s1 = s2 = s3 = 0.0
    i = 0
    while i + 4 <= n:
        d0 = np.float64(x[i]) - np.float64(y[i]) + shift
        d1 = np.float64(x[i + 1]) - np.float64(y[i + 1]) + shift
        d2 = np.float64(x[i + 2]) - np.float64(y[i + 2]) + shift
        d3 = np.float64(x[i + 3]) - np.float64(y[i + 3]) + shift
        s0 += d0 * d0
        s1 += d1 * d1
        s2 += d2 * d2
        s3 += d3 * d3
        i += 4
    while i < n:
        d0 = np.float64(x[i]) - np.float64(y[i]) + shift
        s0 += d0 * d0
        i += 1
    return (s0 + s1) + (s2 + s3)


@jit
def manhattan(x: np.ndarray, y: np.ndarray, shift: float) -> float:
    """sum_i |x_i - y_i + shift|."""
    s = 0.0
    for i in range(x.shape[0]):
        s += abs(np.float64(x[i]) - np.float64(y[i]) + shift)
    return s


@jit
def chebyshev(x: np.ndarray, y: np.ndarray, shift: float) -> float:
    """max_i |x_i - y_i + shift|; a NaN component makes the result NaN."""
    m = 0.0
    for i in range(x.shape[0]):
        v = abs(np.float64(x[i]) - np.float64(y[i]) + shift)
        if not v <= m:
            m = v
    return m


@jit
def power_sum(x: np.ndarray, y: np.ndarray, p: float, shift: float, signed: bool) -> float:
    """sum_i |x_i - y_i + shift|^p, or sum_i (x_i - y_i)^p on the signed difference (legacy MLX)."""
    s = 0.0
    for i in range(x.shape[0]):
        v = np.float64(x[i]) - np.float64(y[i]) + shift
        s += v**p if signed else abs(v) ** p
    return s


@jit
def cosine(x: np.ndarray, y: np.ndarray, eps: float) -> float:
    """1 - x.y / (max(|x|, eps) max(|y|, eps)); a zero vector is at distance 1."""
    nx = max(math.sqrt(dot(x, x)), eps)
    ny = max(math.sqrt(dot(y, y)), eps)
    return 1.0 - dot(x, y) / (nx * ny)


@jit
def pnorm(x: np.ndarray, y: np.ndarray, code: int, p: float, eps: float, placement: int) -> float:
    """A p-norm family distance with eps placed as `placement` says (SPEC section 2)."""
    shift = eps if placement == EPS_DIFFERENCE else 0.0
    if placement == EPS_LEGACY_ROOT:
        # MLX <= 0.31: power of the signed difference, then always a square root.
        s = squared_euclidean(x, y, 0.0) if p == 2.0 else power_sum(x, y, p, 0.0, True)
        return math.sqrt(s + eps)
    if code == CHEBYSHEV:
        m = chebyshev(x, y, shift)
        return m + eps if placement == EPS_ROOT else m
    if code == MANHATTAN:
        s = manhattan(x, y, shift)
        return s + eps if placement == EPS_ROOT else s
    s = power_sum(x, y, p, shift, False) if code == MINKOWSKI else squared_euclidean(x, y, shift)
    if placement == EPS_ROOT:
        s += eps
    if code == SQUARED_EUCLIDEAN:
        return s
    if code == EUCLIDEAN:
        return math.sqrt(s)
    return s ** (1.0 / p)


@jit
def distance(
    x: np.ndarray, y: np.ndarray, code: int, p: float, eps: float, placement: int
) -> float:
    """d(x, y) for any distance code; `dot` is the negated similarity -(x.y)."""
    if code == COSINE:
        return cosine(x, y, eps)
    if code == DOT:
        return -dot(x, y)
    return pnorm(x, y, code, p, eps, placement)


def kernel_code(distance_name: str, p: float) -> int:
    """The code a kernel runs: minkowski with p = 1, 2 or inf takes the faster exact path."""
    from .params import Distance

    d = Distance(distance_name)
    if d is Distance.minkowski:
        if p == 1.0:
            return MANHATTAN
        if p == 2.0:
            return EUCLIDEAN
        if math.isinf(p):
            return CHEBYSHEV
    return d.code
