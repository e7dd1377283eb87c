"""Every estimate checks itself: the strongest components (or edges) by score and a random sample of the rest,
re-measured exactly, against their estimates.

    check = verify(ev, frame, components, top=10, sample=20)   # frame: attribute(ev, components)
    check.summary()       # Spearman over the checked above their noise, the top k held, the largest miss, a bound
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from probes.causal.attribution import AttributionError
from probes.causal.components import Component
from probes.causal.evaluator import Evaluator


@dataclass
class Verification:
    """How far an attribution's estimates can be trusted, from components (or edges) re-measured exactly.

    ``checked``: one row per re-measured component (estimate, exact effect and its stderr, how it was
    chosen: "top" or "sample"). ``spearman``: rank correlation of estimate and exact effect over the checked
    components whose exact effect is above its noise (|effect| > 2 stderr); ``top_overlap``: how many of
    the exact top k (among the checked) are in the estimate's top k; ``largest_miss``: the checked
    component with the largest |exact - estimate|. ``bound``: with 95% confidence, at most this share of the
    components outside the top have an exact effect as large as ``threshold`` (none of the sample did; a
    sample of m gives 1 - 0.05^(1/m), about 3/m), NaN where some did.
    """

    checked: pd.DataFrame
    spearman: float
    n_above_noise: int
    top_overlap: int
    k: int
    largest_miss: str
    largest_miss_error: float
    threshold: float
    bound: float
    misses_in_sample: int

    @classmethod
    def of(cls, checked: pd.DataFrame) -> Verification:
        """The statistics of a ``checked`` table: component, estimate, score, exact, exact_stderr, chosen."""
        checked = checked.reset_index(drop=True)
        top = checked["chosen"] == "top"
        k = int(top.sum())
        above = np.abs(checked["exact"]) > 2 * np.nan_to_num(checked["exact_stderr"], nan=0.0)
        rho = (
            float(stats.spearmanr(checked["estimate"][above], checked["exact"][above]).statistic)
            if above.sum() > 2
            else np.nan
        )
        exact_top = set(np.argsort(-np.abs(checked["exact"].to_numpy()), kind="stable")[:k])
        estimate_top = set(np.argsort(-checked["score"].to_numpy(), kind="stable")[:k])
        error = (checked["exact"] - checked["estimate"]).to_numpy()
        worst = int(np.argmax(np.abs(error)))
        threshold = float(np.abs(checked["exact"][top]).min()) if k else 0.0
        sampled = checked["exact"][~top]
        misses = int((np.abs(sampled) >= threshold).sum())
        bound = 1 - 0.05 ** (1 / len(sampled)) if len(sampled) and misses == 0 else np.nan
        return cls(
            checked,
            rho,
            int(above.sum()),
            len(exact_top & estimate_top),
            k,
            str(checked["component"][worst]),
            float(error[worst]),
            threshold,
            bound,
            misses,
        )

    def summary(self) -> str:
        bound = (
            f"at most {self.bound:.0%} of the rest exceed |{self.threshold:.3g}| (95%)"
            if np.isfinite(self.bound)
            else f"{self.misses_in_sample} sampled outside the top exceed |{self.threshold:.3g}|"
        )
        return (
            f"checked {len(self.checked)} exactly: Spearman {self.spearman:.2f} over {self.n_above_noise} above "
            f"noise, {self.top_overlap}/{self.k} of the exact top {self.k} in the estimate's, largest miss "
            f"{self.largest_miss} ({self.largest_miss_error:+.3g}); {bound}"
        )

    def rows(self) -> list[dict]:
        """The verification as tidy rows: each checked component's exact effect, then the summary numbers."""
        rows = []
        for r in self.checked.itertuples():
            half = 1.96 * r.exact_stderr if np.isfinite(r.exact_stderr) else np.nan
            interval = {"value": r.exact, "ci_low": r.exact - half, "ci_high": r.exact + half}
            rows.append(
                {
                    "component": r.component,
                    "metric": "exact_effect",
                    **interval,
                    "chosen": r.chosen,
                    "estimate": r.estimate,
                }
            )
        rows += [
            {"metric": "verify_spearman", "value": self.spearman, "n": self.n_above_noise},
            {"metric": "verify_top_overlap", "value": self.top_overlap, "n": self.k},
            {"metric": "verify_largest_miss", "component": self.largest_miss, "value": self.largest_miss_error},
            {"metric": "verify_bound", "value": self.bound, "threshold": self.threshold},
        ]
        return rows


def pick_for_verification(score: np.ndarray, top: int, sample: int, seed: int) -> tuple[list[int], list[int]]:
    """The ``top`` strongest by ``score`` and a seeded random ``sample`` of the rest."""
    order = np.argsort(-np.asarray(score), kind="stable")
    k = min(top, len(order))
    rest = order[k:]
    rng = np.random.default_rng(seed)
    sampled = list(rng.choice(rest, size=min(sample, len(rest)), replace=False)) if len(rest) else []
    return [int(i) for i in order[:k]], [int(i) for i in sampled]


def checked_frame(frame: pd.DataFrame, chosen: list[int], sampled: list[int], effects: np.ndarray) -> pd.DataFrame:
    """The picked rows of an attribution ``frame`` beside their exact per-example ``effects`` (picked, examples)."""
    n = effects.shape[1]
    picks = chosen + sampled
    checked = frame.iloc[picks].copy()
    checked["exact"] = effects.mean(1)
    checked["exact_stderr"] = effects.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(picks), np.nan)
    checked["chosen"] = ["top"] * len(chosen) + ["sample"] * len(sampled)
    return checked.reset_index(drop=True)


def verify(
    ev: Evaluator,
    frame: pd.DataFrame,
    components: Sequence[Component],
    *,
    top: int = 10,
    sample: int = 20,
    seed: int = 0,
) -> Verification:
    """Re-measure the ``top`` components by attribution score and a random ``sample`` of the others exactly
    (``ev.values``), and compare them with their estimates."""
    if len(frame) != len(components):
        raise AttributionError("the attribution frame and the components differ in length")
    chosen, sampled = pick_for_verification(frame["score"].to_numpy(), top, sample, seed)
    effects = ev.values([[components[i]] for i in chosen + sampled]) - ev.clean[None]
    columns = ["component", "layer", "kind", "head", "estimate", "score"]
    return Verification.of(checked_frame(frame[columns], chosen, sampled, effects))
