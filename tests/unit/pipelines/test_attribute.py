"""``probes attribute``, ``probes circuit`` and the ablation study's choice by attribution, on tiny models: what
the run folders hold against the instruments computed directly, resumption, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.results import read_results
from probes.causal import attribution as attribution_mod
from probes.causal.attribution import attribute
from probes.causal.behaviours import make_behaviour
from probes.causal.circuits import EdgeEvaluator, Graph
from probes.causal.components import components_from
from probes.causal.evaluator import Evaluator
from probes.causal.study import ablation_study
from probes.cli import main
from probes.core import loading as models_mod
from probes.pipelines.attribute import counterfactual, run_attribute, run_circuit
from probes.pipelines.specs import AblationSettings, AttributeSpec, CircuitSpec
from probes.runtime.run import RunError


def test_attribute_writes_every_components_estimate_and_the_verified_ones(tiny_folders, tmp_path, monkeypatch):
    spec = AttributeSpec(
        model=str(tiny_folders["llama"]), n=6, method="atp*", verify_top=3, verify_sample=4, exact=True
    )
    result = run_attribute(spec, tmp_path / "a", progress=False)
    lm = models_mod.load(tiny_folders["llama"])
    comps = components_from("heads+mlps", lm.shape)
    ev = Evaluator(lm, make_behaviour(lm, None, n=6), kind="mean", components=comps)
    direct = attribute(ev, comps, method="atp*")
    np.testing.assert_allclose(result.frame["estimate"], direct["estimate"], rtol=1e-5, atol=1e-6)
    rows = read_results(tmp_path / "a" / "results.csv")
    assert set(rows["probe"]) == {"attribution:atp*:mean"} and set(rows["task"]) == {"agreement"}
    assert len(rows[rows["metric"] == "attribution"]) == len(comps) == len(rows[rows["metric"] == "graddrop"])
    exact = rows[rows["metric"] == "exact_effect"].set_index("component")["value"]
    np.testing.assert_allclose(exact[[c.name for c in comps]], ev.effects([[c] for c in comps]).mean(1), atol=1e-5)
    assert {"verify_spearman", "verify_top_overlap", "verify_largest_miss", "verify_bound"} <= set(rows["metric"])
    assert len(result.verification.checked) == 7
    # a re-run reads every stage back: nothing is attributed again
    monkeypatch.setattr(attribution_mod, "attribute", lambda *a, **k: pytest.fail("attributed again"))
    again = run_attribute(spec, tmp_path / "a", progress=False)
    pd.testing.assert_frame_equal(again.frame, result.frame, check_dtype=False)
    with pytest.raises(RunError, match="other settings"):
        run_attribute(spec.model_copy(update={"method": "atp"}), tmp_path / "a", progress=False)


def test_circuit_writes_the_curve_and_the_smallest_faithful_share(tiny_folders, tmp_path):
    spec = CircuitSpec(
        model=str(tiny_folders["llama"]), n=6, sizes=[1, 4, 16], random=2, verify_top=3, verify_sample=3, n_boot=50
    )
    result = run_circuit(spec, tmp_path / "c", progress=False)
    lm = models_mod.load(tiny_folders["llama"])
    graph = Graph(lm.shape.n_layers, lm.shape.n_heads, lm.shape.n_kv_heads, parallel=False)
    edges = pd.read_csv(tmp_path / "c" / "stages" / "edges.csv")
    assert len(edges) == graph.n_edges and edges["score"].is_monotonic_decreasing
    # the stored scores are the instrument's
    ev = counterfactual(lm, spec, graph.writer_components())
    direct = EdgeEvaluator(ev).scores("eap-ig", steps=spec.steps).frame()
    np.testing.assert_allclose(edges["estimate"], direct["estimate"], rtol=1e-4, atol=1e-6)
    rows = read_results(tmp_path / "c" / "results.csv")
    share = rows[rows["metric"] == "circuit_share"].iloc[0]
    assert (share["value"], share["ci_low"], share["ci_high"]) == pytest.approx(result.share)
    k = int(rows[rows["metric"] == "circuit_edges"]["value"].iloc[0])
    assert share["value"] == pytest.approx(k / graph.n_edges)
    faithful = rows[rows["metric"] == "faithfulness"].set_index("edges")["value"]
    assert faithful[k] >= 0.8 and (faithful[faithful.index < k] < 0.8).all()
    assert faithful[graph.n_edges] == pytest.approx(1.0, abs=1e-5)
    assert k in set(rows[rows["metric"] == "random_faithfulness"]["edges"])  # the baseline at the faithful size
    assert int(rows[rows["metric"] == "graph_edges"]["value"].iloc[0]) == graph.n_edges


def test_the_ablation_study_can_choose_its_top_k_by_attribution(tiny_folders):
    lm = models_mod.load(tiny_folders["llama"])
    behaviour = make_behaviour(lm, None, n=6)
    study = ablation_study(lm, behaviour, AblationSettings(select="atp", top_k=3, permutations=4), progress=False)
    comps = components_from("heads+mlps", lm.shape)
    ev = Evaluator(lm, behaviour, kind="mean", components=comps)
    estimates = attribute(ev, comps)
    expected = estimates.sort_values("score", ascending=False, kind="stable")["component"][:3]
    assert set(study.top) == set(expected)
    exact = ev.effects([[c] for c in comps if c.name in set(study.top)]).mean(1)
    np.testing.assert_allclose(study.singles["effect"], exact, atol=1e-5)
    rows = pd.DataFrame(study.rows())
    assert len(rows[rows["metric"] == "attribution"]) == len(comps)
    assert len(rows[rows["metric"] == "effect"]) == 3


def test_the_cli_attributes_and_refuses_what_it_cannot_do(tiny_folders, tmp_path, capsys):
    llama = str(tiny_folders["llama"])
    assert (
        main(["attribute", llama, "--n", "4", "--method", "atp", "--verify-sample", "2", "--out", str(tmp_path / "x")])
        == 0
    )
    printed = capsys.readouterr().out
    assert "atp (mean) over" in printed and "verification: checked" in printed
    bad = [
        (["attribute", llama, "--behaviour", "induction", "--kind", "patch"], "--kind patch runs clean prompts"),
        (["attribute", llama, "--components", "L7H0"], "the model has layers 0..1"),
        (["circuit", str(tiny_folders["bert"]), "--behaviour", "cosine"], "normalises after each add"),
        (["circuit", llama, "--sizes", "0"], "--sizes: circuit sizes are whole numbers"),
    ]
    for argv, message in bad:
        assert main([*argv, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]  # (what came before it: the model loading's progress bar)
        assert message in last and "Traceback" not in err and last.startswith("probes "), err
    assert not (tmp_path / "bad").exists()  # refused before anything is written
