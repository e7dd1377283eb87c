"""emergence-probes: the instruments (hooks, stores, probes, ablations) that need torch.

    from probes import load, capture, run_with_cache, ActivationStore
    lm = load("minilm")
    out, cache = run_with_cache(lm, ["The cat sat."], "blocks.*.hook_resid_post")

The families live in subpackages, each exporting its main entry points: ``probes.core`` (load, name,
capture), ``probes.probing`` (features, probes, controls), ``probes.causal`` (components, ablation,
behaviours, patching, erasure, Shapley), ``probes.scale`` (the ladder, a family's evaluation) and
``probes.pipelines`` (specs and the studies that write run folders).
"""

from analysis.errors import ProbesError
from probes.core.align import encode, pool_words
from probes.core.hooks import capture, intervene, run_with_cache
from probes.core.models import LoadedModel, load, wrap
from probes.core.store import ActivationStore

__version__ = "0.1.0"
__all__ = [
    "ActivationStore",
    "LoadedModel",
    "ProbesError",
    "capture",
    "encode",
    "intervene",
    "load",
    "pool_words",
    "run_with_cache",
    "wrap",
]
