"""The edge evaluator: one model's edges under one counterfactual, their exact values and gradient scores.

Each forward pass it runs is a method of its own (``checked_pass``, ``recomputed_pass``, ``circuit_pass``,
``recorded_pass``, ``gradient_pass``); the hooks of a pass are the methods of ``_EdgeForward``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from probes.causal.circuits.graph import FINAL_READOUTS, METHODS, CircuitError, Graph
from probes.causal.counterfactual import StopForward, example_index
from probes.causal.evaluator import Evaluator
from probes.causal.verification import Verification, checked_frame, pick_for_verification
from probes.core.adapters import out_width, qkv_columns
from probes.core.hooks import hooked, on_input_of


@dataclass
class EdgeScores:
    """Per-example edge scores (``per_example``: (examples, readers, writers), zero where no edge is)."""

    graph: Graph
    method: str
    per_example: np.ndarray
    steps: int = 1

    @cached_property
    def mean(self) -> np.ndarray:
        return self.per_example.mean(0)

    @classmethod
    def join(cls, parts: Sequence[EdgeScores]) -> EdgeScores:
        """Scores over the examples of every part, in order (parts over different batches of one evaluator)."""
        first = parts[0]
        return cls(first.graph, first.method, np.concatenate([p.per_example for p in parts]), first.steps)

    def order(self) -> np.ndarray:
        """Flat (reader * writers + writer) indices of every edge, largest |mean score| first."""
        r, u = self.graph.edge_names()
        flat = r * len(self.graph.writers) + u
        magnitude = np.abs(self.mean[r, u])
        return flat[np.argsort(-magnitude, kind="stable")]

    def circuit(self, k: int) -> np.ndarray:
        """(readers, writers) bool: the ``k`` edges with the largest |score|."""
        kept = np.zeros(self.graph.allowed.shape, dtype=bool)
        kept.flat[self.order()[:k]] = True
        return kept

    def frame(self) -> pd.DataFrame:
        """One row per edge, largest |estimate| first: writer, reader, the estimate of the edge's effect and its
        standard error over examples, and ``score`` (|estimate|, what edges are ranked by)."""
        g = self.graph
        r, u = g.edge_names()
        per = self.per_example[:, r, u]
        n = per.shape[0]
        frame = pd.DataFrame(
            {
                "edge": [f"{g.writers[j]}->{g.readers[i]}" for i, j in zip(r, u)],
                "writer": [g.writers[j] for j in u],
                "reader": [g.readers[i] for i in r],
                "estimate": per.mean(0),
                "stderr": per.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.nan,
            }
        )
        frame["score"] = frame["estimate"].abs()
        frame["method"] = self.method
        return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


@dataclass
class _EdgePass:
    """What one forward over one batch leaves: its score, and by mode the writes, the leaves or the inputs."""

    score: Tensor
    delta: Tensor | None = None  # (rows, T, writers, d_model): this run's writes minus the counterfactual ones
    writes: Tensor | None = None  # (rows, T, writers, d_model): this run's writes (the graph check)
    bias: dict[int, Tensor] = field(default_factory=dict)  # block -> its attention's bias write (rows, T, d)
    inputs: dict[int, Tensor] = field(default_factory=dict)  # reader -> its input (rows, T, d)
    leaves: dict[tuple[int, str], Tensor] = field(default_factory=dict)  # (block or -1, "q"/"k"/"v"/"mlp") -> leaf


class EdgeEvaluator:
    """Edges of one model under one counterfactual: circuits' exact values and edges' gradient scores.

    ``ev`` fixes the model, the behaviour (read at the final norm or the logits) and the counterfactual (its
    ablation kind, reference or patch source); every number here answers the question ``ev`` would.
    ``check``: compare the graph with the model's own residual stream on the first batch (a model whose
    row places its norms wrongly, or whose blocks are not what the graph assumes, is refused).
    """

    def __init__(self, ev: Evaluator, *, check: bool = True):
        lm = ev.lm
        adapter, config, base = lm.adapter, lm.model.config, lm.base
        name = f"{lm.name} ({adapter.name})"
        if not adapter.decomposes(config):
            raise CircuitError(f"{name} normalises after each add: its residual stream is no sum of writes to cut")
        if adapter.attn_write is not None:
            raise CircuitError(
                f"{name} normalises attention's output before the add, so its heads' writes do not add up: "
                "edges between heads need a model without post-attention norms"
            )
        if adapter.final_norm is None or adapter.mlp_in is None:
            raise CircuitError(f"{name}: its row names no final norm or MLP input (mlp_in) to cut the readers at")
        if ev.readout not in FINAL_READOUTS:
            raise CircuitError(
                f"circuits are traced to the logits; {ev.behaviour.name} reads {ev.readout} (use a behaviour read "
                "at the output: agreement, induction, pairs, loss)"
            )
        self.ev, self.lm = ev, lm
        shape = lm.shape
        self.graph = Graph(shape.n_layers, shape.n_heads, shape.n_kv_heads, adapter.parallel)
        L = shape.n_layers
        self._ln1 = [_module(base, adapter.reader_path("ln1", l, base)) for l in range(L)]
        if adapter.ln1 is not None and any(m is None for m in self._ln1):
            raise CircuitError(f"{name}: no module {adapter.ln1!r} in its blocks (the row's ln1)")
        mlp_in = [_module(base, adapter.reader_path("mlp_in", l, base)) for l in range(L)]
        if any(m is None for m in mlp_in):
            raise CircuitError(f"{name}: no module {adapter.mlp_in!r} in its blocks (the row's mlp_in)")
        self._mlp_in: list[torch.nn.Module] = [m for m in mlp_in if m is not None]
        self._final = base.get_submodule(adapter.final_norm)
        self._o_proj = [base.get_submodule(adapter.path("attn_out_proj", l)) for l in range(L)]
        self._scale = adapter.write_scale(config)
        self._proj: dict[str, list[torch.nn.Module]] = {}
        self._columns: dict[str, Tensor] = {}
        for which in "qkv":
            self._proj[which] = [lm.module_for(lm.resolve(f"blocks.{l}.attn.hook_{which}")[0]) for l in range(L)]
            width = out_width(self._proj[which][0])
            n = shape.n_heads if which == "q" else shape.n_kv_heads
            if getattr(adapter, which) is None:  # one fused projection: its columns by the row's layout
                self._columns[which] = qkv_columns(adapter, config, which, shape.n_heads, shape.d_head, width)
            else:
                self._columns[which] = torch.arange(n * shape.d_head).view(n, shape.d_head)
        writers = self.graph.writer_components()
        if ev.ablation.needs_source:
            have = set(ev.source[0]) if ev.source else set()
            missing = sorted({c.site for c in writers} - have)
            if missing:
                raise CircuitError(
                    f"the patch source has no values for {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}: "
                    "build it with patch_evaluator(..., components=Graph.writer_components())"
                )
        else:
            ev._cover_sites({c.site for c in writers})
        if check:
            self.check()

    # --- the forward ----------------------------------------------------------------------------------------

    def _head_writes(self, layer: int, z: Tensor) -> Tensor:
        """(rows, T, heads, d_model): each head's write of ``z`` (per head, bias left out) into the residual."""
        H = z.shape[-2]
        eye = torch.eye(H, dtype=z.dtype, device=z.device)
        spread = (z[..., :, None, :] * eye[:, :, None]).flatten(-2)  # head h's z in its own columns only
        o_proj = self._o_proj[layer]
        zero = o_proj.forward(torch.zeros_like(spread[..., :1, :]))
        return (o_proj.forward(spread) - zero) * self._scale

    def _recompute(self, which: str, layer: int, x: Tensor, shift: Tensor) -> Tensor:
        """(rows, T, heads, d_head): the projection ``which`` of each head computed from its own input ``x + shift``
        (``shift``: (rows, T, heads, d_model)), through the block's first norm."""
        inputs = x[:, :, None, :] + shift
        norm = self._ln1[layer]
        normed = norm.forward(inputs) if norm is not None else inputs
        out = self._proj[which][layer].forward(normed)  # (rows, T, heads, width)
        columns = self._columns[which].to(out.device)
        index = columns[None, None].expand(*out.shape[:2], *columns.shape)
        return out.gather(-1, index)

    # --- the forward passes: one method each, on one batch ------------------------------------------------------

    def checked_pass(self, index: int = 0) -> _EdgePass:
        """The writes themselves and every reader's input, beside the writes minus their counterfactual ones: what
        ``check`` compares."""
        return _EdgeForward(self, index, _Mode(keep_delta=True, checking=True)).run()

    def recomputed_pass(self, index: int = 0) -> _EdgePass:
        """Every head's q, k and v recomputed from its own input though nothing is removed: the check of that path."""
        return _EdgeForward(self, index, _Mode(force=True)).run()

    def circuit_pass(self, index: int, removed: Tensor) -> _EdgePass:
        """The behaviour with the edges ``removed`` ((readers, writers), 1 = removed) cut, every other kept."""
        return _EdgeForward(self, index, _Mode(keep_delta=True, removed=removed)).run()

    def recorded_pass(self, index: int) -> _EdgePass:
        """The clean run, keeping each writer's write minus its counterfactual write (what EAP multiplies)."""
        return _EdgeForward(self, index, _Mode(keep_delta=True)).run()

    def gradient_pass(self, index: int, alpha: float | None = None) -> _EdgePass:
        """A zero leaf added to every reader's input, for its gradient; with ``alpha`` the embeddings at
        ``counterfactual + alpha (clean - counterfactual)`` (EAP-IG's points)."""
        return _EdgeForward(self, index, _Mode(grads=True, alpha=alpha)).run()

    # --- checks, exact values, scores -----------------------------------------------------------------------

    def check(self, rtol: float = 1e-3) -> None:
        """On the first batch: every reader's input equals the sum of its writers' writes (plus attention biases),
        and recomputing every head's q, k and v from its own input gives the model's own behaviour."""
        g, ev = self.graph, self.ev
        run = self.checked_pass(0)
        assert run.writes is not None
        allowed = torch.as_tensor(g.allowed, device=run.writes.device)
        for reader, actual in run.inputs.items():
            layer = min(reader // g.per_block, g.n_layers)
            biases = [run.bias[l] for l in range(layer) if l in run.bias]
            if reader < g.logits and reader == g.reader(layer) and not g.parallel and layer in run.bias:
                biases.append(run.bias[layer])  # a sequential MLP reads its own attention's bias too
            expected = torch.matmul(allowed[reader].to(run.writes.dtype), run.writes) + sum(
                biases, torch.zeros_like(actual)
            )
            scale = actual.abs().max().clamp(min=1e-6)
            if (expected - actual).abs().max() > rtol * scale:
                raise CircuitError(
                    f"{self.lm.name}: the input of {g.readers[reader]} is not the sum of its writers' writes (off by "
                    f"{float((expected - actual).abs().max() / scale):.1e} of its size): the graph does not match "
                    f"this {self.lm.adapter.name} model's blocks (parallel={g.parallel}) or its row's norms"
                )
        forced = self.recomputed_pass(0).score.double().cpu().numpy()
        clean = ev.clean[: len(forced)]
        if not np.allclose(forced, clean, rtol=rtol, atol=rtol * max(1.0, float(np.abs(clean).max()))):
            raise CircuitError(
                f"{self.lm.name}: recomputing q, k and v from the row's norm ({self.lm.adapter.ln1}) does not give the "
                f"model's own behaviour (largest gap {float(np.abs(forced - clean).max()):.3g}): check ln1 in its row"
            )

    def values(self, removed: Sequence[np.ndarray]) -> np.ndarray:
        """(len(removed), n_examples): the behaviour with each set of edges removed ((readers, writers) bool)."""
        g = self.graph
        out = []
        for mask in removed:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != g.allowed.shape:
                raise CircuitError(f"an edge mask is (readers, writers) = {g.allowed.shape}, got {mask.shape}")
            ablated = torch.as_tensor(mask & g.allowed, device=self.lm.device)
            scores = [
                self.circuit_pass(index, ablated).score.double().cpu().numpy() for index in range(len(self.ev.batches))
            ]
            out.append(np.concatenate(scores))
        return np.stack(out) if out else np.zeros((0, self.ev.n_examples))

    def circuit_values(self, kept: Sequence[np.ndarray]) -> np.ndarray:
        """(len(kept), n_examples): the behaviour of each circuit (the edges kept; every other edge removed)."""
        return self.values([self.graph.allowed & ~np.asarray(k, dtype=bool) for k in kept])

    def scores(
        self, method: str = "eap", *, steps: int = 5, batches: Sequence[int] | None = None, progress: bool = False
    ) -> EdgeScores:
        """Every edge's first-order effect (EAP), or averaged over ``steps`` points from the counterfactual to the
        clean input (EAP-IG); on the examples of the batches ``batches`` (default: all), in that order."""
        if method not in METHODS:
            raise CircuitError(f"unknown edge attribution method {method!r}: choose one of {', '.join(METHODS)}")
        if steps < 1:
            raise CircuitError(f"EAP-IG needs at least one step, got {steps}")
        from tqdm.auto import tqdm

        g = self.graph
        alphas = [None] if method == "eap" else [(k + 0.5) / steps for k in range(steps)]
        per_batch = []
        indices = range(len(self.ev.batches)) if batches is None else batches
        with tqdm(total=len(indices) * len(alphas), desc=method, unit="pass", disable=not progress) as bar:
            for index in indices:
                clean = self.recorded_pass(index)
                assert clean.delta is not None
                change = -clean.delta  # counterfactual write minus clean write
                summed: dict[tuple[int, str], Tensor] = {}
                for alpha in alphas:
                    run = self.gradient_pass(index, alpha)
                    keys = list(run.leaves)
                    got = torch.autograd.grad(run.score.sum(), [run.leaves[k] for k in keys], allow_unused=True)
                    for key, grad in zip(keys, got):
                        grad = torch.zeros_like(run.leaves[key]) if grad is None else grad.detach()
                        summed[key] = summed[key] + grad if key in summed else grad
                    bar.update(1)
                per_batch.append(self._contract(index, change, summed, len(alphas)))
        return EdgeScores(g, method, np.concatenate(per_batch), steps=len(alphas))

    def _contract(self, index: int, change: Tensor, grads: dict[tuple[int, str], Tensor], n: int) -> np.ndarray:
        """(examples, readers, writers): per example, the sum over its tokens of change_u . mean gradient_r."""
        g = self.graph
        batch = self.ev.batches[index]
        rows, T, U, d = change.shape
        local, inside = example_index(batch.example_ids, batch.n_examples, rows, T, change.device)
        flat_change = change.reshape(rows * T, U, d)
        out = np.zeros((batch.n_examples, len(g.readers), U))

        def add(readers: list[int], gradient: Tensor, end: int) -> None:
            grad = (gradient / n).reshape(rows * T, len(readers), d)  # (tokens, readers, d)
            per_token = torch.matmul(flat_change[:, :end], grad.transpose(1, 2))  # (tokens, writers, readers)
            per_token = per_token.double() * inside[:, None, None]
            summed = torch.zeros(batch.n_examples, end, len(readers), dtype=torch.float64, device=change.device)
            summed.index_add_(0, local, per_token)
            out[:, readers, :end] = summed.transpose(1, 2).cpu().numpy()

        for l in range(g.n_layers):
            parts, readers = [], []
            for which, count in (("q", g.n_heads), ("k", g.n_kv_heads), ("v", g.n_kv_heads)):
                parts.append(grads[(l, which)])
                readers += [g.reader(l, which, h) for h in range(count)]
            parts.append(grads[(l, "mlp")][:, :, None])
            readers.append(g.reader(l))
            add(readers, torch.cat(parts, 2), g.before(l))
        add([g.logits], grads[(-1, "mlp")][:, :, None], U)
        return out * g.allowed[None]


def verify_edges(
    edges: EdgeEvaluator, frame: pd.DataFrame, *, top: int = 10, sample: int = 20, seed: int = 0
) -> Verification:
    """Remove the ``top`` edges by score and a random ``sample`` of the others one at a time, exactly, and compare
    their effects with the estimates (``frame``: ``EdgeScores.frame()``)."""
    chosen, sampled = pick_for_verification(frame["score"].to_numpy(), top, sample, seed)
    names = frame["edge"].to_numpy()
    effects = edges.values([edges.graph.mask([names[i]]) for i in chosen + sampled]) - edges.ev.clean[None]
    picked = frame[["writer", "reader", "estimate", "score"]].assign(component=frame["edge"])
    return Verification.of(checked_frame(picked, chosen, sampled, effects))


def _module(base: torch.nn.Module, path: str | None) -> torch.nn.Module | None:
    return None if path is None else base.get_submodule(path)


@dataclass(frozen=True)
class _Mode:
    """What one forward pass keeps and changes (each ``EdgeEvaluator`` pass sets its own)."""

    keep_delta: bool = False  # keep every write minus its counterfactual write
    checking: bool = False  # ... and the writes themselves and every reader's input
    removed: Tensor | None = None  # (readers, writers), 1 = the edge is cut
    grads: bool = False  # a zero leaf on every reader's input, for its gradient
    alpha: float | None = None  # the embeddings at cf + alpha (clean - cf)
    force: bool = False  # recompute q, k, v from each head's own input even where nothing is cut


class _EdgeForward:
    """One forward over one batch with the hooks of one ``_Mode``: each hook a method, reading and filling ``out``."""

    def __init__(self, edges: EdgeEvaluator, index: int, mode: _Mode):
        self.edges, self.mode = edges, mode
        self.g = edges.graph
        self.batch = edges.ev.batches[index]
        self.counterfactual = edges.ev.counterfactual(index)
        self.out = _EdgePass(score=torch.zeros(0))
        self.x_in: dict[int, Tensor] = {}
        self.touched = [mode.force] * self.g.n_layers
        if mode.removed is not None:
            per = self.g.per_block
            for l in range(self.g.n_layers):
                self.touched[l] = self.touched[l] or bool(mode.removed[l * per : (l + 1) * per].any())

    def remove(self, rows: slice | int, layer_end: int) -> Tensor | None:
        """Sum over removed writers of (write - counterfactual write), per reader in ``rows``."""
        removed, delta = self.mode.removed, self.out.delta
        if removed is None or delta is None:
            return None
        mask = removed[rows, :layer_end]
        if not mask.any():
            return None
        return torch.matmul(mask.to(delta.dtype), delta[:, :, :layer_end])  # (rows, T, readers, d) or (rows, T, d)

    def block_input(self, layer: int) -> Callable[[Tensor], Tensor | None]:
        g, out, mode = self.g, self.out, self.mode

        def fn(value: Tensor) -> Tensor | None:
            new = None
            if layer == 0:
                cf = self.counterfactual.replacement("blocks.0.hook_resid_pre", value)
                if mode.alpha is not None:
                    new = cf + mode.alpha * (value - cf)
                    value = new
                if mode.keep_delta:
                    out.delta = value.new_zeros(*value.shape[:2], len(g.writers), value.shape[-1])
                    out.delta[:, :, 0] = value - cf
                    if mode.checking:
                        out.writes = torch.zeros_like(out.delta)
                        out.writes[:, :, 0] = value
            self.x_in[layer] = value
            if mode.checking:
                for which, n in (("q", g.n_heads), ("k", g.n_kv_heads), ("v", g.n_kv_heads)):
                    for h in range(n):
                        out.inputs[g.reader(layer, which, h)] = value.detach()
            return new

        return fn

    def head_input(self, which: str, layer: int) -> Callable[[Tensor], Tensor | None]:
        g, out = self.g, self.out
        n = g.n_heads if which == "q" else g.n_kv_heads
        first = g.reader(layer, which, 0)

        def fn(value: Tensor) -> Tensor | None:
            x = self.x_in[layer]
            if self.mode.grads:
                leaf = torch.zeros(*value.shape[:2], n, x.shape[-1], dtype=value.dtype, device=value.device)
                leaf.requires_grad_(True)
                out.leaves[(layer, which)] = leaf
                return self.edges._recompute(which, layer, x, leaf)
            if not self.touched[layer]:
                return None
            shift = self.remove(slice(first, first + n), g.before(layer))
            shift = torch.zeros_like(x)[:, :, None].expand(-1, -1, n, -1) if shift is None else -shift
            return self.edges._recompute(which, layer, x, shift)

        return fn

    def heads_written(self, layer: int) -> Callable[[Tensor], None]:
        site, first, out = f"blocks.{layer}.attn.hook_z", self.g.writer(layer, 0), self.out
        H = self.g.n_heads

        def fn(value: Tensor) -> None:
            if self.mode.keep_delta and out.delta is not None:
                cf = self.counterfactual.replacement(site, value)
                out.delta[:, :, first : first + H] = self.edges._head_writes(layer, value - cf)
                if self.mode.checking and out.writes is not None:
                    out.writes[:, :, first : first + H] = self.edges._head_writes(layer, value)

        return fn

    def attn_written(self, layer: int) -> Callable[[Tensor], None]:
        out, H = self.out, self.g.n_heads

        def fn(value: Tensor) -> None:
            if self.mode.checking and out.writes is not None:
                first = self.g.writer(layer, 0)
                out.bias[layer] = value * self.edges._scale - out.writes[:, :, first : first + H].sum(2)

        return fn

    def mlp_written(self, layer: int) -> Callable[[Tensor], None]:
        site, out, scale = f"blocks.{layer}.hook_mlp_out", self.out, self.edges._scale

        def fn(value: Tensor) -> None:
            if self.mode.keep_delta and out.delta is not None:
                out.delta[:, :, self.g.writer(layer)] = (value - self.counterfactual.replacement(site, value)) * scale
                if self.mode.checking and out.writes is not None:
                    out.writes[:, :, self.g.writer(layer)] = value * scale

        return fn

    def module_input(self, reader: int, key: tuple[int, str], layer_end: int) -> Callable[[Tensor], Tensor | None]:
        out = self.out

        def fn(value: Tensor) -> Tensor | None:
            shape = value.shape
            if self.mode.checking:
                out.inputs[reader] = value.detach().reshape(*self.x_in[0].shape)
            if self.mode.grads:
                leaf = torch.zeros(self.x_in[0].shape, dtype=value.dtype, device=value.device, requires_grad=True)
                out.leaves[key] = leaf
                return value + leaf.reshape(shape)
            shift = self.remove(reader, layer_end)
            return None if shift is None else value - shift.reshape(shape)

        return fn

    def run(self) -> _EdgePass:
        edges, g, ev = self.edges, self.g, self.edges.ev
        got: dict[str, Tensor] = {}

        def readout(value: Tensor) -> None:
            got["value"] = value
            raise StopForward

        fns: dict[str, Callable] = {}
        for l in range(g.n_layers):
            fns[f"blocks.{l}.hook_resid_pre"] = self.block_input(l)
            for which in "qkv":
                fns[f"blocks.{l}.attn.hook_{which}"] = self.head_input(which, l)
            fns[f"blocks.{l}.attn.hook_z"] = self.heads_written(l)
            fns[f"blocks.{l}.hook_attn_out"] = self.attn_written(l)
            fns[f"blocks.{l}.hook_mlp_out"] = self.mlp_written(l)
        with ExitStack() as stack:
            stack.enter_context(torch.enable_grad() if self.mode.grads else torch.inference_mode())
            stack.enter_context(hooked(edges.lm, fns))
            for l, module in enumerate(edges._mlp_in):
                stack.callback(on_input_of(module, self.module_input(g.reader(l), (l, "mlp"), g.writer(l))).remove)
            final = self.module_input(g.logits, (-1, "mlp"), len(g.writers))
            stack.callback(on_input_of(edges._final, final).remove)
            stack.enter_context(hooked(edges.lm, {ev.readout: readout}))
            try:
                edges.lm.model(**self.batch.inputs)
            except StopForward:
                pass
            self.out.score = ev.behaviour.score(edges.lm, got["value"].to(edges.lm.device), self.batch)
        return self.out
