"""``attn.hook_q/k/v`` and ``attn.hook_scores`` against hand computation from the projections.

``verify_sites`` already checks, for every row, that softmax(scores) is the pattern and that the pattern
times v is z. Here the scores themselves are recomputed by hand from the captured q and k (rotary
embeddings written out below, not taken from the model), on one model of each layout: separate
projections with grouped-query attention (Llama; Qwen3 with its per-head q/k norms), fused [q|k|v]
columns (GPT-2; Phi-3 with grouped queries), heads interleaved (GPT-NeoX, partial rotary), multi-query
Falcon, and an encoder (BERT).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from architectures import ENCODERS, tiny_config
from transformers import AutoModel, AutoModelForCausalLM

from probes import capture, intervene
from probes.core.adapters import adapter_for
from probes.core.model import LoadedModel
from probes.core.verify import probe_ids

NO_ROTARY = {"gpt2", "bert"}


def tiny(model_type: str, **changes) -> LoadedModel:
    config = tiny_config(model_type)
    for key, value in changes.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    auto = AutoModel if model_type in ENCODERS else AutoModelForCausalLM
    return LoadedModel(auto.from_config(config).eval(), None, adapter_for(model_type), model_type)


def rotate(x: torch.Tensor, fraction: float, theta: float) -> torch.Tensor:
    """Rotary embedding by hand (the rotate-half convention of Llama and GPT-NeoX) on the first ``fraction``
    of each head's dimensions; x is (batch, pos, head, d_head)."""
    d = x.shape[-1]
    n = int(d * fraction)
    inv_freq = 1.0 / theta ** (torch.arange(0, n, 2, dtype=torch.float64) / n)
    angles = torch.arange(x.shape[1], dtype=torch.float64)[:, None] * inv_freq  # (pos, n/2)
    cos, sin = angles.cos().repeat(1, 2)[None, :, None], angles.sin().repeat(1, 2)[None, :, None]
    rot, rest = x[..., :n].double(), x[..., n:]
    half = torch.cat([-rot[..., n // 2 :], rot[..., : n // 2]], dim=-1)
    return torch.cat([(rot * cos + half * sin).to(x.dtype), rest], dim=-1)


@pytest.mark.parametrize(
    "model_type,changes",
    [("llama", {}), ("gpt2", {}), ("phi3", {}), ("gpt_neox", {}), ("falcon", {}), ("bert", {}), ("qwen3", {})],
)
def test_scores_are_queries_times_keys_by_hand(model_type, changes):
    lm = tiny(model_type, **changes)
    ids = probe_ids(lm, batch=2, length=9)
    with torch.inference_mode(), capture(lm, "blocks.1.attn.hook_*") as cache:
        lm.model(input_ids=ids, attention_mask=torch.ones_like(ids))
    q, k = cache["blocks.1.attn.hook_q"], cache["blocks.1.attn.hook_k"]
    heads, kv_heads, d = q.shape[-2], k.shape[-2], q.shape[-1]
    assert heads == lm.shape.n_heads and d == lm.shape.d_head
    expected_kv = {"llama": 2, "phi3": 2, "falcon": 1, "qwen3": 2}.get(model_type, heads)  # tests/architectures.py
    assert kv_heads == expected_kv and cache["blocks.1.attn.hook_v"].shape == k.shape
    if model_type == "qwen3":  # q and k are normalised per head (RMSNorm over d_head) before rotary
        attn = lm.base.layers[1].self_attn
        with torch.inference_mode():
            q, k = attn.q_norm(q), attn.k_norm(k)
    if model_type not in NO_ROTARY:
        rope = lm.model.config.rope_parameters
        fraction, theta = rope.get("partial_rotary_factor", 1.0), rope["rope_theta"]
        q, k = rotate(q, fraction, theta), rotate(k, fraction, theta)
    k = k.repeat_interleave(heads // kv_heads, dim=-2)  # query head h reads key-value head h // group
    by_hand = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)
    scores = cache["blocks.1.attn.hook_scores"]
    assert scores.shape == cache["blocks.1.attn.hook_pattern"].shape == by_hand.shape
    length = ids.shape[1]
    visible = torch.ones(length, length, dtype=torch.bool)
    if model_type != "bert":
        visible = visible.tril()
    torch.testing.assert_close(scores[..., visible], by_hand[..., visible], rtol=1e-4, atol=1e-5)
    assert (scores[..., ~visible] < -1e30).all()  # masked entries hold the mask value


def test_replacing_v_of_one_fused_head_changes_only_its_columns():
    """GPT-2 computes q, k, v in one c_attn: zeroing head 2's v zeroes head 2's z, and leaves q, k and the
    other heads' v as they were."""
    lm = tiny("gpt2")
    ids = probe_ids(lm)
    sites = ["blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v", "blocks.0.attn.hook_z"]
    with torch.inference_mode(), capture(lm, sites) as clean:
        lm.model(input_ids=ids)

    def zero_head_2(v: torch.Tensor) -> torch.Tensor:
        v = v.clone()
        v[..., 2, :] = 0
        return v

    with torch.inference_mode(), intervene(lm, {"blocks.0.attn.hook_v": zero_head_2}), capture(lm, sites) as edited:
        lm.model(input_ids=ids)
    for site in sites[:2]:
        torch.testing.assert_close(edited[site], clean[site])
    assert edited["blocks.0.attn.hook_v"][..., 2, :].abs().max() == 0
    torch.testing.assert_close(
        edited["blocks.0.attn.hook_v"][..., [0, 1, 3], :], clean["blocks.0.attn.hook_v"][..., [0, 1, 3], :]
    )
    assert edited["blocks.0.attn.hook_z"][..., 2, :].abs().max() == 0
    torch.testing.assert_close(edited["blocks.0.attn.hook_z"][..., 0, :], clean["blocks.0.attn.hook_z"][..., 0, :])


def test_replacing_scores_sets_the_pattern():
    """Scores of head 1 set to 0 where the mask allows: its pattern is uniform over each query's prefix."""
    lm = tiny("llama")
    ids = probe_ids(lm, batch=1, length=6)

    def flatten_head_1(scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        scores[:, 1] = torch.where(scores[:, 1] > -1e30, 0.0, scores[:, 1])
        return scores

    edits = {"blocks.0.attn.hook_scores": flatten_head_1}
    with torch.inference_mode(), intervene(lm, edits), capture(lm, "blocks.0.attn.hook_pattern") as cache:
        lm.model(input_ids=ids)
    uniform = torch.ones(6, 6).tril() / torch.arange(1, 7)[:, None]
    torch.testing.assert_close(cache["blocks.0.attn.hook_pattern"][0, 1], uniform)
    assert F.softmax.__name__ == "softmax"  # the real one again once the hooks are gone


def test_scores_refused_where_the_attention_runs_no_softmax():
    """Scores exist only under eager attention; a forward that runs another implementation says so."""
    lm = tiny("llama")
    ids = probe_ids(lm)
    with torch.inference_mode(), capture(lm, "blocks.0.attn.hook_scores"):
        lm.model.set_attn_implementation("sdpa")
        with pytest.raises(RuntimeError, match="ran 0 softmaxes, not one.*attn_implementation='eager'"):
            lm.model(input_ids=ids)
    assert F.softmax.__name__ == "softmax"
    with torch.inference_mode(), capture(lm, "blocks.0.attn.hook_pattern") as cache:  # hooks still work after
        lm.model(input_ids=ids)
    assert cache["blocks.0.attn.hook_pattern"].shape[1] == lm.shape.n_heads
