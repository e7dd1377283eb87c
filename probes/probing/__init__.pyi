"""The exports of probes.probing: what its ``__init__.py`` imports on first use (``probes.lazy``)."""

from probes.probing.datasets import (
    DatasetError as DatasetError,
    ProbingDataset as ProbingDataset,
    TASKS as TASKS,
    agreement_pairs as agreement_pairs,
    agreement_prompts as agreement_prompts,
    copula_agreement_pairs as copula_agreement_pairs,
    generate as generate,
)
from probes.probing.features import Features as Features, extract_features as extract_features
from probes.probing.lens import LogitLens as LogitLens, TunedLens as TunedLens, collect as collect, lens_scores as lens_scores
from probes.probing.linear import (
    LayerProbes as LayerProbes,
    LogisticProbe as LogisticProbe,
    RidgeProbe as RidgeProbe,
    fit_layers as fit_layers,
)
from probes.probing.study import ProbingTask as ProbingTask, probe_layers as probe_layers
from probes.probing.profile import control_task_rows as control_task_rows, mdl_rows as mdl_rows, task_rows as task_rows
