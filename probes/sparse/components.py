"""A sparse autoencoder's features, and what it leaves unexplained, as components of a behaviour.

    sae = SparseDictionary.load("runs/sae-l6")                       # reads blocks.6.hook_resid_pre
    Features(sae, [123])            L6.sae[123]        one feature
    Features(sae, [1, 2, 3])        L6.sae[1,2,3]      three, ablated together
    ErrorTerm(sae)                  L6.sae.err         x - sae(x): what the dictionary misses
    parse_feature("L6.sae[123]", {6: sae})

At the dictionary's site the value is exactly ``b_dec + sum_i f_i(x) d_i + err(x)``. Ablating features S
replaces their activations and nothing else: ``x + sum_{i in S} (g_i - f_i(x)) d_i``, where g is 0 (zero),
the per-position mean of f_i over the reference (mean), or f_i of the other run's value (resample,
patch); ablating the error term puts the reconstruction plus the error's zero, mean or other value in
place of x. Every feature and error component of one dictionary is computed from the same encoding of the
original value, so ablating several together adds their changes (the TopK selection is not re-run on an
edited value). The Evaluator, attribution (AtP: the change dotted with the gradient at the site) and
patching reach them through the same hooks as heads and MLPs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from probes.causal.components import Component, ComponentError, ValueEdit
from probes.core.adapters import Shape
from probes.sparse.dictionary import SparseDictionary

_SITE_LAYER = re.compile(r"^blocks\.(\d+)\.")


def site_layer(site: str) -> int:
    match = _SITE_LAYER.match(site)
    if not match:
        raise ComponentError(f"a dictionary's features need a block site (blocks.<l>.…), not {site!r}")
    return int(match.group(1))


@dataclass(frozen=True, repr=False)
class _OfDictionary(ValueEdit):
    """Something one dictionary defines at its site; ``key`` (its fingerprint) tells dictionaries apart."""

    dictionary: SparseDictionary = field(default=None, compare=False, hash=False)  # type: ignore[assignment]
    key: str = ""
    additive: ClassVar[bool] = True  # RowPlan: compute from the original value and add the changes
    needs_reference: ClassVar[bool] = True

    @property
    def site(self) -> str:
        return self.dictionary.site

    def _order(self) -> tuple:
        # what a dictionary reads at a block's input comes before the block's heads, anything else after its MLP
        rank = 0.45 if self.site.endswith("hook_resid_pre") else 4.5
        return (self.layer, rank, self.label_text, -1 if self.at is None else self.at)

    def check(self, shape: Shape) -> Component:
        super().check(shape)
        if self.dictionary.transcoder:
            raise ComponentError(
                f"component {self.name}: a transcoder's features are not components here (they read one site and "
                "write another); use a sparse autoencoder of the site"
            )
        return self

    def _codes(self, value: Tensor) -> Tensor:
        return self.dictionary.codes(value)

    def at_position(self, position: int) -> Component:
        raise NotImplementedError


@dataclass(frozen=True, repr=False)
class Features(_OfDictionary):
    """Features ``features`` of ``dictionary``, ablated together (``L6.sae[1,2,3]``)."""

    features: tuple[int, ...] = ()
    label: str = field(default="", compare=False)  # a shorter name for a long list ("all but the top 10")
    kind: ClassVar[str] = "feature"

    def __init__(self, dictionary: SparseDictionary, features, *, label: str = "", at: int | None = None):
        object.__setattr__(self, "layer", site_layer(dictionary.site))
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "dictionary", dictionary)
        object.__setattr__(self, "key", dictionary.fingerprint)
        object.__setattr__(self, "features", tuple(sorted({int(f) for f in features})))
        object.__setattr__(self, "label", label)

    def at_position(self, position: int) -> Component:
        return Features(self.dictionary, self.features, label=self.label, at=int(position))

    @property
    def label_text(self) -> str:
        inside = self.label or ",".join(map(str, self.features))
        return f"L{self.layer}.sae[{inside}]"

    @property
    def statistic_key(self) -> str:
        return f"{self.site}#sae-{self.key}.codes"

    def statistic(self, value: Tensor) -> Tensor:
        return self._codes(value).to(value.dtype)

    def check(self, shape: Shape) -> Component:
        super().check(shape)
        d = self.dictionary.d_sae
        if not self.features or min(self.features) < 0 or max(self.features) >= d:
            raise ComponentError(f"component {self.name}: the dictionary's features run 0..{d - 1}")
        return self

    @property
    def unit(self) -> int | None:
        """The feature, where this is one: attribution then estimates every feature of the dictionary at once."""
        return self.features[0] if len(self.features) == 1 else None

    @property
    def group(self) -> str:
        return self.key

    def _goal(self, codes: Tensor, replacement: Tensor | None, derived: bool) -> Tensor:
        """Every feature's activation under the ablation (zero, the mean, the other run's)."""
        if replacement is None:
            return torch.zeros_like(codes)
        if derived:  # the features' own activations already (mean ablation's means of them)
            return replacement.to(codes.dtype)
        return self.dictionary.codes(replacement)

    @torch.no_grad()  # the dictionary is an instrument here, not something trained
    def unit_terms(self, value: Tensor, replacement: Tensor | None, grad: Tensor, derived: bool) -> Tensor:
        """(rows, T, d_sae): each single feature's change dotted with the gradient at the site, per token."""
        sae = self.dictionary
        codes = self._codes(value)
        delta = self._goal(codes, replacement, derived) - codes
        reads = grad.to(sae.W_dec.dtype) @ sae.W_dec.T  # what moving each feature by one does to the metric
        if sae.rescale_acts_by_decoder_norm:
            reads = reads / sae.W_dec.norm(dim=-1)
        return delta * reads

    @torch.no_grad()
    def apply(self, value: Tensor, replacement: Tensor | None, tokens: Tensor, derived: bool) -> Tensor:
        sae = self.dictionary
        idx = torch.tensor(self.features, device=value.device)
        codes = self._codes(value)
        if replacement is None:
            goal = torch.zeros_like(codes[..., idx])
        elif derived:  # the activations themselves (mean ablation: their per-position means)
            goal = replacement[..., idx].to(codes.dtype)
        else:  # another run's value of the site: its own activations
            goal = sae.codes(replacement)[..., idx]
        delta = goal - codes[..., idx]
        W = sae.W_dec[idx]
        if sae.rescale_acts_by_decoder_norm:
            delta = delta / W.norm(dim=-1)
        change = (delta @ W).to(value.dtype)
        return value + tokens[..., None].to(value.dtype) * change


@dataclass(frozen=True, repr=False)
class ErrorTerm(_OfDictionary):
    """``x - dictionary(x)`` at the dictionary's site (``L6.sae.err``)."""

    kind: ClassVar[str] = "sae_error"

    def __init__(self, dictionary: SparseDictionary, *, at: int | None = None):
        object.__setattr__(self, "layer", site_layer(dictionary.site))
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "dictionary", dictionary)
        object.__setattr__(self, "key", dictionary.fingerprint)

    def at_position(self, position: int) -> Component:
        return ErrorTerm(self.dictionary, at=int(position))

    @property
    def label_text(self) -> str:
        return f"L{self.layer}.sae.err"

    @property
    def statistic_key(self) -> str:
        return f"{self.site}#sae-{self.key}.error"

    def statistic(self, value: Tensor) -> Tensor:
        return self._error(value).to(value.dtype)

    def _error(self, value: Tensor) -> Tensor:
        with torch.no_grad():
            return value.to(self.dictionary.W_dec.dtype) - self.dictionary.decode(self._codes(value))

    @torch.no_grad()
    def apply(self, value: Tensor, replacement: Tensor | None, tokens: Tensor, derived: bool) -> Tensor:
        error = self._error(value)
        if replacement is None:
            goal = torch.zeros_like(error)
        elif derived:
            goal = replacement.to(error.dtype)
        else:
            goal = self._error(replacement)
        return value + tokens[..., None].to(value.dtype) * (goal - error).to(value.dtype)


_FEATURE = re.compile(r"^L(\d+)\.sae(?:\[([\d,\s]+)\]|\.(err))(?:@(\d+))?$")


def parse_feature(text: str, dictionaries: dict[int, SparseDictionary]) -> Component:
    """``L6.sae[123]``, ``L6.sae[1,2,3]`` or ``L6.sae.err`` (optionally ``@pos``), of the dictionary at block 6."""
    match = _FEATURE.match(text.strip())
    if not match:
        raise ComponentError(
            f"cannot read feature component {text!r}: write L<layer>.sae[<feature>,...] or L<layer>.sae.err"
        )
    layer, features, err, at = match.groups()
    if int(layer) not in dictionaries:
        have = ", ".join(f"L{l}" for l in sorted(dictionaries)) or "none"
        raise ComponentError(
            f"component {text!r}: no dictionary is loaded at block {layer} (loaded: {have}); pass --sae"
        )
    sae = dictionaries[int(layer)]
    position = None if at is None else int(at)
    if err:
        return ErrorTerm(sae, at=position)
    return Features(sae, [int(f) for f in features.split(",") if f.strip()], at=position)


def all_features(dictionary: SparseDictionary) -> list[Component]:
    """Every feature of the dictionary, one component each."""
    return [Features(dictionary, [i]) for i in range(dictionary.d_sae)]
