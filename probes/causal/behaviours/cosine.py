"""Cosine similarity of mean-pooled sentence embeddings per sentence pair (the name ``cosine``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from probes.causal.behaviours.base import Batch, Behaviour, BehaviourError, PooledPayload, wide
from probes.causal.reference import token_positions
from probes.core.model import LoadedModel


class EmbeddingCosine(Behaviour):
    """Cosine similarity of mean-pooled sentence embeddings (the last block's output) per sentence pair."""

    name = "cosine"
    metric = "cosine"

    def __init__(self, pairs: Sequence[tuple[str, str]], *, batch_size: int = 32):
        self.pairs = [tuple(p) for p in pairs]
        if not self.pairs or any(len(p) != 2 for p in self.pairs):
            raise BehaviourError("embedding cosine needs sentence pairs: a list of (text_a, text_b)")
        self.batch_size = batch_size

    def readout(self, lm: LoadedModel) -> str:
        return f"blocks.{lm.shape.n_layers - 1}.hook_resid_post"

    def prepare(self, lm: LoadedModel) -> list[Batch]:
        batches = []
        for lo in range(0, len(self.pairs), self.batch_size):
            chunk = self.pairs[lo : lo + self.batch_size]
            enc = lm.encode([t for p in chunk for t in p])
            mask = enc.attention_mask.float()
            pool = torch.block_diag(
                *[(m / m.sum())[None] for m in mask]
            )  # mean over all real tokens, as sentence-transformers
            ids = torch.arange(lo, lo + len(chunk)).repeat_interleave(2)
            batches.append(
                Batch(
                    enc.model_inputs(lm.device),
                    token_positions(enc.attention_mask),
                    ids,
                    len(chunk),
                    PooledPayload(pool.to(lm.device, lm.dtype)),
                )
            )
        return batches

    def score(self, lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
        p: PooledPayload = batch.payload
        emb = wide(p.pool @ value.reshape(-1, value.shape[-1]).to(p.pool.dtype))
        return torch.nn.functional.cosine_similarity(emb[0::2], emb[1::2], dim=-1)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_pairs": len(self.pairs)}


def cosine(lm: LoadedModel, argument: str = "", *, data: str | None = None, n: int = 64, seed: int = 0) -> Behaviour:
    from probes.core.data import iter_jsonl
    from probes.probing.datasets.grammar import agreement_pairs

    if data:
        pairs: list[tuple[str, str]] = []
        for number, r in iter_jsonl(Path(data)):
            if not isinstance(r, dict) or "text_a" not in r or "text_b" not in r:
                raise BehaviourError(f"{data}:{number}: each line needs text_a and text_b")
            pairs.append((str(r["text_a"]), str(r["text_b"])))
        return EmbeddingCosine(pairs)
    return EmbeddingCosine([(p["sentence_good"], p["sentence_bad"]) for p in agreement_pairs(n, seed=seed)])
