"""Work beyond one process: a run's units handed to Ray actors, each keeping its loaded models between units.

    jobs = [Job(key, fn=probe_unit, args=(...), group="minilm|pos"), ...]     # fn(worker, *args): one unit's result
    for job, result in run_jobs(jobs, models, workers=2):                    # a local Ray cluster of 2 actors
        run.commit_frame(job.key, result)                                     # only this process writes the run

``run_jobs`` yields each job's result as it finishes; the caller commits it, so the run folder keeps one writer
and resumes as it does sequentially, and tables rebuilt from units in the plan's order are the same rows in the
same order however the jobs were spread. Without ``workers`` (or with one) and without ``address`` nothing here
imports Ray: the jobs run in this process, in order, through the same ``Worker``.

* **Models.** A ``Worker`` loads a model on the first job that asks for it and keeps it (checked against the
  weights hash the run recorded); jobs of one ``group`` (a model, a task's features) go to the worker that holds
  the group where one is free, so each is loaded or computed once per worker, not once per unit. A worker with
  no group left to start takes the last job of the largest group another holds, where two or more wait.
* **Threads.** Each actor pins torch to its share of the cores (``cpu_budget() // workers``): two processes that
  each use every core run far slower than one after the other. The sequential path pins to ``cpu_budget()``,
  the cores this process may use (affinity and cgroup quota), not the machine's.
* **Failures.** A worker that dies (killed, out of memory) is restarted by Ray and its job re-run there; a job
  that raises stops the run with the job's own exception and traceback.
* **Clusters.** ``address`` joins a running cluster (``ray start --head`` / ``ray://host:10001`` / "auto"); jobs
  that write folders of their own (a suite's ablation studies) need the run folder on a filesystem every node
  shares. A worker on a GPU asks Ray for ``gpus`` of them; a model spread over several (``device_map``) takes an
  actor that owns them all.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.errors import ProbesError


class ClusterError(ProbesError):
    """Workers that cannot be started as asked (no Ray, an unreachable address, bad counts)."""


@dataclass(frozen=True)
class ModelRef:
    """How a worker loads a model of the run, and the weights hash the run recorded for it."""

    source: str
    revision: str | None = None
    fingerprint: str | None = None
    device: str | None = None
    device_map: str | None = None
    trust_remote_code: bool = False
    prepend_bos: bool = True


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(worker, *args)``, a module-level function (it travels to the worker by name)."""

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    group: str = ""  # jobs of one group share what a worker keeps (a task's features)
    model: str = ""  # the model the job loads: a worker that holds it takes the job where it can


def cpu_budget() -> int:
    """CPU cores this process may use: its affinity, capped by a cgroup CPU quota (a container's share)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota here
    return max(1, cores)


@contextmanager
def pinned_threads(threads: int | None = None) -> Iterator[int]:
    """torch's intra-op threads set to ``threads`` (default: ``cpu_budget()``) inside the block, restored after."""
    import torch

    previous = torch.get_num_threads()
    threads = threads or cpu_budget()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)


class Worker:
    """What a job runs in: the run's models, loaded on first use and kept until a job asks for another (one at a
    time: a worker over 154 checkpoints must not hold them all), and a cache for what the jobs of one group share.
    One per Ray actor; one in this process on the sequential path."""

    def __init__(self, models: Mapping[str, ModelRef], threads: int | None = None):
        self.refs = dict(models)
        self.threads = threads
        self.models: dict[str, Any] = {}
        self.cache: dict[Any, Any] = {}
        if threads:  # in an actor: this process's share of the cores, for good
            import torch

            torch.set_num_threads(threads)

    def model(self, name: str) -> Any:
        """The run's model ``name``, loaded once, refused if its weights are not those the run recorded."""
        if name not in self.models:
            from probes.core.loading import load
            from probes.runtime.run import RunError

            ref = self.refs[name]
            self._release()
            lm = load(
                ref.source,
                revision=ref.revision,
                device=ref.device,
                device_map=ref.device_map,
                trust_remote_code=ref.trust_remote_code,
                prepend_bos=ref.prepend_bos,
            )
            if ref.fingerprint is not None and lm.fingerprint != ref.fingerprint:
                raise RunError(
                    f"the weights of {name} changed after the run started (now {lm.fingerprint}, the run recorded "
                    f"{ref.fingerprint}); run it again"
                )
            self.models[name] = lm
        return self.models[name]

    def keep(self, slot: str, key: Any, make: Callable[[], Any]) -> Any:
        """What ``make()`` returns, made once per ``key`` and kept in ``slot`` until a job asks for another key
        (one per slot at a time: a task's features, a study's evaluator) or another model is loaded."""
        held = self.cache.get(slot)
        if held is None or held[0] != key:
            held = self.cache[slot] = (key, make())
        return held[1]

    def _release(self) -> None:
        if self.models:
            import gc

            import torch

            self.models.clear()
            self.cache.clear()  # what the jobs of the old model kept refers to it
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def run(self, job: Job) -> Any:
        return job.fn(self, *job.args)

    def pid(self) -> int:
        return os.getpid()


@dataclass
class Workers:
    """How a run is spread: ``workers`` actors on a local Ray cluster, or on the cluster at ``address``.

    ``threads`` per worker defaults to this machine's ``cpu_budget() // workers`` (on a joined cluster: 1, the
    CPU a GPU worker needs); ``gpus`` per worker is what each actor asks Ray for (models on CUDA need one).
    """

    workers: int | None = None
    address: str | None = None
    threads: int | None = None
    gpus: float = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def distributed(self) -> bool:
        return self.address is not None or (self.workers or 1) > 1

    def place(self, device: str | None) -> str | None:
        """Where a worker loads a model the run puts on ``device``: ``cuda:1`` becomes ``cuda`` (an actor sees
        only the GPUs Ray gave it, from cuda:0), and such workers ask Ray for one GPU unless ``gpus`` says more."""
        if not self.distributed or not (device or "").startswith("cuda"):
            return device
        self.gpus = self.gpus or 1
        return "cuda"

    def details(self) -> dict[str, Any]:
        """How the work was spread, as ``run.json`` records it beside (not among) the run's settings."""
        return {"workers": self.workers or 1, "ray_address": self.address, "threads": self.threads}


def worker_model(options: Any, fingerprint: str, how: Workers) -> ModelRef | None:
    """How workers load the model of one run's ``options`` (a ``ModelOptions``: model, revision, device,
    device_map, trust_remote_code), held to the weights hash the run loaded; None where the run is not spread.
    A device map over several GPUs takes workers that own them all (``gpus``)."""
    if not how.distributed:
        return None
    return ModelRef(
        options.model,
        options.revision,
        fingerprint,
        device=how.place(options.device),
        device_map=options.device_map,
        trust_remote_code=options.trust_remote_code,
        prepend_bos=options.prepend_bos,
    )


def run_jobs(
    jobs: Sequence[Job],
    models: Mapping[str, ModelRef],
    how: Workers | None = None,
) -> Iterator[tuple[Job, Any]]:
    """Each job's result, as ``(job, result)``, in the order they finish (in order, sequentially)."""
    how = how or Workers()
    if not how.distributed:
        with pinned_threads(how.threads):
            worker = Worker(models)
            for job in jobs:
                yield job, worker.run(job)
        return
    yield from _run_on_ray(list(jobs), models, how)


def _run_on_ray(jobs: list[Job], models: Mapping[str, ModelRef], how: Workers) -> Iterator[tuple[Job, Any]]:
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "--workers and --ray-address run on Ray, which is not installed: pip install 'emergence-probes[ray]'"
        ) from None
    started = not ray.is_initialized()
    if started:
        _start(ray, how)
    try:
        n, threads = _sizes(ray, how)
        actor: Any = ray.remote(Worker).options(
            num_cpus=threads, num_gpus=how.gpus, max_restarts=-1, max_task_retries=-1, max_concurrency=1
        )
        actors: list[Any] = [actor.remote(models, threads) for _ in range(min(n, len(jobs)) or 1)]
        yield from _dispatch(ray, jobs, actors)
        for a in actors:
            ray.kill(a)
    finally:
        if started:
            ray.shutdown()


def _start(ray: Any, how: Workers) -> None:
    # the workers' own libraries must not each start a thread per core either
    env = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"), **how.env}
    if how.address is None:
        threads = how.threads or max(1, cpu_budget() // (how.workers or 1))
        ray.init(
            num_cpus=(how.workers or 1) * threads,
            num_gpus=None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            runtime_env={"env_vars": env},
        )
        return
    try:
        ray.init(address=how.address, log_to_driver=False, logging_level="ERROR", runtime_env={"env_vars": env})
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ClusterError(
            f"--ray-address {how.address}: cannot join a Ray cluster there ({str(err).splitlines()[0]}); start one "
            "with `ray start --head`, or leave --ray-address out to start a local one"
        ) from None


def _sizes(ray: Any, how: Workers) -> tuple[int, int]:
    """(workers, threads per worker); refused where the workers' GPUs are not there (their units would wait
    for ever)."""
    resources = ray.cluster_resources()
    if how.address is None:
        n, threads = how.workers or 1, how.threads or max(1, cpu_budget() // (how.workers or 1))
    else:
        threads = how.threads or 1
        fits = int(resources.get("GPU", 0) // how.gpus) if how.gpus else int(resources.get("CPU", 1) // threads)
        n = how.workers or max(1, fits)
    gpus = resources.get("GPU", 0)
    if how.gpus and gpus < n * how.gpus:
        where = "this machine" if how.address is None else f"the Ray cluster at {how.address}"
        raise ClusterError(
            f"{n} workers of {how.gpus:g} GPUs each need {n * how.gpus:g} GPUs and {where} has {gpus:g}: use fewer "
            "workers or GPUs per worker (gpus_per_worker), or run the models on the CPU"
        )
    return n, threads


def pick(waiting: list[Job], holds: Mapping[int, Job], worker: int) -> Job | None:
    """The job a free worker takes next, in the plan's order: the next one of the group it holds, else the first
    of a group no worker holds on the model it holds, else of a group on a model no other worker holds (so two
    workers do not both load one model while another waits), else of any group no worker holds; else, rather
    than wait idle, the last job of the held group with the most jobs waiting, where at least two wait (it
    computes that group's features again, which one job left to its owner would not repay); else none.
    ``holds``: the job each worker ran last. A job with no group is a group of its own."""
    group = lambda j: j.group or j.key
    mine = holds.get(worker)
    held = {group(j) for j in holds.values()}
    loaded = {j.model for i, j in holds.items() if i != worker}
    free = [j for j in waiting if group(j) not in held]
    chosen = (
        next((j for j in waiting if mine and group(j) == group(mine)), None)
        or next((j for j in free if mine and j.model == mine.model), None)
        or next((j for j in free if j.model not in loaded), None)
        or (free[0] if free else None)
    )
    if chosen is not None or not waiting:
        return chosen
    left = Counter(group(j) for j in waiting)
    busiest = max(left, key=lambda g: (left[g], -min(i for i, j in enumerate(waiting) if group(j) == g)))
    return [j for j in waiting if group(j) == busiest][-1] if left[busiest] >= 2 else None


def _dispatch(ray: Any, jobs: list[Job], actors: list[Any]) -> Iterator[tuple[Job, Any]]:
    """One job in flight per actor, each chosen by ``pick``; results as they come."""
    waiting = list(jobs)
    holds: dict[int, Job] = {}
    in_flight: dict[Any, tuple[int, Job]] = {}

    def submit(i: int) -> None:
        job = pick(waiting, holds, i) if waiting else None
        if job is not None:
            holds[i] = job
            waiting.remove(job)
            in_flight[actors[i].run.remote(job)] = (i, job)

    def busy() -> set[int]:
        return {k for k, _ in in_flight.values()}

    for i in range(len(actors)):
        submit(i)
    while in_flight:
        (ref,), _ = ray.wait(list(in_flight), num_returns=1)
        i, job = in_flight.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = err.cause if isinstance(err.cause, BaseException) else None
            if isinstance(cause, ProbesError):
                raise cause from None  # bad input: its one line, as on the sequential path
            raise
        for free in [i, *(k for k in range(len(actors)) if k != i and k not in busy())]:
            submit(free)  # its own next job; then idle workers may take a group this one just let go
        yield job, result
    assert not waiting, "every worker idle with units left"  # pick takes one while any waits: a bug if not
