"""A comparison report from result folders: one self-contained HTML file, or Markdown beside its figures.

    rendered = render_report(["runs/demo"])                 # every result folder found under runs/demo
    rendered.text                                           # one self-contained HTML page
    render_report(["runs/a", "runs/b"], fmt="md").files     # Markdown's figures, to write beside it

(``probes report`` and ``probes.pipelines.report.write_report`` write it.)

A result folder is anything the toolkit writes: a probe suite or ablation study (``results.csv``
and ``run.json``), a scaling analysis (``scale.csv`` and ``verdicts.csv``), per-head attention
statistics (``heads.csv``, ``pattern.npz``), logit and tuned lens (``lens.csv``, ``behaviour.csv``).
Folders that are none of these are searched below.

The report is built as a list of sections made of paragraphs, tables, figures and scorecards;
``render_html`` and ``render_markdown`` write the same list. All text from the results (model
names, task names, config values, tokens) is escaped in both.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.text

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import ablation_plots, attribution_plots, feature_plots, head_plots, lens_plots, probe_plots, scale_plots
from .errors import ProbesError
from .readings import (
    THRESHOLDS,
    additivity_case,
    additivity_lean,
    additivity_reading,
    circuit_reading,
    compression_reading,
    concept_readable,
    decodability_reading,
    erasure_case,
    erasure_reading,
    feature_reading,
    interaction_pattern,
    interaction_ratio,
    overall_reading,
    scale_case,
    scale_reading,
    selectivity_reading,
)
from .results import read_results, tidy
from .tables import ablation_table, for_display, profile_table

SKIP = {"activations", "stages", "units", "checkpoints", "outputs", "figures", ".git"}  # never hold a result folder


class ReportError(ProbesError, ValueError):
    """Inputs the report cannot use."""


# ------------------------------------------------------------------------------------------ inputs


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


# ------------------------------------------------------------------------------------------ content


@dataclass
class Figure:
    title: str
    png: bytes
    caption: str = ""

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Highlight:
    """Text with each token shaded by a weight in [0, 1] (a feature's activation): one line per example."""

    title: str
    lines: list[list[tuple[str, float]]]
    notes: list[str] = field(default_factory=list)  # one per line (the activation, the text it came from)


@dataclass
class Evidence:
    side: str  # "reductionist" or "emergent"
    measure: str
    value: str
    reading: str
    lean: str | None
    point: tuple[float, float, float] | None = None  # (value, low, high) on [0, 1], for the card's figure
    marks: dict[str, float] = field(default_factory=dict)  # baselines drawn beside the point
    matches: str | None = None  # the planted zoo case (analysis.readings.ZOO_CASES) these numbers match best


@dataclass
class Card:
    title: str
    evidence: list[Evidence]
    overall: str
    figure: Figure | None = None

    def side(self, name: str) -> list[Evidence]:
        return [e for e in self.evidence if e.side == name]


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Any] = field(
        default_factory=list
    )  # str (a paragraph), Table, Figure, Card, or ("details", title, text)


def _literal_text(fig: plt.Figure) -> None:
    """Titles, labels, legends and notes as typed: a '$' in a model or task name is not mathtext. Tick labels
    keep it (log axes label their ticks with it); token tick labels are literal already."""
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) for t in axis.get_ticklabels(which="both")}
    for text in fig.findobj(matplotlib.text.Text):
        if id(text) not in ticks:
            text.set_parse_math(False)


def figure(fig: plt.Figure, title: str, caption: str = "") -> Figure:
    _literal_text(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Figure(title, buffer.getvalue(), caption)


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)) or x is pd.NA:
        return "-"
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}" if x != 0 and abs(x) < 1e-3 else f"{x:.{digits}f}"
    return str(x)


def _table(frame: pd.DataFrame, caption: str = "", digits: int = 3) -> Table:
    return Table(
        [str(c) for c in frame.columns],
        [[_fmt(v, digits) for v in row] for row in frame.itertuples(index=False)],
        caption,
    )


def _ci(value: float, low: float, high: float) -> str:
    if np.isfinite(low) and np.isfinite(high):
        return f"{value:.3f} [{low:.3f}, {high:.3f}]"
    return f"{value:.3f}"


def _ablations(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["probe"].astype(str).str.startswith("ablation:")]


def _probing(results: pd.DataFrame) -> pd.DataFrame:
    probe = results["probe"].astype(str)
    return results[
        ~probe.str.startswith(("ablation:", "amnesic:", "attribution:", "features:", "sae:")) & results["probe"].notna()
    ]


def _attribution(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["probe"].astype(str).str.startswith("attribution:")]


def _features(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["probe"].astype(str).str.startswith(("features:", "sae:"))]


def _amnesic(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["probe"] == "amnesic:leace"]


# --- scorecards ---------------------------------------------------------------------------------------


def _scalar(rows: pd.DataFrame, metric: str) -> pd.Series | None:
    part = rows[rows["metric"] == metric]
    return part.iloc[0] if len(part) else None


def probe_card(model: str, row: pd.Series) -> Card:
    acc, low, high = row["accuracy"], row["ci_low"], row["ci_high"]
    text, lean = decodability_reading(acc, low, row["majority"], row.get("random_init"), row.get("selectivity"))
    marks = {"majority class": row["majority"], "random weights": row.get("random_init")}
    evidence = [
        Evidence(
            "reductionist",
            f"linear decodability (best layer {row['best_layer']})",
            f"{_ci(acc, low, high)}; majority {_fmt(row['majority'])}, random weights {_fmt(row.get('random_init'))}",
            text,
            lean,
            (acc, low, high),
            {k: float(v) for k, v in marks.items() if v is not None and pd.notna(v)},
        )
    ]
    if pd.notna(row.get("selectivity")):
        evidence.append(
            Evidence(
                "reductionist",
                "selectivity (task - control task)",
                _fmt(row["selectivity"]),
                selectivity_reading(row["selectivity"]),
                None,
            )
        )
    if pd.notna(row.get("compression")):
        evidence.append(
            Evidence(
                "reductionist",
                "MDL compression (uniform / online code)",
                f"{row['compression']:.2f}x",
                compression_reading(row["compression"]),
                None,
            )
        )
    return Card(
        f"{model} · {row['task']}", evidence, overall_reading([e.lean for e in evidence], [e.matches for e in evidence])
    )


def ablation_card(model: str, task: str, rows: pd.DataFrame, amnesic: pd.DataFrame) -> Card:
    evidence = []
    joint, singles = _scalar(rows, "joint_effect_top_k"), _scalar(rows, "sum_of_single_effects")
    effects = rows[rows["metric"] == "effect"]["value"]
    largest = float(effects.abs().max()) if len(effects) else math.nan
    pattern = None
    r2 = _scalar(rows, "additivity_r2")
    noisy = r2 is not None and additivity_reading(r2["value"], r2["ci_low"], r2["ci_high"]).startswith("inconclusive")
    if joint is not None and singles is not None:
        pattern = interaction_pattern(joint["value"], singles["value"], largest, noisy=noisy)
    if r2 is not None:
        redundant = pattern is not None and pattern[2] == "redundant"
        reading = additivity_reading(r2["value"], r2["ci_low"], r2["ci_high"])
        if redundant and r2["value"] < THRESHOLDS.additive:
            reading += "; low here because the parts are redundant, not because they need each other"
        evidence.append(
            Evidence(
                "reductionist",
                "additivity R^2 of the top components",
                _ci(r2["value"], r2["ci_low"], r2["ci_high"]),
                reading,
                additivity_lean(r2["value"], r2["ci_low"], r2["ci_high"], redundant=redundant),
                (r2["value"], r2["ci_low"], r2["ci_high"]),
                matches=additivity_case(r2["value"], r2["ci_low"], r2["ci_high"], pattern[2] if pattern else None),
            )
        )
    if pattern is not None:
        assert joint is not None and singles is not None
        ratio = interaction_ratio(joint["value"], singles["value"], largest)
        text, lean, case = pattern
        evidence.append(
            Evidence(
                "emergent",
                "interaction of the top-k (|joint - sum of singles| / largest effect)",
                f"{_fmt(ratio)} (joint {joint['value']:+.3f}, sum of singles {singles['value']:+.3f}, "
                f"largest single {largest:+.3f})",
                text,
                lean,
                (ratio, ratio, ratio) if np.isfinite(ratio) else None,
                matches=case,
            )
        )
    if len(amnesic):
        change = amnesic[amnesic["metric"] == "erasure_change"].set_index("layer")["value"]
        rand = amnesic[amnesic["metric"] == "random_erasure_change"].set_index("layer")
        layer = int((change - rand["value"]).abs().idxmax())  # the layer where erasure differs most from random
        sd = (rand.loc[layer, "ci_high"] - rand.loc[layer, "value"]) / 1.96
        text, lean = erasure_reading(change[layer], rand.loc[layer, "value"], sd)
        concept = str(amnesic["concept"].iloc[0]) if "concept" in amnesic else "the concept"
        before = amnesic[(amnesic["metric"] == "concept_probe_before") & (amnesic["layer"] == layer)]["value"]
        majority = amnesic[(amnesic["metric"] == "concept_majority") & (amnesic["layer"] == layer)]["value"]
        readable = bool(len(before) and len(majority) and concept_readable(before.iloc[0], majority.iloc[0]))
        evidence.append(
            Evidence(
                "reductionist",
                f"amnesic probing: erase {concept} at layer {layer}",
                f"{change[layer]:+.3f} vs random {rand.loc[layer, 'value']:+.3f} (sd {_fmt(sd)})",
                text,
                lean,
                matches=erasure_case(change[layer], rand.loc[layer, "value"], sd, readable),
            )
        )
        if len(before) and len(majority):
            evidence.append(
                Evidence(
                    "reductionist",
                    f"{concept} linearly readable at layer {layer}",
                    f"{before.iloc[0]:.3f} (majority {majority.iloc[0]:.3f})",
                    "readable by a linear probe (context for the erasure: what there was to erase)"
                    if readable
                    else "not readable beyond the majority class",
                    None,
                    (before.iloc[0],) * 3,
                    {"majority class": float(majority.iloc[0])},
                )
            )
    return Card(
        f"{model} · {task}", evidence, overall_reading([e.lean for e in evidence], [e.matches for e in evidence])
    )


def circuit_card(model: str, task: str, rows: pd.DataFrame) -> Card:
    """The circuit-size evidence of a ``probes circuit`` run."""
    share = _scalar(rows, "circuit_share")
    assert share is not None
    random = _scalar(rows, "random_faithfulness_at_share")
    edges, total = _scalar(rows, "circuit_edges"), _scalar(rows, "graph_edges")
    target = float(share["target"]) if "target" in share and pd.notna(share["target"]) else 0.8
    random_value = float(random["value"]) if random is not None else math.nan
    text, lean = circuit_reading(share["value"], share["ci_low"], share["ci_high"], random_value, target)
    count = (
        f"{_fmt(edges['value'])} of {_fmt(total['value'])} edges; " if edges is not None and total is not None else ""
    )
    evidence = [
        Evidence(
            "reductionist",
            f"circuit size: the smallest share of edges keeping {target:.0%} ({rows['probe'].iloc[0]})",
            f"{count}{_ci(share['value'], share['ci_low'], share['ci_high'])}; random circuits of that size keep "
            f"{_fmt(random_value)}",
            text,
            lean,
            (share["value"], share["ci_low"], share["ci_high"]),
        )
    ]
    return Card(f"{model} · {task}", evidence, overall_reading([e.lean for e in evidence]))


def feature_card(model: str, task: str, rows: pd.DataFrame) -> Card:
    """The feature-count evidence of a ``probes sae features`` run: how many features keep the behaviour, and what
    the dictionary's error term carries."""
    share, count = _scalar(rows, "feature_share"), _scalar(rows, "feature_count")
    error, total = _scalar(rows, "error_share"), _scalar(rows, "dictionary_features")
    assert count is not None and error is not None
    target = float(share["target"]) if share is not None and pd.notna(share.get("target")) else 0.8
    random = rows[rows["metric"] == "random_feature_faithfulness"]
    at = (
        random[random["features"].astype(float) >= float(count["value"])] if np.isfinite(count["value"]) else random[:0]
    )
    random_value = float(at.sort_values("features")["value"].iloc[0]) if len(at) else math.nan
    text, lean = feature_reading(
        count["value"], count["ci_low"], count["ci_high"], error["value"], error["ci_low"], random_value, target
    )
    of = f" of {_fmt(total['value'])}" if total is not None else ""
    evidence = [
        Evidence(
            "reductionist",
            f"features: the fewest top features keeping {target:.0%} ({rows['probe'].iloc[0]})",
            f"{_ci(count['value'], count['ci_low'], count['ci_high'])}{of} features; random sets of that size keep "
            f"{_fmt(random_value)}; the error term carries {_ci(error['value'], error['ci_low'], error['ci_high'])} "
            "of the site's effect",
            text,
            lean,
            (error["value"], error["ci_low"], error["ci_high"]),
        )
    ]
    return Card(f"{model} · {task}", evidence, overall_reading([e.lean for e in evidence]))


def scale_card(family: str, task: str, verdicts: pd.DataFrame) -> Card:
    at_chance = verdicts["at_chance"] if "at_chance" in verdicts else pd.Series(False, index=verdicts.index)
    triples = list(zip(verdicts["metric"], verdicts["verdict"], at_chance.astype(bool)))
    text, lean = scale_reading(triples)
    evidence = [
        Evidence(
            "emergent",
            "capability vs scale, under every metric",
            ", ".join(f"{m}: {v}" for m, v in zip(verdicts["metric"], verdicts["verdict"])),
            text,
            lean,
            matches=scale_case(triples),
        )
    ]
    jumps = [
        f"{row.metric} {row.jump_location:,.0f} [{row.jump_low:,.0f}, {row.jump_high:,.0f}]"
        for row in verdicts.itertuples()
        if row.verdict == "jump" and pd.notna(getattr(row, "jump_location", np.nan))
    ]
    if jumps:
        evidence.append(
            Evidence(
                "emergent",
                "where it jumps (size at the sigmoid's midpoint)",
                "; ".join(jumps),
                "95% bootstrap intervals; the same place under every metric means one transition",
                None,
            )
        )
    return Card(
        f"{family} · {task}", evidence, overall_reading([e.lean for e in evidence], [e.matches for e in evidence])
    )


FLOOR = -1.0  # the card's axis starts here; an R^2 far below it (the sum of singles misses badly) is marked, not drawn


def card_figure(card: Card) -> Figure | None:
    """The card's measures that live on [0, 1], with their 95% intervals and baselines, coloured by the side
    they speak for. Values below ``FLOOR`` are drawn at the floor with their number beside them."""
    points = [(e, e.point) for e in card.evidence if e.point is not None and np.isfinite(e.point[0])]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.5 * len(points)))
    for i, (e, point) in enumerate(points):
        value, low, high = (v if np.isfinite(v) else point[0] for v in point)
        low, high = min(low, value), max(high, value)  # a percentile interval need not hold the point estimate
        shown, low, high = (max(v, FLOOR) for v in (value, low, high))
        color = "tab:green" if e.side == "reductionist" else "tab:orange"
        ax.errorbar(
            [shown],
            [i],
            xerr=[[shown - low], [high - shown]],
            fmt="<" if value < FLOOR else "o",
            color=color,
            capsize=4,
            ms=7,
        )
        if value < FLOOR:
            ax.annotate(
                f"{value:.1f}, off the scale",
                (shown, i),
                textcoords="offset points",
                xytext=(8, 6),
                fontsize=7,
                color=color,
            )
        for (name, mark), symbol in zip(e.marks.items(), ("|", "x", "+")):
            ax.plot([mark], [i], symbol, color="black", ms=12, mew=1.5)
            ax.annotate(name, (mark, i), textcoords="offset points", xytext=(0, 9), ha="center", fontsize=7)
    ax.set_yticks(range(len(points)), [e.measure.split(" (")[0] for e, _ in points], fontsize=8)
    ax.set_ylim(-0.6, len(points) - 0.3)
    lowest = min(max(v, FLOOR) for _, point in points for v in point if np.isfinite(v))
    ax.set_xlim(min(-0.05, lowest - 0.05), 1.05)  # an R^2 below 0 shows whole, down to the floor
    ax.set_xlabel("value (fraction of 1; bars: 95% interval)")
    ax.set_title(f"{card.title}: green speaks for separable parts, orange for interaction", fontsize=9)
    fig.tight_layout()
    return figure(fig, f"scorecard figure: {card.title}")


def scorecards(inputs: Inputs) -> list[Card]:
    cards: list[Card] = []
    probing = _probing(inputs.results)
    if len(probing):
        for row in profile_table(probing).to_dict(orient="records"):
            cards.append(probe_card(str(row["model"]), pd.Series(row)))
    abl, amnesic = _ablations(inputs.results), _amnesic(inputs.results)
    for (model, task), rows in abl.groupby(["model", "task"], sort=False):
        cards.append(
            ablation_card(str(model), str(task), rows, amnesic[(amnesic["model"] == model) & (amnesic["task"] == task)])
        )
    attributed = _attribution(inputs.results)
    for (model, task), rows in attributed.groupby(["model", "task"], sort=False):
        if (rows["metric"] == "circuit_share").any():
            cards.append(circuit_card(str(model), str(task), rows))
    for (model, task), rows in _features(inputs.results).groupby(["model", "task"], sort=False):
        if (rows["metric"] == "feature_count").any() and (rows["metric"] == "error_share").any():
            cards.append(feature_card(str(model), str(task), rows))
    if inputs.verdicts is not None:
        for (family, task), rows in inputs.verdicts.groupby(["family", "task"], sort=False):
            cards.append(scale_card(str(family), str(task), rows))
    for card in cards:
        card.figure = card_figure(card)
    return cards


# --- sections -----------------------------------------------------------------------------------------


def scorecard_section(inputs: Inputs) -> Section:
    section = Section("scorecards", "Scorecards: reduces or emerges?")
    section.blocks.append(
        "One card per model and behaviour. Left, the evidence that the behaviour reduces to local, linearly readable, "
        "separable parts (linear decodability beyond baselines, selectivity, additivity of component effects, erasure "
        "that hurts); right, the evidence that it emerges (the share of the joint effect that single effects miss, "
        "jumps with scale that survive continuous metrics). Each number carries its 95% interval where one was "
        "measured; the bottom line is a vote of the measures that lean one way, the thresholds in analysis/readings.py."
    )
    section.blocks += scorecards(inputs)
    return section


def probe_section(inputs: Inputs) -> Section | None:
    probing = _probing(inputs.results)
    if probing.empty:
        return None
    section = Section("probes", "Linear probes: what each layer makes readable")
    section.blocks.append(
        "Held-out accuracy of a linear probe at every layer (band: 95% bootstrap CI over test sentences), beside three "
        "baselines: the same probe on a control task that assigns each word type a random label (Hewitt & Liang), the "
        "same probe on the randomly initialised model, and the majority class. Selectivity is task minus control "
        "accuracy; MDL compression is the uniform code length over the online code length (Voita & Titov)."
    )
    section.blocks.append(_table(for_display(profile_table(probing)), "best layer per model and task"))
    for task in dict.fromkeys(probing["task"].astype(str)):
        for probe in dict.fromkeys(probing[probing["task"] == task]["probe"].astype(str)):
            section.blocks.append(
                figure(
                    probe_plots.layer_profile(probing, task, probe=probe),
                    f"{task}: {probe} probe accuracy by layer, all models",
                )
            )
    for model in dict.fromkeys(probing["model"].astype(str)):
        rows = probing[probing["model"] == model]
        if rows["metric"].isin(["selectivity", "compression"]).any():
            section.blocks.append(
                figure(
                    probe_plots.selectivity_and_compression(probing, model),
                    f"{model}: selectivity and MDL compression by layer",
                )
            )
    return section


def ablation_section(inputs: Inputs) -> Section | None:
    abl = _ablations(inputs.results)
    if abl.empty:
        return None
    section = Section("ablations", "Ablations: separable components or interaction?")
    section.blocks.append(
        "Every head and MLP ablated on its own (effect: change in the behaviour, 95% CI over examples), then the "
        "top components together: the pairwise interaction (joint effect minus the two single effects), Shapley values "
        "over sampled orders, and the additivity R^2 of 'joint effect = sum of single effects' over sampled subsets "
        "(1: separable parts; low: the behaviour lives in their interaction)."
    )
    section.blocks.append(_table(for_display(ablation_table(abl)), "one row per model, behaviour and ablation kind"))
    for (model, task), rows in abl.groupby(["model", "task"], sort=False):
        model, task = str(model), str(task)
        section.blocks.append(f"{model} · {task}")
        try:
            if (rows["metric"] == "attribution").any():  # the top k were chosen by attribution: its map of every head
                section.blocks.append(
                    figure(attribution_plots.attribution_maps(rows, model=model), f"{model}: attribution on {task}")
                )
            else:
                section.blocks.append(
                    figure(
                        ablation_plots.effect_map(rows, model=model), f"{model}: effect of ablating each head on {task}"
                    )
                )
        except ValueError:
            pass  # a study of MLPs or named components only: no head map to draw
        if (rows["metric"] == "interaction").any():
            section.blocks.append(
                figure(
                    ablation_plots.interaction_map(rows, model=model),
                    f"{model}: interactions of the top components on {task}",
                )
            )
        if (rows["metric"] == "shapley").any():
            section.blocks.append(
                figure(ablation_plots.shapley_bars(rows, model=model), f"{model}: Shapley values on {task}")
            )
    return section


def attribution_section(inputs: Inputs) -> Section | None:
    attributed = _attribution(inputs.results)
    if attributed.empty:
        return None
    section = Section("attribution", "Attribution and circuits: which parts carry the behaviour?")
    section.blocks.append(
        "Attribution patching estimates every component's effect (AtP, AtP* with the QK fix and GradDrop) or every "
        "edge's (EAP, EAP-IG) from gradients, in one forward and one backward pass; the strongest and a random sample "
        "are then measured exactly (right: estimate against exact effect). A circuit keeps the top edges and removes "
        "every other one (ablated or patched, measured exactly); its faithfulness is the share of the behaviour it "
        "keeps, beside random circuits of its size."
    )
    for (model, task, probe), rows in attributed.groupby(["model", "task", "probe"], sort=False):
        model, task = str(model), str(task)
        section.blocks.append(f"{model} · {task} · {probe}")
        summary = rows[rows["metric"].isin(["verify_spearman", "verify_top_overlap", "verify_largest_miss"])]
        if len(summary):
            section.blocks.append(
                _table(
                    summary[["metric", "component", "value", "n"]],
                    "verification: Spearman over the checked components above noise (n of them), exact top k "
                    "found in the estimate's top k (of n), the largest miss (exact - estimate)",
                )
            )
        if (rows["metric"] == "attribution").any():
            try:
                section.blocks.append(
                    figure(attribution_plots.attribution_maps(rows, model=model), f"{model}: attribution on {task}")
                )
            except ValueError:
                pass  # no heads among the components: no map to draw
        if (rows["metric"] == "exact_effect").any():
            section.blocks.append(
                figure(attribution_plots.estimate_vs_exact(rows, model=model), f"{model}: estimates vs exact on {task}")
            )
        edges = rows[rows["metric"] == "edge_attribution"]
        if len(edges):
            top = edges.reindex(edges["value"].abs().sort_values(ascending=False).index).head(10)
            section.blocks.append(
                _table(top[["component", "value", "ci_low", "ci_high"]], f"{model}: the 10 strongest edges on {task}")
            )
        if (rows["metric"] == "faithfulness").any():
            section.blocks.append(
                figure(attribution_plots.faithfulness_plot(rows, model=model), f"{model}: circuits of {task}")
            )
    return section


def amnesic_section(inputs: Inputs) -> Section | None:
    amnesic = _amnesic(inputs.results)
    if amnesic.empty:
        return None
    section = Section("amnesic", "Amnesic probing: does the behaviour use the readable feature?")
    section.blocks.append(
        "The concept is erased from the residual stream at one layer with LEACE (no linear probe can recover it "
        "afterwards: right panel), and the behaviour is measured again; erasing random subspaces of the same rank "
        "tells how much any erasure of that size changes it (Elazar et al.; Belrose et al.)."
    )
    for (model, task), rows in amnesic.groupby(["model", "task"], sort=False):
        section.blocks.append(
            figure(ablation_plots.amnesic_plot(rows, model=str(model)), f"{model}: amnesic probing of {task}")
        )
        wide = rows.pivot_table(index="layer", columns="metric", values="value").reset_index()
        section.blocks.append(_table(wide, f"{model} · {task}: per layer"))
    return section


def scale_section(inputs: Inputs) -> Section | None:
    if inputs.verdicts is None or inputs.scale is None:
        return None
    section = Section("scale", "Capability across scale: smooth, jump or mirage?")
    section.blocks.append(
        "Scores normalised to chance (0) and the best possible (1), against model size on a log axis, with the fitted "
        "smooth models (linear, power law) and jump models (sigmoid, broken power law; BIC in the legend) and the "
        "jump's 95% bootstrap interval. A jump under exact match that is smooth under a partial-credit metric is a "
        "mirage of the metric (Schaeffer et al.); one that survives every metric is a real jump."
    )
    shown = [
        "family",
        "task",
        "metric",
        "n_sizes",
        "verdict",
        "jump_location",
        "jump_low",
        "jump_high",
        "breakthroughness",
        "delta_bic",
        "reading",
    ]
    verdicts = inputs.verdicts
    section.blocks.append(_table(verdicts[[c for c in shown if c in verdicts.columns]], "verdict per task and metric"))
    final = inputs.scale
    over_training: set[str] = set()
    for (family, task, axis), _ in verdicts.groupby(["family", "task", "axis"], sort=False):
        table = final[final["axis"] == axis]
        if axis == "step":  # each model's checkpoints are a curve: every model of the task in one figure, once
            if task not in over_training:
                over_training.add(str(task))
                section.blocks.append(
                    figure(scale_plots.capability_vs_step(table, str(task)), f"{task}: capability over training")
                )
            continue
        section.blocks.append(
            figure(
                scale_plots.capability_vs_size(table, verdicts, str(task), family=str(family), size=str(axis)),
                f"{family} · {task}: capability vs size",
            )
        )
        if "step" in table.columns and table[(table["task"] == task)]["step"].notna().any():
            try:
                section.blocks.append(
                    figure(
                        scale_plots.capability_vs_step(table, str(task)), f"{family} · {task}: capability over training"
                    )
                )
            except ValueError:
                pass  # no checkpoints of this task
    return section


def _highlight(examples: pd.DataFrame, feature: int) -> Highlight:
    rows = examples[examples["feature"] == feature].sort_values("rank")
    lines, notes = [], []
    top = float(rows["activation"].max()) if len(rows) else 1.0
    for r in rows.itertuples():
        tokens, acts = json.loads(r.tokens), json.loads(r.token_activations)
        lines.append([(str(t), max(0.0, min(1.0, float(a) / top)) if top > 0 else 0.0) for t, a in zip(tokens, acts)])
        notes.append(f"{r.activation:.2f} at text {r.text}, token {r.position}")
    return Highlight(f"feature {feature}", lines, notes)


def feature_section(inputs: Inputs) -> Section | None:
    rows = _features(inputs.results)
    if rows.empty:
        return None
    section = Section("features", "Sparse features: how much do a few features carry?")
    section.blocks.append(
        "A sparse dictionary (a TopK sparse autoencoder trained here, or one in SAELens's format) decomposes a site "
        "into features. Its quality is measured as SAELens measures it on held-out text: explained variance, L0, dead "
        "and dense features, and the next-token loss recovered with it spliced in. For a behaviour, every feature's "
        "effect is estimated (AtP) and the strongest checked exactly; the top k are kept with every other feature "
        "ablated (measured exactly, beside random sets of k), and the error term's share of the site's effect says "
        "what the dictionary misses."
    )
    quality = rows[rows["probe"].astype(str).str.startswith("sae:")]
    for (model, site, probe), part in quality.groupby(["model", "site", "probe"], sort=False):
        section.blocks.append(f"{model} · {site} · {probe}")
        section.blocks.append(
            _table(part[["metric", "value", "ci_low", "ci_high", "n"]], "dictionary quality on held-out texts")
        )
    studied = rows[rows["probe"].astype(str).str.startswith("features:")]
    for (model, task), part in studied.groupby(["model", "task"], sort=False):
        model, task = str(model), str(task)
        section.blocks.append(f"{model} · {task} · {part['probe'].iloc[0]}")
        summary = part[part["metric"].isin(["verify_spearman", "verify_top_overlap", "verify_largest_miss"])]
        if len(summary):
            section.blocks.append(
                _table(summary[["metric", "component", "value", "n"]], "verification of the features' AtP")
            )
        if (part["metric"] == "feature_faithfulness").any():
            section.blocks.append(
                figure(feature_plots.feature_curve_plot(part, model=model), f"{model}: features of {task}")
            )
        concept = part[part["metric"].isin(["best_feature_accuracy", "probe_accuracy"])]
        if len(concept):
            section.blocks.append(
                _table(
                    concept[["metric", "component", "label", "value", "n"]] if "label" in concept else concept,
                    "a concept's classes: the best single feature's balanced accuracy beside the linear probe's",
                )
            )
        examples = inputs.feature_examples
        if examples is not None:
            mine = examples[(examples["model"].astype(str) == model)]
            for feature in dict.fromkeys(mine["feature"].tolist()):
                section.blocks.append(_highlight(mine, int(feature)))
    return section


def attention_section(inputs: Inputs) -> Section | None:
    if inputs.heads is None:
        return None
    section = Section("attention", "Attention heads with a local, nameable job")
    section.blocks.append(
        "Per head, over a text set: the entropy of a query's attention (nats), the mean attended distance (tokens), "
        "the weight on the previous token and on the first token (the sink), and on repeated random tokens the "
        "weight on the token after the earlier copy (induction, Olsson et al.). Below each map, the patterns of the "
        "heads that score highest on each job, on one input."
    )
    for model in dict.fromkeys(inputs.heads["model"].astype(str)):
        frame = inputs.heads[inputs.heads["model"] == model]
        section.blocks.append(figure(head_plots.head_maps(frame, model=model), f"{model}: per-head statistics"))
        top = [(layer, head, why) for layer, head, why in head_plots.notable_heads(frame)]
        section.blocks.append(
            _table(pd.DataFrame([{"head": f"L{l}H{h}", "why": w} for l, h, w in top]), f"{model}: notable heads")
        )
        if model in inputs.patterns:
            tokens, patterns, text = inputs.patterns[model]
            section.blocks.append(
                figure(
                    head_plots.pattern_heatmaps(tokens, patterns, top, model=model),
                    f"{model}: attention patterns of the notable heads",
                    f"input: {text}",
                )
            )
    return section


def lens_section(inputs: Inputs) -> Section | None:
    if inputs.lens is None:
        return None
    section = Section("lens", "What each depth would predict: logit lens and tuned lens")
    section.blocks.append(
        "The residual stream after each block read through the model's own final norm and unembedding (logit "
        "lens), or after an affine translator per depth trained to match the model's output (tuned lens, "
        "Belrose et al. 2023), on held-out texts: KL to the model's output distribution (nats, 95% interval "
        "from resampling texts) and top-1 agreement. A behaviour read the same way shows the first depth from "
        "which its score stays half-way from knowing nothing (a uniform prediction) to the model's own."
    )
    for model in dict.fromkeys(inputs.lens["model"].astype(str)):
        frame = inputs.lens[inputs.lens["model"] == model]
        behaviour = None
        if inputs.lens_behaviour is not None:
            rows = inputs.lens_behaviour[inputs.lens_behaviour["model"].astype(str) == model]
            behaviour = rows if len(rows) else None
        section.blocks.append(figure(lens_plots.plot_lens(frame, behaviour), f"{model}: logit lens and tuned lens"))
        kl = frame.pivot(index="depth", columns="lens", values="kl")
        summary = []
        for name in kl.columns:
            part = frame[frame["lens"] == name].set_index("depth")
            summary.append(
                {
                    "lens": name,
                    "mean KL before the last depth": float(kl[name].iloc[:-1].mean()),
                    "depths below the logit lens": int((kl[name] < kl["logit"]).iloc[:-1].sum())
                    if "logit" in kl and name != "logit"
                    else "-",
                    "top-1 at the middle depth": float(part["top1_agreement"].iloc[len(part) // 2]),
                }
            )
        if behaviour is not None:
            first = behaviour.groupby("lens", sort=False)["first_decodable"].first()
            for row in summary:
                value = first.get(row["lens"])
                row[f"{behaviour['behaviour'].iloc[0]}: first decodable depth"] = (
                    "never" if value is None or pd.isna(value) else int(value)
                )
        section.blocks.append(_table(pd.DataFrame(summary), f"{model}: {len(kl) - 1} blocks"))
    return section


def _recorded_models(record: dict) -> dict[str, dict]:
    """name -> what a run.json records of each model it used (weights hash, source, revision, step)."""
    models = record.get("models")
    return {str(k): v for k, v in models.items() if isinstance(v, dict)} if isinstance(models, dict) else {}


def provenance_section(inputs: Inputs) -> Section:
    section = Section("provenance", "Where these numbers come from")
    section.blocks.append(
        "Every result folder this report read, with the models (weights hash, revision), seed, "
        "package versions and the exact configuration it recorded."
    )
    rows, details = [], []
    for s in inputs.sources:
        record = dict(s.record)
        inputs_read = (record.get("details") or {}).get("inputs", []) if s.kind == "scale" else []
        for folder in inputs_read:  # the evaluations it analysed
            if (Path(folder) / "run.json").is_file():
                record.setdefault("evaluations", {})[str(folder)] = json.loads((Path(folder) / "run.json").read_text())
        models = _recorded_models(record)
        for evaluation in record.get("evaluations", {}).values():
            models.update(_recorded_models(evaluation))
        env = record.get("environment") or {}
        packages = env.get("packages") or {}
        rows.append(
            {
                "folder": str(s.path),
                "kind": s.kind,
                "models (weights sha256/16)": "; ".join(
                    f"{n} ({m.get('weights_sha256_16') or '-'}"
                    + (f", revision {m['revision']}" if m.get("revision") else "")
                    + ")"
                    for n, m in models.items()
                )
                or "-",
                "seed": record.get("seed", "-"),
                "versions": ", ".join(f"{k} {v}" for k, v in packages.items() if v) or "-",
                "created": env.get("created", "-"),
            }
        )
        if record:
            details.append(("details", f"configuration of {s.path}", json.dumps(record, indent=1, default=str)))
    section.blocks.append(_table(pd.DataFrame(rows), "result folders"))
    section.blocks += details
    return section


def build_sections(inputs: Inputs) -> list[Section]:
    sections = [
        scorecard_section(inputs),
        probe_section(inputs),
        ablation_section(inputs),
        attribution_section(inputs),
        feature_section(inputs),
        amnesic_section(inputs),
        scale_section(inputs),
        attention_section(inputs),
        lens_section(inputs),
        provenance_section(inputs),
    ]
    return [s for s in sections if s is not None]


# ------------------------------------------------------------------------------------------ output


def render_html(sections: list[Section], title: str, sources: list[Source]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("analysis", "templates"), autoescape=select_autoescape(default=True))
    template = env.get_template("report.html.j2")
    return template.render(
        title=title,
        sections=sections,
        sources=sources,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        is_figure=lambda b: isinstance(b, Figure),
        is_table=lambda b: isinstance(b, Table),
        is_card=lambda b: isinstance(b, Card),
        is_details=lambda b: isinstance(b, tuple),
        is_highlight=lambda b: isinstance(b, Highlight),
    )


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>~-])")


def md_escape(text: Any) -> str:
    """User text for Markdown: HTML-escaped and with Markdown's control characters backslashed."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")


def render_markdown(sections: list[Section], title: str, link_base: str) -> tuple[str, dict[str, bytes]]:
    """Markdown, and its figures as PNG files (name -> bytes) to be written into a folder it links as ``link_base``."""
    lines = [f"# {md_escape(title)}", ""]
    files: dict[str, bytes] = {}

    def fig_lines(fig: Figure) -> list[str]:
        name = f"figure-{len(files) + 1:02d}.png"
        files[name] = fig.png
        out = [f"![{md_escape(fig.title)}]({link_base}/{name})", "", f"*{md_escape(fig.title)}*"]
        return out + ([f" {md_escape(fig.caption)}"] if fig.caption else []) + [""]

    def table_lines(table: Table) -> list[str]:
        out = [f"*{md_escape(table.caption)}*", ""] if table.caption else []
        out += ["| " + " | ".join(md_escape(c) for c in table.columns) + " |", "|" + "---|" * len(table.columns)]
        out += ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in table.rows]
        return out + [""]

    for section in sections:
        lines += [f"## {md_escape(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, Figure):
                lines += fig_lines(block)
            elif isinstance(block, Table):
                lines += table_lines(block)
            elif isinstance(block, Card):
                lines += [f"### {md_escape(block.title)}", ""]
                for side in ("reductionist", "emergent"):
                    label = (
                        "Reduces (separable, readable parts)"
                        if side == "reductionist"
                        else "Emerges (interaction, scale)"
                    )
                    lines.append(f"**{label}**")
                    items = block.side(side)
                    lines += [
                        f"- {md_escape(e.measure)}: {md_escape(e.value)}: {md_escape(e.reading)}"
                        + (f" (matches the zoo case: {md_escape(e.matches)})" if e.matches else "")
                        for e in items
                    ] or ["- not measured here"]
                    lines.append("")
                lines += [f"**Reading:** {md_escape(block.overall)}", ""]
                if block.figure:
                    lines += fig_lines(block.figure)
            elif isinstance(block, Highlight):
                lines += [f"**{md_escape(block.title)}**", ""]
                for tokens, note in zip(block.lines, block.notes):
                    text = "".join(f"**{md_escape(t)}**" if w >= 0.5 else md_escape(t) for t, w in tokens)
                    lines += [f"- {text} ({md_escape(note)})"]
                lines.append("")
            elif isinstance(block, tuple):
                lines += [
                    f"<details><summary>{html.escape(block[1])}</summary>",
                    "",
                    "<pre>",
                    html.escape(block[2]),
                    "</pre>",
                    "</details>",
                    "",
                ]
            else:
                lines += [md_escape(block), ""]
    return "\n".join(lines), files


FORMATS = {"html": (".html", ".htm"), "md": (".md", ".markdown")}


@dataclass
class Rendered:
    """A report ready to write: its text, the files beside it (Markdown's figures), and every figure."""

    text: str
    files: dict[str, bytes]
    figures: list[Figure]


def render_report(
    paths: Sequence[str | os.PathLike],
    *,
    fmt: str = "html",
    title: str = "emergence-probes report",
    link_base: str = "report_files",
) -> Rendered:
    """Read the result folders at or below ``paths`` and render the report (``fmt`` "html" or "md"; Markdown links
    its figures under ``link_base``). ``probes.pipelines.report.write_report`` writes it to disk."""
    if fmt not in FORMATS:
        raise ReportError(f"unknown report format {fmt!r}: use html or md")
    inputs = read_inputs(paths)
    sections = build_sections(inputs)
    if fmt == "html":
        return Rendered(render_html(sections, title, inputs.sources), {}, list(iter_figures(sections)))
    text, files = render_markdown(sections, title, link_base)
    return Rendered(text, files, list(iter_figures(sections)))


def figure_files(figures: Iterable[Figure]) -> dict[str, bytes]:
    """Every figure as ``<title as a file name>.png`` (for papers, slides, a README)."""
    files = {}
    for fig in figures:
        slug = re.sub(r"[^a-z0-9]+", "-", fig.title.lower()).strip("-")[:80] or "figure"
        files[f"{slug}.png"] = fig.png
    return files


def iter_figures(sections: Iterable[Section]) -> Iterable[Figure]:
    """Every figure of a report, the scorecards' included (for tests and for saving them one by one)."""
    for section in sections:
        for block in section.blocks:
            if isinstance(block, Figure):
                yield block
            elif isinstance(block, Card) and block.figure:
                yield block.figure
