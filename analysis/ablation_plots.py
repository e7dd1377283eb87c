"""Ablation results as figures: the layer x head effect map and the top components' interactions."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")  # files and notebooks; no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .results import tidy

_HEAD = re.compile(r"^L(\d+)H(\d+)$")


def head_effect_grid(results: pd.DataFrame, *, model: str | None = None) -> np.ndarray:
    """Single-head ``effect`` rows (components ``L{l}H{h}``) as a (layers, heads) array; NaN where not ablated."""
    rows = _effects(results, model)
    heads = [(int(m.group(1)), int(m.group(2)), v) for c, v in zip(rows["component"], rows["value"])
             if (m := _HEAD.match(str(c)))]
    if not heads:
        raise ValueError("no single-head effects (components like L3H5) in the results")
    grid = np.full((max(h[0] for h in heads) + 1, max(h[1] for h in heads) + 1), np.nan)
    for layer, head, value in heads:
        grid[layer, head] = value
    return grid


def effect_map(results: pd.DataFrame, *, model: str | None = None) -> plt.Figure:
    """Heatmap of every head's single-ablation effect on the behaviour (blue: ablating it lowers the behaviour)."""
    grid = head_effect_grid(results, model=model)
    limit = float(np.nanmax(np.abs(grid))) or 1.0
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * grid.shape[1] + 2), max(3.0, 0.18 * grid.shape[0] + 1.5)))
    im = ax.imshow(grid, aspect="auto", cmap="RdBu", vmin=-limit, vmax=limit)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    behaviour = ", ".join(sorted(_effects(results, model)["task"].astype(str).unique()))
    ax.set_title(f"effect of ablating each head on {behaviour}", fontsize=10)
    fig.colorbar(im, ax=ax, label="change in the behaviour (its units)")
    fig.tight_layout()
    return fig


def interaction_map(results: pd.DataFrame, *, model: str | None = None) -> plt.Figure:
    """The top components' pairwise interactions (joint effect minus the two single effects) as a matrix."""
    rows = tidy(results)
    rows = rows[rows["metric"] == "interaction"]
    if model is not None:
        rows = rows[rows["model"] == model]
    if rows.empty:
        raise ValueError("no interaction rows in the results (run an ablation study with --top-k >= 2)")
    pairs = [str(c).split("|") for c in rows["component"]]  # "L0H1|L0.mlp", as the study writes them
    names = list(dict.fromkeys(n for pair in pairs for n in pair))
    matrix = np.zeros((len(names), len(names)))
    for (a, b), value in zip(pairs, rows["value"]):
        matrix[names.index(a), names.index(b)] = matrix[names.index(b), names.index(a)] = value
    limit = float(np.abs(matrix).max()) or 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(names), 0.6 + 0.6 * len(names)))
    im = ax.imshow(matrix, cmap="RdBu", vmin=-limit, vmax=limit)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("component")
    ax.set_ylabel("component")
    ax.set_title("pairwise interactions of the top components", fontsize=10)
    fig.colorbar(im, ax=ax, label="joint - sum of singles")
    fig.tight_layout()
    return fig


def _effects(results: pd.DataFrame, model: str | None) -> pd.DataFrame:
    rows = tidy(results)
    rows = rows[rows["metric"] == "effect"]
    return rows[rows["model"] == model] if model is not None else rows
