"""The scaling section: the verdict per task and metric, capability against size or training step."""

from __future__ import annotations

from ... import scale_plots
from ..document import Section, figure, table
from ..sources import Inputs


def scale_section(inputs: Inputs) -> Section | None:
    if inputs.verdicts is None or inputs.scale is None:
        return None
    section = Section("scale", "Capability across scale: smooth, jump or mirage?")
    section.blocks.append(
        "Scores normalised to chance (0) and the best possible (1), against model size on a log axis, with the fitted "
        "smooth models (linear, power law) and jump models (sigmoid, broken power law; BIC in the legend) and the "
        "jump's 95% bootstrap interval. A jump under exact match that is smooth under a partial-credit metric is a "
        "mirage of the metric (Schaeffer et al.); one that survives every metric is a real jump."
    )
    shown = [
        "family",
        "task",
        "metric",
        "n_sizes",
        "verdict",
        "jump_location",
        "jump_low",
        "jump_high",
        "breakthroughness",
        "delta_bic",
        "reading",
    ]
    verdicts = inputs.verdicts
    section.blocks.append(table(verdicts[[c for c in shown if c in verdicts.columns]], "verdict per task and metric"))
    final = inputs.scale
    over_training: set[str] = set()
    for (family, task, axis), _ in verdicts.groupby(["family", "task", "axis"], sort=False):
        rows = final[final["axis"] == axis]
        if axis == "step":  # each model's checkpoints are a curve: every model of the task in one figure, once
            if task not in over_training:
                over_training.add(str(task))
                section.blocks.append(
                    figure(scale_plots.capability_vs_step(rows, str(task)), f"{task}: capability over training")
                )
            continue
        section.blocks.append(
            figure(
                scale_plots.capability_vs_size(rows, verdicts, str(task), family=str(family), size=str(axis)),
                f"{family} · {task}: capability vs size",
            )
        )
        if "step" in rows.columns and rows[(rows["task"] == task)]["step"].notna().any():
            try:
                section.blocks.append(
                    figure(
                        scale_plots.capability_vs_step(rows, str(task)), f"{family} · {task}: capability over training"
                    )
                )
            except ValueError:
                pass  # no checkpoints of this task
    return section
