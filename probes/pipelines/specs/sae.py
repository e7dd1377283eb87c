"""The specs of ``probes sae train`` and ``probes sae features``."""

from __future__ import annotations

from pydantic import Field, field_validator

from probes.pipelines.specs.base import (
    ABLATIONS,
    BEHAVIOUR_HELP,
    BEHAVIOURS,
    MAX_EXAMPLES,
    WHY_MAX_EXAMPLES,
    BehaviourName,
    Kind,
    meta,
    registered,
)
from probes.pipelines.specs.options import ModelOptions
from probes.probing.datasets import TASKS


class SaeTrainSpec(ModelOptions):
    """``probes sae train``: a TopK sparse autoencoder (or, with ``site_out``, a transcoder) of one site, trained
    on text sets here, saved in SAELens's format, and measured on held-out texts."""

    site: str = Field(
        **meta(
            "the site the dictionary reads, e.g. blocks.6.hook_resid_pre (list them with probes sites MODEL)",
            missing="name the site the dictionary reads: --site blocks.6.hook_resid_pre",
        )
    )
    site_out: str | None = Field(
        None, **meta("a transcoder's output site (e.g. blocks.6.hook_mlp_out); none: a sparse autoencoder")
    )
    texts: list[str] = Field(
        default_factory=lambda: ["python-docs", "python-prose"],
        **meta(
            "built-in text sets (python-docs, python-prose, demo) or files; the last fifth of each is held out",
            nargs="+",
        ),
    )
    expansion: int = Field(8, ge=1, **meta("features per dimension of the site (d_sae = expansion * d_in)"))
    k: int = Field(32, ge=1, **meta("active features per token (TopK): the dictionary's L0"))
    tokens: int | None = Field(
        1_000_000, ge=1, **meta("training tokens (the training texts repeat, reshuffled, if there are fewer)")
    )
    batch_size: int = Field(1024, ge=1, **meta("tokens per training step"))
    lr: float = Field(1e-3, gt=0, **meta("Adam learning rate"))
    skip_positions: int = Field(
        1, ge=0, **meta("leave each text's first positions out of training and scoring (their outsized norms)")
    )
    dead_after: int = Field(50_000, ge=1, **meta("a feature that fired in none of this many tokens is dead (AuxK)"))
    buffer: int = Field(65_536, ge=1, **meta("shuffle buffer, in tokens (bounds memory)"))
    max_length: int | None = Field(
        None, ge=8, **meta("tokens per text; longer texts are truncated (default: the model's, at most 512)")
    )
    loss: bool = Field(True, **meta("also the next-token loss with the dictionary spliced in (causal models)"))
    n_boot: int = Field(200, ge=0, **meta("bootstrap resamples of texts for the intervals"))
    seed: int = Field(0, **meta("seed of the initialisation, the shuffling and the intervals"))


class FeaturesSpec(ModelOptions):
    """``probes sae features``: how much of a behaviour (and of a probed concept) a dictionary's features carry."""

    sae: str = Field(
        **meta(
            "a dictionary folder (cfg.json + sae_weights.safetensors: probes sae train's OUT/dictionary, or SAELens's)",
            missing="name the dictionary: --sae FOLDER (probes sae train writes OUT/dictionary)",
        )
    )
    behaviour: BehaviourName = Field(
        None, **registered(BEHAVIOURS, "its metric must be differentiable; " + BEHAVIOUR_HELP)
    )
    data: str | None = Field(None, **meta("file for the behaviour (as probes ablate)"))
    n: int = Field(64, ge=1, le=MAX_EXAMPLES, **meta("generated examples", why=WHY_MAX_EXAMPLES))
    kind: Kind = Field("mean", **registered(ABLATIONS, "what an ablated feature is set to: ", needs_source=False))
    sizes: list[int] | None = Field(
        None, **meta("feature counts to keep (default: a log grid from 1 to all)", nargs="+")
    )
    random: int = Field(3, ge=0, **meta("random feature sets of each size, the baseline"))
    target: float = Field(0.8, gt=0, le=1, **meta("the share of the behaviour a feature set must keep"))
    verify_top: int = Field(10, ge=1, **meta("the strongest features by attribution, re-measured exactly"))
    verify_sample: int = Field(10, ge=0, **meta("and a random sample of this many of the rest"))
    task: str | None = Field(
        None, **meta("also a probing task (pos, number, ...): the best single feature against the linear probe")
    )
    texts: str = Field(
        "python-docs", **meta("text set the top features' activating examples are drawn from (its last fifth)")
    )
    examples: int = Field(5, ge=0, **meta("activating examples kept per top feature"))
    n_boot: int = Field(1000, ge=0, **meta("bootstrap resamples of examples for the intervals"))
    seed: int = Field(0, **meta("seed of the examples, the reference statistics, the random sets and the intervals"))

    @field_validator("task")
    @classmethod
    def _task(cls, value: str | None) -> str | None:
        if value is not None and value not in TASKS:
            raise ValueError(f"unknown probing task {value!r}; known: {', '.join(sorted(TASKS))}")
        return value
