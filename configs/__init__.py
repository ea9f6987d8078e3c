"""The experiment configs (YAML) that ship with the toolkit, so `python -m train.fit --config configs/synthetic.yaml`
works from any directory of an installed toolkit, as it does in a checkout.

A path that exists is used as it is (your own config, or the checkout's); otherwise a relative `configs/<file>`
(or a bare file name, with or without `.yaml`) names the shipped copy. `_base_` files resolve next to the file
that names them, as always."""
from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent


def list_configs() -> list[str]:
    """The shipped configs, as `configs/<file>` (the spelling the docs use)."""
    return sorted(f"configs/{p.name}" for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config(path: str | Path) -> Path:
    """The file a --config argument names: itself when it exists (or is absolute), else the shipped copy of the
    same name when there is one, else itself (the caller's error then names what was asked for)."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    shipped = CONFIG_DIR.joinpath(*parts) if parts else CONFIG_DIR
    if shipped.suffix != ".yaml":
        shipped = shipped.with_name(shipped.name + ".yaml")
    return shipped if shipped.is_file() else path
