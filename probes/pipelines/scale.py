"""Scale pipelines: train the toy ladder, evaluate a family of models, analyse capability against scale.

    folders = train_ladder("runs/ladder", LadderSpec(setting="tiny"))     # or a LadderConfig
    table, per_example = evaluate_ladder("runs/ladder", n=500)           # writes runs/ladder/eval/
    table, verdicts = run_scale(ScaleSpec(results=["runs/ladder/eval"]), "runs/ladder/scale")

Each writes a run folder (``probes.runtime.run``): the ladder's units are its models (one folder
per model and seed, with its checkpoints), an evaluation's are each model's per-example outputs,
so a killed run resumes with what was finished.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from analysis.readings import THRESHOLDS
from analysis.scale_plots import scale_figures
from analysis.scale_table import MULTIPLE_CHOICE, ScaleTableError, read_scale_inputs
from analysis.scaling import analyse
from probes.core.data import read_utf8
from probes.core.files import write_json
from probes.core.loading import load, parameter_counts, resolve
from probes.core.provenance import content_hash
from probes.pipelines.specs import LadderSpec, ScaleSpec
from probes.runtime.cluster import Job, ModelRef, Worker, Workers, run_jobs
from probes.runtime.run import LOCK, RunError, RunFolder, unit_file
from probes.scale.evaluate import FamilyMember, GenerationTask, family_tables, model_rows
from probes.scale.induction import INDUCTION_VOCAB, InductionFamily, induction_metrics, train_induction
from probes.scale.ladder import LadderConfig, Rung, ladder_tasks, train_rung

SETTINGS = {"default": LadderConfig, "demo": LadderConfig.demo, "tiny": LadderConfig.tiny}


def ladder_config(spec: LadderSpec) -> LadderConfig:
    config = SETTINGS[spec.setting]()
    processes = spec.processes or min(_cores(), 8)
    # one thread per process: the models are too small to use more, and processes must not compete for cores
    threads = 1 if processes > 1 else config.threads
    return replace(config, seed=spec.seed, steps=spec.steps or config.steps, processes=processes, threads=threads)


def _cores() -> int:
    """CPU cores this process may use (its affinity where the platform says it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _save(model: Any, tokenizer: Any, folder: Path, meta: dict) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one "Writing model shards" bar per checkpoint drowns the ladder's own
    try:
        model.save_pretrained(folder)
    finally:
        hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(folder)
    write_json(folder / "ladder.json", meta)


def train_ladder(
    out: str | os.PathLike, config: LadderConfig | LadderSpec | None = None, *, progress: bool = True
) -> list[Path]:
    """Train (or keep) every model of the ladder in the run folder ``out``; returns their folders, smallest first.

    A model's folder (final weights, ``ladder.json``, ``checkpoints/step-<k>``) appears whole when it finishes.
    """
    config = ladder_config(config) if isinstance(config, LadderSpec) else config or LadderConfig()
    if len(config.rungs) < 1 or config.steps < 1 or config.replicates < 1:
        raise RunError("a ladder needs at least one rung, one replicate and one training step")
    out = Path(out)
    members = config.members()
    with RunFolder.open(out, command="ladder train", spec=config.to_dict(), seed=config.seed) as run:
        todo = [m for m in members if not run.done(m[2])]
        start = time.perf_counter()
        with tqdm(total=len(todo) * config.steps, desc="ladder", unit="step", disable=not progress) as bar:
            if config.processes > 1 and len(todo) > 1:
                _train_in_processes(run, todo, config, bar)
            else:
                _train_here(run, todo, config, bar)
        run.write_text(
            "ladder.json",
            json.dumps(
                {
                    "config": config.to_dict(),
                    "models": [m[2] for m in members],
                    "trained_now": [m[2] for m in todo],
                    "seconds": round(time.perf_counter() - start, 1),
                    "processes": config.processes,
                    "threads": config.threads,
                },
                indent=1,
            ),
        )
    return [out / name for _, _, name in members]


def _train_here(run: RunFolder, todo: list[tuple[Rung, int, str]], config: LadderConfig, bar: tqdm) -> None:
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        for rung, replicate, name in todo:
            run.commit_dir(name, partial(_train_into, rung=rung, config=config, replicate=replicate, bar=bar))
    finally:
        torch.set_num_threads(threads)


def _train_into(folder: Path, rung: Rung, config: LadderConfig, replicate: int, bar: Any) -> None:
    """Train one model of the ladder, its checkpoints and final weights written into ``folder``."""

    def checkpoint(model: Any, tokenizer: Any, meta: dict) -> None:
        _save(model, tokenizer, folder / "checkpoints" / f"step-{meta['step']}", meta)

    model, tokenizer, meta = train_rung(rung, config, replicate=replicate, bar=bar, checkpoint=checkpoint)
    _save(model, tokenizer, folder, meta)


def _train_in_processes(run: RunFolder, todo: list[tuple[Rung, int, str]], config: LadderConfig, bar: tqdm) -> None:
    """``config.processes`` models at a time, each in its own process pinned to ``config.threads or 1`` torch
    threads (these models are too small to use two cores each: two one-thread processes train about 1.5 times
    as fast as one two-thread process). A worker trains into a staging folder inside the run folder, which is
    committed as the model's unit when it finishes, so a kill loses only the models in flight."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    for stale in run.path.glob(".*.staging"):  # from a killed run; the run folder's lock says none is live
        shutil.rmtree(stale, ignore_errors=True)
    context = multiprocessing.get_context("spawn")  # a forked child of a process that ran torch can hang
    progress = context.Queue()
    pool = ProcessPoolExecutor(
        config.processes, mp_context=context, initializer=_pin_worker, initargs=(config.threads or 1, progress)
    )
    pending: dict[Any, tuple[str, Path]] = {}
    try:
        # largest first, so the last model to finish is a small one
        for rung, replicate, name in sorted(todo, key=lambda m: (m[0].n_layer, m[0].n_embd), reverse=True):
            staging = Path(tempfile.mkdtemp(dir=run.path, prefix=f".{name}.", suffix=".staging"))
            pending[pool.submit(_train_in_worker, staging, rung, config, replicate)] = (name, staging)
        while pending:
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            _drain(progress, bar)
            for future in done:
                name, staging = pending.pop(future)
                future.result()  # a worker's error, with its traceback
                run.commit_dir(name, partial(_move_contents, staging))
        _drain(progress, bar)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for _, staging in pending.values():
            shutil.rmtree(staging, ignore_errors=True)


_WORKER_PROGRESS: Any = None


def _train_in_worker(folder: Path, rung: Rung, config: LadderConfig, replicate: int) -> None:
    bar = _QueueBar()
    _train_into(folder, rung, config, replicate, bar)
    bar.set_postfix()  # the last steps


def _pin_worker(threads: int, progress: Any) -> None:
    global _WORKER_PROGRESS
    torch.set_num_threads(threads)
    _WORKER_PROGRESS = progress


class _QueueBar:
    """What ``train_rung`` needs of a progress bar, sent in a worker to the parent's bar every 25 steps."""

    def __init__(self) -> None:
        self.steps = 0

    def update(self, n: int = 1) -> None:
        self.steps += n
        if self.steps >= 25:
            self._send({})

    def set_postfix(self, **postfix: Any) -> None:
        self._send(postfix)

    def _send(self, postfix: dict) -> None:
        _WORKER_PROGRESS.put((self.steps, postfix))
        self.steps = 0


def _drain(progress: Any, bar: tqdm) -> None:
    import queue

    while True:
        try:
            steps, postfix = progress.get_nowait()
        except queue.Empty:
            return
        bar.update(steps)
        if postfix:
            bar.set_postfix(**postfix)


def _move_contents(source: Path, target: Path) -> None:
    for child in source.iterdir():
        os.replace(child, target / child.name)
    source.rmdir()


def train_induction_family(
    out: str | os.PathLike, family: InductionFamily | None = None, *, progress: bool = True
) -> list[Path]:
    """Train (or keep) the induction family (``probes.scale.induction``) in the run folder ``out``, laid out as
    the ladder is (one folder per model with ``checkpoints/step-<k>``), so ``ladder_models`` reads it too."""
    family = family or InductionFamily()
    out = Path(out)
    with RunFolder.open(out, command="induction train", spec=asdict(family), seed=family.seed) as run:
        todo = [(layers, name) for layers, name in family.members() if not run.done(name)]
        with tqdm(total=len(todo) * family.steps, desc="induction family", unit="step", disable=not progress) as bar:
            for layers, name in todo:

                def fill(folder: Path, layers: int = layers) -> None:
                    def checkpoint(model: Any, tokenizer: Any, meta: dict) -> None:
                        _save(model, tokenizer, folder / "checkpoints" / f"step-{meta['step']}", meta)

                    model, tokenizer, meta = train_induction(
                        layers,
                        steps=family.steps,
                        seed=family.seed,
                        checkpoints=family.checkpoints,
                        checkpoint=checkpoint,
                        bar=bar,
                        threads=family.threads,
                    )
                    _save(model, tokenizer, folder, meta)

                run.commit_dir(name, fill)
        run.write_text(
            "ladder.json", json.dumps({"config": asdict(family), "models": [n for _, n in family.members()]})
        )
    return [out / name for _, name in family.members()]


def evaluate_induction(out: str | os.PathLike, *, n: int = 256, progress: bool = True) -> pd.DataFrame:
    """Score every model and checkpoint of the induction family in ``out`` into ``out/eval``: the scale table.

    Task ``induction``: the second run's loss, token accuracy and exact match; task ``induction heads``: the
    best prefix-matching score of the last layer's heads and the best previous-token score of the first
    layer's (the two heads K-composition needs), each with the head that has it.
    """
    out = Path(out)
    with _not_being_written(out):
        specs = ladder_models(out)
    identities = {s.slug: {**resolve(s.source).identity(), "name": s.label, "step": s.step} for s in specs}
    with RunFolder.open(out / "eval", command="induction eval", spec={"n": n}, models=identities) as run:
        rows = []
        for spec in tqdm(specs, desc="checkpoints", unit="model", disable=not progress):
            unit = unit_file(spec.slug, ".json", "outputs")
            if not run.done(unit):
                lm = load(spec.source)
                run.commit_json(unit, induction_rows(lm, spec, n))
            rows += run.read_json(unit)
        table = pd.DataFrame(rows)
        run.write_frame("scale.csv", table)
    return table


def induction_rows(lm: Any, spec: FamilyMember, n: int) -> list[dict]:
    """One checkpoint's rows of the induction family's scale table."""
    m = induction_metrics(lm.model, n=n)
    total, non_embedding = parameter_counts(lm.model)
    base = {"model": spec.label, "family": "induction", "parameters": total, "non_embedding_parameters": non_embedding}
    base |= {"step": spec.step, "tokens": spec.tokens, "n": n}
    chance = {"loss": math.log(INDUCTION_VOCAB), "token_accuracy": 1 / INDUCTION_VOCAB, "exact_match": 0.0}
    rows = [
        {**base, "task": "induction", "metric": k, "value": m[k], "chance": c, "higher_is_better": k != "loss"}
        for k, c in chance.items()
    ]
    heads = {k: v for k, v in m.items() if isinstance(v, dict)}
    last = max(int(k[1 : k.index("H")]) for k in heads)
    for metric, layer in (("prefix_matching", last), ("previous_token", 0)):
        best = max((k for k in heads if k.startswith(f"L{layer}H")), key=lambda k: heads[k][metric])
        rows.append(
            {**base, "task": "induction heads", "metric": metric, "value": heads[best][metric], "chance": 0.0}
            | {"higher_is_better": True, "head": best}
        )
    return rows


def analyse_induction(
    out: str | os.PathLike, *, n: int = 256, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score the induction family in ``out`` (into ``out/eval``), then read each model's checkpoints as a
    curve over training (into ``out/scale``): (scale table, verdicts)."""
    out = Path(out)
    evaluate_induction(out, n=n, progress=progress)
    return run_scale(ScaleSpec(results=[str(out / "eval" / "scale.csv")], size="step"), out / "scale")


def ladder_models(out: str | os.PathLike) -> list[FamilyMember]:
    """Every model of a trained ladder and its checkpoints, as the scale evaluation's model specs."""
    out = Path(out)
    if not (out / "ladder.json").exists():
        raise RunError(f"no trained ladder in {out} (train one with: probes ladder train --out {out})")
    specs = []
    for name in json.loads((out / "ladder.json").read_text())["models"]:
        folders = sorted((out / name / "checkpoints").glob("step-*"), key=lambda f: int(f.name[5:]))
        for folder in [*folders, out / name]:
            meta = json.loads((folder / "ladder.json").read_text())
            specs.append(FamilyMember(str(folder), name=name, step=meta["step"], tokens=meta["tokens"]))
    return specs


@contextmanager
def _not_being_written(folder: Path):
    """Hold ``folder``'s run lock while reading it, so a run still writing it is not read half-done."""
    lock = FileLock(folder / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunError(f"{folder} is still being written by another probes process; wait for it to finish") from None
    try:
        yield
    finally:
        lock.release()


def evaluate_ladder(
    out: str | os.PathLike, *, n: int = 500, progress: bool = True, how: Workers | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every model and checkpoint of the ladder in ``out`` on ``n`` held-out examples per task, into
    ``out/eval``: (scale table, per-example scores)."""
    out = Path(out)
    with _not_being_written(out):
        specs = ladder_models(out)
        config = json.loads((out / "ladder.json").read_text())["config"]
        return evaluate_family(
            specs, ladder_tasks(config, n), out / "eval", family="ladder", progress=progress, how=how
        )


def analyse_ladder(
    out: str | os.PathLike, *, n: int = 500, progress: bool = True, how: Workers | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``probes ladder eval``: score the ladder in ``out`` (into ``out/eval``), then its scaling analysis (into
    ``out/scale``): (scale table, verdicts)."""
    out = Path(out)
    evaluate_ladder(out, n=n, progress=progress, how=how)
    return run_scale(ScaleSpec(results=[str(out / "eval")]), out / "scale")


def evaluate_family(
    models: Sequence[FamilyMember | str],
    tasks: Sequence[GenerationTask],
    out: str | os.PathLike,
    *,
    family: str = "family",
    batch_size: int = 256,
    progress: bool = True,
    trust_remote_code: bool = False,
    how: Workers | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every model on every task into the run folder ``out``: (scale table, per-example scores).

    Each model's per-example outputs are a unit (``outputs/``), kept as soon as it is done; ``scale.csv`` is the
    scale table, ``examples.csv`` the per-example scores, ``run.json`` the models (weights hashes), tasks and
    versions. ``how=Workers(workers=8)`` (or ``address=...``) evaluates the models on Ray actors, one model per
    actor at a time (``probes.runtime.cluster``); the tables are those of a sequential run.
    """
    specs = [m if isinstance(m, FamilyMember) else FamilyMember(m) for m in models]
    slugs = [s.slug for s in specs]
    if len(set(slugs)) < len(slugs):
        twice = next(s for s in slugs if slugs.count(s) > 1)
        raise RunError(
            f"two models of the family are both called {twice!r} (same name, revision and step): give each its own name"
        )
    identities = {
        s.slug: {**resolve(s.source, s.revision).identity(), "name": s.label, "step": s.step, "tokens": s.tokens}
        for s in specs
    }
    record = {
        "family": family,
        "batch_size": batch_size,
        "tasks": {
            t.name: {"n": len(t.examples), "alphabet": t.alphabet, "sha256_16": content_hash([t.name, t.examples])}
            for t in tasks
        },
    }
    how = how or Workers()
    device = "cuda" if how.distributed and how.gpus else None
    refs = {
        s.slug: ModelRef(
            s.source, s.revision, identities[s.slug]["weights_sha256_16"], device, trust_remote_code=trust_remote_code
        )
        for s in specs
    }
    with RunFolder.open(out, command="evaluate", spec=record, models=identities) as run:
        names = [unit_file(spec.slug, ".json", "outputs") for spec in specs]
        jobs = [
            Job(name, _evaluate_job, (spec, tasks, family, batch_size), group=spec.slug, model=spec.slug)
            for spec, name in zip(specs, names)
            if not run.done(name)
        ]
        done = len(specs) - len(jobs)
        with tqdm(total=len(specs), initial=done, desc="models", unit="model", disable=not progress) as bar:
            for job, rows in run_jobs(jobs, refs, how):
                run.commit_json(job.key, rows)
                bar.update(1)
        frames = [pd.DataFrame(run.read_json(name)) for name in names]
        table, scored = family_tables(pd.concat(frames, ignore_index=True), tasks)
        run.write_frame("scale.csv", table)
        run.write_frame(
            "examples.csv", scored.drop(columns=["target", "generated", "option_logprobs"], errors="ignore")
        )
    return table, scored


def _evaluate_job(
    worker: Worker, spec: FamilyMember, tasks: Sequence[GenerationTask], family: str, batch_size: int
) -> list[dict]:
    return model_rows(worker.model(spec.slug), spec, tasks, family=family, batch_size=batch_size)


def _sizes(path: str | None) -> dict[str, float] | None:
    if path is None:
        return None
    try:
        sizes = json.loads(read_utf8(path))
    except FileNotFoundError:
        raise ScaleTableError(f"--sizes {path}: no such file") from None
    except json.JSONDecodeError as err:
        raise ScaleTableError(
            f'--sizes {path}:{err.lineno}: not valid JSON ({err.msg}); write {{"org/model-160m": 162000000, ...}}'
        ) from None
    if not isinstance(sizes, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in sizes.values()
    ):
        raise ScaleTableError(
            f"--sizes {path}: expected one JSON object of model name -> number of parameters, "
            'e.g. {"org/model-160m": 162000000}'
        )
    return {str(k): float(v) for k, v in sizes.items()}


def run_scale(spec: ScaleSpec, out: str | os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the spec's results, analyse them, and (with ``out``) write ``scale.csv``, ``verdicts.csv``,
    ``figures/*.png`` and ``run.json`` into that run folder: (scale table, verdicts)."""
    table, examples = read_scale_inputs(spec.results, sizes=_sizes(spec.sizes), family=spec.family, size=spec.size)
    verdicts = analyse(table, examples=examples, size=spec.size, n_boot=spec.n_boot, seed=spec.seed)
    if out is None:
        return table, verdicts
    details = {"inputs": [str(Path(p).resolve()) for p in spec.results], "thresholds": asdict(THRESHOLDS)}
    with RunFolder.open(out, command="scale", spec=spec.record(), seed=spec.seed, details=details) as run:
        run.write_frame("scale.csv", table)
        run.write_frame("verdicts.csv", verdicts)
        import matplotlib.pyplot as plt

        for name, fig in scale_figures(table, verdicts, size=spec.size).items():
            with run.writing(f"figures/{name}") as path:
                fig.savefig(path, dpi=110, format="png")
            plt.close(fig)
    return table, verdicts


def inferences(table: pd.DataFrame) -> list[str]:
    """What the reader inferred rather than read: sizes and families from model names, chance unknown."""
    lines = []
    models = table.drop_duplicates("model")
    if "size_from" in table.columns:
        named = models[models["size_from"] == "name"]
        if len(named):
            sizes = ", ".join(f"{m} {p:.3g}" for m, p in zip(named["model"], named["parameters"]))
            lines.append(f"sizes read from the model names: {sizes} (override with --sizes FILE)")
    if "family_from" in table.columns:
        named = models[models["family_from"] == "name"]
        for family, group in named.groupby("family", sort=True):
            lines.append(f"family {family!r} read from the model names ({len(group)} models; override with --family)")
    mc = table[table["metric"].astype(str).str.split(",").str[0].isin(MULTIPLE_CHOICE) & table["chance"].isna()]
    if len(mc):
        tasks = ", ".join(sorted(mc["task"].astype(str).unique()))
        lines.append(f"chance unknown for {tasks} (no options listed, not a known task): scored against 0")
    return lines


def describe(table: pd.DataFrame, verdicts: pd.DataFrame, out: str | os.PathLike | None = None) -> str:
    """What ``probes scale`` and ``probes ladder eval`` print: the verdict table and each verdict's reading."""
    shown = [
        "family",
        "task",
        "metric",
        "n_sizes",
        "I",
        "breakthroughness",
        "linearity",
        "delta_bic",
        "jump_location",
        "jump_low",
        "jump_high",
        "prediction_error",
        "verdict",
    ]
    lines = [*inferences(table), ""] if inferences(table) else []
    lines += [
        f"\n{len(table)} scores of {table['model'].nunique()} models; verdicts per task and metric "
        "(scores normalised: 0 = chance, 1 = best):\n"
    ]
    with pd.option_context("display.width", 220, "display.max_columns", 20, "display.max_colwidth", 200):
        lines.append(
            verdicts[[c for c in shown if c in verdicts.columns]].to_string(index=False, float_format="{:.3g}".format)
        )
    lines.append("")
    lines += [f"{row['task']} / {row['metric']}: {row['reading']}" for _, row in verdicts.iterrows()]
    if out is not None:
        out = Path(out)
        lines.append(f"\nwritten: {out / 'scale.csv'}, {out / 'verdicts.csv'}, {out / 'figures'}, {out / 'run.json'}")
    return "\n".join(lines)
