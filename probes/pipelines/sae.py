"""``probes sae train`` and ``probes sae features``: dictionaries trained and measured, and what their features carry.

    run_sae_train(SaeTrainSpec(model="smollm2-135m", site="blocks.15.hook_resid_pre"), "runs/sae")
    run_features(FeaturesSpec(model="smollm2-135m", sae="runs/sae/dictionary", behaviour="agreement"), "runs/feat")

``sae train`` writes ``activations/`` (the training and held-out stores), ``dictionary/`` (SAELens's format),
``stages/history.csv`` (the loss as it trained), ``stages/quality.csv`` (explained variance, L0, MSE, cosine, dead
and dense shares, loss recovered, on the held-out fifth of each text set), ``stages/density.csv`` (each feature's
firing rate), ``feature-density.png`` and ``results.csv`` (tidy rows, probe "sae:topk").

``sae features`` writes ``stages/scores.csv`` (every feature's AtP estimate), ``stages/verify.csv`` (the top and a
random sample measured exactly), ``stages/curve.csv`` (the behaviour with the top-k features kept, every other
ablated, and random sets of k), ``stages/error.json`` (the error term's share of the site's effect),
``stages/examples.csv`` (the top features' activating examples), with ``--task`` ``stages/concept.csv`` (best single
feature against the linear probe), ``feature-curve.png`` and ``results.csv`` (probe "features:KIND"). A re-run
reuses every finished stage.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.results import normal_interval, tidy
from probes.causal.behaviours import default_behaviour, make_behaviour
from probes.causal.circuits import FaithfulnessCurve
from probes.causal.evaluator import Evaluator
from probes.causal.verification import Verification, verify
from probes.core.data import split_texts
from probes.core.model import LoadedModel
from probes.core.provenance import content_hash
from probes.core.store import ActivationStore
from probes.pipelines.specs import FeaturesSpec, SaeTrainSpec
from probes.pipelines.study import Study
from probes.sparse.components import all_features
from probes.sparse.dictionary import DictionaryError, SparseDictionary
from probes.sparse.examples import activating_examples
from probes.sparse.quality import loss_recovered, reconstruction
from probes.sparse.train import TopKTrainer

UNDEFINED_WHEN_NOISY = ("feature_share", "feature_count", "error_share", "verify_spearman", "verify_bound")


# --- sae train ------------------------------------------------------------------------------------------------


def run_sae_train(
    spec: SaeTrainSpec, out: str | os.PathLike, *, lm: LoadedModel | None = None, progress: bool = True
) -> pd.DataFrame:
    """Train (or reuse) the dictionary and measure it on the held-out texts; returns the quality rows."""
    train, test = split_texts(spec.texts)
    record = {
        **spec.record(),
        "texts_sha256_16": content_hash(train + test),
        "n_train": len(train),
        "n_test": len(test),
    }
    sites = sorted({spec.site, spec.site_out or spec.site})
    check = lambda lm: lm.resolve(sites)  # an unknown site is refused before anything is computed
    with Study.open(spec, out, command="sae train", record=record, lm=lm, check=check) as study:
        run, lm = study.run, study.lm
        stores = run.path / "activations"
        if run.done("dictionary"):
            sae = SparseDictionary.load(run.file("dictionary"), device=lm.device)
        else:
            store = ActivationStore.build(
                lm, train, sites, stores, dtype="float32", max_length=spec.max_length, progress=progress
            )
            trainer = TopKTrainer(
                expansion=spec.expansion,
                k=spec.k,
                n_tokens=spec.tokens,
                batch_size=spec.batch_size,
                lr=spec.lr,
                dead_after=spec.dead_after,
                buffer=spec.buffer,
                skip_positions=spec.skip_positions,
                seed=spec.seed,
                progress=progress,
            ).fit(store, spec.site, spec.site_out, model_name=spec.model)
            run.commit_frame(
                "stages/history.csv", trainer.history_.assign(tokens_per_second=trainer.tokens_per_second_)
            )
            sae = trainer.dictionary_
            trained = sae

            def save(folder: Path) -> None:
                trained.save(folder)

            run.commit_dir("dictionary", save)
            sae = sae.to(lm.device)
        held_out = ActivationStore.build(
            lm, test, sites, stores, dtype="float32", max_length=spec.max_length, progress=False
        )

        def quality() -> pd.DataFrame:
            frame, density = reconstruction(
                sae.cpu(), held_out, skip_positions=spec.skip_positions, n_boot=spec.n_boot, seed=spec.seed
            )
            run.commit_frame(
                "stages/density.csv", pd.DataFrame({"feature": np.arange(len(density)), "density": density})
            )
            sae.to(lm.device)
            if spec.loss and lm.adapter.causal:
                loss, _ = loss_recovered(
                    lm,
                    sae,
                    test,
                    skip_positions=spec.skip_positions,
                    max_length=spec.max_length,
                    n_boot=spec.n_boot,
                    seed=spec.seed,
                )
                frame = pd.concat([frame, loss], ignore_index=True)
            return frame

        frame = run.frame("stages/quality.csv", quality, may_be_nan=("explained_variance", "cosine"))
        density = run.read_frame("stages/density.csv")
        if not run.done("feature-density.png"):
            from analysis.feature_plots import density_plot

            with run.writing("feature-density.png") as path:
                density_plot(density["density"].to_numpy(), f"{spec.model} {spec.site}").savefig(
                    path, dpi=120, format="png"
                )
        rows = [
            {
                "model": spec.model_label,
                "task": "reconstruction",
                "site": spec.site,
                "probe": f"sae:topk:{spec.expansion}x:k{spec.k}",
                "metric": r.metric,
                "value": r.value,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "n": int(frame.set_index("metric").loc["n_tokens", "value"]),
            }
            for r in frame.itertuples()
        ]
        run.write_frame("results.csv", tidy(rows))
    return frame


def describe_training(out: Path) -> str:
    quality = pd.read_csv(out / "stages" / "quality.csv").set_index("metric")
    lines = []
    for metric in ("explained_variance", "l0", "cosine", "dead_share", "dense_share", "loss_recovered"):
        if metric in quality.index:
            r = quality.loc[metric]
            ci = f" [{r.ci_low:.3f}, {r.ci_high:.3f}]" if np.isfinite(r.ci_low) else ""
            lines.append(f"{metric:>20}: {r.value:.3f}{ci}")
    lines.append(f"\nwritten: {out / 'dictionary'} (SAELens's format), {out / 'results.csv'}, {out / 'run.json'}")
    return "\n".join(lines)


# --- sae features ---------------------------------------------------------------------------------------------


def load_dictionary(spec: FeaturesSpec, lm: LoadedModel) -> SparseDictionary:
    sae = SparseDictionary.load(spec.sae, device=lm.device)
    if sae.transcoder:
        raise DictionaryError(f"{spec.sae} is a transcoder; sae features studies a sparse autoencoder of one site")
    lm.resolve(sae.site)
    if sae.d_in != lm.shape.d_model and sae.site.endswith(("resid_pre", "resid_post", "attn_out", "mlp_out")):
        raise DictionaryError(
            f"{spec.sae} reads {sae.d_in} dimensions but {lm.name}'s {sae.site} has {lm.shape.d_model}: "
            "it was trained on another model"
        )
    trained_on = sae.info.get("model_weights_sha256_16")
    if trained_on and trained_on != lm.fingerprint:
        raise DictionaryError(
            f"{spec.sae} was trained on {sae.model_name or 'another model'} (weights {trained_on}), not on {lm.name} "
            f"(weights {lm.fingerprint}): give the model it was trained on, or train one on {lm.name}"
        )
    if spec.sizes and max(spec.sizes) > sae.d_sae:
        raise DictionaryError(
            f"--sizes {' '.join(map(str, spec.sizes))}: {spec.sae} has {sae.d_sae} features; "
            f"give sizes from 1 to {sae.d_sae}"
        )
    return sae


def run_features(
    spec: FeaturesSpec, out: str | os.PathLike, *, lm: LoadedModel | None = None, progress: bool = True
) -> dict:
    """Attribute every feature, check the strongest exactly, trace the feature-count curve and the error term's
    share; with ``task``, the best single feature against the linear probe."""
    sae = SparseDictionary.load(spec.sae)  # its fingerprint goes into run.json; checked against the model below
    record = {**spec.record(), "dictionary_fingerprint": sae.fingerprint}
    details = {"dictionary": sae.describe()}
    with Study.open(spec, out, command="sae features", record=record, lm=lm, details=details) as study:
        run, lm = study.run, study.lm
        sae = load_dictionary(spec, lm)
        behaviour = make_behaviour(lm, spec.behaviour, data=spec.data, n=spec.n, seed=spec.seed)
        components = all_features(sae)
        ev = Evaluator(lm, behaviour, kind=spec.kind, seed=spec.seed)

        def scores() -> pd.DataFrame:
            from probes.causal.attribution import attribute

            frame = attribute(ev, components, method="atp", progress=progress)
            return frame.assign(feature=np.arange(sae.d_sae))

        frame = run.frame("stages/scores.csv", scores)
        checked = run.frame(
            "stages/verify.csv",
            lambda: (
                verify(ev, frame, components, top=spec.verify_top, sample=spec.verify_sample, seed=spec.seed).checked
            ),
        )
        verification = Verification.of(checked)
        order = frame.sort_values("score", ascending=False, kind="stable")["feature"].to_numpy()

        def curve_values() -> pd.DataFrame:
            from probes.sparse.study import feature_curve

            curve = feature_curve(
                ev,
                sae,
                order,
                sizes=spec.sizes,
                n_random=spec.random,
                target=spec.target,
                seed=spec.seed,
                progress=progress,
            )
            return curve.values_frame()

        curve = FaithfulnessCurve.from_values(run.frame("stages/curve.csv", curve_values), sae.d_sae, "atp")
        share = curve.smallest_share(spec.target, n_boot=spec.n_boot, seed=spec.seed)

        def error() -> dict:
            from probes.sparse.study import error_share

            return error_share(ev, sae, n_boot=spec.n_boot, seed=spec.seed)

        errors = run.json("stages/error.json", error)
        top = [int(f) for f in order[: spec.verify_top]]
        if spec.examples:
            texts = split_texts([spec.texts])[1]
            run.frame(
                "stages/examples.csv",
                lambda: activating_examples(lm, sae, texts, top, n=spec.examples, skip_positions=1),
            )
        concept = None
        if spec.task is not None:
            from probes.probing.datasets import generate
            from probes.sparse.study import concept_features

            dataset = generate(spec.task, 400, seed=spec.seed)
            concept = run.frame("stages/concept.csv", lambda: concept_features(lm, dataset, sae, seed=spec.seed))
        task = spec.behaviour or default_behaviour(lm)
        rows = _feature_rows(spec, frame, verification, curve, share, errors, concept)
        for row in rows:
            row.update(model=spec.model, task=task, probe=f"features:{spec.kind}", site=sae.site)
            row.setdefault("n", ev.n_examples)
        results = run.write_frame("results.csv", tidy(rows))
        if not run.done("feature-curve.png"):
            from analysis.feature_plots import feature_curve_plot

            with run.writing("feature-curve.png") as path:
                feature_curve_plot(pd.read_csv(results)).savefig(path, dpi=120, format="png")
    return {
        "scores": frame,
        "verification": verification,
        "curve": curve,
        "share": share,
        "error": errors,
        "concept": concept,
    }


def _feature_rows(
    spec: FeaturesSpec,
    frame: pd.DataFrame,
    verification: Verification,
    curve: FaithfulnessCurve,
    share: tuple[float, float, float],
    errors: dict,
    concept: pd.DataFrame | None,
) -> list[dict]:
    rows: list[dict] = []
    for r in frame.sort_values("score", ascending=False, kind="stable").head(50).itertuples():
        rows.append({"component": r.component, "metric": "attribution", **normal_interval(r.estimate, r.stderr)})
    rows += verification.rows()
    for size, f in zip(curve.sizes, curve.faithfulness()):
        rows.append({"component": f"top {size}", "metric": "feature_faithfulness", "value": f, "features": size})
    for size, draws in zip(curve.random_sizes, curve.random_faithfulness()):
        if len(draws):
            rows.append(
                {
                    "component": f"random {size}",
                    "metric": "random_feature_faithfulness",
                    "value": float(draws.mean()),
                    "ci_low": float(draws.min()),
                    "ci_high": float(draws.max()),
                    "features": size,
                    "n": len(draws),
                }
            )
    value, low, high = share
    count = value * curve.n_edges if np.isfinite(value) else np.nan
    rows += [
        {"metric": "feature_share", "value": value, "ci_low": low, "ci_high": high, "target": spec.target},
        {
            "metric": "feature_count",
            "value": count,
            "ci_low": low * curve.n_edges if np.isfinite(low) else np.nan,
            "ci_high": high * curve.n_edges if np.isfinite(high) else np.nan,
            "target": spec.target,
        },
        {"metric": "dictionary_features", "value": curve.n_edges},
        {
            "metric": "error_share",
            "value": errors["error_share"],
            "ci_low": errors["error_share_low"],
            "ci_high": errors["error_share_high"],
        },
        {
            "metric": "features_share",
            "value": errors["features_share"],
            "ci_low": errors["features_share_low"],
            "ci_high": errors["features_share_high"],
        },
        {"metric": "site_effect", "value": errors["site_effect"]},
        {"metric": "clean_value", "value": float(curve.full.mean())},
    ]
    if concept is not None:
        for r in concept.itertuples():
            base = {"component": f"feature {r.feature}", "label": r.label, "n": r.n_test}
            rows.append({**base, "metric": "best_feature_accuracy", "value": r.feature_accuracy})
            rows.append({**base, "metric": "probe_accuracy", "value": r.probe_accuracy})
    return rows


def describe_features(result: dict, spec: FeaturesSpec) -> str:
    curve: FaithfulnessCurve = result["curve"]
    value, low, high = result["share"]
    errors = result["error"]
    top = result["scores"].sort_values("score", ascending=False, kind="stable").head(5)
    lines = [
        f"{curve.n_edges} features attributed ({spec.kind}); largest: "
        + ", ".join(f"{r.component} {r.estimate:+.4f}" for r in top.itertuples()),
        "verification: " + result["verification"].summary(),
        (
            f"feature-count curve: no measured set keeps {spec.target:.0%} of the behaviour"
            if not np.isfinite(value)
            else f"feature-count curve: {value * curve.n_edges:.0f} features ({value:.2%}) keep {spec.target:.0%} "
            f"[{low * curve.n_edges:.0f}, {high * curve.n_edges:.0f}]"
        ),
        f"error term: {errors['error_share']:.2f} of the site's effect [{errors['error_share_low']:.2f}, "
        f"{errors['error_share_high']:.2f}]; every feature together: {errors['features_share']:.2f}",
    ]
    concept = result["concept"]
    if concept is not None:
        lines.append(
            f"concept {spec.task}: best single feature {concept['feature_accuracy'].mean():.3f} balanced accuracy, "
            f"linear probe {concept['probe_accuracy'].mean():.3f} (mean over {len(concept)} classes)"
        )
    return "\n".join(lines)


__all__ = ["run_features", "run_sae_train"]
