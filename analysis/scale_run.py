"""One call from files to the scale table, the verdict table and the figures (``probes scale`` runs it)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import pandas as pd

from .scale_table import ScaleTableError, read_lm_eval, read_scale_csv, scale_table
from .scaling import Thresholds, analyse


def read_scale_inputs(paths: Sequence[str | os.PathLike], *, sizes: Mapping[str, float] | None = None,
                      family: str | None = None, size: str = "parameters") -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(scale table, per-example scores or None) from lm-eval JSON files, CSV files, or folders written by
    ``probes ladder eval`` / ``probes.scale_eval`` (their ``scale.csv`` and ``examples.csv``)."""
    if not paths:
        raise ScaleTableError("no results given: pass lm-eval JSON files, scale CSVs or evaluation folders")
    tables, examples, json_files = [], [], []
    for path in map(Path, paths):
        if path.is_dir():
            if not (path / "scale.csv").exists():
                raise ScaleTableError(f"folder {path} has no scale.csv (write one with 'probes ladder eval')")
            tables.append(read_scale_csv(path / "scale.csv", sizes=sizes, family=family, size=size))
            if (path / "examples.csv").exists():
                examples.append(pd.read_csv(path / "examples.csv"))
        elif path.suffix == ".json":
            json_files.append(path)
        elif path.suffix == ".csv":
            tables.append(read_scale_csv(path, sizes=sizes, family=family, size=size))
        else:
            raise ScaleTableError(f"{path}: expected an lm-eval .json file, a .csv scale table or a folder")
    if json_files:
        tables.append(read_lm_eval(json_files, sizes=sizes, family=family, size=size))
    table = scale_table(pd.concat(tables, ignore_index=True), size=size)
    return table, pd.concat(examples, ignore_index=True) if examples else None


def run_scale(paths: Sequence[str | os.PathLike], out: str | os.PathLike | None = None, *,
              sizes: Mapping[str, float] | None = None, family: str | None = None, size: str = "parameters",
              thresholds: Thresholds | None = None, n_boot: int = 200, seed: int = 0,
              figures: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read, analyse, and (with ``out``) write ``scale.csv``, ``verdicts.csv``, ``figures/*.png`` and ``run.json``
    (the inputs, settings, seed and package versions the verdicts came from)."""
    table, examples = read_scale_inputs(paths, sizes=sizes, family=family, size=size)
    verdicts = analyse(table, examples=examples, size=size, thresholds=thresholds, n_boot=n_boot, seed=seed)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "scale.csv", index=False)
        verdicts.to_csv(out / "verdicts.csv", index=False)
        record = {"inputs": [str(Path(p).resolve()) for p in paths], "sizes": dict(sizes or {}), "family": family,
                  "size": size, "thresholds": asdict(thresholds or Thresholds()), "n_boot": n_boot, "seed": seed,
                  "python": platform.python_version(), "versions": _versions()}
        (out / "run.json").write_text(json.dumps(record, indent=1))
        if figures:
            write_figures(table, verdicts, out / "figures", size=size)
    return table, verdicts


def _versions() -> dict[str, str | None]:
    found = {}
    for package in ("emergence-probes", "numpy", "pandas", "scipy", "matplotlib"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def write_figures(table: pd.DataFrame, verdicts: pd.DataFrame, folder: Path, *, size: str = "parameters") -> list[Path]:
    import matplotlib.pyplot as plt

    from .scale_plots import capability_vs_size, capability_vs_step

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (family, task), _ in verdicts.groupby(["family", "task"]):
        fig = capability_vs_size(table, verdicts, task, family=family, size=size)
        written.append(folder / f"{family}_{task}_size.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
        steps = table[(table["family"] == family) & (table["task"] == task)]
        if steps["step"].nunique() > 1:
            fig = capability_vs_step(steps, task)
            written.append(folder / f"{family}_{task}_step.png")
            fig.savefig(written[-1], dpi=110)
            plt.close(fig)
    return written
