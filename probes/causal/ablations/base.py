"""The protocol every ablation kind follows: what an ablated component's value becomes.

One class per kind, each in a file of its own and registered by name in ``probes.registry.ABLATIONS``
(``@register_ablation``), as pyvene's interventions are classes of one protocol. The evaluator, attribution,
circuits and a dictionary's features all ask the kind the same two questions through a ``Counterfactual``
(``probes.causal.counterfactual``), so a new kind is one class:

* ``replacement(cf, site, value)``: the site's whole value under the ablation, for this batch (each
  component then takes its own slice of it: a head's entry, some neurons, a position);
* ``edit_replacement(cf, edit, value, site_replacement)``: what a component that edits its site by a rule
  (a direction, a dictionary's features, its error term) moves towards: ``(None, False)`` for nothing (zero),
  ``(statistic, True)`` where the kind gives the edit's own derived quantity directly (mean ablation's mean of
  the feature activations), or ``(site value, False)`` from which the edit derives it (the default).

Class attributes say what a kind needs before it can run: ``statistics`` ("means" or "samples" of a
reference dataset, collected by the evaluator over the behaviour's own inputs) and ``needs_source`` (the values
of a paired run, as patching has).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Literal

from torch import Tensor

from analysis.errors import ProbesError

if TYPE_CHECKING:
    from probes.causal.components import Component, ValueEdit
    from probes.causal.counterfactual import Counterfactual


class AblationError(ProbesError, ValueError):
    """An ablation that cannot be carried out as asked."""


class Ablation:
    """Base class of the ablation kinds (see the module)."""

    name: ClassVar[str] = ""  # set by @register_ablation: the name tables and run.json record
    statistics: ClassVar[Literal["means", "samples"] | None] = None  # what it reads of a reference dataset
    needs_source: ClassVar[bool] = False  # takes each value from a paired run

    def replacement(self, cf: Counterfactual, site: str, value: Tensor) -> Tensor:
        """``site``'s value under this ablation, the shape of ``value`` (the batch's own)."""
        raise NotImplementedError

    def edit_replacement(
        self, cf: Counterfactual, edit: ValueEdit, value: Tensor, site_replacement: Callable[[], Tensor]
    ) -> tuple[Tensor | None, bool]:
        """What ``edit`` moves towards, and whether it is the edit's derived quantity already (see the module)."""
        return site_replacement(), False

    def reference_key(self, component: Component) -> str:
        """The reference table ``component`` reads under this kind: its site by default."""
        return component.site

    def check(self, cf: Counterfactual) -> None:
        """Refuse a counterfactual that lacks what this kind reads."""
        if self.statistics is not None and cf.reference is None:
            raise AblationError(
                f"{self.name} ablation needs a reference dataset: pass reference=Reference.from_texts(lm, texts, "
                "components)"
            )
        if self.needs_source and cf.source is None:
            raise AblationError(f"{self.name} needs source values (the paired run's activations)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def ablation_kind(kind: str | Ablation, **traits: bool) -> Ablation:
    """The kind ``kind`` names (an instance of its registered class), or ``kind`` itself if it is one."""
    if isinstance(kind, Ablation):
        return kind
    from probes.registry import ABLATIONS, RegistryError

    try:
        return ABLATIONS.get(kind, **traits)()
    except RegistryError as err:
        raise AblationError(str(err)) from None
