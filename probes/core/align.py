"""Tokenise text and line subwords up with words.

Word-level labels (part of speech, agreement) name words; models see subwords.
``encode`` gives every token the index of the word it belongs to, from the
tokenizer's character offsets, and ``pool_words`` turns token rows into word
rows (first, last or mean subword). Special and padding tokens get word -1.

One rule says how a text becomes tokens, for a capture and a study alike (``LoadedModel.encode`` applies it):
an encoder's text gets its tokenizer's own special tokens (BERT's ``[CLS] ... [SEP]``); a causal language
model's text gets one start token in front, its tokenizer's BOS (else EOS), whether or not the tokenizer adds
one itself, and no other special token (``prepend_bos=False``: none), as TransformerLens's ``to_tokens`` and
lm-evaluation-harness condition on it. ``start_token`` names that token.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from analysis.errors import ProbesError

Pooling = Literal["first", "last", "mean"]
_WORD = re.compile(r"\S+")


class EmptyInputError(ProbesError, ValueError):
    """No text to run."""


class SequenceTooLongError(ProbesError, ValueError):
    """A maximum length beyond what the model can attend over."""


def word_spans(text: str, words: Sequence[str] | None = None) -> list[tuple[int, int]]:
    """Character spans of the words of ``text``: whitespace-separated, or the given words in order."""
    if words is None:
        return [m.span() for m in _WORD.finditer(text)]
    spans, cursor = [], 0
    for word in words:
        start = text.find(word, cursor)
        if start < 0:
            raise ValueError(f"word {word!r} not found in {text!r} after position {cursor}: words must appear in order")
        spans.append((start, start + len(word)))
        cursor = start + len(word)
    return spans


def token_word_index(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    """Index of the word each token overlaps (-1 for none), from character offsets.

    Overlap rather than containment, because byte-level BPE tokens carry the
    preceding space (" world" has offsets (5, 11) for the word at (6, 11)).
    """
    out, w = [], 0
    for start, end in offsets:
        if end <= start:  # special tokens and padding have empty offsets
            out.append(-1)
            continue
        while w < len(spans) and spans[w][1] <= start:
            w += 1
        # a token of pure whitespace before the next word overlaps none
        out.append(w if w < len(spans) and spans[w][0] < end else -1)
    return out


@dataclass
class Encoded:
    """A right-padded batch with per-token word indices and what truncation cut."""

    inputs: dict[str, Tensor]  # input_ids, attention_mask (+ token_type_ids)
    word_index: Tensor  # (batch, seq), -1 for special and padding tokens
    n_words: list[int]
    truncated: list[bool] = field(default_factory=list)
    words_lost: list[int] = field(default_factory=list)  # words with no token left after truncation

    @property
    def attention_mask(self) -> Tensor:
        return self.inputs["attention_mask"]

    def model_inputs(self, device: torch.device | str | None = None) -> dict[str, Tensor]:
        return {k: v.to(device) if device is not None else v for k, v in self.inputs.items()}


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    """Right-pad with any token: pad positions are masked and never stored (GPT-2 ships without one)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"


def start_token(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The token a causal model's text is conditioned on, so its first word is predicted too: BOS, else EOS."""
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return [int(token_id)]
    return []


def encode(
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[str] | Sequence[Sequence[str]],
    max_length: int | None = None,
    *,
    start: Sequence[int] | None = None,
) -> Encoded:
    """Tokenise texts (or pre-split word lists, joined by spaces) into a padded batch.

    ``start`` None: the tokenizer's own special tokens (an encoder's); a list of ids: those first, then the
    text's tokens with no special token (a causal model's start token; ``LoadedModel.encode`` chooses).
    Texts longer than ``max_length`` tokens (the start included) are truncated, and a warning says how
    many and how many words were lost.
    """
    if len(items) == 0:
        raise EmptyInputError("empty text list: give at least one text")
    texts: list[str] = []
    spans: list[list[tuple[int, int]]] = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
            spans.append(word_spans(item))
        else:
            text = " ".join(item)
            texts.append(text)
            spans.append(word_spans(text, list(item)))
    ensure_pad_token(tokenizer)
    if max_length is None and tokenizer.model_max_length < 1_000_000:
        max_length = int(tokenizer.model_max_length)
    lead = list(start or [])
    text_length = None if max_length is None else max_length - len(lead)
    if text_length is not None and text_length < 1:
        raise SequenceTooLongError(f"max_length {max_length} leaves no room for text after the start token")
    enc = tokenizer(
        texts,
        padding=True,
        truncation=text_length is not None,
        max_length=text_length,
        return_offsets_mapping=True,
        return_tensors="pt",
        add_special_tokens=start is None,
    )
    offsets = enc.pop("offset_mapping").tolist()
    mask = enc["attention_mask"]
    word_index = torch.tensor(
        [token_word_index(off, sp) for off, sp in zip(offsets, spans)], dtype=torch.long
    ).masked_fill(mask == 0, -1)
    n_words = [len(s) for s in spans]
    kept = [int(row.max()) + 1 if row.numel() else 0 for row in word_index]
    words_lost = [max(n - k, 0) for n, k in zip(n_words, kept)]
    truncated = _truncated(tokenizer, texts, mask, text_length, add_special_tokens=start is None)
    empty = int((mask.sum(1) == 0).sum())
    if empty:
        warnings.warn(
            f"{empty} of {len(texts)} texts have no tokens (empty text?); they contribute no rows", stacklevel=2
        )
    if any(truncated):
        warnings.warn(
            f"{sum(truncated)} of {len(texts)} texts were truncated to {max_length} tokens "
            f"({sum(words_lost)} words lost); raise max_length to keep them",
            stacklevel=2,
        )
    inputs = dict(enc)
    if lead:  # the start token leads every row (right padding keeps the rows aligned)
        rows = len(texts)
        ahead = {
            "input_ids": torch.tensor(lead, dtype=torch.long).expand(rows, -1),
            "attention_mask": torch.ones(rows, len(lead), dtype=mask.dtype),
        }
        inputs = {
            k: torch.cat([ahead.get(k, torch.zeros(rows, len(lead), dtype=v.dtype)), v], 1) for k, v in inputs.items()
        }
        word_index = torch.cat([torch.full((rows, len(lead)), -1, dtype=torch.long), word_index], 1)
    return Encoded(inputs, word_index, n_words, truncated, words_lost)


def _truncated(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    mask: Tensor,
    max_length: int | None,
    add_special_tokens: bool = True,
) -> list[bool]:
    if max_length is None:
        return [False] * len(texts)
    lengths = mask.sum(1).tolist()
    full = None
    out = []
    for i, length in enumerate(lengths):
        if length < max_length:
            out.append(False)
            continue
        if full is None:  # only texts that hit the limit need the untruncated length
            full = tokenizer(texts, truncation=False, add_special_tokens=add_special_tokens)["input_ids"]
        out.append(len(full[i]) > max_length)
    return out


def pool_words(
    values: np.ndarray | Tensor,
    example_id: np.ndarray,
    word_index: np.ndarray,
    how: Pooling = "mean",
) -> tuple[np.ndarray, np.ndarray]:
    """Pool token rows into word rows.

    Returns ``(pooled, keys)``: ``pooled[i]`` belongs to word ``keys[i, 1]`` of
    example ``keys[i, 0]``; rows come sorted by example, then word. Tokens with
    word -1 are dropped. Token rows must be in position order within an example.
    """
    if how not in ("first", "last", "mean"):
        raise ValueError(f"unknown pooling {how!r}: use 'first', 'last' or 'mean'")
    values = values.float().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    example_id, word_index = np.asarray(example_id), np.asarray(word_index)
    if not (len(values) == len(example_id) == len(word_index)):
        raise ValueError(
            f"pool_words: {len(values)} value rows but {len(example_id)} example ids and {len(word_index)} word indices"
        )
    keep = word_index >= 0
    values, example_id, word_index = values[keep], example_id[keep], word_index[keep]
    order = np.lexsort((word_index, example_id))  # stable: keeps position order inside a word
    values, example_id, word_index = values[order], example_id[order], word_index[order]
    if len(values) == 0:
        return values[:0], np.zeros((0, 2), dtype=np.int64)
    new_word = np.r_[True, (example_id[1:] != example_id[:-1]) | (word_index[1:] != word_index[:-1])]
    starts = np.flatnonzero(new_word)
    ends = np.r_[starts[1:], len(values)]
    keys = np.stack([example_id[starts], word_index[starts]], axis=1).astype(np.int64)
    if how == "first":
        return values[starts], keys
    if how == "last":
        return values[ends - 1], keys
    sums = np.add.reduceat(values.astype(np.float64), starts, axis=0)
    counts = (ends - starts).reshape(-1, *([1] * (values.ndim - 1)))
    return (sums / counts).astype(values.dtype, copy=False), keys
