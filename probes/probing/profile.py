"""A probe's accuracy at every layer, with the controls that make it evidence: tidy rows.

    feats = extract_features(lm, dataset)
    rows, correct = task_rows(feats, "logistic", Cs=[0.01, 0.1, 1.0], cv=3, seed=0, n_boot=1000)
    rows += control_task_rows(feats, "logistic", correct, Cs=..., cv=3, seed=0, n_boot=1000)
    rows += mdl_rows(feats, C=0.1, seed=0)

``bootstrap_ci`` gives percentile intervals resampling whole sentences (tokens of one sentence are not
independent); ``layer_profile`` the best and the expected layer (Tenney et al. 2019). Each row function
returns rows of the tidy results table (``analysis.results``) without model, task
and probe columns, which the caller fills in. ``probes.pipelines.suite`` runs them as units;
``probes.probing.study.probe_layers`` runs them in memory for a notebook.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from probes.probing.controls import control_labels, online_codelength
from probes.probing.features import Features
from probes.probing.linear import RidgeProbe, fit_layers

PROBE_KINDS = ("logistic", "ridge")


def bootstrap_ci(
    correct: np.ndarray, groups: np.ndarray | None = None, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile CI of a mean (an accuracy: ``correct`` 0/1; or any per-item values), (m,) or (L, m),
    resampled by ``groups`` (each draw's mean weighted by the items its groups hold).

    Returns (low, high), each of shape (L,) when ``correct`` is 2-D.
    """
    correct = np.atleast_2d(np.asarray(correct, dtype=np.float64))
    groups = np.arange(correct.shape[1]) if groups is None else np.asarray(groups)
    ids, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((correct.shape[0], len(ids)))
    np.add.at(sums.T, inverse, correct.T)
    sizes = np.bincount(inverse).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ids), size=(n_boot, len(ids)))
    counts = np.zeros((n_boot, len(ids)))
    np.add.at(counts, (np.repeat(np.arange(n_boot), len(ids)), draws.ravel()), 1)  # multiplicity of each group per draw
    acc = (counts @ sums.T) / (counts @ sizes)[:, None]  # (n_boot, L)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(acc, [tail, 100 - tail], axis=0)
    return (low, high) if correct.shape[0] > 1 else (float(low[0]), float(high[0]))


def layer_profile(scores: Sequence[float]) -> dict[str, float]:
    """Best layer and expected layer from per-layer scores (layer 0 = embeddings).

    Expected layer (Tenney et al. 2019, differential scores): sum_l l * d_l / sum_l d_l with
    d_l = score_l - score_{l-1}; only improvements count here (d_l clipped at 0), so a
    profile that rises then decays is not pulled below its rise.
    """
    s = np.asarray(scores, dtype=np.float64)
    delta = np.clip(np.diff(s), 0, None)
    layers = np.arange(1, len(s))
    expected = float((layers * delta).sum() / delta.sum()) if delta.sum() > 0 else 0.0
    return {"best_layer": int(np.argmax(s)), "best_score": float(s.max()), "expected_layer": expected}


def probe_correct(kind: str, feats: Features, y: np.ndarray, *, Cs: Sequence[float], cv: int, seed: int) -> np.ndarray:
    """0/1 correctness (layers, test rows) of a probe fitted per layer on the train rows."""
    tr, te = ~feats.test, feats.test
    if kind == "logistic":
        fitted = fit_layers(feats.X[:, tr], y[tr], Cs=Cs, cv=cv, seed=seed)
        return fitted.predict(feats.X[:, te]) == y[te][None]
    if kind != "ridge":
        raise ValueError(f"unknown probe {kind!r}: choose from {', '.join(PROBE_KINDS)}")
    out = []
    for layer in range(feats.X.shape[0]):
        probe = RidgeProbe(cv=cv, random_state=seed).fit(feats.X[layer, tr].numpy(), y[tr])
        out.append(probe.predict(feats.X[layer, te].numpy()) == y[te])
    return np.stack(out)


def accuracy_rows(
    correct: np.ndarray, feats: Features, *, n_boot: int, seed: int, metric: str = "accuracy"
) -> list[dict]:
    """Per layer: the mean of ``correct`` with a 95% bootstrap CI over test sentences."""
    lows, highs = bootstrap_ci(correct, feats.groups[feats.test], n_boot=n_boot, seed=seed)
    low, high = np.atleast_1d(lows), np.atleast_1d(highs)
    return [
        {
            "site": s,
            "layer": l,
            "metric": metric,
            "value": float(c.mean()),
            "ci_low": float(lo),
            "ci_high": float(hi),
            "n": int(c.size),
        }
        for s, l, c, lo, hi in zip(feats.sites, feats.layers, correct, low, high)
    ]


def task_rows(
    feats: Features, probe: str, *, Cs: Sequence[float], cv: int, seed: int, n_boot: int
) -> tuple[list[dict], np.ndarray]:
    """The probe on the task's labels: accuracy by layer, best and expected layer, the majority baseline;
    and the correctness array the control task compares with."""
    correct = probe_correct(probe, feats, feats.y, Cs=Cs, cv=cv, seed=seed)
    rows = accuracy_rows(correct, feats, n_boot=n_boot, seed=seed)
    profile = layer_profile(correct.mean(1))
    majority = pd.Series(feats.y[~feats.test]).mode()[0]
    rows += [
        {"metric": "best_layer", "value": feats.layers[int(profile["best_layer"])]},
        {"metric": "expected_layer", "value": profile["expected_layer"]},
        {
            "metric": "majority_baseline",
            "value": float((feats.y[feats.test] == majority).mean()),
            "n": int(feats.test.sum()),
        },
    ]
    return rows, correct


def control_task_rows(
    feats: Features, probe: str, task_correct: np.ndarray, *, Cs: Sequence[float], cv: int, seed: int, n_boot: int
) -> list[dict]:
    """Hewitt & Liang's control task (random labels per word type) and selectivity (task - control accuracy)."""
    if feats.types is None:  # the control is defined by word type: sentence tasks have none
        return [{"metric": "control_task_skipped", "value": 1.0}]
    y_control = control_labels(feats.types, feats.y, seed=seed)
    control_correct = probe_correct(probe, feats, y_control, Cs=Cs, cv=cv, seed=seed)
    return accuracy_rows(control_correct, feats, n_boot=n_boot, seed=seed) + accuracy_rows(
        task_correct.astype(float) - control_correct, feats, n_boot=n_boot, seed=seed, metric="selectivity"
    )


def mdl_rows(feats: Features, *, C: float, seed: int) -> list[dict]:
    """MDL probing (Voita & Titov): the online codelength of the labels and its compression, per layer."""
    train = np.flatnonzero(~feats.test)
    order = np.random.default_rng(seed).permutation(train)
    classes, y = np.unique(feats.y[order], return_inverse=True)
    K = len(classes)

    def fit_predict_proba(prefix: np.ndarray, block: np.ndarray) -> np.ndarray:
        fitted = fit_layers(feats.X[:, order[prefix]], classes[y[prefix]], Cs=[C], cv=0, seed=seed)
        proba = fitted.predict_proba(feats.X[:, order[block]]).numpy()
        full = np.zeros(proba.shape[:-1] + (K,))
        full[..., np.searchsorted(classes, fitted.classes)] = proba
        return full * (1 - 1e-4) + 1e-4 / K  # classes unseen so far keep a little mass

    code = online_codelength(K, y, fit_predict_proba)
    bits, compression = np.atleast_1d(code["codelength_bits"]), np.atleast_1d(code["compression"])
    rows = []
    for i, (site, layer) in enumerate(zip(feats.sites, feats.layers)):
        rows.append(
            {
                "site": site,
                "layer": layer,
                "metric": "codelength_bits",
                "value": float(bits[i]),
                "n": len(y),
            }
        )
        rows.append(
            {"site": site, "layer": layer, "metric": "compression", "value": float(compression[i]), "n": len(y)}
        )
    rows.append({"metric": "uniform_codelength_bits", "value": code["uniform_bits"], "n": len(y)})
    return rows
