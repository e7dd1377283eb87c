"""The spec of ``probes lens``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from probes.pipelines.specs.base import BEHAVIOURS, MAX_EXAMPLES, WHY_MAX_EXAMPLES, BehaviourName, meta, registered
from probes.pipelines.specs.options import ModelOptions


class LensSpec(ModelOptions):
    """``probes lens``: the logit lens and a tuned lens trained here, per depth, and a behaviour read through them."""

    texts: str = Field(
        "python-docs",
        **meta("built-in text set (python-docs, demo) or a .txt/.jsonl/.csv file; the last fifth is held out"),
    )
    steps: int = Field(60, ge=0, **meta("Adam steps on KL after the least-squares start (0: least squares only)"))
    batch_tokens: int = Field(128, ge=1, **meta("tokens per training step"))
    lr: float = Field(1e-3, gt=0, **meta("Adam learning rate of the translators"))
    init: Literal["least-squares", "identity"] = Field(
        "least-squares", **meta("where the translators start: least squares to the last residual, or the logit lens")
    )
    train_tokens: int = Field(16384, ge=64, **meta("tokens of the training texts the translators learn from"))
    test_tokens: int = Field(2048, ge=16, **meta("held-out tokens KL, top-1 agreement and surprisal are read on"))
    max_length: int | None = Field(
        None, ge=8, **meta("tokens per text; longer texts are truncated (default: the model's, at most 512)")
    )
    behaviour: BehaviourName = Field(
        None, **registered(BEHAVIOURS, "also read this behaviour through both lenses at every depth: ")
    )
    n: int = Field(64, ge=1, le=MAX_EXAMPLES, **meta("generated examples of the behaviour", why=WHY_MAX_EXAMPLES))
    seed: int = Field(0, **meta("seed of the training batches, the behaviour's examples and the intervals"))
