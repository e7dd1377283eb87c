"""Any function of the logits as a behaviour, as TransformerLens users write a metric:

    def metric(logits, answers):                  # logits (n, vocab) at each prompt's last token
        return logits.gather(1, answers).diff(dim=1).squeeze(1) * -1     # per prompt: right minus wrong
    behaviour = FunctionBehaviour(prompts, metric, answers=[(" Mary", " John"), ...])

Every instrument that takes a behaviour takes it: the evaluator and the ablation study, attribution (AtP, AtP*:
the function must then be differentiable), edges and circuits, erasure. ``answers`` (optional) are strings per
prompt, each scored by its first token, handed to the function as an (n, k) tensor of token ids; without them
the function takes the logits alone. The function returns one number per prompt.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from probes.causal.behaviours.base import Batch, Behaviour, BehaviourError, final_readout, first_token, unembed
from probes.causal.behaviours.logit_diff import LastTokenPayload, last_token_batches
from probes.core.model import LoadedModel

Metric = Callable[..., Tensor]  # (logits (n, vocab)[, answers (n, k)]) -> (n,)


class FunctionBehaviour(Behaviour):
    """A behaviour from prompts and a function of the logits at each prompt's last token (see the module).

    ``name`` labels it in tables; ``higher_is_better`` says which way the metric points (for readings that
    care, such as a circuit's faithfulness: they use the clean and ablated values, not the sign).
    """

    def __init__(
        self,
        prompts: Sequence[str],
        metric: Metric,
        answers: Sequence[Sequence[str]] | None = None,
        *,
        name: str = "function",
        higher_is_better: bool = True,
        batch_size: int = 64,
    ):
        if not prompts or isinstance(prompts, str):
            raise BehaviourError("FunctionBehaviour needs a list of prompts (one behaviour value per prompt)")
        if not callable(metric):
            raise BehaviourError(f"metric must be a function of the logits, got {type(metric).__name__}")
        if answers is not None and len(answers) != len(prompts):
            raise BehaviourError(f"{len(prompts)} prompts but {len(answers)} answer lists; give one per prompt")
        if answers is not None and len({len(a) for a in answers}) > 1:
            raise BehaviourError("give every prompt the same number of answers (they are passed as one (n, k) tensor)")
        self.prompts = list(prompts)
        self.function = metric
        self.answers = None if answers is None else [tuple(a) for a in answers]
        self.name = name
        self.metric = getattr(metric, "__name__", "metric")
        self.higher_is_better = higher_is_better
        self.batch_size = batch_size

    def readout(self, lm: LoadedModel) -> str:
        return final_readout(lm)

    def answer_ids(self, lm: LoadedModel) -> Tensor:
        if self.answers is None:
            return torch.zeros(len(self.prompts), 0, dtype=torch.long)
        out = []
        for i, row in enumerate(self.answers):
            ids = [first_token(lm.tokenizer, a) for a in row]
            if any(t is None for t in ids):
                raise BehaviourError(f"prompt {i}: an answer is empty after tokenisation ({row})")
            out.append(ids)
        return torch.tensor(out, dtype=torch.long)

    def prepare(self, lm: LoadedModel) -> list[Batch]:
        if not lm.has_unembed:
            raise BehaviourError(f"{lm.name} has no language-model head: a function of the logits needs one")
        seqs = [lm.token_ids(p) for p in self.prompts]
        return last_token_batches(lm, seqs, self.answer_ids(lm), self.batch_size)

    def score(self, lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
        p: LastTokenPayload = batch.payload
        logits = unembed(lm, value.reshape(-1, value.shape[-1])[p.last])
        out = self.function(logits) if self.answers is None else self.function(logits, p.answers)
        out = torch.as_tensor(out)
        if out.shape != (batch.n_examples,):
            raise BehaviourError(
                f"metric {self.metric} returned shape {tuple(out.shape)}; it must return one value per prompt "
                f"({batch.n_examples} here), e.g. logits[:, right] - logits[:, wrong], not their mean"
            )
        return out

    def describe(self) -> dict[str, Any]:
        """What a run records: the function by name and a hash of its source, and a hash of the prompts."""
        try:
            source = inspect.getsource(self.function)
        except (OSError, TypeError):
            source = repr(self.function)
        data = repr((self.prompts, self.answers)).encode()
        return {
            **super().describe(),
            "function": getattr(self.function, "__qualname__", self.metric),
            "function_sha256_16": hashlib.sha256(source.encode()).hexdigest()[:16],
            "prompts_sha256_16": hashlib.sha256(data).hexdigest()[:16],
            "n_prompts": len(self.prompts),
        }
