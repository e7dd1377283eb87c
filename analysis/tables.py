"""Summary tables of a results table: per task, the probe's layer profile; per behaviour, the ablation study.

Numbers stay numbers (a CI is two columns, ``*_low`` and ``*_high``) until they are shown:
``for_display`` writes them as text for a terminal or a report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PROBES = ("logistic", "ridge")  # the probe kinds a suite runs


def ablation_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per model, behaviour and ablation kind: clean value, the largest single effect and its component, and the
    additivity R^2 with its CI."""
    rows = []
    ablations = results[results["probe"].astype(str).str.startswith("ablation:")]
    keys = ["model", "task", "probe"]
    for key, g in ablations.groupby(keys, sort=False):
        ident = dict(zip(keys, key))
        effects = g[g["metric"] == "effect"]
        top = effects.loc[effects["value"].abs().idxmax()] if len(effects) else None
        r2 = g[g["metric"] == "additivity_r2"]
        clean = g[g["metric"].astype(str).str.startswith("clean_")]
        rows.append(
            {
                "model": ident["model"],
                "behaviour": ident["task"],
                "ablation": str(ident["probe"]).split(":", 1)[1],
                "clean": float(clean["value"].iloc[0]) if len(clean) else np.nan,
                "largest_component": top["component"] if top is not None else None,
                "largest_effect": float(top["value"]) if top is not None else np.nan,
                "additivity_r2": float(r2["value"].iloc[0]) if len(r2) else np.nan,
                "r2_ci_low": float(r2["ci_low"].iloc[0]) if len(r2) else np.nan,
                "r2_ci_high": float(r2["ci_high"].iloc[0]) if len(r2) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def profile_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per model, task and probe: best layer, its accuracy and CI, expected layer, baselines, selectivity,
    compression."""
    rows = []
    probing = results[results["control"].isna() & results["probe"].isin(PROBES)]
    keys = ["model", "task", "probe"]
    for key, g in probing.groupby(keys, sort=False):
        ident = dict(zip(keys, key))
        acc = g[g["metric"] == "accuracy"].set_index("layer")
        scalar = g[g["layer"].isna()].set_index("metric")["value"]
        best = int(scalar.get("best_layer", acc["value"].idxmax()))
        row = {
            **ident,
            "best_layer": best,
            "accuracy": float(acc.loc[best, "value"]),
            "ci_low": float(acc.loc[best, "ci_low"]),
            "ci_high": float(acc.loc[best, "ci_high"]),
            "expected_layer": scalar.get("expected_layer"),
            "majority": scalar.get("majority_baseline"),
        }
        same = np.ones(len(results), dtype=bool)
        for column, value in ident.items():
            same &= (results[column] == value).to_numpy()
        ctl = results[same]
        for name, control, metric in (
            ("random_init", "random_weights", "accuracy"),
            ("selectivity", "control_task", "selectivity"),
            ("compression", "mdl", "compression"),
        ):
            v = ctl[(ctl["control"] == control) & (ctl["metric"] == metric) & (ctl["layer"] == best)]["value"]
            row[name] = float(v.iloc[0]) if len(v) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def for_display(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The table with each ``X_low`` / ``X_high`` pair (and ``ci_low`` / ``ci_high``) as one "[low, high]" text
    column and each component with its effect as one column, for printing; the numbers are rounded to ``digits``."""
    shown = table.copy()
    for low in [c for c in shown.columns if c.endswith("_low")]:
        stem, high = low[: -len("_low")], low[: -len("_low")] + "_high"
        if high not in shown.columns:
            continue
        name = "ci" if stem == "ci" else stem
        text = [
            f"[{lo:.{digits}f}, {hi:.{digits}f}]" if pd.notna(lo) and pd.notna(hi) else None
            for lo, hi in zip(shown[low], shown[high])
        ]
        at = shown.columns.get_loc(low)
        shown = shown.drop(columns=[low, high])
        shown.insert(at, name, text)
    if {"largest_component", "largest_effect"} <= set(shown.columns):
        text = [
            f"{c} {e:+.4f}" if c is not None and pd.notna(e) else None
            for c, e in zip(shown["largest_component"], shown["largest_effect"])
        ]
        at = shown.columns.get_loc("largest_component")
        shown = shown.drop(columns=["largest_component", "largest_effect"])
        shown.insert(at, "largest_effect", text)
    return shown.round(digits)
