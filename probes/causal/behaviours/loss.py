"""Mean next-token cross-entropy per text (the name ``loss``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from probes.causal.behaviours.base import (
    Batch,
    Behaviour,
    BehaviourError,
    TokenLossPayload,
    final_readout,
    mean_token_logprob,
)
from probes.causal.reference import token_positions
from probes.core.model import LoadedModel


class NextTokenLoss(Behaviour):
    """Mean next-token cross-entropy per text (nats), every token after the first scored."""

    name = "loss"
    metric = "loss"
    higher_is_better = False

    def __init__(self, texts: Sequence[str], *, batch_size: int = 32, max_length: int | None = None):
        self.texts = [t for t in texts if t.strip()]
        if not self.texts:
            raise BehaviourError("no texts to score: give at least one non-empty text")
        self.batch_size = batch_size
        self.max_length = max_length

    def readout(self, lm: LoadedModel) -> str:
        return final_readout(lm)

    def prepare(self, lm: LoadedModel) -> list[Batch]:
        if not lm.adapter.causal:
            raise BehaviourError(f"next-token loss needs a causal language model; {lm.name} is an encoder")
        batches = []
        for lo in range(0, len(self.texts), self.batch_size):
            enc = lm.encode(self.texts[lo : lo + self.batch_size], max_length=self.max_length)
            mask = enc.attention_mask
            if int(mask.sum(1).min()) < 2:
                raise BehaviourError("a text has fewer than two tokens: nothing to predict in it")
            scored = mask.clone()
            scored[torch.arange(len(mask)), mask.float().argmax(1)] = 0  # the first token is never predicted
            T = mask.shape[1]
            rows, cols = scored[:, :].nonzero(as_tuple=True)
            payload = TokenLossPayload(rows * T + cols - 1, enc.inputs["input_ids"][rows, cols], rows)
            ids = torch.arange(lo, lo + len(mask))
            batches.append(
                Batch(enc.model_inputs(lm.device), token_positions(mask), ids, len(mask), payload.to(lm.device))
            )
        return batches

    def score(self, lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
        return -mean_token_logprob(lm, value, batch)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_texts": len(self.texts)}


def loss(lm: LoadedModel, argument: str = "", *, data: str | None = None, n: int = 64, seed: int = 0) -> Behaviour:
    from probes.core.data import builtin_texts, read_texts

    texts = read_texts(data) if data else builtin_texts("demo")
    return NextTokenLoss(texts[:n] if n else texts)
