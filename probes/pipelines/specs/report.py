"""The specs of ``probes report``, ``probes validate`` and ``probes demo``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from probes.pipelines.specs.base import Spec, meta


class ReportSpec(Spec):
    """``probes report``: one self-contained HTML (or Markdown) report from result folders."""

    results: list[str] = Field(
        **meta(
            "result folders (or folders that hold them)", positional=True, missing="name the result folders to report"
        )
    )
    format: Literal["html", "md"] | None = Field(
        None, **meta("html (one self-contained file) or md (figures beside it); default: from the --out suffix")
    )
    title: str = Field("emergence-probes report", **meta("the report's title"))
    figures: str | None = Field(
        None, **meta("also write every figure as a PNG named after its title into DIR", metavar="DIR")
    )


class ValidateSpec(Spec):
    """``probes validate``: the planted zoo (models with a known mechanism), each case's verdict beside its truth."""

    erase_random: int = Field(20, ge=2, **meta("random-subspace erasures the erasure cases are compared with"))
    n: int = Field(400, ge=50, **meta("examples per model size in the scale cases"))
    seed: int = Field(0, **meta("seed of the sampled orders, random erasures and planted outputs"))


class DemoSpec(Spec):
    """``probes demo``: the main job on the two embedded models, ending in the report."""

    quick: bool = Field(False, **meta("small settings everywhere (about a minute): the pipeline, not conclusions"))
    device: str | None = Field(None, **meta("where the models run: cpu, cuda ... (the ladder trains on the CPU)"))
