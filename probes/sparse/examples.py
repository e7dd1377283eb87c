"""The texts a feature fires on: for each feature, the tokens where it is strongest, with their context.

    frame = activating_examples(lm, sae, texts, features=[12, 40], n=5)

One row per (feature, rank): the text, the position, the activation there, and the context as token strings
with each token's activation of that feature (what the report highlights, escaped).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
import torch

from probes.core.hooks import capture
from probes.core.model import LoadedModel
from probes.sparse.dictionary import SparseDictionary


def activating_examples(
    lm: LoadedModel,
    sae: SparseDictionary,
    texts: Sequence[str],
    features: Sequence[int],
    *,
    n: int = 5,
    context: int = 8,
    skip_positions: int = 0,
    batch_size: int = 16,
    max_length: int | None = None,
) -> pd.DataFrame:
    """The ``n`` strongest activations of each feature over ``texts`` (at most one per text), with ``context``
    tokens on each side."""
    feats = torch.tensor([int(f) for f in features], dtype=torch.long)
    best: dict[int, list[tuple[float, int, int]]] = {int(f): [] for f in features}  # (activation, text, position)
    ids: list[list[int]] = []
    per_text_acts: list[torch.Tensor] = []  # (T, len(features)) for each text
    limit = lm.max_length(max_length)
    with torch.inference_mode(), capture(lm, [sae.site]) as cache:
        for lo in range(0, len(texts), batch_size):
            enc = lm.encode(list(texts[lo : lo + batch_size]), max_length=limit)
            lm.model(**enc.model_inputs(lm.device))
            codes = sae.encode(cache[sae.site].to(sae.W_enc.device))[..., feats.to(sae.W_enc.device)].float().cpu()
            mask = enc.attention_mask.bool()
            for row in range(mask.shape[0]):
                real = mask[row].nonzero().squeeze(1)
                ids.append(enc.inputs["input_ids"][row, real].tolist())
                acts = codes[row, real]
                acts[:skip_positions] = 0
                per_text_acts.append(acts)
                text = len(ids) - 1
                top, where = acts.max(0)
                for j, f in enumerate(best):
                    if float(top[j]) > 0:
                        best[f].append((float(top[j]), text, int(where[j])))
    rows = []
    for j, f in enumerate(best):
        for rank, (activation, text, position) in enumerate(sorted(best[f], reverse=True)[:n]):
            lo, hi = max(0, position - context), min(len(ids[text]), position + context + 1)
            tokens = [lm.tokenizer.decode([t]) for t in ids[text][lo:hi]]
            rows.append(
                {
                    "feature": f,
                    "rank": rank,
                    "text": text,
                    "position": position,
                    "activation": activation,
                    "tokens": json.dumps(tokens, ensure_ascii=False),
                    "token_activations": json.dumps([round(float(a), 4) for a in per_text_acts[text][lo:hi, j]]),
                    "focus": position - lo,
                }
            )
    return pd.DataFrame(
        rows, columns=["feature", "rank", "text", "position", "activation", "tokens", "token_activations", "focus"]
    )
