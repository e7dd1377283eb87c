"""What the behaviour rests on: components, ablation, behaviours, the evaluator, patching, erasure, Shapley values,
attention-head statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from probes.lazy import exports

_NAMES = {
    "Reference": "probes.causal.ablation",
    "ablate": "probes.causal.ablation",
    "Behaviour": "probes.causal.behaviour",
    "EmbeddingCosine": "probes.causal.behaviour",
    "LogitDiff": "probes.causal.behaviour",
    "MinimalPairs": "probes.causal.behaviour",
    "NextTokenLoss": "probes.causal.behaviour",
    "ProbeAccuracy": "probes.causal.behaviour",
    "make_behaviour": "probes.causal.behaviour",
    "Attn": "probes.causal.components",
    "Component": "probes.causal.components",
    "Direction": "probes.causal.components",
    "Edit": "probes.causal.components",
    "Head": "probes.causal.components",
    "MLP": "probes.causal.components",
    "Neurons": "probes.causal.components",
    "Resid": "probes.causal.components",
    "all_heads": "probes.causal.components",
    "all_mlps": "probes.causal.components",
    "components_from": "probes.causal.components",
    "parse_component": "probes.causal.components",
    "LeaceEraser": "probes.causal.erasure",
    "amnesic_study": "probes.causal.erasure",
    "Evaluator": "probes.causal.evaluator",
    "effect_map": "probes.causal.evaluator",
    "interaction_matrix": "probes.causal.evaluator",
    "single_effects": "probes.causal.evaluator",
    "top_components": "probes.causal.evaluator",
    "head_map": "probes.causal.head_stats",
    "head_statistics": "probes.causal.head_stats",
    "patch_effects": "probes.causal.patching",
    "additivity": "probes.causal.shapley",
    "interaction_indices": "probes.causal.shapley",
    "shapley_values": "probes.causal.shapley",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # what type checkers and editors see; at run time each name is imported on first use
    from probes.causal.ablation import Reference, ablate
    from probes.causal.behaviour import (
        Behaviour,
        EmbeddingCosine,
        LogitDiff,
        MinimalPairs,
        NextTokenLoss,
        ProbeAccuracy,
        make_behaviour,
    )
    from probes.causal.components import (
        MLP,
        Attn,
        Component,
        Direction,
        Edit,
        Head,
        Neurons,
        Resid,
        all_heads,
        all_mlps,
        components_from,
        parse_component,
    )
    from probes.causal.erasure import LeaceEraser, amnesic_study
    from probes.causal.evaluator import Evaluator, effect_map, interaction_matrix, single_effects, top_components
    from probes.causal.head_stats import head_map, head_statistics
    from probes.causal.patching import patch_effects
    from probes.causal.shapley import additivity, interaction_indices, shapley_values
