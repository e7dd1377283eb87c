"""Sweeps of single effects on Ray workers: every component ablated alone, a chunk of one layer's components per
job, with the values of a sequential sweep.

    build = Build(study_sweep, (behaviour, spec))                # lm -> (evaluator, components), on each worker
    singles = spread_singles(ev, comps, build, how, model, run)  # single_effects(ev, comps), spread

A worker builds its evaluator once per sweep (``build``, a module-level function that builds it exactly as the
caller built ``ev``: the same examples, reference statistics or patch source), then runs its chunks; a chunk per
layer keeps the clean run's prefix. In a run folder each chunk is kept as it arrives (``stages/singles/``), so a
killed sweep resumes at the chunks left, and each chunk's per-example values are handed to ``ev``
(``Evaluator.remember``), so later stages read them as they would after a sequential sweep.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from probes.causal.components import Component
from probes.causal.evaluator import Evaluator, single_effects
from probes.runtime.cluster import Job, ModelRef, Worker, Workers, run_jobs
from probes.runtime.run import RunFolder


@dataclass(frozen=True)
class Build:
    """How a worker builds the sweep's evaluator and components from its loaded model: ``fn(lm, *args)``."""

    fn: Callable[..., tuple[Evaluator, list[Component]]]
    args: tuple[Any, ...] = ()


def spread_singles(
    ev: Evaluator,
    comps: list[Component],
    build: Build,
    how: Workers,
    model: ModelRef,
    stages: Any = None,
    folder: str = "stages/singles",
) -> pd.DataFrame:
    """``single_effects(ev, comps)``, a chunk of one layer's components per job on Ray workers; kept chunk by
    chunk under ``folder`` where ``stages`` is a run folder."""
    sweep = uuid.uuid4().hex  # a worker builds its evaluator once per sweep, not once per chunk
    jobs = []
    for i, (_, chunk) in enumerate(itertools.groupby(comps, key=lambda c: c.layer)):  # consecutive: order kept
        names = [c.name for c in chunk]
        jobs.append(Job(f"{folder}/{i:04d}.csv", _singles_job, (build, sweep, names), group=f"{sweep}/{i}"))
    run = stages if isinstance(stages, RunFolder) else None
    done = {job.key: run.read_frame(job.key) for job in jobs if run and run.done(job.key)}
    by_name = {c.name: c for c in comps}
    for job, (frame, values) in run_jobs([job for job in jobs if job.key not in done], {"model": model}, how):
        done[job.key] = run.commit_frame(job.key, frame) if run else frame
        ev.remember([[by_name[name]] for name in job.args[-1]], values)
    return pd.concat([done[job.key] for job in jobs], ignore_index=True)


def _singles_job(worker: Worker, build: Build, sweep: str, names: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """One chunk of the sweep, on a worker: its rows and per-example values."""
    lm = worker.model("model")  # first: loading another model clears what the worker kept for the last one
    ev, comps = worker.keep("singles", sweep, lambda: build.fn(lm, *build.args))
    wanted = set(names)
    chunk = [c for c in comps if c.name in wanted]  # in the sweep's order, as the names are
    values = ev.values([[c] for c in chunk])  # kept by the evaluator: single_effects reads them back
    return single_effects(ev, chunk), values
