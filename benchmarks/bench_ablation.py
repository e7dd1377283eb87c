"""All-heads single-ablation sweep on smollm2-135m: this toolkit against the plain loop, side by side in one run.

    python benchmarks/bench_ablation.py [--pairs 64] [--kind mean] [--layers all | 0,10,20,29]

Behaviour: 64 generated subject-verb agreement pairs (``agreement_pairs``), logit
difference log p(good) - log p(bad). Each head of each chosen layer is ablated on
its own (mean ablation: the head's per-position mean over the pairs' sentences).

  toolkit   ``Evaluator`` + ``single_effects``: prefix reuse, conditions batched, pairs
            packed, only the needed positions unembedded
  naive     one full forward per head over all 128 sentences, a plain forward pre-hook on
            the attention output projection, log-probabilities from the full logits
  tlens     TransformerLens (bench extra) ``run_with_hooks`` on ``blocks.{l}.attn.hook_z``,
            same loop as naive

Goal: the toolkit at least 3x faster than the naive loop, same effects (the
largest difference is printed). ``--layers`` takes a subset for a quicker reading;
the ratio then covers those layers only.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from probes import load
from probes.causal.behaviours import MinimalPairs
from probes.causal.components import all_heads
from probes.causal.evaluator import Evaluator, single_effects
from probes.core.align import start_token
from probes.probing.datasets.grammar import agreement_pairs


def naive_inputs(lm, pairs):
    tok = lm.tokenizer
    start = start_token(tok)
    seqs = [
        start + tok(p[k], add_special_tokens=False)["input_ids"]
        for p in pairs
        for k in ("sentence_good", "sentence_bad")
    ]
    T = max(map(len, seqs))
    ids = torch.full((len(seqs), T), tok.pad_token_id or 0)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)], mask[r, : len(s)] = torch.tensor(s), 1
    return ids, mask


def sentence_logprobs(logits, ids, mask):
    lp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (lp * mask[:, 1:]).sum(1)


def naive_sweep(lm, pairs, layers):
    """The loop a user writes first: a plain hook per head, full forwards, full logits."""
    ids, mask = naive_inputs(lm, pairs)
    n_heads, d_head = lm.shape.n_heads, lm.shape.d_head
    base = lm.model.base_model
    projs = [base.get_submodule(lm.adapter.path("attn_out_proj", l)) for l in range(lm.shape.n_layers)]
    # per-position mean of every head's output over the same sentences (the reference)
    means = {}
    handles = [
        p.register_forward_pre_hook(lambda m, a, l=l: means.__setitem__(l, a[0].detach())) for l, p in enumerate(projs)
    ]
    with torch.inference_mode():
        clean = sentence_logprobs(lm.model(input_ids=ids, attention_mask=mask).logits, ids, mask)
    for h in handles:
        h.remove()
    w = mask[..., None].float()
    means = {l: (v * w).sum(0) / w.sum(0).clamp(min=1) for l, v in means.items()}  # (T, heads * d_head)
    clean_diff = clean[0::2] - clean[1::2]
    effects = []
    for l in layers:
        for h in range(n_heads):
            cols = slice(h * d_head, (h + 1) * d_head)

            def hook(_m, args, cols=cols, l=l):
                z = args[0].clone()
                z[..., cols] = means[l][None, : z.shape[1], cols]
                return (z,)

            handle = projs[l].register_forward_pre_hook(hook)
            try:
                with torch.inference_mode():
                    lp = sentence_logprobs(lm.model(input_ids=ids, attention_mask=mask).logits, ids, mask)
            finally:
                handle.remove()
            effects.append(float(((lp[0::2] - lp[1::2]) - clean_diff).mean()))
    return np.array(effects)


def tlens_sweep(lm, pairs, layers):
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except Exception as err:
        print(f"tlens: skipped ({type(err).__name__}); `make bench-deps` installs TransformerLens")
        return None
    bridge = TransformerBridge.boot_transformers(lm.source, device=str(lm.device))
    ids, mask = naive_inputs(lm, pairs)
    n_heads = lm.shape.n_heads
    means = {}
    names = [f"blocks.{l}.attn.hook_z" for l in range(lm.shape.n_layers)]
    with torch.inference_mode():
        logits, cache = bridge.run_with_cache(ids, attention_mask=mask, names_filter=lambda n: n in names)
    clean = sentence_logprobs(logits, ids, mask)
    w = mask[:, :, None, None].float()
    for l in range(lm.shape.n_layers):
        means[l] = (cache[names[l]] * w).sum(0) / w.sum(0).clamp(min=1)  # (T, heads, d_head)
    clean_diff = clean[0::2] - clean[1::2]
    effects = []
    for l in layers:
        for h in range(n_heads):

            def hook(z, hook, h=h, l=l):
                z[:, :, h] = means[l][None, : z.shape[1], h]
                return z

            with torch.inference_mode():
                logits = bridge.run_with_hooks(ids, attention_mask=mask, fwd_hooks=[(names[l], hook)])
            lp = sentence_logprobs(logits, ids, mask)
            effects.append(float(((lp[0::2] - lp[1::2]) - clean_diff).mean()))
    return np.array(effects)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--layers", default="all")
    parser.add_argument("--skip-tlens", action="store_true")
    args = parser.parse_args()
    lm = load(args.model)
    pairs = agreement_pairs(args.pairs, seed=0)
    layers = list(range(lm.shape.n_layers)) if args.layers == "all" else [int(x) for x in args.layers.split(",")]
    heads = all_heads(lm.shape, layers)
    print(
        f"{args.model}: {len(heads)} heads ({len(layers)} layers x {lm.shape.n_heads}), {len(pairs)} pairs, "
        f"mean ablation, torch {torch.get_num_threads()} threads"
    )

    start = time.perf_counter()
    ev = Evaluator(lm, MinimalPairs(pairs), kind="mean", components=heads)
    toolkit = single_effects(ev, heads)["effect"].to_numpy()
    t_toolkit = time.perf_counter() - start

    start = time.perf_counter()
    naive = naive_sweep(lm, pairs, layers)
    t_naive = time.perf_counter() - start

    rows = [("toolkit", t_toolkit, toolkit), ("naive", t_naive, naive)]
    if not args.skip_tlens:
        start = time.perf_counter()
        try:
            tl = tlens_sweep(lm, pairs, layers)
        except Exception as err:
            print(f"tlens: could not run ({type(err).__name__}: {str(err)[:160]})")
            tl = None
        if tl is not None:
            rows.append(("tlens", time.perf_counter() - start, tl))

    print(
        f"\nclean logit difference {ev.clean.mean():.4f}; largest head effect {toolkit[np.abs(toolkit).argmax()]:+.4f}"
    )
    print(f"{'method':10s} {'seconds':>8s} {'naive / this':>13s} {'max |effect - toolkit|':>24s}")
    for name, seconds, effects in rows:
        print(f"{name:10s} {seconds:8.1f} {t_naive / seconds:13.2f} {np.abs(effects - toolkit).max():24.2e}")


if __name__ == "__main__":
    main()
