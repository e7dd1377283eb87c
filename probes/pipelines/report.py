"""``probes report``: the comparison report (``analysis.report``) written to disk.

    write_report(ReportSpec(results=["runs/demo"]), "runs/demo/report.html")

HTML is one self-contained file; Markdown gets its figures in ``<stem>_files/`` beside it;
``figures`` writes every figure again as a PNG named after its title. Each file and folder
appears whole (written under a temporary name, then renamed) or not at all.

The report reads run folders; it is not one (several reports of the same results may sit side by side).
"""

from __future__ import annotations

import os
from pathlib import Path

from analysis.report import FORMATS, ReportError, figure_files, render_report
from probes.core.files import atomic_path, write_bytes, write_text
from probes.pipelines.specs import ReportSpec


def report_path(spec: ReportSpec, out: str | os.PathLike) -> tuple[Path, str]:
    """Where the report goes and its format: ``spec.format``, else the suffix of ``out`` (html by default)."""
    out = Path(out)
    fmt = spec.format or ("md" if out.suffix.lower() in FORMATS["md"] else "html")
    if out.suffix.lower() not in FORMATS[fmt]:
        out = out.with_suffix(f".{fmt}")
    if out.is_dir():
        raise ReportError(f"--out {out} is a folder: name the report file (e.g. {out / ('report.' + fmt)})")
    return out, fmt


def _write_folder(folder: Path, files: dict[str, bytes]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder, directory=True) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)


def write_report(spec: ReportSpec, out: str | os.PathLike) -> Path:
    """Render the report of the spec's result folders and write it to ``out``; returns the path written."""
    out, fmt = report_path(spec, out)
    files_dir = out.with_name(f"{out.stem}_files")
    rendered = render_report(spec.results, fmt=fmt, title=spec.title, link_base=files_dir.name)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReportError(f"cannot create {out.parent}: {err.strerror}; pass an --out you can write to") from None
    if fmt == "md":
        _write_folder(files_dir, rendered.files)  # the report's own folder: replaced whole
    write_text(out, rendered.text)
    if spec.figures is not None:  # a folder of the user's (docs/figures): each figure added or replaced
        folder = Path(spec.figures)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in figure_files(rendered.figures).items():
            write_bytes(folder / name, data)
    return out
