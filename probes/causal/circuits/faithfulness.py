"""Faithfulness of circuits: the top-k circuits by edge score and random ones, each measured exactly, and the
smallest share of edges that keeps a target share of the behaviour (with its interval over examples)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from probes.causal.circuits.edges import EdgeEvaluator, EdgeScores
from probes.causal.circuits.graph import CircuitError


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
