"""SPEC.md section 7 and CONFORMANCE.md C1-C6 as one table of pinned numbers.

Every input is float64. A value written as a plain number is exact (to 1e-9: the presets' eps
artefacts at 1e-12, such as torch's 2.5e-13 on the C5 boundary triplet, stay within it); a value
written as rounded("...") is the number as printed in SPEC/CONFORMANCE and must round to it
(half a unit of its last printed digit). SPEC's semi-hard mining example belongs to the miner's
tests. The same table also checks tests/reference.py, the oracle of test_kernels.py.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pytest
import reference as R

from triplet_cli import compute_loss

EXACT_ABS = 1e-9
NAN = math.nan


def rounded(text: str):
    """Equal to `text` when rounded to its printed digits."""
    half_unit = 0.5 * 10.0 ** Decimal(text).as_tuple().exponent
    return pytest.approx(float(text), rel=0, abs=half_unit * (1 + 1e-9))


def expect(value):
    if isinstance(value, float) and math.isnan(value):
        return pytest.approx(value, nan_ok=True)
    if isinstance(value, int | float):
        return pytest.approx(value, rel=0, abs=EXACT_ABS)
    return value  # already an approx from rounded()


@dataclass(frozen=True)
class Case:
    name: str
    anchors: list
    positives: list
    negatives: list
    options: dict = field(default_factory=dict)
    d_ap: list | None = None
    d_an: list | None = None
    loss: list | None = None
    summary: dict = field(default_factory=dict)  # summary key -> value (None: must be None)


C4 = ([[1, 2, 3], [1, 2, 3]], [[4, 5, 6], [0, -1, 2]], [[7, 8, 9], [3, 2, 3]])
C5 = ([[0, 0], [0, 0], [1, 1]], [[1, 0], [0, 2], [1, 1]], [[2, 0], [1, 0], [4, 5]])
B2B = ([0, 0], [[1, 0], [0, 2]], [[1, 1], [3, 0]])
SQ = {"distance": "squared-euclidean"}

CASES = [
    # --- SPEC section 7 ------------------------------------------------------------------------
    Case("B2a", [[1, 2]], [[2, 3]], [[4, 5]], SQ, d_ap=[2], d_an=[18], loss=[0]),
    Case("B2b pair-reduction sum", *B2B, {**SQ, "pair_reduction": "sum"}, loss=[3],
         # d_ap, d_an: the mean candidate distances, (1 + 4) / 2 and (2 + 9) / 2
         d_ap=[2.5], d_an=[5.5], summary={"loss": 3}),
    Case("B2b default pair-reduction is sum", *B2B, SQ, loss=[3]),
    Case("B2b pair-reduction mean", *B2B, {**SQ, "pair_reduction": "mean"}, loss=[0.75]),
    Case("euclidean", [[0, 0]], [[3, 4]], [[0, 1]], {}, d_ap=[5], d_an=[1], loss=[5]),
    Case("euclidean swap", [[0, 0]], [[3, 4]], [[0, 1]], {"swap": True},
         d_ap=[5], d_an=[1], loss=[5]),
    Case("euclidean swap: d(p, n)", [[3, 4]], [[3, 4]], [[0, 1]], {},
         d_ap=[0], d_an=[rounded("4.2426")]),
    Case("soft margin, margin 0: log 2", [[0, 0]], [[1, 0]], [[0, 1]], {"soft_margin": True},
         d_ap=[1], d_an=[1], loss=[rounded("0.693147")], summary={"mean": rounded("0.693147")}),
    # --- CONFORMANCE C1: eps placement, a = p --------------------------------------------------
    Case("C1 exact", [[0, 0]], [[0, 0]], [[0.5, 0]], {}, d_ap=[0], d_an=[0.5], loss=[0.5]),
    Case("C1 mlx", [[0, 0]], [[0, 0]], [[0.5, 0]], {"preset": "mlx"},
         d_ap=[0.001], d_an=[rounded("0.500001")], loss=[rounded("0.500999")]),
    Case("C1 mlx-legacy (p = 2: same)", [[0, 0]], [[0, 0]], [[0.5, 0]],
         {"preset": "mlx-legacy"},
         d_ap=[0.001], d_an=[rounded("0.500001")], loss=[rounded("0.500999")]),
    Case("C1 torch", [[0, 0]], [[0, 0]], [[0.5, 0]], {"preset": "torch"},
         d_ap=[rounded("1.41421e-6")], d_an=[rounded("0.499999")], loss=[rounded("0.500002")],
         summary={"loss": rounded("0.500002")}),
    # --- C2: PyTorch asymmetry -----------------------------------------------------------------
    Case("C2 torch", [[0, 0]], [[0, 0]], [[-0.5, 0]], {"preset": "torch"},
         d_an=[rounded("0.500001")], loss=[rounded("0.500000")]),
    Case("C2 mlx unchanged", [[0, 0]], [[0, 0]], [[-0.5, 0]], {"preset": "mlx"},
         loss=[rounded("0.500999")]),
    Case("C2 torch pairwise_distance asymmetry", [[1, 0], [0, 0]], [[0, 0], [1, 0]],
         [[0, 0], [0, 0]], {"preset": "torch"},
         d_ap=[rounded("1.000001"), rounded("0.999999")]),
    Case("C2 torch d(x, x), D = 3", [[1, 2, 3]], [[1, 2, 3]], [[0, 0, 0]], {"preset": "torch"},
         d_ap=[rounded("1.73205e-6")]),
    Case("C2 mlx d(x, x), D = 3", [[1, 2, 3]], [[1, 2, 3]], [[0, 0, 0]], {"preset": "mlx"},
         d_ap=[0.001]),
    # --- C3: p = 1 ------------------------------------------------------------------------------
    Case("C3 exact manhattan", [[0, 0]], [[1, 1]], [[2, 0]], {"distance": "manhattan"},
         d_ap=[2], d_an=[2], loss=[1]),
    Case("C3 mlx p=1", [[0, 0]], [[1, 1]], [[2, 0]], {"preset": "mlx", "p": 1.0},
         d_ap=[rounded("2.000001")], d_an=[rounded("2.000001")], loss=[1]),
    Case("C3 mlx-legacy p=1: NaN", [[0, 0]], [[1, 1]], [[2, 0]],
         {"preset": "mlx-legacy", "p": 1.0}, d_ap=[NAN], d_an=[NAN], loss=[NAN]),
    Case("C3 torch p=1", [[0, 0]], [[1, 1]], [[2, 0]], {"preset": "torch", "p": 1.0},
         d_ap=[rounded("1.999998")], d_an=[rounded("2.000000")], loss=[rounded("0.999998")]),
    # --- C4: MLX unit-test triplets -----------------------------------------------------------
    Case("C4 torch", *C4, {"preset": "torch"}, loss=[0, rounded("2.31663")],
         summary={"loss": rounded("1.15831"), "mean": rounded("1.15831"), "reduction": "mean"}),
    Case("C4 mlx", *C4, {"preset": "mlx"},
         d_ap=[rounded("5.19615"), rounded("3.31662")],
         d_an=[rounded("10.3923"), rounded("2.00000")],
         loss=[0, rounded("2.31662")],
         summary={"loss": None, "reduction": "none", "mean": rounded("1.15831"),
                  "sum": rounded("2.31662")}),
    # --- C5: hinge boundary and reductions ------------------------------------------------------
    Case("C5 exact", *C5, {}, d_ap=[1, 2, 0], d_an=[2, 1, 5], loss=[0, 2, 0],
         summary={"mean": rounded("0.666667"), "sum": 2, "active_fraction": 1 / 3}),
    Case("C5 torch", *C5, {"preset": "torch"}, loss=[0, 2, 0],
         summary={"loss": rounded("0.666667"), "mean": rounded("0.666667"), "sum": 2}),
    Case("C5 mlx: the boundary triplet is active", *C5, {"preset": "mlx"},
         loss=[rounded("2.5e-7"), rounded("2.00000"), 0],
         summary={"mean": rounded("0.666667"), "active_fraction": 2 / 3}),
    # --- C6: swap ------------------------------------------------------------------------------
    Case("C6 torch", [[0, 0]], [[1, 0]], [[1.5, 0]], {"preset": "torch"}, loss=[0.5],
         summary={"loss": 0.5}),
    Case("C6 torch swap", [[0, 0]], [[1, 0]], [[1.5, 0]], {"preset": "torch", "swap": True},
         d_an=[rounded("0.499999")], loss=[1.5], summary={"loss": 1.5}),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_worked_example(case: Case):
    arrays = (np.asarray(x, dtype=np.float64)
              for x in (case.anchors, case.positives, case.negatives))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # C3 legacy: NaN in the statistics
        result = compute_loss(*arrays, **case.options)
    for name in ("d_ap", "d_an", "loss"):
        want = getattr(case, name)
        if want is not None:
            got = getattr(result, name).tolist()
            assert got == [expect(v) for v in want], f"{name}: {got}"
    for key, want in case.summary.items():
        got = result.summary[key]
        assert (got is None) if want is None else got == expect(want), f"{key}: {got}"



PRESET_PLACEMENT = {"torch": "difference", "mlx": "root", "mlx-legacy": "legacy-root"}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_reference_reproduces_worked_example(case: Case):
    """The oracle gets the same numbers, with each preset spelled as its eps placement."""
    o = dict(case.options)
    preset = o.pop("preset", None)
    soft = o.pop("soft_margin", False)
    kw = dict(distance=o.pop("distance", "minkowski" if preset else "euclidean"),
              p_norm=o.pop("p", 2.0), placement=PRESET_PLACEMENT.get(preset, "none"),
              margin=0.0 if soft else 1.0, soft=soft, swap=o.pop("swap", False))
    pair_reduction = o.pop("pair_reduction", "sum")
    assert not o, f"options the oracle does not model: {o}"
    a, p, n = (np.asarray(x, dtype=np.float64)
               for x in (case.anchors, case.positives, case.negatives))
    with np.errstate(all="ignore"):
        if a.ndim == 1:  # one anchor against k candidates
            got = R.candidate_losses(a[None], p[None], n[None], pair_reduction=pair_reduction,
                                     **kw)
        else:
            got = R.triplet_losses(a, p, n, **kw)
    for name, values in zip(("d_ap", "d_an", "loss"), got, strict=True):
        want = getattr(case, name)
        if want is not None:
            assert values.tolist() == [expect(v) for v in want], f"{name}: {values.tolist()}"
    if "mean" in case.summary:
        assert R.reduce(got[2], "mean") == expect(case.summary["mean"])
    if "active_fraction" in case.summary:
        assert R.active_fraction(got[2]) == expect(case.summary["active_fraction"])
