"""The toolkit's extension points: named classes that every instrument, spec and CLI flag looks up here.

    from probes.causal.ablations import Ablation
    from probes import register_ablation

    @register_ablation("noise", help="the value plus Gaussian noise of the value's own scale")
    class Noise(Ablation):
        def replacement(self, cf, site, value):
            return value + value.std() * torch.randn_like(value)

A registry holds the built-in entries as declarative rows (a name, where the class lives, its help), imported
only when used, so listing the choices (``probes ablate --help``) loads no torch; ``register`` adds a class of
your own, and every instrument, spec and flag that takes a name of this kind then takes yours (in Python; the
CLI sees what is registered when it starts). As SAELens's ``register_sae_class`` and pyvene's intervention
classes do. ``ABLATIONS`` holds ablation kinds (``probes.causal.ablations``), ``BEHAVIOURS`` behaviours
(``probes.causal.behaviours``).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from analysis.errors import ProbesError

T = TypeVar("T")


class RegistryError(ProbesError, ValueError):
    """A name no registry entry has, or a second entry under a name already taken."""


@dataclass
class Entry:
    """One registered name: the object it stands for (or where to import it from), its help and its traits."""

    name: str
    help: str
    target: str = ""  # "module:attribute" of a built-in, imported on first use
    value: Any = None  # the object itself, once imported or registered
    traits: dict[str, Any] = field(default_factory=dict)  # what specs may ask without importing (needs_source ...)

    def load(self) -> Any:
        if self.value is None:
            module, _, attribute = self.target.partition(":")
            self.value = getattr(importlib.import_module(module), attribute)
        return self.value


class Registry:
    """Named entries of one kind (``what``), in the order they were added."""

    def __init__(self, what: str, flag: str):
        self.what, self.flag = what, flag
        self._entries: dict[str, Entry] = {}

    def declare(self, name: str, target: str, help: str, **traits: Any) -> None:
        """A built-in entry, imported from ``target`` ("module:attribute") when first used."""
        self._add(Entry(name, help, target=target, traits=traits))

    def register(self, name: str, *, help: str, replace: bool = False, **traits: Any) -> Callable[[T], T]:
        """A decorator that registers a class (or function) under ``name``; ``replace`` lets it take a taken name."""

        def add(value: T) -> T:
            self._add(Entry(name, help, value=value, traits=traits), replace=replace)
            return value

        return add

    def _add(self, entry: Entry, replace: bool = False) -> None:
        if not entry.name or any(c.isspace() or c == ":" for c in entry.name):
            raise RegistryError(f"{self.what} name {entry.name!r}: use one word without spaces or ':'")
        if entry.name in self._entries and not replace:
            raise RegistryError(
                f"{self.what} {entry.name!r} is registered already; pick another name, or pass replace=True"
            )
        self._entries[entry.name] = entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self, **traits: Any) -> list[str]:
        """The registered names, those whose traits equal ``traits`` if given."""
        return [n for n, e in self._entries.items() if all(e.traits.get(k) == v for k, v in traits.items())]

    def entry(self, name: str, **traits: Any) -> Entry:
        """The entry of ``name``; an unknown one (or one without ``traits``) is one line naming the choices."""
        choices = self.names(**traits)
        if name not in choices:
            listed = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else ", ".join(choices)
            if name in self._entries:
                raise RegistryError(f"{self.what} {name!r} does not apply here: choose from {listed}")
            close = difflib.get_close_matches(name, choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RegistryError(f"unknown {self.what} {name!r}{hint}: choose from {listed}")
        return self._entries[name]

    def get(self, name: str, **traits: Any) -> Any:
        """The object registered as ``name`` (a built-in is imported now)."""
        return self.entry(name, **traits).load()

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def help(self, **traits: Any) -> str:
        """One line for a flag's help: each name and what it does."""
        return "; ".join(f"{e.name}: {e.help}" for e in self if all(e.traits.get(k) == v for k, v in traits.items()))


ABLATIONS = Registry("ablation kind", "--kind")
ABLATIONS.declare("zero", "probes.causal.ablations.zero:Zero", "the value set to 0", needs_source=False)
ABLATIONS.declare(
    "mean",
    "probes.causal.ablations.mean:Mean",
    "set to its mean at the same position over the behaviour's own inputs",
    needs_source=False,
)
ABLATIONS.declare(
    "resample",
    "probes.causal.ablations.resample:Resample",
    "set to its value on another input at the same position (a seeded draw per example and position)",
    needs_source=False,
)
ABLATIONS.declare(
    "patch",
    "probes.causal.ablations.patch:Patch",
    "set to its value in the paired run (clean prompts take the corrupted prompts' values)",
    needs_source=True,
)

BEHAVIOURS = Registry("behaviour", "--behaviour")
REGISTRIES = {"ablation kind": ABLATIONS, "behaviour": BEHAVIOURS}  # by ``Registry.what``
_B = "probes.causal.behaviours."
BEHAVIOURS.declare(
    "agreement",
    _B + "minimal_pairs:agreement",
    "subject-verb agreement minimal pairs across an attractor (causal LMs; their default)",
)
BEHAVIOURS.declare(
    "agreement-simple", _B + "minimal_pairs:agreement_simple", "the same with nothing between subject and verb"
)
BEHAVIOURS.declare("agreement-copula", _B + "minimal_pairs:agreement_copula", "'The dog is old.' vs 'The dog are old.'")
BEHAVIOURS.declare(
    "induction",
    _B + "induction:induction",
    "copying on repeated random tokens (induction:N, runs of N tokens; 12 by default)",
    argument="N",
)
BEHAVIOURS.declare("pairs", _B + "minimal_pairs:pairs", "minimal pairs from --data, a BLiMP-format JSONL file")
BEHAVIOURS.declare("loss", _B + "loss:loss", "next-token loss on --data texts or the built-in demo texts")
BEHAVIOURS.declare(
    "probe",
    _B + "probe_accuracy:probe",
    "a probe's accuracy at the last layer on a built-in task (probe:TASK; encoders' default probe:subject_number)",
    argument="TASK",
    argument_required=True,
)
BEHAVIOURS.declare(
    "cosine",
    _B + "cosine:cosine",
    "sentence-embedding cosine on the agreement pairs, or on --data (JSONL with text_a / text_b)",
)


def register_ablation(name: str, *, help: str, replace: bool = False) -> Callable[[T], T]:
    """Register an ``Ablation`` subclass (``probes.causal.ablations``) as the ablation kind ``name``."""

    def add(cls: T) -> T:
        needs = bool(getattr(cls, "needs_source", False))
        setattr(cls, "name", name)  # noqa: B010  # the kind's name, as tables record it
        return ABLATIONS.register(name, help=help, replace=replace, needs_source=needs)(cls)

    return add


def register_behaviour(name: str, *, help: str, argument: str = "", replace: bool = False) -> Callable[[T], T]:
    """Register a behaviour factory ``fn(lm, argument, *, data, n, seed) -> Behaviour`` as ``name`` (what
    ``--behaviour`` and suite files take; ``argument`` names what may follow a colon, as ``probe:TASK``)."""
    return BEHAVIOURS.register(name, help=help, replace=replace, **({"argument": argument} if argument else {}))
