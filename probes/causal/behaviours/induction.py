"""In-context copying on repeated random tokens (the name ``induction``, ``induction:N`` for runs of N)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from probes.causal.behaviours.base import (
    Batch,
    Behaviour,
    BehaviourError,
    TokenLossPayload,
    final_readout,
    id_batch,
    mean_token_logprob,
)
from probes.core.model import LoadedModel


class Induction(Behaviour):
    """In-context copying on repeated random tokens: BOS, r_1 .. r_L, r_1 .. r_L; per sequence, the mean
    log-probability of each repeated token r_2 .. r_L in the second half (what an induction head predicts:
    the token that followed the current one earlier). Random tokens make the first half unpredictable, so
    the score is copying, not knowledge (Olsson et al. 2022)."""

    name = "induction"
    metric = "logprob"

    def __init__(self, n: int = 64, *, length: int = 12, seed: int = 0, batch_size: int = 16):
        if n < 1 or length < 3:
            raise BehaviourError("induction needs at least one sequence of at least 3 random tokens")
        self.n, self.length, self.seed, self.batch_size = n, length, seed, batch_size

    def readout(self, lm: LoadedModel) -> str:
        return final_readout(lm)

    def sequences(self, lm: LoadedModel) -> Tensor:
        """(n, 2 * length + 1) token ids: BOS (or the context token), then the random half twice."""
        special = set(lm.tokenizer.all_special_ids)
        vocab = len(lm.tokenizer)
        # ordinary tokens: skip the specials and, for large vocabularies, the first ids (bytes, control)
        start = min(256, vocab // 4) if vocab > 1024 else 0
        pool = torch.tensor([t for t in range(start, vocab) if t not in special])
        if len(pool) < self.length:
            raise BehaviourError(f"{lm.name}'s vocabulary has too few ordinary tokens for {self.length} distinct ones")
        g = torch.Generator().manual_seed(self.seed)
        halves = torch.stack([pool[torch.randperm(len(pool), generator=g)[: self.length]] for _ in range(self.n)])
        context = torch.tensor(lm.start_tokens() or [int(halves[0, 0])])[None].expand(self.n, -1)
        return torch.cat([context, halves, halves], dim=1)

    def prepare(self, lm: LoadedModel) -> list[Batch]:
        if not lm.adapter.causal:
            raise BehaviourError(f"induction needs a causal language model; {lm.name} is an encoder")
        ids = self.sequences(lm)
        T = ids.shape[1]
        second = T - self.length  # index of the second r_1
        targets = torch.arange(second + 1, T)  # r_2 .. r_L of the second half, each predicted from the token before
        batches = []
        for lo in range(0, self.n, self.batch_size):
            chunk = ids[lo : lo + self.batch_size]
            rows = torch.arange(len(chunk)).repeat_interleave(len(targets))
            cols = targets.repeat(len(chunk))
            payload = TokenLossPayload(rows * T + cols - 1, chunk[rows, cols], rows)
            batches.append(id_batch(lm, chunk, torch.ones_like(chunk), lo, payload))
        return batches

    def score(self, lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
        return mean_token_logprob(lm, value, batch)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_sequences": self.n, "length": self.length, "seed": self.seed}


def induction(lm: LoadedModel, argument: str = "", *, data: str | None = None, n: int = 64, seed: int = 0) -> Behaviour:
    if argument and not (argument.isdigit() and int(argument) >= 3):
        raise BehaviourError(f"behaviour 'induction:{argument}': write induction:N with N >= 3 random tokens per run")
    return Induction(n, seed=seed, **({"length": int(argument)} if argument else {}))
