"""Text sets: the built-in ones in data/texts/ and the user's own files."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.errors import ProbesError


class DatasetError(ProbesError, ValueError):
    """A dataset or text file that cannot be used as given."""


DATA_DIR = Path(__file__).resolve().parents[2] / "data"


def read_utf8(path: str | os.PathLike) -> str:
    """A text file's content; one that is not UTF-8 is named with the line of its first bad byte."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DatasetError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8"
        ) from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) for each non-empty line; a bad line names itself in the error."""
    for number, line in enumerate(read_utf8(path).splitlines(), 1):
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
            f"no built-in text set {name!r}; known: "
            f"{', '.join(known) or 'none (data/ is missing: install with pip -e .)'}"
        )
    return read_texts(path)


def read_texts(path: str | os.PathLike, column: str = "text") -> list[str]:
    """Texts from .txt (one per line), .jsonl (strings or objects with ``column``) or .csv (``column``)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"text file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(io.StringIO(read_utf8(path)))
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
        texts = [line.strip() for line in read_utf8(path).splitlines() if line.strip()]
    if not texts:
        raise DatasetError(f"{path} holds no texts")
    return texts


def text_set(name: str) -> list[str]:
    """A built-in text set (data/texts/NAME.txt) or a file of texts."""
    return builtin_texts(name) if (DATA_DIR / "texts" / f"{name}.txt").exists() else read_texts(name)


def split_texts(names: list[str]) -> tuple[list[str], list[str]]:
    """Each set's first four fifths (training) and last fifth (held out), the sets concatenated."""
    train, test = [], []
    for name in names:
        texts = text_set(name)
        cut = max(1, len(texts) * 4 // 5)
        train += texts[:cut]
        test += texts[cut:] or texts[-1:]
    return train, test


def text_fields(path: str | os.PathLike, number: int, row: Any, keys: Sequence[str], what: str) -> dict:
    """A JSONL row whose ``keys`` hold text, or one line naming the file, the line and the key."""
    if not isinstance(row, dict):
        raise DatasetError(f"{path}:{number}: {what} is a JSON object with {', '.join(keys)}")
    missing = [k for k in keys if k not in row]
    if missing:
        every = ", ".join(keys[:-1]) + f" and {keys[-1]}" if len(keys) > 1 else keys[0]
        raise DatasetError(f"{path}:{number}: {what} needs {' and '.join(missing)} (its keys: {every})")
    for key in keys:
        if not isinstance(row[key], str):
            raise DatasetError(
                f"{path}:{number}: key {key!r} should be text, got {json.dumps(row[key])}: write it in quotes"
            )
    return row
