"""A scale ladder that trains here: GPT-2-style models of several sizes on synthetic tasks.

``train_rung(rung, config)`` trains one model on a mixture of multi-digit addition and in-context
associative recall (``probes.probing.datasets.synthetic``), fresh examples every step, loss on the
answer tokens only, and hands each checkpoint to a callback. ``probes.pipelines.ladder.train_ladder``
saves every rung as a Hugging Face folder (config, safetensors weights, a one-character-per-token
tokenizer) with checkpoints in ``<rung>/checkpoints/step-<k>``, so every instrument loads it like
any other model; ``evaluate_ladder`` scores them on ``ladder_tasks``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from probes.core.loading import parameter_counts
from probes.core.provenance import content_hash
from probes.probing.datasets.synthetic import ALPHABET

PAD, BOS = "<pad>", "<bos>"


@dataclass(frozen=True)
class Rung:
    n_layer: int
    n_embd: int
    n_head: int

    @property
    def name(self) -> str:
        return f"gpt2-l{self.n_layer}-d{self.n_embd}"


@dataclass
class LadderConfig:
    """What the ladder trains; the defaults train seven sizes (1.5k to 60k parameters), two seeds each, in
    under 5 minutes on 2 cores with two processes.

    ``lr`` is the peak learning rate up to 48 dimensions; wider models use ``lr * 48 / width``
    (with one rate for all, the widest models trained worst).
    """

    rungs: tuple[Rung, ...] = (
        Rung(1, 8, 2),
        Rung(1, 12, 2),
        Rung(1, 16, 2),
        Rung(1, 20, 2),
        Rung(1, 24, 2),
        Rung(1, 32, 4),
        Rung(2, 48, 4),
    )
    steps: int = 2500
    batch_size: int = 128
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    checkpoints: tuple[int, ...] = (250, 500, 1000, 1500, 2000)
    digits: int = 3
    pairs: int = 6
    train_queries: int = 1  # recall answers per training sequence (more did not teach recall, and slowed addition)
    replicates: int = 2  # models per size, from different seeds: one seed per size is too noisy to call a shape
    seed: int = 0
    threads: int | None = None  # torch threads while training (default: as set); with processes, per process
    processes: int = 1  # models trained at once, each in its own local process (pipelines only)

    @classmethod
    def tiny(cls) -> LadderConfig:
        """Five sizes, a few dozen steps: for tests (seconds), not for conclusions."""
        return cls(
            rungs=(Rung(1, 8, 2), Rung(1, 16, 2), Rung(2, 16, 2), Rung(2, 32, 4), Rung(3, 48, 4)),
            steps=30,
            batch_size=32,
            warmup=5,
            checkpoints=(10, 20),
            replicates=1,
        )

    @classmethod
    def demo(cls) -> LadderConfig:
        """For ``probes demo``: six of the seven sizes (not 2.7k parameters), two seeds each, 2,000 steps, three
        checkpoints: about 3 minutes on 2 cores with two processes instead of 5. Tried and dropped: one seed per size
        (the partial-credit metrics went up and down with size: which seed learns is luck here), 1,500 steps (mid
        sizes caught mid-transition) and five sizes (the verdicts changed with the metric): all `irregular` or
        mixed where this setting finds the same jump under every metric."""
        return cls(rungs=tuple(r for r in cls.rungs if r.n_embd != 12), steps=2000, checkpoints=(500, 1000, 1500))

    def members(self) -> list[tuple[Rung, int, str]]:
        """(rung, replicate, folder name) of every model the ladder trains, smallest first."""
        return [(rung, r, f"{rung.name}-r{r}") for rung in self.rungs for r in range(self.replicates)]

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("threads")  # how fast, not what is trained
        d.pop("processes")
        return d


def char_tokenizer():
    """One token per character of the synthetic tasks' alphabet, plus padding and BOS.

    Like GPT-2's training sequences here, encoded text starts with BOS (unless
    ``add_special_tokens=False``), so every instrument of the toolkit feeds the ladder's
    models what they were trained on.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([PAD, BOS, *ALPHABET])}
    core = Tokenizer(models.WordLevel(vocab, unk_token=PAD))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=BOS, unk_token=PAD)


def word_tokenizer(words: list[str]):
    """A whitespace word-level tokenizer over ``words`` (PAD and BOS first); encoded text starts with BOS, as
    the ladder's does."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=PAD))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=BOS, unk_token=PAD)


def _digits(x: torch.Tensor, width: int) -> torch.Tensor:
    """Integers (B,) -> their decimal digits (B, width), most significant first."""
    powers = 10 ** torch.arange(width - 1, -1, -1)
    return (x[:, None] // powers) % 10


class TrainingStream:
    """Batches of fresh task examples as token ids, made with tensor ops (Python per example is too slow)."""

    def __init__(self, config: LadderConfig, generator: torch.Generator):
        self.c, self.g = config, generator
        self.ids = {t: i for i, t in enumerate([PAD, BOS, *ALPHABET])}

    def _tok(self, chars: str) -> int:
        return self.ids[chars]

    def addition(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``123+456=9750``: the sum's digits reversed (the answers)."""
        d, g = self.c.digits, self.g
        a, b = torch.randint(10**d, (n,), generator=g), torch.randint(10**d, (n,), generator=g)
        digit0 = self._tok("0")
        answer = _digits(a + b, d + 1).flip(1) + digit0
        plus, eq = torch.full((n, 1), self._tok("+")), torch.full((n, 1), self._tok("="))
        bos = torch.full((n, 1), self._tok(BOS))
        seq = torch.cat([bos, _digits(a, d) + digit0, plus, _digits(b, d) + digit0, eq, answer], 1)
        answers = torch.zeros_like(seq, dtype=torch.bool)
        answers[:, -(d + 1) :] = True
        return seq, answers

    def recall(self, n: int, queries: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``a3c7f1b9|c7a3``: after the context, ``queries`` keys each followed by its value (the answers)."""
        k, g = self.c.pairs, self.g
        keys = torch.rand(n, 16, generator=g).argsort(1)[:, :k] + self._tok("a")
        values = torch.rand(n, 10, generator=g).argsort(1)[:, :k] + self._tok("0")
        asked = torch.rand(n, k, generator=g).argsort(1)[:, :queries]
        context = torch.stack([keys, values], 2).reshape(n, 2 * k)
        bos, bar = torch.full((n, 1), self._tok(BOS)), torch.full((n, 1), self._tok("|"))
        qa = torch.stack([keys.gather(1, asked), values.gather(1, asked)], 2).reshape(n, 2 * queries)
        seq = torch.cat([bos, context, bar, qa], 1)
        answers = torch.zeros_like(seq, dtype=torch.bool)
        answers[:, 2 * k + 3 :: 2] = True
        return seq, answers

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, labels): half addition, half recall, right-padded; labels are -100 except on answers."""
        n = self.c.batch_size
        parts = [self.addition(n // 2), self.recall(n - n // 2, self.c.train_queries)]
        width = max(seq.shape[1] for seq, _ in parts)
        ids, labels = [], []
        for seq, answers in parts:
            pad = torch.full((seq.shape[0], width - seq.shape[1]), self.ids[PAD])
            ids.append(torch.cat([seq, pad], 1))
            labels.append(torch.where(torch.cat([answers, pad.bool() & False], 1), ids[-1], -100))
        return torch.cat(ids), torch.cat(labels)


def make_model(rung: Rung, vocab_size: int, n_positions: int = 32, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=rung.n_embd,
        n_layer=rung.n_layer,
        n_head=rung.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
        # GPT-2's gelu_new to 2.4e-7, computed as one fused op (its four separate ops were a fifth of a step)
        activation_function="gelu_pytorch_tanh",
        loss_type="ForCausalLM",  # type: ignore[call-arg]  # a PretrainedConfig keyword the stubs leave out
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def _lr(step: int, c: LadderConfig, width: int) -> float:
    """Linear warm-up, cosine decay to zero; the peak shrinks as 1 / width above 48."""
    peak = c.lr * min(1.0, 48 / width)
    if step < c.warmup:
        return peak * (step + 1) / c.warmup
    progress = (step - c.warmup) / max(1, c.steps - c.warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def rung_seed(rung: Rung, config: LadderConfig, replicate: int) -> int:
    return config.seed * 1000 + 10 * config.rungs.index(rung) + replicate


def train_rung(
    rung: Rung,
    config: LadderConfig,
    *,
    replicate: int = 0,
    bar: tqdm | None = None,
    checkpoint: Callable[[Any, Any, dict], None] | None = None,
) -> tuple[Any, Any, dict]:
    """Train one model of one size: (model, tokenizer, what it is). ``checkpoint(model, tokenizer, meta)`` is
    called at each of the config's checkpoint steps (the pipeline saves them; nothing here touches disk)."""
    tokenizer = char_tokenizer()
    seed = rung_seed(rung, config, replicate)
    model = make_model(rung, len(tokenizer), seed=seed)
    model.train()
    stream = TrainingStream(config, torch.Generator().manual_seed(seed))
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.98))
    total, non_embedding = parameter_counts(model)
    meta = {
        "rung": asdict(rung),
        "replicate": replicate,
        "seed": seed,
        "config": config.to_dict(),
        "config_hash": content_hash(config.to_dict()),
        "parameters": total,
        "non_embedding_parameters": non_embedding,
    }
    tokens = 0
    with _quiet_padding_warning():
        for step in range(1, config.steps + 1):
            for group in optimiser.param_groups:
                group["lr"] = _lr(step - 1, config, rung.n_embd)
            ids, labels = stream.batch()
            tokens += ids.numel()
            loss = model(input_ids=ids, labels=labels).loss
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            if bar is not None:
                bar.update(1)
                if step % 50 == 0:
                    bar.set_postfix(rung=rung.name, loss=f"{loss.item():.3f}")
            if step in config.checkpoints and checkpoint is not None:
                model.eval()
                checkpoint(model, tokenizer, {**meta, "step": step, "tokens": tokens})
                model.train()
    model.eval()
    return model, tokenizer, {**meta, "step": config.steps, "tokens": tokens}


@contextmanager
def _quiet_padding_warning():
    """Training rows are right-padded after their answers, which a causal model never attends back to, so
    transformers' "pass an attention_mask" warning does not apply; the mask is left out to keep the
    forward pass the one the ladder's numbers were measured with."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def ladder_tasks(config: dict[str, Any], n: int) -> list:
    """The held-out test tasks of a ladder trained with ``config``: addition and recall, from another seed than
    training's (which draws its examples from a torch generator)."""
    from probes.probing.datasets.synthetic import ANSWER_SYMBOLS, make_task
    from probes.scale.evaluate import GenerationTask

    test_seed = 10_000 + config["seed"]
    return [
        GenerationTask("addition", make_task("addition", n, digits=config["digits"], seed=test_seed), ANSWER_SYMBOLS),
        GenerationTask("recall", make_task("recall", n, pairs=config["pairs"], seed=test_seed), ANSWER_SYMBOLS),
    ]


__all__ = ["LadderConfig", "Rung", "char_tokenizer", "ladder_tasks", "train_rung"]
