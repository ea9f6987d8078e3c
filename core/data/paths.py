"""Where data lives by default: ../shared next to the repository (or $LAST_SHARED), caches in
~/.cache/last_edge (or $LAST_CACHE), built data sets under runs/data (or $LAST_DATA)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def shared_root() -> Path:
    shared = os.environ.get("LAST_SHARED")
    return Path(shared) if shared else REPO.parent / "shared"


def cache_dir() -> Path:
    return Path(os.environ.get("LAST_CACHE", Path.home() / ".cache" / "last_edge"))


def data_root() -> Path:
    """Default home of built/imported data sets (git-ignored)."""
    return Path(os.environ.get("LAST_DATA", REPO / "runs" / "data"))
