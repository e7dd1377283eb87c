"""What ``LoadedModel.run_with_cache`` returns: captured site values by name, as TransformerLens's cache.

    logits, cache = lm.run_with_cache("The keys to the cabinet", "blocks.*.attn.hook_z")
    cache["blocks.3.attn.hook_z"]      # (batch, pos, head, d_head)
    cache["z", 3]                      # the same: a short name and a layer (negative counts from the end)
    cache.stack("resid_post")          # (layers, batch, pos, d_model), every layer captured, in order
    z, labels = cache.stack_heads("z")  # (layers * heads, batch, pos, d_head), labels "L0H0", "L0H1", ...
    cache.to("cpu")                    # a new cache with every value moved

Values are what the hooks saw (detached copies, on the device and in the dtype the model ran them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor

from probes.core.sites import SHORT_NAMES, UnknownSiteError, head_axis, site_name

Key = str | tuple[str, int] | tuple[str]


class ActivationCache(Mapping[str, Tensor]):
    """A read-only mapping from site names to captured values, with short-name access and stacking."""

    def __init__(self, values: Mapping[str, Tensor], n_layers: int | None = None):
        self._values = dict(values)
        self.n_layers = n_layers

    def name(self, key: Key) -> str:
        """The full site name of ``key``: a name, or a (short name, layer) tuple such as ``("z", 3)``."""
        if isinstance(key, str):
            return key if key in self._values or key not in SHORT_NAMES else site_name(key)
        if isinstance(key, tuple) and 1 <= len(key) <= 2 and isinstance(key[0], str):
            layer = key[1] if len(key) == 2 else None
            if layer is not None and not isinstance(layer, int):
                raise TypeError(f"cache[{key!r}]: the layer is a whole number")
            return site_name(key[0], layer, self.n_layers)
        raise TypeError(f"cache keys are site names or (short name, layer) tuples, got {key!r}")

    def __getitem__(self, key: Key) -> Tensor:  # tuples too, as TransformerLens
        name = self.name(key)
        if name not in self._values:
            shown = ", ".join(list(self._values)[:4]) + (", ..." if len(self._values) > 4 else "")
            raise KeyError(f"{name!r} was not captured; this cache holds {len(self._values)} sites ({shown})")
        return self._values[name]

    def __contains__(self, key: object) -> bool:
        try:
            return self.name(key) in self._values  # type: ignore[arg-type]
        except (TypeError, UnknownSiteError):
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = ", ".join(list(self._values)[:3]) + (", ..." if len(self._values) > 3 else "")
        return f"ActivationCache({len(self._values)} sites: {shown})"

    def layers(self, name: str) -> list[int]:
        """The layers at which the block site ``name`` (short or block name) was captured, in order."""
        short = SHORT_NAMES.get(name, name)
        found = [int(k.split(".")[1]) for k in self._values if k.startswith("blocks.") and k.split(".", 2)[2] == short]
        return sorted(found)

    def stack(self, name: str, layers: Sequence[int] | None = None) -> Tensor:
        """A block site over layers: (layers, *value), every captured layer unless ``layers`` picks some."""
        chosen = list(layers) if layers is not None else self.layers(name)
        if not chosen:
            raise KeyError(f"no layer of {name!r} was captured")
        return torch.stack([self[name, layer] for layer in chosen])

    def stack_heads(self, name: str = "z", layers: Sequence[int] | None = None) -> tuple[Tensor, list[str]]:
        """A per-head site over layers and heads, heads first: (layers * heads, *value without its head axis),
        and the labels ``L{layer}H{head}`` in that order."""
        short = SHORT_NAMES.get(name, name)
        axis = head_axis(short)
        if axis is None:
            raise KeyError(f"{name!r} is not a per-head site: use q, k, v, z, pattern or scores")
        chosen = list(layers) if layers is not None else self.layers(name)
        parts, labels = [], []
        for layer in chosen:
            value = self[name, layer].movedim(axis, 0)
            parts.append(value)
            labels += [f"L{layer}H{h}" for h in range(value.shape[0])]
        if not parts:
            raise KeyError(f"no layer of {name!r} was captured")
        return torch.cat(parts), labels

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> ActivationCache:
        """A new cache with every value on ``device`` and/or in ``dtype``."""
        return ActivationCache({k: v.to(device=device, dtype=dtype) for k, v in self._values.items()}, self.n_layers)

    def remove_batch_dim(self) -> ActivationCache:
        """The cache of a one-text run without its batch axis."""
        sizes = {v.shape[0] for v in self._values.values()}
        if sizes != {1}:
            raise ValueError(f"remove_batch_dim needs a batch of one text, this cache holds {sorted(sizes)}")
        return ActivationCache({k: v[0] for k, v in self._values.items()}, self.n_layers)


__all__ = ["ActivationCache"]
