"""Every model type in the architecture table, on a tiny random config, against the model's own outputs.

``verify_sites`` holds the checks (hidden states, attentions, logits, per-head z through the out-projection,
neurons through the down projection, the residual decomposition); the tests below add the hand
computations for the architectures that are easy to get wrong.
"""

from __future__ import annotations

import math

import pytest
import torch
from architectures import ENCODERS, TINY, tiny_config
from transformers import AutoModel, AutoModelForCausalLM

from probes import capture, intervene
from probes.core.adapters import ADAPTERS, UnsupportedArchitectureError, adapter_for, architecture_table
from probes.core.loading import load
from probes.core.model import LoadedModel
from probes.core.sites import UnknownSiteError
from probes.core.verify import probe_ids, verify_sites


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_folders):
    """Each model type saved as an HF folder with one of the tests' real tokenizers."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("architectures")
    bpe, wordpiece = (
        AutoTokenizer.from_pretrained(tiny_folders["gpt2"]),
        AutoTokenizer.from_pretrained(tiny_folders["bert"]),
    )
    made = {}
    for model_type in TINY:
        torch.manual_seed(0)
        auto = AutoModel if model_type in ENCODERS else AutoModelForCausalLM
        model = auto.from_config(tiny_config(model_type))
        folder = root / model_type
        model.save_pretrained(folder)
        (wordpiece if model_type in ENCODERS else bpe).save_pretrained(folder)
        made[model_type] = folder
    return made


def tiny_of(folders, model_type: str) -> LoadedModel:
    return load(folders[model_type])


def test_at_least_thirty_model_types_have_rows():
    types = [t for a in ADAPTERS for t in a.model_types]
    assert len(types) == len(set(types)) >= 30
    assert set(TINY) == set(types)  # every row has its tiny config here


@pytest.mark.parametrize("model_type", list(TINY))
def test_sites_equal_the_models_own_outputs(folders, model_type):
    lm = tiny_of(folders, model_type)
    assert lm.adapter is adapter_for(model_type) and lm.describe()["architecture"] == lm.adapter.name
    assert verify_sites(lm) == []


def test_verification_catches_a_wrong_row(folders):
    """The Llama row on Gemma 2 (whose writes pass through post-norms) is caught, so the checks can fail."""
    lm = tiny_of(folders, "gemma2")
    wrong = LoadedModel(lm.model, lm.tokenizer, adapter_for("llama"), "gemma2 as llama")
    problems = verify_sites(wrong)
    assert any("resid_pre + attn_out + mlp_out" in p for p in problems)
    assert any("hook_logits" in p for p in problems)  # the softcap is missed too
    assert any("hook_mlp_in" in p for p in problems)  # and the MLP's own norm (pre_feedforward_layernorm)


def test_gemma_block_0_reads_the_scaled_embeddings(folders):
    lm = tiny_of(folders, "gemma")
    ids = probe_ids(lm)
    with torch.inference_mode(), capture(lm, "blocks.0.hook_resid_pre") as cache:
        lm.model(input_ids=ids)
    with torch.inference_mode():
        scaled = lm.base.embed_tokens.weight[ids] * torch.tensor(math.sqrt(lm.shape.d_model))
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], scaled)


def test_gemma2_writes_are_after_the_post_norms_and_logits_softcapped(folders):
    lm = tiny_of(folders, "gemma2")
    ids = probe_ids(lm)
    block = lm.base.layers[0]
    with torch.inference_mode(), capture(lm, ["blocks.0.attn.hook_z", "blocks.0.hook_attn_out", "hook_logits"]) as c:
        logits = lm.model(input_ids=ids).logits
    with torch.inference_mode():
        by_hand = block.post_attention_layernorm(block.self_attn.o_proj(c["blocks.0.attn.hook_z"].flatten(-2)))
    torch.testing.assert_close(c["blocks.0.hook_attn_out"], by_hand)
    cap = lm.model.config.final_logit_softcapping
    assert not torch.allclose(c["hook_logits"], logits)
    torch.testing.assert_close(torch.tanh(c["hook_logits"] / cap) * cap, logits)
    assert logits.abs().max() <= cap


def test_granite_scales_each_write(folders):
    lm = tiny_of(folders, "granite")
    assert lm.adapter.write_scale(lm.model.config) == 0.5  # the tiny config's residual_multiplier
    ids = probe_ids(lm)
    names = ["blocks.0.hook_resid_pre", "blocks.0.hook_attn_out", "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post"]
    with torch.inference_mode(), capture(lm, names) as c:
        lm.model(input_ids=ids)
    pre, attn, mlp, post = (c[n] for n in names)
    assert not torch.allclose(pre + attn + mlp, post, atol=1e-4)
    torch.testing.assert_close(pre + 0.5 * (attn + mlp), post)


def test_sliding_window_layers_attend_only_within_their_window(folders):
    lm = tiny_of(folders, "mistral")  # sliding_window = 4 on every layer
    ids = probe_ids(lm)
    with torch.inference_mode(), capture(lm, "blocks.0.attn.hook_pattern") as c:
        lm.model(input_ids=ids)
    pattern = c["blocks.0.attn.hook_pattern"]
    q, k = torch.meshgrid(torch.arange(ids.shape[1]), torch.arange(ids.shape[1]), indexing="ij")
    outside = (q - k >= 4) | (k > q)
    assert pattern[..., outside].abs().max() == 0 and pattern[..., ~outside].min() > 0


def test_mixture_of_experts_has_its_block_output_and_no_neuron_site(folders):
    lm = tiny_of(folders, "qwen2_moe")
    assert "blocks.0.hook_mlp_out" in lm.site_names() and "blocks.0.mlp.hook_post" not in lm.site_names()
    with pytest.raises(UnknownSiteError, match="mixture of experts"):
        lm.resolve("blocks.0.mlp.hook_post")
    ids = probe_ids(lm)
    block = lm.base.layers[0]
    with (
        torch.inference_mode(),
        capture(lm, ["blocks.0.hook_resid_pre", "blocks.0.hook_attn_out", "blocks.0.hook_mlp_out"]) as c,
    ):
        lm.model(input_ids=ids)
    with torch.inference_mode():
        mid = c["blocks.0.hook_resid_pre"] + c["blocks.0.hook_attn_out"]
        by_hand = block.mlp(block.post_attention_layernorm(mid))
    torch.testing.assert_close(c["blocks.0.hook_mlp_out"], by_hand)


def test_opt_mlp_sites_have_batch_and_position(folders):
    lm = tiny_of(folders, "opt")
    ids = probe_ids(lm)
    with torch.inference_mode(), capture(lm, ["blocks.1.mlp.hook_post", "blocks.1.hook_mlp_out"]) as c:
        lm.model(input_ids=ids)
    assert c["blocks.1.mlp.hook_post"].shape == (*ids.shape, 64)
    assert c["blocks.1.hook_mlp_out"].shape == (*ids.shape, lm.shape.d_model)


@pytest.mark.parametrize("model_type", ["gemma2", "phi3", "falcon", "gptj", "opt", "qwen3_moe", "modernbert"])
def test_zeroing_a_head_matches_zeroing_its_out_projection_columns(folders, model_type):
    """Per-head interventions work where q, k and v are one fused projection (Phi-3, Falcon) or a norm follows
    the out-projection (Gemma 2): zeroing head 1's z equals zeroing its columns of the out-projection."""
    lm = tiny_of(folders, model_type)
    ids = probe_ids(lm)
    d_head = lm.shape.d_head

    def zero_head(z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        z[..., 1, :] = 0
        return z

    with torch.inference_mode(), intervene(lm, {"blocks.0.attn.hook_z": zero_head}):
        edited = lm.model(input_ids=ids)[0]
    o_proj = lm.base.get_submodule(lm.adapter.path("attn_out_proj", 0))
    with torch.no_grad():
        o_proj.weight[:, d_head : 2 * d_head] = 0
        by_weights = lm.model(input_ids=ids)[0]
    torch.testing.assert_close(edited, by_weights)


def test_falcon_under_sdpa_keeps_its_outputs_when_its_pattern_is_read(folders):
    """Falcon refuses set_attn_implementation, and asked for weights under SDPA it drops the causal mask:
    reading its pattern must switch it to eager through its config, leaving the logits as they were."""
    lm = load(folders["falcon"], attn_implementation="sdpa")
    ids = probe_ids(lm)
    with torch.inference_mode():
        plain = lm.model(input_ids=ids).logits
        with capture(lm, "blocks.*.attn.hook_pattern") as cache:
            read = lm.model(input_ids=ids).logits
    torch.testing.assert_close(read, plain)
    assert lm.model.config._attn_implementation == "sdpa"  # and back
    future = torch.ones(ids.shape[1], ids.shape[1], dtype=torch.bool).triu(1)
    assert cache["blocks.0.attn.hook_pattern"][..., future].abs().max() == 0


def test_opt_350m_layout_post_norm_blocks_and_a_projection_before_the_unembedding():
    """OPT-350m: blocks normalise after each add (do_layer_norm_before=False), there is no final norm, and
    project_out maps the 32-wide residual to the 16-wide embeddings the unembedding reads."""
    from probes.probing.lens import depth_sites, lens_logits

    config = tiny_config("opt")
    config.do_layer_norm_before, config.word_embed_proj_dim = False, 16
    torch.manual_seed(0)
    lm = LoadedModel(AutoModelForCausalLM.from_config(config).eval(), None, adapter_for("opt"), "opt-350m-like")
    assert lm.adapter.final_norm == "decoder.project_out" and not lm.adapter.decomposes(config)
    assert verify_sites(lm) == []
    ids = probe_ids(lm)
    with torch.inference_mode(), capture(lm, ["ln_final.hook_normalized", *depth_sites(lm)]) as cache:
        logits = lm.model(input_ids=ids).logits
        assert cache["ln_final.hook_normalized"].shape[-1] == 16
        torch.testing.assert_close(lens_logits(lm, cache[depth_sites(lm)[-1]]), logits)


def test_the_docs_list_the_registry():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[3] / "docs" / "models.md").read_text()
    assert architecture_table() in page


# --- the generic adapter ------------------------------------------------------------------------------------------


def _register(model_type: str, layer_scale: float | None = None):
    """A model type with no row: Llama's classes under a new name (optionally with blocks that scale their
    output, which is no longer the input plus the writes), registered with transformers' Auto classes."""
    from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    renamed = type(f"{model_type}Config", (LlamaConfig,), {"model_type": model_type})

    class ScaledLayer(LlamaDecoderLayer):
        def forward(self, *args, **kwargs):
            return super().forward(*args, **kwargs) * layer_scale

    class Model(LlamaForCausalLM):
        config_class = renamed

        def __init__(self, config):
            super().__init__(config)
            if layer_scale is not None:
                self.model.layers = torch.nn.ModuleList(ScaledLayer(config, i) for i in range(config.num_hidden_layers))
                self.post_init()

    AutoConfig.register(model_type, renamed)
    AutoModelForCausalLM.register(renamed, Model)
    return renamed


def _save_as(config_class, tiny_folders, folder):
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    config = config_class(**tiny_config("llama").to_diff_dict() | {"model_type": config_class.model_type})
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_folders["gpt2"]).save_pretrained(folder)
    return folder


def test_a_model_type_with_no_row_is_served_by_the_generic_adapter(tmp_path, tiny_folders):
    folder = _save_as(_register("renamed_llama"), tiny_folders, tmp_path / "renamed")
    lm = load(folder)
    assert lm.adapter.name == "generic" and lm.describe()["architecture"] == "generic"
    assert lm.describe()["model_type"] == "renamed_llama"
    llama_row = adapter_for("llama")
    for part in ("blocks", "attn", "attn_out_proj", "mlp_out_proj", "final_norm", "causal", "q", "k", "v"):
        assert getattr(lm.adapter, part) == getattr(llama_row, part)
    assert verify_sites(lm) == []
    ids = probe_ids(lm)
    with torch.inference_mode(), capture(lm, "blocks.0.hook_resid_post") as cache:
        out = lm.model(input_ids=ids, output_hidden_states=True)
    torch.testing.assert_close(cache["blocks.0.hook_resid_post"], out.hidden_states[1])


def test_an_odd_model_type_is_refused_with_what_did_not_match(tmp_path, tiny_folders):
    folder = _save_as(_register("odd_llama", layer_scale=1.5), tiny_folders, tmp_path / "odd")
    with pytest.raises(UnsupportedArchitectureError) as err:
        load(folder)
    message = str(err.value)
    assert "\n" not in message and "'odd_llama' has no row in the architecture table" in message
    assert "resid_pre + attn_out + mlp_out = resid_post" in message and "probes/core/adapters.py" in message
