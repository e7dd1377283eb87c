"""The curve models the scaling analysis fits to a capability against log size: smooth (linear, saturating power law)
and jump (sigmoid, Caballero et al.'s broken power law), by weighted least squares from a grid of starts, with
their AIC and BIC.

    fits = fit_curves(x, y, sigma)     # name -> Fit (parameters, chi^2, AIC, BIC, the model)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

MIN_FIT_SIZES = {"linear": 3, "power_law": 4, "sigmoid": 5, "broken_power_law": 7}


def _linear(x, p):
    return p[0] + p[1] * x


def _power_law(x, p):
    # y = c - a * N^(-b): saturates at c; b > 0 (x is log10 N, so N^-b = 10^(-b x))
    return p[0] - p[1] * 10 ** (-p[2] * x)


def _sigmoid(x, p):
    lo, hi, x0, w = p
    return lo + (hi - lo) / (1 + np.exp(np.clip(-(x - x0) / w, -60, 60)))


def _broken_power_law(x, p):
    # Caballero et al. (2023), one break, on the error e = 1 - y:
    # e = a + b N^-c0 (1 + (N / d1)^(1 / f1))^(-c1 f1), written with x = log10 N, x1 = log10 d1
    a, b, c0, c1, x1, f1 = p
    log_term = np.logaddexp(0, (x - x1) * math.log(10) / f1)
    return 1 - (a + b * np.exp(-c0 * x * math.log(10) - c1 * f1 * log_term))


def _best_on_grid(x: np.ndarray, y: np.ndarray, sigma: np.ndarray, basis: np.ndarray) -> tuple[int, float, float]:
    """For curves y = a + b * basis[g] (one row per grid point g), the weighted least-squares a, b of the best g.

    Sigmoids and saturating power laws are linear in two of their parameters; solving
    those in closed form over a grid of the others gives starts close to the optimum
    at numpy speed, so one refinement suffices (also inside the bootstrap).
    """
    w = 1 / sigma**2
    sw, sy = w.sum(), (w * y).sum()
    sb, sbb, sby = (basis * w).sum(1), (basis**2 * w).sum(1), (basis * w * y).sum(1)
    det = sw * sbb - sb**2
    ok = np.abs(det) > 1e-12
    b_coef = np.where(ok, (sw * sby - sb * sy) / np.where(ok, det, 1), 0.0)
    a_coef = (sy - b_coef * sb) / sw
    chi2 = ((a_coef[:, None] + b_coef[:, None] * basis - y) ** 2 * w).sum(1)
    g = int(np.argmin(np.where(ok, chi2, np.inf)))
    return g, float(a_coef[g]), float(b_coef[g])


def _sigmoid_starts(x, y, sigma) -> list[np.ndarray]:
    extent = span(x)
    x0 = np.linspace(x.min() - 0.25 * extent, x.max() + 0.25 * extent, 61)
    width = extent * np.geomspace(2e-3, 1.0, 16)
    grid = np.array([(c, w) for c in x0 for w in width])
    basis = 1 / (1 + np.exp(np.clip(-(x[None] - grid[:, :1]) / grid[:, 1:], -60, 60)))
    g, a, b = _best_on_grid(x, y, sigma, basis)
    return [np.array([a, a + b, *grid[g]])]


def _power_law_starts(x, y, sigma) -> list[np.ndarray]:
    exponents = np.geomspace(2e-3, 5.0, 60)
    basis = 10 ** (-exponents[:, None] * (x[None] - x.min()))
    g, a, b = _best_on_grid(x, y, sigma, basis)
    # y = a + b 10^(-e (x - xmin)) = c - A 10^(-e x) with c = a, A = -b 10^(e xmin)
    return [np.array([a, -b * 10 ** (exponents[g] * x.min()), exponents[g]])]


def _broken_power_law_starts(x, y, sigma) -> list[np.ndarray]:
    # with c0 = 0 the error is a + b * basis(c1, x1, f1): closed form in (a, b) over a grid of the rest
    grid = np.array(
        [
            (c1, x1, f1)
            for c1 in (0.3, 1.0, 3.0, 10.0)
            for f1 in (0.05, 0.3, 1.0)
            for x1 in np.linspace(x.min(), x.max(), 12)
        ]
    )
    basis = np.stack([_broken_power_law(x, np.array([0.0, 1.0, 0.0, *g])) for g in grid])  # 1 - basis
    g, a, b = _best_on_grid(x, y, sigma, 1 - basis)  # y = a + b * basis_e, so the error is (1 - a) - b * basis_e
    c1, x1, f1 = grid[g]
    return [np.array([1 - a, max(-b, 1e-3), 0.0, c1, x1, f1])]


@dataclass(frozen=True)
class CurveModel:
    name: str
    kind: str  # "smooth" or "jump"
    f: Callable[[np.ndarray, np.ndarray], np.ndarray]
    starts: Callable[[np.ndarray, np.ndarray, np.ndarray], list[np.ndarray]]
    bounds: Callable[[np.ndarray, np.ndarray], tuple[list[float], list[float]]]

    @property
    def k(self) -> int:
        return len(self.bounds(np.zeros(2), np.zeros(2))[0])


def span(x):
    return float(x.max() - x.min()) or 1.0


MODELS = (
    CurveModel(
        "linear",
        "smooth",
        _linear,
        lambda x, y, s: [np.array([y.mean(), 0.0])],
        lambda x, y: ([-np.inf, -np.inf], [np.inf, np.inf]),
    ),
    CurveModel(
        "power_law",
        "smooth",
        _power_law,
        _power_law_starts,
        lambda x, y: ([-np.inf, -np.inf, 1e-3], [np.inf, np.inf, 5.0]),
    ),
    CurveModel(
        "sigmoid",
        "jump",
        _sigmoid,
        _sigmoid_starts,
        lambda x, y: (
            [-0.5, -0.5, x.min() - 0.5 * span(x), 1e-3 * span(x)],
            [1.5, 1.5, x.max() + 0.5 * span(x), 2 * span(x)],
        ),
    ),
    CurveModel(
        "broken_power_law",
        "jump",
        _broken_power_law,
        _broken_power_law_starts,
        lambda x, y: (
            [-0.5, 0.0, -2.0, -10.0, x.min() - 0.5 * span(x), 1e-2],
            [1.5, 100.0, 5.0, 50.0, x.max() + 0.5 * span(x), 5.0],
        ),
    ),
)


@dataclass
class Fit:
    model: CurveModel
    params: np.ndarray
    chi2: float
    n: int

    @property
    def aic(self) -> float:
        return self.chi2 + 2 * self.model.k

    @property
    def bic(self) -> float:
        return self.chi2 + self.model.k * math.log(self.n)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.model.f(np.asarray(x, dtype=float), self.params)


def fit_model(
    model: CurveModel, x: np.ndarray, y: np.ndarray, sigma: np.ndarray, starts: list[np.ndarray] | None = None
) -> Fit | None:
    """Weighted least squares from several starts; None when there are too few points for this model."""
    if len(x) < MIN_FIT_SIZES[model.name]:
        return None
    lower, upper = model.bounds(x, y)
    best = None
    for start in starts if starts is not None else model.starts(x, y, sigma):
        start = np.clip(start, np.array(lower) + 1e-9, np.array(upper) - 1e-9)
        try:
            result = least_squares(
                lambda p: (model.f(x, p) - y) / sigma, start, bounds=(lower, upper), method="trf", max_nfev=1000
            )
        except (ValueError, FloatingPointError):
            continue
        chi2 = float(np.sum(result.fun**2))
        if np.isfinite(chi2) and (best is None or chi2 < best.chi2):
            best = Fit(model, result.x, chi2, len(x))
    return best


def fit_curves(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> dict[str, Fit]:
    """Every curve model that the number of sizes allows, fitted to (log10 size, normalised score)."""
    x, y, sigma = (np.asarray(a, dtype=float) for a in (x, y, sigma))
    fits = {m.name: fit_model(m, x, y, sigma) for m in MODELS}
    return {name: fit for name, fit in fits.items() if fit is not None}
