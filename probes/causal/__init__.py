"""What the behaviour rests on: components, ablation, behaviours, the evaluator, patching, erasure, Shapley values,
attention-head statistics."""

from probes.lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__, __file__)
