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


def head_effect_grid(results: pd.DataFrame, *, model: str | None = None, metric: str = "effect") -> np.ndarray:
    """Single-head ``metric`` rows (components ``L{l}H{h}``) as a (layers, heads) array; NaN where not measured."""
    rows = _select(results, model, metric=metric)
    heads = [
        (int(m.group(1)), int(m.group(2)), v)
        for c, v in zip(rows["component"], rows["value"])
        if (m := _HEAD.match(str(c)))
    ]
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
    rows = _select(
        results,
        model,
        "no interaction rows in the results (run an ablation study with --top-k >= 2)",
        metric="interaction",
    )
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


def _select(results: pd.DataFrame, model: str | None, missing: str | None = None, **where) -> pd.DataFrame:
    """The rows of the tidy table with these column values (and this model); ``missing``: the error if none."""
    rows = tidy(results)
    for column, value in where.items():
        rows = rows[rows[column] == value]
    if model is not None:
        rows = rows[rows["model"] == model]
    if rows.empty and missing:
        raise ValueError(missing)
    return rows


def _effects(results: pd.DataFrame, model: str | None) -> pd.DataFrame:
    return _select(results, model, metric="effect")


def shapley_bars(results: pd.DataFrame, *, model: str | None = None) -> plt.Figure:
    """Shapley values of the top components with 95% CIs, beside their single-ablation effects."""
    shap = _select(results, model, "no shapley rows in the results (run an ablation study)", metric="shapley")
    single = _effects(results, model).set_index("component")["value"]
    names = [str(c) for c in shap["component"]]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(5.5, 0.9 + 0.38 * len(names)))
    err = np.vstack([shap["value"] - shap["ci_low"], shap["ci_high"] - shap["value"]]).astype(float)
    ax.barh(y + 0.2, shap["value"], height=0.38, xerr=err, capsize=2, color="tab:blue", label="Shapley value (95% CI)")
    ax.barh(
        y - 0.2, [single.get(n, np.nan) for n in names], height=0.38, color="tab:gray", alpha=0.7, label="ablated alone"
    )
    ax.set_yticks(y, names, fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("effect on the behaviour (its units)")
    ax.set_ylabel("component")
    ax.set_title("Shapley values of the top components vs their single effects", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def amnesic_plot(results: pd.DataFrame, *, model: str | None = None) -> plt.Figure:
    """Amnesic probing by layer: the behaviour change after erasing the concept (LEACE) against random subspaces
    of the same rank (mean, 95% range of the draws), and the concept probe's accuracy before and after."""
    rows = _select(
        results,
        model,
        "no amnesic rows in the results (run an ablation study with --erase CONCEPT)",
        probe="amnesic:leace",
    )
    pick = lambda metric: rows[rows["metric"] == metric].sort_values("layer")
    concept = ", ".join(sorted(rows["concept"].astype(str).unique())) if "concept" in rows else "the concept"
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.5))
    erased, rand = pick("erasure_change"), pick("random_erasure_change")
    left.plot(erased["layer"], erased["value"], "o-", color="tab:red", label=f"erase {concept} (LEACE)")
    left.errorbar(
        rand["layer"],
        rand["value"],
        yerr=[rand["value"] - rand["ci_low"], rand["ci_high"] - rand["value"]],
        fmt="s--",
        color="tab:gray",
        capsize=3,
        label="erase a random subspace (95% range)",
    )
    left.axhline(0, color="black", lw=0.8)
    left.set_xlabel("layer erased (residual depth: 0 = embeddings, l = block l-1's output)")
    left.set_ylabel("change in the behaviour (its units)")
    left.set_title("behaviour after erasure", fontsize=10)
    left.legend(fontsize=7)
    for metric, style, label in (
        ("concept_probe_before", "o-", "before erasure"),
        ("concept_probe_after", "o--", "after"),
        ("concept_majority", ":", "majority class"),
    ):
        part = pick(metric)
        right.plot(part["layer"], part["value"], style, label=label)
    right.set_ylim(0, 1.02)
    right.set_xlabel("layer erased")
    right.set_ylabel("held-out probe accuracy")
    right.set_title(f"is {concept} still readable?", fontsize=10)
    right.legend(fontsize=7)
    behaviour = ", ".join(sorted(rows["task"].astype(str).unique()))
    fig.suptitle(f"amnesic probing: does {behaviour} use {concept}?", fontsize=11)
    fig.tight_layout()
    return fig
