"""``probes capture``: sites over a text set into an activation store, with a per-layer summary.

    store, summary = run_capture(CaptureSpec(model="minilm", sites=["blocks.*.hook_resid_post"]), "runs/capture")

``OUT/activations/`` holds the store (``probes.core.store``: one shard per batch, resumable),
``OUT/summary.csv`` the per-layer statistics (``probes.core.summary.layer_summary``), ``OUT/run.json``
the spec and the model's hash.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from probes.core.data import builtin_texts, read_texts
from probes.core.model import LoadedModel
from probes.core.provenance import content_hash
from probes.core.store import ActivationStore
from probes.core.summary import layer_summary
from probes.pipelines.specs import CaptureSpec
from probes.pipelines.study import Study


def run_capture(
    spec: CaptureSpec,
    out: str | os.PathLike,
    *,
    lm: LoadedModel | None = None,
    texts: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[ActivationStore, pd.DataFrame]:
    """Capture the spec's sites over its texts (or ``texts``); returns the store and the per-layer summary."""
    texts = list(texts) if texts is not None else read_texts(spec.texts) if spec.texts else builtin_texts("demo")
    record = {**spec.record(), "texts_sha256_16": content_hash(texts), "n_texts": len(texts)}

    def check(lm: LoadedModel) -> None:  # an unknown site or length is refused before anything is written
        lm.resolve(spec.sites)
        lm.max_length(spec.max_length)

    with Study.open(spec, out, command="capture", record=record, lm=lm, check=check) as study:
        run, lm = study.run, study.lm
        store = ActivationStore.build(
            lm,
            texts,
            spec.sites,
            run.file("activations"),
            dtype=spec.dtype,
            batch_size=spec.batch_size,
            max_length=spec.max_length,
            progress=progress,
        )
        summary = layer_summary(store)
        if len(summary):
            run.commit_frame("summary.csv", summary)
    return store, summary


def describe(store: ActivationStore, summary: pd.DataFrame) -> str:
    """What ``probes capture`` prints: the model, the texts, the per-layer summary and where things are."""
    from analysis.results import layer_table

    m = store.manifest
    lines = [
        f"\n{m['model']['name']} ({m['model']['architecture']}, weights {m['model']['weights_sha256_16']}): "
        f"{m['n_examples']} texts, {m['n_tokens']} tokens, {m['n_truncated']} truncated"
    ]
    if len(summary):
        lines += [
            layer_table(summary).round(3).to_string(),
            f"\nper-layer summary: {store.path.parents[1] / 'summary.csv'}",
        ]
    lines.append(f"activations: {store.path}")
    return "\n".join(lines)
