"""The one run folder: every command that writes results writes them through ``RunFolder``.

    with RunFolder.open("runs/probes", command="run", spec=spec.record(), models=models) as run:
        for key in units:
            if not run.done(unit_file(key)):
                run.commit_frame(unit_file(key), compute(key))   # the unit's rows and its done mark, in one rename
        run.write_frame("results.csv", run.collect(units))

What a folder guarantees, whatever happens to the process:

* **One writer.** ``open`` takes an exclusive lock (``filelock``) on ``.lock``; a second writer gets one
  line naming the folder and the holder's pid and command.
* **One configuration.** ``run.json`` (command, spec, seed, package versions, model hashes) is written
  once, atomically, and only after the check that the folder holds nothing or a run of the same
  command, spec and weights; a mismatch is refused before anything is written.
* **Whole units.** A unit is one file (or folder) whose existence is its done mark, written under a
  temporary name and renamed (``probes.core.files``), so a kill at any instant leaves the unit or
  nothing. Tables derived from units (``results.csv``) are rewritten from them, never appended to.
  A unit whose values are NaN is an error, not done.
* **Nothing left behind.** Temporary files of killed writes are swept when the lock is taken; a run
  refused before committing anything removes the folder it created (or the run.json it wrote into an empty one),
  so the corrected command starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from analysis.errors import ProbesError
from analysis.results import read_results, tidy
from probes.core.files import atomic_path, remove_temporaries, write_json, write_text
from probes.core.provenance import environment

FORMAT = 1
LOCK, OWNER, RECORD = ".lock", ".lock.owner", "run.json"


class RunError(ProbesError):
    """A run folder that cannot be used as asked (in use, other settings, not writable)."""


class UnitError(ProbesError):
    """A unit whose results cannot be kept (NaN values)."""


def _canonical(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def unit_file(key: str, suffix: str = ".csv", folder: str = "units") -> str:
    """A unit's file name, keyed by its content: a readable slug of ``key`` and a hash of all of it."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")[:60]
    return f"{folder}/{slug}-{hashlib.sha256(key.encode()).hexdigest()[:10]}{suffix}"


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Where two records differ, as 'key: old -> new' (first few)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if old != new:
        return [
            f"{prefix.rstrip('.')}: {json.dumps(old, default=str)[:40]} there, {json.dumps(new, default=str)[:40]} here"
        ]
    return []


def _check_target(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {path} is a file, not a folder: pass a folder name (it is created)")
    parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"cannot write to {parent}: permission denied (read-only?); pass an --out you can write to")


class RunFolder:
    """An open, locked run folder (see the module's docstring); made by ``RunFolder.open``."""

    def __init__(self, path: Path, record: dict[str, Any]):
        self.path = path
        self.record = record
        self.committed = 0  # units committed by this process

    @classmethod
    @contextmanager
    def open(
        cls,
        path: str | os.PathLike,
        *,
        command: str,
        spec: Mapping[str, Any],
        seed: int | None = None,
        models: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Iterator[RunFolder]:
        """Lock ``path`` (created if missing), check its ``run.json`` against this run, write it if new.

        ``spec`` and ``models`` (name -> weights hash, source, revision) must equal a resumed run's; ``details``
        are recorded beside them (where the inputs were found) and not compared.
        """
        path = Path(path)
        _check_target(path)
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunError(f"cannot create {path}: {err.strerror}; pass an --out you can write to") from None
        lock = FileLock(path / LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunError(
                f"{path} is being written by another probes process ({_owner(path)}); wait for it to "
                "finish, or use another --out"
            ) from None
        run = None
        recorded_here = False  # this attempt wrote run.json into a folder that existed
        try:
            _write_owner(path, command)
            remove_temporaries(path, owned_by=LOCK)  # what killed writes left here; the lock is ours
            record = {
                "format": FORMAT,
                "command": command,
                "spec": _canonical(dict(spec)),
                "seed": seed,
                "models": _canonical(dict(models or {})),
                "details": _canonical(dict(details or {})),
                "environment": environment(),
            }
            existing = path / RECORD
            if existing.exists():
                record = _check_same_run(path, record)
            elif any(p.name not in (LOCK, OWNER) for p in path.iterdir()):
                raise RunError(
                    f"{path} is not empty and holds no run.json, so it is not a run folder of this "
                    "toolkit (or one from an older version); use another --out"
                )
            else:
                write_json(existing, record)
                recorded_here = True
            run = cls(path, record)
            yield run
        except ProbesError:
            if run is None or run.committed == 0:  # a first attempt refused for its input leaves nothing
                if created:
                    shutil.rmtree(path, ignore_errors=True)
                elif recorded_here:  # an empty folder given as --out: empty again, so a corrected run may start
                    (path / RECORD).unlink(missing_ok=True)
            raise
        finally:
            if path.exists():
                (path / OWNER).unlink(missing_ok=True)
            lock.release()  # the .lock file stays: removing it would let two writers lock two different files

    # --- units ------------------------------------------------------------------------------------------

    def file(self, name: str) -> Path:
        return self.path / name

    def done(self, name: str) -> bool:
        return (self.path / name).exists()

    def _target(self, name: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def commit_frame(
        self, name: str, frame: pd.DataFrame, *, index: bool = False, may_be_nan: tuple[str, ...] = ()
    ) -> pd.DataFrame:
        """Keep a unit's table; a NaN ``value`` (tidy rows) is refused unless its metric is in ``may_be_nan``."""
        if "value" in frame.columns and "metric" in frame.columns:
            values = pd.to_numeric(frame["value"], errors="coerce")
            bad = frame[values.isna() & ~frame["metric"].isin(may_be_nan)]
            if len(bad):
                row = bad.iloc[0]
                where = f" at layer {row['layer']}" if "layer" in row and pd.notna(row["layer"]) else ""
                raise UnitError(
                    f"{name}: the unit produced NaN for {row['metric']}{where} (too few examples to "
                    "measure it?); nothing was marked done: give more data and run again"
                )
        self.write_frame(name, frame, index=index)
        self.committed += 1
        return frame

    def commit_json(self, name: str, obj: Any) -> Any:
        write_json(self._target(name), obj)
        self.committed += 1
        return obj

    def commit_dir(self, name: str, fill: Callable[[Path], None]) -> Path:
        """A unit that is a folder (a trained model): ``fill`` writes into a temporary folder that is then renamed."""
        target = self._target(name)
        with atomic_path(target, directory=True) as tmp:
            fill(tmp)
        self.committed += 1
        return target

    def commit_arrays(self, name: str, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        """Keep a unit that is arrays (per-example estimates), as ``.npz``."""
        self.write_npz(name, **arrays)
        self.committed += 1
        return arrays

    def read_arrays(self, name: str) -> dict[str, np.ndarray]:
        with np.load(self.path / name, allow_pickle=False) as kept:
            return dict(kept)

    def read_frame(self, name: str, *, index: bool = False) -> pd.DataFrame:
        return pd.read_csv(self.path / name, index_col=0 if index else None)

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def frame(
        self, name: str, compute: Callable[[], pd.DataFrame], *, index: bool = False, may_be_nan: tuple[str, ...] = ()
    ) -> pd.DataFrame:
        """The unit ``name``: read if done, else computed and committed."""
        if self.done(name):
            return self.read_frame(name, index=index)
        return self.commit_frame(name, compute(), index=index, may_be_nan=may_be_nan)

    def json(self, name: str, compute: Callable[[], Any]) -> Any:
        if self.done(name):
            return self.read_json(name)
        return self.commit_json(name, compute())

    # --- derived files ----------------------------------------------------------------------------------

    def collect(self, names: list[str]) -> pd.DataFrame:
        """The tidy rows of finished units, in the given order."""
        frames = [read_results(self.path / n) for n in names if self.done(n)]
        return (
            tidy(pd.concat(frames, ignore_index=True))
            if frames
            else tidy(pd.DataFrame(columns=["model", "metric", "value"]))
        )

    @contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """A temporary path to write the file ``name`` to; it replaces ``name`` when the block ends without error."""
        with atomic_path(self._target(name)) as tmp:
            yield tmp

    def write_frame(self, name: str, frame: pd.DataFrame, *, index: bool = False) -> Path:
        with self.writing(name) as tmp:
            frame.to_csv(tmp, index=index)
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        return write_text(self._target(name), text)

    def write_npz(self, name: str, **arrays: np.ndarray) -> Path:
        with self.writing(name) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds too narrowly
        return self.path / name


def _write_owner(path: Path, command: str) -> None:
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (path / OWNER).write_text(json.dumps(owner))


def _owner(path: Path) -> str:
    try:
        owner = json.loads((path / OWNER).read_text())
        return f"pid {owner['pid']} on {owner['host']}, `probes {owner['command']}` since {owner['since']}"
    except (OSError, ValueError, KeyError):
        return "pid unknown"


def _check_same_run(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The folder's run.json, if it records the same command, spec and weights as ``record``; else a refusal."""
    try:
        old = json.loads((path / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RunError(f"{path / RECORD} cannot be read ({err}); use another --out") from None
    if old.get("format") != FORMAT:
        raise RunError(f"{path} was written by an older version of this toolkit; use another --out")
    mine = {k: record[k] for k in ("command", "spec", "models")}
    theirs = {k: old.get(k) for k in ("command", "spec", "models")}
    if mine != theirs:
        diff = _differences(theirs, mine)
        what = f"`probes {old.get('command')}`" + (
            " with other settings" if old.get("command") == record["command"] else ""
        )
        raise RunError(
            f"{path} holds a {what} ({'; '.join(diff[:3])}); nothing was changed: use another --out, "
            "or delete the folder to start over"
        )
    return old
