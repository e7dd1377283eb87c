"""``probes demo`` (what ``make demo`` runs): the main job on the two embedded models, ending in the report.

Seven steps, each its own run folder under OUT (so each resumes on its own): a capture of minilm, the
default probe suite on it, per-head statistics of both models, an ablation and erasure study of
agreement on smollm2-135m, the toy scale ladder, its evaluation and scaling analysis, and
``OUT/report.html``. ``quick`` runs the same pipeline with small settings in about a minute.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from probes.core.models import DEFAULT_MODEL, load
from probes.pipelines import ablation_study, capture, heads, report, scale, suite
from probes.pipelines.run import RunFolder
from probes.pipelines.specs import (
    DEMO_SITES,
    AblationSpec,
    CaptureSpec,
    DemoSpec,
    HeadsSpec,
    LadderSpec,
    ReportSpec,
    load_suite,
)


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs at one size (full: about 15 minutes on 2 cores; quick: about a minute)."""

    suite: str
    ablation: AblationSpec
    ladder: Literal["default", "demo", "tiny"]  # a LadderSpec setting
    ladder_n: int  # test examples per task


SETTINGS = {
    # full: 24 pairs and the top 5 fit the demo's budget (the 64-pair default study takes 6.5 minutes alone)
    "full": DemoSettings(
        "default",
        AblationSpec(
            model="smollm2-135m",
            behaviour="agreement",
            n=24,
            kind="mean",
            components="heads+mlps",
            top_k=5,
            permutations=12,
            interaction_samples=2,
            erase="subject_number",
            erase_n=200,
            erase_random=3,
        ),
        "demo",
        150,
    ),
    "quick": DemoSettings(
        "quick",
        AblationSpec(
            model="smollm2-135m",
            behaviour="agreement",
            n=8,
            kind="mean",
            components="L0H0 L1H1 L3.mlp L8H2 L14H4 L20.mlp",
            top_k=3,
            permutations=4,
            interaction_samples=2,
            erase="subject_number",
            erase_layers=[15],
            erase_n=60,
            erase_random=2,
        ),
        "tiny",
        50,
    ),
}


def default_out(spec: DemoSpec) -> Path:
    return Path("runs/demo-quick" if spec.quick else "runs/demo")


def run_demo(spec: DemoSpec, out: str | os.PathLike | None = None) -> Path:
    """Run every step not yet done under ``out`` and write the report; returns the report's path."""
    settings = SETTINGS["quick" if spec.quick else "full"]
    out = Path(out) if out is not None else default_out(spec)
    start, steps = time.perf_counter(), 7
    ablation_spec = settings.ablation.model_copy(update={"device": spec.device})

    def step(k: int, text: str) -> None:
        print(f"\n[{time.perf_counter() - start:5.0f} s] demo {k}/{steps}: {text}", flush=True)

    with RunFolder.open(out, command="demo", spec=spec.record()):
        step(1, f"capturing the residual stream and attention patterns of {DEFAULT_MODEL} on the built-in texts")
        lm = load(DEFAULT_MODEL, device=spec.device)
        store, summary = capture.run_capture(
            CaptureSpec(model=DEFAULT_MODEL, sites=DEMO_SITES, device=spec.device), out / "capture", lm=lm
        )
        print(capture.describe(store, summary))
        step(2, f"the {settings.suite} probe suite on {DEFAULT_MODEL} (resumes if interrupted)")
        suite_spec = load_suite(settings.suite).model_copy(update={"device": spec.device})
        results = suite.run_suite(suite_spec, out / "probes")
        print(suite.describe(results, out / "probes"))
        step(3, f"per-head attention statistics of {DEFAULT_MODEL} and {ablation_spec.model}")
        models = {DEFAULT_MODEL: lm, ablation_spec.model: load(ablation_spec.model, device=spec.device)}
        for name, model in models.items():
            heads.run_heads(HeadsSpec(model=name, device=spec.device), out / "heads" / name, lm=model)
        step(
            4,
            f"ablation, interaction and erasure study of {ablation_spec.behaviour} on {ablation_spec.model} (resumes)",
        )
        study = ablation_study.run_ablation(ablation_spec, out / "ablation", lm=models[ablation_spec.model])
        print(study.summary())
        step(5, "training the toy scale ladder (finished models are kept)")
        scale.train_ladder(out / "ladder", LadderSpec(setting=settings.ladder))
        step(6, "scoring the ladder and analysing capability vs scale")
        _, verdicts = scale.analyse_ladder(out / "ladder", n=settings.ladder_n)
        for row in verdicts.itertuples():
            print(f"  {row.task} / {row.metric}: {row.verdict}")
        step(7, "writing the report")
        path = report.write_report(ReportSpec(results=[str(out)], title="emergence-probes demo"), out / "report.html")
    print(f"\nreport: {path.resolve()}  ({time.perf_counter() - start:.0f} s in all)")
    return path


__all__ = ["SETTINGS", "DemoSettings", "default_out", "run_demo"]
