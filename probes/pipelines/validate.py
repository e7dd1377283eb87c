"""``probes validate``: every verdict of the toolkit on planted cases whose answer is known, into a run folder.

    table = run_validate(ValidateSpec(), "runs/validate")   # one row per case: planted truth beside the verdict

The cases and how each is measured live in ``probes.validation`` (the zoo's hand-set models, saved here as
Hugging Face folders under ``zoo/`` and loaded back like any model). Each case is one unit of the run folder, so
a killed run resumes; ``validate.csv`` is the table.
"""

from __future__ import annotations

import os
from functools import partial

import pandas as pd

from probes.core.loading import load
from probes.pipelines.specs import ValidateSpec
from probes.runtime.run import RunFolder, unit_file
from probes.validation import zoo
from probes.validation.cases import CASES, describe, markdown_table, measure


def run_validate(spec: ValidateSpec, out: str | os.PathLike, *, progress: bool = True) -> pd.DataFrame:
    """Build the zoo into ``out/zoo``, run each case's instruments and write ``validate.csv`` (one row per case)."""
    with RunFolder.open(out, command="validate", spec=spec.record(), seed=spec.seed, models={}) as run:
        rows = []
        for case in CASES:
            if progress:
                print(f"validate: {case}", flush=True)
            rows.append(run.frame(unit_file(case), partial(_case_frame, run, case, spec)))
        table = pd.concat(rows, ignore_index=True)
        run.write_frame("validate.csv", table)
    return table


def _case_frame(run: RunFolder, case: str, spec: ValidateSpec) -> pd.DataFrame:
    return pd.DataFrame([measure(case, partial(_model, run), spec)])


def _model(run: RunFolder, case: str):
    name = f"zoo/{case}"
    folder = run.file(name) if run.done(name) else run.commit_dir(name, lambda tmp: zoo.save(case, tmp))
    return load(folder)


__all__ = ["describe", "markdown_table", "run_validate"]
