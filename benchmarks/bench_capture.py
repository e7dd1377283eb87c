"""Capture cost, side by side in one run, as ratios to Hugging Face's own outputs.

    python benchmarks/bench_capture.py [--models minilm smollm2-135m] [--repeats 5]

For each model, batch 4 x 128 tokens, eager attention (patterns need it), the
median of ``--repeats`` forwards per method, methods interleaved so machine
noise hits them alike:

  hf_bare       a plain forward
  hf_outputs    output_hidden_states=True, output_attentions=True   (the 1.00 baseline)
  probes_same   this toolkit capturing the same tensors (resid_pre of every block,
                the final hidden state, every pattern)
  probes_all    this toolkit capturing every site ("*": adds z, attn/MLP out, neurons, logits)
  tlens_same    TransformerLens TransformerBridge + run_with_cache, same sites   (bench extra)
  nnsight_same  nnsight trace + .save(), same sites                               (bench extra)

Each tool is timed in its own process beside its own HF baseline (see ``time_group``).
Then the activation store's peak memory (RSS) for a dataset 1x and 10x as large,
each in a fresh process. Goals: probes_same <= 1.05, probes_all <= 1.15, equal peaks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from probes import capture, load
from probes.core.align import encode
from probes.core.data import builtin_texts

BATCH, SEQ = 4, 128


def make_batch(lm) -> dict[str, torch.Tensor]:
    text = " ".join(builtin_texts("demo"))
    texts = [" ".join(text.split()[i * 7 :]) for i in range(BATCH)]  # distinct, each far longer than SEQ tokens
    enc = encode(lm.tokenizer, texts, max_length=SEQ).model_inputs(lm.device)
    assert enc["input_ids"].shape == (BATCH, SEQ), enc["input_ids"].shape
    return enc


def same_sites(lm) -> list[str]:
    """What output_hidden_states + output_attentions return, as site names."""
    n = lm.shape.n_layers
    final = "ln_final.hook_normalized" if lm.adapter.final_norm else f"blocks.{n - 1}.hook_resid_post"
    return ["blocks.*.hook_resid_pre", final, "blocks.*.attn.hook_pattern"]


def methods(lm, batch, group: str) -> dict[str, Callable[[], object]]:
    """The timed methods of one group; every group also times the HF baseline, in its own process."""
    model = lm.model
    out: dict[str, Callable[[], object]] = {
        "hf_outputs": lambda: model(**batch, output_hidden_states=True, output_attentions=True),
    }
    if group == "probes":
        same = [s.name for s in lm.resolve(same_sites(lm))]

        def probes_run(sites):
            def run():
                with capture(lm, sites) as cache:
                    model(**batch)
                return cache

            return run

        out.update(hf_bare=lambda: model(**batch), probes_same=probes_run(same), probes_all=probes_run("*"))
    elif group == "tlens":
        out.update(_transformer_lens(lm, batch))
    elif group == "nnsight":
        out.update(_nnsight(lm, batch))
    return out


def _transformer_lens(lm, batch) -> dict[str, Callable[[], object]]:
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except Exception as err:  # not installed, or an incompatible version
        print(f"  transformer_lens: skipped ({type(err).__name__}: {str(err)[:100]}); `make bench-deps` installs it")
        return {}
    try:
        bridge = TransformerBridge.boot_transformers(lm.source, device=str(lm.device))
        bridge.eval()
        names = [f"blocks.{l}.hook_resid_pre" for l in range(lm.shape.n_layers)]
        names += [f"blocks.{l}.attn.hook_pattern" for l in range(lm.shape.n_layers)]
        names += (
            ["ln_final.hook_normalized"]
            if lm.adapter.final_norm
            else [f"blocks.{lm.shape.n_layers - 1}.hook_resid_post"]
        )
        names = set(names)
        ids = batch["input_ids"]
        return {"tlens_same": lambda: bridge.run_with_cache(ids, names_filter=lambda n: n in names)}
    except Exception as err:
        print(f"  transformer_lens: could not run on {lm.name} ({type(err).__name__}: {str(err)[:120]})")
        return {}


def _nnsight(lm, batch) -> dict[str, Callable[[], object]]:
    try:
        from nnsight import NNsight
    except Exception as err:
        print(f"  nnsight: skipped ({type(err).__name__}: {str(err)[:100]}); `make bench-deps` installs it")
        return {}
    wrapped = NNsight(lm.model)
    base_path = "model" if lm.adapter.causal else None
    root = getattr(wrapped, base_path) if base_path else wrapped

    def run():
        saved = []
        with wrapped.trace(**batch):
            blocks = root
            for part in lm.adapter.blocks.split("."):
                blocks = getattr(blocks, part)
            for l in range(lm.shape.n_layers):
                block = blocks[l]
                saved.append(block.input.save())
                attn = block
                for part in lm.adapter.attn.split("."):
                    attn = getattr(attn, part)
                saved.append(attn.output[1].save())
            if lm.adapter.final_norm:
                saved.append(getattr(root, lm.adapter.final_norm).output.save())
        return saved

    try:
        with torch.inference_mode():
            run()
    except Exception as err:
        print(f"  nnsight: could not run on {lm.name} ({type(err).__name__}: {str(err)[:120]})")
        return {}
    return {"nnsight_same": run}


def time_methods(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    with torch.inference_mode():
        for fn in fns.values():  # warm-up
            fn()
        for _ in range(repeats):
            for name, fn in fns.items():  # interleaved
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


PEAK_SCRIPT = """
import json, sys
def peak_mib():
    # VmHWM, not ru_maxrss: ru_maxrss survives exec and would report the parent's size at fork
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from probes import ActivationStore, load
from probes.core.data import builtin_texts
lm = load(sys.argv[1])
texts = builtin_texts("demo") * int(sys.argv[2])
store = ActivationStore.build(lm, texts, ["blocks.*.hook_resid_post", "blocks.*.attn.hook_pattern"], sys.argv[3],
                              batch_size=16, progress=False)
size = sum(p.stat().st_size for p in store.path.glob("shard_*"))
print(json.dumps({"peak_mib": peak_mib(), "stored_mib": size / 2**20,
                  "tokens": store.manifest["n_tokens"]}))
"""


def store_peaks(model: str) -> dict[int, dict]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "peak.py"
        script.write_text(PEAK_SCRIPT)
        for factor in (2, 20):
            res = subprocess.run(
                [sys.executable, str(script), model, str(factor), str(Path(tmp) / f"s{factor}")],
                capture_output=True,
                text=True,
                check=True,
            )
            out[factor] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


GROUPS = ("probes", "tlens", "nnsight")
ORDER = ("hf_bare", "hf_outputs", "probes_same", "probes_all", "tlens_same", "nnsight_same")


def time_group(model: str, group: str, repeats: int) -> dict[str, float]:
    """One group's timings, measured in a fresh process.

    Each tool runs in its own process beside its own HF baseline: loading a second or
    third copy of a model into one process changes how the allocator behaves and slowed
    whichever method ran beside them by up to 25% here.
    """
    res = subprocess.run(
        [sys.executable, __file__, "--models", model, "--repeats", str(repeats), "--group", group],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        print(f"  {group}: failed ({res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode})")
        return {}
    for line in res.stdout.splitlines():
        if line.startswith("  ") and group != "probes":
            print(line)  # why a tool was skipped
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["minilm", "smollm2-135m"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--no-others", action="store_true", help="leave out TransformerLens and nnsight")
    parser.add_argument("--group", choices=GROUPS, help=argparse.SUPPRESS)  # internal: one process per group
    args = parser.parse_args()
    if args.group:
        lm = load(args.models[0], attn_implementation="eager")
        times = time_methods(methods(lm, make_batch(lm), args.group), args.repeats)
        print(json.dumps(times))
        return
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH} x {SEQ}, "
        f"median of {args.repeats}, "
        "each tool in its own process, ratios to the HF baseline timed in that process"
    )
    for name in args.models:
        print(f"\n{name}")
        ratios: dict[str, tuple[float, float]] = {}
        for group in GROUPS[:1] if args.no_others else GROUPS:
            times = time_group(name, group, args.repeats)
            for method, seconds in times.items():
                if method != "hf_outputs" or group == "probes":
                    ratios[method] = (seconds, seconds / times["hf_outputs"])
        print(f"  {'method':<14} {'ms':>8} {'ratio to hf_outputs':>20}")
        for method in ORDER:
            if method in ratios:
                seconds, ratio = ratios[method]
                print(f"  {method:<14} {seconds * 1000:8.1f} {ratio:20.2f}")
    if not args.skip_memory:
        model = args.models[0]
        peaks = store_peaks(model)
        print(f"\nactivation store peak RSS, {model}, resid_post + patterns of every layer, batch 16, float16:")
        for factor, res in peaks.items():
            print(
                f"  {factor:>3} x demo texts: {res['tokens']:>6} tokens, {res['stored_mib']:7.1f} MiB stored, "
                f"peak {res['peak_mib']:.0f} MiB"
            )
        small, large = peaks[2], peaks[20]
        print(
            f"  10x the data: peak ratio {large['peak_mib'] / small['peak_mib']:.2f}, "
            f"stored ratio {large['stored_mib'] / small['stored_mib']:.1f}"
        )


if __name__ == "__main__":
    main()
