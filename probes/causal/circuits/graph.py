"""The graph: writers (the input, every head, every MLP), readers (every head's q, every key-value head's k and
v, every MLP, the logits) and the edges between them (see ``probes.causal.circuits``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from analysis.errors import ProbesError
from probes.causal.components import MLP, Component, Head, Resid

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
