"""The toy scale ladder and the induction family, trained here into run folders, then evaluated and analysed.

    folders = train_ladder("runs/ladder", LadderSpec(setting="tiny"))     # or a LadderConfig
    table, per_example = evaluate_ladder("runs/ladder", n=500)           # writes runs/ladder/eval/
    table, verdicts = analyse_ladder("runs/ladder")                      # and runs/ladder/scale/

A ladder's units are its models (one folder per model and seed, with its checkpoints), trained in local processes
(``--processes``), so a killed run resumes with what was finished.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from probes.core.files import write_json
from probes.core.loading import load, parameter_counts, resolve
from probes.pipelines.scale import evaluate_family, run_scale
from probes.pipelines.specs import LadderSpec, ScaleSpec
from probes.runtime.cluster import Workers
from probes.runtime.run import LOCK, RunError, RunFolder, unit_file
from probes.scale.evaluate import FamilyMember
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
