"""A function of the logits as a behaviour: through the evaluator, the ablation study, attribution, edges and
circuits it gives the numbers of the built-in behaviour it re-implements (``LogitDiff``), and a bad metric is
one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from probes.causal.attribution import attribute
from probes.causal.behaviours import BehaviourError, FunctionBehaviour, LogitDiff
from probes.causal.circuits import EdgeEvaluator, faithfulness_curve
from probes.causal.components import all_heads, all_mlps
from probes.causal.evaluator import Evaluator, single_effects
from probes.causal.study import ablation_study
from probes.core import loading as models_mod
from probes.pipelines.specs import AblationSettings

PROMPTS = ["The cat sat on", "A dog ran to", "The keys are in", "Birds fly over", "She put it on", "We walk to"]
ANSWERS = [(" the", " a"), (" a", " the"), (" the", " on"), (" the", " in"), (" the", " to"), (" the", " a")]


def right_minus_wrong(logits, answers):
    """The logit difference, written as a TransformerLens user would."""
    return logits.gather(1, answers[:, :1]).squeeze(1) - logits.gather(1, answers[:, 1:]).squeeze(1)


@pytest.fixture(scope="module")
def llama(tiny_folders):
    lm = models_mod.load(tiny_folders["llama"])
    lm.model.double()  # edges are checked against the residual stream at float64 precision
    return lm


def pair(lm, kind="mean"):
    mine = Evaluator(lm, FunctionBehaviour(PROMPTS, right_minus_wrong, ANSWERS), kind=kind)
    theirs = Evaluator(lm, LogitDiff(PROMPTS, ANSWERS), kind=kind)
    return mine, theirs


def test_a_function_of_the_logits_gives_the_built_in_behaviours_values(llama):
    mine, theirs = pair(llama)
    np.testing.assert_allclose(mine.clean, theirs.clean, rtol=1e-9, atol=1e-9)
    components = all_heads(llama.shape) + all_mlps(llama.shape)
    a, b = single_effects(mine, components), single_effects(theirs, components)
    np.testing.assert_allclose(a["effect"], b["effect"], rtol=1e-9, atol=1e-9)
    assert not np.allclose(a["effect"], 0)


def test_the_ablation_study_attribution_and_circuits_accept_it(llama):
    mine, theirs = pair(llama)
    spec = AblationSettings(kind="mean", top_k=3, permutations=4, n_boot=10)
    study_a = ablation_study(llama, mine.behaviour, spec, progress=False)
    study_b = ablation_study(llama, theirs.behaviour, spec, progress=False)
    assert study_a.top == study_b.top
    assert study_a.additivity.r2 == pytest.approx(study_b.additivity.r2, abs=1e-9)
    assert study_a.behaviour["function"] == "right_minus_wrong"

    components = all_heads(llama.shape) + all_mlps(llama.shape)
    for method in ("atp", "atp*"):
        a, b = attribute(mine, components, method=method), attribute(theirs, components, method=method)
        np.testing.assert_allclose(a["estimate"], b["estimate"], rtol=1e-8, atol=1e-9)

    edges_a, edges_b = EdgeEvaluator(mine), EdgeEvaluator(theirs)
    scores_a, scores_b = edges_a.scores("eap-ig", steps=3).frame(), edges_b.scores("eap-ig", steps=3).frame()
    pd.testing.assert_frame_equal(scores_a, scores_b, rtol=1e-8, atol=1e-9)
    curve_a = faithfulness_curve(edges_a, scores_a["edge"].tolist(), sizes=[1, 4], n_random=1)
    curve_b = faithfulness_curve(edges_b, scores_b["edge"].tolist(), sizes=[1, 4], n_random=1)
    np.testing.assert_allclose(curve_a.faithfulness(), curve_b.faithfulness(), rtol=1e-8, atol=1e-9)


def test_without_answers_the_function_takes_the_logits_alone(llama):
    target = llama.to_single_token(" the")

    def logprob_of_the(logits):
        return logits.log_softmax(-1)[:, target]

    ev = Evaluator(llama, FunctionBehaviour(PROMPTS, logprob_of_the, name="the"), kind="zero")
    with torch.inference_mode():
        logits = llama(PROMPTS[0])
    assert ev.clean[0] == pytest.approx(float(logits[0, -1].double().log_softmax(-1)[target]), abs=1e-9)
    assert ev.behaviour.describe()["behaviour"] == "the"


def test_a_metric_that_averages_is_refused_in_one_line(llama):
    with pytest.raises(BehaviourError, match="one value per prompt"):
        Evaluator(llama, FunctionBehaviour(PROMPTS, lambda logits, answers: logits.mean(), ANSWERS))
    with pytest.raises(BehaviourError, match="one per prompt"):
        FunctionBehaviour(PROMPTS, right_minus_wrong, ANSWERS[:2])
    with pytest.raises(BehaviourError, match="function of the logits"):
        FunctionBehaviour(PROMPTS, "logit_diff")


def test_a_run_folder_records_the_function_and_refuses_another(llama, tiny_folders, tmp_path):
    from probes.pipelines.ablation_study import run_ablation
    from probes.pipelines.specs import AblationSpec
    from probes.runtime.run import RunError

    spec = AblationSpec(model=str(tiny_folders["llama"]), kind="zero", top_k=3, permutations=4, n_boot=10)
    behaviour = FunctionBehaviour(PROMPTS, right_minus_wrong, ANSWERS, name="pets")
    run_ablation(spec, tmp_path / "run", lm=llama, behaviour=behaviour, progress=False)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["spec"]["behaviour"]["function"] == "right_minus_wrong"
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert set(results["task"]) == {"pets"}

    def wrong_minus_right(logits, answers):
        return -right_minus_wrong(logits, answers)

    other = FunctionBehaviour(PROMPTS, wrong_minus_right, ANSWERS, name="pets")
    with pytest.raises(RunError, match="other settings"):
        run_ablation(spec, tmp_path / "run", lm=llama, behaviour=other, progress=False)
