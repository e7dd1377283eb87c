"""The ablation studies' section (effect maps, interactions, Shapley values) and amnesic probing's."""

from __future__ import annotations

from ... import ablation_plots, attribution_plots
from ...results import select_ablation, select_amnesic
from ...tables import ablation_table, for_display
from ..document import Section, figure, table
from ..sources import Inputs


def ablation_section(inputs: Inputs) -> Section | None:
    abl = select_ablation(inputs.results)
    if abl.empty:
        return None
    section = Section("ablations", "Ablations: separable components or interaction?")
    section.blocks.append(
        "Every head and MLP ablated on its own (effect: change in the behaviour, 95% CI over examples), then the "
        "top components together: the pairwise interaction (joint effect minus the two single effects), Shapley values "
        "over sampled orders, and the additivity R^2 of 'joint effect = sum of single effects' over sampled subsets "
        "(1: separable parts; low: the behaviour lives in their interaction)."
    )
    section.blocks.append(table(for_display(ablation_table(abl)), "one row per model, behaviour and ablation kind"))
    for (model, task), rows in abl.groupby(["model", "task"], sort=False):
        model, task = str(model), str(task)
        section.blocks.append(f"{model} · {task}")
        try:
            if (rows["metric"] == "attribution").any():  # the top k were chosen by attribution: its map of every head
                section.blocks.append(
                    figure(attribution_plots.attribution_maps(rows, model=model), f"{model}: attribution on {task}")
                )
            else:
                section.blocks.append(
                    figure(
                        ablation_plots.effect_map(rows, model=model), f"{model}: effect of ablating each head on {task}"
                    )
                )
        except ValueError:
            pass  # a study of MLPs or named components only: no head map to draw
        if (rows["metric"] == "interaction").any():
            section.blocks.append(
                figure(
                    ablation_plots.interaction_map(rows, model=model),
                    f"{model}: interactions of the top components on {task}",
                )
            )
        if (rows["metric"] == "shapley").any():
            section.blocks.append(
                figure(ablation_plots.shapley_bars(rows, model=model), f"{model}: Shapley values on {task}")
            )
    return section


def amnesic_section(inputs: Inputs) -> Section | None:
    amnesic = select_amnesic(inputs.results)
    if amnesic.empty:
        return None
    section = Section("amnesic", "Amnesic probing: does the behaviour use the readable feature?")
    section.blocks.append(
        "The concept is erased from the residual stream at one layer with LEACE (no linear probe can recover it "
        "afterwards: right panel), and the behaviour is measured again; erasing random subspaces of the same rank "
        "tells how much any erasure of that size changes it (Elazar et al.; Belrose et al.)."
    )
    for (model, task), rows in amnesic.groupby(["model", "task"], sort=False):
        section.blocks.append(
            figure(ablation_plots.amnesic_plot(rows, model=str(model)), f"{model}: amnesic probing of {task}")
        )
        wide = rows.pivot_table(index="layer", columns="metric", values="value").reset_index()
        section.blocks.append(table(wide, f"{model} · {task}: per layer"))
    return section
