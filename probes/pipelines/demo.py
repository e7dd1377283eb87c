"""``probes demo`` (what ``make demo`` runs): the main job on the two embedded models, ending in the report.

Nine steps, each its own run folder under OUT (so each resumes on its own): a capture of minilm, the
default probe suite on it, per-head statistics of both models, ablation studies of induction and of
copula agreement (its top components chosen by AtP*, with erasure of subject number) on smollm2-135m,
the circuits of copula agreement (EAP-IG over every edge, the faithfulness curve), the induction family
(trained here, its checkpoints read as curves over training, and its two heads taken apart), the toy
scale ladder, its evaluation and scaling analysis, and ``OUT/report.html``. ``quick`` runs the same pipeline with small
settings in about a minute.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from probes.core.loading import DEFAULT_MODEL, load
from probes.pipelines import ablation_study, attribute, capture, heads, ladder, report, suite
from probes.pipelines.specs import (
    DEMO_SITES,
    AblationSettings,
    AblationSpec,
    CaptureSpec,
    CircuitSpec,
    DemoSpec,
    HeadsSpec,
    LadderSpec,
    ReportSpec,
    load_suite,
)
from probes.runtime.run import RunFolder
from probes.scale.induction import INDUCTION_LENGTH, InductionFamily


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs at one size (full: about 10 minutes on 2 cores; quick: about a minute)."""

    suite: str
    ablations: tuple[AblationSpec, ...]  # studies of the 135M model, each its own run folder
    circuit: CircuitSpec  # the circuits of one behaviour of the 135M model
    induction: InductionFamily  # the family trained here, with checkpoints
    induction_study: AblationSettings  # the previous-token x induction head study of its two-layer model
    ladder: Literal["default", "demo", "tiny"]  # a LadderSpec setting
    ladder_n: int  # test examples per task
    induction_n: int  # held-out sequences per checkpoint


SETTINGS = {
    # full: every component of the 135M model swept on the first 8 examples, the top five studied on all
    # (sweeping every head and MLP on 96 induction sequences took 11 minutes here)
    "full": DemoSettings(
        "default",
        (
            AblationSpec(
                model="smollm2-135m",
                behaviour="induction",
                n=48,
                kind="mean",
                components="heads",
                screen=8,
                top_k=5,
                permutations=8,
                interaction_samples=1,
            ),
            AblationSpec(  # every head and MLP estimated by AtP* on all 256 pairs; the top five measured exactly
                model="smollm2-135m",
                behaviour="agreement-copula",
                n=256,
                kind="mean",
                components="heads+mlps",
                select="atp*",
                top_k=5,
                permutations=8,
                interaction_samples=1,
                erase="subject_number",
                erase_n=200,
                erase_random=3,
            ),
        ),
        CircuitSpec(model="smollm2-135m", behaviour="agreement-copula", n=32),
        InductionFamily(),
        AblationSettings(kind="mean", components="heads+mlps", top_k=4, permutations=16),
        "demo",
        150,
        256,
    ),
    "quick": DemoSettings(
        "quick",
        (
            AblationSpec(
                model="smollm2-135m",
                behaviour="induction",
                n=8,
                kind="mean",
                components="L1H1 L16H0 L18H6 L29H1 L3.mlp",
                top_k=3,
                permutations=4,
                interaction_samples=2,
            ),
            AblationSpec(
                model="smollm2-135m",
                behaviour="agreement-copula",
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
        ),
        CircuitSpec(
            model="smollm2-135m",
            behaviour="agreement-copula",
            n=4,
            steps=2,
            sizes=[1000],
            random=1,
            verify_top=3,
            verify_sample=3,
            n_boot=50,
        ),
        InductionFamily(steps=30, checkpoints=(0, 10, 20)),
        AblationSettings(kind="mean", components="heads+mlps", top_k=3, permutations=4),
        "tiny",
        50,
        32,
    ),
}


def default_out(spec: DemoSpec) -> Path:
    return Path("runs/demo-quick" if spec.quick else "runs/demo")


def run_demo(spec: DemoSpec, out: str | os.PathLike | None = None) -> Path:
    """Run every step not yet done under ``out`` and write the report; returns the report's path."""
    settings = SETTINGS["quick" if spec.quick else "full"]
    out = Path(out) if out is not None else default_out(spec)
    start, steps = time.perf_counter(), 9
    ablations = [a.model_copy(update={"device": spec.device}) for a in settings.ablations]

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
        lm_name = ablations[0].model
        step(3, f"per-head attention statistics of {DEFAULT_MODEL} and {lm_name}")
        models = {DEFAULT_MODEL: lm, lm_name: load(lm_name, device=spec.device)}
        for name, model in models.items():
            heads.run_heads(HeadsSpec(model=name, device=spec.device), out / "heads" / name, lm=model)
        for a in ablations:
            assert a.behaviour is not None
            erased = f", erasing {a.erase}" if a.erase else ""
            step(4, f"ablation and interaction study of {a.behaviour} on {a.model}{erased} (resumes)")
            study = ablation_study.run_ablation(a, out / "ablation" / a.behaviour, lm=models[a.model])
            print(study.summary())
        circuit = settings.circuit.model_copy(update={"device": spec.device})
        step(5, f"circuits of {circuit.behaviour} on {circuit.model}: EAP-IG over every edge, then top-k circuits")
        found = attribute.run_circuit(circuit, out / "circuit" / str(circuit.behaviour), lm=models[circuit.model])
        print(found.summary(circuit))
        step(6, "the induction family: attention-only models of 1 and 2 layers trained here, with checkpoints")
        family = out / "induction"
        folders = ladder.train_induction_family(family, settings.induction)
        _, verdicts = ladder.analyse_induction(family, n=settings.induction_n)
        for row in verdicts.itertuples():
            print(f"  {row.family} / {row.task} / {row.metric}: {row.verdict}")
        pair = AblationSpec(
            model=str(folders[-1]),
            behaviour=f"induction:{INDUCTION_LENGTH}",
            n=64,
            device=spec.device,
            **settings.induction_study.model_dump(),
        )
        print(ablation_study.run_ablation(pair, family / "ablation").summary())
        step(7, "training the toy scale ladder (finished models are kept)")
        ladder.train_ladder(out / "ladder", LadderSpec(setting=settings.ladder))
        step(8, "scoring the ladder and analysing capability vs scale")
        _, verdicts = ladder.analyse_ladder(out / "ladder", n=settings.ladder_n)
        for row in verdicts.itertuples():
            print(f"  {row.task} / {row.metric}: {row.verdict}")
        step(9, "writing the report")
        path = report.write_report(ReportSpec(results=[str(out)], title="emergence-probes demo"), out / "report.html")
    print(f"\nreport: {path.resolve()}  ({time.perf_counter() - start:.0f} s in all)")
    return path


__all__ = ["SETTINGS", "DemoSettings", "default_out", "run_demo"]
