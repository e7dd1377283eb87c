"""Sparse features: dictionaries (TopK sparse autoencoders, transcoders) trained on a site's activations, saved
in SAELens's format, measured as SAELens measures them, and used as components of a behaviour."""

from probes.lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__, __file__)
