"""Attribution patching: every component's effect estimated from one forward and one backward pass.

    ev = Evaluator(lm, MinimalPairs(pairs), kind="mean")
    frame = attribute(ev, all_heads(lm.shape) + all_mlps(lm.shape))          # AtP, one row per component
    frame = attribute(ev, components, method="atp*")                          # QK fix and GradDrop
    check = verify(ev, frame, components, top=10, sample=20)                  # exact re-measurement

AtP (Nanda 2022; Kramár et al. 2024) estimates the effect of replacing a component's value ``v`` by
its counterfactual ``r`` as the first-order term ``(r - v) . d metric / d v`` at the clean run. The
counterfactual is exactly the one the ``Evaluator`` ablates with (zero, the per-position mean,
a resampled value, or a patched value from the other run), from the same ``Counterfactual``, so the
estimate and the exact effect of ``single_effects`` answer the same question; the estimate's sign
follows the effect's (ablated value minus clean value).

AtP* adds two fixes (Kramár et al. 2024):

* **QK fix.** A query or key change passes through the attention softmax, which a gradient sees
  badly where the softmax saturates. For query and key components (``L3H5.q``, ``L3H1.k``) the new
  attention pattern is computed exactly, ``A' = softmax(s + M (s' - s))``, from the model's own clean
  scores ``s`` and the scores ``s'`` of one forward in which every layer's queries (or keys) are at their
  counterfactual, the other side clean (each such layer's block output is put back to its clean value, so
  the next layer reads a clean input); ``M`` marks what the component changes (its query rows, or its key
  columns: a key at one position is the closed form of one changed logit per query). Only the pattern's
  effect on the metric is linearised: ``sum (A' - A) * d metric / d A``, where ``d metric / d A[q, k]`` is
  ``d metric / d z[q] . v[k]`` (a head's output is its pattern times its values). Head outputs
  (``hook_z``), values, MLPs and residuals reach the metric through no softmax of their own; for them
  the fix changes nothing.
* **GradDrop.** Paths whose effects cancel hide a component. For each block l the backward pass is run
  again with the gradient through block l's attention and MLP writes set to zero; the estimate under
  each is AtP_l, and the GradDrop score is the mean of |AtP_l| over the blocks (the component's own
  block, where AtP_l is 0 by construction, left out). In a pre-norm model the residual stream passes
  block l unchanged, so with its writes dropped the gradient at its input is the gradient at its output:
  each pass starts there and runs through the blocks below l only (about half a backward pass per block
  in all); a post-norm model (BERT) gates the writes and runs each pass whole.

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
from torch import Tensor

from analysis.errors import ProbesError
from probes.causal.components import Component, HeadInput, Neurons, PerHead, Slice, ValueEdit, check
from probes.causal.counterfactual import StopForward, example_index
from probes.causal.evaluator import Evaluator
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
    seen: dict[str, Tensor]  # clean values of sites only read (the QK fix's scores, values and block outputs)
    used: dict[str, Tensor]  # value + leaf: what the model went on with at each site with a leaf


def _forward_with_grad(
    ev: Evaluator, index: int, sites: Sequence[str], gates: dict[int, list] | None, read: Sequence[str] = ()
) -> _Pass:
    batch = ev.batches[index]
    values: dict[str, Tensor] = {}
    leaves: dict[str, Tensor] = {}
    seen: dict[str, Tensor] = {}
    used: dict[str, Tensor] = {}
    got: dict[str, Tensor] = {}
    gated = {}
    if gates:
        for layer, gate in gates.items():
            for short in ("hook_attn_out", "hook_mlp_out"):
                gated[f"blocks.{layer}.{short}"] = gate

    def tap(site: str):
        def fn(value: Tensor) -> Tensor | None:
            if site in read:
                seen[site] = value.detach().clone()
            if site not in sites and site not in gated:
                return None
            out = value
            if site in sites:
                leaf = torch.zeros_like(value, requires_grad=True)
                values[site], leaves[site] = value.detach(), leaf
                out = used[site] = value + leaf
            if site in gated:
                out = _GradGate.apply(out, gated[site])
            return out

        return fn

    def readout(value: Tensor) -> None:
        got["value"] = value
        raise StopForward

    fns = {site: tap(site) for site in {*sites, *gated, *read}}
    with ExitStack() as stack, torch.enable_grad():
        stack.enter_context(hooked(ev.lm, fns))
        stack.enter_context(hooked(ev.lm, {ev.readout: readout}))
        try:
            ev.lm.model(**batch.inputs)
        except StopForward:
            pass
        score = ev.behaviour.score(ev.lm, got["value"].to(ev.lm.device), batch)
    if not score.requires_grad:
        raise AttributionError(
            f"{ev.behaviour.name}'s metric {ev.behaviour.metric!r} is not differentiable, so it has no gradient to "
            "attribute with: use a logit difference, log-probability, loss or cosine (e.g. minimal pairs' logit_diff)"
        )
    return _Pass(values, leaves, score, seen, used)


# --- the QK fix ---------------------------------------------------------------------------------------------


def _qk_layers(components: Sequence[Component], which: str) -> list[int]:
    return sorted({c.layer for c in components if isinstance(c, HeadInput) and c.which == which})


def _qk_sites(components: Sequence[Component]) -> tuple[list[str], list[str]]:
    """What the QK fix needs in the layers holding a query or key component: the gradient at ``hook_z``, and
    the clean scores, values and block outputs."""
    layers = sorted({*_qk_layers(components, "q"), *_qk_layers(components, "k")})
    grads = [f"blocks.{l}.attn.hook_z" for l in layers]
    read = [f"blocks.{l}.{s}" for l in layers for s in ("attn.hook_scores", "attn.hook_v", "hook_resid_post")]
    return grads, read


def _counterfactual_scores(ev: Evaluator, index: int, run: _Pass, layers: list[int], which: str) -> dict[int, Tensor]:
    """Scores of ``layers`` with all their queries (``which`` "q") or keys at the counterfactual, the other side
    clean: every such block's output is put back to its clean value, so each layer reads a clean input."""
    batch = ev.batches[index]
    cf = ev.counterfactual(index)
    scores: dict[int, Tensor] = {}

    def swap(site: str):
        return lambda value: cf.replacement(site, value)

    last = max(layers)

    def keep(layer: int):
        def fn(value: Tensor) -> None:
            scores[layer] = value.detach().clone()
            if layer == last:
                raise StopForward  # nothing after the last layer's scores is needed

        return fn

    def restore(site: str):
        return lambda value: run.seen[site].to(value.dtype)

    fns = {}
    for l in layers:
        fns[f"blocks.{l}.attn.hook_{which}"] = swap(f"blocks.{l}.attn.hook_{which}")
        fns[f"blocks.{l}.attn.hook_scores"] = keep(l)
        if l < last:
            fns[f"blocks.{l}.hook_resid_post"] = restore(f"blocks.{l}.hook_resid_post")
    with torch.inference_mode(), hooked(ev.lm, fns):
        try:
            ev.lm.model(**batch.inputs)
        except StopForward:
            pass
    return scores


def _pattern_changes(ev: Evaluator, index: int, run: _Pass, components: Sequence[Component]) -> dict[Component, Tensor]:
    """(rows, heads of the component, query, key): the exact change of the attention pattern each query or key
    component makes, A' - A, for the query heads it reaches."""
    batch = ev.batches[index]
    out: dict[Component, Tensor] = {}
    for which in ("q", "k"):
        layers = _qk_layers(components, which)
        if not layers:
            continue
        changed = _counterfactual_scores(ev, index, run, layers, which)
        for c in components:
            if not (isinstance(c, HeadInput) and c.which == which):
                continue
            s = run.seen[f"blocks.{c.layer}.attn.hook_scores"].double()
            heads = _query_heads(c, ev.lm.shape.n_heads, ev.lm.shape.n_kv_heads)
            s = s[:, heads]
            delta = torch.nan_to_num(changed[c.layer].double()[:, heads] - s, nan=0.0, posinf=0.0, neginf=0.0)
            mask = torch.ones_like(delta, dtype=torch.bool)
            if c.at is not None:
                at = (batch.positions.to(s.device) == c.at)[:, None]  # (rows, 1, T)
                mask = at[..., :, None] if which == "q" else at[..., None, :]  # query rows or key columns
            out[c] = torch.softmax(s + delta * mask, -1) - torch.softmax(s, -1)
    return out


def _query_heads(component: HeadInput, n_heads: int, n_kv_heads: int) -> list[int]:
    """The query heads a query, key or value component reaches."""
    if component.which == "q":
        return [component.head_index]
    group = n_heads // n_kv_heads
    return list(range(component.head_index * group, (component.head_index + 1) * group))


def _through_pattern(ev: Evaluator, run: _Pass, grads: dict[str, Tensor], c: HeadInput, change: Tensor) -> Tensor:
    """(rows, query): sum over keys of the pattern's change times d metric / d pattern."""
    shape = ev.lm.shape
    heads = _query_heads(c, shape.n_heads, shape.n_kv_heads)
    dz = grads[f"blocks.{c.layer}.attn.hook_z"][:, :, heads].double()  # (rows, query, h, d_head)
    v = run.seen[f"blocks.{c.layer}.attn.hook_v"].double()  # (rows, key, kv_head, d_head)
    group = shape.n_heads // shape.n_kv_heads
    v = v[:, :, [h // group for h in heads]]
    d_pattern = torch.einsum("bqhd,bkhd->bhqk", dz, v)
    return (change * d_pattern).sum((1, 3))


# --- first-order estimates ----------------------------------------------------------------------------------


def _owned(component: Slice, contribution: Tensor) -> Tensor:
    """(rows, T): the sum of ``contribution`` (the site's shape) over the elements the component owns."""
    if isinstance(component, PerHead):
        return contribution[:, :, component.head_index].sum(-1)
    if isinstance(component, Neurons):
        return contribution[..., list(component.neurons)].sum(-1)
    if type(component).select is Slice.select:  # the whole site's value
        return contribution.flatten(2).sum(-1)
    mask = torch.zeros(contribution.shape, dtype=torch.bool, device=contribution.device)
    component.select(mask, torch.ones(contribution.shape[:2], dtype=torch.bool, device=contribution.device))
    return (contribution * mask).flatten(2).sum(-1)


def _estimates(
    ev: Evaluator,
    index: int,
    run: _Pass,
    grads: dict[str, Tensor],
    components: Sequence[Component],
    patterns: dict[Component, Tensor],
) -> Tensor:
    """(components, n_examples) first-order estimates for one batch from one set of gradients; the query and key
    components in ``patterns`` go through their exact pattern change (the QK fix)."""
    batch = ev.batches[index]
    first = next(iter(run.values.values()))
    rows, T = first.shape[:2]
    cf = ev.counterfactual(index)
    positions = batch.positions.to(first.device)
    local, inside = example_index(batch.example_ids, batch.n_examples, rows, T, first.device)
    out = torch.zeros(len(components), batch.n_examples, dtype=torch.float64, device=first.device)
    contributions: dict[str, Tensor] = {}  # per site: (counterfactual - clean) * gradient, shared by its slices
    per_head: dict[str, Tensor] = {}  # per site: (n_examples, heads), every head's estimate at once
    per_unit: dict[tuple[str, str], Tensor] = {}  # per site and family: (n_examples, units), e.g. every feature

    def by_example(per_token: Tensor) -> Tensor:
        """(rows, T, ...) -> (n_examples, ...): summed over each example's tokens."""
        flat = per_token.flatten(0, 1) * inside.reshape(-1, *([1] * (per_token.ndim - 2)))
        zeros = torch.zeros(batch.n_examples, *flat.shape[1:], dtype=torch.float64, device=flat.device)
        return zeros.index_add(0, local, flat.double())

    def contribution(site: str) -> Tensor:
        if site not in contributions:
            value = run.values[site]
            contributions[site] = (cf.replacement(site, value).double() - value.double()) * grads[site].double()
        return contributions[site]

    for i, component in enumerate(components):
        site = component.site
        if site not in run.values:  # after the readout: it cannot change the behaviour
            continue
        if isinstance(component, PerHead) and component.at is None and component not in patterns:
            if site not in per_head:
                per_head[site] = by_example(contribution(site).sum(-1))
            out[i] = per_head[site][:, component.head_index]
            continue
        unit = getattr(component, "unit", None)  # one of many units a single pass estimates (a dictionary feature)
        if unit is not None and component.at is None:
            assert isinstance(component, ValueEdit)
            group = (site, component.group)  # type: ignore[attr-defined]
            if group not in per_unit:
                value = run.values[site]
                replacement, derived = cf.edit_replacement(component, value)
                terms = component.unit_terms(value, replacement, grads[site], derived)  # type: ignore[attr-defined]
                per_unit[group] = by_example(terms)
            out[i] = per_unit[group][:, unit]
            continue
        tokens = torch.ones(rows, T, dtype=torch.bool, device=first.device)
        if component.at is not None:
            tokens = tokens & (positions == component.at)
        if component in patterns:  # the QK fix: the mask of what changed is in the pattern already
            assert isinstance(component, HeadInput)
            per_token = _through_pattern(ev, run, grads, component, patterns[component])
        elif isinstance(component, ValueEdit):
            value, grad = run.values[site], grads[site]
            goal, derived = cf.edit_replacement(component, value)
            changed = component.apply(value, goal, tokens, derived) - value
            per_token = (changed.double() * grad.double()).sum(-1)
        else:
            assert isinstance(component, Slice)  # every other component is a slice of its site
            per_token = _owned(component, contribution(site)) * tokens
        out[i] = by_example(per_token)
    return out


def _gradients(total: Tensor, run: _Pass, sites: Sequence[str], retain: bool) -> dict[str, Tensor]:
    """d total / d each site's value (zero where the metric does not depend on it; sites after the readout, which
    the forward never reached, have none)."""
    sites = [s for s in sites if s in run.leaves]
    got = torch.autograd.grad(total, [run.leaves[s] for s in sites], retain_graph=retain, allow_unused=True)
    return {s: g if g is not None else torch.zeros_like(run.values[s]) for s, g in zip(sites, got)}


def _site_layer(site: str) -> float:
    """Where a site sits in depth: a block's input just before the block, anything inside it at the block."""
    layer = int(site.split(".")[1])
    return layer - 0.5 if site.endswith("hook_resid_pre") else layer


def _dropped_at(run: _Pass, grads: dict[str, Tensor], layer: int, residual: list[str]) -> dict[str, Tensor]:
    """Every site's gradient with block ``layer``'s writes dropped: the gradient at the block's output, passed
    unchanged to its input (the residual's skip), then back through the blocks below; sites inside the block
    get none, sites after it keep theirs."""
    below = [s for s in grads if _site_layer(s) < layer]
    if residual[layer] not in run.used:  # the block lies after the readout: nothing below goes through it
        return grads
    after = grads.get(residual[layer + 1], torch.zeros_like(run.used[residual[layer]]))  # zero: output unread
    got = torch.autograd.grad(
        run.used[residual[layer]], [run.leaves[s] for s in below], after, retain_graph=True, allow_unused=True
    )
    out = {s: (torch.zeros_like(g) if _site_layer(s) == layer else g) for s, g in grads.items()}
    out.update({s: torch.zeros_like(grads[s]) if g is None else g for s, g in zip(below, got)})
    return out


@dataclass
class Passes:
    """What the gradient passes over some of an evaluator's batches leave: per-example estimates, and for AtP* the
    per-example estimates with each block's writes dropped from the backward pass. Passes over different batches
    concatenate (``Passes.join``) into those over all of them, so batches may run in different processes."""

    estimates: np.ndarray  # (components, examples)
    dropped: np.ndarray | None = None  # (layers, components, examples); AtP* only

    @classmethod
    def join(cls, parts: Sequence[Passes]) -> Passes:
        dropped = [p.dropped for p in parts]
        return cls(
            np.concatenate([p.estimates for p in parts], 1),
            None if any(d is None for d in dropped) else np.concatenate(dropped, 2),  # type: ignore[arg-type]
        )


def attribute(
    ev: Evaluator,
    components: Sequence[Component],
    *,
    method: str = "atp",
    progress: bool = False,
) -> pd.DataFrame:
    """One row per component: the first-order estimate of its effect (``estimate``, with ``stderr`` over
    examples), and for ``method="atp*"`` (the QK fix for queries and keys, and GradDrop) the GradDrop score
    (``graddrop``, a magnitude). ``score`` is what components are ranked by: |estimate| for AtP,
    max(|estimate|, graddrop) for AtP*.

    ``ev`` fixes the model, the behaviour, the ablation kind and its reference (or patch source); the
    estimates are of ``ev``'s exact effects, which ``verify`` re-measures.

    >>> ev = Evaluator(lm, MinimalPairs(agreement_pairs(64)), kind="mean")     # doctest: +SKIP
    >>> attribute(ev, components_from("heads+mlps", lm.shape), method="atp*")  # doctest: +SKIP
    """
    passes = attribution_passes(ev, components, method=method, progress=progress)
    return attribution_frame(ev, components, passes, method=method)


def attribution_passes(
    ev: Evaluator,
    components: Sequence[Component],
    *,
    method: str = "atp",
    batches: Sequence[int] | None = None,
    progress: bool = False,
) -> Passes:
    """The gradient passes of ``attribute`` over the batches ``batches`` of ``ev`` (default: all of them), in
    that order."""
    if method not in METHODS:
        raise AttributionError(f"unknown attribution method {method!r}: choose one of {', '.join(METHODS)}")
    components = [check(c, ev.lm.shape) for c in components]
    if not components:
        raise AttributionError("no components to attribute: name some (L3H5 L4.mlp) or a set (heads, mlps)")
    star = method == "atp*"
    qk_grads, qk_read = _qk_sites(components) if star else ([], [])
    sites = sorted({*(c.site for c in components), *qk_grads})
    ev._cover_sites({c for c in components if c.needs_reference})
    if ev.ablation.needs_source:
        missing = sorted({c.site for c in components} - set(ev.source[0]) if ev.source else {"all"})
        if missing:
            raise AttributionError(f"the patch source has no values for {', '.join(missing)}: capture them too")
    n_layers = ev.lm.shape.n_layers
    skip = star and ev.lm.adapter.decomposes(ev.lm.model.config)  # GradDrop from each block's input
    residual = [f"blocks.{l}.hook_resid_pre" for l in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]
    leaf_sites = sorted({*sites, *(residual if skip else ())})
    per_batch: list[Tensor] = []
    dropped: list[Tensor] = []  # (layers, components, n_examples) per batch
    from tqdm.auto import tqdm

    indices = range(len(ev.batches)) if batches is None else batches
    for index in tqdm(indices, desc="attribution", unit="batch", disable=not progress):
        gates = {layer: [1.0] for layer in range(n_layers)} if star and not skip else None
        run = _forward_with_grad(ev, index, leaf_sites, gates, qk_read)
        patterns = _pattern_changes(ev, index, run, components) if qk_read else {}
        total = run.score.sum()
        grads = _gradients(total, run, leaf_sites, star)
        per_batch.append(_estimates(ev, index, run, grads, components, patterns))
        if skip:
            layers = [
                _estimates(ev, index, run, _dropped_at(run, grads, layer, residual), components, patterns)
                for layer in range(n_layers)
            ]
            dropped.append(torch.stack(layers))
        elif star:
            assert gates is not None
            layers = []
            for layer in range(n_layers):
                gates[layer][0] = 0.0
                got = _gradients(total, run, leaf_sites, layer < n_layers - 1)
                gates[layer][0] = 1.0
                layers.append(_estimates(ev, index, run, got, components, patterns))
            dropped.append(torch.stack(layers))
        del run
    estimates = torch.cat(per_batch, 1).cpu().numpy()
    return Passes(estimates, torch.cat(dropped, 2).cpu().numpy() if star else None)


def attribution_frame(ev: Evaluator, components: Sequence[Component], passes: Passes, *, method: str) -> pd.DataFrame:
    """``attribute``'s table from its passes over every batch of ``ev``."""
    components = [check(c, ev.lm.shape) for c in components]
    if passes.estimates.shape != (len(components), ev.n_examples):
        raise AttributionError(
            f"passes over {passes.estimates.shape[1]} examples of {passes.estimates.shape[0]} components do not "
            f"cover the evaluator's {ev.n_examples} examples of {len(components)}"
        )
    frame = _frame(components, passes.estimates, ev)
    if method == "atp*":
        assert passes.dropped is not None, "AtP* passes carry the GradDrop estimates"
        n_layers = ev.lm.shape.n_layers
        by_layer = np.abs(passes.dropped.mean(2))  # (layers, components): |AtP_l| of the mean
        # a component's own block, where AtP_l is 0 by construction (none for what enters a block)
        own = np.array([-1 if c.site.endswith("hook_resid_pre") else c.layer for c in components])
        keep = np.arange(n_layers)[:, None] != own[None, :]
        graddrop = (by_layer * keep).sum(0) / np.maximum(keep.sum(0), 1)
        frame["graddrop"] = graddrop
        frame["score"] = np.maximum(frame["estimate"].abs().to_numpy(), graddrop)
    else:
        frame["score"] = frame["estimate"].abs()
    frame["method"] = method
    frame.attrs["per_example"] = passes.estimates
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
