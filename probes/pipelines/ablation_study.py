"""From ablations to one reducibility measure per model and behaviour.

    study = ablation_study(lm, MinimalPairs(agreement_pairs(64)), kind="mean", top_k=6)
    study.singles        # effect of ablating each head / MLP alone
    study.interactions   # joint effect of each top-k pair minus the sum of the two single effects
    study.shapley        # Shapley values of the top-k with standard errors
    study.additivity     # R^2 of "joint effect = sum of single effects" over sampled subsets, with a CI

Stages: single effects of every component -> the top-k by |effect| -> pairwise
interaction matrix -> Shapley values (sampled permutations) and Shapley
interaction indices -> additivity over every sampled subset. With ``out``, each
finished stage is written there and a re-run picks up from the first missing one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.readings import additivity_reading

from probes.core.files import atomic_path, write_json
from probes.causal.behaviour import Behaviour
from probes.causal.components import Component, components_from
from probes.core.models import LoadedModel
from probes.causal.shapley import Additivity, additivity, interaction_indices, shapley_values
from probes.causal.evaluator import Evaluator, effect_map, interaction_matrix, single_effects, top_components


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

    def effect_map(self, n_layers: int, n_heads: int) -> np.ndarray:
        return effect_map(self.singles, n_layers, n_heads)

    def rows(self) -> list[dict]:
        """The study as rows of the tidy results table (``analysis.results``)."""
        task = self.behaviour["behaviour"]
        probe = f"ablation:{self.kind}"
        n = self.n_examples
        rows = [{"task": task, "probe": probe, "metric": f"clean_{self.behaviour['metric']}", "value": self.clean, "n": n}]
        for r in self.singles.itertuples():
            half = 1.96 * r.stderr if np.isfinite(r.stderr) else np.nan
            rows.append({"task": task, "probe": probe, "site": r.site, "layer": r.layer, "component": r.component,
                         "metric": "effect", "value": r.effect, "ci_low": r.effect - half, "ci_high": r.effect + half,
                         "n": n})
        names = list(self.interactions.index)
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if j > i:
                    rows.append({"task": task, "probe": probe, "component": f"{a}|{b}", "metric": "interaction",
                                 "value": float(self.interactions.iloc[i, j]), "n": n})
                    rows.append({"task": task, "probe": probe, "component": f"{a}|{b}", "metric": "shapley_interaction",
                                 "value": float(self.interaction_index.iloc[i, j]), "n": n})
        for r in self.shapley.itertuples():
            rows.append({"task": task, "probe": probe, "component": r.component, "metric": "shapley", "value": r.shapley,
                         "ci_low": r.shapley - 1.96 * r.stderr, "ci_high": r.shapley + 1.96 * r.stderr, "n": n})
        a = self.additivity
        rows += [
            {"task": task, "probe": probe, "metric": "additivity_r2", "value": a.r2, "ci_low": a.ci_low,
             "ci_high": a.ci_high, "n": a.n_subsets},
            {"task": task, "probe": probe, "metric": "sum_of_single_effects", "value": a.sum_of_singles, "n": n},
            {"task": task, "probe": probe, "metric": "joint_effect_top_k", "value": a.full_effect, "n": n},
        ]
        return rows

    def summary(self) -> str:
        a = self.additivity
        top = self.singles.reindex(self.singles["effect"].abs().sort_values(ascending=False).index).head(5)
        lines = [f"{self.behaviour['behaviour']} ({self.behaviour['metric']}), {self.kind} ablation, "
                 f"{self.n_examples} examples: clean {self.clean:.4f}",
                 "largest single effects: " + ", ".join(f"{r.component} {r.effect:+.4f}" for r in top.itertuples()),
                 f"top-{len(self.top)} joint effect {a.full_effect:+.4f} vs sum of single effects {a.sum_of_singles:+.4f}",
                 f"additivity R^2 = {a.r2:.3f} [{a.ci_low:.3f}, {a.ci_high:.3f}] over {a.n_subsets} subsets "
                 f"({additivity_reading(a.r2, a.ci_low, a.ci_high)})"]
        return "\n".join(lines)


def ablation_study(
    lm: LoadedModel,
    behaviour: Behaviour,
    *,
    kind: str = "mean",
    components: str | Sequence = "heads+mlps",
    top_k: int = 6,
    n_permutations: int = 32,
    interaction_samples: int = 8,
    n_boot: int = 200,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
) -> AblationStudy:
    """Single effects of every component, then interactions, Shapley values and additivity of the top ``top_k``."""
    comps = components_from(components, lm.shape)
    if top_k < 3 or len(comps) < 3:
        raise ValueError("an ablation study needs top_k >= 3 and at least 3 components: additivity compares the "
                         "joint effects of several subsets of two or more")
    config = {"kind": kind, "components": components if isinstance(components, str) else [str(c) for c in comps],
              "top_k": top_k, "n_permutations": n_permutations, "interaction_samples": interaction_samples,
              "n_boot": n_boot, "seed": seed, "behaviour": behaviour.describe()}
    stages = _Stages(Path(out) if out is not None else None, config)
    ev = Evaluator(lm, behaviour, kind=kind, components=comps, seed=seed, progress=progress)

    singles = stages.frame("singles", lambda: _with_sites(single_effects(ev, comps), comps))
    top = top_components(singles, comps, min(top_k, len(comps)))
    by_name = {c.name: c for c in comps}
    interactions = stages.frame("interactions", lambda: interaction_matrix(ev, top), index=True)
    shap = stages.get("shapley", lambda: _shapley_payload(shapley_values(ev.values, top, n_permutations=n_permutations,
                                                                          seed=seed)))
    shapley = pd.DataFrame(shap["frame"])
    index = stages.frame("interaction_index",
                         lambda: interaction_indices(ev.values, top, n_samples=interaction_samples, seed=seed), index=True)
    subsets = [frozenset(by_name[n] for n in s) for s in shap["subsets"]]
    subsets += [frozenset({a, b}) for i, a in enumerate(top) for b in top[i + 1 :]]
    add = stages.get("additivity", lambda: asdict(additivity(ev.values, top, subsets, n_boot=n_boot, seed=seed)))
    return AblationStudy(behaviour.describe(), kind, float(ev.clean.mean()), singles, [c.name for c in top],
                         interactions, shapley, index, Additivity(**add), ev.n_examples, config)


def _with_sites(frame: pd.DataFrame, comps: list[Component]) -> pd.DataFrame:
    frame.insert(1, "site", [c.site for c in comps])
    return frame


def _shapley_payload(result) -> dict:
    return {"frame": result.frame().to_dict(orient="list"), "full_effect": result.full_effect,
            "subsets": [sorted(str(p) for p in s) for s in result.subsets]}


class _Stages:
    """Finished stages of a study on disk (``out/stages/*``), so an interrupted study resumes."""

    def __init__(self, out: Path | None, config: dict):
        self.root = out / "stages" if out is not None else None
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            stamp = self.root / "config.json"
            if stamp.exists() and json.loads(stamp.read_text()) != json.loads(json.dumps(config, default=str)):
                raise ValueError(f"{out} holds a study with a different configuration; use another --out")
            write_json(stamp, config)

    def frame(self, name: str, compute, index: bool = False) -> pd.DataFrame:
        if self.root is None:
            return compute()
        path = self.root / f"{name}.csv"
        if path.exists():
            return pd.read_csv(path, index_col=0 if index else None)
        frame = compute()
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=index)
        return frame

    def get(self, name: str, compute) -> dict:
        if self.root is None:
            return compute()
        path = self.root / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
        value = compute()
        write_json(path, value)
        return value


ABLATION_DEFAULTS = {"behaviour": None, "data": None, "n": 64, "kind": "mean", "components": "heads+mlps", "top_k": 6,
                     "permutations": 32, "interaction_samples": 8, "seed": 0,
                     # amnesic probing: erase this grammar concept (LEACE) at these layers, against random subspaces
                     "erase": None, "erase_layers": None, "erase_n": 200, "erase_random": 5}


def run_ablation(spec: dict, out: Path, *, lm: LoadedModel | None = None, revision: str | None = None,
                 trust_remote_code: bool = False, progress: bool = True) -> AblationStudy:
    """Run one ablation study from a spec (CLI options or a suite's ``[[ablations]]`` entry) into ``out``.

    ``out`` gets ``results.csv`` (tidy rows, model column filled), ``run.json`` (spec, seed,
    package versions, model hash) and ``stages/`` (what a re-run resumes from).
    """
    from analysis.results import tidy, write_results

    from probes.causal.behaviour import default_behaviour, make_behaviour
    from probes.core.models import load
    from probes.core.provenance import content_hash, environment

    spec = {**ABLATION_DEFAULTS, **spec}
    out.mkdir(parents=True, exist_ok=True)
    lm = lm or load(spec["model"], revision=revision, trust_remote_code=trust_remote_code, device=spec.get("device"))
    behaviour = make_behaviour(lm, spec["behaviour"], data=spec["data"], n=spec["n"], seed=spec["seed"])
    record = {"spec": spec, "seed": spec["seed"], "environment": environment(), "model": lm.describe()}
    write_json(out / "run.json", record)
    study = ablation_study(lm, behaviour, kind=spec["kind"], components=spec["components"], top_k=spec["top_k"],
                           n_permutations=spec["permutations"], interaction_samples=spec["interaction_samples"],
                           seed=spec["seed"], out=out, progress=progress)
    rows = study.rows()
    if spec["erase"]:
        erase = {k: spec[k] for k in ("erase", "erase_layers", "erase_n", "erase_random", "seed")}
        amnesic = _Stages(out, study.config).frame(f"amnesic-{content_hash(erase)}",  # its own settings, its own file
                                                    lambda: _amnesic(lm, behaviour, spec, progress))
        rows += amnesic_rows(amnesic, study.behaviour["behaviour"])  # task: relabelled below
    label = spec["behaviour"] or default_behaviour(lm)  # the user's name for it ("agreement"), not the class's
    for row in rows:
        row.update(model=spec["model"], task=label)
    write_results(tidy(rows), out / "results.csv")
    return study


def _amnesic(lm: LoadedModel, behaviour: Behaviour, spec: dict, progress: bool) -> pd.DataFrame:
    from probes.probing.datasets import generate
    from probes.causal.erasure import amnesic_study

    n_layers = lm.shape.n_layers
    layers = spec["erase_layers"] or sorted({round(f * (n_layers - 1)) for f in (0.25, 0.5, 0.75)})
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise ValueError(f"erase_layers {bad} outside the model's layers 0..{n_layers - 1}")
    concept = generate(spec["erase"], spec["erase_n"], seed=spec["seed"])
    return amnesic_study(lm, behaviour, concept, layers, n_random=spec["erase_random"], seed=spec["seed"],
                         progress=progress)


def amnesic_rows(frame: pd.DataFrame, task: str) -> list[dict]:
    """An amnesic study (``probes.erasure.amnesic_study``) as tidy rows: per layer, the behaviour change after
    erasing the concept, the change after erasing random subspaces (CI: mean +- 1.96 sd over the draws), and
    the concept probe's accuracy before and after erasure."""
    rows = []
    for r in frame.itertuples():
        base = {"task": task, "probe": "amnesic:leace", "layer": int(r.layer), "concept": r.concept,
                "site": f"blocks.{int(r.layer)}.hook_resid_post"}
        sd = r.random_change_sd if np.isfinite(r.random_change_sd) else 0.0
        rows += [{**base, "metric": "erasure_change", "value": r.leace_change},
                 {**base, "metric": "random_erasure_change", "value": r.random_change_mean,
                  "ci_low": r.random_change_mean - 1.96 * sd, "ci_high": r.random_change_mean + 1.96 * sd},
                 {**base, "metric": "concept_probe_before", "value": r.probe_before},
                 {**base, "metric": "concept_probe_after", "value": r.probe_after},
                 {**base, "metric": "concept_majority", "value": r.majority},
                 {**base, "metric": "erased_rank", "value": r.rank}]
    return rows
