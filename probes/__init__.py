"""emergence-probes: the instruments (hooks, caches, probes, ablations, attribution) that need torch.

    from probes import load, patch
    lm = load("smollm2-135m")
    logits, cache = lm.run_with_cache("The keys to the cabinet", "blocks.*.attn.hook_z")
    patched = lm.run_with_hooks("The key to the cabinet", hooks={"blocks.14.attn.hook_z": patch(cache, heads=5)})
    lm.logit_diff(patched, " are", " is")

The families live in subpackages, each exporting its main entry points: ``probes.core`` (load, the model
handle, sites, hooks, caches, the activation store), ``probes.probing`` (features, probes, controls, lenses),
``probes.causal`` (components, ablation kinds, behaviours, the evaluator, patching, attribution, circuits,
erasure, Shapley), ``probes.sparse`` (dictionaries), ``probes.scale`` (the ladder, a family's evaluation) and
``probes.pipelines`` (specs and the studies that write run folders). Each package's exports are the imports of
its ``__init__.pyi``, imported on first use.
"""

from probes.lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__, __file__)

__version__ = "0.1.0"
