"""Capability across scale, measured here: the toy ladder that trains on a CPU, and a family's evaluation."""

from probes.lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__, __file__)
