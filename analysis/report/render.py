"""The report's document as one self-contained HTML page (a jinja2 template, autoescaped) or as Markdown with its
figures beside it; every piece of text from the results is escaped in both."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..verdicts import Card
from .document import Figure, Highlight, Section, Table
from .sections import build_sections
from .sources import ReportError, Source, read_inputs


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
