"""Choose the INT8 defaults on validation clips, then score the chosen defaults once on the test split.

    python experiments/int8_defaults.py --ckpts runs/nw_ucla/*/best.pt --out runs/int8_defaults \
        --json docs/results/int8_defaults.json --doc docs/converters.md

1. For every checkpoint, every candidate setting (onnxruntime Q/DQ: activation percentile x placement; LiteRT
   INT8 method) is quantized with the same calibration clips (500 training clips, the validation slice left out)
   and scored on the checkpoint's validation slice. The default is the candidate with the best mean validation
   top-1 over the checkpoints (ties: the higher agreement with fp32). The test split plays no part.
2. The chosen defaults are then scored on the test split against PyTorch fp32 with the paired statistics of
   core.stats: Δ top-1, clips fixed / broken, the exact 95 % interval, and the verdict at ±1 point.
Results go to the JSON (every candidate's validation numbers, the choice, the test rows) and, with --doc, a table
between the `<!-- int8:defaults -->` markers of that page.

3. Held out: `--held-out CKPT...` with the JSON of step 1-2 applies the chosen settings, unchanged, to checkpoints
   that played no part in choosing them, and adds their rows (validation and test) to the JSON and the table:

    python experiments/int8_defaults.py --held-out runs/nw_ucla/last_nano_jvb_s1/best.pt \
        --json docs/results/int8_defaults.json --doc docs/converters.md
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from converters import formats  # noqa: E402
from converters.calib import make_calibration_file, quantization_clips  # noqa: E402
from core.checkpoint import input_spec, load_model  # noqa: E402
from core.evaluation import load_data_split, predict_split, torch_predict_fn  # noqa: E402
from core.markdown import replace_section, table_head  # noqa: E402
from core.runtime import load_runtime  # noqa: E402
from core.stats import paired_difference, verdict  # noqa: E402

ORT_CANDIDATES = [{"quantizer": "ort", "percentile": p, "ort_placement": pl}
                  for p in (99.9, 99.99, 99.999) for pl in ("compute", "all")]
LITERT_METHODS = ("aeq-compute", "full", "pt2e")


def label(fmt: str, opts: dict) -> str:
    return f"{fmt} " + " ".join(f"{k}={v}" for k, v in opts.items() if k != "quantizer" or v != "ort")


def predict(path: Path, split, spec) -> np.ndarray:
    with load_runtime(path, threads=1) as rt:
        return predict_split(rt.predict, split, spec, batch_size=1 if path.suffix == ".tflite" else 32,
                             progress=False)


def options_of(key: str) -> tuple[str, dict]:
    """The format and export options of a candidate label ("int8 percentile=99.9 ort_placement=compute")."""
    fmt, *pairs = key.split()
    opts: dict = {"quantizer": "ort"} if fmt == "int8" else {}
    for pair in pairs:
        k, _, v = pair.partition("=")
        opts[k] = float(v) if k == "percentile" else v
    return fmt, opts


def held_out(args: argparse.Namespace) -> int:
    """Step 3: the chosen settings on checkpoints that played no part in choosing them."""
    results = json.loads(args.json.read_text())
    rows = results.setdefault("held_out_rows", [])
    for ckpt in args.held_out:
        name = ckpt.parent.name
        if name in results["checkpoints"]:
            raise SystemExit(f"{ckpt}: this checkpoint chose the defaults; it cannot be held out")
        model, ck = load_model(ckpt)
        spec = input_spec(ck)
        data = ck["train"]["data"]
        out = args.out / name
        calib = make_calibration_file(ckpt, f"{data}:train", args.calib_num, out / f"calib_{args.calib_num}.npz")
        clips = quantization_clips(calib, ck)
        splits = {s: load_data_split(f"{data}:{s}", layout=ck["layout"], ckpt=ck) for s in ("val", "test")}
        ref = {s: predict_split(torch_predict_fn(model), split, spec, progress=False) for s, split in splits.items()}
        rows[:] = [r for r in rows if r["checkpoint"] != name]
        for fmt, key in results["chosen"].items():
            _, opts = options_of(key)
            print(f"[{name}] held out: {key}", flush=True)
            result = formats.export(fmt, ckpt, out / key.replace(" ", "_").replace("=", "-"), "int8", calib=calib,
                                    batch=None if fmt == "int8" else 1,
                                    **({"clips": clips} if fmt == "int8" else {}), **opts)
            if result.path is None or not Path(result.path).exists():
                rows.append({"checkpoint": name, "format": fmt, "setting": key, "status": result.status})
                continue
            paired = {s: paired_difference(split.labels, ref[s], predict(Path(result.path), split, spec))
                      for s, split in splits.items()}
            rows.append({"checkpoint": name, "format": fmt, "setting": key,
                         "fp32_test_top1": paired["test"].reference_top1,
                         "int8_test_top1": paired["test"].candidate_top1, "val_paired": paired["val"].to_dict(),
                         "test_paired": paired["test"].to_dict(), "verdict_test": verdict(paired["test"], 1.0)})
    results["held_out_command"] = "python experiments/int8_defaults.py " + " ".join(
        str(a) for a in sys.argv[1:])
    publish(results, args.json, args.doc)
    return 0


def publish(results: dict, json_path: Path | None, doc: Path | None) -> None:
    """The JSON, the table printed and, with a page, put between its `<!-- int8:defaults -->` markers."""
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    print(table)
    if doc:
        replace_section(doc, "int8:defaults", table)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python experiments/int8_defaults.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpts", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("runs/int8_defaults"))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--doc", type=Path, default=None)
    p.add_argument("--no-litert", action="store_true", help="onnxruntime candidates only")
    p.add_argument("--litert-methods", default=",".join(LITERT_METHODS), help="LiteRT INT8 methods to compare")
    p.add_argument("--calib-num", type=int, default=500)
    p.add_argument("--reuse", action="store_true",
                   help="take each candidate's validation result from --json when its artifact still exists")
    p.add_argument("--not-default", nargs="+", default=[], metavar="CANDIDATE",
                   help="candidates measured and reported but not eligible as a default, e.g. "
                        "'tflite int8_method=full' (integer-only accelerators; 5-6x slower on a CPU)")
    p.add_argument("--held-out", nargs="+", type=Path, default=None,
                   help="apply the settings chosen in --json to these checkpoints (not used for choosing)")
    args = p.parse_args(argv)
    if args.held_out:
        if args.json is None or not args.json.is_file():
            p.error("--held-out needs --json with the results of a choosing run")
        return held_out(args)
    if not args.ckpts:
        p.error("--ckpts is required (or --held-out)")
    candidates = [("int8", c) for c in ORT_CANDIDATES] + ([] if args.no_litert else [
        ("tflite", {"int8_method": m}) for m in args.litert_methods.split(",") if m])
    results: dict = {"command": "python experiments/int8_defaults.py " + " ".join(sys.argv[1:] if argv is None
                                                                                  else argv),
                     "date": time.strftime("%Y-%m-%d"), "checkpoints": {}}
    previous = json.loads(args.json.read_text()) if args.reuse and args.json and args.json.is_file() else {}
    results["not_default"] = list(args.not_default)
    for ckpt in args.ckpts:
        name = ckpt.parent.name
        model, ck = load_model(ckpt)
        spec = input_spec(ck)
        data = ck["train"]["data"]
        out = args.out / name
        calib = make_calibration_file(ckpt, f"{data}:train", args.calib_num,
                                      out / f"calib_{args.calib_num}.npz")
        clips = quantization_clips(calib, ck)
        val = load_data_split(f"{data}:val", layout=ck["layout"], ckpt=ck)
        test = load_data_split(f"{data}:test", layout=ck["layout"], ckpt=ck)
        assert list(val.names) == clips.verify_names, "validation clips differ from the quantizer's"
        ref = {"val": predict_split(torch_predict_fn(model), val, spec, progress=False),
               "test": predict_split(torch_predict_fn(model), test, spec, progress=False)}
        entry = {"fp32_val_top1": 100 * float((ref["val"].argmax(1) == val.labels).mean()),
                 "fp32_test_top1": 100 * float((ref["test"].argmax(1) == test.labels).mean()),
                 "validation_clips": len(val), "test_clips": len(test), "candidates": {}}
        for fmt, opts in candidates:
            key = label(fmt, opts)
            folder = out / key.replace(" ", "_").replace("=", "-")
            before = previous.get("checkpoints", {}).get(name, {}).get("candidates", {}).get(key, {})
            if "val_top1" in before and Path(before["path"]).exists():
                print(f"[{name}] {key}: validation result reused", flush=True)
                entry["candidates"][key] = {k: v for k, v in before.items() if k != "test_paired"}
                continue
            print(f"[{name}] {key}", flush=True)
            try:
                result = formats.export(fmt, ckpt, folder, "int8", calib=calib, batch=None if fmt == "int8" else 1,
                                        **({"clips": clips} if fmt == "int8" else {}), **opts)
            except Exception as exc:  # a candidate that cannot be built is a row, not the end of the study
                entry["candidates"][key] = {"status": f"failed: {type(exc).__name__}: {str(exc)[:200]}"}
                continue
            if result.path is None or not Path(result.path).exists():
                entry["candidates"][key] = {"status": f"{result.status}: {result.message[:200]}"}
                continue
            logits = predict(Path(result.path), val, spec)
            d = paired_difference(val.labels, ref["val"], logits)
            entry["candidates"][key] = {"status": result.status, "path": str(result.path),
                                        "val_top1": d.candidate_top1, "val_delta": d.delta,
                                        "val_agreement": float((logits.argmax(1) == ref["val"].argmax(1)).mean()),
                                        "val_paired": d.to_dict()}
        results["checkpoints"][name] = entry
        results["checkpoints"][name]["_ref"] = ref  # dropped before saving
        results["checkpoints"][name]["_splits"] = (val, test, spec, ckpt)

    chosen = {}
    for fmt in sorted({f for f, _ in candidates}):
        keys = [label(f, o) for f, o in candidates if f == fmt]
        score = {}
        for key in keys:
            rows = [e["candidates"].get(key, {}) for e in results["checkpoints"].values()]
            if all("val_top1" in r for r in rows):
                score[key] = (float(np.mean([r["val_delta"] for r in rows])),
                              float(np.mean([r["val_agreement"] for r in rows])))
        eligible = {k: v for k, v in score.items() if k not in args.not_default}
        if eligible:
            chosen[fmt] = max(eligible, key=lambda k: eligible[k])
            results.setdefault("validation_ranking", {})[fmt] = sorted(
                ([k, s[0], s[1]] for k, s in score.items()), key=lambda r: (r[1], r[2]), reverse=True)
    results["chosen"] = chosen

    test_rows = []
    for name, entry in results["checkpoints"].items():
        val, test, spec, ckpt = entry.pop("_splits")
        ref = entry.pop("_ref")
        for fmt, key in chosen.items():
            c = entry["candidates"].get(key, {})
            if "path" not in c:
                continue
            logits = predict(Path(c["path"]), test, spec)
            d = paired_difference(test.labels, ref["test"], logits)
            c["test_paired"] = d.to_dict()
            test_rows.append({"checkpoint": name, "format": fmt, "setting": key, "fp32_test_top1": d.reference_top1,
                              "int8_test_top1": d.candidate_top1, "val_delta": c["val_delta"],
                              "val_paired": c["val_paired"], "test_paired": d.to_dict(),
                              "verdict_test": verdict(d, 1.0)})
    results["test_rows"] = test_rows
    publish(results, args.json, args.doc)
    return 0


ROW_COLUMNS = ["checkpoint", "format", "fp32 test top-1", "INT8 test top-1", "Δ test [95 % CI]",
               "fixed / broken (test)", "Δ validation [95 % CI]", "verdict (test)"]


def row_text(r: dict) -> str:
    t, v = r["test_paired"], r["val_paired"]
    return (f"| {r['checkpoint']} | {r['format']} | {r['fp32_test_top1']:.2f} | {r['int8_test_top1']:.2f} | "
            f"{t['delta']:+.2f} [{t['low']:+.2f}, {t['high']:+.2f}] | +{t['fixed']} / -{t['broken']} | "
            f"{v['delta']:+.2f} [{v['low']:+.2f}, {v['high']:+.2f}] | {r['verdict_test']} |")


def markdown(results: dict) -> str:
    lines = [f"Chosen on the validation slices (mean Δ top-1 over {len(results['checkpoints'])} checkpoints): "
             + "; ".join(f"**{fmt}: {key}**" for fmt, key in results["chosen"].items()) + ".", ""]
    for fmt, ranking in results.get("validation_ranking", {}).items():
        lines.append(f"- {fmt} candidates on validation (mean Δ top-1 / agreement): "
                     + ", ".join(f"{k} {d:+.2f} / {a:.3f}" + (" (not eligible as a default)" if k in
                                 results.get("not_default", []) else "") for k, d, a in ranking))
    lines += ["", "Scored once on the test split with the chosen settings (Δ against the checkpoint's own PyTorch "
                  "fp32 on the same clips; interval: exact 95 %; verdict at ±1 point):", ""]
    lines += table_head(ROW_COLUMNS) + [row_text(r) for r in results["test_rows"]]
    held = [r for r in results.get("held_out_rows", []) if "test_paired" in r]
    if held:
        lines += ["", "Held out (checkpoints that played no part in choosing; the chosen settings unchanged):", ""]
        lines += table_head(ROW_COLUMNS) + [row_text(r) for r in held]
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    sys.exit(main())
