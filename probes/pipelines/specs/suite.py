"""The specs of probe suites: how probes read a model (``ProbingSpec``) and ``probes run`` (``SuiteSpec``, a
TOML file)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from probes.core.data import DATA_DIR
from probes.pipelines.specs.ablate import AblationSpec
from probes.pipelines.specs.attribute import AttributeSpec, CircuitSpec
from probes.pipelines.specs.base import Spec, SpecError, hint, make, meta
from probes.pipelines.specs.options import PREPEND_BOS, SpreadOptions, one_placement
from probes.pipelines.specs.sae import SaeTrainSpec
from probes.probing.datasets import TASKS

SUITES_DIR = DATA_DIR / "suites"
CONTROLS = ("control_task", "random_weights", "mdl")


class TaskFile(Spec):
    """A probing task from the user's file: CoNLL-U (``label``: upos, xpos, deprel), CSV or JSONL."""

    name: str
    path: str
    label: str | None = None


class ProbingSpec(Spec):
    """How probes read a model (``probes.probing.study.probe_layers`` takes this alone)."""

    site: str = Field("resid", **meta("residual stream (layer 0 = embeddings), or a block site such as hook_mlp_out"))
    layers: Literal["all"] | list[int] = Field(
        "all", **meta("all, or layer numbers", hint='use "all" or a list of layer numbers')
    )
    pool: Literal["first", "last", "mean"] = Field("mean", **meta("subwords -> word, for word-level tasks"))
    sentence_pool: Literal["first", "last", "mean"] = Field(
        "mean", **meta("tokens -> sentence: mean over word tokens, or the first / last token")
    )
    Cs: list[float] = Field(
        default_factory=lambda: [0.01, 0.1, 1.0],
        **meta("inverse L2 strengths the logistic probe chooses from by cross-validation"),
    )
    cv: int = Field(3, ge=0, **meta("cross-validation folds (0: no CV, the middle C)"))
    mdl_C: float = Field(0.1, gt=0, **meta("the MDL probe's inverse L2 strength"))
    max_length: int = Field(128, ge=1, **meta("tokens per sentence"))
    batch_size: int = Field(32, ge=1, **meta("sentences per forward pass"))
    n_boot: int = Field(1000, ge=10, **meta("bootstrap resamples (sentences) of each accuracy's CI"))
    seed: int = Field(0, **meta("seed of splits, folds, control labels, random weights and the bootstrap"))

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

    name: str = Field("suite", **meta("the suite's name"))
    models: list[str] = Field(
        default_factory=lambda: ["minilm"], **meta("aliases, folders, hub ids, or id@revision (Pythia checkpoints)")
    )
    tasks: list[str | TaskFile] = Field(
        default_factory=lambda: list(TASKS),
        **meta("built-in task names, or tables {name, path, label} (CoNLL-U, CSV, JSONL)", cli=False),
    )
    probes: list[Literal["logistic", "ridge"]] = Field(default_factory=lambda: ["logistic"], **meta("probe kinds"))
    controls: list[Literal["control_task", "random_weights", "mdl"]] = Field(
        default_factory=lambda: list(CONTROLS), **meta("controls beside each probe")
    )
    n_examples: int = Field(
        600, ge=20, **meta("sentences per generated task", why="so train and test both hold every class")
    )
    test_fraction: float = Field(0.25, gt=0, lt=1, **meta("share of sentences held out for testing"))
    lexical_split: bool = Field(True, **meta("test sentences use content words never seen in training"))
    ablations: list[AblationSpec] = Field(default_factory=list, **meta("ablation studies ([[ablations]])", cli=False))
    attributions: list[AttributeSpec] = Field(
        default_factory=list, **meta("attribution runs ([[attributions]], as probes attribute)", cli=False)
    )
    circuits: list[CircuitSpec] = Field(
        default_factory=list, **meta("circuit runs ([[circuits]], as probes circuit)", cli=False)
    )
    dictionaries: list[SaeTrainSpec] = Field(
        default_factory=list, **meta("sparse dictionaries ([[dictionaries]], as probes sae train)", cli=False)
    )
    device: str | None = Field(None, **meta("where the models run: cpu, cuda, cuda:1 ... (default: where they load)"))
    prepend_bos: bool = Field(True, **meta(PREPEND_BOS))
    device_map: Literal["auto", "balanced", "balanced_low_0", "sequential"] | None = Field(
        None,
        **meta(
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
                    f"unknown task {task!r}{hint(task, TASKS)}; built-in tasks are {', '.join(TASKS)}, "
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
    def one_placement(self) -> SuiteSpec:
        one_placement(self.device, self.device_map)
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
