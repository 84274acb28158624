"""Float64 numpy transcriptions of the reference libraries' triplet losses.

Used for the libraries that cannot run on the project's machines (MLX is Apple-first; TF Addons and
TF Similarity need TensorFlow) and for the float64 fixtures of the TensorFlow libraries, which only
accept float32 input. Each function names the repository, file and function it follows; the
semantics (eps placement, masks, fallbacks, reductions, the +-1e-6 offsets of the masked min/max
helpers) are kept exactly. Two deliberate differences, both below the tests' tolerances:

* everything is computed in float64 (the libraries compute in the input dtype; TF Similarity even
  casts its mined distances to float32);
* pairwise squared Euclidean distances are the direct sum of squared differences, where the
  libraries use the expansion ||x||^2 + ||y||^2 - 2 x.y. Both give the same number up to
  rounding; the expansion's cancellation noise (about 1e-4 instead of 0 for identical float32
  rows) is a numerical accident, not semantics, and is not reproduced.

numpy only: test_transcriptions.py pins these functions against the worked cases of
shared/CONFORMANCE.md.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "mlx_legacy_triplet_loss",
    "mlx_triplet_loss",
    "softplus",
    "tfa_hard_anchor_losses",
    "tfa_semihard_pair_losses",
    "tfa_triplet_hard_loss",
    "tfa_triplet_semihard_loss",
    "tfsim_triplet_loss",
]


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _reduce(loss: np.ndarray, reduction: str):
    if reduction == "none":
        return loss
    if reduction == "mean":
        return np.float64(np.mean(loss))
    if reduction == "sum":
        return np.float64(np.sum(loss))
    raise ValueError(f"unknown reduction {reduction!r}")


def softplus(x) -> np.ndarray:
    """log(1 + exp(x)), computed without overflow."""
    x = _f64(x)
    return np.logaddexp(0.0, x)


# --------------------------------------------------------------------------------------------
# MLX
# --------------------------------------------------------------------------------------------


def mlx_triplet_loss(anchors, positives, negatives, p=2, margin=1.0, eps=1e-6,
                     reduction="none"):
    """MLX >= 0.32: ml-explore/mlx python/mlx/nn/losses.py `triplet_loss`.

    After PR "Correct p-norm computation in triplet_loss" (v0.32.0):
        d(x, y) = (sum_i |x_i - y_i|^p + eps)^(1/p)
        loss = maximum(d(a, p) - d(a, n) + margin, 0), then _reduce (default "none").
    """
    a, pos, neg = _f64(anchors), _f64(positives), _f64(negatives)

    def dist(x, y):
        return np.power(np.sum(np.power(np.abs(x - y), p), axis=-1) + eps, 1.0 / p)

    loss = np.maximum(dist(a, pos) - dist(a, neg) + margin, 0.0)
    return _reduce(loss, reduction)


def mlx_legacy_triplet_loss(anchors, positives, negatives, p=2, margin=1.0, eps=1e-6,
                            reduction="none"):
    """MLX <= 0.31: ml-explore/mlx python/mlx/nn/losses.py `triplet_loss` (e.g. commit b187af0).

        loss = maximum(sqrt(power(a - p, p).sum(axis) + eps)
                       - sqrt(power(a - n, p).sum(axis) + eps) + margin, 0)

    The power applies to the SIGNED difference and the root is always a square root, so any odd p
    (or a non-integer p with a negative difference) gives NaN from finite input; mx.maximum
    propagates the NaN. Identical to the current version at p = 2.
    """
    a, pos, neg = _f64(anchors), _f64(positives), _f64(negatives)

    def dist(x, y):
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.sum(np.power(x - y, p), axis=-1) + eps)

    loss = np.maximum(dist(a, pos) - dist(a, neg) + margin, 0.0)
    return _reduce(loss, reduction)


# --------------------------------------------------------------------------------------------
# TF Addons (v0.11 and later; last release 0.23.0)
# --------------------------------------------------------------------------------------------


def _sqdist(x: np.ndarray) -> np.ndarray:
    diff = x[:, None, :] - x[None, :, :]
    return np.einsum("ijk,ijk->ij", diff, diff)


def _tfa_pairwise_distance(x: np.ndarray, squared: bool) -> np.ndarray:
    """tensorflow/addons tensorflow_addons/losses/metric_learning.py `pairwise_distance`.

    d2 = max(d2, 0); where d2 <= 0 the distance is 0 (the 1e-16 added before the sqrt is
    multiplied away again); the diagonal is explicitly set to 0.
    """
    d2 = np.maximum(_sqdist(x), 0.0)
    error_mask = d2 <= 0.0
    d = d2 if squared else np.sqrt(d2 + error_mask * 1e-16)
    d = d * ~error_mask
    np.fill_diagonal(d, 0.0)
    return d


def _tfa_angular_distance(x: np.ndarray) -> np.ndarray:
    """tensorflow/addons tensorflow_addons/losses/metric_learning.py `angular_distance`.

    tf.math.l2_normalize (x * rsqrt(max(sum x^2, 1e-12))), then max(1 - X X^T, 0). The diagonal
    is not zeroed, so a zero row has distance 1 to every row including itself.
    """
    norm2 = np.sum(x * x, axis=1, keepdims=True)
    xn = x / np.sqrt(np.maximum(norm2, 1e-12))
    return np.maximum(1.0 - xn @ xn.T, 0.0)


def _tfa_distance(x: np.ndarray, distance_metric: str) -> np.ndarray:
    if distance_metric == "L2":
        return _tfa_pairwise_distance(x, squared=False)
    if distance_metric == "squared-L2":
        return _tfa_pairwise_distance(x, squared=True)
    if distance_metric == "angular":
        return _tfa_angular_distance(x)
    raise ValueError(f"unknown TF Addons distance_metric {distance_metric!r}")


def _tfa_masked_maximum(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """tensorflow_addons/losses/triplet.py `_masked_maximum` (dim 1, keepdims)."""
    axis_minimums = data.min(axis=1, keepdims=True)
    return ((data - axis_minimums) * mask).max(axis=1, keepdims=True) + axis_minimums


def _tfa_masked_minimum(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """tensorflow_addons/losses/triplet.py `_masked_minimum` (dim 1, keepdims)."""
    axis_maximums = data.max(axis=1, keepdims=True)
    return ((data - axis_maximums) * mask).min(axis=1, keepdims=True) + axis_maximums


def tfa_semihard_pair_losses(labels, embeddings, margin=1.0, distance_metric="L2"):
    """The body of `triplet_semihard_loss` before its reduction.

    Returns (losses, mask_positives): losses[a, p] = max(margin + D[a, p] - D[a, n*], 0) on the
    ordered positive pairs (0 elsewhere) and the float mask of those pairs.
    """
    y = np.asarray(labels).reshape(-1)
    x = _f64(embeddings)
    d = _tfa_distance(x, distance_metric)
    n = y.shape[0]
    adjacency = y[:, None] == y[None, :]
    adjacency_not = ~adjacency
    # mask[a, p, k]: k is a negative of a and D[a, k] > D[a, p]
    mask = adjacency_not[:, None, :] & (d[:, None, :] > d[:, :, None])
    mask_final = mask.any(axis=2)
    # _masked_minimum over k of D[a, k] with that mask (row maximum offset as in the source)
    axis_maximums = d.max(axis=1)[:, None, None]
    negatives_outside = ((d[:, None, :] - axis_maximums) * mask).min(axis=2) \
        + axis_maximums[:, :, 0]
    negatives_inside = np.broadcast_to(_tfa_masked_maximum(d, adjacency_not), (n, n))
    semi_hard_negatives = np.where(mask_final, negatives_outside, negatives_inside)
    loss_mat = margin + d - semi_hard_negatives
    mask_positives = adjacency.astype(np.float64) - np.eye(n)
    return np.maximum(loss_mat * mask_positives, 0.0), mask_positives


def tfa_triplet_semihard_loss(labels, embeddings, margin=1.0, distance_metric="L2"):
    """tensorflow/addons tensorflow_addons/losses/triplet.py `triplet_semihard_loss` (0.23.0).

    For every ordered positive pair (a, p), a != p: the closest negative with D[a, n] > D[a, p]
    (strict); when none exists, the farthest negative of the anchor (`negatives_inside`, which is
    the row minimum, i.e. 0, when the anchor has no negative at all). The loss is
    sum_{(a,p)} max(margin + D[a, p] - D[a, n*], 0) / #positive pairs: NaN (0/0) when the batch
    has no positive pair.
    """
    losses, mask_positives = tfa_semihard_pair_losses(labels, embeddings, margin,
                                                      distance_metric)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float64(np.sum(losses) / np.sum(mask_positives))


def tfa_hard_anchor_losses(labels, embeddings, margin=1.0, soft=False, distance_metric="L2"):
    """The body of `triplet_hard_loss` before its mean: one loss per anchor."""
    y = np.asarray(labels).reshape(-1)
    x = _f64(embeddings)
    d = _tfa_distance(x, distance_metric)
    n = y.shape[0]
    adjacency = y[:, None] == y[None, :]
    hard_negatives = _tfa_masked_minimum(d, (~adjacency).astype(np.float64))
    mask_positives = adjacency.astype(np.float64) - np.eye(n)
    hard_positives = _tfa_masked_maximum(d, mask_positives)
    if soft:
        loss = np.log1p(np.exp(hard_positives - hard_negatives))
    else:
        loss = np.maximum(hard_positives - hard_negatives + margin, 0.0)
    return loss[:, 0]


def tfa_triplet_hard_loss(labels, embeddings, margin=1.0, soft=False, distance_metric="L2"):
    """tensorflow/addons tensorflow_addons/losses/triplet.py `triplet_hard_loss` (0.23.0).

    Per anchor: hardest positive = _masked_maximum over positives (row minimum, i.e. 0, when the
    anchor has none), hardest negative = _masked_minimum over negatives (row maximum when it has
    none). Hinge max(hp - hn + margin, 0), or with soft=True log1p(exp(hp - hn)) (the margin is
    ignored). Mean over ALL anchors, including those without positives or negatives.
    """
    return np.float64(np.mean(tfa_hard_anchor_losses(labels, embeddings, margin, soft,
                                                     distance_metric)))


# --------------------------------------------------------------------------------------------
# TF Similarity (v0.17)
# --------------------------------------------------------------------------------------------


def _tfsim_distance(x: np.ndarray, distance: str) -> np.ndarray:
    """tensorflow/similarity tensorflow_similarity/distances/{cosine,euclidean}.py `call`."""
    if distance == "cosine":
        # CosineDistance: 1 - X X^T clipped at 0; the inputs are ASSUMED L2-normalised.
        return np.maximum(1.0 - x @ x.T, 0.0)
    if distance in ("euclidean", "l2"):
        # EuclideanDistance: values below 1e-18 are set to 0, otherwise sqrt(max(d2, 1e-18)).
        d2 = _sqdist(x)
        mask = d2 >= 1e-18
        return np.sqrt(np.maximum(d2, 1e-18)) * mask
    if distance in ("squared_euclidean", "sql2"):
        return np.maximum(_sqdist(x), 0.0)
    raise ValueError(f"unknown TF Similarity distance {distance!r}")


def _tfsim_masked_max(d: np.ndarray, mask: np.ndarray):
    """tensorflow_similarity/algebra.py `masked_max`: offset by the row minimum - 1e-6.

    An all-False row gives the row minimum - 1e-6 (about -1e-6) and index 0.
    """
    axis_min = d.min(axis=1, keepdims=True) - 1e-6
    masked = (d - axis_min) * mask
    return masked.max(axis=1) + axis_min[:, 0], masked.argmax(axis=1)


def _tfsim_masked_min(d: np.ndarray, mask: np.ndarray):
    """tensorflow_similarity/algebra.py `masked_min`: offset by the row maximum + 1e-6.

    An all-False row gives the row maximum + 1e-6 and index 0.
    """
    axis_max = d.max(axis=1, keepdims=True) + 1e-6
    masked = (d - axis_max) * mask
    return masked.min(axis=1) + axis_max[:, 0], masked.argmin(axis=1)


def tfsim_triplet_loss(labels, embeddings, distance="cosine", positive_mining_strategy="hard",
                       negative_mining_strategy="semi-hard", margin=None, reduction="mean"):
    """tensorflow/similarity tensorflow_similarity/losses/triplet_loss.py `triplet_loss` (0.17.1)
    with losses/utils.py `positive_distances`, `negative_distances`, `semi_hard_easy_mask`,
    `compute_loss`, `logsumexp` and algebra.py `build_masks`, `masked_max`, `masked_min`.

    * positives: hard = masked_max, easy = masked_min over the positive mask (diagonal removed);
    * negatives: hard = masked_min, easy = masked_max over the negative mask; semi-hard = the
      closest negative with D > the anchor's HARDEST positive distance (whatever the positive
      strategy), falling back to the farthest negative (its argmax index is always in the mask);
    * margin None: soft margin log(exp(-x) + 1) + x with x = d_ap - d_an; else max(x + margin, 0);
    * the Keras Loss reduction (AUTO = sum over batch size) is the mean over anchors.
    Anchors without positives or negatives are NOT skipped: the +-1e-6 offsets and index 0 of the
    masked min/max helpers give them artefact distances.
    """
    y = np.asarray(labels).reshape(-1)
    x = _f64(embeddings)
    d = _tfsim_distance(x, distance)
    n = y.shape[0]
    positive_mask = y[:, None] == y[None, :]
    negative_mask = ~positive_mask
    positive_mask = positive_mask & ~np.eye(n, dtype=bool)
    pm = positive_mask.astype(np.float64)
    nm = negative_mask.astype(np.float64)

    if positive_mining_strategy == "hard":
        d_ap, _ = _tfsim_masked_max(d, pm)
    elif positive_mining_strategy == "easy":
        d_ap, _ = _tfsim_masked_min(d, pm)
    else:
        raise ValueError("Invalid positive mining strategy")

    if negative_mining_strategy == "hard":
        d_an, _ = _tfsim_masked_min(d, nm)
    elif negative_mining_strategy == "easy":
        d_an, _ = _tfsim_masked_max(d, nm)
    elif negative_mining_strategy == "semi-hard":
        max_positive, _ = _tfsim_masked_max(d, pm)
        greater = d > max_positive[:, None]
        _, max_neg_idxs = _tfsim_masked_max(d, nm)
        easy_mask = np.zeros_like(negative_mask)
        easy_mask[np.arange(n), max_neg_idxs] = True
        semi_hard_mask = np.where(greater, negative_mask, easy_mask)
        d_an, _ = _tfsim_masked_min(d, semi_hard_mask.astype(np.float64))
    else:
        raise ValueError("Invalid negative mining strategy")

    diff = d_ap - d_an
    if margin is None:
        # logsumexp(diff, ones) for a [n, 1] tensor: log(exp(-m) + exp(0)) + m with m = diff
        my_max = np.where(np.isfinite(diff), diff, 0.0)
        with np.errstate(over="ignore"):
            loss = np.log(np.exp(-my_max) + np.exp(diff - my_max)) + my_max
    else:
        loss = np.maximum(diff + margin, 0.0)
    return _reduce(loss, reduction)
