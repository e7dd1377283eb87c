"""emergence-probes: the instruments (hooks, stores, probes, ablations) that need torch.

    from probes import load, capture, run_with_cache, ActivationStore
    lm = load("minilm")
    out, cache = run_with_cache(lm, ["The cat sat."], "blocks.*.hook_resid_post")

The families live in subpackages, each exporting its main entry points: ``probes.core`` (load, name,
capture), ``probes.probing`` (features, probes, controls), ``probes.causal`` (components, ablation,
behaviours, patching, erasure, Shapley), ``probes.scale`` (the ladder, a family's evaluation) and
``probes.pipelines`` (specs and the studies that write run folders).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from probes.lazy import exports

_NAMES = {
    "ProbesError": "analysis.errors",
    "encode": "probes.core.align",
    "pool_words": "probes.core.align",
    "capture": "probes.core.hooks",
    "intervene": "probes.core.hooks",
    "run_with_cache": "probes.core.hooks",
    "LoadedModel": "probes.core.models",
    "load": "probes.core.models",
    "wrap": "probes.core.models",
    "ActivationStore": "probes.core.store",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # what type checkers and editors see; at run time each name is imported on first use
    from analysis.errors import ProbesError
    from probes.core.align import encode, pool_words
    from probes.core.hooks import capture, intervene, run_with_cache
    from probes.core.models import LoadedModel, load, wrap
    from probes.core.store import ActivationStore

__version__ = "0.1.0"
