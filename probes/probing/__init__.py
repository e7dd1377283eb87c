"""What a layer makes linearly readable: datasets, the one feature extractor, probes and their controls."""

from probes.probing.datasets import TASKS, DatasetError, ProbingDataset, agreement_pairs, agreement_prompts, generate
from probes.probing.features import Features, extract_features
from probes.probing.linear import LayerProbes, LogisticProbe, RidgeProbe, fit_layers
from probes.probing.profile import control_task_rows, mdl_rows, task_rows

__all__ = [
    "TASKS",
    "DatasetError",
    "Features",
    "LayerProbes",
    "LogisticProbe",
    "ProbingDataset",
    "RidgeProbe",
    "agreement_pairs",
    "agreement_prompts",
    "control_task_rows",
    "extract_features",
    "fit_layers",
    "generate",
    "mdl_rows",
    "task_rows",
]
