"""The logit of the right answer minus the wrong one at each prompt's last token (the standard metric of
activation patching)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import align_module_device
from torch import Tensor

from probes.causal.behaviours.base import (
    Batch,
    Behaviour,
    BehaviourError,
    Payload,
    final_readout,
    first_token,
    id_batch,
    pad_right,
    wide,
)
from probes.core.align import ensure_pad_token
from probes.core.model import LoadedModel


@dataclass
class LastTokenPayload(Payload):
    """Logit difference: each prompt's last flat position and its (right, wrong) answer tokens."""

    last: Tensor  # (n,)
    answers: Tensor  # (n, 2)


class LogitDiff(Behaviour):
    """Logit of the right answer minus the wrong one, at each prompt's last token (causal LM).

    The standard metric of activation patching: cheap (two unembedding rows per prompt)
    and linear in the final residual. ``answers[i]`` = (right, wrong) continuation
    strings, e.g. (" falls", " fall"); each is scored by its first token.
    """

    name = "logit_diff"
    metric = "logit_diff"

    def __init__(self, prompts: Sequence[str], answers: Sequence[tuple[str, str]], *, batch_size: int = 64):
        if not prompts:
            raise BehaviourError("no prompts given")
        if len(answers) != len(prompts):
            raise BehaviourError(
                f"{len(prompts)} prompts but {len(answers)} answer pairs; give one (right, wrong) per prompt"
            )
        self.prompts, self.answers, self.batch_size = list(prompts), [tuple(a) for a in answers], batch_size

    def readout(self, lm: LoadedModel) -> str:
        return final_readout(lm)

    def token_ids(self, lm: LoadedModel) -> list[list[int]]:
        return [lm.token_ids(p) for p in self.prompts]

    def answer_ids(self, lm: LoadedModel) -> Tensor:
        out = []
        for i, pair in enumerate(self.answers):
            right, wrong = (first_token(lm.tokenizer, a) for a in pair)
            if right is None or wrong is None:
                raise BehaviourError(f"prompt {i}: an answer is empty after tokenisation")
            if right == wrong:
                raise BehaviourError(f"prompt {i}: answers {pair} start with the same token; they cannot be told apart")
            out.append([right, wrong])
        return torch.tensor(out)

    def prepare(self, lm: LoadedModel) -> list[Batch]:
        if not lm.adapter.causal:
            raise BehaviourError(f"logit difference needs a causal language model; {lm.name} is an encoder")
        return last_token_batches(lm, self.token_ids(lm), self.answer_ids(lm), self.batch_size)

    def score(self, lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
        p: LastTokenPayload = batch.payload
        hidden = value.reshape(-1, value.shape[-1])[p.last]
        unembed = lm.model.get_output_embeddings()
        right, wrong = p.answers[:, 0], p.answers[:, 1]
        with align_module_device(unembed):  # weights a device map offloaded are loaded while in here
            direction = (
                unembed.weight[right.to(unembed.weight.device)] - unembed.weight[wrong.to(unembed.weight.device)]
            )
            diff = wide((hidden * direction.to(hidden.device)).sum(-1))
            if getattr(unembed, "bias", None) is not None:
                diff = diff + (unembed.bias[right] - unembed.bias[wrong]).to(diff.device, diff.dtype)
        return diff

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_prompts": len(self.prompts)}


def last_token_batches(lm: LoadedModel, seqs: list[list[int]], answers: Tensor, batch_size: int) -> list[Batch]:
    """Prompts (token ids) right-padded into batches, each prompt's last position and its answers' ids the payload:
    what a metric read at a prompt's last token needs (``LogitDiff``, ``FunctionBehaviour``)."""
    ensure_pad_token(lm.tokenizer)
    batches = []
    for lo in range(0, len(seqs), batch_size):
        chunk = seqs[lo : lo + batch_size]
        ids, mask = pad_right(chunk, lm.tokenizer.pad_token_id)
        T = ids.shape[1]
        last = torch.tensor([r * T + len(s) - 1 for r, s in enumerate(chunk)])
        batches.append(id_batch(lm, ids, mask, lo, LastTokenPayload(last, answers[lo : lo + len(chunk)])))
    return batches
