"""Plain-language readings of the toolkit's measures, shared by the CLI, the report and its scorecard.

Each function turns one number (with its uncertainty) into a sentence and a lean: ``"reducible"``,
``"emergent"`` or ``None`` (inconclusive, or no bearing on the question). The thresholds are
judgement calls, stated once, in ``THRESHOLDS``, so that every place that reads a number (the CLI,
the report, the scaling analysis) reads it the same way; pass another ``Thresholds`` to change them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .scale_table import all_or_nothing


@dataclass(frozen=True)
class Thresholds:
    """Every threshold a reading or a verdict uses."""

    # linear decodability: the CI's low end must clear the majority class by this much ...
    above_majority: float = 0.05
    # ... the accuracy the random-weights model's by this much, and selectivity (task - control task) this
    beyond_random_init: float = 0.05
    selective: float = 0.1
    mdl_compresses: float = 1.5  # uniform / online codelength: the features help transmit the labels
    concept_readable: float = 0.05  # a concept probe above the majority class by this much (before erasure)
    # additivity R^2: a CI wider than this is inconclusive; above `additive` separable, below `interacting` not
    wide_ci: float = 0.5
    additive: float = 0.9
    interacting: float = 0.5
    # interaction share of the top components' joint effect
    adds_up: float = 0.2
    lives_in_interaction: float = 0.5
    # erasure: how many standard deviations of random-subspace erasures the concept's erasure must differ by
    erasure_sds: float = 3.0
    # scaling: a jump model must beat the smooth one by this much in AIC and BIC ...
    jump_evidence: float = 2.0
    jump_min_rise: float = 0.2  # ... rise at least this share of the chance-to-best range ...
    jump_max_width_share: float = 1.0  # ... within this share of the sizes' range (log size, 10-90% of the rise)
    at_chance: float = 0.1  # a normalised score that never leaves +-this of chance
    irregular_drop_sds: float = 3.0  # a fall with size beyond this many combined errors ...
    irregular_p: float = 1e-3  # ... where no curve fits at this p-value: "irregular"


THRESHOLDS = Thresholds()


def selectivity_reading(selectivity: float, t: Thresholds = THRESHOLDS) -> str:
    return (
        "high: the probe reads the representation, not word identity"
        if selectivity > t.selective
        else "low: a probe this flexible could learn the labels from word identity"
    )


def compression_reading(compression: float, t: Thresholds = THRESHOLDS) -> str:
    return (
        "the labels are cheap to transmit given the features"
        if compression > t.mdl_compresses
        else "the features barely help compress the labels"
    )


def concept_readable(accuracy: float, majority: float, t: Thresholds = THRESHOLDS) -> bool:
    return accuracy > majority + t.concept_readable


def _finite(*xs: float | None) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def additivity_reading(
    r2: float, ci_low: float = math.nan, ci_high: float = math.nan, t: Thresholds = THRESHOLDS
) -> str:
    """An additivity R^2 (joint effects of subsets vs the sum of their single effects) and its CI."""
    if not _finite(r2):
        return "undefined: the sampled subsets' joint effects do not vary"
    if _finite(ci_low, ci_high) and ci_high - ci_low > t.wide_ci:
        return "inconclusive: the CI is wide, the effects are near the noise level; use more examples"
    if r2 >= t.additive:
        return "the behaviour reduces to separable parts"
    if r2 >= t.interacting:
        return "mostly additive, with real interaction"
    return "the behaviour lives in the parts' interaction"


def additivity_lean(
    r2: float, ci_low: float = math.nan, ci_high: float = math.nan, t: Thresholds = THRESHOLDS
) -> str | None:
    text = additivity_reading(r2, ci_low, ci_high, t)
    if text.startswith(("undefined", "inconclusive")):
        return None
    return "reducible" if r2 >= t.additive else "emergent" if r2 < t.interacting else None


def non_additive_share(joint: float, sum_of_singles: float) -> float:
    """How much of the top components' joint effect the sum of their single effects misses:
    |joint - sum| / (|sum| + |joint - sum|), 0 when they add up, 1 when the singles explain nothing."""
    gap = abs(joint - sum_of_singles)
    total = abs(sum_of_singles) + gap
    return gap / total if total > 0 else math.nan


def interaction_reading(share: float, t: Thresholds = THRESHOLDS) -> tuple[str, str | None]:
    if not _finite(share):
        return "undefined: no joint effect to explain", None
    if share < t.adds_up:
        return f"the single effects add up to the joint effect (misses {share:.0%})", "reducible"
    if share < t.lives_in_interaction:
        return f"the single effects miss {share:.0%} of the joint effect: real interaction", None
    return f"the single effects miss {share:.0%} of the joint effect: it lives in interaction", "emergent"


def decodability_reading(
    accuracy: float,
    ci_low: float,
    majority: float,
    random_init: float | None,
    selectivity: float | None,
    t: Thresholds = THRESHOLDS,
) -> tuple[str, str | None]:
    """Best-layer probe accuracy against the majority class, the random-weights model and the control task."""
    if not _finite(accuracy, majority):
        return "no probe accuracy", None
    above = _finite(ci_low) and ci_low > majority + t.above_majority
    if not above:
        return f"not linearly readable beyond the majority class ({accuracy:.2f} vs {majority:.2f})", None
    learned = random_init is None or not _finite(random_init) or accuracy - random_init > t.beyond_random_init
    selective = selectivity is None or not _finite(selectivity) or selectivity > t.selective
    if learned and selective:
        return (
            f"linearly readable ({accuracy:.2f}, majority {majority:.2f})"
            + (f", beyond the random-weights model ({random_init:.2f})" if _finite(random_init) else "")
            + (f", selective ({selectivity:+.2f} over the control task)" if _finite(selectivity) else "")
        ), "reducible"
    if not learned:
        return (
            f"readable ({accuracy:.2f}) but about as well from random weights ({random_init:.2f}): "
            "the probe reads the input, not what training put there"
        ), None
    return (
        f"readable ({accuracy:.2f}) but barely selective ({selectivity:+.2f}): the probe may memorise word types",
        None,
    )


def erasure_reading(
    change: float, random_mean: float, random_sd: float, t: Thresholds = THRESHOLDS
) -> tuple[str, str | None]:
    """Behaviour change after erasing a concept (LEACE) against erasing random subspaces of the same rank."""
    if not _finite(change, random_mean):
        return "no erasure result", None
    spread = random_sd if _finite(random_sd) and random_sd > 0 else abs(random_mean) or 1e-12
    z = (change - random_mean) / spread
    if abs(z) >= t.erasure_sds:
        return (
            f"erasing the concept changes the behaviour by {change:+.3f} against {random_mean:+.3f} for random "
            "subspaces: the behaviour uses the linearly readable feature"
        ), "reducible"
    # Not evidence of emergence: the behaviour may rest on another readable feature, or on a nonlinear one.
    return (
        f"erasing the concept changes the behaviour by {change:+.3f}, like random subspaces ({random_mean:+.3f}): "
        "the behaviour does not rest on that linear feature"
    ), None


def scale_reading(verdicts: list[tuple[str, str, bool]]) -> tuple[str, str | None]:
    """One task's verdicts under several metrics, as (metric, verdict, stays at chance): does a jump survive the
    partial-credit metrics (per-token accuracy, edit distance, log-probability, Brier)?"""
    if verdicts and all(at_chance for _, _, at_chance in verdicts):
        return "stays at chance at every size: no capability here to scale", None
    named = lambda kind, partial=None: [
        m for m, v, _ in verdicts if v == kind and (partial is None or partial != all_or_nothing(m))
    ]
    unclear = [f"{m} ({v})" for m, v, _ in verdicts if v in ("irregular", "not enough sizes")]
    note = f"; inconclusive under {', '.join(unclear)}" if unclear else ""
    jumps, smooth = named("jump", partial=True), named("smooth", partial=True)
    if named("mirage"):
        return (
            f"a mirage: {', '.join(named('mirage'))} jumps, but {', '.join(smooth) or 'a partial-credit metric'} "
            f"of the same outputs grows smoothly{note}"
        ), "reducible"
    if jumps and not smooth:
        return f"a jump that survives the partial-credit metrics ({', '.join(jumps)}){note}", "emergent"
    if jumps:
        return f"jumps under {', '.join(jumps)} but grows smoothly under {', '.join(smooth)}{note}", None
    if smooth and not named("jump"):
        return f"grows smoothly with scale under {', '.join(smooth)}{note}", "reducible"
    if named("jump"):
        return (
            f"jumps under {', '.join(named('jump'))} (all or nothing), which no partial-credit metric confirms{note}"
        ), None
    return "no verdict that speaks either way: " + ", ".join(f"{m} {v}" for m, v, _ in verdicts), None


def overall_reading(leans: list[str | None]) -> str:
    """One line from the leans of a scorecard's evidence."""
    votes = [lean for lean in leans if lean]
    if not votes:
        return "not enough evidence either way: the measures here are inconclusive"
    r, e = votes.count("reducible"), votes.count("emergent")
    if r and not e:
        return "reduces: the evidence here points to local, linearly readable, separable parts"
    if e and not r:
        return "emerges: the evidence here points to interaction or scale rather than separable parts"
    return f"mixed: {r} measure(s) point to separable parts, {e} to interaction or scale"
