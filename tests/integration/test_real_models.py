"""The real pretrained models installed from PyPI: minilm (BERT) and smollm2-135m (Llama, from GGUF)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from probes import ActivationStore, capture
from probes.core.align import encode
from probes.core.loading import ALIASES, alias_folder, cache_root, file_sha256

pytestmark = pytest.mark.integration

TEXTS = ["The keys to the cabinet are on the table.", "Unbelievably, the tortoise overtook the hare."]


def capture_all(lm, sites="*"):
    batch = encode(lm.tokenizer, TEXTS).model_inputs(lm.device)
    with torch.inference_mode():
        ref = lm.model(**batch, output_hidden_states=True, output_attentions=True)
        with capture(lm, sites) as cache:
            out = lm.model(**batch)
    return batch, ref, out, cache


def check_against_hf(lm, ref, cache, atol):
    n = lm.shape.n_layers
    for l in range(n):
        torch.testing.assert_close(cache[f"blocks.{l}.hook_resid_pre"], ref.hidden_states[l], atol=atol, rtol=1e-4)
        torch.testing.assert_close(cache[f"blocks.{l}.attn.hook_pattern"], ref.attentions[l], atol=atol, rtol=1e-4)
    final = "ln_final.hook_normalized" if lm.adapter.final_norm else f"blocks.{n - 1}.hook_resid_post"
    torch.testing.assert_close(cache[final], ref.hidden_states[n], atol=atol, rtol=1e-4)


def test_minilm_capture_equals_hf_outputs(minilm):
    assert minilm.adapter.name == "bert" and minilm.shape.n_layers == 6 and minilm.shape.n_heads == 12
    _, ref, out, cache = capture_all(minilm)
    check_against_hf(minilm, ref, cache, atol=1e-5)
    assert torch.equal(out.last_hidden_state, ref.last_hidden_state)


def test_smollm_capture_equals_hf_outputs(smollm):
    assert smollm.adapter.name == "llama" and smollm.shape.n_layers == 30 and smollm.shape.n_heads == 9
    assert sum(p.numel() for p in smollm.model.parameters()) == 134_515_008
    sites = [
        "blocks.*.hook_resid_pre",
        "blocks.*.attn.hook_pattern",
        "ln_final.hook_normalized",
        "hook_logits",
        "blocks.10.attn.hook_z",
        "blocks.10.hook_attn_out",
    ]
    _, ref, out, cache = capture_all(smollm, sites)
    check_against_hf(smollm, ref, cache, atol=1e-4)
    torch.testing.assert_close(cache["hook_logits"], ref.logits)
    assert torch.equal(out.logits, ref.logits)
    o_proj = smollm.base.layers[10].self_attn.o_proj
    with torch.inference_mode():
        torch.testing.assert_close(o_proj(cache["blocks.10.attn.hook_z"].flatten(-2)), cache["blocks.10.hook_attn_out"])


def test_smollm_passes_every_site_check(smollm):
    """The table's checks on the real model: q/k/v split under grouped-query attention (9 query heads, 3
    key-value heads), scores through softmax, the decomposition of every block."""
    from probes.core.verify import verify_sites

    assert verify_sites(smollm, tolerance=1e-3) == []
    with torch.inference_mode(), capture(smollm, ["blocks.3.attn.hook_q", "blocks.3.attn.hook_k"]) as cache:
        smollm.model(input_ids=torch.tensor([[1, 2, 3, 4]]))
    assert cache["blocks.3.attn.hook_q"].shape == (1, 4, 9, 64) and cache["blocks.3.attn.hook_k"].shape == (1, 4, 3, 64)


def test_smollm_generates_and_cache_matches_the_gguf(smollm):
    ids = smollm.tokenizer("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        new = smollm.model.generate(**ids, max_new_tokens=2, do_sample=False)
    assert smollm.tokenizer.decode(new[0, ids["input_ids"].shape[1] :]).startswith(" Paris")
    # the safetensors cache is keyed by the GGUF's hash and holds exactly the de-quantised weights
    alias = ALIASES["smollm2-135m"]
    gguf = alias_folder(alias) / alias.gguf_file
    digest = file_sha256(gguf)
    assert smollm.source == str(cache_root() / "gguf" / f"{gguf.stem}-{digest[:16]}")
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    cached = smollm.model.state_dict()
    for name, tensor in direct.state_dict().items():
        assert torch.equal(tensor, cached[name]), name


def test_minilm_store_round_trip(minilm, tmp_path):
    store = ActivationStore.build(
        minilm, TEXTS, ["blocks.3.hook_resid_post"], tmp_path, dtype="float32", progress=False
    )
    _, ref, _, _ = capture_all(minilm, ["blocks.3.hook_resid_post"])
    mask = encode(minilm.tokenizer, TEXTS).attention_mask.bool()
    torch.testing.assert_close(torch.from_numpy(store.read("blocks.3.hook_resid_post")), ref.hidden_states[4][mask])
    words, keys = store.read_words("blocks.3.hook_resid_post", how="first")
    assert len(words) == sum(len(t.split()) for t in TEXTS)


def test_quick_demo_runs_end_to_end_and_writes_the_report(tmp_path):
    """The whole main job with --quick settings (the full one, about 12 minutes, is timed by hand: README)."""
    out = subprocess.run(
        [sys.executable, "-m", "probes.cli", "demo", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr
    assert f"activations: {tmp_path}" in out.stdout and "best_layer" in out.stdout and "additivity R^2" in out.stdout
    assert all(f"demo {k}/9" in out.stdout for k in range(1, 10))
    summary = pd.read_csv(tmp_path / "capture" / "summary.csv")
    assert summary["layer"].nunique() == 6 and summary["model"].eq("minilm").all()
    assert (summary[summary["metric"] == "attn_entropy"]["value"] > 0).all()
    results = pd.read_csv(tmp_path / "probes" / "results.csv")
    assert set(results["task"]) == {"pos", "subject_number"}
    ablation = pd.read_csv(tmp_path / "ablation" / "agreement-copula" / "results.csv")
    assert {"effect", "additivity_r2", "erasure_change"} <= set(ablation["metric"])
    circuit = pd.read_csv(tmp_path / "circuit" / "agreement-copula" / "results.csv")
    assert {"edge_attribution", "faithfulness", "circuit_share", "verify_spearman"} <= set(circuit["metric"])
    assert "keep 80% of the behaviour" in out.stdout or "no measured circuit keeps" in out.stdout
    assert (tmp_path / "ladder" / "scale" / "verdicts.csv").exists()
    assert {p.name for p in (tmp_path / "heads").iterdir()} == {"minilm", "smollm2-135m"}
    report = (tmp_path / "report.html").read_text()
    assert f"report: {(tmp_path / 'report.html').resolve()}" in out.stdout
    for section in (
        "Scorecards",
        "Linear probes",
        "Ablations",
        "Attribution and circuits",
        "Amnesic probing",
        "Capability across scale",
        "Attention heads",
        "Where these numbers come from",
    ):
        assert section in report
