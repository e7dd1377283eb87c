"""Synthetic generation tasks with known answers, for the scale ladder and any causal LM.

Each example is a dict ``{"prompt", "target", "options", "answer_index"}``: the model
reads ``prompt``, should continue with ``target``, and ``options`` (which contain
``target`` at ``answer_index``) are what a multiple-choice reading scores.

- ``addition``: ``"123+456="`` -> the sum's digits *reversed* and zero-padded to
  ``digits + 1`` (``"9750"``), so a model writes the low digit, whose carry it
  needs next, first. Options: the sum and three near misses (+-1, +-10, ...).
- ``recall``: in-context associative recall, the task behind induction heads:
  ``"a3c7f1b9|c"`` -> ``"7"``. Keys are distinct letters, values distinct
  digits; the options are the values in the context. A one-layer transformer
  cannot solve it (the value's position does not know its key without an
  earlier layer moving it there).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from .base import DatasetError

SYNTHETIC_TASKS = ("addition", "recall")
# One token per character; the ladder's tokenizer is built from this alphabet.
ALPHABET = tuple(string.digits + "+=|" + string.ascii_lowercase[:16])
ANSWER_SYMBOLS = 10  # both tasks answer in digits: the per-token chance level is 1/10


def addition(n: int, *, digits: int = 3, seed: int = 0) -> list[dict]:
    if digits < 1:
        raise DatasetError(f"addition needs digits >= 1, got {digits}")
    rng = random.Random(f"addition:{digits}:{seed}")
    top = 10**digits
    width = digits + 1
    rows = []
    for _ in range(n):
        a, b = rng.randrange(top), rng.randrange(top)
        total = a + b
        near = {total + d for d in (1, -1, 10, -10, 100, -100, 2 * top // 10) if 0 <= total + d < 10**width} - {total}
        distractors = rng.sample(sorted(near), 3)
        values = [total, *distractors]
        rng.shuffle(values)
        options = [str(v).zfill(width)[::-1] for v in values]
        rows.append(
            {
                "prompt": f"{a:0{digits}d}+{b:0{digits}d}=",
                "target": options[values.index(total)],
                "options": options,
                "answer_index": values.index(total),
            }
        )
    return rows


def recall(n: int, *, pairs: int = 6, seed: int = 0) -> list[dict]:
    keys_alphabet = string.ascii_lowercase[:16]
    if not 2 <= pairs <= 10:
        raise DatasetError(f"recall needs 2 to 10 key-value pairs (values are distinct digits), got {pairs}")
    rng = random.Random(f"recall:{pairs}:{seed}")
    rows = []
    for _ in range(n):
        keys = rng.sample(keys_alphabet, pairs)
        values = rng.sample(string.digits, pairs)
        asked = rng.randrange(pairs)
        context = "".join(k + v for k, v in zip(keys, values))
        rows.append(
            {
                "prompt": f"{context}|{keys[asked]}",
                "target": values[asked],
                "options": list(values),
                "answer_index": asked,
            }
        )
    return rows


def make_task(name: str, n: int, *, seed: int = 0, **options) -> list[dict]:
    """``name`` is ``addition`` or ``recall``; keyword options go to its generator."""
    generators: dict[str, Callable[..., list[dict]]] = {"addition": addition, "recall": recall}
    if name not in generators:
        raise DatasetError(f"unknown synthetic task {name!r}; choose from {', '.join(SYNTHETIC_TASKS)}")
    return generators[name](n, seed=seed, **options)
