"""The induction family: attention-only Llama models (rotary positions, one head per layer) trained here on
repeated random sequences, where in-context copying appears over training in the two-layer model only.

    model, tok, meta = train_induction(layers=2, checkpoint=save_it)   # save_it(model, tok, meta) per checkpoint
    induction_metrics(model)     # second-run loss, token accuracy, exact match; heads' prefix-matching scores

Each training sequence is BOS, 4 to 8 distinct random tokens (of 32), and the same tokens again. The varying
length leaves no fixed offset to copy from: the second run is predictable only by a head in block 1 that
finds the earlier occurrence of the current token through what a head in block 0 wrote about the token
before each position (K-composition; Olsson et al. 2022). A one-layer model can only learn which tokens
occurred (a loss near log of the run's length); the two-layer model's loss falls to near 0 once its
previous-token and induction heads form: the in-context learning phase change. The MLPs are zero and
frozen. Nothing here touches disk; ``probes.pipelines.ladder.train_induction_family`` saves the models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from probes.scale.ladder import BOS, PAD, word_tokenizer

INDUCTION_VOCAB, INDUCTION_LENGTH = 32, 8  # random tokens t0 .. t31; runs of at most 8
WIDTH = 64


@dataclass(frozen=True)
class InductionFamily:
    """What the induction family trains: one model per depth in ``layers``, checkpoints at ``checkpoints``
    (step 0: the untrained model). The defaults: one and two layers, 400 steps, about 25 s on 2 cores."""

    layers: tuple[int, ...] = (1, 2)
    steps: int = 400
    checkpoints: tuple[int, ...] = (0, 25, 50, 75, 100, 125, 150, 200, 250, 300)
    seed: int = 0
    threads: int | None = None

    def members(self) -> list[tuple[int, str]]:
        """(layers, folder name) of every model, shallowest first."""
        return [(layers, f"attn-only-l{layers}") for layers in self.layers]


def induction_tokenizer():
    """The family's tokenizer: t0 .. t31 (after PAD and BOS), one token per word."""
    return word_tokenizer([PAD, BOS, *(f"t{i}" for i in range(INDUCTION_VOCAB))])


def induction_batch(n: int, generator: torch.Generator, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, labels) of n sequences: BOS, ``length`` distinct random tokens (4 to 8 when None, drawn per
    sequence, so no fixed offset finds the repeat), the same tokens again, then padding; labels mark the
    second run's r_2 .. r_k (-100 elsewhere)."""
    width = 2 * INDUCTION_LENGTH + 1
    ids = torch.zeros(n, width, dtype=torch.long)  # PAD
    labels = torch.full((n, width), -100)
    for i in range(n):
        k = length or int(torch.randint(4, INDUCTION_LENGTH + 1, (1,), generator=generator))
        half = torch.randperm(INDUCTION_VOCAB, generator=generator)[:k] + 2  # t0's id is 2
        ids[i, : 2 * k + 1] = torch.cat([torch.ones(1, dtype=torch.long), half, half])
        labels[i, k + 2 : 2 * k + 1] = half[1:]
    return ids, labels


def make_model(layers: int, heads: int = 1, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=INDUCTION_VOCAB + 2,
        hidden_size=WIDTH,
        intermediate_size=4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=WIDTH // heads,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    for block in model.model.layers:  # attention only: the MLPs write nothing and never learn to
        for p in block.mlp.parameters():
            p.data.zero_()
            p.requires_grad_(False)
    return model


def train_induction(
    layers: int = 2,
    *,
    steps: int = 800,
    seed: int = 0,
    heads: int = 1,
    batch_size: int = 64,
    lr: float = 3e-3,
    checkpoints: Sequence[int] = (),
    checkpoint: Callable[[Any, Any, dict], None] | None = None,
    bar: Any = None,
    threads: int | None = None,
) -> tuple[Any, Any, dict]:
    """Train one model of the family: (model, tokenizer, what it is). ``checkpoint(model, tokenizer, meta)``
    is called at each step in ``checkpoints`` (0: the untrained model); ``bar`` (tqdm) is advanced per step.
    Two layers, 800 steps: about 20 s on 2 cores."""
    tok = induction_tokenizer()
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    meta = {"layers": layers, "heads": heads, "steps": steps, "seed": seed, "batch_size": batch_size, "lr": lr}
    try:
        model = make_model(layers, heads, seed)
        g = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
        tokens = 0
        for step in range(steps + 1):
            if step in checkpoints and checkpoint is not None and step < steps:
                checkpoint(model.eval(), tok, {**meta, "step": step, "tokens": tokens})
            if step == steps:
                break
            model.train()
            ids, labels = induction_batch(batch_size, g)  # right-padded: a causal model never attends to later pads
            loss = model(input_ids=ids, labels=labels).loss
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            tokens += int((ids != 0).sum())
            if bar is not None:
                bar.update(1)
    finally:
        torch.set_num_threads(previous)
    return model.eval(), tok, {**meta, "step": steps, "tokens": tokens}


@torch.no_grad()
def induction_metrics(model: Any, *, n: int = 256, seed: int = 1, length: int | None = None) -> dict[str, Any]:
    """On ``n`` held-out sequences drawn as in training (runs of 4 to 8 tokens, so no fixed offset finds the
    repeat): the second run's mean loss (nats), token accuracy (top-1 on r_2 .. r_k) and exact match (all of
    them right), and per head (``L{layer}H{head}``) its prefix-matching score (mean attention from each
    second-run token to the token after its first occurrence; Olsson et al.) and previous-token score
    (attention to the token just before). ``length`` fixes the run length instead."""
    device = next(model.parameters()).device  # the batch follows the model (a GPU, where it sits there)
    ids, labels = (t.to(device) for t in induction_batch(n, torch.Generator().manual_seed(seed), length))
    mask = (ids != 0).long()
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")  # attention weights exist only under eager attention
    try:
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    finally:
        model.set_attn_implementation(before)
    logits, target = out.logits[:, :-1], labels[:, 1:]
    scored = target != -100
    loss = torch.nn.functional.cross_entropy(logits[scored], target[scored])
    right = (logits.argmax(-1) == target) & scored
    metrics: dict[str, Any] = {
        "loss": float(loss),
        "token_accuracy": float(right.sum() / scored.sum()),
        "exact_match": float((right.sum(1) == scored.sum(1)).double().mean()),
        "n": n,
    }
    # (row, query, key) triples: second-run r_j (position k + j) -> first-run r_(j+1) (position j + 1), j < k
    lengths = (mask.sum(1) - 1) // 2
    rows, queries = [], []
    for r, k in enumerate(lengths.tolist()):
        rows += [r] * (k - 1)
        queries += list(range(k + 1, 2 * k))
    row, query = torch.tensor(rows, device=device), torch.tensor(queries, device=device)
    key = query - lengths[row] + 1
    real = mask[:, 1:].bool()  # queries after the first token that are not padding
    for layer, pattern in enumerate(out.attentions):  # (n, heads, T, T)
        prefix = pattern[row, :, query, key].double().mean(0)  # (heads,)
        q = torch.arange(1, ids.shape[1], device=device)
        previous = pattern[:, :, q, q - 1].transpose(1, 2)[real].double().mean(0)
        for head in range(pattern.shape[1]):
            scores = {
                "prefix_matching": float(prefix[head]),
                "previous_token": float(previous[head]),
            }
            metrics[f"L{layer}H{head}"] = scores
    return metrics


__all__ = [
    "INDUCTION_LENGTH",
    "INDUCTION_VOCAB",
    "induction_batch",
    "induction_metrics",
    "induction_tokenizer",
    "train_induction",
]
