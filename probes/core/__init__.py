"""Load, name, capture: models and their adapters, site names, hooks, word alignment, the activation store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from probes.lazy import exports

_NAMES = {
    "encode": "probes.core.align",
    "pool_words": "probes.core.align",
    "capture": "probes.core.hooks",
    "intervene": "probes.core.hooks",
    "run_with_cache": "probes.core.hooks",
    "LoadedModel": "probes.core.models",
    "load": "probes.core.models",
    "resolve": "probes.core.models",
    "wrap": "probes.core.models",
    "ActivationStore": "probes.core.store",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # what type checkers and editors see; at run time each name is imported on first use
    from probes.core.align import encode, pool_words
    from probes.core.hooks import capture, intervene, run_with_cache
    from probes.core.models import LoadedModel, load, resolve, wrap
    from probes.core.store import ActivationStore
