"""Capability against scale: evaluate a family of models (or checkpoints), and the scaling analysis.

    table, per_example = evaluate_family([FamilyMember(id, revision="step1000", step=1000), ...], tasks, "runs/f")
    table, verdicts = run_scale(ScaleSpec(results=["runs/f"]), "runs/f-scale")

An evaluation's units are each model's per-example outputs (``probes.runtime.run``), so a killed run resumes
with what was finished. The toy ladder and the induction family, trained here, are ``probes.pipelines.ladder``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from analysis.readings import THRESHOLDS
from analysis.scale_plots import scale_figures
from analysis.scale_table import MULTIPLE_CHOICE, ScaleTableError, read_scale_inputs
from analysis.scaling import analyse
from probes.core.data import read_utf8
from probes.core.loading import resolve
from probes.core.provenance import content_hash
from probes.pipelines.specs import ScaleSpec
from probes.runtime.cluster import Job, ModelRef, Worker, Workers, run_jobs
from probes.runtime.run import RunError, RunFolder, unit_file
from probes.scale.evaluate import FamilyMember, GenerationTask, family_tables, model_rows


def evaluate_family(
    models: Sequence[FamilyMember | str],
    tasks: Sequence[GenerationTask],
    out: str | os.PathLike,
    *,
    family: str = "family",
    batch_size: int = 256,
    progress: bool = True,
    trust_remote_code: bool = False,
    how: Workers | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every model on every task into the run folder ``out``: (scale table, per-example scores).

    Each model's per-example outputs are a unit (``outputs/``), kept as soon as it is done; ``scale.csv`` is the
    scale table, ``examples.csv`` the per-example scores, ``run.json`` the models (weights hashes), tasks and
    versions. ``how=Workers(workers=8)`` (or ``address=...``) evaluates the models on Ray actors, one model per
    actor at a time (``probes.runtime.cluster``); the tables are those of a sequential run.
    """
    specs = [m if isinstance(m, FamilyMember) else FamilyMember(m) for m in models]
    slugs = [s.slug for s in specs]
    if len(set(slugs)) < len(slugs):
        twice = next(s for s in slugs if slugs.count(s) > 1)
        raise RunError(
            f"two models of the family are both called {twice!r} (same name, revision and step): give each its own name"
        )
    identities = {
        s.slug: {**resolve(s.source, s.revision).identity(), "name": s.label, "step": s.step, "tokens": s.tokens}
        for s in specs
    }
    record = {
        "family": family,
        "batch_size": batch_size,
        "tasks": {
            t.name: {"n": len(t.examples), "alphabet": t.alphabet, "sha256_16": content_hash([t.name, t.examples])}
            for t in tasks
        },
    }
    how = how or Workers()
    device = "cuda" if how.distributed and how.gpus else None
    refs = {
        s.slug: ModelRef(
            s.source, s.revision, identities[s.slug]["weights_sha256_16"], device, trust_remote_code=trust_remote_code
        )
        for s in specs
    }
    with RunFolder.open(out, command="evaluate", spec=record, models=identities) as run:
        names = [unit_file(spec.slug, ".json", "outputs") for spec in specs]
        jobs = [
            Job(name, _evaluate_job, (spec, tasks, family, batch_size), group=spec.slug, model=spec.slug)
            for spec, name in zip(specs, names)
            if not run.done(name)
        ]
        done = len(specs) - len(jobs)
        with tqdm(total=len(specs), initial=done, desc="models", unit="model", disable=not progress) as bar:
            for job, rows in run_jobs(jobs, refs, how):
                run.commit_json(job.key, rows)
                bar.update(1)
        frames = [pd.DataFrame(run.read_json(name)) for name in names]
        table, scored = family_tables(pd.concat(frames, ignore_index=True), tasks)
        run.write_frame("scale.csv", table)
        run.write_frame(
            "examples.csv", scored.drop(columns=["target", "generated", "option_logprobs"], errors="ignore")
        )
    return table, scored


def _evaluate_job(
    worker: Worker, spec: FamilyMember, tasks: Sequence[GenerationTask], family: str, batch_size: int
) -> list[dict]:
    return model_rows(worker.model(spec.slug), spec, tasks, family=family, batch_size=batch_size)


def _sizes(path: str | None) -> dict[str, float] | None:
    if path is None:
        return None
    try:
        sizes = json.loads(read_utf8(path))
    except FileNotFoundError:
        raise ScaleTableError(f"--sizes {path}: no such file") from None
    except json.JSONDecodeError as err:
        raise ScaleTableError(
            f'--sizes {path}:{err.lineno}: not valid JSON ({err.msg}); write {{"org/model-160m": 162000000, ...}}'
        ) from None
    if not isinstance(sizes, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in sizes.values()
    ):
        raise ScaleTableError(
            f"--sizes {path}: expected one JSON object of model name -> number of parameters, "
            'e.g. {"org/model-160m": 162000000}'
        )
    return {str(k): float(v) for k, v in sizes.items()}


def run_scale(spec: ScaleSpec, out: str | os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the spec's results, analyse them, and (with ``out``) write ``scale.csv``, ``verdicts.csv``,
    ``figures/*.png`` and ``run.json`` into that run folder: (scale table, verdicts)."""
    table, examples = read_scale_inputs(spec.results, sizes=_sizes(spec.sizes), family=spec.family, size=spec.size)
    verdicts = analyse(table, examples=examples, size=spec.size, n_boot=spec.n_boot, seed=spec.seed)
    if out is None:
        return table, verdicts
    details = {"inputs": [str(Path(p).resolve()) for p in spec.results], "thresholds": asdict(THRESHOLDS)}
    with RunFolder.open(out, command="scale", spec=spec.record(), seed=spec.seed, details=details) as run:
        run.write_frame("scale.csv", table)
        run.write_frame("verdicts.csv", verdicts)
        import matplotlib.pyplot as plt

        for name, fig in scale_figures(table, verdicts, size=spec.size).items():
            with run.writing(f"figures/{name}") as path:
                fig.savefig(path, dpi=110, format="png")
            plt.close(fig)
    return table, verdicts


def inferences(table: pd.DataFrame) -> list[str]:
    """What the reader inferred rather than read: sizes and families from model names, chance unknown."""
    lines = []
    models = table.drop_duplicates("model")
    if "size_from" in table.columns:
        named = models[models["size_from"] == "name"]
        if len(named):
            sizes = ", ".join(f"{m} {p:.3g}" for m, p in zip(named["model"], named["parameters"]))
            lines.append(f"sizes read from the model names: {sizes} (override with --sizes FILE)")
    if "family_from" in table.columns:
        named = models[models["family_from"] == "name"]
        for family, group in named.groupby("family", sort=True):
            lines.append(f"family {family!r} read from the model names ({len(group)} models; override with --family)")
    mc = table[table["metric"].astype(str).str.split(",").str[0].isin(MULTIPLE_CHOICE) & table["chance"].isna()]
    if len(mc):
        tasks = ", ".join(sorted(mc["task"].astype(str).unique()))
        lines.append(f"chance unknown for {tasks} (no options listed, not a known task): scored against 0")
    return lines


def describe(table: pd.DataFrame, verdicts: pd.DataFrame, out: str | os.PathLike | None = None) -> str:
    """What ``probes scale`` and ``probes ladder eval`` print: the verdict table and each verdict's reading."""
    shown = [
        "family",
        "task",
        "metric",
        "n_sizes",
        "I",
        "breakthroughness",
        "linearity",
        "delta_bic",
        "jump_location",
        "jump_low",
        "jump_high",
        "prediction_error",
        "verdict",
    ]
    lines = [*inferences(table), ""] if inferences(table) else []
    lines += [
        f"\n{len(table)} scores of {table['model'].nunique()} models; verdicts per task and metric "
        "(scores normalised: 0 = chance, 1 = best):\n"
    ]
    with pd.option_context("display.width", 220, "display.max_columns", 20, "display.max_colwidth", 200):
        lines.append(
            verdicts[[c for c in shown if c in verdicts.columns]].to_string(index=False, float_format="{:.3g}".format)
        )
    lines.append("")
    lines += [f"{row['task']} / {row['metric']}: {row['reading']}" for _, row in verdicts.iterrows()]
    if out is not None:
        out = Path(out)
        lines.append(f"\nwritten: {out / 'scale.csv'}, {out / 'verdicts.csv'}, {out / 'figures'}, {out / 'run.json'}")
    return "\n".join(lines)
