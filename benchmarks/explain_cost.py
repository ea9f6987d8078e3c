"""What explaining one edge decision costs: every attribution of core.explain on one window, timed interleaved
with the classification itself, on the threads the edge loop gives the model (1 by default).

    python -m benchmarks.explain_cost --ckpt runs/nw_ucla/last_nano/best.pt \
        --onnx runs/export/best_fp32.onnx --tflite runs/export/best_fp32_b1.tflite --out runs/explain_cost

Verdict per method: the edge loop classifies every `--stride` frames of a `--fps` stream; an explanation that
takes at most one frame period (33 ms at 30 fps) costs a live camera at most one dropped frame per decision
('fits'), one that takes longer than the whole stride falls behind the decisions ('too slow'); in between, it
drops frames on every decision ('drops frames').
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from benchmarks.report import write_results
from core import explain
from core.cli import ArgumentParser, positive_int, run_cli
from core.evaluation import load_data_split, prepare_test_clips
from core.markdown import table_head
from core.runtime import load_runtime
from core.timing import interleaved

PROG = "python -m benchmarks.explain_cost"


def verdict(ms: float, frame_ms: float, stride: int) -> str:
    if ms <= frame_ms:
        return "fits"
    return "drops frames" if ms <= stride * frame_ms else "too slow"


def candidates(runtimes: dict[str, Any], x: np.ndarray, ig_steps: list[int], threads: int
               ) -> dict[str, Callable[[], object]]:
    """name -> one decision's work as the edge loop does it: the classification itself, then every attribution
    through explain.DecisionExplainer (the gradient methods on the PyTorch model, occlusion on each runtime)."""
    torch_rt = runtimes["pytorch"]
    fns: dict[str, Callable[[], object]] = {}
    for name, rt in runtimes.items():
        fns[f"classify ({name})"] = lambda rt=rt: rt.predict(x)
    explainers = {f"integrated_gradients {steps} step{'s' if steps > 1 else ''} (pytorch)":
                  explain.DecisionExplainer(torch_rt, "integrated_gradients", steps=steps, threads=threads)
                  for steps in ig_steps}
    explainers["gradcam (pytorch)"] = explain.DecisionExplainer(torch_rt, "gradcam", threads=threads)
    if explain.last_attention_module(torch_rt.model) is not None:
        explainers["attention (pytorch)"] = explain.DecisionExplainer(torch_rt, "attention", threads=threads)
    for name, rt in runtimes.items():
        explainers[f"occlusion ({name})"] = explain.DecisionExplainer(_PredictOnly(rt), "occlusion")
    target = int(torch_rt.predict(x)[0].argmax())  # the loop explains the class it decided on
    fns.update({name: (lambda e=e: e(x, target)) for name, e in explainers.items()})
    return fns


class _PredictOnly:
    """A runtime seen as the edge loop sees an exported one: predictions only (so 'auto' would pick occlusion)."""

    def __init__(self, runtime: Any):
        self.name, self.predict, self.input_shape = runtime.name, runtime.predict, runtime.input_shape


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = ArgumentParser(prog=PROG, description="Time every attribution method per edge decision against the "
                       "classification itself (interleaved), and say which fit the live overlay.")
    p.add_argument("--ckpt", required=True, help="the PyTorch checkpoint (.pt): gradient methods need it")
    p.add_argument("--onnx", help="an ONNX export of it: occlusion through onnxruntime")
    p.add_argument("--tflite", help="a LiteRT export of it: occlusion through the LiteRT interpreter")
    p.add_argument("--data", default=None, help="NAME:SPLIT whose first clip is the timed window (default: a "
                   "random window; the cost hardly depends on the values)")
    p.add_argument("--threads", type=positive_int, default=1, help="model threads, as the edge loop's --threads (1)")
    p.add_argument("--ig-steps", default="1,4,16", help="integrated-gradients step counts to time (1,4,16)")
    p.add_argument("--fps", type=float, default=30.0, help="stream rate for the verdict (30)")
    p.add_argument("--stride", type=positive_int, default=4, help="frames between decisions (4, the edge default)")
    p.add_argument("--runs", type=positive_int, default=20, help="timed rounds, every candidate once per round (20)")
    p.add_argument("--out", default=None, help="folder for explain_cost.json and explain_cost.md")
    args = p.parse_args(argv)
    steps = [int(s) for s in args.ig_steps.split(",") if s.strip()]
    torch.set_num_threads(args.threads)
    runtimes = {"pytorch": load_runtime(args.ckpt, threads=args.threads)}
    for kind, path in (("onnxruntime", args.onnx), ("litert", args.tflite)):
        if path:
            runtimes[kind] = load_runtime(path, threads=args.threads)
    spec = runtimes["pytorch"].spec
    model = runtimes["pytorch"].model
    if args.data:
        split = load_data_split(args.data, layout=spec.layout)
        x = prepare_test_clips(split.sample(0), spec, 1)
    else:
        x = np.random.default_rng(0).normal(size=(1, *runtimes["pytorch"].input_shape[1:])).astype(np.float32)
    fns = candidates(runtimes, x, steps, args.threads)
    load_before = os.getloadavg()[0]
    print(f"{args.ckpt} ({model.variant}, T={spec.frames}, V={x.shape[3]}), {args.threads} thread(s), "
          f"{len(fns)} candidates interleaved over {args.runs} rounds")
    stats = interleaved(fns, warmup=3, runs=args.runs)
    load = (load_before + os.getloadavg()[0]) / 2  # other jobs inflate every absolute time; ratios hold
    print(f"machine load average during the run: {load:.1f} on {os.cpu_count()} cores")
    frame_ms = 1000.0 / args.fps
    classify_ms = stats["classify (pytorch)"].p50_ms
    rows = []
    for name, s in stats.items():
        rows.append({"method": name, "p50_ms": s.p50_ms, "p90_ms": s.p90_ms, "x_classify": s.p50_ms / classify_ms,
                     "ms_per_frame": s.p50_ms / args.stride,
                     "verdict": "-" if name.startswith("classify") else verdict(s.p90_ms, frame_ms, args.stride)})
    lines = table_head(["per decision", "p50 ms", "p90 ms", "x classify (pytorch)", "ms per frame (amortised)",
                        f"overlay at {args.fps:g} fps, stride {args.stride}"])
    lines += [f"| {r['method']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['x_classify']:.1f} | "
              f"{r['ms_per_frame']:.1f} | {r['verdict']} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    result = {"checkpoint": args.ckpt, "variant": model.variant, "frames": spec.frames, "joints": int(x.shape[3]),
              "threads": args.threads, "fps": args.fps, "stride": args.stride, "runs": args.runs,
              "load_average": load, "cpu_count": os.cpu_count(),
              "command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]), "rows": rows}
    if args.out:
        write_results(Path(args.out), "explain_cost", result, table)
    for rt in runtimes.values():
        rt.close()
    return result


if __name__ == "__main__":
    sys.exit(run_cli(main, PROG))
