"""The exports of probes.causal: what its ``__init__.py`` imports on first use (``probes.lazy``)."""

from probes.causal.ablation import ablate as ablate
from probes.causal.ablations import (
    Ablation as Ablation,
    Mean as Mean,
    Patch as Patch,
    Resample as Resample,
    Zero as Zero,
    ablation_kind as ablation_kind,
)
from probes.causal.counterfactual import Counterfactual as Counterfactual
from probes.causal.reference import Reference as Reference
from probes.causal.behaviours import (
    Behaviour as Behaviour,
    EmbeddingCosine as EmbeddingCosine,
    FunctionBehaviour as FunctionBehaviour,
    Induction as Induction,
    LogitDiff as LogitDiff,
    MinimalPairs as MinimalPairs,
    NextTokenLoss as NextTokenLoss,
    ProbeAccuracy as ProbeAccuracy,
    make_behaviour as make_behaviour,
)
from probes.causal.attribution import attribute as attribute
from probes.causal.verification import Verification as Verification, verify as verify
from probes.causal.circuits import (
    EdgeEvaluator as EdgeEvaluator,
    FaithfulnessCurve as FaithfulnessCurve,
    faithfulness_curve as faithfulness_curve,
    verify_edges as verify_edges,
)
from probes.causal.components import (
    Attn as Attn,
    Component as Component,
    Direction as Direction,
    Edit as Edit,
    Head as Head,
    MLP as MLP,
    Neurons as Neurons,
    Resid as Resid,
    all_heads as all_heads,
    all_mlps as all_mlps,
    components_from as components_from,
    parse_component as parse_component,
)
from probes.causal.erasure import LeaceEraser as LeaceEraser, amnesic_study as amnesic_study
from probes.causal.evaluator import (
    Evaluator as Evaluator,
    effect_map as effect_map,
    interaction_matrix as interaction_matrix,
    single_effects as single_effects,
    top_components as top_components,
)
from probes.causal.head_stats import head_map as head_map, head_statistics as head_statistics
from probes.causal.patching import patch_effects as patch_effects, patch_evaluator as patch_evaluator
from probes.causal.study import (
    AblationStudy as AblationStudy,
    ablation_study as ablation_study,
    amnesic_rows as amnesic_rows,
)
from probes.causal.shapley import (
    additivity as additivity,
    interaction_indices as interaction_indices,
    shapley_values as shapley_values,
)
