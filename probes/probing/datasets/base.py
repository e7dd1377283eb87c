"""A labelled probing dataset: sentences as word lists, labels per sentence or per word."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from probes.core.data import DatasetError

Level = Literal["sentence", "word"]


@dataclass
class ProbingDataset:
    """``words[i]`` is sentence i; ``labels[i]`` its label (sentence level) or one label per word."""

    name: str
    level: Level
    words: list[list[str]]
    labels: list
    split: list[str] = field(default_factory=list)  # "train" / "test" per sentence; empty: decided later
    description: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not self.words:
            raise DatasetError(f"dataset {self.name!r} is empty: it needs at least two sentences with two classes")
        if len(self.labels) != len(self.words):
            raise DatasetError(f"dataset {self.name!r}: {len(self.words)} sentences but {len(self.labels)} labels")
        if self.level == "word":
            for i, (ws, ls) in enumerate(zip(self.words, self.labels)):
                if len(ws) != len(ls):
                    raise DatasetError(
                        f"dataset {self.name!r}, sentence {i}: {len(ws)} words but {len(ls)} labels; "
                        "token labels must line up one per word"
                    )
        if self.split and len(self.split) != len(self.words):
            raise DatasetError(
                f"dataset {self.name!r}: split has {len(self.split)} entries for {len(self.words)} sentences"
            )
        if len(self.classes) < 2:
            raise DatasetError(
                f"dataset {self.name!r} has a single class ({self.classes[0]!r}): a probe needs at least two"
                if self.classes
                else f"dataset {self.name!r} has no labels"
            )

    @property
    def flat_labels(self) -> list:
        return [l for ls in self.labels for l in ls] if self.level == "word" else list(self.labels)

    @property
    def classes(self) -> list:
        return sorted(set(map(str, self.flat_labels)))

    def counts(self) -> Counter:
        return Counter(map(str, self.flat_labels))

    def with_split(self, test_fraction: float = 0.25, seed: int = 0) -> ProbingDataset:
        """Assign a random train/test split by sentence (kept if one exists)."""
        if self.split:
            return self
        rng = np.random.default_rng(seed)
        test = rng.random(len(self.words)) < test_fraction
        return ProbingDataset(
            self.name, self.level, self.words, self.labels, ["test" if t else "train" for t in test], self.description
        )

    def __len__(self) -> int:
        return len(self.words)
