"""The specs of ``probes capture`` and ``probes heads``: sites over a text set, per-head statistics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from probes.pipelines.specs.base import meta
from probes.pipelines.specs.options import ModelOptions

DEMO_SITES = ["blocks.*.hook_resid_post", "blocks.*.attn.hook_pattern"]


class CaptureSpec(ModelOptions):
    """``probes capture``: sites over a text set into an activation store, and a per-layer summary."""

    texts: str | None = Field(
        None, **meta(".txt (one per line), .jsonl or .csv with a 'text' column (default: built-in demo texts)")
    )
    sites: list[str] = Field(default_factory=lambda: list(DEMO_SITES), **meta("site names or patterns"))
    dtype: Literal["float16", "float32", "bfloat16"] = Field("float16", **meta("stored precision"))
    batch_size: int = Field(16, ge=1, **meta("texts per forward pass (bounds memory)"))
    max_length: int | None = Field(None, ge=1, **meta("tokens per text; longer texts are truncated and reported"))


class HeadsSpec(ModelOptions):
    """``probes heads``: per-head attention statistics and every head's pattern on one input."""

    texts: str | None = Field(
        None, **meta(".txt (one per line), .jsonl or .csv with a 'text' column (default: built-in demo texts)")
    )
    example: str | None = Field(None, **meta("the input whose attention patterns the report shows"))
    seed: int = Field(0, **meta("seed of the induction set's random tokens"))
