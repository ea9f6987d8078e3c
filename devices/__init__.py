"""Device profiles as data: one YAML file per device (runtime, precision, latency and size budgets)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    runtime: str  # tensorrt | tflite | coreml | onnxruntime
    precision: str  # fp32 | fp16 | int8
    latency_budget_ms: float  # end-to-end classification budget per window
    size_budget_mb: float  # model artifact size budget
    fast_int8: bool = True
    threads: int | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    path = Path(name_or_path)
    if not path.is_file():
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"unknown device profile {name_or_path!r}; known: {', '.join(list_profiles())}")
    data = yaml.safe_load(path.read_text())
    known = set(DeviceProfile.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    return DeviceProfile(**data)
