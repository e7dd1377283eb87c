"""The house rules (docs/map.md), held by reading the code: instruments never write to disk, only pipelines
write run folders, ``analysis`` imports neither torch nor ``probes``, the CLI holds no defaults and no steps,
every spec field is documented, the docs' map names every module there is, the facades' exports all import,
and no module imports another that imports it back."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from helpers import imports_without

ROOT = Path(__file__).resolve().parents[2]
INSTRUMENTS = ("core", "probing", "causal", "sparse", "scale")
# The disk-backed structures and the one atomic writer: the activation store (a cache of captured activations),
# the model cache (de-quantised GGUF, weights fingerprints), files.py itself, and a sparse dictionary's folder
# (SAELens's on-disk format, which other tools read).
DISK_BACKED = {"probes/core/files.py", "probes/core/store.py", "probes/core/loading.py", "probes/sparse/dictionary.py"}
WRITES = {
    "write_text",
    "write_bytes",
    "to_csv",
    "to_json",
    "to_parquet",
    "save_pretrained",
    "savez",
    "savez_compressed",
    "save_file",
    "mkdir",
    "rmtree",
    "unlink",
    "rename",
    "savefig",
    "atomic_path",
    "write_json",
    "commit_frame",
    "commit_json",
    "commit_dir",
    "write_frame",
    "write_npz",
}


def modules(*parts: str) -> list[Path]:
    return sorted(p for p in (ROOT.joinpath(*parts)).rglob("*.py"))


def writes(path: Path) -> list[str]:
    """Every call in ``path`` that writes to disk, as 'line: call'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        if name in WRITES or (owner == "os" and name in ("replace", "rename", "remove", "makedirs")):
            found.append(f"{node.lineno}: {name}")
        if (
            name == "open"
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and set(str(node.args[1].value)) & set("wax+")
        ):
            found.append(f"{node.lineno}: open(..., {node.args[1].value!r})")
    return found


@pytest.mark.parametrize("package", INSTRUMENTS)
def test_instruments_never_write_to_disk(package):
    offenders = {
        str(p.relative_to(ROOT)): writes(p)
        for p in modules("probes", package)
        if str(p.relative_to(ROOT)) not in DISK_BACKED
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_analysis_writes_nothing_and_imports_neither_torch_nor_probes():
    for path in modules("analysis"):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0
        }
        assert not imported & {"torch", "probes", "transformers"}, path
        # savefig into an in-memory buffer (the report's figures) is not a write to disk
        assert [w for w in writes(path) if not w.endswith("savefig")] == [], path


def test_only_pipelines_open_run_folders():
    users = [
        str(p.relative_to(ROOT))
        for p in modules("probes")
        if "RunFolder.open(" in p.read_text() and p != ROOT / "probes" / "runtime" / "run.py"  # its own docstring
    ]
    assert users and all(u.startswith("probes/pipelines/") for u in users), users


def test_the_cli_only_parses():
    source = (ROOT / "probes" / "cli.py").read_text()
    tree = ast.parse(source)
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported <= {
        "__future__",
        "collections.abc",
        "pathlib",
        "typing",
        "analysis.errors",
        "probes.pipelines.commands",
        "probes.registry",
    }, imported
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            for keyword in node.keywords:
                assert not (keyword.arg == "default" and isinstance(keyword.value, ast.Constant)), (
                    f"cli.py:{node.lineno}: a default belongs in a spec"
                )


def test_every_spec_field_is_documented():
    from pydantic import BaseModel

    import probes.pipelines.specs as specs

    for name in dir(specs):
        spec = getattr(specs, name)
        if isinstance(spec, type) and issubclass(spec, BaseModel) and spec is not specs.Spec and spec.model_fields:
            if spec is specs.TaskFile:
                continue  # a table's three keys, described by the suite's tasks field
            undocumented = [f for f, info in spec.model_fields.items() if not info.description]
            assert not undocumented, (name, undocumented)


def map_modules(block: str) -> set[str]:
    """Every module the map names, as a path: folders by indentation, and files listed on a folder's line."""
    named: set[str] = set()
    folders: dict[int, str] = {}  # indentation -> folder at that depth
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        entry = line.split()[0]
        folders = {i: f for i, f in folders.items() if i < indent}
        parents = "".join(folders[i] for i in sorted(folders))
        if entry.endswith("/"):
            folders[indent] = entry
            named.update(f"{parents}{entry}{name}" for name in re.findall(r"(\w+\.py) \(", line))
        elif entry.endswith(".py"):
            named.add(parents + entry)
    return named


def test_the_docs_map_names_every_module():
    page = (ROOT / "docs" / "map.md").read_text()
    named = map_modules(re.search(r"```\n(.*?)```", page, re.S).group(1))
    actual = {str(p.relative_to(ROOT)) for p in [*modules("probes"), *modules("analysis")] if p.name != "__init__.py"}
    assert actual - named == set(), "modules the docs' map does not name"
    assert named - actual == set(), "the docs' map names modules that do not exist"


def test_the_cli_starts_without_torch():
    """``probes --help`` and the parsing of any command import no torch: each command imports its pipeline."""
    imports_without("from probes.cli import build_parser; build_parser()", "torch", "transformers")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every first-party module ``path`` imports, at the top or inside a function (a local import still closes a
    cycle), except under ``if TYPE_CHECKING:`` (read by type checkers only)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    found = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
    return {name for name in found if name.split(".")[0] in ("probes", "analysis")}


def test_no_module_imports_one_that_imports_it_back():
    graph = {_module_name(p): _imports(p) for p in [*modules("probes"), *modules("analysis")]}
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    cycles = []
    for start in graph:  # a path from a module back to itself, through the modules it imports
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    cycles.append(" -> ".join([*path, start]))
                elif dep not in seen:
                    seen.add(dep)
                    stack.append((dep, [*path, dep]))
    assert not cycles, cycles[:5]


def test_every_facade_export_imports():
    """Each package's exports (its __init__.pyi) name something its module really has."""
    import importlib

    from probes.lazy import stub_exports

    for stub in (ROOT / "probes").rglob("__init__.pyi"):
        package = importlib.import_module(_module_name(stub.with_suffix(".py")))
        for name in stub_exports(stub.with_suffix(".py")):
            assert getattr(package, name) is not None, (package.__name__, name)
