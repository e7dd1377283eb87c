"""A comparison report from result folders: one self-contained HTML file, or Markdown beside its figures.

    rendered = render_report(["runs/demo"])                 # every result folder found under runs/demo
    rendered.text                                           # one self-contained HTML page
    render_report(["runs/a", "runs/b"], fmt="md").files     # Markdown's figures, to write beside it

(``probes report`` and ``probes.pipelines.report.write_report`` write it.) The report is read from the folders
(``sources``), built as sections of paragraphs, tables, figures and scorecards (``document``, ``sections``; the
cards come from the verdict engine, ``analysis.verdicts``), and written as HTML or Markdown (``render``).
"""

from __future__ import annotations

from .document import Figure as Figure
from .document import Highlight as Highlight
from .document import Section as Section
from .document import Table as Table
from .render import FORMATS as FORMATS
from .render import Rendered as Rendered
from .render import figure_files as figure_files
from .render import iter_figures as iter_figures
from .render import md_escape as md_escape
from .render import render_html as render_html
from .render import render_markdown as render_markdown
from .render import render_report as render_report
from .sections import build_sections as build_sections
from .sources import Inputs as Inputs
from .sources import ReportError as ReportError
from .sources import Source as Source
from .sources import find_sources as find_sources
from .sources import read_inputs as read_inputs
