"""The scale table: one row per (model, task, metric) score of a family of models.

    model | family | parameters | non_embedding_parameters | tokens | step | task | metric | value | stderr | n | chance

Three ways in: this toolkit's evaluations (``probes ladder eval``, ``probes.pipelines.evaluate_family``),
lm-evaluation-harness results JSON files (``read_lm_eval``) and CSV files in the
tidy layout above or the wide one (one row per model, one ``task_metric`` column per
score: ``read_scale_csv``). ``scale_table`` validates any of them.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import pandas as pd

from .errors import ProbesError

SCALE_COLUMNS = (
    "model",
    "family",
    "parameters",
    "non_embedding_parameters",
    "tokens",
    "step",
    "task",
    "metric",
    "value",
    "stderr",
    "n",
    "chance",
    "higher_is_better",
)
REQUIRED = ("model", "task", "metric", "value")
MIN_SIZES = 3


class ScaleTableError(ProbesError, ValueError):
    """A scale table that cannot be analysed as given."""


@dataclass(frozen=True)
class Metric:
    """What a score means: its range, which way is better, and whether it can only jump between 0 and 1 per example."""

    low: float
    high: float
    higher_is_better: bool = True
    discontinuous: bool = False  # all-or-nothing per example (exact match, multiple choice)
    log_scale: bool = False  # analysed as its logarithm (perplexities span orders of magnitude; log is the loss)


METRICS: dict[str, Metric] = {
    # all-or-nothing per example: where Schaeffer et al. (2023) look for mirages
    "exact_match": Metric(0, 1, discontinuous=True),
    "mc_accuracy": Metric(0, 1, discontinuous=True),
    "multiple_choice_grade": Metric(0, 1, discontinuous=True),
    "acc": Metric(0, 1, discontinuous=True),
    "acc_norm": Metric(0, 1, discontinuous=True),
    # partial credit per example
    "token_accuracy": Metric(0, 1),
    "token_edit_distance": Metric(0, math.inf, higher_is_better=False),
    "target_logprob": Metric(-math.inf, 0),
    "brier": Metric(0, 2, higher_is_better=False),
    "f1": Metric(0, 1),
    "mcc": Metric(-1, 1),
    "perplexity": Metric(1, math.inf, higher_is_better=False, log_scale=True),
    "word_perplexity": Metric(1, math.inf, higher_is_better=False, log_scale=True),
    "byte_perplexity": Metric(1, math.inf, higher_is_better=False, log_scale=True),
    "token_perplexity": Metric(1, math.inf, higher_is_better=False, log_scale=True),
    "bits_per_byte": Metric(0, math.inf, higher_is_better=False),
    "loss": Metric(0, math.inf, higher_is_better=False),
    "cross_entropy": Metric(0, math.inf, higher_is_better=False),
    "bleu": Metric(0, 100),
    "rouge1": Metric(0, 100),
    "ter": Metric(0, math.inf, higher_is_better=False),
    "acc_mutual_info": Metric(0, 1, discontinuous=True),
    "contains": Metric(0, 1, discontinuous=True),
}
MULTIPLE_CHOICE = ("acc", "acc_norm", "mc_accuracy", "multiple_choice_grade", "acc_mutual_info")

# Chance of common lm-evaluation-harness tasks under their multiple-choice metrics (one over the number of
# options), where the results file does not list the options: (task name pattern, chance).
TASK_CHANCE: tuple[tuple[str, float], ...] = (
    (
        r"mmlu(_.*)?|cmmlu.*|kmmlu.*|arc_(easy|challenge)|hellaswag|sciq|openbookqa|race|logiqa2?|medmcqa|"
        r"swag|headqa.*|agieval_.*|truthfulqa_mc1",
        0.25,
    ),
    (
        r"piqa|winogrande|boolq|copa|blimp_.*|wsc(273)?|rte|sst2|qnli|mrpc|qqp|wic|cola|prost|"
        r"anli_r[123]_binary|lambada_.*_binary",
        0.5,
    ),
    (r"mnli(_mismatch)?|anli_r[123]|cb", 1 / 3),
    (r"mathqa", 0.2),
    (r"lambada(_openai|_standard)?(_cloze)?", 0.0),  # the next word from the whole vocabulary
)


def metric_info(name: str) -> Metric | None:
    """The registry entry of a metric (lm-eval's ``acc,none`` filter suffix ignored); None if unknown."""
    return METRICS.get(str(name).split(",")[0])


def all_or_nothing(metric: str) -> bool:
    """Exact match, multiple choice and the like (unknown metrics count as partial credit)."""
    info = metric_info(metric)
    return info is not None and info.discontinuous


def scale_table(rows: Iterable[Mapping[str, Any]] | pd.DataFrame, *, size: str = "parameters") -> pd.DataFrame:
    """Rows -> a validated scale table, standard columns first, sorted by family, task, metric and size.

    Raises ``ScaleTableError`` (one line, naming the rows) for missing columns, duplicate
    rows, scores outside their metric's range, and families with fewer than three sizes.
    """
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ScaleTableError(
            f"scale table lacks column(s) {', '.join(missing)}; required are {', '.join(REQUIRED)} and a size ({size})"
        )
    for column in SCALE_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.NA
    frame["family"] = frame["family"].fillna("family")
    for column in ("parameters", "non_embedding_parameters", "tokens", "step", "value", "stderr", "n", "chance"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    if frame[size].isna().any():
        models = sorted(frame.loc[frame[size].isna(), "model"].astype(str).unique())
        raise ScaleTableError(
            f"no {size} for model(s) {', '.join(models[:5])}: the files do not state it and the names do not "
            f'say it (as in pythia-1.4b); give --sizes FILE with {{"{models[0]}": 160000000}} (Python: '
            f"sizes=), or a '{size}' column"
        )
    # zero, negative and NaN sizes: log size is undefined (a step axis keeps step 0, the untrained model)
    bad_size = frame[~(frame[size] >= 0)] if size == "step" else frame[~(frame[size] > 0)]
    if len(bad_size):
        row = bad_size.iloc[0]
        raise ScaleTableError(
            f"model {row['model']!r} has {size} {row[size]}: sizes must be positive numbers "
            "(a scaling analysis works on log size)"
        )
    _check_duplicates(frame)
    _check_ranges(frame)
    _check_sizes(frame, size)
    extra = [c for c in frame.columns if c not in SCALE_COLUMNS]
    frame = frame[[*SCALE_COLUMNS, *extra]]
    order = ["family", "task", "metric", size] + (["step"] if size != "step" else [])
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def _check_duplicates(frame: pd.DataFrame) -> None:
    key = ["family", "model", "step", "task", "metric"]
    dup = frame[frame.duplicated(key, keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise ScaleTableError(
            f"{len(dup)} duplicate rows, e.g. model {first['model']!r} task {first['task']!r} metric "
            f"{first['metric']!r}: keep one score per model, checkpoint, task and metric"
        )


def _check_ranges(frame: pd.DataFrame) -> None:
    missing = frame[frame["value"].isna()]
    if len(missing):
        row = missing.iloc[0]
        raise ScaleTableError(
            f"metric {row['metric']!r} of model {row['model']!r} on {row['task']!r} has no numeric "
            f"value ({len(missing)} such rows): drop those rows or fill them in"
        )
    for metric, group in frame.groupby("metric"):
        info = metric_info(metric)
        if info is None:
            continue
        bad = group[(group["value"] < info.low) | (group["value"] > info.high) | group["value"].isna()]
        if len(bad):
            row = bad.iloc[0]
            raise ScaleTableError(
                f"metric {metric!r} of model {row['model']!r} on {row['task']!r} is {row['value']}, "
                f"outside its range [{info.low}, {info.high}]: is it a percentage or mislabelled?"
            )


def _check_sizes(frame: pd.DataFrame, size: str) -> None:
    for (family, task, metric), group in frame.groupby(["family", "task", "metric"]):
        sizes = group[size].nunique()
        if sizes < MIN_SIZES:
            what = "checkpoint(s)" if size == "step" else "size(s)"
            raise ScaleTableError(
                f"family {family!r} has {sizes} {what} for {task!r}/{metric!r}: a scaling analysis "
                f"needs at least {MIN_SIZES} (add models or checkpoints, or drop this task)"
            )


# --- names, aliases, chance ---------------------------------------------------------------------------------------

COLUMN_ALIASES = {
    "parameters": ("params", "n_params", "num_params", "num_parameters", "model_num_parameters", "param_count", "size"),
    "non_embedding_parameters": ("non_embedding_params", "nonembedding_parameters"),
    "model": ("model_name", "model_id", "name"),
    "step": ("steps", "checkpoint_step", "training_step"),
    "tokens": ("tokens_seen", "train_tokens", "training_tokens"),
    "stderr": ("std_err", "se", "standard_error"),
}
_SIZE_TOKEN = re.compile(r"(?<![0-9A-Za-z.])(\d+(?:\.\d+)?)([kKmMbBtT])(?![0-9A-Za-z])")
_MULTIPLIER = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def with_standard_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Common aliases of the standard columns (``params``, ``model_name``, ...) renamed to theirs."""
    renames = {}
    for standard, aliases in COLUMN_ALIASES.items():
        if standard in frame.columns:
            continue
        found = [a for a in aliases if a in frame.columns]
        if found:
            renames[found[0]] = standard
    return frame.set_axis([renames.get(c, c) for c in frame.columns], axis=1)  # not .rename: no file is renamed


def family_and_size(model: str) -> tuple[str, float | None]:
    """A model id's family and parameter count, where the name states them as standard names do:
    ``EleutherAI/pythia-1.4b-deduped`` -> (``EleutherAI/pythia-deduped``, 1.4e9), ``Qwen/Qwen2.5-0.5B`` ->
    (``Qwen/Qwen2.5``, 5e8); a name without a size token -> (the name, None)."""
    org, _, name = str(model).rpartition("/")
    found = list(_SIZE_TOKEN.finditer(name))
    if not found:
        return str(model), None
    token = found[-1]  # "qwen2.5-7b" has one; "llama-3-8b-70k-ctx" would be odd either way: take the last
    size = float(token.group(1)) * _MULTIPLIER[token.group(2).lower()]
    rest = (name[: token.start()] + name[token.end() :]).replace("--", "-").replace("__", "_").strip("-_") or name
    return (f"{org}/{rest}" if org else rest), size


def task_chance(task: str, metric: str, n_choices: int | None = None) -> float | None:
    """Chance level of a task under a multiple-choice metric: 1 / options where known, else the registry of
    common tasks (``TASK_CHANCE``); None for other metrics and unknown tasks."""
    if str(metric).split(",")[0] not in MULTIPLE_CHOICE:
        return None
    if n_choices:
        return 1.0 / n_choices
    for pattern, chance in TASK_CHANCE:
        if re.fullmatch(pattern, task):
            return chance
    return None


# --- readers -----------------------------------------------------------------------------------------------------


def read_scale_csv(
    path: str | os.PathLike,
    *,
    layout: str = "auto",
    family: str | None = None,
    sizes: Mapping[str, float] | None = None,
    size: str = "parameters",
) -> pd.DataFrame:
    """A CSV in the tidy layout (``task``, ``metric``, ``value`` columns) or the wide one.

    Wide: one row per model, a ``parameters`` column (or ``sizes``), and one column per
    score named ``task_metric`` with a known metric suffix (``arithmetic_exact_match``),
    optionally ``task_metric_stderr`` beside it.
    """
    path = Path(path)
    if not path.exists():
        raise ScaleTableError(f"no scale table at {path}")
    frame = with_standard_columns(pd.read_csv(path))
    if layout == "auto":
        layout = "tidy" if {"task", "metric", "value"} <= set(frame.columns) else "wide"
    if layout == "wide":
        frame = _from_wide(frame, path)
    elif layout != "tidy":
        raise ScaleTableError(f"layout must be 'auto', 'tidy' or 'wide', got {layout!r}")
    if family is not None:
        frame["family"] = family
    return scale_table(_with_sizes(frame, sizes), size=size)


_ID_COLUMNS = ("model", "family", "parameters", "non_embedding_parameters", "tokens", "step", "n")


def _from_wide(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    if "model" not in frame.columns:
        raise ScaleTableError(f"{path}: a wide scale table needs a 'model' column and one column per task_metric")
    ids = [c for c in _ID_COLUMNS if c in frame.columns]
    names = sorted(METRICS, key=len, reverse=True)
    rows = []
    for column in frame.columns:
        if column in ids or column.endswith("_stderr"):
            continue
        metric = next((m for m in names if column.endswith("_" + m)), None)
        if metric is None:
            raise ScaleTableError(
                f"{path}: column {column!r} is not task_metric with a known metric "
                f"({', '.join(sorted(METRICS))}); use the tidy layout for other metrics"
            )
        part = frame[ids].copy()
        part["task"], part["metric"], part["value"] = column[: -len(metric) - 1], metric, frame[column]
        if f"{column}_stderr" in frame.columns:
            part["stderr"] = frame[f"{column}_stderr"]
        rows.append(part)
    if not rows:
        raise ScaleTableError(f"{path}: no task_metric columns found")
    return pd.concat(rows, ignore_index=True)


def _with_sizes(frame: pd.DataFrame, sizes: Mapping[str, float] | None) -> pd.DataFrame:
    """Sizes given (``--sizes``) first, then those the rows state, then those the model names state."""
    frame = frame.copy()
    if "parameters" not in frame.columns:
        frame["parameters"] = None
    if "size_from" not in frame.columns:
        frame["size_from"] = [("file" if pd.notna(p) else None) for p in frame["parameters"]]
    if sizes:
        given = frame["model"].map(dict(sizes))
        frame.loc[given.notna(), "size_from"] = "given"
        frame["parameters"] = given.fillna(frame["parameters"])
    missing = pd.to_numeric(frame["parameters"], errors="coerce").isna() & frame["model"].notna()
    if missing.any():
        named = pd.to_numeric(frame.loc[missing, "model"].map(lambda m: family_and_size(str(m))[1]), errors="coerce")
        found = named[named.notna()]
        frame.loc[found.index, "size_from"] = "name"
        frame["parameters"] = pd.to_numeric(frame["parameters"], errors="coerce").astype(float)
        frame.loc[found.index, "parameters"] = found.astype(float)
    return frame


def read_lm_eval(
    paths: Iterable[str | os.PathLike],
    *,
    sizes: Mapping[str, float] | None = None,
    family: str | None = None,
    tasks: Iterable[str] | None = None,
    size: str = "parameters",
) -> pd.DataFrame:
    """lm-evaluation-harness results files (one per model or checkpoint) -> a scale table.

    Reads ``results[task]["metric,filter"]`` and its ``metric_stderr,filter`` (v0.4;
    the older ``metric`` / ``metric_stderr`` keys too), ``n-samples`` for n, the model
    from ``config.model_args`` (``pretrained=...,revision=step1000`` gives the step), and
    the size from ``sizes`` or ``config.model_num_parameters``. ``size="step"`` reads the
    checkpoints of one model as the family (no parameter counts needed).
    """
    rows = []
    for path in paths:
        rows.extend(_lm_eval_rows(Path(path), set(tasks) if tasks else None))
    if not rows:
        raise ScaleTableError("no lm-evaluation-harness scores found in the given files")
    frame = pd.DataFrame(rows)
    if family is not None:
        frame["family"], frame["family_from"] = family, "given"
    return scale_table(_with_sizes(frame, sizes), size=size)


def _lm_eval_rows(path: Path, tasks: set[str] | None) -> list[dict]:
    if not path.exists():
        raise ScaleTableError(f"no lm-evaluation-harness results file at {path}")
    try:
        blob = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ScaleTableError(f"{path} is not JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("results"), dict):
        raise ScaleTableError(f"{path} has no 'results' dict: not an lm-evaluation-harness results file")
    config: dict[str, Any] = blob["config"] if isinstance(blob.get("config"), dict) else {}
    args = _model_args(config.get("model_args"))
    model = args.get("pretrained") or blob.get("model_name") or config.get("model") or path.stem
    revision = args.get("revision")
    step = re.fullmatch(r"step(\d+)", revision or "")
    family, named_size = family_and_size(model)
    stated = config.get("model_num_parameters")
    stated = stated if _is_number(stated) and stated > 0 else None
    # checkpoints of one model share its name and differ by step; any other revision is part of the name
    ident = {
        "model": f"{model}@{revision}" if revision and not step else model,
        "family": family,
        "parameters": stated or named_size,
        "step": int(step.group(1)) if step else None,
        "size_from": "file" if stated else "name" if named_size else None,
        "family_from": "name" if family != model else None,
    }
    counts: dict[str, Any] = blob["n-samples"] if isinstance(blob.get("n-samples"), dict) else {}
    better: dict[str, Any] = blob["higher_is_better"] if isinstance(blob.get("higher_is_better"), dict) else {}
    configs: dict[str, Any] = blob["configs"] if isinstance(blob.get("configs"), dict) else {}
    rows = []
    for task, scores in blob["results"].items():
        if tasks is not None and task not in tasks:
            continue
        if not isinstance(scores, dict):
            raise ScaleTableError(
                f"{path}: results[{task!r}] is {type(scores).__name__}, not a dict of metrics: not an "
                "lm-evaluation-harness results file (or one of a format this reader does not know)"
            )
        count = counts.get(task)
        n = (count.get("effective") if isinstance(count, dict) else None) or scores.get("sample_len")
        found = better.get(task)
        directions: dict[str, Any] = found if isinstance(found, dict) else {}
        found = configs.get(task)
        task_config: dict[str, Any] = found if isinstance(found, dict) else {}
        choices = task_config.get("doc_to_choice")
        n_choices = len(choices) if isinstance(choices, list) and len(choices) > 1 else None
        for key, value in scores.items():
            metric, _, filt = key.partition(",")
            if metric.endswith("_stderr") or not _is_number(value):
                continue
            stderr = scores.get(f"{metric}_stderr,{filt}" if filt else f"{metric}_stderr")
            name = metric if filt in ("", "none") else f"{metric},{filt}"
            direction = directions.get(metric)
            rows.append(
                {
                    **ident,
                    "task": task,
                    "metric": name,
                    "value": float(value),
                    "stderr": float(stderr) if _is_number(stderr) else None,
                    "n": n,
                    "chance": task_chance(task, metric, n_choices),
                    "higher_is_better": direction if isinstance(direction, bool) else None,
                }
            )
    return rows


def _model_args(args: Any) -> dict[str, str]:
    if isinstance(args, dict):
        return {k: str(v) for k, v in args.items()}
    pairs = (part.split("=", 1) for part in str(args or "").split(",") if "=" in part)
    return {k.strip(): v.strip() for k, v in pairs}


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_scale_inputs(
    paths: Sequence[str | os.PathLike],
    *,
    sizes: Mapping[str, float] | None = None,
    family: str | None = None,
    size: str = "parameters",
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(scale table, per-example scores or None) from lm-eval JSON files, CSV files, or folders written by
    ``probes ladder eval`` / ``probes.pipelines.evaluate_family`` (their ``scale.csv`` and ``examples.csv``)."""
    if not paths:
        raise ScaleTableError("no results given: pass lm-eval JSON files, scale CSVs or evaluation folders")
    tables, examples, json_files = [], [], []
    for path in map(Path, paths):
        if path.is_dir():
            if not (path / "scale.csv").exists():
                raise ScaleTableError(f"folder {path} has no scale.csv (write one with 'probes ladder eval')")
            tables.append(read_scale_csv(path / "scale.csv", sizes=sizes, family=family, size=size))
            if (path / "examples.csv").exists():
                examples.append(pd.read_csv(path / "examples.csv"))
        elif path.suffix == ".json":
            json_files.append(path)
        elif path.suffix == ".csv":
            tables.append(read_scale_csv(path, sizes=sizes, family=family, size=size))
        else:
            raise ScaleTableError(f"{path}: expected an lm-eval .json file, a .csv scale table or a folder")
    if json_files:
        tables.append(read_lm_eval(json_files, sizes=sizes, family=family, size=size))
    table = scale_table(pd.concat(tables, ignore_index=True), size=size)
    return table, pd.concat(examples, ignore_index=True) if examples else None
