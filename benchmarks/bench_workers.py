"""One suite over two models, sequential against two Ray workers, side by side in one run; and what the Ray path
costs per unit on tiny units.

    python benchmarks/bench_workers.py [--models minilm,smollm2-135m] [--n-examples 300] [--tiny-units 60]

Suite: the models given, the tasks pos, subject_number and tense, the logistic probe with its control task, run
into fresh folders three ways:

  sequential   one process, torch pinned to this machine's cores (``cpu_budget()``)
  2 workers    ``--workers 2``: a local Ray cluster of two actors, one torch thread each (start-up included)

and the two tables are compared (the same rows in the same order; values equal to float noise, as one thread
and two threads sum in different orders). Tiny units: ``--tiny-units`` jobs that return at once, through
``run_jobs`` sequentially and on one Ray worker, after the cluster is up: the per-unit cost of a Ray round trip.

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

from probes.pipelines.cluster import Job, Workers, cpu_budget, run_jobs
from probes.pipelines.specs import SuiteSpec
from probes.pipelines.suite import run_suite


def nothing(worker, x: int) -> int:
    return x


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


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
    print(f"{len(spec.models)} models x {len(spec.tasks)} tasks x 2 units; {cpu_budget()} cores here", flush=True)
    run_suite(spec.model_copy(update={"tasks": ["tense"], "n_examples": 40}), root / "warm", progress=False)
    sequential, seq_s = timed(lambda: run_suite(spec, root / "sequential", progress=False))
    print(f"sequential  {seq_s:7.1f} s", flush=True)
    spread = spec.model_copy(update={"workers": 2})
    distributed, ray_s = timed(lambda: run_suite(spread, root / "workers", progress=False))
    print(f"2 workers   {ray_s:7.1f} s   {seq_s / ray_s:.2f}x", flush=True)
    keys = ["model", "task", "probe", "control", "layer", "metric"]
    same_rows = sequential[keys].astype(str).equals(distributed[keys].astype(str))
    gap = np.nanmax(np.abs(sequential["value"].to_numpy(float) - distributed["value"].to_numpy(float)))
    print(f"same rows in the same order: {same_rows}; largest difference in a value: {gap:.2g}")

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
    print(
        f"\nsuite of {len(sequential)} rows: sequential {seq_s:.1f} s, 2 workers {ray_s:.1f} s "
        f"({seq_s / ray_s:.2f}x, goal 1.7x)"
    )


if __name__ == "__main__":
    main()
