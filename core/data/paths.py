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


def unsafe_path_part(name: str) -> str | None:
    """Why `name` (a label from a CSV or a command line) cannot be one folder or file name inside an output
    folder, or None when it can: a separator, '..' or an absolute path would write outside it."""
    if not name or not name.strip():
        return "is empty"
    if name in (".", ".."):
        return f"{name!r} is not a name"
    bad = [c for c in ("/", "\\", "\0") if c in name]
    if bad:
        return f"contains {bad[0]!r} (one folder name, no path)"
    if os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):  # a drive letter on Windows
        return "is an absolute path"
    return None
