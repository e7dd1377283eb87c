"""The documentation site stays true: every Python block of every page runs as written (a page's blocks in
order, in one namespace, in a fresh folder), every ``probes`` command in a shell block parses and validates as
the CLI would run it, every ``make`` target named exists, and every TOML block is a valid suite. (The site
itself is built with ``mkdocs build --strict`` by ``make test``, so a broken link or reference fails.)"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "notebooks" not in p.relative_to(DOCS).parts)
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
REAL_MODEL = re.compile(r"""["'](minilm|smollm2-135m)["']""")  # a page that loads a real model


def blocks(page: Path, language: str) -> list[str]:
    return [code for lang, code in FENCE.findall(page.read_text(encoding="utf-8")) if lang == language]


def _page_params():
    params = []
    for page in PAGES:
        if not blocks(page, "python"):
            continue
        marks = [pytest.mark.integration] if REAL_MODEL.search(page.read_text(encoding="utf-8")) else []
        params.append(pytest.param(page, marks=marks, id=str(page.relative_to(DOCS))))
    return params


@pytest.fixture
def registries_restored():
    """What a page registers (an ablation kind, a behaviour, an architecture) is taken back after it."""
    from probes.core import adapters
    from probes.registry import REGISTRIES

    before = {what: set(registry.names()) for what, registry in REGISTRIES.items()}
    rows = list(adapters._REGISTERED)
    yield
    for what, registry in REGISTRIES.items():
        for name in set(registry.names()) - before[what]:
            registry.unregister(name)
    adapters._REGISTERED[:] = rows


@pytest.mark.parametrize("page", _page_params())
def test_every_python_block_runs(page, tmp_path, monkeypatch, registries_restored):
    monkeypatch.chdir(tmp_path)  # pages write runs/... relative to where they run
    scope: dict = {"__name__": f"docs.{page.stem}"}
    for number, code in enumerate(blocks(page, "python"), 1):
        try:
            exec(compile(code, f"{page.relative_to(ROOT)} (block {number})", "exec"), scope)
        except Exception as err:
            raise AssertionError(f"{page.relative_to(ROOT)}, Python block {number} failed: {err!r}") from err


def _commands() -> list[tuple[str, str]]:
    found = []
    for page in [*PAGES, ROOT / "README.md"]:
        for code in blocks(page, "bash"):
            for line in code.splitlines():
                words = shlex.split(line, comments=True)
                if words and words[0] in ("probes", "make"):
                    found.append((str(page.relative_to(ROOT)), line.split("  #")[0].strip()))
    return found


COMMANDS = _commands()


@pytest.mark.parametrize(("page", "line"), COMMANDS, ids=[f"{p}: {line[:50]}" for p, line in COMMANDS])
def test_every_command_in_the_docs_is_valid(page, line):
    words = shlex.split(line, comments=True)
    if words[0] == "make":
        targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
        assert set(words[1:]) <= targets, f"{page}: make {words[1:]}: no such target"
        return
    from probes.cli import build_parser
    from probes.pipelines.specs import SuiteSpec, make

    try:
        args = vars(build_parser().parse_args(words[1:]))
    except SystemExit as exit:
        raise AssertionError(f"{page}: `{line}` does not parse") from exit
    command = args.pop("_command")
    for key in ("command", "step", "out", "suite"):
        args.pop(key, None)
    spec = SuiteSpec if command.name == "run" else command.spec
    if spec is not None:
        make(spec, args, where=page, style="cli")  # every flag's value validates as the command would take it


TOMLS = [(str(p.relative_to(DOCS)), code) for p in PAGES for code in blocks(p, "toml")]


@pytest.mark.parametrize(("page", "code"), TOMLS, ids=[p for p, _ in TOMLS])
def test_every_suite_in_the_docs_validates(page, code):
    from probes.pipelines.specs import SuiteSpec, make

    make(SuiteSpec, tomllib.loads(code), where=page)


def test_the_docs_have_code_to_check():
    assert _page_params() and COMMANDS and TOMLS
