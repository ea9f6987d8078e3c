"""Checkpoint -> ONNX from the checkpoint alone: export (opset 17, dynamic batch by default), simplify
with onnxsim, check the graph, embed the toolkit metadata, and verify against PyTorch (max abs logit
difference, top-1 agreement) on real inputs (the calibration set when given).

    python -m converters.onnx --ckpt runs/nw_ucla/last_small/best.pt
    python -m converters.onnx --ckpt best.pt --batch 1 --calib runs/calib/best_nw_ucla_train_500.npz
    python -m converters.onnx --ckpt best.pt --precision int8 --calib calib.npz   # = converters.int8
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from converters.common import (ExportResult, InputError, artifact_stem, export_main, input_shape, load_export_model,
                               reraise_if_disk_full, staged_export)
from converters.formats import FORMATS
from converters.verify import judge, verification_inputs, verify_predictor
from core.artifact import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, artifact_metadata, write_sidecar
from core.runtime import load_runtime

log = logging.getLogger("converters.onnx")

DEFAULT_OPSET = 17


def embed_metadata(model_proto, meta: dict[str, Any]) -> None:
    """Put the toolkit metadata into metadata_props['last_edge'] (replacing an older entry)."""
    for prop in list(model_proto.metadata_props):
        if prop.key == METADATA_KEY:
            model_proto.metadata_props.remove(prop)
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    model_proto.producer_name = "last-edge"


def torch_to_onnx(model, ckpt: dict[str, Any], path: Path, batch: int | None, opset: int = DEFAULT_OPSET) -> None:
    """torch.onnx.export (TorchScript exporter: it honours opset 17 and writes one self-contained file;
    the dynamo exporter always writes opset 18 and external data)."""
    import torch

    dummy = torch.zeros(input_shape(ckpt, batch or 2))
    dynamic = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if batch is None else None
    kwargs: dict[str, Any] = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                                  dynamic_axes=dynamic, do_constant_folding=True)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        try:
            torch.onnx.export(model, (dummy,), str(path), dynamo=False, **kwargs)
        except TypeError:  # torch < 2.5 has no dynamo argument
            torch.onnx.export(model, (dummy,), str(path), **kwargs)


def simplify(path: Path) -> tuple[bool, str]:
    """onnxsim in place; (applied, note). A missing onnxsim is a note, not an error."""
    import onnx
    try:
        import onnxsim
    except ImportError:
        return False, "onnxsim not installed (pip install onnxsim); graph left unsimplified"
    model = onnx.load(str(path))
    before = len(model.graph.node)
    try:
        simplified, ok = onnxsim.simplify(model)
    except Exception as exc:  # onnxsim crashes on some graphs; the unsimplified graph is still valid
        return False, f"onnxsim failed ({type(exc).__name__}: {str(exc)[:200]}); graph left unsimplified"
    if not ok:
        return False, "onnxsim could not validate the simplified graph; graph left unsimplified"
    onnx.save(simplified, str(path))
    return True, f"onnxsim: {before} -> {len(simplified.graph.node)} nodes"


def op_counts(path: str | Path) -> dict[str, int]:
    import onnx
    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def opset_of(model) -> int:
    """The default-domain opset an ONNX ModelProto declares."""
    return int(max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0))


def finalize(path: Path, ckpt: dict[str, Any], precision: str, batch: int | None, **extra: Any) -> dict[str, Any]:
    """Check the graph, embed the metadata and write the sidecar; returns the metadata."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    meta = artifact_metadata(ckpt, "onnx", precision, batch=batch,
                             opset=opset_of(model), **extra)
    embed_metadata(model, meta)
    onnx.save(model, str(path))
    write_sidecar(path, meta)
    return meta


def verify(path: Path, model, x: np.ndarray, threads: int | None = None) -> dict[str, Any]:
    """Run the artifact in onnxruntime (through core.runtime) and compare with PyTorch on x."""
    with load_runtime(path, threads=threads) as rt:
        _, _, stats = verify_predictor("onnx", "fp32", rt.predict, model, x)
    return stats


@staged_export("onnx")
def export(ckpt: str | Path, out_dir: str | Path, precision: str = "fp32", calib: str | Path | None = None,
           batch: int | None = None, opset: int = DEFAULT_OPSET, simplify_graph: bool = True,
           verify_samples: int = 32) -> ExportResult:
    """Export a checkpoint to fp32 ONNX (batch None = dynamic, the default here); INT8 is converters.int8."""
    if precision != "fp32":
        raise InputError(f"converters.onnx exports fp32, not {precision!r} (INT8 Q/DQ: python -m converters.int8)")
    model, ck = load_export_model(ckpt)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{artifact_stem(ckpt, precision, batch)}.onnx"
    x, source = verification_inputs(ck, calib, count=verify_samples)
    start = time.perf_counter()
    try:
        torch_to_onnx(model, ck, path, batch, opset)
    except Exception as exc:
        reraise_if_disk_full(exc)
        return ExportResult("onnx", precision, None, "failed", f"torch.onnx.export failed: {type(exc).__name__}: {exc}")
    notes = []
    if simplify_graph:
        _, note = simplify(path)
        notes.append(note)
    try:
        finalize(path, ck, precision, batch, exporter="torch.onnx (TorchScript)", simplified=bool(simplify_graph))
    except Exception as exc:
        reraise_if_disk_full(exc)
        return ExportResult("onnx", precision, path, "failed", f"ONNX check failed: {type(exc).__name__}: {exc}")
    export_seconds = time.perf_counter() - start
    stats = verify(path, model, x)
    good, problems = judge("onnx", precision, stats)
    msg = (f"verified on {stats['samples']} clips ({source}): max |logit diff| {stats['max_abs_diff']:.2e}, "
           f"top-1 agreement {stats['top1_agreement']:.3f}; " + "; ".join(notes))
    if not good:
        msg = f"ONNX output differs from PyTorch ({problems}): " + msg
    return ExportResult("onnx", precision, path, "ok" if good else "failed", msg,
                        extra={**stats, "verify_source": source, "export_seconds": round(export_seconds, 2),
                               "batch": batch, "opset": opset, "nodes": sum(op_counts(path).values())})


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxsim")


def main(argv: list[str] | None = None) -> int:
    return export_main(export, argv, fmt="onnx", precisions=FORMATS["onnx"].precisions, default_batch=None,
                       description=__doc__.split("\n\n")[0], add_args=_add_args,
                       opts_from_args=lambda a: {"opset": a.opset, "simplify_graph": not a.no_simplify})


if __name__ == "__main__":
    sys.exit(main())
