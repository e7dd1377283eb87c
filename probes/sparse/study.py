"""How much of a behaviour, and of a concept, a dictionary's features carry.

    ev = Evaluator(lm, MinimalPairs(pairs), kind="mean")
    scores = feature_scores(ev, sae)                       # AtP of every feature, one row each
    curve = feature_curve(ev, sae, scores["feature"])      # top-k kept, every other feature ablated, exactly
    curve.smallest_share(0.8)                              # the share of features that keeps 80%, with its CI
    error_share(ev, sae)                                   # what the error term carries, of the whole site's
    concept_features(lm, dataset, sae)                     # best single feature against the linear probe

The feature-count curve is a ``FaithfulnessCurve`` over features instead of edges: ``full`` is the clean
behaviour, ``empty`` every feature ablated (the error term kept), ``top[k]`` the top-k features by attribution
kept and every other ablated, each measured exactly, beside random sets of k features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from tqdm.auto import tqdm

from probes.causal.attribution import attribute
from probes.causal.circuits import FaithfulnessCurve, size_grid, trace_curve
from probes.causal.evaluator import Evaluator
from probes.core.hooks import capture
from probes.core.model import LoadedModel
from probes.probing.datasets import ProbingDataset
from probes.probing.features import pool_units
from probes.sparse.components import ErrorTerm, Features, all_features
from probes.sparse.dictionary import DictionaryError, SparseDictionary


def feature_scores(ev: Evaluator, sae: SparseDictionary, *, progress: bool = False) -> pd.DataFrame:
    """Every feature's AtP estimate (one forward and backward pass per batch), strongest first, with its index."""
    components = all_features(sae)
    frame = attribute(ev, components, method="atp", progress=progress)
    frame = frame.assign(feature=[c.features[0] for c in components])  # type: ignore[attr-defined]
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def kept(sae: SparseDictionary, order: Sequence[int], k: int) -> list[Features]:
    """The condition that keeps the first k features of ``order``: every other feature ablated."""
    rest = sorted(set(range(sae.d_sae)) - {int(f) for f in order[:k]})
    return [Features(sae, rest, label=f"all but {k}")] if rest else []


def feature_curve(
    ev: Evaluator,
    sae: SparseDictionary,
    order: Sequence[int],
    *,
    sizes: Sequence[int] | None = None,
    n_random: int = 3,
    target: float = 0.8,
    refine: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> FaithfulnessCurve:
    """The behaviour with the top-k features of ``order`` kept (every other feature ablated), for k on ``sizes``
    (default: a log grid from 1 to all), each exact, beside ``n_random`` random feature sets of each size; ``refine``
    bisects to the smallest k that keeps ``target`` of the behaviour."""
    n = sae.d_sae
    order = [int(f) for f in order]
    if sorted(order) != list(range(n)):
        raise DictionaryError(f"the feature order must list each of the dictionary's {n} features once")
    grid = sorted({int(k) for k in (sizes or size_grid(n))} | {n})
    if grid[0] < 1 or grid[-1] > n:
        raise DictionaryError(f"feature counts run from 1 to the dictionary's {n} features, got {grid}")
    bar = tqdm(desc="feature sets", unit="set", disable=not progress)
    empty = ev.values([[Features(sae, range(n), label="all")]])[0]

    def random_sets(k: int, rng: np.random.Generator) -> np.ndarray:
        return ev.values([kept(sae, list(rng.permutation(n)), k) for _ in range(n_random)])

    top = lambda k: ev.values([kept(sae, order, k)])[0]
    return trace_curve(n, ev.clean, empty, top, random_sets, grid, n_random, target, refine, seed, "atp", bar)


def error_share(ev: Evaluator, sae: SparseDictionary, *, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """The error term's effect as a share of the whole site's (every feature and the error ablated together), with a
    bootstrap interval over examples; also the features' share (every feature ablated, the error kept)."""
    values = ev.values(
        [
            [ErrorTerm(sae)],
            [Features(sae, range(sae.d_sae), label="all")],
            [ErrorTerm(sae), Features(sae, range(sae.d_sae), label="all")],
        ]
    )
    clean = ev.clean
    error, features, site = values

    def shares(pick: np.ndarray) -> tuple[float, float]:
        span = clean[pick].mean() - site[pick].mean()
        if span == 0:
            return np.nan, np.nan
        return (clean[pick].mean() - error[pick].mean()) / span, (clean[pick].mean() - features[pick].mean()) / span

    point = shares(np.arange(len(clean)))
    rng = np.random.default_rng(seed)
    draws = np.array([shares(rng.integers(0, len(clean), len(clean))) for _ in range(n_boot)])
    low, high = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    return {
        "error_share": float(point[0]),
        "error_share_low": float(low[0]),
        "error_share_high": float(high[0]),
        "features_share": float(point[1]),
        "features_share_low": float(low[1]),
        "features_share_high": float(high[1]),
        "site_effect": float(site.mean() - clean.mean()),
    }


def concept_features(
    lm: LoadedModel,
    dataset: ProbingDataset,
    sae: SparseDictionary,
    *,
    batch_size: int = 32,
    candidates: int = 32,
    seed: int = 0,
) -> pd.DataFrame:
    """Is a probed concept one feature, a few, or spread out? Per class (one against the rest), the best single
    feature's balanced accuracy on held-out sentences beside a linear probe's on the site's full value; features
    are pooled per word as the probes pool activations (mean over a word's tokens).

    The best feature is chosen on the training sentences (``candidates`` most different in mean between the class
    and the rest, each given a threshold by a one-feature logistic fit), then scored on the test sentences."""
    if not dataset.split or "test" not in dataset.split:
        raise DictionaryError(f"dataset {dataset.name!r} has no test split to score the features on")
    values, codes, keys = [], [], []
    limit = lm.max_length(None)
    with torch.inference_mode(), capture(lm, [sae.site]) as cache:
        for lo in range(0, len(dataset), batch_size):
            idx = list(range(lo, min(lo + batch_size, len(dataset))))
            enc = lm.encode([dataset.words[i] for i in idx], max_length=limit)
            lm.model(**enc.model_inputs(lm.device))
            mask = enc.attention_mask.bool()
            example = np.asarray(idx)[:, None].repeat(mask.shape[1], 1)[mask.numpy()]
            word = enc.word_index[mask].numpy()
            x = cache[sae.site][mask.to(lm.device)].float()
            pooled, batch_keys = pool_units(x, example, word, dataset.level, "mean")
            values.append(pooled)
            pooled_codes, _ = pool_units(sae.encode(x.to(sae.W_enc.device)).cpu(), example, word, dataset.level, "mean")
            codes.append(pooled_codes)
            keys.append(batch_keys)
    X, F = np.concatenate(values), np.concatenate(codes)
    key = np.concatenate(keys)
    if dataset.level == "word":
        y = np.asarray([str(dataset.labels[e][w]) for e, w in key])
    else:
        y = np.asarray([str(dataset.labels[e]) for e in key[:, 0]])
    test = np.asarray([dataset.split[e] == "test" for e in key[:, 0]])
    rows = []
    for label in sorted(set(y)):
        target = y == label
        if target[~test].all() or not target[~test].any() or target[test].all() or not target[test].any():
            continue
        gap = np.abs(F[~test][target[~test]].mean(0) - F[~test][~target[~test]].mean(0))
        best = (-1.0, -1)
        for f in np.argsort(-gap)[:candidates]:
            fit = LogisticRegression(class_weight="balanced").fit(F[~test][:, [f]], target[~test])
            score = balanced_accuracy_score(target[~test], fit.predict(F[~test][:, [f]]))
            best = max(best, (score, int(f)))
        feature = best[1]
        one = LogisticRegression(class_weight="balanced").fit(F[~test][:, [feature]], target[~test])
        probe = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)
        probe.fit(X[~test], target[~test])
        rows.append(
            {
                "label": label,
                "feature": feature,
                "feature_accuracy": balanced_accuracy_score(target[test], one.predict(F[test][:, [feature]])),
                "probe_accuracy": balanced_accuracy_score(target[test], probe.predict(X[test])),
                "n_test": int(test.sum()),
                "share": float(target.mean()),
            }
        )
    if not rows:
        raise DictionaryError(f"dataset {dataset.name!r}: no class has examples on both sides of both splits")
    return pd.DataFrame(rows)
