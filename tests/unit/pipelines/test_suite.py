"""Probe suites: validation, an end-to-end run, resume, and the real minilm."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.tables import profile_table
from probes.cli import main
from probes.pipelines.specs import SpecError, SuiteSpec, load_suite, make, ready_suites
from probes.pipelines.suite import run_suite
from probes.probing.study import ProbingTask
from probes.runtime.run import RunError


def validate(raw: dict, where: str = "suite") -> SuiteSpec:
    return make(SuiteSpec, raw, where)


def tiny_suite(folder, **overrides) -> SuiteSpec:
    config = dict(
        name="tiny",
        models=[str(folder)],
        tasks=["pos", "subject_number"],
        probes=["logistic", "ridge"],
        controls=["control_task", "random_weights", "mdl"],
        n_examples=60,
        Cs=[1.0],
        n_boot=200,
        batch_size=16,
    )
    config.update(overrides)
    return validate(config)


def done_units(folder) -> int:
    return len(list((folder / "units").glob("*.csv")))


def test_model_entries_may_name_a_revision(tmp_path):
    from probes.pipelines.suite import model_reference

    assert model_reference("EleutherAI/pythia-160m@step1000") == ("EleutherAI/pythia-160m", "step1000")
    assert model_reference("minilm") == ("minilm", None)
    folder = tmp_path / "model@v2"
    folder.mkdir()
    assert model_reference(str(folder)) == (str(folder), None)  # a folder's own name is kept whole


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"taks": ["pos"]}, "unknown key 'taks' (did you mean 'tasks'?)"),
        ({"tasks": ["poss"]}, "unknown task 'poss' (did you mean 'pos'?)"),
        ({"tasks": [{"path": "x.conllu"}]}, "needs 'name' and 'path'"),
        ({"probes": ["mlp"]}, "unknown probe 'mlp'; choose from logistic, ridge"),
        ({"controls": ["shuffle"]}, "unknown control 'shuffle'"),
        ({"site": "attn.hook_pattern"}, "'attn.hook_pattern' is not probeable"),
        ({"layers": "some"}, 'use "all" or a list'),
        ({"n_examples": "many"}, "key 'n_examples' should be a whole number, got 'many'"),
        ({"seed": True}, "key 'seed' should be a whole number"),
        ({"layers": 3}, "key 'layers' should be a string or a list"),
        ({"models": []}, "list at least one model"),
        ({"test_fraction": 1.5}, "between 0 and 1"),
    ],
)
def test_validation_names_the_key_and_the_fix(raw, message):
    with pytest.raises(SpecError) as info:
        validate(raw, "s.toml")
    assert message in str(info.value) and str(info.value).startswith("s.toml")


def test_ready_suites_validate(tmp_path):
    assert {"default", "quick"} <= set(ready_suites())
    for name in ready_suites():
        load_suite(name)
    bad = tmp_path / "bad.toml"
    bad.write_text("tasks = [pos")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_suite(bad)


def test_run_writes_tidy_results_and_provenance(tiny_folders, tmp_path):
    suite = tiny_suite(tiny_folders["bert"], device="cpu")
    results = run_suite(suite, tmp_path, progress=False)
    assert {"model", "task", "site", "layer", "probe", "control", "metric", "value", "ci_low", "ci_high"} <= set(
        results.columns
    )
    acc = results[(results["metric"] == "accuracy") & results["control"].isna()]
    assert len(acc) == 2 * 2 * 3  # tasks x probes x layers (embeddings + 2 blocks)
    assert ((acc["ci_low"] <= acc["value"]) & (acc["value"] <= acc["ci_high"])).all()
    assert set(results["control"].dropna()) == {"control_task", "random_weights", "mdl"}
    assert (results[results["metric"] == "compression"]["value"] > 0).all()
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["seed"] == 0 and record["spec"]["n_examples"] == 60 and record["command"] == "run"
    assert record["models"][str(tiny_folders["bert"])]["weights_sha256_16"]
    assert record["spec"]["device"] == "cpu"
    assert record["environment"]["packages"]["scikit-learn"]
    table = profile_table(results)
    assert len(table) == 4 and table["best_layer"].between(0, 2).all()


def test_resume_skips_finished_units(tiny_folders, tmp_path, monkeypatch):
    suite = tiny_suite(tiny_folders["gpt2"], probes=["logistic"], controls=["control_task"])
    real_rows = ProbingTask.rows
    calls = []

    def failing_rows(self, probe, control):
        calls.append(control)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user stops the run
        return real_rows(self, probe, control)

    monkeypatch.setattr(ProbingTask, "rows", failing_rows)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, tmp_path, progress=False)
    assert done_units(tmp_path) == 2
    calls.clear()
    monkeypatch.setattr(ProbingTask, "rows", lambda self, p, c: calls.append(c) or real_rows(self, p, c))
    results = run_suite(suite, tmp_path, progress=False)
    assert len(calls) == 2  # only the two unfinished units ran
    assert done_units(tmp_path) == 4
    assert results.groupby(["task", "control"], dropna=False).size().shape[0] == 4
    calls.clear()
    run_suite(suite, tmp_path, progress=False)
    assert calls == []
    with pytest.raises(RunError, match="other settings"):
        run_suite(tiny_suite(tiny_folders["gpt2"], seed=1), tmp_path, progress=False)


def test_user_data_task_from_conllu(tiny_folders, tmp_path):
    conllu = tmp_path / "d.conllu"
    lines = []
    for i in range(40):
        words = [
            ("the", "DET"),
            ("dogs" if i % 2 else "dog", "NOUN"),
            ("run" if i % 2 else "runs", "VERB"),
            (".", "PUNCT"),
        ]
        lines += [f"{j + 1}\t{w}\t{w}\t{t}\t_\t_\t0\tdep\t_\t_" for j, (w, t) in enumerate(words)] + [""]
    conllu.write_text("\n".join(lines))
    suite = tiny_suite(
        tiny_folders["llama"],
        tasks=[{"name": "ud", "path": str(conllu), "label": "upos"}],
        probes=["logistic"],
        controls=[],
    )
    results = run_suite(suite, tmp_path / "out", progress=False)
    assert set(results["task"]) == {"ud"}


def test_cli_run_and_show(tiny_folders, tmp_path, capsys):
    toml = tmp_path / "s.toml"
    toml.write_text(
        f'models = ["{tiny_folders["gpt2"]}"]\ntasks = ["tense"]\ncontrols = []\nn_examples = 40\nn_boot = 100\n'
    )
    assert main(["run", str(toml), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "best_layer" in out and "tense" in out
    assert main(["show", str(tmp_path / "out")]) == 0


@pytest.mark.integration
def test_minilm_part_of_speech_is_readable_beyond_baselines(tmp_path):
    suite = validate(
        {
            "name": "pos-check",
            "models": ["minilm"],
            "tasks": ["pos"],
            "controls": ["random_weights"],
            "n_examples": 300,
            "layers": [0, 3, 6],
        }
    )
    results = run_suite(suite, tmp_path, progress=False)
    acc = results[(results["metric"] == "accuracy")]
    trained = acc[acc["control"].isna()].set_index("layer")["value"]
    random_init = acc[acc["control"] == "random_weights"].set_index("layer")["value"]
    majority = results[results["metric"] == "majority_baseline"]["value"].iloc[0]
    assert trained.max() > majority + 0.5  # far above the majority baseline
    assert trained[3] > random_init[3] + 0.1  # and above the same architecture untrained


def test_a_study_entry_may_name_a_checkpoint_as_models_do():
    from probes.pipelines.specs import AblationSpec
    from probes.pipelines.suite import _entry

    suite = validate({"seed": 3, "ablations": [{"model": "EleutherAI/pythia-160m@step1000"}]})
    entry = _entry(suite.ablations[0], suite)
    assert (entry.model, entry.revision, entry.seed) == ("EleutherAI/pythia-160m", "step1000", 3)
    assert entry.model_label == "EleutherAI/pythia-160m@step1000"  # the rows' model: one per checkpoint
    own = _entry(AblationSpec(model="m", revision="v2", seed=7), suite)
    assert (own.model, own.revision, own.seed, own.model_label) == ("m", "v2", 7, "m@v2")


def test_a_suite_may_spread_each_model_with_a_device_map(tiny_folders, tmp_path, monkeypatch):
    import probes.core.loading as models

    with pytest.raises(SpecError, match="give device or device_map, not both"):
        validate({"device": "cpu", "device_map": "auto"})
    placements, real_load = [], models.load

    def load(*args, **kwargs):  # the real loader, its placement noted
        placements.append(kwargs.get("device_map"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(models, "load", load)
    folder, small = tiny_folders["llama"], {"probes": ["logistic"], "controls": ["control_task"]}
    plain = run_suite(tiny_suite(folder, **small), tmp_path / "plain", progress=False)
    mapped = run_suite(tiny_suite(folder, device_map="auto", **small), tmp_path / "mapped", progress=False)
    assert placements[-1] == "auto" and None in placements  # the suite's workers load through accelerate's map
    pd.testing.assert_frame_equal(mapped, plain)  # on this CPU "auto" places every module here: the same rows
    assert json.loads((tmp_path / "mapped" / "run.json").read_text())["spec"]["device_map"] == "auto"
