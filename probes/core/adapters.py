"""What the toolkit knows of each architecture, as data.

One row per architecture says where its parts live inside the Hugging Face
model, so that hooks, ablations and probes never branch on the model type.
Paths are relative to ``model.base_model`` (the same for ``AutoModel`` and
``AutoModelForCausalLM``); ``{l}`` is the block index. The unembedding is found
with HF's own ``get_output_embeddings()``.

To add an architecture, add one ``Adapter`` to ``ADAPTERS``: print the model,
read off the module paths, and add a tiny config of it to ``tests/conftest.py``
so the capture tests check it against the model's own outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from analysis.errors import ProbesError


@dataclass(frozen=True)
class Adapter:
    """Where the parts of one architecture live.

    The two ``*_out_proj`` modules are the linear maps that write into the
    residual stream: their input is the per-head output ``z`` (attention) or the
    neuron activations (MLP), their output is the component's contribution.
    """

    name: str
    model_types: tuple[str, ...]
    blocks: str  # the ModuleList of transformer blocks
    attn: str  # the module whose output is (attn_output, attention_weights)
    attn_out_proj: str
    mlp_out_proj: str
    final_norm: str | None  # None: no norm after the last block (post-LN models)
    causal: bool  # decoder-only: load with AutoModelForCausalLM to keep the LM head

    def block(self, layer: int) -> str:
        return f"{self.blocks}.{layer}"

    def path(self, part: str, layer: int) -> str:
        """Module path of ``part`` ("attn", "attn_out_proj", "mlp_out_proj") in block ``layer``."""
        return f"{self.block(layer)}.{getattr(self, part)}"


ADAPTERS: tuple[Adapter, ...] = (
    Adapter(
        name="bert",
        model_types=("bert",),
        blocks="encoder.layer",
        attn="attention.self",
        attn_out_proj="attention.output.dense",
        mlp_out_proj="output.dense",
        final_norm=None,
        causal=False,
    ),
    Adapter(
        name="gpt2",
        model_types=("gpt2",),
        blocks="h",
        attn="attn",
        attn_out_proj="attn.c_proj",
        mlp_out_proj="mlp.c_proj",
        final_norm="ln_f",
        causal=True,
    ),
    Adapter(
        name="llama",
        model_types=("llama",),
        blocks="layers",
        attn="self_attn",
        attn_out_proj="self_attn.o_proj",
        mlp_out_proj="mlp.down_proj",
        final_norm="norm",
        causal=True,
    ),
    Adapter(
        name="gpt_neox",
        model_types=("gpt_neox",),
        blocks="layers",
        attn="attention",
        attn_out_proj="attention.dense",
        mlp_out_proj="mlp.dense_4h_to_h",
        final_norm="final_layer_norm",
        causal=True,
    ),
)


# A transformers model. Its parts are found by attribute and path (config, base_model, blocks), which
# nn.Module's typing (every attribute a Tensor or a Module) cannot follow; the adapters say where they are.
HFModel = Any


class UnsupportedArchitectureError(ProbesError, ValueError):
    """The model's architecture has no entry in ``ADAPTERS``."""


def supported_model_types() -> list[str]:
    return sorted(t for a in ADAPTERS for t in a.model_types)


def adapter_for(model_type: str) -> Adapter:
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise UnsupportedArchitectureError(
        f"unsupported architecture {model_type!r}: supported are {', '.join(supported_model_types())}; "
        "to add one, add an Adapter row to ADAPTERS in probes/adapters.py (module paths read off print(model))"
    )


@dataclass(frozen=True)
class Shape:
    """Sizes of a loaded model that sites and probes need."""

    n_layers: int
    n_heads: int
    d_head: int
    d_model: int
    d_mlp: int
    vocab_size: int


def model_shape(model: HFModel, adapter: Adapter) -> Shape:
    """Read sizes off the modules themselves, not config names that differ per architecture."""
    base = model.base_model
    blocks = base.get_submodule(adapter.blocks)
    config = model.config
    n_heads = int(config.num_attention_heads)
    o_proj = base.get_submodule(adapter.path("attn_out_proj", 0))
    down = base.get_submodule(adapter.path("mlp_out_proj", 0))
    return Shape(
        n_layers=len(blocks),
        n_heads=n_heads,
        d_head=_in_features(o_proj) // n_heads,
        d_model=int(config.hidden_size),
        d_mlp=_in_features(down),
        vocab_size=int(config.vocab_size),
    )


def _in_features(module: HFModel) -> int:
    # nn.Linear stores (out, in); GPT-2's Conv1D stores (in, out) and says nx.
    if isinstance(module, nn.Linear):
        return module.in_features
    if hasattr(module, "nx"):
        return int(module.nx)
    raise UnsupportedArchitectureError(f"cannot read the input size of {type(module).__name__}")
