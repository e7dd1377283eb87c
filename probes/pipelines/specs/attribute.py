"""The specs of ``probes attribute`` and ``probes circuit``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from probes.pipelines.specs.base import (
    ABLATIONS,
    BEHAVIOUR_HELP,
    BEHAVIOURS,
    MAX_EXAMPLES,
    WHY_MAX_EXAMPLES,
    BehaviourName,
    Counterfactual,
    meta,
    registered,
)
from probes.pipelines.specs.options import ModelOptions, SpreadOptions, check_components


class AttributeSpec(ModelOptions, SpreadOptions):
    """``probes attribute``: every component's (AtP, AtP*) or every edge's (EAP, EAP-IG) effect on a behaviour,
    estimated from gradients; the strongest and a random sample are then measured exactly."""

    behaviour: BehaviourName = Field(
        None, **registered(BEHAVIOURS, "its metric must be differentiable; " + BEHAVIOUR_HELP)
    )
    data: str | None = Field(
        None,
        **meta(
            "file for the behaviour (as probes ablate); with --kind patch, a JSONL of prompt pairs: clean, corrupt, "
            "answer, wrong"
        ),
    )
    n: int = Field(64, ge=1, le=MAX_EXAMPLES, **meta("generated examples", why=WHY_MAX_EXAMPLES))
    kind: Counterfactual = Field(
        "mean",
        **registered(
            ABLATIONS,
            "the counterfactual (patch: the clean prompts run, each part takes its value from the corrupted prompts': "
            "--behaviour agreement's generated pairs, or --data): ",
        ),
    )
    method: Literal["atp", "atp*", "eap", "eap-ig"] = Field(
        "atp*",
        **meta(
            "atp: first-order estimate per component; atp*: with the QK fix and GradDrop; eap: per edge; eap-ig: per "
            "edge, gradients integrated from the counterfactual to the clean input"
        ),
    )
    components: str | list[str] = Field(
        "heads+mlps",
        **meta("for atp and atp*: heads, mlps, heads+mlps, layers, qkv, or names such as L3H5 L4.mlp", nargs="+"),
    )
    steps: int = Field(5, ge=1, **meta("eap-ig: points on the path from the counterfactual to the clean input"))
    exact: bool = Field(
        False,
        **meta(
            "also measure every component's exact effect (a forward per component), for the exact map beside the "
            "attribution map"
        ),
    )
    verify_top: int = Field(10, ge=1, **meta("the strongest this many, re-measured exactly"))
    verify_sample: int = Field(20, ge=0, **meta("and a random sample of this many of the rest"))
    seed: int = Field(0, **meta("seed of the examples, the reference statistics and the verification sample"))

    @field_validator("components")
    @classmethod
    def _components(cls, value: str | list[str]) -> str | list[str]:
        return check_components(value)

    @property
    def edges(self) -> bool:
        return self.method in ("eap", "eap-ig")


class CircuitSpec(AttributeSpec):
    """``probes circuit``: edges scored (EAP, EAP-IG), then circuits of the top edges measured exactly against
    random circuits of the same size, and the smallest share of edges that keeps ``target`` of the behaviour."""

    method: Literal["eap", "eap-ig"] = Field(  # the edge methods only
        "eap-ig", **meta("eap or eap-ig (gradients integrated from the counterfactual to the clean input)")
    )
    sizes: list[int] | None = Field(
        None, **meta("circuit sizes in edges (default: 12 from one edge to all, evenly in log size)")
    )
    random: int = Field(3, ge=0, **meta("random circuits of each size, the baseline"))
    target: float = Field(0.8, gt=0, le=1, **meta("the share of the behaviour a faithful circuit keeps"))
    n_boot: int = Field(1000, ge=10, **meta("bootstrap resamples (examples) of the smallest share's interval"))

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or min(value) < 1):
            raise ValueError("circuit sizes are whole numbers of edges, at least 1")
        return value
