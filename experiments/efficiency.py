"""How close LAST runs to the hardware: ONNX Runtime latency as a share of a GEMM timed in the same round.

    python -m experiments.efficiency --out runs/efficiency
    python -m experiments.efficiency --peers EfficientGCN-B0 --peers-harness ../shared/bench/peers/bench_peers.py \
        --mirror /work/.mirror --out runs/efficiency

On a shared machine the speed of the CPU drifts in phases (here: 9 ms and 14 ms phases of the same model, 2x,
each lasting seconds), so a model timed in one phase against a GEMM peak timed in another gives a share that is
off by up to 2x. This benchmark puts the peak inside the interleaving: every round visits every model in a rotating
order, for each thread count, and times one 1024^3 fp32 ORT MatMul call, the model at batch 1 (--per-round calls)
and at batch --batch (one call), and one more MatMul call. The model's GFLOP/s over the mean GFLOP/s of the two
MatMul calls around it is the "paired share"; batch 1 over batch N per-clip time is the "batching gain". The report
gives medians with the 10-90 % range of rounds, beside the share from whole-run medians (what an unpaired
measurement reports).

The batching gain is bounded by the batch-1 share: a batch cannot run faster than the GEMM peak, so
gain <= b16 share / b1 share <= 1 / b1 share. A model already at 70 % of the peak at batch 1 can gain 1.43x at
most.

Peers (optional) come from the peer latency harness (../shared/bench/peers, its README): it rebuilds the peers'
official model code from git snapshots (--mirror) and this benchmark times them in the same rounds; the report then
gives every model's batch-1 speed-up over the first peer. FLOPs: torch.utils.flop_counter (a multiply-add is 2),
as the harness counts them. ONNX: TorchScript exporter, opset 17, onnxsim, static batch, ORT_ENABLE_ALL, denormals
as zero: the harness's settings.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from benchmarks.report import pyplot
from benchmarks.run import machine_info
from converters.onnx import DEFAULT_OPSET, simplify
from core.cli import ArgumentParser, BadInput, run_cli
from core.markdown import table_head
from core.models.last import create_model, list_variants
from core.models.profile import count_gflops

PROG = "python -m experiments.efficiency"
GEMM_N = 1024


def ort_session(path: Path | bytes, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), so,
                                providers=["CPUExecutionProvider"])


def gemm_model(n: int = GEMM_N) -> bytes:
    """An n x n x n fp32 MatMul with B as an initializer (like model weights)."""
    from onnx import TensorProto, helper, numpy_helper
    b = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32), "B")
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["Y"])], "gemm",
                              [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])], [b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", DEFAULT_OPSET)]).SerializeToString()


def export_static(model: torch.nn.Module, x: torch.Tensor, path: Path) -> int:
    """ONNX at this input's static shape, simplified; returns the node count."""
    import onnx
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=DEFAULT_OPSET, input_names=["x"],
                          output_names=["logits"], do_constant_folding=True)
    simplify(path)
    return len(onnx.load(str(path)).graph.node)


def load_harness(path: Path):
    spec = importlib.util.spec_from_file_location("bench_peers", path)
    if spec is None or spec.loader is None:
        raise BadInput(f"--peers-harness {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_peers(names: list[str], harness: Path, peers_dir: Path, mirror: Path
                ) -> dict[str, tuple[torch.nn.Module, Callable[[int], torch.Tensor]]]:
    """The peers' official models (random weights) and their input makers, through the harness."""
    if not harness.is_file():
        raise BadInput(f"--peers-harness {harness}: no such file (it is ../shared/bench/peers/bench_peers.py)")
    hp = load_harness(harness)
    unknown = [n for n in names if n not in hp.PEER_MODELS]
    if unknown:
        raise BadInput(f"--peers: unknown peer(s) {unknown}; the harness knows {', '.join(hp.PEER_MODELS)}")
    if not (peers_dir / "MANIFEST.json").exists():
        hp.rebuild_peers(peers_dir, mirror)
    built = hp.build_models(Path(__file__).resolve().parents[1], peers_dir, set(names))
    return {n: (built[n]["model"].eval(), built[n]["make_input"]) for n in names}


def last_input(n: int, frames: int, joints: int) -> torch.Tensor:
    return torch.randn(n, 3, frames, joints, 1, generator=torch.Generator().manual_seed(0))


def prepare(variants: list[str], peers: dict, frames: int, batch: int, work: Path, threads: list[int]
            ) -> dict[str, dict[str, Any]]:
    """FLOPs, static batch-1 / batch-N exports and ORT sessions for every model."""
    models: dict[str, dict[str, Any]] = {}
    specs = [(n, *peers[n], "peer") for n in peers]
    for v in variants:
        m = create_model(v, layout="ntu25", num_classes=60).eval()
        specs.append((v, m, lambda n, m=m: last_input(n, frames, m.num_joints), "LAST"))
    for name, model, make_input, family in specs:
        x1, xb = make_input(1).contiguous(), make_input(batch).contiguous()
        with torch.no_grad():
            flops = count_gflops(model, x1) * 1e9
        nodes = export_static(model, x1, work / f"{name}.b1.onnx")
        export_static(model, xb, work / f"{name}.b{batch}.onnx")
        models[name] = {"family": family, "flops": flops, "onnx_nodes": nodes,
                        "feeds": ({"x": x1.numpy()}, {"x": xb.numpy()}),
                        "sessions": {t: (ort_session(work / f"{name}.b1.onnx", t),
                                         ort_session(work / f"{name}.b{batch}.onnx", t)) for t in threads}}
        print(f"  {name}: {flops / 1e9:.3f} GFLOPs, {nodes} ONNX nodes", file=sys.stderr, flush=True)
    return models


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_rounds(models: dict[str, dict[str, Any]], threads: list[int], rounds: int, per_round: int, batch: int,
               warmup: int = 3) -> dict[str, Any]:
    """Per round, thread count and model, in a rotating order: one GEMM call, the model's batch-1 calls and one
    batch-N call, one more GEMM call. Records the GEMM GFLOP/s of the two calls around the model (their mean),
    its batch-1 median and its batch-N per-clip time (s)."""
    gemm = {t: ort_session(gemm_model(), t) for t in threads}
    a = np.random.default_rng(1).standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    names = list(models)
    for t in threads:
        for _ in range(warmup):
            gemm[t].run(None, {"A": a})
            for m in models.values():
                s1, sb = m["sessions"][t]
                s1.run(None, m["feeds"][0])
                sb.run(None, m["feeds"][1])
    raw: dict[str, Any] = {str(t): {k: {n: [] for n in names} for k in ("gemm_gflops", "b1_s", "batch_s")}
                           for t in threads}

    def gemm_gflops(t: int) -> float:
        return 2 * GEMM_N ** 3 / timed(lambda: gemm[t].run(None, {"A": a})) / 1e9

    for r in range(rounds):
        for t in threads:
            rec = raw[str(t)]
            for name in names[r % len(names):] + names[:r % len(names)]:
                s1, sb = models[name]["sessions"][t]
                f1, fb = models[name]["feeds"]
                before = gemm_gflops(t)
                rec["b1_s"][name].append(float(np.median([timed(lambda: s1.run(None, f1))
                                                          for _ in range(per_round)])))
                rec["batch_s"][name].append(timed(lambda: sb.run(None, fb)) / batch)
                rec["gemm_gflops"][name].append((before + gemm_gflops(t)) / 2)
        print(f"  round {r + 1}/{rounds}", file=sys.stderr, flush=True)
    return raw


def batch_sweep(variants: list[str], batches: list[int], frames: int, threads: int, rounds: int, work: Path
                ) -> dict[str, Any]:
    """Per-clip time of each variant at each batch size (one static export per size), interleaved: every round
    visits every (variant, batch) in a rotating order with about max(batches) clips per visit; the gain is each
    round's batch-1 time over that batch's, per clip."""
    largest = max(batches)
    runs = {}
    for v in variants:
        m = create_model(v, layout="ntu25", num_classes=60).eval()
        for b in batches:
            path = work / f"{v}.b{b}.onnx"
            export_static(m, last_input(b, frames, m.num_joints), path)
            runs[(v, b)] = (ort_session(path, threads), {"x": last_input(b, frames, m.num_joints).numpy()},
                            max(1, largest // b))
    for s, feed, _ in runs.values():
        s.run(None, feed)
    per_clip: dict[tuple[str, int], list[float]] = {k: [] for k in runs}
    keys = list(runs)
    for r in range(rounds):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            s, feed, calls = runs[key]
            per_clip[key].append(timed(lambda: [s.run(None, feed) for _ in range(calls)]) / (calls * key[1]))
        print(f"  round {r + 1}/{rounds}", file=sys.stderr, flush=True)
    out: dict[str, Any] = {}
    for v in variants:
        base = np.array(per_clip[(v, batches[0])])
        out[v] = {str(b): {"ms_per_clip": float(np.median(per_clip[(v, b)]) * 1e3),
                           "gain": spread(base / np.array(per_clip[(v, b)]))} for b in batches}
    return out


def sweep_markdown(res: dict[str, Any]) -> str:
    s = res["settings"]
    batches = s["sweep"]
    lines = [f"# Per-clip time against the batch size ({res['date']})", "",
             f"ONNX Runtime {res['ort']}, {res['cpu']}; {s['threads']} thread(s), input (N, 3, {s['frames']}, 25, 1), "
             f"{s['rounds']} rounds; ms per clip (median), in brackets the per-round speed-up over batch "
             f"{batches[0]}.", "", *table_head(["model"] + [f"batch {b}" for b in batches])]
    for v, row in res["sweep"].items():
        cells = [f"{row[str(b)]['ms_per_clip']:.2f} ({row[str(b)]['gain']['median']:.2f}×)" for b in batches]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def spread(values: np.ndarray) -> dict[str, float]:
    return {"median": float(np.median(values)), "p10": float(np.percentile(values, 10)),
            "p90": float(np.percentile(values, 90))}


def summarize(models: dict[str, dict[str, Any]], raw: dict[str, Any], reference: str | None) -> dict[str, Any]:
    """Per thread count and model: paired shares, whole-run share, batching gain and its bound."""
    out: dict[str, Any] = {}
    for t, rec in raw.items():
        all_peaks = np.concatenate([np.array(v) for v in rec["gemm_gflops"].values()])
        rows = {}
        for name, m in models.items():
            peak = np.array(rec["gemm_gflops"][name])
            b1, bn = np.array(rec["b1_s"][name]), np.array(rec["batch_s"][name])
            gflops = m["flops"] / 1e9
            row = {"family": m["family"], "gflops": gflops, "onnx_nodes": m["onnx_nodes"],
                   "b1_ms": spread(b1 * 1e3), "batch_ms_per_clip": spread(bn * 1e3),
                   "b1_share_paired": spread(gflops / b1 / peak),
                   "batch_share_paired": spread(gflops / bn / peak),
                   "b1_share_whole_run": float(gflops / np.median(b1) / np.median(all_peaks)),
                   "batch_gain": spread(b1 / bn)}
            row["gain_bound"] = 1.0 / row["b1_share_paired"]["median"]
            if reference:
                row["speedup_vs_reference"] = spread(np.array(rec["b1_s"][reference]) / b1)
            rows[name] = row
        out[t] = {"gemm_gflops": spread(all_peaks), "models": rows}
    return out


def pct(d: dict[str, float]) -> str:
    return f"{100 * d['median']:.0f}% [{100 * d['p10']:.0f}–{100 * d['p90']:.0f}]"


def ratio(d: dict[str, float]) -> str:
    return f"{d['median']:.2f}× [{d['p10']:.2f}–{d['p90']:.2f}]"


def markdown(res: dict[str, Any]) -> str:
    s = res["settings"]
    ref = res["reference"]
    lines = [f"# LAST efficiency: share of the in-round GEMM peak ({res['date']})", "",
             f"ONNX Runtime {res['ort']}, {res['cpu']}; input (N, 3, {s['frames']}, 25, 1); {s['rounds']} rounds, "
             f"each visits every model (order rotating): a {GEMM_N}³ fp32 MatMul call, the model at batch 1 "
             f"({s['per_round']} calls) and batch {s['batch']} (1 call), another MatMul call. "
             "Median [10–90 % of rounds].", ""]
    for t, block in res["threads"].items():
        g = block["gemm_gflops"]
        lines += [f"## {t} thread(s): GEMM {g['median']:.1f} GFLOP/s [{g['p10']:.1f}–{g['p90']:.1f}]", ""]
        cols = ["model", "GFLOPs", "batch-1 ms"] + ([f"vs {ref}"] if ref else []) + [
            "batch-1 % of peak, paired", "whole-run medians", f"batch-{s['batch']} ms/clip",
            f"batch-{s['batch']} % of peak", "batching gain", "gain bound (1 / b1 share)"]
        lines += table_head(cols)
        for name, r in block["models"].items():
            cells = [name, f"{r['gflops']:.3f}", f"{r['b1_ms']['median']:.2f}"]
            if ref:
                cells.append(ratio(r["speedup_vs_reference"]))
            cells += [pct(r["b1_share_paired"]), f"{100 * r['b1_share_whole_run']:.0f}%",
                      f"{r['batch_ms_per_clip']['median']:.2f}", pct(r["batch_share_paired"]),
                      ratio(r["batch_gain"]), f"{r['gain_bound']:.2f}×"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Paired: the model's GFLOP/s over the GFLOP/s of the MatMul calls just before and after it. "
              "Whole-run medians: the median model time against the median GEMM, which mixes the machine's fast "
              "and slow phases. "
              "The batching gain cannot exceed the bound unless the batch runs above the GEMM peak.", ""]
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    blocks = res["threads"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    names = list(next(iter(blocks.values()))["models"])
    x = np.arange(len(names))
    width = 0.8 / len(blocks)
    for i, (t, block) in enumerate(blocks.items()):
        for ax, key, scale in ((axes[0], "b1_share_paired", 100), (axes[1], "batch_gain", 1)):
            med = [block["models"][n][key]["median"] * scale for n in names]
            lo = [med[j] - block["models"][n][key]["p10"] * scale for j, n in enumerate(names)]
            hi = [block["models"][n][key]["p90"] * scale - med[j] for j, n in enumerate(names)]
            ax.bar(x + (i - (len(blocks) - 1) / 2) * width, med, width, yerr=[lo, hi], capsize=3,
                   label=f"{t} thread(s)")
        axes[1].scatter(x + (i - (len(blocks) - 1) / 2) * width, [block["models"][n]["gain_bound"] for n in names],
                        marker="_", s=200, color="k", zorder=3, label="bound 1 / b1 share" if i == 0 else None)
    axes[0].set_title("batch 1: % of the GEMM peak timed around it", fontsize=10)
    axes[1].set_title(f"batch {res['settings']['batch']} per-clip speed-up over batch 1", fontsize=10)
    axes[1].axhline(1.0, color="k", lw=0.8)
    for ax in axes:
        ax.set_xticks(x, [n.replace("last_", "") for n in names], rotation=30)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=",".join(list_variants()), help="LAST variants (default: all)")
    p.add_argument("--peers", default="", help="peer models from the harness, e.g. EfficientGCN-B0 (the first "
                                               "is the reference of the speed-up column)")
    p.add_argument("--peers-harness", type=Path, default=Path("../shared/bench/peers/bench_peers.py"))
    p.add_argument("--peers-dir", type=Path, default=Path("/tmp/peers"), help="where the harness extracts peers")
    p.add_argument("--mirror", type=Path, default=Path("mirror"), help="git snapshots of the peers' repositories")
    p.add_argument("--threads", default="1,2", help="ORT intra-op thread counts (default 1,2)")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--per-round", type=int, default=5)
    p.add_argument("--batch", type=int, default=16, help="the batched size (default 16)")
    p.add_argument("--frames", type=int, default=64, help="T of the LAST inputs (default 64, the harness's)")
    p.add_argument("--sweep", default="", help="instead: per-clip time of the variants at these batch sizes, "
                                               "e.g. 1,2,4,8,16,32 (first thread count; sweep.md / sweep.json)")
    p.add_argument("--out", type=Path, default=Path("runs/efficiency"), help="report folder")
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in list_variants():
            p.error(f"--variants: unknown LAST variant {v!r}; known: {', '.join(list_variants())}")
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        p.error(f"--threads needs comma-separated integers, got {args.threads!r}")
    if not threads or min(threads) < 1:
        p.error("--threads must be >= 1")
    if args.rounds < 2 or args.per_round < 1 or args.batch < 2 or args.frames < 8:
        p.error("--rounds >= 2, --per-round >= 1, --batch >= 2 and --frames >= 8 are needed")
    try:
        sweep = [int(b) for b in args.sweep.split(",") if b.strip()]
    except ValueError:
        p.error(f"--sweep needs comma-separated batch sizes, got {args.sweep!r}")
    if sweep and (min(sweep) < 1 or not variants or args.peers):
        p.error("--sweep needs batch sizes >= 1 and LAST --variants (no --peers)")
    peer_names = [n.strip() for n in args.peers.split(",") if n.strip()]
    if not variants and not peer_names:
        p.error("nothing to time: give --variants or --peers")
    if peer_names and args.frames != 64:
        p.error("--frames: the peers are built with the harness's T=64; keep --frames 64 with --peers")
    import onnxruntime as ort
    torch.set_flush_denormal(True)
    work = args.out / "onnx"
    work.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "ort": ort.__version__,
                           "cpu": f"{machine['cpu']}, {machine['cores']} cores"}
    print("building and exporting", file=sys.stderr, flush=True)
    if sweep:
        res["settings"] = {"rounds": args.rounds, "frames": args.frames, "threads": threads[0], "sweep": sweep}
        res["sweep"] = batch_sweep(variants, sweep, args.frames, threads[0], args.rounds, work)
        (args.out / "sweep.json").write_text(json.dumps(res, indent=1))
        text = sweep_markdown(res)
        (args.out / "sweep.md").write_text(text)
        print(text)
        return 0
    peers = build_peers(peer_names, args.peers_harness, args.peers_dir, args.mirror) if peer_names else {}
    models = prepare(variants, peers, args.frames, args.batch, work, threads)
    print("timing", file=sys.stderr, flush=True)
    raw = run_rounds(models, threads, args.rounds, args.per_round, args.batch)
    res.update(reference=peer_names[0] if peer_names else None,
               settings={"rounds": args.rounds, "per_round": args.per_round, "batch": args.batch,
                         "frames": args.frames, "threads": threads},
               threads=summarize(models, raw, peer_names[0] if peer_names else None), raw=raw)
    (args.out / "efficiency.json").write_text(json.dumps(res, indent=1))
    text = markdown(res)
    (args.out / "efficiency.md").write_text(text)
    plot(res, args.out / "efficiency.png")
    print(text)
    print(f"wrote {args.out / 'efficiency.md'}, .json and .png", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())
