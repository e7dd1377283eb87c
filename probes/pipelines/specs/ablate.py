"""The specs of an ablation study: its settings (``AblationSettings``, what ``probes.causal.study`` takes) and
``probes ablate``."""

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
    Kind,
    Spec,
    hint,
    meta,
    registered,
)
from probes.pipelines.specs.options import ModelOptions, SpreadOptions, check_components
from probes.probing.datasets import TASKS


class AblationSettings(Spec):
    """How an ablation study runs (``probes.pipelines.ablation_study``), whatever the model and behaviour."""

    kind: Kind = Field(
        "mean", **registered(ABLATIONS, "what an ablated component's value becomes: ", needs_source=False)
    )
    components: str | list[str] = Field(
        "heads+mlps", **meta("heads, mlps, heads+mlps, layers, qkv, or names such as L3H5 L4.mlp L3H5.q", nargs="+")
    )
    screen: int | None = Field(
        None,
        ge=1,
        **meta(
            "examples the sweep of every component runs on (default: all); the top k are then studied on all",
            why="the sweep costs a forward per component, the joint stages one per subset",
        ),
    )
    top_k: int = Field(
        6, ge=3, **meta("components studied jointly", why="additivity compares several subsets of two or more")
    )
    permutations: int = Field(32, ge=2, **meta("sampled orders for Shapley values (antithetic pairs)"))
    interaction_samples: int = Field(8, ge=1, **meta("sampled subsets per pair for the Shapley interaction index"))
    n_boot: int = Field(200, ge=10, **meta("bootstrap resamples of the additivity R^2's CI"))
    seed: int = Field(0, **meta("seed of the sampled orders, subsets and bootstrap"))

    select: Literal["exact", "atp", "atp*"] = Field(
        "exact",
        **meta(
            "how the top k are chosen: exact single effects of every component (one forward each), or their "
            "attribution estimates (one forward and backward pass; the top k are then measured exactly)"
        ),
    )

    @field_validator("components")
    @classmethod
    def _components(cls, value: str | list[str]) -> str | list[str]:
        return check_components(value)

    def settings(self) -> AblationSettings:
        """Only the study's own settings (what ``ablation_study`` takes)."""
        return AblationSettings(**{k: getattr(self, k) for k in AblationSettings.model_fields})


class AblationSpec(AblationSettings, ModelOptions, SpreadOptions):
    """``probes ablate`` and a suite's ``[[ablations]]`` entry: a behaviour of one model, taken apart."""

    behaviour: BehaviourName = Field(None, **registered(BEHAVIOURS, BEHAVIOUR_HELP))
    data: str | None = Field(
        None, **meta("file for the behaviour: BLiMP JSONL (pairs), texts (loss), text_a/text_b JSONL (cosine)")
    )
    n: int = Field(64, ge=1, le=MAX_EXAMPLES, **meta("generated examples", why=WHY_MAX_EXAMPLES))
    erase: str | None = Field(
        None,
        **meta(
            "amnesic probing too: erase a grammar concept (e.g. subject_number) with "
            "LEACE and compare with random subspaces of equal rank",
            metavar="CONCEPT",
        ),
    )
    erase_layers: list[int] | None = Field(
        None,
        **meta(
            "residual-stream layers to erase at (0 = embeddings, l = block l-1's output; default: 1/4, 1/2, 3/4 of "
            "the depth)"
        ),
    )
    erase_n: int = Field(200, ge=20, **meta("sentences the concept's eraser and probes are fitted on"))
    erase_random: int = Field(5, ge=1, **meta("random subspaces of equal rank to compare with"))

    @field_validator("erase")
    @classmethod
    def _erase(cls, value: str | None) -> str | None:
        if value is not None and value not in TASKS:
            raise ValueError(f"unknown concept {value!r}{hint(value, TASKS)}; built-in concepts are {', '.join(TASKS)}")
        return value

    @field_validator("erase_layers")
    @classmethod
    def _erase_layers(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(layer < 0 for layer in value)):
            raise ValueError("layer numbers are whole numbers >= 0 (0 = embeddings)")
        return value
