"""A dictionary's features and error term as components, against independent computations: together they are the
whole site (mean, resample and patch ablation of all of them is the site's), zero-ablating the error splices the
reconstruction, and AtP is exact for them where the metric is linear in the site."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import LinearReadout

from probes.causal.attribution import attribute
from probes.causal.behaviours import MinimalPairs
from probes.causal.components import Attn, ComponentError
from probes.causal.evaluator import Evaluator
from probes.core import loading as models_mod
from probes.core.hooks import hooked
from probes.probing.datasets import agreement_pairs
from probes.sparse.components import ErrorTerm, Features, all_features, parse_feature
from probes.sparse.dictionary import SparseDictionary

TEXTS = ["the dog near the cars sleeps .", "some teachers that the cat likes run quickly .", "a tall dog sees it ."]


def _dictionary(lm, site: str, k: int = 3, seed: int = 0) -> SparseDictionary:
    d = lm.shape.d_model
    sae = SparseDictionary(d, 3 * d, site=site, k=k, dtype=lm.dtype)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=lm.dtype) * 0.3)
    return sae


def _double(folder):
    lm = models_mod.load(folder)
    lm.model.double()
    return lm


@pytest.mark.parametrize("kind", ["mean", "resample"])
def test_all_features_and_the_error_together_are_the_whole_site(tiny_folders, kind):
    lm = _double(tiny_folders["llama"])
    sae = _dictionary(lm, "blocks.1.hook_attn_out")
    ev = Evaluator(lm, MinimalPairs(agreement_pairs(6, seed=2)), kind=kind)
    everything = [Features(sae, range(sae.d_sae)), ErrorTerm(sae)]
    split = [Features(sae, range(0, 20)), Features(sae, range(20, sae.d_sae)), ErrorTerm(sae)]
    values = ev.values([everything, split, [Attn(1)]])
    np.testing.assert_allclose(values[0], values[2], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(values[1], values[2], rtol=1e-9, atol=1e-9)  # changes from one encoding add up


def test_zero_ablating_the_error_splices_the_reconstruction(tiny_folders):
    lm = _double(tiny_folders["gpt_neox"])
    sae = _dictionary(lm, "blocks.0.hook_resid_pre")
    pairs = MinimalPairs(agreement_pairs(4, seed=1))
    ev = Evaluator(lm, pairs, kind="zero")
    spliced = ev.values([[ErrorTerm(sae)]])[0]
    with hooked(lm, {sae.site: lambda x: sae(x)}):
        independent = Evaluator(lm, pairs, kind="zero").clean
    np.testing.assert_allclose(spliced, independent, rtol=1e-9, atol=1e-9)
    # a feature set ablated on top moves the value off the splice, and only where features are active
    assert not np.allclose(ev.values([[ErrorTerm(sae), Features(sae, range(sae.d_sae))]])[0], spliced)


@pytest.mark.parametrize("kind", ["zero", "mean", "resample"])
def test_atp_is_exact_for_features_where_the_metric_is_linear_in_the_site(tiny_folders, kind):
    # GPT-NeoX's last attention write goes straight into the read residual: the metric is linear in it
    lm = _double(tiny_folders["gpt_neox"])
    last = lm.shape.n_layers - 1
    sae = _dictionary(lm, f"blocks.{last}.hook_attn_out", seed=3)
    weight = torch.randn(lm.shape.d_model, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ev = Evaluator(lm, LinearReadout(TEXTS, weight, "hook_resid_post"), kind=kind)
    components = [*all_features(sae)[:12], Features(sae, [1, 5, 7]), ErrorTerm(sae), Features(sae, [2], at=1)]
    frame = attribute(ev, components)
    exact = ev.effects([[c] for c in components])
    assert np.abs(exact).max() > 1e-3  # the features do move the metric
    np.testing.assert_allclose(frame.attrs["per_example"], exact, rtol=1e-8, atol=1e-9)


def test_feature_components_parse_name_and_check(tiny_folders):
    lm = models_mod.load(tiny_folders["llama"])
    sae = _dictionary(lm, "blocks.1.hook_resid_pre")
    assert parse_feature("L1.sae[7,3]", {1: sae}) == Features(sae, [3, 7])
    assert str(parse_feature("L1.sae.err@2", {1: sae})) == "L1.sae.err@2"
    assert str(Features(sae, range(5), label="top 5")) == "L1.sae[top 5]"
    other = _dictionary(lm, "blocks.1.hook_resid_pre", seed=9)
    assert Features(sae, [3]) != Features(other, [3])  # features of different dictionaries differ
    with pytest.raises(ComponentError, match="no dictionary is loaded at block 0"):
        parse_feature("L0.sae[1]", {1: sae})
    with pytest.raises(ComponentError, match="features run 0..95"):
        Features(sae, [96]).check(lm.shape)
    assert sorted([Features(sae, [1]), ErrorTerm(_dictionary(lm, "blocks.0.hook_mlp_out"))])[0].layer == 0
