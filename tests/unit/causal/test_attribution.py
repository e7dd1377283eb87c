"""Attribution patching against independent computations: exactness where the model is linear in the
patched value, central finite differences along the straight line to the counterfactual, GradDrop
against the direct-path derivative, and the exact re-measurement of ``verify``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import LinearReadout

from probes.causal.attribution import AttributionError, attribute
from probes.causal.behaviours import LogitDiff, MinimalPairs
from probes.causal.components import MLP, Head, HeadInput, Neurons, Resid, all_head_inputs, all_heads, all_mlps
from probes.causal.evaluator import Evaluator
from probes.causal.patching import aligned_pairs, patch_evaluator
from probes.causal.verification import verify
from probes.core import loading as models_mod
from probes.core.hooks import hooked
from probes.probing.datasets import agreement_pairs, agreement_prompts

TEXTS = ["the dog near the cars sleeps .", "some teachers that the cat likes run quickly .", "a tall dog sees it ."]


def _double(folder):
    lm = models_mod.load(folder)
    lm.model.double()
    return lm


@pytest.mark.parametrize("kind", ["zero", "mean", "resample"])
def test_atp_is_exact_where_the_metric_is_linear_in_the_component(tiny_folders, kind):
    # GPT-NeoX's blocks are parallel: the last block's heads and MLP write straight into the read residual
    lm = _double(tiny_folders["gpt_neox"])
    weight = torch.randn(lm.shape.d_model, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ev = Evaluator(lm, LinearReadout(TEXTS, weight), kind=kind)
    last = lm.shape.n_layers - 1
    components = [*all_heads(lm.shape, [last]), MLP(last), Neurons(last, (3, 9)), Head(last, 1, at=2)]
    frame = attribute(ev, components)
    exact = ev.effects([[c] for c in components])
    np.testing.assert_allclose(frame.attrs["per_example"], exact, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(frame["estimate"], exact.mean(1), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize(("arch", "kind"), [("gpt_neox", "zero"), ("gpt_neox", "mean"), ("llama", "resample")])
def test_the_qk_fix_is_exact_where_the_metric_is_linear_in_the_pattern(tiny_folders, arch, kind):
    # the last block's attention output is its patterns times its values: linear in each pattern, so linearising
    # only after the exact pattern change leaves nothing out; the plain gradient through the softmax does
    lm = _double(tiny_folders[arch])
    last = lm.shape.n_layers - 1
    weight = torch.randn(lm.shape.d_model, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ev = Evaluator(lm, LinearReadout(TEXTS, weight, "hook_attn_out"), kind=kind)
    components = [
        *all_head_inputs(lm.shape, [last]),
        HeadInput(last, 1, "q", at=3),
        HeadInput(last, 1, "k", at=2),
        HeadInput(last, 0, "k", at=0),
    ]
    exact = ev.effects([[c] for c in components])
    star = attribute(ev, components, method="atp*")
    # (GPT-NeoX's rotary runs in float32 in a float64 model: agreement to a few parts in 10^7)
    np.testing.assert_allclose(star.attrs["per_example"], exact, rtol=1e-5, atol=1e-6)
    plain = attribute(ev, components)
    qk = [i for i, c in enumerate(components) if c.which != "v"]
    values = [i for i, c in enumerate(components) if c.which == "v"]
    assert np.abs(plain.attrs["per_example"][qk] - exact[qk]).max() > 1e-3  # the softmax is not linear
    np.testing.assert_allclose(plain.attrs["per_example"][values], exact[values], rtol=1e-5, atol=1e-6)
    if arch == "llama":  # grouped-query attention: a key-value head reaches two query heads
        assert lm.shape.n_kv_heads == 2 < lm.shape.n_heads


def test_qk_components_parse_check_and_ablate_their_columns(tiny_folders):
    from probes.causal.components import ComponentError, components_from, parse_component

    lm = models_mod.load(tiny_folders["llama"])
    assert parse_component("L1H3.q@2") == HeadInput(1, 3, "q", at=2)
    assert str(parse_component("L0H1.v")) == "L0H1.v"
    with pytest.raises(ComponentError, match="key-value heads 0..1"):
        parse_component("L0H3.k", lm.shape)
    assert len(components_from("qkv", lm.shape)) == 2 * (4 + 2 + 2)
    # zeroing a key-value head's value zeroes what its two query heads write
    ev = Evaluator(lm, MinimalPairs(agreement_pairs(4, seed=5)), kind="zero")
    both = ev.values([[HeadInput(0, 1, "v")]])
    heads = ev.values([[Head(0, 2), Head(0, 3)]])
    np.testing.assert_allclose(both, heads, rtol=1e-5, atol=1e-6)


def _finite_difference(ev: Evaluator, component, eps: float = 3e-3) -> np.ndarray:
    """d metric / d t at t = 0 of the value moved a share t of the way to the counterfactual (central; Llama's
    and GPT-NeoX's norms round to float32 even in a float64 model, so the step is not tiny)."""
    from probes.causal.ablation import RowPlan

    out = []
    for sign in (1, -1):
        scores = []
        for index, batch in enumerate(ev.batches):
            plan = RowPlan(
                [frozenset({component})] * batch.rows,
                ev.kind,
                batch.positions,
                batch.example_ids,
                ev.reference,
                None if ev.source is None else ev.source[index],
            )
            ablated = plan.hooks(ev.lm)[component.site]

            def move(value, ablated=ablated, sign=sign):
                return value + sign * eps * (ablated(value) - value)

            got = {}
            with (
                torch.inference_mode(),
                hooked(ev.lm, {component.site: move}),
                hooked(ev.lm, {ev.readout: lambda v, got=got: got.__setitem__("v", v)}),
            ):
                ev.lm.model(**batch.inputs)
            scores.append(ev.behaviour.score(ev.lm, got["v"], batch).detach().double().cpu().numpy())
        out.append(np.concatenate(scores))
    return (out[0] - out[1]) / (2 * eps)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox"])
def test_atp_equals_finite_differences(tiny_folders, arch):
    lm = _double(tiny_folders[arch])
    ev = Evaluator(lm, MinimalPairs(agreement_pairs(6, seed=2), batch_size=4), kind="mean")
    components = [Head(0, 1), Head(1, 3), MLP(0), Neurons(1, (5,)), Resid(1), Resid(1, at=2)]
    frame = attribute(ev, components)
    for i, c in enumerate(components):
        np.testing.assert_allclose(frame.attrs["per_example"][i], _finite_difference(ev, c), rtol=1e-3, atol=1e-4)


def test_patch_attribution_equals_finite_differences(tiny_folders):
    lm = _double(tiny_folders["llama"])
    prompts = agreement_prompts(40, seed=1)
    clean, corrupt = [p["clean"] for p in prompts], [p["corrupt"] for p in prompts]
    answers = [(" the", " a")] * len(prompts)  # the tiny tokenizer starts both verb forms with one token
    keep = aligned_pairs(lm, clean, corrupt, answers)[:6]
    assert len(keep) >= 3
    components = [Head(0, 2), MLP(1), Resid(1, at=3)]
    ev, _ = patch_evaluator(
        lm, [clean[i] for i in keep], [corrupt[i] for i in keep], [answers[i] for i in keep], components
    )
    frame = attribute(ev, components)
    for i, c in enumerate(components):
        np.testing.assert_allclose(frame.attrs["per_example"][i], _finite_difference(ev, c), rtol=1e-3, atol=1e-4)


def test_graddrop_of_a_first_block_component_is_its_direct_path_derivative(tiny_folders):
    # two blocks: dropping block 1 leaves only the path from block 0 straight to the readout
    lm = _double(tiny_folders["gpt2"])
    ev = Evaluator(lm, MinimalPairs(agreement_pairs(6, seed=3), batch_size=8), kind="zero")
    components = [Head(0, 0), MLP(0), Head(1, 2), MLP(1)]
    frame = attribute(ev, components, method="atp*")
    frozen = {}
    with (
        torch.inference_mode(),
        hooked(
            lm,
            {
                f"blocks.1.{s}": (lambda v, s=s: frozen.__setitem__(s, v.clone()))
                for s in ("hook_attn_out", "hook_mlp_out")
            },
        ),
    ):
        lm.model(**ev.batches[0].inputs)
    freeze = {f"blocks.1.{s}": (lambda v, s=s: frozen[s]) for s in frozen}
    for i, c in enumerate(components[:2]):
        with hooked(lm, freeze):
            direct = _finite_difference(ev, c).mean()
        assert frame["graddrop"][i] == pytest.approx(abs(direct), rel=1e-5, abs=1e-8)
    # the last block's components have no path through a later block: GradDrop is |AtP|
    np.testing.assert_allclose(frame["graddrop"][2:], frame["estimate"][2:].abs(), rtol=1e-9)
    assert (frame["score"] >= frame["estimate"].abs() - 1e-12).all()


def test_graddrop_on_a_post_norm_model_gates_the_writes(tiny_folders):
    # BERT normalises after each add: no skip passes a block unchanged, so each block's writes are gated instead
    from probes.causal.behaviours import EmbeddingCosine

    lm = _double(tiny_folders["bert"])
    ev = Evaluator(lm, EmbeddingCosine([("the dog runs .", "the dogs run ."), ("a cat sees it .", "cats see it .")]))
    components = [Head(0, 1), MLP(0), Head(1, 0), MLP(1)]
    frame = attribute(ev, components, method="atp*")
    assert not lm.adapter.decomposes(lm.model.config)
    # the last block's components: dropping block 0 leaves their gradient as it is, so GradDrop is |AtP|
    np.testing.assert_allclose(frame["graddrop"][2:], frame["estimate"][2:].abs(), rtol=1e-9)
    assert np.isfinite(frame["graddrop"]).all() and (frame["graddrop"][:2] > 0).all()


def test_verify_re_measures_exactly_and_bounds_the_rest(tiny_folders):
    lm = models_mod.load(tiny_folders["llama"])
    ev = Evaluator(lm, MinimalPairs(agreement_pairs(8, seed=4)), kind="mean")
    components = all_heads(lm.shape) + all_mlps(lm.shape)
    frame = attribute(ev, components)
    check = verify(ev, frame, components, top=3, sample=4, seed=0)
    exact = ev.effects([[c] for c in components]).mean(1)
    by_name = dict(zip([c.name for c in components], exact))
    np.testing.assert_allclose(check.checked["exact"], [by_name[n] for n in check.checked["component"]], atol=1e-6)
    assert list(check.checked["chosen"]) == ["top"] * 3 + ["sample"] * 4
    top = frame.sort_values("score", ascending=False, kind="stable")["component"][:3]
    assert list(check.checked["component"][:3]) == list(top)
    assert 0 <= check.top_overlap <= 3 and check.largest_miss in set(check.checked["component"])
    assert np.isnan(check.bound) == (check.misses_in_sample > 0)
    assert "checked 7 exactly" in check.summary()


def test_attribution_refuses_what_it_cannot_do(tiny_folders):
    lm = models_mod.load(tiny_folders["llama"])
    ev = Evaluator(lm, MinimalPairs(agreement_pairs(4), metric="accuracy"), kind="zero")
    with pytest.raises(AttributionError, match="not differentiable"):
        attribute(ev, [Head(0, 0)])
    ev = Evaluator(lm, LogitDiff(["the dog"], [(" the", " a")]), kind="zero")
    with pytest.raises(AttributionError, match="unknown attribution method"):
        attribute(ev, [Head(0, 0)], method="ig")
    with pytest.raises(AttributionError, match="no components"):
        attribute(ev, [])
