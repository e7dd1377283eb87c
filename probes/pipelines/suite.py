"""Probe suites: a spec (TOML file) says what to probe; ``run_suite`` runs it into a run folder, resumably.

    results = run_suite("quick", "runs/quick")                     # a ready suite, or a TOML path, or a SuiteSpec

A suite is units, one per (model, task, probe, control), each committed with its rows as one
file under ``OUT/units/`` (``probes.runtime.run``), so a killed run resumes at the first unit
not done; ``OUT/results.csv`` is rebuilt from the units, in the suite's order. Each
``[[ablations]]`` entry is an ablation study in ``OUT/ablations/<i>/`` whose rows join the table, and so
is each ``[[attributions]]``, ``[[circuits]]`` and ``[[dictionaries]]`` entry (``OUT/attributions/<i>/``,
``OUT/circuits/<i>/``, ``OUT/dictionaries/<i>/``: a trained dictionary and its quality rows).
``OUT/run.json`` records the spec, seed, package versions and every model's weights hash.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from analysis.results import read_results
from probes.core.data import DatasetError
from probes.core.loading import resolve
from probes.pipelines.specs import SuiteSpec, TaskFile, load_suite
from probes.probing.datasets import ProbingDataset, generate
from probes.probing.datasets.loaders import load_conllu, load_table
from probes.probing.study import ProbingTask
from probes.runtime.cluster import Job, ModelRef, Worker, run_jobs
from probes.runtime.run import RunFolder, unit_file


def model_reference(name: str) -> tuple[str, str | None]:
    """A suite's model entry: an alias, a folder or a hub id, optionally ``id@revision`` (e.g. Pythia's
    ``EleutherAI/pythia-160m@step1000``; hub ids cannot contain '@')."""
    if "@" in name and not Path(name).exists():
        model, revision = name.rsplit("@", 1)
        return model, revision
    return name, None


def task_dataset(task: str | TaskFile, spec: SuiteSpec) -> ProbingDataset:
    """A task's sentences and labels, split into train and test; one too small to split is an error."""
    if isinstance(task, str):
        ds = generate(
            task, spec.n_examples, seed=spec.seed, lexical_split=spec.lexical_split, test_fraction=spec.test_fraction
        )
    else:
        path = Path(task.path)
        if path.suffix.lower() == ".conllu":
            ds = load_conllu(path, task.label or "upos", name=task.name)
        else:
            ds = load_table(path, label=task.label or "label", name=task.name)
        ds = ds.with_split(spec.test_fraction, spec.seed)
    for part in ("train", "test"):
        sentences = [i for i, s in enumerate(ds.split) if s == part]
        labels = {str(l) for i in sentences for l in (ds.labels[i] if ds.level == "word" else [ds.labels[i]])}
        if len(labels) < (2 if part == "train" else 1):
            raise DatasetError(
                f"task {ds.name!r}: {len(ds)} sentences give {len(sentences)} {part} sentences with "
                f"{len(labels)} class(es) at test_fraction {spec.test_fraction}; a probe needs both "
                "splits, and two classes to train on: give more sentences"
            )
    return ds


def units(spec: SuiteSpec) -> list[tuple[str, str, str, str]]:
    """(model, task, probe, control) of every probing unit, in the suite's order."""
    return [
        (m, t, p, c)
        for m in spec.models
        for t in spec.task_names
        for p in spec.probes
        for c in ["none", *spec.controls]
    ]


def suite_models(spec: SuiteSpec) -> dict[str, dict[str, Any]]:
    """Every model a suite uses (probed or ablated), as run.json records them: weights hash, source, revision."""
    entries = [_entry(e, spec) for e in [*spec.ablations, *spec.attributions, *spec.circuits, *spec.dictionaries]]
    names = list(dict.fromkeys([*spec.models, *(entry.model_label for entry in entries)]))
    out = {}
    for name in names:
        model, revision = model_reference(name)
        out[name] = resolve(model, revision).identity()
    return out


def _entry(entry: Any, spec: SuiteSpec) -> Any:
    """A study entry as it runs: the suite's seed unless its own, ``model = "id@revision"`` split as in ``models``."""
    source, revision = model_reference(entry.model)
    seed = entry.seed if "seed" in entry.model_fields_set else spec.seed
    return entry.model_copy(update={"seed": seed, "model": source, "revision": revision or entry.revision})


def _probe_job(worker: Worker, spec: SuiteSpec, model: str, task: str, probe: str, control: str) -> pd.DataFrame:
    """One probing unit's rows; the worker keeps the last (model, task)'s dataset and features for the next unit."""
    lm = worker.model(model)  # first: loading another model clears what the worker kept for the last one
    by_name = dict(zip(spec.task_names, spec.tasks))
    # one (model, task) in memory at a time: the plan visits its units together
    kept = worker.keep(
        "task", (model, task), lambda: ProbingTask(lambda: lm, spec, lambda: task_dataset(by_name[task], spec))
    )
    return kept.unit(model, task, probe, control)


def _study_job(worker: Worker, kind: str, entry: Any, folder: Path, progress: bool) -> pd.DataFrame:
    """One ``[[ablations]]``, ``[[attributions]]``, ``[[circuits]]`` or ``[[dictionaries]]`` entry, run into its
    own (resumable) folder."""
    from probes.pipelines.ablation_study import run_ablation
    from probes.pipelines.attribute import run_attribute
    from probes.pipelines.sae import run_sae_train

    runners: dict[str, Callable[..., Any]] = {"ablation": run_ablation, "dictionary": run_sae_train}
    runner = runners.get(kind, run_attribute)
    runner(entry, folder, lm=worker.model(entry.model_label), progress=progress)
    return read_results(folder / "results.csv")


def suite_jobs(spec: SuiteSpec, out: Path, *, progress: bool = False) -> tuple[list[Job], dict[str, tuple[str, ...]]]:
    """Every unit of the suite as a job keyed by its unit file, in the suite's order, and the metrics each study
    unit may leave NaN."""
    from probes.pipelines.attribute import UNDEFINED_WHEN_NOISY

    jobs = [
        Job(unit_file("|".join(u)), _probe_job, (spec, *u), group=f"{u[0]}|{u[1]}", model=u[0]) for u in units(spec)
    ]
    may_be_nan: dict[str, tuple[str, ...]] = {}
    studies: list[tuple[str, Sequence[Any], tuple[str, ...]]] = [
        ("ablation", spec.ablations, ("additivity_r2",)),
        ("attribution", spec.attributions, UNDEFINED_WHEN_NOISY),
        ("circuit", spec.circuits, UNDEFINED_WHEN_NOISY),
        ("dictionary", spec.dictionaries, ("explained_variance", "cosine")),
    ]
    for kind, entries, nan_ok in studies:
        for i, entry in enumerate(entries):
            name = unit_file(f"{kind}|{i}|{entry.model}")
            entry = _entry(entry, spec)
            folder = out / ("dictionaries" if kind == "dictionary" else f"{kind}s") / str(i)
            jobs.append(Job(name, _study_job, (kind, entry, folder, progress), group=name, model=entry.model_label))
            may_be_nan[name] = nan_ok
    return jobs, may_be_nan


def run_suite(
    spec: SuiteSpec | str | os.PathLike,
    out: str | os.PathLike,
    *,
    progress: bool = True,
) -> pd.DataFrame:
    """Run every unit of the suite not yet done in ``out``; return the whole results table.

    With ``spec.workers`` > 1 or ``spec.ray_address`` the units run on Ray actors (``probes.runtime.cluster``);
    the folder, its rows and their order are those of a sequential run.
    """
    spec = spec if isinstance(spec, SuiteSpec) else load_suite(Path(spec))
    out = Path(out)
    models = suite_models(spec)
    how = spec.spread()
    device = how.place(spec.device)
    refs = {}
    for name, identity in models.items():
        source, revision = model_reference(name)
        fingerprint = identity["weights_sha256_16"]
        refs[name] = ModelRef(
            source, revision, fingerprint, device=device, device_map=spec.device_map, prepend_bos=spec.prepend_bos
        )
    details = how.details()
    with RunFolder.open(out, command="run", spec=spec.record(), seed=spec.seed, models=models, details=details) as run:
        jobs, may_be_nan = suite_jobs(spec, out, progress=progress and not how.distributed)
        names = [job.key for job in jobs]
        todo = [job for job in jobs if not run.done(job.key)]
        with tqdm(
            total=len(jobs), initial=len(jobs) - len(todo), desc=f"suite {spec.name}", unit="unit", disable=not progress
        ) as bar:
            for job, frame in run_jobs(todo, refs, how):
                run.commit_frame(job.key, frame, may_be_nan=may_be_nan.get(job.key, ()))
                run.write_frame("results.csv", run.collect(names))
                bar.update(1)
        run.write_frame("results.csv", run.collect(names))
    return read_results(out / "results.csv")


def describe(results: pd.DataFrame, where: str | os.PathLike | None = None) -> str:
    """What ``probes run`` and ``probes show`` print: the per-task layer profile and the ablation summary."""
    from analysis.tables import ablation_table, for_display, profile_table

    lines = []
    table, ablations = profile_table(results), ablation_table(results)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        if len(table):
            lines += [
                "\nper task: best layer (0 = embeddings), its test accuracy and 95% bootstrap CI, expected layer,",
                "majority baseline, the same probe on a randomly initialised model, selectivity, MDL compression\n",
                for_display(table).to_string(index=False),
            ]
        if len(ablations):
            lines += [
                "\nablation studies: clean behaviour, the largest single-component effect, and the additivity R^2",
                "of the top components' joint effects (1: reduces to separable parts; low: lives in interaction)\n",
                for_display(ablations).to_string(index=False),
            ]
    if where is not None:
        lines.append(f"\nresults: {Path(where) / 'results.csv'} ({len(results)} rows)")
    return "\n".join(lines)
