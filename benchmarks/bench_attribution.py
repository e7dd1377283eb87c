"""Attribution patching against exact ablation on smollm2-135m, side by side in one run; then edge attribution
and circuits over every edge.

    python benchmarks/bench_attribution.py [--behaviour agreement] [--pairs 64] [--plain-layers 0,6,12,18,24 | all]
                                           [--no-edges] [--steps 5] [--random 3]

Behaviour: 64 generated subject-verb agreement pairs (``--behaviour agreement``, the issue's; smollm2-135m is
near chance on them, so most components' exact effects are noise) or copula agreement pairs (``agreement-copula``:
it gets 99% right), logit difference log p(good) - log p(bad). Components: all 270 heads and 30 MLPs, each
mean-ablated alone (the per-position mean over the pairs' sentences).

  exact     the toolkit's sweep: ``Evaluator`` + ``single_effects`` (prefix reuse, batched conditions)
  plain     one full forward per component with a plain hook (``bench_ablation.naive_sweep``); timed on
            the heads of ``--plain-layers`` and scaled to all 300 conditions (every condition is one
            forward of the same inputs), unless ``--plain-layers all``
  atp       ``attribute``: one forward and one backward pass per batch (its own Evaluator's clean run and
            reference statistics included in its time)
  atp*      ``attribute(method="atp*")``: and GradDrop (a backward pass from each block's input down)
  verify    the check every attribution run makes: top 10 and 20 sampled components re-measured exactly

Goals (issue 15): AtP* at least 50x faster than the plain loop; Spearman at least 0.9 with the exact
effects over the components whose exact effect is above its noise (|effect| > 2 standard errors); at
least 8 of the exact top 10 in AtP*'s top 10 (also shown: the top 10 among the components above noise).

Edges (unless ``--no-edges``): EAP-IG over every edge of the model (``steps`` points), timed; its verification
(top 10 and 20 sampled edges removed one at a time, exactly); the faithfulness curve of its top-k circuits
beside ``--random`` random circuits per size, with the smallest share of edges that keeps 80%.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from bench_ablation import naive_sweep

from probes import load
from probes.causal.attribution import attribute
from probes.causal.behaviours import MinimalPairs
from probes.causal.circuits import EdgeEvaluator, Graph, faithfulness_curve, verify_edges
from probes.causal.components import all_heads, all_mlps
from probes.causal.evaluator import Evaluator, single_effects
from probes.causal.verification import verify
from probes.probing.datasets.grammar import agreement_pairs, copula_agreement_pairs


def agreement(frame, exact, stderr, k: int = 10) -> tuple[float, int, int, int]:
    """Spearman over components above noise, their count, the exact top k found in the estimate's top k, and the
    same among the components above noise only."""
    above = np.abs(exact) > 2 * stderr
    rho = float(stats.spearmanr(frame["estimate"][above], exact[above]).statistic)
    score = frame["score"].to_numpy()
    top_exact = set(np.argsort(-np.abs(exact))[:k])
    top_est = set(np.argsort(-score)[:k])
    kept = np.flatnonzero(above)
    k_above = min(k, len(kept))
    top_exact_above = set(kept[np.argsort(-np.abs(exact[kept]))[:k_above]])
    top_est_above = set(kept[np.argsort(-score[kept])[:k_above]])
    return rho, int(above.sum()), len(top_exact & top_est), len(top_exact_above & top_est_above)


def nodes(lm, pairs, plain_layers: list[int]) -> None:
    components = all_heads(lm.shape) + all_mlps(lm.shape)
    n = len(components)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    ev = Evaluator(lm, MinimalPairs(pairs), kind="mean", components=components)
    single = single_effects(ev, components)
    timings["exact"] = time.perf_counter() - start
    exact, stderr = single["effect"].to_numpy(), single["stderr"].to_numpy()

    start = time.perf_counter()
    plain = naive_sweep(lm, pairs, plain_layers)
    per_condition = (time.perf_counter() - start) / len(plain)
    timings["plain"] = per_condition * n
    heads_index = [i for i, c in enumerate(components) if c.kind == "head" and c.layer in plain_layers]
    plain_gap = float(np.abs(plain - exact[heads_index]).max())

    frames = {}
    for method in ("atp", "atp*"):
        # a fresh evaluator with the same reference, so the clean run is not counted twice
        start = time.perf_counter()
        fresh = Evaluator(lm, MinimalPairs(pairs), kind="mean", components=components)
        frames[method] = attribute(fresh, components, method=method)
        timings[method] = time.perf_counter() - start

    start = time.perf_counter()
    fresh = Evaluator(lm, MinimalPairs(pairs), kind="mean", components=components)
    check = verify(fresh, frames["atp*"], components, top=10, sample=20)
    timings["verify"] = time.perf_counter() - start

    print(f"\nclean logit difference {ev.clean.mean():.4f}; plain loop agrees with the exact sweep to {plain_gap:.1e}")
    print(f"plain loop timed on {len(plain)} heads ({per_condition:.2f} s per condition), scaled to {n}")
    header = ["method", "seconds", "plain / this", "spearman", "n above noise", "top-10", "top-10 above noise"]
    print("\n" + "  ".join(f"{h:>13s}" for h in header))
    for name in ("plain", "exact", "atp", "atp*"):
        line = f"{name:>13s}  {timings[name]:13.1f}  {timings['plain'] / timings[name]:13.1f}"
        if name in frames:
            rho, n_above, overlap, overlap_above = agreement(frames[name], exact, stderr)
            line += f"  {rho:13.3f}  {n_above:13d}  {overlap:10d}/10  {overlap_above:15d}/{min(10, n_above)}"
        print(line)
    print(f"{'verify':>13s}  {timings['verify']:13.1f}  ({check.summary()})")
    for name, frame in frames.items():
        worst = int(np.argmax(np.abs(frame["estimate"].to_numpy() - exact)))
        print(
            f"{name}: largest miss {components[worst].name}: estimate {frame['estimate'][worst]:+.3f}, "
            f"exact {exact[worst]:+.3f} (stderr {stderr[worst]:.3f})"
        )
    order = np.argsort(-np.abs(exact))[:10]
    print("exact top 10: " + ", ".join(f"{components[i].name} {exact[i]:+.3f}±{2 * stderr[i]:.3f}" for i in order))


def edges(lm, pairs, steps: int, n_random: int) -> None:
    graph = Graph(lm.shape.n_layers, lm.shape.n_heads, lm.shape.n_kv_heads, lm.adapter.parallel)
    start = time.perf_counter()
    ev = Evaluator(lm, MinimalPairs(pairs), kind="mean", components=graph.writer_components())
    evaluator = EdgeEvaluator(ev)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    scores = evaluator.scores("eap-ig", steps=steps, progress=True)
    scored = time.perf_counter() - start
    frame = scores.frame()
    start = time.perf_counter()
    check = verify_edges(evaluator, frame, top=10, sample=20)
    checked = time.perf_counter() - start
    start = time.perf_counter()
    curve = faithfulness_curve(evaluator, scores, n_random=n_random, progress=True)
    traced = time.perf_counter() - start
    share, low, high = curve.smallest_share(0.8)
    print(
        f"\nedges: {graph.n_edges} ({len(graph.writers)} writers x {len(graph.readers)} readers); set-up and graph "
        f"check {setup:.1f} s; EAP-IG ({steps} steps) {scored:.1f} s; verification {checked:.1f} s; "
        f"{len(curve.sizes) + 2 + len(curve.random_sizes) * n_random} circuits measured in {traced:.1f} s"
    )
    print("verification: " + check.summary())
    print("strongest edges: " + ", ".join(f"{r.edge} {r.estimate:+.3f}" for r in frame.head(8).itertuples()))
    table = curve.frame()
    top = table[table["circuit"] == "top"][["edges", "share", "faithfulness"]]
    random = table[table["circuit"] == "random"].groupby("edges")["faithfulness"].agg(["mean", "min", "max"])
    print("\nfaithfulness of the top-k circuit (and of random circuits of the same size: mean [min, max])")
    for r in top.itertuples():
        line = f"{r.edges:8d} edges  {r.share:8.3%}  {r.faithfulness:7.3f}"
        if r.edges in random.index:
            m = random.loc[r.edges]
            line += f"   random {m['mean']:+.3f} [{m['min']:+.3f}, {m['max']:+.3f}]"
        print(line)
    print(
        f"\nsmallest share of edges keeping 80%: {share:.2%} [{low:.2%}, {high:.2%}] "
        f"({round(share * graph.n_edges)} edges)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--behaviour", default="agreement", choices=["agreement", "agreement-copula"])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--plain-layers", default="0,6,12,18,24")
    parser.add_argument("--no-edges", action="store_true")
    parser.add_argument("--no-nodes", action="store_true")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--random", type=int, default=3)
    args = parser.parse_args()
    lm = load(args.model)
    make = {"agreement": agreement_pairs, "agreement-copula": copula_agreement_pairs}[args.behaviour]
    pairs = make(args.pairs, seed=0)
    print(f"{args.model}: {args.behaviour}, {len(pairs)} pairs, mean ablation, torch {torch.get_num_threads()} threads")
    layers = (
        list(range(lm.shape.n_layers)) if args.plain_layers == "all" else [int(x) for x in args.plain_layers.split(",")]
    )
    if not args.no_nodes:
        nodes(lm, pairs, layers)
    if not args.no_edges:
        edges(lm, pairs, args.steps, args.random)


if __name__ == "__main__":
    main()
