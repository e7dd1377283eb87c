"""Patching: the component's value set to its value in a paired run (the other prompt of each pair, at the
same example and position), as activation patching does (``probes.causal.patching``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from probes.causal.ablations.base import Ablation, AblationError

if TYPE_CHECKING:
    from probes.causal.counterfactual import Counterfactual


class Patch(Ablation):
    name = "patch"
    needs_source = True

    def replacement(self, cf: Counterfactual, site: str, value: Tensor) -> Tensor:
        if cf.source is None or site not in cf.source:
            raise AblationError(f"no source values for site {site}: capture it in the source run")
        return cf.source[site]
