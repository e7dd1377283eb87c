"""Per-head attention statistics against hand-worked patterns and the model's own attention outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from probes import load
from probes.causal.head_stats import head_map, head_statistics, induction_batch, induction_scores, pattern_statistics


def test_pattern_statistics_by_hand():
    own = torch.eye(3)  # every query on itself
    prev = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0]])  # every query on the token before it (the first on itself)
    half = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [0.5, 0.5, 0]])
    pattern = torch.stack([own, prev, half])[None]  # (1, 3 heads, 3, 3)
    stats = pattern_statistics(pattern, torch.ones(1, 3))
    assert stats["entropy"].tolist() == pytest.approx([0, 0, 2 * math.log(2) / 3])
    assert stats["distance"].tolist() == pytest.approx([0, 2 / 3, (0 + 0.5 + 1.5) / 3])
    assert stats["prev_token"].tolist() == pytest.approx([0, 1, 0.5])
    assert stats["first_token"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    padded = pattern_statistics(pattern, torch.tensor([[1, 1, 0]]))  # the last position is padding
    assert padded["distance"].tolist() == pytest.approx([0, 0.5, 0.25])
    assert padded["prev_token"].tolist() == pytest.approx([0, 1, 0.5])


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
def test_head_statistics_match_the_models_own_attentions(arch, tiny_folders):
    lm = load(tiny_folders[arch], attn_implementation="eager")
    texts = ["the cat sat on the mat", "a dog ran home"]
    frame = head_statistics(lm, texts, batch_size=1, n_induction=3, induction_length=5)
    L, H = lm.shape.n_layers, lm.shape.n_heads
    assert head_map(frame, "entropy").shape == (L, H)
    entropy, prev = np.zeros((L, H)), np.zeros((L, H))
    tokens = 0
    for text in texts:
        enc = lm.tokenizer([text], return_tensors="pt").to(lm.device)
        with torch.no_grad():
            att = [a.cpu() for a in lm.model(**enc, output_attentions=True).attentions]
        T = enc["input_ids"].shape[1]
        for layer in range(L):
            p = att[layer][0].double()  # (heads, q, k)
            entropy[layer] += (-(p * torch.log(p.clamp_min(1e-30))).sum(-1)).sum(-1).numpy()
            prev[layer] += sum(p[:, q, q - 1] for q in range(1, T)).numpy() / (T - 1) * T
        tokens += T
    np.testing.assert_allclose(head_map(frame, "entropy"), entropy / tokens, atol=1e-5)
    np.testing.assert_allclose(head_map(frame, "prev_token"), prev / tokens, atol=1e-5)
    ids = induction_batch(lm, 3, 5, seed=0).to(lm.device)
    with torch.no_grad():
        att = lm.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True).attentions
    offset = ids.shape[1] - 10
    manual = [
        [
            np.mean([att[l][b, h, offset + 5 + i, offset + i + 1].item() for b in range(3) for i in range(5)])
            for h in range(H)
        ]
        for l in range(L)
    ]
    np.testing.assert_allclose(head_map(frame, "induction"), manual, atol=1e-6)


def test_a_perfect_induction_head_scores_one():
    pattern = torch.zeros(1, 1, 9, 9)
    for i in range(5, 9):
        pattern[0, 0, i, i - 4 + 1] = 1.0  # a perfect induction head on [BOS] + 4 tokens + the same 4
    assert induction_scores(pattern, 4, 1).item() == pytest.approx(1.0)


def test_head_maps_figure_is_labelled(tiny_folders):
    from analysis.head_plots import head_maps

    lm = load(tiny_folders["gpt2"], attn_implementation="eager")
    fig = head_maps(head_statistics(lm, ["the cat sat"], n_induction=2, induction_length=4))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["entropy", "distance", "prev token", "first token", "induction"]
    assert all(ax.get_xlabel() == "head" for ax in fig.axes if ax.get_title())


@pytest.mark.integration
def test_smollm_has_induction_heads_and_an_attention_sink(smollm):
    from probes.core.data import builtin_texts

    frame = head_statistics(smollm, builtin_texts("demo")[:32])
    assert (head_map(frame, "induction") > 0.5).sum() >= 2  # e.g. L18H6 near 0.85
    assert (head_map(frame, "first_token") > 0.5).mean() > 0.5  # most heads park on the first token


@pytest.mark.integration
def test_minilm_has_a_previous_token_head(minilm):
    from probes.core.data import builtin_texts

    frame = head_statistics(minilm, builtin_texts("demo")[:32])
    assert head_map(frame, "prev_token").max() > 0.9  # L0H2
    assert head_map(frame, "induction").max() < 0.2  # an encoder trained without next-token prediction
