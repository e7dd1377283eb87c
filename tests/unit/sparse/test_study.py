"""The feature-count curve, the error term's share and their reading, on planted dictionaries whose answer is known:
one where two features carry the whole behaviour, one where the error term carries it; and the concept measure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import LinearReadout

from analysis.readings import feature_reading
from probes.causal.evaluator import Evaluator
from probes.core import loading as models_mod
from probes.probing.datasets import generate
from probes.sparse.dictionary import SparseDictionary
from probes.sparse.study import concept_features, error_share, feature_curve, feature_scores

TEXTS = ["the dog near the cars sleeps .", "some teachers that the cat likes run quickly .", "a tall dog sees it ."]


def _planted(lm, weight: torch.Tensor, *, readout_in_features: bool) -> SparseDictionary:
    """A ReLU dictionary of +-basis vectors of an orthonormal basis whose first vector is the readout's direction:
    with that direction among the features, it reconstructs exactly and features 0 and d carry the metric; without
    it (its two features zeroed), the error term is exactly the component the metric reads."""
    d = lm.shape.d_model
    basis = torch.linalg.qr(torch.cat([weight[:, None], torch.randn(d, d - 1, dtype=weight.dtype)], 1))[0]
    site = f"blocks.{lm.shape.n_layers - 1}.hook_resid_post"
    sae = SparseDictionary(d, 2 * d, site=site, activation="relu", apply_b_dec_to_input=False, dtype=weight.dtype)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([basis, -basis], 1))
        sae.W_dec.copy_(torch.cat([basis.T, -basis.T], 0))
        if not readout_in_features:
            sae.W_enc[:, [0, d]] = 0
            sae.W_dec[[0, d]] = 0
    return sae


@pytest.fixture
def setting(tiny_folders):
    torch.manual_seed(0)
    lm = models_mod.load(tiny_folders["llama"])
    lm.model.double()
    weight = torch.randn(lm.shape.d_model, dtype=torch.float64)
    # zero ablation: a per-position mean over these same texts would leave a sum over tokens unchanged on average
    ev = Evaluator(lm, LinearReadout(TEXTS, weight), kind="zero")
    return lm, weight, ev


def test_two_planted_features_carry_the_behaviour_and_read_as_reducing(setting):
    lm, weight, ev = setting
    sae = _planted(lm, weight, readout_in_features=True)
    scores = feature_scores(ev, sae)
    d = lm.shape.d_model
    assert set(scores["feature"].head(2)) == {0, d}  # attribution finds the two planted features
    curve = feature_curve(ev, sae, scores["feature"].tolist(), n_random=3, seed=1)
    faithful = dict(zip(curve.sizes, curve.faithfulness()))
    assert faithful[2] == pytest.approx(1.0, abs=1e-9) and faithful[2 * d] == pytest.approx(1.0)
    share, low, high = curve.smallest_share(0.8, n_boot=200)
    assert share * curve.n_edges <= 2 and high * curve.n_edges <= 2
    random = curve.random_faithfulness()[list(curve.random_sizes).index(2)].mean()
    assert abs(random) < 0.5  # random pairs of features mostly miss the direction
    errors = error_share(ev, sae, n_boot=200)
    assert errors["error_share"] == pytest.approx(0.0, abs=1e-9)
    text, lean = feature_reading(
        share * curve.n_edges,
        low * curve.n_edges,
        high * curve.n_edges,
        errors["error_share"],
        errors["error_share_low"],
        random,
        0.8,
    )
    assert lean == "reducible", text


def test_a_planted_error_term_carries_the_behaviour_and_reads_as_not_reducing(setting):
    lm, weight, ev = setting
    sae = _planted(lm, weight, readout_in_features=False)
    errors = error_share(ev, sae, n_boot=200)
    assert errors["error_share"] == pytest.approx(1.0, abs=1e-9) and errors["error_share_low"] > 0.99
    assert errors["features_share"] == pytest.approx(0.0, abs=1e-9)
    text, lean = feature_reading(np.nan, np.nan, np.nan, errors["error_share"], errors["error_share_low"], np.nan, 0.8)
    assert lean == "emergent" and "error term" in text


def test_a_planted_concept_feature_is_found_and_matches_the_probe(tiny_folders):
    # the dictionary's feature 0 is a one-vs-rest probe for the commonest part of speech, read at the same site; the
    # other features are random: the best single feature for that class is feature 0, about as accurate as the probe
    from sklearn.linear_model import LogisticRegression

    from probes.probing.features import extract_features

    lm = models_mod.load(tiny_folders["llama"])
    d = lm.shape.d_model
    dataset = generate("pos", 150, seed=0)
    feats = extract_features(lm, dataset, layers=[1])
    X, y, train = feats.X[0].numpy(), feats.y, ~feats.test
    label = max(set(y), key=list(y).count)
    probe = LogisticRegression(class_weight="balanced", max_iter=2000).fit(X[train], y[train] == label)
    sae = SparseDictionary(d, 4 * d, site="blocks.1.hook_resid_pre", activation="relu", apply_b_dec_to_input=False)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d, 4 * d, generator=torch.Generator().manual_seed(3)) * 0.01)
        sae.W_enc[:, 0] = torch.from_numpy(probe.coef_[0]).float()
        sae.b_enc[0] = float(probe.intercept_[0])
    frame = concept_features(lm, dataset, sae).set_index("label")
    row = frame.loc[label]
    assert row["feature"] == 0
    assert row["feature_accuracy"] == pytest.approx(row["probe_accuracy"], abs=0.05)
    assert set(frame.index) <= set(y) and frame["feature"].between(0, 4 * d - 1).all()
