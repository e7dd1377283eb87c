"""The scorecards: the verdict engine's cards (``analysis.verdicts``), each with its figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...verdicts import Card
from ...verdicts import scorecards as cards
from ..document import Figure, Section, figure
from ..sources import Inputs

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
    """The verdict engine's cards for these inputs, each with its figure."""
    drawn = cards(inputs.results, inputs.verdicts)
    for card in drawn:
        card.figure = card_figure(card)
    return drawn


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
