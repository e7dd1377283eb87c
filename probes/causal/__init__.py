"""What the behaviour rests on: components, ablation, behaviours, the evaluator, patching, erasure, Shapley values,
attention-head statistics."""

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

__all__ = [
    "MLP",
    "Attn",
    "Behaviour",
    "Component",
    "Direction",
    "Edit",
    "EmbeddingCosine",
    "Evaluator",
    "Head",
    "LeaceEraser",
    "LogitDiff",
    "MinimalPairs",
    "Neurons",
    "NextTokenLoss",
    "ProbeAccuracy",
    "Reference",
    "Resid",
    "ablate",
    "additivity",
    "all_heads",
    "all_mlps",
    "amnesic_study",
    "components_from",
    "effect_map",
    "head_map",
    "head_statistics",
    "interaction_indices",
    "interaction_matrix",
    "make_behaviour",
    "parse_component",
    "patch_effects",
    "shapley_values",
    "single_effects",
    "top_components",
]
