"""Notebooks are executed as a user would run them, top to bottom, in a real kernel; they import only from the
packages' facades and leave the models they load as they found them."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
FACADES = {
    "probes",
    "probes.core",
    "probes.causal",
    "probes.probing",
    "probes.sparse",
    "probes.scale",
    "probes.pipelines",
}


def sources(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
        "strip outputs before committing"
    )
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_import_from_the_facades_and_change_no_model(path):
    code = "\n".join(sources(path))
    modules = set(re.findall(r"^\s*from (probes[\w.]*) import", code, re.M))
    modules |= set(re.findall(r"^\s*import (probes[\w.]*)", code, re.M))
    assert modules <= FACADES, modules - FACADES
    assert "set_attn_implementation" not in code and "_attn_implementation" not in code


def test_there_are_notebooks():
    assert NOTEBOOKS
