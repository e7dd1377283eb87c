"""The comparison report: built from real result folders of tiny models, its numbers checked against the
tables, user text escaped, and opened in a real browser (Debian's chromium, installed by `make browser`)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import EVIL, TITLE

from analysis.readings import additivity_case, interaction_pattern, interaction_ratio, overall_reading, scale_reading
from analysis.report import (
    ReportError,
    Table,
    build_sections,
    find_sources,
    iter_figures,
    md_escape,
    read_inputs,
)
from analysis.results import read_results
from analysis.tables import profile_table
from analysis.verdicts import Card
from analysis.verdicts import fmt as _fmt
from probes.cli import main
from probes.pipelines.report import write_report
from probes.pipelines.specs import ReportSpec


def test_every_result_folder_is_found_below_the_given_one(runs):
    kinds = {s.path.name: s.kind for s in find_sources([runs])}
    assert kinds == {
        "probes": "results",
        "ablation": "results",
        "heads": "heads",
        "scale": "scale",
        "lens": "lens",
        "attribute": "results",
        "circuit": "results",
    }
    (runs / "probes" / "notes").mkdir(exist_ok=True)  # a folder that holds no results
    with pytest.raises(ReportError, match="no results in"):
        find_sources([runs / "heads" / ".." / "probes" / "notes"])


def test_html_is_self_contained_and_escapes_user_text(report):
    text = report.read_text()
    assert "<img src=x onerror" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert '<script>alert("title")' not in text and "&lt;script&gt;" in text
    assert "<script" not in text and "<link" not in text  # no code, nothing fetched
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', text)


def test_report_states_where_its_numbers_came_from(runs, report):
    text = report.read_text()
    suite_run = json.loads((runs / "probes" / "run.json").read_text())
    ablation_run = json.loads((runs / "ablation" / "run.json").read_text())
    for record in (*suite_run["models"].values(), *ablation_run["models"].values()):
        assert record["weights_sha256_16"] in text
    assert f"torch {suite_run['environment']['packages']['torch']}" in text
    assert "&#34;n_boot&#34;: 100" in text or "&quot;n_boot&quot;: 100" in text  # the suite's exact config
    assert "configuration of" in text


def test_sections_and_figures(runs):
    sections = build_sections(read_inputs([runs]))
    assert [s.id for s in sections] == [
        "scorecards",
        "probes",
        "ablations",
        "attribution",
        "amnesic",
        "scale",
        "attention",
        "lens",
        "provenance",
    ]
    figures = list(iter_figures(sections))
    assert len(figures) >= 10
    for fig in figures:
        assert fig.png.startswith(b"\x89PNG") and len(fig.png) > 5_000 and fig.title


def test_lens_section_shows_the_run_folders_numbers(runs):
    section = next(s for s in build_sections(read_inputs([runs])) if s.id == "lens")
    table = next(b for b in section.blocks if isinstance(b, Table))
    frame = pd.read_csv(runs / "lens" / "lens.csv")
    behaviour = pd.read_csv(runs / "lens" / "behaviour.csv")
    for lens in ("logit", "tuned"):
        rows = frame[frame["lens"] == lens].sort_values("depth")
        shown = next(r for r in table.rows if r[0] == lens)
        assert _fmt(rows["kl"].iloc[:-1].mean()) in shown
    assert "induction:6: first decodable depth" in table.columns
    assert len(behaviour) == 6 and set(behaviour["lens"]) == {"logit", "tuned"}


def test_scorecards_show_the_tables_numbers(runs):
    inputs = read_inputs([runs])
    cards = {c.title: c for c in build_sections(inputs)[0].blocks if isinstance(c, Card)}
    results = inputs.results
    # probe card: the profile table's best-layer accuracy
    profile = profile_table(results[results["probe"] == "logistic"])
    row = profile[profile["task"] == "pos"].iloc[0]
    card = next(c for t, c in cards.items() if t.endswith("· pos"))
    assert card.evidence[0].point[0] == pytest.approx(row["accuracy"])
    assert card.evidence[0].marks["majority class"] == pytest.approx(row["majority"])
    # ablation card: the study's R^2 and the interaction share from its joint and summed effects
    abl = read_results(runs / "ablation" / "results.csv")
    value = lambda metric: float(abl[abl["metric"] == metric]["value"].iloc[0])
    # the behaviour as the user named it (the default); the model with its folder, as the attribution runs hold it too
    card = cards[f"{abl['model'].iloc[0]} (ablation) · agreement"]
    by_measure = {e.measure: e for e in card.evidence}
    assert by_measure["additivity R^2 of the top components"].point[0] == pytest.approx(value("additivity_r2"))
    ratio = by_measure["interaction of the top-k (|joint - sum of singles| / largest effect)"].point[0]
    largest = abl[abl["metric"] == "effect"]["value"].abs().max()
    assert ratio == pytest.approx(
        interaction_ratio(value("joint_effect_top_k"), value("sum_of_single_effects"), largest)
    )
    assert any(m.startswith("amnesic probing: erase subject_number") for m in by_measure)
    # scale card: the mirage of the synthetic exact match is not a jump that survives
    card = cards[f"fam{EVIL} · arith"]
    assert "exact_match: mirage" in card.evidence[0].value and card.evidence[0].lean == "reducible"


def test_attribution_section_and_circuit_card_show_the_run_folders_numbers(runs):
    inputs = read_inputs([runs])
    sections = build_sections(inputs)
    cards = {c.title: c for c in sections[0].blocks if isinstance(c, Card)}
    circuit = read_results(runs / "circuit" / "results.csv")
    share = circuit[circuit["metric"] == "circuit_share"].iloc[0]
    card = next(c for t, c in cards.items() if "(circuit)" in t)
    assert card.evidence[0].point == pytest.approx((share["value"], share["ci_low"], share["ci_high"]))
    assert card.evidence[0].measure.startswith("circuit size: the smallest share of edges keeping 80%")
    section = next(s for s in sections if s.id == "attribution")
    titles = [b.title for b in section.blocks if hasattr(b, "png")]
    assert any("attribution on agreement" in t for t in titles)  # the map, beside the exact one (--exact)
    assert any("estimates vs exact" in t for t in titles) and any("circuits of agreement" in t for t in titles)
    tables = [b for b in section.blocks if isinstance(b, Table)]
    attribute = read_results(runs / "attribute" / "results.csv")
    spearman = attribute[attribute["metric"] == "verify_spearman"]["value"].iloc[0]
    assert any(_fmt(spearman) in row for t in tables for row in t.rows)


def test_readings_by_hand():
    # two parts of effect -1 each: additive (joint -2), needed together (AND: joint -1), redundant (OR: singles 0)
    assert interaction_ratio(-2.0, -2.0, -1.0) == 0
    assert interaction_ratio(-1.0, -2.0, -1.0) == 1.0  # the sum overshoots the joint effect by a whole effect
    assert interaction_ratio(-1.0, 0.0, 0.0) == 1.0
    assert interaction_ratio(1.0, 0.6, 0.4) == pytest.approx(0.4)
    assert np.isnan(interaction_ratio(0.0, 0.0, 0.0))
    assert [interaction_pattern(*x)[1:] for x in [(-2, -2, -1), (-1, -2, -1), (-1, 0, 0), (-1, 1e-6, 1e-6)]] == [
        ("reducible", "additive"),
        ("emergent", "conjunctive"),
        (None, "redundant"),
        (None, "redundant"),
    ]
    # a gap between effects near the noise level is not read as interaction
    assert interaction_pattern(-1, -2, -1, noisy=True)[1:] == (None, None)
    assert additivity_case(0.99, 0.98, 1.0, None) == "additive"
    assert additivity_case(-3.4, -3.5, -3.3, "conjunctive") == "conjunctive"
    assert additivity_case(-0.6, -0.7, -0.5, "redundant") == "redundant"
    assert additivity_case(0.2, -2.0, 0.9, "conjunctive") is None  # a wide interval matches nothing
    assert overall_reading([None, None]).startswith("not enough evidence")
    assert overall_reading([None, None], [None, "additive"]) == (
        "in between: no measure leans past its threshold either way; closest planted case: additive"
    )
    assert overall_reading(["reducible", None]).startswith("reduces")
    assert overall_reading(["emergent"]).startswith("emerges")
    assert overall_reading(["emergent", "reducible"]).startswith("mixed: 1")
    assert scale_reading([("exact_match", "jump", False), ("token_accuracy", "jump", False)])[1] == "emergent"
    assert (
        scale_reading([("exact_match", "jump", False), ("token_accuracy", "smooth", False), ("brier", "jump", False)])[
            1
        ]
        is None
    )
    assert scale_reading([("exact_match", "mirage", False), ("token_accuracy", "smooth", False)])[1] == "reducible"
    # exact match alone cannot show that a jump survives partial credit; irregular curves are named
    text, lean = scale_reading([("exact_match", "jump", False), ("token_accuracy", "irregular", False)])
    assert lean is None and "inconclusive under token_accuracy (irregular)" in text
    assert scale_reading([("exact_match", "smooth", True), ("token_accuracy", "smooth", True)])[1] is None


def test_markdown_report_writes_its_figures_beside_it(runs, tmp_path):
    path = write_report(ReportSpec(results=[str(runs)], title=TITLE), tmp_path / "r.md")
    text = path.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 10 and all((tmp_path / link).exists() for link in links)
    assert "<script>" not in text and "<img src=x" not in text
    assert md_escape("a|b_<c>") == r"a\|b\_&lt;c&gt;"


def test_cli_report_and_errors(runs, tmp_path, capsys):
    assert (
        main(
            [
                "report",
                str(runs / "scale"),
                "--out",
                str(tmp_path / "r"),
                "--format",
                "md",
                "--figures",
                str(tmp_path / "figs"),
            ]
        )
        == 0
    )
    assert (tmp_path / "r.md").exists() and "report:" in capsys.readouterr().out
    names = {p.name for p in (tmp_path / "figs").iterdir()}
    assert "fam-img-src-x-onerror-alert-1-q-arith-capability-vs-size.png" in names
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty), "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no results in" in err and "probes run" in err
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "x.html")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_user_text_in_figures_is_literal_but_log_ticks_keep_their_mathtext():
    import matplotlib.pyplot as plt

    from analysis.report.document import literal_text as _literal_text

    fig, ax = plt.subplots()
    ax.plot([1e3, 1e5], [0, 1], label="model $x$")
    ax.set_xscale("log")
    ax.set_title("task $\\frac{a}{b}$")
    ax.legend()
    fig.canvas.draw()
    _literal_text(fig)
    fig.canvas.draw()  # a bad '$' in a title would raise here if it were parsed
    assert not ax.title.get_parse_math() and not ax.get_legend().get_texts()[0].get_parse_math()
    labels = [t for t in ax.xaxis.get_ticklabels() if t.get_text()]
    assert labels and all(t.get_parse_math() and t.get_text().startswith("$") for t in labels)
    plt.close(fig)


@pytest.fixture
def runs(report_runs):
    return report_runs


@pytest.fixture
def report(report_html):
    return report_html
