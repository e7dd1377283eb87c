"""TopK sparse autoencoders trained here against SAELens's trainer on the same activations, side by side in one run.

    python benchmarks/bench_sae.py [--models minilm,smollm2-135m] [--tokens 1000000] [--no-saelens]

For each model, one residual site (minilm: blocks.3.hook_resid_pre of 6; smollm2-135m: blocks.15.hook_resid_pre of
30) is captured over the built-in text sets python-docs and python-prose (the first four fifths of each to train
on, the last fifth held out; each text's first token left out, as ``probes sae train`` does by default). Both
trainers then fit a dictionary of 8x the width with k = 32 on the same rows (each through its own seeded shuffle), for
the same number of tokens, in batches of the same size, at the same learning rate:

  ours      ``probes.sparse.TopKTrainer`` (Gao et al.: unit-norm decoder rows, AuxK for dead features)
  saelens   SAELens's ``SAETrainer`` with its ``TopKTrainingSAE`` (expected_average_only_in normalisation, folded
            into the weights at the end), fed the same batches (needs ``make bench-deps``; skipped without it)

Ours is also trained on twice the tokens (``--ours-scale 1,2``), so the two can be compared at equal explained
variance as well as at equal tokens. All are scored by ``probes.sparse.quality.reconstruction`` on the held-out
rows (SAELens's explained variance), SAELens's dictionary saved and loaded through ``SparseDictionary.load``.
Capture time is shown apart.

Goals (issue 16): explained variance at least 0.8 at L0 of 32 or less with a dictionary of 8x the width, trained
within 10 minutes on 2 cores; tokens per second equal to SAELens's or better, at equal explained variance.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from probes import load
from probes.core.data import split_texts
from probes.core.store import ActivationStore
from probes.sparse.dictionary import SparseDictionary
from probes.sparse.quality import reconstruction
from probes.sparse.train import TopKTrainer

SITES = {"minilm": "blocks.3.hook_resid_pre", "smollm2-135m": "blocks.15.hook_resid_pre"}


def rows_of(store: ActivationStore, site: str, skip: int) -> torch.Tensor:
    parts = [x[pos >= skip].float() for x, pos in store.iter_rows(site)]
    return torch.cat(parts)


def batches(x: torch.Tensor, tokens: int, batch: int, seed: int):
    """A seeded stream of minibatches over the rows, reshuffled each pass (SAELens's data provider)."""
    g = torch.Generator().manual_seed(seed)
    sent = 0
    while True:
        order = torch.randperm(len(x), generator=g)
        for lo in range(0, len(x) - batch + 1, batch):
            if sent >= tokens:
                return
            yield x[order[lo : lo + batch]]
            sent += batch


def saelens_fit(x: torch.Tensor, d_sae: int, k: int, tokens: int, batch: int, lr: float, seed: int, site: str):
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(seed)
    cfg = TopKTrainingSAEConfig(
        d_in=x.shape[1], d_sae=d_sae, k=k, normalize_activations="expected_average_only_in", device="cpu"
    )
    cfg.metadata.hook_name = site
    sae = TopKTrainingSAE(cfg)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=tokens,
        train_batch_size_samples=batch,
        lr=lr,
        lr_end=lr,
        device="cpu",
        dead_feature_window=max(1, 50_000 // batch),
        feature_sampling_window=2000,
        n_batches_for_norm_estimate=20,
        logger=LoggingConfig(log_to_wandb=False),
    )
    # the scale estimate reads 20 batches of its own from the stream before training starts
    stream = batches(x, tokens + 20 * batch, batch, seed)
    trainer = SAETrainer(trainer_cfg, sae, data_provider=stream)
    start = time.perf_counter()
    trained = trainer.fit()
    seconds = time.perf_counter() - start
    folder = Path(tempfile.mkdtemp()) / "saelens"
    trained.save_inference_model(str(folder))  # the inference SAE (topk), as SAELens publishes dictionaries
    return SparseDictionary.load(folder), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,smollm2-135m")
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--no-saelens", action="store_true")
    parser.add_argument(
        "--ours-scale",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[1.0, 2.0],
        help="ours is also trained on these multiples of --tokens (to compare at equal explained variance)",
    )
    args = parser.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    train, test = split_texts(["python-docs", "python-prose"])
    root = Path(tempfile.mkdtemp())
    lines = []
    for name in args.models.split(","):
        site = SITES[name]
        lm = load(name)
        start = time.perf_counter()
        store = ActivationStore.build(lm, train, [site], root, dtype="float32", progress=False)
        held = ActivationStore.build(lm, test, [site], root, dtype="float32", progress=False)
        capture = time.perf_counter() - start
        x = rows_of(store, site, 1)
        d_sae = 8 * lm.shape.d_model
        print(f"{name} {site}: {len(x)} training tokens, {held.manifest['n_tokens']} held out; capture {capture:.0f} s")
        results = {}
        for scale in args.ours_scale:
            tokens = int(scale * args.tokens)
            trainer = TopKTrainer(expansion=8, k=32, n_tokens=tokens, batch_size=args.batch, lr=args.lr, progress=False)
            start = time.perf_counter()
            trainer.fit((x, x), site=site)  # the rows as one tensor: the same rows SAELens gets
            results["ours" if scale == 1 else f"ours x{scale:g}"] = (
                trainer.dictionary_,
                time.perf_counter() - start,
                tokens,
            )
        if not args.no_saelens:
            try:
                results["saelens"] = (
                    *saelens_fit(x, d_sae, 32, args.tokens, args.batch, args.lr, 0, site),
                    args.tokens,
                )
            except ImportError:
                print("  sae-lens is not installed (make bench-deps): its trainer is skipped")
        for trainer_name, (sae, seconds, tokens) in results.items():
            quality, _ = reconstruction(sae, held, skip_positions=1, n_boot=100)
            q = quality.set_index("metric")
            ev = q.loc["explained_variance"]
            line = (
                f"{name:<14} {trainer_name:<8} {tokens:>9} tok {seconds:7.1f} s "
                f"{tokens / seconds:9.0f} tok/s  "
                f"EV {ev.value:.3f} [{ev.ci_low:.3f}, {ev.ci_high:.3f}]  L0 {q.loc['l0', 'value']:.1f}  "
                f"dead {q.loc['dead_share', 'value']:.1%}  dense {q.loc['dense_share', 'value']:.1%}"
            )
            print(line, flush=True)
            lines.append(line)
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
