"""Bad input and faults, tried as a user would: each ends with an exit code, one line that names the problem and
the fix, and nothing left behind (no half-written folder, no temporary file, no record rewritten)."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
from helpers import lm_eval_file

from probes.cli import main


def cli(*args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it: ``probes.cli.main`` with its output captured (in this process, so the
    checks stay fast; the lock's and the kills' tests use processes of their own)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(["probes", *map(str, args)], code, out.getvalue(), err.getvalue())


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("probes ")]


def one_line_error(result: subprocess.CompletedProcess, *expected: str, code: int = 2) -> str:
    """The result failed with ``code`` and exactly one error line holding every ``expected`` text, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def nothing_left(path: pathlib.Path) -> None:
    assert not path.exists(), f"{path} was left behind: {sorted(p.name for p in path.rglob('*'))}"


def no_temporaries(root: pathlib.Path) -> None:
    assert not [p for p in root.rglob("*.tmp")], sorted(str(p) for p in root.rglob("*.tmp"))


def suite_file(folder: pathlib.Path, name: str, model: pathlib.Path, body: str, n_examples: int = 40) -> pathlib.Path:
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nmodels = ["{model}"]\ncontrols = []\nn_examples = {n_examples}\nn_boot = 50\n'
        "Cs = [1.0]\n" + body
    )
    return path


# --- runs that would mix or misrecord -------------------------------------------------------------------------------


def test_a_second_suite_into_the_same_folder_is_refused_and_changes_nothing(tiny_folders, tmp_path):
    first = suite_file(tmp_path, "first", tiny_folders["gpt2"], 'tasks = ["tense"]\n')
    second = suite_file(tmp_path, "second", tiny_folders["gpt2"], 'tasks = ["depth"]\n')
    out = tmp_path / "out"
    assert cli("run", first, "--out", out).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    one_line_error(
        cli("run", second, "--out", out), str(out), "holds a `probes run` with other settings", "use another --out"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock.owner"} == {
        k: v for k, v in before.items() if k != ".lock.owner"
    }
    again = cli("run", first, "--out", out)  # the first suite still prints its own numbers
    assert again.returncode == 0 and "tense" in again.stdout and "depth" not in again.stdout


def test_a_second_writer_gets_the_holders_pid(tiny_folders, tmp_path):
    out = tmp_path / "out"
    holder = textwrap.dedent(f"""
        import sys
        from probes.runtime.run import RunFolder
        with RunFolder.open({str(out)!r}, command="run", spec={{}}):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        toml = suite_file(tmp_path, "s", tiny_folders["gpt2"], 'tasks = ["tense"]\n')
        one_line_error(cli("run", toml, "--out", out), str(out), f"pid {proc.pid}", "`probes run`")
    finally:
        proc.communicate("\n", timeout=120)


def test_a_refused_ablation_rerun_does_not_rewrite_run_json(tiny_folders, tmp_path):
    out = tmp_path / "ablate"
    base = [
        "ablate",
        tiny_folders["llama"],
        "--n",
        "6",
        "--kind",
        "zero",
        "--components",
        "heads",
        "--top-k",
        "3",
        "--permutations",
        "2",
        "--interaction-samples",
        "1",
        "--out",
        out,
    ]
    assert cli(*base).returncode == 0
    before = (out / "run.json").read_bytes()
    one_line_error(cli(*base[:-2], "--seed", "7", "--out", out), "other settings", "seed: 0 there, 7 here")
    assert (out / "run.json").read_bytes() == before


def test_two_tasks_with_one_name_are_refused(tiny_folders, tmp_path):
    data = tmp_path / "a.csv"
    pd.DataFrame({"text": ["a dog runs", "the dogs run"] * 10, "label": ["s", "p"] * 10}).to_csv(data, index=False)
    toml = suite_file(
        tmp_path,
        "s",
        tiny_folders["gpt2"],
        f'tasks = [{{ name = "mine", path = "{data}" }}, {{ name = "mine", path = "{data}" }}]\n',
    )
    one_line_error(cli("run", toml, "--out", tmp_path / "out"), str(toml), "'mine' is used twice")
    nothing_left(tmp_path / "out")


def test_a_conllu_file_too_small_to_split_is_refused_and_nothing_is_marked_done(tiny_folders, tmp_path):
    conllu = tmp_path / "tiny.conllu"
    conllu.write_text("1\tdogs\tdog\tNOUN\t_\t_\t0\troot\t_\t_\n\n1\truns\trun\tVERB\t_\t_\t0\troot\t_\t_\n")
    toml = suite_file(tmp_path, "s", tiny_folders["gpt2"], f'tasks = [{{ name = "ud", path = "{conllu}" }}]\n')
    one_line_error(cli("run", toml, "--out", tmp_path / "out"), "task 'ud'", "give more sentences")
    nothing_left(tmp_path / "out")


# --- the report, side by side ----------------------------------------------------------------------------------------


def test_the_report_puts_two_runs_of_one_model_side_by_side(tiny_folders, tmp_path):
    runs = tmp_path / "runs"
    for name, n in (("a", 40), ("b", 60)):
        toml = suite_file(tmp_path, name, tiny_folders["gpt2"], 'tasks = ["tense"]\n', n_examples=n)
        assert cli("run", toml, "--out", runs / name).returncode == 0
    for args in ([runs / "a", runs / "b"], [runs]):
        result = cli("report", *args, "--out", tmp_path / "r.html")
        assert result.returncode == 0, result.stderr
        text = (tmp_path / "r.html").read_text()
        assert f"{tiny_folders['gpt2']} (a)" in text and f"{tiny_folders['gpt2']} (b)" in text


def test_a_failed_report_write_leaves_no_temporary_file(report_runs, tmp_path, monkeypatch):
    real = pathlib.Path.write_text

    def full(self, *args, **kwargs):
        if self.name.endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    line = one_line_error(cli("report", report_runs / "scale", "--out", tmp_path / "r.html"), "disk full", "r.html")
    assert "[Errno" not in line
    nothing_left(tmp_path / "r.html")
    no_temporaries(tmp_path)


# --- models ----------------------------------------------------------------------------------------------------------


def test_unknown_alias_and_uncached_hub_id(tmp_path):
    one_line_error(cli("sites", "minilmm"), "unknown model 'minilmm'", "did you mean the alias 'minilm'")
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # as the tests set it
    one_line_error(
        cli("capture", "nobody/no-such-model", "--out", tmp_path / "o"),
        "not in the Hugging Face cache with HF_HUB_OFFLINE=1",
        "hf download nobody/no-such-model",
    )
    nothing_left(tmp_path / "o")


def test_revision_on_an_alias_or_a_folder_is_refused(tiny_folders, tmp_path):
    one_line_error(
        cli("capture", "minilm", "--revision", "step1000", "--out", tmp_path / "o"),
        "--revision step1000",
        "built-in alias",
        "drop --revision",
    )
    one_line_error(cli("heads", tiny_folders["gpt2"], "--revision", "v2", "--out", tmp_path / "o"), "local folder")
    nothing_left(tmp_path / "o")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_on_a_cpu_only_machine(tiny_folders, tmp_path):
    one_line_error(
        cli("capture", tiny_folders["gpt2"], "--device", "cuda", "--out", tmp_path / "o"),
        "--device cuda",
        "use --device cpu",
    )
    one_line_error(
        cli("capture", tiny_folders["gpt2"], "--device", "gpu", "--out", tmp_path / "o"), "'gpu' is not a device name"
    )
    nothing_left(tmp_path / "o")


def test_device_and_device_map_together(tiny_folders, tmp_path):
    one_line_error(
        cli("capture", tiny_folders["gpt2"], "--device", "cpu", "--device-map", "auto", "--out", tmp_path / "o"),
        "give device or device_map, not both",
    )
    nothing_left(tmp_path / "o")


def test_corrupt_and_truncated_safetensors_and_a_refused_pickle(tiny_folders, tmp_path):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_folders["gpt2"], corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)
    one_line_error(cli("sites", corrupt), "corrupt or truncated", "copy the model again")
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_folders["gpt2"], truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    one_line_error(cli("sites", truncated), "corrupt or truncated")
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_folders["gpt2"], pickled)
    (pickled / "model.safetensors").unlink()
    marker = tmp_path / "ran"
    # a pickle that would run code (os.system) if loaded unsafely
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    (pickled / "pytorch_model.bin").write_bytes(payload)
    one_line_error(cli("sites", pickled), "pickle", "safetensors")
    assert not marker.exists()


def test_bad_sites_and_components(tiny_folders, tmp_path):
    one_line_error(
        cli("capture", tiny_folders["gpt2"], "--sites", "blocks.0.hook_nothing", "--out", tmp_path / "o"),
        "unknown site 'blocks.0.hook_nothing'",
    )
    one_line_error(
        cli("ablate", tiny_folders["llama"], "--components", "L9H0", "--out", tmp_path / "o"),
        "component L9H0",
        "layers 0..1",
    )
    one_line_error(
        cli("ablate", tiny_folders["llama"], "--components", "L0X1", "--out", tmp_path / "o"),
        "cannot read component 'L0X1'",
    )
    nothing_left(tmp_path / "o")


def test_attribution_and_circuits_refuse_what_they_cannot_measure(tiny_folders, tmp_path):
    llama, out = tiny_folders["llama"], tmp_path / "o"
    one_line_error(
        cli("attribute", llama, "--components", "L0H3.k", "--out", out), "component L0H3.k", "key-value heads 0..1"
    )
    one_line_error(
        cli("attribute", llama, "--behaviour", "induction", "--kind", "patch", "--out", out),
        "--kind patch runs clean prompts",
        "--data FILE.jsonl",
    )
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"clean": "the dog", "corrupt": "the dogs", "answer": " is", "wrong": " are"}\n{"clean": "a"}\n')
    one_line_error(
        cli("attribute", llama, "--kind", "patch", "--data", pairs, "--out", out),
        f"{pairs}:2",
        "clean, corrupt, answer and wrong",
    )
    one_line_error(
        cli("circuit", tiny_folders["bert"], "--behaviour", "cosine", "--out", out), "normalises after each add"
    )
    one_line_error(cli("circuit", llama, "--target", "1.5", "--out", out), "--target must be at most 1")
    nothing_left(out)


# --- data and flags -------------------------------------------------------------------------------------------------


def test_a_text_file_that_is_not_utf8_names_file_and_line(tiny_folders, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_bytes(b"a fine line\nanother\ncaf\xe9 au lait\n")
    one_line_error(
        cli("capture", tiny_folders["gpt2"], "--texts", texts, "--out", tmp_path / "o"),
        f"{texts}:3",
        "not UTF-8",
        "save the file as UTF-8",
    )
    nothing_left(tmp_path / "o")


@pytest.mark.parametrize("n", ["0", "-5"])
def test_n_below_one_names_the_flag(tiny_folders, tmp_path, n):
    one_line_error(cli("ablate", tiny_folders["llama"], "--n", n, "--out", tmp_path / "o"), "--n must be at least 1")
    nothing_left(tmp_path / "o")


def test_toml_errors(tiny_folders, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("tasks = [pos")
    one_line_error(cli("run", broken, "--out", tmp_path / "o"), "not valid TOML")
    typo = suite_file(tmp_path, "typo", tiny_folders["gpt2"], 'taks = ["pos"]\n')
    one_line_error(cli("run", typo, "--out", tmp_path / "o"), "unknown key 'taks' (did you mean 'tasks'?)")
    entry = suite_file(tmp_path, "entry", tiny_folders["gpt2"], 'tasks = []\n[[ablations]]\nmodel = "m"\ntop_k = 2\n')
    one_line_error(cli("run", entry, "--out", tmp_path / "o"), "ablations[0]: key 'top_k' must be at least 3")
    nothing_left(tmp_path / "o")


def test_out_that_is_a_file(tiny_folders, tmp_path):
    (tmp_path / "taken").write_text("mine")
    one_line_error(cli("capture", tiny_folders["gpt2"], "--out", tmp_path / "taken"), "is a file, not a folder")
    assert (tmp_path / "taken").read_text() == "mine"


def test_a_folder_that_cannot_be_written(tiny_folders, tmp_path):
    if os.geteuid() == 0:  # permissions do not stop root; a read-only file system does
        target = pathlib.Path("/sys/probes-test-out")
        if not pathlib.Path("/sys").is_dir():
            pytest.skip("no read-only file system to write into")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        target = locked / "out"
    one_line_error(cli("capture", tiny_folders["gpt2"], "--out", target), str(target))
    nothing_left(target)


# --- scaling inputs -------------------------------------------------------------------------------------------------


def test_scale_inputs_of_unusual_shape(tmp_path):
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"results": {"arc_easy": 0.5}}))
    one_line_error(cli("scale", odd, "--out", tmp_path / "o"), "results['arc_easy'] is float")
    for size, message in (
        (0, "sizes must be positive numbers"),
        (-3, "sizes must be positive numbers"),
        (float("nan"), "no parameters for model(s) m0: the files do not state it"),
    ):
        path = tmp_path / f"sizes{size}.csv"
        pd.DataFrame(
            {
                "model": [f"m{i}" for i in range(5)],
                "parameters": [size, 2e6, 3e6, 4e6, 5e6],
                "t_exact_match": [0.1, 0.2, 0.3, 0.4, 0.5],
            }
        ).to_csv(path, index=False)
        one_line_error(cli("scale", path, "--out", tmp_path / "o"), message)
    nan_metric = tmp_path / "nan.csv"
    pd.DataFrame(
        {
            "model": [f"m{i}" for i in range(5)],
            "parameters": [1e6, 2e6, 3e6, 4e6, 5e6],
            "task": "t",
            "metric": "my_score",
            "value": [0.1, None, 0.3, 0.4, 0.5],
        }
    ).to_csv(nan_metric, index=False)
    one_line_error(cli("scale", nan_metric, "--out", tmp_path / "o"), "'my_score'", "no numeric value")
    files = [lm_eval_file(tmp_path / f"{i}.json", f"org/m-{i}", None, 0.3 + 0.1 * i, None) for i in range(5)]
    (tmp_path / "sizes.json").write_text('{"org/m-0": 1e6,')
    one_line_error(
        cli("scale", *files, "--sizes", tmp_path / "sizes.json", "--out", tmp_path / "o"),
        f"--sizes {tmp_path / 'sizes.json'}:1",
        "not valid JSON",
    )
    (tmp_path / "sizes.json").write_text('["org/m-0", 1e6]')
    one_line_error(
        cli("scale", *files, "--sizes", tmp_path / "sizes.json", "--out", tmp_path / "o"),
        "model name -> number of parameters",
    )
    nothing_left(tmp_path / "o")


# --- faults -----------------------------------------------------------------------------------------------------------


def test_a_full_disk_during_capture_is_one_line(tiny_folders, tmp_path, monkeypatch):
    real = pathlib.Path.write_bytes

    def full(self, data):
        if self.name.startswith(".shard_") and self.name.endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    result = cli("capture", tiny_folders["gpt2"], "--out", tmp_path / "o")
    one_line_error(result, "disk full writing shard_00000.safetensors", "re-running resumes at shard 0")
    nothing_left(tmp_path / "o")  # nothing was finished, so nothing is kept


def test_ctrl_c_says_how_to_resume(tiny_folders, tmp_path, monkeypatch):
    from probes.probing.study import ProbingTask

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ProbingTask, "rows", interrupted)
    toml = suite_file(tmp_path, "s", tiny_folders["gpt2"], 'tasks = ["tense"]\n')
    result = cli("run", toml, "--out", tmp_path / "o")
    assert result.returncode == 130
    assert error_lines(result.stderr) == ["probes run: interrupted: run the same command again to resume"]
    assert (tmp_path / "o" / "run.json").exists()  # what was started stays, to resume


def test_a_bug_shows_its_traceback_and_asks_for_a_report(tiny_folders, tmp_path, monkeypatch):
    from probes.probing.study import ProbingTask

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(ProbingTask, "rows", broken)
    toml = suite_file(tmp_path, "s", tiny_folders["gpt2"], 'tasks = ["tense"]\n')
    result = cli("run", toml, "--out", tmp_path / "o")
    err = result.stderr
    assert (
        result.returncode == 1
        and "Traceback" in err
        and "ZeroDivisionError: a bug" in err
        and "this is a bug in emergence-probes" in err
    )


# --- user text in reports ---------------------------------------------------------------------------------------------

EVIL = "<img src=x onerror=alert(1)>"


def test_user_text_is_escaped_in_every_report_field(tiny_folders, tmp_path):
    data = tmp_path / "a.csv"
    pd.DataFrame({"text": ["a dog runs", "the dogs run"] * 20, "label": [EVIL, "plural"] * 20}).to_csv(
        data, index=False
    )
    model = tmp_path / f"m{EVIL}"
    shutil.copytree(tiny_folders["gpt2"], model)
    toml = suite_file(tmp_path, "s", model, f'tasks = [{{ name = "task{EVIL}", path = "{data}" }}]\n')
    assert cli("run", toml, "--out", tmp_path / f"run{EVIL}").returncode == 0
    result = cli("report", tmp_path / f"run{EVIL}", "--out", tmp_path / "r.html", "--title", f"title{EVIL}")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "r.html").read_text()
    assert "<img src=x" not in text
    for field in ("title", "task", "m", "run"):
        assert f"{field}&lt;img src=x onerror=alert(1)&gt;" in text, field
    result = cli("report", tmp_path / f"run{EVIL}", "--out", tmp_path / "r.md", "--title", f"title{EVIL}")
    assert result.returncode == 0 and "<img src=x" not in (tmp_path / "r.md").read_text()


# --- refused before the first write ---------------------------------------------------------------------------------


def test_sizes_beyond_the_model_are_refused_before_any_stage(tiny_folders, tmp_path):
    llama, out = tiny_folders["llama"], tmp_path / "o"
    one_line_error(cli("circuit", llama, "--sizes", "1000000000", "--out", out), "--sizes", "edges", "1000000000")
    nothing_left(out)
    one_line_error(cli("attribute", llama, "--n", "1000000000", "--out", out), "--n must be at most")
    one_line_error(cli("ablate", llama, "--n", "1000000000", "--out", out), "--n must be at most")
    nothing_left(out)
    # the corrected command then runs: nothing of the refused one is left to call it "other settings"
    assert cli("circuit", llama, "--sizes", "1", "2", "--n", "4", "--random", "0", "--out", out).returncode == 0


def _dictionary(tiny_folders, tmp_path, model="llama"):
    from probes.core.loading import load
    from probes.sparse import SparseDictionary

    lm = load(tiny_folders[model])
    sae = SparseDictionary(
        lm.shape.d_model, 16, site="blocks.1.hook_resid_pre", k=4, model_name=str(tiny_folders[model])
    )
    sae.info["model_weights_sha256_16"] = lm.fingerprint
    return sae.save(tmp_path / f"sae-{model}")


def test_a_dictionary_is_checked_against_its_model_and_its_files(tiny_folders, tmp_path):
    out = tmp_path / "o"
    folder = _dictionary(tiny_folders, tmp_path)
    one_line_error(
        cli("sae", "features", tiny_folders["llama"], "--sae", folder, "--sizes", "100000", "--out", out),
        "--sizes",
        "16 features",
    )
    nothing_left(out)
    # the same width, another model: gpt2 and llama are both 32 wide here
    one_line_error(
        cli("sae", "features", tiny_folders["gpt2"], "--sae", folder, "--out", out),
        "trained on",
        str(tiny_folders["llama"]),
        str(tiny_folders["gpt2"]),
    )
    nothing_left(out)
    cfg = folder / "cfg.json"
    good = cfg.read_text()
    for bad, says in (
        ("[1, 2]", "is a JSON list: a dictionary's cfg.json is one object"),
        (good.replace('"d_in": 32', '"d_in": "wide"'), "key 'd_in' should be a whole number, got 'wide'"),
        (good.replace('"d_sae": 16', '"d_sae": 8'), "d_sae"),
    ):
        cfg.write_text(bad)
        line = one_line_error(cli("sae", "features", tiny_folders["llama"], "--sae", folder, "--out", out), str(cfg))
        assert says in line, line
        nothing_left(out)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('{"clean": 3, "corrupt": "the dogs", "answer": " is", "wrong": " are"}', "key 'clean' should be text, got 3"),
        ('{"clean": "the dog", "corrupt": "the dogs", "answer": null, "wrong": " are"}', "key 'answer' should be text"),
    ],
)
def test_a_pairs_file_with_a_field_of_the_wrong_type_names_the_line_and_key(tiny_folders, tmp_path, line, says):
    pairs, out = tmp_path / "pairs.jsonl", tmp_path / "o"
    pairs.write_text('{"clean": "the dog", "corrupt": "the dogs", "answer": " is", "wrong": " are"}\n' + line + "\n")
    one_line_error(
        cli("attribute", tiny_folders["llama"], "--kind", "patch", "--data", pairs, "--out", out), f"{pairs}:2", says
    )
    nothing_left(out)
    blimp = tmp_path / "blimp.jsonl"
    blimp.write_text('{"sentence_good": "the dog is", "sentence_bad": 7}\n')
    one_line_error(
        cli("ablate", tiny_folders["llama"], "--behaviour", "pairs", "--data", blimp, "--out", out),
        f"{blimp}:1",
        "key 'sentence_bad' should be text, got 7",
    )
    nothing_left(out)


def test_a_component_named_twice_is_one_line(tiny_folders, tmp_path):
    out = tmp_path / "o"
    one_line_error(
        cli("ablate", tiny_folders["llama"], "--components", "L0H0", "L0H0", "L0H0", "--out", out),
        "L0H0 is named 3 times",
    )
    nothing_left(out)


def test_a_full_disk_during_lens_is_one_line(tiny_folders, tmp_path, monkeypatch):
    real = pathlib.Path.write_bytes

    def full(self, data):
        if self.name == "translators.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    out = tmp_path / "o"
    args = ("--texts", "demo", "--steps", "1", "--train-tokens", "256", "--test-tokens", "64", "--out", out)
    one_line_error(cli("lens", tiny_folders["llama"], *args), "disk full")
    nothing_left(out)
