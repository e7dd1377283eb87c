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

from analysis.results import tidy

from .store import ActivationStore

_LAYER = re.compile(r"^blocks\.(\d+)\.(.+)$")


def resid_stats(values: np.ndarray) -> dict[str, float]:
    x = values.astype(np.float64)
    norms = np.linalg.norm(x, axis=1)
    unit = x / np.maximum(norms, 1e-12)[:, None]
    n = len(unit)
    total = np.square(unit.sum(0)).sum()  # sum over all ordered pairs of cosines, self-pairs included
    anisotropy = (total - n) / (n * (n - 1)) if n > 1 else float("nan")
    return {"resid_norm": float(norms.mean()), "anisotropy": float(anisotropy)}


def pattern_stats(pattern: np.ndarray, position: np.ndarray) -> dict[str, float]:
    """``pattern``: (query tokens, heads, keys) rows as the store keeps them."""
    p = pattern.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(-1)
    later = position > 0
    prev = p[later, :, :][np.arange(later.sum()), :, position[later] - 1] if later.any() else np.array([np.nan])
    return {
        "attn_entropy": float(entropy.mean()),
        "attn_first": float(p[:, :, 0].mean()),
        "attn_prev": float(np.mean(prev)),
    }


def layer_summary(store: ActivationStore) -> pd.DataFrame:
    """A tidy table (analysis.results layout) of the statistics above, per layer."""
    rows = []
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
            {"model": model, "task": "capture", "site": site, "layer": int(match.group(1)), "metric": k, "value": v, "n": n}
            for k, v in stats.items()
        )
    return tidy(rows)
