"""Figures of the scaling analysis: capability vs size with the fitted curves, and vs training step."""

from __future__ import annotations

import math
import re

import matplotlib

matplotlib.use("Agg")  # files and notebooks; no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from .scaling import curves, fit_curves, normalise

_STYLE = {
    "linear": ("tab:gray", ":"),
    "power_law": ("tab:blue", "--"),
    "sigmoid": ("tab:red", "-"),
    "broken_power_law": ("tab:purple", "-."),
}


def capability_vs_size(
    table: pd.DataFrame, verdicts: pd.DataFrame, task: str, *, family: str | None = None, size: str = "parameters"
) -> plt.Figure:
    """One panel per metric: normalised score (0 = chance, 1 = best) against size on a log axis,
    the fitted smooth and jump models, and the jump's 95% interval where there is one."""
    chosen = [c for c in curves(table, size=size) if c.task == task and (family is None or c.family == family)]
    if not chosen:
        raise ValueError(f"no scores for task {task!r} in the table")
    cols = min(3, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, curve in zip(axes.flat, chosen):
        ax.errorbar(10**curve.x, curve.y, yerr=curve.sigma, fmt="o", color="black", ms=4, capsize=2, label="score")
        grid = np.linspace(curve.x[0], curve.x[-1], 200)
        for name, fit in fit_curves(curve.x, curve.y, curve.sigma).items():
            color, style = _STYLE[name]
            ax.plot(10**grid, fit(grid), style, color=color, lw=1.4, label=f"{name} (BIC {fit.bic:.0f})")
        verdict = verdicts[
            (verdicts["family"] == curve.family) & (verdicts["task"] == task) & (verdicts["metric"] == curve.metric)
        ]
        title = curve.metric
        if len(verdict):
            v = verdict.iloc[0]
            title += f": {v['verdict']}"
            if pd.notna(v.get("jump_low")):
                ax.axvspan(v["jump_low"], v["jump_high"], color="tab:red", alpha=0.12, label="jump, 95% interval")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks collide on narrow log ranges
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step + 1 (log scale)" if size == "step" else f"{size.replace('_', ' ')} (log scale)")
        ax.set_ylabel("score, 0 = chance, 1 = best")
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(chosen) :]:
        ax.set_visible(False)
    fig.suptitle(f"{task}: capability vs model size" + (f" ({family})" if family else ""), fontsize=11)
    fig.tight_layout()
    return fig


def capability_vs_step(table: pd.DataFrame, task: str, metrics: list[str] | None = None) -> plt.Figure:
    """Checkpoints: normalised score against training step, one line per model, one panel per metric."""
    rows = table[(table["task"] == task) & table["step"].notna()]
    if rows.empty:
        raise ValueError(f"no checkpoints (rows with a step) for task {task!r}")
    metrics = metrics or list(dict.fromkeys(rows["metric"]))
    cols = min(3, len(metrics))
    fig, axes = plt.subplots(
        math.ceil(len(metrics) / cols),
        cols,
        figsize=(4.2 * cols + 2.4, 3.4 * math.ceil(len(metrics) / cols)),
        squeeze=False,
    )
    sizes = rows.groupby("model")["parameters"].first().sort_values()
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))
    for ax, metric in zip(axes.flat, metrics):
        part = rows[rows["metric"] == metric]
        chance = part["chance"].dropna()
        for color, (model, params) in zip(colors, sizes.items()):
            line = part[part["model"] == model].sort_values("step")
            direction = line["higher_is_better"].dropna() if "higher_is_better" in line else line["value"].iloc[0:0]
            y, _, _ = normalise(
                line["value"].to_numpy(),
                float(chance.iloc[0]) if len(chance) else None,
                metric,
                bool(direction.iloc[0]) if len(direction) else None,
            )
            ax.plot(line["step"], y, "o-", color=color, ms=3, label=f"{model} ({params:,.0f})")
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel("score, 0 = chance, 1 = best")
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7, title="model (parameters)", title_fontsize=7)
    fig.suptitle(f"{task}: capability vs training step", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1 - 2.4 / (4.2 * cols + 2.4), 1))
    return fig


def scale_figures(table: pd.DataFrame, verdicts: pd.DataFrame, *, size: str = "parameters") -> dict[str, plt.Figure]:
    """Every figure of a scaling analysis by file name: capability vs size per family and task, and vs training
    step where the table has checkpoints (``probes scale`` writes them to ``figures/``)."""
    figures = {}
    for (family, task), _ in verdicts.groupby(["family", "task"]):
        stem = file_stem(f"{family}_{task}")
        figures[f"{stem}_size.png"] = capability_vs_size(table, verdicts, task, family=family, size=size)
        steps = table[(table["family"] == family) & (table["task"] == task)]
        if size != "step" and steps["step"].nunique() > 1:
            figures[f"{stem}_step.png"] = capability_vs_step(steps, task)
    return figures


def file_stem(name: str) -> str:
    """A file name from any family, model or task name (hub ids hold '/', lm-eval metrics ','): every run of
    characters other than letters, digits, '.', '-' and '_' becomes one '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "unnamed"
