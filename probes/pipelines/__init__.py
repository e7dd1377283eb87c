"""Studies end to end, from a spec to a run folder: the only code that writes results to disk.

    from probes.pipelines import AblationSpec, run_ablation, run_suite
    run_suite("quick", "runs/quick")
    run_ablation(AblationSpec(model="smollm2-135m", n=128), "runs/ablate")

In memory, for a notebook, the instruments themselves: ``probes.probing.probe_layers`` and
``probes.causal.ablation_study``.
"""

from probes.lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__, __file__)
