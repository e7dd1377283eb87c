"""Evaluate a behaviour under many ablation conditions, fast and with the same numbers as the plain loop.

    ev = Evaluator(lm, MinimalPairs(pairs), kind="mean")
    ev.values([frozenset(), frozenset({Head(3, 5)}), frozenset({Head(3, 5), MLP(4)})])  # (3, n_examples)
    single_effects(ev, all_heads(lm.shape))                                              # a DataFrame

Two things make sweeps cheap, and both are exact:

* **Prefix reuse.** A condition whose earliest ablated component sits in block
  l leaves blocks 0..l-1 untouched, so their outputs are replayed from the
  clean run instead of recomputed: those blocks are swapped, for the duration
  of the forward, for modules that return the recorded output.
* **Batched conditions.** Conditions sharing their earliest block run as one
  forward: the batch is repeated once per condition and each copy (row block)
  carries its own ablation (``RowPlan``), up to ``max_tokens`` tokens per forward
  (4096 by default: on 2 CPU cores larger forwards ran slower per token; raise it
  on a GPU).

The forward also stops at the behaviour's readout site, and only the positions
the metric needs are unembedded. ``reuse_prefix=False, batch_conditions=False``
gives the plain loop (one ordinary forward per condition), for checking.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import ExitStack, contextmanager

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from probes.causal.ablation import RowPlan
from probes.causal.ablations.base import Ablation, AblationError, ablation_kind
from probes.causal.behaviours import Batch, Behaviour
from probes.causal.components import Component, check
from probes.causal.counterfactual import Counterfactual, StopForward
from probes.causal.reference import Reference
from probes.core.hooks import hooked
from probes.core.model import LoadedModel

Subset = frozenset  # a set of components ablated together


class _Replay(nn.Module):
    """Stands in for a block: returns what the block returned in the clean run, repeated per condition (as the
    first item of a tuple where the block returns one, as Falcon's does)."""

    def __init__(self, output: Tensor, as_tuple: bool = False):
        super().__init__()
        self.output, self.as_tuple = output, as_tuple

    def forward(self, *args, **kwargs):
        return (self.output, None) if self.as_tuple else self.output


def _first(output: Tensor | tuple) -> Tensor:
    """A block's hidden states, whether it returns them alone or first in a tuple."""
    return output[0] if isinstance(output, tuple) else output


class Evaluator:
    """Per-example behaviour values of a model under sets of ablated components.

    kind: an ablation kind's name ("zero", "mean", "resample", "patch", or one you registered) or an
    ``Ablation`` (``probes.causal.ablations``). ``reference``: the dataset whose statistics mean/resample use; by
    default the behaviour's own inputs, at the sites of ``components`` now and of any other component when first
    ablated. Kind "patch" takes values from ``source`` instead (per batch, site -> value; see
    ``probes.causal.patching``).
    """

    def __init__(
        self,
        lm: LoadedModel,
        behaviour: Behaviour,
        kind: str | Ablation = "zero",
        reference: Reference | None = None,
        *,
        components: Sequence[Component] = (),
        source: list[dict[str, Tensor]] | None = None,
        reuse_prefix: bool = True,
        batch_conditions: bool = True,
        max_tokens: int = 4096,
        seed: int = 0,
        progress: bool = False,
    ):
        self.ablation = ablation_kind(kind)
        self.lm, self.behaviour, self.kind = lm, behaviour, self.ablation.name
        self.reuse_prefix, self.batch_conditions, self.max_tokens = reuse_prefix, batch_conditions, max_tokens
        self.progress = progress
        self.readout = behaviour.readout(lm)
        site = lm.resolve(self.readout)[0]
        self._readout_layer = lm.shape.n_layers if site.layer is None else site.layer
        self.batches: list[Batch] = behaviour.prepare(lm)
        self.n_examples = sum(b.n_examples for b in self.batches)
        if self.ablation.needs_source and (source is None or len(source) != len(self.batches)):
            raise AblationError(
                f"{self.kind} needs source values for every batch (the paired run's): see probes.causal.patching"
            )
        self._own_reference = self.ablation.statistics is not None and reference is None
        self._seed = seed
        if self._own_reference:
            # statistics for the given components now; any other component's site on first use
            reference = self.reference_from_behaviour(components or ["blocks.0.hook_resid_pre"], seed=seed)
        self.reference, self.source = reference, source
        self.counterfactual(0).check()
        self._blocks = lm.base.get_submodule(lm.adapter.blocks)
        self._tuples = False  # do the blocks return (hidden, ...) tuples? (Falcon's do; seen in the clean run)
        self._recorded: list[list[Tensor]] = []
        self.clean = self._clean_run()
        self._cache: dict[Subset, np.ndarray] = {frozenset(): self.clean}

    def first(self, n: int) -> Evaluator:
        """This evaluator on its first batches only, the fewest that hold at least ``n`` examples.

        It shares the model, the reference statistics and the clean run's recorded blocks, so its values
        are exactly this evaluator's on those examples: a cheap screen (sweep every component on a few
        examples, then study the strongest on all of them).
        """
        if n < 1:
            raise ValueError(f"a screen needs at least one example, got {n}")
        if n >= self.n_examples:
            return self
        sizes = np.cumsum([b.n_examples for b in self.batches])
        m = int(np.searchsorted(sizes, n)) + 1
        view = copy.copy(self)
        view.batches, view.n_examples = self.batches[:m], int(sizes[m - 1])
        view._recorded = self._recorded[:m]
        view.source = None if self.source is None else self.source[:m]
        view.clean = self.clean[: view.n_examples]
        view._cache = {frozenset(): view.clean}
        view._cover_sites = self._cover_sites  # type: ignore[method-assign]  # statistics over all examples
        return view

    def reference_from_behaviour(self, components: Iterable[Component | str], seed: int = 0) -> Reference:
        """Mean/resample statistics over the behaviour's own inputs (unpacked, one text per row)."""
        batches = self.behaviour.reference_inputs(self.lm, self.batches)
        return Reference.from_batches(
            self.lm, batches, list(components), keep_samples=self.ablation.statistics == "samples", seed=seed
        )

    def counterfactual(self, index: int, repeats: int = 1) -> Counterfactual:
        """The counterfactual values of batch ``index`` (repeated ``repeats`` times, one copy per condition)."""
        batch = self.batches[index] if self.batches else None
        if batch is None:
            return Counterfactual(self.ablation, torch.zeros(0), torch.zeros(0), self.reference, None)
        source = None
        if self.source is not None:
            source = self.source[index]
            if repeats > 1:
                source = {site: v.repeat(repeats, *([1] * (v.ndim - 1))) for site, v in source.items()}
        return Counterfactual(
            self.ablation,
            batch.positions.repeat(repeats, 1),
            batch.example_ids.repeat(repeats, *([1] * (batch.example_ids.ndim - 1))),
            self.reference,
            source,
        )

    # --- running ------------------------------------------------------------------------------------

    def _forward(self, index: int, subsets: Sequence[Subset], first_layer: int) -> Tensor:
        """Readout value for ``batch`` repeated once per subset, each copy with its subset ablated."""
        batch = self.batches[index]
        C = len(subsets)
        inputs = {k: v.repeat(C, *([1] * (v.ndim - 1))) if C > 1 else v for k, v in batch.inputs.items()}
        cf = self.counterfactual(index, C)
        plan = RowPlan(
            [s for s in subsets for _ in range(batch.rows)],
            cf.kind,
            cf.positions,
            cf.example_ids,
            cf.reference,
            cf.source,
        )
        got: dict[str, Tensor] = {}

        def read(value: Tensor) -> None:
            got["value"] = value
            raise StopForward

        with ExitStack() as stack:
            if first_layer > 0 and self._recorded:
                stack.enter_context(self._replayed(index, first_layer, C))
            edits = plan.hooks(self.lm) if any(subsets) else {}
            stack.enter_context(hooked(self.lm, edits))
            stack.enter_context(hooked(self.lm, {self.readout: read}))
            try:
                self.lm.model(**inputs)
            except StopForward:
                pass
        return got["value"]

    @contextmanager
    def _replayed(self, index: int, first_layer: int, C: int):
        recorded = self._recorded[index][first_layer - 1]
        replay = _Replay(recorded.repeat(C, *([1] * (recorded.ndim - 1))) if C > 1 else recorded, self._tuples)
        originals = [self._blocks[i] for i in range(first_layer)]
        try:
            for i in range(first_layer):
                self._blocks[i] = replay
            yield
        finally:
            for i, block in enumerate(originals):
                self._blocks[i] = block

    def _clean_run(self) -> np.ndarray:
        scores = []
        with torch.inference_mode():
            for index, batch in enumerate(self.batches):
                outputs: list[Tensor] = []

                def record(_module: nn.Module, _args: tuple, out: Tensor | tuple) -> None:
                    self._tuples = isinstance(out, tuple)
                    outputs.append(_first(out).detach())  # noqa: B023  # this batch's list, used within the loop

                handles = [block.register_forward_hook(record) for block in self._blocks] if self.reuse_prefix else []
                try:
                    value = self._forward(index, [frozenset()], 0)
                finally:
                    for h in handles:
                        h.remove()
                if self.reuse_prefix:
                    self._recorded.append(outputs)
                scores.append(
                    self.behaviour.score(self.lm, value.to(self.lm.device), batch)
                )  # from the readout's device
        return torch.cat(scores).double().cpu().numpy()

    def values(self, subsets: Iterable[Iterable[Component]]) -> np.ndarray:
        """(len(subsets), n_examples) per-example behaviour values, each subset ablated together."""
        sets = [frozenset(s) for s in subsets]
        for s in sets:
            for c in s:
                check(c, self.lm.shape)
            if s not in self._cache and min(c.layer for c in s) > self._readout_layer:
                self._cache[s] = self.clean  # everything ablated lies after the readout: nothing changes
        todo = sorted({s for s in sets if s not in self._cache}, key=lambda s: (min(c.layer for c in s), sorted(s)))
        self._cover_sites({c for s in todo for c in s if c.needs_reference})
        groups: dict[int, list[Subset]] = defaultdict(list)
        for s in todo:
            groups[min(c.layer for c in s) if self.reuse_prefix else 0].append(s)
        with (
            torch.inference_mode(),
            tqdm(total=len(todo), desc="ablations", unit="cond", disable=not self.progress or not todo) as bar,
        ):
            for first_layer, group in groups.items():
                for chunk in self._chunks(group):
                    per_batch = [self._scores(i, chunk, first_layer) for i in range(len(self.batches))]
                    for i, s in enumerate(chunk):
                        self._cache[s] = np.concatenate([p[i] for p in per_batch])
                    bar.update(len(chunk))
        return np.stack([self._cache[s] for s in sets]) if sets else np.zeros((0, self.n_examples))

    def _cover_sites(self, needed: Iterable[str | Component]) -> None:
        """Statistics for sites (or components' derived quantities) the reference lacks, computed on first use
        (when the reference is our own and the ablation kind reads one)."""
        if not self._own_reference or self.reference is None:
            return

        def key(entry: str | Component) -> str:
            return entry if isinstance(entry, str) else self.ablation.reference_key(entry)

        missing = list({key(e): e for e in needed if key(e) not in self.reference.means}.values())
        if missing:
            extra = self.reference_from_behaviour(missing, seed=self._seed)
            self.reference.means.update(extra.means)
            self.reference.samples.update(extra.samples)

    def _chunks(self, group: list[Subset]) -> Iterable[list[Subset]]:
        if not self.batch_conditions:
            yield from ([s] for s in group)
            return
        tokens = max(b.inputs["input_ids"].numel() for b in self.batches)
        size = max(1, self.max_tokens // tokens)
        for lo in range(0, len(group), size):
            yield group[lo : lo + size]

    def _scores(self, index: int, chunk: list[Subset], first_layer: int) -> list[np.ndarray]:
        batch = self.batches[index]
        value = self._forward(index, chunk, first_layer)
        per_condition = value.reshape(len(chunk), batch.rows, *value.shape[1:])
        device = self.lm.device  # the readout's module may run elsewhere under a device map
        return [self.behaviour.score(self.lm, v.to(device), batch).double().cpu().numpy() for v in per_condition]

    def value(self, subset: Iterable[Component] = ()) -> float:
        """The behaviour's mean value with ``subset`` ablated."""
        return float(self.values([subset])[0].mean())

    def remember(self, subsets: Iterable[Iterable[Component]], values: np.ndarray) -> None:
        """Keep ``values`` (as ``values(subsets)`` returns them) measured by an evaluator built as this one on
        another worker, so later calls read them as this one's own (the same batches, the same floats)."""
        sets = [frozenset(s) for s in subsets]
        if values.shape != (len(sets), self.n_examples):
            raise ValueError(f"values of shape {values.shape} for {len(sets)} subsets of {self.n_examples} examples")
        self._cache.update(zip(sets, values))

    def effects(self, subsets: Iterable[Iterable[Component]]) -> np.ndarray:
        """Per-example effects: value with the subset ablated minus the clean value."""
        return self.values(subsets) - self.clean[None]


# --- sweeps -----------------------------------------------------------------------------------------


def single_effects(ev: Evaluator, components: Sequence[Component]) -> pd.DataFrame:
    """One row per component: mean effect of ablating it alone, its standard error, and the ablated value."""
    values = ev.values([[c] for c in components])
    effects = values - ev.clean[None]
    n = effects.shape[1]
    return pd.DataFrame(
        {
            "component": [c.name for c in components],
            "layer": [c.layer for c in components],
            "kind": [c.kind for c in components],
            "head": [c.head for c in components],
            "effect": effects.mean(1),
            "stderr": effects.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.nan,
            "value": values.mean(1),
            "clean": float(ev.clean.mean()),
        }
    )


def effect_map(single: pd.DataFrame, n_layers: int, n_heads: int) -> np.ndarray:
    """(layers, heads) map of head effects from ``single_effects`` (NaN where a head was not ablated)."""
    grid = np.full((n_layers, n_heads), np.nan)
    heads = single[single["kind"] == "head"]
    grid[heads["layer"].to_numpy(), heads["head"].to_numpy()] = heads["effect"].to_numpy()
    return grid


def top_components(single: pd.DataFrame, components: Sequence[Component], k: int) -> list[Component]:
    """The k components with the largest absolute single effect."""
    order = np.argsort(-np.abs(single["effect"].to_numpy()), kind="stable")[:k]
    return [components[i] for i in sorted(order)]


def interaction_matrix(ev: Evaluator, components: Sequence[Component]) -> pd.DataFrame:
    """Pairwise interactions: effect of ablating i and j together minus the sum of their single effects.

    Diagonal: the single effects. Zero off the diagonal means the two act additively.
    """
    k = len(components)
    singles = ev.effects([[c] for c in components]).mean(1)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    joint = ev.effects([[components[i], components[j]] for i, j in pairs]).mean(1)
    grid = np.diag(singles)
    for (i, j), e in zip(pairs, joint):
        grid[i, j] = grid[j, i] = e - singles[i] - singles[j]
    names = [c.name for c in components]
    return pd.DataFrame(grid, index=names, columns=names)
