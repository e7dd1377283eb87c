"""The verdict engine: every scorecard and its reading, from the tidy results table and the scale verdicts.

    cards = scorecards(results, verdicts)           # one Card per model and behaviour (and per family and task)
    card.evidence                                    # each measure: value, reading, lean, the zoo case it matches
    card.overall                                     # the vote of the measures that lean one way

``analysis.report`` draws the cards and ``probes validate`` reads the zoo's cards through the same functions, so a
verdict the zoo checks is the verdict a report prints. The thresholds and sentences live in ``analysis.readings``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .readings import (
    THRESHOLDS,
    additivity_case,
    additivity_lean,
    additivity_reading,
    circuit_reading,
    compression_reading,
    concept_readable,
    decodability_reading,
    erasure_case,
    erasure_reading,
    feature_reading,
    interaction_pattern,
    interaction_ratio,
    overall_reading,
    scale_case,
    scale_reading,
    selectivity_reading,
)
from .results import select_ablation, select_amnesic, select_attribution, select_features, select_probing
from .tables import profile_table


@dataclass
class Evidence:
    side: str  # "reductionist" or "emergent"
    measure: str
    value: str
    reading: str
    lean: str | None
    point: tuple[float, float, float] | None = None  # (value, low, high) on [0, 1], for the card's figure
    marks: dict[str, float] = field(default_factory=dict)  # baselines drawn beside the point
    matches: str | None = None  # the planted zoo case (analysis.readings.ZOO_CASES) these numbers match best


@dataclass
class Card:
    title: str
    evidence: list[Evidence]
    overall: str
    figure: Any = None  # the report's drawing of it (analysis.report), where one is made

    def side(self, name: str) -> list[Evidence]:
        return [e for e in self.evidence if e.side == name]


def fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)) or x is pd.NA:
        return "-"
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}" if x != 0 and abs(x) < 1e-3 else f"{x:.{digits}f}"
    return str(x)


def ci(value: float, low: float, high: float) -> str:
    if np.isfinite(low) and np.isfinite(high):
        return f"{value:.3f} [{low:.3f}, {high:.3f}]"
    return f"{value:.3f}"


def _scalar(rows: pd.DataFrame, metric: str) -> pd.Series | None:
    part = rows[rows["metric"] == metric]
    return part.iloc[0] if len(part) else None


def probe_card(model: str, row: pd.Series) -> Card:
    acc, low, high = row["accuracy"], row["ci_low"], row["ci_high"]
    text, lean = decodability_reading(acc, low, row["majority"], row.get("random_init"), row.get("selectivity"))
    marks = {"majority class": row["majority"], "random weights": row.get("random_init")}
    evidence = [
        Evidence(
            "reductionist",
            f"linear decodability (best layer {row['best_layer']})",
            f"{ci(acc, low, high)}; majority {fmt(row['majority'])}, random weights {fmt(row.get('random_init'))}",
            text,
            lean,
            (acc, low, high),
            {k: float(v) for k, v in marks.items() if v is not None and pd.notna(v)},
        )
    ]
    if pd.notna(row.get("selectivity")):
        evidence.append(
            Evidence(
                "reductionist",
                "selectivity (task - control task)",
                fmt(row["selectivity"]),
                selectivity_reading(row["selectivity"]),
                None,
            )
        )
    if pd.notna(row.get("compression")):
        evidence.append(
            Evidence(
                "reductionist",
                "MDL compression (uniform / online code)",
                f"{row['compression']:.2f}x",
                compression_reading(row["compression"]),
                None,
            )
        )
    return Card(
        f"{model} · {row['task']}", evidence, overall_reading([e.lean for e in evidence], [e.matches for e in evidence])
    )


def ablation_card(model: str, task: str, rows: pd.DataFrame, amnesic: pd.DataFrame) -> Card:
    evidence = []
    joint, singles = _scalar(rows, "joint_effect_top_k"), _scalar(rows, "sum_of_single_effects")
    effects = rows[rows["metric"] == "effect"]["value"]
    largest = float(effects.abs().max()) if len(effects) else math.nan
    pattern = None
    r2 = _scalar(rows, "additivity_r2")
    noisy = r2 is not None and additivity_reading(r2["value"], r2["ci_low"], r2["ci_high"]).startswith("inconclusive")
    if joint is not None and singles is not None:
        pattern = interaction_pattern(joint["value"], singles["value"], largest, noisy=noisy)
    if r2 is not None:
        redundant = pattern is not None and pattern[2] == "redundant"
        reading = additivity_reading(r2["value"], r2["ci_low"], r2["ci_high"])
        if redundant and r2["value"] < THRESHOLDS.additive:
            reading += "; low here because the parts are redundant, not because they need each other"
        evidence.append(
            Evidence(
                "reductionist",
                "additivity R^2 of the top components",
                ci(r2["value"], r2["ci_low"], r2["ci_high"]),
                reading,
                additivity_lean(r2["value"], r2["ci_low"], r2["ci_high"], redundant=redundant),
                (r2["value"], r2["ci_low"], r2["ci_high"]),
                matches=additivity_case(r2["value"], r2["ci_low"], r2["ci_high"], pattern[2] if pattern else None),
            )
        )
    if pattern is not None:
        assert joint is not None and singles is not None
        ratio = interaction_ratio(joint["value"], singles["value"], largest)
        text, lean, case = pattern
        evidence.append(
            Evidence(
                "emergent",
                "interaction of the top-k (|joint - sum of singles| / largest effect)",
                f"{fmt(ratio)} (joint {joint['value']:+.3f}, sum of singles {singles['value']:+.3f}, "
                f"largest single {largest:+.3f})",
                text,
                lean,
                (ratio, ratio, ratio) if np.isfinite(ratio) else None,
                matches=case,
            )
        )
    if len(amnesic):
        change = amnesic[amnesic["metric"] == "erasure_change"].set_index("layer")["value"]
        rand = amnesic[amnesic["metric"] == "random_erasure_change"].set_index("layer")
        layer = int((change - rand["value"]).abs().idxmax())  # the layer where erasure differs most from random
        sd = (rand.loc[layer, "ci_high"] - rand.loc[layer, "value"]) / 1.96
        text, lean = erasure_reading(change[layer], rand.loc[layer, "value"], sd)
        concept = str(amnesic["concept"].iloc[0]) if "concept" in amnesic else "the concept"
        before = amnesic[(amnesic["metric"] == "concept_probe_before") & (amnesic["layer"] == layer)]["value"]
        majority = amnesic[(amnesic["metric"] == "concept_majority") & (amnesic["layer"] == layer)]["value"]
        readable = bool(len(before) and len(majority) and concept_readable(before.iloc[0], majority.iloc[0]))
        evidence.append(
            Evidence(
                "reductionist",
                f"amnesic probing: erase {concept} at layer {layer}",
                f"{change[layer]:+.3f} vs random {rand.loc[layer, 'value']:+.3f} (sd {fmt(sd)})",
                text,
                lean,
                matches=erasure_case(change[layer], rand.loc[layer, "value"], sd, readable),
            )
        )
        if len(before) and len(majority):
            evidence.append(
                Evidence(
                    "reductionist",
                    f"{concept} linearly readable at layer {layer}",
                    f"{before.iloc[0]:.3f} (majority {majority.iloc[0]:.3f})",
                    "readable by a linear probe (context for the erasure: what there was to erase)"
                    if readable
                    else "not readable beyond the majority class",
                    None,
                    (before.iloc[0],) * 3,
                    {"majority class": float(majority.iloc[0])},
                )
            )
    return Card(
        f"{model} · {task}", evidence, overall_reading([e.lean for e in evidence], [e.matches for e in evidence])
    )


def circuit_card(model: str, task: str, rows: pd.DataFrame) -> Card:
    """The circuit-size evidence of a ``probes circuit`` run."""
    share = _scalar(rows, "circuit_share")
    assert share is not None
    random = _scalar(rows, "random_faithfulness_at_share")
    edges, total = _scalar(rows, "circuit_edges"), _scalar(rows, "graph_edges")
    target = float(share["target"]) if "target" in share and pd.notna(share["target"]) else 0.8
    random_value = float(random["value"]) if random is not None else math.nan
    text, lean = circuit_reading(share["value"], share["ci_low"], share["ci_high"], random_value, target)
    count = f"{fmt(edges['value'])} of {fmt(total['value'])} edges; " if edges is not None and total is not None else ""
    evidence = [
        Evidence(
            "reductionist",
            f"circuit size: the smallest share of edges keeping {target:.0%} ({rows['probe'].iloc[0]})",
            f"{count}{ci(share['value'], share['ci_low'], share['ci_high'])}; random circuits of that size keep "
            f"{fmt(random_value)}",
            text,
            lean,
            (share["value"], share["ci_low"], share["ci_high"]),
        )
    ]
    return Card(f"{model} · {task}", evidence, overall_reading([e.lean for e in evidence]))


def feature_card(model: str, task: str, rows: pd.DataFrame) -> Card:
    """The feature-count evidence of a ``probes sae features`` run: how many features keep the behaviour, and what
    the dictionary's error term carries."""
    share, count = _scalar(rows, "feature_share"), _scalar(rows, "feature_count")
    error, total = _scalar(rows, "error_share"), _scalar(rows, "dictionary_features")
    assert count is not None and error is not None
    target = float(share["target"]) if share is not None and pd.notna(share.get("target")) else 0.8
    random = rows[rows["metric"] == "random_feature_faithfulness"]
    at = (
        random[random["features"].astype(float) >= float(count["value"])] if np.isfinite(count["value"]) else random[:0]
    )
    random_value = float(at.sort_values("features")["value"].iloc[0]) if len(at) else math.nan
    text, lean = feature_reading(
        count["value"], count["ci_low"], count["ci_high"], error["value"], error["ci_low"], random_value, target
    )
    of = f" of {fmt(total['value'])}" if total is not None else ""
    evidence = [
        Evidence(
            "reductionist",
            f"features: the fewest top features keeping {target:.0%} ({rows['probe'].iloc[0]})",
            f"{ci(count['value'], count['ci_low'], count['ci_high'])}{of} features; random sets of that size keep "
            f"{fmt(random_value)}; the error term carries {ci(error['value'], error['ci_low'], error['ci_high'])} "
            "of the site's effect",
            text,
            lean,
            (error["value"], error["ci_low"], error["ci_high"]),
        )
    ]
    return Card(f"{model} · {task}", evidence, overall_reading([e.lean for e in evidence]))


def scale_card(family: str, task: str, verdicts: pd.DataFrame) -> Card:
    at_chance = verdicts["at_chance"] if "at_chance" in verdicts else pd.Series(False, index=verdicts.index)
    triples = list(zip(verdicts["metric"], verdicts["verdict"], at_chance.astype(bool)))
    text, lean = scale_reading(triples)
    evidence = [
        Evidence(
            "emergent",
            "capability vs scale, under every metric",
            ", ".join(f"{m}: {v}" for m, v in zip(verdicts["metric"], verdicts["verdict"])),
            text,
            lean,
            matches=scale_case(triples),
        )
    ]
    jumps = [
        f"{row.metric} {row.jump_location:,.0f} [{row.jump_low:,.0f}, {row.jump_high:,.0f}]"
        for row in verdicts.itertuples()
        if row.verdict == "jump" and pd.notna(getattr(row, "jump_location", np.nan))
    ]
    if jumps:
        evidence.append(
            Evidence(
                "emergent",
                "where it jumps (size at the sigmoid's midpoint)",
                "; ".join(jumps),
                "95% bootstrap intervals; the same place under every metric means one transition",
                None,
            )
        )
    return Card(
        f"{family} · {task}", evidence, overall_reading([e.lean for e in evidence], [e.matches for e in evidence])
    )


def scorecards(results: pd.DataFrame, verdicts: pd.DataFrame | None = None) -> list[Card]:
    """Every card the results support: a probe's per model and task, an ablation study's, a circuit's, a
    dictionary's features' per model and behaviour, and the scaling analysis's per family and task."""
    cards: list[Card] = []
    probing = select_probing(results)
    if len(probing):
        for row in profile_table(probing).to_dict(orient="records"):
            cards.append(probe_card(str(row["model"]), pd.Series(row)))
    abl, amnesic = select_ablation(results), select_amnesic(results)
    for (model, task), rows in abl.groupby(["model", "task"], sort=False):
        cards.append(
            ablation_card(str(model), str(task), rows, amnesic[(amnesic["model"] == model) & (amnesic["task"] == task)])
        )
    for (model, task), rows in select_attribution(results).groupby(["model", "task"], sort=False):
        if (rows["metric"] == "circuit_share").any():
            cards.append(circuit_card(str(model), str(task), rows))
    for (model, task), rows in select_features(results).groupby(["model", "task"], sort=False):
        if (rows["metric"] == "feature_count").any() and (rows["metric"] == "error_share").any():
            cards.append(feature_card(str(model), str(task), rows))
    if verdicts is not None:
        for (family, task), rows in verdicts.groupby(["family", "task"], sort=False):
            cards.append(scale_card(str(family), str(task), rows))
    return cards
