"""Train TopK sparse autoencoders and transcoders on activations, streamed from an activation store.

    store = ActivationStore.build(lm, texts, ["blocks.6.hook_resid_pre"], "runs/store")
    trainer = TopKTrainer(expansion=8, k=32, seed=0).fit(store, site="blocks.6.hook_resid_pre")
    trainer.dictionary_          # a SparseDictionary (save it in SAELens's format with .save(folder))
    trainer.history_             # one row per logged step: tokens, fvu, aux, dead share

The recipe is Gao et al. (2024), "Scaling and evaluating sparse autoencoders":

* TopK activation (the k largest pre-activations, through a ReLU), so L0 is k by construction and no
  sparsity penalty has to be tuned.
* Decoder rows kept at unit norm: before each step the gradient's component along each row is removed,
  after it the rows are renormalised.
* The encoder starts as the decoder's transpose; ``b_dec`` as the mean of the first buffer.
* Dead features (none fired in the last ``dead_after`` tokens) get the AuxK loss: the k_aux largest
  pre-activations among dead features reconstruct what the live ones left over, with weight ``aux_coef``.
* Inputs are scaled so that their mean norm is sqrt(d_in) (SAELens's ``expected_average_only_in``); the
  scale is folded into the saved weights, so the dictionary reads and writes the model's own values.

Rows stream through a shuffle buffer of ``buffer`` tokens: memory is bounded by the buffer and one shard,
not by the dataset. The source can be a store (one site, or an input and an output site for a
transcoder) or tensors. ``n_tokens`` sets the budget (the data repeats, reshuffled, if it is larger).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from probes.core.store import ActivationStore
from probes.sparse.dictionary import DictionaryError, SparseDictionary

Chunk = tuple[Tensor, Tensor]  # (inputs, targets): the same tensor for an autoencoder
# Adam's step size where none is given: on smollm2-135m's middle residual (8x, k=32, 1M tokens of 133k) 1e-3 gave
# held-out explained variance 0.823 where Gao et al.'s width scaling (2e-4 / sqrt(d_sae / 2^14) = 3.8e-4), made for
# budgets of billions of tokens, gave 0.71 (33k tokens, 400k seen)
DEFAULT_LR = 1e-3


class TopKTrainer:
    """A TopK sparse autoencoder (or, given ``site_out``, a transcoder) fitted to a site's activations.

    expansion: d_sae / d_in. k: active features per token. n_tokens: training tokens (None: one pass over
    the source). skip_positions: leave out each text's first positions (a decoder's first token carries
    outsized norms that no small dictionary should spend features on; the dictionary still runs there).

    >>> x = torch.randn(4096, 16)
    >>> trainer = TopKTrainer(expansion=4, k=4, batch_size=256, progress=False).fit(x, site="blocks.0.hook_resid_pre")
    >>> trainer.dictionary_.d_sae
    64
    """

    def __init__(
        self,
        expansion: int = 8,
        k: int = 32,
        *,
        n_tokens: int | None = None,
        batch_size: int = 1024,
        lr: float | None = None,
        aux_k: int | None = None,
        aux_coef: float = 1 / 32,
        dead_after: int = 50_000,
        buffer: int = 65_536,
        skip_positions: int = 0,
        log_every: int = 20,
        seed: int = 0,
        progress: bool = True,
    ):
        self.expansion, self.k, self.n_tokens, self.batch_size = expansion, k, n_tokens, batch_size
        self.lr, self.aux_k, self.aux_coef, self.dead_after = lr, aux_k, aux_coef, dead_after
        self.buffer, self.skip_positions, self.log_every = buffer, skip_positions, log_every
        self.seed, self.progress = seed, progress

    def get_params(self) -> dict[str, Any]:
        keys = ("expansion", "k", "n_tokens", "batch_size", "lr", "aux_k", "aux_coef", "dead_after", "buffer")
        return {key: getattr(self, key) for key in (*keys, "skip_positions", "log_every", "seed")}

    # --- data --------------------------------------------------------------------------------------------------
    def _chunks(self, source: Any, site: str | None, site_out: str | None) -> tuple[Iterable[Chunk], int]:
        """A re-iterable of (inputs, targets) chunks and the number of rows in one pass."""
        if isinstance(source, ActivationStore):
            if site is None:
                raise DictionaryError(f"name the site to train on: the store holds {', '.join(source.sites)}")
            out = site_out or site

            class Passes:
                def __iter__(inner) -> Iterator[Chunk]:
                    for (x, pos), (y, _) in zip(source.iter_rows(site), source.iter_rows(out)):
                        keep = pos >= self.skip_positions
                        yield x[keep].float(), y[keep].float()

            n = sum(int((pos >= self.skip_positions).sum()) for _, pos in source.iter_rows(site))
            return Passes(), n
        if isinstance(source, tuple):
            x, y = (torch.as_tensor(np.asarray(t)) for t in source)
        else:
            x = y = torch.as_tensor(np.asarray(source))
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
            raise DictionaryError(f"training rows must be (tokens, width) matrices of equal length, got {x.shape}")
        return [(x.float(), y.float())], len(x)

    def _stream(self, chunks: Iterable[Chunk], budget: int, gen: torch.Generator) -> Iterator[Chunk]:
        """Minibatches through a shuffle buffer: a buffer is shuffled and its first half emitted, the rest waits for
        the next chunks; the data repeats until ``budget`` rows are out."""
        pool_x: list[Tensor] = []
        pool_y: list[Tensor] = []
        sent = 0
        while sent < budget:
            got_any = False
            for x, y in chunks:
                got_any = got_any or len(x) > 0
                pool_x.append(x)
                pool_y.append(y)
                if sum(len(p) for p in pool_x) >= self.buffer:
                    bx, by = torch.cat(pool_x), torch.cat(pool_y)
                    order = torch.randperm(len(bx), generator=gen)
                    half = (len(bx) // 2 // self.batch_size) * self.batch_size or len(bx)
                    for lo in range(0, half, self.batch_size):
                        idx = order[lo : lo + self.batch_size][: budget - sent]  # the last batch ends at the budget
                        yield bx[idx], by[idx]
                        sent += len(idx)
                        if sent >= budget:
                            return
                    pool_x, pool_y = [bx[order[half:]]], [by[order[half:]]]
            if not got_any:
                raise DictionaryError("the training source has no rows (every token skipped?)")
            if not any(len(p) for p in pool_x):
                continue
            bx, by = torch.cat(pool_x), torch.cat(pool_y)  # end of a pass: what the buffer holds, shuffled
            order = torch.randperm(len(bx), generator=gen)
            for lo in range(0, len(bx), self.batch_size):
                idx = order[lo : lo + self.batch_size][: budget - sent]
                if len(idx) < self.batch_size and sent + len(idx) < budget:
                    pool_x, pool_y = [bx[idx]], [by[idx]]  # a short tail waits for the next pass
                    break
                yield bx[idx], by[idx]
                sent += len(idx)
                if sent >= budget:
                    return
            else:
                pool_x, pool_y = [], []

    # --- fitting -----------------------------------------------------------------------------------------------
    def fit(
        self, source: Any, site: str | None = None, site_out: str | None = None, *, model_name: str | None = None
    ) -> TopKTrainer:
        """Train on ``source`` (an ActivationStore with ``site`` [and ``site_out``], a (tokens, d) matrix, or an
        (inputs, targets) pair); the result is ``dictionary_`` with ``history_``."""
        if self.k < 1 or self.expansion < 1 or self.batch_size < 1:
            raise DictionaryError("k, expansion and batch_size must each be at least 1")
        site = site or (source.sites[0] if isinstance(source, ActivationStore) and len(source.sites) == 1 else site)
        if site is None:
            raise DictionaryError("name the site the dictionary reads (site='blocks.6.hook_resid_pre')")
        self.model_fingerprint_ = (
            source.manifest["model"].get("weights_sha256_16") if isinstance(source, ActivationStore) else None
        )
        chunks, n_rows = self._chunks(source, site, site_out)
        budget = self.n_tokens or n_rows
        gen = torch.Generator().manual_seed(self.seed)
        first_x, first_y = next(iter(self._stream(chunks, min(budget, self.buffer), gen)))
        d_in, d_out = first_x.shape[1], first_y.shape[1]
        d_sae = self.expansion * d_in
        if self.k > d_sae:
            raise DictionaryError(f"k={self.k} exceeds the dictionary's {d_sae} features")
        # scales that bring the mean norm to sqrt(width), estimated on the first rows
        s_in = math.sqrt(d_in) / float(first_x.norm(dim=-1).mean().clamp(min=1e-12))
        s_out = (
            s_in if site_out in (None, site) else math.sqrt(d_out) / float(first_y.norm(dim=-1).mean().clamp(min=1e-12))
        )

        W_dec = torch.randn(d_sae, d_out, generator=gen)
        W_dec /= W_dec.norm(dim=-1, keepdim=True)
        W_enc = W_dec.T.clone() if d_in == d_out else torch.randn(d_in, d_sae, generator=gen) / math.sqrt(d_in)
        params = {
            "W_enc": W_enc.requires_grad_(),
            "b_enc": torch.zeros(d_sae, requires_grad=True),
            "W_dec": W_dec.requires_grad_(),
            "b_dec": (first_y * s_out).mean(0).clone().requires_grad_(),
        }
        transcoder = site_out not in (None, site)
        lr = self.lr or DEFAULT_LR
        optimizer = torch.optim.Adam(params.values(), lr=lr, betas=(0.9, 0.999), eps=6.25e-10)
        aux_k = self.aux_k or min(d_in // 2, d_sae)
        since_fired = torch.zeros(d_sae, dtype=torch.long)
        rows: list[dict] = []
        steps = -(-budget // self.batch_size)
        start = time.perf_counter()
        seen = 0
        bar = tqdm(total=budget, desc="dictionary", unit="tok", unit_scale=True, disable=not self.progress)
        for step, (x, y) in enumerate(self._stream(chunks, budget, gen)):
            x, y = x * s_in, y * s_out
            pre = (x if transcoder else x - params["b_dec"]) @ params["W_enc"] + params["b_enc"]
            values, indices = pre.topk(self.k, dim=-1, sorted=False)
            values = values.relu()
            recon = F.embedding_bag(indices, params["W_dec"], per_sample_weights=values, mode="sum") + params["b_dec"]
            variance = (y - y.mean(0)).pow(2).sum(-1).mean().clamp(min=1e-12)
            mse = (recon - y).pow(2).sum(-1).mean()
            fired = torch.zeros(d_sae, dtype=torch.bool).index_fill_(0, indices[values > 0].unique(), True)
            since_fired = torch.where(fired, 0, since_fired + len(x))
            dead = since_fired >= self.dead_after
            aux = torch.zeros(())
            if dead.any():
                residual = (y - recon).detach()
                k_dead = min(aux_k, int(dead.sum()))
                masked = pre.masked_fill(~dead, float("-inf"))
                a_values, a_indices = masked.topk(k_dead, dim=-1, sorted=False)
                aux_recon = F.embedding_bag(a_indices, params["W_dec"], per_sample_weights=a_values.relu(), mode="sum")
                aux = (aux_recon - residual).pow(2).sum(-1).mean() / variance
            loss = mse / variance + self.aux_coef * aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                W, g = params["W_dec"], params["W_dec"].grad
                assert g is not None
                g -= (g * W).sum(-1, keepdim=True) * W  # no step along a row: its norm stays 1
                optimizer.step()
                W /= W.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            seen += len(x)
            bar.update(len(x))
            fvu = float(mse.detach() / variance)
            if step % self.log_every == 0 or step == steps - 1:
                rows.append(
                    {
                        "step": step,
                        "tokens": seen,
                        "fvu": fvu,
                        "aux": float(aux.detach()),
                        "dead_share": float(dead.float().mean()),
                        "seconds": time.perf_counter() - start,
                    }
                )
                bar.set_postfix(fvu=f"{fvu:.3f}", dead=f"{float(dead.float().mean()):.1%}")
        bar.close()
        self.history_ = pd.DataFrame(rows)
        self.tokens_per_second_ = seen / max(time.perf_counter() - start, 1e-9)
        self.dictionary_ = self._folded(params, s_in, s_out, site, site_out, model_name, seen)
        return self

    def _folded(
        self,
        params: dict[str, Tensor],
        s_in: float,
        s_out: float,
        site: str,
        site_out: str | None,
        model_name: str | None,
        seen: int,
    ) -> SparseDictionary:
        """The trained weights with the input and output scales folded in: the dictionary of the raw values."""
        d_in, d_sae = params["W_enc"].shape
        d_out = params["W_dec"].shape[1]
        info = {"trainer": "probes.sparse.TopKTrainer", **self.get_params(), "tokens_seen": seen}
        if self.model_fingerprint_:  # the weights it was trained on: applying it to another model is refused
            info["model_weights_sha256_16"] = self.model_fingerprint_
        info.update(input_scale=s_in, output_scale=s_out)
        sae = SparseDictionary(
            d_in, d_sae, site=site, site_out=site_out, k=self.k, d_out=d_out, model_name=model_name, info=info
        )
        with torch.no_grad():
            sae.W_enc.copy_(params["W_enc"] * s_in)
            sae.b_enc.copy_(params["b_enc"])
            sae.W_dec.copy_(params["W_dec"] / s_out)
            sae.b_dec.copy_(params["b_dec"] / s_out)
        return sae
