"""mine-negatives' decisions after the exact top-k: filters, range_min, sampling, statistics.

Plain numpy on small arrays: a block's pairs x window scores (window = range_max candidates per
query, best first). Each function is one rule of sentence-transformers' `mine_hard_negatives`
(SPEC section 9), with its counted effect, so the report can say what each filter removed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from ._jit import borrowed, in_parallel, jit
from .distances import Metric, distance
from .errors import UsageError
from .params import Params

NAMED_SHORT = 10_000  # queries left short that the JSON names (the count is always exact)


@dataclass(frozen=True)
class Settings:
    """mine-negatives' resolved settings, checked before any file is read."""

    num_negatives: int
    range_min: int
    range_max: int | None  # None: derived once the most positives of a query is known
    max_score: float | None
    min_score: float | None
    absolute_margin: float | None
    relative_margin: float | None
    hardest_positive: bool
    false_negative_eps: float | None
    random: bool
    seed: int
    output_format: str

    @classmethod
    def of(cls, params: Params) -> Settings:
        v = params.values
        for name in ("max_score", "min_score", "absolute_margin", "relative_margin",
                     "false_negative_eps"):
            if v[name] is not None and math.isnan(v[name]):
                raise UsageError(f"--{name.replace('_', '-')} must be a number (got nan)")
        if v["min_score"] is not None and v["max_score"] is not None and \
                v["min_score"] > v["max_score"]:
            raise UsageError(f"--min-score {v['min_score']:g} is above --max-score "
                             f"{v['max_score']:g}: no candidate could be kept")
        if v["false_negative_eps"] is not None and not v["false_negative_eps"] >= 0:
            raise UsageError(f"--false-negative-eps must be >= 0 (got {v['false_negative_eps']})")
        s = cls(v["num_negatives"], v["range_min"], v["range_max"], v["max_score"],
                v["min_score"], v["absolute_margin"], v["relative_margin"],
                v["margin_positive"] == "hardest", v["false_negative_eps"],
                v["sampling"] == "random", v["seed"], v["output_format"])
        if s.range_max is not None:
            s.check_window(s.range_max)
        return s

    @property
    def widened(self) -> bool:
        """Filters that drop candidates near the positives: the derived window is 10x wider
        (as sentence-transformers derives range_max)."""
        return any(x is not None for x in (self.absolute_margin, self.relative_margin,
                                           self.max_score, self.false_negative_eps))

    def window(self, most_positives: int) -> int:
        """range_max: given, or sentence-transformers' derivation (range_min + num_negatives
        (x10 with a filter) + the most positives of a query)."""
        if self.range_max is not None:
            return self.range_max
        return self.range_min + self.num_negatives * (10 if self.widened else 1) + most_positives

    def check_window(self, range_max: int) -> None:
        if range_max < 1:
            raise UsageError(f"--range-max must be >= 1 (got {range_max})")
        if self.range_min >= range_max:
            raise UsageError(f"--range-min ({self.range_min}) must be smaller than --range-max "
                             f"({range_max})")
        if self.num_negatives > range_max - self.range_min:
            raise UsageError(f"--num-negatives {self.num_negatives} does not fit in the "
                             f"{range_max - self.range_min} candidates left between --range-min "
                             f"{self.range_min} and --range-max {range_max}")


def to_scores(d: np.ndarray, similarity: str) -> np.ndarray:
    """Distances as scores in the similarity's direction: cos = 1 - cosine distance, x.y for
    dot, -d for a distance (sentence-transformers' euclidean and manhattan similarities)."""
    return 1.0 - d if similarity == "cosine" else -d


def near_positives(C: np.ndarray, window: np.ndarray, counts: np.ndarray,
                   positives: tuple[np.ndarray, np.ndarray], metric: Metric, limit: float,
                   out: np.ndarray) -> None:
    """out[r, j] = the window's candidate j of query r lies within `limit` (exact distance) of
    one of the query's positives pos_idx[pos_ptr[r]:pos_ptr[r+1]]; positives = (pos_ptr,
    pos_idx)."""
    in_parallel(_near_positives, window.shape[0], C, window, counts, *positives, *metric, limit,
                out)


@jit
def _near_positives(lo, hi, C, window, counts, pos_ptr, pos_idx, code, p, eps, placement,
                    limit, out):
    """near_positives for queries lo..hi."""
    C = borrowed(C)
    for r in range(lo, hi):
        for j in range(counts[r]):
            c = C[window[r, j]]
            for e in range(pos_ptr[r], pos_ptr[r + 1]):
                if distance(c, C[pos_idx[e]], code, p, eps, placement) <= limit:
                    out[r, j] = True
                    break


@dataclass
class Chosen:
    """A block's decisions, per pair (rows) x window position (columns)."""

    chosen: np.ndarray  # bool: this candidate is one of the pair's negatives
    removed: dict[str, int]  # candidates each filter dropped (first filter only), and range_min
    window: int  # candidates in the pairs' windows


def choose(scores: np.ndarray, valid: np.ndarray, near: np.ndarray | None, s_p: np.ndarray,
           pair_ids: np.ndarray, s: Settings) -> Chosen:
    """Filters, range_min and sampling on pairs x window scores (rows best first); `valid`
    marks real candidates (a short window ends early), `near` the false-negative-eps hits,
    s_p the positive score each row's margins use, pair_ids the pairs' global numbers (the
    random keys depend on them, so a block size never changes a sample)."""
    keep = valid.copy()
    removed = {}
    with np.errstate(invalid="ignore"):  # (-inf + inf margin on an empty slot: not kept anyway)
        drops = {  # in the order they are applied: a candidate counts for the first that drops it
            "false_negative_eps": near,
            "absolute_margin": None if s.absolute_margin is None
            else scores + s.absolute_margin > s_p[:, None],
            "relative_margin": None if s.relative_margin is None
            else scores > (s_p - np.abs(s_p) * s.relative_margin)[:, None],
            "max_score": None if s.max_score is None else scores > s.max_score,
            "min_score": None if s.min_score is None else scores < s.min_score,
        }
    for name, drop in drops.items():
        if drop is not None:
            hit = keep & drop
            removed[name] = int(hit.sum())
            keep &= ~hit
    position = np.cumsum(keep, axis=1) - 1  # among the survivors
    eligible = keep & (position >= s.range_min)
    removed["range_min"] = int((keep & ~eligible).sum())
    if not s.random:
        chosen = eligible & (position < s.range_min + s.num_negatives)
    else:
        never = np.uint64(0xFFFFFFFFFFFFFFFF)
        keys = np.where(eligible, random_keys(s.seed, pair_ids, scores.shape[1]), never)
        order = np.argsort(keys, axis=1, kind="stable")[:, :s.num_negatives]
        chosen = np.zeros_like(eligible)
        np.put_along_axis(chosen, order, True, axis=1)
        chosen &= eligible
    return Chosen(chosen, removed, int(valid.sum()))


def random_keys(seed: int, pair_ids: np.ndarray, width: int) -> np.ndarray:
    """A uniform 64-bit key per (seed, pair, window position): splitmix64 of their mix. The
    num_negatives smallest keys of a pair's eligible candidates are its random sample."""
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
             + pair_ids.astype(np.uint64)[:, None] * np.uint64(0xBF58476D1CE4E5B9)
             + np.arange(width, dtype=np.uint64)[None, :] * np.uint64(0x94D049BB133111EB))
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


# ---- statistics ---------------------------------------------------------------------------------
SCORE_KEYS = ("count", "mean", "std", "min", "p25", "p50", "p75", "max")


def distribution(values: np.ndarray) -> dict[str, float | int | None]:
    """Count, mean, sample std (ddof 1, as torch.std), min, quartiles (linear, as
    torch.quantile) and max, in float64; None where undefined."""
    n = int(values.size)
    if n == 0:
        return {"count": 0, **dict.fromkeys(SCORE_KEYS[1:])}
    v = values.astype(np.float64)
    q = np.quantile(v, [0.25, 0.5, 0.75])
    return {"count": n, "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if n > 1 else None, "min": float(v.min()),
            "p25": float(q[0]), "p50": float(q[1]), "p75": float(q[2]), "max": float(v.max())}


@dataclass
class NegativesTally:
    """What a run keeps of its blocks: every positive, negative and difference score (for exact
    quantiles), the filters' counts, and the pairs left short."""

    positive: list[np.ndarray] = field(default_factory=list)
    negative: list[np.ndarray] = field(default_factory=list)
    difference: list[np.ndarray] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=dict)
    window: int = 0
    rows: int = 0
    pairs: int = 0
    negatives: int = 0
    short_pairs: int = 0
    short_queries: list[np.ndarray] = field(default_factory=list)

    def add(self, block: Any) -> None:
        stats = block.stats
        self.positive.append(stats["positive"])
        self.negative.append(stats["negative"])
        self.difference.append(stats["difference"])
        for k, n in stats["removed"].items():
            self.removed[k] = self.removed.get(k, 0) + n
        self.window += stats["window"]
        self.rows += len(block)
        self.pairs += stats["positive"].size
        self.negatives += stats["chosen"]
        self.short_pairs += stats["short_pairs"]
        self.short_queries.append(stats["short_queries"])

    def scores(self) -> dict[str, dict[str, float | int | None]]:
        return {k: distribution(np.concatenate(parts) if parts else np.empty(0))
                for k, parts in (("positive", self.positive), ("negative", self.negative),
                                 ("difference", self.difference))}

    def short(self) -> dict[str, object]:
        queries = np.unique(np.concatenate(self.short_queries)) if self.short_queries else []
        return {"pairs": self.short_pairs, "queries": len(queries),
                "named": [int(q) for q in queries[:NAMED_SHORT]]}


def render(out: IO[str], summary: dict[str, Any], num_negatives: int) -> None:
    """The report: counts, the score table as sentence-transformers prints it, what each
    filter removed, params."""
    from rich.text import Text

    from .report import fitted_tables, fmt, key_values, output_width, params_line, write

    width = output_width(out)
    head = key_values([(key, summary[key]) for key in ("queries", "pairs", "rows", "negatives",
                                                        "range_max")]
                      + [(f"pairs with < {num_negatives} negatives", summary["short"]["pairs"])],
                      width)
    parts: list[Any] = [Text("triplet-loss mine-negatives", style="italic"), head]
    scores = summary["scores"]
    rows = [[key, *(fmt(scores[w][key]) for w in ("positive", "negative", "difference"))]
            for key in SCORE_KEYS]
    parts += fitted_tables("scores", ["", "positive", "negative", "difference"], rows, width)
    candidates = summary["candidates"]
    window = max(candidates["window"], 1)
    rows = [[k, fmt(n), f"{n / window:.2%}"] for k, n in candidates.items() if k != "window"]
    parts += fitted_tables(f"of {candidates['window']} candidates in the pairs' windows",
                           ["", "count", "share"], rows, width)
    parts.append(params_line(summary))
    write(out, width, parts)
