"""The exports of probes.core: what its ``__init__.py`` imports on first use (``probes.lazy``)."""

from probes.core.align import encode as encode, pool_words as pool_words
from probes.core.cache import ActivationCache as ActivationCache
from probes.core.data import builtin_texts as builtin_texts, read_texts as read_texts
from probes.core.edits import patch as patch, zero as zero
from probes.core.hooks import capture as capture, intervene as intervene, run_with_cache as run_with_cache
from probes.core.loading import load as load, resolve as resolve, wrap as wrap
from probes.core.model import HookFn as HookFn, LoadedModel as LoadedModel
from probes.core.sites import Site as Site, site_name as site_name
from probes.core.store import ActivationStore as ActivationStore
from probes.core.summary import layer_summary as layer_summary
