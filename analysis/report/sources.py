"""Where a report's numbers come from: the result folders at or below the paths given, read into one ``Inputs``.

A result folder is anything the toolkit writes: a probe suite or a study (``results.csv`` and ``run.json``), a
scaling analysis (``scale.csv`` and ``verdicts.csv``), per-head attention statistics (``heads.csv``,
``pattern.npz``), logit and tuned lens (``lens.csv``, ``behaviour.csv``). Folders that are none of these are
searched below.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ProbesError
from ..results import read_results, tidy

SKIP = {"activations", "stages", "units", "checkpoints", "outputs", "figures", ".git"}  # never hold a result folder


class ReportError(ProbesError, ValueError):
    """Inputs the report cannot use."""


@dataclass
class Source:
    kind: str  # "results", "scale", "heads" or "lens"
    path: Path
    record: dict[str, Any]  # its run.json ({} when there is none)


@dataclass
class Inputs:
    sources: list[Source]
    results: pd.DataFrame  # the tidy table of every probe suite and ablation study
    scale: pd.DataFrame | None = None
    verdicts: pd.DataFrame | None = None
    heads: pd.DataFrame | None = None
    lens: pd.DataFrame | None = None  # lens.csv of every lens folder (model column distinct per folder)
    lens_behaviour: pd.DataFrame | None = None  # their behaviour.csv, where there is one
    patterns: dict[str, tuple[list[str], np.ndarray, str]] = field(default_factory=dict)  # model -> tokens, array, text
    feature_examples: pd.DataFrame | None = None  # stages/examples.csv of every probes sae features folder


def _kind(folder: Path) -> str | None:
    if (folder / "heads.csv").exists():
        return "heads"
    if (folder / "lens.csv").exists():
        return "lens"
    if (folder / "verdicts.csv").exists() and (folder / "scale.csv").exists():
        return "scale"
    if (folder / "results.csv").exists():
        return "results"
    return None


def find_sources(paths: Sequence[str | os.PathLike], max_depth: int = 4) -> list[Source]:
    """The result folders at or below ``paths``; a folder that is one is not searched further."""
    found: list[Source] = []

    def visit(folder: Path, depth: int) -> None:
        kind = _kind(folder)
        if kind:
            record = json.loads((folder / "run.json").read_text()) if (folder / "run.json").exists() else {}
            found.append(Source(kind, folder, record))
        elif depth < max_depth:
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in SKIP):
                visit(child, depth + 1)

    if not paths:
        raise ReportError("no result folders given: pass folders written by probes run, ablate, heads, scale or demo")
    for path in map(Path, paths):
        if not path.is_dir():
            raise ReportError(f"{path} is not a folder: pass the output folders of probes run, ablate, heads or scale")
        before = len(found)
        visit(path, 0)
        if len(found) == before:
            raise ReportError(
                f"no results in {path}: expected results.csv, verdicts.csv, heads.csv or lens.csv "
                "(written by probes run, ablate, scale / ladder eval, heads, lens or demo)"
            )
    return found


def source_labels(sources: Sequence[Source]) -> dict[Path, str]:
    """A short, distinct name per result folder: its path below the folders' common parent."""
    resolved = [s.path.resolve() for s in sources]
    if len(resolved) == 1:
        return {sources[0].path: sources[0].path.resolve().name}
    common = Path(os.path.commonpath(resolved))
    return {s.path: str(r.relative_to(common)) or r.name for s, r in zip(sources, resolved)}


def _side_by_side(frames: dict[Path, pd.DataFrame], column: str, labels: dict[Path, str]) -> pd.DataFrame:
    """One table from several folders' tables; a model (or family) that two folders hold is named with its folder
    in each, so runs of one model with different settings stay apart instead of mixing."""
    holders: dict[str, set[Path]] = {}
    for path, frame in frames.items():
        for name in frame[column].dropna().astype(str).unique():
            holders.setdefault(name, set()).add(path)
    parts = []
    for path, frame in frames.items():
        frame = frame.copy()
        shared = frame[column].astype(str).map(lambda n: len(holders.get(n, ())) > 1)
        frame.loc[shared, column] = frame.loc[shared, column].astype(str) + f" ({labels[path]})"
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def _read(path: Path, read: Any) -> Any:
    try:
        return read(path)
    except (OSError, ValueError, KeyError) as err:
        if isinstance(err, ProbesError):
            raise
        raise ReportError(
            f"{path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:120]}); "
            "re-run the command that wrote it"
        ) from None


def read_inputs(paths: Sequence[str | os.PathLike]) -> Inputs:
    sources = find_sources(paths)
    labels = source_labels(sources)
    by_kind = lambda kind: [s for s in sources if s.kind == kind]
    tables = {s.path: _read(s.path / "results.csv", read_results) for s in by_kind("results")}
    results = (
        tidy(_side_by_side(tables, "model", labels))
        if tables
        else tidy(pd.DataFrame(columns=["model", "metric", "value"]))
    )
    inputs = Inputs(sources, results)
    if by_kind("scale"):
        # the scale axis each analysis used (``probes scale --size``): model size, or training step for checkpoints
        axis = {s.path: (s.record.get("spec") or {}).get("size", "parameters") for s in by_kind("scale")}
        scales = {s.path: _read(s.path / "scale.csv", pd.read_csv).assign(axis=axis[s.path]) for s in by_kind("scale")}
        verdicts = {
            s.path: _read(s.path / "verdicts.csv", pd.read_csv).assign(axis=axis[s.path]) for s in by_kind("scale")
        }
        for path, frame in verdicts.items():
            missing = {"family", "task", "metric", "verdict"} - set(frame.columns)
            if missing:
                raise ReportError(
                    f"{path / 'verdicts.csv'} lacks column(s) {', '.join(sorted(missing))}: "
                    "not written by probes scale; re-run it"
                )
        inputs.scale = _side_by_side(scales, "family", labels)
        inputs.verdicts = _side_by_side(verdicts, "family", labels)
    if by_kind("heads"):
        frames = {s.path: _read(s.path / "heads.csv", pd.read_csv) for s in by_kind("heads")}  # each file read once
        named = _side_by_side(frames, "model", labels)
        inputs.heads = named
        offset = 0
        for s in by_kind("heads"):
            model = str(named["model"].iloc[offset]) if len(frames[s.path]) else ""
            offset += len(frames[s.path])
            if (s.path / "pattern.npz").exists():
                with np.load(s.path / "pattern.npz", allow_pickle=False) as npz:
                    example = (s.record.get("spec") or {}).get("example", "")
                    inputs.patterns[model] = ([str(t) for t in npz["tokens"]], npz["patterns"], example)
    examples = {
        s.path: _read(s.path / "stages" / "examples.csv", pd.read_csv).assign(
            model=(s.record.get("spec") or {}).get("model", ""), task=(s.record.get("spec") or {}).get("behaviour")
        )
        for s in by_kind("results")
        if s.record.get("command") == "sae features" and (s.path / "stages" / "examples.csv").exists()
    }
    if examples:
        inputs.feature_examples = _side_by_side(examples, "model", labels)
    if by_kind("lens"):
        lenses = {s.path: _read(s.path / "lens.csv", pd.read_csv) for s in by_kind("lens")}
        inputs.lens = _side_by_side(lenses, "model", labels)
        behaviours = {
            s.path: _read(s.path / "behaviour.csv", pd.read_csv)
            for s in by_kind("lens")
            if (s.path / "behaviour.csv").exists()
        }
        if behaviours:
            inputs.lens_behaviour = _side_by_side(behaviours, "model", labels)
    return inputs
