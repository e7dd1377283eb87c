"""Site names <-> modules: one naming scheme for every architecture.

Names follow TransformerLens so that what users know transfers:

=============================  =====================================  ==========================  ===========
site                           what it holds                          shape (per batch)           hooked on
=============================  =====================================  ==========================  ===========
``blocks.{l}.hook_resid_pre``  residual stream entering block l       (batch, pos, d_model)       block input
``blocks.{l}.hook_resid_post`` residual stream leaving block l        (batch, pos, d_model)       block output
``blocks.{l}.attn.hook_q``     queries per head, before rotary/norms  (batch, pos, head, d_head)  q projection output
``blocks.{l}.attn.hook_k``     keys per key-value head, likewise      (batch, pos, kv_head, d_head)  k projection output
``blocks.{l}.attn.hook_v``     values per key-value head              (batch, pos, kv_head, d_head)  v projection output
``blocks.{l}.attn.hook_scores`` attention scores before the softmax   (batch, head, query, key)   softmax input
``blocks.{l}.attn.hook_pattern`` attention weights, per head           (batch, head, query, key)   attention output[1]
``blocks.{l}.attn.hook_z``     per-head output before the out proj    (batch, pos, head, d_head)  attn out-proj input
``blocks.{l}.hook_attn_out``   attention's write to the residual      (batch, pos, d_model)       attn out-proj output
``blocks.{l}.hook_mlp_in``     what the MLP computes from             (batch, pos, d_model)       MLP input
``blocks.{l}.mlp.hook_post``   MLP neuron activations                 (batch, pos, d_mlp)         MLP out-proj input
``blocks.{l}.hook_mlp_out``    MLP's write to the residual            (batch, pos, d_model)       MLP out-proj output
``ln_final.hook_normalized``   final normed residual                  (batch, pos, d_model)       final norm output
``hook_logits``                logits                                 (batch, pos, vocab)         unembedding output
=============================  =====================================  ==========================  ===========

Notes that differ from TransformerLens because these are unmodified HF models:

* ``hook_attn_out`` / ``hook_mlp_out`` are the output-projection outputs (bias
  included), before dropout (a no-op in eval) and before any residual add; in
  BERT (post-LN) the block then applies LayerNorm to ``resid + out``.
* BERT has no final norm (its blocks end in LayerNorm) and ``AutoModel`` has no
  unembedding, so ``ln_final.hook_normalized`` and ``hook_logits`` do not exist
  for it.
* ``attn.hook_q/k/v`` are the projections' outputs (bias included) split into heads, before rotary
  embeddings and any q/k norm; under grouped-query attention k and v have one entry per key-value head
  (query head h reads key-value head ``h // (heads // kv_heads)``). Where one module computes all three
  (GPT-2's ``c_attn``, GPT-NeoX's ``query_key_value``, Phi-3's ``qkv_proj``) its columns are split by the
  row's ``qkv_layout``; replacing one of them rewrites only its columns.
* ``attn.hook_scores`` is what the model's own eager attention feeds its softmax: scaled (and softcapped,
  Gemma 2), position terms added (ALiBi, DeBERTa), the mask added (masked entries hold the dtype's minimum
  or -inf, as in HF). ``softmax(hook_scores) = hook_pattern``.
* Reading ``attn.hook_pattern`` or ``attn.hook_scores`` needs eager attention; ``probes.core.hooks`` switches
  to it only while one of them is hooked.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass
from typing import Literal

from analysis.errors import ProbesError
from probes.core.adapters import Adapter, Shape

Part = Literal[
    "block",
    "attn",
    "q",
    "k",
    "v",
    "attn_out_proj",
    "mlp",
    "mlp_out_proj",
    "attn_write",
    "mlp_write",
    "final_norm",
    "unembed",
]


@dataclass(frozen=True)
class SiteKind:
    """How to reach one kind of site: which module, its input or output, which tuple item."""

    part: Part
    io: Literal["input", "output", "softmax"]  # softmax: the input of the softmax run inside the module
    index: int = 0  # item of a tuple output
    per_head: bool = False  # reshape (..., heads * d_head) -> (..., heads, d_head)
    writable: bool = True  # can an intervention replace it?
    needs_eager: bool = False


BLOCK_SITES: dict[str, SiteKind] = {
    "hook_resid_pre": SiteKind("block", "input"),
    "hook_resid_post": SiteKind("block", "output"),
    "attn.hook_q": SiteKind("q", "output", per_head=True),
    "attn.hook_k": SiteKind("k", "output", per_head=True),
    "attn.hook_v": SiteKind("v", "output", per_head=True),
    "attn.hook_scores": SiteKind("attn", "softmax", needs_eager=True),
    "attn.hook_pattern": SiteKind("attn", "output", index=1, writable=False, needs_eager=True),
    "attn.hook_z": SiteKind("attn_out_proj", "input", per_head=True),
    "hook_attn_out": SiteKind("attn_write", "output"),
    "hook_mlp_in": SiteKind("mlp", "input"),
    "mlp.hook_post": SiteKind("mlp_out_proj", "input"),
    "hook_mlp_out": SiteKind("mlp_write", "output"),
}
MODEL_SITES: dict[str, SiteKind] = {
    "ln_final.hook_normalized": SiteKind("final_norm", "output"),
    "hook_logits": SiteKind("unembed", "output"),
}

# TransformerLens's short names (``utils.get_act_name``): ``site_name("z", 3)`` is ``blocks.3.attn.hook_z``.
SHORT_NAMES: dict[str, str] = {
    "resid_pre": "hook_resid_pre",
    "resid_post": "hook_resid_post",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "scores": "attn.hook_scores",
    "attn_scores": "attn.hook_scores",
    "pattern": "attn.hook_pattern",
    "z": "attn.hook_z",
    "attn_out": "hook_attn_out",
    "mlp_in": "hook_mlp_in",
    "post": "mlp.hook_post",
    "mlp_post": "mlp.hook_post",
    "mlp_out": "hook_mlp_out",
    "normalized": "ln_final.hook_normalized",
    "ln_final": "ln_final.hook_normalized",
    "logits": "hook_logits",
}


def site_name(name: str, layer: int | None = None, n_layers: int | None = None) -> str:
    """A full site name from a short one and a layer: ``site_name("z", 3)`` -> ``blocks.3.attn.hook_z``.

    ``name`` is a short name (``SHORT_NAMES``), a block site's own name (``attn.hook_z``) or a full name; a
    negative ``layer`` counts from the end and needs ``n_layers``.
    """
    full = SHORT_NAMES.get(name, name)
    if full in MODEL_SITES or name.startswith("blocks."):
        if layer is not None:
            raise UnknownSiteError(f"site {full!r} takes no layer, got {layer}")
        return full
    if full not in BLOCK_SITES:
        raise UnknownSiteError(
            f"unknown site {name!r}: use a short name ({', '.join(SHORT_NAMES)}) or a block site "
            f"({', '.join(BLOCK_SITES)})"
        )
    if layer is None:
        raise UnknownSiteError(f"site {name!r} lives in every block: give a layer, e.g. ({name!r}, 0)")
    if layer < 0:
        if n_layers is None:
            raise UnknownSiteError(f"layer {layer} counts from the end, which needs the model's number of layers")
        layer += n_layers
    return f"blocks.{layer}.{full}"


def head_axis(short: str) -> int | None:
    """Where a block site keeps its heads: the axis after the batch for patterns and scores (batch, head, query,
    key), the one before the last for per-head values (batch, pos, head, d_head); None for other sites."""
    if short in ("attn.hook_pattern", "attn.hook_scores"):
        return 1
    kind = BLOCK_SITES.get(short)
    return -2 if kind is not None and kind.per_head else None


_BLOCK_NAME = re.compile(r"^blocks\.(\d+)\.(.+)$")


class UnknownSiteError(ProbesError, KeyError):
    """A site name that does not exist for this model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Site:
    name: str
    kind: SiteKind
    layer: int | None  # None for model-level sites

    @property
    def short(self) -> str:
        """The name without the block prefix, e.g. ``hook_resid_post``."""
        return self.name.split(".", 2)[2] if self.layer is not None else self.name


def block_sites(adapter: Adapter) -> dict[str, SiteKind]:
    """The block sites this architecture has (a mixture of experts has no single MLP down projection; a
    generic adapter may have found no q/k/v projections)."""

    def has(kind: SiteKind) -> bool:
        if kind.part == "mlp_out_proj":
            return adapter.mlp_out_proj is not None
        if kind.part == "mlp":
            return adapter.mlp is not None
        return kind.part not in ("q", "k", "v") or adapter.has_qkv

    return {k: v for k, v in BLOCK_SITES.items() if has(v)}


def all_site_names(adapter: Adapter, shape: Shape, has_unembed: bool) -> list[str]:
    names = [f"blocks.{l}.{s}" for l in range(shape.n_layers) for s in block_sites(adapter)]
    if adapter.final_norm is not None:
        names.append("ln_final.hook_normalized")
    if has_unembed:
        names.append("hook_logits")
    return names


def parse_site(name: str, adapter: Adapter, shape: Shape, has_unembed: bool) -> Site:
    match = _BLOCK_NAME.match(name)
    if match:
        layer, short = int(match.group(1)), match.group(2)
        if short in BLOCK_SITES and short not in block_sites(adapter) and BLOCK_SITES[short].part == "mlp":
            raise UnknownSiteError(
                f"site {name!r} does not exist: no MLP module was found in this {adapter.name} model's blocks; add "
                "mlp to its row in probes/core/adapters.py"
            )
        if short in BLOCK_SITES and short not in block_sites(adapter) and BLOCK_SITES[short].part != "mlp_out_proj":
            raise UnknownSiteError(
                f"site {name!r} does not exist: no query/key/value projections were found in this "
                f"{adapter.name} model's attention; add q, k, v (or qkv) to its row in probes/core/adapters.py"
            )
        if short in BLOCK_SITES and short not in block_sites(adapter):
            raise UnknownSiteError(
                f"site {name!r} does not exist: this {adapter.name} model's MLP is a mixture of experts with no "
                "single down projection; use its write, 'hook_mlp_out'"
            )
        if short in BLOCK_SITES and layer < shape.n_layers:
            return Site(name, BLOCK_SITES[short], layer)
        if short in BLOCK_SITES:
            raise UnknownSiteError(
                f"site {name!r}: layer {layer} does not exist, the model has layers 0..{shape.n_layers - 1}"
            )
    valid = all_site_names(adapter, shape, has_unembed)
    if name in valid:
        return Site(name, MODEL_SITES[name], None)
    if name in MODEL_SITES:
        why = "has no final norm (post-LN)" if name.startswith("ln_final") else "has no unembedding (no LM head)"
        raise UnknownSiteError(f"site {name!r} does not exist: this {adapter.name} model {why}")
    hint = difflib.get_close_matches(name, valid, n=1)
    suggestion = f"did you mean {hint[0]!r}? " if hint else ""
    raise UnknownSiteError(
        f"unknown site {name!r}: {suggestion}site names look like 'blocks.3.hook_resid_post'; "
        "list them with `probes sites MODEL` or LoadedModel.site_names()"
    )


def expand(patterns: str | list[str], adapter: Adapter, shape: Shape, has_unembed: bool) -> list[Site]:
    """Resolve names and glob patterns ("blocks.*.hook_resid_post", "*") to sites, in model order."""
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise UnknownSiteError("no sites requested: name at least one, e.g. 'blocks.0.hook_resid_post'")
    valid = all_site_names(adapter, shape, has_unembed)
    chosen: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            hits = fnmatch.filter(valid, pattern)
            if not hits:
                raise UnknownSiteError(f"site pattern {pattern!r} matches no site of this {adapter.name} model")
            chosen.extend(hits)
        else:
            chosen.append(parse_site(pattern, adapter, shape, has_unembed).name)
    order = {name: i for i, name in enumerate(valid)}
    unique = sorted(set(chosen), key=order.__getitem__)
    return [parse_site(name, adapter, shape, has_unembed) for name in unique]
