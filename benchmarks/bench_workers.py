"""One suite over two models, sequential against two Ray workers, side by side in one run; and what the Ray path
costs per unit on tiny units.

    python benchmarks/bench_workers.py [--models minilm,smollm2-135m] [--n-examples 300] [--tiny-units 60]

Suite: the models given, the tasks pos, subject_number and tense, the logistic probe with its control task, run
into fresh folders three ways:

  sequential          one process, torch pinned to this machine's cores (``cpu_budget()``): the default
  one thread          one process, ``threads = 1``: one worker's share of a 2-core machine
  2 workers           ``--workers 2 --threads 1``: a local Ray cluster of two actors (start-up included)

Two workers against one (both one thread) is what spreading the work buys; against the default run, what it buys
over torch's own threads. A unit group (a model and task: its units share features, so they stay on one worker
unless two or more of its units wait for a worker that is idle) is the smallest share of work: the longest group,
timed in the one-thread run from its units' write times, bounds any schedule, and is printed with the longest
unit. The tables are compared: at equal thread counts they must be equal; against the
two-thread run values may differ where two threads sum in another order and a probe's fit moves a little.
Tiny units: ``--tiny-units`` jobs that return at once, through ``run_jobs`` sequentially and on one Ray worker,
after the cluster is up: the per-unit cost of a Ray round trip.

Goal (issue 17): two workers at least 1.7x faster than one process on this 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd

from probes.pipelines.specs import SuiteSpec
from probes.pipelines.suite import run_suite, suite_jobs
from probes.runtime.cluster import Job, Workers, cpu_budget, run_jobs


def nothing(worker, x: int) -> int:
    return x


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def unit_seconds(spec: SuiteSpec, folder: Path, started: float) -> dict[str, tuple[str, float]]:
    """Each unit's group and seconds in a sequential run, from the unit files' write times (in the plan's order)."""
    jobs, _ = suite_jobs(spec, folder)
    out: dict[str, tuple[str, float]] = {}
    last = started
    for job in jobs:  # the plan's order is the sequential run's order
        done = (folder / job.key).stat().st_mtime
        out[job.key] = (job.group, done - last)
        last = done
    return out


def compare(a: pd.DataFrame, b: pd.DataFrame) -> str:
    keys = ["model", "task", "probe", "control", "layer", "metric"]
    same_rows = a[keys].astype(str).equals(b[keys].astype(str))
    gap = np.nanmax(np.abs(a["value"].to_numpy(float) - b["value"].to_numpy(float)))
    return f"same rows in the same order: {same_rows}; largest difference in a value: {gap:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,smollm2-135m")
    parser.add_argument("--n-examples", type=int, default=300)
    parser.add_argument("--tiny-units", type=int, default=60)
    args = parser.parse_args()
    spec = SuiteSpec(
        name="bench",
        models=args.models.split(","),
        tasks=["pos", "subject_number", "tense"],
        controls=["control_task"],
        n_examples=args.n_examples,
    )
    root = Path(tempfile.mkdtemp())
    cores = cpu_budget()
    print(f"{len(spec.models)} models x {len(spec.tasks)} tasks x 2 units; {cores} cores here", flush=True)
    run_suite(spec.model_copy(update={"tasks": ["tense"], "n_examples": 40}), root / "warm", progress=False)

    sequential, seq_s = timed(lambda: run_suite(spec, root / "sequential", progress=False))
    print(f"sequential, {cores} threads   {seq_s:7.1f} s", flush=True)
    one = spec.model_copy(update={"threads": 1})
    start = time.time()
    single, one_s = timed(lambda: run_suite(one, root / "one-thread", progress=False))
    unit_times = unit_seconds(one, root / "one-thread", start)
    groups: dict[str, float] = {}
    for group, seconds in unit_times.values():
        groups[group] = groups.get(group, 0.0) + seconds
    print(f"sequential, 1 thread    {one_s:7.1f} s", flush=True)
    spread = spec.model_copy(update={"workers": 2, "threads": 1})
    distributed, ray_s = timed(lambda: run_suite(spread, root / "workers", progress=False))
    print(f"2 workers, 1 thread each{ray_s:7.1f} s", flush=True)

    longest = max(groups, key=groups.__getitem__)
    bound = max(groups[longest], one_s / 2)
    print(f"\n2 workers against the sequential run ({cores} threads): {seq_s / ray_s:.2f}x (goal 1.7x)")
    print(f"2 workers against one worker (1 thread each): {one_s / ray_s:.2f}x")
    print(
        f"a unit group (one model and task, its units together) is the smallest share of work: the longest, "
        f"{longest}, took {groups[longest]:.1f} s of the {one_s:.1f} s one thread took, so no schedule of two "
        f"one-thread workers beats {bound:.1f} s ({one_s / bound:.2f}x one worker, {seq_s / bound:.2f}x the "
        f"sequential run) before Ray's start"
    )
    unit = max(unit_times, key=lambda k: unit_times[k][1])
    print(f"the longest unit, {unit} (it reads what its group's first unit computed), took {unit_times[unit][1]:.1f} s")
    print(f"2 workers against one worker, tables: {compare(single, distributed)}")
    print(f"2 workers against the sequential run ({cores} threads), tables: {compare(sequential, distributed)}")

    import ray

    n = args.tiny_units
    jobs = [Job(str(i), nothing, (i,)) for i in range(n)]
    _, here_s = timed(lambda: list(run_jobs(jobs, {}, Workers())))
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        list(run_jobs(jobs[:2], {}, Workers(workers=1, address="auto", threads=1)))  # an actor's start, untimed
        _, ray_units_s = timed(lambda: list(run_jobs(jobs, {}, Workers(workers=1, address="auto", threads=1))))
    finally:
        ray.shutdown()
    print(
        f"tiny units: {1e3 * here_s / n:.2f} ms each here, {1e3 * ray_units_s / n:.1f} ms each on a Ray worker "
        f"(actor start included once)"
    )


if __name__ == "__main__":
    main()
