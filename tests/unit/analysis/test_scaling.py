"""The scaling analysis on curves with known answers, the readers, and the mirage metrics (no torch needed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from helpers import SIZES, curve_rows, imports_without, lm_eval_file, per_token

from analysis.mirage import aggregate, brier, chance_levels, edit_distance, score_examples, token_accuracy
from analysis.scale_table import ScaleTableError, read_lm_eval, read_scale_csv, scale_table
from analysis.scaling import Curve, analyse, bigbench_measures, normalise, predict_largest

X = np.log10(SIZES)


def sigmoid(x, lo, hi, x0, w):
    return lo + (hi - lo) / (1 + np.exp(-(x - x0) / w))


def verdict_of(verdicts: pd.DataFrame, task: str, metric: str) -> pd.Series:
    return verdicts[(verdicts["task"] == task) & (verdicts["metric"] == metric)].iloc[0]


# --- BIG-bench's measures -----------------------------------------------------------------------------------------


def test_bigbench_measures_hand_worked():
    # y = 0, .1, .1, .9, 1: I = +1; dy^2 = .01, 0, .64, .01 -> median .01, mean .165
    m = bigbench_measures(np.array([0.0, 0.1, 0.1, 0.9, 1.0]))
    assert m["I"] == pytest.approx(1.0)
    assert m["breakthroughness"] == pytest.approx(1.0 / 0.1)
    assert m["linearity"] == pytest.approx(1.0 / math.sqrt(0.165))


def test_bigbench_measures_sign_follows_the_order_of_max_and_min():
    m = bigbench_measures(np.array([1.0, 0.9, 0.1, 0.1, 0.0]))
    assert m["I"] == pytest.approx(-1.0) and m["breakthroughness"] == pytest.approx(-10.0)
    assert bigbench_measures(np.array([0.3, 0.3, 0.3]))["I"] == 0.0


def test_normalise_maps_chance_to_zero_and_best_to_one_for_both_directions():
    y, _, _ = normalise(np.array([0.25, 0.625, 1.0]), 0.25, "mc_accuracy")
    assert y == pytest.approx([0, 0.5, 1])
    y, _, _ = normalise(np.array([3.0, 1.5, 0.0]), 3.0, "token_edit_distance")  # lower is better
    assert y == pytest.approx([0, 0.5, 1])


# --- curves with known answers ----------------------------------------------------------------------------------------


def test_exact_match_of_a_smooth_per_token_accuracy_is_called_a_mirage():
    p = per_token()
    rows = curve_rows("arith", "token_accuracy", p) + curve_rows("arith", "exact_match", p**8)
    verdicts = analyse(pd.DataFrame(rows), n_boot=50)
    assert verdict_of(verdicts, "arith", "exact_match")["verdict"] == "mirage"
    assert verdict_of(verdicts, "arith", "token_accuracy")["verdict"] == "smooth"
    assert "token_accuracy" in verdict_of(verdicts, "arith", "exact_match")["reading"]


@pytest.mark.parametrize("x0", [5.3, 6.0, 7.1])
def test_a_true_sigmoid_jump_is_found_with_its_location_inside_the_interval(x0):
    rows = curve_rows("jump", "exact_match", sigmoid(X, 0.0, 0.9, x0, 0.08)) + curve_rows(
        "jump", "token_accuracy", sigmoid(X, 0.1, 0.95, x0, 0.08)
    )
    verdicts = analyse(pd.DataFrame(rows), n_boot=100)
    for metric in ("exact_match", "token_accuracy"):
        v = verdict_of(verdicts, "jump", metric)
        assert v["verdict"] == "jump", v["reading"]
        assert v["jump_low"] <= 10**x0 <= v["jump_high"]
        # the interval lies between the sizes either side of the jump
        assert v["jump_high"] / v["jump_low"] < 10**0.75
    assert "survives" in verdict_of(verdicts, "jump", "exact_match")["reading"]


def test_a_power_law_is_smooth_and_predictable():
    rows = curve_rows("know", "token_accuracy", 0.95 - 0.8 * (SIZES / 1e4) ** -0.3)
    v = analyse(pd.DataFrame(rows), n_boot=20).iloc[0]
    assert v["verdict"] == "smooth"
    assert v["best_smooth"] == "power_law"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_curves_keep_their_verdicts(seed):
    rng = np.random.default_rng(seed)
    se = 0.02
    p = np.clip(per_token() + se * rng.standard_normal(len(SIZES)), 0, 1)
    jump = np.clip(sigmoid(X, 0.05, 0.9, 6.0, 0.08) + se * rng.standard_normal(len(SIZES)), 0, 1)
    power = np.clip(0.95 - 0.8 * (SIZES / 1e4) ** -0.3 + se * rng.standard_normal(len(SIZES)), 0, 1)
    rows = (
        curve_rows("arith", "token_accuracy", p, stderr=se)
        + curve_rows("arith", "exact_match", p**8, stderr=se)
        + curve_rows("jump", "exact_match", jump, stderr=se)
        + curve_rows("know", "token_accuracy", power, stderr=se)
    )
    verdicts = analyse(pd.DataFrame(rows), n_boot=100, seed=seed)
    assert verdict_of(verdicts, "arith", "exact_match")["verdict"] == "mirage"
    assert verdict_of(verdicts, "know", "token_accuracy")["verdict"] == "smooth"
    v = verdict_of(verdicts, "jump", "exact_match")
    assert v["verdict"] == "jump" and v["jump_low"] <= 10**6.0 <= v["jump_high"]


def test_per_example_scores_drive_the_bootstrap():
    rng = np.random.default_rng(0)
    accuracy = sigmoid(X, 0.02, 0.95, 6.0, 0.05)
    examples = pd.DataFrame(
        [
            {"model": f"m{i}", "task": "jump", "exact_match": float(rng.random() < a)}
            for i, a in enumerate(accuracy)
            for _ in range(400)
        ]
    )
    table = examples.groupby("model", sort=False)["exact_match"].agg(["mean", "sem", "size"]).reset_index()
    rows = [
        {
            "model": r.model,
            "parameters": SIZES[i],
            "task": "jump",
            "metric": "exact_match",
            "value": r.mean,
            "stderr": r.sem,
            "n": r.size,
        }
        for i, r in enumerate(table.itertuples())
    ]
    v = analyse(pd.DataFrame(rows), examples=examples, n_boot=100).iloc[0]
    assert v["verdict"] == "jump" and v["jump_low"] <= 10**6.0 <= v["jump_high"]


def test_four_sizes_are_not_enough_to_tell_a_jump():
    rows = [
        r
        for r in curve_rows("few", "exact_match", sigmoid(X, 0, 0.9, 6.3, 0.05))
        if r["model"] in {"m0", "m2", "m5", "m7"}
    ]
    v = analyse(pd.DataFrame(rows)).iloc[0]
    assert v["verdict"] == "not enough sizes"
    assert np.isfinite(v["breakthroughness"])


def test_prediction_of_the_largest_model_is_exact_on_a_line():
    y = 0.1 + 0.2 * (X - 4)
    curve = Curve("f", "t", "token_accuracy", SIZES, y, np.full(8, 0.01), 0.0)
    predicted, actual = predict_largest(curve)
    assert predicted == pytest.approx(actual, abs=1e-6)


# --- the scale table and its readers ---------------------------------------------------------------------------------


def test_scale_table_errors_name_the_problem():
    rows = curve_rows("t", "exact_match", per_token())
    with pytest.raises(ScaleTableError, match="at least 3"):
        scale_table(rows[:2])
    with pytest.raises(ScaleTableError, match="duplicate"):
        scale_table(rows + rows[:1])
    with pytest.raises(ScaleTableError, match="outside its range.*percentage"):
        scale_table([{**r, "value": r["value"] * 100} for r in rows])
    with pytest.raises(ScaleTableError, match="no parameters for model"):
        scale_table([{k: v for k, v in r.items() if k != "parameters"} for r in rows])
    with pytest.raises(ScaleTableError, match="lacks column"):
        scale_table([{"model": "a"}])


def test_lm_eval_reader(tmp_path):
    sizes = {"EleutherAI/pythia-70m": 70e6, "EleutherAI/pythia-160m": 160e6, "EleutherAI/pythia-410m": 410e6}
    files = [
        lm_eval_file(tmp_path / f"r{i}.json", m, None, 0.4 + 0.05 * i, int(s)) for i, (m, s) in enumerate(sizes.items())
    ]
    table = read_lm_eval(files, family="pythia")
    arc = table[(table["task"] == "arc_easy") & (table["metric"] == "acc")]
    assert list(arc["parameters"]) == [70e6, 160e6, 410e6]
    assert list(arc["value"]) == pytest.approx([0.4, 0.45, 0.5])
    assert set(arc["stderr"]) == {0.01} and set(arc["n"]) == {2376}
    norm = table[table["metric"] == "acc_norm"]
    assert norm["stderr"].isna().all()  # "N/A" is not a number
    assert set(table[table["task"] == "gsm8k"]["metric"]) == {"exact_match,strict-match"}
    assert set(table["family"]) == {"pythia"}


def test_lm_eval_reader_checkpoints_old_keys_and_given_sizes(tmp_path):
    files = [
        lm_eval_file(tmp_path / f"s{step}.json", "EleutherAI/pythia-160m", f"step{step}", a, None, old=True)
        for step, a in ((1000, 0.3), (10000, 0.4), (143000, 0.45))
    ]
    unnamed = [lm_eval_file(tmp_path / "u.json", "org/mymodel", None, 0.3, None)]
    with pytest.raises(ScaleTableError, match=r"give --sizes FILE with \{\"org/mymodel\": 160000000\}"):
        read_lm_eval(unnamed)
    with pytest.raises(ScaleTableError, match="1 size"):  # one model (its size read from its name): not a family
        read_lm_eval(files)
    table = read_lm_eval(files, sizes={"EleutherAI/pythia-160m": 160e6}, size="step")
    assert sorted(table["step"].unique()) == [1000, 10000, 143000]
    assert set(table["model"]) == {"EleutherAI/pythia-160m"} and set(table["parameters"]) == {160e6}
    assert set(table["metric"]) == {"acc", "acc_norm"}
    verdicts = analyse(table, size="step", n_boot=10)
    assert set(verdicts["family"]) == {"EleutherAI/pythia:EleutherAI/pythia-160m"}
    assert set(verdicts["verdict"]) == {"not enough sizes"}


def test_lm_eval_reader_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"scores": 1}')
    with pytest.raises(ScaleTableError, match="no 'results' dict"):
        read_lm_eval([bad])
    bad.write_text("{not json")
    with pytest.raises(ScaleTableError, match="not JSON"):
        read_lm_eval([bad])


def test_csv_readers_tidy_and_wide_give_the_same_table(tmp_path):
    p = per_token()
    tidy = pd.DataFrame(curve_rows("arith", "token_accuracy", p) + curve_rows("arith", "exact_match", p**8))
    tidy.to_csv(tmp_path / "tidy.csv", index=False)
    wide = pd.DataFrame(
        {
            "model": [f"m{i}" for i in range(8)],
            "parameters": SIZES,
            "arith_token_accuracy": p,
            "arith_exact_match": p**8,
        }
    )
    wide.to_csv(tmp_path / "wide.csv", index=False)
    a, b = read_scale_csv(tmp_path / "tidy.csv"), read_scale_csv(tmp_path / "wide.csv")
    key = ["model", "metric"]
    merged = a.merge(b, on=key, suffixes=("_tidy", "_wide"))
    assert len(merged) == 16
    assert merged["value_tidy"].to_numpy() == pytest.approx(merged["value_wide"].to_numpy())
    wide.rename(columns={"arith_exact_match": "arith_score"}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ScaleTableError, match="'arith_score' is not task_metric"):
        read_scale_csv(tmp_path / "bad.csv")


# --- per-example metrics ----------------------------------------------------------------------------------------------


def test_edit_distance_and_token_accuracy_by_hand():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], [1, 2]) == 2 and edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert token_accuracy(list("9750"), list("9751")) == 0.75
    assert token_accuracy(list("97"), list("9750")) == 0.5  # missing tokens count as wrong


def test_brier_by_hand():
    # option probabilities .5, .25, .25 with the first right: (.5)^2 + 2 (.25)^2 = .375
    assert brier(np.log([0.5, 0.25, 0.25]), 0) == pytest.approx(0.375)
    assert brier(np.log([2.0, 1.0, 1.0]), 0) == pytest.approx(0.375)  # log-probs are renormalised over options
    assert brier([0.0, -1e9], 0) == pytest.approx(0.0) and brier([-1e9, 0.0], 0) == pytest.approx(2.0)


def test_score_examples_and_aggregate():
    outputs = pd.DataFrame(
        [
            {
                "model": "m",
                "task": "t",
                "target": list("9750"),
                "generated": list("9750"),
                "target_logprob": -0.1,
                "option_logprobs": [-0.1, -3.0],
                "answer_index": 0,
            },
            {
                "model": "m",
                "task": "t",
                "target": list("9750"),
                "generated": list("9751"),
                "target_logprob": -2.0,
                "option_logprobs": [-2.0, -0.5],
                "answer_index": 0,
            },
        ]
    )
    scored = score_examples(outputs)
    assert list(scored["exact_match"]) == [1.0, 0.0]
    assert list(scored["token_accuracy"]) == [1.0, 0.75]
    assert list(scored["token_edit_distance"]) == [0.0, 1.0]
    assert list(scored["mc_accuracy"]) == [1.0, 0.0]
    rows = aggregate(scored, {"t": chance_levels(4, 10, 2)}).set_index("metric")
    assert rows.loc["token_accuracy", "value"] == pytest.approx(0.875)
    assert rows.loc["token_accuracy", "stderr"] == pytest.approx(np.std([1.0, 0.75], ddof=1) / math.sqrt(2))
    assert rows.loc["exact_match", "chance"] == pytest.approx(1e-4)
    assert rows.loc["brier", "chance"] == pytest.approx(0.5)


def test_a_curve_that_falls_with_size_beyond_its_errors_is_irregular():
    # one seed per size, some sizes learned the task and some stalled: no curve shape to call
    values = [0.13, 0.0, 0.18, 0.10, 1.0, 0.13, 1.0, 1.0]
    v = analyse(pd.DataFrame(curve_rows("noisy", "exact_match", values, stderr=0.015)), n_boot=10).iloc[0]
    assert v["verdict"] == "irregular"
    assert "more seeds" in v["reading"] and v["chi2_per_dof"] > 10


def test_seeds_of_one_size_are_averaged_with_their_spread_in_the_error():
    from analysis.scaling import curves

    rows = []
    for seed, shift in ((0, -0.1), (1, 0.1)):
        for r in curve_rows("t", "token_accuracy", per_token(), stderr=0.01):
            rows.append({**r, "model": f"{r['model']}-s{seed}", "value": r["value"] + shift * (r["model"] == "m3")})
    (curve,) = curves(pd.DataFrame(rows))
    assert len(curve.size) == 8
    assert curve.value[3] == pytest.approx(per_token()[3])
    # values p3 - .1 and p3 + .1: var_between .02, / 2 -> .01; measurement .01^2 * 2 / 4
    assert curve.stderr[3] == pytest.approx(math.sqrt(0.01 + 0.0002 / 4))
    assert curve.stderr[0] == pytest.approx(math.sqrt(0.0002 / 4))


def test_the_analysis_package_does_not_import_torch():
    imports_without(
        "import analysis.scaling, analysis.scale_table, analysis.scale_plots, analysis.report, analysis.mirage", "torch"
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_curve_that_does_not_move_beyond_its_errors_is_flat_and_a_steady_fall_declines(seed):
    rng = np.random.default_rng(seed)
    flat = 0.6 + rng.normal(0, 0.01, len(SIZES))
    falling = np.linspace(0.8, 0.4, len(SIZES)) + rng.normal(0, 0.01, len(SIZES))
    rows = curve_rows("flat", "token_accuracy", flat, stderr=0.01) + curve_rows(
        "falling", "token_accuracy", falling, stderr=0.01
    )
    verdicts = analyse(pd.DataFrame(rows), n_boot=10)
    assert verdict_of(verdicts, "flat", "token_accuracy")["verdict"] == "flat"
    assert not verdict_of(verdicts, "flat", "token_accuracy")["at_chance"]  # flat, but far from chance
    assert verdict_of(verdicts, "falling", "token_accuracy")["verdict"] == "declines"


def test_backtest_predicts_each_larger_model_from_the_smaller_ones():
    from analysis.scaling import backtest, curves

    line = 0.1 + 0.1 * (X - X[0])  # exactly linear in log size: every back-test error is 0
    curve = curves(pd.DataFrame(curve_rows("t", "token_accuracy", line, stderr=0.01)))[0]
    errors = backtest(curve)
    assert len(errors) == len(SIZES) - 3 and max(map(abs, errors)) < 1e-6
    bent = line.copy()
    bent[-1] += 0.2  # the largest model beats the trend by 0.2: only the last back-test misses, by -0.2
    errors = backtest(curves(pd.DataFrame(curve_rows("t", "token_accuracy", bent, stderr=0.01)))[0])
    assert errors[-1] == pytest.approx(-0.2, abs=1e-6) and max(map(abs, errors[:-1])) < 1e-6


def test_a_step_axis_keeps_step_zero():
    from analysis.scaling import size_axis

    assert list(size_axis(np.array([0, 9, 99]), "step")) == pytest.approx([0, 1, 2])
    steps = [0, *SIZES[:-1].round()]
    rows = [{**r, "model": "m", "step": s} for r, s in zip(curve_rows("t", "token_accuracy", per_token()), steps)]
    verdicts = analyse(pd.DataFrame(rows), size="step", n_boot=10)
    assert np.isfinite(verdicts[["first", "last", "I"]].to_numpy(float)).all()
