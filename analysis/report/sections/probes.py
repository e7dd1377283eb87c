"""The probes section: the best layer per model and task, accuracy by layer against the baselines."""

from __future__ import annotations

from ... import probe_plots
from ...results import select_probing
from ...tables import for_display, profile_table
from ..document import Section, figure, table
from ..sources import Inputs


def probe_section(inputs: Inputs) -> Section | None:
    probing = select_probing(inputs.results)
    if probing.empty:
        return None
    section = Section("probes", "Linear probes: what each layer makes readable")
    section.blocks.append(
        "Held-out accuracy of a linear probe at every layer (band: 95% bootstrap CI over test sentences), beside three "
        "baselines: the same probe on a control task that assigns each word type a random label (Hewitt & Liang), the "
        "same probe on the randomly initialised model, and the majority class. Selectivity is task minus control "
        "accuracy; MDL compression is the uniform code length over the online code length (Voita & Titov)."
    )
    section.blocks.append(table(for_display(profile_table(probing)), "best layer per model and task"))
    for task in dict.fromkeys(probing["task"].astype(str)):
        for probe in dict.fromkeys(probing[probing["task"] == task]["probe"].astype(str)):
            section.blocks.append(
                figure(
                    probe_plots.layer_profile(probing, task, probe=probe),
                    f"{task}: {probe} probe accuracy by layer, all models",
                )
            )
    for model in dict.fromkeys(probing["model"].astype(str)):
        rows = probing[probing["model"] == model]
        if rows["metric"].isin(["selectivity", "compression"]).any():
            section.blocks.append(
                figure(
                    probe_plots.selectivity_and_compression(probing, model),
                    f"{model}: selectivity and MDL compression by layer",
                )
            )
    return section
