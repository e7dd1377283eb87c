"""The tidy results table every instrument writes and every analysis reads.

One row per measured number::

    model | task | site | layer | probe | control | metric | value | ci_low | ci_high | n

Only ``model``, ``metric`` and ``value`` are required; the rest are filled
with missing values, so results from other tools fit the same table.

``layer`` means one thing for every row of the residual stream (probes, amnesic probing): its depth
as Hugging Face's ``hidden_states`` counts it, 0 the embeddings and l the output of block l - 1
(``site`` names the hook). A component's row (a head, an MLP) gives the component's block.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import ProbesError

COLUMNS = ("model", "task", "site", "layer", "probe", "control", "metric", "value", "ci_low", "ci_high", "n")
REQUIRED = ("model", "metric", "value")


class ResultsError(ProbesError, ValueError):
    """A table that does not have the results layout."""


def tidy(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Rows (dicts or a frame) -> a validated table with the standard columns first."""
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ResultsError(f"results table lacks column(s) {', '.join(missing)}; required are {', '.join(REQUIRED)}")
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.NA
    frame["value"] = pd.to_numeric(frame["value"], errors="raise")
    frame["layer"] = frame["layer"].astype("Int64")
    frame["n"] = frame["n"].astype("Int64")
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[[*COLUMNS, *extra]].reset_index(drop=True)


def normal_interval(value: float, stderr: float) -> dict[str, float]:
    """A row's value with its normal 95% interval (value +- 1.96 standard errors; none where the error is unknown)."""
    half = 1.96 * stderr if math.isfinite(stderr) else math.nan
    return {"value": value, "ci_low": value - half, "ci_high": value + half}


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"no results table at {path}")
    return tidy(pd.read_csv(path))


def layer_table(frame: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Wide view for printing: one row per (model, layer), one column per metric."""
    frame = tidy(frame)
    if metrics is not None:
        frame = frame[frame["metric"].isin(metrics)]
    wide = frame.pivot_table(index=["model", "layer"], columns="metric", values="value", aggfunc="mean", sort=False)
    wide.columns.name = None
    return wide[[m for m in (metrics or list(wide.columns)) if m in wide.columns]]


# --- which rows each study wrote (the ``probe`` column names it) ------------------------------------------


def select_ablation(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["probe"].astype(str).str.startswith("ablation:")]


def select_probing(results: pd.DataFrame) -> pd.DataFrame:
    probe = results["probe"].astype(str)
    return results[
        ~probe.str.startswith(("ablation:", "amnesic:", "attribution:", "features:", "sae:")) & results["probe"].notna()
    ]


def select_attribution(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["probe"].astype(str).str.startswith("attribution:")]


def select_features(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["probe"].astype(str).str.startswith(("features:", "sae:"))]


def select_amnesic(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["probe"] == "amnesic:leace"]
