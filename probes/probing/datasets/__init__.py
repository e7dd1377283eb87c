"""Probing datasets: generated grammar tasks, minimal pairs, and loaders for the user's data."""

from .base import DatasetError, ProbingDataset
from .grammar import TASKS, agreement_pairs, agreement_prompts, copula_agreement_pairs, generate, simple_agreement_pairs

__all__ = [
    "TASKS",
    "DatasetError",
    "ProbingDataset",
    "agreement_pairs",
    "agreement_prompts",
    "copula_agreement_pairs",
    "generate",
    "simple_agreement_pairs",
]
