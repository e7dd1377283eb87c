"""Ablations, the sweep evaluator, behaviours and patching, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probes.causal.ablation import ablate
from probes.causal.ablations import AblationError
from probes.causal.behaviours import (
    BehaviourError,
    EmbeddingCosine,
    Induction,
    LogitDiff,
    MinimalPairs,
    NextTokenLoss,
    ProbeAccuracy,
)
from probes.causal.components import (
    MLP,
    Attn,
    ComponentError,
    Direction,
    Edit,
    Head,
    Neurons,
    Resid,
    all_heads,
    all_mlps,
    components_from,
    parse_component,
)
from probes.causal.evaluator import Evaluator, interaction_matrix, single_effects
from probes.causal.patching import patch_effects
from probes.causal.reference import Reference
from probes.core.align import encode
from probes.probing.datasets import agreement_pairs, agreement_prompts, generate

TEXTS = [
    "the dog near the cars sleeps .",
    "some teachers that the cat likes run quickly .",
    "a tall dog sees the book .",
]
CAUSAL = ("gpt2", "llama", "gpt_neox")


def _batch(lm, texts=TEXTS):
    return encode(lm.tokenizer, texts).model_inputs(lm.device)


def _out(lm, batch):
    with torch.inference_mode():
        out = lm.model(**batch)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def _out_with_plain_hook(lm, batch, module, hook, *, pre: bool):
    """The model's output with one plain PyTorch hook: the independent side of the ablation tests."""
    handle = module.register_forward_pre_hook(hook) if pre else module.register_forward_hook(hook)
    try:
        return _out(lm, batch)
    finally:
        handle.remove()


# --- components -------------------------------------------------------------------------------------


def test_component_names_parse_back(tiny):
    for c in [Head(1, 3), Attn(0), MLP(1), Neurons(1, [5, 2]), Resid(1), Head(0, 2).at_position(4)]:
        assert parse_component(c.name, tiny.shape) == c
    assert [c.name for c in components_from("heads+mlps", tiny.shape)][:5] == ["L0H0", "L0H1", "L0H2", "L0H3", "L0.mlp"]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("L9H0", "layers 0..1"),
        ("L0H7", "heads 0..3"),
        ("L0.mlp[999]", "neurons"),
        ("layer3", "cannot read"),
        ("L0.attn[1]", "only MLP neurons"),
    ],
)
def test_bad_component_names_say_what_is_wrong(tiny_folders, text, needle):
    from probes import load

    lm = load(tiny_folders["llama"])
    with pytest.raises(ComponentError, match=needle.replace("[", r"\[")):
        parse_component(text, lm.shape)


# --- ablations against hand-written hooks ------------------------------------------------------------


def test_zero_ablating_a_head_equals_zeroing_its_out_proj_input_by_hand(tiny):
    """The hand version never goes through probes' hooks: a plain pre-hook on the output projection."""
    batch = _batch(tiny)
    layer, head, d_head = 1, 2, tiny.shape.d_head
    proj = tiny.base.get_submodule(tiny.adapter.path("attn_out_proj", layer))

    def by_hand(_m, args):
        z = args[0].clone()
        z[..., head * d_head : (head + 1) * d_head] = 0
        return (z,)

    expected = _out_with_plain_hook(tiny, batch, proj, by_hand, pre=True)
    with ablate(tiny, Head(layer, head)):
        got = _out(tiny, batch)
    assert not torch.allclose(expected, _out(tiny, batch))  # the head matters
    torch.testing.assert_close(got, expected)


def test_zero_ablating_an_mlp_and_neurons_by_hand(tiny):
    batch = _batch(tiny)
    down = tiny.base.get_submodule(tiny.adapter.path("mlp_out_proj", 0))
    neurons = [1, 7, 30]

    def zero_neurons(_m, args):
        x = args[0].clone()
        x[..., neurons] = 0
        return (x,)

    expected_neurons = _out_with_plain_hook(tiny, batch, down, zero_neurons, pre=True)
    expected_mlp = _out_with_plain_hook(tiny, batch, down, lambda _m, _a, out: torch.zeros_like(out), pre=False)
    with ablate(tiny, Neurons(0, neurons)):
        torch.testing.assert_close(_out(tiny, batch), expected_neurons)
    with ablate(tiny, MLP(0)):
        torch.testing.assert_close(_out(tiny, batch), expected_mlp)


def test_direction_ablation_removes_only_that_component(tiny):
    batch = _batch(tiny)
    v = torch.randn(tiny.shape.d_model, generator=torch.Generator().manual_seed(0))
    seen = {}
    block = tiny.base.get_submodule(tiny.adapter.block(1))

    def observe(_m, args, kwargs):
        seen["after"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    with ablate(tiny, Direction(1, v)):  # the residual entering block 1; the observer, registered after the
        handle = block.register_forward_pre_hook(observe, with_kwargs=True)  # ablation, sees its result
        try:
            _out(tiny, batch)
        finally:
            handle.remove()
    unit = (v / v.norm()).to(seen["after"].device)
    assert (seen["after"] @ unit).abs().max() < 1e-4


def test_an_edit_that_projects_out_v_equals_zero_ablating_direction_v(tiny):
    batch = _batch(tiny)
    v = torch.randn(tiny.shape.d_model, generator=torch.Generator().manual_seed(1))
    unit = v / v.norm()
    with ablate(tiny, Direction(1, v)):
        expected = _out(tiny, batch)
    with ablate(tiny, Edit(1, torch.outer(unit, unit), torch.zeros_like(unit))):
        torch.testing.assert_close(_out(tiny, batch), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(expected, _out(tiny, batch), atol=1e-4)


def test_mean_ablation_with_the_mean_of_the_same_single_example_is_a_no_op(tiny):
    batch = _batch(tiny, TEXTS[:1])
    components = all_heads(tiny.shape) + all_mlps(tiny.shape)
    reference = Reference.from_batches(tiny, [batch], components)
    clean = _out(tiny, batch)
    with ablate(tiny, components, kind="mean", reference=reference):
        torch.testing.assert_close(_out(tiny, batch), clean, atol=1e-5, rtol=1e-5)
    other = Reference.from_batches(tiny, [_batch(tiny, TEXTS[1:])], components)
    with ablate(tiny, components, kind="mean", reference=other):
        assert not torch.allclose(_out(tiny, batch), clean, atol=1e-3)


def test_mean_is_per_position_and_resample_draws_real_reference_values(tiny_folders):
    from probes import load

    lm = load(tiny_folders["llama"])
    batch = _batch(lm)
    site = "blocks.0.hook_mlp_out"
    ref = Reference.from_batches(lm, [batch], [site], seed=3)
    from probes.core.hooks import capture

    with torch.inference_mode(), capture(lm, site) as cache:
        lm.model(**batch)
    values, mask = cache[site], batch["attention_mask"].bool()
    # per-position mean by hand, over the texts that reach each position
    p = 2
    torch.testing.assert_close(ref.means[site][p], values[mask[:, p], p].mean(0))
    positions = torch.arange(values.shape[1]).expand(5, -1)
    drawn = ref.resample(site, positions, torch.arange(5))
    again = ref.resample(site, positions, torch.arange(5))
    torch.testing.assert_close(drawn, again)  # stateless: the same example gets the same draw
    for e in range(5):
        for t in range(int(mask.sum(1).min())):
            assert any(torch.equal(drawn[e, t], values[r, t]) for r in range(values.shape[0]))


def test_reference_statistics_do_not_depend_on_the_padding_side(tiny_folders):
    from probes import load

    lm = load(tiny_folders["gpt2"])  # absolute positions: a wrong position id would show
    right = _batch(lm)
    lengths = right["attention_mask"].sum(1)
    T = right["input_ids"].shape[1]
    left = {k: torch.stack([torch.roll(v[r], int(T - lengths[r])) for r in range(len(v))]) for k, v in right.items()}
    positions = (torch.arange(T, device=lengths.device) - (T - lengths)[:, None]).clamp(min=0)
    left["position_ids"] = positions  # what a left-padding user passes so positions start at each text's first token
    site = "blocks.1.hook_mlp_out"
    a = Reference.from_batches(lm, [right], [site])
    b = Reference.from_batches(lm, [left], [site])
    torch.testing.assert_close(a.means[site], b.means[site], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.valid, b.valid)


def test_ablation_kinds_and_references_are_checked(tiny):
    with pytest.raises(AblationError, match="needs a reference"):
        with ablate(tiny, Head(0, 0), kind="mean"):
            pass
    with pytest.raises(AblationError, match="unknown ablation kind"):
        with ablate(tiny, Head(0, 0), kind="noise"):
            pass


def test_hooks_are_gone_after_an_ablation(tiny):
    batch = _batch(tiny)
    clean = _out(tiny, batch)
    with ablate(tiny, [Head(0, 1), MLP(1)]):
        pass
    torch.testing.assert_close(_out(tiny, batch), clean)


# --- behaviours against the model's own outputs ------------------------------------------------------


@pytest.mark.parametrize("arch", CAUSAL)
def test_minimal_pair_score_equals_full_sentence_log_probabilities(tiny):
    pairs = agreement_pairs(10, seed=1)
    hf = []
    for row in pairs:  # independent: the model's own loss over each whole sentence
        sums = []
        for key in ("sentence_good", "sentence_bad"):
            ids = torch.tensor(
                [[tiny.tokenizer.bos_token_id] + tiny.tokenizer(row[key])["input_ids"]], device=tiny.device
            )
            with torch.inference_mode():
                loss = tiny.model(input_ids=ids, labels=ids).loss
            sums.append(-float(loss) * (ids.shape[1] - 1))
        hf.append(sums[0] - sums[1])
    for packed in (True, False):
        ev = Evaluator(tiny, MinimalPairs(pairs, packed=packed, batch_size=4, row_tokens=40))
        np.testing.assert_allclose(ev.clean, hf, atol=2e-4)
    acc = Evaluator(tiny, MinimalPairs(pairs, metric="accuracy"))
    np.testing.assert_array_equal(acc.clean, (np.asarray(hf) > 0).astype(float))


@pytest.mark.parametrize("arch", CAUSAL)
def test_next_token_loss_equals_hf_loss(tiny):
    ev = Evaluator(tiny, NextTokenLoss(TEXTS, batch_size=2))
    for text, got in zip(TEXTS, ev.clean):
        ids = tiny.to_tokens(text)  # the one tokenisation rule: the start token, then the text
        with torch.inference_mode():
            assert got == pytest.approx(float(tiny.model(input_ids=ids, labels=ids).loss), abs=1e-5)


@pytest.mark.parametrize("arch", CAUSAL)
def test_induction_score_equals_the_models_log_probabilities_of_the_repeats(tiny):
    behaviour = Induction(5, length=6, seed=3, batch_size=2)
    ev = Evaluator(tiny, behaviour)
    ids = behaviour.sequences(tiny)
    assert ids.shape == (5, 13) and torch.equal(ids[:, 1:7], ids[:, 7:])
    assert len(set(ids[0, 1:7].tolist())) == 6  # distinct random tokens, no specials
    assert not set(ids[:, 1:].flatten().tolist()) & set(tiny.tokenizer.all_special_ids)
    with torch.inference_mode():
        logp = torch.log_softmax(tiny.model(input_ids=ids.to(tiny.device)).logits.float(), -1)
    for i in range(5):  # r_2 .. r_6 of the second half, each from the position before it
        expected = np.mean([float(logp[i, t - 1, ids[i, t]]) for t in range(8, 13)])
        assert ev.clean[i] == pytest.approx(expected, abs=1e-4)
    assert torch.equal(Induction(5, length=6, seed=3).sequences(tiny), ids)  # the seed fixes the tokens


def test_induction_by_name_takes_its_run_length(tiny_folders):
    from probes import load
    from probes.causal.behaviours import make_behaviour

    lm = load(tiny_folders["llama"])
    assert make_behaviour(lm, "induction:5", n=3).length == 5
    assert make_behaviour(lm, "induction", n=3).length == Induction().length
    for bad in ("induction:2", "induction:x"):
        with pytest.raises(BehaviourError, match="induction:N with N >= 3"):
            make_behaviour(lm, bad)


@pytest.mark.parametrize("arch", CAUSAL)
def test_logit_diff_equals_the_logits(tiny):
    prompts = ["the dog near the cars", "some teachers"]
    answers = [(" sleeps", " the"), (" run", " a")]
    behaviour = LogitDiff(prompts, answers)
    ev = Evaluator(tiny, behaviour)
    ids = behaviour.token_ids(tiny)
    ans = behaviour.answer_ids(tiny)
    for i, seq in enumerate(ids):
        with torch.inference_mode():
            logits = tiny.model(input_ids=torch.tensor([seq], device=tiny.device)).logits[0, -1]
        assert ev.clean[i] == pytest.approx(float(logits[ans[i, 0]] - logits[ans[i, 1]]), abs=1e-4)


def test_embedding_cosine_equals_mean_pooled_hidden_states(tiny_folders):
    from probes import load

    lm = load(tiny_folders["bert"])
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[2], TEXTS[0])]
    ev = Evaluator(lm, EmbeddingCosine(pairs))
    for (a, b), got in zip(pairs, ev.clean):
        embs = []
        for text in (a, b):
            enc = lm.tokenizer(text, return_tensors="pt").to(lm.device)
            with torch.inference_mode():
                embs.append(lm.model(**enc).last_hidden_state[0].mean(0).cpu())
        assert got == pytest.approx(float(torch.cosine_similarity(*embs, dim=0)), abs=1e-5)


def test_behaviour_errors_are_one_line_and_name_the_fix(tiny_folders):
    from probes import load

    bert = load(tiny_folders["bert"])
    with pytest.raises(BehaviourError, match="no language-model head"):
        Evaluator(bert, MinimalPairs(agreement_pairs(4)))
    with pytest.raises(BehaviourError, match="sentence_good"):
        MinimalPairs([{"good": "a"}])
    with pytest.raises(BehaviourError, match="no minimal pairs"):
        MinimalPairs([])
    llama = load(tiny_folders["llama"])
    with pytest.raises(BehaviourError, match="tokenise identically"):
        Evaluator(llama, MinimalPairs([{"sentence_good": "the dog", "sentence_bad": "the dog"}]))
    with pytest.raises(BehaviourError, match="same token"):
        Evaluator(llama, LogitDiff(["the dog"], [(" sleeps", " sleeps")]))


# --- the fast evaluator equals the plain loop ----------------------------------------------------------


SUBSETS = [
    [Head(0, 1)],
    [Head(1, 2)],
    [MLP(0)],
    [Head(0, 1), MLP(1)],
    [Attn(1)],
    [Neurons(0, [1, 5, 9])],
    [Head(1, 0).at_position(3)],
    [Resid(1, at=2)],
    [Head(0, 0), Head(0, 3), Head(1, 1), MLP(0), MLP(1)],
]


@pytest.mark.parametrize("arch", CAUSAL)
@pytest.mark.parametrize("kind", ["zero", "mean", "resample"])
def test_prefix_reuse_batching_and_packing_give_the_plain_loops_numbers(tiny, kind):
    pairs = agreement_pairs(12, seed=0)
    fast = Evaluator(tiny, MinimalPairs(pairs, batch_size=5, row_tokens=48), kind=kind, max_tokens=300)
    slow = Evaluator(
        tiny, MinimalPairs(pairs, batch_size=5, packed=False), kind=kind, reuse_prefix=False, batch_conditions=False
    )
    a, b = fast.values(SUBSETS), slow.values(SUBSETS)
    np.testing.assert_allclose(fast.clean, slow.clean, atol=1e-4)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert np.abs(a - fast.clean).max() > 1e-3  # the ablations do something


@pytest.mark.parametrize("kind", ["zero", "mean", "resample"])
def test_prefix_reuse_gives_the_plain_loops_numbers_on_an_encoder(tiny_folders, kind):
    from probes import load

    lm = load(tiny_folders["bert"])
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[2], TEXTS[0]), (TEXTS[1], TEXTS[2])]
    subsets = [[Head(1, 0)], [MLP(1)], [Head(1, 2), MLP(1)], [Resid(1, at=3)], [Head(0, 1), Attn(1)]]
    fast = Evaluator(lm, EmbeddingCosine(pairs), kind=kind)
    slow = Evaluator(lm, EmbeddingCosine(pairs), kind=kind, reuse_prefix=False, batch_conditions=False)
    np.testing.assert_allclose(fast.values(subsets), slow.values(subsets), atol=1e-5)
    assert np.abs(fast.values(subsets) - fast.clean).max() > 1e-4


@pytest.mark.parametrize("kind", ["mean", "resample"])
def test_a_screen_on_the_first_examples_gives_the_full_evaluators_numbers_there(tiny_folders, kind):
    from probes import load

    lm = load(tiny_folders["llama"])
    behaviour = MinimalPairs(agreement_pairs(12), batch_size=4)
    full = Evaluator(lm, behaviour, kind=kind, components=[Head(0, 1)])
    screen = full.first(5)  # the first two batches: 8 examples
    assert screen.n_examples == 8 and full.first(12) is full
    subsets = [[Head(0, 1)], [MLP(1)], [Head(1, 2), MLP(0)]]  # MLP sites: statistics over all 12 examples
    np.testing.assert_allclose(screen.values(subsets), full.values(subsets)[:, :8], atol=1e-9)
    np.testing.assert_allclose(screen.clean, full.clean[:8])
    with pytest.raises(ValueError, match="at least one example"):
        full.first(0)


def test_the_evaluator_equals_ablate_on_a_plain_forward(tiny_folders):
    """The sweep machinery against the user-facing context manager, on an encoder behaviour."""
    from probes import load

    lm = load(tiny_folders["bert"])
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[2], TEXTS[0]), (TEXTS[1], TEXTS[2])]
    ev = Evaluator(lm, EmbeddingCosine(pairs), kind="zero")
    subset = [Head(0, 2), MLP(1)]
    got = ev.values([subset])[0]
    with ablate(lm, subset):
        by_hand = Evaluator(lm, EmbeddingCosine(pairs)).clean
    np.testing.assert_allclose(got, by_hand, atol=1e-5)


def test_probe_accuracy_behaviour_falls_when_the_read_layer_is_ablated(tiny_folders):
    from probes import load

    lm = load(tiny_folders["bert"])
    ds = generate("pos", 60, seed=0)
    behaviour = ProbeAccuracy(ds, layer=2)
    ev = Evaluator(lm, behaviour, kind="zero")
    assert ev.clean.mean() > 0.5  # word identity alone gives POS away, even in a random model
    assert set(np.unique(ev.clean)) <= {0.0, 1.0}
    # independent: the fitted probe on mean-pooled word features captured with a plain HF forward
    from probes.core.align import pool_words

    test = [i for i, s in enumerate(behaviour.dataset.split) if s == "test"]
    enc = encode(lm.tokenizer, [ds.words[i] for i in test])
    with torch.inference_mode():
        hidden = lm.model(**enc.model_inputs(lm.device), output_hidden_states=True).hidden_states[2].cpu()
    mask = enc.word_index >= 0
    example = torch.arange(len(test))[:, None].expand_as(enc.word_index)[mask].numpy()
    pooled, keys = pool_words(hidden[mask], example, enc.word_index[mask].numpy())
    labels = np.asarray([ds.labels[test[e]][w] for e, w in keys])
    expected = behaviour.probe.predict(torch.from_numpy(pooled)[None])[0] == labels
    np.testing.assert_array_equal(ev.clean, expected.astype(float))
    assert ev.values([[Resid(0)]])[0].mean() < ev.clean.mean()


def test_single_effects_and_interactions_are_differences_of_values(tiny_folders):
    from probes import load

    lm = load(tiny_folders["llama"])
    ev = Evaluator(lm, MinimalPairs(agreement_pairs(8)), kind="zero")
    comps = [Head(0, 1), MLP(0), Head(1, 3)]
    single = single_effects(ev, comps)
    v = ev.values([[], *[[c] for c in comps], [comps[0], comps[2]]]).mean(1)
    np.testing.assert_allclose(single["effect"], v[1:4] - v[0], atol=1e-9)
    matrix = interaction_matrix(ev, comps)
    assert matrix.iloc[0, 2] == pytest.approx((v[4] - v[0]) - (v[1] - v[0]) - (v[3] - v[0]), abs=1e-9)
    np.testing.assert_allclose(np.diag(matrix), single["effect"], atol=1e-9)


def test_interaction_is_zero_for_components_that_act_on_disjoint_examples(tiny_folders):
    """A constructed Llama: MLP neuron 0 fires only on token A, neuron 1 only on token B; attention writes nothing.

    Each example contains one of the two tokens, so each neuron's ablation changes a disjoint set of examples,
    and ablating both is exactly the sum of ablating each.
    """
    from probes import load

    lm = load(tiny_folders["llama"])
    model = lm.model
    tok_a, tok_b = lm.tokenizer(" dog")["input_ids"][0], lm.tokenizer(" cat")["input_ids"][0]
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[:, :2] = 0
        emb[tok_a, 0], emb[tok_b, 1] = 5.0, 5.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            mlp = layer.mlp
            for w in (mlp.gate_proj.weight, mlp.up_proj.weight):
                w[:2] = 0
                w[0, 0], w[1, 1] = 3.0, 3.0
                w[2:, :2] = 0  # no other neuron reads the two marker dimensions
    texts = ["the dog sleeps .", "a big dog runs .", "the cat sleeps .", "a big cat runs ."]
    ev = Evaluator(lm, NextTokenLoss(texts), kind="zero")
    a, b = Neurons(0, [0]), Neurons(0, [1])
    effects = ev.effects([[a], [b], [a, b]])
    assert np.abs(effects[0][:2]).max() > 1e-4 and np.abs(effects[1][2:]).max() > 1e-4
    np.testing.assert_allclose(effects[0][2:], 0, atol=1e-6)
    np.testing.assert_allclose(effects[1][:2], 0, atol=1e-6)
    matrix = interaction_matrix(ev, [a, b])
    assert abs(matrix.iloc[0, 1]) < 1e-6


# --- patching ---------------------------------------------------------------------------------------------


def _aligned_prompts(lm, n=16):
    rows = agreement_prompts(n)
    ids = lambda text: lm.tokenizer(text)["input_ids"]
    return [r for r in rows if len(ids(r["clean"])) == len(ids(r["corrupt"]))]


@pytest.mark.parametrize("arch", CAUSAL)
def test_patching_clean_into_clean_changes_nothing(tiny):
    rows = _aligned_prompts(tiny)
    prompts = [r["clean"] for r in rows]
    answers = [(" the", " a")] * len(rows)
    comps = all_heads(tiny.shape) + [Resid(1, at=p) for p in range(4)]
    result = patch_effects(tiny, prompts, prompts, answers, comps)
    np.testing.assert_allclose(result.effects["effect"], 0, atol=1e-5)


def test_patching_the_whole_residual_at_the_differing_positions_restores_everything(tiny_folders):
    from probes import load

    lm = load(tiny_folders["gpt2"])
    rows = _aligned_prompts(lm, 24)
    clean, corrupt = [r["clean"] for r in rows], [r["corrupt"] for r in rows]
    answers = [(" the", " a")] * len(rows)
    T = max(len(lm.tokenizer(t)["input_ids"]) for t in clean) + 1
    result = patch_effects(lm, clean, corrupt, answers, [Resid(0, at=p) for p in range(T)])
    # per example, patching all positions = the clean run; positions that agree in both prompts do nothing
    everything = Evaluator(lm, LogitDiff(corrupt, answers), kind="patch", source=_source(lm, clean, answers)).values(
        [[Resid(0)]]
    )[0]
    np.testing.assert_allclose(everything, Evaluator(lm, LogitDiff(clean, answers)).clean, atol=1e-4)
    assert result.effects["restored"].abs().max() > 0


def _source(lm, prompts, answers):
    from probes.core.hooks import capture

    out = []
    with torch.inference_mode(), capture(lm, "blocks.0.hook_resid_pre") as cache:
        for batch in LogitDiff(prompts, answers).prepare(lm):
            lm.model(**batch.inputs)
            out.append({"blocks.0.hook_resid_pre": cache["blocks.0.hook_resid_pre"].clone()})
    return out


def test_misaligned_patching_pairs_are_named(tiny_folders):
    from probes import load

    lm = load(tiny_folders["llama"])
    with pytest.raises(BehaviourError, match="different lengths or have answers"):
        patch_effects(lm, ["the dog"], ["the enormous dogs here"], [(" the", " a")], [Head(0, 0)])
