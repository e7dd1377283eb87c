"""Activation patching: move one component's activation from one run into another and watch the metric.

    prompts = agreement_prompts(32)
    result = patch_effects(lm, [p["clean"] for p in prompts], [p["corrupt"] for p in prompts],
                           [(p["answer"], p["wrong"]) for p in prompts], all_heads(lm.shape))
    result.effects          # one row per component: patched value, effect, share restored
    result.grid("head")     # (layers, heads) map of the share restored

Direction "denoise" (default) runs the corrupted prompts with a clean activation
patched in: a component that carries the information restores the clean
behaviour (share restored near 1). "noise" runs the clean prompts with a
corrupted activation patched in: a necessary component destroys it.

Patching runs on the same ``Evaluator`` as ablations (prefix reuse, batched
conditions); the replacement values are the other run's activations at the
same example and position, so clean and corrupted prompts must tokenise to the
same length, and the two answers must differ at their first token (pairs that
do not are reported and, if asked, dropped).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from probes.causal.behaviours import BehaviourError, LogitDiff, first_token
from probes.causal.components import Component, Resid
from probes.causal.evaluator import Evaluator
from probes.core.hooks import capture
from probes.core.model import LoadedModel


@dataclass
class PatchingResult:
    effects: pd.DataFrame
    clean: float  # metric on the clean prompts
    corrupt: float  # metric on the corrupted prompts
    direction: str

    def grid(self, by: str = "head", value: str = "restored") -> pd.DataFrame:
        """layers x heads (``by="head"``) or layers x positions (``by="position"``) table of ``value``."""
        frame = self.effects
        column = "head" if by == "head" else "position"
        frame = frame[frame[column] >= 0]
        return frame.pivot_table(index="layer", columns=column, values=value, aggfunc="mean")


def aligned_pairs(
    lm: LoadedModel, clean: Sequence[str], corrupt: Sequence[str], answers: Sequence[tuple[str, str]] | None = None
) -> list[int]:
    """Indices of the pairs whose two prompts tokenise to the same length (and whose answers differ at
    their first token, when ``answers`` are given)."""
    tok = lm.tokenizer
    keep = [i for i, (a, b) in enumerate(zip(clean, corrupt)) if len(lm.token_ids(a)) == len(lm.token_ids(b))]
    if answers is not None:
        firsts = {i: (first_token(tok, answers[i][0]), first_token(tok, answers[i][1])) for i in keep}
        keep = [i for i in keep if firsts[i][0] is not None and firsts[i][0] != firsts[i][1]]
    return keep


def patch_effects(
    lm: LoadedModel,
    clean: Sequence[str],
    corrupt: Sequence[str],
    answers: Sequence[tuple[str, str]],
    components: Sequence[Component],
    *,
    direction: str = "denoise",
    drop_misaligned: bool = False,
    batch_size: int = 64,
    progress: bool = False,
) -> PatchingResult:
    """Patch each component on its own; the metric is the logit difference right - wrong answer."""
    if direction not in ("denoise", "noise"):
        raise ValueError(f"unknown patching direction {direction!r}: use 'denoise' or 'noise'")
    if len(clean) != len(corrupt):
        raise BehaviourError(f"{len(clean)} clean prompts but {len(corrupt)} corrupted ones; patching needs pairs")
    if len(answers) != len(clean):
        raise BehaviourError(
            f"{len(clean)} prompt pairs but {len(answers)} answer pairs; give one (right, wrong) per pair"
        )
    keep = aligned_pairs(lm, clean, corrupt, answers)
    if len(keep) < len(clean):
        bad = sorted(set(range(len(clean))) - set(keep))
        if not drop_misaligned:
            raise BehaviourError(
                f"{len(bad)} prompt pairs tokenise to different lengths or have answers that start with the same "
                f"token (first: pair {bad[0]}, {clean[bad[0]]!r} vs {corrupt[bad[0]]!r}, answers {answers[bad[0]]}); "
                "pass drop_misaligned=True to leave them out"
            )
        warnings.warn(
            f"{len(bad)} of {len(clean)} prompt pairs differ in token length or in no answer token and were left out",
            stacklevel=2,
        )
        if not keep:
            raise BehaviourError("no prompt pair is usable (equal token lengths, answers differing at the first token)")
    pick = lambda xs: [xs[i] for i in keep]
    ev, other = patch_evaluator(
        lm,
        pick(clean),
        pick(corrupt),
        pick(answers),
        components,
        direction=direction,
        batch_size=batch_size,
        progress=progress,
    )
    values = ev.values([[c] for c in components]).mean(1)
    baseline = float(ev.clean.mean())
    clean_value, corrupt_value = (float(other), baseline) if direction == "denoise" else (baseline, float(other))
    span = clean_value - corrupt_value
    frame = pd.DataFrame(
        {
            "component": [c.name for c in components],
            "layer": [c.layer for c in components],
            "head": [c.head for c in components],
            "position": [-1 if c.at is None else c.at for c in components],
            "patched": values,
            "effect": values - baseline,
            # share of the clean-corrupt gap the patch restores (denoise) or destroys (noise)
            "restored": (values - corrupt_value) / span if abs(span) > 1e-12 else np.nan,
        }
    )
    return PatchingResult(frame, clean_value, corrupt_value, direction)


def patch_evaluator(
    lm: LoadedModel,
    clean: Sequence[str],
    corrupt: Sequence[str],
    answers: Sequence[tuple[str, str]],
    components: Sequence[Component],
    *,
    direction: str = "denoise",
    batch_size: int = 64,
    progress: bool = False,
) -> tuple[Evaluator, float]:
    """The Evaluator that patches (aligned pairs only), and the source run's own mean logit difference.

    Denoise: the corrupted prompts are run, with the clean run's values as the replacements; noise: the
    other way round. Attribution (``probes.causal.attribution``) takes the same Evaluator.
    """
    clean_b = LogitDiff(list(clean), list(answers), batch_size=batch_size)
    corrupt_b = LogitDiff(list(corrupt), list(answers), batch_size=batch_size)
    source_b, target_b = (clean_b, corrupt_b) if direction == "denoise" else (corrupt_b, clean_b)
    sites = sorted({c.site for c in components})
    readout = source_b.readout(lm)
    source, scores = [], []
    # one pass over the source prompts: the activations to patch in, and the source run's own metric
    with torch.inference_mode(), capture(lm, sorted({*sites, readout})) as cache:
        for batch in source_b.prepare(lm):
            lm.model(**batch.inputs)
            source.append({site: cache[site].clone() for site in sites})
            scores.append(source_b.score(lm, cache[readout], batch))
    ev = Evaluator(lm, target_b, kind="patch", source=source, progress=progress)
    return ev, float(torch.cat(scores).double().mean().item())


def resid_positions(lm: LoadedModel, n_positions: int, layers: Sequence[int] | None = None) -> list[Component]:
    """The residual stream entering each block at each position: the layer x position patching map."""
    layers = range(lm.shape.n_layers) if layers is None else layers
    return [Resid(l, at=p) for l in layers for p in range(n_positions)]
