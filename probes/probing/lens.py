"""Logit lens and tuned lens: what the residual stream at each depth would predict if the model stopped there.

    tuned = TunedLens(steps=60).fit(lm, train_texts)
    frame = lens_scores(lm, test_texts, {"logit": LogitLens(), "tuned": tuned})  # a row per lens and depth
    tensors, meta = tuned.state();  TunedLens.from_state(tensors, meta, lm)   # files: probes.pipelines.lens
    by_depth = behaviour_by_depth(lm, Induction(48), tuned)   # the behaviour's score read at every depth

Depth ``d`` is the residual stream after ``d`` blocks: 0 is the embeddings as block 0 sees them
(``blocks.0.hook_resid_pre``), ``n_layers`` the last block's output. The **logit lens** (nostalgebraist
2020) reads it through the model's own final norm, unembedding and logit scaling or softcap; the **tuned
lens** (Belrose et al. 2023) first applies an affine translator per depth, ``h + h A + b``, trained to
minimise KL(final || lens) on a text set. At depth ``n_layers`` both are the model's own logits.

Training starts from the least-squares translator (the affine map from each depth's residual to the last
one's, ridge-regularised, one solve per depth) and then minimises the KL with Adam on random batches of
tokens; ``init="identity"`` starts from the logit lens instead, as the paper does. Every depth's
translator is independent, so they are trained together, a chunk of depths per backward pass to bound
memory (the logits of a batch at every depth would not fit).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from analysis.errors import ProbesError
from probes.core.hooks import capture
from probes.core.model import LoadedModel
from probes.probing.profile import bootstrap_ci


class LensError(ProbesError, ValueError):
    """A lens that cannot be used on this model or these texts."""


def depth_sites(lm: LoadedModel) -> list[str]:
    """The residual sites of depths 0 .. n_layers."""
    n = lm.shape.n_layers
    return [f"blocks.{l}.hook_resid_pre" for l in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]


def _check(lm: LoadedModel) -> None:
    if not lm.has_unembed:
        raise LensError(f"{lm.name} has no unembedding (no LM head): a lens reads the residual through it")


def final_normed(lm: LoadedModel, hidden: Tensor) -> Tensor:
    """Residual rows through the model's final norm (``ln_final``), where it has one."""
    if lm.adapter.final_norm is None:
        return hidden
    return lm.base.get_submodule(lm.adapter.final_norm)(hidden)


def lens_logits(lm: LoadedModel, hidden: Tensor) -> Tensor:
    """Logits (float32) of residual rows ``hidden`` (..., d_model) through the final norm, the unembedding
    and the row's logit scaling: what the model would output if its last block's output were ``hidden``."""
    unembedded = lm.model.get_output_embeddings()(final_normed(lm, hidden))
    return lm.adapter.final_logits(unembedded, lm.model.config).float()


class LogitLens:
    """The residual read as it is (the identity translator)."""

    name = "logit"

    def translate(self, depth: int, hidden: Tensor) -> Tensor:
        return hidden

    def describe(self) -> dict[str, Any]:
        return {"lens": "logit"}


@dataclass
class Tokens:
    """Residual rows of real tokens at every depth, with what the model itself predicts from them."""

    hidden: Tensor  # (depths, tokens, d_model), the model's dtype, on its device
    text: Tensor  # (tokens,) which text each row comes from
    next_token: Tensor  # (tokens,) the token that follows, -1 at a text's last token


@torch.inference_mode()
def collect(
    lm: LoadedModel,
    texts: Sequence[str],
    *,
    max_length: int | None = None,
    batch_size: int = 8,
    max_tokens: int | None = None,
    progress: bool = False,
) -> Tokens:
    """Run the model over ``texts`` and keep every real token's residual at every depth."""
    _check(lm)
    if not texts:
        raise LensError("no texts to read the lens on")
    sites = depth_sites(lm)
    hidden, text_of, following = [], [], []
    kept = 0
    for lo in tqdm(range(0, len(texts), batch_size), desc="residuals", disable=not progress, leave=False):
        enc = lm.encode(list(texts[lo : lo + batch_size]), max_length=max_length)
        inputs = enc.model_inputs(lm.device)
        mask = inputs["attention_mask"].bool()
        with capture(lm, sites) as cache:
            lm.model(**inputs)
        ids = inputs["input_ids"]
        nxt = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -1)], dim=1)
        nxt = torch.where(torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1), nxt, -1)
        hidden.append(torch.stack([cache[s][mask] for s in sites]))
        rows = torch.arange(lo, lo + len(ids), device=ids.device)[:, None].expand_as(ids)
        text_of.append(rows[mask])
        following.append(nxt[mask])
        kept += int(mask.sum())
        if max_tokens is not None and kept >= max_tokens:
            break
    out = Tokens(torch.cat(hidden, dim=1), torch.cat(text_of), torch.cat(following))
    if max_tokens is not None:
        out = Tokens(out.hidden[:, :max_tokens], out.text[:max_tokens], out.next_token[:max_tokens])
    return out


_PARAMS = ("steps", "batch_tokens", "lr", "ridge", "init", "max_tokens", "max_length", "seed")


class TunedLens:
    """An affine translator per depth, trained to make each depth's lens match the model's own output.

    >>> tuned = TunedLens(steps=40, seed=0).fit(lm, texts)      # doctest: +SKIP
    >>> tuned.history_[-1] < tuned.history_[0]                  # doctest: +SKIP
    True
    """

    name = "tuned"

    def __init__(
        self,
        *,
        steps: int = 60,
        batch_tokens: int = 128,
        lr: float = 1e-3,
        ridge: float = 1e-2,
        init: Literal["least-squares", "identity"] = "least-squares",
        max_tokens: int = 16384,
        max_length: int | None = None,
        depth_chunk: int = 8,
        seed: int = 0,
        progress: bool = False,
    ):
        self.steps = steps
        self.batch_tokens = batch_tokens
        self.lr = lr
        self.ridge = ridge
        self.init = init
        self.max_tokens = max_tokens
        self.max_length = max_length
        self.depth_chunk = depth_chunk
        self.seed = seed
        self.progress = progress

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _PARAMS}

    def _validate(self) -> None:
        if self.init not in ("least-squares", "identity"):
            raise LensError(f"TunedLens init={self.init!r}: use 'least-squares' or 'identity'")
        for name in ("steps", "max_tokens"):
            if getattr(self, name) < 0:
                raise LensError(f"TunedLens {name}={getattr(self, name)}: must be at least 0")
        if self.batch_tokens < 1 or self.depth_chunk < 1:
            raise LensError("TunedLens batch_tokens and depth_chunk must be at least 1")

    def fit(self, lm: LoadedModel, texts: Sequence[str] | Tokens) -> TunedLens:
        """Train the translators of depths 0 .. n_layers - 1 on ``texts`` (or residuals already collected)."""
        self._validate()
        data = (
            texts
            if isinstance(texts, Tokens)
            else collect(lm, texts, max_length=self.max_length, max_tokens=self.max_tokens, progress=self.progress)
        )
        n_depths, n_tokens, d = data.hidden.shape[0] - 1, data.hidden.shape[1], data.hidden.shape[2]
        device = data.hidden.device
        generator = torch.Generator().manual_seed(self.seed)
        weight = torch.zeros(n_depths, d, d, device=device)
        bias = torch.zeros(n_depths, d, device=device)
        last = data.hidden[-1].float()
        if self.init == "least-squares":
            for depth in range(n_depths):
                weight[depth], bias[depth] = _least_squares(data.hidden[depth].float(), last, self.ridge)
        weight.requires_grad_(True)
        bias.requires_grad_(True)
        optimiser = torch.optim.Adam([weight, bias], lr=self.lr)
        history: list[float] = []
        bar = tqdm(range(self.steps), desc="tuned lens", disable=not self.progress, leave=False)
        with _frozen(lm.model):
            self._train(lm, data, weight, bias, optimiser, generator, history, bar)
        self.weight_ = weight.detach()
        self.bias_ = bias.detach()
        self.history_ = history
        self.fitted_on_ = {"model": lm.name, "fingerprint": lm.fingerprint, "n_tokens": n_tokens}
        return self

    def _train(
        self,
        lm: LoadedModel,
        data: Tokens,
        weight: Tensor,
        bias: Tensor,
        optimiser: torch.optim.Optimizer,
        generator: torch.Generator,
        history: list[float],
        bar: Any,
    ) -> None:
        n_depths, n_tokens = weight.shape[0], data.hidden.shape[1]
        device = data.hidden.device
        for _ in bar:
            pick = torch.randint(n_tokens, (min(self.batch_tokens, n_tokens),), generator=generator).to(device)
            with torch.no_grad():
                target = torch.log_softmax(lens_logits(lm, data.hidden[-1][pick]), -1)
            optimiser.zero_grad()
            total = 0.0
            for lo in range(0, n_depths, self.depth_chunk):
                hi = min(lo + self.depth_chunk, n_depths)
                h = data.hidden[lo:hi, pick].float()
                translated = h + torch.baddbmm(bias[lo:hi, None], h, weight[lo:hi])
                logq = torch.log_softmax(lens_logits(lm, translated.to(data.hidden.dtype)), -1)
                kl = _kl(target, logq).mean(-1).sum() / n_depths
                kl.backward()
                total += float(kl.detach())
            optimiser.step()
            history.append(total)
            bar.set_postfix(kl=f"{total:.3f}")

    def translate(self, depth: int, hidden: Tensor) -> Tensor:
        if not hasattr(self, "weight_"):
            raise LensError("this TunedLens is not fitted: call fit(lm, texts) or TunedLens.load(folder, lm)")
        if depth >= self.weight_.shape[0]:
            return hidden  # the last depth is the model's own output
        w, b = self.weight_[depth].to(hidden.device), self.bias_[depth].to(hidden.device)
        h = hidden.float()
        return (h + h @ w + b).to(hidden.dtype)

    def describe(self) -> dict[str, Any]:
        return {"lens": "tuned", **self.params()}

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The translators (weight (depths, d, d), bias (depths, d)) and what they were trained with and on;
        ``probes.pipelines.lens.save_lens`` writes them as safetensors and JSON."""
        if not hasattr(self, "weight_"):
            raise LensError("this TunedLens is not fitted: call fit(lm, texts) first")
        tensors = {"weight": self.weight_.cpu().contiguous(), "bias": self.bias_.cpu().contiguous()}
        return tensors, {**self.describe(), **self.fitted_on_, "history": self.history_}

    @classmethod
    def from_state(cls, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], lm: LoadedModel) -> TunedLens:
        """A lens from ``state()``, refused for a model other than the one it was trained on."""
        if meta.get("fingerprint") != lm.fingerprint:
            raise LensError(
                f"this tuned lens was trained on {meta.get('model')} (weights {meta.get('fingerprint')}), "
                f"not on {lm.name} (weights {lm.fingerprint}); train one for this model"
            )
        if tuple(tensors["weight"].shape) != (lm.shape.n_layers, lm.shape.d_model, lm.shape.d_model):
            raise LensError(f"translators of shape {tuple(tensors['weight'].shape)} do not fit {lm.name}")
        lens = cls(**{k: meta[k] for k in _PARAMS if k in meta})
        lens.weight_ = tensors["weight"].to(lm.device)
        lens.bias_ = tensors["bias"].to(lm.device)
        lens.history_ = list(meta.get("history", []))
        lens.fitted_on_ = {k: meta[k] for k in ("model", "fingerprint", "n_tokens")}
        return lens


@contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    """No gradients for the model's own weights while the translators train (only they are learnt)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _least_squares(h: Tensor, last: Tensor, ridge: float) -> tuple[Tensor, Tensor]:
    """A, b minimising |h + h A + b - last|^2 + ridge * n * |A|^2 (features centred, so b is not shrunk)."""
    mean_h, mean_last = h.mean(0), last.mean(0)
    x, y = (h - mean_h).double(), (last - h - (mean_last - mean_h)).double()
    gram = x.T @ x
    gram += ridge * float(torch.diagonal(gram).mean()) * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    weight = torch.linalg.solve(gram, x.T @ y).float()
    bias = mean_last - mean_h - mean_h @ weight
    return weight, bias


def _kl(logp: Tensor, logq: Tensor) -> Tensor:
    """KL(p || q) in nats per row, from log-probabilities over the last axis."""
    return (logp.exp() * (logp - logq)).sum(-1)


Lens = LogitLens | TunedLens
_MEASURES = ("kl", "top1_agreement", "surprisal")


@torch.inference_mode()
def lens_scores(
    lm: LoadedModel,
    texts: Sequence[str] | Tokens,
    lenses: Mapping[str, Lens],
    *,
    max_length: int | None = None,
    max_tokens: int | None = None,
    chunk_tokens: int = 512,
    seed: int = 0,
) -> pd.DataFrame:
    """Per lens and depth: KL(final || lens) in nats, top-1 agreement with the model's own prediction and
    surprisal (nats) of the true next token, each a mean over tokens with a 95% interval from resampling texts."""
    data = texts if isinstance(texts, Tokens) else collect(lm, texts, max_length=max_length, max_tokens=max_tokens)
    n_depths, n_tokens = data.hidden.shape[0], data.hidden.shape[1]
    per_token = {(name, m): torch.zeros(n_depths, n_tokens) for name in lenses for m in _MEASURES}
    for lo in range(0, n_tokens, chunk_tokens):  # the logits of every token at once would not fit
        hi = min(lo + chunk_tokens, n_tokens)
        final = torch.log_softmax(lens_logits(lm, data.hidden[-1, lo:hi]), -1)
        following = data.next_token[lo:hi].clamp(min=0)[:, None]
        for name, lens in lenses.items():
            for depth in range(n_depths):
                logq = torch.log_softmax(lens_logits(lm, lens.translate(depth, data.hidden[depth, lo:hi])), -1)
                per_token[name, "kl"][depth, lo:hi] = _kl(final, logq).cpu()
                per_token[name, "top1_agreement"][depth, lo:hi] = (logq.argmax(-1) == final.argmax(-1)).float().cpu()
                per_token[name, "surprisal"][depth, lo:hi] = -logq.gather(-1, following).squeeze(-1).cpu()
    has_next = (data.next_token >= 0).cpu().numpy()
    text_ids = data.text.cpu().numpy()
    rows = []
    for name in lenses:
        for depth in range(n_depths):
            row: dict[str, Any] = {"lens": name, "depth": depth, "n_tokens": n_tokens}
            for measure in _MEASURES:
                keep = has_next if measure == "surprisal" else np.ones(n_tokens, dtype=bool)
                values = per_token[name, measure][depth].numpy().astype(np.float64)[keep]
                row[measure] = float(values.mean())
                row[f"{measure}_low"], row[f"{measure}_high"] = bootstrap_ci(values, text_ids[keep], seed=seed)
            rows.append(row)
    return pd.DataFrame(rows)


@torch.inference_mode()
def behaviour_by_depth(lm: LoadedModel, behaviour: Any, lens: Lens, *, seed: int = 0) -> pd.DataFrame:
    """A behaviour's score (``probes.causal.behaviours``) read through ``lens`` at every depth: its readout
    replaced by what the lens makes of that depth's residual. Rows: depth, mean score with its 95% interval
    over examples, and ``baseline``, the score of a prediction that knows nothing (uniform over the
    vocabulary: a zero readout, which the unembedding maps to equal logits)."""
    _check(lm)
    readout = behaviour.readout(lm)
    normed = readout == "ln_final.hook_normalized"
    if not normed and readout != f"blocks.{lm.shape.n_layers - 1}.hook_resid_post":
        raise LensError(f"behaviour {behaviour.name!r} reads {readout}, not the model's output: a lens cannot stand in")
    sites = depth_sites(lm)
    scores: list[list[np.ndarray]] = [[] for _ in sites]
    baseline: list[np.ndarray] = []
    for batch in behaviour.prepare(lm):
        batch_inputs = {k: v.to(lm.device) for k, v in batch.inputs.items()}
        batch.payload = batch.payload.to(lm.device)
        with capture(lm, sites) as cache:
            lm.model(**batch_inputs)
        for depth, site in enumerate(sites):
            value = lens.translate(depth, cache[site])
            value = final_normed(lm, value) if normed else value
            scores[depth].append(behaviour.score(lm, value, batch).float().cpu().numpy())
        baseline.append(behaviour.score(lm, torch.zeros_like(cache[sites[-1]]), batch).float().cpu().numpy())
    know_nothing = float(np.concatenate(baseline).mean())
    rows = []
    for depth, parts in enumerate(scores):
        per_example = np.concatenate(parts).astype(np.float64)
        low, high = bootstrap_ci(per_example, seed=seed)
        rows.append(
            {
                "depth": depth,
                "score": float(per_example.mean()),
                "low": low,
                "high": high,
                "n": len(per_example),
                "baseline": know_nothing,
            }
        )
    return pd.DataFrame(rows)


def first_decodable_depth(by_depth: pd.DataFrame, share: float = 0.5, *, higher_is_better: bool = True) -> int | None:
    """The first depth from which on the score stays at least ``share`` of the way from the baseline (a
    prediction that knows nothing; without a ``baseline`` column, depth 0's score) to the model's own (the
    last depth's): where the lens has the behaviour's answer. None if the model does no better than that.
    ``higher_is_better=False`` for a loss (the behaviour's own attribute says which)."""
    ordered = by_depth.sort_values("depth")
    sign = 1.0 if higher_is_better else -1.0
    scores = sign * ordered["score"].to_numpy()
    start = sign * float(ordered["baseline"].iloc[0]) if "baseline" in ordered else scores[0]
    end = scores[-1]
    if end <= start or math.isclose(start, end):
        return None
    reached = (scores - start) / (end - start) >= share
    for position in range(len(scores)):
        if reached[position:].all():
            return int(ordered["depth"].iloc[position])
    return None


__all__ = [
    "Lens",
    "LensError",
    "LogitLens",
    "Tokens",
    "TunedLens",
    "behaviour_by_depth",
    "collect",
    "depth_sites",
    "first_decodable_depth",
    "lens_logits",
    "lens_scores",
]
