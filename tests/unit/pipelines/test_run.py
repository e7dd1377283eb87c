"""The run folder: one writer, one configuration, whole units, nothing left behind, and resumption after a kill
at every instant between two writes (fault injection, not timing)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import probes.core.files as files
from analysis.results import read_results
from probes.pipelines.specs import SuiteSpec
from probes.pipelines.suite import run_suite
from probes.runtime.run import RunError, RunFolder, UnitError, unit_file


def rows(value: float = 0.5) -> pd.DataFrame:
    return pd.DataFrame([{"model": "m", "metric": "accuracy", "value": value, "layer": 1}])


def test_run_json_is_written_once_and_a_mismatch_changes_nothing(tmp_path):
    with RunFolder.open(
        tmp_path / "r", command="run", spec={"n": 1}, seed=0, models={"m": {"weights_sha256_16": "a"}}
    ) as run:
        run.commit_frame(unit_file("u1"), rows())
    before = (tmp_path / "r" / "run.json").read_bytes()
    with RunFolder.open(
        tmp_path / "r", command="run", spec={"n": 1}, seed=0, models={"m": {"weights_sha256_16": "a"}}
    ) as run:
        assert run.done(unit_file("u1")) and not run.done(unit_file("u2"))
    for command, spec, models, why in (
        ("run", {"n": 2}, {"m": {"weights_sha256_16": "a"}}, "n: 1 there, 2 here"),
        ("run", {"n": 1}, {"m": {"weights_sha256_16": "b"}}, "weights_sha256_16"),
        ("ablate", {"n": 1}, {"m": {"weights_sha256_16": "a"}}, "`probes run`"),
    ):
        with pytest.raises(RunError, match="nothing was changed") as info:
            with RunFolder.open(tmp_path / "r", command=command, spec=spec, models=models):
                pass
        assert why in str(info.value)
        assert (tmp_path / "r" / "run.json").read_bytes() == before  # the refused run recorded nothing


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    holder = textwrap.dedent(f"""
        import sys, time
        from probes.runtime.run import RunFolder
        with RunFolder.open({str(tmp_path / "r")!r}, command="run", spec={{}}):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match=f"being written by another probes process \\(pid {proc.pid} "):
            with RunFolder.open(tmp_path / "r", command="run", spec={}):
                pass
    finally:
        proc.communicate("\n", timeout=60)
    with RunFolder.open(tmp_path / "r", command="run", spec={}):  # free again once the holder is done
        pass


def test_nan_is_an_error_and_the_unit_is_not_done(tmp_path):
    with RunFolder.open(tmp_path / "r", command="run", spec={}) as run:
        run.commit_frame(unit_file("ok"), rows())
        with pytest.raises(UnitError, match="NaN for accuracy at layer 1"):
            run.commit_frame(unit_file("bad"), rows(np.nan))
        assert not run.done(unit_file("bad"))
        run.commit_frame(unit_file("allowed"), rows(np.nan), may_be_nan=("accuracy",))


def test_a_failed_first_attempt_leaves_nothing_and_files_get_the_usual_mode(tmp_path):
    with pytest.raises(UnitError):
        with RunFolder.open(tmp_path / "r", command="run", spec={}) as run:
            run.commit_frame(unit_file("bad"), rows(np.nan))
    assert not (tmp_path / "r").exists()
    with RunFolder.open(tmp_path / "r", command="run", spec={}) as run:
        run.commit_frame(unit_file("ok"), rows())
        run.write_frame("results.csv", rows())
    umask = os.umask(0)
    os.umask(umask)
    for name in ("run.json", "results.csv", unit_file("ok")):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == 0o666 & ~umask, name
    assert not [p for p in (tmp_path / "r").rglob("*.tmp")]


def test_the_sweep_leaves_a_nested_run_folders_temporaries_to_its_owner(tmp_path):
    with RunFolder.open(tmp_path / "outer", command="demo", spec={}):
        with RunFolder.open(tmp_path / "outer" / "inner", command="run", spec={}):
            pass
    (tmp_path / "outer" / ".results.csv.x.tmp").write_text("half")
    (tmp_path / "outer" / "inner" / ".results.csv.y.tmp").write_text("another writer's, maybe")
    with RunFolder.open(tmp_path / "outer", command="demo", spec={}):
        assert not (tmp_path / "outer" / ".results.csv.x.tmp").exists()
        assert (tmp_path / "outer" / "inner" / ".results.csv.y.tmp").exists()
    with RunFolder.open(tmp_path / "outer" / "inner", command="run", spec={}):  # its owner sweeps it
        assert not (tmp_path / "outer" / "inner" / ".results.csv.y.tmp").exists()


def test_out_that_is_a_file_or_not_a_run_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="is a file, not a folder"):
        with RunFolder.open(tmp_path / "file", command="run", spec={}):
            pass
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(RunError, match="not empty and holds no run.json"):
        with RunFolder.open(tmp_path / "mine", command="run", spec={}):
            pass
    assert (tmp_path / "mine" / "notes.txt").read_text() == "x"


# --- kills at every instant -----------------------------------------------------------------------------------------


class Killed(BaseException):
    """What the fault point raises: like a kill, nothing catches it (not an Exception)."""


def small_suite(tiny_folders) -> SuiteSpec:
    return SuiteSpec(
        name="faults",
        models=[str(tiny_folders["gpt2"])],
        tasks=["pos"],
        probes=["logistic"],
        controls=["control_task"],
        n_examples=40,
        Cs=[1.0],
        n_boot=50,
        batch_size=16,
        ablations=[
            {
                "model": str(tiny_folders["llama"]),
                "n": 6,
                "kind": "zero",
                "components": "heads",
                "top_k": 3,
                "permutations": 2,
                "interaction_samples": 1,
                "n_boot": 10,
            }
        ],
        attributions=[{"model": str(tiny_folders["llama"]), "n": 4, "verify_top": 2, "verify_sample": 2}],
        circuits=[
            {
                "model": str(tiny_folders["llama"]),
                "n": 4,
                "steps": 2,
                "sizes": [2, 20],
                "random": 1,
                "verify_top": 2,
                "verify_sample": 1,
                "n_boot": 10,
            }
        ],
    )


@pytest.mark.slow
def test_a_kill_between_any_two_writes_resumes_to_the_same_results(tiny_folders, tmp_path, monkeypatch):
    spec = small_suite(tiny_folders)
    expected = run_suite(spec, tmp_path / "reference", progress=False)  # also fills the weights-hash cache
    probes = set(expected["probe"].dropna())
    assert {"ablation:zero", "attribution:atp*:mean", "attribution:eap-ig:mean"} <= probes
    assert (expected["metric"] == "circuit_share").sum() == 1
    points = []
    real = files.fault_point
    monkeypatch.setattr(
        files, "fault_point", lambda stage, path: (points.append((stage, path.name)), real(stage, path))
    )
    pd.testing.assert_frame_equal(run_suite(spec, tmp_path / "counted", progress=False), expected)
    n = len(points)
    assert n >= 20 and {s for s, _ in points} == {"written", "committed"}
    for k in range(1, n + 1):
        count = [0]

        def kill_at_k(stage, path, k=k, count=count):
            count[0] += 1
            if count[0] == k:
                raise Killed(f"{stage} {path.name}")

        out = tmp_path / f"killed-{k}"
        monkeypatch.setattr(files, "fault_point", kill_at_k)
        with pytest.raises(Killed):
            run_suite(spec, out, progress=False)
        monkeypatch.setattr(files, "fault_point", real)
        resumed = run_suite(spec, out, progress=False)
        pd.testing.assert_frame_equal(resumed, expected, obj=f"resumed after a kill at write point {k} {points[k - 1]}")
        pd.testing.assert_frame_equal(read_results(out / "results.csv"), expected)
        assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_a_real_kill_leaves_temporary_files_that_the_resumed_run_clears(tiny_folders, tmp_path):
    """``PROBES_FAULT_AT`` kills the process itself (no clean-up, as SIGKILL) right after a temporary file is
    written, before it is renamed; the next run takes the lock, sweeps the temporaries and finishes."""
    toml = tmp_path / "s.toml"
    toml.write_text(
        f'models = ["{tiny_folders["gpt2"]}"]\ntasks = ["tense"]\nprobes = ["logistic"]\ncontrols = []\n'
        "n_examples = 40\nn_boot = 50\nCs = [1.0]\n"
    )
    command = [sys.executable, "-m", "probes.cli", "run", str(toml), "--out", str(tmp_path / "out")]
    reference = subprocess.run([*command[:-1], str(tmp_path / "ref")], capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr
    for at in ("3", "5"):  # the first unit's file, written but not renamed; then results.csv's
        killed = subprocess.run(
            command, capture_output=True, text=True, timeout=300, env={**os.environ, "PROBES_FAULT_AT": at}
        )
        assert killed.returncode == 137
        assert list((tmp_path / "out").rglob(".*.tmp")), "a real kill leaves its temporary file"
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not list((tmp_path / "out").rglob(".*.tmp"))
    pd.testing.assert_frame_equal(
        read_results(tmp_path / "out" / "results.csv"), read_results(tmp_path / "ref" / "results.csv")
    )
    assert (
        json.loads((tmp_path / "out" / "run.json").read_text())["spec"]
        == json.loads((tmp_path / "ref" / "run.json").read_text())["spec"]
    )


def test_a_refused_first_run_into_an_empty_folder_leaves_it_empty(tmp_path):
    """A folder the user made and named as --out: a refusal before the first unit leaves it as it was, so the
    corrected command runs instead of meeting the refused one's run.json ("other settings")."""
    out = tmp_path / "given"
    out.mkdir()
    with pytest.raises(RunError, match="refused"), RunFolder.open(out, command="x", spec={"n": 10**9}):
        raise RunError("refused for its input")
    assert not (out / "run.json").exists() and out.is_dir()
    with RunFolder.open(out, command="x", spec={"n": 10}) as run:
        run.commit_json("unit.json", {"done": True})
    assert json.loads((out / "run.json").read_text())["spec"] == {"n": 10}
