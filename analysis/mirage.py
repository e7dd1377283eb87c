"""Score the same per-example outputs under discontinuous and continuous metrics (Schaeffer et al. 2023).

A jump seen only under an all-or-nothing metric, and not under a metric that gives
partial credit to the same generations, is a property of the metric, not the model.
Per-example outputs are rows with

    model | task | example | target (tokens) | generated (tokens) | target_logprob | option_logprobs | answer_index

(``option_logprobs`` and ``answer_index`` only where the task has options), plus any
size columns of the scale table, which are carried through. Tokens are lists of
strings or ids.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

DISCONTINUOUS = ("exact_match", "mc_accuracy")
CONTINUOUS = ("token_accuracy", "token_edit_distance", "target_logprob", "brier")
_CARRIED = ("model", "family", "parameters", "non_embedding_parameters", "tokens", "step", "task")


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two token sequences (insertions, deletions, substitutions cost 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def token_accuracy(generated: Sequence, target: Sequence) -> float:
    """Share of target positions whose generated token matches (a missing token counts as wrong)."""
    if not target:
        raise ValueError("a target needs at least one token")
    return sum(g == t for g, t in zip(generated, target)) / len(target)


def brier(option_logprobs: Sequence[float], answer_index: int) -> float:
    """Multi-class Brier score of the options' renormalised probabilities: sum_k (q_k - [k = answer])^2, in [0, 2]."""
    scores = np.asarray(option_logprobs, dtype=float)
    q = np.exp(scores - scores.max())
    q /= q.sum()
    truth = np.zeros_like(q)
    truth[answer_index] = 1.0
    return float(((q - truth) ** 2).sum())


def score_examples(outputs: pd.DataFrame) -> pd.DataFrame:
    """Per-example outputs -> one column per metric (NaN where the output lacks what a metric needs)."""
    missing = [c for c in ("model", "task", "target", "generated") if c not in outputs.columns]
    if missing:
        raise ValueError(f"per-example outputs lack column(s) {', '.join(missing)}")
    frame = outputs.copy()
    frame["exact_match"] = [
        float(list(g[: len(t)]) == list(t) and len(g) >= len(t)) for g, t in zip(frame["generated"], frame["target"])
    ]
    frame["token_accuracy"] = [token_accuracy(g, t) for g, t in zip(frame["generated"], frame["target"])]
    frame["token_edit_distance"] = [
        float(edit_distance(list(g[: len(t)]), list(t))) for g, t in zip(frame["generated"], frame["target"])
    ]
    if "target_logprob" not in frame.columns:
        frame["target_logprob"] = np.nan
    has_options = "option_logprobs" in frame.columns and "answer_index" in frame.columns
    options: Iterable[tuple[Any, Any]] = (
        zip(frame["option_logprobs"], frame["answer_index"]) if has_options else [(None, None)] * len(frame)
    )
    mc, brier_scores = [], []
    for logprobs, answer in options:
        known = _has(logprobs)
        mc.append(float(int(np.argmax(logprobs)) == int(answer)) if known else np.nan)
        brier_scores.append(brier(logprobs, int(answer)) if known else np.nan)
    frame["mc_accuracy"], frame["brier"] = mc, brier_scores
    return frame


def _has(options) -> bool:
    return options is not None and not (isinstance(options, float) and math.isnan(options)) and len(options) > 1


def chance_levels(target_length: int, alphabet: int, n_options: int | None = None) -> dict[str, float]:
    """Expected score of uniform guessing: each answer token from ``alphabet`` symbols, one of ``n_options``."""
    levels = {
        "exact_match": alphabet**-target_length,
        "token_accuracy": 1 / alphabet,
        "token_edit_distance": target_length * (1 - 1 / alphabet),  # substitutions only: an upper bound
        "target_logprob": -target_length * math.log(alphabet),
    }
    if n_options:
        levels.update(mc_accuracy=1 / n_options, brier=1 - 1 / n_options)
    return levels


def aggregate(scored: pd.DataFrame, chance: dict[str, dict[str, float]] | None = None) -> pd.DataFrame:
    """Per-example scores -> scale-table rows: mean, standard error and n per model, task and metric.

    ``chance`` maps task -> metric -> chance level, written into the ``chance`` column.
    """
    keys = [c for c in _CARRIED if c in scored.columns]
    rows = []
    for ident, group in scored.groupby(keys, dropna=False, sort=False):
        ident = dict(zip(keys, ident if isinstance(ident, tuple) else (ident,)))
        for metric in (*DISCONTINUOUS, *CONTINUOUS):
            values = group[metric].dropna().to_numpy(dtype=float)
            if not len(values):
                continue
            stderr = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
            rows.append(
                {
                    **ident,
                    "metric": metric,
                    "value": float(values.mean()),
                    "stderr": stderr,
                    "n": len(values),
                    "chance": (chance or {}).get(str(ident.get("task")), {}).get(metric),
                }
            )
    return pd.DataFrame(rows)
