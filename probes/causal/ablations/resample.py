"""Resample ablation: the component's value set to its value on a different reference input at the same
position, drawn per (example, position) by a seeded hash, so the same example always gets the same draw
whatever batch it sits in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from probes.causal.ablations.base import Ablation

if TYPE_CHECKING:
    from probes.causal.counterfactual import Counterfactual


class Resample(Ablation):
    name = "resample"
    statistics = "samples"

    def replacement(self, cf: Counterfactual, site: str, value: Tensor) -> Tensor:
        assert cf.reference is not None  # check() refused a counterfactual without one
        return cf.reference.resample(site, cf.positions, cf.example_ids)
