"""Components a behaviour can be taken apart into: heads, attention layers, MLPs, neurons, residual edits.

Each component is a type that names the site its value lives at and owns the rule for changing it,
so every intervention (ablation, patching, erasure) reaches it through the same hooks::

    Head(3, 5)          L3H5            head 5 of block 3            blocks.3.attn.hook_z[..., 5, :]
    HeadInput(3, 5, "q") L3H5.q         its query (k, v: key-value head 5's key, value)  blocks.3.attn.hook_q[..., 5, :]
    Attn(3)             L3.attn         block 3's whole attention    blocks.3.hook_attn_out
    MLP(3)              L3.mlp          block 3's MLP                blocks.3.hook_mlp_out
    Neurons(3, [7, 12]) L3.mlp[7,12]    two MLP neurons              blocks.3.mlp.hook_post[..., [7, 12]]
    Resid(3)            L3.resid        the residual stream entering block 3     blocks.3.hook_resid_pre
    Head(3, 5, at=7)    L3H5@7          head 5 of block 3 at token position 7 only (any kind takes at=)
    Direction(3, v)     L3.resid[v]     the residual entering block 3, along direction v only
    Edit(3, M, mu)      L3.resid[edit]  an affine edit x - M (x - mu) of that residual (concept erasure)

A residual component's layer l is the depth of the residual stream, as Hugging Face's
``hidden_states[l]`` and the probes' layers count it: 0 is the embeddings, l the output of block l - 1
(the input of block l). The other components' layer is their block.

Two families: a ``Slice`` replaces the part of its site it owns with a replacement value (zero, a
mean, a resampled or patched value); a ``ResidualEdit`` changes the residual by an affine map.
``parse_component`` reads the string forms (CLI and suite files use them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import Tensor

from analysis.errors import ProbesError
from probes.core.adapters import Shape


class ComponentError(ProbesError, ValueError):
    """A component name that does not parse or does not exist in this model."""


@dataclass(frozen=True)
class Component:
    """One separable part of the model; subclasses say where it lives and how it is changed.

    ``layer`` is the block whose site holds it (what prefix reuse and model order go by); ``at`` a token
    position (within each text) to restrict it to, None for every position.
    """

    layer: int
    at: int | None = field(default=None, kw_only=True)

    kind: ClassVar[str] = "component"  # the name tables give it
    needs_reference: ClassVar[bool] = True  # mean and resample ablation read statistics of its site
    rank: ClassVar[float] = 0.0  # order within a block: the residual entering it, heads, attention, neurons, MLP

    @property
    def site(self) -> str:
        raise NotImplementedError

    @property
    def label_text(self) -> str:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self.label_text + (f"@{self.at}" if self.at is not None else "")

    @property
    def head(self) -> int:
        """The head index for tables (-1 for anything that is not a head)."""
        return -1

    def at_position(self, position: int) -> Component:
        """The same component restricted to one token position."""
        return replace(self, at=int(position))

    def check(self, shape: Shape) -> Component:
        if not 0 <= self.layer < shape.n_layers:
            raise ComponentError(f"component {self.name}: the model has layers 0..{shape.n_layers - 1}")
        if self.at is not None and self.at < 0:
            raise ComponentError(f"component {self.name}: positions count from 0")
        return self

    def _order(self) -> tuple:
        return (self.layer, self.rank, self.label_text, -1 if self.at is None else self.at)

    def __lt__(self, other: Component) -> bool:  # model order: by block, then as the block computes them
        return self._order() < other._order()

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class Slice(Component):
    """A component that owns a slice of its site's value; ablating it replaces that slice."""

    def select(self, mask: Tensor, tokens: Tensor) -> None:
        """Mark in ``mask`` (the site's shape, bool) the elements this component owns at ``tokens`` (rows, T)."""
        mask |= tokens.reshape(*tokens.shape, *([1] * (mask.ndim - 2)))


@dataclass(frozen=True, repr=False)
class PerHead(Slice):
    """One head's entry of a per-head site (its output, or its query, key or value)."""

    head_index: int = 0

    @property
    def head(self) -> int:
        return self.head_index

    def select(self, mask: Tensor, tokens: Tensor) -> None:
        mask[:, :, self.head_index] |= tokens[..., None]

    def _check_head(self, shape: Shape, n: int, what: str) -> Component:
        Slice.check(self, shape)
        if not 0 <= self.head_index < n:
            raise ComponentError(f"component {self.name}: the model has {what} 0..{n - 1} per layer")
        return self


@dataclass(frozen=True, repr=False)
class Head(PerHead):
    kind: ClassVar[str] = "head"
    rank: ClassVar[float] = 1

    @property
    def site(self) -> str:
        return f"blocks.{self.layer}.attn.hook_z"

    @property
    def label_text(self) -> str:
        return f"L{self.layer}H{self.head_index}"

    def check(self, shape: Shape) -> Component:
        return self._check_head(shape, shape.n_heads, "heads")

    def _order(self) -> tuple:
        return (self.layer, self.rank, self.head_index, -1 if self.at is None else self.at)


@dataclass(frozen=True, repr=False)
class HeadInput(PerHead):
    """A head's query, or a key-value head's key or value (under grouped-query attention ``head_index`` counts
    key-value heads for k and v: query head h reads key-value head ``h // (n_heads // n_kv_heads)``)."""

    which: str = "q"
    kind: ClassVar[str] = "qkv"
    rank: ClassVar[float] = 0.9  # computed before the head's output

    @property
    def site(self) -> str:
        return f"blocks.{self.layer}.attn.hook_{self.which}"

    @property
    def label_text(self) -> str:
        return f"L{self.layer}H{self.head_index}.{self.which}"

    def check(self, shape: Shape) -> Component:
        if self.which not in ("q", "k", "v"):
            raise ComponentError(f"component {self.name}: a head's input is its q, k or v")
        if self.which == "q":
            return self._check_head(shape, shape.n_heads, "heads")
        return self._check_head(shape, shape.n_kv_heads, "key-value heads")

    def _order(self) -> tuple:
        return (self.layer, self.rank, "qkv".index(self.which), self.head_index, -1 if self.at is None else self.at)


@dataclass(frozen=True, repr=False)
class Attn(Slice):
    kind: ClassVar[str] = "attn"
    rank: ClassVar[float] = 2

    @property
    def site(self) -> str:
        return f"blocks.{self.layer}.hook_attn_out"

    @property
    def label_text(self) -> str:
        return f"L{self.layer}.attn"


@dataclass(frozen=True, repr=False)
class Neurons(Slice):
    neurons: tuple[int, ...] = ()
    kind: ClassVar[str] = "neurons"
    rank: ClassVar[float] = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "neurons", tuple(sorted(int(n) for n in self.neurons)))

    @property
    def site(self) -> str:
        return f"blocks.{self.layer}.mlp.hook_post"

    @property
    def label_text(self) -> str:
        return f"L{self.layer}.mlp[{','.join(map(str, self.neurons))}]"

    def select(self, mask: Tensor, tokens: Tensor) -> None:
        mask[:, :, list(self.neurons)] |= tokens[..., None]

    def check(self, shape: Shape) -> Component:
        super().check(shape)
        if not self.neurons or max(self.neurons) >= shape.d_mlp or min(self.neurons) < 0:
            raise ComponentError(f"component {self.name}: MLP neurons run 0..{shape.d_mlp - 1}")
        return self


@dataclass(frozen=True, repr=False)
class MLP(Slice):
    kind: ClassVar[str] = "mlp"
    rank: ClassVar[float] = 4

    @property
    def site(self) -> str:
        return f"blocks.{self.layer}.hook_mlp_out"

    @property
    def label_text(self) -> str:
        return f"L{self.layer}.mlp"


class _Residual(Component):
    """A component of the residual stream at depth ``layer``: the input of block ``layer`` (0 = embeddings)."""

    @property
    def site(self) -> str:
        return f"blocks.{self.layer}.hook_resid_pre"

    @property
    def depth(self) -> int:
        return self.layer


@dataclass(frozen=True, repr=False)
class Resid(Slice, _Residual):
    """The residual stream entering block ``layer``, at every position (or at ``at``)."""

    kind: ClassVar[str] = "resid"
    rank: ClassVar[float] = 0

    @property
    def label_text(self) -> str:
        return f"L{self.layer}.resid"


class ValueEdit(Component):
    """A component that changes its site's value by a rule computed from the value itself (a residual edit, a
    dictionary's features or its error term), rather than by owning a slice of it.

    ``apply`` gets what its ablation kind moves it towards (``probes.causal.ablations``): None for nothing (zero
    ablation); with ``derived`` true, its own quantity already (mean ablation: the per-position mean of
    ``statistic_key``, the site itself or ``statistic`` of it, such as a dictionary's feature activations);
    else the site's replaced value (resample, patch), from which the edit derives its quantity.
    """

    needs_reference: ClassVar[bool] = False

    @property
    def statistic_key(self) -> str:
        """The reference table mean ablation reads: the site, or a quantity derived from it."""
        return self.site

    def statistic(self, value: Tensor) -> Tensor:
        """The derived quantity ``statistic_key`` names, from the site's value (the site itself by default)."""
        return value

    def apply(self, value: Tensor, replacement: Tensor | None, tokens: Tensor, derived: bool) -> Tensor:
        """``value`` with the edit applied at ``tokens`` (rows, T)."""
        raise NotImplementedError


class ResidualEdit(ValueEdit, _Residual):
    """An affine change of the residual stream entering block ``layer``."""

    label: str

    @property
    def label_text(self) -> str:
        return f"L{self.layer}.resid[{self.label}]"


@dataclass(frozen=True, repr=False)
class Direction(ResidualEdit):
    """The residual along one unit direction: ablation sets that coordinate (to 0, a mean, a resample), the
    rest of the residual keeps its value."""

    vector: Tensor = field(default=None, compare=False, hash=False)  # type: ignore[assignment]
    label: str = "direction"
    kind: ClassVar[str] = "direction"
    rank: ClassVar[float] = 0.5

    def __post_init__(self) -> None:
        vector = torch.as_tensor(self.vector).flatten()
        object.__setattr__(self, "vector", vector / vector.norm())

    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return True  # mean and resample set the coordinate to the reference's

    def apply(self, value: Tensor, replacement: Tensor | None, tokens: Tensor, derived: bool) -> Tensor:
        v = self.vector.to(value.device, value.dtype)[:, None]
        goal = 0.0 if replacement is None else replacement @ v  # its statistic is the site itself: derived or not
        return value + tokens[..., None].to(value.dtype) * ((goal - value @ v) * v.T)

    def check(self, shape: Shape) -> Component:
        super().check(shape)
        if self.vector.numel() != shape.d_model:
            raise ComponentError(f"component {self.name}: a direction needs {shape.d_model} entries (d_model)")
        return self


@dataclass(frozen=True, repr=False)
class Edit(ResidualEdit):
    """x -> x - matrix @ (x - mean) of the residual (a LEACE eraser, a projection); ablation kinds do not apply."""

    matrix: Tensor = field(default=None, compare=False, hash=False)  # type: ignore[assignment]
    mean: Tensor = field(default=None, compare=False, hash=False)  # type: ignore[assignment]
    label: str = "edit"
    kind: ClassVar[str] = "edit"
    rank: ClassVar[float] = 0.6

    def __post_init__(self) -> None:
        object.__setattr__(self, "matrix", torch.as_tensor(self.matrix))
        object.__setattr__(self, "mean", torch.as_tensor(self.mean).flatten())

    def apply(self, value: Tensor, replacement: Tensor | None, tokens: Tensor, derived: bool) -> Tensor:
        matrix, mean = self.matrix.to(value.device, value.dtype), self.mean.to(value.device, value.dtype)
        return value - tokens[..., None].to(value.dtype) * ((value - mean) @ matrix.T)

    def check(self, shape: Shape) -> Component:
        super().check(shape)
        if tuple(self.matrix.shape) != (shape.d_model, shape.d_model):
            raise ComponentError(f"component {self.name}: an edit needs a ({shape.d_model}, {shape.d_model}) matrix")
        return self


_PATTERN = re.compile(r"^L(\d+)(?:H(\d+)(?:\.([qkv]))?|\.(attn|mlp|resid)(?:\[([\d,\s]+)\])?)(?:@(\d+))?$")


def parse_component(text: str, shape: Shape | None = None) -> Component:
    """``L3H5``, ``L3H5.q`` (``.k``, ``.v``), ``L3.attn``, ``L3.mlp``, ``L3.mlp[7,12]``, ``L3.resid``, any with
    ``@pos`` -> a Component."""
    match = _PATTERN.match(text.strip())
    if not match:
        raise ComponentError(
            f"cannot read component {text!r}: write L<layer>H<head> (L3H5), L3H5.q / .k / .v, L<layer>.attn, "
            "L<layer>.mlp, L<layer>.mlp[<neuron>,...] or L<layer>.resid, optionally @<position> (L3H5@7)"
        )
    layer, head, which, part, neurons, at = match.groups()
    component: Component
    if head is not None:
        component = HeadInput(int(layer), int(head), which) if which else Head(int(layer), int(head))
    elif neurons is not None:
        if part != "mlp":
            raise ComponentError(f"component {text!r}: only MLP neurons can be listed, as L{layer}.mlp[7,12]")
        component = Neurons(int(layer), tuple(int(n) for n in neurons.split(",") if n.strip()))
    else:
        component = {"attn": Attn, "mlp": MLP, "resid": Resid}[part](int(layer))
    if at is not None:
        component = component.at_position(int(at))
    return component.check(shape) if shape is not None else component


def check(component: Component, shape: Shape) -> Component:
    """``component`` if it exists in a model of this shape; else a one-line error."""
    return component.check(shape)


def all_heads(shape: Shape, layers: list[int] | None = None) -> list[Component]:
    return [Head(l, h) for l in (layers if layers is not None else range(shape.n_layers)) for h in range(shape.n_heads)]


def all_mlps(shape: Shape, layers: list[int] | None = None) -> list[Component]:
    return [MLP(l) for l in (layers if layers is not None else range(shape.n_layers))]


def all_head_inputs(shape: Shape, layers: list[int] | None = None, which: str = "qkv") -> list[Component]:
    """Every head's query and every key-value head's key and value (``which`` picks among q, k, v)."""
    out: list[Component] = []
    for l in layers if layers is not None else range(shape.n_layers):
        for w in which:
            out += [HeadInput(l, h, w) for h in range(shape.n_heads if w == "q" else shape.n_kv_heads)]
    return out


COMPONENT_SETS = ("heads", "mlps", "heads+mlps", "layers", "qkv")


def components_from(spec: str | list, shape: Shape) -> list[Component]:
    """A list of names, or one of the sets "heads", "mlps", "heads+mlps", "layers" (attn and mlp of each layer),
    "qkv" (every head's query, key and value)."""
    if isinstance(spec, str):
        sets = {
            "heads": lambda: all_heads(shape),
            "mlps": lambda: all_mlps(shape),
            "heads+mlps": lambda: sorted(all_heads(shape) + all_mlps(shape)),
            "layers": lambda: sorted([Attn(l) for l in range(shape.n_layers)] + all_mlps(shape)),
            "qkv": lambda: all_head_inputs(shape),
        }
        if spec in sets:
            return sets[spec]()
        spec = [s for s in spec.split() if s]
    if len(spec) == 1 and isinstance(spec[0], str) and spec[0] in COMPONENT_SETS:
        return components_from(spec[0], shape)
    out = [c if isinstance(c, Component) else parse_component(str(c), shape) for c in spec]
    if not out:
        raise ComponentError(
            "no components given: name some (L3H5 L4.mlp L3H5.q) or a set (heads, mlps, heads+mlps, layers, qkv)"
        )
    twice = next((c for c in out if out.count(c) > 1), None)
    if twice is not None:
        raise ComponentError(f"component {twice.name} is named {out.count(twice)} times: name each component once")
    return [c.check(shape) for c in out]
