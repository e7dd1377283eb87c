"""Logit lens against tuned lens per depth (``probes.probing.lens``): KL to the model's output, top-1
agreement, and a behaviour's score read through each lens."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files and notebooks; no display needed
import matplotlib.pyplot as plt
import pandas as pd

COLOURS = {"logit": "tab:orange", "tuned": "tab:blue"}


def plot_lens(frame: pd.DataFrame, behaviour: pd.DataFrame | None = None) -> plt.Figure:
    """Panels over depth (0 = embeddings): KL(final || lens) with its interval over texts, top-1 agreement,
    and, given ``behaviour`` rows (``behaviour.csv``), its score per lens with the first decodable depth."""
    panels = 3 if behaviour is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), squeeze=False)
    kl_ax, top_ax = axes[0, 0], axes[0, 1]
    for lens, part in frame.groupby("lens", sort=False):
        colour = COLOURS.get(str(lens))
        kl_ax.plot(part["depth"], part["kl"], marker=".", label=f"{lens} lens", color=colour)
        kl_ax.fill_between(part["depth"], part["kl_low"], part["kl_high"], alpha=0.2, color=colour)
        top_ax.plot(part["depth"], part["top1_agreement"], marker=".", label=f"{lens} lens", color=colour)
    kl_ax.set_yscale("symlog", linthresh=0.1)
    kl_ax.set(xlabel="depth (blocks read)", ylabel="KL(final || lens), nats", title="distance to the output")
    top_ax.set(xlabel="depth (blocks read)", ylabel="top-1 agreement", title="same top token", ylim=(0, 1.02))
    kl_ax.legend(fontsize=8)
    if behaviour is not None:
        ax = axes[0, 2]
        for lens, part in behaviour.groupby("lens", sort=False):
            colour = COLOURS.get(str(lens))
            ax.plot(part["depth"], part["score"], marker=".", label=f"{lens} lens", color=colour)
            ax.fill_between(part["depth"], part["low"], part["high"], alpha=0.2, color=colour)
            first = part["first_decodable"].iloc[0]
            if pd.notna(first):
                ax.axvline(float(first), color=colour, linestyle=":", linewidth=1)
        if "baseline" in behaviour:
            ax.axhline(
                float(behaviour["baseline"].iloc[0]), color="grey", linestyle="--", linewidth=1, label="knowing nothing"
            )
        name, metric = behaviour["behaviour"].iloc[0], behaviour["metric"].iloc[0]
        ax.set(xlabel="depth (blocks read)", ylabel=str(metric), title=f"{name} (dotted: first decodable)")
        ax.legend(fontsize=8)
    fig.suptitle(str(frame["model"].iloc[0]) if "model" in frame else "lens", fontsize=10)
    fig.tight_layout()
    return fig
