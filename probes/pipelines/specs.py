"""One typed, documented spec per study: each default is written here once.

    spec = AblationSpec(model="smollm2-135m", n=128, erase="subject_number")     # Python
    spec = load_suite("my.toml")                                                # a TOML file (a SuiteSpec)
    probes ablate smollm2-135m --n 128 --erase subject_number                   # the CLI: flags made from the spec

The three take the same names and the same checks: the CLI's flags are generated from these fields
(``probes.cli``), a suite's ``[[ablations]]`` entries are ``AblationSpec`` s (``[[attributions]]`` and
``[[circuits]]``: ``AttributeSpec`` s and ``CircuitSpec`` s), and the pipelines take
a spec and nothing else. A bad value is one line that names the key (``my.toml: ablations[0]: key
'top_k'``) or the flag (``--top-k``) and says what would be right.

Field metadata used by the CLI (``json_schema_extra``): ``positional`` (an argument, not a flag),
``cli`` (False: not offered as a flag), ``metavar``.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analysis.errors import ProbesError
from probes.core.data import DATA_DIR
from probes.probing.datasets import TASKS
from probes.registry import ABLATIONS, BEHAVIOURS, Registry, RegistryError

SUITES_DIR = DATA_DIR / "suites"
CONTROLS = ("control_task", "random_weights", "mdl")
DEMO_SITES = ["blocks.*.hook_resid_post", "blocks.*.attn.hook_pattern"]
MAX_EXAMPLES = 1_000_000
WHY_MAX_EXAMPLES = "every example is generated, tokenised and scored in memory before the first batch runs"
PREPEND_BOS = (
    "causal models: every text starts with the start token (BOS, else EOS), in captures and studies alike "
    "(--no-prepend-bos: texts start with their own first token)"
)


class SpecError(ProbesError, ValueError):
    """A spec (TOML file, CLI flags or Python arguments) that does not validate."""


def _meta(help: str, **extra: Any) -> dict[str, Any]:
    return {"description": help, "json_schema_extra": extra} if extra else {"description": help}


def _registered(registry: Registry, lead: str, **traits: Any) -> dict[str, Any]:
    """A field that takes a name of ``registry`` (with ``traits``): its help lists them, the CLI reads them live."""
    return _meta(lead + registry.help(**traits), registry=registry.what, traits=traits, lead=lead)


def _name_in(registry: Registry, **traits: Any) -> AfterValidator:
    def check(value: str | None) -> str | None:
        if value is not None:
            try:
                registry.entry(value.partition(":")[0] if registry is BEHAVIOURS else value, **traits)
            except RegistryError as err:
                raise ValueError(str(err)) from None
        return value

    return AfterValidator(check)


Kind = Annotated[str, _name_in(ABLATIONS, needs_source=False)]  # an ablation kind that needs no paired run
Counterfactual = Annotated[str, _name_in(ABLATIONS)]  # any ablation kind, patching included
BehaviourName = Annotated[str | None, _name_in(BEHAVIOURS)]
BEHAVIOUR_HELP = "default: agreement for causal LMs, probe:subject_number for encoders; "


class Spec(BaseModel):
    """Base of every spec: unknown keys are errors, types are strict (a string is not a number), frozen once made."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def record(self) -> dict[str, Any]:
        """What ``run.json`` records: every setting, defaults included."""
        return self.model_dump(mode="json")


S = TypeVar("S", bound=Spec)


# --- the parts several specs share ----------------------------------------------------------------------------


def _one_placement(device: str | None, device_map: str | None) -> None:
    if device is not None and device_map is not None:
        raise ValueError("give device or device_map, not both: a device map places every module itself")


class ModelOptions(Spec):
    model: str = Field(
        **_meta(
            "alias, local folder or cached hub id",
            positional=True,
            missing="name the model (an alias such as minilm, a folder, or a hub id)",
        )
    )
    revision: str | None = Field(None, **_meta("branch, tag or commit of a hub model (e.g. Pythia's step1000)"))
    trust_remote_code: bool = Field(False, **_meta("allow the model's own Python code to run"))
    device: str | None = Field(None, **_meta("cpu, cuda, cuda:1 ... (default: where the model loads)"))
    device_map: Literal["auto", "balanced", "balanced_low_0", "sequential"] | None = Field(
        None,
        **_meta(
            "spread the model over every GPU, then the CPU, then disk (accelerate); instead of --device",
            why="a model larger than one device",
        ),
    )
    offload_folder: str | None = Field(None, **_meta("where a --device-map puts what fits on no device"))
    prepend_bos: bool = Field(True, **_meta(PREPEND_BOS))

    @model_validator(mode="after")
    def _one_placement(self) -> ModelOptions:
        _one_placement(self.device, self.device_map)
        return self

    @property
    def model_label(self) -> str:
        """The model as results name it: ``id@revision`` where a revision is given (a Pythia checkpoint)."""
        return f"{self.model}@{self.revision}" if self.revision else self.model

    def load_options(self) -> dict[str, Any]:
        """What ``probes.core.loading.load`` takes from these options."""
        placed = {"device_map": self.device_map, "offload_folder": self.offload_folder} if self.device_map else {}
        return {
            "revision": self.revision,
            "trust_remote_code": self.trust_remote_code,
            "device": self.device,
            "prepend_bos": self.prepend_bos,
            **placed,
        }


class CaptureSpec(ModelOptions):
    """``probes capture``: sites over a text set into an activation store, and a per-layer summary."""

    texts: str | None = Field(
        None, **_meta(".txt (one per line), .jsonl or .csv with a 'text' column (default: built-in demo texts)")
    )
    sites: list[str] = Field(default_factory=lambda: list(DEMO_SITES), **_meta("site names or patterns"))
    dtype: Literal["float16", "float32", "bfloat16"] = Field("float16", **_meta("stored precision"))
    batch_size: int = Field(16, ge=1, **_meta("texts per forward pass (bounds memory)"))
    max_length: int | None = Field(None, ge=1, **_meta("tokens per text; longer texts are truncated and reported"))


class HeadsSpec(ModelOptions):
    """``probes heads``: per-head attention statistics and every head's pattern on one input."""

    texts: str | None = Field(
        None, **_meta(".txt (one per line), .jsonl or .csv with a 'text' column (default: built-in demo texts)")
    )
    example: str | None = Field(None, **_meta("the input whose attention patterns the report shows"))
    seed: int = Field(0, **_meta("seed of the induction set's random tokens"))


class LensSpec(ModelOptions):
    """``probes lens``: the logit lens and a tuned lens trained here, per depth, and a behaviour read through them."""

    texts: str = Field(
        "python-docs",
        **_meta("built-in text set (python-docs, demo) or a .txt/.jsonl/.csv file; the last fifth is held out"),
    )
    steps: int = Field(60, ge=0, **_meta("Adam steps on KL after the least-squares start (0: least squares only)"))
    batch_tokens: int = Field(128, ge=1, **_meta("tokens per training step"))
    lr: float = Field(1e-3, gt=0, **_meta("Adam learning rate of the translators"))
    init: Literal["least-squares", "identity"] = Field(
        "least-squares", **_meta("where the translators start: least squares to the last residual, or the logit lens")
    )
    train_tokens: int = Field(16384, ge=64, **_meta("tokens of the training texts the translators learn from"))
    test_tokens: int = Field(2048, ge=16, **_meta("held-out tokens KL, top-1 agreement and surprisal are read on"))
    max_length: int | None = Field(
        None, ge=8, **_meta("tokens per text; longer texts are truncated (default: the model's, at most 512)")
    )
    behaviour: BehaviourName = Field(
        None, **_registered(BEHAVIOURS, "also read this behaviour through both lenses at every depth: ")
    )
    n: int = Field(64, ge=1, le=MAX_EXAMPLES, **_meta("generated examples of the behaviour", why=WHY_MAX_EXAMPLES))
    seed: int = Field(0, **_meta("seed of the training batches, the behaviour's examples and the intervals"))


def _check_components(value: str | list[str]) -> str | list[str]:
    names = value.split() if isinstance(value, str) else value
    if not names:
        raise ValueError("name some components (L3H5 L4.mlp) or a set (heads, mlps, heads+mlps, layers, qkv)")
    return value


class SpreadOptions(Spec):
    """How a run's units are spread over processes (``probes.runtime.cluster``): no setting of its results."""

    workers: int | None = Field(
        None,
        ge=1,
        **_meta(
            "run the units on this many Ray workers (a local cluster unless --ray-address)",
            why="one loaded model per worker; results are those of a sequential run",
        ),
    )
    ray_address: str | None = Field(None, **_meta("join the Ray cluster at this address ('auto', ray://host:10001)"))
    threads: int | None = Field(
        None, ge=1, **_meta("torch threads per worker (default: this machine's cores shared among the workers)")
    )

    gpus_per_worker: float | None = Field(
        None,
        ge=0,
        **_meta(
            "GPUs each worker asks Ray for (default: 1 where the models run on CUDA, else 0)",
            why="a model spread over several GPUs (device_map) needs a worker that owns them all",
        ),
    )

    # how the units are spread changes no result, so a run may resume with other workers
    HOW: ClassVar[tuple[str, ...]] = ("workers", "ray_address", "threads", "gpus_per_worker")

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in super().record().items() if k not in self.HOW}

    def spread(self) -> Any:
        """These options as ``probes.runtime.cluster.Workers``."""
        from probes.runtime.cluster import Workers

        return Workers(
            workers=self.workers, address=self.ray_address, threads=self.threads, gpus=self.gpus_per_worker or 0
        )


class StudySpec(Spec):
    """How an ablation study runs (``probes.pipelines.ablation_study``), whatever the model and behaviour."""

    kind: Kind = Field(
        "mean", **_registered(ABLATIONS, "what an ablated component's value becomes: ", needs_source=False)
    )
    components: str | list[str] = Field(
        "heads+mlps", **_meta("heads, mlps, heads+mlps, layers, qkv, or names such as L3H5 L4.mlp L3H5.q", nargs="+")
    )
    screen: int | None = Field(
        None,
        ge=1,
        **_meta(
            "examples the sweep of every component runs on (default: all); the top k are then studied on all",
            why="the sweep costs a forward per component, the joint stages one per subset",
        ),
    )
    top_k: int = Field(
        6, ge=3, **_meta("components studied jointly", why="additivity compares several subsets of two or more")
    )
    permutations: int = Field(32, ge=2, **_meta("sampled orders for Shapley values (antithetic pairs)"))
    interaction_samples: int = Field(8, ge=1, **_meta("sampled subsets per pair for the Shapley interaction index"))
    n_boot: int = Field(200, ge=10, **_meta("bootstrap resamples of the additivity R^2's CI"))
    seed: int = Field(0, **_meta("seed of the sampled orders, subsets and bootstrap"))

    select: Literal["exact", "atp", "atp*"] = Field(
        "exact",
        **_meta(
            "how the top k are chosen: exact single effects of every component (one forward each), or their "
            "attribution estimates (one forward and backward pass; the top k are then measured exactly)"
        ),
    )

    @field_validator("components")
    @classmethod
    def _components(cls, value: str | list[str]) -> str | list[str]:
        return _check_components(value)

    def settings(self) -> StudySpec:
        """Only the study's own settings (what ``ablation_study`` takes)."""
        return StudySpec(**{k: getattr(self, k) for k in StudySpec.model_fields})


class AblationSpec(StudySpec, ModelOptions, SpreadOptions):
    """``probes ablate`` and a suite's ``[[ablations]]`` entry: a behaviour of one model, taken apart."""

    behaviour: BehaviourName = Field(None, **_registered(BEHAVIOURS, BEHAVIOUR_HELP))
    data: str | None = Field(
        None, **_meta("file for the behaviour: BLiMP JSONL (pairs), texts (loss), text_a/text_b JSONL (cosine)")
    )
    n: int = Field(64, ge=1, le=MAX_EXAMPLES, **_meta("generated examples", why=WHY_MAX_EXAMPLES))
    erase: str | None = Field(
        None,
        **_meta(
            "amnesic probing too: erase a grammar concept (e.g. subject_number) with "
            "LEACE and compare with random subspaces of equal rank",
            metavar="CONCEPT",
        ),
    )
    erase_layers: list[int] | None = Field(
        None,
        **_meta(
            "residual-stream layers to erase at (0 = embeddings, l = block l-1's output; default: 1/4, 1/2, 3/4 of "
            "the depth)"
        ),
    )
    erase_n: int = Field(200, ge=20, **_meta("sentences the concept's eraser and probes are fitted on"))
    erase_random: int = Field(5, ge=1, **_meta("random subspaces of equal rank to compare with"))

    @field_validator("erase")
    @classmethod
    def _erase(cls, value: str | None) -> str | None:
        if value is not None and value not in TASKS:
            raise ValueError(
                f"unknown concept {value!r}{_hint(value, TASKS)}; built-in concepts are {', '.join(TASKS)}"
            )
        return value

    @field_validator("erase_layers")
    @classmethod
    def _erase_layers(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(layer < 0 for layer in value)):
            raise ValueError("layer numbers are whole numbers >= 0 (0 = embeddings)")
        return value


class AttributeSpec(ModelOptions, SpreadOptions):
    """``probes attribute``: every component's (AtP, AtP*) or every edge's (EAP, EAP-IG) effect on a behaviour,
    estimated from gradients; the strongest and a random sample are then measured exactly."""

    behaviour: BehaviourName = Field(
        None, **_registered(BEHAVIOURS, "its metric must be differentiable; " + BEHAVIOUR_HELP)
    )
    data: str | None = Field(
        None,
        **_meta(
            "file for the behaviour (as probes ablate); with --kind patch, a JSONL of prompt pairs: clean, corrupt, "
            "answer, wrong"
        ),
    )
    n: int = Field(64, ge=1, le=MAX_EXAMPLES, **_meta("generated examples", why=WHY_MAX_EXAMPLES))
    kind: Counterfactual = Field(
        "mean",
        **_registered(
            ABLATIONS,
            "the counterfactual (patch: the clean prompts run, each part takes its value from the corrupted prompts': "
            "--behaviour agreement's generated pairs, or --data): ",
        ),
    )
    method: Literal["atp", "atp*", "eap", "eap-ig"] = Field(
        "atp*",
        **_meta(
            "atp: first-order estimate per component; atp*: with the QK fix and GradDrop; eap: per edge; eap-ig: per "
            "edge, gradients integrated from the counterfactual to the clean input"
        ),
    )
    components: str | list[str] = Field(
        "heads+mlps",
        **_meta("for atp and atp*: heads, mlps, heads+mlps, layers, qkv, or names such as L3H5 L4.mlp", nargs="+"),
    )
    steps: int = Field(5, ge=1, **_meta("eap-ig: points on the path from the counterfactual to the clean input"))
    exact: bool = Field(
        False,
        **_meta(
            "also measure every component's exact effect (a forward per component), for the exact map beside the "
            "attribution map"
        ),
    )
    verify_top: int = Field(10, ge=1, **_meta("the strongest this many, re-measured exactly"))
    verify_sample: int = Field(20, ge=0, **_meta("and a random sample of this many of the rest"))
    seed: int = Field(0, **_meta("seed of the examples, the reference statistics and the verification sample"))

    @field_validator("components")
    @classmethod
    def _components(cls, value: str | list[str]) -> str | list[str]:
        return _check_components(value)

    @property
    def edges(self) -> bool:
        return self.method in ("eap", "eap-ig")


class CircuitSpec(AttributeSpec):
    """``probes circuit``: edges scored (EAP, EAP-IG), then circuits of the top edges measured exactly against
    random circuits of the same size, and the smallest share of edges that keeps ``target`` of the behaviour."""

    method: Literal["eap", "eap-ig"] = Field(  # the edge methods only
        "eap-ig", **_meta("eap or eap-ig (gradients integrated from the counterfactual to the clean input)")
    )
    sizes: list[int] | None = Field(
        None, **_meta("circuit sizes in edges (default: 12 from one edge to all, evenly in log size)")
    )
    random: int = Field(3, ge=0, **_meta("random circuits of each size, the baseline"))
    target: float = Field(0.8, gt=0, le=1, **_meta("the share of the behaviour a faithful circuit keeps"))
    n_boot: int = Field(1000, ge=10, **_meta("bootstrap resamples (examples) of the smallest share's interval"))

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or min(value) < 1):
            raise ValueError("circuit sizes are whole numbers of edges, at least 1")
        return value


class SaeTrainSpec(ModelOptions):
    """``probes sae train``: a TopK sparse autoencoder (or, with ``site_out``, a transcoder) of one site, trained
    on text sets here, saved in SAELens's format, and measured on held-out texts."""

    site: str = Field(
        **_meta(
            "the site the dictionary reads, e.g. blocks.6.hook_resid_pre (list them with probes sites MODEL)",
            missing="name the site the dictionary reads: --site blocks.6.hook_resid_pre",
        )
    )
    site_out: str | None = Field(
        None, **_meta("a transcoder's output site (e.g. blocks.6.hook_mlp_out); none: a sparse autoencoder")
    )
    texts: list[str] = Field(
        default_factory=lambda: ["python-docs", "python-prose"],
        **_meta(
            "built-in text sets (python-docs, python-prose, demo) or files; the last fifth of each is held out",
            nargs="+",
        ),
    )
    expansion: int = Field(8, ge=1, **_meta("features per dimension of the site (d_sae = expansion * d_in)"))
    k: int = Field(32, ge=1, **_meta("active features per token (TopK): the dictionary's L0"))
    tokens: int | None = Field(
        1_000_000, ge=1, **_meta("training tokens (the training texts repeat, reshuffled, if there are fewer)")
    )
    batch_size: int = Field(1024, ge=1, **_meta("tokens per training step"))
    lr: float = Field(1e-3, gt=0, **_meta("Adam learning rate"))
    skip_positions: int = Field(
        1, ge=0, **_meta("leave each text's first positions out of training and scoring (their outsized norms)")
    )
    dead_after: int = Field(50_000, ge=1, **_meta("a feature that fired in none of this many tokens is dead (AuxK)"))
    buffer: int = Field(65_536, ge=1, **_meta("shuffle buffer, in tokens (bounds memory)"))
    max_length: int | None = Field(
        None, ge=8, **_meta("tokens per text; longer texts are truncated (default: the model's, at most 512)")
    )
    loss: bool = Field(True, **_meta("also the next-token loss with the dictionary spliced in (causal models)"))
    n_boot: int = Field(200, ge=0, **_meta("bootstrap resamples of texts for the intervals"))
    seed: int = Field(0, **_meta("seed of the initialisation, the shuffling and the intervals"))


class FeaturesSpec(ModelOptions):
    """``probes sae features``: how much of a behaviour (and of a probed concept) a dictionary's features carry."""

    sae: str = Field(
        **_meta(
            "a dictionary folder (cfg.json + sae_weights.safetensors: probes sae train's OUT/dictionary, or SAELens's)",
            missing="name the dictionary: --sae FOLDER (probes sae train writes OUT/dictionary)",
        )
    )
    behaviour: BehaviourName = Field(
        None, **_registered(BEHAVIOURS, "its metric must be differentiable; " + BEHAVIOUR_HELP)
    )
    data: str | None = Field(None, **_meta("file for the behaviour (as probes ablate)"))
    n: int = Field(64, ge=1, le=MAX_EXAMPLES, **_meta("generated examples", why=WHY_MAX_EXAMPLES))
    kind: Kind = Field("mean", **_registered(ABLATIONS, "what an ablated feature is set to: ", needs_source=False))
    sizes: list[int] | None = Field(
        None, **_meta("feature counts to keep (default: a log grid from 1 to all)", nargs="+")
    )
    random: int = Field(3, ge=0, **_meta("random feature sets of each size, the baseline"))
    target: float = Field(0.8, gt=0, le=1, **_meta("the share of the behaviour a feature set must keep"))
    verify_top: int = Field(10, ge=1, **_meta("the strongest features by attribution, re-measured exactly"))
    verify_sample: int = Field(10, ge=0, **_meta("and a random sample of this many of the rest"))
    task: str | None = Field(
        None, **_meta("also a probing task (pos, number, ...): the best single feature against the linear probe")
    )
    texts: str = Field(
        "python-docs", **_meta("text set the top features' activating examples are drawn from (its last fifth)")
    )
    examples: int = Field(5, ge=0, **_meta("activating examples kept per top feature"))
    n_boot: int = Field(1000, ge=0, **_meta("bootstrap resamples of examples for the intervals"))
    seed: int = Field(0, **_meta("seed of the examples, the reference statistics, the random sets and the intervals"))

    @field_validator("task")
    @classmethod
    def _task(cls, value: str | None) -> str | None:
        if value is not None and value not in TASKS:
            raise ValueError(f"unknown probing task {value!r}; known: {', '.join(sorted(TASKS))}")
        return value


class TaskFile(Spec):
    """A probing task from the user's file: CoNLL-U (``label``: upos, xpos, deprel), CSV or JSONL."""

    name: str
    path: str
    label: str | None = None


class ProbingSpec(Spec):
    """How probes read a model (``probes.pipelines.suite.probe_layers`` takes this alone)."""

    site: str = Field("resid", **_meta("residual stream (layer 0 = embeddings), or a block site such as hook_mlp_out"))
    layers: Literal["all"] | list[int] = Field(
        "all", **_meta("all, or layer numbers", hint='use "all" or a list of layer numbers')
    )
    pool: Literal["first", "last", "mean"] = Field("mean", **_meta("subwords -> word, for word-level tasks"))
    sentence_pool: Literal["first", "last", "mean"] = Field(
        "mean", **_meta("tokens -> sentence: mean over word tokens, or the first / last token")
    )
    Cs: list[float] = Field(
        default_factory=lambda: [0.01, 0.1, 1.0],
        **_meta("inverse L2 strengths the logistic probe chooses from by cross-validation"),
    )
    cv: int = Field(3, ge=0, **_meta("cross-validation folds (0: no CV, the middle C)"))
    mdl_C: float = Field(0.1, gt=0, **_meta("the MDL probe's inverse L2 strength"))
    max_length: int = Field(128, ge=1, **_meta("tokens per sentence"))
    batch_size: int = Field(32, ge=1, **_meta("sentences per forward pass"))
    n_boot: int = Field(1000, ge=10, **_meta("bootstrap resamples (sentences) of each accuracy's CI"))
    seed: int = Field(0, **_meta("seed of splits, folds, control labels, random weights and the bootstrap"))

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        from probes.core.sites import BLOCK_SITES  # torch-free import of the CLI: only when a site is checked

        if value != "resid" and (value not in BLOCK_SITES or BLOCK_SITES[value].needs_eager):
            usable = ["resid"] + [s for s, k in BLOCK_SITES.items() if not k.needs_eager]
            raise ValueError(f"{value!r} is not probeable; use one of {', '.join(usable)}")
        return value

    @field_validator("layers")
    @classmethod
    def _layers(cls, value: str | list[int]) -> str | list[int]:
        if isinstance(value, list) and (not value or any(layer < 0 for layer in value)):
            raise ValueError("layer numbers are whole numbers >= 0")
        return value

    @field_validator("Cs")
    @classmethod
    def _cs(cls, value: list[float]) -> list[float]:
        if not value or any(c <= 0 for c in value):
            raise ValueError("list positive inverse regularisation strengths, e.g. [0.01, 0.1, 1.0]")
        return value


class SuiteSpec(ProbingSpec, SpreadOptions):
    """``probes run``: a TOML file of probing tasks (and ablation studies) over one or more models."""

    name: str = Field("suite", **_meta("the suite's name"))
    models: list[str] = Field(
        default_factory=lambda: ["minilm"], **_meta("aliases, folders, hub ids, or id@revision (Pythia checkpoints)")
    )
    tasks: list[str | TaskFile] = Field(
        default_factory=lambda: list(TASKS),
        **_meta("built-in task names, or tables {name, path, label} (CoNLL-U, CSV, JSONL)", cli=False),
    )
    probes: list[Literal["logistic", "ridge"]] = Field(default_factory=lambda: ["logistic"], **_meta("probe kinds"))
    controls: list[Literal["control_task", "random_weights", "mdl"]] = Field(
        default_factory=lambda: list(CONTROLS), **_meta("controls beside each probe")
    )
    n_examples: int = Field(
        600, ge=20, **_meta("sentences per generated task", why="so train and test both hold every class")
    )
    test_fraction: float = Field(0.25, gt=0, lt=1, **_meta("share of sentences held out for testing"))
    lexical_split: bool = Field(True, **_meta("test sentences use content words never seen in training"))
    ablations: list[AblationSpec] = Field(default_factory=list, **_meta("ablation studies ([[ablations]])", cli=False))
    attributions: list[AttributeSpec] = Field(
        default_factory=list, **_meta("attribution runs ([[attributions]], as probes attribute)", cli=False)
    )
    circuits: list[CircuitSpec] = Field(
        default_factory=list, **_meta("circuit runs ([[circuits]], as probes circuit)", cli=False)
    )
    dictionaries: list[SaeTrainSpec] = Field(
        default_factory=list, **_meta("sparse dictionaries ([[dictionaries]], as probes sae train)", cli=False)
    )
    device: str | None = Field(None, **_meta("where the models run: cpu, cuda, cuda:1 ... (default: where they load)"))
    prepend_bos: bool = Field(True, **_meta(PREPEND_BOS))
    device_map: Literal["auto", "balanced", "balanced_low_0", "sequential"] | None = Field(
        None,
        **_meta(
            "spread each model over the GPUs its worker sees (accelerate's device map)",
            why="a model larger than one GPU; on Ray give gpus_per_worker as many GPUs",
        ),
    )

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one model (an alias such as 'minilm', a folder or a hub id)")
        return value

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value  # the type check says what is wrong
        for task in value:
            if isinstance(task, str) and task not in TASKS:
                raise ValueError(
                    f"unknown task {task!r}{_hint(task, TASKS)}; built-in tasks are {', '.join(TASKS)}, "
                    "or a table {name, path, label}"
                )
            if isinstance(task, dict) and not {"name", "path"} <= set(task):
                raise ValueError(f"a data task needs 'name' and 'path' (and 'label'), got {task}")
            if not isinstance(task, (str, dict, TaskFile)):
                raise ValueError(f"each task is a built-in name or a table {{name, path, label}}, got {task!r}")
        names = [t if isinstance(t, str) else t["name"] if isinstance(t, dict) else t.name for t in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"task name {twice[0]!r} is used twice: results are keyed by task name, so give each "
                "task a name of its own"
            )
        return value

    @model_validator(mode="after")
    def _spread_at_the_top(self) -> SuiteSpec:
        for table, entries in (
            ("ablations", self.ablations),
            ("attributions", self.attributions),
            ("circuits", self.circuits),
        ):
            for i, entry in enumerate(entries):
                own = sorted(set(SpreadOptions.HOW) & entry.model_fields_set)
                if own:
                    raise ValueError(
                        f"[[{table}]] entry {i + 1} sets {', '.join(own)}: in a suite, the suite's workers run its "
                        "studies; set them at the top of the file"
                    )
        return self

    @model_validator(mode="after")
    def _one_placement(self) -> SuiteSpec:
        _one_placement(self.device, self.device_map)
        return self

    @model_validator(mode="after")
    def _something_to_do(self) -> SuiteSpec:
        if not self.tasks and not (self.ablations or self.attributions or self.circuits or self.dictionaries):
            raise ValueError(
                f"key 'tasks': list at least one task (built-in: {', '.join(TASKS)}) or an [[ablations]], "
                "[[attributions]], [[circuits]] or [[dictionaries]] entry"
            )
        return self

    @property
    def task_names(self) -> list[str]:
        return [t if isinstance(t, str) else t.name for t in self.tasks]

    def probing(self) -> ProbingSpec:
        return ProbingSpec(**{k: getattr(self, k) for k in ProbingSpec.model_fields})


class LadderSpec(Spec):
    """``probes ladder train``: the toy scale ladder (``probes.scale.ladder.LadderConfig`` holds its sizes)."""

    setting: Literal["default", "demo", "tiny"] = Field(
        "default",
        **_meta(
            "default: seven sizes x two seeds, 2,500 steps (about 5 minutes on 2 cores); demo: six sizes, 2,000 steps; "
            "tiny: seconds, for trying things out"
        ),
    )
    steps: int | None = Field(None, ge=1, **_meta("training steps per model (default: the setting's)"))
    seed: int = Field(0, **_meta("seed of initialisation and training data"))
    workers: int | None = Field(
        None,
        ge=1,
        **_meta(
            "models trained at once, each in its own one-thread process (default: one per CPU core, at most 8; "
            "1 trains them one after the other in this process)"
        ),
    )


class LadderEvalSpec(SpreadOptions):
    """``probes ladder eval``: score the ladder's models and checkpoints, then the scaling analysis."""

    n: int = Field(500, ge=10, **_meta("test examples per task"))


class ScaleSpec(Spec):
    """``probes scale``: the scale table and a verdict (smooth, jump, mirage) per task and metric."""

    results: list[str] = Field(
        **_meta(
            "lm-eval .json files, .csv scale tables or evaluation folders",
            positional=True,
            missing="name lm-eval .json files, scale .csv files or evaluation folders",
        )
    )
    sizes: str | None = Field(None, **_meta("JSON file {model: parameters} for results that do not state their size"))
    family: str | None = Field(None, **_meta("family name for all rows (default: the model id, or 'family')"))
    size: Literal["parameters", "non_embedding_parameters", "tokens", "step"] = Field(
        "parameters", **_meta("the scale axis; 'step' reads each model's checkpoints as its own curve")
    )
    n_boot: int = Field(200, ge=10, **_meta("bootstrap resamples of the jump's location"))
    seed: int = Field(0, **_meta("seed of the bootstrap"))


class ReportSpec(Spec):
    """``probes report``: one self-contained HTML (or Markdown) report from result folders."""

    results: list[str] = Field(
        **_meta(
            "result folders (or folders that hold them)", positional=True, missing="name the result folders to report"
        )
    )
    format: Literal["html", "md"] | None = Field(
        None, **_meta("html (one self-contained file) or md (figures beside it); default: from the --out suffix")
    )
    title: str = Field("emergence-probes report", **_meta("the report's title"))
    figures: str | None = Field(
        None, **_meta("also write every figure as a PNG named after its title into DIR", metavar="DIR")
    )


class ValidateSpec(Spec):
    """``probes validate``: the planted zoo (models with a known mechanism), each case's verdict beside its truth."""

    erase_random: int = Field(20, ge=2, **_meta("random-subspace erasures the erasure cases are compared with"))
    n: int = Field(400, ge=50, **_meta("examples per model size in the scale cases"))
    seed: int = Field(0, **_meta("seed of the sampled orders, random erasures and planted outputs"))


class DemoSpec(Spec):
    """``probes demo``: the main job on the two embedded models, ending in the report."""

    quick: bool = Field(False, **_meta("small settings everywhere (about a minute): the pipeline, not conclusions"))
    device: str | None = Field(None, **_meta("where the models run: cpu, cuda ... (the ladder trains on the CPU)"))


# --- reading and checking -------------------------------------------------------------------------------------


def _hint(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_KIND_NAMES = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
    type(None): "empty",
}


def _kinds(annotation: Any) -> list[str]:
    """Plain-language names of what a field takes, from its annotation."""
    origin = get_origin(annotation)
    if origin is Literal:
        return ["a string"]
    if origin is None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return ["a table"]
        return [_KIND_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))]
    if origin is list:
        return ["a list"]
    names: list[str] = []
    for arg in get_args(annotation):
        for name in _kinds(arg):
            if name not in names and name != "empty":
                names.append(name)
    return names


def _field_of(model: type[BaseModel], loc: tuple) -> tuple[type[BaseModel], str | None, list[str]]:
    """The model and field an error location points at, and the readable path to it (ablations[0])."""
    path: list[str] = []
    current: type[BaseModel] = model
    name: str | None = None
    i = 0
    while i < len(loc):
        part = loc[i]
        if isinstance(part, str) and part in current.model_fields:
            name = part
            annotation = current.model_fields[part].annotation
            nested = [
                a
                for a in (
                    [annotation] + list(get_args(annotation)) + [b for a in get_args(annotation) for b in get_args(a)]
                )
                if isinstance(a, type) and issubclass(a, BaseModel)
            ]
            if i + 2 < len(loc) and isinstance(loc[i + 1], int) and nested and get_origin(annotation) is list:
                members = {a.__name__ for a in nested}
                if len(get_args(get_args(annotation)[0])) > 1 and loc[i + 2] not in members:
                    break  # an error of the union's other member (a string where a table was possible)
                path.append(f"{part}[{loc[i + 1]}]")
                current, name = nested[0], None
                i += 2
                if i < len(loc) and loc[i] in members:
                    i += 1  # pydantic's name of the union member
                continue
        i += 1
    return current, name, path


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def describe_error(err: ValidationError, model: type[BaseModel], where: str, style: str = "file") -> str:
    """One line for a pydantic error: where, which key (or flag), what is wrong and what would be right."""
    first = max(err.errors(), key=lambda e: len(e["loc"]))  # the most specific (a union's member over the union)
    owner, name, path = _field_of(model, tuple(first["loc"]))
    prefix = ": ".join([where, *path]) if where else ": ".join(path)
    prefix = prefix + ": " if prefix else ""
    kind, value = first["type"], first.get("input")
    if kind == "extra_forbidden":
        unknown = str(first["loc"][-1])
        keys = [k for k in owner.model_fields]
        if style == "cli":
            return f"{prefix}unknown option {_flag(unknown)}"
        return f"{prefix}unknown key {unknown!r}{_hint(unknown, keys)}; keys are {', '.join(keys)}"
    if name is None:
        return f"{prefix}{str(first['msg']).removeprefix('Value error, ')}"
    field = owner.model_fields[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    key = _flag(name) if style == "cli" else f"key {name!r}"
    if style == "cli" and extra.get("positional"):
        key = name.upper()
    if kind == "missing":
        return f"{prefix}{extra.get('missing') or f'{key} is required'}"
    if kind == "value_error":
        return f"{prefix}{key}: {str(first['msg']).removeprefix('Value error, ')}"
    if kind in ("greater_than_equal", "greater_than", "less_than", "less_than_equal"):
        bound = first["ctx"].get("ge", first["ctx"].get("gt", first["ctx"].get("lt", first["ctx"].get("le"))))
        word = {
            "greater_than_equal": "at least",
            "greater_than": "above",
            "less_than": "below",
            "less_than_equal": "at most",
        }[kind]
        why = f" ({extra['why']})" if extra.get("why") else ""
        if name == "test_fraction":
            return f"{prefix}{key}: must be between 0 and 1, got {value}"
        return f"{prefix}{key} must be {word} {bound}{why}, got {value}"
    if kind == "literal_error" and len(first["loc"]) and isinstance(first["loc"][-1], int):
        item = name[:-1] if name.endswith("s") else name
        choices = [str(c) for c in get_args(get_args(field.annotation)[0])]
        return f"{prefix}{key}: unknown {item} {value!r}{_hint(value, choices)}; choose from {', '.join(choices)}"
    if kind == "literal_error" and get_origin(field.annotation) is Literal:
        choices = [str(c) for c in get_args(field.annotation)]
        return f"{prefix}{key}: use {', '.join(choices[:-1])} or {choices[-1]}, got {value!r}"
    errors_here = [e for e in err.errors() if _field_of(model, tuple(e["loc"]))[1] == name]
    kinds = _kinds(field.annotation)
    wrong_type = all(
        e["type"].endswith("_type") or (e["type"] == "literal_error" and not isinstance(value, str))
        for e in errors_here
    )
    if extra.get("hint") and not wrong_type:
        return f"{prefix}{key}: {extra['hint']}, got {value!r}"
    return f"{prefix}{key} should be {' or '.join(kinds)}, got {value!r}"


def make(model: type[S], raw: dict[str, Any], where: str = "", style: str = "file") -> S:
    """A spec from raw values (TOML, CLI, keyword arguments); a bad one raises one line (``SpecError``)."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise SpecError(describe_error(err, model, where, style)) from None


def ready_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def load_suite(path: str | Path) -> SuiteSpec:
    """A suite from a TOML path, or the name of a ready suite (see ``ready_suites()``)."""
    from probes.core.data import read_utf8

    path = Path(path)
    if not path.exists() and (SUITES_DIR / f"{path.name}.toml").exists():
        path = SUITES_DIR / f"{path.name}.toml"
    if not path.exists():
        raise SpecError(f"no suite file {path}; ready suites: {', '.join(ready_suites())}")
    try:
        raw = tomllib.loads(read_utf8(path))
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err})") from None
    return make(SuiteSpec, raw, str(path))
