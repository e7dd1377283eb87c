"""``probes attribute`` and ``probes circuit``: attribution and circuits of one behaviour, into a run folder.

    run_attribute(AttributeSpec(model="smollm2-135m", method="atp*"), "runs/attribute")
    run_circuit(CircuitSpec(model="smollm2-135m", behaviour="agreement-copula"), "runs/circuit")

``attribute`` writes ``stages/attribution.csv`` (one row per component: estimate, its standard error, score;
AtP*'s GradDrop) or ``stages/edges.csv`` (one row per edge), ``stages/verify.csv`` (the top and a random sample
re-measured exactly), with ``--exact`` ``stages/exact.csv`` (every component's exact effect), and
``results.csv``: tidy rows (``probe`` "attribution:METHOD:KIND"). ``circuit`` adds ``stages/circuits.csv``
(every circuit's value per example: the full and empty circuits, the top-k and random ones) and rows of
faithfulness per size and the smallest share of edges that keeps the target. A re-run reuses every
finished stage.

With ``--workers`` (or ``--ray-address``) the gradient passes, the bulk of the work, run on Ray workers, one of
the behaviour's batches per job: each worker loads the model and builds the counterfactual once, and each batch's
per-example estimates are kept as they arrive (``stages/passes/``), so a killed run resumes at the batches left.
The tables are those of a sequential run; the exact re-measurements run here.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.results import normal_interval, tidy
from probes.causal.ablations import ablation_kind
from probes.causal.attribution import Passes, attribution_frame, attribution_passes
from probes.causal.behaviours import Behaviour, BehaviourError, default_behaviour, make_behaviour
from probes.causal.circuits import (
    CircuitError,
    EdgeEvaluator,
    EdgeScores,
    FaithfulnessCurve,
    Graph,
    faithfulness_curve,
    verify_edges,
)
from probes.causal.components import Component, components_from
from probes.causal.evaluator import Evaluator, single_effects
from probes.causal.patching import aligned_pairs, patch_evaluator
from probes.causal.verification import Verification, verify
from probes.core.model import LoadedModel
from probes.pipelines.specs import AttributeSpec, CircuitSpec
from probes.pipelines.study import Study
from probes.runtime.cluster import Job, ModelRef, Worker, Workers, pinned_threads, run_jobs, worker_model
from probes.runtime.run import RunFolder
from probes.runtime.sweeps import Build, spread_singles

EDGE_ROWS = 500  # edges with a row of their own in results.csv (all of them are in stages/edges.csv)
# metrics that are NaN where the data cannot define them (too few checked components above noise, a sample that
# met the threshold, a behaviour no edge removal moves): a suite keeps such rows
UNDEFINED_WHEN_NOISY = (
    "verify_spearman",
    "verify_bound",
    "circuit_share",
    "circuit_edges",
    "faithfulness",
    "random_faithfulness",
    "random_faithfulness_at_share",
)


def patch_prompts(spec: AttributeSpec) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Clean prompts, corrupted prompts and (right, wrong) answers: ``--data`` JSONL rows, or the generated
    agreement prompts (the subject's number flipped)."""
    from probes.core.data import iter_jsonl, text_fields
    from probes.probing.datasets.grammar import agreement_prompts

    if spec.data:
        keys = ("clean", "corrupt", "answer", "wrong")
        rows = [
            text_fields(spec.data, number, row, keys, "a prompt pair") for number, row in iter_jsonl(Path(spec.data))
        ]
    elif spec.behaviour in (None, "agreement"):
        rows = agreement_prompts(spec.n, seed=spec.seed)
    else:
        raise BehaviourError(
            f"--kind patch runs clean prompts with values from corrupted ones, which behaviour {spec.behaviour!r} "
            "does not have: use --behaviour agreement (generated pairs) or --data FILE.jsonl (clean, corrupt, answer, "
            "wrong)"
        )
    rows = rows[: spec.n]
    return [r["clean"] for r in rows], [r["corrupt"] for r in rows], [(r["answer"], r["wrong"]) for r in rows]


def counterfactual(
    lm: LoadedModel, spec: AttributeSpec, components: list[Component], behaviour: Behaviour | None = None
) -> Evaluator:
    """The Evaluator the spec asks for: its behaviour (or ``behaviour``, built in Python) under an ablation kind,
    or its clean prompts with the corrupted prompts' values patched in (pairs that tokenise unequally are left
    out, and said so)."""
    if behaviour is not None or not ablation_kind(spec.kind).needs_source:
        behaviour = behaviour or make_behaviour(lm, spec.behaviour, data=spec.data, n=spec.n, seed=spec.seed)
        return Evaluator(lm, behaviour, kind=spec.kind, components=components, seed=spec.seed)
    clean, corrupt, answers = patch_prompts(spec)
    keep = aligned_pairs(lm, clean, corrupt, answers)
    if not keep:
        raise BehaviourError(
            "no prompt pair tokenises to equal lengths with answers that differ at their first token: nothing to patch"
        )
    if len(keep) < len(clean):
        print(f"patching: {len(clean) - len(keep)} of {len(clean)} prompt pairs differ in token length; left out")
    pick = lambda xs: [xs[i] for i in keep]
    ev, _ = patch_evaluator(lm, pick(clean), pick(corrupt), pick(answers), components, direction="noise")
    return ev


@dataclass
class AttributionRun:
    """What ``run_attribute`` (and ``run_circuit``) leave in memory: the tables of the run folder."""

    frame: pd.DataFrame  # one row per component or edge
    verification: Verification
    n_examples: int
    exact: pd.DataFrame | None = None
    curve: FaithfulnessCurve | None = None
    share: tuple[float, float, float] | None = None  # smallest share of edges keeping the target, and its CI

    def summary(self, spec: AttributeSpec) -> str:
        what = "edges" if spec.edges else "components"
        top = self.frame.sort_values("score", ascending=False, kind="stable").head(5)
        name = "edge" if spec.edges else "component"
        lines = [
            f"{spec.method} ({spec.kind}) over {len(self.frame)} {what}; largest: "
            + ", ".join(f"{r[name]} {r['estimate']:+.4f}" for _, r in top.iterrows()),
            "verification: " + self.verification.summary(),
        ]
        if self.curve is not None and self.share is not None:
            share, low, high = self.share
            target = f"{spec.target:.0%}" if isinstance(spec, CircuitSpec) else ""
            lines.append(
                f"circuits: no measured circuit keeps {target} of the behaviour"
                if not np.isfinite(share)
                else f"circuits: {share:.2%} of the {self.curve.n_edges} edges keep {target} of the behaviour "
                f"[{low:.2%}, {high:.2%}]"
            )
        return "\n".join(lines)


def _components(lm: LoadedModel, spec: AttributeSpec) -> list[Component]:
    if spec.edges:
        shape = lm.shape
        return Graph(shape.n_layers, shape.n_heads, shape.n_kv_heads, lm.adapter.parallel).writer_components()
    return components_from(spec.components, lm.shape)


def _rows(run: AttributionRun, spec: AttributeSpec, task: str, components: list[Component]) -> list[dict]:
    probe = f"attribution:{spec.method}:{spec.kind}"
    rows = []
    if spec.edges:
        for r in run.frame.head(EDGE_ROWS).itertuples():
            rows.append({"component": r.edge, "metric": "edge_attribution", **normal_interval(r.estimate, r.stderr)})
    else:
        sites = {c.name: c.site for c in components}
        for r in run.frame.itertuples():
            base = {"component": r.component, "layer": r.layer, "site": sites[r.component]}
            rows.append({**base, "metric": "attribution", **normal_interval(r.estimate, r.stderr)})
            if "graddrop" in run.frame.columns:
                rows.append({**base, "metric": "graddrop", "value": r.graddrop})
    verified = run.verification.rows()
    if run.exact is not None:  # every component's exact effect: the verified ones are among them
        verified = [r for r in verified if r["metric"] != "exact_effect"]
        for r in run.exact.itertuples():
            verified.append(
                {
                    "component": r.component,
                    "layer": r.layer,
                    "metric": "exact_effect",
                    **normal_interval(r.effect, r.stderr),
                }
            )
    rows += verified
    if run.curve is not None and run.share is not None and isinstance(spec, CircuitSpec):
        curve = run.curve
        faithful = curve.faithfulness()
        for size, f in zip(curve.sizes, faithful):
            rows.append({"component": f"top {size}", "metric": "faithfulness", "value": f, "edges": size})
        random = curve.random_faithfulness()
        for size, draws in zip(curve.random_sizes, random):
            if len(draws):
                rows.append(
                    {
                        "component": f"random {size}",
                        "metric": "random_faithfulness",
                        "value": float(draws.mean()),
                        "ci_low": float(draws.min()),
                        "ci_high": float(draws.max()),
                        "edges": size,
                        "n": len(draws),
                    }
                )
        share, low, high = run.share
        k = round(share * curve.n_edges) if np.isfinite(share) else None
        at = [i for i, size in enumerate(curve.random_sizes) if k is not None and size >= k]
        rows += [
            {"metric": "circuit_share", "value": share, "ci_low": low, "ci_high": high, "target": spec.target},
            {"metric": "circuit_edges", "value": np.nan if k is None else k, "target": spec.target},
            {"metric": "graph_edges", "value": curve.n_edges},
            {"metric": "clean_value", "value": float(curve.full.mean())},
            {"metric": "empty_circuit_value", "value": float(curve.empty.mean())},
        ]
        if at and random.shape[1]:  # random circuits of the faithful size (or the next measured): the baseline
            rows.append(
                {
                    "metric": "random_faithfulness_at_share",
                    "value": float(random[at[0]].mean()),
                    "edges": curve.random_sizes[at[0]],
                }
            )
    for row in rows:
        row.update(model=spec.model_label, task=task, probe=probe)
        row.setdefault("n", run.n_examples)
    return rows


def _attribution(
    run: RunFolder,
    lm: LoadedModel,
    spec: AttributeSpec,
    progress: bool,
    spread: tuple[Workers, ModelRef] | None = None,
    behaviour: Behaviour | None = None,
) -> tuple[AttributionRun, list]:
    """The run's stages; with ``spread`` (the workers, and how they load ``lm``), the gradient passes and the
    exact sweep on Ray workers."""
    components = _components(lm, spec)
    ev = counterfactual(lm, spec, components, behaviour)
    if spec.edges:
        edges = EdgeEvaluator(ev)

        def edge_scores() -> pd.DataFrame:
            if spread is None:
                return edges.scores(spec.method, steps=spec.steps, progress=progress).frame()
            parts = _spread_passes(run, spec, len(ev.batches), *spread)
            scores = [EdgeScores(edges.graph, spec.method, p["per_example"], int(p["steps"])) for p in parts]
            return EdgeScores.join(scores).frame()

        frame = run.frame("stages/edges.csv", edge_scores)
        checked = run.frame(
            "stages/verify.csv",
            lambda: verify_edges(edges, frame, top=spec.verify_top, sample=spec.verify_sample, seed=spec.seed).checked,
        )
        result = AttributionRun(frame, Verification.of(checked), ev.n_examples)
        if isinstance(spec, CircuitSpec):
            n_edges = edges.graph.n_edges

            def curve() -> pd.DataFrame:
                measured = faithfulness_curve(
                    edges,
                    frame["edge"].tolist(),  # strongest first, as the edge table is stored
                    sizes=spec.sizes,
                    n_random=spec.random,
                    target=spec.target,
                    seed=spec.seed,
                    progress=progress,
                )
                return measured.values_frame()

            values = run.frame("stages/circuits.csv", curve)
            result.curve = FaithfulnessCurve.from_values(values, n_edges, spec.method)
            result.share = result.curve.smallest_share(spec.target, n_boot=spec.n_boot, seed=spec.seed)
        return result, components

    def estimates() -> pd.DataFrame:
        if spread is None:
            passes = attribution_passes(ev, components, method=spec.method, progress=progress)
        else:
            parts = _spread_passes(run, spec, len(ev.batches), *spread)
            passes = Passes.join([Passes(p["estimates"], p.get("dropped")) for p in parts])
        return attribution_frame(ev, components, passes, method=spec.method)

    frame = run.frame("stages/attribution.csv", estimates)
    checked = run.frame(
        "stages/verify.csv",
        lambda: verify(ev, frame, components, top=spec.verify_top, sample=spec.verify_sample, seed=spec.seed).checked,
    )
    result = AttributionRun(frame, Verification.of(checked), ev.n_examples)
    if spec.exact:

        def exact() -> pd.DataFrame:
            if spread is None:
                return single_effects(ev, components)
            build = Build(_counterfactual_sweep, (_portable(spec),))
            return spread_singles(ev, components, build, *spread, run, "stages/exact")

        result.exact = run.frame("stages/exact.csv", exact)
    return result, components


def run_attribute(
    spec: AttributeSpec,
    out: str | os.PathLike,
    *,
    lm: LoadedModel | None = None,
    behaviour: Behaviour | None = None,
    progress: bool = True,
) -> AttributionRun:
    """``probes attribute`` (and, given a ``CircuitSpec``, ``probes circuit``) into the run folder ``out``;
    ``behaviour``: one built in Python (a ``FunctionBehaviour``) instead of the spec's named one."""
    command = "circuit" if isinstance(spec, CircuitSpec) else "attribute"
    how = spec.spread()
    record = spec.record()
    if behaviour is not None:
        if how.distributed:
            raise BehaviourError("a behaviour given in Python runs in this process: leave out workers and ray_address")
        record["behaviour"] = behaviour.describe()
    details = how.details() if how.distributed else None
    with Study.open(
        spec, out, command=command, record=record, lm=lm, details=details, check=partial(_check, spec)
    ) as study:
        run, lm = study.run, study.lm
        model = worker_model(spec, lm.fingerprint, how)  # where it places a CUDA model, `how` asks for GPUs
        with pinned_threads(how.threads):  # what runs here: all of it, or all but the gradient passes
            spread = None if model is None else (how, model)
            result, components = _attribution(run, lm, spec, progress, spread, behaviour)
        task = behaviour.name if behaviour is not None else spec.behaviour or default_behaviour(lm)
        run.write_frame("results.csv", tidy(_rows(result, spec, task, components)))
    return result


def _check(spec: AttributeSpec, lm: LoadedModel) -> None:
    """What can be refused against the model before any stage runs: the components, a circuit's sizes."""
    if not spec.edges:
        components_from(spec.components, lm.shape)
    if isinstance(spec, CircuitSpec) and spec.sizes:
        shape = lm.shape
        n_edges = Graph(shape.n_layers, shape.n_heads, shape.n_kv_heads, lm.adapter.parallel).n_edges
        if max(spec.sizes) > n_edges:
            raise CircuitError(
                f"--sizes {' '.join(map(str, spec.sizes))}: {lm.name}'s circuit graph has {n_edges} edges; "
                f"give sizes from 1 to {n_edges}"
            )


def run_circuit(
    spec: CircuitSpec,
    out: str | os.PathLike,
    *,
    lm: LoadedModel | None = None,
    behaviour: Behaviour | None = None,
    progress: bool = True,
) -> AttributionRun:
    """``probes circuit``: edges scored and verified, then the faithfulness curve, into the run folder ``out``."""
    return run_attribute(spec, out, lm=lm, behaviour=behaviour, progress=progress)


def _spread_passes(
    run: RunFolder, spec: AttributeSpec, n_batches: int, how: Workers, model: ModelRef
) -> list[dict[str, np.ndarray]]:
    """The gradient passes, one batch per job on Ray workers, each batch's arrays kept as they arrive; in the
    batches' order."""
    spec = _portable(spec)
    study = uuid.uuid4().hex  # a worker builds its counterfactual once per run, not once per batch
    jobs = [Job(f"stages/passes/{i:04d}.npz", _passes_job, (spec, study, i)) for i in range(n_batches)]
    done = {job.key: run.read_arrays(job.key) for job in jobs if run.done(job.key)}
    for job, arrays in run_jobs([job for job in jobs if job.key not in done], {"model": model}, how):
        done[job.key] = run.commit_arrays(job.key, **arrays)
    return [done[job.key] for job in jobs]


def _portable(spec: AttributeSpec) -> AttributeSpec:
    """The spec as a worker must read it: a worker may start in another folder."""
    return spec.model_copy(update={"data": str(Path(spec.data).resolve())}) if spec.data else spec


def _counterfactual_sweep(lm: LoadedModel, spec: AttributeSpec) -> tuple[Evaluator, list[Component]]:
    """The counterfactual and components of ``run_attribute``, built on a worker for a sweep of exact effects."""
    components = _components(lm, spec)
    return counterfactual(lm, spec, components), components


def _passes_job(worker: Worker, spec: AttributeSpec, study: str, index: int) -> dict[str, np.ndarray]:
    """One batch's gradient passes, on a worker, with the counterfactual built as ``run_attribute`` builds it
    (the same examples, reference statistics or patch source): the values of a sequential run."""
    lm = worker.model("model")  # first: loading another model clears what the worker kept for the last one

    def make() -> tuple[Evaluator | EdgeEvaluator, list[Component]]:
        ev, components = _counterfactual_sweep(lm, spec)
        return (EdgeEvaluator(ev) if spec.edges else ev), components

    evaluator, components = worker.keep("attribution", study, make)
    if isinstance(evaluator, EdgeEvaluator):
        scores = evaluator.scores(spec.method, steps=spec.steps, batches=[index])
        return {"per_example": scores.per_example, "steps": np.array(scores.steps)}
    passes = attribution_passes(evaluator, components, method=spec.method, batches=[index])
    return {"estimates": passes.estimates} | ({} if passes.dropped is None else {"dropped": passes.dropped})
