"""Per-layer summary of a capture: what a first look at a model's activations shows.

Residual stream (``hook_resid_post``):
  * ``resid_norm``: mean L2 norm of a token's vector;
  * ``anisotropy``: mean cosine similarity between two different tokens
    (near 0 for directions spread out, near 1 when every token points one way).
Attention (``attn.hook_pattern``), averaged over heads and query tokens:
  * ``attn_entropy``: entropy of a query's attention, in nats;
  * ``attn_first``: weight on the first token (a [CLS] / BOS "sink");
  * ``attn_prev``: weight on the previous token (queries after the first).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import torch

from analysis.results import tidy
from probes.core.store import ActivationStore

_LAYER = re.compile(r"^blocks\.(\d+)\.(.+)$")


def resid_stats(values: np.ndarray) -> dict[str, float]:
    x = values.astype(np.float64)
    norms = np.linalg.norm(x, axis=1)
    unit = x / np.maximum(norms, 1e-12)[:, None]
    n = len(unit)
    total = np.square(unit.sum(0)).sum()  # sum over all ordered pairs of cosines, self-pairs included
    anisotropy = (total - n) / (n * (n - 1)) if n > 1 else float("nan")
    return {"resid_norm": float(norms.mean()), "anisotropy": float(anisotropy)}


def attention_rows(pattern: torch.Tensor, position: torch.Tensor) -> dict[str, torch.Tensor]:
    """Statistics of each query row: ``pattern`` (rows, heads, keys), ``position`` (rows,) the query's position.

    Returns (rows, heads) float64 tensors: ``entropy`` (nats), ``distance`` (attention-weighted
    |query - key|), ``prev_token`` (weight on key position - 1; NaN for the first position) and
    ``first_token`` (weight on key 0). Layer summaries and per-head statistics both average these.
    """
    p = pattern.double()
    position = position.long()
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)
    keys = torch.arange(p.shape[-1], device=p.device)
    distance = (p * (position[:, None, None] - keys).abs()).sum(-1)
    previous = p.gather(-1, (position - 1).clamp_min(0)[:, None, None].expand(-1, p.shape[1], 1)).squeeze(-1)
    previous = torch.where((position > 0)[:, None], previous, torch.full_like(previous, float("nan")))
    return {"entropy": entropy, "distance": distance, "prev_token": previous, "first_token": p[..., 0]}


def pattern_stats(pattern: np.ndarray, position: np.ndarray) -> dict[str, float]:
    """``pattern``: (query tokens, heads, keys) rows as the store keeps them."""
    rows = attention_rows(torch.from_numpy(np.array(pattern, dtype=np.float64)), torch.from_numpy(np.array(position)))
    return {
        "attn_entropy": float(rows["entropy"].mean()),
        "attn_first": float(rows["first_token"].mean()),
        "attn_prev": float(rows["prev_token"].nanmean()),
    }


def layer_summary(store: ActivationStore) -> pd.DataFrame:
    """A tidy table (analysis.results layout) of the statistics above, per layer."""
    rows: list[dict] = []
    model = store.manifest["model"]["name"]
    positions = store.tokens()["position"].to_numpy()
    n = len(positions)
    for site in store.sites:
        match = _LAYER.match(site)
        if not match or match.group(2) not in ("hook_resid_post", "attn.hook_pattern"):
            continue
        values = store.read(site)
        stats = resid_stats(values) if match.group(2) == "hook_resid_post" else pattern_stats(values, positions)
        rows.extend(
            {
                "model": model,
                "task": "capture",
                "site": site,
                "layer": int(match.group(1)),
                "metric": k,
                "value": v,
                "n": n,
            }
            for k, v in stats.items()
        )
    return tidy(rows)
