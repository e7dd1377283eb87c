"""Dictionaries: training recovers planted sparse directions, SAELens's format round-trips (and loads in SAELens
where it is installed), and the quality metrics agree with hand computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from probes.core import loading as models_mod
from probes.core.store import ActivationStore
from probes.sparse.dictionary import DictionaryError, SparseDictionary
from probes.sparse.quality import loss_recovered, reconstruction
from probes.sparse.train import TopKTrainer

SITE = "blocks.0.hook_resid_pre"


def planted(n: int = 40_000, d: int = 32, n_features: int = 128, k: int = 4, seed: int = 1):
    """Rows that are exactly k-sparse in a known dictionary of unit directions, plus an offset."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(n_features, d, generator=g)
    directions /= directions.norm(dim=-1, keepdim=True)
    chosen = torch.stack([torch.randperm(n_features, generator=g)[:k] for _ in range(n)])
    codes = torch.zeros(n, n_features).scatter_(1, chosen, torch.rand(n, k, generator=g) * 2 + 0.5)
    return codes @ directions + 0.3, directions


def test_topk_training_recovers_planted_sparse_directions():
    x, directions = planted()
    trainer = TopKTrainer(expansion=8, k=4, batch_size=256, n_tokens=400_000, lr=5e-3, dead_after=5_000, progress=False)
    sae = trainer.fit(x, site=SITE).dictionary_
    learned = sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True)
    best = (directions @ learned.T).max(1).values
    assert (best > 0.95).float().mean() >= 0.9  # nearly every planted direction has a feature along it
    codes = sae.encode(x[:1000])
    assert int((codes != 0).sum(-1).max()) <= 4
    assert trainer.history_["fvu"].iloc[-1] < trainer.history_["fvu"].iloc[0] / 3
    assert sae.info["tokens_seen"] == 400_000 and sae.info["seed"] == 0


def test_the_same_seed_trains_the_same_dictionary_and_scale_is_folded_in():
    x, _ = planted(n=4096)
    fit = lambda rows: TopKTrainer(expansion=2, k=4, batch_size=256, progress=False, seed=3).fit(rows, site=SITE)
    a, b = fit(x).dictionary_, fit(x).dictionary_
    for name, tensor in a.state_dict().items():
        torch.testing.assert_close(tensor, b.state_dict()[name])
    # training sees inputs scaled to a fixed mean norm, so 50 times the data trains the same dictionary in the
    # scaled space; with the scale folded into the saved weights, it reads and writes the raw values
    big = fit(x * 50).dictionary_
    torch.testing.assert_close(big(x * 50), a(x) * 50, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(big.encode(x * 50), a.encode(x), rtol=1e-3, atol=1e-3)


def test_trainer_streams_a_store_through_its_buffer_and_skips_first_positions(tiny_folders, tmp_path):
    lm = models_mod.load(tiny_folders["llama"])
    texts = [f"the dog {i} runs near the cars and the cat sleeps ." for i in range(40)]
    store = ActivationStore.build(lm, texts, [SITE], tmp_path, dtype="float32", batch_size=8, progress=False)
    n_rows = int((store.tokens()["position"] >= 1).sum())
    trainer = TopKTrainer(expansion=2, k=4, batch_size=64, buffer=128, skip_positions=1, progress=False)
    sae = trainer.fit(store, site=SITE).dictionary_
    assert sae.info["tokens_seen"] == n_rows  # one pass, nothing lost or repeated
    assert sae.site == SITE and sae.d_in == lm.shape.d_model


def _random_dictionary(activation="topk", transcoder=False, rescale=False, seed=0) -> SparseDictionary:
    g = torch.Generator().manual_seed(seed)
    sae = SparseDictionary(
        16,
        48,
        site="blocks.1.hook_resid_pre",
        site_out="blocks.1.hook_mlp_out" if transcoder else None,
        activation=activation,
        k=5 if activation == "topk" else None,
        rescale_acts_by_decoder_norm=rescale,
        model_name="tiny",
    )
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return sae


@pytest.mark.parametrize(
    ("activation", "transcoder", "rescale"),
    [
        ("topk", False, False),
        ("topk", False, True),
        ("relu", False, False),
        ("jumprelu", False, False),
        ("relu", True, False),
        ("topk", True, False),
    ],
)
def test_format_round_trip(tmp_path, activation, transcoder, rescale):
    sae = _random_dictionary(activation, transcoder, rescale)
    sae.save(tmp_path / "d")
    cfg = json.loads((tmp_path / "d" / "cfg.json").read_text())
    assert cfg["metadata"]["hook_name"] == "blocks.1.hook_resid_pre" and cfg["d_sae"] == 48
    back = SparseDictionary.load(tmp_path / "d")
    x = torch.randn(7, 16)
    torch.testing.assert_close(back(x), sae(x))
    assert back.site_out == sae.site_out and back.fingerprint == sae.fingerprint


def test_bad_dictionary_folders_get_one_line_each(tmp_path):
    with pytest.raises(DictionaryError, match="cfg.json is missing"):
        SparseDictionary.load(tmp_path)
    _random_dictionary().save(tmp_path / "d")
    cfg_path = tmp_path / "d" / "cfg.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "architecture": "matryoshka"}))
    with pytest.raises(DictionaryError, match="'matryoshka' is not supported"):
        SparseDictionary.load(tmp_path / "d")
    cfg_path.write_text(json.dumps({**cfg, "normalize_activations": "layer_norm"}))
    with pytest.raises(DictionaryError, match="normalize_activations='layer_norm' is not supported"):
        SparseDictionary.load(tmp_path / "d")
    cfg_path.write_text(json.dumps({**cfg, "d_sae": 64}))
    with pytest.raises(DictionaryError, match="different dictionaries"):
        SparseDictionary.load(tmp_path / "d")
    cfg_path.write_text("{")
    with pytest.raises(DictionaryError, match="not valid JSON"):
        SparseDictionary.load(tmp_path / "d")
    with pytest.raises(DictionaryError, match="1 <= k <= d_sae"):
        SparseDictionary(4, 8, site=SITE, k=9)


@pytest.mark.parametrize("activation", ["topk", "relu", "jumprelu"])
def test_saelens_loads_ours_and_we_load_saelens(tmp_path, activation):
    sae_lens = pytest.importorskip("sae_lens", reason="sae-lens is in the bench extra (make bench-deps)")
    ours = _random_dictionary(activation, rescale=activation == "topk")
    ours.save(tmp_path / "ours")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "ours"))
    x = torch.randn(9, 16)
    torch.testing.assert_close(theirs.encode(x), ours.encode(x))
    torch.testing.assert_close(theirs(x), ours(x))
    theirs.save_model(str(tmp_path / "theirs"))
    back = SparseDictionary.load(tmp_path / "theirs")
    torch.testing.assert_close(back(x), theirs(x))
    assert back.site == theirs.cfg.metadata.hook_name


def test_quality_metrics_match_hand_computation(tiny_folders, tmp_path):
    lm = models_mod.load(tiny_folders["llama"])
    texts = ["the dog near the cars sleeps .", "some teachers that the cat likes run quickly .", "a tall dog sees it ."]
    store = ActivationStore.build(lm, texts, [SITE], tmp_path, dtype="float32", progress=False)
    sae = SparseDictionary(lm.shape.d_model, 4 * lm.shape.d_model, site=SITE, k=3)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(4)) * 0.2)
    frame, density = reconstruction(sae, store, skip_positions=1, n_boot=50)
    x = torch.from_numpy(store.read(SITE)).double()[torch.from_numpy(store.tokens()["position"].to_numpy() >= 1)]
    x_hat = sae(x.float()).double().detach()
    variance = (x - x.mean(0)).pow(2).sum(-1).mean()
    got = frame.set_index("metric")["value"]
    assert got["explained_variance"] == pytest.approx(float(1 - (x - x_hat).pow(2).sum(-1).mean() / variance), abs=1e-6)
    assert got["l0"] == pytest.approx(3.0) and got["n_tokens"] == len(x)
    assert density.shape == (sae.d_sae,) and got["dead_share"] == pytest.approx(float((density == 0).mean()))
    lo, hi = frame.set_index("metric").loc["explained_variance", ["ci_low", "ci_high"]]
    assert lo <= got["explained_variance"] <= hi


def test_splicing_an_exact_reconstruction_changes_nothing(tiny_folders):
    # relu(x) - relu(-x) = x: a ReLU dictionary of +-unit vectors reconstructs every value exactly
    lm = models_mod.load(tiny_folders["llama"])
    d = lm.shape.d_model
    sae = SparseDictionary(d, 2 * d, site="blocks.1.hook_resid_pre", activation="relu", apply_b_dec_to_input=False)
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
    texts = ["the dog near the cars sleeps .", "some teachers that the cat likes run quickly ."]
    frame, per_text = loss_recovered(lm, sae, texts, n_boot=20)
    np.testing.assert_allclose(per_text["spliced"], per_text["clean"], rtol=1e-5, atol=1e-6)
    assert frame.set_index("metric").loc["loss_recovered", "value"] == pytest.approx(1.0, abs=1e-4)
    assert (per_text["mean_ablated"] != per_text["clean"]).any()
