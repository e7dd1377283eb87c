"""Plain-language readings of the toolkit's measures, shared by the CLI, the report and its scorecard.

Each function turns one number (with its uncertainty) into a sentence and a lean: ``"reducible"``,
``"emergent"`` or ``None`` (inconclusive, or no bearing on the question). The thresholds are
judgement calls, stated once, in ``THRESHOLDS``, so that every place that reads a number (the CLI,
the report, the scaling analysis) reads it the same way; pass another ``Thresholds`` to change them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    # circuits: the smallest share of edges whose top-k circuit keeps the target share of the behaviour; at most
    # `small_circuit` (its CI's high end) it reduces to a few parts, at least `large_circuit` (low end) it needs
    # most of the model; random circuits of that size must stay below the target
    small_circuit: float = 0.05
    large_circuit: float = 0.5
    # features: the top-k features of a dictionary (every other ablated) that keep the target share of the behaviour;
    # at most `few_features` (the CI's high end) it is carried by a handful, at least `many_features` (low end) by
    # thousands; an error term carrying at least `error_carries` of the site's effect says the features do not
    few_features: float = 10
    many_features: float = 1000
    error_carries: float = 0.5
    # erasure: how many standard deviations of random-subspace erasures the concept's erasure must differ by
    erasure_sds: float = 3.0
    # scaling: a jump model must beat the smooth one by this much in AIC and BIC ...
    jump_evidence: float = 2.0
    jump_min_rise: float = 0.2  # ... rise at least this share of the chance-to-best range ...
    jump_max_width_share: float = 1.0  # ... within this share of the sizes' range (log size, 10-90% of the rise)
    at_chance: float = 0.1  # a normalised score that never leaves +-this of chance
    trend_sds: float = 2.0  # a curve whose line rises less than this many standard errors is flat
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
    r2: float,
    ci_low: float = math.nan,
    ci_high: float = math.nan,
    t: Thresholds = THRESHOLDS,
    *,
    redundant: bool = False,
) -> str | None:
    """``redundant``: the interaction pattern says the parts back each other up, which also makes R^2 low
    (the singles miss the joint effect) without the behaviour emerging from the parts' interaction."""
    text = additivity_reading(r2, ci_low, ci_high, t)
    if text.startswith(("undefined", "inconclusive")):
        return None
    if r2 >= t.additive:
        return "reducible"
    return "emergent" if r2 < t.interacting and not redundant else None


def additivity_case(
    r2: float, ci_low: float, ci_high: float, pattern: str | None, t: Thresholds = THRESHOLDS
) -> str | None:
    """The zoo case an additivity R^2 matches: additive when it is high; when it is low, R^2 alone cannot tell
    parts needed together from redundant ones, so the interaction pattern (``interaction_pattern``) says."""
    text = additivity_reading(r2, ci_low, ci_high, t)
    if text.startswith(("undefined", "inconclusive")):
        return None
    if r2 >= t.additive:
        return "additive"
    return pattern if pattern in ("conjunctive", "redundant") else None


def interaction_ratio(joint: float, sum_of_singles: float, largest_single: float) -> float:
    """How far the top components' joint effect is from the sum of their single effects, relative to the largest
    effect in play: |joint - sum| / max(|joint|, largest |single|), capped at 1.

    0 when they add up; 1 both when the parts are needed together (an AND: each single effect already equals
    the joint one, so the sum overshoots it by a whole effect) and when they back each other up (an OR: the
    singles are 0, the joint effect is not). A share of |sum| + |gap| would read the AND as a third
    interaction, and tell it from an additive pair worse than from an OR."""
    gap = abs(joint - sum_of_singles)
    scale = max(abs(joint), abs(largest_single))
    return min(gap / scale, 1.0) if scale > 0 else math.nan


# The planted zoo's cases (``probes validate``): every reading names the one its numbers match best.
ZOO_CASES = {
    "additive": "the sum of separable parts",
    "conjunctive": "parts needed together (an AND)",
    "redundant": "parts that each suffice (an OR)",
    "readable and used": "a linear feature the behaviour rests on",
    "readable but unused": "a linear feature the output ignores",
    "mirage": "a jump only under an all-or-nothing metric",
    "jump": "a jump under every metric",
    "smooth": "growth with scale under every metric",
    "at chance": "no capability at any size",
}


def interaction_pattern(
    joint: float, sum_of_singles: float, largest_single: float, t: Thresholds = THRESHOLDS, *, noisy: bool = False
) -> tuple[str, str | None, str | None]:
    """The top components' joint effect against their single effects: (reading, lean, zoo case it matches).

    Additive parts lean reducible; parts needed together (the joint effect smaller than the singles' sum: each
    removal already costs most of it) lean emergent; redundant parts (the joint effect larger than the sum:
    each part alone suffices, so single ablations understate them) lean neither way: the behaviour rests on
    parts, any one of which carries it, and calling them irrelevant because their singles are small is wrong.

    ``noisy``: the study's additivity interval is too wide to read (effects near the noise level); then the
    pattern is reported but neither leans nor matches a case: a gap between noisy numbers is noise too."""
    ratio = interaction_ratio(joint, sum_of_singles, largest_single)
    if not _finite(ratio):
        return "undefined: no joint effect to explain", None, None
    if noisy:
        return (
            f"inconclusive: joint {joint:+.3f} vs sum of singles {sum_of_singles:+.3f} ({ratio:.0%} of the largest "
            "effect), but the effects are near the noise level (see the additivity interval); use more examples",
            None,
            None,
        )
    gap = f"joint {joint:+.3f} vs sum of singles {sum_of_singles:+.3f}"
    if ratio < t.adds_up:
        return f"the single effects add up to the joint effect ({gap}): separable parts", "reducible", "additive"
    # super-additive: the joint effect exceeds the singles' sum in the same direction (or the singles are ~0)
    redundant = abs(joint) > abs(sum_of_singles) and (
        joint * sum_of_singles >= 0 or abs(sum_of_singles) < t.adds_up * abs(joint)
    )
    if redundant:
        return (
            f"redundant parts ({gap}): removing any one costs little because another covers for it; together "
            f"they carry the behaviour, so small single effects do not mean irrelevant parts ({ratio:.0%} "
            "of the largest effect is interaction)",
            None,
            "redundant",
        )
    case = "conjunctive" if ratio >= (t.adds_up + t.lives_in_interaction) / 2 else "additive"
    if ratio < t.lives_in_interaction:
        return (
            f"the parts interact ({gap}): together they do less than their single effects add up to, "
            f"by {ratio:.0%} of the largest effect",
            None,
            case,
        )
    return (
        f"the parts are needed together ({gap}): removing one already costs most of what removing all does; "
        f"the behaviour lives in interaction ({ratio:.0%} of the largest effect)",
        "emergent",
        case,
    )


def circuit_reading(
    share: float, low: float, high: float, random: float, target: float, t: Thresholds = THRESHOLDS
) -> tuple[str, str | None]:
    """The smallest share of edges whose top circuit keeps ``target`` of the behaviour (with its CI over examples),
    and the faithfulness of random circuits of that size."""
    if not _finite(share):
        return "undefined: the behaviour does not change when every edge is removed", None
    if _finite(random) and random >= target:
        return (
            f"random circuits of that size keep {random:.0%} too: the behaviour is spread thin, no circuit stands out",
            None,
        )
    if _finite(high) and high <= t.small_circuit:
        return f"a small circuit ({share:.1%} of the edges) keeps {target:.0%}: the behaviour reduces to a few parts", (
            "reducible"
        )
    if _finite(low) and low >= t.large_circuit:
        return (
            f"even the best circuits need {share:.0%} of the edges: the behaviour needs most of the model",
            "emergent",
        )
    return f"a circuit of {share:.1%} of the edges keeps {target:.0%}: neither small nor most of the model", None


def feature_reading(
    count: float,
    low: float,
    high: float,
    error: float,
    error_low: float,
    random: float,
    target: float,
    t: Thresholds = THRESHOLDS,
) -> tuple[str, str | None]:
    """How many of a dictionary's features (top-k by attribution, every other ablated) keep ``target`` of the
    behaviour, with its CI over examples; the error term's share of the site's effect (and its CI's low end); the
    share random feature sets of that size keep."""
    if _finite(error_low) and error_low >= t.error_carries:
        return (
            f"the dictionary's error term carries {error:.0%} of the site's effect: what its features miss matters",
            "emergent",
        )
    if not _finite(count):
        return "no set of features measured keeps the behaviour: the features do not carry it", None
    if _finite(random) and random >= target:
        return f"random sets of {count:.0f} features keep {random:.0%} too: no feature stands out", None
    if _finite(high) and high <= t.few_features:
        return f"a handful of features ({count:.0f}) keeps {target:.0%}: the behaviour reduces to a few features", (
            "reducible"
        )
    if _finite(low) and low >= t.many_features:
        return f"it takes {count:.0f} features to keep {target:.0%}: the behaviour is spread over thousands", "emergent"
    return f"{count:.0f} features keep {target:.0%}: neither a handful nor thousands", None


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
    z = erasure_z(change, random_mean, random_sd)
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


def erasure_z(change: float, random_mean: float, random_sd: float) -> float:
    """How many standard deviations of random-subspace erasures the concept's erasure differs by."""
    spread = random_sd if _finite(random_sd) and random_sd > 0 else abs(random_mean) or 1e-12
    return (change - random_mean) / spread


def erasure_case(
    change: float, random_mean: float, random_sd: float, readable: bool, t: Thresholds = THRESHOLDS
) -> str | None:
    """The zoo case an erasure matches: a readable feature the behaviour uses, one it ignores, or neither."""
    if not _finite(change, random_mean) or not readable:
        return None
    used = abs(erasure_z(change, random_mean, random_sd)) >= t.erasure_sds
    return "readable and used" if used else "readable but unused"


def scale_case(verdicts: list[tuple[str, str, bool]]) -> str | None:
    """The zoo case a task's verdicts under several metrics match (see ``scale_reading``)."""
    if verdicts and all(at_chance or v == "flat" for _, v, at_chance in verdicts):
        return "at chance"
    kinds = {v for _, v, _ in verdicts}
    partial = {v for m, v, _ in verdicts if not all_or_nothing(m)}
    if "mirage" in kinds:
        return "mirage"
    if "jump" in partial and "smooth" not in partial:
        return "jump"
    if "smooth" in kinds and "jump" not in kinds:
        return "smooth"
    return None


def scale_reading(verdicts: list[tuple[str, str, bool]]) -> tuple[str, str | None]:
    """One task's verdicts under several metrics, as (metric, verdict, stays at chance): does a jump survive the
    partial-credit metrics (per-token accuracy, edit distance, log-probability, Brier)?"""
    if verdicts and all(at_chance for _, _, at_chance in verdicts):
        return "stays at chance at every size: no capability here to scale", None
    if verdicts and all(v == "flat" for _, v, _ in verdicts):
        return "does not move with scale under any metric, beyond its errors", None
    if verdicts and all(v in ("flat", "declines") for _, v, _ in verdicts):
        return "gets worse with scale (inverse scaling) under " + ", ".join(
            m for m, v, _ in verdicts if v == "declines"
        ), None
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


def overall_reading(leans: list[str | None], matches: Sequence[str | None] = ()) -> str:
    """One line from the leans of a scorecard's evidence (and the zoo cases it matches, where none leans)."""
    votes = [lean for lean in leans if lean]
    if not votes:
        cases = list(dict.fromkeys(m for m in matches if m))
        if cases:  # measured clearly, but in between the thresholds: say what it resembles, not "inconclusive"
            return "in between: no measure leans past its threshold either way; closest planted case: " + ", ".join(
                cases
            )
        return "not enough evidence either way: the measures here are inconclusive"
    r, e = votes.count("reducible"), votes.count("emergent")
    if r and not e:
        return "reduces: the evidence here points to local, linearly readable, separable parts"
    if e and not r:
        return "emerges: the evidence here points to interaction or scale rather than separable parts"
    return f"mixed: {r} measure(s) point to separable parts, {e} to interaction or scale"
