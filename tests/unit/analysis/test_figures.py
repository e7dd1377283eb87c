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
        rows.append(
            {
                "model": "m",
                "task": "pos",
                "layer": layer,
                "probe": "logistic",
                "metric": "accuracy",
                "value": acc,
                "ci_low": acc - 0.05,
                "ci_high": acc + 0.05,
            }
        )
        for control, v in (("control_task", 0.5), ("random_weights", 0.4)):
            rows.append(
                {
                    "model": "m",
                    "task": "pos",
                    "layer": layer,
                    "probe": "logistic",
                    "control": control,
                    "metric": "accuracy",
                    "value": v,
                }
            )
    rows.append({"model": "m", "task": "pos", "probe": "logistic", "metric": "majority_baseline", "value": 0.3})
    return pd.DataFrame(rows)


def ablation_results() -> pd.DataFrame:
    rows = [
        {
            "model": "m",
            "task": "pairs",
            "probe": "ablation:mean",
            "metric": "effect",
            "value": 0.1 * (2 * l + h),
            "component": f"L{l}H{h}",
        }
        for l in range(2)
        for h in range(2)
    ]
    rows.append(
        {
            "model": "m",
            "task": "pairs",
            "probe": "ablation:mean",
            "metric": "effect",
            "value": -1.0,
            "component": "L0.mlp",
        }
    )
    rows += [
        {"model": "m", "task": "pairs", "probe": "ablation:mean", "metric": "interaction", "value": v, "component": c}
        for c, v in (("L0H1|L1H0", 0.3), ("L0H1|L0.mlp", -0.2), ("L1H0|L0.mlp", 0.05))
    ]
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


def _labelled(fig) -> None:
    """Every visible panel has a title and both axis labels (colour bars: a label)."""
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        if ax.get_label() == "<colorbar>":
            assert ax.get_ylabel() or ax.get_xlabel()
            continue
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), (
            ax.get_title(),
            ax.get_xlabel(),
            ax.get_ylabel(),
        )


def test_selectivity_and_compression_by_layer():
    from analysis.probe_plots import selectivity_and_compression

    rows = [
        {
            "model": "m",
            "task": "pos",
            "layer": l,
            "probe": "logistic",
            "control": c,
            "metric": metric,
            "value": v,
            "ci_low": v - 0.1,
            "ci_high": v + 0.1,
        }
        for l in range(3)
        for c, metric, v in (("control_task", "selectivity", 0.1 * l), ("mdl", "compression", 1 + l))
    ]
    fig = selectivity_and_compression(pd.DataFrame(rows), "m")
    _labelled(fig)
    left, right = fig.axes
    assert list(left.get_lines()[0].get_ydata()) == pytest.approx([0.0, 0.1, 0.2])
    assert list(right.get_lines()[0].get_ydata()) == [1, 2, 3]


def test_shapley_bars_and_amnesic_plot_show_the_tables_numbers():
    from analysis.ablation_plots import amnesic_plot, shapley_bars

    rows = ablation_results().to_dict(orient="records")
    rows += [
        {
            "model": "m",
            "task": "pairs",
            "probe": "ablation:mean",
            "metric": "shapley",
            "component": c,
            "value": v,
            "ci_low": v - 0.1,
            "ci_high": v + 0.1,
        }
        for c, v in (("L0H1", 0.2), ("L0.mlp", -0.7))
    ]
    fig = shapley_bars(pd.DataFrame(rows))
    _labelled(fig)
    bars = fig.axes[0].patches
    assert [b.get_width() for b in bars] == pytest.approx([0.2, -0.7, 0.1, -1.0])  # Shapley, then single effects
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["L0H1", "L0.mlp"]
    amnesic = []
    for layer in (2, 5):
        base = {"model": "m", "task": "pairs", "probe": "amnesic:leace", "layer": layer, "concept": "number"}
        amnesic += [
            {**base, "metric": "erasure_change", "value": -0.5 * layer},
            {**base, "metric": "random_erasure_change", "value": 0.01, "ci_low": -0.1, "ci_high": 0.12},
            {**base, "metric": "concept_probe_before", "value": 0.9},
            {**base, "metric": "concept_probe_after", "value": 0.5},
            {**base, "metric": "concept_majority", "value": 0.5},
        ]
    fig = amnesic_plot(pd.DataFrame(amnesic))
    _labelled(fig)
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == [-1.0, -2.5]
    with pytest.raises(ValueError, match="--erase"):
        amnesic_plot(ablation_results())


def test_notable_heads_need_a_score_to_be_named_and_their_patterns_are_drawn():
    from analysis.head_plots import notable_heads, pattern_heatmaps

    rows = [
        {"model": "m", "layer": l, "head": h, "metric": metric, "value": v}
        for l in range(2)
        for h in range(2)
        for metric, v in (
            ("prev_token", 0.9 if (l, h) == (0, 1) else 0.1),
            ("induction", 0.1),
            ("first_token", 0.6 if (l, h) == (1, 0) else 0.2),
            ("distance", l + h),
        )
    ]
    heads = notable_heads(pd.DataFrame(rows))
    assert [(l, h) for l, h, _ in heads] == [(0, 1), (1, 0), (1, 1)]  # no induction head: none scores above 0.3
    assert heads[0][2] == "top previous-token head (0.90)"
    patterns = np.random.default_rng(0).dirichlet(np.ones(4), size=(2, 2, 4))
    fig = pattern_heatmaps(["<s>", "a", "$x$", "b"], patterns, heads, model="m")
    _labelled(fig)
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array(), patterns[0, 1])
