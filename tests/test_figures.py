"""Figure functions for notebooks and reports: they show the table's numbers, with titles and labelled axes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.ablation_plots import effect_map, head_effect_grid, interaction_map
from analysis.probe_plots import layer_profile


def probe_results() -> pd.DataFrame:
    rows = []
    for layer, acc in enumerate([0.6, 0.8, 0.9]):
        rows.append({"model": "m", "task": "pos", "layer": layer, "probe": "logistic", "metric": "accuracy",
                     "value": acc, "ci_low": acc - 0.05, "ci_high": acc + 0.05})
        for control, v in (("control_task", 0.5), ("random_weights", 0.4)):
            rows.append({"model": "m", "task": "pos", "layer": layer, "probe": "logistic", "control": control,
                         "metric": "accuracy", "value": v})
    rows.append({"model": "m", "task": "pos", "probe": "logistic", "metric": "majority_baseline", "value": 0.3})
    return pd.DataFrame(rows)


def ablation_results() -> pd.DataFrame:
    rows = [{"model": "m", "task": "pairs", "probe": "ablation:mean", "metric": "effect", "value": 0.1 * (2 * l + h),
             "component": f"L{l}H{h}"} for l in range(2) for h in range(2)]
    rows.append({"model": "m", "task": "pairs", "probe": "ablation:mean", "metric": "effect", "value": -1.0,
                 "component": "L0.mlp"})
    rows += [{"model": "m", "task": "pairs", "probe": "ablation:mean", "metric": "interaction", "value": v,
              "component": c} for c, v in (("L0H1|L1H0", 0.3), ("L0H1|L0.mlp", -0.2), ("L1H0|L0.mlp", 0.05))]
    return pd.DataFrame(rows)


def test_layer_profile_draws_the_probe_and_its_baselines():
    fig = layer_profile(probe_results(), "pos")
    ax = fig.axes[0]
    assert ax.get_title() == "pos: logistic probe accuracy by layer"
    assert ax.get_xlabel().startswith("layer") and ax.get_ylabel() == "held-out accuracy"
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    assert list(lines["m: probe"]) == [0.6, 0.8, 0.9]
    assert list(lines["m: control task"]) == [0.5] * 3 and list(lines["m: majority class"]) == [0.3, 0.3]
    with pytest.raises(ValueError, match="no logistic results for task 'tense'"):
        layer_profile(probe_results(), "tense")


def test_effect_map_and_interactions_show_the_tables_numbers():
    grid = head_effect_grid(ablation_results())
    np.testing.assert_allclose(grid, [[0.0, 0.1], [0.2, 0.3]])
    fig = effect_map(ablation_results())
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array(), grid)
    assert fig.axes[0].get_xlabel() == "head" and "pairs" in fig.axes[0].get_title()
    fig = interaction_map(ablation_results())
    matrix = fig.axes[0].get_images()[0].get_array()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["L0H1", "L1H0", "L0.mlp"]
    assert matrix[0, 1] == matrix[1, 0] == pytest.approx(0.3) and matrix[0, 2] == pytest.approx(-0.2)
