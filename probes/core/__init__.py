"""Load, name, capture: models and their adapters, site names, hooks, word alignment, the activation store."""

from probes.core.align import encode, pool_words
from probes.core.hooks import capture, intervene, run_with_cache
from probes.core.models import LoadedModel, load, resolve, wrap
from probes.core.store import ActivationStore

__all__ = [
    "ActivationStore",
    "LoadedModel",
    "capture",
    "encode",
    "intervene",
    "load",
    "pool_words",
    "resolve",
    "run_with_cache",
    "wrap",
]
