"""``probes heads``: per-head attention statistics and every head's pattern on one input, into a run folder.

    frame = run_heads(HeadsSpec(model="smollm2-135m"), "runs/heads")

``OUT/heads.csv`` is the tidy table of ``probes.causal.head_stats.head_statistics``, ``OUT/pattern.npz``
the patterns the report draws, ``OUT/run.json`` the spec, model hash and the texts' hash.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from probes.causal.head_stats import EXAMPLE, attention_example, head_statistics
from probes.core.data import builtin_texts, read_texts
from probes.core.model import LoadedModel
from probes.core.provenance import content_hash
from probes.pipelines.specs import HeadsSpec
from probes.pipelines.study import Study


def run_heads(
    spec: HeadsSpec, out: str | os.PathLike, *, lm: LoadedModel | None = None, texts: Sequence[str] | None = None
) -> pd.DataFrame:
    """Score every head over the spec's texts (or ``texts``) and keep its pattern on the example input."""
    texts = list(texts) if texts is not None else read_texts(spec.texts) if spec.texts else builtin_texts("demo")
    example = spec.example or EXAMPLE
    record = {**spec.record(), "example": example, "texts_sha256_16": content_hash(texts), "n_texts": len(texts)}
    with Study.open(spec, out, command="heads", record=record, lm=lm) as study:
        if study.done("heads.csv", "pattern.npz"):
            return study.run.read_frame("heads.csv")
        frame = head_statistics(study.lm, texts, seed=spec.seed)
        tokens, patterns = attention_example(study.lm, example)
        study.run.write_npz("pattern.npz", patterns=patterns.astype(np.float32), tokens=np.array(tokens, dtype=str))
        study.run.commit_frame("heads.csv", frame)
    return frame


def describe(frame: pd.DataFrame, out: str | os.PathLike) -> str:
    """What ``probes heads`` prints: the heads that score highest on each statistic, and where they are written."""
    from pathlib import Path

    model = str(frame["model"].iloc[0])
    n_layers, n_heads = int(frame["layer"].max()) + 1, int(frame["head"].max()) + 1
    lines = [f"{model}: {n_layers} layers x {n_heads} heads; the heads that score highest on each statistic:"]
    for metric, group in frame.groupby("metric", sort=False):
        top = group.nlargest(3, "value")
        lines.append(f"  {metric:<12} " + ", ".join(f"L{r.layer}H{r.head} {r.value:.2f}" for r in top.itertuples()))
    out = Path(out)
    lines.append(f"\nwritten: {out / 'heads.csv'}, {out / 'pattern.npz'}, {out / 'run.json'}")
    return "\n".join(lines)
