"""Load the user's data: CoNLL-U treebanks, CSV / JSONL tables, BLiMP-format minimal pairs."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd

from probes.core.data import iter_jsonl, read_utf8, text_fields

from .base import DatasetError, ProbingDataset

CONLLU_COLUMNS = {"form": 1, "lemma": 2, "upos": 3, "xpos": 4, "deprel": 7}


def load_conllu(path: str | os.PathLike, label: str = "upos", name: str | None = None) -> ProbingDataset:
    """Token-level labels from a CoNLL-U file (``label``: upos, xpos or deprel).

    Multi-word token ranges (``1-2``) and empty nodes (``1.1``) are skipped: the
    syntactic words are what carry the labels.
    """
    if label not in ("upos", "xpos", "deprel"):
        raise DatasetError(f"unknown CoNLL-U label {label!r}: use upos, xpos or deprel")
    path = _existing(path)
    sentences: list[list[str]] = []
    labels: list[list[str]] = []
    words: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(read_utf8(path).splitlines(), 1):
        line = line.rstrip("\n")
        if not line.strip():
            if words:
                sentences.append(words)
                labels.append(tags)
            words, tags = [], []
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DatasetError(
                f"{path}:{number}: a CoNLL-U token line has 10 tab-separated columns, this one has {len(cols)}"
            )
        if "-" in cols[0] or "." in cols[0]:
            continue
        words.append(cols[1])
        tags.append(cols[CONLLU_COLUMNS[label]])
    if words:
        sentences.append(words)
        labels.append(tags)
    if not sentences:
        raise DatasetError(f"{path} holds no CoNLL-U sentences")
    return ProbingDataset(
        name or f"{path.stem}:{label}", "word", sentences, labels, description=f"{label} from {path.name}"
    )


def load_table(
    path: str | os.PathLike,
    *,
    text: str = "text",
    label: str = "label",
    tokens: str = "tokens",
    name: str | None = None,
) -> ProbingDataset:
    """Sentence labels (``text`` + ``label`` columns) or token labels (``tokens`` + ``label`` lists).

    CSV: token-level lists are space-separated strings. JSONL: one object per line,
    lists as JSON lists. Token labels must have one label per token.
    """
    path = _existing(path)
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(io.StringIO(read_utf8(path)))
    elif path.suffix.lower() in (".jsonl", ".json"):
        try:
            frame = pd.read_json(io.StringIO(read_utf8(path)), lines=True)
        except ValueError as err:
            raise DatasetError(f"{path}: not JSON lines ({err})") from None
    else:
        raise DatasetError(f"{path}: use .csv or .jsonl for labelled tables (.conllu for treebanks)")
    name = name or path.stem
    if label not in frame.columns:
        raise DatasetError(f"{path}: no column {label!r} for the labels; it has {', '.join(map(str, frame.columns))}")
    if tokens in frame.columns:
        words = [_as_list(v) for v in frame[tokens]]
        labels = [_as_list(v) for v in frame[label]]
        return ProbingDataset(name, "word", words, labels, description=f"token labels from {path.name}")
    if text not in frame.columns:
        raise DatasetError(
            f"{path}: no column {text!r} (sentence labels) or {tokens!r} (token labels); "
            f"it has {', '.join(map(str, frame.columns))}"
        )
    frame = frame.dropna(subset=[text, label])
    words = [str(t).split() for t in frame[text]]
    return ProbingDataset(name, "sentence", words, [str(v) for v in frame[label]], description=f"from {path.name}")


def load_blimp(path: str | os.PathLike) -> list[dict]:
    """Minimal pairs from a BLiMP-format JSONL file (``sentence_good``, ``sentence_bad``, optional fields kept)."""
    path = _existing(path)
    rows = []
    for number, row in iter_jsonl(path):
        rows.append(text_fields(path, number, row, ("sentence_good", "sentence_bad"), "a BLiMP pair"))
    if not rows:
        raise DatasetError(f"{path} holds no minimal pairs")
    return rows


def _as_list(value) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value).split()


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"data file {path} does not exist")
    return path
