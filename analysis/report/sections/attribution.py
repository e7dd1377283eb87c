"""The attribution and circuits section: verification, the attribution map beside the exact one, the strongest
edges, the faithfulness curve."""

from __future__ import annotations

from ... import attribution_plots
from ...results import select_attribution
from ..document import Section, figure, table
from ..sources import Inputs


def attribution_section(inputs: Inputs) -> Section | None:
    attributed = select_attribution(inputs.results)
    if attributed.empty:
        return None
    section = Section("attribution", "Attribution and circuits: which parts carry the behaviour?")
    section.blocks.append(
        "Attribution patching estimates every component's effect (AtP, AtP* with the QK fix and GradDrop) or every "
        "edge's (EAP, EAP-IG) from gradients, in one forward and one backward pass; the strongest and a random sample "
        "are then measured exactly (right: estimate against exact effect). A circuit keeps the top edges and removes "
        "every other one (ablated or patched, measured exactly); its faithfulness is the share of the behaviour it "
        "keeps, beside random circuits of its size."
    )
    for (model, task, probe), rows in attributed.groupby(["model", "task", "probe"], sort=False):
        model, task = str(model), str(task)
        section.blocks.append(f"{model} · {task} · {probe}")
        summary = rows[rows["metric"].isin(["verify_spearman", "verify_top_overlap", "verify_largest_miss"])]
        if len(summary):
            section.blocks.append(
                table(
                    summary[["metric", "component", "value", "n"]],
                    "verification: Spearman over the checked components above noise (n of them), exact top k "
                    "found in the estimate's top k (of n), the largest miss (exact - estimate)",
                )
            )
        if (rows["metric"] == "attribution").any():
            try:
                section.blocks.append(
                    figure(attribution_plots.attribution_maps(rows, model=model), f"{model}: attribution on {task}")
                )
            except ValueError:
                pass  # no heads among the components: no map to draw
        if (rows["metric"] == "exact_effect").any():
            section.blocks.append(
                figure(attribution_plots.estimate_vs_exact(rows, model=model), f"{model}: estimates vs exact on {task}")
            )
        edges = rows[rows["metric"] == "edge_attribution"]
        if len(edges):
            top = edges.reindex(edges["value"].abs().sort_values(ascending=False).index).head(10)
            section.blocks.append(
                table(top[["component", "value", "ci_low", "ci_high"]], f"{model}: the 10 strongest edges on {task}")
            )
        if (rows["metric"] == "faithfulness").any():
            section.blocks.append(
                figure(attribution_plots.faithfulness_plot(rows, model=model), f"{model}: circuits of {task}")
            )
    return section
