"""Ready-made hook functions for ``lm.run_with_hooks`` / ``lm.hooks``: patch a site from another run, or zero it,
whole or only at some heads and positions.

    _, clean = lm.run_with_cache(clean_text, "blocks.*.attn.hook_z")
    lm.run_with_hooks(corrupt_text, hooks={"blocks.14.attn.hook_z": patch(clean, heads=5)})
    lm.run_with_hooks(text, hooks={"blocks.*.hook_mlp_out": zero(positions=[3])})

Each returns a function ``fn(value, site)`` that leaves the value it is given untouched and returns a new one.
Sites hold (batch, pos, ...) values: ``positions`` index the second axis, ``heads`` the head axis of per-head
sites (``attn.hook_q/k/v/z``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from probes.core.model import HookFn
from probes.core.sites import Site, head_axis

Index = int | Sequence[int] | None


def patch(source: Mapping[str, Tensor], *, heads: Index = None, positions: Index = None) -> HookFn:
    """Replace the site's value by ``source[site.name]`` (another run's cache of equal shape) where chosen."""

    def fn(value: Tensor, site: Site) -> Tensor:
        if site.name not in source:
            raise KeyError(f"patch: the source run did not capture {site.name}; capture it there too")
        other = source[site.name].to(value.device, value.dtype)
        if other.shape != value.shape:
            raise ValueError(
                f"patch {site.name}: the source value is {tuple(other.shape)}, this run's {tuple(value.shape)} "
                "(prompts of different token lengths?)"
            )
        return torch.where(_chosen(value, site, heads, positions), other, value)

    return fn


def zero(*, heads: Index = None, positions: Index = None) -> HookFn:
    """Set the site's value to zero where chosen."""

    def fn(value: Tensor, site: Site) -> Tensor:
        return value.masked_fill(_chosen(value, site, heads, positions), 0)

    return fn


def _chosen(value: Tensor, site: Site, heads: Index, positions: Index) -> Tensor:
    """A mask broadcastable to ``value``: True at the chosen positions and heads (everywhere if neither)."""
    mask = torch.ones((1,) * value.ndim, dtype=torch.bool, device=value.device)
    if positions is not None:
        along = torch.zeros(value.shape[1], dtype=torch.bool, device=value.device)
        along[positions] = True
        mask = mask & along.reshape(1, -1, *([1] * (value.ndim - 2)))
    if heads is not None:
        axis = head_axis(site.short) if site.layer is not None else None
        if axis != -2:
            raise ValueError(f"{site.name} has no head axis to pick heads from; use attn.hook_q/k/v/z")
        along = torch.zeros(value.shape[-2], dtype=torch.bool, device=value.device)
        along[heads] = True
        mask = mask & along.reshape(*([1] * (value.ndim - 2)), -1, 1)
    return mask


__all__ = ["patch", "zero"]
