"""Attribution patching: every component's effect estimated from one forward and one backward pass.

    ev = Evaluator(lm, MinimalPairs(pairs), kind="mean")
    frame = attribute(ev, all_heads(lm.shape) + all_mlps(lm.shape))          # AtP, one row per component
    frame = attribute(ev, components, method="atp*")                          # with GradDrop
    check = verify(ev, frame, components, top=10, sample=20)                  # exact re-measurement

AtP (Nanda 2022; Kramár et al. 2024) estimates the effect of replacing a component's value ``v`` by
its counterfactual ``r`` as the first-order term ``(r - v) . d metric / d v`` at the clean run. The
counterfactual is exactly the one the ``Evaluator`` ablates with (zero, the per-position mean,
a resampled value, or a patched value from the other run), built by the same ``RowPlan``, so the
estimate and the exact effect of ``single_effects`` answer the same question; the estimate's sign
follows the effect's (ablated value minus clean value).

AtP* adds two fixes (Kramár et al. 2024):

* **QK fix.** A query or key change passes through the attention softmax, which a gradient sees
  badly where the softmax saturates. For query and key components (``L3H5.q``, ``L3H5.k``) the new
  attention pattern is computed exactly from the model's own scores (one forward with every layer's
  queries, or keys, set to the counterfactual and the other side kept clean; a key change at one
  position is solved in closed form per key), and only the pattern's effect on the metric is
  linearised: ``sum (A' - A) * d metric / d A``. Head outputs (``hook_z``), MLPs and residuals reach
  the metric through no softmax of their own; for them the fix changes nothing.
* **GradDrop.** Paths whose effects cancel hide a component. For each block l the backward pass is run
  again with the gradient through block l's attention and MLP writes set to zero; the estimate under
  each is AtP_l, and the GradDrop score is the mean of |AtP_l| over the blocks (the component's own
  block, where AtP_l is 0 by construction, left out). It costs one backward pass per block.

The metric must be differentiable: logit differences, log-probabilities, losses and cosines are;
accuracies are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor

from analysis.errors import ProbesError
from probes.causal.ablation import RowPlan
from probes.causal.behaviour import Batch
from probes.causal.components import Component, Head, Neurons, ResidualEdit, Slice, check
from probes.causal.evaluator import Evaluator, _StopForward
from probes.core.hooks import hooked

METHODS = ("atp", "atp*")


class AttributionError(ProbesError, ValueError):
    """An attribution that cannot be computed as asked."""


class _GradGate(torch.autograd.Function):
    """Identity forward; backward multiplies by ``gate[0]`` (read when the backward runs, so one graph
    serves every GradDrop pass)."""

    @staticmethod
    def forward(ctx, value: Tensor, gate: list) -> Tensor:
        ctx.gate = gate
        return value.view_as(value)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.gate[0], None


@dataclass
class _Pass:
    """One batch's forward with gradients: each site's clean value and the leaf its gradient lands on."""

    values: dict[str, Tensor]
    leaves: dict[str, Tensor]
    score: Tensor  # (n_examples,) per-example metric, differentiable


def _forward_with_grad(ev: Evaluator, index: int, sites: Sequence[str], gates: dict[int, list] | None) -> _Pass:
    batch = ev.batches[index]
    values: dict[str, Tensor] = {}
    leaves: dict[str, Tensor] = {}
    got: dict[str, Tensor] = {}
    gated = {}
    if gates:
        for layer, gate in gates.items():
            for short in ("hook_attn_out", "hook_mlp_out"):
                gated[f"blocks.{layer}.{short}"] = gate

    def tap(site: str):
        def fn(value: Tensor) -> Tensor:
            out = value
            if site in sites:
                leaf = torch.zeros_like(value, requires_grad=True)
                values[site], leaves[site] = value.detach(), leaf
                out = value + leaf
            if site in gated:
                out = _GradGate.apply(out, gated[site])
            return out

        return fn

    def read(value: Tensor) -> None:
        got["value"] = value
        raise _StopForward

    fns = {site: tap(site) for site in {*sites, *gated}}
    with ExitStack() as stack, torch.enable_grad():
        stack.enter_context(hooked(ev.lm, fns))
        stack.enter_context(hooked(ev.lm, {ev.readout: read}))
        try:
            ev.lm.model(**batch.inputs)
        except _StopForward:
            pass
        score = ev.behaviour.score(ev.lm, got["value"].to(ev.lm.device), batch)
    if not score.requires_grad:
        raise AttributionError(
            f"{ev.behaviour.name}'s metric {ev.behaviour.metric!r} is not differentiable, so it has no gradient to "
            "attribute with: use a logit difference, log-probability, loss or cosine (e.g. minimal pairs' logit_diff)"
        )
    return _Pass(values, leaves, score)


def _example_index(batch: Batch, rows: int, T: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(rows * T,) local example index of each token and whether it belongs to an example of this batch."""
    ids = batch.example_ids.to(device)
    ids = ids[:, None].expand(rows, T) if ids.ndim == 1 else ids
    local = (ids - ids.flatten()[0]).flatten()
    inside = (local >= 0) & (local < batch.n_examples)
    return local.clamp(0, batch.n_examples - 1), inside


def _owned(component: Slice, contribution: Tensor) -> Tensor:
    """(rows, T): the sum of ``contribution`` (the site's shape) over the elements the component owns."""
    if isinstance(component, Head):
        return contribution[:, :, component.head_index].sum(-1)
    if isinstance(component, Neurons):
        return contribution[..., list(component.neurons)].sum(-1)
    if type(component).select is Slice.select:  # the whole site's value
        return contribution.flatten(2).sum(-1)
    mask = torch.zeros(contribution.shape, dtype=torch.bool, device=contribution.device)
    component.select(mask, torch.ones(contribution.shape[:2], dtype=torch.bool, device=contribution.device))
    return (contribution * mask).flatten(2).sum(-1)


def _estimates(
    ev: Evaluator, index: int, run: _Pass, grads: dict[str, Tensor], components: Sequence[Component]
) -> Tensor:
    """(components, n_examples) first-order estimates for one batch from one set of gradients."""
    batch = ev.batches[index]
    first = next(iter(run.values.values()))
    rows, T = first.shape[:2]
    plan = RowPlan(
        [frozenset()] * rows,
        ev.kind,
        batch.positions,
        batch.example_ids,
        ev.reference,
        None if ev.source is None else ev.source[index],
    )
    positions = batch.positions.to(first.device)
    local, inside = _example_index(batch, rows, T, first.device)
    out = torch.zeros(len(components), batch.n_examples, dtype=torch.float64, device=first.device)
    replacements: dict[str, Tensor] = {}
    for i, component in enumerate(components):
        site = component.site
        value, grad = run.values[site], grads[site]
        tokens = torch.ones(rows, T, dtype=torch.bool, device=value.device)
        if component.at is not None:
            tokens = tokens & (positions == component.at)
        if isinstance(component, ResidualEdit):
            needs = ev.kind != "zero" and component.needs_reference
            replacement = plan._replacement(site, value) if needs else None
            changed = component.apply(value, replacement, tokens, ev.kind) - value
            per_token = (changed.double() * grad.double()).sum(-1)
        else:
            assert isinstance(component, Slice)  # every component is a slice or a residual edit
            if site not in replacements:
                replacements[site] = plan._replacement(site, value)
            contribution = (replacements[site].double() - value.double()) * grad.double()
            per_token = _owned(component, contribution) * tokens
        flat = (per_token.flatten() * inside).to(torch.float64)
        out[i] = torch.zeros(batch.n_examples, dtype=torch.float64, device=flat.device).index_add(0, local, flat)
    return out


def attribute(
    ev: Evaluator,
    components: Sequence[Component],
    *,
    method: str = "atp",
    progress: bool = False,
) -> pd.DataFrame:
    """One row per component: the AtP estimate of its effect (``estimate``, with ``stderr`` over examples),
    and for ``method="atp*"`` the GradDrop score (``graddrop``, a magnitude). ``score`` is what components
    are ranked by: |estimate| for AtP, max(|estimate|, graddrop) for AtP*.

    ``ev`` fixes the model, the behaviour, the ablation kind and its reference (or patch source); the
    estimates are of ``ev``'s exact effects, which ``verify`` re-measures.
    """
    if method not in METHODS:
        raise AttributionError(f"unknown attribution method {method!r}: choose one of {', '.join(METHODS)}")
    components = [check(c, ev.lm.shape) for c in components]
    if not components:
        raise AttributionError("no components to attribute: name some (L3H5 L4.mlp) or a set (heads, mlps)")
    sites = sorted({c.site for c in components})
    ev._cover_sites({c.site for c in components if c.needs_reference and ev.kind in ("mean", "resample")})
    if ev.kind == "patch":
        missing = sorted(s for s in sites if ev.source is None or s not in ev.source[0])
        if missing:
            raise AttributionError(f"the patch source has no values for {', '.join(missing)}: capture them too")
    n_layers = ev.lm.shape.n_layers
    drop = method == "atp*"
    per_batch: list[Tensor] = []
    dropped: list[Tensor] = []  # (layers, components, n_examples) per batch
    from tqdm.auto import tqdm

    for index in tqdm(range(len(ev.batches)), desc="attribution", unit="batch", disable=not progress):
        gates = {layer: [1.0] for layer in range(n_layers)} if drop else None
        run = _forward_with_grad(ev, index, sites, gates)
        total = run.score.sum()
        leaves = [run.leaves[s] for s in sites]
        grads = dict(zip(sites, torch.autograd.grad(total, leaves, retain_graph=drop, allow_unused=True)))
        grads = {s: g if g is not None else torch.zeros_like(run.values[s]) for s, g in grads.items()}
        per_batch.append(_estimates(ev, index, run, grads, components))
        if drop:
            assert gates is not None
            layers = []
            for layer in range(n_layers):
                gates[layer][0] = 0.0
                got = torch.autograd.grad(total, leaves, retain_graph=layer < n_layers - 1, allow_unused=True)
                gates[layer][0] = 1.0
                g = {s: x if x is not None else torch.zeros_like(run.values[s]) for s, x in zip(sites, got)}
                layers.append(_estimates(ev, index, run, g, components))
            dropped.append(torch.stack(layers))
        del run
    estimates = torch.cat(per_batch, 1).cpu().numpy()
    frame = _frame(components, estimates, ev)
    if drop:
        by_layer = np.abs(torch.cat(dropped, 2).cpu().numpy().mean(2))  # (layers, components): |AtP_l| of the mean
        own = np.array([c.layer if not isinstance(c, ResidualEdit) and c.kind != "resid" else -1 for c in components])
        keep = np.arange(n_layers)[:, None] != own[None, :]
        graddrop = (by_layer * keep).sum(0) / np.maximum(keep.sum(0), 1)
        frame["graddrop"] = graddrop
        frame["score"] = np.maximum(frame["estimate"].abs().to_numpy(), graddrop)
    else:
        frame["score"] = frame["estimate"].abs()
    frame["method"] = method
    frame.attrs["per_example"] = estimates
    return frame


def _frame(components: Sequence[Component], estimates: np.ndarray, ev: Evaluator) -> pd.DataFrame:
    n = estimates.shape[1]
    return pd.DataFrame(
        {
            "component": [c.name for c in components],
            "layer": [c.layer for c in components],
            "kind": [c.kind for c in components],
            "head": [c.head for c in components],
            "estimate": estimates.mean(1),
            "stderr": estimates.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.nan,
            "clean": float(ev.clean.mean()),
        }
    )


@dataclass
class Verification:
    """How far an attribution's estimates can be trusted, from components re-measured exactly.

    ``checked``: one row per re-measured component (estimate, exact effect and its stderr, how it was
    chosen: "top" or "sample"). ``spearman``: rank correlation of estimate and exact effect over the checked
    components whose exact effect is above its noise (|effect| > 2 stderr); ``top_overlap``: how many of
    the exact top k (among the checked) are in the estimate's top k; ``largest_miss``: the checked
    component with the largest |exact - estimate|. ``bound``: with 95% confidence, at most this share of the
    components outside the top have an exact effect as large as ``threshold`` (none of the sample did; a
    sample of m gives 1 - 0.05^(1/m), about 3/m), NaN where some did.
    """

    checked: pd.DataFrame
    spearman: float
    n_above_noise: int
    top_overlap: int
    k: int
    largest_miss: str
    largest_miss_error: float
    threshold: float
    bound: float
    misses_in_sample: int

    def summary(self) -> str:
        bound = (
            f"at most {self.bound:.0%} of the rest exceed |{self.threshold:.3g}| (95%)"
            if np.isfinite(self.bound)
            else f"{self.misses_in_sample} sampled components outside the top exceed |{self.threshold:.3g}|"
        )
        return (
            f"checked {len(self.checked)} exactly: Spearman {self.spearman:.2f} over {self.n_above_noise} above "
            f"noise, {self.top_overlap}/{self.k} of the exact top {self.k} in the estimate's, largest miss "
            f"{self.largest_miss} ({self.largest_miss_error:+.3g}); {bound}"
        )


def verify(
    ev: Evaluator,
    frame: pd.DataFrame,
    components: Sequence[Component],
    *,
    top: int = 10,
    sample: int = 20,
    seed: int = 0,
) -> Verification:
    """Re-measure the ``top`` components by attribution score and a random ``sample`` of the others exactly
    (``ev.values``), and compare them with their estimates."""
    if len(frame) != len(components):
        raise AttributionError("the attribution frame and the components differ in length")
    order = np.argsort(-frame["score"].to_numpy(), kind="stable")
    k = min(top, len(components))
    chosen = list(order[:k])
    rest = order[k:]
    rng = np.random.default_rng(seed)
    sampled = list(rng.choice(rest, size=min(sample, len(rest)), replace=False)) if len(rest) else []
    picks = chosen + sampled
    values = ev.values([[components[i]] for i in picks])
    effects = values - ev.clean[None]
    n = effects.shape[1]
    stderr = effects.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(picks), np.nan)
    checked = frame.iloc[picks][["component", "layer", "kind", "head", "estimate", "score"]].copy()
    checked["exact"] = effects.mean(1)
    checked["exact_stderr"] = stderr
    checked["chosen"] = ["top"] * len(chosen) + ["sample"] * len(sampled)
    checked = checked.reset_index(drop=True)
    above = np.abs(checked["exact"]) > 2 * np.nan_to_num(checked["exact_stderr"], nan=0.0)
    rho = (
        float(stats.spearmanr(checked["estimate"][above], checked["exact"][above]).statistic)
        if above.sum() > 2
        else np.nan
    )
    kk = min(k, len(checked))
    exact_top = set(np.argsort(-np.abs(checked["exact"].to_numpy()), kind="stable")[:kk])
    estimate_top = set(np.argsort(-checked["score"].to_numpy(), kind="stable")[:kk])
    error = (checked["exact"] - checked["estimate"]).to_numpy()
    worst = int(np.argmax(np.abs(error)))
    threshold = float(np.abs(checked["exact"][: len(chosen)]).min()) if chosen else 0.0
    misses = int((np.abs(checked["exact"][len(chosen) :]) >= threshold).sum()) if sampled else 0
    bound = 1 - 0.05 ** (1 / len(sampled)) if sampled and misses == 0 else np.nan
    return Verification(
        checked,
        rho,
        int(above.sum()),
        len(exact_top & estimate_top),
        kk,
        str(checked["component"][worst]),
        float(error[worst]),
        threshold,
        bound,
        misses,
    )
