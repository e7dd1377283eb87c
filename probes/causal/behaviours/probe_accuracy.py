"""A linear probe's accuracy, fitted once on the clean model (the name ``probe:TASK``; the default for encoders)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from probes.causal.behaviours.base import Batch, Behaviour, BehaviourError, PooledPayload
from probes.causal.reference import token_positions
from probes.core.model import LoadedModel
from probes.probing.datasets.base import DatasetError, ProbingDataset
from probes.probing.features import extract_features, mean_pooling, probe_sites
from probes.probing.linear import LayerProbes, fit_layers


class ProbeAccuracy(Behaviour):
    """Accuracy of a linear probe fitted once on the clean model, read from the residual stream at depth
    ``layer`` (as probes count layers: 0 = embeddings; default: the last block's output).

    The probe is trained on the dataset's train split (``probes.probing.extract_features``); the examples
    are the test split's units (words for word-level tasks, sentences otherwise), mean-pooled over their
    tokens by the same rule. Ablating what the probe reads drives the score to chance.
    """

    name = "probe"
    metric = "accuracy"

    def __init__(
        self,
        dataset: ProbingDataset,
        layer: int | None = None,
        *,
        batch_size: int = 32,
        seed: int = 0,
        Cs: Sequence[float] = (0.01, 0.1, 1.0),
    ):
        self.dataset = dataset.with_split(seed=seed)
        if "test" not in self.dataset.split or "train" not in self.dataset.split:
            raise DatasetError(f"dataset {dataset.name!r} needs both train and test sentences to fit and score a probe")
        self.layer = layer
        self.batch_size = batch_size
        self.seed = seed
        self.Cs = Cs
        self.probe: LayerProbes | None = None

    def _layer(self, lm: LoadedModel) -> int:
        return lm.shape.n_layers if self.layer is None else self.layer

    def readout(self, lm: LoadedModel) -> str:
        return probe_sites(lm, "resid", [self._layer(lm)])[1][0]

    def prepare(self, lm: LoadedModel) -> list[Batch]:
        train = extract_features(
            lm,
            self.dataset,
            [self._layer(lm)],
            pool="mean",
            sentence_pool="mean",
            batch_size=self.batch_size,
            split="train",
        )
        if len(np.unique(train.y)) < 2:
            raise DatasetError(f"dataset {self.dataset.name!r}: the train split has a single class")
        self.probe = fit_layers(train.X, train.y, Cs=self.Cs, seed=self.seed)
        ds = self.dataset
        chosen = [i for i, s in enumerate(ds.split) if s == "test"]
        batches = []
        for lo in range(0, len(chosen), self.batch_size):
            idx = chosen[lo : lo + self.batch_size]
            enc = lm.encode([ds.words[i] for i in idx])
            pool, keys = mean_pooling(enc.word_index, enc.attention_mask, ds.level)
            labels = np.asarray(
                [str(ds.labels[idx[r]][u] if ds.level == "word" else ds.labels[idx[r]]) for r, u in keys]
            )
            batches.append(
                Batch(
                    enc.model_inputs(lm.device),
                    token_positions(enc.attention_mask),
                    torch.tensor(idx),
                    len(keys),
                    PooledPayload(pool.to(lm.device, lm.dtype), labels),
                )
            )
        return batches

    def score(self, lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
        p: PooledPayload = batch.payload
        assert self.probe is not None and p.labels is not None  # prepare fitted it
        pooled = p.pool @ value.reshape(-1, value.shape[-1]).to(p.pool.dtype)
        predicted = self.probe.predict(pooled.float()[None].cpu())[0]
        return torch.as_tensor(predicted == p.labels, dtype=torch.float32, device=value.device)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "task": self.dataset.name, "layer": self.layer}


def probe(lm: LoadedModel, argument: str = "", *, data: str | None = None, n: int = 64, seed: int = 0) -> Behaviour:
    from probes.probing.datasets.grammar import TASKS, generate

    if argument not in TASKS:
        raise BehaviourError(f"unknown probe task {argument!r}: built-in tasks are {', '.join(TASKS)} (probe:TASK)")
    return ProbeAccuracy(generate(argument, max(n, 40), seed=seed, lexical_split=True), seed=seed)
