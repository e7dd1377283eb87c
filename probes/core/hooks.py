"""Capture and intervene on named sites with PyTorch hooks on unmodified HF models.

    with capture(lm, ["blocks.*.hook_resid_post", "blocks.3.attn.hook_pattern"]) as cache:
        lm.model(**batch)
    cache["blocks.3.attn.hook_pattern"]        # (batch, head, query, key)

    with intervene(lm, {"blocks.2.attn.hook_z": zero_head(5)}):
        logits = lm.model(**batch).logits

Every hook is removed when the ``with`` block ends, also when the forward
raises. Captured tensors stay on the model's device and dtype, detached.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from probes.core.align import encode
from probes.core.models import LoadedModel
from probes.core.sites import Site

SiteFn = Callable[[Tensor], Tensor | None]  # sees the site's value; returns a replacement or None


class _Handles:
    """Several hook handles removed as one."""

    def __init__(self, *handles: RemovableHandle) -> None:
        self.handles = handles

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def add_hook(lm: LoadedModel, site: Site, fn: SiteFn) -> RemovableHandle | _Handles:
    """Register ``fn`` on ``site``; a returned tensor replaces the site's value."""
    module = lm.module_for(site)
    kind = site.kind
    n_heads = lm.shape.n_heads
    extra: list[RemovableHandle] = []
    tokens: list[torch.Size] = []  # the block input's (batch, pos), where the MLP sees tokens flattened

    if kind.needs_eager:
        extra += _ask_for_weights(module)
    if kind.part in ("mlp_out_proj", "mlp_write") and lm.adapter.mlp_flattens_tokens:
        assert site.layer is not None

        def record(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            tokens[:] = [(args[0] if args else kwargs["hidden_states"]).shape[:-1]]

        block = lm.base.get_submodule(lm.adapter.block(site.layer))
        extra.append(block.register_forward_pre_hook(record, with_kwargs=True))

    def to_site(value: Tensor) -> Tensor:
        if tokens and value.dim() == 2:  # OPT's MLP runs on (batch * pos, d)
            value = value.unflatten(0, tokens[0])
        return value.unflatten(-1, (n_heads, -1)) if kind.per_head else value

    def from_site(value: Tensor) -> Tensor:
        value = value.flatten(-2) if kind.per_head else value
        return value.flatten(0, 1) if tokens and value.dim() == 3 else value

    if kind.io == "output":

        def output_hook(_module: torch.nn.Module, _args: Any, output: Any) -> Any:
            is_tuple = isinstance(output, tuple)
            value = output[kind.index] if is_tuple else output
            if value is None:
                raise RuntimeError(
                    f"{site.name}: the model returned no attention weights; load it with attn_implementation='eager'"
                )
            new = fn(to_site(value))
            if new is None:
                return None
            if not kind.writable:
                raise ValueError(f"site {site.name} can be read but not replaced")
            new = from_site(new)
            return output[: kind.index] + (new,) + output[kind.index + 1 :] if is_tuple else new

        return _Handles(*extra, module.register_forward_hook(output_hook))

    def input_hook(_module: torch.nn.Module, args: tuple, kwargs: dict) -> Any:
        by_name = not args
        value = kwargs["hidden_states"] if by_name else args[0]
        new = fn(to_site(value))
        if new is None:
            return None
        new = from_site(new)
        if by_name:
            return args, {**kwargs, "hidden_states": new}
        return (new, *args[1:]), kwargs

    return _Handles(*extra, module.register_forward_pre_hook(input_hook, with_kwargs=True))


def _ask_for_weights(attn: torch.nn.Module) -> list[RemovableHandle]:
    """Attention modules that return their weights only when asked (DeBERTa; Falcon, whose SDPA path returns
    none) are asked, whatever the caller passed."""
    try:
        signature = inspect.signature(attn.forward)
    except (TypeError, ValueError):
        return []
    if "output_attentions" not in signature.parameters:
        return []

    def ask(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        bound = signature.bind_partial(*args, **kwargs)
        bound.arguments["output_attentions"] = True
        return bound.args, bound.kwargs

    return [attn.register_forward_pre_hook(ask, with_kwargs=True)]


@contextmanager
def hooked(lm: LoadedModel, fns: Mapping[str, SiteFn]) -> Iterator[list[Site]]:
    """Register one function per site (names or glob patterns) for the duration of the block."""
    resolved: list[tuple[Site, SiteFn]] = []
    for pattern, fn in fns.items():
        resolved.extend((site, fn) for site in lm.resolve(pattern))
    with ExitStack() as stack:
        if any(site.kind.needs_eager for site, _ in resolved):
            stack.enter_context(eager_attention(lm))
        for site, fn in resolved:
            stack.callback(add_hook(lm, site, fn).remove)
        yield [site for site, _ in resolved]


@contextmanager
def eager_attention(lm: LoadedModel) -> Iterator[None]:
    """Attention weights exist only under eager attention: switch to it, then back."""
    config = lm.model.config
    before = config._attn_implementation
    if before == "eager":
        yield
        return
    lm.model.set_attn_implementation("eager")
    try:
        yield
    finally:
        lm.model.set_attn_implementation(before)


@contextmanager
def capture(lm: LoadedModel, sites: str | list[str]) -> Iterator[dict[str, Tensor]]:
    """Record the named sites of every forward pass run inside the block.

    The dict fills in as the model runs; a site seen twice (two forwards) keeps
    the last value. Values are detached copies: some models edit a tensor in place after the site has
    seen it (Falcon adds attention's output into the MLP's), which a view would silently follow.
    """
    cache: dict[str, Tensor] = {}

    def recorder(name: str) -> SiteFn:
        def record(value: Tensor) -> None:
            cache[name] = value.detach().clone()

        return record

    names = [site.name for site in lm.resolve(sites)]
    with hooked(lm, {name: recorder(name) for name in names}):
        yield cache


@contextmanager
def intervene(lm: LoadedModel, edits: Mapping[str, SiteFn]) -> Iterator[None]:
    """Replace site values during every forward pass inside the block.

    Each function gets the site's value (per-head sites as (..., head, d_head))
    and returns the replacement, same shape, or None to leave it.
    """
    with hooked(lm, edits):
        yield


def run_with_cache(
    lm: LoadedModel,
    inputs: str | list[str] | Mapping[str, Tensor],
    sites: str | list[str],
    *,
    max_length: int | None = None,
    **forward_kwargs: Any,
) -> tuple[Any, dict[str, Tensor]]:
    """One forward pass over text (or an already-tokenised batch) with the sites captured."""
    if isinstance(inputs, Mapping):
        batch = {k: v.to(lm.device) for k, v in inputs.items()}
    else:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        batch = encode(lm.tokenizer, texts, lm.max_length(max_length)).model_inputs(lm.device)
    with torch.inference_mode(), capture(lm, sites) as cache:
        output = lm.model(**batch, **forward_kwargs)
    return output, cache
