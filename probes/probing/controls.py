"""Controls that turn a probe's accuracy into evidence about the model.

* ``control_labels``: Hewitt & Liang (2019) control task: every word *type*
  gets a random label drawn from the task's label distribution; a probe that
  scores well on it is memorising types. Selectivity = task acc - control acc.
* ``random_weights``: the same architecture with re-initialised weights, so
  "learned in training" is told from "given by the architecture".
* ``online_codelength``: MDL probing (Voita & Titov 2020), online code.
* ``bootstrap_ci``: percentile intervals, resampling whole sentences (tokens of
  one sentence are not independent).
* ``layer_profile``: best layer and expected layer (Tenney et al. 2019).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import AutoModel, AutoModelForCausalLM

from probes.core.models import LoadedModel

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


def bootstrap_ci(
    correct: np.ndarray, groups: np.ndarray | None = None, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile CI of a mean accuracy; ``correct`` (m,) or (L, m) 0/1, resampled by ``groups``.

    Returns (low, high), each of shape (L,) when ``correct`` is 2-D.
    """
    correct = np.atleast_2d(np.asarray(correct, dtype=np.float64))
    groups = np.arange(correct.shape[1]) if groups is None else np.asarray(groups)
    ids, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((correct.shape[0], len(ids)))
    np.add.at(sums.T, inverse, correct.T)
    sizes = np.bincount(inverse).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ids), size=(n_boot, len(ids)))
    counts = np.zeros((n_boot, len(ids)))
    np.add.at(counts, (np.repeat(np.arange(n_boot), len(ids)), draws.ravel()), 1)  # multiplicity of each group per draw
    acc = (counts @ sums.T) / (counts @ sizes)[:, None]  # (n_boot, L)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(acc, [tail, 100 - tail], axis=0)
    return (low, high) if correct.shape[0] > 1 else (float(low[0]), float(high[0]))


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


def layer_profile(scores: Sequence[float]) -> dict[str, float]:
    """Best layer and expected layer from per-layer scores (layer 0 = embeddings).

    Expected layer (Tenney et al. 2019, differential scores): sum_l l * d_l / sum_l d_l with
    d_l = score_l - score_{l-1}; only improvements count here (d_l clipped at 0), so a
    profile that rises then decays is not pulled below its rise.
    """
    s = np.asarray(scores, dtype=np.float64)
    delta = np.clip(np.diff(s), 0, None)
    layers = np.arange(1, len(s))
    expected = float((layers * delta).sum() / delta.sum()) if delta.sum() > 0 else 0.0
    return {"best_layer": int(np.argmax(s)), "best_score": float(s.max()), "expected_layer": expected}
