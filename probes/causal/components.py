"""Components a behaviour can be taken apart into: heads, attention layers, MLPs, neurons, directions.

Each component names the site its value lives at and the slice of that site it
owns, so every intervention (ablation, patching, erasure) reaches it through the
same hooks::

    L3H5            head 5 of block 3            blocks.3.attn.hook_z[..., 5, :]
    L3.attn         block 3's whole attention    blocks.3.hook_attn_out
    L3.mlp          block 3's MLP                blocks.3.hook_mlp_out
    L3.mlp[7,12]    two MLP neurons              blocks.3.mlp.hook_post[..., [7, 12]]
    L3.resid        the residual stream entering block 3   blocks.3.hook_resid_pre
    L3H5@7          head 5 of block 3 at token position 7 only (any kind takes @position)
    Direction(3, v) a residual direction         blocks.3.hook_resid_post, component along v
    Edit(3, M, mu)  an affine edit x - M (x - mu) of block 3's output (concept erasure)

``parse_component`` reads the string forms (CLI and suite files use them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from probes.core.adapters import Shape


class ComponentError(ValueError):
    """A component name that does not parse or does not exist in this model."""


@dataclass(frozen=True)
class Component:
    """One separable part of the model.

    kind: "head", "attn", "mlp", "neurons", "resid", "direction" or "edit".
    index: the head (for "head") or the neurons (for "neurons").
    at: a token position (within each text) to restrict the component to; None: every position.
    vector: for "direction", the (d_model,) direction in block ``layer``'s output residual stream.
    edit: for "edit", (M, mu): the residual x becomes x - M (x - mu); ablation kinds do not apply.
    """

    kind: str
    layer: int
    index: tuple[int, ...] = ()
    vector: torch.Tensor | None = field(default=None, compare=False, hash=False)
    label: str | None = None  # a name for a direction or an edit
    at: int | None = None
    edit: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, compare=False, hash=False)

    @property
    def name(self) -> str:
        where = f"@{self.at}" if self.at is not None else ""
        if self.kind == "head":
            return f"L{self.layer}H{self.index[0]}{where}"
        if self.kind == "neurons":
            return f"L{self.layer}.mlp[{','.join(map(str, self.index))}]{where}"
        if self.kind in ("direction", "edit"):
            return f"L{self.layer}.resid_post[{self.label or self.kind}]{where}"
        return f"L{self.layer}.{self.kind}{where}"

    def at_position(self, position: int) -> Component:
        """The same component restricted to one token position."""
        return Component(self.kind, self.layer, self.index, self.vector, self.label, int(position), self.edit)

    @property
    def site(self) -> str:
        """The site whose value this component owns (a slice of)."""
        return f"blocks.{self.layer}.{_SITE_OF[self.kind]}"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Component({self.name})"

    def __lt__(self, other: Component) -> bool:  # model order: by layer, attention before MLP
        return _order(self) < _order(other)


_SITE_OF = {"resid": "hook_resid_pre", "head": "attn.hook_z", "attn": "hook_attn_out", "mlp": "hook_mlp_out",
            "neurons": "mlp.hook_post", "direction": "hook_resid_post", "edit": "hook_resid_post"}
_RANK = {"resid": 0, "head": 1, "attn": 2, "neurons": 3, "mlp": 4, "direction": 5, "edit": 6}


def _order(c: Component) -> tuple:
    return (c.layer, _RANK[c.kind], c.index, c.label or "", -1 if c.at is None else c.at)


def Head(layer: int, head: int) -> Component:  # noqa: N802 - reads like a type at call sites
    return Component("head", layer, (head,))


def Attn(layer: int) -> Component:  # noqa: N802
    return Component("attn", layer)


def MLP(layer: int) -> Component:  # noqa: N802
    return Component("mlp", layer)


def Neurons(layer: int, neurons: list[int] | tuple[int, ...]) -> Component:  # noqa: N802
    return Component("neurons", layer, tuple(sorted(int(n) for n in neurons)))


def Resid(layer: int, at: int | None = None) -> Component:  # noqa: N802
    return Component("resid", layer, at=at)


def Direction(layer: int, vector: torch.Tensor, label: str = "direction") -> Component:  # noqa: N802
    vector = torch.as_tensor(vector).flatten()
    return Component("direction", layer, (), vector / vector.norm(), label)


def Edit(layer: int, matrix: torch.Tensor, mean: torch.Tensor, label: str = "edit") -> Component:  # noqa: N802
    """x -> x - matrix @ (x - mean) on block ``layer``'s output residual (e.g. a LEACE eraser)."""
    return Component("edit", layer, (), None, label, None, (torch.as_tensor(matrix), torch.as_tensor(mean).flatten()))


_PATTERN = re.compile(r"^L(\d+)(?:H(\d+)|\.(attn|mlp|resid)(?:\[([\d,\s]+)\])?)(?:@(\d+))?$")


def parse_component(text: str, shape: Shape | None = None) -> Component:
    """``L3H5``, ``L3.attn``, ``L3.mlp``, ``L3.mlp[7,12]``, ``L3.resid``, any with ``@pos`` -> a Component."""
    match = _PATTERN.match(text.strip())
    if not match:
        raise ComponentError(
            f"cannot read component {text!r}: write L<layer>H<head> (L3H5), L<layer>.attn, L<layer>.mlp, "
            "L<layer>.mlp[<neuron>,...] or L<layer>.resid, optionally @<position> (L3H5@7)"
        )
    layer, head, part, neurons, at = match.groups()
    if head is not None:
        component = Head(int(layer), int(head))
    elif neurons is not None:
        if part != "mlp":
            raise ComponentError(f"component {text!r}: only MLP neurons can be listed, as L{layer}.mlp[7,12]")
        component = Neurons(int(layer), [int(n) for n in neurons.split(",") if n.strip()])
    else:
        component = {"attn": Attn, "mlp": MLP, "resid": Resid}[part](int(layer))
    if at is not None:
        component = component.at_position(int(at))
    if shape is not None:
        check(component, shape)
    return component


def check(component: Component, shape: Shape) -> Component:
    if not 0 <= component.layer < shape.n_layers:
        raise ComponentError(f"component {component.name}: the model has layers 0..{shape.n_layers - 1}")
    if component.kind == "head" and not 0 <= component.index[0] < shape.n_heads:
        raise ComponentError(f"component {component.name}: the model has heads 0..{shape.n_heads - 1} per layer")
    if component.kind == "neurons" and (not component.index or max(component.index) >= shape.d_mlp):
        raise ComponentError(f"component {component.name}: MLP neurons run 0..{shape.d_mlp - 1}")
    if component.kind == "direction" and component.vector.numel() != shape.d_model:
        raise ComponentError(f"component {component.name}: a direction needs {shape.d_model} entries (d_model)")
    if component.kind == "edit" and tuple(component.edit[0].shape) != (shape.d_model, shape.d_model):
        raise ComponentError(f"component {component.name}: an edit needs a ({shape.d_model}, {shape.d_model}) matrix")
    if component.at is not None and component.at < 0:
        raise ComponentError(f"component {component.name}: positions count from 0")
    return component


def all_heads(shape: Shape, layers: list[int] | None = None) -> list[Component]:
    return [Head(l, h) for l in (layers if layers is not None else range(shape.n_layers)) for h in range(shape.n_heads)]


def all_mlps(shape: Shape, layers: list[int] | None = None) -> list[Component]:
    return [MLP(l) for l in (layers if layers is not None else range(shape.n_layers))]


def components_from(spec: str | list, shape: Shape) -> list[Component]:
    """A list of names, or one of the sets "heads", "mlps", "heads+mlps", "layers" (attn and mlp of each layer)."""
    if isinstance(spec, str):
        sets = {
            "heads": lambda: all_heads(shape),
            "mlps": lambda: all_mlps(shape),
            "heads+mlps": lambda: sorted(all_heads(shape) + all_mlps(shape)),
            "layers": lambda: sorted([Attn(l) for l in range(shape.n_layers)] + all_mlps(shape)),
        }
        if spec in sets:
            return sets[spec]()
        spec = [s for s in spec.split() if s]
    out = [c if isinstance(c, Component) else parse_component(str(c), shape) for c in spec]
    if not out:
        raise ComponentError("no components given: name some (L3H5 L4.mlp) or a set (heads, mlps, heads+mlps, layers)")
    return [check(c, shape) for c in out]
