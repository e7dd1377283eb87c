"""Sparse features: dictionaries (TopK sparse autoencoders, transcoders) trained on a site's activations, saved
in SAELens's format, measured as SAELens measures them, and used as components of a behaviour."""

from __future__ import annotations

from typing import TYPE_CHECKING

from probes.lazy import exports

_NAMES = {
    "SparseDictionary": "probes.sparse.dictionary",
    "TopKTrainer": "probes.sparse.train",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
__all__ = sorted(_NAMES)

if TYPE_CHECKING:
    from probes.sparse.dictionary import SparseDictionary
    from probes.sparse.train import TopKTrainer
