"""What a layer makes linearly readable: datasets, the one feature extractor, probes and their controls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from probes.lazy import exports

_NAMES = {
    "DatasetError": "probes.probing.datasets",
    "ProbingDataset": "probes.probing.datasets",
    "TASKS": "probes.probing.datasets",
    "agreement_pairs": "probes.probing.datasets",
    "agreement_prompts": "probes.probing.datasets",
    "generate": "probes.probing.datasets",
    "Features": "probes.probing.features",
    "extract_features": "probes.probing.features",
    "LayerProbes": "probes.probing.linear",
    "LogisticProbe": "probes.probing.linear",
    "RidgeProbe": "probes.probing.linear",
    "fit_layers": "probes.probing.linear",
    "control_task_rows": "probes.probing.profile",
    "mdl_rows": "probes.probing.profile",
    "task_rows": "probes.probing.profile",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # what type checkers and editors see; at run time each name is imported on first use
    from probes.probing.datasets import (
        TASKS,
        DatasetError,
        ProbingDataset,
        agreement_pairs,
        agreement_prompts,
        generate,
    )
    from probes.probing.features import Features, extract_features
    from probes.probing.linear import LayerProbes, LogisticProbe, RidgeProbe, fit_layers
    from probes.probing.profile import control_task_rows, mdl_rows, task_rows
