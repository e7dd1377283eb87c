"""Ablation kinds: one class each (``Zero``, ``Mean``, ``Resample``, ``Patch``), registered by name in
``probes.registry.ABLATIONS``; ``Ablation`` is the protocol a kind of your own follows (see ``base``)."""

from probes.causal.ablations.base import Ablation as Ablation
from probes.causal.ablations.base import AblationError as AblationError
from probes.causal.ablations.base import ablation_kind as ablation_kind
from probes.causal.ablations.mean import Mean as Mean
from probes.causal.ablations.patch import Patch as Patch
from probes.causal.ablations.resample import Resample as Resample
from probes.causal.ablations.zero import Zero as Zero
