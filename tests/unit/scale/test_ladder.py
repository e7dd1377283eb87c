"""The scale ladder (synthetic tasks, training, checkpoints) and the per-example evaluation of a model family."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from hf_reference import hf_continuation_logprob, hf_greedy_tokens
from transformers import AutoModelForCausalLM

from probes import load
from probes.core.loading import parameter_counts
from probes.pipelines.ladder import evaluate_ladder, train_ladder
from probes.pipelines.scale import evaluate_family
from probes.probing.datasets.base import DatasetError
from probes.probing.datasets.synthetic import addition, make_task, recall
from probes.scale.evaluate import FamilyMember, GenerationTask, evaluate_task
from probes.scale.ladder import LadderConfig, Rung, TrainingStream, char_tokenizer

# --- synthetic tasks --------------------------------------------------------------------------------------------------


def test_addition_examples_are_right():
    for ex in addition(200, digits=3, seed=1):
        a, b = map(int, ex["prompt"].rstrip("=").split("+"))
        assert ex["target"] == str(a + b).zfill(4)[::-1]
        assert ex["options"][ex["answer_index"]] == ex["target"]
        assert len(set(ex["options"])) == 4 and all(len(o) == 4 for o in ex["options"])


def test_recall_examples_are_right():
    for ex in recall(200, pairs=6, seed=1):
        context, key = ex["prompt"].split("|")
        pairs = dict(zip(context[::2], context[1::2]))
        assert len(pairs) == 6 and pairs[key] == ex["target"]
        assert sorted(ex["options"]) == sorted(pairs.values())
        assert ex["options"][ex["answer_index"]] == ex["target"]


def test_synthetic_task_errors():
    with pytest.raises(DatasetError, match="unknown synthetic task 'multiply'"):
        make_task("multiply", 3)
    with pytest.raises(DatasetError, match="2 to 10"):
        recall(3, pairs=11)


def test_char_tokenizer_is_one_token_per_character():
    tok = char_tokenizer()
    ids = tok("123+456=9750", add_special_tokens=False)["input_ids"]
    assert len(ids) == 12 and tok.decode(ids) == "123+456=9750"
    assert tok.pad_token_id == 0 and tok.bos_token_id == 1
    assert tok("12")["input_ids"] == [1, *tok("12", add_special_tokens=False)["input_ids"]]  # BOS, as in training


def test_training_stream_makes_right_answers_and_labels_only_answers():
    tok = char_tokenizer()
    stream = TrainingStream(LadderConfig(batch_size=16, train_queries=3), torch.Generator().manual_seed(0))
    ids, labels = stream.batch()
    for row, lab in zip(ids.tolist(), labels.tolist()):
        text = tok.decode([i for i in row if i > 1])
        answers = "".join(tok.convert_ids_to_tokens([x for x in lab if x != -100]))
        if "+" in text:
            prompt, total = text.split("=")
            a, b = map(int, prompt.split("+"))
            assert total == answers == str(a + b).zfill(4)[::-1]
        else:
            context, queries = text.split("|")
            pairs = dict(zip(context[::2], context[1::2]))
            assert answers == "".join(pairs[k] for k in queries[::2]) and len(answers) == 3


# --- training ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_ladder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ladder")
    config = LadderConfig.tiny()
    return out, config, train_ladder(out, config, progress=False)


def test_ladder_saves_hf_folders_with_checkpoints(tiny_ladder):
    out, config, folders = tiny_ladder
    assert len(folders) == 5
    sizes = []
    for folder in folders:
        meta = json.loads((folder / "ladder.json").read_text())
        assert meta["step"] == config.steps and (folder / "model.safetensors").exists()
        assert [c.name for c in sorted((folder / "checkpoints").iterdir())] == ["step-10", "step-20"]
        lm = load(folder)  # loads like any model, with its tokenizer
        assert lm.adapter.name == "gpt2" and parameter_counts(lm.model)[0] == meta["parameters"]
        sizes.append(meta["parameters"])
    assert sizes == sorted(sizes) and sizes[-1] / sizes[0] > 30


def test_default_ladder_spans_thirty_times_in_parameters():
    from probes.scale.ladder import make_model

    config = LadderConfig()
    sizes = [make_model(r, len(char_tokenizer())).num_parameters() for r in config.rungs]
    assert len(sizes) >= 5 and sizes == sorted(sizes) and sizes[-1] / sizes[0] >= 30


def test_ladder_rerun_keeps_trained_rungs(tiny_ladder):
    out, config, folders = tiny_ladder
    before = [(f / "model.safetensors").stat().st_mtime_ns for f in folders]
    train_ladder(out, config, progress=False)
    assert json.loads((out / "ladder.json").read_text())["trained_now"] == []
    assert [(f / "model.safetensors").stat().st_mtime_ns for f in folders] == before


def test_training_is_deterministic(tmp_path):
    config = LadderConfig(rungs=(Rung(1, 8, 2),), steps=5, batch_size=8, warmup=1, checkpoints=())
    a = train_ladder(tmp_path / "a", config, progress=False)[0]
    b = train_ladder(tmp_path / "b", config, progress=False)[0]
    wa = AutoModelForCausalLM.from_pretrained(a).state_dict()
    wb = AutoModelForCausalLM.from_pretrained(b).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_workers_train_the_same_models_as_one_thread_here(tmp_path):
    """Two one-thread worker processes give, bit for bit, what one-thread training in this process gives,
    checkpoints included; a re-run keeps what was finished and trains the rest in workers."""
    import shutil
    from dataclasses import replace

    rungs = (Rung(1, 8, 2), Rung(1, 16, 2), Rung(2, 16, 2))
    config = LadderConfig(rungs=rungs, steps=6, batch_size=8, warmup=1, checkpoints=(3,), replicates=1, threads=1)
    here = train_ladder(tmp_path / "here", config, progress=False)
    parallel = replace(config, processes=2)
    there = train_ladder(tmp_path / "workers", parallel, progress=False)
    summary = json.loads((tmp_path / "workers" / "ladder.json").read_text())
    assert summary["processes"] == 2 and len(summary["trained_now"]) == 3
    for a, b in zip(here, there, strict=True):
        for sub in ["", "checkpoints/step-3"]:
            wa = AutoModelForCausalLM.from_pretrained(a / sub).state_dict()
            wb = AutoModelForCausalLM.from_pretrained(b / sub).state_dict()
            assert all(torch.equal(wa[k], wb[k]) for k in wa)
        assert json.loads((a / "ladder.json").read_text()) == json.loads((b / "ladder.json").read_text())
    assert not list((tmp_path / "workers").glob("*.staging"))

    kept = (there[0] / "model.safetensors").stat().st_mtime_ns
    for folder in there[1:]:
        shutil.rmtree(folder)
    (tmp_path / "workers" / ".gpt2-l1-d16-r0.x.staging").mkdir()  # left by a killed run
    train_ladder(tmp_path / "workers", parallel, progress=False)
    summary = json.loads((tmp_path / "workers" / "ladder.json").read_text())
    assert summary["trained_now"] == [f.name for f in there[1:]]
    assert (there[0] / "model.safetensors").stat().st_mtime_ns == kept
    assert all((f / "model.safetensors").exists() for f in there)
    assert not list((tmp_path / "workers").glob(".*.staging"))


# --- evaluation -------------------------------------------------------------------------------------------------------


def test_greedy_outputs_and_logprobs_match_the_model(tiny_folders):
    """Independent check on a tiny GPT-2 with a BPE tokenizer: HF generate and HF's own loss."""
    lm = load(tiny_folders["gpt2"])
    examples = [
        {"prompt": "the cat", "target": " sat on", "options": [" sat on", " the"], "answer_index": 0},
        {"prompt": "a dog ran", "target": " home", "options": [" away", " home"], "answer_index": 1},
    ]
    rows = evaluate_task(lm, GenerationTask("t", examples))
    for ex, row in zip(examples, rows):
        n_new = len(lm.tokenizer(ex["target"], add_special_tokens=False)["input_ids"])
        assert row["generated"] == hf_greedy_tokens(lm, ex["prompt"], n_new)
        for option, score in zip(ex["options"], row["option_logprobs"]):
            assert score == pytest.approx(hf_continuation_logprob(lm, ex["prompt"], option), abs=1e-4)
        assert row["target_logprob"] == row["option_logprobs"][ex["answer_index"]]


def test_evaluate_family_writes_tables_and_resumes(tiny_ladder, tmp_path):
    out, config, folders = tiny_ladder
    task = GenerationTask("addition", make_task("addition", 40, seed=5), alphabet=10)
    specs = [FamilyMember(str(f), name=f.name, step=config.steps) for f in folders[:3]]
    table, scored = evaluate_family(specs, [task], tmp_path / "eval", family="tiny", progress=False)
    assert set(table["metric"]) == {
        "exact_match",
        "mc_accuracy",
        "token_accuracy",
        "token_edit_distance",
        "target_logprob",
        "brier",
    }
    assert set(table["n"]) == {40} and table["parameters"].nunique() == 3
    row = table[(table["model"] == folders[0].name) & (table["metric"] == "token_accuracy")].iloc[0]
    assert row["chance"] == pytest.approx(0.1)
    mine = scored[(scored["model"] == folders[0].name)]["token_accuracy"].mean()
    assert row["value"] == pytest.approx(mine)
    outputs = sorted((tmp_path / "eval" / "outputs").iterdir())
    stamps = [p.stat().st_mtime_ns for p in outputs]
    table2, _ = evaluate_family(specs, [task], tmp_path / "eval", family="tiny", progress=False)
    assert [p.stat().st_mtime_ns for p in outputs] == stamps  # nothing re-evaluated
    pd.testing.assert_frame_equal(table, table2)


@pytest.mark.slow
def test_evaluate_ladder_and_analyse(tiny_ladder):
    from analysis.scaling import analyse

    out, config, folders = tiny_ladder
    table, scored = evaluate_ladder(out, n=30, progress=False)
    assert sorted(table["step"].unique()) == [10, 20, config.steps]
    assert set(table["task"]) == {"addition", "recall"}
    verdicts = analyse(table, examples=scored, n_boot=20)
    assert len(verdicts) == 12 and set(verdicts["n_sizes"]) == {5}
    assert verdicts["verdict"].isin(["smooth", "jump", "mirage", "flat", "declines"]).all()
    # the evaluation records each model's weights hash, and the report shows it beside the scaling analysis
    from probes.pipelines.report import write_report
    from probes.pipelines.scale import run_scale
    from probes.pipelines.specs import ReportSpec, ScaleSpec

    record = json.loads((out / "eval" / "run.json").read_text())
    models = list(record["models"].values())
    assert [m["weights_sha256_16"] for m in models] == [load(m["source"]).fingerprint for m in models]
    run_scale(ScaleSpec(results=[str(out / "eval")], n_boot=10), out / "scale-report")
    text = write_report(ReportSpec(results=[str(out / "scale-report")]), out / "report.html").read_text()
    assert models[-1]["weights_sha256_16"] in text and "configuration of" in text


def test_the_toolkit_instruments_work_on_ladder_models(tiny_ladder):
    """Hooks, captures and ablations see a ladder model like any other GPT-2."""
    from probes import run_with_cache
    from probes.causal.ablation import ablate
    from probes.causal.components import parse_component

    out, config, folders = tiny_ladder
    lm = load(folders[-1])
    prompts = [ex["prompt"] for ex in make_task("addition", 4, seed=3)]
    clean, cache = run_with_cache(lm, prompts, "blocks.*.hook_resid_post")
    assert len(cache) == lm.shape.n_layers
    ids = lm.tokenizer(prompts, return_tensors="pt")["input_ids"].to(lm.device)
    with torch.no_grad():
        plain = lm.model(input_ids=ids).logits
        with ablate(lm, parse_component("L0.mlp", lm.shape), "zero"):
            ablated = lm.model(input_ids=ids).logits
    assert not torch.allclose(plain, ablated)
