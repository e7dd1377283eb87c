"""Load, name, capture: models and their adapters, site names, hooks, word alignment, the activation store."""

from probes.lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__, __file__)
