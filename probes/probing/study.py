"""Probing in memory: one model and one dataset, a probe at every layer with its controls.

    rows = probe_layers(lm, generate("pos", 300), controls=["control_task"])   # the rows a suite writes

``ProbingTask`` is one (model, dataset): its features and the task probe's correctness, each made once, on first
use, and the tidy rows of each (probe, control) unit (``probes run`` runs these units into a run folder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from analysis.results import tidy
from probes.core.model import LoadedModel
from probes.pipelines.specs import ProbingSpec
from probes.probing.controls import random_weights
from probes.probing.datasets import ProbingDataset
from probes.probing.features import Features, extract_features
from probes.probing.profile import accuracy_rows, control_task_rows, mdl_rows, probe_correct, task_rows


def features(lm: LoadedModel, ds: ProbingDataset, spec: ProbingSpec) -> Features:
    return extract_features(
        lm,
        ds,
        spec.layers,
        site=spec.site,
        pool=spec.pool,
        sentence_pool=spec.sentence_pool,
        batch_size=spec.batch_size,
        max_length=spec.max_length,
    )


class ProbingTask:
    """One (model, task): its dataset, features and the task probe's correctness, each made once, on first use."""

    def __init__(
        self, lm: Callable[[], LoadedModel], spec: ProbingSpec, dataset: ProbingDataset | Callable[[], ProbingDataset]
    ):
        self._lm, self.spec = lm, spec
        self._ds = dataset if isinstance(dataset, ProbingDataset) else None
        self._make = dataset if not isinstance(dataset, ProbingDataset) else None
        self._feats: Features | None = None
        self.correct: dict[str, Any] = {}

    @property
    def dataset(self) -> ProbingDataset:
        if self._ds is None:
            assert self._make is not None
            self._ds = self._make()
        return self._ds

    @property
    def feats(self) -> Features:
        if self._feats is None:
            self._feats = features(self._lm(), self.dataset, self.spec)
        return self._feats

    def unit(self, model: str, task: str, probe: str, control: str) -> pd.DataFrame:
        """One unit's tidy rows, named by model, task, probe and control (None for the probe on the task)."""
        named = {"model": model, "task": task, "probe": probe, "control": None if control == "none" else control}
        return tidy([{**row, **named} for row in self.rows(probe, control)])

    def rows(self, probe: str, control: str) -> list[dict]:
        s, f = self.spec, self.feats
        settings: dict[str, Any] = {"Cs": s.Cs, "cv": s.cv, "seed": s.seed, "n_boot": s.n_boot}
        if control == "none" or probe not in self.correct:
            rows, self.correct[probe] = task_rows(f, probe, **settings)
            if control == "none":
                return rows
        if control == "control_task":
            return control_task_rows(f, probe, self.correct[probe], **settings)
        if control == "random_weights":
            random = features(random_weights(self._lm(), seed=s.seed), self.dataset, s)
            correct = probe_correct(probe, random, random.y, Cs=s.Cs, cv=s.cv, seed=s.seed)
            return accuracy_rows(correct, random, n_boot=s.n_boot, seed=s.seed)
        if control == "mdl":
            if probe != "logistic":  # ridge scores are not probabilities
                return [{"metric": "mdl_skipped", "value": 1.0}]
            return mdl_rows(f, C=s.mdl_C, seed=s.seed)
        raise ValueError(f"unknown control {control!r}")


def probe_layers(
    lm: LoadedModel,
    dataset: ProbingDataset,
    spec: ProbingSpec | None = None,
    *,
    probes: Sequence[str] = ("logistic",),
    controls: Sequence[str] = (),
) -> pd.DataFrame:
    """Probe every layer of ``lm`` on ``dataset`` in memory (split by sentence with the spec's seed unless it is
    split already): the tidy rows a suite writes for this model and task (accuracy by layer with CIs, best and
    expected layer, majority baseline, and each control's rows)."""
    spec = spec or ProbingSpec()
    task = ProbingTask(lambda: lm, spec, dataset.with_split(seed=spec.seed))
    frames = [task.unit(lm.name, dataset.name, probe, control) for probe in probes for control in ["none", *controls]]
    return tidy(pd.concat(frames, ignore_index=True))
