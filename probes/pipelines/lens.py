"""``probes lens``: logit lens and tuned lens of one model, per depth, into a run folder.

    frame = run_lens(LensSpec(model="smollm2-135m", behaviour="induction"), "runs/lens")

``OUT/tuned/`` is the trained lens (``translators.safetensors`` and ``lens.json``; ``load_lens``
reads it back), ``OUT/lens.csv`` KL to the final distribution, top-1 agreement and surprisal of the next
token per lens and depth on held-out texts, ``OUT/behaviour.csv`` the behaviour's score per lens and
depth with the first depth its answer is decodable at, ``OUT/lens-kl.png`` the figure, ``OUT/run.json``
the spec, the model's hash and the texts' hash. A re-run reuses what is finished.
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import pandas as pd

from probes.core.data import split_texts
from probes.core.model import LoadedModel
from probes.core.provenance import content_hash
from probes.pipelines.specs import LensSpec
from probes.pipelines.study import Study
from probes.probing.lens import (
    Lens,
    LensError,
    LogitLens,
    TunedLens,
    behaviour_by_depth,
    collect,
    first_decodable_depth,
    lens_scores,
)


def run_lens(spec: LensSpec, out: str | os.PathLike, *, lm: LoadedModel | None = None) -> pd.DataFrame:
    """Train (or reuse) the tuned lens, score both lenses per depth, and read the behaviour through them."""
    train, test = split_texts([spec.texts])
    record = {
        **spec.record(),
        "texts_sha256_16": content_hash(train + test),
        "n_train": len(train),
        "n_test": len(test),
    }
    with Study.open(spec, out, command="lens", record=record, lm=lm) as study:
        run = study.run
        needed = ["lens.csv"] + (["behaviour.csv"] if spec.behaviour else [])
        if study.done(*needed, "tuned"):
            return run.read_frame("lens.csv")
        lm = study.lm
        if run.done("tuned"):
            tuned = load_lens(run.file("tuned"), lm)
        else:
            print(
                f"tuned lens: {lm.shape.n_layers} translators of {lm.shape.d_model}x{lm.shape.d_model}, "
                f"{spec.steps} steps on {spec.train_tokens} tokens",
                flush=True,
            )
            tuned = TunedLens(
                steps=spec.steps,
                batch_tokens=spec.batch_tokens,
                lr=spec.lr,
                init=spec.init,
                max_tokens=spec.train_tokens,
                max_length=spec.max_length,
                seed=spec.seed,
                progress=True,
            ).fit(lm, train)
            run.commit_dir("tuned", partial(save_lens, tuned))
        lenses: dict[str, Lens] = {"logit": LogitLens(), "tuned": tuned}
        if run.done("lens.csv"):
            frame = run.read_frame("lens.csv")
        else:
            held_out = collect(lm, test, max_length=spec.max_length, max_tokens=spec.test_tokens)
            frame = lens_scores(lm, held_out, lenses, seed=spec.seed).assign(model=spec.model)
            run.commit_frame("lens.csv", frame)
        if spec.behaviour and not run.done("behaviour.csv"):
            from probes.causal.behaviours import make_behaviour

            behaviour = make_behaviour(lm, spec.behaviour, n=spec.n, seed=spec.seed)
            parts = []
            for name, lens in lenses.items():
                by_depth = behaviour_by_depth(lm, behaviour, lens, seed=spec.seed)
                first = first_decodable_depth(by_depth, higher_is_better=behaviour.higher_is_better)
                parts.append(by_depth.assign(lens=name, first_decodable=first))
            rows = pd.concat(parts).assign(model=spec.model, behaviour=spec.behaviour, metric=behaviour.metric)
            run.commit_frame("behaviour.csv", rows)
        if not run.done("lens-kl.png"):
            from analysis.lens_plots import plot_lens

            with run.writing("lens-kl.png") as path:
                plot_lens(frame, run.read_frame("behaviour.csv") if spec.behaviour else None).savefig(
                    path, dpi=120, format="png"
                )
    return frame


def save_lens(lens: TunedLens, folder: str | os.PathLike) -> None:
    """``translators.safetensors`` and ``lens.json`` (settings, the model's name and weights hash, the loss)."""
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, meta = lens.state()
    # bytes written by Python, so that a full disk is an OSError (one line), not safetensors' own error (a bug)
    (folder / "translators.safetensors").write_bytes(save(tensors))
    (folder / "lens.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_lens(folder: str | os.PathLike, lm: LoadedModel) -> TunedLens:
    """A tuned lens saved by ``save_lens``, for the model it was trained on."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "lens.json").exists():
        raise LensError(f"{folder} holds no tuned lens (no lens.json): train one with probes lens MODEL --out DIR")
    meta = json.loads((folder / "lens.json").read_text())
    try:
        return TunedLens.from_state(load_file(str(folder / "translators.safetensors")), meta, lm)
    except LensError as err:
        raise LensError(f"{folder}: {err}") from None


def describe(out: str | os.PathLike) -> str:
    """What ``probes lens`` prints: KL per depth for both lenses, and where the behaviour becomes decodable."""
    out = Path(out)
    frame = pd.read_csv(out / "lens.csv")
    kl = frame.pivot(index="depth", columns="lens", values="kl")
    top1 = frame.pivot(index="depth", columns="lens", values="top1_agreement")
    lines = [
        f"{frame['model'].iloc[0]}: KL(final || lens) in nats and top-1 agreement, on {frame['n_tokens'].iloc[0]} "
        "held-out tokens",
        f"{'depth':>5} {'logit KL':>9} {'tuned KL':>9} {'logit top1':>11} {'tuned top1':>11}",
    ]
    for depth in kl.index:
        lines.append(
            f"{depth:>5} {kl.loc[depth, 'logit']:>9.3f} {kl.loc[depth, 'tuned']:>9.3f} "
            f"{top1.loc[depth, 'logit']:>11.3f} {top1.loc[depth, 'tuned']:>11.3f}"
        )
    better = (kl["tuned"] < kl["logit"]).iloc[:-1]
    lines.append(
        f"tuned lens below the logit lens in KL at {int(better.sum())} of {len(better)} depths before the last"
    )
    if (out / "behaviour.csv").exists():
        rows = pd.read_csv(out / "behaviour.csv")
        for name, group in rows.groupby("lens", sort=False):
            first = group["first_decodable"].iloc[0]
            where = "never" if pd.isna(first) else f"from depth {int(first)}"
            lines.append(
                f"{rows['behaviour'].iloc[0]} ({rows['metric'].iloc[0]}) through the {name} lens: decodable {where}"
            )
    lines.append(f"\nwritten: {out / 'lens.csv'}, {out / 'tuned'}, {out / 'lens-kl.png'}, {out / 'run.json'}")
    return "\n".join(lines)
