"""Capability jumps across model scale: smooth growth, a real jump, or a metric's mirage.

For each family, task and metric of a scale table (``analysis.scale_table``), on the
score normalised to the task's chance (0) and the metric's best value (1):

- BIG-bench's measures on models sorted by size (Srivastava et al. 2022):
  I = sign(argmax y - argmin y) (max y - min y), breakthroughness B = I / sqrt(median(dy^2)),
  linearity L = I / sqrt(mean(dy^2));
- smooth models (linear and saturating power law in log size) against jump models
  (sigmoid in log size; Caballero et al.'s broken power law with one break, fitted
  to the error 1 - y) by weighted least squares, compared by AIC and BIC;
- the jump's location (the sigmoid's midpoint) with a bootstrap interval, resampling
  examples where per-example scores exist, otherwise from the standard errors;
- predictability: fit the linear model on all but the largest model, predict the largest;
- a verdict: ``smooth``, ``jump``, ``mirage`` (an all-or-nothing metric jumps where a
  partial-credit metric of the same outputs grows smoothly), ``not enough sizes``, or
  ``irregular`` (scores fall with size beyond their errors and no curve fits them: training
  noise, one seed per size, to be fixed before any verdict on shape).

``analyse(table)`` returns the verdict table; ``fit_curves`` the fitted models of one curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import chi2 as chi2_distribution

from .curves import MIN_FIT_SIZES, MODELS, Fit, fit_curves, fit_model, span
from .readings import THRESHOLDS, Thresholds
from .scale_table import METRICS, Metric, all_or_nothing, metric_info, scale_table

SIGMA_FLOOR = 0.02  # normalised units: seeds and training noise move small models by at least this much


# --- normalisation and BIG-bench's measures -----------------------------------------------------------------------


def normalise(
    values: np.ndarray, chance: float | None, metric: str, higher_is_better: bool | None = None
) -> tuple[np.ndarray, float, float]:
    """Map scores so that chance is 0 and the metric's best value is 1 (higher always better).

    Returns (normalised, offset, scale) with normalised = (metric_scale(values) - offset) / scale. Without a
    chance level, a bounded metric's worst value stands in for it (0 for accuracy), and an unbounded one's
    worst observed score. Perplexities are read as their logarithm (the loss). ``higher_is_better`` (from
    the results file) overrides the registry's direction; for a metric the registry does not know, the
    observed best stands in for the best value.
    """
    info = metric_info(metric)
    if higher_is_better is not None and (info is None or bool(higher_is_better) != info.higher_is_better):
        info = Metric(-math.inf, math.inf, bool(higher_is_better))  # the file's direction; bounds unknown
    info = info or METRICS["token_accuracy"]  # an unknown metric, no direction given: a share, higher better
    values = metric_scale(np.asarray(values, dtype=float), metric)
    low, high = info.low, info.high
    if info.log_scale:
        low, high = (math.log(low) if low > 0 else -math.inf), math.log(high)
    best = high if info.higher_is_better else low
    if not np.isfinite(best):
        best = values.max() if info.higher_is_better else values.min()
    if chance is not None and np.isfinite(chance):
        chance = float(metric_scale(np.array([chance]), metric)[0])
    else:
        worst = low if info.higher_is_better else high
        chance = worst if np.isfinite(worst) else (values.min() if info.higher_is_better else values.max())
    scale = best - chance
    if not np.isfinite(scale) or scale == 0:
        scale = 1.0 if info.higher_is_better else -1.0
    return (values - chance) / scale, float(chance), float(scale)


def metric_scale(values: np.ndarray, metric: str) -> np.ndarray:
    """Scores on the scale the analysis reads them: the log of a perplexity, anything else as it is."""
    info = metric_info(metric)
    return np.log(values) if info is not None and info.log_scale else values


def size_axis(size: np.ndarray, axis: str = "parameters") -> np.ndarray:
    """log10 of the size; a training-step axis is log10(step + 1), so step 0 (the untrained model) is 0."""
    size = np.asarray(size, dtype=float)
    return np.log10(size + 1) if axis == "step" else np.log10(size)


def bigbench_measures(y: np.ndarray) -> dict[str, float]:
    """I, breakthroughness B and linearity L of scores ``y`` ordered by model size (smallest first)."""
    y = np.asarray(y, dtype=float)
    if len(y) < 2:
        raise ValueError("BIG-bench's measures need at least two sizes")
    I = float(np.sign(np.argmax(y) - np.argmin(y)) * (y.max() - y.min()))
    dy2 = np.diff(y) ** 2
    median, mean = math.sqrt(np.median(dy2)), math.sqrt(np.mean(dy2))
    return {
        "I": I,
        "breakthroughness": I / median if median > 0 else math.copysign(math.inf, I) if I else 0.0,
        "linearity": I / mean if mean > 0 else 0.0,
    }


# --- one curve -------------------------------------------------------------------------------------------------------


@dataclass
class Curve:
    """One family's scores on one task and metric, sorted by size, with what the verdict needs."""

    family: str
    task: str
    metric: str
    size: np.ndarray
    value: np.ndarray
    stderr: np.ndarray
    chance: float | None
    examples: list[np.ndarray] | None = None  # per-example scores per size, for the bootstrap
    higher_is_better: bool | None = None  # as the results file states it (None: the metric registry's)
    axis: str = "parameters"  # what size is: parameters, tokens, or a training step
    x: np.ndarray = field(init=False)
    y: np.ndarray = field(init=False)
    sigma: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.x = size_axis(self.size, self.axis)
        self.y, _, scale = normalise(self.value, self.chance, self.metric, self.higher_is_better)
        info = metric_info(self.metric)
        # a log-scale metric's error: d log(v) = dv / v
        stderr = self.stderr / self.value if info is not None and info.log_scale else self.stderr
        self.sigma = np.maximum(np.nan_to_num(np.abs(stderr / scale), nan=0.0), SIGMA_FLOOR)

    def size_at(self, x: float) -> float:
        """The size (or step) at a point of the log axis."""
        return float(10**x - (1 if self.axis == "step" else 0))

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Other scores of this curve (a bootstrap's means) on its normalised scale."""
        return normalise(values, self.chance, self.metric, self.higher_is_better)[0]


def jump_interval(
    curve: Curve, fit: Fit, *, n_boot: int = 200, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Bootstrap interval of the sigmoid's midpoint (log10 size): examples resampled where known, else y + sigma*e.

    Each resample is refitted from its own best grid start (see ``_best_on_grid``). When no
    size falls inside the fitted rise (between 10% and 90% of it), the data cannot place the
    jump within the gap around it, so the interval covers that whole gap.
    """
    rng = np.random.default_rng(seed)
    locations = []
    for _ in range(n_boot):
        if curve.examples is not None:
            means = np.array([rng.choice(e, size=len(e)).mean() for e in curve.examples])
            y = curve.normalise(means)
        else:
            y = curve.y + curve.sigma * rng.standard_normal(len(curve.y))
        refit = fit_model(fit.model, curve.x, y, curve.sigma)
        if refit is not None:
            locations.append(float(refit.params[2]))
    low, high = np.quantile(locations, [(1 - level) / 2, (1 + level) / 2])
    lo, hi, x0, _ = fit.params
    share = (fit(curve.x) - lo) / (hi - lo) if hi != lo else np.zeros_like(curve.x)
    if not np.any((share > 0.1) & (share < 0.9)):
        below, above = curve.x[curve.x <= x0], curve.x[curve.x > x0]
        low = min(low, below.max()) if len(below) else low
        high = max(high, above.min()) if len(above) else high
    return float(low), float(high)


def _largest_drop(curve: Curve, sds: float) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The largest fall of the normalised score from a smaller to a larger model beyond ``sds`` combined errors."""
    worst, found = 0.0, None
    for i in range(len(curve.y)):
        for j in range(i + 1, len(curve.y)):
            fall = curve.y[i] - curve.y[j]
            if fall > sds * math.hypot(curve.sigma[i], curve.sigma[j]) and fall > worst:
                worst, found = fall, ((curve.size[i], curve.y[i]), (curve.size[j], curve.y[j]))
    return found


def predict_largest(curve: Curve) -> tuple[float, float]:
    """Fit the linear-in-log-size model on all but the largest model; (predicted, actual) normalised score there."""
    if len(curve.x) < MIN_FIT_SIZES["linear"] + 1:
        return math.nan, math.nan
    fit = fit_model(MODELS[0], curve.x[:-1], curve.y[:-1], curve.sigma[:-1])
    assert fit is not None  # enough sizes for a line, checked above
    return float(fit(curve.x[-1:])[0]), float(curve.y[-1])


def backtest(curve: Curve) -> list[float]:
    """Observational-scaling back-test: fit the linear-in-log-size model on the smaller models, predict the next
    larger one, in turn for every model past the first three; the errors (predicted - actual), normalised."""
    errors = []
    for k in range(MIN_FIT_SIZES["linear"], len(curve.x)):
        fit = fit_model(MODELS[0], curve.x[:k], curve.y[:k], curve.sigma[:k])
        assert fit is not None  # k >= the line's minimum
        errors.append(float(fit(curve.x[k : k + 1])[0] - curve.y[k]))
    return errors


def trend(curve: Curve) -> tuple[float, float]:
    """The weighted line's rise over the sizes seen (normalised units) and its z-score (rise / its standard
    error, the error inflated by the scatter where the line fits worse than the errors say)."""
    w = 1 / curve.sigma**2
    xm = np.sum(w * curve.x) / w.sum()
    sxx = np.sum(w * (curve.x - xm) ** 2)
    if sxx <= 0:
        return 0.0, 0.0
    slope = np.sum(w * (curve.x - xm) * curve.y) / sxx
    intercept = np.sum(w * curve.y) / w.sum() - slope * xm
    dof = len(curve.x) - 2
    chi2 = float(np.sum(w * (curve.y - intercept - slope * curve.x) ** 2))
    inflate = math.sqrt(max(chi2 / dof, 1.0)) if dof > 0 else 1.0
    se = inflate / math.sqrt(sxx)
    return float(slope * span(curve.x)), float(slope / se)


def analyse_curve(curve: Curve, *, thresholds: Thresholds | None = None, n_boot: int = 200, seed: int = 0) -> dict:
    """The verdict row of one curve (before the mirage check across metrics)."""
    t = thresholds or THRESHOLDS
    row: dict = {
        "family": curve.family,
        "task": curve.task,
        "metric": curve.metric,
        "n_sizes": len(curve.x),
        "smallest": float(curve.size[0]),
        "largest": float(curve.size[-1]),
        "first": float(curve.y[0]),
        "last": float(curve.y[-1]),
        "at_chance": bool(max(abs(curve.y)) < t.at_chance),
    }  # never leaves chance: no capability to scale
    row.update(bigbench_measures(curve.y))
    fits = fit_curves(curve.x, curve.y, curve.sigma)
    smooth = min((f for f in fits.values() if f.model.kind == "smooth"), key=lambda f: f.bic, default=None)
    jump = min((f for f in fits.values() if f.model.kind == "jump"), key=lambda f: f.bic, default=None)
    for name, fit in fits.items():
        row[f"bic_{name}"] = fit.bic
    predicted, actual = predict_largest(curve)
    errors = backtest(curve)
    row.update(
        backtest_mae=float(np.mean(np.abs(errors))) if errors else math.nan,
        backtest_n=len(errors),
        backtest_worst=float(max(errors, key=abs)) if errors else math.nan,
    )
    row.update(
        predicted_largest=predicted,
        actual_largest=actual,
        prediction_error=predicted - actual,
        best_smooth=smooth.model.name if smooth else None,
        best_jump=jump.model.name if jump else None,
    )
    if smooth is None or jump is None:
        row.update(
            verdict="not enough sizes",
            reading=f"{len(curve.x)} sizes: a jump model needs at least "
            f"{MIN_FIT_SIZES['sigmoid']} to be told from a smooth one",
        )
        return row
    drop = _largest_drop(curve, t.irregular_drop_sds)
    best = min(fits.values(), key=lambda f: f.bic)
    dof = len(curve.x) - best.model.k
    row["chi2_per_dof"] = best.chi2 / dof if dof > 0 else math.nan
    if drop is not None and dof > 0 and chi2_distribution.sf(best.chi2, dof) < t.irregular_p:
        (a, ya), (b, yb) = drop
        row.update(
            verdict="irregular",
            reading=f"goes down with size beyond its errors ({ya:.2f} at {a:.3g}, "
            f"{yb:.2f} at {b:.3g}) and no curve fits (chi2/dof {row['chi2_per_dof']:.1f}): "
            "more seeds per size, or more training, before calling it smooth or a jump",
        )
        return row
    sigmoid = fits["sigmoid"]
    lo, hi, x0, w = sigmoid.params
    row.update(
        delta_aic=smooth.aic - jump.aic,
        delta_bic=smooth.bic - jump.bic,
        rise=float(hi - lo),
        width_decades=float(2 * math.log(9) * w),
        jump_location=curve.size_at(x0),
    )
    favoured = row["delta_aic"] >= t.jump_evidence and row["delta_bic"] >= t.jump_evidence
    inside = curve.x[0] <= x0 <= curve.x[-1]
    sharp = abs(row["rise"]) >= t.jump_min_rise and row["width_decades"] <= t.jump_max_width_share * span(curve.x)
    if favoured and inside and sharp:
        low, high = jump_interval(curve, sigmoid, n_boot=n_boot, seed=seed)
        row.update(
            jump_low=curve.size_at(low),
            jump_high=curve.size_at(high),
            verdict="jump",
            reading=f"jumps by {row['rise']:+.2f} of the chance-to-best range near {curve.size_at(x0):.3g} "
            f"(95% interval {curve.size_at(low):.3g} to {curve.size_at(high):.3g}); the {jump.model.name} model beats "
            f"the {smooth.model.name} one by {row['delta_bic']:.1f} BIC",
        )
    else:
        if not favoured:
            why = "no jump model fits better"
        elif not inside:
            why = "the fitted rise lies outside the sizes seen"
        elif abs(row["rise"]) < t.jump_min_rise:
            why = f"the fitted rise is small ({row['rise']:+.2f})"
        else:
            why = f"the rise spreads over {row['width_decades']:.1f} decades, wider than the sizes seen"
        if row["at_chance"]:
            why += f"; it stays within {t.at_chance:g} of chance (best {max(curve.y):+.2f})"
        rise, z = trend(curve)
        row.update(trend_rise=rise, trend_z=z)
        if abs(z) < t.trend_sds:
            row.update(
                verdict="flat",
                reading=f"does not move with scale beyond its errors (the line's rise {rise:+.2f}, "
                f"{z:+.1f} standard errors; {why})",
            )
        elif z <= -t.trend_sds:
            row.update(
                verdict="declines",
                reading=f"gets worse with scale (the line's rise {rise:+.2f}, {z:+.1f} standard errors): "
                "inverse scaling, neither smooth growth nor a jump",
            )
        else:
            row.update(
                verdict="smooth",
                reading=f"grows smoothly ({why}); best smooth model {smooth.model.name}, "
                f"back-test error {row['backtest_mae']:.2f} over {row['backtest_n']} larger models",
            )
    return row


# --- a whole table ----------------------------------------------------------------------------------------------------


def curves(table: pd.DataFrame, *, size: str = "parameters", examples: pd.DataFrame | None = None) -> list[Curve]:
    """One ``Curve`` per family, task and metric; with checkpoints, each model's last step stands for it.

    Models of equal size (seeds) are averaged (``replicate_means``); their spread then enters the
    standard errors, and the bootstrap draws from those rather than from pooled examples. With
    ``size="step"`` the axis is training time: one curve per model (family ``family:model``).
    """
    table = scale_table(table, size=size)
    if size == "step":
        table = table.assign(family=table["family"].astype(str) + ":" + table["model"].astype(str))
    else:
        table = final_checkpoints(table)
    out = []
    for (family, task, metric), group in table.groupby(["family", "task", "metric"], sort=True):
        group = group.sort_values(size)
        chance = group["chance"].dropna()
        direction = group["higher_is_better"].dropna() if "higher_is_better" in group else pd.Series(dtype=bool)
        replicated = group[size].duplicated().any()
        per_example = None
        if examples is not None and metric in examples.columns and not replicated:
            per_example = _examples_for(examples, group, metric)
        if replicated:
            group = replicate_means(group, size)
        out.append(
            Curve(
                str(family),
                str(task),
                str(metric),
                group[size].to_numpy(float),
                group["value"].to_numpy(float),
                group["stderr"].to_numpy(float),
                float(chance.iloc[0]) if len(chance) else None,
                per_example,
                bool(direction.iloc[0]) if len(direction) else None,
                size,
            )
        )
    return out


def replicate_means(group: pd.DataFrame, size: str) -> pd.DataFrame:
    """Models of the same size (seeds) -> one row per size: the mean score, and a standard error that adds
    the spread between seeds to the measurement errors: sqrt(var_between / k + sum(se^2) / k^2)."""
    rows = []
    for value, same in group.groupby(size, sort=True):
        k = len(same)
        between = same["value"].var(ddof=1) if k > 1 else 0.0
        within = (same["stderr"].fillna(0.0) ** 2).sum() / k**2
        rows.append(
            {
                size: value,
                "value": same["value"].mean(),
                "stderr": math.sqrt(between / k + within),
                "n": same["n"].sum(),
                "replicates": k,
            }
        )
    return pd.DataFrame(rows)


def final_checkpoints(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of each model's last training step (rows without a step are kept)."""
    if table["step"].isna().all():
        return table
    last = table.groupby(["family", "model"], dropna=False)["step"].transform("max")
    return table[table["step"].isna() | (table["step"] == last)]


def _examples_for(examples: pd.DataFrame, group: pd.DataFrame, metric: str) -> list[np.ndarray] | None:
    per_model = []
    for model, step in zip(group["model"], group["step"]):
        rows = examples[(examples["model"] == model) & (examples["task"] == group["task"].iloc[0])]
        if "step" in rows.columns and pd.notna(step):
            rows = rows[rows["step"] == step]
        values = rows[metric].dropna().to_numpy(float)
        if not len(values):
            return None
        per_model.append(values)
    return per_model


def analyse(
    table: pd.DataFrame,
    *,
    examples: pd.DataFrame | None = None,
    size: str = "parameters",
    thresholds: Thresholds | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """The verdict table: one row per family, task and metric, with its numbers and a plain-language reading.

    ``examples`` (per-example scores with a column per metric, e.g. from
    ``analysis.mirage.score_examples``) makes the jump interval resample examples.
    """
    rows = [
        analyse_curve(c, thresholds=thresholds, n_boot=n_boot, seed=seed)
        for c in curves(table, size=size, examples=examples)
    ]
    return _mirage_check(pd.DataFrame(rows))


def _mirage_check(verdicts: pd.DataFrame) -> pd.DataFrame:
    """A jump under an all-or-nothing metric is a mirage when a partial-credit metric of the same task is smooth."""
    verdicts = verdicts.copy()
    verdicts["checked_against"] = None
    for i, row in verdicts.iterrows():
        if row["verdict"] != "jump" or not all_or_nothing(row["metric"]):
            continue
        same = verdicts[(verdicts["family"] == row["family"]) & (verdicts["task"] == row["task"])]
        continuous = same[[not all_or_nothing(m) for m in same["metric"]]]
        continuous = continuous[continuous["verdict"].isin(["smooth", "jump"])]
        if not len(continuous):
            verdicts.at[i, "reading"] += "; no partial-credit metric to check it against"
            continue
        smooth = continuous[continuous["verdict"] == "smooth"]["metric"].tolist()
        verdicts.at[i, "checked_against"] = ", ".join(continuous["metric"])
        if smooth:
            verdicts.at[i, "verdict"] = "mirage"
            verdicts.at[i, "reading"] += f"; but {', '.join(smooth)} of the same outputs grow smoothly: a mirage"
        else:
            verdicts.at[i, "reading"] += f"; it survives {', '.join(continuous['metric'])}"
    return verdicts
