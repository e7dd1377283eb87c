"""What every run records next to its results, so it can be reproduced."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

PACKAGES = (
    "emergence-probes",
    "torch",
    "transformers",
    "safetensors",
    "tokenizers",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "matplotlib",
    "pydantic",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def content_hash(obj: Any) -> str:
    """A stable sha256 (first 16 hex) of JSON-serialisable content."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
