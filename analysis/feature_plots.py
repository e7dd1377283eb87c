"""Sparse features as figures: the feature-count curve with its random baseline, and the feature density
histogram."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files and notebooks; no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .ablation_plots import _select


def feature_curve_plot(results: pd.DataFrame, *, model: str | None = None) -> plt.Figure:
    """The share of the behaviour kept by the top-k features (every other feature ablated) against k (log), random
    sets of k (mean, range), the target, the smallest k that keeps it and the error term's share."""
    top = _select(results, model, "no feature-count rows (run probes sae features)", metric="feature_faithfulness")
    top = top.sort_values("features")
    random = _select(results, model, metric="random_feature_faithfulness").sort_values("features")
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    ax.plot(top["features"].astype(float), top["value"], "o-", ms=3, color="tab:purple", label="top-k features by AtP")
    if len(random):
        x = random["features"].astype(float)
        ax.fill_between(x, random["ci_low"].astype(float), random["ci_high"].astype(float), color="tab:gray", alpha=0.3)
        ax.plot(x, random["value"], "s--", ms=3, color="tab:gray", label="random features (mean, range)")
    share = _select(results, model, metric="feature_share")
    count = _select(results, model, metric="feature_count")
    if len(share) and "target" in share and pd.notna(share["target"].iloc[0]):
        ax.axhline(float(share["target"].iloc[0]), color="tab:red", lw=0.8, ls=":", label="target")
    if len(count) and np.isfinite(float(count["value"].iloc[0])):
        k = float(count["value"].iloc[0])
        ax.axvline(
            k, color="tab:red", lw=0.8, label=f"smallest: {k:.0f} features ({float(share['value'].iloc[0]):.2%})"
        )
    error = _select(results, model, metric="error_share")
    if len(error):
        ax.plot([], [], " ", label=f"error term carries {float(error['value'].iloc[0]):.2f} of the site's effect")
    ax.set_xscale("log")
    ax.set_xlabel("features kept (every other feature ablated)")
    ax.set_ylabel("share of the behaviour kept")
    ax.axhline(0, color="black", lw=0.5)
    ax.axhline(1, color="black", lw=0.5)
    task = ", ".join(sorted(top["task"].astype(str).unique()))
    ax.set_title(f"features of {task}", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def density_plot(density: np.ndarray, title: str = "") -> plt.Figure:
    """Histogram of log10 feature density (share of tokens each feature fires on); dead features counted aside."""
    density = np.asarray(density, dtype=float)
    live = density[density > 0]
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    if len(live):
        ax.hist(np.log10(live), bins=50, color="tab:purple", alpha=0.8)
    ax.set_xlabel("log10 feature density (share of tokens it fires on)")
    ax.set_ylabel("features")
    dead = int((density == 0).sum())
    ax.set_title(f"{title}: {len(density)} features, {dead} dead".strip(": "), fontsize=10)
    fig.tight_layout()
    return fig
