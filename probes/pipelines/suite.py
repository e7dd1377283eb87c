"""Probe suites: a TOML file says what to probe; ``run_suite`` runs it, resumably.

    name = "default"
    models = ["minilm"]
    tasks = ["pos", "subject_number", { name = "ud", path = "en.conllu", label = "upos" }]
    site = "resid"                 # residual stream, layer 0 = embeddings; or a block site such as "hook_mlp_out"
    layers = "all"                 # or a list of layer numbers
    probes = ["logistic"]          # logistic, ridge
    controls = ["control_task", "random_weights", "mdl"]
    seed = 0
    n_examples = 600               # per generated task

    [[ablations]]                  # optional: ablation studies (see probes.reducibility)
    model = "smollm2-135m"
    behaviour = "agreement"        # agreement, pairs, loss, probe:TASK, cosine
    kind = "mean"                  # zero, mean, resample
    components = "heads+mlps"      # or "L3H5 L4.mlp ..."
    top_k = 6

Results go to ``OUT/results.csv`` (the tidy table of ``analysis.results``) one
unit (model x task x probe x control) at a time; ``OUT/done.json`` lists the
finished units, so a re-run skips them. ``OUT/run.json`` records the suite,
seed, package versions and each model's weights hash.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from analysis.results import read_results, tidy, write_results
from analysis.tables import PROBES, ablation_table, profile_table  # noqa: F401  (re-exported: probes.suite's API)

from probes.core.align import pool_words
from probes.core.files import write_json
from probes.probing.controls import bootstrap_ci, control_labels, layer_profile, online_codelength, random_weights
from probes.core.data import DATA_DIR
from probes.probing.datasets import TASKS, ProbingDataset, generate
from probes.probing.datasets.loaders import load_conllu, load_table
from probes.probing.features import Features, extract_features
from probes.probing.linear import RidgeProbe, fit_layers
from probes.core.models import LoadedModel, load
from probes.core.provenance import environment
from probes.pipelines.ablation_study import run_ablation
from probes.core.sites import BLOCK_SITES
from probes.core.store import ActivationStore
from analysis.errors import ProbesError

CONTROLS = ("control_task", "random_weights", "mdl")
SUITES_DIR = DATA_DIR / "suites"


class SuiteError(ProbesError, ValueError):
    """A suite file that does not validate."""


@dataclass
class Suite:
    name: str = "suite"
    models: list[str] = field(default_factory=lambda: ["minilm"])
    tasks: list[Any] = field(default_factory=lambda: list(TASKS))
    site: str = "resid"
    layers: str | list[int] = "all"
    probes: list[str] = field(default_factory=lambda: ["logistic"])
    controls: list[str] = field(default_factory=lambda: list(CONTROLS))
    seed: int = 0
    n_examples: int = 600
    test_fraction: float = 0.25
    lexical_split: bool = True
    pool: str = "mean"  # subwords -> word, for word-level tasks
    sentence_pool: str = "mean"  # tokens -> sentence: mean over word tokens, or first / last token
    Cs: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    cv: int = 3
    mdl_C: float = 0.1
    max_length: int = 128
    batch_size: int = 32
    n_boot: int = 1000
    ablations: list[dict] = field(default_factory=list)
    device: str | None = None  # "cuda", "cuda:1" ...: where the models run (default: where they load, the CPU)


_TYPES = {"name": str, "models": list, "tasks": list, "site": str, "layers": (str, list), "probes": list,
          "controls": list, "seed": int, "n_examples": int, "test_fraction": (float, int), "lexical_split": bool,
          "pool": str, "sentence_pool": str, "Cs": list, "cv": int, "mdl_C": (float, int), "max_length": int,
          "batch_size": int, "n_boot": int, "ablations": list, "device": str}
_ABLATION_TYPES = {"model": str, "behaviour": str, "data": str, "n": int, "kind": str, "components": (str, list),
                   "top_k": int, "permutations": int, "interaction_samples": int, "seed": int,
                   "erase": str, "erase_layers": list, "erase_n": int, "erase_random": int}


_KIND_NAMES = {str: "a string", list: "a list", int: "a whole number", float: "a number", bool: "true or false"}


def load_suite(path: str | os.PathLike) -> Suite:
    """Read and validate a suite: a TOML path, or the name of a ready suite (see ``ready_suites()``)."""
    path = Path(path)
    if not path.exists() and (SUITES_DIR / f"{path.name}.toml").exists():
        path = SUITES_DIR / f"{path.name}.toml"
    if not path.exists():
        raise SuiteError(f"no suite file {path}; ready suites: {', '.join(ready_suites())}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise SuiteError(f"{path}: not valid TOML ({err})") from None
    return validate(raw, str(path))


def ready_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def validate(raw: dict, where: str = "suite") -> Suite:
    known = [f.name for f in fields(Suite)]
    for key, value in raw.items():
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            raise SuiteError(f"{where}: unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + f"; keys are {', '.join(known)}")
        if not isinstance(value, _TYPES[key]) or (isinstance(value, bool) and _TYPES[key] is int):
            kinds = _TYPES[key] if isinstance(_TYPES[key], tuple) else (_TYPES[key],)
            want = " or ".join(_KIND_NAMES[k] for k in kinds)
            raise SuiteError(f"{where}: key {key!r} should be {want}, got {value!r}")
    suite = Suite(**raw)

    def fail(key: str, message: str) -> None:
        raise SuiteError(f"{where}: key {key!r}: {message}")

    if not suite.models:
        fail("models", "list at least one model (an alias such as 'minilm', a folder or a hub id)")
    if not suite.tasks and not suite.ablations:
        fail("tasks", f"list at least one task (built-in: {', '.join(TASKS)}) or an [[ablations]] entry")
    for i, entry in enumerate(suite.ablations):
        _validate_ablation(entry, f"{where}: ablations[{i}]")
    for task in suite.tasks:
        if isinstance(task, str) and task not in TASKS:
            hint = difflib.get_close_matches(task, TASKS, n=1)
            fail("tasks", f"unknown task {task!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                 + f"; built-in tasks are {', '.join(TASKS)}, or a table {{name, path, label}}")
        if isinstance(task, dict) and not {"name", "path"} <= set(task):
            fail("tasks", f"a data task needs 'name' and 'path' (and 'label'), got {task}")
        if not isinstance(task, (str, dict)):
            fail("tasks", f"each task is a built-in name or a table {{name, path, label}}, got {task!r}")
    for key, allowed in (("probes", PROBES), ("controls", CONTROLS)):
        for item in getattr(suite, key):
            if item not in allowed:
                fail(key, f"unknown {key[:-1]} {item!r}; choose from {', '.join(allowed)}")
    if suite.site != "resid" and (suite.site not in BLOCK_SITES or BLOCK_SITES[suite.site].needs_eager):
        usable = ["resid"] + [s for s, k in BLOCK_SITES.items() if not k.needs_eager]
        fail("site", f"{suite.site!r} is not probeable; use one of {', '.join(usable)}")
    if isinstance(suite.layers, str) and suite.layers != "all":
        fail("layers", "use \"all\" or a list of layer numbers")
    if isinstance(suite.layers, list) and not all(isinstance(l, int) and l >= 0 for l in suite.layers):
        fail("layers", "layer numbers are whole numbers >= 0")
    if suite.pool not in ("first", "last", "mean"):
        fail("pool", "use first, last or mean")
    if suite.sentence_pool not in ("first", "last", "mean"):
        fail("sentence_pool", "use first, last or mean")
    if not 0 < suite.test_fraction < 1:
        fail("test_fraction", "must be between 0 and 1")
    if suite.n_examples < 20:
        fail("n_examples", "use at least 20 examples so train and test both hold every class")
    if not suite.Cs or any(c <= 0 for c in suite.Cs):
        fail("Cs", "list positive inverse regularisation strengths, e.g. [0.01, 0.1, 1.0]")
    return suite


def _validate_ablation(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise SuiteError(f"{where}: each ablation is a table ([[ablations]] with model = ..., behaviour = ...)")
    for key, value in entry.items():
        if key not in _ABLATION_TYPES:
            hint = difflib.get_close_matches(key, list(_ABLATION_TYPES), n=1)
            raise SuiteError(f"{where}: unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + f"; keys are {', '.join(_ABLATION_TYPES)}")
        kinds = _ABLATION_TYPES[key] if isinstance(_ABLATION_TYPES[key], tuple) else (_ABLATION_TYPES[key],)
        if not isinstance(value, kinds) or (isinstance(value, bool) and int in kinds):
            raise SuiteError(f"{where}: key {key!r} should be {' or '.join(_KIND_NAMES[k] for k in kinds)}, got {value!r}")
    if "model" not in entry:
        raise SuiteError(f"{where}: name the model to ablate (model = \"smollm2-135m\")")
    if entry.get("kind", "mean") not in ("zero", "mean", "resample"):
        raise SuiteError(f"{where}: key 'kind': use zero, mean or resample")
    if entry.get("top_k", 6) < 3:
        raise SuiteError(f"{where}: key 'top_k': at least 3 (additivity compares several subsets of two or more)")


def extract(lm: LoadedModel, ds: ProbingDataset, suite: Suite, root: Path) -> Features:
    return extract_features(lm, ds, suite.layers, site=suite.site, pool=suite.pool, sentence_pool=suite.sentence_pool,
                            batch_size=suite.batch_size, max_length=suite.max_length)


# ------------------------------------------------------------------- probing
def probe_accuracy(kind: str, feats: Features, y: np.ndarray, suite: Suite) -> np.ndarray:
    """0/1 correctness (L, m) of a probe per layer on the test rows."""
    tr, te = ~feats.test, feats.test
    if kind == "logistic":
        fitted = fit_layers(feats.X[:, tr], y[tr], Cs=suite.Cs, cv=suite.cv, seed=suite.seed)
        return fitted.predict(feats.X[:, te]) == y[te][None]
    out = []
    for l in range(feats.X.shape[0]):
        probe = RidgeProbe(cv=suite.cv, random_state=suite.seed).fit(feats.X[l, tr].numpy(), y[tr])
        out.append(probe.predict(feats.X[l, te].numpy()) == y[te])
    return np.stack(out)


def accuracy_rows(correct: np.ndarray, feats: Features, suite: Suite, metric: str = "accuracy") -> list[dict]:
    low, high = bootstrap_ci(correct, feats.groups[feats.test], n_boot=suite.n_boot, seed=suite.seed)
    low, high = np.atleast_1d(low), np.atleast_1d(high)
    return [{"site": s, "layer": l, "metric": metric, "value": float(c.mean()), "ci_low": float(lo), "ci_high": float(hi),
             "n": int(c.size)} for s, l, c, lo, hi in zip(feats.sites, feats.layers, correct, low, high)]


def mdl_rows(feats: Features, suite: Suite) -> list[dict]:
    train = np.flatnonzero(~feats.test)
    order = np.random.default_rng(suite.seed).permutation(train)
    classes, y = np.unique(feats.y[order], return_inverse=True)
    K = len(classes)

    def fit_predict_proba(prefix: np.ndarray, block: np.ndarray) -> np.ndarray:
        fitted = fit_layers(feats.X[:, order[prefix]], classes[y[prefix]], Cs=[suite.mdl_C], cv=0, seed=suite.seed)
        proba = fitted.predict_proba(feats.X[:, order[block]]).numpy()
        full = np.zeros(proba.shape[:-1] + (K,))
        full[..., np.searchsorted(classes, fitted.classes)] = proba
        return full * (1 - 1e-4) + 1e-4 / K  # classes unseen so far keep a little mass

    code = online_codelength(K, y, fit_predict_proba)
    rows = []
    for i, (site, layer) in enumerate(zip(feats.sites, feats.layers)):
        rows.append({"site": site, "layer": layer, "metric": "codelength_bits", "value": float(code["codelength_bits"][i]), "n": len(y)})
        rows.append({"site": site, "layer": layer, "metric": "compression", "value": float(code["compression"][i]), "n": len(y)})
    rows.append({"metric": "uniform_codelength_bits", "value": code["uniform_bits"], "n": len(y)})
    return rows


# ------------------------------------------------------------------- running
class _Progress:
    """done.json: the finished units, so an interrupted run resumes where it stopped."""

    def __init__(self, out: Path):
        self.path = out / "done.json"
        self.done: list[str] = json.loads(self.path.read_text()) if self.path.exists() else []

    def __contains__(self, key: str) -> bool:
        return key in self.done

    def add(self, key: str) -> None:
        self.done.append(key)
        write_json(self.path, self.done, indent=0)


def _dataset(task: Any, suite: Suite) -> ProbingDataset:
    if isinstance(task, str):
        return generate(task, suite.n_examples, seed=suite.seed, lexical_split=suite.lexical_split,
                        test_fraction=suite.test_fraction)
    path = Path(task["path"])
    if path.suffix.lower() == ".conllu":
        ds = load_conllu(path, task.get("label", "upos"), name=task["name"])
    else:
        ds = load_table(path, label=task.get("label", "label"), name=task["name"])
    return ds.with_split(suite.test_fraction, suite.seed)


def run_suite(suite: Suite | str | os.PathLike, out: str | os.PathLike, *, progress: bool = True) -> pd.DataFrame:
    """Run every (model, task, probe, control) unit not yet in ``out``; return the whole results table."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = _record(out, suite)
    done = _Progress(out)
    results = out / "results.csv"
    table = read_results(results) if results.exists() else None  # kept in memory, rewritten atomically per unit
    units = [(m, t, p) for m in suite.models for t in suite.tasks for p in suite.probes]
    bar = tqdm(total=len(units) * (1 + len(suite.controls)), desc=f"suite {suite.name}", unit="unit", disable=not progress)
    models: dict[str, LoadedModel] = {}

    def model(name: str) -> LoadedModel:
        """Each model loaded once per run (on first use) and recorded in run.json."""
        if name not in models:
            source, revision = model_reference(name)
            models[name] = load(source, revision=revision, device=suite.device)
            record["models"][name] = models[name].describe()
            write_json(out / "run.json", record)
        return models[name]

    for model_name in suite.models:
        for task in suite.tasks:
            task_name = task if isinstance(task, str) else task["name"]
            cache: dict[str, Any] = {}

            def lm() -> LoadedModel:
                return model(model_name)

            def feats() -> Features:
                if "feats" not in cache:
                    cache["ds"] = _dataset(task, suite)
                    cache["feats"] = extract(lm(), cache["ds"], suite, out / "activations")
                return cache["feats"]

            for probe in suite.probes:
                for control in ["none", *suite.controls]:
                    key = f"{model_name}|{task_name}|{probe}|{control}"
                    bar.set_postfix_str(key)
                    if key not in done:
                        rows = _unit(control, probe, feats, lm, cache, suite, out)
                        for row in rows:
                            row.update(model=model_name, task=task_name, probe=probe,
                                       control=None if control == "none" else control)
                        table = tidy(rows) if table is None else pd.concat([table, tidy(rows)], ignore_index=True)
                        write_results(table, results)
                        done.add(key)
                    bar.update(1)
    bar.close()
    for i, entry in enumerate(suite.ablations):
        key = f"ablation|{i}|{entry['model']}"
        if key in done:
            continue
        run_ablation({"seed": suite.seed, **entry}, out / "ablations" / str(i), lm=model(entry["model"]),
                     progress=progress)
        rows = read_results(out / "ablations" / str(i) / "results.csv")
        table = rows if table is None else pd.concat([table, rows], ignore_index=True)
        write_results(table, results)
        done.add(key)
    return read_results(results)


def model_reference(name: str) -> tuple[str, str | None]:
    """A suite's model entry: an alias, a folder or a hub id, optionally ``id@revision`` (e.g. Pythia's
    ``EleutherAI/pythia-160m@step1000``; hub ids cannot contain '@')."""
    if "@" in name and not Path(name).exists():
        model, revision = name.rsplit("@", 1)
        return model, revision
    return name, None


def _unit(control: str, probe: str, feats, lm, cache: dict, suite: Suite, out: Path) -> list[dict]:
    f: Features = feats()
    if control == "none":
        correct = probe_accuracy(probe, f, f.y, suite)
        cache[f"correct:{probe}"] = correct
        rows = accuracy_rows(correct, f, suite)
        profile = layer_profile(correct.mean(1))
        majority = pd.Series(f.y[~f.test]).mode()[0]
        rows += [{"metric": "best_layer", "value": f.layers[profile["best_layer"]]},
                 {"metric": "expected_layer", "value": profile["expected_layer"]},
                 {"metric": "majority_baseline", "value": float((f.y[f.test] == majority).mean()), "n": int(f.test.sum())}]
        return rows
    if control == "control_task":
        if f.types is None:  # Hewitt & Liang's control is defined by word type: sentence tasks have none
            return [{"metric": "control_task_skipped", "value": 1.0}]
        y_control = control_labels(f.types, f.y, seed=suite.seed)
        control_correct = probe_accuracy(probe, f, y_control, suite)
        task_correct = cache.get(f"correct:{probe}")
        if task_correct is None:
            task_correct = cache[f"correct:{probe}"] = probe_accuracy(probe, f, f.y, suite)
        rows = accuracy_rows(control_correct, f, suite)
        rows += accuracy_rows(task_correct.astype(float) - control_correct, f, suite, metric="selectivity")
        return rows
    if control == "random_weights":
        rand = random_weights(lm(), seed=suite.seed)
        rf = extract(rand, cache["ds"], suite, out / "activations")
        return accuracy_rows(probe_accuracy(probe, rf, rf.y, suite), rf, suite)
    if control == "mdl":
        if probe != "logistic":  # ridge scores are not probabilities
            return [{"metric": "mdl_skipped", "value": 1.0}]
        return mdl_rows(f, suite)
    raise SuiteError(f"unknown control {control!r}")


def _record(out: Path, suite: Suite) -> dict:
    path = out / "run.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    if record and record.get("suite") != asdict(suite):
        raise SuiteError(f"{out} holds results of a different suite ({record['suite'].get('name')}); use another --out")
    record = record or {"suite": asdict(suite), "seed": suite.seed, "environment": environment(), "models": {}}
    write_json(path, record)
    return record
