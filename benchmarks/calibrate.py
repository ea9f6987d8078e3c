"""Fit a profile's estimate constants from one measured run on that device.

    python -m benchmarks.calibrate runs/bench/x86_cpu/result.json                # prints the fitted `estimate:` block
    python -m benchmarks.calibrate result.json --format onnx --precision fp32 --write devices/my_board.yaml
    python -m benchmarks.calibrate run1/result.json run2/result.json     # several runs on the same device

The measured batch-1 p50 latencies of every checkpoint in the run(s) (and with --batch-points their batch-N
throughput) are fitted, by non-negative least
squares, to the compute-bound form of the estimate

    t = F / (P * eta_c) + L * o_layer + o_fixed        (unknowns 1/eta_c, o_layer, o_fixed)

with F the model's FLOPs, P the profile's peak for the precision and L its ONNX operator count
(benchmarks.estimate); with only two points, o_layer keeps the profile's value and the other two are fitted. The memory term keeps the profile's bandwidth efficiency. The fit, its residuals and
the leave-one-out error are printed so a person can judge whether three constants describe the device.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.estimate import GraphCost, estimate_latency
from core.cli import ArgumentParser, BadInput, run_cli
from devices import DEPLOY_FORMATS, load_profile, profile_from_dict

PROG = "python -m benchmarks.calibrate"


class CalibrationError(BadInput):
    """Too few or unusable measurements in a result file."""


def fit_constants(points: list[tuple[GraphCost, float]], peak_gflops: float,
                  layer_overhead_us: float | None = None) -> dict[str, float]:
    """points: (cost, measured ms). Returns compute_efficiency, layer_overhead_us, fixed_overhead_ms.

    Three or more points fit all three constants; with two, pass layer_overhead_us (kept as given) and the other
    two are fitted."""
    from scipy.optimize import nnls
    need = 3 if layer_overhead_us is None else 2
    if len(points) < need:
        raise CalibrationError(f"need at least {need} measured points (models x batch sizes) to fit {need} constants, "
                               f"got {len(points)}")
    y = np.array([ms for _, ms in points])
    if layer_overhead_us is None:
        a = np.array([[c.flops / (peak_gflops * 1e9) * 1e3, c.layers / 1e3, 1.0] for c, _ in points])
        (inv_eff, layer_us, fixed_ms), _ = nnls(a, y)
    else:
        layer_us = float(layer_overhead_us)
        a = np.array([[c.flops / (peak_gflops * 1e9) * 1e3, 1.0] for c, _ in points])
        (inv_eff, fixed_ms), _ = nnls(a, y - np.array([c.layers * layer_us / 1e3 for c, _ in points]))
    eff = 1.0 / inv_eff if inv_eff > 0 else 1.0  # no compute term fitted: compute is free at this size
    return {"compute_efficiency": float(min(1.0, eff)), "layer_overhead_us": float(layer_us),
            "fixed_overhead_ms": float(fixed_ms)}


def points_from_result(result: dict[str, Any], fmt: str, precision: str, batch_points: bool = False
                       ) -> list[tuple[str, GraphCost, float]]:
    """(label, cost, measured p50 ms) per measured row at batch 1, and with batch_points batch N from the throughput
    column (N times the FLOPs and activations, the same operators). Batch points separate the per-FLOP from the
    per-operator cost, but a CPU is more efficient per FLOP at batch N, so they bias a batch-1 estimate."""
    out = []
    for r in result["rows"]:
        if r["format"] == fmt and r["precision"] == precision and r.get("latency"):
            c = result["costs"][r["ckpt"]]
            cost = GraphCost(c["flops"], c["weight_bytes"], c["activation_bytes"], c["layers"])
            name = r.get("model") or r["variant"]
            out.append((name, cost, r["latency"]["p50_ms"]))
            n = r.get("throughput_batch")
            if batch_points and n and n > 1 and r.get("throughput_per_s"):
                batched = GraphCost(cost.flops * n, cost.weight_bytes, cost.activation_bytes * n, cost.layers)
                out.append((f"{name} @batch {n}", batched, n / r["throughput_per_s"] * 1e3))
    return out


def calibrate(result: dict[str, Any], fmt: str, precision: str, batch_points: bool = False) -> dict[str, Any]:
    """Fit the constants; three constants from >= 3 points, else two with the profile's per-operator overhead."""
    profile = profile_from_dict(result["profile"], f"{result['profile_name']} (in the result file)")
    peak, _ = profile.peak_gflops(precision)
    pts = points_from_result(result, fmt, precision, batch_points)
    keep = None if len(pts) >= 3 else float(profile.estimate["layer_overhead_us"])
    fitted = fit_constants([(c, ms) for _, c, ms in pts], peak, keep)
    constants = {**profile.estimate, **fitted}
    bw = float(profile.memory["bandwidth_gbs"])
    table = []
    for i, (name, cost, ms) in enumerate(pts):
        est = estimate_latency(cost, peak, bw, constants, precision).latency_ms
        loo = None
        if len(pts) > (3 if keep is None else 2):  # leave-one-out: fit without this point, predict it
            rest = [(c, m) for j, (_, c, m) in enumerate(pts) if j != i]
            loo = estimate_latency(cost, peak, bw, {**profile.estimate, **fit_constants(rest, peak, keep)},
                                   precision).latency_ms
        table.append({"model": name, "measured_p50_ms": ms, "fitted_ms": est, "leave_one_out_ms": loo})
    return {"profile": profile.name, "format": fmt, "precision": precision, "constants": constants, "points": table,
            "fitted": sorted(fitted) if keep is None else ["compute_efficiency", "fixed_overhead_ms"]}


def yaml_block(constants: dict[str, Any], note: str) -> str:
    return ("estimate:\n" + "".join(f"  {k}: {round(v, 4) if isinstance(v, float) else v}\n"
                                    for k, v in constants.items() if k != "calibrated")
            + f"  calibrated: \"{note}\"\n")


def write_into_profile(path: Path, block: str) -> None:
    """Replace the `estimate:` block of a profile YAML (keeping its comments elsewhere), then validate it."""
    lines = path.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("estimate:")), None)
    if start is None:
        new = "".join(lines).rstrip("\n") + "\n" + block
    else:
        end = start + 1
        while end < len(lines) and (lines[end].startswith((" ", "\t", "#")) or not lines[end].strip()):
            end += 1
        new = "".join(lines[:start]) + block + "".join(lines[end:])
    path.write_text(new)
    load_profile(path)


def _main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("result", type=Path, nargs="+", help="result.json of python -m benchmarks.run on the device "
                                                        "(several runs of the same profile are pooled)")
    p.add_argument("--format", default=None, help="format whose measurements to fit (default: the profile's runtime's)")
    p.add_argument("--precision", default=None, help="precision to fit (default: fp32 for onnx, else the profile's)")
    p.add_argument("--write", type=Path, default=None, help="profile YAML whose estimate block to replace")
    p.add_argument("--batch-points", action="store_true",
                   help="also fit the batch-N throughput of each model (more points; biased for batch-1 estimates)")
    args = p.parse_args(argv)
    results = []
    for path in args.result:
        try:
            results.append(json.loads(path.read_text()))
            if results[-1].get("tool") == "benchmarks.run" and not results[-1].get("profile"):
                raise BadInput(f"{path}: a run without --profile; the constants are a device's: run python -m "
                               "benchmarks.run --profile <device> on it")
            results[-1]["profile"]["runtime"]["name"]
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from exc
        except (KeyError, TypeError) as exc:
            raise BadInput(f"{path}: not a benchmarks.run result (no {exc})") from exc
    names = {r["profile_name"] for r in results}
    if len(names) > 1:
        raise BadInput(f"the results are of different profiles {sorted(names)}: calibrate one device at a time")
    result = {**results[0], "rows": [row for r in results for row in r["rows"]],
              "costs": {k: v for r in results for k, v in r["costs"].items()},
              "created": ", ".join(r["created"] for r in results)}
    runtime = result["profile"]["runtime"]["name"]
    fmt = args.format or DEPLOY_FORMATS[runtime]
    precision = args.precision or ("fp32" if fmt == "onnx" else result["profile"]["precision"])
    fit = calibrate(result, fmt, precision, args.batch_points)
    print(f"{fit['profile']}: {fit['format']} {fit['precision']}, {len(fit['points'])} measured points; fitted "
          f"{', '.join(fit['fitted'])}")
    print(f"{'model':<34}{'measured p50':>14}{'fitted':>10}{'leave-one-out':>15}   (ms)")
    for pt in fit["points"]:
        loo = f"{pt['leave_one_out_ms']:.2f}" if pt["leave_one_out_ms"] is not None else "-"
        print(f"{pt['model']:<34}{pt['measured_p50_ms']:>14.2f}{pt['fitted_ms']:>10.2f}{loo:>15}")
    note = (f"yes: {fit['format']} {fit['precision']} p50 at {len(fit['points'])} points (models x batch), "
            f"{result['created']}")
    block = yaml_block(fit["constants"], note)
    print(block)
    if args.write:
        write_into_profile(args.write, block)
        print(f"wrote the estimate block into {args.write}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
