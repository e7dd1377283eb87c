"""Helpers the tests of several tiers share (``pythonpath = tests`` in pyproject)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch

from probes.causal.behaviours import Batch, Behaviour, PooledPayload
from probes.causal.reference import token_positions
from probes.core.align import encode


def lm_eval_file(path, model: str, revision: str | None, acc: float, params: int | None, old: bool = False):
    """A results file as lm-evaluation-harness v0.4 writes it (``old``: the pre-0.4 key names)."""
    if old:
        results = {"arc_easy": {"acc": acc, "acc_stderr": 0.01, "acc_norm": acc - 0.01, "acc_norm_stderr": 0.012}}
    else:
        results = {
            "arc_easy": {
                "alias": "arc_easy",
                "acc,none": acc,
                "acc_stderr,none": 0.01,
                "acc_norm,none": acc - 0.01,
                "acc_norm_stderr,none": "N/A",
            },
            "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": acc / 2, "exact_match_stderr,strict-match": 0.005},
        }
    args = f"pretrained={model}" + (f",revision={revision}" if revision else "") + ",dtype=float32"
    blob = {
        "results": results,
        "n-samples": {"arc_easy": {"original": 2376, "effective": 2376}},
        "config": {
            "model": "hf",
            "model_args": args,
            "batch_size": 8,
            **({"model_num_parameters": params} if params else {}),
        },
        "versions": {"arc_easy": 1.0},
    }
    path.write_text(json.dumps(blob))
    return path


SIZES = np.logspace(4, 8, 8)  # 10k to 100M parameters, two per decade


def curve_rows(task: str, metric: str, values, *, n: int = 1000, stderr=None, chance=None) -> list[dict]:
    values = np.asarray(values, dtype=float)
    if stderr is None:
        stderr = np.sqrt(np.clip(values * (1 - values), 1e-4, None) / n)
    return [
        {
            "model": f"m{i}",
            "parameters": s,
            "task": task,
            "metric": metric,
            "value": v,
            "stderr": e,
            "n": n,
            "chance": chance,
        }
        for i, (s, v, e) in enumerate(zip(SIZES, values, np.broadcast_to(stderr, values.shape)))
    ]


def per_token(sizes=SIZES):
    """A smooth per-token accuracy: a power law in size, 0.1 at 10k parameters to 0.96 at 100M."""
    return 1 - 0.9 * (sizes / 1e4) ** -0.35


def imports_without(code: str, *modules: str) -> None:
    """Run ``code`` in a fresh interpreter and check that it imported none of ``modules``."""
    check = (
        f"{code}; import sys; loaded = [m for m in {list(modules)!r} if m in sys.modules]; assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def real_lm_eval_file(path, model: str, revision: str | None, scores: dict, *, choices: dict | None = None):
    """A results file shaped as lm-evaluation-harness 0.4 writes one for a hub model: ``model_args`` with the
    hub id (and ``revision=stepN``), ``higher_is_better``, ``n-samples``, task ``configs`` (``doc_to_choice`` a
    template string unless ``choices`` lists the options), no parameter count. ``scores``: task -> metric ->
    (value, stderr)."""
    directions = {"perplexity": False, "acc": True, "acc_norm": True, "word_perplexity": False}
    blob = {
        "results": {
            task: {
                "alias": task,
                **{f"{m},none": v for m, (v, _) in metrics.items()},
                **{f"{m}_stderr,none": e for m, (_, e) in metrics.items()},
            }
            for task, metrics in scores.items()
        },
        "group_subtasks": {task: [] for task in scores},
        "configs": {
            task: {
                "task": task,
                "output_type": "multiple_choice",
                "doc_to_choice": (choices or {}).get(task, "{{choices.text}}"),
            }
            for task in scores
        },
        "versions": {task: 1.0 for task in scores},
        "n-shot": {task: 0 for task in scores},
        "higher_is_better": {task: {m: directions[m] for m in metrics} for task, metrics in scores.items()},
        "n-samples": {task: {"original": 5153, "effective": 5153} for task in scores},
        "config": {
            "model": "hf",
            "model_args": f"pretrained={model}" + (f",revision={revision}" if revision else "") + ",dtype=float16",
            "batch_size": "16",
            "device": "cuda:0",
        },
        "git_hash": "4600d6b",
        "model_name": model,
        "model_name_sanitized": model.replace("/", "__"),
        "lm_eval_version": "0.4.9",
    }
    path.write_text(json.dumps(blob, indent=2))
    return path


class LinearReadout(Behaviour):
    """A fixed linear functional of the last block's ``site`` (its output by default), summed over each text's
    tokens: the metric is exactly linear in anything added straight into it."""

    name = "linear_readout"

    def __init__(self, texts, weight: torch.Tensor, site: str = "hook_resid_post"):
        self.texts, self.weight, self.site = list(texts), weight, site

    def readout(self, lm):
        return f"blocks.{lm.shape.n_layers - 1}.{self.site}"

    def prepare(self, lm):
        enc = encode(lm.tokenizer, self.texts)
        mask = enc.attention_mask
        pool = torch.block_diag(*[m.to(lm.dtype)[None] for m in mask])
        return [
            Batch(
                enc.model_inputs(lm.device),
                token_positions(mask),
                torch.arange(len(mask)),
                len(mask),
                PooledPayload(pool.to(lm.device)),
            )
        ]

    def score(self, lm, value, batch):
        pooled = batch.payload.pool @ value.reshape(-1, value.shape[-1])
        return pooled @ self.weight.to(value.device, value.dtype)
