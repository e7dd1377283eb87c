"""Behaviour metrics: what an ablation, a patch or an erasure is measured against.

Each behaviour turns a model's forward passes into one number per example, so
effects can be averaged, bootstrapped and decomposed (Shapley, interactions):

* ``MinimalPairs``: BLiMP-style pairs scored by a causal LM as the sum of token
  log-probabilities of each sentence; per pair ``logit_diff`` = log p(good) -
  log p(bad), or ``accuracy`` = [log p(good) > log p(bad)].
* ``NextTokenLoss``: mean next-token cross-entropy per text (causal LM).
* ``ProbeAccuracy``: a linear probe fitted on the clean model at one layer; per
  test word (or sentence), whether it is still right. Works for encoders.
* ``EmbeddingCosine``: cosine similarity of mean-pooled sentence embeddings on
  sentence pairs (what sentence encoders such as ``minilm`` are for).

The protocol (for writing your own): ``prepare(lm)`` returns ``Batch`` es (model
inputs, token positions, example ids), ``readout`` names the site the score is
read from (the forward stops there), and ``score(lm, value, batch)`` maps that
site's value to per-example numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from accelerate.utils import align_module_device
from torch import Tensor

from analysis.errors import ProbesError
from probes.causal.ablation import token_positions
from probes.core.align import encode, ensure_pad_token
from probes.core.models import LoadedModel
from probes.probing.datasets.base import DatasetError, ProbingDataset
from probes.probing.features import extract_features, mean_pooling, probe_sites
from probes.probing.linear import LayerProbes, fit_layers


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
class PairPayload(Payload):
    """Minimal pairs: which flat positions are unembedded, and for each sentence's scored tokens which
    unembedded row predicts them (``*_idx``), the token (``*_tok``) and the pair it belongs to (``*_row``)."""

    unembed_at: Tensor
    good_idx: Tensor
    good_tok: Tensor
    good_row: Tensor
    bad_idx: Tensor
    bad_tok: Tensor
    bad_row: Tensor

    @classmethod
    def of(cls, lists: dict[str, list[int]]) -> PairPayload:
        return cls(**{k: torch.as_tensor(v, dtype=torch.long) for k, v in lists.items()})


@dataclass
class LastTokenPayload(Payload):
    """Logit difference: each prompt's last flat position and its (right, wrong) answer tokens."""

    last: Tensor  # (n,)
    answers: Tensor  # (n, 2)


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


def _final_readout(lm: LoadedModel) -> str:
    if not lm.has_unembed:
        raise BehaviourError(
            f"{lm.name} has no language-model head: score it with a probe's accuracy or sentence-embedding cosine "
            "instead (behaviour probe:TASK or cosine; ProbeAccuracy / EmbeddingCosine in Python)"
        )
    if lm.adapter.final_norm is None:
        return f"blocks.{lm.shape.n_layers - 1}.hook_resid_post"
    return "ln_final.hook_normalized"


def _wide(x: Tensor) -> Tensor:
    """At least float32 (half-precision models' scores are computed in float32; float64 models keep theirs)."""
    return x if x.dtype == torch.float64 else x.float()


def _unembed(lm: LoadedModel, hidden: Tensor) -> Tensor:
    """Logits (float32 or wider) of final hidden rows, on the device of ``hidden`` (under a device map the
    LM head may run elsewhere)."""
    return _wide(lm.model.get_output_embeddings()(hidden)).to(hidden.device)


def _log_probs(lm: LoadedModel, hidden: Tensor, targets: Tensor) -> Tensor:
    """Log-probability of ``targets`` (m,) from final hidden rows (m, d), unembedding only these rows."""
    return torch.log_softmax(_unembed(lm, hidden), -1).gather(-1, targets[:, None]).squeeze(-1)


def _mean_token_logprob(lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
    """Per example, the mean log-probability of its scored tokens (a ``TokenLossPayload`` names them)."""
    p: TokenLossPayload = batch.payload
    lp = _log_probs(lm, value.reshape(-1, value.shape[-1])[p.at], p.tok)
    n = batch.n_examples
    total = torch.zeros(n, dtype=lp.dtype, device=lp.device).index_add(0, p.row, lp)
    count = torch.zeros(n, dtype=lp.dtype, device=lp.device).index_add(0, p.row, torch.ones_like(lp))
    return total / count


def _id_batch(lm: LoadedModel, ids: Tensor, mask: Tensor, lo: int, payload: Payload) -> Batch:
    """A batch of token ids for examples lo, lo + 1, ...: the model's inputs on its device, positions, ids."""
    return Batch(
        _to({"input_ids": ids, "attention_mask": mask}, lm.device),
        token_positions(mask),
        torch.arange(lo, lo + len(ids)),
        len(ids),
        payload.to(lm.device),
    )


def context_token(tokenizer) -> list[int]:
    """The token a sentence is conditioned on, so its first word is scored too (as lm-evaluation-harness does)."""
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return [int(token_id)]
    return []


def scored_ids(tokenizer, text: str) -> list[int]:
    """A sentence or prompt as the causal behaviours feed it: the context token, then its own tokens."""
    return context_token(tokenizer) + tokenizer(text, add_special_tokens=False)["input_ids"]


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


class MinimalPairs(Behaviour):
    """Minimal pairs (``sentence_good`` / ``sentence_bad``) scored by a causal language model.

    Only the tokens after the pair's shared prefix are unembedded: the log-probabilities
    of the shared tokens are identical in both sentences of a causal model and cancel
    in the difference. With ``packed`` (default for causal models), each pair is one
    segment, [shared prefix | good suffix | bad suffix], with an attention mask that keeps
    the two suffixes apart, so the prefix is computed once per pair; segments are laid
    end to end in rows of up to ``row_tokens`` tokens (no padding to speak of), and the
    position each suffix's first token is predicted from is unembedded once.
    """

    name = "minimal_pairs"

    def __init__(
        self,
        pairs: Sequence[dict],
        metric: str = "logit_diff",
        *,
        batch_size: int = 64,
        packed: bool = True,
        row_tokens: int = 128,
        max_length: int | None = None,
    ):
        if metric not in ("logit_diff", "accuracy"):
            raise BehaviourError(f"unknown minimal-pair metric {metric!r}: use 'logit_diff' or 'accuracy'")
        if not pairs:
            raise BehaviourError("no minimal pairs given: pass BLiMP-format rows with sentence_good and sentence_bad")
        for i, row in enumerate(pairs):
            if "sentence_good" not in row or "sentence_bad" not in row:
                raise BehaviourError(f"pair {i} lacks sentence_good / sentence_bad (BLiMP format)")
        self.pairs = list(pairs)
        self.metric = metric
        self.batch_size = batch_size
        self.packed = packed
        self.row_tokens = row_tokens
        self.max_length = max_length

    def readout(self, lm: LoadedModel) -> str:
        return _final_readout(lm)

    def tokenise(self, lm: LoadedModel) -> list[tuple[list[int], list[int], int]]:
        """Per pair: good ids, bad ids, and d, the first token index that is scored (after the shared prefix)."""
        limit = lm.max_length(self.max_length)
        out = []
        for i, row in enumerate(self.pairs):
            good, bad = scored_ids(lm.tokenizer, row["sentence_good"]), scored_ids(lm.tokenizer, row["sentence_bad"])
            if max(len(good), len(bad)) > limit:
                raise BehaviourError(
                    f"pair {i} is {max(len(good), len(bad))} tokens, over the model's limit of {limit}"
                )
            shared = 0
            while shared < min(len(good), len(bad)) and good[shared] == bad[shared]:
                shared += 1
            if shared == len(good) == len(bad):
                raise BehaviourError(f"pair {i}: the two sentences tokenise identically ({row['sentence_good']!r})")
            if shared == 0:
                raise BehaviourError(
                    f"pair {i}: the sentences differ at the first token and the tokenizer has no BOS/EOS token to "
                    "condition on; prepend a shared word"
                )
            out.append((good, bad, shared))
        return out

    def prepare(self, lm: LoadedModel) -> list[Batch]:
        if not lm.adapter.causal:
            raise BehaviourError(f"minimal pairs need a causal language model; {lm.name} is an encoder")
        ensure_pad_token(lm.tokenizer)
        tokens = self.tokenise(lm)
        batches = []
        for lo in range(0, len(tokens), self.batch_size):
            chunk = tokens[lo : lo + self.batch_size]
            ids = torch.arange(lo, lo + len(chunk))
            batches.append(self._packed(lm, chunk, ids) if self.packed else self._unpacked(lm, chunk, ids))
        return batches

    def _packed(self, lm: LoadedModel, chunk, ids: Tensor) -> Batch:
        """Pairs laid end to end in rows of up to ``row_tokens`` tokens; the mask keeps every pair (and its suffixes)
        apart."""
        segments = [(g[:d] + g[d:] + b[d:], d, len(g) - d, len(b) - d) for g, b, d in chunk]
        rows: list[list[int]] = [[]]  # pair indices per row, filled in order
        used = 0
        for p, (toks, *_) in enumerate(segments):
            if rows[-1] and used + len(toks) > max(self.row_tokens, len(toks)):
                rows.append([])
                used = 0
            rows[-1].append(p)
            used += len(toks)
        T = max(sum(len(segments[p][0]) for p in row) for row in rows)
        R = len(rows)
        input_ids = torch.full((R, T), lm.tokenizer.pad_token_id, dtype=torch.long)
        positions = torch.zeros((R, T), dtype=torch.long)
        owner = torch.full((R, T), -1, dtype=torch.long)  # which pair each token belongs to; -1 padding
        segment = torch.full((R, T), -1, dtype=torch.long)  # 0 prefix, 1 good suffix, 2 bad suffix
        unembed_at: list[int] = []
        good_idx: list[int] = []
        good_tok: list[int] = []
        good_row: list[int] = []
        bad_idx: list[int] = []
        bad_tok: list[int] = []
        bad_row: list[int] = []
        for r, row in enumerate(rows):
            at = 0
            for p in row:
                toks, d, ng, nb = segments[p]
                g, b = chunk[p][0], chunk[p][1]
                span = slice(at, at + len(toks))
                input_ids[r, span] = torch.tensor(toks)
                positions[r, span] = torch.tensor(list(range(d)) + list(range(d, d + ng)) + list(range(d, d + nb)))
                owner[r, span] = int(ids[p])
                segment[r, at : at + d], segment[r, at + d : at + d + ng], segment[r, at + d + ng : span.stop] = 0, 1, 2
                # a suffix's first token is predicted at the prefix's last position, shared by both sentences
                shared = len(unembed_at)
                unembed_at.append(r * T + at + d - 1)
                unembed_at += [r * T + at + d + k - 1 for k in range(1, ng)]
                good_idx += [shared] + list(range(shared + 1, shared + ng))
                unembed_at += [r * T + at + d + ng + k - 1 for k in range(1, nb)]
                bad_idx += [shared] + list(range(shared + ng, shared + ng + nb - 1))
                good_tok += g[d:]
                bad_tok += b[d:]
                good_row += [p] * ng
                bad_row += [p] * nb
                at = span.stop
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        same_pair = (owner[:, :, None] == owner[:, None, :]) & (owner[:, None, :] >= 0)
        q, k = segment[:, :, None], segment[:, None, :]
        allowed = causal & same_pair & ((k == 0) | (k == q))
        allowed |= torch.eye(T, dtype=torch.bool) & (owner[:, :, None] < 0)  # padding sees itself: no empty softmax row
        mask = torch.zeros(allowed.shape, dtype=lm.dtype).masked_fill(~allowed, torch.finfo(lm.dtype).min)[:, None]
        inputs = {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions}
        payload = PairPayload.of(
            {
                "unembed_at": unembed_at,
                "good_idx": good_idx,
                "good_tok": good_tok,
                "good_row": good_row,
                "bad_idx": bad_idx,
                "bad_tok": bad_tok,
                "bad_row": bad_row,
            }
        )
        return Batch(_to(inputs, lm.device), positions, owner.clamp(min=0), len(chunk), payload.to(lm.device))

    def reference_inputs(self, lm: LoadedModel, batches: list[Batch]) -> list[dict[str, Tensor]]:
        tokens = self.tokenise(lm)
        return [
            self._unpacked(
                lm, tokens[lo : lo + self.batch_size], torch.arange(lo, min(lo + self.batch_size, len(tokens)))
            ).inputs
            for lo in range(0, len(tokens), self.batch_size)
        ]

    def _unpacked(self, lm: LoadedModel, chunk, ids: Tensor) -> Batch:
        input_ids, attention = pad_right([s for g, b, _ in chunk for s in (g, b)], lm.tokenizer.pad_token_id)
        T = input_ids.shape[1]
        lists: dict[str, list] = {
            "unembed_at": [],
            "good_idx": [],
            "good_tok": [],
            "good_row": [],
            "bad_idx": [],
            "bad_tok": [],
            "bad_row": [],
        }
        for p, (g, b, d) in enumerate(chunk):
            for which, seq, r in (("good", g, 2 * p), ("bad", b, 2 * p + 1)):
                first = len(lists["unembed_at"])
                lists["unembed_at"] += [r * T + t - 1 for t in range(d, len(seq))]
                lists[f"{which}_idx"] += list(range(first, first + len(seq) - d))
                lists[f"{which}_tok"] += seq[d:]
                lists[f"{which}_row"] += [p] * (len(seq) - d)
        inputs = {"input_ids": input_ids, "attention_mask": attention}
        return Batch(
            _to(inputs, lm.device),
            token_positions(attention),
            ids.repeat_interleave(2),
            len(chunk),
            PairPayload.of(lists).to(lm.device),
        )

    def score(self, lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
        flat = value.reshape(-1, value.shape[-1])
        p: PairPayload = batch.payload
        logp = torch.log_softmax(_unembed(lm, flat[p.unembed_at]), -1)
        sums = []
        for idx, tok, row in ((p.good_idx, p.good_tok, p.good_row), (p.bad_idx, p.bad_tok, p.bad_row)):
            lp = logp[idx, tok]
            sums.append(torch.zeros(batch.n_examples, dtype=lp.dtype, device=lp.device).index_add(0, row, lp))
        diff = sums[0] - sums[1]
        return (diff > 0).to(diff.dtype) if self.metric == "accuracy" else diff

    def sentence_logprobs(self, lm: LoadedModel) -> np.ndarray:
        """(pairs, 2) summed log-probabilities of the good and the bad sentence, every token scored."""
        out = []
        for g, b, _ in self.tokenise(lm):
            row = []
            for seq in (g, b):
                ids = torch.tensor([seq], device=lm.device)
                with torch.inference_mode():
                    logits = lm.model(input_ids=ids).logits[0, :-1].float()
                row.append(float(torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None]).sum()))
            out.append(row)
        return np.asarray(out)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_pairs": len(self.pairs)}


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
        return _final_readout(lm)

    def token_ids(self, lm: LoadedModel) -> list[list[int]]:
        return [scored_ids(lm.tokenizer, p) for p in self.prompts]

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
        ensure_pad_token(lm.tokenizer)
        seqs, answers = self.token_ids(lm), self.answer_ids(lm)
        batches = []
        for lo in range(0, len(seqs), self.batch_size):
            chunk = seqs[lo : lo + self.batch_size]
            ids, mask = pad_right(chunk, lm.tokenizer.pad_token_id)
            T = ids.shape[1]
            last = torch.tensor([r * T + len(s) - 1 for r, s in enumerate(chunk)])
            batches.append(_id_batch(lm, ids, mask, lo, LastTokenPayload(last, answers[lo : lo + len(chunk)])))
        return batches

    def score(self, lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
        p: LastTokenPayload = batch.payload
        hidden = value.reshape(-1, value.shape[-1])[p.last]
        unembed = lm.model.get_output_embeddings()
        right, wrong = p.answers[:, 0], p.answers[:, 1]
        with align_module_device(unembed):  # weights a device map offloaded are loaded while in here
            direction = (
                unembed.weight[right.to(unembed.weight.device)] - unembed.weight[wrong.to(unembed.weight.device)]
            )
            diff = _wide((hidden * direction.to(hidden.device)).sum(-1))
            if getattr(unembed, "bias", None) is not None:
                diff = diff + (unembed.bias[right] - unembed.bias[wrong]).to(diff.device, diff.dtype)
        return diff

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_prompts": len(self.prompts)}


class NextTokenLoss(Behaviour):
    """Mean next-token cross-entropy per text (nats), every token after the first scored."""

    name = "next_token_loss"
    metric = "loss"
    higher_is_better = False

    def __init__(self, texts: Sequence[str], *, batch_size: int = 32, max_length: int | None = None):
        self.texts = [t for t in texts if t.strip()]
        if not self.texts:
            raise BehaviourError("no texts to score: give at least one non-empty text")
        self.batch_size = batch_size
        self.max_length = max_length

    def readout(self, lm: LoadedModel) -> str:
        return _final_readout(lm)

    def prepare(self, lm: LoadedModel) -> list[Batch]:
        if not lm.adapter.causal:
            raise BehaviourError(f"next-token loss needs a causal language model; {lm.name} is an encoder")
        batches = []
        for lo in range(0, len(self.texts), self.batch_size):
            enc = encode(lm.tokenizer, self.texts[lo : lo + self.batch_size], lm.max_length(self.max_length))
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
        return -_mean_token_logprob(lm, value, batch)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_texts": len(self.texts)}


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
        return _final_readout(lm)

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
        context = torch.tensor(context_token(lm.tokenizer) or [int(halves[0, 0])])[None].expand(self.n, -1)
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
            batches.append(_id_batch(lm, chunk, torch.ones_like(chunk), lo, payload))
        return batches

    def score(self, lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
        return _mean_token_logprob(lm, value, batch)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_sequences": self.n, "length": self.length, "seed": self.seed}


class ProbeAccuracy(Behaviour):
    """Accuracy of a linear probe fitted once on the clean model, read from the residual stream at depth
    ``layer`` (as probes count layers: 0 = embeddings; default: the last block's output).

    The probe is trained on the dataset's train split (``probes.probing.extract_features``); the examples
    are the test split's units (words for word-level tasks, sentences otherwise), mean-pooled over their
    tokens by the same rule. Ablating what the probe reads drives the score to chance.
    """

    name = "probe_accuracy"
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
            enc = encode(lm.tokenizer, [ds.words[i] for i in idx], lm.max_length(None))
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


class EmbeddingCosine(Behaviour):
    """Cosine similarity of mean-pooled sentence embeddings (the last block's output) per sentence pair."""

    name = "embedding_cosine"
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
            enc = encode(lm.tokenizer, [t for p in chunk for t in p], lm.max_length(None))
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
        emb = _wide(p.pool @ value.reshape(-1, value.shape[-1]).to(p.pool.dtype))
        return torch.nn.functional.cosine_similarity(emb[0::2], emb[1::2], dim=-1)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_pairs": len(self.pairs)}


def _to(values: dict[str, Tensor], device: torch.device | str) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in values.items()}


BEHAVIOURS = (
    "agreement",
    "agreement-simple",
    "agreement-copula",
    "induction",
    "pairs",
    "loss",
    "probe:<task>",
    "cosine",
)


def default_behaviour(lm: LoadedModel) -> str:
    """Agreement minimal pairs for language models; a subject-number probe for encoders without an LM head."""
    return "agreement" if lm.adapter.causal else "probe:subject_number"


def make_behaviour(
    lm: LoadedModel, name: str | None = None, *, data: str | None = None, n: int = 64, seed: int = 0
) -> Behaviour:
    """A behaviour from its short name (CLI and suite files).

    agreement      generated subject-verb agreement minimal pairs across an attractor (causal LMs; their default)
    agreement-simple  the same with nothing between subject and verb (the easy case)
    agreement-copula  "The dog is old." vs "The dog are old.": agreement small models get right
    induction      copying on repeated random tokens: mean log-probability of the repeats (causal LMs);
                   induction:N runs of N tokens (default 12)
    pairs          minimal pairs from ``data``, a BLiMP-format JSONL file
    loss           next-token loss on ``data`` (.txt/.jsonl/.csv texts) or the built-in demo texts
    probe:<task>   a probe's accuracy at the last layer on a built-in task (the default for encoders:
                   probe:subject_number)
    cosine         sentence-embedding cosine on the agreement pairs (good vs bad sentence), or on
                   ``data``, a JSONL file with text_a / text_b
    """
    from probes.core.data import builtin_texts, iter_jsonl, read_texts
    from probes.probing.datasets.grammar import (
        TASKS,
        agreement_pairs,
        copula_agreement_pairs,
        generate,
        simple_agreement_pairs,
    )
    from probes.probing.datasets.loaders import load_blimp

    name = name or default_behaviour(lm)
    if name == "agreement":
        return MinimalPairs(agreement_pairs(n, seed=seed))
    if name == "agreement-simple":
        return MinimalPairs(simple_agreement_pairs(n, seed=seed))
    if name == "agreement-copula":
        return MinimalPairs(copula_agreement_pairs(n, seed=seed))
    if name == "induction" or name.startswith("induction:"):
        length = name.partition(":")[2]
        if length and not (length.isdigit() and int(length) >= 3):
            raise BehaviourError(f"behaviour {name!r}: write induction:N with N >= 3 random tokens per run")
        return Induction(n, seed=seed, **({"length": int(length)} if length else {}))
    if name == "pairs":
        if not data:
            raise BehaviourError("behaviour 'pairs' needs a BLiMP-format JSONL file: pass --data FILE")
        return MinimalPairs(load_blimp(data))
    if name == "loss":
        texts = read_texts(data) if data else builtin_texts("demo")
        return NextTokenLoss(texts[:n] if n else texts)
    if name.startswith("probe:"):
        task = name.split(":", 1)[1]
        if task not in TASKS:
            raise BehaviourError(f"unknown probe task {task!r}: built-in tasks are {', '.join(TASKS)}")
        return ProbeAccuracy(generate(task, max(n, 40), seed=seed, lexical_split=True), seed=seed)
    if name == "cosine":
        if data:
            pairs: list[tuple[str, str]] = []
            for number, r in iter_jsonl(Path(data)):
                if not isinstance(r, dict) or "text_a" not in r or "text_b" not in r:
                    raise BehaviourError(f"{data}:{number}: each line needs text_a and text_b")
                pairs.append((str(r["text_a"]), str(r["text_b"])))
            return EmbeddingCosine(pairs)
        return EmbeddingCosine([(p["sentence_good"], p["sentence_bad"]) for p in agreement_pairs(n, seed=seed)])
    raise BehaviourError(f"unknown behaviour {name!r}: choose from {', '.join(BEHAVIOURS)}")
