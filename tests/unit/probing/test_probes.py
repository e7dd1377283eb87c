"""Linear probes and controls against planted features, sklearn and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from probes.probing.controls import control_labels, online_codelength
from probes.probing.linear import LogisticProbe, RidgeProbe, fit_layers
from probes.probing.profile import bootstrap_ci, layer_profile


@parametrize_with_checks([LogisticProbe(), RidgeProbe()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def planted(n=1200, d=40, seed=0, xor=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] > 0) ^ (X[:, 1] > 0) if xor else (X[:, :3] @ np.array([1.0, -2.0, 0.5]) > 0)
    return X, y.astype(int)


@pytest.mark.parametrize("Probe", [LogisticProbe, RidgeProbe])
def test_recovers_a_planted_linear_feature_and_fails_on_xor(Probe):
    X, y = planted()
    # least squares on +-1 targets fits a hard threshold less tightly than logistic loss
    assert Probe().fit(X[:900], y[:900]).score(X[900:], y[900:]) > (0.95 if Probe is LogisticProbe else 0.9)
    X, y = planted(xor=True)
    assert Probe().fit(X[:900], y[:900]).score(X[900:], y[900:]) < 0.62  # chance is 0.5: XOR is not linear


def test_torch_path_matches_sklearn_within_one_point():
    rng = np.random.default_rng(1)
    n, d, K = 3000, 64, 6
    centers = rng.normal(size=(K, d)) * 0.35
    y = rng.integers(0, K, n)
    layers = np.stack([centers[y] * s + rng.normal(size=(n, d)) for s in (0.5, 1.0, 2.0)])  # 3 "layers"
    tr, te = slice(0, 2000), slice(2000, None)
    fitted = fit_layers(torch.tensor(layers[:, tr], dtype=torch.float32), y[tr], Cs=[1.0])
    ours = fitted.accuracy(torch.tensor(layers[:, te], dtype=torch.float32), y[te])
    for l in range(3):
        scaler = StandardScaler().fit(layers[l, tr])
        sk = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(layers[l, tr]), y[tr])
        assert abs(ours[l] - sk.score(scaler.transform(layers[l, te]), y[te])) <= 0.01
    assert ours[0] < ours[1] < ours[2]  # the planted signal grows with the scale


@pytest.mark.parametrize("alpha", [0.1, 10.0, 1000.0])
def test_ridge_probe_equals_sklearn_ridge_classifier(alpha):
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(500, 20)), rng.integers(0, 4, 500)
    X[:, :4] += np.eye(4)[y] * 1.5
    ours = RidgeProbe(alphas=[alpha]).fit(X, y)
    sk = make_pipeline(StandardScaler(), RidgeClassifier(alpha=alpha)).fit(X, y)
    np.testing.assert_allclose(ours.decision_function(X), sk.decision_function(X), rtol=1e-6, atol=1e-8)


def test_estimators_work_inside_sklearn_model_selection():
    X, y = planted(n=400)
    search = GridSearchCV(LogisticProbe(), {"Cs": [[0.01], [1.0]]}, cv=3).fit(X, y)
    assert search.best_score_ > 0.9
    assert cross_val_score(RidgeProbe(), X, y, cv=3).mean() > 0.9


def test_probe_errors_are_clear():
    X, y = planted(n=50)
    with pytest.raises(ValueError, match="at least two classes"):
        LogisticProbe().fit(X, np.zeros(50, dtype=int))
    with pytest.raises(ValueError, match="at least two classes"):
        fit_layers(torch.zeros(1, 5, 3), ["a"] * 5)
    with pytest.raises(ValueError, match="layers, samples, features"):
        fit_layers(torch.zeros(5, 3), [0, 1, 0, 1, 0])


def test_selectivity_is_near_zero_for_a_probe_that_memorises_types():
    """Features are a one-hot of the word type: anything type-level is readable, task or control alike."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(30)]
    type_label = {w: rng.integers(0, 3) for w in vocab}
    words = rng.choice(vocab, size=3000)
    y = np.array([type_label[w] for w in words])
    X = np.eye(len(vocab))[[vocab.index(w) for w in words]] + rng.normal(scale=0.05, size=(3000, len(vocab)))
    y_control = control_labels(words, y, seed=0)
    assert len({(w, c) for w, c in zip(words, y_control)}) == len(vocab)  # one control label per type
    Xt = torch.tensor(X[None], dtype=torch.float32)
    task = fit_layers(Xt[:, :2000], y[:2000], Cs=[1.0]).accuracy(Xt[:, 2000:], y[2000:])[0]
    control = fit_layers(Xt[:, :2000], y_control[:2000], Cs=[1.0]).accuracy(Xt[:, 2000:], y_control[2000:])[0]
    assert task > 0.98 and abs(task - control) < 0.03


def test_control_labels_follow_the_label_distribution():
    rng = np.random.default_rng(0)
    types = [f"w{i}" for i in rng.integers(0, 2000, 20000)]
    labels = rng.choice(["a", "b"], p=[0.8, 0.2], size=20000)
    control = control_labels(types, labels, seed=1)
    assert 0.75 < (control == "a").mean() < 0.85


def test_online_codelength_by_hand():
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 1])
    # blocks for n=10 with fractions (0.1, 0.5, 1.0): [0,1) uniform, [1,5), [5,10)
    p_right = {1: 0.5, 5: 0.8}

    def predictor(train, block):
        p = p_right[len(train)] if len(np.unique(y[train])) > 1 else 0.5
        proba = np.full((len(block), 2), 1 - p)
        proba[np.arange(len(block)), y[block]] = p
        return proba

    code = online_codelength(2, y, predictor, fractions=(0.1, 0.5, 1.0))
    # block 1 (1 label) uniform: 1 bit; block 2: train [0] has one class -> uniform, 4 bits; block 3: 5 * -log2(0.8)
    expected = 1 + 4 + 5 * -np.log2(0.8)
    assert code["codelength_bits"] == pytest.approx(expected)
    assert code["uniform_bits"] == 10 and code["compression"] == pytest.approx(10 / expected)


def test_bootstrap_ci_by_hand_and_grouped():
    assert bootstrap_ci(np.ones(50)) == (1.0, 1.0)
    correct = np.r_[np.ones(60), np.zeros(40)]
    low, high = bootstrap_ci(correct, n_boot=2000)
    assert low < 0.6 < high and high - low == pytest.approx(2 * 1.96 * np.sqrt(0.24 / 100), abs=0.03)
    groups = np.repeat(np.arange(10), 10)  # ten sentences, all-or-nothing: far fewer effective samples
    g_low, g_high = bootstrap_ci(correct, groups, n_boot=2000)
    assert g_high - g_low > 1.8 * (high - low)
    lows, highs = bootstrap_ci(np.stack([correct, 1 - correct]))
    assert lows.shape == (2,) and highs[1] < 0.5 < lows[0] + 0.2


def test_layer_profile_by_hand():
    profile = layer_profile([0.5, 0.6, 0.9, 0.8])
    assert profile["best_layer"] == 2 and profile["best_score"] == 0.9
    assert profile["expected_layer"] == pytest.approx((1 * 0.1 + 2 * 0.3) / 0.4)
