"""Minimal pairs (BLiMP's format: ``sentence_good`` / ``sentence_bad``) scored by a causal language model: per
pair ``logit_diff`` = log p(good) - log p(bad) summed over the sentence's tokens, or ``accuracy`` = [log p(good)
> log p(bad)]. The names ``agreement``, ``agreement-simple``, ``agreement-copula`` and ``pairs`` build one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from probes.causal.behaviours.base import (
    Batch,
    Behaviour,
    BehaviourError,
    Payload,
    final_readout,
    pad_right,
    to_device,
    unembed,
)
from probes.causal.reference import token_positions
from probes.core.align import ensure_pad_token
from probes.core.model import LoadedModel


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

    name = "pairs"

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
        return final_readout(lm)

    def tokenise(self, lm: LoadedModel) -> list[tuple[list[int], list[int], int]]:
        """Per pair: good ids, bad ids, and d, the first token index that is scored (after the shared prefix)."""
        limit = lm.max_length(self.max_length)
        out = []
        for i, row in enumerate(self.pairs):
            good, bad = lm.token_ids(row["sentence_good"]), lm.token_ids(row["sentence_bad"])
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
        return Batch(to_device(inputs, lm.device), positions, owner.clamp(min=0), len(chunk), payload.to(lm.device))

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
            to_device(inputs, lm.device),
            token_positions(attention),
            ids.repeat_interleave(2),
            len(chunk),
            PairPayload.of(lists).to(lm.device),
        )

    def score(self, lm: LoadedModel, value: Tensor, batch: Batch) -> Tensor:
        flat = value.reshape(-1, value.shape[-1])
        p: PairPayload = batch.payload
        logp = torch.log_softmax(unembed(lm, flat[p.unembed_at]), -1)
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


def agreement(lm: LoadedModel, argument: str = "", *, data: str | None = None, n: int = 64, seed: int = 0) -> Behaviour:
    from probes.probing.datasets.grammar import agreement_pairs

    return MinimalPairs(agreement_pairs(n, seed=seed))


def agreement_simple(
    lm: LoadedModel, argument: str = "", *, data: str | None = None, n: int = 64, seed: int = 0
) -> Behaviour:
    from probes.probing.datasets.grammar import simple_agreement_pairs

    return MinimalPairs(simple_agreement_pairs(n, seed=seed))


def agreement_copula(
    lm: LoadedModel, argument: str = "", *, data: str | None = None, n: int = 64, seed: int = 0
) -> Behaviour:
    from probes.probing.datasets.grammar import copula_agreement_pairs

    return MinimalPairs(copula_agreement_pairs(n, seed=seed))


def pairs(lm: LoadedModel, argument: str = "", *, data: str | None = None, n: int = 64, seed: int = 0) -> Behaviour:
    from probes.probing.datasets.loaders import load_blimp

    if not data:
        raise BehaviourError("behaviour 'pairs' needs a BLiMP-format JSONL file: pass --data FILE")
    return MinimalPairs(load_blimp(data))
