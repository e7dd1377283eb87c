"""Zero ablation: the component's value set to 0."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from probes.causal.ablations.base import Ablation

if TYPE_CHECKING:
    from probes.causal.components import ValueEdit
    from probes.causal.counterfactual import Counterfactual


class Zero(Ablation):
    name = "zero"

    def replacement(self, cf: Counterfactual, site: str, value: Tensor) -> Tensor:
        return torch.zeros_like(value)

    def edit_replacement(
        self, cf: Counterfactual, edit: ValueEdit, value: Tensor, site_replacement: Callable[[], Tensor]
    ) -> tuple[Tensor | None, bool]:
        return None, False  # an edit's quantity (a direction's coordinate, a feature) goes to zero
