"""Big-model loading through accelerate: blocks split over devices and offloaded, in bfloat16.

On this machine the split is between the CPU and disk offload (accelerate loads an offloaded block's
weights as it runs); under ``make test-gpu`` (``PROBES_DEVICE=cuda``) the first block runs on the GPU and
the rest is offloaded to the CPU and disk, so values really sit on different devices. Each check compares
with the same model loaded whole.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from probes import capture, intervene
from probes.causal.behaviours import Induction, LogitDiff
from probes.causal.components import all_heads, all_mlps
from probes.causal.evaluator import Evaluator, single_effects
from probes.causal.patching import patch_effects
from probes.core.loading import ModelLoadError, load
from probes.core.verify import probe_ids, verify_sites
from probes.probing.lens import LogitLens, behaviour_by_depth

DEVICE = os.environ.get("PROBES_DEVICE") or "cpu"
SPLIT = {
    "model.embed_tokens": DEVICE,
    "model.rotary_emb": DEVICE,
    "model.layers.0": DEVICE,
    "model.layers.1": "disk",
    "model.norm": "cpu",
    "lm_head": "disk",
}


def split(folder, tmp_path, dtype="bfloat16"):
    return load(folder, device_map=SPLIT, offload_folder=tmp_path / "offload", dtype=dtype)


def test_sites_equal_the_whole_models_with_blocks_split_and_offloaded(tiny_folders, tmp_path):
    lm = split(tiny_folders["llama"], tmp_path)
    whole = load(tiny_folders["llama"], dtype="bfloat16")
    assert lm.device_map["model.layers.1"] == "disk" and lm.dtype == torch.bfloat16
    assert lm.base.layers[1].self_attn.o_proj.weight.device.type == "meta"  # not in memory until it runs
    assert lm.device == torch.device(DEVICE) if DEVICE == "cpu" else lm.device.type == "cuda"
    assert verify_sites(lm) == []  # every check, offloaded weights included (loaded while read)
    ids = probe_ids(lm)
    with torch.inference_mode():
        with capture(lm, "*") as split_cache:
            split_logits = lm.model(input_ids=ids).logits
        with capture(whole, "*") as whole_cache:
            whole_logits = whole.model(input_ids=ids.to(whole.device)).logits
    assert set(split_cache) == set(whole_cache) and len(split_cache) == len(lm.site_names())
    for name, value in whole_cache.items():
        assert split_cache[name].dtype == torch.bfloat16
        torch.testing.assert_close(split_cache[name].to(value.device), value, msg=name)
    torch.testing.assert_close(split_logits.to(whole_logits.device), whole_logits)


def test_interventions_and_ablations_match_the_whole_model(tiny_folders, tmp_path):
    lm, whole = split(tiny_folders["llama"], tmp_path, dtype="float32"), load(tiny_folders["llama"])
    ids = probe_ids(lm)

    def zero_head_1(z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        z[..., 1, :] = 0
        return z

    with torch.inference_mode():
        outputs = []
        for model in (lm, whole):
            with intervene(model, {"blocks.1.attn.hook_z": zero_head_1}):  # a block whose weights are on disk
                outputs.append(model.model(input_ids=ids.to(model.device)).logits.cpu())
    torch.testing.assert_close(*outputs)
    behaviour = Induction(8, length=6)
    components = all_heads(lm.shape) + all_mlps(lm.shape)
    effects = [
        single_effects(Evaluator(model, behaviour, "mean", components=components), components)["effect"].to_numpy()
        for model in (lm, whole)
    ]
    np.testing.assert_allclose(effects[0], effects[1], rtol=1e-4, atol=1e-5)
    prompts, answers = ["the cat sat on the", "a dog ran to the"], [("mat", "dog"), ("park", "cat")]
    by_weights = [Evaluator(m, LogitDiff(prompts, answers)).clean for m in (lm, whole)]  # reads the offloaded head
    np.testing.assert_allclose(by_weights[0], by_weights[1], rtol=1e-5)
    clean, corrupt = ["the cat sat on the", "a cat ran to the"], ["the mat sat on the", "a mat ran to the"]
    patched = [
        patch_effects(m, clean, corrupt, [(" cat", " mat")] * 2, all_heads(m.shape)).effects["restored"].to_numpy()
        for m in (lm, whole)
    ]
    np.testing.assert_allclose(patched[0], patched[1], rtol=1e-4, atol=1e-6)
    assert np.isfinite(patched[1]).all() and np.abs(patched[1]).max() > 0


def test_device_map_auto_with_a_memory_cap_offloads_and_still_reads(tiny_folders, tmp_path):
    lm = load(
        tiny_folders["llama"],
        device_map="auto",
        max_memory={"cpu": "30KB", **({0: "30KB"} if DEVICE.startswith("cuda") else {})},
        offload_folder=tmp_path / "offload",
        dtype="bfloat16",
    )
    assert "disk" in set(lm.device_map.values())
    whole = load(tiny_folders["llama"], dtype="bfloat16")
    behaviour = Induction(4, length=5)
    read = [behaviour_by_depth(m, behaviour, LogitLens())["score"].to_numpy() for m in (lm, whole)]
    np.testing.assert_allclose(read[0], read[1], rtol=1e-2)


def test_device_map_options_are_checked(tiny_folders):
    with pytest.raises(ModelLoadError, match="give device or device_map, not both"):
        load(tiny_folders["llama"], device="cpu", device_map="auto")
    with pytest.raises(ModelLoadError, match="need a device_map"):
        load(tiny_folders["llama"], max_memory={"cpu": "1GB"})
