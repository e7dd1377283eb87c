"""The specs of ``probes ladder train``, ``probes ladder eval`` and ``probes scale``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from probes.pipelines.specs.base import Spec, meta
from probes.pipelines.specs.options import SpreadOptions


class LadderSpec(Spec):
    """``probes ladder train``: the toy scale ladder (``probes.scale.ladder.LadderConfig`` holds its sizes)."""

    setting: Literal["default", "demo", "tiny"] = Field(
        "default",
        **meta(
            "default: seven sizes x two seeds, 2,500 steps (about 5 minutes on 2 cores); demo: six sizes, 2,000 steps; "
            "tiny: seconds, for trying things out"
        ),
    )
    steps: int | None = Field(None, ge=1, **meta("training steps per model (default: the setting's)"))
    seed: int = Field(0, **meta("seed of initialisation and training data"))
    processes: int | None = Field(
        None,
        ge=1,
        **meta(
            "models trained at once, each in its own one-thread local process, not Ray (default: one per CPU core, "
            "at most 8; 1 trains them one after the other in this process)"
        ),
    )


class LadderEvalSpec(SpreadOptions):
    """``probes ladder eval``: score the ladder's models and checkpoints, then the scaling analysis."""

    n: int = Field(500, ge=10, **meta("test examples per task"))


class ScaleSpec(Spec):
    """``probes scale``: the scale table and a verdict (smooth, jump, mirage) per task and metric."""

    results: list[str] = Field(
        **meta(
            "lm-eval .json files, .csv scale tables or evaluation folders",
            positional=True,
            missing="name lm-eval .json files, scale .csv files or evaluation folders",
        )
    )
    sizes: str | None = Field(None, **meta("JSON file {model: parameters} for results that do not state their size"))
    family: str | None = Field(None, **meta("family name for all rows (default: the model id, or 'family')"))
    size: Literal["parameters", "non_embedding_parameters", "tokens", "step"] = Field(
        "parameters", **meta("the scale axis; 'step' reads each model's checkpoints as its own curve")
    )
    n_boot: int = Field(200, ge=10, **meta("bootstrap resamples of the jump's location"))
    seed: int = Field(0, **meta("seed of the bootstrap"))
