"""Choices as str-Enums whose values are the CLI spellings, and the parameter sets they form.

Everything here is pure Python so that `triplet-loss --help` imports neither numba nor pyarrow.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial

from .errors import UsageError


class Distance(StrEnum):
    euclidean = "euclidean"
    squared_euclidean = "squared-euclidean"
    cosine = "cosine"
    manhattan = "manhattan"
    chebyshev = "chebyshev"
    minkowski = "minkowski"
    dot = "dot"


class EpsPlacement(StrEnum):
    """Where the stabiliser eps goes in a p-norm distance (SPEC section 2)."""

    none = "none"  # ours: no eps in a norm (cosine still uses max(norm, eps))
    difference = "difference"  # PyTorch: norm_p(x - y + eps)
    root = "root"  # MLX >= 0.32: (sum |x - y|^p + eps)^(1/p)
    legacy_root = "legacy-root"  # MLX <= 0.31: sqrt(sum (x - y)^p + eps), signed power


class Reduction(StrEnum):
    mean = "mean"
    sum = "sum"
    none = "none"
    mean_nonzero = "mean-nonzero"


class PairReduction(StrEnum):
    sum = "sum"
    mean = "mean"


class Strategy(StrEnum):
    semi_hard = "semi-hard"
    hard = "hard"
    easy = "easy"
    all = "all"


class PositiveStrategy(StrEnum):
    all = "all"
    hard = "hard"
    easy = "easy"


class Fallback(StrEnum):
    easiest = "easiest"
    skip = "skip"


class SemiHardThreshold(StrEnum):
    """What a semi-hard negative must lie beyond."""

    positive = "positive"  # the paired positive (FaceNet, TF Addons, sentence-transformers)
    hardest_positive = "hardest-positive"  # the anchor's hardest positive (TF Similarity)


class MarginFilter(StrEnum):
    """Keep mined triplets by their gap d_an - d_ap against the margin (pytorch-metric-learning's
    TripletMarginMiner types: violating is its 'all')."""

    any = "any"
    violating = "violating"  # gap <= margin
    hard = "hard"  # gap <= 0 (and <= margin)
    semi_hard = "semi-hard"  # 0 < gap <= margin
    easy = "easy"  # gap > margin


class Format(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


@dataclass(frozen=True)
class DistanceParams:
    """How d(x, y) is computed."""

    distance: Distance = Distance.euclidean
    p: float = 2.0
    eps: float = 1e-6
    eps_placement: EpsPlacement = EpsPlacement.none
    normalize: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "distance", Distance(self.distance))
        object.__setattr__(self, "eps_placement", EpsPlacement(self.eps_placement))
        if not self.p >= 1:
            raise UsageError(f"--p must be >= 1 (got {self.p})")
        if not (self.eps >= 0 and math.isfinite(self.eps)):
            raise UsageError(f"--eps must be a finite number >= 0 (got {self.eps})")
        if self.eps_placement is EpsPlacement.legacy_root and math.isinf(self.norm_p):
            raise UsageError("--eps-placement legacy-root needs a finite p (not chebyshev)")
        if self.eps_placement is not EpsPlacement.none and self.distance in (
            Distance.cosine,
            Distance.dot,
        ):
            raise UsageError(
                f"--eps-placement {self.eps_placement.value} applies to p-norm distances, "
                f"not {self.distance.value}"
            )

    @property
    def norm_p(self) -> float:
        """The p of the p-norm this distance is (inf for chebyshev, 2 for squared)."""
        return {
            Distance.euclidean: 2.0,
            Distance.squared_euclidean: 2.0,
            Distance.manhattan: 1.0,
            Distance.chebyshev: math.inf,
        }.get(self.distance, self.p)

    def kernel(self) -> tuple[int, float, float, int]:
        """(code, p, eps, placement code): the distance arguments every kernel takes."""
        from .distances import kernel_args

        return kernel_args(self.distance.value, self.norm_p, self.eps, self.eps_placement.value)


@dataclass(frozen=True)
class LossParams:
    """How a triplet's distances become a loss."""

    margin: float = 1.0
    soft_margin: bool = False
    swap: bool = False

    def __post_init__(self) -> None:
        if not (self.margin >= 0 and math.isfinite(self.margin)):
            raise UsageError(f"--margin must be a finite number >= 0 (got {self.margin})")


MAX_PER_ANCHOR = 2**31 - 1  # K slots per (anchor, positive) are allocated: more is a typo


@dataclass(frozen=True)
class MiningParams:
    """Which triplets `mine` selects (SPEC section 4)."""

    strategy: Strategy = Strategy.semi_hard
    positive_strategy: PositiveStrategy = PositiveStrategy.all
    semi_hard_fallback: Fallback = Fallback.easiest
    per_anchor: int = 1
    active_only: bool = False
    batch_size: int | None = None
    seed: int = 0
    semi_hard_threshold: SemiHardThreshold = SemiHardThreshold.positive
    margin_filter: MarginFilter = MarginFilter.any

    def __post_init__(self) -> None:
        object.__setattr__(self, "margin_filter", MarginFilter(self.margin_filter))
        object.__setattr__(self, "semi_hard_threshold", SemiHardThreshold(self.semi_hard_threshold))
        object.__setattr__(self, "strategy", Strategy(self.strategy))
        object.__setattr__(self, "positive_strategy", PositiveStrategy(self.positive_strategy))
        object.__setattr__(self, "semi_hard_fallback", Fallback(self.semi_hard_fallback))
        if not 1 <= self.per_anchor <= MAX_PER_ANCHOR:
            raise UsageError(f"--per-anchor must be from 1 to {MAX_PER_ANCHOR} (got "
                             f"{self.per_anchor})")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0 (got {self.seed})")
        if self.batch_size is not None and self.batch_size < 2:
            raise UsageError(f"--batch-size must be >= 2 (got {self.batch_size})")


_CHOICES: dict[str, type[StrEnum]] = {
    "distance": Distance, "eps_placement": EpsPlacement, "reduction": Reduction,
    "pair_reduction": PairReduction, "strategy": Strategy, "positive_strategy": PositiveStrategy,
    "semi_hard_fallback": Fallback, "semi_hard_threshold": SemiHardThreshold,
    "margin_filter": MarginFilter,
}
_FLAGS = ("normalize", "soft_margin", "swap", "active_only")
_NUMBERS = ("p", "margin", "eps")
_INTEGERS = ("per_anchor", "batch_size", "seed")


def flag(name: str) -> str:
    """The CLI spelling of an option name."""
    return "--" + name.replace("_", "-")


def checked(name: str, value: object) -> object:
    """An option value as the kernels expect it (enum choices as their CLI string), or a
    UsageError naming the option: a typo never silently means a default."""
    if name in _CHOICES:
        choices = _CHOICES[name]
        try:
            return choices(value).value
        except ValueError:
            raise UsageError(f"{flag(name)}: unknown value {value!r}; choose from "
                             f"{', '.join(c.value for c in choices)}") from None
    if name in _FLAGS:
        if not (isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "")
                == "b"):
            raise UsageError(f"{flag(name)} must be True or False (got {value!r})")
        return bool(value)
    if name in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise UsageError(f"{flag(name)} must be a number (got {value!r})")
        return float(value)
    if name in _INTEGERS:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise UsageError(f"{flag(name)} must be a whole number (got {value!r})")
        return int(value)
    return value


def check_threads(threads: object) -> None:
    """--threads is a whole number >= 1 (or None: all cores)."""
    if threads is not None and (isinstance(threads, bool)
                                or not isinstance(threads, numbers.Integral) or threads < 1):
        raise UsageError(f"--threads must be a whole number >= 1 (got {threads!r})")


@dataclass(frozen=True)
class Option:
    """One setting: its built-in default and the help text its flag shows."""

    default: object
    help: str
    shown: str = ""  # the default as --help shows it, when not str(default)


# The one table of defaults; --help texts and presets.resolve both read it.
OPTIONS: dict[str, Option] = {
    "distance": Option("euclidean", "Distance d(x, y)."),
    "p": Option(2.0, "p of the minkowski distance (>= 1); alone it selects minkowski.", "2"),
    "margin": Option(1.0, "Margin (>= 0).", "1.0; 0 with --soft-margin"),
    "eps": Option(1e-6, "Stabiliser: cosine's norm floor, or where --eps-placement puts it.",
                  "1e-6"),
    "eps_placement": Option("none", "none (ours), difference (PyTorch), root (MLX), "
                            "legacy-root (MLX <= 0.31)."),
    "normalize": Option(False, "L2-normalise rows first.", "no"),
    "soft_margin": Option(False, "softplus(d_ap - d_an + margin) instead of the hinge.",
                          "hinge"),
    "swap": Option(False, "d(a,n) := min(d(a,n), d(p,n)) (PyTorch).", "no"),
    "reduction": Option("mean", "Headline loss: mean, sum, none or mean-nonzero."),
    "pair_reduction": Option("sum", "With k candidates: sum or mean over the k_p x k_n pairs."),
    "strategy": Option("semi-hard", "Negatives per (anchor, positive): semi-hard, hard "
                       "(closest), easy (farthest), all."),
    "positive_strategy": Option("all", "Positives per anchor: all, hard (farthest), easy "
                                "(closest)."),
    "semi_hard_fallback": Option("easiest", "No negative farther than the positive: easiest "
                                 "(the farthest negative, as TF) or skip."),
    "semi_hard_threshold": Option("positive", "Semi-hard negatives lie beyond the paired "
                                  "positive (FaceNet, TF Addons) or the anchor's hardest positive "
                                  "(TF Similarity)."),
    "margin_filter": Option("any", "Keep triplets by d_an - d_ap: violating (<= margin), hard "
                            "(<= 0), semi-hard (0 < gap <= margin), easy (> margin): "
                            "pytorch-metric-learning's TripletMarginMiner types "
                            "all/hard/semihard/easy."),
    "per_anchor": Option(1, "Up to K negatives per (anchor, positive), in the strategy's order."),
    "active_only": Option(False, "Keep only triplets with loss > 0.", "all"),
    "batch_size": Option(None, "Mine inside random mini-batches of B rows (online mining).",
                         "the whole file"),
    "seed": Option(0, "Seed of the mini-batch shuffle."),
}
_LOSS_KEYS = ("distance", "p", "margin", "eps", "eps_placement", "normalize", "soft_margin")
COMMAND_OPTIONS: dict[str, tuple[str, ...]] = {
    "compute": (*_LOSS_KEYS, "swap", "reduction", "pair_reduction"),
    "mine": (*_LOSS_KEYS, "reduction", "strategy", "positive_strategy", "semi_hard_fallback",
             "semi_hard_threshold", "margin_filter", "per_anchor", "active_only", "batch_size",
             "seed"),
}


def defaults(command: str) -> dict[str, object]:
    """The built-in value of every setting `command` has, in a fixed order."""
    return {k: OPTIONS[k].default for k in COMMAND_OPTIONS[command]}


def help_text(name: str) -> str:
    """A flag's help, with its default as --help shows it."""
    option = OPTIONS[name]
    return f"{option.help} (default: {option.shown or option.default})"


@dataclass(frozen=True)
class Params:
    """A command's settings, checked once: flat values (their CLI spellings, for JSON and file
    metadata), the typed parameter objects the jobs use, and where each value came from (flag,
    preset, triplets file or default)."""

    command: str
    values: dict[str, object]
    sources: dict[str, str]
    distance: DistanceParams = field(init=False)
    loss: LossParams = field(init=False)
    reduction: Reduction = field(init=False)
    mining: MiningParams | None = field(init=False)

    def __post_init__(self) -> None:
        v = self.values
        put = partial(object.__setattr__, self)
        put("distance", DistanceParams(Distance(v["distance"]), float(v["p"]), float(v["eps"]),
                                       EpsPlacement(v["eps_placement"]), bool(v["normalize"])))
        put("loss", LossParams(float(v["margin"]), bool(v["soft_margin"]),
                               bool(v.get("swap", False))))
        put("reduction", Reduction(v["reduction"]))
        put("mining", None if self.command != "mine" else MiningParams(
            Strategy(v["strategy"]), PositiveStrategy(v["positive_strategy"]),
            Fallback(v["semi_hard_fallback"]), int(v["per_anchor"]), bool(v["active_only"]),
            v["batch_size"], int(v["seed"]), SemiHardThreshold(v["semi_hard_threshold"]),
            MarginFilter(v["margin_filter"])))

    @property
    def pair_mean(self) -> bool:
        """k candidates: the mean (not the sum) of the k_p x k_n pair losses."""
        return self.values.get("pair_reduction") == PairReduction.mean
