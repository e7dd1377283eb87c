"""Layer x head maps of per-head attention statistics (``probes.causal.head_stats``), one panel per metric."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files and notebooks; no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

UNITS = {
    "entropy": "nats",
    "distance": "tokens",
    "prev_token": "attention weight",
    "first_token": "attention weight",
    "induction": "attention weight",
}


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


# A head is named for a job only above these scores (weights on [0, 1]; distance in tokens has no bar).
NAMED = (
    ("prev_token", "previous-token", 0.4),
    ("induction", "induction", 0.3),
    ("first_token", "first-token sink", 0.5),
    ("distance", "longest-range", 0.0),
)


def notable_heads(frame: pd.DataFrame) -> list[tuple[int, int, str]]:
    """(layer, head, why) of the head that scores highest on each nameable job, where one scores high enough
    to be named for it (``NAMED``), without repeats."""
    chosen: list[tuple[int, int, str]] = []
    for metric, label, bar in NAMED:
        part = frame[(frame["metric"] == metric) & (frame["value"] > bar)].sort_values("value", ascending=False)
        for r in part.itertuples():
            if (r.layer, r.head) not in [(l, h) for l, h, _ in chosen]:
                chosen.append((int(r.layer), int(r.head), f"top {label} head ({r.value:.2f})"))
                break
    return chosen


def pattern_heatmaps(
    tokens: list[str], patterns: np.ndarray, heads: list[tuple[int, int, str]], *, model: str = ""
) -> plt.Figure:
    """Attention patterns (queries down, keys across) of chosen heads on one input; ``patterns`` is
    (layers, heads, queries, keys) as ``probes.causal.head_stats.attention_example`` returns it."""
    if not heads:
        raise ValueError("no heads to show")
    T = len(tokens)
    size = min(5.5, 2.0 + 0.15 * T)
    cols = min(2, len(heads))
    rows = -(-len(heads) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 1.2, (size + 0.4) * rows), squeeze=False)
    for ax in list(axes.flat)[len(heads) :]:
        ax.set_visible(False)
    labels = [t.replace("\u0120", "_").replace("\u2581", "_") for t in tokens]  # BPE space markers, readably
    for ax, (layer, head, why) in zip(axes.flat, heads):
        im = ax.imshow(patterns[layer, head], cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(T), labels, rotation=90, fontsize=6, parse_math=False)  # tokens as typed, '$' too
        ax.set_yticks(range(T), labels, fontsize=6, parse_math=False)
        ax.set_xlabel("key token (attended to)")
        ax.set_ylabel("query token")
        ax.set_title(f"L{layer}H{head}: {why}", fontsize=9)
        fig.colorbar(im, ax=ax, label="attention weight", shrink=0.7)
    fig.suptitle(f"attention patterns on one input{': ' + model if model else ''}", fontsize=11)
    fig.tight_layout()
    return fig
