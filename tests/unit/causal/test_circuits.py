"""Edges and circuits against independent computations: the graph against the model's own residual stream on
every decomposing architecture, the full circuit against the model and the empty one against the corrupted run,
edge scores against node attribution (their sum), finite differences and integrated gradients' completeness,
and on the planted zoo the circuit found against the one planted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from architectures import tiny_config
from transformers import AutoModelForCausalLM, AutoTokenizer

from probes.causal.attribution import attribute
from probes.causal.behaviours import EmbeddingCosine, LogitDiff, MinimalPairs
from probes.causal.circuits import (
    CircuitError,
    EdgeEvaluator,
    FaithfulnessCurve,
    Graph,
    faithfulness_curve,
    size_grid,
    verify_edges,
)
from probes.causal.components import Resid
from probes.causal.evaluator import Evaluator
from probes.causal.patching import aligned_pairs, patch_evaluator
from probes.core import loading as models_mod
from probes.probing.datasets import agreement_pairs, agreement_prompts

# decomposing decoders of every layout: sequential and parallel blocks, fused and separate q/k/v, grouped
# queries, q/k norms, write scales, an MLP on flattened tokens, shared norms, experts, partial rotary
EDGE_TYPES = ("llama", "qwen3", "phi3", "granite", "opt", "gpt_neox", "gptj", "phi", "falcon", "cohere", "mixtral")


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_folders):
    root = tmp_path_factory.mktemp("edge-architectures")
    bpe = AutoTokenizer.from_pretrained(tiny_folders["gpt2"])
    made = {"gpt2": tiny_folders["gpt2"], "llama-bpe": tiny_folders["llama"]}
    for model_type in EDGE_TYPES:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(tiny_config(model_type))
        model.save_pretrained(root / model_type)
        bpe.save_pretrained(root / model_type)
        made[model_type] = root / model_type
    return made


FLOAT32_ONLY = ("falcon", "mixtral")  # Falcon's attention and the experts' grouped matmul take no float64


def _double(folder):
    """The model in float64, where it runs in it."""
    lm = models_mod.load(folder)
    if lm.adapter.name not in FLOAT32_ONLY:
        lm.model.double()
    return lm


def _tolerance(lm) -> dict:
    return dict(rtol=1e-6, atol=1e-7) if lm.dtype == torch.float64 else dict(rtol=2e-4, atol=2e-5)


def _pairs_evaluator(lm, n: int = 6, kind: str = "mean", seed: int = 2) -> Evaluator:
    return Evaluator(lm, MinimalPairs(agreement_pairs(n, seed=seed), batch_size=4), kind=kind)


def _patching(lm, n: int = 5):
    """Aligned clean/corrupted prompts (the tiny tokenizer's answers: two one-token words) and the Evaluator
    that patches every writer, with the corrupted run's own per-example scores."""
    prompts = agreement_prompts(40, seed=1)
    clean, corrupt = [p["clean"] for p in prompts], [p["corrupt"] for p in prompts]
    answers = [(" the", " a")] * len(prompts)
    keep = aligned_pairs(lm, clean, corrupt, answers)[:n]
    assert len(keep) >= 3
    pick = lambda xs: [xs[i] for i in keep]
    writers = Graph(lm.shape.n_layers, lm.shape.n_heads, lm.shape.n_kv_heads, lm.adapter.parallel)
    # "noise": the clean prompts run, each removed edge carries the corrupted run's write
    ev, _ = patch_evaluator(
        lm, pick(clean), pick(corrupt), pick(answers), writers.writer_components(), direction="noise"
    )
    corrupted = Evaluator(lm, LogitDiff(pick(corrupt), pick(answers)), kind="zero").clean
    return ev, corrupted


def test_the_graph_counts_its_edges():
    sequential, parallel = Graph(2, 4, 2, parallel=False), Graph(2, 4, 2, parallel=True)
    assert sequential.writers[:3] == ["input", "L0H0", "L0H1"] and sequential.writers[5] == "L0.mlp"
    assert sequential.readers[:5] == ["L0H0.q", "L0H1.q", "L0H2.q", "L0H3.q", "L0H0.k"]
    assert sequential.readers[-1] == "logits" and len(sequential.readers) == 2 * (4 + 2 + 2 + 1) + 1
    # input -> all 19 readers; block 0's 4 heads -> its MLP (sequential only), block 1's 9 readers, logits;
    # block 0's MLP -> block 1 and logits; block 1's heads -> its MLP (sequential) and logits; its MLP -> logits
    assert parallel.n_edges == 19 + 4 * 10 + 10 + 4 * 1 + 1
    assert sequential.n_edges == parallel.n_edges + 4 + 4
    assert sequential.allowed[sequential.reader(0), sequential.writer(0, 3)]
    assert not parallel.allowed[parallel.reader(0), parallel.writer(0, 3)]
    assert not sequential.allowed[sequential.reader(1, "k", 1), sequential.writer(1, 0)]
    assert size_grid(100, points=5) == [1, 3, 10, 32, 100]


@pytest.mark.parametrize("model_type", ["gpt2", *EDGE_TYPES])
def test_full_circuit_is_the_model_and_empty_circuit_the_corrupted_run(folders, model_type):
    lm = _double(folders[model_type])
    ev, corrupted = _patching(lm)
    edges = EdgeEvaluator(ev)  # checks every reader's input is the sum of its writers' writes
    g = edges.graph
    full, empty = edges.circuit_values([g.allowed, np.zeros_like(g.allowed)])
    np.testing.assert_allclose(full, ev.clean, **_tolerance(lm))
    np.testing.assert_allclose(empty, corrupted, **_tolerance(lm))
    assert np.abs(ev.clean - corrupted).max() > 1e-3  # the two runs differ, so the check can fail


def test_a_graph_that_misreads_the_blocks_is_refused(folders):
    from dataclasses import replace

    lm = _double(folders["llama-bpe"])
    lm.adapter = replace(lm.adapter, parallel=True)  # Llama's MLP reads its own attention's output
    with pytest.raises(CircuitError, match=r"L0\.mlp is not the sum of its writers"):
        EdgeEvaluator(_pairs_evaluator(lm))


def test_edges_are_refused_where_writes_do_not_add_up(tiny_folders):
    bert = models_mod.load(tiny_folders["bert"])
    with pytest.raises(CircuitError, match="normalises after each add"):
        EdgeEvaluator(Evaluator(bert, EmbeddingCosine([("the dog runs .", "the dogs run .")]), kind="zero"))


@pytest.mark.parametrize(("arch", "kind"), [("llama-bpe", "mean"), ("gpt2", "zero"), ("gpt_neox", "resample")])
def test_a_writers_edge_scores_sum_to_its_node_attribution(folders, arch, kind):
    lm = _double(folders[arch])
    ev = _pairs_evaluator(lm, kind=kind)
    edges = EdgeEvaluator(ev)
    scores = edges.scores("eap")
    writers = edges.graph.writer_components()
    nodes = attribute(ev, writers).attrs["per_example"]  # (writers, examples)
    # (Llama's and GPT-NeoX's norms and rotary round to float32 inside a float64 model)
    np.testing.assert_allclose(scores.per_example.sum(1).T, nodes, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("arch", ["llama-bpe", "gpt_neox", "falcon"])
def test_eap_equals_finite_differences_of_removing_an_edge(folders, arch):
    lm = _double(folders[arch])
    ev = _pairs_evaluator(lm, n=4)
    edges = EdgeEvaluator(ev)
    g = edges.graph
    scores = edges.scores("eap")
    picked = [
        (g.reader(1, "q", 2), g.writer(0, 1)),
        (g.reader(1, "k", 1), g.writer(0)),
        (g.reader(1, "v", 0), 0),
        (g.reader(1), g.writer(0, 3)),
        (g.logits, g.writer(1)),
        (g.logits, g.writer(0, 2)),
    ]
    # a float64 model still rounds its norms to float32: a step of 1e-2 keeps that noise below the tolerance
    eps, tolerance = (
        (1e-2, dict(rtol=2e-3, atol=2e-4)) if lm.dtype == torch.float64 else (3e-2, dict(rtol=1e-2, atol=1e-3))
    )
    for r, u in picked:
        values = []
        for sign in (1, -1):
            mask = torch.zeros(g.allowed.shape, dtype=torch.float64)
            mask[r, u] = sign * eps
            values.append(
                np.concatenate(
                    [edges.circuit_pass(i, mask).score.detach().double().numpy() for i in range(len(ev.batches))]
                )
            )
        finite = (values[0] - values[1]) / (2 * eps)
        np.testing.assert_allclose(scores.per_example[:, r, u], finite, **tolerance)


def test_eap_ig_on_the_input_edges_adds_up_to_replacing_the_embeddings(folders):
    # integrated gradients along the embeddings' path: the input's edge scores sum to the exact effect of
    # replacing the embeddings by their counterfactual (completeness), to the midpoint rule's error (the path
    # bends: 8 steps miss by up to 0.6 on this model, 96 by 0.003)
    lm = _double(folders["llama-bpe"])
    ev = _pairs_evaluator(lm, kind="mean")
    edges = EdgeEvaluator(ev)
    exact = ev.effects([[Resid(0)]])[0]
    ig = edges.scores("eap-ig", steps=96).per_example[:, :, 0].sum(1)
    eap = edges.scores("eap").per_example[:, :, 0].sum(1)
    np.testing.assert_allclose(ig, exact, rtol=5e-3, atol=5e-3)
    assert np.abs(ig - exact).max() < 0.5 * np.abs(eap - exact).max()  # the path integral beats one gradient


def test_faithfulness_curve_ends_at_one_and_finds_the_smallest_faithful_circuit(folders):
    lm = _double(folders["llama-bpe"])
    ev, _ = _patching(lm)
    edges = EdgeEvaluator(ev)
    scores = edges.scores("eap-ig", steps=3)
    assert edges.graph.n_edges == 82
    curve = faithfulness_curve(edges, scores, sizes=[1, 4, 16, 64, 82], n_random=2, target=0.8)
    faithful = dict(zip(curve.sizes, curve.faithfulness()))
    assert faithful[edges.graph.n_edges] == pytest.approx(1.0, abs=1e-6)
    share, low, high = curve.smallest_share(0.8, n_boot=200)
    k = round(share * edges.graph.n_edges)
    assert faithful[k] >= 0.8 and all(f < 0.8 for s, f in faithful.items() if s < k)  # bisected to one edge
    assert k - 1 in faithful or k == 1
    assert low <= share <= high
    # every attribution run checks itself: single edges removed exactly, beside their estimates
    check = verify_edges(edges, scores.frame(), top=3, sample=5)
    assert list(check.checked["chosen"]) == ["top"] * 3 + ["sample"] * 5
    first = check.checked.iloc[0]
    alone = edges.values([edges.graph.mask([first["component"]])])[0] - ev.clean
    assert first["exact"] == pytest.approx(alone.mean())
    frame = curve.frame()
    assert set(frame["circuit"]) == {"top", "random"}
    assert sorted(set(frame[frame["circuit"] == "random"]["edges"])) == sorted({1, 4, 16, 64, 82, k} - {0})
    assert len(frame[frame["circuit"] == "random"]) == len({1, 4, 16, 64, 82, k}) * 2  # the faithful size's too
    back = FaithfulnessCurve.from_values(curve.values_frame(), curve.n_edges, curve.method)
    pd.testing.assert_frame_equal(back.frame(), frame)
    # each measured top-k circuit is what circuit_values gives for it
    again = edges.circuit_values([scores.circuit(16)])[0].mean()
    assert frame[(frame["circuit"] == "top") & (frame["edges"] == 16)]["value"].item() == pytest.approx(again)


@pytest.mark.parametrize(
    ("case", "planted"),
    [
        ("additive", {"input->L0H0.v", "input->L0H1.v", "L0H0->logits", "L0H1->logits"}),
        ("conjunctive", {"input->L0H0.v", "input->L0H1.v", "L0H0->L0.mlp", "L0H1->L0.mlp", "L0.mlp->logits"}),
    ],
)
def test_on_the_planted_zoo_the_circuit_found_is_the_planted_one(tmp_path, case, planted):
    from probes.validation import zoo

    zoo.save(case, tmp_path)
    lm = _double(tmp_path)
    # every prompt against the lowest levels: each planted write moves the same way in every example (a mean
    # ablation's effects would average to zero over examples in a mechanism this linear)
    clean = [p.text for p in zoo.prompts(case)]
    corrupt = [zoo.prompts(case)[0].text] * len(clean)
    graph = Graph(1, zoo.N_HEADS, zoo.N_HEADS, parallel=False)
    ev, _ = patch_evaluator(
        lm, clean, corrupt, [("yes", "no")] * len(clean), graph.writer_components(), direction="noise"
    )
    edges = EdgeEvaluator(ev)
    scores = edges.scores("eap-ig", steps=8)
    frame = scores.frame()
    assert set(frame["edge"][: len(planted)]) == planted
    rest = frame["score"][len(planted) :].abs()
    assert rest.max() < 1e-3 * frame["score"].abs().max()
    circuit = scores.circuit(len(planted))
    full, empty, kept = edges.circuit_values([edges.graph.allowed, np.zeros_like(circuit), circuit]).mean(1)
    assert (kept - empty) / (full - empty) == pytest.approx(1.0, abs=1e-3)
