"""Ablate components (zero, mean or resample) through the hooks of ``probes.hooks``.

    ref = Reference.from_texts(lm, texts, [Head(3, 5), MLP(2)])
    with ablate(lm, [Head(3, 5), MLP(2)], kind="mean", reference=ref):
        logits = lm.model(**batch).logits

Kinds:

* ``zero``: the component's value is set to 0.
* ``mean``: set to its mean over a reference dataset, *at the same position*
  (positions past the reference's longest text take the mean over all tokens).
  With a reference of one example this is a no-op on that example.
* ``resample``: set to its value on a different reference input at the same
  position, drawn per (example, position) by a seeded hash, so the same example
  always gets the same draw whatever batch it sits in.

A direction component is ablated along its direction only: the residual keeps
everything orthogonal to it.

``RowPlan`` is the batched form used by sweeps: each row of a batch carries its
own set of ablated components, so many ablation conditions share one forward.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from analysis.errors import ProbesError
from probes.causal.components import Component, Slice, ValueEdit, check
from probes.core.align import encode
from probes.core.hooks import capture, hooked
from probes.core.models import LoadedModel

KINDS = ("zero", "mean", "resample")


class AblationError(ProbesError, ValueError):
    """An ablation that cannot be carried out as asked."""


def check_kind(kind: str, reference: Reference | None) -> None:
    if kind not in KINDS:
        raise AblationError(f"unknown ablation kind {kind!r}: choose one of {', '.join(KINDS)}")
    if kind != "zero" and reference is None:
        raise AblationError(
            f"{kind} ablation needs a reference dataset: pass reference=Reference.from_texts(lm, texts, components)"
        )


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
            encode(lm.tokenizer, texts[i : i + batch_size], lm.max_length(max_length)).model_inputs(lm.device)
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


# --- applying ablations -------------------------------------------------------------------------


@dataclass
class RowPlan:
    """Which rows of a batch ablate which components (a sweep's many conditions in one forward).

    rows[i] is the set of components ablated in row i; positions (rows, T) and example_ids
    (rows,) or (rows, T) (rows holding several examples) say where each token sits,
    for mean and resample ablation. Kind "patch" takes each replaced value from
    ``source`` (site -> a value of the same shape, e.g. the clean run's).
    """

    rows: list[frozenset[Component]]
    kind: str
    positions: Tensor
    example_ids: Tensor
    reference: Reference | None = None
    source: dict[str, Tensor] | None = None

    def hooks(self, lm: LoadedModel) -> dict[str, Callable[[Tensor], Tensor]]:
        if self.kind == "patch":
            if self.source is None:
                raise AblationError("patching needs source values (the other run's activations)")
        else:
            check_kind(self.kind, self.reference)
        members: dict[str, dict[Component, list[int]]] = defaultdict(lambda: defaultdict(list))
        for row, components in enumerate(self.rows):
            for component in components:
                members[component.site][check(component, lm.shape)].append(row)
        return {site: self._site_hook(site, by_component) for site, by_component in members.items()}

    def _replacement(self, site: str, value: Tensor) -> Tensor:
        if self.kind == "zero":
            return torch.zeros_like(value)
        if self.kind == "patch":
            if self.source is None or site not in self.source:
                raise AblationError(f"no source values for site {site}: capture it in the source run")
            return self.source[site].to(value.device, value.dtype).reshape(value.shape)
        assert self.reference is not None  # hooks() checked that mean and resample ablation have one
        if self.kind == "mean":
            r = self.reference.mean(site, self.positions)
        else:
            r = self.reference.resample(site, self.positions, self.example_ids)
        return r.to(value.device, value.dtype).reshape(value.shape)

    def edit_replacement(self, edit: ValueEdit, value: Tensor, site_replacement: Tensor | None = None) -> Tensor | None:
        """What ``edit.apply`` gets under this plan's kind (see ``ValueEdit``); ``site_replacement`` is the site's
        replaced value where the caller has it already."""
        if self.kind == "zero" or not edit.needs_reference:
            return None
        if self.kind == "mean" and edit.statistic_key != edit.site:
            assert self.reference is not None  # hooks() checked that mean ablation has one
            return self.reference.mean(edit.statistic_key, self.positions).to(value.device)
        return site_replacement if site_replacement is not None else self._replacement(edit.site, value)

    def _tokens(self, component: Component, rows: list[int], value: Tensor) -> Tensor:
        """(rows, T) bool: the tokens this component is replaced at."""
        selected = torch.zeros(value.shape[0], dtype=torch.bool, device=value.device)
        selected[rows] = True
        tokens = selected[:, None].expand(value.shape[0], value.shape[1])
        if component.at is not None:
            tokens = tokens & (self.positions.to(value.device) == component.at)
        return tokens

    def _site_hook(self, site: str, by_component: dict[Component, list[int]]):
        n_rows = len(self.rows)
        sliced: dict[Slice, list[int]] = {c: r for c, r in by_component.items() if isinstance(c, Slice)}
        edits: dict[ValueEdit, list[int]] = {c: r for c, r in by_component.items() if isinstance(c, ValueEdit)}
        # one replacement per call, shared by every sliced component and every edit that reads the site's
        needs_replacement = bool(sliced) or (
            self.kind != "zero" and any(c.needs_reference and c.statistic_key == c.site for c in edits)
        )

        def hook(value: Tensor) -> Tensor:
            if value.shape[0] != n_rows:
                raise AblationError(f"{site}: the ablation plan has {n_rows} rows but the batch has {value.shape[0]}")
            replacement = self._replacement(site, value) if needs_replacement else None
            new = value
            if sliced:
                mask = torch.zeros(value.shape, dtype=torch.bool, device=value.device)
                for part, rows in sliced.items():
                    part.select(mask, self._tokens(part, rows, value))
                assert replacement is not None
                new = torch.where(mask, replacement, new)
            for edit, rows in edits.items():
                tokens = self._tokens(edit, rows, value)
                if getattr(edit, "additive", False):  # computed from the original value: such edits add up
                    new = new + (
                        edit.apply(value, self.edit_replacement(edit, value, replacement), tokens, self.kind) - value
                    )
                else:
                    new = edit.apply(new, self.edit_replacement(edit, value, replacement), tokens, self.kind)
            return new

        return hook


@contextmanager
def ablate(
    lm: LoadedModel,
    components: Component | Sequence[Component],
    kind: str = "zero",
    reference: Reference | None = None,
    *,
    attention_mask: Tensor | None = None,
    example_ids: Tensor | None = None,
) -> Iterator[None]:
    """Ablate ``components`` in every forward pass inside the block (every row of every batch).

    Mean and resample ablation need token positions: they are read from
    ``attention_mask`` when given (any padding side), else taken as 0..T-1 per row.
    ``example_ids`` (rows,) key the resample draws (default: row index).
    """
    components = [components] if isinstance(components, Component) else list(components)
    check_kind(kind, reference)
    for c in components:
        check(c, lm.shape)
    sites = sorted({c.site for c in components})
    built: dict[tuple[int, int], dict] = {}  # the plan's hooks, per batch shape (rows, T)

    def hooks_for(value: Tensor) -> dict:
        rows, T = key = (value.shape[0], value.shape[1])
        if key not in built:
            if attention_mask is not None:
                positions = token_positions(attention_mask.to(value.device))
            else:
                positions = torch.arange(T, device=value.device).expand(rows, T)
            ids = example_ids if example_ids is not None else torch.arange(rows)
            built[key] = RowPlan([frozenset(components)] * rows, kind, positions, ids, reference).hooks(lm)
        return built[key]

    def dispatch(site: str):
        return lambda value: hooks_for(value)[site](value)

    with hooked(lm, {site: dispatch(site) for site in sites}):
        yield
