"""One feature extractor: a model's activations at chosen layers, pooled into the units a dataset labels.

    feats = extract_features(lm, generate("pos", 300), layers="all")   # (layers, words, d_model)
    fit_layers(feats.X[:, ~feats.test], feats.y[~feats.test]).accuracy(feats.X[:, feats.test], feats.y[feats.test])

Layers count the residual stream's depth, as Hugging Face's ``hidden_states`` does: 0 is the
embeddings (``blocks.0.hook_resid_pre``), l the output of block l - 1 (``blocks.{l-1}.hook_resid_post``).
With another ``site`` (``hook_mlp_out``, ...) layer l is block l's.

How token rows become units (``pool``):

* word-level datasets (part of speech): ``first``, ``last`` or ``mean`` of each word's subwords;
* sentence-level datasets (subject number): ``mean`` over the sentence's word tokens, or its
  ``first`` / ``last`` token (special tokens included: [CLS], BOS);
* ``token``: no pooling: every word token is a row, labelled with its word's (or sentence's) label,
  which is what concept erasure fits on (the edit acts on every token).

Probe suites, amnesic probing and the probe-accuracy behaviour all call ``extract_features`` (or,
for rows already captured, ``pool_units``), so they read the same numbers the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from analysis.errors import ProbesError
from probes.core.align import pool_words
from probes.core.hooks import capture
from probes.core.model import LoadedModel
from probes.core.sites import BLOCK_SITES
from probes.probing.datasets.base import ProbingDataset

Pool = Literal["first", "last", "mean", "token"]


class FeatureError(ProbesError, ValueError):
    """Features that cannot be read as asked (a layer the model does not have, a site that is not probeable)."""


@dataclass
class Features:
    """Pooled activations and what each row is."""

    X: Tensor  # (layers, rows, d) float32, on the CPU
    y: np.ndarray  # (rows,) labels as strings
    groups: np.ndarray  # (rows,) the sentence of each row (bootstrap resamples whole sentences)
    types: np.ndarray | None  # (rows,) word forms, for word-level datasets (control tasks)
    test: np.ndarray  # (rows,) True where the sentence is in the test split
    layers: list[int]
    sites: list[str]


def probe_sites(
    lm: LoadedModel, site: str = "resid", layers: str | Sequence[int] = "all"
) -> tuple[list[int], list[str]]:
    """The layers asked for and the site each is read at (see the module docstring for what a layer is)."""
    n = lm.shape.n_layers
    if site == "resid":
        available = list(range(n + 1))
        name = lambda l: "blocks.0.hook_resid_pre" if l == 0 else f"blocks.{l - 1}.hook_resid_post"
    elif site in BLOCK_SITES and not BLOCK_SITES[site].needs_eager:
        available = list(range(n))
        name = lambda l: f"blocks.{l}.{site}"
    else:
        usable = ["resid"] + [s for s, k in BLOCK_SITES.items() if not k.needs_eager]
        raise FeatureError(f"site {site!r} is not probeable; use one of {', '.join(usable)}")
    chosen = available if layers == "all" else [int(l) for l in layers]
    bad = [l for l in chosen if l not in available]
    if bad:
        raise FeatureError(
            f"layers {bad} out of range for {lm.name}, which has layers {available[0]}..{available[-1]}"
            + (" (0 = embeddings)" if site == "resid" else "")
        )
    return chosen, [name(l) for l in chosen]


def unit_index(word_index: np.ndarray, level: str, pool: Pool) -> tuple[np.ndarray, str]:
    """Per token, the unit it pools into within its text (-1: none), and how to pool.

    Word level: the word; sentence level: 0 for the sentence (``mean``: word tokens only; ``first`` /
    ``last``: every token, so the first is [CLS] or BOS where the tokenizer adds one).
    """
    if pool == "token" or level == "word":
        return word_index, ("mean" if pool == "token" else pool)
    if pool == "mean":
        return np.where(word_index >= 0, 0, -1), "mean"
    return np.zeros_like(word_index), pool


def pool_units(
    values: Tensor | np.ndarray, example: np.ndarray, word_index: np.ndarray, level: str, pool: Pool
) -> tuple[np.ndarray, np.ndarray]:
    """Token rows (one text after another, in position order) -> (pooled rows, keys (example, unit))."""
    unit, how = unit_index(np.asarray(word_index), level, pool)
    if pool == "token":
        keep = unit >= 0
        rows = values.float().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
        return rows[keep], np.stack([np.asarray(example)[keep], unit[keep]], axis=1).astype(np.int64)
    return pool_words(values, np.asarray(example), unit, how)  # type: ignore[arg-type]


def extract_features(
    lm: LoadedModel,
    dataset: ProbingDataset,
    layers: str | Sequence[int] = "all",
    *,
    site: str = "resid",
    pool: Pool = "mean",
    sentence_pool: Pool = "mean",
    batch_size: int = 32,
    max_length: int | None = None,
    split: str | None = None,
) -> Features:
    """Activations of ``dataset`` at ``layers``, one row per labelled unit (``split``: only "train" or "test").

    ``pool`` pools word-level datasets, ``sentence_pool`` sentence-level ones; ``"token"`` keeps every
    word token as a row. Memory is one batch of activations plus the pooled rows.
    """
    layers, sites = probe_sites(lm, site, layers)
    how = pool if dataset.level == "word" else sentence_pool
    chosen = [i for i in range(len(dataset)) if split is None or (dataset.split and dataset.split[i] == split)]
    if not chosen:
        raise FeatureError(
            f"dataset {dataset.name!r} has no {split or ''} sentences to read features from".replace("  ", " ")
        )
    parts: dict[str, list[np.ndarray]] = {s: [] for s in sites}
    keys: list[np.ndarray] = []
    limit = lm.max_length(max_length)
    with torch.inference_mode(), capture(lm, sites) as cache:
        for lo in range(0, len(chosen), batch_size):
            idx = chosen[lo : lo + batch_size]
            enc = lm.encode([dataset.words[i] for i in idx], max_length=limit)
            lm.model(**enc.model_inputs(lm.device))
            mask = enc.attention_mask.bool()
            example = np.asarray(idx)[:, None].repeat(mask.shape[1], 1)[mask.numpy()]
            word = enc.word_index[mask].numpy()
            on_device = mask.to(lm.device)
            for s in sites:
                pooled, batch_keys = pool_units(cache[s][on_device].float(), example, word, dataset.level, how)
                parts[s].append(np.ascontiguousarray(pooled, dtype=np.float32))
            keys.append(batch_keys)
    X = torch.stack([torch.from_numpy(np.concatenate(parts[s])) for s in sites])
    ex, unit = np.concatenate(keys)[:, 0], np.concatenate(keys)[:, 1]
    if dataset.level == "word":
        y = np.asarray([str(dataset.labels[e][w]) for e, w in zip(ex, unit)])
        types = np.asarray([dataset.words[e][w] for e, w in zip(ex, unit)])
    else:
        y, types = np.asarray([str(dataset.labels[e]) for e in ex]), None
    test = np.asarray([bool(dataset.split) and dataset.split[e] == "test" for e in ex])
    return Features(X, y, ex, types, test, layers, sites)


def mean_pooling(word_index: Tensor, attention_mask: Tensor, level: str) -> tuple[Tensor, list[tuple[int, int]]]:
    """The ``mean`` rule of ``extract_features`` as a matrix over a padded batch: (units, rows * T), with each
    unit's (row, word) key, in the same order; ``pool @ value.reshape(rows * T, d)`` pools a site's value.

    Behaviours that pool an intervened forward pass (``ProbeAccuracy``) use it, so they pool as probes do.
    """
    rows, T = word_index.shape
    real = attention_mask.bool()
    unit, _ = unit_index(np.where(real.numpy(), word_index.numpy(), -1), level, "mean")
    keys = sorted({(int(r), int(unit[r, t])) for r, t in zip(*np.nonzero(unit >= 0))})
    pool = torch.zeros(len(keys), rows * T)
    position = {key: k for k, key in enumerate(keys)}
    for r, t in zip(*np.nonzero(unit >= 0)):
        pool[position[(int(r), int(unit[r, t]))], r * T + t] = 1.0
    return pool / pool.sum(1, keepdim=True).clamp(min=1), keys
