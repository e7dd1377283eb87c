"""The exports of probes.sparse: what its ``__init__.py`` imports on first use (``probes.lazy``)."""

from probes.sparse.dictionary import SparseDictionary as SparseDictionary
from probes.sparse.train import TopKTrainer as TopKTrainer
