"""Mean ablation: the component's value set to its mean at the same position over a reference dataset (the
behaviour's own inputs by default); positions past the reference's longest text take the mean over all tokens.
With a reference of one example this is a no-op on that example."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import Tensor

from probes.causal.ablations.base import Ablation

if TYPE_CHECKING:
    from probes.causal.components import Component, ValueEdit
    from probes.causal.counterfactual import Counterfactual


class Mean(Ablation):
    name = "mean"
    statistics = "means"

    def replacement(self, cf: Counterfactual, site: str, value: Tensor) -> Tensor:
        assert cf.reference is not None  # check() refused a counterfactual without one
        return cf.reference.mean(site, cf.positions)

    def edit_replacement(
        self, cf: Counterfactual, edit: ValueEdit, value: Tensor, site_replacement: Callable[[], Tensor]
    ) -> tuple[Tensor | None, bool]:
        if edit.statistic_key == edit.site:  # the edit reads the site itself (a direction)
            return site_replacement(), True
        # the mean of the edit's own quantity (a feature's activation), not that quantity of the mean value
        assert cf.reference is not None
        return cf.reference.mean(edit.statistic_key, cf.positions).to(value.device), True

    def reference_key(self, component: Component) -> str:
        from probes.causal.components import ValueEdit

        return component.statistic_key if isinstance(component, ValueEdit) else component.site
