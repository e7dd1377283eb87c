"""The README stays true: its Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README shows Python usage"
    monkeypatch.chdir(tmp_path)  # it writes runs/acts relative to the working folder
    scope: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), scope)
    assert scope["cache"]["blocks.3.attn.hook_pattern"].shape == (1, 12, 12, 12)  # as the README says
    assert scope["X"].shape[1] == 384


def test_readme_names_the_two_commands_first():
    first_screen = README.read_text().split("---")[0]
    assert "make demo" in first_screen and "make test" in first_screen


def test_readme_figures_exist():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README.read_text())
    assert images, "the README shows the report's figures"
    for image in images:
        assert (README.parent / image).is_file(), f"README shows {image}, which is not in the repository"
