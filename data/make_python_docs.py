"""Write data/texts/python-docs.txt: paragraphs of English prose from the docstrings of Python's standard
library, one per line, for lenses and other instruments that need ordinary text offline; and
data/texts/python-prose.txt, for dictionaries that need more text than one set: the prose paragraphs of the
language reference's help topics (``pydoc_data.topics``, what ``help("if")`` shows) and the docstring
paragraphs a looser filter keeps (120 to 1,500 characters, 85% letters), none of them in python-docs.txt.

    python data/make_python_docs.py        # rewrites both; the committed ones came from CPython 3.11.7

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
PROSE = OUT.with_name("python-prose.txt")
SKIP = ("test", "idlelib", "tkinter", "turtle", "antigravity", "this", "lib2to3", "ensurepip", "pydoc_data")


def prose(paragraph: str, shortest: int = 200, longest: int = 1200, letters_share: float = 0.9) -> bool:
    if not shortest <= len(paragraph) <= longest or ">>>" in paragraph or "::" in paragraph:
        return False
    letters = sum(ch.isalpha() or ch == " " for ch in paragraph)
    return letters / len(paragraph) > letters_share and paragraph[0].isupper() and paragraph.rstrip()[-1] in ".)"


def loose(paragraph: str) -> bool:
    return prose(paragraph, 120, 1500, 0.85)


def paragraphs(doc: str) -> list[str]:
    blocks = re.split(r"\n\s*\n", inspect.cleandoc(doc))
    return [" ".join(block.split()) for block in blocks if block.strip()]


def main() -> None:
    seen: set[str] = set()
    kept: list[str] = []
    extra: list[str] = []
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
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    doc = member.__doc__ if isinstance(getattr(member, "__doc__", None), str) else None
                for paragraph in paragraphs(doc or ""):
                    if paragraph in seen:
                        continue
                    if prose(paragraph):
                        seen.add(paragraph)
                        kept.append(paragraph)
                    elif loose(paragraph):
                        seen.add(paragraph)
                        extra.append(paragraph)
    OUT.write_text("\n".join(kept) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(kept)} paragraphs, {sum(map(len, kept))} characters")
    topics = reference_topics(seen)
    PROSE.write_text("\n".join(topics + extra) + "\n", encoding="utf-8")
    print(f"{PROSE}: {len(topics) + len(extra)} paragraphs, {sum(map(len, topics + extra))} characters")


def reference_topics(seen: set[str]) -> list[str]:
    """The help topics' prose paragraphs (the loose filter), each once and none already seen."""
    from pydoc_data.topics import topics

    kept: list[str] = []
    for name in sorted(topics):
        for paragraph in re.split(r"\n\s*\n", topics[name]):
            text = " ".join(paragraph.split())
            if ">>>" not in text and text not in seen and prose(text, 120, 1500, 0.85):
                seen.add(text)
                kept.append(text)
    return kept


if __name__ == "__main__":
    main()
