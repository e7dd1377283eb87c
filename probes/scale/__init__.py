"""Capability across scale, measured here: the toy ladder that trains on a CPU, and a family's evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from probes.lazy import exports

_NAMES = {
    "GenerationTask": "probes.scale.evaluate",
    "ModelSpec": "probes.scale.evaluate",
    "evaluate_task": "probes.scale.evaluate",
    "family_tables": "probes.scale.evaluate",
    "model_rows": "probes.scale.evaluate",
    "LadderConfig": "probes.scale.ladder",
    "Rung": "probes.scale.ladder",
    "char_tokenizer": "probes.scale.ladder",
    "ladder_tasks": "probes.scale.ladder",
    "train_rung": "probes.scale.ladder",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # what type checkers and editors see; at run time each name is imported on first use
    from probes.scale.evaluate import GenerationTask, ModelSpec, evaluate_task, family_tables, model_rows
    from probes.scale.ladder import LadderConfig, Rung, char_tokenizer, ladder_tasks, train_rung
