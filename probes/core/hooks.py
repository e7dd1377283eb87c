"""Capture and intervene on named sites with PyTorch hooks on unmodified HF models: the functional forms
under the handle's ``lm.run_with_cache`` / ``lm.run_with_hooks`` / ``lm.hooks`` (``probes.core.model``).

    with capture(lm, ["blocks.*.hook_resid_post", "blocks.3.attn.hook_pattern"]) as cache:
        lm.model(**batch)
    cache["blocks.3.attn.hook_pattern"]        # (batch, head, query, key)

    with intervene(lm, {"blocks.2.attn.hook_z": lambda z: z * 0}):     # functions of the value alone
        logits = lm.model(**batch).logits

Every hook is removed when the ``with`` block ends, also when the forward
raises. Captured tensors stay on the model's device and dtype, detached.

Attention scores (``attn.hook_scores``) are computed inside the attention module's forward, where no module
hook reaches: while such a site is hooked, and only inside its ``with`` block, ``torch.nn.functional.softmax``
is a stand-in that hands the scores of the attention module running in this thread to its hooks (other
threads, and softmaxes outside a hooked module, pass through unchanged); the real softmax is back when the
last such block ends.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from probes.core.adapters import out_width, qkv_columns
from probes.core.cache import ActivationCache
from probes.core.sites import Site

if TYPE_CHECKING:  # the handle calls these functions; they only read its attributes
    from probes.core.model import LoadedModel

SiteFn = Callable[[Tensor], Tensor | None]  # sees the site's value; returns a replacement or None


class _Removable(Protocol):
    def remove(self) -> None: ...


class _Handles:
    """Several hook handles removed as one."""

    def __init__(self, *handles: _Removable) -> None:
        self.handles = handles

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def add_hook(lm: LoadedModel, site: Site, fn: SiteFn) -> _Handles:
    """Register ``fn`` on ``site``; a returned tensor replaces the site's value."""
    module = lm.module_for(site)
    kind = site.kind
    d_head = lm.shape.d_head
    extra: list[RemovableHandle] = []
    columns: Tensor | None = None  # q, k or v's columns of a fused projection's output, as (heads, d_head)
    if kind.part in ("q", "k", "v") and getattr(lm.adapter, kind.part) is None:
        width = out_width(module)
        config = lm.model.config
        columns = qkv_columns(lm.adapter, config, kind.part, lm.shape.n_heads, d_head, width)
    tokens: list[torch.Size] = []  # the block input's (batch, pos), where the MLP sees tokens flattened

    if kind.needs_eager:
        extra += _ask_for_weights(module)
    if kind.io == "softmax":
        return _Handles(*extra, _SoftmaxTap.on(module).add(site.name, fn))
    if kind.part in ("mlp", "mlp_out_proj", "mlp_write") and lm.adapter.mlp_flattens_tokens:
        assert site.layer is not None

        def record(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            tokens[:] = [(args[0] if args else kwargs["hidden_states"]).shape[:-1]]

        block = lm.base.get_submodule(lm.adapter.block(site.layer))
        extra.append(block.register_forward_pre_hook(record, with_kwargs=True))

    def to_site(value: Tensor) -> Tensor:
        if tokens and value.dim() == 2:  # OPT's MLP runs on (batch * pos, d)
            value = value.unflatten(0, tokens[0])
        if columns is not None:
            return value[..., columns.to(value.device)]
        return value.unflatten(-1, (-1, d_head)) if kind.per_head else value

    def from_site(value: Tensor) -> Tensor:
        value = value.flatten(-2) if kind.per_head else value
        return value.flatten(0, 1) if tokens and value.dim() == 3 else value

    if kind.io == "output":

        def output_hook(_module: torch.nn.Module, _args: Any, output: Any) -> Any:
            is_tuple = isinstance(output, tuple)
            value = output[kind.index] if is_tuple else output
            if value is None:
                raise RuntimeError(
                    f"{site.name}: the model returned no attention weights; load it with attn_implementation='eager'"
                )
            new = fn(to_site(value))
            if new is None:
                return None
            if not kind.writable:
                raise ValueError(f"site {site.name} can be read but not replaced")
            if columns is not None:  # rewrite only this site's columns of the fused output
                fused = value.clone()
                fused[..., columns.to(value.device)] = new.to(value.dtype)
                new = fused
            else:
                new = from_site(new)
            return output[: kind.index] + (new,) + output[kind.index + 1 :] if is_tuple else new

        return _Handles(*extra, module.register_forward_hook(output_hook))

    def on_input(value: Tensor) -> Tensor | None:
        new = fn(to_site(value))
        return None if new is None else from_site(new)

    return _Handles(*extra, on_input_of(module, on_input))


def on_input_of(module: torch.nn.Module, fn: SiteFn) -> RemovableHandle:
    """Register ``fn`` on the tensor a module takes first (positionally or as ``hidden_states``); a returned
    tensor replaces it. Sites are reached this way, and so are modules that are no site (a block's norms)."""

    def input_hook(_module: torch.nn.Module, args: tuple, kwargs: dict) -> Any:
        by_name = not args
        new = fn(kwargs["hidden_states"] if by_name else args[0])
        if new is None:
            return None
        if by_name:
            return args, {**kwargs, "hidden_states": new}
        return (new, *args[1:]), kwargs

    return module.register_forward_pre_hook(input_hook, with_kwargs=True)


_softmax = torch.nn.functional.softmax  # the real one, called by the tap's stand-in
_taps_lock = threading.RLock()  # guards the set of taps and the swap of softmax
_thread = threading.local()  # per thread: the attention modules now in their forward, and their softmax counts


def _running() -> list[_SoftmaxTap]:
    if not hasattr(_thread, "running"):
        _thread.running, _thread.calls = [], {}
    return _thread.running


def _calls() -> dict[int, int]:
    _running()
    return _thread.calls


class _SoftmaxTap:
    """Sees, and may replace, the input of the one softmax an attention module runs: its scores.

    Eager attention computes them inside the module (in a function, not a submodule), so no module hook
    reaches them. While at least one tap exists, ``torch.nn.functional.softmax`` is a stand-in that passes
    the input through the functions of the tap whose module is running in this thread, then calls the real
    softmax; it is the real one again once the last tap is removed. A module that runs no softmax or several
    is refused: its scores would be ambiguous.
    """

    taps: ClassVar[dict[int, _SoftmaxTap]] = {}  # by id(module)

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.fns: list[tuple[str, SiteFn]] = []
        self.handles = [module.register_forward_pre_hook(self._enter), module.register_forward_hook(self._leave)]

    @classmethod
    def on(cls, module: torch.nn.Module) -> _SoftmaxTap:
        with _taps_lock:
            if id(module) not in cls.taps:
                if not cls.taps:
                    torch.nn.functional.softmax = _tapped_softmax
                cls.taps[id(module)] = cls(module)
            return cls.taps[id(module)]

    def add(self, name: str, fn: SiteFn) -> _Removable:
        entry = (name, fn)
        with _taps_lock:
            self.fns.append(entry)
        return _Removal(partial(self._discard, entry))

    def _discard(self, entry: tuple[str, SiteFn]) -> None:
        with _taps_lock:
            if entry in self.fns:
                self.fns.remove(entry)
            if not self.fns:
                self._close()

    def _close(self) -> None:
        for handle in self.handles:
            handle.remove()
        type(self).taps.pop(id(self.module), None)
        _running()[:] = [tap for tap in _running() if tap is not self]
        if not type(self).taps:
            torch.nn.functional.softmax = _softmax

    def _enter(self, *_: Any) -> None:
        _calls()[id(self)] = 0
        _running().append(self)

    def _leave(self, *_: Any) -> None:
        running = _running()
        if running and running[-1] is self:
            running.pop()
        calls = _calls().pop(id(self), 0)
        if calls != 1:
            names = ", ".join(name for name, _ in self.fns)
            raise RuntimeError(
                f"{names}: the attention module ran {calls} softmaxes, not one, so its scores are ambiguous "
                "(load the model with attn_implementation='eager')"
            )

    def __call__(self, scores: Tensor) -> Tensor:
        _calls()[id(self)] = _calls().get(id(self), 0) + 1
        for _name, fn in self.fns:
            new = fn(scores)
            scores = scores if new is None else new.to(scores.dtype)
        return scores


class _Removal:
    def __init__(self, action: Callable[[], None]) -> None:
        self.remove = action


def _tapped_softmax(input: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    running = _running()
    return _softmax(running[-1](input) if running else input, *args, **kwargs)


def _ask_for_weights(attn: torch.nn.Module) -> list[RemovableHandle]:
    """Attention modules that return their weights only when asked (DeBERTa; Falcon, whose SDPA path returns
    none) are asked, whatever the caller passed."""
    try:
        signature = inspect.signature(attn.forward)
    except (TypeError, ValueError):
        return []
    if "output_attentions" not in signature.parameters:
        return []

    def ask(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        bound = signature.bind_partial(*args, **kwargs)
        bound.arguments["output_attentions"] = True
        return bound.args, bound.kwargs

    return [attn.register_forward_pre_hook(ask, with_kwargs=True)]


@contextmanager
def hooked(lm: LoadedModel, fns: Mapping[str, SiteFn]) -> Iterator[list[Site]]:
    """Register one function per site (names or glob patterns) for the duration of the block."""
    resolved: list[tuple[Site, SiteFn]] = []
    for pattern, fn in fns.items():
        resolved.extend((site, fn) for site in lm.resolve(pattern))
    with ExitStack() as stack:
        if any(site.kind.needs_eager for site, _ in resolved):
            stack.enter_context(eager_attention(lm))
        for site, fn in resolved:
            stack.callback(add_hook(lm, site, fn).remove)
        yield [site for site, _ in resolved]


@contextmanager
def eager_attention(lm: LoadedModel) -> Iterator[None]:
    """Attention weights exist only under eager attention: switch to it, then back."""
    config = lm.model.config
    before = config._attn_implementation
    if before == "eager":
        yield
        return
    if type(lm.model)._can_set_attn_implementation():
        lm.model.set_attn_implementation("eager")
        try:
            yield
        finally:
            lm.model.set_attn_implementation(before)
        return
    # Falcon reads the choice off its config at each forward but refuses set_attn_implementation; asked for
    # weights under SDPA it runs a path that adds the boolean mask as a number (no causal mask, other logits).
    config._attn_implementation_internal = "eager"
    try:
        if config._attn_implementation != "eager":
            raise RuntimeError(
                f"{lm.name}: cannot switch this {type(lm.model).__name__} to eager attention, which attention "
                "weights and scores need: load it with attn_implementation='eager'"
            )
        yield
    finally:
        config._attn_implementation_internal = before


@contextmanager
def capture(lm: LoadedModel, sites: str | list[str]) -> Iterator[dict[str, Tensor]]:
    """Record the named sites of every forward pass run inside the block.

    The dict fills in as the model runs; a site seen twice (two forwards) keeps
    the last value. Values are detached copies: some models edit a tensor in place after the site has
    seen it (Falcon adds attention's output into the MLP's), which a view would silently follow.
    """
    cache: dict[str, Tensor] = {}

    def recorder(name: str) -> SiteFn:
        def record(value: Tensor) -> None:
            cache[name] = value.detach().clone()

        return record

    names = [site.name for site in lm.resolve(sites)]
    with hooked(lm, {name: recorder(name) for name in names}):
        yield cache


@contextmanager
def intervene(lm: LoadedModel, edits: Mapping[str, SiteFn]) -> Iterator[None]:
    """Replace site values during every forward pass inside the block.

    Each function gets the site's value (per-head sites as (..., head, d_head))
    and returns the replacement, same shape, or None to leave it.
    """
    with hooked(lm, edits):
        yield


def run_with_cache(
    lm: LoadedModel,
    inputs: str | list[str] | Mapping[str, Tensor],
    sites: str | list[str],
    *,
    max_length: int | None = None,
    **forward_kwargs: Any,
) -> tuple[Any, ActivationCache]:
    """One forward pass over text (or an already-tokenised batch) with the sites captured: the model's whole
    output and an ``ActivationCache`` (``lm.run_with_cache`` returns the logits instead of the output)."""
    batch = lm.batch(inputs, max_length=max_length)
    with torch.inference_mode(), capture(lm, sites) as cache:
        output = lm.model(**batch, **forward_kwargs)
    return output, ActivationCache(cache, lm.shape.n_layers)
