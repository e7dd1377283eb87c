"""Studies end to end, from a spec to a run folder: the only code that writes results to disk.

    from probes.pipelines import AblationSpec, run_ablation, run_suite
    run_suite("quick", "runs/quick")
    run_ablation(AblationSpec(model="smollm2-135m", n=128), "runs/ablate")

In memory, for a notebook: ``probes.pipelines.suite.probe_layers`` and
``probes.pipelines.ablation_study.ablation_study``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from probes.lazy import exports

_NAMES = {
    "AblationStudy": "probes.pipelines.ablation_study",
    "run_ablation": "probes.pipelines.ablation_study",
    "run_capture": "probes.pipelines.capture",
    "run_demo": "probes.pipelines.demo",
    "run_heads": "probes.pipelines.heads",
    "run_lens": "probes.pipelines.lens",
    "write_report": "probes.pipelines.report",
    "RunError": "probes.pipelines.run",
    "RunFolder": "probes.pipelines.run",
    "evaluate_family": "probes.pipelines.scale",
    "analyse_ladder": "probes.pipelines.scale",
    "evaluate_ladder": "probes.pipelines.scale",
    "run_scale": "probes.pipelines.scale",
    "train_ladder": "probes.pipelines.scale",
    "AblationSpec": "probes.pipelines.specs",
    "CaptureSpec": "probes.pipelines.specs",
    "DemoSpec": "probes.pipelines.specs",
    "HeadsSpec": "probes.pipelines.specs",
    "LadderEvalSpec": "probes.pipelines.specs",
    "LadderSpec": "probes.pipelines.specs",
    "LensSpec": "probes.pipelines.specs",
    "ProbingSpec": "probes.pipelines.specs",
    "ReportSpec": "probes.pipelines.specs",
    "ScaleSpec": "probes.pipelines.specs",
    "SpecError": "probes.pipelines.specs",
    "StudySpec": "probes.pipelines.specs",
    "SuiteSpec": "probes.pipelines.specs",
    "load_suite": "probes.pipelines.specs",
    "make": "probes.pipelines.specs",
    "probe_layers": "probes.pipelines.suite",
    "run_suite": "probes.pipelines.suite",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # what type checkers and editors see; at run time each name is imported on first use
    from probes.pipelines.ablation_study import AblationStudy, run_ablation
    from probes.pipelines.capture import run_capture
    from probes.pipelines.demo import run_demo
    from probes.pipelines.heads import run_heads
    from probes.pipelines.lens import run_lens
    from probes.pipelines.report import write_report
    from probes.pipelines.run import RunError, RunFolder
    from probes.pipelines.scale import analyse_ladder, evaluate_family, evaluate_ladder, run_scale, train_ladder
    from probes.pipelines.specs import (
        AblationSpec,
        CaptureSpec,
        DemoSpec,
        HeadsSpec,
        LadderEvalSpec,
        LadderSpec,
        LensSpec,
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
