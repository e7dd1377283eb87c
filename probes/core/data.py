"""Text sets: the built-in ones in data/texts/ and the user's own files."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from probes.probing.datasets.base import DatasetError

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


def iter_jsonl(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) for each non-empty line; a bad line names itself in the error."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}:{number}: not valid JSON ({err.msg})") from None


def builtin_texts(name: str = "demo") -> list[str]:
    """A text set shipped in data/texts/ (one text per line)."""
    path = DATA_DIR / "texts" / f"{name}.txt"
    if not path.exists():
        known = sorted(p.stem for p in (DATA_DIR / "texts").glob("*.txt")) if DATA_DIR.exists() else []
        raise DatasetError(
            f"no built-in text set {name!r}; known: {', '.join(known) or 'none (data/ is missing: install with pip -e .)'}"
        )
    return read_texts(path)


def read_texts(path: str | os.PathLike, column: str = "text") -> list[str]:
    """Texts from .txt (one per line), .jsonl (strings or objects with ``column``) or .csv (``column``)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"text file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path)
        if column not in frame.columns:
            raise DatasetError(f"{path}: no column {column!r}; it has {', '.join(map(str, frame.columns))}")
        texts = frame[column].dropna().astype(str).tolist()
    elif suffix in (".jsonl", ".json"):
        texts = []
        for number, item in iter_jsonl(path):
            if isinstance(item, dict):
                if column not in item:
                    raise DatasetError(f"{path}:{number}: no key {column!r}")
                item = item[column]
            texts.append(str(item))
    else:
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise DatasetError(f"{path} holds no texts")
    return texts
