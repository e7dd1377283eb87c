"""Shapley values, interaction indices, additivity, LEACE erasure, the ablation study, its CLI and suite entries."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.results import read_results
from probes.causal.behaviours import MinimalPairs, make_behaviour
from probes.causal.erasure import LeaceEraser, amnesic_study, random_subspace_edit, token_features
from probes.causal.shapley import (
    additivity,
    exact_interaction_index,
    exact_shapley,
    interaction_indices,
    shapley_values,
)
from probes.causal.study import ablation_study
from probes.cli import main
from probes.pipelines.ablation_study import run_ablation
from probes.pipelines.specs import AblationSpec, SpecError, SuiteSpec, make
from probes.probing.datasets import agreement_pairs, generate
from probes.probing.linear import fit_layers
from probes.runtime.run import RunError


def validate(raw: dict, where: str = "suite") -> SuiteSpec:
    return make(SuiteSpec, raw, where)


def game(weights: dict, pair_bonus: dict | None = None, n_examples: int = 3):
    """A value function over subsets: additive weights plus optional pairwise terms, identical on every example."""
    pair_bonus = pair_bonus or {}

    def values(subsets):
        out = []
        for s in subsets:
            v = sum(weights[p] for p in s) + sum(b for pair, b in pair_bonus.items() if set(pair) <= s)
            out.append(np.full(n_examples, float(v)))
        return np.stack(out)

    return values


PLAYERS = ["a", "b", "c", "d", "e"]
WEIGHTS = dict(zip(PLAYERS, [1.0, -2.0, 0.5, 3.0, 0.0]))


def test_shapley_of_an_additive_game_is_each_players_weight():
    result = shapley_values(game(WEIGHTS), PLAYERS, n_permutations=4)
    np.testing.assert_allclose(result.values, list(WEIGHTS.values()), atol=1e-12)


def test_sampled_shapley_converges_to_the_exact_values_and_keeps_efficiency():
    bonus = {("a", "b"): 4.0, ("c", "d"): -3.0, ("a", "e"): 1.5}
    values = game(WEIGHTS, bonus)
    exact = exact_shapley(values, PLAYERS)
    # hand-worked: a pair's bonus is split equally between its two members
    np.testing.assert_allclose(exact, [1 + 2 + 0.75, -2 + 2, 0.5 - 1.5, 3 - 1.5, 0.75], atol=1e-12)
    result = shapley_values(values, PLAYERS, n_permutations=400, seed=1)
    assert np.abs(result.values - exact).max() < 4 * result.stderr.max() + 1e-9
    assert result.values.sum() == pytest.approx(result.full_effect)  # efficiency, exactly, for any sample
    small = shapley_values(values, PLAYERS, n_permutations=2, seed=5)
    assert small.values.sum() == pytest.approx(small.full_effect)


def test_interaction_index_matches_enumeration():
    bonus = {("a", "b"): 4.0, ("c", "d"): -3.0}
    values = game(WEIGHTS, bonus)
    assert exact_interaction_index(values, PLAYERS, 0, 1) == pytest.approx(4.0)
    assert exact_interaction_index(values, PLAYERS, 0, 2) == pytest.approx(0.0)
    sampled = interaction_indices(values, PLAYERS, n_samples=8)
    assert sampled.loc["a", "b"] == pytest.approx(4.0) and sampled.loc["c", "d"] == pytest.approx(-3.0)
    assert sampled.loc["a", "c"] == pytest.approx(0.0)
    # a three-way unanimity term of weight 6: the index of each of its pairs is 6 / (3 - 1) (hand-worked:
    # the pair's second difference is 6 when c is already ablated, which happens before {a, b} half the time)
    triple = lambda subsets: np.stack([np.full(2, 6.0 * ({"a", "b", "c"} <= s)) for s in subsets])
    exact = exact_interaction_index(triple, PLAYERS, 0, 1)
    assert exact == pytest.approx(3.0)
    est = interaction_indices(triple, PLAYERS, n_samples=4000, seed=0).loc["a", "b"]
    assert est == pytest.approx(exact, abs=0.25)


def test_additivity_is_one_for_an_additive_game_and_low_for_an_interacting_one():
    subsets = [frozenset(c) for r in (2, 3, 4, 5) for c in combinations(PLAYERS, r)]
    additive = additivity(game(WEIGHTS), PLAYERS, subsets, n_boot=20)
    assert additive.r2 == pytest.approx(1.0)
    assert additive.sum_of_singles == pytest.approx(sum(WEIGHTS.values()))
    pure = game(dict.fromkeys(PLAYERS, 0.0), {("a", "b"): 5.0, ("c", "d"): -5.0, ("b", "e"): 3.0})
    assert additivity(pure, PLAYERS, subsets, n_boot=20).r2 < 0.1


def test_additivity_ci_bootstraps_examples():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(64,))

    def values(subsets):  # additive on average, with per-example interaction noise
        return np.stack([np.full(64, sum(WEIGHTS[p] for p in s)) + (len(s) >= 2) * noise * len(s) for s in subsets])

    subsets = [frozenset(c) for r in (2, 3, 4) for c in combinations(PLAYERS, r)]
    result = additivity(values, PLAYERS, subsets, n_boot=200)
    assert result.ci_low <= result.r2 <= result.ci_high
    assert result.ci_high - result.ci_low > 0


# --- LEACE ---------------------------------------------------------------------------------------------


def test_leace_leaves_no_linear_signal_and_moves_the_least():
    rng = np.random.default_rng(0)
    n, d = 1200, 12
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, d)) + np.eye(3, d)[y] * 3.0  # classes linearly separable along the first dims
    X = X @ rng.normal(size=(d, d))  # correlated features
    eraser = LeaceEraser.fit(X, y)
    assert eraser.rank == 2
    erased = eraser(torch.tensor(X))
    onehot = np.eye(3)[y]
    cross = (erased.numpy() - erased.numpy().mean(0)).T @ (onehot - onehot.mean(0)) / n
    assert np.abs(cross).max() < 1e-8  # zero cross-covariance: LEACE's guarantee
    before = fit_layers(torch.tensor(X, dtype=torch.float32)[None], y.astype(str), Cs=[1.0])
    after = fit_layers(erased.float()[None], y.astype(str), Cs=[1.0])
    majority = np.bincount(y).max() / n
    assert before.accuracy(torch.tensor(X, dtype=torch.float32)[None], y.astype(str))[0] > 0.9
    assert after.accuracy(erased.float()[None], y.astype(str))[0] <= majority + 0.02
    # among erasers with that guarantee, LEACE moves the data least: a random-rank-2 erasure does not even erase
    rand = random_subspace_edit(d, 2, torch.tensor(X.mean(0)), 0, seed=0)
    m, mu = rand.matrix, rand.mean
    X_rand = torch.tensor(X) - (torch.tensor(X) - mu.double()) @ m.double().T
    assert (
        fit_layers(X_rand.float()[None], y.astype(str), Cs=[1.0]).accuracy(X_rand.float()[None], y.astype(str))[0] > 0.8
    )


def test_leace_on_a_models_tokens_leaves_the_probe_at_chance(tiny_folders):
    from probes import load

    lm = load(tiny_folders["bert"])
    ds = generate("subject_number", 80, seed=0)
    X, y = token_features(lm, ds, layer=2)
    eraser = LeaceEraser.fit(X, y)
    erased = eraser(X.double()).float()
    majority = pd.Series(y).value_counts(normalize=True).iloc[0]
    assert fit_layers(erased[None], y, Cs=[1.0]).accuracy(erased[None], y)[0] <= majority + 0.02


def test_amnesic_study_compares_with_random_erasures(tiny_folders):
    from probes import load

    lm = load(tiny_folders["llama"])
    table = amnesic_study(
        lm, MinimalPairs(agreement_pairs(8)), generate("subject_number", 60, seed=0), [0, 1], n_random=3
    )
    assert list(table["layer"]) == [0, 1]
    assert (table["rank"] == 1).all()
    assert (table["probe_after"] <= table["majority"] + 0.1).all()
    assert np.isfinite(table[["leace_change", "random_change_mean", "random_change_sd"]].to_numpy()).all()


# --- the study, the CLI and suites ----------------------------------------------------------------------


def test_ablation_study_resumes_from_its_stages(tiny_folders, tmp_path):
    from probes import load

    lm = load(tiny_folders["llama"])
    spec = AblationSpec(
        model=str(tiny_folders["llama"]),
        n=8,
        kind="zero",
        components=["L0H1", "L1H2", "L0.mlp", "L1.mlp"],
        top_k=3,
        permutations=4,
        interaction_samples=2,
        n_boot=10,
    )
    study = run_ablation(spec, tmp_path, lm=lm, progress=False)
    assert study.shapley["shapley"].sum() == pytest.approx(study.additivity.full_effect, abs=1e-9)
    assert sorted(p.name for p in (tmp_path / "stages").iterdir()) == [
        "additivity.json",
        "interaction_index.csv",
        "interactions.csv",
        "shapley.json",
        "singles.csv",
    ]
    (tmp_path / "stages" / "additivity.json").unlink()
    again = run_ablation(spec, tmp_path, lm=lm, progress=False)
    pd.testing.assert_frame_equal(again.singles, study.singles, check_dtype=False)
    assert again.additivity.r2 == pytest.approx(study.additivity.r2, rel=1e-4)  # float32 sums on a GPU may reorder
    in_memory = ablation_study(lm, MinimalPairs(agreement_pairs(8)), spec.settings(), progress=False)
    pd.testing.assert_frame_equal(in_memory.singles, study.singles, check_dtype=False)
    with pytest.raises(RunError, match="other settings"):
        run_ablation(spec.model_copy(update={"top_k": 4}), tmp_path, lm=lm, progress=False)


def test_a_screened_study_sweeps_on_the_first_examples_and_studies_the_top_on_all(tiny_folders):
    from probes import load
    from probes.causal.evaluator import Evaluator, single_effects
    from probes.pipelines.specs import AblationSettings

    lm = load(tiny_folders["llama"])
    behaviour = MinimalPairs(agreement_pairs(12), batch_size=4)
    spec = AblationSettings(kind="zero", components="heads+mlps", screen=4, top_k=3, permutations=4, n_boot=10)
    study = ablation_study(lm, behaviour, spec, progress=False)
    assert study.n_examples == 12 and study.n_screened == 4
    by_hand = single_effects(Evaluator(lm, MinimalPairs(agreement_pairs(4)), kind="zero"), study_components(lm))
    np.testing.assert_allclose(study.singles["effect"], by_hand["effect"], atol=1e-6)
    top = by_hand.reindex(by_hand["effect"].abs().sort_values(ascending=False).index)["component"][:3]
    assert sorted(study.top) == sorted(top)
    rows = pd.DataFrame(study.rows())
    assert set(rows.loc[rows["metric"] == "effect", "n"]) == {4}
    assert rows.loc[rows["metric"] == "shapley", "n"].eq(12).all()
    assert "screened on the first 4" in study.summary()


def study_components(lm):
    from probes.causal.components import components_from

    return components_from("heads+mlps", lm.shape)


def test_probes_ablate_writes_the_tidy_table_and_provenance(tiny_folders, tmp_path, capsys):
    out = tmp_path / "ablate"
    argv = [
        "ablate",
        str(tiny_folders["gpt2"]),
        "--n",
        "8",
        "--kind",
        "zero",
        "--components",
        "heads",
        "--top-k",
        "3",
        "--permutations",
        "4",
        "--interaction-samples",
        "2",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "additivity R^2" in printed
    results = read_results(out / "results.csv")
    assert (results["metric"] == "effect").sum() == 2 * 4  # every head of the tiny model
    assert {"shapley", "interaction", "shapley_interaction", "additivity_r2"} <= set(results["metric"])
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 0 and run["models"][str(tiny_folders["gpt2"])]["weights_sha256_16"]
    assert run["environment"]["packages"]["torch"] and run["spec"]["top_k"] == 3 and run["command"] == "ablate"
    assert main(["show", str(out)]) == 0
    assert "additivity" in capsys.readouterr().out


def test_probes_ablate_erase_adds_the_amnesic_study_as_rows(tiny_folders, tmp_path):
    from probes import load

    out = tmp_path / "ablate"
    argv = [
        "ablate",
        str(tiny_folders["llama"]),
        "--n",
        "8",
        "--kind",
        "zero",
        "--components",
        "L0H1",
        "L1H2",
        "L0.mlp",
        "--top-k",
        "3",
        "--permutations",
        "4",
        "--interaction-samples",
        "2",
        "--erase",
        "subject_number",
        "--erase-layers",
        "0",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    rows = read_results(out / "results.csv")
    amnesic = rows[rows["probe"] == "amnesic:leace"]
    assert set(amnesic["metric"]) == {
        "erasure_change",
        "random_erasure_change",
        "concept_probe_before",
        "concept_probe_after",
        "concept_majority",
        "erased_rank",
    }
    # the same numbers as the study run directly (its own seed: the spec's)
    direct = amnesic_study(
        load(tiny_folders["llama"]),
        MinimalPairs(agreement_pairs(8)),
        generate("subject_number", 200, seed=0),
        [0, 1],
        n_random=5,
        seed=0,
    )
    got = amnesic[amnesic["metric"] == "erasure_change"].sort_values("layer")["value"].to_numpy()
    np.testing.assert_allclose(got, direct["leace_change"].to_numpy(), atol=1e-9)
    assert main(argv) == 0  # a re-run reads the finished stage
    assert len(list((out / "stages").glob("amnesic*.csv"))) == 1


def test_probes_ablate_errors_are_one_line(tiny_folders, tmp_path, capsys):
    assert main(["ablate", str(tiny_folders["llama"]), "--components", "L7H0", "--out", str(tmp_path)]) == 2
    assert "layers 0..1" in capsys.readouterr().err
    assert main(["ablate", str(tiny_folders["bert"]), "--behaviour", "agreement", "--out", str(tmp_path)]) == 2
    assert "probe:TASK or cosine" in capsys.readouterr().err
    assert main(["ablate", str(tiny_folders["llama"]), "--behaviour", "pairs", "--out", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err


def test_behaviour_names(tiny_folders):
    """A behaviour made from a name carries that name (what tables and run folders call it), whatever its class."""
    from probes import load
    from probes.causal.behaviours import EmbeddingCosine, MinimalPairs, NextTokenLoss, ProbeAccuracy

    llama, bert = load(tiny_folders["llama"]), load(tiny_folders["bert"])
    made = make_behaviour(llama)
    assert isinstance(made, MinimalPairs) and made.name == "agreement" and made.describe()["behaviour"] == "agreement"
    made = make_behaviour(bert)
    assert isinstance(made, ProbeAccuracy) and made.name == "probe:subject_number"
    made = make_behaviour(bert, "cosine", n=4)
    assert isinstance(made, EmbeddingCosine) and made.name == "cosine"
    made = make_behaviour(llama, "loss", n=5)
    assert isinstance(made, NextTokenLoss) and made.name == "loss"
    with pytest.raises(ValueError, match="unknown probe task"):
        make_behaviour(bert, "probe:colour")


def test_suite_ablation_entries_are_validated(tmp_path):
    with pytest.raises(SpecError, match=r"ablations\[0\]: unknown key 'topk' \(did you mean 'top_k'\?\)"):
        validate({"ablations": [{"model": "m", "topk": 3}]})
    with pytest.raises(SpecError, match="name the model"):
        validate({"ablations": [{"kind": "mean"}]})
    with pytest.raises(SpecError, match="zero, mean or resample"):
        validate({"ablations": [{"model": "m", "kind": "noise"}]})
    with pytest.raises(SpecError, match="at least 3"):
        validate({"ablations": [{"model": "m", "top_k": 2}]})
    with pytest.raises(SpecError, match="should be a whole number"):
        validate({"ablations": [{"model": "m", "top_k": "six"}]})
    assert validate({"tasks": [], "ablations": [{"model": "m"}]}).ablations == [AblationSpec(model="m")]


def test_suite_runs_an_ablation_entry_and_resumes(tiny_folders, tmp_path):
    from probes.pipelines.suite import run_suite

    suite = validate(
        {
            "models": [str(tiny_folders["bert"])],
            "tasks": [],
            "ablations": [
                {
                    "model": str(tiny_folders["llama"]),
                    "n": 8,
                    "kind": "zero",
                    "components": "heads",
                    "top_k": 3,
                    "permutations": 2,
                    "interaction_samples": 2,
                }
            ],
        }
    )
    results = run_suite(suite, tmp_path, progress=False)
    assert (results["probe"] == "ablation:zero").all() and "additivity_r2" in set(results["metric"])
    assert len(list((tmp_path / "units").iterdir())) == 1  # the study is the suite's one unit
    again = run_suite(suite, tmp_path, progress=False)
    pd.testing.assert_frame_equal(again, results)
