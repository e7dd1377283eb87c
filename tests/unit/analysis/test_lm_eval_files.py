"""The scaling analysis on lm-evaluation-harness files shaped like real ones: a model family named by size
(Pythia), and one model's training checkpoints from step 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import real_lm_eval_file

from analysis.readings import scale_reading
from analysis.scale_table import family_and_size, read_lm_eval, read_scale_csv, task_chance
from analysis.scaling import analyse
from probes.pipelines.scale import describe, run_scale
from probes.pipelines.specs import ScaleSpec

PYTHIA = {"70m": 70e6, "160m": 160e6, "410m": 410e6, "1b": 1e9, "1.4b": 1.4e9, "2.8b": 2.8e9, "6.9b": 6.9e9}
STEPS = [0, 1, 8, 64, 512, 1000, 5000, 10000, 33000, 66000, 100000, 143000]


def family_files(tmp_path, seed: int = 0):
    """Perplexity falling with size (lower is better), ARC rising, and an MMLU subtask at 4-way chance."""
    rng = np.random.default_rng(seed)
    files = []
    for i, (name, size) in enumerate(PYTHIA.items()):
        x = np.log10(size) - np.log10(70e6)
        scores = {
            "lambada_openai": {
                "perplexity": (130 * 10 ** (-0.7 * x), 130 * 10 ** (-0.7 * x) * 0.03),
                "acc": (0.33 + 0.17 * x, 0.0066),
            },
            "arc_easy": {"acc": (0.42 + 0.12 * x, 0.01), "acc_norm": (0.38 + 0.11 * x, 0.01)},
            "mmlu_abstract_algebra": {"acc": (0.25 + rng.normal(0, 0.02), 0.043)},
        }
        files.append(real_lm_eval_file(tmp_path / f"results_{i}.json", f"EleutherAI/pythia-{name}", None, scores))
    return files


def checkpoint_files(tmp_path):
    """pythia-410m from step 0 (untrained: perplexity near the vocabulary size, accuracy at chance)."""
    files = []
    for step in STEPS:
        t = np.log10(step + 1) / np.log10(143001)
        ppl = float(np.exp(np.log(5e4) * (1 - t) + np.log(10.0) * t))
        scores = {
            "lambada_openai": {"perplexity": (ppl, ppl * 0.03), "acc": (0.51 * t, 0.007)},
            "piqa": {"acc": (0.5 + 0.17 * t, 0.011)},
        }
        files.append(real_lm_eval_file(tmp_path / f"step{step}.json", "EleutherAI/pythia-410m", f"step{step}", scores))
    return files


def test_family_and_size_from_standard_names():
    assert family_and_size("EleutherAI/pythia-1.4b-deduped") == ("EleutherAI/pythia-deduped", 1.4e9)
    assert family_and_size("Qwen/Qwen2.5-0.5B") == ("Qwen/Qwen2.5", 0.5e9)
    assert family_and_size("facebook/opt-125m") == ("facebook/opt", 125e6)
    assert family_and_size("HuggingFaceTB/SmolLM2-135M-Instruct") == ("HuggingFaceTB/SmolLM2-Instruct", 135e6)
    assert family_and_size("meta-llama/Llama-3.2-1B") == ("meta-llama/Llama-3.2", 1e9)
    assert family_and_size("gpt2") == ("gpt2", None)


def test_chance_from_the_options_the_registry_or_unknown():
    assert task_chance("arc_easy", "acc") == 0.25
    assert task_chance("mmlu_abstract_algebra", "acc_norm") == 0.25
    assert task_chance("piqa", "acc") == 0.5 and task_chance("blimp_anaphor_gender_agreement", "acc") == 0.5
    assert task_chance("mytask", "acc", n_choices=5) == 0.2
    assert task_chance("mytask", "acc") is None  # unknown, stated as such
    assert task_chance("lambada_openai", "perplexity") is None  # chance belongs to multiple-choice metrics


def test_a_family_named_by_size_reads_right(tmp_path):
    table = read_lm_eval(family_files(tmp_path))
    assert set(table["family"]) == {"EleutherAI/pythia"}  # one family, not one per file
    assert sorted(table["parameters"].unique()) == sorted(PYTHIA.values())
    assert set(table["size_from"]) == {"name"}
    ppl = table[table["metric"] == "perplexity"]
    assert not ppl["higher_is_better"].any()  # from the file's own higher_is_better
    assert set(table[table["task"] == "mmlu_abstract_algebra"]["chance"]) == {0.25}
    verdicts = analyse(table, n_boot=20).set_index(["task", "metric"])["verdict"]
    assert verdicts[("lambada_openai", "perplexity")] == "smooth"  # falling perplexity is growth, not irregular
    assert verdicts[("arc_easy", "acc")] == "smooth"
    mmlu = analyse(table, n_boot=20).query("task == 'mmlu_abstract_algebra'")
    assert mmlu["verdict"].tolist() == ["flat"] and mmlu["at_chance"].all()
    text, lean = scale_reading([(r.metric, r.verdict, r.at_chance) for r in mmlu.itertuples()])
    assert text.startswith("stays at chance") and lean is None
    v = analyse(table, n_boot=20).set_index(["task", "metric"])
    assert v.loc[("arc_easy", "acc"), "backtest_n"] == len(PYTHIA) - 3
    assert v.loc[("arc_easy", "acc"), "backtest_mae"] < 0.05  # a line in log size predicts the next model


def test_checkpoints_from_step_zero_end_to_end(tmp_path):
    files = checkpoint_files(tmp_path)
    spec = ScaleSpec(results=[str(f) for f in files], size="step", n_boot=20)
    table, verdicts = run_scale(spec, tmp_path / "out")
    assert 0 in set(table["step"])  # the untrained baseline is kept
    assert np.isfinite(verdicts[["first", "last", "I"]].to_numpy(float)).all()
    assert set(verdicts["verdict"]) <= {"smooth", "jump"}
    figures = sorted(p.name for p in (tmp_path / "out" / "figures").iterdir())
    assert figures and all("/" not in f and ":" not in f for f in figures)
    assert any(f.startswith("EleutherAI_pythia_EleutherAI_pythia-410m_lambada_openai") for f in figures)
    assert "read from the model names" in describe(table, verdicts)


def test_a_wide_csv_with_common_column_aliases(tmp_path):
    frame = pd.DataFrame(
        {"model_name": ["a", "b", "c", "d"], "params": [1e6, 1e7, 1e8, 1e9], "arith_exact_match": [0, 0.1, 0.4, 0.8]}
    )
    frame.to_csv(tmp_path / "wide.csv", index=False)
    table = read_scale_csv(tmp_path / "wide.csv")
    assert list(table["parameters"]) == [1e6, 1e7, 1e8, 1e9] and list(table["model"]) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("flip", [False, True])
def test_the_files_direction_wins_over_the_registry(flip):
    from analysis.scaling import normalise

    y, _, _ = normalise(np.array([10.0, 5.0, 2.0]), None, "perplexity", None if not flip else False)
    assert y[0] < y[1] < y[2]  # lower perplexity is better either way
    y, _, _ = normalise(np.array([3.0, 2.0, 1.0]), None, "mystery_score", False)
    assert y[0] < y[1] < y[2]
