"""Probe accuracy by layer with its baselines: what the layer profile of a probe suite looks like."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files and notebooks; no display needed
import matplotlib.pyplot as plt
import pandas as pd

from .results import tidy


def layer_profile(results: pd.DataFrame, task: str, *, model: str | None = None, probe: str = "logistic") -> plt.Figure:
    """Held-out accuracy by layer (95% CI band), beside the control task, the random-weights model and the
    majority class, for one task (and model) of a probe suite's results table."""
    results = tidy(results)
    rows = results[(results["task"] == task) & (results["probe"] == probe)]
    if model is not None:
        rows = rows[rows["model"] == model]
    if rows.empty:
        raise ValueError(f"no {probe} results for task {task!r}" + (f" and model {model!r}" if model else ""))
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, group in rows.groupby("model", sort=False):
        acc = group[(group["metric"] == "accuracy") & group["control"].isna()].sort_values("layer")
        (line,) = ax.plot(acc["layer"], acc["value"], "o-", label=f"{name}: probe")
        ax.fill_between(
            acc["layer"].astype(float),
            acc["ci_low"].astype(float),
            acc["ci_high"].astype(float),
            color=line.get_color(),
            alpha=0.2,
        )
        for control, style in (("control_task", "--"), ("random_weights", ":")):
            base = group[(group["metric"] == "accuracy") & (group["control"] == control)].sort_values("layer")
            if len(base):
                ax.plot(
                    base["layer"],
                    base["value"],
                    style,
                    color=line.get_color(),
                    label=f"{name}: {control.replace('_', ' ')}",
                )
        majority = group[group["metric"] == "majority_baseline"]["value"]
        if len(majority):
            ax.axhline(
                float(majority.iloc[0]), color=line.get_color(), lw=0.8, alpha=0.6, label=f"{name}: majority class"
            )
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"{task}: {probe} probe accuracy by layer", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def selectivity_and_compression(results: pd.DataFrame, model: str, *, probe: str = "logistic") -> plt.Figure:
    """Two panels for one model, one line per task: selectivity (task accuracy minus control-task accuracy, 95% CI)
    and MDL compression (uniform code length / online code length) by layer."""
    rows = tidy(results)
    rows = rows[(rows["model"] == model) & (rows["probe"] == probe)]
    panels = [
        ("selectivity", "control_task", "selectivity (accuracy points)", "task - control task accuracy"),
        ("compression", "mdl", "MDL compression (x)", "uniform / online code length"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for ax, (metric, control, ylabel, title) in zip(axes, panels):
        part = rows[(rows["metric"] == metric) & (rows["control"] == control)]
        for task, group in part.groupby("task", sort=False):
            group = group.sort_values("layer")
            (line,) = ax.plot(group["layer"], group["value"], "o-", ms=3, label=str(task))
            if group["ci_low"].notna().any():
                ax.fill_between(
                    group["layer"].astype(float),
                    group["ci_low"].astype(float),
                    group["ci_high"].astype(float),
                    color=line.get_color(),
                    alpha=0.15,
                )
        ax.axhline(0 if metric == "selectivity" else 1, color="gray", lw=0.8)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}" if not part.empty else f"{title}: not measured", fontsize=10)
        if not part.empty:
            ax.legend(fontsize=7)
    fig.suptitle(f"{model}: does the probe read the representation, not memorise? ({probe} probe)", fontsize=11)
    fig.tight_layout()
    return fig
