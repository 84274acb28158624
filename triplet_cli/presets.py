"""Presets, and resolving defaults, a preset, a triplets file's settings and flags into Params.

A preset only sets defaults (the numbers each framework gives, SPEC section 6); an explicit flag
wins, and the result records where each value came from ("flag", "preset NAME", "triplets
file" or "default").
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError, UsageError
from .params import COMMAND_OPTIONS, Params, checked, defaults, flag


@dataclass(frozen=True)
class Preset:
    """A framework's defaults for `compute` and/or `mine` (None: the framework has no such op)."""

    name: str
    follows: str
    compute: dict[str, object] | None = None
    mine: dict[str, object] | None = None
    # The margin a soft margin uses when the margin flag is not given: TF Addons and
    # sentence-transformers drop the margin in their soft losses (0); pytorch-metric-learning's
    # smooth_loss keeps it inside the softplus (None: keep the preset's margin).
    soft_margin_margin: float | None = 0.0
    evaluate: dict[str, object] | None = None  # retrieval metrics as the framework computes them
    mine_negatives: dict[str, object] | None = None  # hard negatives for (query, positive) pairs
    # The norm floor of the framework's cosine, for --distance cosine chosen over the preset's
    # p-norm (torch: TripletMarginWithDistanceLoss with 1 - F.cosine_similarity, eps 1e-8).
    cosine_eps: float | None = None
    # The framework's loss is a hinge once it is given a margin (TF Similarity's TripletLoss:
    # margin=None is its soft margin): --margin without --soft-margin switches the preset's off.
    margin_means_hinge: bool = False
    swap: bool = False  # the framework's loss has PyTorch's swap option

    def settings(self) -> dict[str, dict[str, object] | None]:
        """What it sets, by command (None: the framework has no such operation)."""
        return {c: getattr(self, c.replace("-", "_")) for c in COMMAND_OPTIONS}


_TORCH_NORM = {"distance": "minkowski", "p": 2.0, "eps": 1e-6}

PRESETS: dict[str, Preset] = {
    p.name: p for p in [
        Preset("torch", "PyTorch nn.TripletMarginLoss / F.triplet_margin_loss",
               {**_TORCH_NORM, "eps_placement": "difference", "margin": 1.0, "reduction": "mean"},
               cosine_eps=1e-8, swap=True),
        Preset("mlx", "MLX >= 0.32 nn.losses.triplet_loss",
               {**_TORCH_NORM, "eps_placement": "root", "margin": 1.0, "reduction": "none"}),
        Preset("mlx-legacy", "MLX <= 0.31 nn.losses.triplet_loss (signed power, square root)",
               {**_TORCH_NORM, "eps_placement": "legacy-root", "margin": 1.0,
                "reduction": "none"}),
        Preset("tf-similarity", "TF Similarity losses.TripletLoss (v0.17+ defaults)",
               mine={"distance": "cosine", "positive_strategy": "hard", "strategy": "semi-hard",
                     "semi_hard_threshold": "hardest-positive", "semi_hard_fallback": "easiest",
                     "soft_margin": True, "margin": 0.0, "reduction": "mean"},
               # evaluate_retrieval: its first lookup dropped, MapAtK divided by R.
               evaluate={"distance": "cosine", "self_match": "first", "map_divisor": "r",
                         "recall": "hit"},
               margin_means_hinge=True),
        Preset("tf-addons", "TF Addons losses.triplet_semihard_loss (v0.11+, L2)",
               mine={"distance": "euclidean", "positive_strategy": "all",
                     "strategy": "semi-hard", "semi_hard_fallback": "easiest", "margin": 1.0,
                     "reduction": "mean"}),
        Preset("pytorch-metric-learning",
               "pytorch-metric-learning TripletMarginLoss (LpDistance, normalised, AvgNonZero)",
               {"distance": "euclidean", "normalize": True, "margin": 0.05,
                "reduction": "mean-nonzero"},
               {"distance": "euclidean", "normalize": True, "margin": 0.05,
                "positive_strategy": "all", "strategy": "all", "reduction": "mean-nonzero"},
               soft_margin_margin=None, swap=True,
               # AccuracyCalculator(k="max_bin_count") with CustomKNN(LpDistance(
               # normalize_embeddings=False)): own row dropped by index, lone queries excluded.
               evaluate={"distance": "euclidean", "normalize": False, "k": "max-bin-count",
                         "self_match": "index", "map_divisor": "r", "recall": "hit"}),
        Preset("sentence-transformers",
               "sentence-transformers TripletLoss (Euclidean, margin 5) / BatchHardTripletLoss",
               {"distance": "euclidean", "margin": 5.0, "reduction": "mean"},
               {"distance": "euclidean", "margin": 5.0, "positive_strategy": "hard",
                "strategy": "hard", "reduction": "mean"},
               # InformationRetrievalEvaluator: cosine, MAP@k over min(k, R), recall as a
               # fraction of R, accuracy@k (= our hit recall) at 1, 3, 5, 10.
               evaluate={"distance": "cosine", "map_divisor": "min-k-r", "recall": "fraction",
                         "at": "1,3,5,10"},
               # util.mine_hard_negatives: cosine of normalised rows (normalising does not change
               # a cosine), top 3, range_max derived, margins against the hardest positive.
               mine_negatives={"similarity": "cosine", "num_negatives": 3, "range_min": 0,
                               "sampling": "top", "margin_positive": "hardest",
                               "output_format": "triplet"}),
    ]
}


def _meant(preset: object) -> str:
    """' (did you mean ...?)' for a preset name close to one (pytorch, pml, sbert), or ''."""
    import difflib

    typed = str(preset).lower()
    short = {"pml": "pytorch-metric-learning", "sbert": "sentence-transformers",
             "tfa": "tf-addons", "tfsim": "tf-similarity", "pytorch": "torch"}
    meant = short.get(typed) or next(iter(difflib.get_close_matches(typed, PRESETS, 1, 0.6)), None)
    return f" (did you mean {meant!r}?)" if meant else ""


FROM_FILE = "triplets file"  # the source of a setting recorded in a --triplets .parquet/.arrow


def resolve(command: str, preset: str | None, explicit: dict[str, object], *,
            recorded: dict[str, object] | None = None) -> Params:
    """Merge built-in defaults, a preset and explicit flags (None means 'not given').

    `recorded`: settings a triplets file records (how its rows were mined), the defaults when
    no preset is given (a preset replaces them: it asks for one framework's number); flags win.
    """
    values = defaults(command)
    sources = dict.fromkeys(values, "default")
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}"
                             + _meant(preset))
        overrides = PRESETS[preset].settings()[command]
        if overrides is None:
            have = [n for n, p in PRESETS.items() if p.settings()[command] is not None]
            raise UsageError(f"preset '{preset}' has no {command} operation; presets for "
                             f"{command}: {', '.join(have)}")
        values.update(overrides)
        sources.update(dict.fromkeys(overrides, f"preset {preset}"))
    elif recorded:
        soft = explicit.get("soft_margin")
        # The recorded margin belongs to the recorded loss: a flag switching between hinge and
        # soft margin takes that loss's default margin instead.
        taken = {k: v for k, v in recorded.items() if k in values and not (
            k == "margin" and soft is not None and soft != recorded.get("soft_margin", False))}
        values.update(taken)
        sources.update(dict.fromkeys(taken, FROM_FILE))
    given = {k: v for k, v in explicit.items() if v is not None}
    unknown = set(given) - set(values)
    if unknown:
        raise UsageError(f"{command} takes no option {', '.join(sorted(unknown))}")
    given = {k: checked(k, v) for k, v in given.items()}
    values.update(given)
    sources.update(dict.fromkeys(given, "flag"))
    if (preset and PRESETS[preset].margin_means_hinge and "margin" in given
            and "soft_margin" not in given and values.get("soft_margin")):
        values["soft_margin"] = False
        sources["soft_margin"] = f"implied by --margin (preset {preset}: a margin is a hinge)"
    soft_margin = PRESETS[preset].soft_margin_margin if preset else 0.0
    if (values.get("soft_margin") and sources["margin"] not in ("flag", FROM_FILE)
            and soft_margin is not None and values["margin"] != soft_margin):
        # Soft margin means margin 0 unless asked (Hermans et al. 2017, TF Similarity, TF Addons).
        values["margin"] = soft_margin
        sources["margin"] = "default with --soft-margin"
    dkey = "distance" if "distance" in values else "similarity"  # (mine-negatives' name)
    if preset and dkey in given and values[dkey] in ("cosine", "dot"):
        _for_explicit_distance(PRESETS[preset], str(values[dkey]), values, sources)
    if "p" in given and dkey not in given and (values[dkey] == "euclidean"
                                               or sources[dkey] == "default"):
        values[dkey] = "minkowski"  # --p alone means the p-norm the user asked for
        sources[dkey] = "implied by --p"
    unused_p = values.get("p") != defaults(command).get("p") and sources.get("p") == FROM_FILE
    if values[dkey] != "minkowski" and unused_p:  # the p of the file's minkowski, not of ours
        values["p"], sources["p"] = defaults(command)["p"], "default"
    if "p" in given and values[dkey] != "minkowski":
        raise UsageError(f"--p applies to the minkowski distance, not {values[dkey]} "
                         f"(drop --p, or use --{dkey} minkowski)")
    notes = ()
    if preset and given.get("swap") and not PRESETS[preset].swap:
        notes = (f"--swap is not part of preset {preset} (its framework has no swap): the loss "
                 "takes PyTorch's swap, min(d(a, n), d(p, n)), on top of its settings",)
    return Params(command, values, sources, notes)


def _for_explicit_distance(preset: Preset, distance: str, values: dict[str, object],
                           sources: dict[str, str]) -> None:
    """A distance flag wins over a preset's p-norm: the preset's eps placement (a p-norm's) gives
    way, and its eps becomes the framework's cosine norm floor where it has one."""
    given = f"preset {preset.name}"
    if sources.get("eps_placement") == given and values["eps_placement"] != "none":
        values["eps_placement"], sources["eps_placement"] = "none", f"{given} ({distance})"
    if preset.cosine_eps is not None and distance == "cosine" and sources.get("eps") == given:
        values["eps"], sources["eps"] = preset.cosine_eps, f"{given} (cosine)"


# Settings a triplets file records that define its losses: compute's defaults for it.
RECORDED_KEYS = ("distance", "p", "eps", "eps_placement", "normalize", "margin", "soft_margin",
                 "swap", "reduction")


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def with_recorded(params: Params, record: dict, tname: str, preset: str | None,
                   options: dict[str, object]) -> tuple[Params, list[str]]:
    """The settings with those a triplets file records as defaults (flags win; a preset
    replaces them), and a warning naming every setting that contradicts the file."""
    recorded = record["params"]
    given = {k for k, v in options.items() if v is not None}
    usable = {}
    for key in (k for k in RECORDED_KEYS if k in recorded):
        try:
            usable[key] = checked(key, recorded[key])
        except UsageError:  # a value this version cannot use
            if key not in given and preset is None:
                raise InputError(f"records {key} = {recorded[key]!r}, which this version cannot "
                                 f"use; choose one with {flag(key)}", tname) from None
    if preset is None:
        try:
            params = resolve("compute", None, options, recorded=usable)
        except UsageError as e:
            raise UsageError(f"{e.message} (with the settings {tname} records)", e.path) from None
    v, sources = params.values, params.sources
    differ = [k for k in usable if sources[k] != FROM_FILE and v[k] != usable[k]]
    if not differ:
        return params, []
    was = ", ".join(f"{k}={_shown(usable[k])}" for k in differ)
    now = ", ".join(f"{k}={_shown(v[k])} ({sources[k]})" for k in differ)
    return params, [f"{tname} records {was} (the settings its rows were computed with); "
                    f"scoring with {now} instead"]
