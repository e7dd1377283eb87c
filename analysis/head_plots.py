"""Layer x head maps of per-head attention statistics (``probes.head_stats``), one panel per metric."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files and notebooks; no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

UNITS = {"entropy": "nats", "distance": "tokens", "prev_token": "attention weight", "first_token": "attention weight",
         "induction": "attention weight"}


def head_maps(frame: pd.DataFrame, metrics: list[str] | None = None, *, model: str | None = None) -> plt.Figure:
    """Heatmaps (layers down, heads across) of each metric, so heads with a nameable job stand out."""
    if model is not None:
        frame = frame[frame["model"] == model]
    metrics = metrics or [m for m in UNITS if m in set(frame["metric"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        part = frame[frame["metric"] == metric]
        if part.empty:
            raise ValueError(f"no {metric!r} rows in the head statistics")
        grid = part.pivot_table(index="layer", columns="head", values="value").to_numpy()
        bounded = metric not in ("entropy", "distance")
        im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1 if bounded else np.nanmax(grid))
        ax.set_title(metric.replace("_", " "), fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        fig.colorbar(im, ax=ax, label=UNITS.get(metric, ""), shrink=0.8)
    name = model or ", ".join(sorted(frame["model"].astype(str).unique()))
    fig.suptitle(f"per-head attention statistics: {name}", fontsize=11)
    fig.tight_layout()
    return fig
