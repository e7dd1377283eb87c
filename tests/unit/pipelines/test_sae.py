"""``probes sae train`` and ``probes sae features`` on a tiny model: what the run folders hold against the instruments
computed directly, resumption, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.results import read_results
from probes.causal.behaviours import make_behaviour
from probes.causal.evaluator import Evaluator
from probes.cli import main
from probes.core import loading as models_mod
from probes.pipelines.sae import run_features, run_sae_train
from probes.pipelines.specs import FeaturesSpec, SaeTrainSpec
from probes.runtime.run import RunError
from probes.sparse import train as train_mod
from probes.sparse.dictionary import SparseDictionary
from probes.sparse.study import error_share

SITE = "blocks.1.hook_resid_pre"


@pytest.fixture
def texts(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(f"the dog {i} near the cars sleeps and the cat {i} runs ." for i in range(30)) + "\n")
    return str(path)


def _train_spec(folder, texts, **extra) -> SaeTrainSpec:
    return SaeTrainSpec(
        model=str(folder), site=SITE, texts=[texts], expansion=2, k=4, tokens=3000, batch_size=128, n_boot=20, **extra
    )


def test_sae_train_writes_a_saelens_folder_its_quality_and_resumes(tiny_folders, texts, tmp_path, monkeypatch):
    spec = _train_spec(tiny_folders["llama"], texts)
    quality = run_sae_train(spec, tmp_path / "s", progress=False)
    out = tmp_path / "s"
    sae = SparseDictionary.load(out / "dictionary")
    cfg = json.loads((out / "dictionary" / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["k"] == 4 and cfg["metadata"]["hook_name"] == SITE
    assert sae.info["tokens_seen"] == 3000 and sae.d_sae == 2 * sae.d_in
    got = quality.set_index("metric")["value"]
    assert got["l0"] <= 4 and {"explained_variance", "dead_share", "dense_share", "loss_recovered"} <= set(got.index)
    assert np.isfinite(got["loss_recovered"]) and got["loss_spliced"] >= got["loss_clean"] - 0.5
    rows = read_results(out / "results.csv")
    assert set(rows["probe"]) == {"sae:topk:2x:k4"} and set(rows["site"]) == {SITE}
    assert (out / "feature-density.png").exists() and len(pd.read_csv(out / "stages" / "density.csv")) == sae.d_sae
    # a re-run reads the dictionary back: nothing is trained again
    monkeypatch.setattr(train_mod.TopKTrainer, "fit", lambda *a, **k: pytest.fail("trained again"))
    again = run_sae_train(spec, out, progress=False)
    pd.testing.assert_frame_equal(again, quality)
    with pytest.raises(RunError, match="other settings"):
        run_sae_train(spec.model_copy(update={"k": 3}), out, progress=False)


def test_sae_features_measures_the_curve_and_the_error_term(tiny_folders, texts, tmp_path):
    run_sae_train(_train_spec(tiny_folders["llama"], texts), tmp_path / "s", progress=False)
    spec = FeaturesSpec(
        model=str(tiny_folders["llama"]),
        sae=str(tmp_path / "s" / "dictionary"),
        n=6,
        sizes=[1, 4],
        random=2,
        verify_top=3,
        verify_sample=2,
        texts=texts,
        examples=2,
        n_boot=50,
    )
    result = run_features(spec, tmp_path / "f", progress=False)
    out = tmp_path / "f"
    lm = models_mod.load(tiny_folders["llama"])
    sae = SparseDictionary.load(tmp_path / "s" / "dictionary")
    ev = Evaluator(lm, make_behaviour(lm, None, n=6), kind="mean")
    np.testing.assert_allclose(result["curve"].full, ev.clean, rtol=1e-6)
    direct = error_share(ev, sae, n_boot=50)
    assert result["error"]["error_share"] == pytest.approx(direct["error_share"], rel=1e-5, abs=1e-6)
    rows = read_results(out / "results.csv")
    assert set(rows["probe"]) == {"features:mean"} and set(rows["site"]) == {SITE}
    assert {"feature_share", "feature_count", "error_share", "feature_faithfulness", "verify_spearman"} <= set(
        rows["metric"]
    )
    all_kept = rows[(rows["metric"] == "feature_faithfulness") & (rows["features"] == sae.d_sae)]["value"]
    assert float(all_kept.iloc[0]) == pytest.approx(1.0)
    examples = pd.read_csv(out / "stages" / "examples.csv")
    assert set(examples["feature"]) <= set(result["scores"].sort_values("score", ascending=False)["feature"].head(3))
    assert (out / "feature-curve.png").exists()
    again = run_features(spec, out, progress=False)  # every stage read back
    assert again["share"] == result["share"]


def test_the_cli_trains_studies_and_refuses_bad_input(tiny_folders, texts, tmp_path, capsys):
    model = str(tiny_folders["llama"])
    base = ["sae", "train", model, "--texts", texts, "--expansion", "2", "--k", "4", "--tokens", "2000"]
    assert main([*base, "--site", SITE, "--out", str(tmp_path / "s")]) == 0
    assert "explained_variance" in capsys.readouterr().out
    assert main([*base, "--out", str(tmp_path / "x")]) == 2
    assert "name the site the dictionary reads: --site" in capsys.readouterr().err
    assert main([*base, "--site", "blocks.9.hook_resid_pre", "--out", str(tmp_path / "y")]) == 2
    assert "layer 9 does not exist" in capsys.readouterr().err
    assert main(["sae", "features", model, "--sae", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    assert "cfg.json is missing" in capsys.readouterr().err
    features = ["sae", "features", model, "--sae", str(tmp_path / "s" / "dictionary"), "--n", "4", "--sizes", "1", "4"]
    assert main([*features, "--texts", texts, "--random", "1", "--out", str(tmp_path / "f")]) == 0
    assert "error term" in capsys.readouterr().out
