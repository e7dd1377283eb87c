"""The report as a document: sections made of paragraphs, tables, figures, highlighted text and scorecards, which
``render`` writes as HTML or Markdown."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

import matplotlib
import matplotlib.text

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import pandas as pd

from ..verdicts import fmt


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
class Section:
    id: str
    title: str
    blocks: list[Any] = field(
        default_factory=list
    )  # str (a paragraph), Table, Figure, Card, or ("details", title, text)


def literal_text(fig: plt.Figure) -> None:
    """Titles, labels, legends and notes as typed: a '$' in a model or task name is not mathtext. Tick labels
    keep it (log axes label their ticks with it); token tick labels are literal already."""
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) for t in axis.get_ticklabels(which="both")}
    for text in fig.findobj(matplotlib.text.Text):
        if id(text) not in ticks:
            text.set_parse_math(False)


def figure(fig: plt.Figure, title: str, caption: str = "") -> Figure:
    literal_text(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Figure(title, buffer.getvalue(), caption)


def table(frame: pd.DataFrame, caption: str = "", digits: int = 3) -> Table:
    return Table(
        [str(c) for c in frame.columns],
        [[fmt(v, digits) for v in row] for row in frame.itertuples(index=False)],
        caption,
    )
