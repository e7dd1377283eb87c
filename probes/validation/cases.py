"""The planted cases every verdict is checked on, each measured and read through the scorecard.

    row = measure("conjunctive", model, ValidateSpec())     # planted truth beside the reading, and whether it matches

The mechanism cases are the hand-built models of ``probes.validation.zoo`` (``model(case)`` hands each one in,
loaded like any model); the ablation study, amnesic probing and the scorecard run on them unchanged. The scale
cases are families of planted outputs (per-token correctness that grows with size as stated), scored and
analysed as ``probes scale`` does. A verdict is right when the scorecard's reading matches the case planted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from analysis.mirage import aggregate, chance_levels, score_examples
from analysis.results import tidy
from analysis.scaling import analyse
from analysis.verdicts import Card, ablation_card, scale_card
from probes.causal.behaviours import Behaviour, Induction
from probes.causal.study import ablation_study, amnesic_rows
from probes.core.model import LoadedModel
from probes.pipelines.specs import AblationSettings, ValidateSpec
from probes.scale.induction import INDUCTION_LENGTH
from probes.validation import zoo

Models = Callable[[str], LoadedModel]  # a zoo case's model, by case name


MECHANISMS = ("additive", "conjunctive", "redundant", "induction")
EXPECTED = {"induction": "conjunctive"}  # the case a reading must match, where it is not the case's own name
ERASURES = {"readable and used": "a", "readable but unused": "c"}
# Per-token accuracy against log10 size for the scale cases (alphabet of 10: chance 0.1), and answer length.
SIZES = np.logspace(6, 9, 10)
SCALE_CASES = {
    "mirage": (lambda x: 1 - 0.9 * 10 ** (-0.35 * (x - 6)), 5),  # smooth per token; exact match of 5 jumps
    "jump": (lambda x: 0.1 + 0.85 / (1 + np.exp(-(x - 7.5) / 0.06)), 5),  # a sharp rise under every metric
    "smooth": (lambda x: 0.1 + 0.25 * (x - 6), 1),  # one-token answers growing steadily
    "at chance": (lambda x: np.full_like(x, 0.1), 5),
}
PLANTED = {
    **{case: zoo.PLANTED[case] for case in MECHANISMS if case in zoo.PLANTED},
    "induction": "trained here: an induction head (L1H0) that needs what a block-0 head (L0H0) wrote "
    "(K-composition): the two together (conjunctive)",
    "readable and used": "the answer reads feature a from the residual stream",
    "readable but unused": "feature c is in the residual stream; nothing reads it",
    "mirage": "per-token accuracy grows as a power law; exact match of 5 tokens looks like a jump",
    "jump": "per-token accuracy rises from chance to 0.95 within a tenth of a decade",
    "smooth": "accuracy grows linearly in log size",
    "at chance": "every size answers at chance",
}
CASES = (*MECHANISMS, *ERASURES, *SCALE_CASES)


def measure(case: str, model: Models, spec: ValidateSpec) -> dict:
    """One case: its planted truth, what was measured, the reading, the zoo case it matches and whether right."""
    if case in MECHANISMS:
        card, measured = _mechanism(model(case), case, spec)
    elif case in ERASURES:
        card, measured = _erasure(model("decision"), case, spec)
    else:
        card, measured = _scale(case, spec)
    # The reading the case is about (interaction, erasure, scale); every other reading that names a case must agree.
    about = ("interaction", "amnesic", "capability")
    evidence = next(e for e in card.evidence if e.measure.startswith(about))
    expected = EXPECTED.get(case, case)
    named = {e.measure: e.matches for e in card.evidence if e.matches is not None}
    return {
        "case": case,
        "planted": PLANTED[case],
        "measured": measured,
        "reading": evidence.reading,
        "overall": card.overall,
        "matches": evidence.matches or "none",
        "right": evidence.matches == expected and all(m == expected for m in named.values()),
    }


def _mechanism(lm: LoadedModel, case: str, spec: ValidateSpec) -> tuple[Card, str]:
    if case == "induction":  # a trained model: mean ablation, as on any real one; heads and the (zero) MLPs
        behaviour: Behaviour = Induction(64, length=INDUCTION_LENGTH, seed=spec.seed + 1)
        settings = AblationSettings(kind="mean", components="heads+mlps", top_k=4, permutations=16, seed=spec.seed)
        first, second = "L0H0", "L1H0"
    else:  # zero ablation: the planted writes are removed, not replaced by their mean (a mean keeps half an AND)
        behaviour, first, second = zoo.behaviour(case), "L0H0", "L0H1"
        settings = AblationSettings(kind="zero", components="heads", top_k=4, seed=spec.seed)
    study = ablation_study(lm, behaviour, settings, progress=False)
    rows = tidy([{**r, "model": case} for r in study.rows()])
    card = ablation_card(case, "planted", rows, rows.iloc[0:0])
    a = study.additivity
    singles = study.singles.set_index("component")["effect"]
    shapley = study.shapley.set_index("component")["shapley"]
    pair = float(study.interaction_index.loc[first, second])
    measured = (
        f"R^2 {a.r2:.3f} [{a.ci_low:.3f}, {a.ci_high:.3f}]; singles {first} {singles[first]:+.3f}, "
        f"{second} {singles[second]:+.3f}; joint {a.full_effect:+.3f}; Shapley {first} {shapley[first]:+.3f}; "
        f"interaction index {first} x {second} {pair:+.3f}"
    )
    return card, measured


def _erasure(lm: LoadedModel, case: str, spec: ValidateSpec) -> tuple[Card, str]:
    from probes.causal.erasure import amnesic_study

    frame = amnesic_study(
        lm, zoo.behaviour("decision"), zoo.concept(ERASURES[case]), [0], n_random=spec.erase_random, seed=spec.seed
    )
    rows = tidy([{**r, "model": case} for r in amnesic_rows(frame, "planted")])
    card = ablation_card(case, "planted", rows.iloc[0:0], rows)
    r = frame.iloc[0]
    measured = (
        f"probe {r.probe_before:.2f} (majority {r.majority:.2f}); erasing it {r.leace_change:+.3f} vs random "
        f"{r.random_change_mean:+.3f} (sd {r.random_change_sd:.3f}); clean {r.clean:.3f}"
    )
    return card, measured


def planted_outputs(case: str, n: int, seed: int = 0) -> pd.DataFrame:
    """Per-example outputs of a planted family (``SCALE_CASES``): each answer token right with the size's
    per-token accuracy, else another symbol; ``target_logprob`` is the sum of the tokens' log-probabilities."""
    accuracy, length = SCALE_CASES[case]
    rng = np.random.default_rng(seed)
    rows = []
    for size in SIZES:
        p = float(np.clip(accuracy(np.log10(size)), 0.0, 1.0))
        for example in range(n):
            target = rng.integers(0, 10, length)
            right = rng.random(length) < p
            generated = np.where(right, target, (target + rng.integers(1, 10, length)) % 10)
            rows.append(
                {
                    "model": f"planted-{size:.3g}",
                    "family": case,
                    "parameters": size,
                    "task": case,
                    "example": example,
                    "target": target.tolist(),
                    "generated": generated.tolist(),
                    "target_logprob": float(length * np.log(max(p, 1e-3)) + 0.1 * rng.standard_normal()),
                }
            )
    return pd.DataFrame(rows)


def _scale(case: str, spec: ValidateSpec) -> tuple[Card, str]:
    _, length = SCALE_CASES[case]
    scored = score_examples(planted_outputs(case, spec.n, spec.seed))
    table = aggregate(scored, chance={case: chance_levels(length, 10)})
    verdicts = analyse(table, examples=scored, seed=spec.seed)
    measured = "; ".join(f"{r.metric} {r.verdict}" for r in verdicts.itertuples())
    return scale_card(case, case, verdicts), measured


def describe(table: pd.DataFrame) -> str:
    """The table as the CLI prints it: case, planted truth, the reading, and whether it matches."""
    lines = []
    for r in table.itertuples():
        mark = "right" if r.right else f"WRONG (reads as {r.matches})"
        lines += [
            f"{r.case}: {mark}",
            f"  planted:  {r.planted}",
            f"  measured: {r.measured}",
            f"  verdict:  {r.reading}",
        ]
    right = int(table["right"].sum())
    lines.append(f"{right} of {len(table)} planted cases read right")
    return "\n".join(lines)


def markdown_table(table: pd.DataFrame) -> str:
    """The table as the docs show it (docs/validation.md)."""
    lines = ["| case | planted | verdict matches | measured |", "|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.case} | {r.planted} | {r.matches}{'' if r.right else ' (WRONG)'} | {r.measured} |")
    return "\n".join(lines)
