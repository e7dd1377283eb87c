"""Capability across scale, measured here: the toy ladder that trains on a CPU, and a family's evaluation."""

from probes.scale.evaluate import GenerationTask, ModelSpec, evaluate_task, family_tables, model_rows
from probes.scale.ladder import LadderConfig, Rung, char_tokenizer, ladder_tasks, train_rung

__all__ = [
    "GenerationTask",
    "LadderConfig",
    "ModelSpec",
    "Rung",
    "char_tokenizer",
    "evaluate_task",
    "family_tables",
    "ladder_tasks",
    "model_rows",
    "train_rung",
]
