"""What a layer makes linearly readable: datasets, the one feature extractor, probes and their controls."""

from probes.lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__, __file__)
