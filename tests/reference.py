"""Plain numpy float64 oracles, written from SPEC.md sections 1-4 (not from the kernels).

Slow and obvious on purpose: whole-array numpy over the last axis, one formula per function. The
tests compare the library's public functions against these on the same (upcast) input values.

Sections:
  1. distances and eps placements          distance()
  2. per-triplet losses                    softplus(), hinge(), triplet_losses()
  3. k candidates per anchor               candidate_losses(), candidate_correct()
  4. reductions and normalisation          reduce(), active_fraction(), accuracy(), normalize()
  5. brute-force miner                     distance_matrix(), brute_force_mine(), margin_band(),
                                           minibatches(), anchors_without()
"""

from __future__ import annotations

import numpy as np

DISTANCES = ("euclidean", "squared-euclidean", "cosine", "manhattan", "chebyshev", "minkowski",
             "dot")
PLACEMENTS = ("none", "difference", "root", "legacy-root")
# Distances that are not p-norms take no eps placement (cosine keeps its max(norm, eps)).
NORM_DISTANCES = ("euclidean", "squared-euclidean", "manhattan", "chebyshev", "minkowski")
REDUCTIONS = ("mean", "sum", "mean-nonzero", "none")
NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's eps
SOFTPLUS_LINEAR_ABOVE = 20.0  # SPEC section 1: softplus(x) = x for x > 20


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# 1. Distances (SPEC section 2)
# ---------------------------------------------------------------------------------------------


def norm_order(name: str, p: float = 2.0) -> float:
    """The p of the p-norm a distance is: 2 for (squared) euclidean, 1, inf, or minkowski's p."""
    return {"euclidean": 2.0, "squared-euclidean": 2.0, "manhattan": 1.0,
            "chebyshev": np.inf, "minkowski": float(p)}[name]


def distance(x, y, name: str = "euclidean", p: float = 2.0, eps: float = 1e-6,
             placement: str = "none") -> np.ndarray:
    """d(x, y) over the last axis (x and y broadcast), in float64.

    Placements (SPEC section 2), with q the distance's norm order (norm_order):
      none         the table's formula: (sum |x - y|^q)^(1/q), max for q = inf, no root for
                   squared-euclidean
      difference   PyTorch: the same norm of (x - y + eps)
      root         MLX >= 0.32: (sum |x - y|^q + eps)^(1/q); squared-euclidean sum + eps (no
                   root), manhattan sum + eps, chebyshev max + eps
      legacy-root  MLX <= 0.31: sqrt(sum (x - y)^q + eps), the power on the SIGNED difference
                   (NaN for a negative sum): q = 2 for euclidean whatever p says, 1 for
                   manhattan, minkowski's p; squared-euclidean is its square, sum (x - y)^2 + eps
                   (no root), as it is the square of euclidean under every other placement. An
                   infinite q (chebyshev, minkowski p = inf) is refused (ValueError), as the
                   tool refuses it (UsageError)
    cosine and dot take no placement; cosine is 1 - x.y / (max(|x|, eps) max(|y|, eps)), so a
    zero vector is at distance 1 from everything (including another zero vector); dot is -(x.y).
    """
    x, y = _f64(x), _f64(y)
    if name in ("cosine", "dot"):
        if placement != "none":
            raise ValueError(f"placement {placement!r} applies to p-norm distances, not {name}")
        xy = np.sum(x * y, axis=-1)
        if name == "dot":
            return -xy
        nx = np.maximum(np.sqrt(np.sum(x * x, axis=-1)), eps)
        ny = np.maximum(np.sqrt(np.sum(y * y, axis=-1)), eps)
        return 1.0 - xy / (nx * ny)
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}")
    q = norm_order(name, p)
    diff = x - y
    with np.errstate(invalid="ignore", over="ignore"):
        if placement == "legacy-root":
            if np.isinf(q):
                raise ValueError("legacy-root needs a finite p (not chebyshev)")
            s = np.sum(np.power(diff, q), axis=-1) + eps
            return s if name == "squared-euclidean" else np.sqrt(s)
        if placement == "difference":
            diff = diff + eps
        shift = eps if placement == "root" else 0.0
        mag = np.abs(diff)
        if np.isinf(q):
            return np.max(mag, axis=-1) + shift
        s = np.sum(mag**q, axis=-1) + shift
        if name == "squared-euclidean":
            return s
        if q == 1.0:
            return s
        if q == 2.0:
            return np.sqrt(s)
        return s ** (1.0 / q)


# ---------------------------------------------------------------------------------------------
# 2. Per-triplet losses (SPEC section 1)
# ---------------------------------------------------------------------------------------------


def softplus(x) -> np.ndarray:
    """log1p(exp(x)), and x itself for x > 20 (never overflows); NaN stays NaN."""
    x = _f64(x)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(x > SOFTPLUS_LINEAR_ABOVE, x,
                        np.log1p(np.exp(np.minimum(x, SOFTPLUS_LINEAR_ABOVE))))


def hinge(x) -> np.ndarray:
    """max(x, 0); NaN stays NaN."""
    return np.maximum(_f64(x), 0.0)


def pair_loss(d_ap, d_an, margin: float = 1.0, soft: bool = False) -> np.ndarray:
    x = _f64(d_ap) - _f64(d_an) + margin
    return softplus(x) if soft else hinge(x)


def normalize(x) -> np.ndarray:
    """Rows scaled to unit L2 norm: x / max(|x|, 1e-12) over the last axis."""
    x = _f64(x)
    norm = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
    return x / np.maximum(norm, NORMALIZE_EPS)


def triplet_losses(a, p, n, distance: str = "euclidean", p_norm: float = 2.0,
                   eps: float = 1e-6, placement: str = "none", margin: float = 1.0,
                   soft: bool = False, swap: bool = False, normalize_rows: bool = False,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d_ap, d_an, loss) for aligned (n, d) arrays (or single (d,) rows).

    swap (PyTorch): d_an = min(d(a, n), d(p, n)), NaN-propagating like torch.min.
    `p_norm` is minkowski's p (named so it does not clash with the positives `p`).
    """
    a, p, n = _f64(a), _f64(p), _f64(n)
    if normalize_rows:
        a, p, n = normalize(a), normalize(p), normalize(n)
    kw = dict(name=distance, p=p_norm, eps=eps, placement=placement)
    d_ap = distance_fn(a, p, **kw)
    d_an = distance_fn(a, n, **kw)
    if swap:
        d_an = np.minimum(d_an, distance_fn(p, n, **kw))
    return d_ap, d_an, pair_loss(d_ap, d_an, margin, soft)


distance_fn = distance  # triplet_losses' `distance` argument shadows the function


# ---------------------------------------------------------------------------------------------
# 3. k candidates per anchor (SPEC section 3, seed exercise B2b)
# ---------------------------------------------------------------------------------------------


def _candidate_distances(a, P, N, distance, p_norm, eps, placement, swap, normalize_rows):
    """(d(a, P) (n, kp), d(a, N) (n, kn), pair d_an (n, kp, kn) after the optional swap)."""
    a, P, N = _f64(a), _f64(P), _f64(N)
    if normalize_rows:
        a, P, N = normalize(a), normalize(P), normalize(N)
    kw = dict(name=distance, p=p_norm, eps=eps, placement=placement)
    d_ap = distance_fn(a[:, None, :], P, **kw)
    d_an = distance_fn(a[:, None, :], N, **kw)
    pair_an = np.broadcast_to(d_an[:, None, :], (P.shape[0], P.shape[1], N.shape[1]))
    if swap:
        pair_an = np.minimum(pair_an, distance_fn(P[:, :, None, :], N[:, None, :, :], **kw))
    return d_ap, d_an, pair_an


def candidate_losses(a, P, N, distance: str = "euclidean", p_norm: float = 2.0,
                     eps: float = 1e-6, placement: str = "none", margin: float = 1.0,
                     soft: bool = False, swap: bool = False, pair_reduction: str = "sum",
                     normalize_rows: bool = False,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anchors (n, d) against positives (n, kp, d) and negatives (n, kn, d).

    loss[i] = sum (or mean) over all kp x kn pair losses l(d(a, p_j), d_an_jk), where d_an_jk is
    d(a, n_k), or min(d(a, n_k), d(p_j, n_k)) with swap; d_ap[i], d_an[i] are the means of the
    candidate distances d(a, p_j) and d(a, n_k) (never swapped).
    """
    if pair_reduction not in ("sum", "mean"):
        raise ValueError(f"unknown pair reduction {pair_reduction!r}")
    d_ap, d_an, pair_an = _candidate_distances(a, P, N, distance, p_norm, eps, placement, swap,
                                               normalize_rows)
    pairs = pair_loss(d_ap[:, :, None], pair_an, margin, soft)
    total = pairs.sum(axis=(1, 2))
    loss = total / (pairs.shape[1] * pairs.shape[2]) if pair_reduction == "mean" else total
    return d_ap.mean(axis=1), d_an.mean(axis=1), loss


def candidate_correct(a, P, N, distance: str = "euclidean", p_norm: float = 2.0,
                      eps: float = 1e-6, placement: str = "none", swap: bool = False,
                      normalize_rows: bool = False) -> np.ndarray:
    """Per anchor, the fraction of its (positive, negative) pairs with d_ap < d_an."""
    d_ap, _, pair_an = _candidate_distances(a, P, N, distance, p_norm, eps, placement, swap,
                                            normalize_rows)
    return (d_ap[:, :, None] < pair_an).mean(axis=(1, 2))


# ---------------------------------------------------------------------------------------------
# 4. Reductions (SPEC section 3)
# ---------------------------------------------------------------------------------------------


def reduce(loss, reduction: str = "mean"):
    """mean, sum, mean-nonzero (mean over loss > 0; 0 when none is), or none (the array)."""
    loss = _f64(loss)
    if reduction == "none":
        return loss
    if reduction == "mean":
        return float(np.mean(loss)) if loss.size else 0.0
    if reduction == "sum":
        return float(np.sum(loss))
    if reduction == "mean-nonzero":
        active = loss[loss > 0]
        return float(np.mean(active)) if active.size else 0.0
    raise ValueError(f"unknown reduction {reduction!r}")


def active_fraction(loss) -> float:
    """Fraction of triplets with loss > 0 (SPEC section 1: active)."""
    loss = _f64(loss)
    return float(np.mean(loss > 0)) if loss.size else 0.0


def accuracy(d_ap, d_an) -> float:
    """Fraction of triplets with d_ap < d_an (correct; a tie is wrong)."""
    d_ap, d_an = _f64(d_ap), _f64(d_an)
    return float(np.mean(d_ap < d_an)) if d_ap.size else 0.0


# ---------------------------------------------------------------------------------------------
# 5. Brute-force miner (SPEC section 4)
# ---------------------------------------------------------------------------------------------
# SPEC section 4 read literally, one anchor at a time over a full m x m matrix built from
# distance() (and losses from pair_loss()), so compute and mine share one definition of d and l.
# Every choice sorts by the key (distance, row index), so ties go to the lowest row index;
# nothing is blocked or approximated.
# margin_band() is --margin-filter (SPEC section 6, the pytorch-metric-learning row; README
# "mine"): TripletMarginMiner's types read from its source.

MINE_STRATEGIES = ("semi-hard", "hard", "easy", "all")
POSITIVE_STRATEGIES = ("all", "hard", "easy")
FALLBACKS = ("easiest", "skip")
THRESHOLDS = ("positive", "hardest-positive")
MARGIN_FILTERS = ("any", "violating", "hard", "semi-hard", "easy")


def distance_matrix(X, distance: str = "euclidean", p: float = 2.0, eps: float = 1e-6,
                    placement: str = "none", normalize_rows: bool = False) -> np.ndarray:
    """D[i, k] = d(X[i], X[k]) in float64 (in that argument order: PyTorch's eps is not
    symmetric), after the optional row normalisation."""
    X = _f64(X)
    if normalize_rows:
        X = normalize(X)
    return distance_fn(X[:, None, :], X[None, :, :], distance, p, eps, placement)


def anchors_without(labels) -> tuple[int, int]:
    """(anchors without a positive, anchors with a positive but without a negative)."""
    labels = np.asarray(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    size = counts[inverse.ravel()]
    return int((size < 2).sum()), int(((size >= 2) & (size == labels.size)).sum())


def minibatches(m: int, batch_size: int | None, seed: int = 0) -> list[np.ndarray]:
    """Rows of each mini-batch: consecutive chunks of default_rng(seed).permutation(m), each
    sorted ascending; one batch of every row without a batch size."""
    if batch_size is None:
        return [np.arange(m, dtype=np.int64)]
    perm = np.random.default_rng(seed).permutation(m)
    return [np.sort(perm[s:s + batch_size]).astype(np.int64) for s in range(0, m, batch_size)]


def brute_force_mine(X, labels, strategy: str = "semi-hard", positive_strategy: str = "all",
                     per_anchor: int = 1, fallback: str = "easiest", threshold: str = "positive",
                     distance: str = "euclidean", p: float = 2.0, margin: float = 1.0,
                     soft: bool = False, active_only: bool = False, *, eps: float = 1e-6,
                     placement: str = "none", normalize_rows: bool = False, D=None,
                     margin_filter: str = "any",
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mined (triplets (t, 3) int64, d_ap, d_an, loss) for one set of rows (SPEC section 4).

    P(i) = {j != i : y_j = y_i}, N(i) = {k : y_k != y_i}; anchors with an empty P(i) or N(i)
    give nothing. Positives: all (ascending index), hard (farthest) or easy (closest). For each
    chosen positive j, negatives: hard = the K closest, easy = the K farthest, all = every one in
    ascending index, semi-hard = the K closest with d(i, k) > t, where t = d(i, j) or, with
    threshold "hardest-positive", max_j d(i, j); when no negative lies beyond t, fallback
    "easiest" takes the K farthest and "skip" nothing. Output: anchor ascending, then the
    positives in their order, then the negatives in the strategy's order. active_only keeps
    loss > 0, margin_filter the triplets in margin_band(). `D` replaces the matrix from
    distance() (to check decisions on exactly the distances a kernel saw).
    """
    if strategy not in MINE_STRATEGIES or positive_strategy not in POSITIVE_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} / {positive_strategy!r}")
    if margin_filter not in MARGIN_FILTERS:
        raise ValueError(f"unknown margin filter {margin_filter!r}")
    if fallback not in FALLBACKS or threshold not in THRESHOLDS or per_anchor < 1:
        raise ValueError(f"bad fallback {fallback!r}, threshold {threshold!r} or K {per_anchor}")
    labels = np.asarray(labels)
    m = labels.shape[0]
    if D is None:
        D = distance_matrix(X, distance, p, eps, placement, normalize_rows)
    D = _f64(D)
    K = per_anchor
    rows: list[np.ndarray] = []
    for i in range(m):
        same = labels == labels[i]
        pos = np.flatnonzero(same & (np.arange(m) != i))
        neg = np.flatnonzero(~same)
        if pos.size == 0 or neg.size == 0:
            continue
        d = D[i]
        closest = neg[np.lexsort((neg, d[neg]))]  # by distance, then by row index
        farthest = neg[np.lexsort((neg, -d[neg]))]
        hardest = pos[np.lexsort((pos, -d[pos]))][0]
        easiest = pos[np.lexsort((pos, d[pos]))][0]
        chosen = {"all": pos, "hard": [hardest], "easy": [easiest]}[positive_strategy]
        for j in chosen:
            if strategy == "all":
                negs = neg
            elif strategy == "hard":
                negs = closest[:K]
            elif strategy == "easy":
                negs = farthest[:K]
            else:
                t = d[hardest] if threshold == "hardest-positive" else d[j]
                negs = closest[d[closest] > t][:K]
                if negs.size == 0 and fallback == "easiest":
                    negs = farthest[:K]
            negs = np.asarray(negs, dtype=np.int64)
            rows.append(np.stack([np.full(negs.size, i), np.full(negs.size, j), negs], axis=1))
    triplets = (np.concatenate(rows) if rows else np.empty((0, 3))).astype(np.int64)
    d_ap = D[triplets[:, 0], triplets[:, 1]]
    d_an = D[triplets[:, 0], triplets[:, 2]]
    loss = pair_loss(d_ap, d_an, margin, soft)
    keep = margin_band(d_ap, d_an, margin, margin_filter)
    if active_only:
        keep &= loss > 0
    return triplets[keep], d_ap[keep], d_an[keep], loss[keep]


def margin_band(d_ap, d_an, margin: float, band: str) -> np.ndarray:
    """Which triplets pytorch-metric-learning's TripletMarginMiner keeps, by gap = d_an - d_ap
    (its an_dist - ap_dist; for a similarity such as dot it takes ap_sim - an_sim, the same gap
    as our dot distance -(x.y)): violating (its "all") gap <= margin, hard gap <= 0 (and
    <= margin), semi-hard 0 < gap <= margin, easy gap > margin; "any" keeps every triplet.
    A NaN gap is in no band."""
    gap = _f64(d_an) - _f64(d_ap)
    inside = {  # one gap at a time, each band as its own inequality
        "any": lambda g: True,
        "violating": lambda g: g <= margin,
        "hard": lambda g: g <= 0.0 and g <= margin,
        "semi-hard": lambda g: 0.0 < g <= margin,
        "easy": lambda g: g > margin,
    }
    if band not in inside:
        raise ValueError(f"unknown margin filter {band!r}")
    return np.array([inside[band](float(g)) for g in gap.ravel()], dtype=bool).reshape(gap.shape)
