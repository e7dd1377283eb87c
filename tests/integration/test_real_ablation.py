"""Ablations, patching and erasure on the real models: smollm2-135m (causal) and minilm (encoder)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probes.causal.behaviours import MinimalPairs, ProbeAccuracy
from probes.causal.components import MLP, Head, Neurons, Resid
from probes.causal.erasure import LeaceEraser, token_features
from probes.causal.evaluator import Evaluator
from probes.causal.patching import patch_effects
from probes.probing.datasets import agreement_pairs, agreement_prompts, generate
from probes.probing.linear import fit_layers

pytestmark = pytest.mark.integration


def test_smollm_fast_sweep_equals_the_plain_loop(smollm):
    # (how well the 135M model does on these pairs is a finding, not a test: about 55% across attractors)
    pairs = agreement_pairs(24, seed=2)
    fast = Evaluator(smollm, MinimalPairs(pairs), kind="mean")
    subsets = [[Head(0, 3)], [Head(14, 2)], [MLP(29)], [Head(10, 1), MLP(20)], [Neurons(5, [3, 70])], [Resid(12, at=2)]]
    slow = Evaluator(smollm, MinimalPairs(pairs, packed=False), kind="mean", reuse_prefix=False, batch_conditions=False)
    np.testing.assert_allclose(fast.clean, slow.clean, atol=2e-3)
    np.testing.assert_allclose(fast.values(subsets), slow.values(subsets), atol=2e-3)


def test_smollm_patching_the_subject_position_restores_the_clean_answer(smollm):
    rows = agreement_prompts(16)
    clean, corrupt = [r["clean"] for r in rows], [r["corrupt"] for r in rows]
    answers = [(r["answer"], r["wrong"]) for r in rows]
    # the subject noun is the only token that differs: patching the residual there at block 0 restores everything
    result = patch_effects(smollm, clean, corrupt, answers, [Resid(0, at=p) for p in range(4)], drop_misaligned=True)
    assert result.clean > result.corrupt
    assert result.effects["restored"].max() == pytest.approx(1.0, abs=0.02)


def test_minilm_probe_behaviour_and_leace(minilm):
    ds = generate("subject_number", 160, seed=0)
    ev = Evaluator(minilm, ProbeAccuracy(ds, layer=4), kind="zero")
    assert ev.clean.mean() > 0.75
    X, y = token_features(minilm, ds, layer=4)
    erased = LeaceEraser.fit(X, y)(X.double()).float()
    majority = pd.Series(y).value_counts(normalize=True).iloc[0]
    assert fit_layers(X[None], y, Cs=[1.0]).accuracy(X[None], y)[0] > 0.9
    assert fit_layers(erased[None], y, Cs=[1.0]).accuracy(erased[None], y)[0] <= majority + 0.02


def test_leace_erases_subject_number_from_smollms_ill_conditioned_residual(smollm):
    """smollm's residual stream has massive activations (covariance condition number ~1e9)."""
    ds = generate("subject_number", 120, seed=0)
    X, y = token_features(smollm, ds, layer=15)
    erased = LeaceEraser.fit(X, y)(X.double()).float()
    majority = pd.Series(y).value_counts(normalize=True).iloc[0]
    assert fit_layers(X[None], y).accuracy(X[None], y)[0] > 0.8
    assert fit_layers(erased[None], y).accuracy(erased[None], y)[0] <= majority + 0.02


def test_smollm_attribution_against_exact_effects(smollm):
    """On the real model (grouped queries: 9 heads, 3 key-value heads): the QK fix is exact where the metric is
    linear in the last block's patterns, AtP is exact for its values, and a writer's edge scores add up to
    its AtP score."""
    import torch
    from helpers import LinearReadout

    from probes.causal.attribution import attribute
    from probes.causal.circuits import EdgeEvaluator
    from probes.causal.components import HeadInput, all_head_inputs
    from probes.probing.datasets.grammar import copula_agreement_pairs

    last = smollm.shape.n_layers - 1
    weight = torch.randn(smollm.shape.d_model, generator=torch.Generator().manual_seed(3))
    texts = ["The tall dog is old.", "The keys to the cabinet are on the table.", "A cat sleeps."]
    ev = Evaluator(smollm, LinearReadout(texts, weight, "hook_attn_out"), kind="mean")
    components = [*all_head_inputs(smollm.shape, [last]), HeadInput(last, 1, "k", at=2)]
    exact = ev.effects([[c] for c in components])
    star = attribute(ev, components, method="atp*").attrs["per_example"]
    scale = np.abs(exact).max()
    np.testing.assert_allclose(star, exact, atol=2e-3 * scale)
    plain = attribute(ev, components).attrs["per_example"]
    qk = [i for i, c in enumerate(components) if c.which != "v"]
    assert np.abs(plain[qk] - exact[qk]).max() > 10 * np.abs(star[qk] - exact[qk]).max()
    # edges: the input's and L20.mlp's edge scores sum to their node scores, on copula pairs
    pairs = Evaluator(smollm, MinimalPairs(copula_agreement_pairs(4)), kind="mean")
    edges = EdgeEvaluator(pairs)
    scores = edges.scores("eap").per_example
    writers = [Resid(0), MLP(20)]
    nodes = attribute(pairs, writers).attrs["per_example"]
    index = [0, edges.graph.writer(20)]
    np.testing.assert_allclose(scores[:, :, index].sum(1).T, nodes, rtol=2e-3, atol=2e-3)
