"""Studies end to end, from a spec to a run folder: the only code that writes results to disk.

    from probes.pipelines import AblationSpec, run_ablation, run_suite
    run_suite("quick", "runs/quick")
    run_ablation(AblationSpec(model="smollm2-135m", n=128), "runs/ablate")

In memory, for a notebook: ``probes.pipelines.suite.probe_layers`` and
``probes.pipelines.ablation_study.ablation_study``.
"""

from probes.pipelines.ablation_study import AblationStudy, run_ablation
from probes.pipelines.capture import run_capture
from probes.pipelines.demo import run_demo
from probes.pipelines.heads import run_heads
from probes.pipelines.report import write_report
from probes.pipelines.run import RunError, RunFolder
from probes.pipelines.scale import evaluate_family, evaluate_ladder, run_scale, train_ladder
from probes.pipelines.specs import (
    AblationSpec,
    CaptureSpec,
    DemoSpec,
    HeadsSpec,
    LadderEvalSpec,
    LadderSpec,
    ProbingSpec,
    ReportSpec,
    ScaleSpec,
    SpecError,
    StudySpec,
    SuiteSpec,
    load_suite,
    make,
)
from probes.pipelines.suite import probe_layers, run_suite

__all__ = [
    "AblationSpec",
    "AblationStudy",
    "CaptureSpec",
    "DemoSpec",
    "HeadsSpec",
    "LadderEvalSpec",
    "LadderSpec",
    "ProbingSpec",
    "ReportSpec",
    "RunError",
    "RunFolder",
    "ScaleSpec",
    "SpecError",
    "StudySpec",
    "SuiteSpec",
    "evaluate_family",
    "evaluate_ladder",
    "load_suite",
    "make",
    "probe_layers",
    "run_ablation",
    "run_capture",
    "run_demo",
    "run_heads",
    "run_scale",
    "run_suite",
    "train_ladder",
    "write_report",
]
