"""Shapley values, Shapley interaction indices and additivity of a behaviour over ablated components.

A game here is a value function over sets of components: ``v(S)`` is the
behaviour (per example) with the components of S ablated, ``v({})`` the clean
model. Player i's Shapley value is its marginal effect ``v(S + i) - v(S)``
averaged over the orders in which the players could be ablated; the values sum
to the full effect ``v(N) - v({})`` (efficiency), which the sampled estimate
keeps exactly because each sampled order's marginals telescope.

Everything takes ``values``: a function from a list of subsets to an array
(subsets, examples), such as ``Evaluator.values``; it is called with large
batches of subsets so a batched evaluator can share forwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from math import factorial

import numpy as np
import pandas as pd

Values = Callable[[list[frozenset]], np.ndarray]


@dataclass
class ShapleyResult:
    players: list  # components (or any hashable)
    values: np.ndarray  # (k,) Shapley value of each player (mean effect contribution)
    stderr: np.ndarray  # (k,) standard error over sampled permutations
    full_effect: float  # v(N) - v({})
    n_permutations: int
    subsets: list[frozenset]  # every subset evaluated on the sampled chains
    table: dict[frozenset, np.ndarray]  # subset -> per-example values

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"component": [str(p) for p in self.players], "shapley": self.values, "stderr": self.stderr}
        )


def shapley_values(values: Values, players: Sequence, *, n_permutations: int = 64, seed: int = 0) -> ShapleyResult:
    """Permutation-sampling Shapley values with antithetic pairs (each order and its reverse).

    ``n_permutations`` is rounded up to an even number. Standard errors treat each
    antithetic pair as one draw.
    """
    players = list(players)
    k = len(players)
    if k == 0:
        raise ValueError("Shapley values need at least one component")
    rng = np.random.default_rng(seed)
    half = max(1, (n_permutations + 1) // 2)
    orders = []
    for _ in range(half):
        order = rng.permutation(k)
        orders += [order, order[::-1]]
    chains = [[frozenset(players[j] for j in order[:t]) for t in range(k + 1)] for order in orders]
    subsets = list(dict.fromkeys(s for chain in chains for s in chain))
    table = dict(zip(subsets, values(subsets)))
    means = {s: float(v.mean()) for s, v in table.items()}
    marginals = np.zeros((len(orders), k))
    for o, (order, chain) in enumerate(zip(orders, chains)):
        for t, j in enumerate(order):
            marginals[o, j] = means[chain[t + 1]] - means[chain[t]]
    paired = (marginals[0::2] + marginals[1::2]) / 2
    stderr = paired.std(0, ddof=1) / np.sqrt(len(paired)) if len(paired) > 1 else np.full(k, np.nan)
    full = means[frozenset(players)] - means[frozenset()]
    return ShapleyResult(players, marginals.mean(0), stderr, full, len(orders), subsets, table)


def exact_shapley(values: Values, players: Sequence) -> np.ndarray:
    """Shapley values by enumerating all 2^k subsets (small k; the reference for tests)."""
    players = list(players)
    k = len(players)
    subsets = [frozenset(c) for r in range(k + 1) for c in combinations(players, r)]
    v = {s: float(x.mean()) for s, x in zip(subsets, values(subsets))}
    phi = np.zeros(k)
    for i, p in enumerate(players):
        for s in subsets:
            if p in s:
                continue
            weight = factorial(len(s)) * factorial(k - len(s) - 1) / factorial(k)
            phi[i] += weight * (v[s | {p}] - v[s])
    return phi


def interaction_indices(values: Values, players: Sequence, *, n_samples: int = 32, seed: int = 0) -> pd.DataFrame:
    """Shapley interaction index of every pair (Grabisch & Roubens 1999), by sampling.

    I(i, j) = E_S[v(S+i+j) - v(S+i) - v(S+j) + v(S)], S the players before the merged
    player {i, j} in a uniformly random order of the other players and that merged
    player. Negative: ablating both hurts less than the sum (redundancy); positive:
    more (the two are needed together). Returns a symmetric (k, k) frame, NaN diagonal.
    """
    players = list(players)
    k = len(players)
    rng = np.random.default_rng(seed)
    draws: dict[tuple[int, int], list[frozenset]] = {}
    for i, j in combinations(range(k), 2):
        others = [p for t, p in enumerate(players) if t not in (i, j)]
        sets = []
        for _ in range(n_samples):
            position = rng.integers(0, len(others) + 1)  # where the merged player falls
            order = rng.permutation(len(others))
            sets.append(frozenset(others[t] for t in order[:position]))
        draws[(i, j)] = sets
    needed = []
    for (i, j), sets in draws.items():
        for s in sets:
            needed += [s, s | {players[i]}, s | {players[j]}, s | {players[i], players[j]}]
    needed = list(dict.fromkeys(needed))
    means = {s: float(v.mean()) for s, v in zip(needed, values(needed))}
    grid = np.full((k, k), np.nan)
    for (i, j), sets in draws.items():
        pi, pj = players[i], players[j]
        grid[i, j] = grid[j, i] = np.mean(
            [means[s | {pi, pj}] - means[s | {pi}] - means[s | {pj}] + means[s] for s in sets]
        )
    names = [str(p) for p in players]
    return pd.DataFrame(grid, index=names, columns=names)


def exact_interaction_index(values: Values, players: Sequence, i: int, j: int) -> float:
    """The interaction index of one pair by enumeration (for tests)."""
    players = list(players)
    k = len(players)
    pi, pj = players[i], players[j]
    others = [p for t, p in enumerate(players) if t not in (i, j)]
    subsets = [frozenset(c) for r in range(len(others) + 1) for c in combinations(others, r)]
    needed = list(dict.fromkeys(x for s in subsets for x in (s, s | {pi}, s | {pj}, s | {pi, pj})))
    v = {s: float(x.mean()) for s, x in zip(needed, values(needed))}
    total = 0.0
    for s in subsets:
        weight = factorial(len(s)) * factorial(k - len(s) - 2) / factorial(k - 1)
        total += weight * (v[s | {pi, pj}] - v[s | {pi}] - v[s | {pj}] + v[s])
    return total


@dataclass
class Additivity:
    r2: float  # share of the variance of joint effects over subsets explained by the sum of single effects
    ci_low: float
    ci_high: float
    n_subsets: int
    sum_of_singles: float  # sum of single effects of all players
    full_effect: float  # joint effect of ablating all players


def additivity(
    values: Values, players: Sequence, subsets: Sequence[frozenset], *, n_boot: int = 200, seed: int = 0
) -> Additivity:
    """How far the joint effect of ablating a subset is the sum of its members' single effects.

    R^2 = 1 - sum_S (e(S) - sum_{i in S} e(i))^2 / sum_S (e(S) - mean e)^2 over the
    given subsets with at least two members (e: mean effect). 1: the behaviour reduces
    to separable parts; near 0 or below: it lives in their interaction. The CI
    bootstraps examples (percentile, 95%).
    """
    players = list(players)
    multi = list(dict.fromkeys(frozenset(s) for s in subsets if len(s) >= 2))
    if len(multi) < 2:
        raise ValueError("additivity needs at least two sampled subsets of two or more components")
    singles = [frozenset({p}) for p in players]
    empty: frozenset = frozenset()
    full = frozenset(players)
    needed = list(dict.fromkeys([empty, full, *singles, *multi]))
    per_example = dict(zip(needed, values(needed)))  # subset -> (n,)
    base = per_example[empty]
    single_effect = np.stack([per_example[s] - base for s in singles])  # (k, n)
    index = {p: t for t, p in enumerate(players)}
    membership = np.zeros((len(multi), len(players)))
    for r, s in enumerate(multi):
        membership[r, [index[p] for p in s]] = 1
    joint = np.stack([per_example[s] - base for s in multi])  # (m, n)

    def r2(cols: np.ndarray) -> float:
        e = joint[:, cols].mean(1)
        predicted = membership @ single_effect[:, cols].mean(1)
        total = ((e - e.mean()) ** 2).sum()
        return float(1 - ((e - predicted) ** 2).sum() / total) if total > 0 else np.nan

    n = base.shape[0]
    everyone = np.arange(n)
    rng = np.random.default_rng(seed)
    boots = np.array([r2(rng.integers(0, n, n)) for _ in range(n_boot)])
    boots = boots[np.isfinite(boots)]
    low, high = np.percentile(boots, [2.5, 97.5]) if len(boots) else (np.nan, np.nan)
    return Additivity(
        r2(everyone),
        float(low),
        float(high),
        len(multi),
        float(single_effect.mean(1).sum()),
        float((per_example[full] - base).mean()),
    )
