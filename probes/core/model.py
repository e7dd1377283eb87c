"""The model handle: an unmodified Hugging Face model you call on text, hook by site name and cache.

    lm = load("smollm2-135m")
    logits = lm("The keys to the cabinet")                                    # (batch, pos, vocab)
    logits, cache = lm.run_with_cache("The keys to the cabinet", "blocks.*.attn.hook_z")
    patched = lm.run_with_hooks("The key to the cabinet", hooks={"blocks.14.attn.hook_z": patch_head(cache, 5)})
    lm.logit_diff(patched, " are", " is")                                     # per text, at its last token

Hook functions take ``(value, site)``: the site's value (per-head sites as (..., head, d_head)) and the
``Site`` it was read at (``site.name``, ``site.layer``), so one function can serve many sites; a returned tensor
replaces the value, ``None`` leaves it. ``with lm.hooks({...}):`` keeps hooks on for longer work (every
forward inside the block). Text becomes tokens by one rule (``probes.core.align``): a causal model's text
starts with its start token unless ``prepend_bos=False``, for a capture and for every study alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from probes.core import sites as sites_mod
from probes.core.adapters import Adapter, HFModel, Shape, model_shape
from probes.core.align import EmptyInputError, Encoded, SequenceTooLongError, encode, start_token
from probes.core.cache import ActivationCache
from probes.core.hooks import capture, hooked
from probes.core.sites import Site

DEFAULT_MAX_LENGTH = 512  # tokens; longer texts are truncated and reported

HookFn = Callable[[Tensor, Site], Tensor | None]  # (value, site) -> a replacement, or None to leave it
Inputs = str | Sequence[str] | Tensor | Mapping[str, Tensor]  # texts, token ids, or a tokenised batch


@dataclass
class LoadedModel:
    """An unmodified HF model with what the toolkit needs to hook it: its tokenizer, adapter and shape.

    ``prepend_bos`` is the start-token choice every text of this model is tokenised with (see the module).
    """

    model: HFModel
    tokenizer: PreTrainedTokenizerBase
    adapter: Adapter
    name: str
    source: str = ""  # folder the weights came from ("" for a model built in memory)
    revision: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    prepend_bos: bool = True

    def __post_init__(self) -> None:
        self.adapter = self.adapter.for_model(self.model)
        self.shape: Shape = model_shape(self.model, self.adapter)
        self._fingerprint: str | None = None

    # --- what the model is ---------------------------------------------------------------------------

    @property
    def base(self) -> HFModel:
        return self.model.base_model

    @property
    def device(self) -> torch.device:
        """Where inputs go: the device the embeddings run on. Under a device map (accelerate) that is their
        execution device, also when their weights are offloaded (on the meta device until they run)."""
        embeddings = self.model.get_input_embeddings()
        executes = _execution_device(embeddings) if embeddings is not None else None
        if executes is not None:
            return executes
        return next(p.device for p in self.model.parameters() if p.device.type != "meta")

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device_map(self) -> dict[str, Any] | None:
        """accelerate's placement of each module ("disk" and "cpu" offload included), when loaded with one."""
        placed = getattr(self.model, "hf_device_map", None)
        return dict(placed) if placed else None

    @property
    def has_unembed(self) -> bool:
        return self.model.get_output_embeddings() is not None

    def max_length(self, requested: int | None = None) -> int:
        """The sequence length to tokenise to: the request, checked against the model's positions."""
        limit = getattr(self.model.config, "max_position_embeddings", None) or 1_000_000
        tokenizer_limit = self.tokenizer.model_max_length
        if requested is None:
            return int(min(limit, tokenizer_limit, DEFAULT_MAX_LENGTH))
        if requested > limit:
            raise SequenceTooLongError(
                f"max_length {requested} is longer than {self.name} can attend over ({limit} positions); "
                f"use max_length <= {limit}"
            )
        if requested < 1:
            raise SequenceTooLongError(f"max_length must be at least 1, got {requested}")
        return int(requested)

    def site_names(self) -> list[str]:
        return sites_mod.all_site_names(self.adapter, self.shape, self.has_unembed)

    def resolve(self, patterns: str | list[str]) -> list[Site]:
        return sites_mod.expand(patterns, self.adapter, self.shape, self.has_unembed)

    def module_for(self, site: Site) -> nn.Module:
        part = site.kind.part
        if part == "unembed":
            return self.model.get_output_embeddings()
        if part == "final_norm":
            assert self.adapter.final_norm is not None  # sites_mod offers the site only where there is one
            return self.base.get_submodule(self.adapter.final_norm)
        assert site.layer is not None  # every other part lives in a block
        if part == "block":
            return self.base.get_submodule(self.adapter.block(site.layer))
        return self.base.get_submodule(self.adapter.path(part, site.layer))

    @property
    def fingerprint(self) -> str:
        """sha256 (first 16 hex) of the weights: files when loaded from disk, tensors otherwise."""
        if self._fingerprint is None:
            self._fingerprint = self.info.get("weights_sha256") or _tensor_fingerprint(self.model)
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        """What a run records about its model."""
        return {
            "name": self.name,
            "source": self.source,
            "revision": self.revision,
            "architecture": self.adapter.name,
            "model_type": self.model.config.model_type,
            "weights_sha256_16": self.fingerprint,
            "n_parameters": sum(p.numel() for p in self.model.parameters()),
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "prepend_bos": self.prepend_bos if self.adapter.causal else None,
            **{k: v for k, v in self.info.items() if k != "weights_sha256"},
        }

    # --- text to tokens: the one rule -----------------------------------------------------------------

    def start_tokens(self, prepend_bos: bool | None = None) -> list[int] | None:
        """What leads each text: None for an encoder (its tokenizer's own special tokens), else the start token
        (``prepend_bos``, by default this model's) or nothing."""
        if not self.adapter.causal:
            return None
        use = self.prepend_bos if prepend_bos is None else prepend_bos
        return start_token(self.tokenizer) if use else []

    def encode(
        self,
        texts: str | Sequence[str] | Sequence[Sequence[str]],
        *,
        prepend_bos: bool | None = None,
        max_length: int | None = None,
    ) -> Encoded:
        """Texts (or pre-split word lists) as a right-padded batch (token ids, mask, each token's word), by the
        one rule."""
        items: list = [texts] if isinstance(texts, str) else list(texts)
        return encode(self.tokenizer, items, self.max_length(max_length), start=self.start_tokens(prepend_bos))

    def token_ids(self, text: str, *, prepend_bos: bool | None = None) -> list[int]:
        """One text's token ids by the one rule, unpadded and untruncated (what the causal behaviours score)."""
        start = self.start_tokens(prepend_bos)
        if start is None:
            return list(self.tokenizer(text)["input_ids"])
        return start + list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def to_tokens(
        self, texts: str | Sequence[str], *, prepend_bos: bool | None = None, max_length: int | None = None
    ) -> Tensor:
        """(batch, pos) token ids on the model's device, right-padded (as TransformerLens's ``to_tokens``)."""
        return self.encode(texts, prepend_bos=prepend_bos, max_length=max_length).inputs["input_ids"].to(self.device)

    def to_str_tokens(self, text: str, *, prepend_bos: bool | None = None) -> list[str]:
        """One text's tokens as strings, by the one rule."""
        return list(self.tokenizer.convert_ids_to_tokens(self.token_ids(text, prepend_bos=prepend_bos)))

    def to_single_token(self, text: str) -> int:
        """The id of a string that is one token (an answer such as " Paris"); an error if it is several."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"{text!r} is {len(ids)} tokens for {self.name}, not one: {ids}")
        return int(ids[0])

    def batch(
        self, inputs: Inputs, *, prepend_bos: bool | None = None, max_length: int | None = None
    ) -> dict[str, Tensor]:
        """What the model is called with, on its device: from texts (by the one rule), token ids or a batch."""
        if isinstance(inputs, Mapping):
            return {k: v.to(self.device) for k, v in inputs.items()}
        if isinstance(inputs, Tensor):
            ids = inputs[None] if inputs.ndim == 1 else inputs
            return {"input_ids": ids.to(self.device), "attention_mask": torch.ones_like(ids, device=self.device)}
        if not isinstance(inputs, str) and len(inputs) == 0:
            raise EmptyInputError("empty text list: give at least one text")
        return self.encode(inputs, prepend_bos=prepend_bos, max_length=max_length).model_inputs(self.device)

    # --- running ---------------------------------------------------------------------------------------

    def __call__(
        self, inputs: Inputs, *, prepend_bos: bool | None = None, max_length: int | None = None, **forward: Any
    ) -> Tensor:
        """One forward pass without gradients: the logits (the last hidden states of a model with no LM head)."""
        batch = self.batch(inputs, prepend_bos=prepend_bos, max_length=max_length)
        with torch.inference_mode():
            return _main_output(self.model(**batch, **forward))

    @contextmanager
    def hooks(self, hooks: Mapping[str, HookFn]) -> Iterator[list[Site]]:
        """Hook functions ``fn(value, site)`` on sites (names or glob patterns) for every forward in the block."""
        bound: dict[str, Callable[[Tensor], Tensor | None]] = {}
        for pattern, fn in hooks.items():
            for site in self.resolve(pattern):
                if site.name in bound:
                    raise ValueError(f"two hook functions for {site.name}: give each site one (or compose them)")
                bound[site.name] = _bind(fn, site)
        with hooked(self, bound) as chosen:
            yield chosen

    def run_with_hooks(
        self,
        inputs: Inputs,
        hooks: Mapping[str, HookFn],
        *,
        prepend_bos: bool | None = None,
        max_length: int | None = None,
        **forward: Any,
    ) -> Tensor:
        """One forward pass with ``hooks`` (site name or pattern -> ``fn(value, site)``): the logits."""
        with self.hooks(hooks):
            return self(inputs, prepend_bos=prepend_bos, max_length=max_length, **forward)

    def run_with_cache(
        self,
        inputs: Inputs,
        sites: str | list[str] = "*",
        *,
        hooks: Mapping[str, HookFn] | None = None,
        prepend_bos: bool | None = None,
        max_length: int | None = None,
        **forward: Any,
    ) -> tuple[Tensor, ActivationCache]:
        """One forward pass with ``sites`` captured (default: every site): the logits and an ``ActivationCache``.

        ``hooks`` run too, and the cache holds what each site's value was once they ran.
        """
        batch = self.batch(inputs, prepend_bos=prepend_bos, max_length=max_length)
        with torch.inference_mode(), self.hooks(hooks or {}), capture(self, sites) as values:
            output = self.model(**batch, **forward)
        return _main_output(output), ActivationCache(values, self.shape.n_layers)

    def logit_diff(self, logits: Tensor, right: str | int, wrong: str | int, *, at: Tensor | None = None) -> Tensor:
        """Per text, the logit of ``right`` minus that of ``wrong`` (strings scored by their first token) at its
        last real token, or at ``at`` (one position per text)."""
        if logits.ndim == 2:
            logits = logits[None]
        ids = [
            a if isinstance(a, int) else self.tokenizer(a, add_special_tokens=False)["input_ids"][0]
            for a in (right, wrong)
        ]
        rows = torch.arange(logits.shape[0], device=logits.device)
        last = at if at is not None else torch.full_like(rows, logits.shape[1] - 1)
        return logits[rows, last.to(logits.device), ids[0]] - logits[rows, last.to(logits.device), ids[1]]


def _bind(fn: HookFn, site: Site) -> Callable[[Tensor], Tensor | None]:
    return lambda value: fn(value, site)


def _main_output(output: Any) -> Tensor:
    logits = getattr(output, "logits", None)
    return logits if logits is not None else output.last_hidden_state


def _execution_device(module: nn.Module) -> torch.device | None:
    """The device accelerate runs ``module`` on (its AlignDevicesHook), or None without one."""
    hook = getattr(module, "_hf_hook", None)
    for h in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):
        device = getattr(h, "execution_device", None)
        if device is not None:
            return torch.device(device)
    return None


def _tensor_fingerprint(model: nn.Module) -> str:
    import hashlib

    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


__all__ = ["DEFAULT_MAX_LENGTH", "HookFn", "Inputs", "LoadedModel"]
