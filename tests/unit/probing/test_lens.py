"""Logit lens and tuned lens against the model's own outputs and hand computation, on the tiny decoders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import DEMO_TEXTS
from scipy.special import log_softmax as np_log_softmax
from scipy.special import rel_entr

from probes import capture
from probes.causal.behaviours import Induction
from probes.causal.evaluator import Evaluator
from probes.core.loading import load
from probes.pipelines.lens import load_lens, save_lens
from probes.probing.lens import (
    LensError,
    LogitLens,
    TunedLens,
    behaviour_by_depth,
    collect,
    depth_sites,
    first_decodable_depth,
    lens_logits,
    lens_scores,
)

DECODERS = ["gpt2", "llama", "gpt_neox"]


@pytest.fixture(params=DECODERS)
def decoder(request, tiny_folders):
    return load(tiny_folders[request.param])


def test_the_last_depth_is_the_models_own_output(decoder):
    lm = decoder
    texts = DEMO_TEXTS[:6]
    batch = lm.encode(texts, max_length=64).model_inputs(lm.device)  # the one tokenisation rule
    with torch.inference_mode(), capture(lm, depth_sites(lm)) as cache:
        out = lm.model(**batch, labels=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100))
        torch.testing.assert_close(lens_logits(lm, cache[depth_sites(lm)[-1]]), out.logits)
    frame = lens_scores(lm, texts, {"logit": LogitLens()}, max_length=64)
    last = frame[frame["depth"] == lm.shape.n_layers].iloc[0]
    assert last["kl"] < 1e-6 and last["top1_agreement"] == 1
    # surprisal of the next token at the last depth is the model's own loss (HF averages over the same tokens)
    assert last["surprisal"] == pytest.approx(float(out.loss), rel=1e-5)
    assert list(frame["depth"]) == list(range(lm.shape.n_layers + 1))


def test_kl_and_agreement_by_hand(tiny_folders):
    """Depth 1 of the tiny Llama, token by token in numpy: scipy's rel_entr over the softmaxes."""
    lm = load(tiny_folders["llama"])
    texts = DEMO_TEXTS[:3]
    data = collect(lm, texts, max_length=32)
    with torch.inference_mode():
        final = lens_logits(lm, data.hidden[-1]).double().numpy()
        depth1 = lens_logits(lm, data.hidden[1]).double().numpy()
    p, q = np.exp(np_log_softmax(final, -1)), np.exp(np_log_softmax(depth1, -1))
    kl = rel_entr(p, q).sum(-1)
    frame = lens_scores(lm, data, {"logit": LogitLens()})
    row = frame[frame["depth"] == 1].iloc[0]
    assert row["kl"] == pytest.approx(kl.mean(), rel=1e-4)
    assert row["top1_agreement"] == pytest.approx((final.argmax(-1) == depth1.argmax(-1)).mean())
    assert row["kl_low"] <= row["kl"] <= row["kl_high"]
    assert row["n_tokens"] == len(kl) == sum(len(lm.token_ids(t)) for t in texts)


def test_tuned_lens_beats_the_logit_lens_and_round_trips(tiny_folders, tmp_path):
    lm = load(tiny_folders["llama"])
    train, test = DEMO_TEXTS[:30], DEMO_TEXTS[30:]
    start = TunedLens(steps=0, init="identity").fit(lm, train)  # identity translators: the logit lens itself
    least_squares = TunedLens(steps=0).fit(lm, train)
    tuned = TunedLens(steps=60, lr=3e-3, seed=0).fit(lm, train)
    on_train = lens_scores(lm, train, {"ls": least_squares, "tuned": tuned}).groupby("lens")["kl"].sum()
    assert on_train["tuned"] < on_train["ls"]  # the KL steps lower what they minimise
    frame = lens_scores(lm, test, {"logit": LogitLens(), "start": start, "tuned": tuned}, max_length=64)
    kl = frame.pivot(index="depth", columns="lens", values="kl")
    np.testing.assert_allclose(kl["start"], kl["logit"], rtol=1e-6, atol=1e-7)
    assert (kl["tuned"] < kl["logit"]).iloc[:-1].all()
    assert kl["tuned"].iloc[-1] == pytest.approx(0, abs=1e-6)  # the last depth has no translator

    save_lens(tuned, tmp_path / "tuned")
    again = load_lens(tmp_path / "tuned", lm)
    torch.testing.assert_close(again.weight_, tuned.weight_)
    pd.testing.assert_frame_equal(
        lens_scores(lm, test, {"tuned": again}, max_length=64), frame[frame.lens == "tuned"].reset_index(drop=True)
    )
    other = load(tiny_folders["gpt2"])
    with pytest.raises(LensError, match=r"trained on .* not on .*train one for this model"):
        load_lens(tmp_path / "tuned", other)


def test_a_behaviour_read_through_the_lens(tiny_folders):
    """At the last depth the lens's reading is the behaviour's own clean score."""
    lm = load(tiny_folders["llama"])
    behaviour = Induction(8, length=6)
    by_depth = behaviour_by_depth(lm, behaviour, LogitLens())
    clean = Evaluator(lm, behaviour).clean
    assert by_depth["score"].iloc[-1] == pytest.approx(float(np.mean(clean)), rel=1e-5)
    assert list(by_depth["depth"]) == list(range(lm.shape.n_layers + 1)) and (by_depth["n"] == 8).all()
    # knowing nothing is the uniform distribution: each repeated token at log-probability -log(vocab)
    vocab = lm.model.get_output_embeddings().out_features
    assert by_depth["baseline"].iloc[0] == pytest.approx(-np.log(vocab), rel=1e-5)


def test_first_decodable_depth():
    frame = pd.DataFrame({"depth": range(6), "score": [-10, -9, -4, -7, -3, -2]})
    assert first_decodable_depth(frame) == 4  # half-way (-6) is reached at depth 2, lost at 3, kept from 4
    assert first_decodable_depth(pd.DataFrame({"depth": range(3), "score": [1.0, 1.0, 1.0]})) is None
    assert first_decodable_depth(pd.DataFrame({"depth": range(4), "score": [0.5, 0.9, 0.6, 1.0]})) == 3
    # from a baseline rather than depth 0: depth 0 far below it does not make depth 1 "decodable"
    lens_like = pd.DataFrame({"depth": range(4), "score": [-100.0, -30.0, -8.0, -6.0], "baseline": -10.8})
    assert first_decodable_depth(lens_like) == 2
    assert first_decodable_depth(lens_like.assign(baseline=-5.0)) is None  # no better than knowing nothing
    loss = pd.DataFrame({"depth": range(3), "score": [9.0, 4.0, 3.0], "baseline": 10.0})
    assert first_decodable_depth(loss, higher_is_better=False) == 1


def test_the_lens_needs_an_lm_head(tiny_folders):
    with pytest.raises(LensError, match="no unembedding"):
        collect(load(tiny_folders["bert"]), DEMO_TEXTS[:2])
