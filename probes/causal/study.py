"""The ablation study in memory: from ablations to one reducibility measure per model and behaviour.

    study = ablation_study(lm, MinimalPairs(agreement_pairs(64)), AblationSettings(kind="mean", top_k=6))
    study.singles        # effect of ablating each head / MLP alone
    study.interactions   # joint effect of each top-k pair minus the sum of the two single effects
    study.shapley        # Shapley values of the top-k with standard errors
    study.additivity     # R^2 of "joint effect = sum of single effects" over sampled subsets, with a CI

Stages: single effects of every component (on the first ``screen`` examples, if set) -> the top-k by
|effect| (or by attribution) -> pairwise interaction matrix -> Shapley values (sampled permutations) and
Shapley interaction indices -> additivity over every sampled subset. ``stages`` keeps each finished stage where
one is given (``probes.pipelines.ablation_study.run_ablation`` gives its run folder, so a re-run resumes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from analysis.readings import additivity_reading
from analysis.results import normal_interval
from probes.causal.ablations import AblationError
from probes.causal.attribution import attribute
from probes.causal.behaviours import Behaviour
from probes.causal.components import Component, components_from
from probes.causal.evaluator import Evaluator, effect_map, interaction_matrix, single_effects, top_components
from probes.causal.shapley import Additivity, additivity, interaction_indices, shapley_values
from probes.core.model import LoadedModel
from probes.pipelines.specs import AblationSettings

Sweep = Callable[[Evaluator, list[Component]], pd.DataFrame]  # the single effects of components


class Stages(Protocol):
    """Where finished stages are kept: a run folder, or nowhere (``InMemory``)."""

    def frame(
        self, name: str, compute: Callable[[], pd.DataFrame], *, index: bool = False, may_be_nan: tuple[str, ...] = ()
    ) -> pd.DataFrame: ...

    def json(self, name: str, compute: Callable[[], Any]) -> Any: ...


@dataclass
class AblationStudy:
    behaviour: dict[str, Any]
    kind: str
    clean: float
    singles: pd.DataFrame
    top: list[str]
    interactions: pd.DataFrame
    shapley: pd.DataFrame
    interaction_index: pd.DataFrame
    additivity: Additivity
    n_examples: int
    config: dict[str, Any] = field(default_factory=dict)
    n_screened: int | None = None  # examples the single effects were measured on, when fewer than n_examples
    attribution: pd.DataFrame | None = None  # every component's attribution estimate, when it chose the top k

    def effect_map(self, n_layers: int, n_heads: int) -> np.ndarray:
        return effect_map(self.singles, n_layers, n_heads)

    def rows(self) -> list[dict]:
        """The study as rows of the tidy results table (``analysis.results``)."""
        task = self.behaviour["behaviour"]
        probe = f"ablation:{self.kind}"
        n = self.n_examples
        rows = [
            {"task": task, "probe": probe, "metric": f"clean_{self.behaviour['metric']}", "value": self.clean, "n": n}
        ]
        n_singles = self.n_screened or n
        where = lambda r: {"task": task, "probe": probe, "site": r.site, "layer": r.layer, "component": r.component}
        for r in self.singles.itertuples():
            rows.append({**where(r), "metric": "effect", **normal_interval(r.effect, r.stderr), "n": n_singles})
        if self.attribution is not None:
            method = self.config.get("select", "attribution")
            for r in self.attribution.itertuples():
                interval = normal_interval(r.estimate, r.stderr)
                rows.append({**where(r), "metric": "attribution", **interval, "n": r.n, "method": method})
        names = list(self.interactions.index)
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if j > i:
                    rows.append(
                        {
                            "task": task,
                            "probe": probe,
                            "component": f"{a}|{b}",
                            "metric": "interaction",
                            "value": float(self.interactions.iloc[i, j]),
                            "n": n,
                        }
                    )
                    rows.append(
                        {
                            "task": task,
                            "probe": probe,
                            "component": f"{a}|{b}",
                            "metric": "shapley_interaction",
                            "value": float(self.interaction_index.iloc[i, j]),
                            "n": n,
                        }
                    )
        for r in self.shapley.itertuples():
            rows.append(
                {
                    "task": task,
                    "probe": probe,
                    "component": r.component,
                    "metric": "shapley",
                    "value": r.shapley,
                    "ci_low": r.shapley - 1.96 * r.stderr,
                    "ci_high": r.shapley + 1.96 * r.stderr,
                    "n": n,
                }
            )
        a = self.additivity
        rows += [
            {
                "task": task,
                "probe": probe,
                "metric": "additivity_r2",
                "value": a.r2,
                "ci_low": a.ci_low,
                "ci_high": a.ci_high,
                "n": a.n_subsets,
            },
            {"task": task, "probe": probe, "metric": "sum_of_single_effects", "value": a.sum_of_singles, "n": n},
            {"task": task, "probe": probe, "metric": "joint_effect_top_k", "value": a.full_effect, "n": n},
        ]
        return rows

    def summary(self) -> str:
        a = self.additivity
        top = self.singles.reindex(self.singles["effect"].abs().sort_values(ascending=False).index).head(5)
        screened = f" (every component screened on the first {self.n_screened})" if self.n_screened else ""
        if self.attribution is not None:
            screened = f" (the top {len(self.top)} chosen by {self.config.get('select')} of every component)"
        lines = [
            f"{self.behaviour['behaviour']} ({self.behaviour['metric']}), {self.kind} ablation, "
            f"{self.n_examples} examples{screened}: clean {self.clean:.4f}",
            "largest single effects: " + ", ".join(f"{r.component} {r.effect:+.4f}" for r in top.itertuples()),
            f"top-{len(self.top)} joint effect {a.full_effect:+.4f} vs sum of single effects {a.sum_of_singles:+.4f}",
            f"additivity R^2 = {a.r2:.3f} [{a.ci_low:.3f}, {a.ci_high:.3f}] over {a.n_subsets} subsets "
            f"({additivity_reading(a.r2, a.ci_low, a.ci_high)})",
        ]
        return "\n".join(lines)


class InMemory:
    """Stages computed and kept nowhere: what ``ablation_study`` uses without a run folder."""

    def frame(
        self, name: str, compute: Callable[[], pd.DataFrame], *, index: bool = False, may_be_nan: tuple[str, ...] = ()
    ) -> pd.DataFrame:
        return compute()

    def json(self, name: str, compute: Callable[[], Any]) -> Any:
        return compute()


def ablation_study(
    lm: LoadedModel,
    behaviour: Behaviour,
    spec: AblationSettings | None = None,
    *,
    stages: Stages | None = None,
    progress: bool = True,
    sweep: Sweep | None = None,
) -> AblationStudy:
    """Single effects of every component, then interactions, Shapley values and additivity of the top ``top_k``.

    ``spec`` holds the settings (``AblationSettings()``: mean ablation of every head and MLP, top 6); ``stages`` keeps
    each finished stage (``run_ablation`` passes its run folder, so a re-run resumes at the first missing one).
    ``sweep(evaluator, components)`` measures the single effects instead of ``single_effects`` (``probes ablate
    --workers`` spreads them over Ray workers, with the values of a sequential sweep).
    """
    spec = spec or AblationSettings()
    stages = stages or InMemory()
    comps = study_components(lm, behaviour, spec)
    ev = Evaluator(lm, behaviour, kind=spec.kind, components=comps, seed=spec.seed, progress=progress)
    screen = ev.first(spec.screen) if spec.screen else ev
    k = min(spec.top_k, len(comps))
    attributed = None
    if spec.select == "exact":
        measure = sweep or single_effects
        singles = stages.frame("stages/singles.csv", lambda: _with_sites(measure(screen, comps), comps))
        top = top_components(singles, comps, k)
    else:  # every component estimated from gradients; the top k by attribution measured exactly, on every example
        attributed = stages.frame(
            "stages/attribution.csv",
            lambda: _with_sites(attribute(screen, comps, method=spec.select, progress=progress), comps).assign(
                n=screen.n_examples
            ),
        )
        order = np.argsort(-attributed["score"].to_numpy(), kind="stable")[:k]
        top = [comps[i] for i in sorted(order)]
        singles = stages.frame("stages/singles.csv", lambda: _with_sites(single_effects(ev, top), top))
    by_name = {c.name: c for c in comps}
    interactions = stages.frame("stages/interactions.csv", lambda: interaction_matrix(ev, top), index=True)
    shap = stages.json(
        "stages/shapley.json",
        lambda: _shapley_payload(shapley_values(ev.values, top, n_permutations=spec.permutations, seed=spec.seed)),
    )
    shapley = pd.DataFrame(shap["frame"])
    index = stages.frame(
        "stages/interaction_index.csv",
        lambda: interaction_indices(ev.values, top, n_samples=spec.interaction_samples, seed=spec.seed),
        index=True,
    )
    subsets = [frozenset(by_name[n] for n in s) for s in shap["subsets"]]
    subsets += [frozenset({a, b}) for i, a in enumerate(top) for b in top[i + 1 :]]
    add = stages.json(
        "stages/additivity.json",
        lambda: asdict(additivity(ev.values, top, subsets, n_boot=spec.n_boot, seed=spec.seed)),
    )
    return AblationStudy(
        behaviour.describe(),
        spec.kind,
        float(ev.clean.mean()),
        singles,
        [c.name for c in top],
        interactions,
        shapley,
        index,
        Additivity(**add),
        ev.n_examples,
        spec.record(),
        screen.n_examples if screen is not ev and attributed is None else None,
        attributed,
    )


def study_components(lm: LoadedModel, behaviour: Behaviour, spec: AblationSettings) -> list[Component]:
    """The study's components, checked; the behaviour's batches cut to the screen (here and on each worker)."""
    comps = components_from(spec.components, lm.shape)
    if len(comps) < 3:
        raise AblationError(
            f"an ablation study needs at least 3 components, got {len(comps)} ({spec.components}): "
            "additivity compares the joint effects of several subsets of two or more"
        )
    if spec.screen and getattr(behaviour, "batch_size", 0) > spec.screen:
        behaviour.batch_size = spec.screen  # type: ignore[attr-defined]  # so the screen's batches hold just it
    return comps


def _with_sites(frame: pd.DataFrame, comps: list[Component]) -> pd.DataFrame:
    frame.insert(1, "site", [c.site for c in comps])
    return frame


def _shapley_payload(result) -> dict:
    return {
        "frame": result.frame().to_dict(orient="list"),
        "full_effect": result.full_effect,
        "subsets": [sorted(str(p) for p in s) for s in result.subsets],
    }


def amnesic_rows(frame: pd.DataFrame, task: str) -> list[dict]:
    """An amnesic study (``probes.causal.erasure.amnesic_study``) as tidy rows: per layer, the behaviour change after
    erasing the concept, the change after erasing random subspaces (CI: mean +- 1.96 sd over the draws), and
    the concept probe's accuracy before and after erasure."""
    rows = []
    for r in frame.itertuples():
        base = {
            "task": task,
            "probe": "amnesic:leace",
            "layer": int(r.layer),
            "concept": r.concept,
            "site": f"blocks.{int(r.layer)}.hook_resid_pre",
        }
        sd = r.random_change_sd if np.isfinite(r.random_change_sd) else 0.0
        rows += [
            {**base, "metric": "erasure_change", "value": r.leace_change},
            {
                **base,
                "metric": "random_erasure_change",
                "value": r.random_change_mean,
                "ci_low": r.random_change_mean - 1.96 * sd,
                "ci_high": r.random_change_mean + 1.96 * sd,
            },
            {**base, "metric": "concept_probe_before", "value": r.probe_before},
            {**base, "metric": "concept_probe_after", "value": r.probe_after},
            {**base, "metric": "concept_majority", "value": r.majority},
            {**base, "metric": "erased_rank", "value": r.rank},
        ]
    return rows
