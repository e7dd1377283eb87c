"""Check an architecture's adapter against the model's own outputs on a probe input.

    problems = verify_sites(lm)          # [] when every check holds
    assert not problems, problems

The checks are the ones every table row is tested with, and the ones a model type with no row must pass
before the generic adapter serves it (``probes.core.loading.load``):

* ``hook_resid_pre`` of each block is HF's ``hidden_states`` entry for it, ``hook_resid_post`` the next one
  (the last one through the final norm, where the model has one);
* ``attn.hook_pattern`` is HF's ``attentions`` and the softmax of ``attn.hook_scores``; each head's
  ``attn.hook_z`` is its pattern times ``attn.hook_v`` of the key-value head it reads (which checks the
  split of the value projection into heads, fused or not, and the grouping of grouped-query attention);
  ``hook_logits``, through the row's logit scaling or softcapping, is HF's ``logits``;
* per-head ``attn.hook_z`` times the out-projection's columns per head, plus its bias, is the out-projection's
  output (``hook_attn_out`` itself where no norm follows it), and ``mlp.hook_post`` times the down projection
  is ``hook_mlp_out`` likewise;
* where the blocks are pre-norm, ``hook_resid_pre + s * (hook_attn_out + hook_mlp_out) = hook_resid_post``
  with the row's write scale ``s`` (1 but for Granite), in parallel blocks too; and ``hook_mlp_in`` is the
  MLP's norm (the row's ``mlp_in``) applied to ``hook_resid_pre + s * hook_attn_out`` (to ``hook_resid_pre``
  in parallel blocks; the sum itself where no norm comes first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from accelerate.utils import align_module_device
from torch import Tensor, nn

from probes.core.hooks import capture, eager_attention

if TYPE_CHECKING:
    from probes.core.model import LoadedModel


def probe_ids(lm: LoadedModel, batch: int = 2, length: int = 12, seed: int = 0) -> Tensor:
    """Token ids of a fixed random probe input (special ids at the bottom of the vocabulary left out)."""
    vocab = lm.shape.vocab_size
    low = min(8, vocab - 1)
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, vocab, (batch, length), generator=generator).to(lm.device)


def weight_out_in(module: nn.Module) -> Tensor:
    """A projection's weight as (out, in): nn.Linear stores it so, GPT-2's Conv1D as (in, out)."""
    weight = module.weight
    assert isinstance(weight, Tensor)
    return weight if isinstance(module, nn.Linear) else weight.T


def close(a: Tensor, b: Tensor) -> float:
    """The largest difference relative to the larger tensor's largest magnitude (0: equal)."""
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / max(float(b.abs().max()), float(a.abs().max()), 1e-12))


@torch.inference_mode()
def verify_sites(lm: LoadedModel, input_ids: Tensor | None = None, tolerance: float | None = None) -> list[str]:
    """Each check that fails, as a sentence naming the site, the layer and the relative difference."""
    ids = probe_ids(lm) if input_ids is None else input_ids
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    tol = tolerance if tolerance is not None else (1e-4 if lm.dtype == torch.float32 else 2e-2)
    adapter, config, n = lm.adapter, lm.model.config, lm.shape.n_layers
    problems: list[str] = []

    def check(what: str, got: Tensor, want: Tensor) -> None:
        got = got.to(want.device)  # under a device map, values sit where their modules ran
        if got.shape != want.shape:
            problems.append(f"{what}: shape {tuple(got.shape)}, the model's is {tuple(want.shape)}")
        elif (diff := close(got, want)) > tol:
            problems.append(f"{what}: differs from the model's own by {diff:.1e} (relative)")

    with eager_attention(lm):
        ref = lm.model(**batch, output_hidden_states=True, output_attentions=True)
        with capture(lm, "*") as cache:
            lm.model(**batch)
    hidden = ref.hidden_states
    if hidden is None or len(hidden) != n + 1:
        return [f"the model returned {0 if hidden is None else len(hidden)} hidden states for {n} blocks"]
    for l in range(n):
        check(f"blocks.{l}.hook_resid_pre", cache[f"blocks.{l}.hook_resid_pre"], hidden[l])
        if l < n - 1:
            check(f"blocks.{l}.hook_resid_post", cache[f"blocks.{l}.hook_resid_post"], hidden[l + 1])
        if ref.attentions is not None and ref.attentions[l] is not None:
            check(f"blocks.{l}.attn.hook_pattern", cache[f"blocks.{l}.attn.hook_pattern"], ref.attentions[l])
        else:
            problems.append(f"blocks.{l}: the model returned no attention weights to check hook_pattern against")
    last = "ln_final.hook_normalized" if adapter.final_norm is not None else f"blocks.{n - 1}.hook_resid_post"
    check(last, cache[last], hidden[n])
    if "hook_logits" in cache and getattr(ref, "logits", None) is not None:
        check("hook_logits", adapter.final_logits(cache["hook_logits"], config), ref.logits)

    for l in range(n):
        pattern = cache[f"blocks.{l}.attn.hook_pattern"]
        if f"blocks.{l}.attn.hook_scores" in cache:
            scores = cache[f"blocks.{l}.attn.hook_scores"].float()
            check(f"blocks.{l}.attn.hook_scores through softmax", scores.softmax(-1), pattern)
        if f"blocks.{l}.attn.hook_v" in cache:
            v = cache[f"blocks.{l}.attn.hook_v"]  # (batch, key, kv_head, d_head)
            z = cache[f"blocks.{l}.attn.hook_z"]
            if v.shape[-1] != z.shape[-1] or z.shape[-2] % v.shape[-2]:
                problems.append(f"blocks.{l}.attn.hook_v: {v.shape[-2]} heads of {v.shape[-1]} for {z.shape[-2]} of z")
                continue
            v = v.repeat_interleave(z.shape[-2] // v.shape[-2], dim=-2)
            check(f"blocks.{l}.attn.hook_pattern x hook_v per head", torch.einsum("bhqk,bkhd->bqhd", pattern, v), z)

    base = lm.base
    for l in range(n):
        o_proj = base.get_submodule(adapter.path("attn_out_proj", l))
        z = cache[f"blocks.{l}.attn.hook_z"]  # (batch, pos, head, d_head)
        with align_module_device(o_proj):  # weights a device map offloaded are loaded while in here
            w = weight_out_in(o_proj).unflatten(1, (z.shape[-2], z.shape[-1]))  # (d_model, head, d_head)
            by_heads = torch.einsum("bphd,mhd->bpm", z.to(w.device, w.dtype), w)
            if getattr(o_proj, "bias", None) is not None:
                by_heads = by_heads + o_proj.bias
        if adapter.attn_write is None:  # else a norm follows the projection: the decomposition checks the write
            check(f"blocks.{l}.attn.hook_z x the out-projection per head", by_heads, cache[f"blocks.{l}.hook_attn_out"])
        if adapter.mlp_out_proj is not None and adapter.mlp_write is None:
            down = base.get_submodule(adapter.path("mlp_out_proj", l))
            post = cache[f"blocks.{l}.mlp.hook_post"]
            with align_module_device(down):
                by_neurons = post.to(down.weight.device, down.weight.dtype) @ weight_out_in(down).T
                if getattr(down, "bias", None) is not None:
                    by_neurons = by_neurons + down.bias
            check(f"blocks.{l}.mlp.hook_post x the down projection", by_neurons, cache[f"blocks.{l}.hook_mlp_out"])
        if adapter.decomposes(config) and f"blocks.{l}.hook_mlp_in" in cache:
            # the MLP reads the residual after attention (before it, in parallel blocks), through its norm
            resid = cache[f"blocks.{l}.hook_resid_pre"]
            if not adapter.parallel:
                resid = resid + adapter.write_scale(config) * cache[f"blocks.{l}.hook_attn_out"]
            reader = adapter.reader_path("mlp_in", l, base)
            if reader is not None and reader != adapter.path("mlp", l):
                norm = base.get_submodule(reader)
                with torch.no_grad(), align_module_device(norm):
                    resid = norm(resid.to(next(norm.parameters(), resid).device))
            check(
                f"blocks.{l}.hook_mlp_in: the MLP's norm of the residual it reads",
                cache[f"blocks.{l}.hook_mlp_in"],
                resid,
            )
        if adapter.decomposes(config):
            scale = adapter.write_scale(config)
            writes = cache[f"blocks.{l}.hook_attn_out"] + cache[f"blocks.{l}.hook_mlp_out"]
            check(
                f"blocks.{l}: resid_pre + attn_out + mlp_out = resid_post",
                cache[f"blocks.{l}.hook_resid_pre"] + scale * writes,
                cache[f"blocks.{l}.hook_resid_post"],
            )
    return problems


__all__ = ["close", "probe_ids", "verify_sites", "weight_out_in"]
