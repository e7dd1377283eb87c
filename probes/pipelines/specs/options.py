"""What several specs share: which model and how to load it (``ModelOptions``), how a run's units are spread over
processes (``SpreadOptions``), and the components a study takes apart."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from probes.pipelines.specs.base import Spec, meta

PREPEND_BOS = (
    "causal models: every text starts with the start token (BOS, else EOS), in captures and studies alike "
    "(--no-prepend-bos: texts start with their own first token)"
)


def one_placement(device: str | None, device_map: str | None) -> None:
    if device is not None and device_map is not None:
        raise ValueError("give device or device_map, not both: a device map places every module itself")


class ModelOptions(Spec):
    model: str = Field(
        **meta(
            "alias, local folder or cached hub id",
            positional=True,
            missing="name the model (an alias such as minilm, a folder, or a hub id)",
        )
    )
    revision: str | None = Field(None, **meta("branch, tag or commit of a hub model (e.g. Pythia's step1000)"))
    trust_remote_code: bool = Field(False, **meta("allow the model's own Python code to run"))
    device: str | None = Field(None, **meta("cpu, cuda, cuda:1 ... (default: where the model loads)"))
    device_map: Literal["auto", "balanced", "balanced_low_0", "sequential"] | None = Field(
        None,
        **meta(
            "spread the model over every GPU, then the CPU, then disk (accelerate); instead of --device",
            why="a model larger than one device",
        ),
    )
    offload_folder: str | None = Field(None, **meta("where a --device-map puts what fits on no device"))
    prepend_bos: bool = Field(True, **meta(PREPEND_BOS))

    @model_validator(mode="after")
    def one_placement(self) -> ModelOptions:
        one_placement(self.device, self.device_map)
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


def check_components(value: str | list[str]) -> str | list[str]:
    names = value.split() if isinstance(value, str) else value
    if not names:
        raise ValueError("name some components (L3H5 L4.mlp) or a set (heads, mlps, heads+mlps, layers, qkv)")
    return value


class SpreadOptions(Spec):
    """How a run's units are spread over processes (``probes.runtime.cluster``): no setting of its results."""

    workers: int | None = Field(
        None,
        ge=1,
        **meta(
            "run the units on this many Ray workers (a local cluster unless --ray-address)",
            why="one loaded model per worker; results are those of a sequential run",
        ),
    )
    ray_address: str | None = Field(None, **meta("join the Ray cluster at this address ('auto', ray://host:10001)"))
    threads: int | None = Field(
        None, ge=1, **meta("torch threads per worker (default: this machine's cores shared among the workers)")
    )

    gpus_per_worker: float | None = Field(
        None,
        ge=0,
        **meta(
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
