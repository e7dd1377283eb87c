"""Attribution and circuits as figures: the attribution map beside the exact one, estimates against exact
effects, and the faithfulness curve with its random baseline."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files and notebooks; no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .ablation_plots import _select, head_effect_grid


def attribution_maps(results: pd.DataFrame, *, model: str | None = None) -> plt.Figure:
    """Every head's attribution estimate as a layer x head map, beside its exact effect where every head was
    also measured exactly (``probes attribute --exact``); one colour scale for both."""
    estimate = head_effect_grid(results, model=model, metric="attribution")
    try:
        exact = head_effect_grid(results, model=model, metric="exact_effect")
        complete = exact.shape == estimate.shape and not np.isnan(exact[~np.isnan(estimate)]).any()
    except ValueError:
        complete = False
    grids = [("attribution estimate", estimate)] + ([("exact effect", exact)] if complete else [])
    limit = max(float(np.nanmax(np.abs(g))) for _, g in grids) or 1.0
    width = max(4.0, 0.35 * estimate.shape[1] + 2)
    fig, axes = plt.subplots(1, len(grids), figsize=(width * len(grids), max(3.0, 0.18 * estimate.shape[0] + 1.5)))
    axes = np.atleast_1d(axes)
    for ax, (title, grid) in zip(axes, grids):
        im = ax.imshow(grid, aspect="auto", cmap="RdBu", vmin=-limit, vmax=limit)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=list(axes), label="change in the behaviour (its units)")
    rows = _select(results, model, metric="attribution")
    fig.suptitle(f"each head's effect: {_method_label(rows)}", fontsize=10)
    return fig


def _method_label(rows: pd.DataFrame) -> str:
    """ "atp*, mean ablation" from probe "attribution:atp*:mean", or from an ablation study's rows ("ablation:mean",
    with the method that chose its top k in their own column)."""
    labels = []
    for i, probe in enumerate(rows["probe"].astype(str)):
        parts = probe.split(":")
        method = rows["method"].iloc[i] if "method" in rows and pd.notna(rows["method"].iloc[i]) else parts[1]
        labels.append(f"{method}, {parts[-1]} ablation")
    return "; ".join(dict.fromkeys(labels))


def estimate_vs_exact(results: pd.DataFrame, *, model: str | None = None) -> plt.Figure:
    """The components (or edges) measured exactly: estimate against exact effect (95% CI), with the diagonal."""
    exact = _select(
        results, model, "no exact effects in the results (probes attribute verifies some)", metric="exact_effect"
    )
    estimates = _select(results, model, metric="attribution")
    by_name = estimates.drop_duplicates("component").set_index("component")["value"]
    # the verified rows carry their estimate; a full exact sweep's rows are matched to the attribution rows
    stated = (
        pd.to_numeric(exact["estimate"], errors="coerce") if "estimate" in exact else pd.Series(np.nan, exact.index)
    )
    looked_up = exact["component"].map(by_name).astype(float)
    exact = exact.assign(estimate=stated.fillna(looked_up)).dropna(subset=["estimate"])
    x = exact["value"].to_numpy(dtype=float)
    y = exact["estimate"].to_numpy(dtype=float)
    err = np.vstack([x - exact["ci_low"].to_numpy(dtype=float), exact["ci_high"].to_numpy(dtype=float) - x])
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.errorbar(x, y, xerr=np.nan_to_num(err), fmt="o", ms=4, capsize=2, color="tab:blue", alpha=0.8)
    both = np.concatenate([x, y]) if len(x) else np.array([0.0, 1.0])
    low, high = float(np.nanmin(both)), float(np.nanmax(both))
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="black", lw=0.8, label="estimate = exact")
    order = np.argsort(-np.abs(y - x))[:3]
    for i in order:  # the largest misses, named
        ax.annotate(
            str(exact["component"].iloc[i]), (x[i], y[i]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    ax.set_xlabel("exact effect (95% CI over examples)")
    ax.set_ylabel("attribution estimate")
    ax.set_title("re-measured exactly: the top and a random sample", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def faithfulness_plot(results: pd.DataFrame, *, model: str | None = None) -> plt.Figure:
    """Faithfulness of the top-k edges' circuit against k (log), random circuits of each size (mean, range), the
    target and the smallest faithful circuit."""
    top = _select(results, model, "no faithfulness rows (run probes circuit)", metric="faithfulness").sort_values(
        "edges"
    )
    random = _select(results, model, metric="random_faithfulness").sort_values("edges")
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    ax.plot(top["edges"].astype(float), top["value"], "o-", ms=3, color="tab:blue", label="top-k edges by attribution")
    if len(random):
        ax.fill_between(
            random["edges"].astype(float),
            random["ci_low"].astype(float),
            random["ci_high"].astype(float),
            color="tab:gray",
            alpha=0.3,
            label="random circuits (range)",
        )
        ax.plot(random["edges"].astype(float), random["value"], "s--", ms=3, color="tab:gray")
    share = _select(results, model, metric="circuit_share")
    edges = _select(results, model, metric="circuit_edges")
    if len(share) and "target" in share and pd.notna(share["target"].iloc[0]):
        ax.axhline(float(share["target"].iloc[0]), color="tab:red", lw=0.8, ls=":", label="target")
    if len(edges) and np.isfinite(float(edges["value"].iloc[0])):
        k = float(edges["value"].iloc[0])
        s = share.iloc[0]
        ax.axvline(k, color="tab:red", lw=0.8, label=f"smallest faithful: {int(k)} edges ({s['value']:.2%})")
    ax.set_xscale("log")
    ax.set_xlabel("edges kept (every other edge removed)")
    ax.set_ylabel("faithfulness (share of the behaviour kept)")
    ax.axhline(0, color="black", lw=0.5)
    ax.axhline(1, color="black", lw=0.5)
    task = ", ".join(sorted(top["task"].astype(str).unique()))
    ax.set_title(f"circuits of {task}", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
