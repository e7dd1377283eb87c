"""The attention heads section: per-head statistics as maps, the notable heads' patterns."""

from __future__ import annotations

import pandas as pd

from ... import head_plots
from ..document import Section, figure, table
from ..sources import Inputs


def attention_section(inputs: Inputs) -> Section | None:
    if inputs.heads is None:
        return None
    section = Section("attention", "Attention heads with a local, nameable job")
    section.blocks.append(
        "Per head, over a text set: the entropy of a query's attention (nats), the mean attended distance (tokens), "
        "the weight on the previous token and on the first token (the sink), and on repeated random tokens the "
        "weight on the token after the earlier copy (induction, Olsson et al.). Below each map, the patterns of the "
        "heads that score highest on each job, on one input."
    )
    for model in dict.fromkeys(inputs.heads["model"].astype(str)):
        frame = inputs.heads[inputs.heads["model"] == model]
        section.blocks.append(figure(head_plots.head_maps(frame, model=model), f"{model}: per-head statistics"))
        top = [(layer, head, why) for layer, head, why in head_plots.notable_heads(frame)]
        section.blocks.append(
            table(pd.DataFrame([{"head": f"L{l}H{h}", "why": w} for l, h, w in top]), f"{model}: notable heads")
        )
        if model in inputs.patterns:
            tokens, patterns, text = inputs.patterns[model]
            section.blocks.append(
                figure(
                    head_plots.pattern_heatmaps(tokens, patterns, top, model=model),
                    f"{model}: attention patterns of the notable heads",
                    f"input: {text}",
                )
            )
    return section
