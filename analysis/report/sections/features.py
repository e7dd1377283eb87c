"""The sparse features section: the dictionary's quality, the feature-count curve, the top features' examples."""

from __future__ import annotations

import json

import pandas as pd

from ... import feature_plots
from ...results import select_features
from ..document import Highlight, Section, figure, table
from ..sources import Inputs


def _highlight(examples: pd.DataFrame, feature: int) -> Highlight:
    rows = examples[examples["feature"] == feature].sort_values("rank")
    lines, notes = [], []
    top = float(rows["activation"].max()) if len(rows) else 1.0
    for r in rows.itertuples():
        tokens, acts = json.loads(r.tokens), json.loads(r.token_activations)
        lines.append([(str(t), max(0.0, min(1.0, float(a) / top)) if top > 0 else 0.0) for t, a in zip(tokens, acts)])
        notes.append(f"{r.activation:.2f} at text {r.text}, token {r.position}")
    return Highlight(f"feature {feature}", lines, notes)


def feature_section(inputs: Inputs) -> Section | None:
    rows = select_features(inputs.results)
    if rows.empty:
        return None
    section = Section("features", "Sparse features: how much do a few features carry?")
    section.blocks.append(
        "A sparse dictionary (a TopK sparse autoencoder trained here, or one in SAELens's format) decomposes a site "
        "into features. Its quality is measured as SAELens measures it on held-out text: explained variance, L0, dead "
        "and dense features, and the next-token loss recovered with it spliced in. For a behaviour, every feature's "
        "effect is estimated (AtP) and the strongest checked exactly; the top k are kept with every other feature "
        "ablated (measured exactly, beside random sets of k), and the error term's share of the site's effect says "
        "what the dictionary misses."
    )
    quality = rows[rows["probe"].astype(str).str.startswith("sae:")]
    for (model, site, probe), part in quality.groupby(["model", "site", "probe"], sort=False):
        section.blocks.append(f"{model} · {site} · {probe}")
        section.blocks.append(
            table(part[["metric", "value", "ci_low", "ci_high", "n"]], "dictionary quality on held-out texts")
        )
    studied = rows[rows["probe"].astype(str).str.startswith("features:")]
    for (model, task), part in studied.groupby(["model", "task"], sort=False):
        model, task = str(model), str(task)
        section.blocks.append(f"{model} · {task} · {part['probe'].iloc[0]}")
        summary = part[part["metric"].isin(["verify_spearman", "verify_top_overlap", "verify_largest_miss"])]
        if len(summary):
            section.blocks.append(
                table(summary[["metric", "component", "value", "n"]], "verification of the features' AtP")
            )
        if (part["metric"] == "feature_faithfulness").any():
            section.blocks.append(
                figure(feature_plots.feature_curve_plot(part, model=model), f"{model}: features of {task}")
            )
        concept = part[part["metric"].isin(["best_feature_accuracy", "probe_accuracy"])]
        if len(concept):
            section.blocks.append(
                table(
                    concept[["metric", "component", "label", "value", "n"]] if "label" in concept else concept,
                    "a concept's classes: the best single feature's balanced accuracy beside the linear probe's",
                )
            )
        examples = inputs.feature_examples
        if examples is not None:
            mine = examples[(examples["model"].astype(str) == model)]
            for feature in dict.fromkeys(mine["feature"].tolist()):
                section.blocks.append(_highlight(mine, int(feature)))
    return section
