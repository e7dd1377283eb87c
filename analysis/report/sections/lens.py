"""The lens section: KL, top-1 agreement and a behaviour per depth, logit lens beside tuned lens."""

from __future__ import annotations

import pandas as pd

from ... import lens_plots
from ..document import Section, figure, table
from ..sources import Inputs


def lens_section(inputs: Inputs) -> Section | None:
    if inputs.lens is None:
        return None
    section = Section("lens", "What each depth would predict: logit lens and tuned lens")
    section.blocks.append(
        "The residual stream after each block read through the model's own final norm and unembedding (logit "
        "lens), or after an affine translator per depth trained to match the model's output (tuned lens, "
        "Belrose et al. 2023), on held-out texts: KL to the model's output distribution (nats, 95% interval "
        "from resampling texts) and top-1 agreement. A behaviour read the same way shows the first depth from "
        "which its score stays half-way from knowing nothing (a uniform prediction) to the model's own."
    )
    for model in dict.fromkeys(inputs.lens["model"].astype(str)):
        frame = inputs.lens[inputs.lens["model"] == model]
        behaviour = None
        if inputs.lens_behaviour is not None:
            rows = inputs.lens_behaviour[inputs.lens_behaviour["model"].astype(str) == model]
            behaviour = rows if len(rows) else None
        section.blocks.append(figure(lens_plots.plot_lens(frame, behaviour), f"{model}: logit lens and tuned lens"))
        kl = frame.pivot(index="depth", columns="lens", values="kl")
        summary = []
        for name in kl.columns:
            part = frame[frame["lens"] == name].set_index("depth")
            summary.append(
                {
                    "lens": name,
                    "mean KL before the last depth": float(kl[name].iloc[:-1].mean()),
                    "depths below the logit lens": int((kl[name] < kl["logit"]).iloc[:-1].sum())
                    if "logit" in kl and name != "logit"
                    else "-",
                    "top-1 at the middle depth": float(part["top1_agreement"].iloc[len(part) // 2]),
                }
            )
        if behaviour is not None:
            first = behaviour.groupby("lens", sort=False)["first_decodable"].first()
            for row in summary:
                value = first.get(row["lens"])
                row[f"{behaviour['behaviour'].iloc[0]}: first decodable depth"] = (
                    "never" if value is None or pd.isna(value) else int(value)
                )
        section.blocks.append(table(pd.DataFrame(summary), f"{model}: {len(kl) - 1} blocks"))
    return section
