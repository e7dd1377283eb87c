"""Write data/texts/python-docs.txt: paragraphs of English prose from the docstrings of Python's standard
library, one per line, for lenses and other instruments that need ordinary text offline.

    python data/make_python_docs.py        # rewrites the file; the committed one came from CPython 3.11.7

Kept: paragraphs of 200 to 1,200 characters that read as prose (mostly letters and spaces, no doctest
prompts or tables), from public modules, classes and functions, in module order, each once. The
docstrings are CPython's, under the Python Software Foundation License.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
import warnings
from pathlib import Path

OUT = Path(__file__).resolve().parent / "texts" / "python-docs.txt"
SKIP = ("test", "idlelib", "tkinter", "turtle", "antigravity", "this", "lib2to3", "ensurepip", "pydoc_data")


def prose(paragraph: str) -> bool:
    if not 200 <= len(paragraph) <= 1200 or ">>>" in paragraph or "::" in paragraph:
        return False
    letters = sum(ch.isalpha() or ch == " " for ch in paragraph)
    return letters / len(paragraph) > 0.9 and paragraph[0].isupper() and paragraph.rstrip()[-1] in ".)"


def paragraphs(doc: str) -> list[str]:
    blocks = re.split(r"\n\s*\n", inspect.cleandoc(doc))
    return [" ".join(block.split()) for block in blocks if block.strip()]


def main() -> None:
    seen: set[str] = set()
    kept: list[str] = []
    names = sorted(m.name for m in pkgutil.iter_modules() if m.module_finder.path.startswith(sys.prefix))
    names = sorted({*sys.stdlib_module_names} & ({*names} | {*sys.builtin_module_names}))
    for name in names:
        if name.startswith("_") or name in SKIP:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(name)
            except Exception:
                continue
        objects = [module] + [v for k, v in sorted(vars(module).items()) if not k.startswith("_")]
        for obj in objects:
            if obj is not module and getattr(obj, "__module__", None) != name:
                continue
            members = [obj] + ([v for k, v in sorted(vars(obj).items()) if not k.startswith("_")]
                               if inspect.isclass(obj) else [])
            for member in members:
                doc = member.__doc__ if isinstance(getattr(member, "__doc__", None), str) else None
                for paragraph in paragraphs(doc or ""):
                    if prose(paragraph) and paragraph not in seen:
                        seen.add(paragraph)
                        kept.append(paragraph)
    OUT.write_text("\n".join(kept) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(kept)} paragraphs, {sum(map(len, kept))} characters")


if __name__ == "__main__":
    main()
