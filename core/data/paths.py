"""Where data lives, never derived from where the toolkit is installed (an installed toolkit has no checkout):

- real data (NW-UCLA, the MediaPipe recordings, the NTU sample): $LAST_SHARED, else the nearest `shared/` folder
  with a `data/` inside in the current directory or one of its parents (a checkout's `../shared`);
- built and imported data sets: $LAST_DATA, else `runs/data` under the current directory (where every command
  writes its `runs/`);
- caches (the NW-UCLA parse cache, pose models): $LAST_CACHE, else ~/.cache/last_edge.

Every loader also takes its location as an argument (`--root`, `root=`, `path=`), which wins over all of these."""
from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV, DATA_ENV, CACHE_ENV = "LAST_SHARED", "LAST_DATA", "LAST_CACHE"


def shared_root() -> Path:
    """The folder of the real data sets; FileNotFoundError saying how to point at it when there is none."""
    env = os.environ.get(SHARED_ENV)
    if env:
        if not Path(env).is_dir():
            raise FileNotFoundError(f"${SHARED_ENV}={env}: no such folder (the folder with data/nw_ucla, "
                                    "data/mediapipe, ...)")
        return Path(env)
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "shared" / "data").is_dir():
            return folder / "shared"
    raise FileNotFoundError(f"no shared data folder (a shared/ with data/ inside) in {here} or its parents: set "
                            f"{SHARED_ENV}=/path/to/shared, or pass the data set's location (--root / root=...)")


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "last_edge"))


def data_root() -> Path:
    """Default home of built/imported data sets (git-ignored in a checkout): $LAST_DATA, else ./runs/data."""
    return Path(os.environ.get(DATA_ENV, Path("runs") / "data"))


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
