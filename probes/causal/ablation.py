"""Ablate components in a forward pass: whole batches (``ablate``) or many conditions at once (``RowPlan``).

    ref = Reference.from_texts(lm, texts, [Head(3, 5), MLP(2)])
    with ablate(lm, [Head(3, 5), MLP(2)], kind="mean", reference=ref):
        logits = lm.model(**batch).logits

The kind (``zero``, ``mean``, ``resample``, ``patch`` or one you register) says what an ablated component's value
becomes (``probes.causal.ablations``); each component takes its own part of that value (a head's entry, some
neurons, a position), and a direction keeps everything orthogonal to it.

``RowPlan`` is the batched form used by sweeps: each row of a batch carries its own set of ablated components,
so many ablation conditions share one forward.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from probes.causal.ablations.base import Ablation, AblationError, ablation_kind
from probes.causal.components import Component, Slice, ValueEdit, check
from probes.causal.counterfactual import Counterfactual
from probes.causal.reference import Reference, token_positions
from probes.core.hooks import hooked
from probes.core.model import LoadedModel


@dataclass
class RowPlan:
    """Which rows of a batch ablate which components (a sweep's many conditions in one forward).

    rows[i] is the set of components ablated in row i; positions (rows, T) and example_ids
    (rows,) or (rows, T) (rows holding several examples) say where each token sits,
    for mean and resample ablation. Kind "patch" takes each replaced value from
    ``source`` (site -> a value of the same shape, e.g. the clean run's).
    """

    rows: list[frozenset[Component]]
    kind: str | Ablation
    positions: Tensor
    example_ids: Tensor
    reference: Reference | None = None
    source: dict[str, Tensor] | None = None
    counterfactual: Counterfactual = field(init=False)

    def __post_init__(self) -> None:
        self.counterfactual = Counterfactual(
            ablation_kind(self.kind), self.positions, self.example_ids, self.reference, self.source
        )

    def hooks(self, lm: LoadedModel) -> dict[str, Callable[[Tensor], Tensor]]:
        self.counterfactual.check()
        members: dict[str, dict[Component, list[int]]] = defaultdict(lambda: defaultdict(list))
        for row, components in enumerate(self.rows):
            for component in components:
                members[component.site][check(component, lm.shape)].append(row)
        return {site: self._site_hook(site, by_component) for site, by_component in members.items()}

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
        cf = self.counterfactual
        sliced: dict[Slice, list[int]] = {c: r for c, r in by_component.items() if isinstance(c, Slice)}
        edits: dict[ValueEdit, list[int]] = {c: r for c, r in by_component.items() if isinstance(c, ValueEdit)}

        def hook(value: Tensor) -> Tensor:
            if value.shape[0] != n_rows:
                raise AblationError(f"{site}: the ablation plan has {n_rows} rows but the batch has {value.shape[0]}")
            replaced: list[Tensor] = []  # one replacement per call, shared by every component that reads it

            def replacement() -> Tensor:
                if not replaced:
                    replaced.append(cf.replacement(site, value))
                return replaced[0]

            new = value
            if sliced:
                mask = torch.zeros(value.shape, dtype=torch.bool, device=value.device)
                for part, rows in sliced.items():
                    part.select(mask, self._tokens(part, rows, value))
                new = torch.where(mask, replacement(), new)
            for edit, rows in edits.items():
                tokens = self._tokens(edit, rows, value)
                goal, derived = (
                    cf.kind.edit_replacement(cf, edit, value, replacement) if edit.needs_reference else (None, False)
                )
                if getattr(edit, "additive", False):  # computed from the original value: such edits add up
                    new = new + (edit.apply(value, goal, tokens, derived) - value)
                else:
                    new = edit.apply(new, goal, tokens, derived)
            return new

        return hook


@contextmanager
def ablate(
    lm: LoadedModel,
    components: Component | Sequence[Component],
    kind: str | Ablation = "zero",
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
    ablation = ablation_kind(kind)
    Counterfactual(ablation, torch.zeros(0), torch.zeros(0), reference).check()
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
            built[key] = RowPlan([frozenset(components)] * rows, ablation, positions, ids, reference).hooks(lm)
        return built[key]

    def dispatch(site: str):
        return lambda value: hooks_for(value)[site](value)

    with hooked(lm, {site: dispatch(site) for site in sites}):
        yield
