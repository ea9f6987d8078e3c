"""Metadata every exported artifact carries, so a runtime needs nothing but the artifact file.

ONNX embeds it in metadata_props under the key 'last_edge'; every artifact also gets a sidecar
'<artifact>.json' (the only carrier for TensorRT engines). read_artifact_metadata tries both."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.layouts import get_layout

METADATA_KEY = "last_edge"
INPUT_NAME = "skeleton"
OUTPUT_NAME = "logits"


def artifact_metadata(ckpt: dict[str, Any], fmt: str, precision: str, batch: int | None = None,
                      **extra: Any) -> dict[str, Any]:
    """JSON-able description of an artifact built from checkpoint `ckpt`."""
    spec = ckpt["input_spec"]
    cfg = ckpt["model"]["config"]
    v = get_layout(ckpt["layout"]).num_joints
    return {
        "format": fmt,
        "precision": precision,
        "variant": ckpt["model"]["variant"],
        "layout": ckpt["layout"],
        "num_classes": ckpt["num_classes"],
        "class_names": list(ckpt["class_names"]),
        "input_spec": dict(spec),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        # (N, C, T, V, M); N is None for a dynamic batch
        "input_shape": [batch, cfg["in_channels"], spec["frames"], v, spec["persons"]],
        "metrics": dict(ckpt.get("metrics", {})),
        # the "unknown" rule (core.openset) travels with every artifact: the edge loop needs nothing else
        **({"openset": dict(ckpt["openset"])} if ckpt.get("openset") else {}),
        **extra,
    }


def sidecar_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def write_sidecar(artifact: str | Path, meta: dict[str, Any]) -> Path:
    path = sidecar_path(artifact)
    path.write_text(json.dumps(meta, indent=2))
    return path


def read_artifact_metadata(artifact: str | Path) -> dict[str, Any]:
    """Metadata of an artifact: embedded (ONNX) first, then the sidecar JSON."""
    artifact = Path(artifact)
    if artifact.suffix == ".onnx" and artifact.is_file():
        import onnx
        model = onnx.load(str(artifact), load_external_data=False)
        for prop in model.metadata_props:
            if prop.key == METADATA_KEY:
                return json.loads(prop.value)
    side = sidecar_path(artifact)
    if side.is_file():
        return json.loads(side.read_text())
    raise FileNotFoundError(f"{artifact}: no LAST metadata (neither embedded nor a sidecar {side.name}); "
                            "re-export it with python -m converters")
