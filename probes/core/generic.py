"""The generic adapter: a model type with no row of the table, served where its parts have the usual names.

``generic_adapter(model)`` finds the list of as many blocks as the config has layers, then attention, its output
projection, the MLP's down projection and the final norm by the names the rows of ``probes.core.adapters`` use;
``probes.core.loading`` serves the model only if every site then passes ``verify_sites`` on a probe input.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from probes.core.adapters import Adapter, HFModel, UnsupportedArchitectureError, separate

# The names the common conventions give each part, most common first (read off the rows above).
_ATTENTION = ("self_attn", "attn", "attention", "self_attention")
_ATTENTION_OUT = ("o_proj", "out_proj", "dense", "c_proj", "wo", "Wo", "out_lin", "output.dense")
_MLP = ("mlp", "feed_forward", "ffn")
_MLP_OUT = ("down_proj", "fc2", "c_proj", "dense_4h_to_h", "fc_out", "w2", "Wo", "lin2")
_QUERY_KEY_VALUE = (("q_proj", "k_proj", "v_proj"), ("query", "key", "value"), ("q_lin", "k_lin", "v_lin"))
_FINAL_NORM = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f", "final_norm")
_LN1 = ("input_layernorm", "ln_1", "attn_norm", "self_attn_layer_norm", "ln_attn")
_MLP_IN = ("post_attention_layernorm", "ln_2", "mlp_norm", "final_layer_norm", "ln_mlp", "pre_feedforward_layernorm")


def is_causal_lm(config: Any) -> bool:
    """Does transformers know a causal-LM class for this config (its own or one registered)?"""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    return type(config) in MODEL_FOR_CAUSAL_LM_MAPPING


def generic_adapter(model: HFModel) -> Adapter:
    """An adapter found by the common conventions, for a model type with no row: the ModuleList of as many
    blocks as the config has layers, then attention, its out-projection, the MLP's down projection and the
    final norm by their usual names. It is only a guess: ``probes.core.loading.load`` serves it only if
    ``probes.core.verify.verify_sites`` finds every captured site equal to the model's own outputs."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    base = model.base_model
    n_layers = getattr(config, "num_hidden_layers", None)
    blocks = next(
        (n for n, m in base.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers and n), None
    )
    model_type = model.config.model_type
    if blocks is None:
        raise UnsupportedArchitectureError(_no_row(model_type, f"no list of {n_layers} blocks"))
    block = base.get_submodule(blocks)[0]
    names = dict(block.named_modules())

    def first(candidates: tuple[str, ...], within: str = "", linear: bool = False) -> str | None:
        for name in candidates:
            path = f"{within}.{name}" if within else name
            if path in names and (not linear or hasattr(names[path], "weight")):
                return path
        return None

    attn = first(_ATTENTION)
    attn_out = first(_ATTENTION_OUT, attn, linear=True) if attn else None
    mlp = first(_MLP)
    mlp_out = first(_MLP_OUT, mlp, linear=True) if mlp else first(_MLP_OUT, linear=True)
    missing = [
        what
        for what, found in [("attention", attn), ("its out-projection", attn_out), ("MLP down projection", mlp_out)]
        if found is None
    ]
    if missing:
        raise UnsupportedArchitectureError(_no_row(model_type, f"no {' or '.join(missing)} by the usual names"))
    top = dict(base.named_children())
    final_norm = next((n for n in _FINAL_NORM if n in top), None)
    assert attn is not None and attn_out is not None
    # Separate q, k, v only: a fused projection's column order cannot be told from its name.
    qkv = next((trio for trio in _QUERY_KEY_VALUE if all(f"{attn}.{n}" in names for n in trio)), None)
    return Adapter(
        name="generic",
        model_types=(model_type,),
        blocks=blocks,
        attn=attn,
        attn_out_proj=attn_out,
        mlp_out_proj=mlp_out,
        final_norm=final_norm,
        causal=is_causal_lm(model.config),
        **(separate(attn, qkv) if qkv else {}),
        ln1=first(_LN1),
        mlp_in=first(_MLP_IN),
        mlp=mlp,
        note="found by the common conventions and verified against the model's own outputs at load",
    )


def _no_row(model_type: str, why: str) -> str:
    return (
        f"model type {model_type!r} has no row in the architecture table and the generic adapter cannot serve it "
        f"({why}): add an Adapter row to ADAPTERS in probes/core/adapters.py (module paths read off print(model))"
    )
