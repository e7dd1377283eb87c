"""``probes ablate``: an ablation study (``probes.causal.study``) into a run folder, with amnesic probing.

    run_ablation(AblationSpec(model="smollm2-135m", n=128, erase="subject_number"), "runs/ablate")

Each finished stage is kept in the run folder (``out/stages/``), so a re-run picks up from the first missing
one; with workers, the sweep of single effects runs on Ray, a chunk per layer.
"""

from __future__ import annotations

import copy
import os

import pandas as pd

from analysis.results import tidy
from probes.causal.ablations import AblationError
from probes.causal.behaviours import Behaviour, default_behaviour, make_behaviour
from probes.causal.components import Component, components_from
from probes.causal.erasure import amnesic_study, check_erase_layers
from probes.causal.evaluator import Evaluator
from probes.causal.study import AblationStudy, ablation_study, amnesic_rows, study_components
from probes.core.model import LoadedModel
from probes.pipelines.specs import AblationSettings, AblationSpec
from probes.pipelines.study import Study
from probes.probing.datasets import generate
from probes.runtime.cluster import pinned_threads, worker_model
from probes.runtime.sweeps import Build, spread_singles


def _study_sweep(lm: LoadedModel, behaviour: Behaviour, spec: AblationSettings) -> tuple[Evaluator, list[Component]]:
    """The sweep's evaluator and components, on a worker, built as ``ablation_study`` builds them: the clean run,
    the mean-ablation statistics and so every value are those of a sequential sweep."""
    comps = study_components(lm, behaviour, spec)
    ev = Evaluator(lm, behaviour, kind=spec.kind, components=comps, seed=spec.seed)
    return (ev.first(spec.screen) if spec.screen else ev), comps


def erase_layers(spec: AblationSpec, n_layers: int) -> list[int]:
    """The residual depths an amnesic study erases at: the spec's, or 1/4, 1/2 and 3/4 of the model's depth."""
    return check_erase_layers(
        spec.erase_layers or sorted({round(f * (n_layers - 1)) + 1 for f in (0.25, 0.5, 0.75)}), n_layers
    )


def run_ablation(
    spec: AblationSpec,
    out: str | os.PathLike,
    *,
    lm: LoadedModel | None = None,
    behaviour: Behaviour | None = None,
    progress: bool = True,
) -> AblationStudy:
    """Run one ablation study (``probes ablate`` or a suite's ``[[ablations]]`` entry) into the run folder ``out``.

    ``out`` gets ``results.csv`` (tidy rows, model column filled), ``run.json`` (spec, seed, package versions,
    model hash) and ``stages/`` (what a re-run resumes from). ``lm``: the model, already loaded; ``behaviour``:
    a behaviour built in Python (a ``FunctionBehaviour``), instead of the spec's named one (``run.json`` records
    its description, so a resumed run must be given the same one).
    """
    how = spec.spread()
    record = spec.record()
    if behaviour is not None:
        if how.distributed:
            raise AblationError("a behaviour given in Python runs in this process: leave out workers and ray_address")
        record["behaviour"] = behaviour.describe()
    check = lambda lm: components_from(spec.components, lm.shape)  # refused before any stage
    details = how.details() if how.distributed else None
    with Study.open(spec, out, command="ablate", record=record, lm=lm, details=details, check=check) as opened:
        run, lm = opened.run, opened.lm
        behaviour = behaviour or make_behaviour(lm, spec.behaviour, data=spec.data, n=spec.n, seed=spec.seed)
        layers = erase_layers(spec, lm.shape.n_layers) if spec.erase else []
        model = worker_model(spec, lm.fingerprint, how)
        with pinned_threads(how.threads):  # what runs here (all of it, or the stages after a spread sweep)
            sweep = None
            if how.distributed:
                assert model is not None  # worker_model gives one wherever the run is spread
                sent = copy.deepcopy(behaviour)  # as the workers must build it: not yet prepared here
                build = Build(_study_sweep, (sent, spec.settings()))
                sweep = lambda ev, comps: spread_singles(ev, comps, build, how, model, run)
            study = ablation_study(lm, behaviour, spec.settings(), stages=run, progress=progress, sweep=sweep)
        rows = study.rows()
        if spec.erase:
            amnesic = run.frame("stages/amnesic.csv", lambda: _amnesic(lm, behaviour, spec, layers, progress))
            rows += amnesic_rows(amnesic, study.behaviour["behaviour"])  # task: relabelled below
        label = (  # the user's name for it ("agreement"), not the class's
            study.behaviour["behaviour"]
            if isinstance(record["behaviour"], dict)
            else spec.behaviour or default_behaviour(lm)
        )
        for row in rows:
            row.update(model=spec.model_label, task=label)
        run.write_frame("results.csv", tidy(rows))
    return study


def _amnesic(
    lm: LoadedModel, behaviour: Behaviour, spec: AblationSpec, layers: list[int], progress: bool
) -> pd.DataFrame:
    assert spec.erase is not None
    concept = generate(spec.erase, spec.erase_n, seed=spec.seed)
    return amnesic_study(lm, behaviour, concept, layers, n_random=spec.erase_random, seed=spec.seed, progress=progress)
