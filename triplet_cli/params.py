"""Choices as str-Enums whose values are the CLI spellings, and the parameter sets they form.

Everything here is pure Python so that `triplet-loss --help` imports neither numba nor pyarrow.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import partial
from typing import Any

from .errors import UsageError

_CHOICES: dict[str, type[StrEnum]] = {}  # setting -> the enum of its values
CHOICE_OPTIONS = _CHOICES.keys()  # the settings whose values are choices


def _choices(name: str, spellings: str, settings: str = "") -> Any:
    """A str-Enum of CLI spellings, the values of `settings` (what each means: their help in
    OPTIONS); a member's name is its spelling with _ for -."""
    choices = StrEnum(name, [(s.replace("-", "_"), s) for s in spellings.split()], module=__name__)
    _CHOICES.update(dict.fromkeys(settings.split(), choices))
    return choices


Distance = _choices("Distance", "euclidean squared-euclidean cosine manhattan chebyshev "
                    "minkowski dot", "distance similarity")
EpsPlacement = _choices("EpsPlacement", "none difference root legacy-root",  # SPEC section 2
                        "eps_placement")
Reduction = _choices("Reduction", "mean sum none mean-nonzero", "reduction")
PairReduction = _choices("PairReduction", "sum mean", "pair_reduction")
Strategy = _choices("Strategy", "semi-hard hard easy all", "strategy")
PositiveStrategy = _choices("PositiveStrategy", "all hard easy", "positive_strategy")
Fallback = _choices("Fallback", "easiest skip", "semi_hard_fallback")
SemiHardThreshold = _choices("SemiHardThreshold", "positive hardest-positive",
                             "semi_hard_threshold")
MarginFilter = _choices("MarginFilter", "any violating hard semi-hard easy", "margin_filter")
Average = _choices("Average", "micro macro", "average")
SelfMatch = _choices("SelfMatch", "index first", "self_match")
MapDivisor = _choices("MapDivisor", "r min-k-r", "map_divisor")
Recall = _choices("Recall", "hit fraction", "recall")
Sampling = _choices("Sampling", "top random", "sampling")
NegativesFormat = _choices("NegativesFormat", "triplet n-tuple labeled-pair", "output_format")
MarginPositive = _choices("MarginPositive", "pair hardest", "margin_positive")
Format = _choices("Format", "table json jsonl csv")
ReportFormat = _choices("ReportFormat", "table json")  # presets prints no rows


@dataclass(frozen=True)
class DistanceParams:
    """How d(x, y) is computed."""

    distance: Distance = Distance.euclidean
    p: float = 2.0
    eps: float = 1e-6
    eps_placement: EpsPlacement = EpsPlacement.none
    normalize: bool = False

    def __post_init__(self) -> None:
        _as_choices(self)
        if self.eps_placement is EpsPlacement.legacy_root and math.isinf(self.norm_p):
            raise UsageError("--eps-placement legacy-root needs a finite p (not chebyshev)")
        if self.eps_placement is not EpsPlacement.none and self.distance in (Distance.cosine,
                                                                             Distance.dot):
            raise UsageError(f"--eps-placement {self.eps_placement.value} applies to p-norm "
                             f"distances, not {self.distance.value}")

    @property
    def norm_p(self) -> float:
        """The p of the p-norm this distance is (inf for chebyshev, 2 for squared)."""
        return {Distance.euclidean: 2.0, Distance.squared_euclidean: 2.0, Distance.manhattan: 1.0,
                Distance.chebyshev: math.inf}.get(self.distance, self.p)

    def kernel(self) -> tuple[int, float, float, int]:
        """(code, p, eps, placement code): the distance arguments every kernel takes, the code
        typed so that a square-family distance, cosine or dot compiles no other (typed_code)."""
        from .distances import kernel_args, typed_code

        code, p, eps, placement = kernel_args(self.distance.value, self.norm_p, self.eps,
                                              self.eps_placement.value)
        return typed_code(code, p, placement), p, eps, placement

    def product_type(self, dtype: Any) -> Any:
        """The float type matrix products rank rows of `dtype` in (normalised rows are float64),
        or None for a distance computed directly, without products."""
        from .distances import RANK_DIRECT, rank_kind

        code, _, _, placement = self.kernel()
        if rank_kind(code, placement) == RANK_DIRECT:
            return None
        return "float64" if self.normalize else dtype


@dataclass(frozen=True)
class LossParams:
    """How a triplet's distances become a loss."""

    margin: float = 1.0
    soft_margin: bool = False
    swap: bool = False

    def rule(self) -> tuple[float, bool, bool]:
        """(margin, soft margin, swap): the loss arguments the kernels take."""
        return self.margin, self.soft_margin, self.swap


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
        _as_choices(self)


def _as_choices(params: object) -> None:
    """A parameter object's choice fields as their enums (set in __post_init__)."""
    for f in fields(params):  # type: ignore[arg-type]
        if f.name in _CHOICES:
            object.__setattr__(params, f.name, _CHOICES[f.name](getattr(params, f.name)))


_FLAGS = ("normalize", "soft_margin", "swap", "active_only", "batch_hard_loss")
_NUMBERS = ("p", "margin", "eps", "max_score", "min_score", "absolute_margin", "relative_margin",
            "false_negative_eps")
_INTEGERS = ("per_anchor", "batch_size", "seed", "num_negatives", "range_min", "range_max")
# What a number must be beyond its type, in the words the message uses.
_LIMITS: dict[str, tuple[Callable[[float], bool], str]] = {
    "p": (lambda v: v >= 1, ">= 1"),
    "margin": (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    "eps": (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    "per_anchor": (lambda v: 1 <= v <= MAX_PER_ANCHOR, f"from 1 to {MAX_PER_ANCHOR}"),
    "seed": (lambda v: 0 <= v < 2**64, "from 0 to 2^64 - 1"),
    "batch_size": (lambda v: v >= 2, ">= 2"),
    "num_negatives": (lambda v: v >= 1, ">= 1"),
    "range_min": (lambda v: 0 <= v < 2**63, "from 0 to 2^63 - 1"),
    "range_max": (lambda v: 1 <= v < 2**63, "from 1 to 2^63 - 1"),
}


def flag(name: str) -> str:
    """The CLI spelling of an option name."""
    return "--" + name.replace("_", "-")


def option_type(name: str) -> type:
    """The type a setting's flag parses its value as (a choice: its enum)."""
    if name in _CHOICES:
        return _CHOICES[name]
    return (bool if name in _FLAGS else float if name in _NUMBERS else int if name in _INTEGERS
            else str)


# What users of the frameworks type for a value spelt otherwise here.
_SPELT_ELSEWHERE = {
    "semihard": "semi-hard", "semi_hard": "semi-hard", "batch-hard": None, "batch_hard": None,
    "batchhard": None, "batch-all": "all", "batch_all": "all", "l2": "euclidean",
    "squared-l2": "squared-euclidean", "sql2": "squared-euclidean", "angular": "cosine",
    "l1": "manhattan", "linf": "chebyshev", "mean_nonzero": "mean-nonzero",
}


def unknown_choice(name: str, value: object) -> str:
    """The message for a value that is not one of an option's choices, with the one meant
    when it can be told (a framework's spelling, a typo)."""
    import difflib

    spellings = [c.value for c in _CHOICES[name]]
    text = f"{flag(name)}: unknown value {value!r}; choose from {', '.join(spellings)}"
    typed = str(value).strip().lower()
    if typed in _SPELT_ELSEWHERE and name in ("strategy", "positive_strategy"):
        meant = _SPELT_ELSEWHERE[typed]
        return text + (" (batch-hard is --positive-strategy hard --strategy hard)"
                       if meant is None else f" (did you mean {meant!r}?)")
    meant = _SPELT_ELSEWHERE.get(typed)
    if meant not in spellings:
        close = difflib.get_close_matches(typed, spellings, n=1, cutoff=0.75)
        meant = close[0] if close else None
    return text + (f" (did you mean {meant!r}?)" if meant else "")


def checked(name: str, value: object) -> object:
    """An option value as the kernels expect it (enum choices as their CLI string) and within
    its limits, or a UsageError naming the option: a typo never silently means a default."""
    if name in _CHOICES:
        try:
            return _CHOICES[name](value).value
        except ValueError:
            raise UsageError(unknown_choice(name, value)) from None
    if name in _FLAGS:
        if not (isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "")
                == "b"):
            raise UsageError(f"{flag(name)} must be True or False (got {value!r})")
        return bool(value)
    if name in _NUMBERS or name in _INTEGERS:
        real = name in _NUMBERS
        if isinstance(value, bool) or not isinstance(value, numbers.Real if real
                                                     else numbers.Integral):
            raise UsageError(f"{flag(name)} must be a {'' if real else 'whole '}number (got "
                             f"{value!r})")
        try:
            value = float(value) if real else int(value)
        except OverflowError:  # (a Python int beyond float: 10**400)
            raise UsageError(f"{flag(name)} must be a number within float64's range (got one of "
                             f"{len(str(abs(value)))} digits)") from None
        within, bound = _LIMITS.get(name, (None, ""))
        if within is not None and not within(value):
            raise UsageError(f"{flag(name)} must be {bound} (got {value})")
    return _plain(value)


def _plain(value: object) -> object:
    """A value as JSON holds it, and the settings' own: numpy scalars as Python numbers, lists
    and arrays copied as lists (a caller's list changed later changes nothing here)."""
    if type(value).__module__ == "numpy":  # (numpy is not imported for --help)
        value = value.tolist()  # type: ignore[attr-defined]  (a scalar's .tolist() is .item())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# Settings some combinations never read: (when, why), a flag given then gets a warning.
_IGNORED: dict[str, tuple[Callable[[dict, bool], bool], str | Callable[[dict], str]]] = {
    "per_anchor": (lambda v, _: v["strategy"] == "all", "--strategy all takes every negative"),
    "semi_hard_fallback": (lambda v, _: v["strategy"] != "semi-hard",
                           "it applies to --strategy semi-hard"),
    "semi_hard_threshold": (lambda v, _: v["strategy"] != "semi-hard",
                            "it applies to --strategy semi-hard"),
    "self_match": (lambda _, reference: reference,
                   "with --reference no row is dropped as a query's own"),
    "margin": (lambda v, _: v.get("batch_hard_loss") is False,
               "it is the margin of --batch-hard-loss"),
    "eps": (lambda v, _: v.get("distance", v.get("similarity")) != "cosine"
            and v.get("eps_placement", "none") == "none",
            lambda v: "it is cosine's norm floor" if "similarity" in v
            else "it is cosine's norm floor, or where --eps-placement puts it"),
    "seed": (lambda v, _: v["sampling"] == "top" if "sampling" in v else v["batch_size"] is None,
             lambda v: "it seeds --sampling random" if "sampling" in v
             else "it seeds --batch-size's shuffle"),
    "margin_positive": (lambda v, _: v["absolute_margin"] is None
                        and v["relative_margin"] is None,
                        "it is the s_p of --absolute-margin and --relative-margin"),
}


def ignored_flags(params: Params, reference: bool = False) -> list[str]:
    """Warnings for settings given explicitly that this combination never reads, or that the
    preset's framework does not have."""
    return [f"{flag(k)} has no effect: {why(params.values) if callable(why) else why}"
            for k, (when, why) in _IGNORED.items()
            if params.sources.get(k) == "flag" and when(params.values, reference)
            ] + list(params.notes)


def check_count(name: str, value: object) -> None:
    """A count (--threads, a library's block_rows or chunk_rows) is a whole number >= 1, or
    None (its default): a block of 0 or -3 rows would silently compute nothing."""
    if value is not None and (isinstance(value, bool)
                              or not isinstance(value, numbers.Integral) or value < 1):
        raise UsageError(f"{name} must be a whole number >= 1 (got {value!r})")


@dataclass(frozen=True)
class Option:
    """One setting: its built-in default and the help text its flag shows."""

    default: object
    help: str
    shown: str = ""  # the default as --help shows it, when not str(default)


# The one table of defaults; --help texts and presets.resolve both read it.
OPTIONS: dict[str, Option] = {
    "distance": Option("euclidean", "Distance d(x, y)."),
    "p": Option(2.0, "p of the minkowski distance (>= 1); given without --distance it selects "
                "minkowski.", "2, with --distance minkowski"),
    "margin": Option(1.0, "Margin (>= 0).", "1.0; 0 with --soft-margin"),
    "eps": Option(1e-6, "Stabiliser: cosine's norm floor, or where --eps-placement puts it.",
                  "1e-6"),
    "eps_placement": Option("none", "none (ours), difference (PyTorch), root (MLX), "
                            "legacy-root (MLX <= 0.31)."),
    "normalize": Option(False, "L2-normalise rows first.", "no"),
    "soft_margin": Option(False, "softplus(d_ap - d_an + margin) instead of the hinge.",
                          "hinge"),
    "swap": Option(False, "d(a,n) := min(d(a,n), d(p,n)) in the loss (PyTorch, "
                   "pytorch-metric-learning).", "no"),
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
                            "all (= violating), hard, semihard, easy; any keeps every triplet."),
    "per_anchor": Option(1, "Up to K (>= 1) negatives per (anchor, positive), in the strategy's "
                         "order."),
    "active_only": Option(False, "Keep only triplets with loss > 0.", "all"),
    "batch_size": Option(None, "Mine inside random mini-batches of B (>= 2) rows (online "
                         "mining).",
                         "the whole file"),
    "seed": Option(0, "Seed of the mini-batch shuffle."),
    "k": Option("max-bin-count", "Neighbours per query: max-bin-count (the most same-class "
                "reference rows any query has, its own row not counted), a whole number, or "
                "all."),
    "at": Option("1,5,10", "K of precision@K, recall@K, map@K, ndcg@K and mrr@K, "
                 "comma-separated."),
    "average": Option("micro", "micro (over queries) or macro (per class, then the unweighted "
                      "mean: pytorch-metric-learning's avg_of_avgs)."),
    "target": Option("precision=0.99", "Calibration target: the largest threshold with this "
                     "precision, or the smallest with this recall (recall=V)."),
    "self_match": Option("index", "Without --reference: drop each query's own row by index, or "
                         "the first neighbour whatever it is (first: TF Similarity)."),
    "map_divisor": Option("r", "map@K divides by r (pytorch-metric-learning, TF Similarity) or "
                          "min-k-r (sentence-transformers)."),
    "recall": Option("hit", "recall@K: hit (a relevant neighbour within K: metric learning, TF "
                     "Similarity) or fraction (relevant within K over R: sentence-transformers)."),
    "batch_hard_loss": Option(False, "Add the hinge loss of each query's batch-hard triplet (its "
                              "farthest same-class and closest other-class row, --margin) as a "
                              "column: one more matrix product per block.", "no"),
    # mine-negatives (sentence-transformers' mine_hard_negatives names and meanings)
    "similarity": Option("cosine", "Score s(q, c): cosine or dot (larger is closer), or a "
                         "distance (euclidean, ...; scored as -d)."),
    "num_negatives": Option(3, "Negatives per (query, positive) pair (>= 1)."),
    "range_min": Option(0, "Skip this many (>= 0) best-scoring candidates left after the "
                        "filters."),
    "range_max": Option(None, "Candidates per query (>= 1; its positives excluded) before "
                        "the filters.", "range_min + num_negatives + the most positives of a "
                        "query; 10 x num_negatives in place of num_negatives with a margin, "
                        "max-score or false-negative-eps"),
    "max_score": Option(None, "Drop candidates with s > this.", "none"),
    "min_score": Option(None, "Drop candidates with s < this.", "none"),
    "absolute_margin": Option(None, "Drop candidates with s_n + margin > s_p.", "none"),
    "relative_margin": Option(None, "Drop candidates with s_n > s_p - margin x |s_p|.", "none"),
    "margin_positive": Option("pair", "s_p of the margins: the pair's own positive, or the "
                              "query's hardest (lowest-scoring) positive (sentence-transformers)."),
    "false_negative_eps": Option(None, "Drop candidates within this distance of any of the "
                                 "query's positives (duplicates, near-duplicates; euclidean "
                                 "for dot).", "none"),
    "sampling": Option("top", "Pick the negatives: top (best first) or random (--seed)."),
    "output_format": Option("triplet", "Rows: triplet, n-tuple (pairs with all K negatives) or "
                            "labeled-pair."),
}
_LOSS_KEYS = ("distance", "p", "margin", "eps", "eps_placement", "normalize", "soft_margin")
COMMAND_OPTIONS: dict[str, tuple[str, ...]] = {
    "compute": (*_LOSS_KEYS, "swap", "reduction", "pair_reduction"),
    "mine": (*_LOSS_KEYS, "swap", "reduction", "strategy", "positive_strategy",
             "semi_hard_fallback", "semi_hard_threshold", "margin_filter", "per_anchor",
             "active_only", "batch_size", "seed"),
    "evaluate": ("distance", "p", "eps", "eps_placement", "normalize", "k", "at", "average",
                 "target", "self_match", "map_divisor", "recall", "batch_hard_loss", "margin"),
    "mine-negatives": ("similarity", "p", "eps", "num_negatives", "range_min", "range_max",
                       "max_score", "min_score", "absolute_margin", "relative_margin",
                       "margin_positive", "false_negative_eps", "sampling", "seed",
                       "output_format"),
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
    notes: tuple[str, ...] = ()  # settings the preset's framework does not have
    distance: DistanceParams = field(init=False)
    loss: LossParams = field(init=False)
    reduction: Reduction = field(init=False)
    mining: MiningParams | None = field(init=False)

    def __post_init__(self) -> None:
        v = self.values
        put = partial(object.__setattr__, self)
        put("distance", _built(DistanceParams, {"distance": v.get("similarity"), **v}))
        put("loss", _built(LossParams, v))
        put("reduction", Reduction(v.get("reduction", "mean")))  # (evaluate has no loss)
        put("mining", _built(MiningParams, v) if self.command == "mine" else None)
        d = self.distance
        if (self.command != "compute" and d.eps_placement is EpsPlacement.legacy_root
                and d.norm_p != 2):
            raise UsageError(f"--eps-placement legacy-root with p = {d.norm_p:g} gives NaN "
                             "distances for finite rows (MLX <= 0.31's defect, which compute "
                             f"reproduces); {self.command} ranks rows by distance: use root")

    @property
    def pair_mean(self) -> bool:
        """k candidates: the mean (not the sum) of the k_p x k_n pair losses."""
        return self.values.get("pair_reduction") == PairReduction.mean


def _built(cls: type, values: dict[str, object]) -> Any:
    """A parameter object from the settings named as its fields (its defaults for the others:
    the values were checked one by one when they were resolved)."""
    return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})
