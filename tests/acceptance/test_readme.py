"""The README stays true: its Python example runs as written, it fits a first screen and names what it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.integration
def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README shows Python usage"
    monkeypatch.chdir(tmp_path)  # it writes runs/acts relative to the working folder
    scope: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), scope)
    assert float(scope["restored"]) > 1.0  # as the README says: L26H0 carries much of the clean answer
    assert scope["clean"]["z", 26].shape[-2:] == (9, 64)


def test_readme_is_short_and_points_to_pages_that_exist():
    text = README.read_text()
    assert len(text.encode()) <= 10 * 1024, "the README is a first screen: the rest belongs in docs/"
    for link in re.findall(r"\]\(([^)#]+\.(?:md|png))\)", text):
        assert (README.parent / link).is_file(), f"README links {link}, which is not in the repository"


def test_readme_names_the_two_commands_first():
    first_screen = README.read_text().split("---")[0]
    assert "make demo" in first_screen and "make test" in first_screen


def test_readme_figures_exist():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README.read_text())
    assert images, "the README shows the report's figures"
    for image in images:
        assert (README.parent / image).is_file(), f"README shows {image}, which is not in the repository"
