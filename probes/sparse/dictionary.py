"""A sparse dictionary of one site: a sparse autoencoder (site -> itself) or a transcoder (one site -> another).

    sae = SparseDictionary(d_in=576, d_sae=4608, k=32, site="blocks.6.hook_resid_pre")
    codes = sae.encode(x)                 # (..., d_sae): k non-zero per token
    x_hat = sae.decode(codes)             # (..., d_out)
    sae.save("runs/sae-l6")               # SAELens's format: cfg.json + sae_weights.safetensors
    sae = SparseDictionary.load("runs/sae-l6")

The function is SAELens's: ``pre = (x - b_dec) @ W_enc + b_enc`` (``b_dec`` subtracted only where
``apply_b_dec_to_input``), then TopK (the k largest pre-activations, through a ReLU), a ReLU, or a
JumpReLU (a ReLU kept only above ``threshold``); ``decode(f) = f @ W_dec + b_dec``. With
``rescale_acts_by_decoder_norm`` the pre-activations are multiplied by each decoder row's norm before the
selection and divided by it before decoding, as SAELens's TopK SAEs do. A transcoder reads ``site`` and
writes ``site_out`` (``W_dec`` is (d_sae, d_out), ``apply_b_dec_to_input`` off).

A folder SAELens wrote for the architectures ``topk``, ``standard``, ``jumprelu``, ``transcoder`` and
``jumprelu_transcoder`` loads here; a TopK dictionary trained here saves as ``topk`` and loads in SAELens
(a TopK transcoder too, where input and output widths agree: ``metadata.hook_name_out`` names its output).
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from analysis.errors import ProbesError
from probes.core.files import atomic_path, write_json

CFG_FILE, WEIGHTS_FILE = "cfg.json", "sae_weights.safetensors"
# The config layout written (SAELens 6's: settings at the top, where the dictionary was trained under "metadata");
# SAELens reads a config that names no version as its pre-6.0 layout, which keeps no metadata.
SAELENS_FORMAT = "6.0.0"
ACTIVATIONS = ("topk", "relu", "jumprelu")
# SAELens architecture name -> (activation, is a transcoder)
ARCHITECTURES = {
    "topk": ("topk", False),
    "standard": ("relu", False),
    "jumprelu": ("jumprelu", False),
    "transcoder": ("relu", True),
    "jumprelu_transcoder": ("jumprelu", True),
}


class DictionaryError(ProbesError, ValueError):
    """A dictionary that cannot be built, saved or loaded as asked."""


class SparseDictionary(nn.Module):
    """Encoder, sparse activation and decoder of one site (see the module's docstring).

    >>> sae = SparseDictionary(d_in=8, d_sae=32, k=2, site="blocks.0.hook_resid_pre")
    >>> sae.encode(torch.randn(5, 8)).count_nonzero(-1).max().item() <= 2
    True
    """

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        *,
        site: str,
        activation: str = "topk",
        k: int | None = None,
        d_out: int | None = None,
        site_out: str | None = None,
        apply_b_dec_to_input: bool | None = None,
        rescale_acts_by_decoder_norm: bool = False,
        model_name: str | None = None,
        dtype: torch.dtype = torch.float32,
        info: dict[str, Any] | None = None,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise DictionaryError(f"unknown activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}")
        if activation == "topk" and (k is None or not 1 <= k <= d_sae):
            raise DictionaryError(f"a TopK dictionary needs 1 <= k <= d_sae ({d_sae}), got k={k}")
        if d_in < 1 or d_sae < 1:
            raise DictionaryError(f"a dictionary needs positive widths, got d_in={d_in}, d_sae={d_sae}")
        d_out = d_in if d_out is None else d_out
        self.transcoder = site_out is not None and site_out != site
        if apply_b_dec_to_input is None:
            apply_b_dec_to_input = not self.transcoder and d_out == d_in
        if apply_b_dec_to_input and d_out != d_in:
            raise DictionaryError("apply_b_dec_to_input needs equal input and output widths")
        self.d_in, self.d_sae, self.d_out, self.k = d_in, d_sae, d_out, k
        self.activation, self.site, self.site_out = activation, site, site_out or site
        self.apply_b_dec_to_input = apply_b_dec_to_input
        self.rescale_acts_by_decoder_norm = rescale_acts_by_decoder_norm
        self.model_name = model_name
        self.info: dict[str, Any] = dict(info or {})  # what trained it: recorded in cfg.json's metadata
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae, dtype=dtype))
        self.b_enc = nn.Parameter(torch.zeros(d_sae, dtype=dtype))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_out, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(d_out, dtype=dtype))
        if activation == "jumprelu":
            self.threshold = nn.Parameter(torch.zeros(d_sae, dtype=dtype))
        self._last: tuple[weakref.ref, Tensor] | None = None  # the codes of the last value ``codes`` saw

    # --- the function ------------------------------------------------------------------------------------------
    def pre_activations(self, x: Tensor) -> Tensor:
        x = x.to(self.W_enc.dtype)
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        pre = x @ self.W_enc + self.b_enc
        return pre * self.W_dec.norm(dim=-1) if self.rescale_acts_by_decoder_norm else pre

    def activate(self, pre: Tensor) -> Tensor:
        if self.activation == "topk":
            assert self.k is not None
            values, indices = pre.topk(self.k, dim=-1, sorted=False)
            return torch.zeros_like(pre).scatter_(-1, indices, values.relu())
        acts = pre.relu()
        return acts * (pre > self.threshold).to(acts.dtype) if self.activation == "jumprelu" else acts

    def encode(self, x: Tensor) -> Tensor:
        """(..., d_in) -> (..., d_sae) feature activations."""
        return self.activate(self.pre_activations(x))

    def decode(self, codes: Tensor) -> Tensor:
        """(..., d_sae) -> (..., d_out) reconstruction."""
        if self.rescale_acts_by_decoder_norm:
            codes = codes / self.W_dec.norm(dim=-1)
        return codes @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def codes(self, value: Tensor) -> Tensor:
        """``encode(value)`` without gradients, remembered for the same tensor: every feature component at a
        site reads one encoding per forward, not one each."""
        if self._last is not None and self._last[0]() is value:
            return self._last[1]
        with torch.no_grad():
            codes = self.encode(value)
        self._last = (weakref.ref(value), codes)
        return codes

    def contributions(self, codes: Tensor, features: Tensor) -> Tensor:
        """(..., len(features), d_out): what each listed feature adds to the reconstruction."""
        scale = codes[..., features]
        if self.rescale_acts_by_decoder_norm:
            scale = scale / self.W_dec[features].norm(dim=-1)
        return scale[..., None] * self.W_dec[features]

    @property
    def width(self) -> int:
        return self.d_sae

    @property
    def fingerprint(self) -> str:
        """sha256 (first 12 hex) of the weights: what makes two dictionaries' features different components."""
        h = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:12]

    def describe(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "site": self.site,
            "site_out": self.site_out,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "k": self.k,
            "fingerprint": self.fingerprint,
        }

    @property
    def architecture(self) -> str:
        """SAELens's name for this function (it has no TopK transcoder: ours loads there as a TopK SAE)."""
        if self.activation == "topk":
            return "topk"
        if self.activation == "relu":
            return "transcoder" if self.transcoder else "standard"
        return "jumprelu_transcoder" if self.transcoder else "jumprelu"

    def __repr__(self) -> str:
        arrow = f"{self.site} -> {self.site_out}" if self.transcoder else self.site
        k = f", k={self.k}" if self.activation == "topk" else ""
        return f"SparseDictionary({arrow}, {self.d_in} -> {self.d_sae}, {self.activation}{k})"

    # --- SAELens's format -------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "sae_lens_version": SAELENS_FORMAT,
            "hook_name": self.site,
            "model_name": self.model_name,
            "probes": self.info,
        }
        if self.transcoder:
            metadata["hook_name_out"] = self.site_out
        cfg: dict[str, Any] = {
            "architecture": self.architecture,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "dtype": str(self.W_enc.dtype).removeprefix("torch."),
            "device": "cpu",
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "normalize_activations": "none",
            "reshape_activations": "none",
            "metadata": metadata,
        }
        if self.activation == "topk":
            cfg.update(k=self.k, rescale_acts_by_decoder_norm=self.rescale_acts_by_decoder_norm)
        if self.transcoder and self.activation != "topk":
            cfg["d_out"] = self.d_out
        return cfg

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``cfg.json`` and ``sae_weights.safetensors`` into ``folder`` (each written whole, then renamed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {name: t.detach().cpu().contiguous() for name, t in self.state_dict().items()}
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp))
        write_json(folder / CFG_FILE, self.config())
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> SparseDictionary:
        """A dictionary from a SAELens-format folder (ours or SAELens's)."""
        folder = Path(folder)
        cfg_path, weights_path = folder / CFG_FILE, folder / WEIGHTS_FILE
        for path in (cfg_path, weights_path):
            if not path.exists():
                raise DictionaryError(
                    f"{path} is missing: a dictionary folder holds {CFG_FILE} and {WEIGHTS_FILE} "
                    "(SAELens's format; train one with `probes sae train`)"
                )
        try:
            cfg = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as err:
            raise DictionaryError(f"{cfg_path} is not valid JSON (line {err.lineno}): {err.msg}") from None
        if not isinstance(cfg, dict):
            raise DictionaryError(
                f"{cfg_path} is a JSON {type(cfg).__name__.replace('dict', 'object')}: a dictionary's cfg.json is one "
                "object with d_in, d_sae and the site (save it again with SparseDictionary.save or SAELens)"
            )
        architecture = cfg.get("architecture", "standard")
        if architecture not in ARCHITECTURES:
            raise DictionaryError(
                f"{cfg_path}: architecture {architecture!r} is not supported here; "
                f"supported: {', '.join(ARCHITECTURES)}"
            )
        for key, plain in (("normalize_activations", "none"), ("reshape_activations", "none")):
            if cfg.get(key, plain) not in (plain, None):
                raise DictionaryError(
                    f"{cfg_path}: {key}={cfg[key]!r} is not supported here; fold it into the weights "
                    f"(SAELens's fold_activation_norm_scaling_factor) and save again with {key}='none'"
                )
        for key in ("d_in", "d_sae"):
            if key not in cfg:
                raise DictionaryError(f"{cfg_path} has no {key!r}: it is not a SAELens config")
            if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < 1:
                raise DictionaryError(
                    f"{cfg_path}: key {key!r} should be a whole number, got {cfg[key]!r}: the width of the "
                    "dictionary's input (d_in) or its number of features (d_sae)"
                )
        activation, transcoder = ARCHITECTURES[architecture]
        meta = cfg.get("metadata") or {}
        site = meta.get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point")  # 6.x, 5.x, older
        if not site:
            raise DictionaryError(f"{cfg_path} names no site: add metadata.hook_name, e.g. 'blocks.6.hook_resid_pre'")
        site_out = meta.get("hook_name_out") or (cfg.get("hook_name_out") if transcoder else None)
        try:
            state = load_file(str(weights_path))
        except SafetensorError as err:
            raise DictionaryError(
                f"{weights_path} is corrupt or truncated ({err}): save the dictionary again"
            ) from None
        if "log_threshold" in state:  # older SAELens JumpReLU checkpoints
            state["threshold"] = state.pop("log_threshold").exp()
        encoder = tuple(state["W_enc"].shape) if "W_enc" in state else None
        if encoder is not None and encoder != (cfg["d_in"], cfg["d_sae"]):
            raise DictionaryError(
                f"{cfg_path}: d_in {cfg['d_in']} and d_sae {cfg['d_sae']} disagree with {weights_path.name}'s W_enc of "
                f"shape {encoder}: the weights and cfg.json come from different dictionaries; save them together"
            )
        dtype = state["W_enc"].dtype if "W_enc" in state else torch.float32
        sae = cls(
            int(cfg["d_in"]),
            int(cfg["d_sae"]),
            site=site,
            activation=activation,
            k=cfg.get("k"),
            d_out=int(cfg.get("d_out") or state.get("b_dec", torch.zeros(cfg["d_in"])).shape[0]),
            site_out=site_out,
            apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", not transcoder)),
            rescale_acts_by_decoder_norm=bool(cfg.get("rescale_acts_by_decoder_norm", False)),
            model_name=meta.get("model_name") or cfg.get("model_name"),
            dtype=dtype,
            info=meta.get("probes") or {},
        )
        expected = {name: tuple(p.shape) for name, p in sae.state_dict().items()}
        got = {name: tuple(t.shape) for name, t in state.items() if name in expected}
        if got != expected:
            raise DictionaryError(
                f"{weights_path}: tensors {got} do not match the config's shapes {expected}: "
                "the weights and cfg.json come from different dictionaries"
            )
        sae.load_state_dict({name: state[name] for name in expected})
        return sae.to(device)
