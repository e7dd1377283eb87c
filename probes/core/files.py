"""Atomic file writes: a temporary sibling, then a rename, so readers never see half a file.

    with atomic_path(folder / "results.csv") as tmp:
        frame.to_csv(tmp, index=False)        # a crash here leaves the old file (or none)
    write_json(folder / "run.json", record)

Everything this toolkit writes to disk goes through ``atomic_path`` (the activation store, the
model cache, run folders), so there is one place that decides what a kill at any instant leaves
behind: the old file or the new one, never a half. The temporary file is removed when the write
fails and gets the mode an ordinary file would (``mkstemp`` alone makes it 0600).

``fault_point`` marks each instant between two writes. Tests of resumption set
``PROBES_FAULT_AT=k`` to kill the process (``os._exit``, no clean-up, as a real kill) at the k-th
point, or replace ``fault_point`` to raise there; ordinary runs only count.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from analysis.errors import ProbesError

_points = 0  # fault points passed in this process


def fault_point(stage: str, path: Path) -> None:
    """Called after a temporary file is written (``stage="written"``) and after it replaces its target
    (``"committed"``): the instants at which a kill leaves a different state on disk."""
    global _points
    _points += 1
    at = os.environ.get("PROBES_FAULT_AT")
    if at and _points == int(at):
        os._exit(137)  # as SIGKILL would: no finally blocks, no clean-up, temporary files stay


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class DiskFullError(ProbesError, OSError):
    """The disk filled up during a write; the target keeps its old content."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]"
        return str(self.strerror)


@contextmanager
def atomic_path(target: Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (a file, or with ``directory`` a folder to fill); on success
    it replaces ``target``, on error it is removed and ``target`` is left as it was."""
    target = Path(target)
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        os.chmod(tmp, 0o777 & ~_umask())
    else:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_umask())  # as open() would create it, not mkstemp's 0600
    try:
        yield tmp
        fault_point("written", target)
        if directory and target.exists():
            shutil.rmtree(target)  # a folder cannot be replaced in one rename; its unit was not done
        os.replace(tmp, target)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True) if directory else tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                errno.ENOSPC,
                f"disk full writing {target} ({_free(target.parent)} free): free "
                "space or write elsewhere; a re-run resumes where this one stopped",
            ) from None
        raise
    fault_point("committed", target)


def _free(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB"
    except OSError:
        return "no space"


def write_text(target: Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_bytes(target: Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_json(target: Path, obj: Any, indent: int = 1) -> Path:
    return write_text(target, json.dumps(obj, indent=indent, ensure_ascii=False, default=str))


def is_temporary(path: Path) -> bool:
    """A temporary file or folder ``atomic_path`` left behind (its process was killed before the rename)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def remove_temporaries(folder: Path, *, owned_by: str | None = None) -> int:
    """Delete what killed writes left in ``folder`` and below; only safe while holding the folder's lock.

    With ``owned_by`` (a lock file's name), folders below that hold such a lock of their own are left to
    their owner: another process may be writing them.
    """
    removed = 0
    for root, dirs, names in os.walk(folder):
        for name in [n for n in dirs if is_temporary(Path(n))]:
            shutil.rmtree(Path(root) / name, ignore_errors=True)
            removed += 1
        for name in [n for n in names if is_temporary(Path(n))]:
            (Path(root) / name).unlink(missing_ok=True)
            removed += 1
        dirs[:] = [
            d
            for d in dirs
            if not is_temporary(Path(d)) and not (owned_by is not None and (Path(root) / d / owned_by).exists())
        ]
    return removed
