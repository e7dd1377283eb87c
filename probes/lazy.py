"""Package attributes imported on first use, so that ``import probes.cli`` (and ``probes --help``) loads
neither torch nor transformers until a command needs them.

A package's exports are written once, as the imports of its ``__init__.pyi`` (which type checkers and editors
read); its ``__init__.py`` reads them from there:

    __getattr__, __dir__, __all__ = attach_stub(__name__, __file__)
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any


def stub_exports(init_file: str | Path) -> dict[str, str]:
    """Each name the package's ``__init__.pyi`` imports (``from module import name``), and its module."""
    stub = Path(init_file).with_suffix(".pyi")
    names: dict[str, str] = {}
    for node in ast.parse(stub.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module != "__future__":
            for alias in node.names:
                names[alias.asname or alias.name] = node.module
    return names


def attach_stub(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` of a package whose exports its ``__init__.pyi`` lists."""
    names = stub_exports(init_file)

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name]), name)
        setattr(importlib.import_module(package), name, value)  # the next lookup is an ordinary attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *names})

    return __getattr__, __dir__, sorted(names)
