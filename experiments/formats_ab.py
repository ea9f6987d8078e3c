"""A/B latency of the same artifacts built two ways (two checkouts, two model codes), timed interleaved.

    python -m experiments.formats_ab --a runs/ab/before --b runs/ab/after --labels before,after --out runs/ab/report

Every artifact name present in both folders (ONNX fp32 / INT8 Q/DQ in onnxruntime, TFLite in LiteRT) is loaded
with one thread and timed at batch 1 round-robin across all of them, the order rotating every round, so machine
drift hits both sides alike; the report gives the median of each side and the B/A speed-up with the 10-90 % range
of the per-round ratios. CoreML programs (.mlpackage) cannot run off macOS: they are compared by their op counts.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.cli import ArgumentParser, BadInput, run_cli
from core.markdown import table_head
from core.mil_eval import MILEvalError, load as load_mil_program
from core.runtime import load_runtime

PROG = "python -m experiments.formats_ab"
TIMED_SUFFIXES = (".onnx", ".tflite")


def paired_artifacts(a: Path, b: Path) -> list[str]:
    """Artifact names (relative paths) found in both folders; fp32 helper files of the INT8 step included."""
    names = []
    for path in sorted(a.rglob("*")):
        rel = path.relative_to(a)
        if path.suffix in TIMED_SUFFIXES + (".mlpackage",) and (b / rel).exists() and ".prep." not in path.name:
            names.append(str(rel))
    return names


def time_interleaved(models: dict[str, Any], rounds: int, per_round: int, warmup: int = 5
                     ) -> dict[str, list[float]]:
    """Per-round medians (ms) of every model, round-robin with a rotating start."""
    inputs = {k: np.random.default_rng(0).standard_normal([1, *m.input_shape[1:]]).astype(np.float32) * 0.3
              for k, m in models.items()}
    for k, m in models.items():
        for _ in range(warmup):
            m.predict(inputs[k])
    keys = list(models)
    medians: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        for k in order:
            times = []
            for _ in range(per_round):
                start = time.perf_counter()
                models[k].predict(inputs[k])
                times.append((time.perf_counter() - start) * 1e3)
            medians[k].append(float(np.median(times)))
        print(f"  round {r + 1}/{rounds}", file=sys.stderr, flush=True)
    return medians


def compare(a: Path, b: Path, labels: tuple[str, str], rounds: int, per_round: int, threads: int
            ) -> dict[str, Any]:
    names = paired_artifacts(a, b)
    if not names:
        raise BadInput(f"--a {a} and --b {b} share no .onnx / .tflite / .mlpackage artifact name")
    models, coreml = {}, []
    for name in names:
        if name.endswith(".mlpackage"):
            try:
                ca, cb = load_mil_program(a / name).op_counts(), load_mil_program(b / name).op_counts()
            except MILEvalError as exc:  # no coremltools, or not an ML Program: say so, time the rest
                coreml.append({"artifact": name, "error": str(exc).splitlines()[0]})
                continue
            coreml.append({"artifact": name, labels[0]: ca, labels[1]: cb})
            continue
        for side, root in zip(labels, (a, b)):
            models[(name, side)] = load_runtime(root / name, threads=threads)
    rows = []
    if models:
        medians = time_interleaved(models, rounds, per_round)
        for name in dict.fromkeys(n for n, _ in models):
            ta, tb = np.array(medians[(name, labels[0])]), np.array(medians[(name, labels[1])])
            ratios = ta / tb
            rows.append({"artifact": name, f"{labels[0]}_ms": float(np.median(ta)),
                         f"{labels[1]}_ms": float(np.median(tb)), "speedup": float(np.median(ratios)),
                         "speedup_p10": float(np.percentile(ratios, 10)),
                         "speedup_p90": float(np.percentile(ratios, 90))})
    return {"a": str(a), "b": str(b), "labels": list(labels), "threads": threads, "rounds": rounds,
            "per_round": per_round, "timed": rows, "coreml_ops": coreml,
            "date": time.strftime("%Y-%m-%d %H:%M")}


def markdown(res: dict[str, Any]) -> str:
    la, lb = res["labels"]
    lines = [f"Interleaved, batch 1, {res['threads']} thread(s), {res['rounds']} rounds x {res['per_round']} calls "
             f"({res['date']}); speed-up = {la} / {lb} per round, median [10-90 %].", "",
             *table_head(["artifact", f"{la} ms", f"{lb} ms", "speed-up"])]
    for r in res["timed"]:
        lines.append(f"| {r['artifact']} | {r[la + '_ms']:.2f} | {r[lb + '_ms']:.2f} | {r['speedup']:.2f}× "
                     f"[{r['speedup_p10']:.2f}–{r['speedup_p90']:.2f}] |")
    if res["coreml_ops"]:
        lines += ["", *table_head(["CoreML program", f"{la} ops", f"{lb} ops", f"{la} transposes",
                                   f"{lb} transposes"])]
        for r in res["coreml_ops"]:
            if "error" in r:
                lines.append(f"| {r['artifact']} | not read: {r['error']} | | | |")
                continue
            ca, cb = r[la], r[lb]
            lines.append(f"| {r['artifact']} | {sum(ca.values())} | {sum(cb.values())} | {ca.get('transpose', 0)} | "
                         f"{cb.get('transpose', 0)} |")
    return "\n".join(lines) + "\n"


def _main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--a", required=True, type=Path, help="folder of artifacts, side A (e.g. before)")
    p.add_argument("--b", required=True, type=Path, help="folder of the same artifacts, side B (e.g. after)")
    p.add_argument("--labels", default="A,B", help="names of the two sides (default A,B)")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--per-round", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/formats_ab"), help="report folder")
    args = p.parse_args(argv)
    labels = tuple(s.strip() for s in args.labels.split(","))
    if len(labels) != 2 or labels[0] == labels[1] or not all(labels):
        p.error(f"--labels needs two different names, got {args.labels!r}")
    for side in (args.a, args.b):
        if not side.is_dir():
            p.error(f"{side}: not a folder")
    if args.rounds < 1 or args.per_round < 1:
        p.error("--rounds and --per-round must be >= 1")
    res = compare(args.a, args.b, labels, args.rounds, args.per_round, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "formats_ab.json").write_text(json.dumps(res, indent=1))
    text = markdown(res)
    (args.out / "formats_ab.md").write_text(text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
