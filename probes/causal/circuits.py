"""Edges and circuits: edge attribution patching (EAP, EAP-IG) and circuits measured exactly.

    ev = Evaluator(lm, MinimalPairs(pairs), kind="mean")      # or patch_evaluator(...): clean and corrupted runs
    edges = EdgeEvaluator(ev)                                  # checks its graph against the model's own residual
    scores = edges.scores("eap-ig", steps=5)                   # one score per edge, per example
    curve = faithfulness_curve(edges, scores)                  # top-k circuits measured exactly, and random ones
    curve.smallest_share(0.8)                                  # (share of edges, CI low, CI high)

**The graph.** Writers put a vector into the residual stream: the input (the embeddings, what block 0 reads),
every head (its output through its slice of the out-projection) and every MLP. Readers take the residual
stream: every head's query, every key-value head's key and value (through the block's first norm), every MLP
(through its norm) and the logits (through the final norm). An edge joins a writer to each reader after it:
a head of block l feeds block l's MLP in sequential blocks, not in parallel ones (GPT-J, GPT-NeoX, Falcon).
Every reader's input is the sum of its writers' writes (and attention biases, which no counterfactual
moves); ``EdgeEvaluator`` checks that sum against the model's own inputs before it scores anything.

**Removing an edge** (u -> r) replaces, in r's input only, u's write by its counterfactual write: zero, the
mean, a resampled or a patched value, exactly as the ``Evaluator`` ablates u. A circuit keeps some edges and
removes the rest: each reader reads ``x - sum over removed u of (w_u - w_u')``, with ``w_u`` the write of
this (changed) run and ``w_u'`` the counterfactual one, so a removal reaches everything downstream. On an
unmodified HF model the reader's input is changed where it enters: the first norm is run again on each
head's own input and its projection's columns replace ``hook_q`` / ``hook_k`` / ``hook_v``; the MLP's and the
final norm's inputs are replaced by a hook on the module that takes them (the row's ``mlp_in``).

**Scores.** EAP (Syed et al. 2023): an edge's effect to first order, ``(w_u' - w_u) . d metric / d x_r`` at
the clean run, where ``x_r`` is r's input; one forward and one backward pass for every edge. EAP-IG (Hanna et
al. 2024) averages the gradient over ``steps`` points between the counterfactual and the clean input (the
embeddings interpolated, midpoint rule). A writer's edge scores sum to its AtP node score: the residual
stream it writes into is read by its readers only.

**Faithfulness** of a circuit C: ``(m(C) - m(empty)) / (m(full) - m(empty))``, of mean behaviour values,
each measured exactly: the full circuit is the model (1), the empty one has every edge removed (0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from analysis.errors import ProbesError
from probes.causal.attribution import Verification, checked_frame, pick_for_verification
from probes.causal.components import MLP, Component, Head, Resid
from probes.causal.counterfactual import StopForward, example_index
from probes.causal.evaluator import Evaluator
from probes.core.adapters import out_width, qkv_columns
from probes.core.hooks import hooked, on_input_of

METHODS = ("eap", "eap-ig")
FINAL_READOUTS = ("ln_final.hook_normalized", "hook_logits")


class CircuitError(ProbesError, ValueError):
    """Edges or circuits that cannot be measured as asked."""


@dataclass(frozen=True)
class Graph:
    """The writers, readers and edges of one model (see the module's docstring).

    Writers: ``input``, then per block its heads ``L{l}H{h}`` and ``L{l}.mlp``. Readers: per block each head's
    ``L{l}H{h}.q``, each key-value head's ``L{l}H{g}.k`` and ``.v``, and ``L{l}.mlp``; last ``logits``.
    """

    n_layers: int
    n_heads: int
    n_kv_heads: int
    parallel: bool

    @property
    def per_block(self) -> int:
        """Readers per block."""
        return self.n_heads + 2 * self.n_kv_heads + 1

    def writer(self, layer: int, head: int | None = None) -> int:
        """Index of a head's writer (``head`` given) or of the block's MLP."""
        return 1 + layer * (self.n_heads + 1) + (self.n_heads if head is None else head)

    def reader(self, layer: int, which: str = "mlp", head: int = 0) -> int:
        """Index of a reader: ``which`` "q", "k", "v" (with ``head``) or "mlp" of block ``layer``."""
        H, G = self.n_heads, self.n_kv_heads
        offset = {"q": 0, "k": H, "v": H + G, "mlp": H + 2 * G}[which]
        return layer * self.per_block + offset + head

    @property
    def logits(self) -> int:
        return self.n_layers * self.per_block

    def before(self, layer: int) -> int:
        """Writers that can feed block ``layer``'s readers: the input and everything up to its own heads."""
        return self.writer(layer, 0) + self.n_heads

    @cached_property
    def writers(self) -> list[str]:
        names = ["input"]
        for l in range(self.n_layers):
            names += [f"L{l}H{h}" for h in range(self.n_heads)] + [f"L{l}.mlp"]
        return names

    @cached_property
    def readers(self) -> list[str]:
        names = []
        for l in range(self.n_layers):
            names += [f"L{l}H{h}.q" for h in range(self.n_heads)]
            names += [f"L{l}H{g}.{w}" for w in "kv" for g in range(self.n_kv_heads)]
            names.append(f"L{l}.mlp")
        return names + ["logits"]

    @cached_property
    def allowed(self) -> np.ndarray:
        """(readers, writers) bool: which edges exist."""
        R, U = len(self.readers), len(self.writers)
        out = np.zeros((R, U), dtype=bool)
        out[:, 0] = True  # the input feeds everything
        for l in range(self.n_layers):
            heads = slice(self.writer(l, 0), self.writer(l, 0) + self.n_heads)
            later = slice((l + 1) * self.per_block, R)
            out[later, heads] = True
            out[later, self.writer(l)] = True
            if not self.parallel:  # a sequential block's MLP reads its own attention's output
                out[self.reader(l), heads] = True
        return out

    @property
    def n_edges(self) -> int:
        return int(self.allowed.sum())

    def writer_components(self) -> list[Component]:
        """The writers as components: what an ``Evaluator`` ablates (and a patch source must capture) for them."""
        out: list[Component] = [Resid(0)]
        for l in range(self.n_layers):
            out += [Head(l, h) for h in range(self.n_heads)] + [MLP(l)]
        return out

    def edge_names(self) -> tuple[np.ndarray, np.ndarray]:
        """(reader, writer) indices of every edge, in reader-major order."""
        r, u = np.nonzero(self.allowed)
        return r, u

    def mask(self, edges: Sequence[str]) -> np.ndarray:
        """(readers, writers) bool of the named edges ("L0H1->L2H3.k")."""
        readers = {name: i for i, name in enumerate(self.readers)}
        writers = {name: j for j, name in enumerate(self.writers)}
        out = np.zeros(self.allowed.shape, dtype=bool)
        for edge in edges:
            writer, _, reader = edge.partition("->")
            if writer not in writers or reader not in readers or not self.allowed[readers[reader], writers[writer]]:
                raise CircuitError(f"no edge {edge!r} in this model's graph (write it as L0H1->L2H3.k)")
            out[readers[reader], writers[writer]] = True
        return out


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

    def _run(
        self,
        index: int,
        *,
        ablated: Tensor | None = None,
        grads: bool = False,
        alpha: float | None = None,
        record: bool = False,
        checking: bool = False,
        force: bool = False,
    ) -> _EdgePass:
        """One forward over batch ``index``. ``record``: keep this run's writes minus the counterfactual ones;
        ``checking``: the writes themselves and every reader's input too (``check``); ``ablated`` ((readers,
        writers), 1 = removed): the circuit that keeps the other edges; ``grads``: a zero leaf added to every
        reader's input, for its gradient; ``alpha``: the embeddings at ``cf + alpha (clean - cf)``; ``force``:
        recompute every head's q, k, v from its own input even where nothing is removed (the check of that
        path)."""
        ev, g = self.ev, self.graph
        batch = ev.batches[index]
        counterfactual = ev.counterfactual(index)
        H, G = g.n_heads, g.n_kv_heads
        keep_delta = record or checking or ablated is not None
        out = _EdgePass(score=torch.zeros(0))
        x_in: dict[int, Tensor] = {}
        touched = [force] * g.n_layers
        if ablated is not None:
            for l in range(g.n_layers):
                touched[l] = touched[l] or bool(ablated[l * g.per_block : (l + 1) * g.per_block].any())

        def remove(rows: slice | int, layer_end: int) -> Tensor | None:
            """Sum over removed writers of (write - counterfactual write), per reader in ``rows``."""
            if ablated is None or out.delta is None:
                return None
            mask = ablated[rows, :layer_end]
            if not mask.any():
                return None
            delta = out.delta[:, :, :layer_end]
            return torch.matmul(mask.to(delta.dtype), delta)  # (rows, T, readers, d) or (rows, T, d)

        def block_input(layer: int) -> Callable[[Tensor], Tensor | None]:
            def fn(value: Tensor) -> Tensor | None:
                new = None
                if layer == 0:
                    cf = counterfactual.replacement("blocks.0.hook_resid_pre", value)
                    if alpha is not None:
                        new = cf + alpha * (value - cf)
                        value = new
                    if keep_delta:
                        out.delta = value.new_zeros(*value.shape[:2], len(g.writers), value.shape[-1])
                        out.delta[:, :, 0] = value - cf
                        if checking:
                            out.writes = torch.zeros_like(out.delta)
                            out.writes[:, :, 0] = value
                x_in[layer] = value
                if checking:
                    for which, n in (("q", H), ("k", G), ("v", G)):
                        for h in range(n):
                            out.inputs[g.reader(layer, which, h)] = value.detach()
                return new

            return fn

        def head_input(which: str, layer: int) -> Callable[[Tensor], Tensor | None]:
            n = H if which == "q" else G
            first = g.reader(layer, which, 0)

            def fn(value: Tensor) -> Tensor | None:
                if grads:
                    leaf = torch.zeros(
                        *value.shape[:2], n, x_in[layer].shape[-1], dtype=value.dtype, device=value.device
                    )
                    leaf.requires_grad_(True)
                    out.leaves[(layer, which)] = leaf
                    return self._recompute(which, layer, x_in[layer], leaf)
                if not touched[layer]:
                    return None
                shift = remove(slice(first, first + n), g.before(layer))
                shift = torch.zeros_like(x_in[layer])[:, :, None].expand(-1, -1, n, -1) if shift is None else -shift
                return self._recompute(which, layer, x_in[layer], shift)

            return fn

        def heads_written(layer: int) -> Callable[[Tensor], None]:
            site = f"blocks.{layer}.attn.hook_z"
            first = g.writer(layer, 0)

            def fn(value: Tensor) -> None:
                if keep_delta and out.delta is not None:
                    cf = counterfactual.replacement(site, value)
                    out.delta[:, :, first : first + H] = self._head_writes(layer, value - cf)
                    if checking and out.writes is not None:
                        out.writes[:, :, first : first + H] = self._head_writes(layer, value)

            return fn

        def attn_written(layer: int) -> Callable[[Tensor], None]:
            def fn(value: Tensor) -> None:
                if checking and out.writes is not None:
                    first = g.writer(layer, 0)
                    out.bias[layer] = value * self._scale - out.writes[:, :, first : first + H].sum(2)

            return fn

        def mlp_written(layer: int) -> Callable[[Tensor], None]:
            site = f"blocks.{layer}.hook_mlp_out"

            def fn(value: Tensor) -> None:
                if keep_delta and out.delta is not None:
                    out.delta[:, :, g.writer(layer)] = (value - counterfactual.replacement(site, value)) * self._scale
                    if checking and out.writes is not None:
                        out.writes[:, :, g.writer(layer)] = value * self._scale

            return fn

        def module_input(reader: int, key: tuple[int, str], layer_end: int) -> Callable[[Tensor], Tensor | None]:
            def fn(value: Tensor) -> Tensor | None:
                shape = value.shape
                if checking:
                    out.inputs[reader] = value.detach().reshape(*x_in[0].shape)
                if grads:
                    leaf = torch.zeros(x_in[0].shape, dtype=value.dtype, device=value.device, requires_grad=True)
                    out.leaves[key] = leaf
                    return value + leaf.reshape(shape)
                shift = remove(reader, layer_end)
                return None if shift is None else value - shift.reshape(shape)

            return fn

        got: dict[str, Tensor] = {}

        def readout(value: Tensor) -> None:
            got["value"] = value
            raise StopForward

        fns: dict[str, Callable] = {}
        for l in range(g.n_layers):
            fns[f"blocks.{l}.hook_resid_pre"] = block_input(l)
            for which in "qkv":
                fns[f"blocks.{l}.attn.hook_{which}"] = head_input(which, l)
            fns[f"blocks.{l}.attn.hook_z"] = heads_written(l)
            fns[f"blocks.{l}.hook_attn_out"] = attn_written(l)
            fns[f"blocks.{l}.hook_mlp_out"] = mlp_written(l)
        with ExitStack() as stack:
            stack.enter_context(torch.enable_grad() if grads else torch.inference_mode())
            stack.enter_context(hooked(self.lm, fns))
            for l, module in enumerate(self._mlp_in):
                reader = module_input(g.reader(l), (l, "mlp"), g.writer(l))
                stack.callback(on_input_of(module, reader).remove)
            final = module_input(g.logits, (-1, "mlp"), len(g.writers))
            stack.callback(on_input_of(self._final, final).remove)
            stack.enter_context(hooked(self.lm, {ev.readout: readout}))
            try:
                self.lm.model(**batch.inputs)
            except StopForward:
                pass
            out.score = ev.behaviour.score(self.lm, got["value"].to(self.lm.device), batch)
        return out

    # --- checks, exact values, scores -----------------------------------------------------------------------

    def check(self, rtol: float = 1e-3) -> None:
        """On the first batch: every reader's input equals the sum of its writers' writes (plus attention biases),
        and recomputing every head's q, k and v from its own input gives the model's own behaviour."""
        g, ev = self.graph, self.ev
        run = self._run(0, checking=True)
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
        forced = self._run(0, force=True).score.double().cpu().numpy()
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
                self._run(index, ablated=ablated).score.double().cpu().numpy() for index in range(len(self.ev.batches))
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
                clean = self._run(index, record=True)
                assert clean.delta is not None
                change = -clean.delta  # counterfactual write minus clean write
                summed: dict[tuple[int, str], Tensor] = {}
                for alpha in alphas:
                    run = self._run(index, grads=True, alpha=alpha)
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


# --- faithfulness ---------------------------------------------------------------------------------------------


@dataclass
class FaithfulnessCurve:
    """Circuits of growing size measured exactly: the top-k edges by score, and random edge sets of each size.

    ``top``: (sizes, examples) behaviour values of the top-k circuits; ``random``: (grid sizes, draws, examples);
    ``full`` and ``empty``: (examples,) the model and every edge removed.
    """

    sizes: list[int]
    n_edges: int
    top: np.ndarray
    random_sizes: list[int]
    random: np.ndarray
    full: np.ndarray
    empty: np.ndarray
    method: str = ""

    @staticmethod
    def _share_of(values: np.ndarray, full: np.ndarray, empty: np.ndarray) -> np.ndarray:
        span = full.mean() - empty.mean()
        return (values.mean(-1) - empty.mean()) / span if span != 0 else np.full(values.shape[:-1], np.nan)

    def faithfulness(self) -> np.ndarray:
        return self._share_of(self.top, self.full, self.empty)

    def random_faithfulness(self) -> np.ndarray:
        """(grid sizes, draws)."""
        return self._share_of(self.random, self.full, self.empty)

    def smallest_share(self, target: float = 0.8, *, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
        """The smallest share of edges whose top-k circuit keeps ``target`` of the behaviour (among the sizes
        measured), and its 95% interval over examples (bootstrap); NaN where no circuit measured reaches it."""
        order = np.argsort(self.sizes)
        sizes = np.asarray(self.sizes)[order]
        top = self.top[order]

        def first(top_values: np.ndarray, full: np.ndarray, empty: np.ndarray) -> float:
            faithful = self._share_of(top_values, full, empty) >= target
            return float(sizes[np.argmax(faithful)] / self.n_edges) if faithful.any() else np.nan

        point = first(top, self.full, self.empty)
        rng = np.random.default_rng(seed)
        n = self.full.shape[0]
        draws = []
        for _ in range(n_boot):
            pick = rng.integers(0, n, n)
            draws.append(first(top[:, pick], self.full[pick], self.empty[pick]))
        draws_arr = np.asarray(draws)
        reached = draws_arr[np.isfinite(draws_arr)]
        if len(reached) < 0.975 * n_boot:  # in more than 2.5% of resamples no measured circuit is faithful
            return point, float(np.nanpercentile(draws_arr, 2.5)) if len(reached) else np.nan, 1.0
        return point, float(np.percentile(reached, 2.5)), float(np.percentile(reached, 97.5))

    def values_frame(self) -> pd.DataFrame:
        """Every measured value, one row per circuit and example (what ``from_values`` rebuilds the curve from)."""
        parts = [
            ("full", 0, -1, self.full),
            ("empty", 0, -1, self.empty),
            *(("top", k, -1, self.top[i]) for i, k in enumerate(self.sizes)),
            *(
                ("random", k, j, self.random[i, j])
                for i, k in enumerate(self.random_sizes)
                for j in range(self.random.shape[1])
            ),
        ]
        return pd.DataFrame(
            [
                {"circuit": c, "edges": k, "draw": d, "example": e, "value": float(v)}
                for c, k, d, values in parts
                for e, v in enumerate(values)
            ]
        )

    @classmethod
    def from_values(cls, frame: pd.DataFrame, n_edges: int, method: str = "") -> FaithfulnessCurve:
        def block(circuit: str) -> pd.DataFrame:
            return frame[frame["circuit"] == circuit].sort_values(["edges", "draw", "example"], kind="stable")

        n = int(frame["example"].max()) + 1
        top, random = block("top"), block("random")
        sizes = sorted(int(k) for k in top["edges"].unique())
        random_sizes = sorted(int(k) for k in random["edges"].unique())
        draws = int(random["draw"].max()) + 1 if len(random) else 0
        return cls(
            sizes,
            n_edges,
            top["value"].to_numpy().reshape(len(sizes), n),
            random_sizes,
            random["value"].to_numpy().reshape(len(random_sizes), draws, n),
            block("full")["value"].to_numpy(),
            block("empty")["value"].to_numpy(),
            method,
        )

    def frame(self) -> pd.DataFrame:
        """One row per measured circuit: size, share of edges, mean value, faithfulness; random ones by draw."""
        rows = []
        faithful = self.faithfulness()
        for i, k in enumerate(self.sizes):
            rows.append(
                {
                    "circuit": "top",
                    "edges": k,
                    "share": k / self.n_edges,
                    "draw": -1,
                    "value": float(self.top[i].mean()),
                    "faithfulness": float(faithful[i]),
                }
            )
        random_faithful = self.random_faithfulness()
        for i, k in enumerate(self.random_sizes):
            for j in range(self.random.shape[1]):
                rows.append(
                    {
                        "circuit": "random",
                        "edges": k,
                        "share": k / self.n_edges,
                        "draw": j,
                        "value": float(self.random[i, j].mean()),
                        "faithfulness": float(random_faithful[i, j]),
                    }
                )
        frame = pd.DataFrame(rows)
        frame["method"] = self.method
        return frame.sort_values(["circuit", "edges", "draw"], kind="stable").reset_index(drop=True)


def size_grid(n_edges: int, points: int = 12) -> list[int]:
    """Circuit sizes from one edge to all of them, evenly spaced in log size."""
    grid = np.unique(np.round(np.logspace(0, np.log10(max(n_edges, 1)), points)).astype(int))
    return sorted({int(k) for k in grid if 1 <= k <= n_edges} | {n_edges})


def faithfulness_curve(
    edges: EdgeEvaluator,
    scores: EdgeScores | Sequence[str],
    *,
    sizes: Sequence[int] | None = None,
    n_random: int = 3,
    target: float = 0.8,
    refine: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> FaithfulnessCurve:
    """Top-k circuits by ``scores`` (or edge names, strongest first) at ``sizes`` (default: ``size_grid``), each
    measured exactly, beside ``n_random`` random edge sets of each size; ``refine`` bisects between the sizes
    around the first faithful one (mean faithfulness at least ``target``), so the smallest faithful size is found
    to one edge."""
    from tqdm.auto import tqdm

    g = edges.graph
    if isinstance(scores, EdgeScores):
        circuit, method = scores.circuit, scores.method
    else:
        ranked = list(scores)
        circuit, method = (lambda k: g.mask(ranked[:k])), ""
    n_edges = g.n_edges
    grid = sorted({int(k) for k in (sizes or size_grid(n_edges))})
    if not grid or grid[0] < 1 or grid[-1] > n_edges:
        raise CircuitError(f"circuit sizes run from 1 to the graph's {n_edges} edges, got {grid}")
    grid = sorted({*grid, n_edges})  # the whole graph keeps everything: the curve always reaches the target
    bar = tqdm(desc="circuits", unit="circuit", disable=not progress)  # bisection adds an unknown few
    bar.set_postfix_str(f"{n_edges} edges")
    full, empty = edges.circuit_values([g.allowed, np.zeros_like(g.allowed)])
    bar.update(2)
    edge_flat = np.flatnonzero(g.allowed)

    def random_sets(k: int, rng: np.random.Generator) -> np.ndarray:
        masks = []
        for _ in range(n_random):
            kept = np.zeros(g.allowed.shape, dtype=bool)
            kept.flat[rng.choice(edge_flat, size=k, replace=False)] = True
            masks.append(kept)
        return edges.circuit_values(masks)

    top = lambda k: edges.circuit_values([circuit(k)])[0]
    return trace_curve(n_edges, full, empty, top, random_sets, grid, n_random, target, refine, seed, method, bar)


def trace_curve(
    n: int,
    full: np.ndarray,
    empty: np.ndarray,
    top: Callable[[int], np.ndarray],
    random_sets: Callable[[int, np.random.Generator], np.ndarray],
    grid: list[int],
    n_random: int,
    target: float,
    refine: bool,
    seed: int,
    method: str,
    bar: Any,
) -> FaithfulnessCurve:
    """The curve of ``top(k)`` (values of the top-k set, per example) over ``grid`` and, with ``refine``, bisected to
    the smallest k whose mean share of ``full - empty`` reaches ``target``; beside ``random_sets(k, rng)`` ((n_random,
    examples): random sets of k) at every grid size. Circuits (k edges) and dictionaries (k features) share it."""
    measured: dict[int, np.ndarray] = {}

    def value(k: int) -> np.ndarray:
        if k not in measured:
            measured[k] = top(k)
            bar.update(1)
        return measured[k]

    span = full.mean() - empty.mean()

    def faithful(k: int) -> bool:
        return bool(span != 0 and (value(k).mean() - empty.mean()) / span >= target)

    for k in grid:
        value(k)
    first = next((i for i, k in enumerate(grid) if faithful(k)), None)
    if refine and first is not None:
        low, high = (grid[first - 1] if first > 0 else 0), grid[first]
        while high - low > 1:  # the smallest faithful size between two grid points, by bisection
            middle = (low + high) // 2
            low, high = (low, middle) if faithful(middle) else (middle, high)
        grid = sorted({*grid, high})  # random sets of the smallest faithful size too: its baseline
    rng = np.random.default_rng(seed)
    random = np.zeros((len(grid), n_random, len(full)))
    for i, k in enumerate(grid):
        if n_random:
            random[i] = random_sets(k, rng)
        bar.update(n_random)
    bar.close()
    ks = sorted(measured)
    return FaithfulnessCurve(ks, n, np.stack([measured[k] for k in ks]), grid, random, full, empty, method=method)
