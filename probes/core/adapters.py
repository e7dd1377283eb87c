"""What the toolkit knows of each architecture, as data.

One row per architecture says where its parts live inside the Hugging Face
model, so that hooks, ablations and probes never branch on the model type.
Paths are relative to ``model.base_model`` (the same for ``AutoModel`` and
``AutoModelForCausalLM``); ``{l}`` is the block index. The unembedding is found
with HF's own ``get_output_embeddings()``.

To add an architecture, add one ``Adapter`` to ``ADAPTERS``: print the model,
read off the module paths, and add a tiny config of it to ``tests/architectures.py``
so ``tests/unit/core/test_architectures.py`` checks it against the model's own
outputs (``probes.core.verify.verify_sites``). From your own code, ``register_adapter(row)`` adds one
at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from analysis.errors import ProbesError


@dataclass(frozen=True)
class Adapter:
    """Where the parts of one architecture live, and how its blocks combine them.

    The two ``*_out_proj`` modules are the linear maps that write into the
    residual stream: their input is the per-head output ``z`` (attention) or the
    neuron activations (MLP), their output is the component's contribution,
    unless ``attn_write`` / ``mlp_write`` name a module after them whose output
    is what is added to the residual (Gemma 2's post-attention norm; a mixture
    of experts, which has no single down projection).
    """

    name: str
    model_types: tuple[str, ...]
    blocks: str  # the ModuleList of transformer blocks
    attn: str  # the module whose output is (attn_output, attention_weights)
    attn_out_proj: str
    mlp_out_proj: str | None  # None: no single down projection (experts fused into 3-D parameters)
    final_norm: str | None  # None: no norm after the last block (post-LN models)
    causal: bool  # decoder-only: load with AutoModelForCausalLM to keep the LM head
    attn_write: str | None = None  # the module whose output attention adds to the residual, if not attn_out_proj
    mlp_write: str | None = None  # likewise for the MLP
    parallel: bool = False  # attention and MLP both read the block's input (GPT-J, Falcon, Phi, Cohere)
    post_norm: bool = False  # the block normalises after each add (BERT): its output is not a sum of writes
    mlp_flattens_tokens: bool = False  # the MLP runs on (batch * pos, d) (OPT); its sites are reshaped back
    pre_norm_flag: str | None = None  # config attribute that, when false, makes the blocks post-norm (OPT-350m)
    residual_multiplier: str | None = None  # config attribute scaling each write before the add (Granite)
    logit_multiplier: str | None = None  # config attribute: the model's logits are the unembedding's times it
    logit_divisor: str | None = None  # ... divided by it (Granite's logits_scaling)
    logit_softcap: str | None = None  # ... softcapped at it: cap * tanh(logits / cap) (Gemma 2)
    q: str | None = None  # the query, key and value projections, where they are separate modules
    k: str | None = None
    v: str | None = None
    qkv: str | None = None  # ... or the one module that computes all three
    qkv_layout: str = "concat"  # how its output columns are ordered: see ``qkv_columns``
    final_proj: str | None = None  # a projection the unembedding reads after the last block, where present
    # Where each reader takes the residual stream (edges, ``probes.causal.circuits``): the norm q, k and v are
    # computed from (None: the projections read the residual as it is), and the module that takes the residual
    # on the MLP's behalf (its norm, or the MLP itself where none comes first); "a|b": the first present.
    ln1: str | None = None
    mlp_in: str | None = None
    mlp: str | None = None  # the module that is the MLP (its input: ``hook_mlp_in``, what the MLP computes from)
    note: str = ""  # what a user should know about its sites (the docs' architecture table shows it)

    def block(self, layer: int) -> str:
        return f"{self.blocks}.{layer}"

    def path(self, part: str, layer: int) -> str:
        """Module path of ``part`` ("attn", "attn_out_proj", "mlp_out_proj", "attn_write", "mlp_write") in
        block ``layer``; a write is its out-projection unless the row names another module."""
        if part in ("attn_write", "mlp_write"):
            part = part if getattr(self, part) is not None else part.replace("write", "out_proj")
        if part in ("q", "k", "v") and getattr(self, part) is None:
            part = "qkv"
        return f"{self.block(layer)}.{getattr(self, part)}"

    def reader_path(self, part: str, layer: int, base: Any) -> str | None:
        """Module path of ``ln1`` or ``mlp_in`` in block ``layer`` (of alternatives "a|b", the first present)."""
        names = getattr(self, part)
        paths = [f"{self.block(layer)}.{name}" for name in names.split("|")] if names else []
        return next((path for path in paths if _present(base, path)), None)

    def for_model(self, model: Any) -> Adapter:
        """This row as one model has it: a final norm the config leaves out (``None``, OPT-350m) is dropped,
        and a final projection that is there (OPT-350m's ``project_out``) is what ``ln_final`` reads, since
        the unembedding reads its output."""
        base = model.base_model
        present = lambda path: path is not None and _present(base, path)
        final = self.final_proj if present(self.final_proj) else self.final_norm if present(self.final_norm) else None
        return self if final == self.final_norm else replace(self, final_norm=final)

    @property
    def has_qkv(self) -> bool:
        return self.qkv is not None or None not in (self.q, self.k, self.v)

    def decomposes(self, config: Any) -> bool:
        """Is each block's output its input plus its writes (pre-norm blocks, sequential or parallel)?"""
        return not self.post_norm and (self.pre_norm_flag is None or bool(getattr(config, self.pre_norm_flag, True)))

    def write_scale(self, config: Any) -> float:
        """What each write is multiplied by before it is added to the residual stream."""
        return float(getattr(config, self.residual_multiplier)) if self.residual_multiplier else 1.0

    def final_logits(self, unembedded: torch.Tensor, config: Any) -> torch.Tensor:
        """The model's logits from the unembedding's output (``hook_logits``)."""
        out = unembedded
        if self.logit_multiplier and getattr(config, self.logit_multiplier, None) is not None:
            out = out * getattr(config, self.logit_multiplier)
        if self.logit_divisor and getattr(config, self.logit_divisor, None) is not None:
            out = out / getattr(config, self.logit_divisor)
        if self.logit_softcap and getattr(config, self.logit_softcap, None) is not None:
            cap = getattr(config, self.logit_softcap)
            out = torch.tanh(out / cap) * cap
        return out


def _present(base: Any, path: str) -> bool:
    """Is there a module at ``path`` (an attribute set to None, as configs leave some, is none)?"""
    try:
        return base.get_submodule(path) is not None
    except AttributeError:
        return False


def qkv_columns(adapter: Adapter, config: Any, which: str, n_heads: int, d_head: int, width: int) -> torch.Tensor:
    """Which output columns of a fused q/k/v projection (``width`` of them) hold ``which`` ("q", "k", "v"),
    as a (heads, d_head) index: "concat" is [q heads | k heads | v heads] (GPT-2, Phi-3, ModernBERT, and
    multi-query Falcon), "interleaved" is [q k v] head after head (GPT-NeoX, Falcon without multi-query),
    Falcon's new decoder architecture groups each key-value head's queries before its key and value."""
    layout = adapter.qkv_layout
    if layout == "falcon":
        if getattr(config, "new_decoder_architecture", False):
            layout = "grouped"
        else:
            layout = "concat" if getattr(config, "multi_query", True) else "interleaved"
    d = torch.arange(d_head)
    if layout == "concat":
        n_kv = (width - n_heads * d_head) // (2 * d_head)
        start = {"q": 0, "k": n_heads * d_head, "v": (n_heads + n_kv) * d_head}[which]
        return start + torch.arange((n_heads if which == "q" else n_kv) * d_head).view(-1, d_head)
    if layout == "interleaved":
        return torch.arange(n_heads)[:, None] * 3 * d_head + "qkv".index(which) * d_head + d
    if layout == "grouped":
        n_kv = int(config.num_kv_heads)
        per = n_heads // n_kv  # queries per key-value head
        group = torch.arange(n_kv)[:, None] * (per + 2) * d_head
        if which == "q":
            return (group[:, None, :] + torch.arange(per)[None, :, None] * d_head + d).view(n_heads, d_head)
        return group + (per + "kv".index(which)) * d_head + d
    raise ValueError(f"unknown qkv_layout {adapter.qkv_layout!r} in the {adapter.name} row")


def _decoder(name: str, *model_types: str, **parts: Any) -> Adapter:
    """A Llama-layout decoder (``layers.{l}.self_attn.o_proj``, ``mlp.down_proj``, final ``norm``) unless
    ``parts`` says otherwise."""
    layout = dict(
        blocks="layers",
        attn="self_attn",
        attn_out_proj="self_attn.o_proj",
        mlp_out_proj="mlp.down_proj",
        final_norm="norm",
        causal=True,
        q="self_attn.q_proj",
        k="self_attn.k_proj",
        v="self_attn.v_proj",
        ln1="input_layernorm",
        mlp_in="post_attention_layernorm",
        mlp="mlp",
    )
    return Adapter(name=name, model_types=model_types or (name,), **{**layout, **parts})


def _encoder(name: str, *model_types: str, **parts: Any) -> Adapter:
    """A BERT-layout encoder: post-norm blocks, no final norm."""
    layout = dict(
        blocks="encoder.layer",
        attn="attention.self",
        attn_out_proj="attention.output.dense",
        mlp_out_proj="output.dense",
        final_norm=None,
        causal=False,
        post_norm=True,
        q="attention.self.query",
        k="attention.self.key",
        v="attention.self.value",
        mlp="intermediate",
    )
    return Adapter(name=name, model_types=model_types or (name,), **{**layout, **parts})


_GEMMA2_NOTE = (
    "hook_attn_out and hook_mlp_out are the post-attention and post-feedforward norms' outputs, what the "
    "block adds to the residual; hook_z and mlp.hook_post feed o_proj and down_proj before those norms"
)
_MOE_NOTE = (
    "a mixture of experts: hook_mlp_out is the whole expert block's output (routed experts weighted by the "
    "router, plus any shared expert); there is no mlp.hook_post, the experts' weights being fused 3-D parameters"
)
_GPT2: dict[str, Any] = dict(
    blocks="h",
    attn="attn",
    attn_out_proj="attn.c_proj",
    mlp_out_proj="mlp.c_proj",
    final_norm="ln_f",
    qkv="attn.c_attn",
    ln1="ln_1",
    mlp_in="ln_2",
    mlp="mlp",
)
_QKV = ("q_proj", "k_proj", "v_proj")


def separate(prefix: str, names: tuple[str, str, str] = _QKV) -> dict[str, Any]:
    return dict(zip(("q", "k", "v"), (f"{prefix}.{n}" for n in names), strict=True), qkv=None)


ADAPTERS: tuple[Adapter, ...] = (
    _encoder("bert", "bert", "roberta", "electra"),
    _encoder(
        "deberta-v2",
        **separate("attention.self", ("query_proj", "key_proj", "value_proj")),
        note="disentangled attention: hook_pattern holds the softmax over content and relative-position scores",
    ),
    _encoder(
        "distilbert",
        blocks="transformer.layer",
        attn="attention",
        attn_out_proj="attention.out_lin",
        mlp_out_proj="ffn.lin2",
        mlp="ffn",
        **separate("attention", ("q_lin", "k_lin", "v_lin")),
    ),
    Adapter(
        name="modernbert",
        model_types=("modernbert",),
        blocks="layers",
        attn="attn",
        attn_out_proj="attn.Wo",
        mlp_out_proj="mlp.Wo",
        final_norm="final_norm",
        causal=False,
        qkv="attn.Wqkv",
        ln1="attn_norm",
        mlp_in="mlp_norm",
        mlp="mlp",
        note="pre-norm encoder; mlp.hook_post is the gated activation (act(input) * gate) that feeds mlp.Wo",
    ),
    Adapter(name="gpt2", model_types=("gpt2",), causal=True, **_GPT2),
    Adapter(
        name="gpt_neo",
        model_types=("gpt_neo",),
        causal=True,
        **{
            **_GPT2,
            "attn": "attn.attention",
            "attn_out_proj": "attn.attention.out_proj",
            **separate("attn.attention"),
        },
    ),
    _decoder(
        "llama",
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "olmo",
        "smollm3",
        "stablelm",
        note="",
    ),
    _decoder(
        "gemma", note="hook_resid_pre of block 0 holds the embeddings times sqrt(d_model), as the block sees them"
    ),
    _decoder(
        "gemma2",
        "gemma2",
        "gemma3_text",
        attn_write="post_attention_layernorm",
        mlp_write="post_feedforward_layernorm",
        mlp_in="pre_feedforward_layernorm",
        logit_softcap="final_logit_softcapping",
        note=_GEMMA2_NOTE + "; embeddings scaled as in Gemma; the logits are softcapped hook_logits",
    ),
    _decoder(
        "olmo2",
        attn_write="post_attention_layernorm",
        mlp_write="post_feedforward_layernorm",
        ln1=None,
        mlp_in="mlp",
        note="norms after attention and MLP, none before: " + _GEMMA2_NOTE.split(", what")[0] + ", what the "
        "block adds to the residual",
    ),
    _decoder(
        "phi3",
        q=None,
        k=None,
        v=None,
        qkv="self_attn.qkv_proj",
        note="q, k, v are one fused qkv_proj and gate, up one gate_up_proj; hook_z feeds o_proj as in Llama",
    ),
    _decoder("starcoder2", mlp_out_proj="mlp.c_proj"),
    _decoder(
        "granite",
        residual_multiplier="residual_multiplier",
        logit_divisor="logits_scaling",
        note="each write is scaled by residual_multiplier before the add; the logits are hook_logits / logits_scaling",
    ),
    _decoder(
        "cohere",
        parallel=True,
        mlp_in="input_layernorm",
        logit_multiplier="logit_scale",
        note="the logits are hook_logits x logit_scale",
    ),
    _decoder("mixtral", "mixtral", "qwen2_moe", "qwen3_moe", mlp_out_proj=None, mlp_write="mlp", note=_MOE_NOTE),
    _decoder(
        "opt",
        blocks="decoder.layers",
        attn_out_proj="self_attn.out_proj",
        mlp_out_proj="fc2",
        final_norm="decoder.final_layer_norm",
        final_proj="decoder.project_out",
        ln1="self_attn_layer_norm",
        mlp_in="final_layer_norm",
        mlp="fc1",
        pre_norm_flag="do_layer_norm_before",
        mlp_flattens_tokens=True,
        note="OPT-350m (do_layer_norm_before=False) normalises after each add: no decomposition there, no final "
        "norm, and ln_final.hook_normalized is project_out's output (word_embed_proj_dim wide), what the "
        "unembedding reads",
    ),
    _decoder(
        "gpt_neox",
        attn="attention",
        attn_out_proj="attention.dense",
        mlp_out_proj="mlp.dense_4h_to_h",
        final_norm="final_layer_norm",
        parallel=True,
        q=None,
        k=None,
        v=None,
        qkv="attention.query_key_value",
        qkv_layout="interleaved",
    ),
    Adapter(
        name="gptj",
        model_types=("gptj",),
        causal=True,
        parallel=True,
        **{
            **_GPT2,
            "attn_out_proj": "attn.out_proj",
            "mlp_out_proj": "mlp.fc_out",
            **separate("attn"),
            "mlp_in": "ln_1",
        },
    ),
    _decoder(
        "phi",
        attn_out_proj="self_attn.dense",
        mlp_out_proj="mlp.fc2",
        final_norm="final_layernorm",
        parallel=True,
        mlp_in="input_layernorm",
    ),
    Adapter(
        name="falcon",
        model_types=("falcon",),
        blocks="h",
        attn="self_attention",
        attn_out_proj="self_attention.dense",
        mlp_out_proj="mlp.dense_4h_to_h",
        final_norm="ln_f",
        causal=True,
        parallel=True,
        qkv="self_attention.query_key_value",
        qkv_layout="falcon",
        ln1="ln_attn|input_layernorm",
        mlp_in="ln_mlp|input_layernorm",
        mlp="mlp",
        note="the block adds attention's output into the MLP's in place; the sites hold copies taken before",
    ),
)


def architecture_table() -> str:
    """The docs' list of architectures (docs/models.md), as a Markdown table generated from ``ADAPTERS``."""
    rows = [
        "| model types | row | blocks | q, k, v | attention writes / MLP writes | notes |",
        "|---|---|---|---|---|---|",
    ]
    for a in ADAPTERS:
        kind = "post-norm" if a.post_norm else "parallel" if a.parallel else "sequential"
        writes = f"`{a.attn_write or a.attn_out_proj}` / `{a.mlp_write or a.mlp_out_proj}`"
        qkv = (
            f"`{a.qkv}` ({a.qkv_layout})"
            if a.qkv
            else f"`{a.q}`, `{str(a.k).rsplit('.', 1)[-1]}`, `{str(a.v).rsplit('.', 1)[-1]}`"
        )
        rows.append(f"| {', '.join(a.model_types)} | {a.name} | {kind} | {qkv} | {writes} | {a.note} |")
    return "\n".join(rows)


# A transformers model. Its parts are found by attribute and path (config, base_model, blocks), which
# nn.Module's typing (every attribute a Tensor or a Module) cannot follow; the adapters say where they are.
HFModel = Any


class UnsupportedArchitectureError(ProbesError, ValueError):
    """The model's architecture has no entry in ``ADAPTERS``."""


_REGISTERED: list[Adapter] = []  # rows added at run time (register_adapter), consulted before the table


def register_adapter(adapter: Adapter, *, replace: bool = False) -> Adapter:
    """Add a row for model types the table does not know (or, with ``replace``, serve known ones differently);
    ``load`` and ``wrap`` then use it. Check it with ``probes.core.verify.verify_sites`` on a model of each type."""
    taken = [t for t in adapter.model_types if t in supported_model_types()]
    if taken and not replace:
        raise UnsupportedArchitectureError(
            f"model type {taken[0]!r} has a row already; pass replace=True to serve it with this one"
        )
    _REGISTERED[:] = [a for a in _REGISTERED if not set(a.model_types) & set(adapter.model_types)]
    _REGISTERED.insert(0, adapter)
    return adapter


def supported_model_types() -> list[str]:
    return sorted({t for a in (*_REGISTERED, *ADAPTERS) for t in a.model_types})


def adapter_for(model_type: str) -> Adapter:
    for adapter in (*_REGISTERED, *ADAPTERS):
        if model_type in adapter.model_types:
            return adapter
    raise UnsupportedArchitectureError(
        f"unsupported architecture {model_type!r}: supported are {', '.join(supported_model_types())}; "
        "to add one, add an Adapter row to ADAPTERS in probes/core/adapters.py (module paths read off print(model))"
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
    n_kv_heads: int  # key-value heads: fewer than n_heads under grouped-query attention, one under multi-query


def model_shape(model: HFModel, adapter: Adapter) -> Shape:
    """Read sizes off the modules themselves, not config names that differ per architecture."""
    base = model.base_model
    blocks = base.get_submodule(adapter.blocks)
    config = model.config
    n_heads = int(config.num_attention_heads)
    o_proj = base.get_submodule(adapter.path("attn_out_proj", 0))
    if adapter.mlp_out_proj is not None:
        d_mlp = _in_features(base.get_submodule(adapter.path("mlp_out_proj", 0)))
    else:  # experts: each expert's width
        d_mlp = int(getattr(config, "moe_intermediate_size", None) or config.intermediate_size)
    d_head = _in_features(o_proj) // n_heads
    return Shape(
        n_layers=len(blocks),
        n_heads=n_heads,
        d_head=d_head,
        d_model=int(config.hidden_size),
        d_mlp=d_mlp,
        vocab_size=int(config.vocab_size),
        n_kv_heads=_kv_heads(model, adapter, n_heads, d_head),
    )


def _kv_heads(model: HFModel, adapter: Adapter, n_heads: int, d_head: int) -> int:
    """Key-value heads, read off the key projection's width (or the fused projection's columns)."""
    if not adapter.has_qkv:
        return n_heads
    width = out_width(model.base_model.get_submodule(adapter.path("k", 0)))
    if adapter.k is not None:
        return width // d_head
    return len(qkv_columns(adapter, model.config, "k", n_heads, d_head, width))


def out_width(module: HFModel) -> int:
    """Output columns of a linear map (GPT-2's Conv1D says ``nf``)."""
    return int(getattr(module, "out_features", None) or module.nf)


def _in_features(module: HFModel) -> int:
    # nn.Linear stores (out, in); GPT-2's Conv1D stores (in, out) and says nx.
    if isinstance(module, nn.Linear):
        return module.in_features
    if hasattr(module, "nx"):
        return int(module.nx)
    raise UnsupportedArchitectureError(f"cannot read the input size of {type(module).__name__}")
