"""Summary tables of a results table: per task, the probe's layer profile; per behaviour, the ablation study."""

from __future__ import annotations

import pandas as pd

PROBES = ("logistic", "ridge")  # the probe kinds a suite runs (probes.suite.PROBES)


def ablation_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per model, behaviour and ablation kind: clean value, largest single effect, additivity R^2 and its CI."""
    rows = []
    ablations = results[results["probe"].astype(str).str.startswith("ablation:")]
    for (model, task, probe), g in ablations.groupby(["model", "task", "probe"], sort=False):
        effects = g[g["metric"] == "effect"]
        top = effects.loc[effects["value"].abs().idxmax()] if len(effects) else None
        r2 = g[g["metric"] == "additivity_r2"]
        clean = g[g["metric"].astype(str).str.startswith("clean_")]
        rows.append({
            "model": model, "behaviour": task, "ablation": probe.split(":", 1)[1],
            "clean": float(clean["value"].iloc[0]) if len(clean) else None,
            "largest_effect": f"{top['component']} {top['value']:+.4f}" if top is not None else None,
            "additivity_r2": float(r2["value"].iloc[0]) if len(r2) else None,
            "r2_ci": f"[{r2['ci_low'].iloc[0]:.3f}, {r2['ci_high'].iloc[0]:.3f}]" if len(r2) else None,
        })
    return pd.DataFrame(rows)


def profile_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per model and task: best layer, its accuracy and CI, expected layer, baselines, selectivity, compression."""
    rows = []
    probing = results[results["control"].isna() & results["probe"].isin(PROBES)]
    for (model, task, probe), g in probing.groupby(["model", "task", "probe"], sort=False):
        acc = g[g["metric"] == "accuracy"].set_index("layer")
        scalar = g[g["layer"].isna()].set_index("metric")["value"]
        best = int(scalar.get("best_layer", acc["value"].idxmax()))
        row = {"model": model, "task": task, "probe": probe, "best_layer": best,
               "accuracy": acc.loc[best, "value"], "ci": f"[{acc.loc[best, 'ci_low']:.3f}, {acc.loc[best, 'ci_high']:.3f}]",
               "expected_layer": scalar.get("expected_layer"), "majority": scalar.get("majority_baseline")}
        ctl = results[(results["model"] == model) & (results["task"] == task) & (results["probe"] == probe)]
        pick = lambda control, metric: ctl[(ctl["control"] == control) & (ctl["metric"] == metric) & (ctl["layer"] == best)]["value"]
        for name, control, metric in (("random_init", "random_weights", "accuracy"), ("selectivity", "control_task", "selectivity"),
                                      ("compression", "mdl", "compression")):
            v = pick(control, metric)
            row[name] = float(v.iloc[0]) if len(v) else None
        rows.append(row)
    return pd.DataFrame(rows)
