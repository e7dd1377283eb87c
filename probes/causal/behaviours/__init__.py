"""Behaviours: one file each, registered by name in ``probes.registry.BEHAVIOURS`` (``make_behaviour`` builds one
from a name such as ``agreement`` or ``probe:pos``), and ``FunctionBehaviour`` for any function of the logits."""

from __future__ import annotations

from probes.causal.behaviours.base import Batch as Batch
from probes.causal.behaviours.base import Behaviour as Behaviour
from probes.causal.behaviours.base import BehaviourError as BehaviourError
from probes.causal.behaviours.base import Payload as Payload
from probes.causal.behaviours.base import PooledPayload as PooledPayload
from probes.causal.behaviours.base import TokenLossPayload as TokenLossPayload
from probes.causal.behaviours.base import first_token as first_token
from probes.causal.behaviours.base import pad_right as pad_right
from probes.causal.behaviours.cosine import EmbeddingCosine as EmbeddingCosine
from probes.causal.behaviours.function import FunctionBehaviour as FunctionBehaviour
from probes.causal.behaviours.induction import Induction as Induction
from probes.causal.behaviours.logit_diff import LastTokenPayload as LastTokenPayload
from probes.causal.behaviours.logit_diff import LogitDiff as LogitDiff
from probes.causal.behaviours.loss import NextTokenLoss as NextTokenLoss
from probes.causal.behaviours.minimal_pairs import MinimalPairs as MinimalPairs
from probes.causal.behaviours.minimal_pairs import PairPayload as PairPayload
from probes.causal.behaviours.probe_accuracy import ProbeAccuracy as ProbeAccuracy
from probes.core.model import LoadedModel
from probes.registry import BEHAVIOURS, RegistryError


def default_behaviour(lm: LoadedModel) -> str:
    """Agreement minimal pairs for language models; a subject-number probe for encoders without an LM head."""
    return "agreement" if lm.adapter.causal else "probe:subject_number"


def make_behaviour(
    lm: LoadedModel, name: str | None = None, *, data: str | None = None, n: int = 64, seed: int = 0
) -> Behaviour:
    """A behaviour from its registered name (``probes.registry.BEHAVIOURS``: what the CLI and suite files take),
    with its argument after a colon (``probe:pos``, ``induction:8``); ``data`` is its file where it reads one,
    ``n`` the examples it generates. The behaviour is named as asked (``.name``: ``agreement-copula``)."""
    name = name or default_behaviour(lm)
    head, colon, argument = name.partition(":")
    try:
        entry = BEHAVIOURS.entry(head)
    except RegistryError as err:
        raise BehaviourError(str(err)) from None
    takes = entry.traits.get("argument")
    if colon and not takes:
        raise BehaviourError(f"behaviour {head!r} takes no argument after ':' (got {name!r})")
    if takes and entry.traits.get("argument_required") and not argument:
        raise BehaviourError(f"behaviour {head!r} needs its {takes}: write {head}:{takes}")
    behaviour = entry.load()(lm, argument, data=data, n=n, seed=seed)
    behaviour.name = name  # what tables and run folders call it: the name it was made from
    return behaviour
