"""Tiny random configs of every model type in the architecture table (``probes.core.adapters``).

Each is the model type's own config class with its sizes shrunk (2 layers, width 32, 4 heads, 2 key-value
heads where it has grouped-query attention) and every special feature it is known for switched on where
the config has a switch for it (sliding windows shorter than the test texts, softcapping, residual and
logit multipliers, q/k norms, parallel blocks, mixtures of experts), so the tests meet what the real
models do.
"""

from __future__ import annotations

from typing import Any

VOCAB = 320  # the byte-level BPE and word-piece tokenizers of tests/conftest.py

_DECODER = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    bos_token_id=0,
    eos_token_id=0,
    pad_token_id=None,
    tie_word_embeddings=False,
)
_MOE = dict(num_experts_per_tok=2, moe_intermediate_size=16)

TINY: dict[str, dict[str, Any]] = {
    # decoders, pre-norm and sequential
    "llama": {},
    "mistral": dict(sliding_window=4),
    "qwen2": dict(use_sliding_window=True, sliding_window=4, max_window_layers=1),
    "qwen3": dict(head_dim=8),
    "gemma": dict(head_dim=8),
    "gemma2": dict(head_dim=8, sliding_window=4, attn_logit_softcapping=5.0, final_logit_softcapping=3.0),
    "gemma3_text": dict(head_dim=8, sliding_window=4, layer_types=["sliding_attention", "full_attention"]),
    "olmo": {},
    "olmo2": {},
    "phi3": dict(pad_token_id=None, sliding_window=None),
    "starcoder2": dict(sliding_window=4),
    "granite": dict(residual_multiplier=0.5, embedding_multiplier=3.0, logits_scaling=2.0, attention_multiplier=0.3),
    "smollm3": dict(no_rope_layers=[1, 0]),
    "stablelm": dict(qk_layernorm=True),
    "opt": dict(ffn_dim=64, word_embed_proj_dim=32, num_key_value_heads=None),
    "gpt2": dict(n_positions=128),
    "gpt_neo": dict(attention_types=[[["global", "local"], 1]], window_size=4),
    # mixtures of experts (transformers 5 fuses the experts' weights into 3-D parameters)
    "mixtral": dict(num_local_experts=4, num_experts_per_tok=2, sliding_window=None),
    "qwen2_moe": dict(num_experts=4, shared_expert_intermediate_size=32, **_MOE),
    "qwen3_moe": dict(num_experts=4, head_dim=8, **_MOE),
    # parallel attention and MLP
    "gpt_neox": dict(use_parallel_residual=True),
    "gptj": dict(rotary_dim=4),
    "phi": dict(partial_rotary_factor=0.5),
    "falcon": dict(new_decoder_architecture=False, parallel_attn=True, alibi=False, num_kv_heads=None),
    "cohere": dict(use_qk_norm=False, logit_scale=0.5),
    # encoders (post-norm: a block's output is LayerNorm(resid + write), so there is no decomposition)
    "bert": dict(max_position_embeddings=128),
    "roberta": dict(max_position_embeddings=130, pad_token_id=1),
    "electra": dict(embedding_size=32, max_position_embeddings=128),
    "distilbert": dict(dim=32, hidden_dim=64, n_layers=2, n_heads=4, max_position_embeddings=128),
    "deberta-v2": dict(max_position_embeddings=128, relative_attention=True, pos_att_type=["c2p", "p2c"]),
    "modernbert": dict(
        global_attn_every_n_layers=2,
        local_attention=4,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
    ),
}

ENCODERS = ("bert", "roberta", "electra", "distilbert", "deberta-v2", "modernbert")


def tiny_config(model_type: str):
    """The model type's config class, shrunk as ``TINY`` says."""
    from transformers import AutoConfig

    kwargs: dict[str, Any] = dict(vocab_size=VOCAB, initializer_range=0.2)
    if model_type in ENCODERS:
        kwargs.update(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    else:
        kwargs.update(_DECODER)
    kwargs.update(TINY[model_type])
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "pad_token_id"}
    return AutoConfig.for_model(model_type, **kwargs)
