"""The behaviour protocol: what an ablation, a patch or an erasure is measured against.

A behaviour turns a model's forward passes into one number per example, so effects can be averaged,
bootstrapped and decomposed (Shapley, interactions). Its three methods (for writing your own; or wrap any
function of the logits in ``FunctionBehaviour``, ``probes.causal.behaviours.function``):

* ``readout(lm)`` names the site the score is read from (the forward stops there);
* ``prepare(lm)`` returns ``Batch`` es: model inputs, each token's position, the example each row (or token)
  belongs to, and a ``Payload`` of what ``score`` needs besides the readout value;
* ``score(lm, value, batch)`` maps the readout site's value to per-example numbers.

Each built-in behaviour has a file of its own in this package and a name in ``probes.registry.BEHAVIOURS``
(what ``--behaviour`` and suite files take); ``make_behaviour`` builds one from its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch import Tensor

from analysis.errors import ProbesError
from probes.causal.reference import token_positions
from probes.core.model import LoadedModel


class BehaviourError(ProbesError, ValueError):
    """A behaviour that cannot be measured on this model or data."""


class Payload:
    """What a behaviour's ``score`` needs of one batch besides the readout value; each behaviour has its own."""

    def to(self, device: torch.device | str) -> Payload:
        """The same payload with every tensor on ``device``."""
        return replace(  # type: ignore[type-var]  # every payload is a dataclass
            self,
            **{
                f.name: getattr(self, f.name).to(device)
                for f in fields(self)  # type: ignore[arg-type]
                if isinstance(getattr(self, f.name), Tensor)
            },
        )


P = TypeVar("P", bound=Payload)


@dataclass
class Batch(Generic[P]):
    inputs: dict[str, Tensor]  # what the model is called with
    positions: Tensor  # (rows, T) position of each token in its text (mean / resample ablation)
    example_ids: Tensor  # (rows,) or (rows, T): the example of each row or token (resample draws are keyed on it)
    n_examples: int  # per-example scores this batch yields
    payload: P

    @property
    def rows(self) -> int:
        return self.positions.shape[0]


@dataclass
class TokenLossPayload(Payload):
    """Next-token loss: the flat position predicting each scored token, the token, and its text."""

    at: Tensor
    tok: Tensor
    row: Tensor


@dataclass
class PooledPayload(Payload):
    """Encoder behaviours: a pooling matrix (units, rows * T) over the readout's tokens, and unit labels."""

    pool: Tensor
    labels: np.ndarray | None = None


class Behaviour:
    """Base class: a named metric, the site it reads, and how per-example scores come out of it."""

    name = "behaviour"
    metric = "value"
    higher_is_better = True

    def readout(self, lm: LoadedModel) -> str:
        raise NotImplementedError

    def prepare(self, lm: LoadedModel) -> list[Batch]:
        raise NotImplementedError

    def score(self, lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
        raise NotImplementedError

    def reference_inputs(self, lm: LoadedModel, batches: list[Batch]) -> list[dict[str, Tensor]]:
        """Plain (right-padded, 2-D mask) inputs of the behaviour's texts: the default reference for mean ablation."""
        return [b.inputs for b in batches]

    def describe(self) -> dict[str, Any]:
        return {"behaviour": self.name, "metric": self.metric}


def final_readout(lm: LoadedModel) -> str:
    if not lm.has_unembed:
        raise BehaviourError(
            f"{lm.name} has no language-model head: score it with a probe's accuracy or sentence-embedding cosine "
            "instead (behaviour probe:TASK or cosine; ProbeAccuracy / EmbeddingCosine in Python)"
        )
    if lm.adapter.final_norm is None:
        return f"blocks.{lm.shape.n_layers - 1}.hook_resid_post"
    return "ln_final.hook_normalized"


def wide(x: Tensor) -> Tensor:
    """At least float32 (half-precision models' scores are computed in float32; float64 models keep theirs)."""
    return x if x.dtype == torch.float64 else x.float()


def unembed(lm: LoadedModel, hidden: Tensor) -> Tensor:
    """Logits (float32 or wider) of final hidden rows, on the device of ``hidden`` (under a device map the
    LM head may run elsewhere)."""
    return wide(lm.model.get_output_embeddings()(hidden)).to(hidden.device)


def log_probs(lm: LoadedModel, hidden: Tensor, targets: Tensor) -> Tensor:
    """Log-probability of ``targets`` (m,) from final hidden rows (m, d), unembedding only these rows."""
    return torch.log_softmax(unembed(lm, hidden), -1).gather(-1, targets[:, None]).squeeze(-1)


def mean_token_logprob(lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
    """Per example, the mean log-probability of its scored tokens (a ``TokenLossPayload`` names them)."""
    p: TokenLossPayload = batch.payload
    lp = log_probs(lm, value.reshape(-1, value.shape[-1])[p.at], p.tok)
    n = batch.n_examples
    total = torch.zeros(n, dtype=lp.dtype, device=lp.device).index_add(0, p.row, lp)
    count = torch.zeros(n, dtype=lp.dtype, device=lp.device).index_add(0, p.row, torch.ones_like(lp))
    return total / count


def id_batch(lm: LoadedModel, ids: Tensor, mask: Tensor, lo: int, payload: Payload) -> Batch:
    """A batch of token ids for examples lo, lo + 1, ...: the model's inputs on its device, positions, ids."""
    return Batch(
        to_device({"input_ids": ids, "attention_mask": mask}, lm.device),
        token_positions(mask),
        torch.arange(lo, lo + len(ids)),
        len(ids),
        payload.to(lm.device),
    )


def first_token(tokenizer, text: str) -> int | None:
    """The token an answer is scored by (its first); None when it has no tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[0] if ids else None


def pad_right(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Token id lists -> right-padded (input_ids, attention_mask)."""
    T = max(map(len, seqs))
    input_ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), T), dtype=torch.long)
    for r, s in enumerate(seqs):
        input_ids[r, : len(s)], attention[r, : len(s)] = torch.tensor(s), 1
    return input_ids, attention


def to_device(values: dict[str, Tensor], device: torch.device | str) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in values.items()}
