"""Per-position statistics of sites over a reference dataset: what mean and resample ablation read.

ref = Reference.from_texts(lm, texts, [Head(3, 5), MLP(2)])
ref.mean("blocks.3.attn.hook_z", positions)                 # (rows, T, *value) per-position means
ref.resample("blocks.3.attn.hook_z", positions, example_ids)  # values of other inputs, seeded per token
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from probes.causal.ablations.base import AblationError
from probes.causal.components import Component, ValueEdit
from probes.core.hooks import capture
from probes.core.model import LoadedModel


def token_positions(attention_mask: Tensor) -> Tensor:
    """Position of each token within its text (0 at the first real token), whatever the padding side."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass
class Reference:
    """Per-position statistics of component sites over a reference dataset.

    means[site]: (T + 1, *value) per-position means; the last row is the mean over all tokens.
    samples[site]: (n, T, *value) the activations themselves (kept for resample ablation).
    counts: (T,) how many reference texts reach each position.
    """

    means: dict[str, Tensor]
    samples: dict[str, Tensor]
    valid: Tensor  # (n, T) bool
    seed: int = 0

    @classmethod
    def from_batches(
        cls,
        lm: LoadedModel,
        batches: Sequence[Mapping[str, Tensor]],
        sites: Sequence[str | Component],
        *,
        keep_samples: bool = True,
        seed: int = 0,
    ) -> Reference:
        """Statistics of ``sites`` (names, or components' sites) over already tokenised batches."""
        names = sorted({s.site if isinstance(s, Component) else s for s in sites})
        # quantities derived from a site (a dictionary's feature activations): their means only
        derived = {s.statistic_key: s for s in sites if isinstance(s, ValueEdit) and s.statistic_key != s.site}
        if not batches:
            raise AblationError("the reference dataset is empty: give at least one text")
        values: dict[str, list[Tensor]] = defaultdict(list)
        masks: list[Tensor] = []
        with torch.inference_mode(), capture(lm, names) as cache:
            for batch in batches:
                inputs = {
                    k: v.to(lm.device)
                    for k, v in batch.items()
                    if k in ("input_ids", "attention_mask", "token_type_ids", "position_ids")
                }
                lm.model(**inputs)
                masks.append(inputs["attention_mask"].bool())
                for site in names:
                    values[site].append(_to_position_major(cache[site], inputs["attention_mask"]))
                for key, edit in derived.items():
                    values[key].append(_to_position_major(edit.statistic(cache[edit.site]), inputs["attention_mask"]))
        T = max(m.shape[1] for m in masks)
        valid = torch.cat([_pad_to(_to_position_major(m, m), T) for m in masks])  # left-aligned (n, T)
        means, samples = {}, {}
        for site in [*names, *derived]:
            stacked = torch.cat([_pad_to(v, T) for v in values[site]])  # (n, T, *value)
            w = valid.reshape(*valid.shape, *([1] * (stacked.ndim - 2))).to(stacked.dtype)
            per_position = (stacked * w).sum(0) / w.sum(0).clamp(min=1)
            overall = (stacked * w).sum((0, 1)) / w.sum()
            means[site] = torch.cat([per_position, overall[None]])
            if keep_samples and site in names:  # resample reads the site itself, never a derived quantity
                samples[site] = stacked
        return cls(means, samples, valid, seed)

    @classmethod
    def from_texts(
        cls,
        lm: LoadedModel,
        texts: Sequence[str],
        sites: Sequence[str | Component],
        *,
        batch_size: int = 32,
        keep_samples: bool = True,
        seed: int = 0,
        max_length: int | None = None,
    ) -> Reference:
        texts = list(texts)
        if not texts:
            raise AblationError("the reference dataset is empty: give at least one text")
        batches = [
            lm.encode(texts[i : i + batch_size], max_length=max_length).model_inputs(lm.device)
            for i in range(0, len(texts), batch_size)
        ]
        return cls.from_batches(lm, batches, sites, keep_samples=keep_samples, seed=seed)

    @property
    def length(self) -> int:
        return self.valid.shape[1]

    def mean(self, site: str, positions: Tensor) -> Tensor:
        """(rows, T) positions -> (rows, T, *value) per-position means."""
        table = self._table(self.means, site)
        return table[positions.clamp(max=self.length).to(table.device)]

    def resample(self, site: str, positions: Tensor, example_ids: Tensor) -> Tensor:
        """(rows, T) positions and (rows,) example ids -> values drawn from other reference inputs."""
        samples = self._table(self.samples, site, "resample ablation needs keep_samples=True")
        src, pos = self.sources(positions, example_ids)
        return samples[src.to(samples.device), pos.to(samples.device)]

    def sources(self, positions: Tensor, example_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Which reference (text, position) stands in for each (example, position): a seeded hash, no state."""
        positions = positions.cpu()
        valid = self.valid.cpu()
        n, T = valid.shape
        ids = example_ids.cpu()
        u = _hash_uniform(self.seed, (ids[:, None] if ids.ndim == 1 else ids).expand_as(positions), positions)
        inside = positions < T
        pos = torch.where(inside, positions, torch.zeros_like(positions)).clamp(max=T - 1)
        # texts long enough to have this position, in order; pick the k-th of them
        order = torch.argsort((~valid).to(torch.int8), dim=0, stable=True)  # (n, T): valid rows first per column
        counts = valid.sum(0)  # (T,)
        k = (u * counts[pos]).long().clamp(max=n - 1)
        src = order[k, pos]
        # past the longest reference text: any real token
        flat = valid.flatten().nonzero().squeeze(1)
        pick = flat[(u * len(flat)).long().clamp(max=len(flat) - 1)]
        src = torch.where(inside, src, pick // T)
        pos = torch.where(inside, pos, pick % T)
        return src, pos

    def _table(self, tables: dict[str, Tensor], site: str, hint: str = "") -> Tensor:
        if site not in tables:
            raise AblationError(
                f"the reference has no statistics for site {site}: build it with this component among its sites. "
                f"{hint}".strip()
            )
        return tables[site]


def _hash_uniform(seed: int, a: Tensor, b: Tensor) -> Tensor:
    """A stateless hash of (seed, a, b) to [0, 1): splitmix64-style mixing in int64."""
    x = (a.long() * 0x9E3779B1 + b.long() * 0x85EBCA77 + seed * 0xC2B2AE3D) & 0xFFFFFFFF
    for mult in (0x7FEB352D, 0x846CA68B):
        x = ((x ^ (x >> 15)) * mult) & 0xFFFFFFFF
    x = x ^ (x >> 16)
    return x.double() / 2**32


def _to_position_major(value: Tensor, attention_mask: Tensor) -> Tensor:
    """Left-align each row's real tokens so that column p is position p (undoes left padding)."""
    if attention_mask.shape[1] == 0 or bool(attention_mask[:, 0].all()):  # right padding: already aligned
        return value
    order = torch.argsort((attention_mask == 0).to(torch.int8), dim=1, stable=True)
    index = order.reshape(*order.shape, *([1] * (value.ndim - 2))).expand_as(value)
    return value.gather(1, index)


def _pad_to(value: Tensor, length: int) -> Tensor:
    if value.shape[1] == length:
        return value
    pad = value.new_zeros(value.shape[0], length - value.shape[1], *value.shape[2:])
    return torch.cat([value, pad], 1)
