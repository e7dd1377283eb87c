"""Suites on Ray: the same rows in the same order as a sequential run, a killed worker's unit re-run, a failing
unit's own error, thread pinning, and no Ray import on the sequential path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_run import small_suite

from analysis.results import read_results
from probes.pipelines.ablation_study import run_ablation
from probes.pipelines.attribute import run_attribute
from probes.pipelines.specs import AblationSpec, AttributeSpec, SpecError, SuiteSpec, make
from probes.pipelines.suite import run_suite
from probes.runtime.cluster import ClusterError, Job, Workers, cpu_budget, pick, pinned_threads, run_jobs

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def jobs_travel_by_value():
    """This module is not importable on the workers (tests/ is not a package on their path): send its job
    functions by value."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def square(worker, x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def die_once(worker, x: int, marker: str) -> tuple[int, int]:
    """Kills its own worker process (as the OOM killer would) the first time any job gets here."""
    if x == 2 and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x, os.getpid()


def fails(worker, x: int) -> int:
    if x == 1:
        raise ZeroDivisionError("a bug in a unit")
    if x == 2:
        raise SpecError("units.toml: key 'n' should be positive")
    return x


@pytest.mark.slow
def test_a_suite_on_two_workers_gives_the_rows_of_a_sequential_run(tiny_folders, tmp_path):
    spec = small_suite(tiny_folders)  # probing units, an ablation study, an attribution and a circuit
    sequential = run_suite(spec.model_copy(update={"threads": 1}), tmp_path / "sequential", progress=False)
    spread = spec.model_copy(update={"workers": 2, "threads": 1})
    distributed = run_suite(spread, tmp_path / "workers", progress=False)
    pd.testing.assert_frame_equal(distributed, sequential)
    pd.testing.assert_frame_equal(read_results(tmp_path / "workers" / "results.csv"), sequential)
    for study in ("ablations/0", "attributions/0", "circuits/0"):
        assert (tmp_path / "workers" / study / "run.json").exists()  # each study's own folder, as sequentially
    # how the work was spread is no setting of the results: the run resumes sequentially, with nothing to do
    again = run_suite(spec, tmp_path / "workers", progress=False)
    pd.testing.assert_frame_equal(again, sequential)


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_its_unit_run_again(tmp_path):
    marker = tmp_path / "killed"
    jobs = [Job(str(x), die_once, (x, str(marker)), group=str(x % 2)) for x in range(6)]
    results = {job.key: value for job, value in run_jobs(jobs, {}, Workers(workers=2, threads=1))}
    assert {k: v[0] for k, v in results.items()} == {str(x): x * x for x in range(6)}
    assert marker.exists() and int(marker.read_text()) != results["2"][1]  # re-run in a new process


def test_a_free_worker_keeps_to_its_group_then_its_model_then_a_model_no_one_holds():
    jobs = [Job(f"{m}{t}{u}", square, group=f"{m}|{t}", model=m) for m in "ab" for t in "xy" for u in "12"]
    by = {j.key: j for j in jobs}
    waiting = list(jobs)
    assert pick(waiting, {}, 0).key == "ax1"  # the plan's first job
    assert pick(waiting, {0: by["ax1"]}, 1).key == "bx1"  # a model no other worker holds
    assert pick(waiting, {0: by["ax1"], 1: by["bx1"]}, 2).key == "ay1"  # else a group no one holds
    assert pick(waiting, {0: by["ax1"], 1: by["ay1"]}, 0).key == "ax1"  # its own group first
    rest = [by[k] for k in ("ay2", "bx1", "bx2", "by1", "by2")]
    assert pick(rest, {0: by["ax2"], 1: by["bx1"]}, 0).key == "ay2"  # a free group on the model it holds...
    later = [by[k] for k in ("bx2", "by1", "by2")]
    assert pick(later, {0: by["ay2"], 1: by["bx1"]}, 0).key == "by1"  # ...else any free group
    # with no group left to start, the last job of the largest group another holds, if two or more wait
    x0, x1, x2, x3, y0, y1, y2 = (
        Job(f"{g}{u}", square, group=g) for g, u in [*zip("xxxx", "0123"), *zip("yyy", "012")]
    )
    assert pick([x1, x2, x3, y1, y2], {0: by["by2"], 1: x0, 2: y0}, 0).key == "x3"
    assert pick([x2, x3, y2], {0: by["by2"], 1: x0, 2: y0}, 0).key == "x3"
    assert pick([by["bx2"]], {0: by["by2"], 1: by["bx1"]}, 0) is None  # one left: its owner takes it soon
    loose = [Job(str(x), square, (x,)) for x in range(3)]  # no group: each its own
    assert pick(loose[1:], {0: loose[0]}, 1).key == "1"


@pytest.mark.slow
def test_jobs_run_on_the_workers_not_here():
    jobs = [Job(str(x), square, (x,), group=str(x // 3)) for x in range(6)]
    results = {job.key: value for job, value in run_jobs(jobs, {}, Workers(workers=2, threads=1))}
    assert {k: v[0] for k, v in results.items()} == {str(x): x * x for x in range(6)}
    assert os.getpid() not in {v[1] for v in results.values()}
    loose = [Job(str(x), square, (x,)) for x in range(4)]  # no group: each its own, so both workers take some
    assert len({value[1] for _, value in run_jobs(loose, {}, Workers(workers=2, threads=1))}) == 2


@pytest.mark.slow
def test_a_failing_unit_stops_the_run_with_its_own_error():
    with pytest.raises(ZeroDivisionError, match="a bug in a unit"):
        list(run_jobs([Job("0", fails, (0,)), Job("1", fails, (1,))], {}, Workers(workers=2, threads=1)))
    with pytest.raises(SpecError, match=r"^units.toml: key 'n' should be positive$"):
        list(run_jobs([Job("2", fails, (2,))], {}, Workers(workers=2, threads=1)))


def test_the_sequential_path_runs_in_order_here_and_pins_threads():
    import torch

    before = torch.get_num_threads()
    seen = []

    def record(worker, x):
        seen.append(torch.get_num_threads())
        return x, os.getpid()

    out = list(run_jobs([Job(str(x), record, (x,)) for x in range(3)], {}, Workers(threads=1)))
    assert [job.key for job, _ in out] == ["0", "1", "2"] and {v[1] for _, v in out} == {os.getpid()}
    assert seen == [1, 1, 1] and torch.get_num_threads() == before
    with pinned_threads() as threads:
        assert threads == cpu_budget() == torch.get_num_threads()
    assert 1 <= cpu_budget() <= (os.cpu_count() or 1)


@pytest.mark.slow
def test_the_sequential_path_never_imports_ray(tiny_folders, tmp_path):
    script = (
        "import sys; from probes.pipelines.suite import run_suite; from probes.pipelines.specs import SuiteSpec; "
        f"run_suite(SuiteSpec(models=[{str(tiny_folders['gpt2'])!r}], tasks=['pos'], controls=[], n_examples=40, "
        f"n_boot=20, Cs=[1.0]), {str(tmp_path / 'out')!r}, progress=False); "
        "assert 'ray' not in sys.modules, 'ray was imported'"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_worker_options_are_validated_and_not_part_of_the_runs_settings():
    with pytest.raises(SpecError, match="workers"):
        make(SuiteSpec, {"workers": 0}, "s.toml")
    with pytest.raises(SpecError, match="gpus_per_worker"):
        make(SuiteSpec, {"gpus_per_worker": -1}, "s.toml")
    spread = make(SuiteSpec, {"workers": 2, "threads": 1, "ray_address": "auto", "gpus_per_worker": 2}, "s.toml")
    assert spread.record() == SuiteSpec().record()
    assert spread.spread() == Workers(workers=2, address="auto", threads=1, gpus=2)
    assert not Workers().distributed and Workers(workers=2).distributed and Workers(address="auto").distributed


def test_without_ray_the_flags_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    with pytest.raises(ClusterError, match=r"pip install 'emergence-probes\[ray\]'"):
        list(run_jobs([Job("0", square, (0,))], {}, Workers(workers=2)))


@pytest.mark.slow
@pytest.mark.parametrize("kind, screen", [("mean", None), ("resample", 4)])
def test_an_ablation_sweep_spread_over_workers_has_the_sequential_values(tiny_folders, tmp_path, kind, screen):
    study = {"model": str(tiny_folders["llama"]), "n": 8, "kind": kind, "components": "heads+mlps", "top_k": 3}
    study.update(screen=screen, permutations=2, interaction_samples=1, n_boot=10, threads=1)
    run_ablation(AblationSpec(**study), tmp_path / "sequential", progress=False)
    run_ablation(AblationSpec(**study, workers=2), tmp_path / "workers", progress=False)
    for name, read in (("stages/singles.csv", pd.read_csv), ("results.csv", read_results)):
        spread, alone = (read(tmp_path / run / name) for run in ("workers", "sequential"))
        pd.testing.assert_frame_equal(spread, alone)  # a chunk per layer on two workers: the same values
    assert len(pd.read_csv(tmp_path / "workers" / "stages/singles.csv")) == 2 * (4 + 1)  # 2 layers x (heads+mlp)
    # killed mid-sweep: one layer's chunk kept (marked), nothing after it; the resumed run computes the rest
    stages = tmp_path / "workers" / "stages"
    first = pd.read_csv(stages / "singles" / "0000.csv")
    for path in [*stages.rglob("*.*"), tmp_path / "workers" / "results.csv"]:
        path.unlink()
    first.assign(stderr=first["stderr"].where(first.index > 0, 123.0)).to_csv(stages / "singles/0000.csv", index=False)
    run_ablation(AblationSpec(**study, workers=2), tmp_path / "workers", progress=False)
    resumed, alone = (pd.read_csv(tmp_path / r / "stages/singles.csv") for r in ("workers", "sequential"))
    assert resumed["stderr"].iloc[0] == 123.0  # the kept chunk was read, not computed again
    pd.testing.assert_frame_equal(resumed.iloc[1:], alone.iloc[1:])


def test_a_suite_entry_may_not_spread_itself_and_missing_gpus_are_named():
    with pytest.raises(SpecError, match=r"\[\[ablations\]\] entry 1 sets workers: .*top of the file"):
        make(SuiteSpec, {"ablations": [{"model": "m", "workers": 2}]}, "s.toml")
    with pytest.raises(SpecError, match=r"\[\[circuits\]\] entry 1 sets ray_address, threads: .*top of the file"):
        make(SuiteSpec, {"circuits": [{"model": "m", "threads": 1, "ray_address": "auto"}]}, "s.toml")
    with pytest.raises(ClusterError, match="2 workers of 1 GPUs each need 2 GPUs and this machine has 0"):
        list(run_jobs([Job("0", square, (0,))], {}, Workers(workers=2, threads=1, gpus=1)))


@pytest.mark.slow
def test_dictionaries_in_a_suite_train_on_workers_as_they_do_here(tiny_folders, tmp_path):
    model = str(tiny_folders["llama"])
    entry = {"model": model, "texts": ["demo"], "expansion": 2, "k": 4, "tokens": 3000, "batch_size": 256}
    entry.update(n_boot=10, buffer=1024)
    sites = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    spec = make(SuiteSpec, {"tasks": [], "dictionaries": [{**entry, "site": s} for s in sites], "threads": 1}, "s")
    sequential = run_suite(spec, tmp_path / "sequential", progress=False)
    distributed = run_suite(spec.model_copy(update={"workers": 2}), tmp_path / "workers", progress=False)
    pd.testing.assert_frame_equal(distributed, sequential)  # the same training, step for step, on a worker
    assert set(sequential["site"]) == set(sites) and (sequential["model"] == model).all()
    assert (tmp_path / "workers" / "dictionaries" / "1" / "dictionary" / "cfg.json").exists()  # SAELens's format


def _letter_pairs(path: Path, n: int) -> str:
    """Prompt pairs that differ in their last letter (one token each with the tiny tokenizers)."""
    rng = np.random.default_rng(0)
    letters = list("abcdefgh")
    with path.open("w") as fh:
        for _ in range(n):
            words = list(rng.choice(letters, 5))
            corrupt = [*words[:-1], "h" if words[-1] != "h" else "a"]
            pair = {"clean": " ".join(words), "corrupt": " ".join(corrupt), "answer": "x", "wrong": "y"}
            fh.write(json.dumps(pair) + "\n")
    return path.name


@pytest.mark.slow
@pytest.mark.parametrize("method, kind", [("atp*", "mean"), ("eap-ig", "patch")])
def test_attribution_passes_spread_over_workers_have_the_sequential_values(
    tiny_folders, tmp_path, monkeypatch, method, kind
):
    monkeypatch.chdir(tmp_path)  # the pairs' file named as a user would, relative to here: the workers find it
    spec = {"model": str(tiny_folders["llama"]), "n": 70 if kind == "mean" else 100, "kind": kind, "method": method}
    spec.update(steps=2, verify_top=3, verify_sample=2, threads=1, exact=method == "atp*")
    if kind == "patch":
        spec["data"] = _letter_pairs(tmp_path / "pairs.jsonl", 100)
    tables = ["stages/exact.csv"] if method == "atp*" else []
    table = "stages/edges.csv" if method == "eap-ig" else "stages/attribution.csv"
    run_attribute(AttributeSpec(**spec), tmp_path / "sequential", progress=False)
    run_attribute(AttributeSpec(**spec, workers=2), tmp_path / "workers", progress=False)
    passes = sorted((tmp_path / "workers" / "stages" / "passes").glob("*.npz"))
    assert len(passes) == 2  # a job per batch of 64 (of the pairs, those that tokenise alike)
    readers = [(t, pd.read_csv) for t in [table, "stages/verify.csv", *tables]] + [("results.csv", read_results)]
    for name, read in readers:
        spread, alone = (read(tmp_path / run / name) for run in ("workers", "sequential"))
        pd.testing.assert_frame_equal(spread, alone)
    assert "workers" not in json.loads((tmp_path / "workers" / "run.json").read_text())["spec"]
    # killed after one batch: that batch's arrays kept (marked), nothing after; the resumed run computes the rest
    first, second = dict(np.load(passes[0])), dict(np.load(passes[1]))
    for path in [*passes[1:], tmp_path / "workers" / table, tmp_path / "workers" / "stages/verify.csv"]:
        path.unlink()
    key = "per_example" if method == "eap-ig" else "estimates"
    first[key] = first[key] * 0 + 7.0
    np.savez(passes[0], **first)
    run_attribute(AttributeSpec(**spec, workers=2), tmp_path / "workers", progress=False)
    resumed, alone = (pd.read_csv(tmp_path / r / table) for r in ("workers", "sequential"))
    assert not np.allclose(resumed["estimate"], alone["estimate"])  # the kept batch was read, not computed again
    for name, value in second.items():  # and the batches left were computed again, as before
        np.testing.assert_array_equal(np.load(passes[1])[name], value)


def test_workers_of_a_cuda_attribution_ask_ray_for_a_gpu(tiny_folders, tmp_path, monkeypatch):
    """The Workers that place the model on CUDA (and so ask for a GPU each) are those the passes are spread with."""
    from probes.core.loading import load
    from probes.pipelines import attribute

    seen = {}

    def no_ray(jobs, models, how):
        seen.update(models=models, how=how)
        raise KeyboardInterrupt  # stop before anything runs

    monkeypatch.setattr(attribute, "run_jobs", no_ray)
    model = str(tiny_folders["llama"])
    spec = AttributeSpec(model=model, n=8, method="atp", device="cuda:1", workers=2, verify_top=1, verify_sample=0)
    with pytest.raises(KeyboardInterrupt):
        run_attribute(spec, tmp_path / "run", lm=load(model), progress=False)  # the model itself stays on the CPU
    assert seen["models"]["model"].device == "cuda" and seen["how"].gpus == 1
