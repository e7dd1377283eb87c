"""The model handle (call, run_with_hooks, run_with_cache, hooks), its ActivationCache, the ready-made edits and
the one tokenisation rule, each against an independent computation: HF's own outputs, the functional hooks,
hand-made replacements."""

from __future__ import annotations

import threading

import pytest
import torch

from probes import ActivationCache, capture, intervene, patch, zero
from probes.causal.behaviours import LogitDiff, MinimalPairs
from probes.core.align import SequenceTooLongError, encode
from probes.core.model import LoadedModel
from probes.core.sites import UnknownSiteError, site_name

TEXT = "The cat sat on the mat."
OTHER = "The man sat on the hat."  # the same token length under the tests' byte-level tokenizer


def assert_close(a, b, **kw):
    torch.testing.assert_close(a.cpu(), b.cpu(), rtol=kw.get("rtol", 1e-5), atol=kw.get("atol", 1e-5))


@pytest.fixture
def llama(tiny_folders) -> LoadedModel:
    from probes.core.loading import load

    return load(tiny_folders["llama"])


def test_calling_the_handle_gives_the_models_logits(llama):
    batch = llama.batch(TEXT)
    with torch.inference_mode():
        want = llama.model(**batch).logits
    assert_close(llama(TEXT), want)
    assert_close(llama(batch["input_ids"]), want)  # token ids in, the same logits out


def test_run_with_cache_equals_the_functional_capture_and_hf(llama):
    logits, cache = llama.run_with_cache([TEXT, OTHER])
    assert isinstance(cache, ActivationCache)
    batch = llama.batch([TEXT, OTHER])
    with torch.inference_mode(), capture(llama, "*") as plain:
        llama.model(**batch)
    assert set(cache) == set(plain)
    for name in plain:
        assert_close(cache[name], plain[name])
    assert_close(cache["hook_logits"], logits)


def test_cache_short_names_stacks_and_moves(llama):
    _, cache = llama.run_with_cache(
        TEXT, ["blocks.*.attn.hook_z", "blocks.*.hook_resid_post", "blocks.*.attn.hook_pattern"]
    )
    n, heads = llama.shape.n_layers, llama.shape.n_heads
    assert cache["z", 1] is cache["blocks.1.attn.hook_z"]
    assert cache["z", -1] is cache[f"blocks.{n - 1}.attn.hook_z"]
    assert ("z", 0) in cache and ("mlp_out", 0) not in cache
    stacked = cache.stack("resid_post")
    assert stacked.shape == (n, *cache["resid_post", 0].shape)
    assert_close(stacked[1], cache["blocks.1.hook_resid_post"])
    z, labels = cache.stack_heads("z")
    assert z.shape[0] == n * heads and labels[: heads + 1] == [f"L0H{h}" for h in range(heads)] + ["L1H0"]
    assert_close(z[heads + 2], cache["z", 1][:, :, 2])  # L1H2: the head axis of (batch, pos, head, d_head)
    pattern, _ = cache.stack_heads("pattern")
    assert_close(pattern[heads + 2], cache["pattern", 1][:, 2])  # (batch, head, query, key)
    assert cache.to(dtype=torch.float64)["z", 0].dtype == torch.float64
    assert cache.remove_batch_dim()["z", 0].shape == cache["z", 0].shape[1:]
    with pytest.raises(KeyError, match="was not captured"):
        cache["mlp_out", 0]
    with pytest.raises(UnknownSiteError, match="give a layer"):
        cache["z"]


def test_site_names_from_short_names():
    assert site_name("z", 3) == "blocks.3.attn.hook_z"
    assert site_name("resid_pre", -1, n_layers=4) == "blocks.3.hook_resid_pre"
    assert site_name("logits") == "hook_logits" and site_name("hook_mlp_out", 0) == "blocks.0.hook_mlp_out"
    with pytest.raises(UnknownSiteError, match="unknown site"):
        site_name("attention", 0)


def test_hooks_get_their_site_and_one_function_serves_many(llama):
    seen = []

    def record(value, site):
        seen.append((site.name, site.layer, tuple(value.shape)))

    llama.run_with_hooks(TEXT, hooks={"blocks.*.hook_mlp_out": record, "blocks.0.attn.hook_z": record})
    names = [s[0] for s in seen]
    assert names == ["blocks.0.attn.hook_z", "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]
    assert seen[1][1] == 0 and seen[0][2][-2:] == (llama.shape.n_heads, llama.shape.d_head)


def test_patch_and_zero_equal_hand_made_replacements(llama):
    _, clean = llama.run_with_cache(TEXT, "blocks.1.attn.hook_z")
    source = clean["z", 1]

    def by_hand(z):
        z = z.clone()
        z[:, :, 2] = source[:, :, 2].to(z)
        return z

    with torch.inference_mode(), intervene(llama, {"blocks.1.attn.hook_z": by_hand}):
        want = llama.model(**llama.batch(OTHER)).logits
    got = llama.run_with_hooks(OTHER, hooks={"blocks.1.attn.hook_z": patch(clean, heads=2)})
    assert_close(got, want)
    assert not torch.allclose(got, llama(OTHER))  # the patch changed something

    def zero_by_hand(value):
        value = value.clone()
        value[:, 3] = 0
        return value

    with torch.inference_mode(), intervene(llama, {"blocks.0.hook_mlp_out": zero_by_hand}):
        want = llama.model(**llama.batch(TEXT)).logits
    assert_close(llama.run_with_hooks(TEXT, hooks={"blocks.0.hook_mlp_out": zero(positions=3)}), want)
    with pytest.raises(ValueError, match="no head axis"):
        llama.run_with_hooks(TEXT, hooks={"blocks.0.hook_mlp_out": zero(heads=1)})


def test_patch_between_prompts_of_other_lengths_is_refused(llama):
    _, clean = llama.run_with_cache(TEXT, "blocks.0.attn.hook_z")
    with pytest.raises(ValueError, match="different token lengths"):
        llama.run_with_hooks(
            "A much longer sentence than the first one was.", hooks={"blocks.0.attn.hook_z": patch(clean)}
        )


def test_a_cache_with_hooks_holds_the_hooked_values(llama):
    _, cache = llama.run_with_cache(TEXT, "blocks.0.hook_mlp_out", hooks={"blocks.0.hook_mlp_out": zero()})
    assert float(cache["mlp_out", 0].abs().max()) == 0.0


def test_logit_diff_is_the_difference_of_two_logits(llama):
    logits = llama([TEXT, OTHER])
    right, wrong = llama.to_single_token(" the"), llama.to_single_token(" on")
    want = logits[:, -1, right] - logits[:, -1, wrong]
    assert_close(llama.logit_diff(logits, " the", " on"), want)
    assert_close(
        llama.logit_diff(logits, right, wrong, at=torch.tensor([2, 3])),
        logits[[0, 1], [2, 3], right] - logits[[0, 1], [2, 3], wrong],
    )


# --- one tokenisation rule ---------------------------------------------------------------------------------


def test_a_causal_models_text_starts_with_its_start_token(llama):
    bos = llama.tokenizer.bos_token_id
    own = llama.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert llama.token_ids(TEXT) == [bos, *own]
    assert llama.to_tokens(TEXT)[0].tolist() == [bos, *own]
    assert llama.token_ids(TEXT, prepend_bos=False) == own
    assert llama.to_tokens(TEXT, prepend_bos=False)[0].tolist() == own
    enc = llama.encode([TEXT, "A dog."])
    assert enc.word_index[0, 0] == -1 and enc.attention_mask[:, 0].tolist() == [1, 1]  # the start is no word


def test_a_capture_and_a_study_see_the_same_tokens(llama):
    """What ``run_with_cache`` runs on a prompt is what the behaviours score (the rule the issue asked for)."""
    behaviour = LogitDiff([TEXT], [(" the", " on")])
    batch = behaviour.prepare(llama)[0]
    assert batch.inputs["input_ids"][0].tolist() == llama.to_tokens(TEXT)[0].tolist()
    pairs = MinimalPairs([{"sentence_good": TEXT, "sentence_bad": OTHER}])
    good, _, _ = pairs.tokenise(llama)[0]
    assert good == llama.token_ids(TEXT)
    logits = llama(TEXT)
    value = behaviour.score(
        llama, llama.run_with_cache(TEXT, behaviour.readout(llama))[1][behaviour.readout(llama)], batch
    )
    assert_close(value, llama.logit_diff(logits, " the", " on"), rtol=1e-4, atol=1e-4)


def test_an_encoder_keeps_its_tokenizers_special_tokens(tiny_folders):
    from probes.core.loading import load

    bert = load(tiny_folders["bert"])
    assert bert.start_tokens() is None
    ids = bert.to_tokens(TEXT)[0].tolist()
    assert ids == bert.tokenizer(TEXT)["input_ids"] == bert.token_ids(TEXT)
    assert ids[0] == bert.tokenizer.cls_token_id and ids[-1] == bert.tokenizer.sep_token_id


def test_truncation_counts_the_start_token(llama):
    with pytest.warns(UserWarning, match="truncated to 4 tokens"):
        enc = encode(llama.tokenizer, [TEXT], max_length=4, start=[0])
    assert enc.inputs["input_ids"].shape[1] == 4 and enc.truncated == [True]
    with pytest.raises(SequenceTooLongError, match="no room"):
        encode(llama.tokenizer, [TEXT], max_length=1, start=[0])


def test_the_start_token_choice_is_recorded(llama):
    assert llama.describe()["prepend_bos"] is True


# --- the attention-score tap ------------------------------------------------------------------------------


def test_the_score_tap_is_scoped_and_leaves_other_threads_alone(llama):
    real = torch.nn.functional.softmax
    inside = {}

    def other_thread():
        x = torch.randn(3, 5)
        inside["value"] = torch.nn.functional.softmax(x, -1), x.softmax(-1)

    def scores(value, site):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        return value

    llama.run_with_hooks(TEXT, hooks={"blocks.0.attn.hook_scores": scores})
    assert torch.nn.functional.softmax is real  # put back when the block ended
    tapped, plain = inside["value"]
    assert_close(tapped, plain)  # a softmax in another thread, while the tap was on, passed through untouched
