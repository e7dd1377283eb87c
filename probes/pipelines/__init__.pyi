"""The exports of probes.pipelines: what its ``__init__.py`` imports on first use (``probes.lazy``)."""

from probes.pipelines.ablation_study import run_ablation as run_ablation
from probes.pipelines.attribute import run_attribute as run_attribute, run_circuit as run_circuit
from probes.pipelines.capture import run_capture as run_capture
from probes.pipelines.demo import run_demo as run_demo
from probes.pipelines.heads import run_heads as run_heads
from probes.pipelines.lens import run_lens as run_lens
from probes.pipelines.report import write_report as write_report
from probes.runtime.run import RunError as RunError, RunFolder as RunFolder
from probes.pipelines.ladder import (
    analyse_ladder as analyse_ladder,
    evaluate_ladder as evaluate_ladder,
    train_ladder as train_ladder,
)
from probes.pipelines.scale import evaluate_family as evaluate_family, run_scale as run_scale
from probes.pipelines.specs import (
    AblationSpec as AblationSpec,
    AttributeSpec as AttributeSpec,
    CircuitSpec as CircuitSpec,
    CaptureSpec as CaptureSpec,
    DemoSpec as DemoSpec,
    HeadsSpec as HeadsSpec,
    LadderEvalSpec as LadderEvalSpec,
    LadderSpec as LadderSpec,
    LensSpec as LensSpec,
    ProbingSpec as ProbingSpec,
    ReportSpec as ReportSpec,
    ScaleSpec as ScaleSpec,
    SpecError as SpecError,
    AblationSettings as AblationSettings,
    SuiteSpec as SuiteSpec,
    load_suite as load_suite,
    make as make,
)
from probes.pipelines.study import Study as Study
from probes.pipelines.suite import run_suite as run_suite
