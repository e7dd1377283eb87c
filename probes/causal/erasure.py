"""Concept erasure (LEACE) in the residual stream, and amnesic probing against random erasures.

LEACE (Belrose et al. 2023, "LEACE: Perfect linear concept erasure in closed
form") finds the least-squares-smallest affine edit after which the features
and the concept labels have zero cross-covariance, so that no linear probe can
do better than a constant predictor::

    r(x) = x - W+ P W (x - mu)

with W = Sigma_XX^(-1/2) (whitening), W+ its pseudo-inverse, and P the orthogonal
projection onto the column space of W Sigma_XZ (Z: one-hot labels). The edit
has rank at most (classes - 1).

``amnesic_study`` applies the eraser to the residual stream entering a block during the forward pass
and compares the behaviour change with erasing random subspaces of the same
rank (x - Q Q^T (x - mu), Q orthonormal): if erasing the concept hurts far more
than erasing random directions, the behaviour uses the concept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from probes.causal.behaviours import Behaviour
from probes.causal.components import Component, Edit
from probes.causal.evaluator import Evaluator
from probes.core.model import LoadedModel
from probes.probing.datasets.base import DatasetError, ProbingDataset
from probes.probing.features import extract_features


@dataclass
class LeaceEraser:
    """x -> x - matrix @ (x - mean), fitted by ``fit``. ``rank`` directions are erased."""

    matrix: Tensor  # (d, d): W+ P W
    mean: Tensor  # (d,)
    rank: int

    @classmethod
    def fit(cls, X: Tensor | np.ndarray, labels: Sequence | np.ndarray, *, tol: float = 1e-12) -> LeaceEraser:
        """Fit on features X (n, d) and class labels (n,), in float64.

        ``tol`` drops covariance eigen-directions below ``tol`` x the largest. Keep it tiny:
        residual streams with massive activations have condition numbers near 1e9
        (smollm2-135m), and a low-variance direction can still carry the concept (at
        1e-6 the erasure left smollm's subject number readable at 0.91).
        """
        X = torch.as_tensor(np.asarray(X) if not isinstance(X, Tensor) else X).double()
        classes, y = np.unique(np.asarray(labels).astype(str), return_inverse=True)
        if X.ndim != 2 or len(y) != X.shape[0]:
            raise DatasetError(f"LEACE needs features (n, d) and n labels; got {tuple(X.shape)} and {len(y)} labels")
        if len(classes) < 2:
            raise DatasetError("LEACE needs labels of at least two classes")
        Z = torch.nn.functional.one_hot(torch.as_tensor(y), len(classes)).double()
        mean = X.mean(0)
        Xc, Zc = X - mean, Z - Z.mean(0)
        n = X.shape[0]
        cov = Xc.T @ Xc / n
        cross = Xc.T @ Zc / n  # (d, k)
        evals, evecs = torch.linalg.eigh(cov)
        keep = evals > tol * evals.max()
        inv_sqrt = (evecs[:, keep] * evals[keep].rsqrt()) @ evecs[:, keep].T  # W
        sqrt = (evecs[:, keep] * evals[keep].sqrt()) @ evecs[:, keep].T  # W+
        u, s, _ = torch.linalg.svd(inv_sqrt @ cross, full_matrices=False)
        u = u[:, s > tol * max(float(s.max()), 1e-300)]
        matrix = sqrt @ u @ u.T @ inv_sqrt
        return cls(matrix, mean, int(u.shape[1]))

    def __call__(self, X: Tensor) -> Tensor:
        m, mu = self.matrix.to(X.device, X.dtype), self.mean.to(X.device, X.dtype)
        return X - (X - mu) @ m.T

    def component(self, layer: int, label: str = "leace") -> Component:
        """The eraser as an edit of the residual stream entering block ``layer`` (its depth), for ``Evaluator``
        and ``ablate``."""
        return Edit(layer, self.matrix.float(), self.mean.float(), label)


def random_subspace_edit(d: int, rank: int, mean: Tensor, layer: int, seed: int) -> Component:
    """Erase a random ``rank``-dimensional subspace (orthogonal projection around the mean) at depth ``layer``."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, rank, generator=g, dtype=torch.float64))
    return Edit(layer, (q @ q.T).float(), mean.float(), f"random{rank}-{seed}")


def token_features(
    lm: LoadedModel, dataset: ProbingDataset, layer: int, *, batch_size: int = 32, split: str | None = None
) -> tuple[Tensor, np.ndarray]:
    """The residual stream at depth ``layer`` at every word token, labelled with its word's (or sentence's) label."""
    feats = extract_features(
        lm, dataset, [layer], pool="token", sentence_pool="token", batch_size=batch_size, split=split
    )
    return feats.X[0], feats.y


def check_erase_layers(layers: Sequence[int], n_layers: int) -> list[int]:
    """``layers`` if the residual stream can be edited at each (depths 0..n_layers - 1); else a one-line error."""
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise DatasetError(
            f"erase layers {bad}: the residual stream can be edited at depths 0..{n_layers - 1} "
            "(0 = embeddings, l = the output of block l - 1)"
        )
    return list(layers)


def amnesic_study(
    lm: LoadedModel,
    behaviour: Behaviour,
    concept: ProbingDataset,
    layers: Sequence[int],
    *,
    n_random: int = 5,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Per layer (the residual's depth, as probes count it): the behaviour after erasing ``concept`` (LEACE)
    against erasing random subspaces of equal rank.

    Also reports how well a fresh logistic probe reads the concept from the erased
    features (held-out split), which LEACE guarantees to be no better than chance.
    """
    from probes.probing.linear import fit_layers

    concept = concept.with_split(seed=seed)
    ev = Evaluator(lm, behaviour, kind="zero", progress=progress)
    check_erase_layers(layers, lm.shape.n_layers)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(layers) + 1, desc="amnesic probing", unit="stage", disable=not progress)
    bar.set_postfix_str(f"features of {concept.name}")
    train = extract_features(lm, concept, layers, pool="token", sentence_pool="token", split="train")
    test = extract_features(lm, concept, layers, pool="token", sentence_pool="token", split="test")
    bar.update()
    y_tr, y_te = train.y, test.y
    rows = []
    for i, layer in enumerate(layers):
        bar.set_postfix_str(f"layer {layer}: LEACE, {n_random} random erasures, probes before and after")
        X_tr, X_te = train.X[i], test.X[i]
        eraser = LeaceEraser.fit(X_tr, y_tr)
        randoms = [
            random_subspace_edit(X_tr.shape[1], eraser.rank, eraser.mean, layer, seed + k) for k in range(n_random)
        ]
        leace = eraser.component(layer, f"leace-{concept.name}")
        values = ev.values([[leace]] + [[r] for r in randoms]).mean(1)
        clean = float(ev.clean.mean())
        before = fit_layers(X_tr[None], y_tr, seed=seed).accuracy(X_te[None], y_te)[0]
        after = fit_layers(eraser(X_tr.double()).float()[None], y_tr, seed=seed).accuracy(
            eraser(X_te.double()).float()[None], y_te
        )[0]
        majority = float(pd.Series(y_te).value_counts(normalize=True).iloc[0])
        random_change = values[1:] - clean
        rows.append(
            {
                "layer": layer,
                "concept": concept.name,
                "rank": eraser.rank,
                "clean": clean,
                "leace": float(values[0]),
                "leace_change": float(values[0] - clean),
                "random_change_mean": float(random_change.mean()),
                "random_change_sd": float(random_change.std(ddof=1)) if n_random > 1 else np.nan,
                "probe_before": float(before),
                "probe_after": float(after),
                "majority": majority,
            }
        )
        bar.update()
    bar.close()
    return pd.DataFrame(rows)
