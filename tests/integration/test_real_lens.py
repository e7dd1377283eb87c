"""The tuned lens on smollm2-135m: below the logit lens in KL at every depth but the last (Belrose et al.
2023's pattern), trained here on a short budget (the README's figures come from ``probes lens``'s defaults)."""

from __future__ import annotations

from probes.core.data import builtin_texts
from probes.probing.lens import LogitLens, TunedLens, collect, lens_scores


def test_tuned_lens_beats_the_logit_lens_on_smollm(smollm):
    texts = builtin_texts("python-docs")
    cut = len(texts) * 4 // 5
    tuned = TunedLens(steps=8, max_tokens=4096, seed=0).fit(smollm, texts[:cut])
    held_out = collect(smollm, texts[cut:], max_tokens=1024)
    frame = lens_scores(smollm, held_out, {"logit": LogitLens(), "tuned": tuned})
    kl = frame.pivot(index="depth", columns="lens", values="kl")
    top1 = frame.pivot(index="depth", columns="lens", values="top1_agreement")
    assert len(kl) == 31 and kl.iloc[-1].abs().max() < 1e-4  # depth 30: the model's own output for both
    assert (kl["tuned"] < kl["logit"]).iloc[:-1].all(), kl
    assert (top1["tuned"] >= top1["logit"]).iloc[:-1].mean() > 0.9
