"""Per-head attention statistics over a dataset: which heads have a local, nameable job.

For every layer and head (TransformerLens's names in brackets where they exist):

- ``entropy``: entropy of a query's attention, in nats (0: one key; log n: uniform);
- ``distance``: mean |query - key| position, weighted by attention;
- ``prev_token``: weight on the previous token (queries after the first);
- ``first_token``: weight on the first token, the BOS / [CLS] "sink";
- ``induction``: on random tokens repeated twice, weight from each token of the second copy on the
  token *after* its earlier occurrence (Olsson et al. 2022), the signature of an induction head.

The first four are averaged over every real query token of ``texts``; rows are the tidy results
table with a ``head`` column, so ``head_map`` turns a metric into a layer x head array.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from analysis.results import tidy
from probes.causal.behaviours import pad_right
from probes.core.hooks import run_with_cache
from probes.core.model import LoadedModel
from probes.core.summary import attention_rows

TEXT_METRICS = ("entropy", "distance", "prev_token", "first_token")


def pattern_statistics(pattern: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """``pattern`` (batch, heads, queries, keys), ``mask`` (batch, positions) of real tokens -> per-head means
    (heads,)."""
    B, _, T, _ = pattern.shape
    real = mask.bool()
    rows = attention_rows(pattern.transpose(1, 2)[real], torch.arange(T).expand(B, T)[real])
    return {m: values.nanmean(0) for m, values in rows.items()}


def induction_batch(lm: LoadedModel, n: int = 16, length: int = 20, seed: int = 0) -> torch.Tensor:
    """``n`` rows of [BOS?] + ``length`` random tokens + the same tokens again (special tokens excluded)."""
    tok = lm.tokenizer
    special = set(tok.all_special_ids)
    vocab = [i for i in range(min(len(tok), lm.model.get_input_embeddings().num_embeddings)) if i not in special]
    g = torch.Generator().manual_seed(seed)
    picks = torch.tensor(vocab)[torch.randint(len(vocab), (n, length), generator=g)]
    start = [tok.bos_token_id if tok.bos_token_id is not None else tok.cls_token_id]
    prefix = torch.tensor([s for s in start if s is not None], dtype=torch.long).expand(n, -1)
    return torch.cat([prefix, picks, picks], 1)


def induction_scores(pattern: torch.Tensor, length: int, offset: int) -> torch.Tensor:
    """Per head: mean weight from second-copy position i on key i - length + 1 (the token after i's first copy)."""
    queries = torch.arange(offset + length, offset + 2 * length)
    keys = queries - length + 1
    return pattern[:, :, queries, keys].double().mean((0, 2))


@torch.no_grad()
def head_statistics(
    lm: LoadedModel,
    texts: Sequence[str],
    *,
    batch_size: int = 16,
    n_induction: int = 16,
    induction_length: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Every head's statistics over ``texts`` (and an induction set drawn with ``seed``) as a tidy table."""
    if not texts:
        raise ValueError("head statistics need at least one text")
    L, H = lm.shape.n_layers, lm.shape.n_heads
    sums = {m: torch.zeros(L, H, dtype=torch.float64) for m in TEXT_METRICS}
    weight = 0
    sites = "blocks.*.attn.hook_pattern"
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        enc = lm.tokenizer(chunk, add_special_tokens=True)["input_ids"]
        ids, mask = pad_right(enc, lm.tokenizer.pad_token_id)
        _, cache = run_with_cache(lm, {"input_ids": ids.to(lm.device), "attention_mask": mask.to(lm.device)}, sites)
        n = int(mask.sum())
        for layer in range(L):
            stats = pattern_statistics(cache[f"blocks.{layer}.attn.hook_pattern"].cpu(), mask)
            for m in TEXT_METRICS:
                sums[m][layer] += stats[m] * n  # token-weighted across batches
        weight += n
    ids = induction_batch(lm, n_induction, induction_length, seed)
    offset = ids.shape[1] - 2 * induction_length
    _, cache = run_with_cache(
        lm, {"input_ids": ids.to(lm.device), "attention_mask": torch.ones_like(ids).to(lm.device)}, sites
    )
    induction = torch.stack(
        [induction_scores(cache[f"blocks.{l}.attn.hook_pattern"].cpu(), induction_length, offset) for l in range(L)]
    )
    rows = []
    for layer in range(L):
        for head in range(H):
            base = {
                "model": lm.name,
                "task": "attention",
                "site": f"blocks.{layer}.attn.hook_pattern",
                "layer": layer,
                "head": head,
            }
            rows += [
                {**base, "metric": m, "value": float(sums[m][layer, head] / weight), "n": weight} for m in TEXT_METRICS
            ]
            rows.append(
                {
                    **base,
                    "metric": "induction",
                    "value": float(induction[layer, head]),
                    "n": n_induction * induction_length,
                }
            )
    return tidy(rows)


@torch.no_grad()
def attention_example(lm: LoadedModel, text: str) -> tuple[list[str], np.ndarray]:
    """Every head's attention pattern on one input: (tokens, array (layers, heads, queries, keys))."""
    enc = lm.tokenizer(text, return_tensors="pt")
    _, cache = run_with_cache(lm, {k: v.to(lm.device) for k, v in enc.items()}, "blocks.*.attn.hook_pattern")
    patterns = np.stack(
        [cache[f"blocks.{l}.attn.hook_pattern"][0].float().cpu().numpy() for l in range(lm.shape.n_layers)]
    )
    return list(lm.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())), patterns


EXAMPLE = "The keys to the old cabinet near the door were on the table, and the keys to the old cabinet were lost."


def head_map(frame: pd.DataFrame, metric: str) -> np.ndarray:
    """One metric of ``head_statistics`` as a (layers, heads) array."""
    part = frame[frame["metric"] == metric]
    if part.empty:
        raise ValueError(f"no {metric!r} rows; metrics here: {', '.join(sorted(frame['metric'].unique()))}")
    return part.pivot_table(index="layer", columns="head", values="value").to_numpy()
