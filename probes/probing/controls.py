"""Controls that turn a probe's accuracy into evidence about the model.

* ``control_labels``: Hewitt & Liang (2019) control task: every word *type*
  gets a random label drawn from the task's label distribution; a probe that
  scores well on it is memorising types. Selectivity = task acc - control acc.
* ``random_weights``: the same architecture with re-initialised weights, so
  "learned in training" is told from "given by the architecture".
* ``online_codelength``: MDL probing (Voita & Titov 2020), online code.

The statistics of a probe's layer profile (bootstrap CIs, best and expected layer) live in
``probes.probing.profile``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import AutoModel, AutoModelForCausalLM

from probes.core.model import LoadedModel

# Voita & Titov's block boundaries, as fractions of the training set
MDL_FRACTIONS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)


def control_labels(types: Sequence[str] | np.ndarray, labels: Sequence | np.ndarray, seed: int = 0) -> np.ndarray:
    """One random label per word type, drawn from the empirical label distribution."""
    forms = np.asarray([str(t).lower() for t in types])
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    rng = np.random.default_rng(seed)
    vocab = np.unique(forms)
    assigned = dict(zip(vocab, rng.choice(values, size=len(vocab), p=counts / counts.sum())))
    return np.asarray([assigned[t] for t in forms])


def online_codelength(
    n_classes: int,
    y: np.ndarray,
    fit_predict_proba: Callable[[np.ndarray, np.ndarray], np.ndarray],
    fractions: Sequence[float] = MDL_FRACTIONS,
) -> dict[str, np.ndarray | float]:
    """Online (prequential) codelength in bits of labels ``y`` (integer classes, in transmission order).

    The first block is sent with the uniform code; each later block with a probe
    trained on everything before it: ``fit_predict_proba(train_idx, block_idx)``
    returns probabilities (len(block), n_classes), or (L, len(block), n_classes)
    to code L layers at once. Compression = uniform codelength / online codelength.
    """
    y = np.asarray(y)
    n = len(y)
    bounds = sorted({max(1, round(f * n)) for f in fractions} | {n})
    uniform = n * np.log2(n_classes)
    bits: np.ndarray | float = bounds[0] * np.log2(n_classes)
    for start, end in itertools.pairwise(bounds):
        train, block = np.arange(start), np.arange(start, end)
        if len(np.unique(y[train])) < 2:  # nothing to fit yet: uniform code for this block
            bits = bits + len(block) * np.log2(n_classes)
            continue
        proba = np.clip(np.asarray(fit_predict_proba(train, block)), 1e-12, 1.0)
        picked = np.take_along_axis(proba, np.broadcast_to(y[block][:, None], proba.shape[:-1] + (1,)), -1)[..., 0]
        bits = bits - np.log2(picked).sum(-1)
    return {"codelength_bits": bits, "uniform_bits": float(uniform), "compression": uniform / np.asarray(bits)}


def random_weights(lm: LoadedModel, seed: int = 0) -> LoadedModel:
    """The same architecture and tokenizer with freshly initialised weights (HF's own init)."""
    torch.manual_seed(seed)
    auto = AutoModelForCausalLM if lm.adapter.causal else AutoModel
    model = auto.from_config(lm.model.config).to(device=lm.device, dtype=lm.dtype).eval()
    return LoadedModel(
        model,
        lm.tokenizer,
        lm.adapter,
        f"{lm.name}-random-init",
        lm.source,
        lm.revision,
        {"random_init_seed": seed, "of": lm.fingerprint},
    )
