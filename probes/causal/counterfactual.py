"""What every causal instrument shares: the counterfactual values of a batch, and the forward-pass plumbing.

    cf = Counterfactual(ablation_kind("mean"), batch.positions, batch.example_ids, reference)
    cf.replacement("blocks.3.attn.hook_z", value)   # the site's value under mean ablation, for this batch
    cf.edit_replacement(feature, value)             # what a dictionary feature (any ValueEdit) moves towards

The evaluator's exact ablations (``RowPlan``), attribution's estimates (``probes.causal.attribution``), edges
and circuits (``probes.causal.circuits``) and a dictionary's features (``probes.sparse.components``) all take
their counterfactual from here, so an estimate and the exact effect it estimates answer the same question.
``StopForward`` ends a forward pass at a readout site; ``example_index`` maps a batch's tokens to its examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from probes.causal.ablations.base import Ablation
from probes.causal.components import ValueEdit
from probes.causal.reference import Reference


@dataclass
class Counterfactual:
    """The replacement values of one batch under one ablation kind.

    ``positions`` (rows, T) and ``example_ids`` (rows,) or (rows, T) say where each token sits (what mean and
    resample ablation read); ``reference`` holds their statistics, ``source`` (site -> value of the batch's
    shape) the paired run's values for patching.
    """

    kind: Ablation
    positions: Tensor
    example_ids: Tensor
    reference: Reference | None = None
    source: dict[str, Tensor] | None = None

    def check(self) -> Counterfactual:
        self.kind.check(self)
        return self

    def replacement(self, site: str, value: Tensor) -> Tensor:
        """``site``'s whole value under the ablation, on ``value``'s device, dtype and shape."""
        return self.kind.replacement(self, site, value).to(value.device, value.dtype).reshape(value.shape)

    def edit_replacement(
        self, edit: ValueEdit, value: Tensor, site_replacement: Tensor | None = None
    ) -> tuple[Tensor | None, bool]:
        """What ``edit.apply`` gets: the replacement it moves towards and whether that is its derived quantity
        already (``probes.causal.ablations.base``); ``site_replacement`` is the site's replaced value where the
        caller has it already."""
        if not edit.needs_reference:
            return None, False
        return self.kind.edit_replacement(
            self,
            edit,
            value,
            lambda: site_replacement if site_replacement is not None else self.replacement(edit.site, value),
        )


class StopForward(Exception):
    """Raised by a readout hook: nothing after the readout site is needed."""


def example_index(
    example_ids: Tensor, n_examples: int, rows: int, T: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """For a batch's (rows, T) tokens flattened: each token's example within the batch (its ids count on from the
    first row's) and whether it belongs to one of the batch's ``n_examples``."""
    ids = example_ids.to(device)
    ids = ids[:, None].expand(rows, T) if ids.ndim == 1 else ids
    local = (ids - ids.flatten()[0]).flatten()
    inside = (local >= 0) & (local < n_examples)
    return local.clamp(0, n_examples - 1), inside


__all__ = ["Counterfactual", "StopForward", "example_index"]
