"""Captured sites against the model's own outputs and against hand computations."""

from __future__ import annotations

import pytest
import torch

from probes import capture, intervene, run_with_cache
from probes.core.model import LoadedModel

TEXTS = ["The cat sat on the mat.", "Unbelievably, the tortoise overtook the hare near the river."]


def batch_for(lm: LoadedModel, texts=TEXTS) -> dict[str, torch.Tensor]:
    return lm.batch(texts)  # the one tokenisation rule, as run_with_cache applies it


def reference(lm: LoadedModel, batch):
    """HF's own hidden states and attentions (eager attention: SDPA returns none)."""
    with torch.inference_mode():
        lm.model.set_attn_implementation("eager")
        return lm.model(**batch, output_hidden_states=True, output_attentions=True)


def all_sites(lm: LoadedModel, batch):
    with torch.inference_mode(), capture(lm, "*") as cache:
        out = lm.model(**batch)
    return out, cache


def assert_close(a, b, **kw):
    """Values equal wherever the model runs (PROBES_DEVICE=cuda puts it on a GPU; expectations are made on the CPU)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        a, b = a.cpu(), b.cpu()
    torch.testing.assert_close(a, b, rtol=kw.get("rtol", 1e-5), atol=kw.get("atol", 1e-5))


def test_resid_and_patterns_equal_model_outputs(tiny):
    batch = batch_for(tiny)
    ref = reference(tiny, batch)
    _, cache = all_sites(tiny, batch)
    n = tiny.shape.n_layers
    assert len(ref.hidden_states) == n + 1
    for l in range(n):
        assert_close(cache[f"blocks.{l}.hook_resid_pre"], ref.hidden_states[l])
        assert_close(cache[f"blocks.{l}.attn.hook_pattern"], ref.attentions[l])
    for l in range(n - 1):
        assert_close(cache[f"blocks.{l}.hook_resid_post"], ref.hidden_states[l + 1])
    last = cache[f"blocks.{n - 1}.hook_resid_post"]
    if tiny.adapter.final_norm is None:  # BERT: the last hidden state is the last block's output
        assert_close(last, ref.hidden_states[n])
    else:  # decoders: HF's last entry is after the final norm
        assert_close(cache["ln_final.hook_normalized"], ref.hidden_states[n])
        assert not torch.allclose(last, ref.hidden_states[n])
        assert_close(cache["hook_logits"], ref.logits)


def test_pattern_shape_and_rows_sum_to_one(tiny):
    batch = batch_for(tiny)
    _, cache = all_sites(tiny, batch)
    pattern = cache["blocks.1.attn.hook_pattern"]
    b, s = batch["input_ids"].shape
    assert pattern.shape == (b, tiny.shape.n_heads, s, s)
    assert_close(pattern.sum(-1), torch.ones(b, tiny.shape.n_heads, s))


def test_outputs_unchanged_by_capture(tiny):
    batch = batch_for(tiny)
    no_patterns = [n for n in tiny.site_names() if not n.endswith(("hook_pattern", "hook_scores"))]
    with torch.inference_mode():
        plain = lm_output(tiny, tiny.model(**batch))
        with capture(tiny, no_patterns):
            assert torch.equal(plain, lm_output(tiny, tiny.model(**batch)))
    # Patterns and scores switch to eager attention, which rounds differently from SDPA: compare eager with eager.
    tiny.model.set_attn_implementation("eager")
    with torch.inference_mode():
        plain = lm_output(tiny, tiny.model(**batch))
    out, _ = all_sites(tiny, batch)
    assert torch.equal(plain, lm_output(tiny, out))


def lm_output(lm, out):
    return out.logits if lm.adapter.causal else out.last_hidden_state


def test_components_add_up_to_the_residual_stream(tiny):
    """resid_post from resid_pre, attn_out and mlp_out by the block's own arithmetic."""
    batch = batch_for(tiny)
    _, cache = all_sites(tiny, batch)
    for l in range(tiny.shape.n_layers):
        pre, post = cache[f"blocks.{l}.hook_resid_pre"], cache[f"blocks.{l}.hook_resid_post"]
        attn, mlp = cache[f"blocks.{l}.hook_attn_out"], cache[f"blocks.{l}.hook_mlp_out"]
        if tiny.adapter.name == "bert":  # post-LN: LN2(LN1(pre + attn) + mlp)
            block = tiny.base.encoder.layer[l]
            with torch.inference_mode():
                mid = block.attention.output.LayerNorm(pre + attn)
                expected = block.output.LayerNorm(mid + mlp)
        else:  # pre-LN, sequential (GPT-2, Llama) or parallel (NeoX): both add to the stream
            expected = pre + attn + mlp
        assert_close(post, expected)


def test_z_and_neurons_feed_the_output_projections(tiny):
    batch = batch_for(tiny)
    _, cache = all_sites(tiny, batch)
    shape = tiny.shape
    for l in range(shape.n_layers):
        z = cache[f"blocks.{l}.attn.hook_z"]
        assert z.shape[-2:] == (shape.n_heads, shape.d_head)
        o_proj = tiny.base.get_submodule(tiny.adapter.path("attn_out_proj", l))
        down = tiny.base.get_submodule(tiny.adapter.path("mlp_out_proj", l))
        with torch.inference_mode():
            assert_close(o_proj(z.flatten(-2)), cache[f"blocks.{l}.hook_attn_out"])
            assert_close(down(cache[f"blocks.{l}.mlp.hook_post"]), cache[f"blocks.{l}.hook_mlp_out"])


@pytest.mark.parametrize("arch", ["llama"])
def test_z_is_pattern_times_values_by_hand(tiny):
    """Per-head z recomputed from the pattern and the value projection (grouped-query heads)."""
    batch = batch_for(tiny)
    _, cache = all_sites(tiny, batch)
    layer = tiny.base.layers[1]
    heads, kv_heads = tiny.shape.n_heads, tiny.model.config.num_key_value_heads
    with torch.inference_mode():
        normed = layer.input_layernorm(cache["blocks.1.hook_resid_pre"])
        v = layer.self_attn.v_proj(normed).unflatten(-1, (kv_heads, -1)).transpose(1, 2)  # (b, kv, s, d)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
        z = cache["blocks.1.attn.hook_pattern"] @ v  # (b, h, s, d)
    assert_close(z.transpose(1, 2), cache["blocks.1.attn.hook_z"])


def test_capture_switches_to_eager_only_while_needed(arch, tiny_folders):
    from probes.core.loading import load

    lm = load(tiny_folders[arch], attn_implementation="sdpa")
    batch = batch_for(lm)
    _, cache = run_with_cache(lm, TEXTS, ["blocks.0.attn.hook_pattern", "blocks.0.hook_resid_post"])
    assert lm.model.config._attn_implementation == "sdpa"
    ref = reference(lm, batch)
    assert_close(cache["blocks.0.attn.hook_pattern"], ref.attentions[0])
    lm.model.set_attn_implementation("sdpa")
    with capture(lm, "blocks.0.hook_resid_post"):
        assert lm.model.config._attn_implementation == "sdpa"  # no pattern asked: stays fast


def hook_count(lm: LoadedModel) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in lm.model.modules())


def test_hooks_removed_after_capture_and_after_errors(tiny):
    batch = batch_for(tiny)
    before, impl = hook_count(tiny), tiny.model.config._attn_implementation
    all_sites(tiny, batch)
    assert hook_count(tiny) == before
    with pytest.raises(RuntimeError, match="boom"):
        with capture(tiny, "*"):
            assert hook_count(tiny) > before
            raise RuntimeError("boom")
    assert hook_count(tiny) == before

    def explode(*_):  # a forward that raises midway (not a bad token id: on a GPU that is a device-side assert)
        raise IndexError("inside the forward")

    block = tiny.base.get_submodule(tiny.adapter.blocks)[0]
    handle = block.register_forward_hook(explode)
    try:
        with pytest.raises(IndexError, match="inside the forward"):
            with torch.inference_mode(), capture(tiny, "*"):
                tiny.model(**batch)
    finally:
        handle.remove()
    assert hook_count(tiny) == before
    assert tiny.model.config._attn_implementation == impl  # eager switched back too


def test_intervention_zeroing_a_head_matches_zeroing_its_weights(tiny):
    """Zeroing head 1's z equals zeroing head 1's input columns of the output projection."""
    batch = batch_for(tiny)
    d_head = tiny.shape.d_head

    def zero_head(z):
        z = z.clone()
        z[..., 1, :] = 0
        return z

    with torch.inference_mode(), intervene(tiny, {"blocks.0.attn.hook_z": zero_head}):
        patched = lm_output(tiny, tiny.model(**batch))
    o_proj = tiny.base.get_submodule(tiny.adapter.path("attn_out_proj", 0))
    weight = o_proj.weight
    saved = weight.detach().clone()
    with torch.no_grad():
        if isinstance(o_proj, torch.nn.Linear):
            weight[:, d_head : 2 * d_head] = 0  # Linear: (out, in)
        else:
            weight[d_head : 2 * d_head, :] = 0  # GPT-2 Conv1D: (in, out)
    try:
        with torch.inference_mode():
            by_hand = lm_output(tiny, tiny.model(**batch))
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert_close(patched, by_hand)
    with torch.inference_mode():
        assert not torch.allclose(patched, lm_output(tiny, tiny.model(**batch)))


def test_pattern_cannot_be_replaced(tiny):
    with pytest.raises(ValueError, match="read but not replaced"):
        with torch.inference_mode(), intervene(tiny, {"blocks.0.attn.hook_pattern": lambda p: p * 0}):
            tiny.model(**batch_for(tiny))
