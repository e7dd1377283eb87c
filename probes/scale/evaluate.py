"""Evaluate a family of causal LMs on generation tasks, keeping every example's outputs.

For each example the model generates greedily as many tokens as the target has,
and scores the target and every option by teacher-forced log-probability. These
per-example outputs are what ``analysis.mirage`` scores under all-or-nothing and
partial-credit metrics, and what the jump analysis resamples. Models are any list of
aliases, local folders or cached hub ids, including checkpoints of one model
(``revision="step1000"``). ``probes.pipelines.scale.evaluate_family`` runs a family into a
run folder, one unit per model.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from analysis.mirage import aggregate, chance_levels, score_examples
from analysis.scale_table import scale_table
from probes.causal.behaviours import BehaviourError, pad_right
from probes.core.loading import parameter_counts
from probes.core.model import LoadedModel


@dataclass
class GenerationTask:
    """Examples ``{"prompt", "target", "options"?, "answer_index"?}``; ``alphabet``: symbols per answer token, if
    known."""

    name: str
    examples: list[dict]
    alphabet: int | None = None

    def __post_init__(self) -> None:
        if not self.examples:
            raise BehaviourError(f"task {self.name!r} has no examples")
        for i, ex in enumerate(self.examples):
            if not ex.get("target"):
                raise BehaviourError(f"task {self.name!r} example {i} has no target")
            if "options" in ex and ex["options"][ex["answer_index"]] != ex["target"]:
                raise BehaviourError(f"task {self.name!r} example {i}: options[answer_index] is not the target")


@dataclass
class FamilyMember:
    """A member of the family: what to load, and its place on the scale axes."""

    source: str
    revision: str | None = None
    name: str | None = None  # the scale table's model name; checkpoints of one model share it
    step: int | None = None
    tokens: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or Path(self.source).name or self.source

    @property
    def slug(self) -> str:
        tag = f"{self.label}@{self.revision or ''}{'' if self.step is None else f'step{self.step}'}"
        return re.sub(r"[^A-Za-z0-9._@-]+", "_", tag)


@torch.no_grad()
def _greedy(lm: LoadedModel, prompts: list[list[int]], n_new: int) -> list[list[int]]:
    """Greedy continuation of equal-length prompts (no padding needed), ``n_new`` tokens each."""
    ids = torch.tensor(prompts, device=lm.device)
    for _ in range(n_new):
        next_ids = lm.model(input_ids=ids).logits[:, -1].argmax(-1)
        ids = torch.cat([ids, next_ids[:, None]], 1)
    return ids[:, -n_new:].tolist()


@torch.no_grad()
def _continuation_logprobs(lm: LoadedModel, prompts: list[list[int]], continuations: list[list[int]]) -> list[float]:
    """Sum of log p(continuation token | everything before it) for each (prompt, continuation)."""
    seqs = [p + c for p, c in zip(prompts, continuations)]
    ids, mask = pad_right(seqs, lm.tokenizer.pad_token_id)
    ids, mask = ids.to(lm.device), mask.to(lm.device)
    logp = torch.log_softmax(lm.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    out = []
    for r, (p, c) in enumerate(zip(prompts, continuations)):
        positions = torch.arange(len(p) - 1, len(p) + len(c) - 1, device=lm.device)
        out.append(float(logp[r, positions, torch.tensor(c, device=lm.device)].sum()))
    return out


def evaluate_task(lm: LoadedModel, task: GenerationTask, *, batch_size: int = 256) -> list[dict]:
    """Per-example outputs of one model on one task."""
    tok = lm.tokenizer
    encoded = [(lm.token_ids(ex["prompt"]), ex) for ex in task.examples]
    rows: list[dict] = [{} for _ in encoded]
    # greedy decoding batches prompts of one length and targets of one length
    by_shape: dict[tuple[int, int], list[tuple[int, list[int], list[int]]]] = defaultdict(list)
    for i, (prompt, ex) in enumerate(encoded):
        target = tok(ex["target"], add_special_tokens=False)["input_ids"]
        by_shape[len(prompt), len(target)].append((i, prompt, target))
    for (_, n_new), items in by_shape.items():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            generated = _greedy(lm, [p for _, p, _ in chunk], n_new)
            for (i, _, target), gen in zip(chunk, generated):
                rows[i] = {
                    "example": i,
                    "target": tok.convert_ids_to_tokens(target),
                    "generated": tok.convert_ids_to_tokens(gen),
                }
    pairs: list[tuple[int, int, list[int], list[int]]] = []  # (example, option index, prompt ids, continuation ids)
    for i, (prompt, ex) in enumerate(encoded):
        options = ex.get("options") or [ex["target"]]
        pairs += [(i, k, prompt, tok(o, add_special_tokens=False)["input_ids"]) for k, o in enumerate(options)]
    scores: dict[int, list[float]] = defaultdict(list)
    for start in range(0, len(pairs), batch_size):
        scored = pairs[start : start + batch_size]
        logprobs = _continuation_logprobs(lm, [p[2] for p in scored], [p[3] for p in scored])
        for (i, _, _, _), s in zip(scored, logprobs):
            scores[i].append(s)
    for i, (_, ex) in enumerate(encoded):
        if ex.get("options"):
            rows[i].update(
                option_logprobs=scores[i], answer_index=ex["answer_index"], target_logprob=scores[i][ex["answer_index"]]
            )
        else:
            rows[i]["target_logprob"] = scores[i][0]
    return rows


def task_chance(task: GenerationTask, outputs: pd.DataFrame) -> dict[str, float]:
    """Chance levels of a task's metrics, from its first example's options and target tokens.

    The per-token levels need the task's ``alphabet``; without it only the multiple-choice ones are known.
    """
    first = outputs[outputs["task"] == task.name].iloc[0]
    options = task.examples[0].get("options")
    n_options = len(options) if options else None
    if task.alphabet is None:
        return {"mc_accuracy": 1 / n_options, "brier": 1 - 1 / n_options} if n_options else {}
    return chance_levels(len(first["target"]), task.alphabet, n_options)


def model_rows(
    lm: LoadedModel,
    spec: FamilyMember,
    tasks: Sequence[GenerationTask],
    *,
    family: str = "family",
    batch_size: int = 256,
) -> list[dict]:
    """Per-example outputs of one model on every task, each row carrying the model's place on the scale axes."""
    if not lm.adapter.causal:
        raise BehaviourError(f"{spec.source} is an encoder ({lm.adapter.name}); generation tasks need a causal LM")
    total, non_embedding = parameter_counts(lm.model)
    ident = {
        "model": spec.label,
        "family": family,
        "parameters": total,
        "non_embedding_parameters": non_embedding,
        "step": spec.step,
        "tokens": spec.tokens,
        "revision": spec.revision,
        "fingerprint": lm.fingerprint,
        **spec.extra,
    }
    return [{**ident, "task": task.name, **r} for task in tasks for r in evaluate_task(lm, task, batch_size=batch_size)]


def family_tables(outputs: pd.DataFrame, tasks: Sequence[GenerationTask]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every model's per-example outputs -> (scale table, per-example scores under every metric)."""
    scored = score_examples(outputs)
    chance = {task.name: task_chance(task, outputs) for task in tasks}
    return scale_table(aggregate(scored, chance)), scored
