"""The scaling pipeline: files in, the scale table, verdicts, figures and run.json out."""

from __future__ import annotations

import json

import pandas as pd
from helpers import curve_rows, per_token

from probes.pipelines.scale import run_scale
from probes.pipelines.specs import ScaleSpec


def test_run_scale_writes_tables_and_labelled_figures(tmp_path):
    import matplotlib.pyplot as plt

    from analysis.scale_plots import capability_vs_size

    p = per_token()
    rows = curve_rows("arith", "token_accuracy", p) + curve_rows("arith", "exact_match", p**8)
    pd.DataFrame(rows).to_csv(tmp_path / "in.csv", index=False)
    table, verdicts = run_scale(ScaleSpec(results=[str(tmp_path / "in.csv")], n_boot=20), tmp_path / "out")
    assert (tmp_path / "out" / "verdicts.csv").exists() and (tmp_path / "out" / "scale.csv").exists()
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert (
        record["seed"] == 0
        and record["spec"]["n_boot"] == 20
        and record["details"]["thresholds"]["jump_evidence"] == 2.0
    )
    assert record["environment"]["packages"]["scipy"] and record["details"]["inputs"][0].endswith("in.csv")
    assert (tmp_path / "out" / "figures" / "family_arith_size.png").stat().st_size > 10_000
    fig = capability_vs_size(table, verdicts, "arith")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["exact_match: mirage", "token_accuracy: smooth"]
    for ax in fig.axes:
        assert ax.get_xlabel().startswith("parameters") and ax.get_ylabel()
    plt.close(fig)
