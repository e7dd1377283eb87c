"""The exports of probes: what its ``__init__.py`` imports on first use (``probes.lazy``)."""

from analysis.errors import ProbesError as ProbesError
from probes.core.adapters import register_adapter as register_adapter
from probes.core.align import encode as encode, pool_words as pool_words
from probes.core.cache import ActivationCache as ActivationCache
from probes.core.edits import patch as patch, zero as zero
from probes.core.hooks import capture as capture, intervene as intervene, run_with_cache as run_with_cache
from probes.core.loading import load as load, wrap as wrap
from probes.core.model import LoadedModel as LoadedModel
from probes.core.store import ActivationStore as ActivationStore
from probes.registry import register_ablation as register_ablation, register_behaviour as register_behaviour

__version__: str
