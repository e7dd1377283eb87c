"""The one opening every study on a model shares: resolve its files, lock the run folder, see what is done, load.

    with Study.open(spec, out, command="heads", check=lambda lm: lm.resolve(spec.sites)) as study:
        if study.done("heads.csv"):
            return study.run.read_frame("heads.csv")       # a finished run never loads its model
        frame = head_statistics(study.lm, texts)            # loaded here, then checked
        study.run.commit_frame("heads.csv", frame)

In that order, always: ``resolve`` finds the weights without loading them (their hash goes into ``run.json``);
``RunFolder.open`` takes the lock and refuses a folder that holds another run; ``done`` reads what a killed run
left; ``lm`` loads the model on first use and runs ``check`` on it, so that everything that can be checked
against the model (components, sites, a dictionary, sizes) is refused before the study commits anything; a
first attempt refused there leaves no folder (``RunFolder``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from probes.core.loading import load, resolve
from probes.core.model import LoadedModel
from probes.pipelines.specs import ModelOptions
from probes.runtime.run import RunFolder


class Study:
    """An open study: its locked run folder (``run``) and its model (``lm``, loaded and checked on first use)."""

    def __init__(
        self,
        run: RunFolder,
        spec: ModelOptions,
        lm: LoadedModel | None = None,
        check: Callable[[LoadedModel], Any] | None = None,
    ):
        self.run, self.spec = run, spec
        self._lm, self._check = lm, check
        self._checked = False

    @classmethod
    @contextmanager
    def open(
        cls,
        spec: ModelOptions,
        out: str | os.PathLike,
        *,
        command: str,
        record: Mapping[str, Any] | None = None,
        lm: LoadedModel | None = None,
        details: Mapping[str, Any] | None = None,
        check: Callable[[LoadedModel], Any] | None = None,
    ) -> Iterator[Study]:
        """Resolve ``spec``'s model, then lock ``out`` for ``command`` with ``record`` (default: the spec's own
        record) and the weights' identity; ``lm``: the model, already loaded."""
        source = resolve(spec.model, spec.revision)
        with RunFolder.open(
            out,
            command=command,
            spec=dict(record) if record is not None else spec.record(),
            seed=getattr(spec, "seed", None),
            models={spec.model: source.identity()},
            details=details,
        ) as run:
            yield cls(run, spec, lm, check)

    def done(self, *names: str) -> bool:
        """Whether every unit ``names`` is in the folder already."""
        return all(self.run.done(name) for name in names)

    @property
    def lm(self) -> LoadedModel:
        """The model, loaded with the spec's options on first use, and checked."""
        if self._lm is None:
            self._lm = load(self.spec.model, **self.spec.load_options())
        if not self._checked:
            self._checked = True
            if self._check is not None:
                self._check(self._lm)
        return self._lm


__all__ = ["Study"]
