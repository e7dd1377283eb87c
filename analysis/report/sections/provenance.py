"""The provenance section: every result folder's command, configuration, seed, package versions and weights."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..document import Section, table
from ..sources import Inputs


def _recorded_models(record: dict) -> dict[str, dict]:
    """name -> what a run.json records of each model it used (weights hash, source, revision, step)."""
    models = record.get("models")
    return {str(k): v for k, v in models.items() if isinstance(v, dict)} if isinstance(models, dict) else {}


def provenance_section(inputs: Inputs) -> Section:
    section = Section("provenance", "Where these numbers come from")
    section.blocks.append(
        "Every result folder this report read, with the models (weights hash, revision), seed, "
        "package versions and the exact configuration it recorded."
    )
    rows, details = [], []
    for s in inputs.sources:
        record = dict(s.record)
        inputs_read = (record.get("details") or {}).get("inputs", []) if s.kind == "scale" else []
        for folder in inputs_read:  # the evaluations it analysed
            if (Path(folder) / "run.json").is_file():
                record.setdefault("evaluations", {})[str(folder)] = json.loads((Path(folder) / "run.json").read_text())
        models = _recorded_models(record)
        for evaluation in record.get("evaluations", {}).values():
            models.update(_recorded_models(evaluation))
        env = record.get("environment") or {}
        packages = env.get("packages") or {}
        rows.append(
            {
                "folder": str(s.path),
                "kind": s.kind,
                "models (weights sha256/16)": "; ".join(
                    f"{n} ({m.get('weights_sha256_16') or '-'}"
                    + (f", revision {m['revision']}" if m.get("revision") else "")
                    + ")"
                    for n, m in models.items()
                )
                or "-",
                "seed": record.get("seed", "-"),
                "versions": ", ".join(f"{k} {v}" for k, v in packages.items() if v) or "-",
                "created": env.get("created", "-"),
            }
        )
        if record:
            details.append(("details", f"configuration of {s.path}", json.dumps(record, indent=1, default=str)))
    section.blocks.append(table(pd.DataFrame(rows), "result folders"))
    section.blocks += details
    return section
