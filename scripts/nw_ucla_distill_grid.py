"""The NW-UCLA proof of train.distill / train.pretrain: scratch vs KD vs MaskCLR+KD for last_nano and last_small
(3 seeds each, one epoch budget for every arm) and the 10%-labels run (scratch vs MaskCLR fine-tune), then a
table (mean +- std of best-epoch and last-epoch top-1, training minutes) and a plot.

    python scripts/nw_ucla_distill_grid.py --teacher runs/nw_ucla/last_base_jvb/best.pt --epochs 12 \
        --workers 2           # runs what is missing, in priority order, then reports
    python scripts/nw_ucla_distill_grid.py --report-only

Every run is a plain `python -m train.{fit,distill,pretrain,teacher}` command (printed as it starts) writing to
--out/<run>; finished runs (summary.json with finished=true) are skipped, so the script can be restarted.
A job whose inputs (teacher file, pretrained encoder) are not there yet waits while later jobs run.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("last_nano", "last_small")


def jobs(args: argparse.Namespace) -> list[dict]:
    out, e, w = Path(args.out), args.epochs, args.warmup
    py = [sys.executable, "-m"]
    common = [f"schedule.epochs={e}", f"schedule.warmup_epochs={w}", "train.test_clips=1", "train.threads=1"]
    teacher_npz = out / "teacher.npz"
    listing: list[dict] = []

    def add(name, cmd, needs=(), kind="run"):
        listing.append({"name": name, "cmd": cmd, "needs": [Path(n) for n in needs], "kind": kind})

    add("teacher", py + ["train.teacher", "--ckpt", args.teacher, "--data", "nw_ucla:train", "--out",
                         str(teacher_npz), "--threads", "1"],
        needs=[args.teacher] + ([args.teacher_done] if args.teacher_done else []), kind="file")
    def pretrain(v):
        add(f"pretrain_{v}", py + ["train.pretrain", "--config", "configs/nw_ucla_pretrain_maskclr.yaml",
                                   f"model.variant={v}", *common, f"name=pretrain_{v}",
                                   f"output_dir={out}/pretrain_{v}"])

    def maskclr_kd(v, seed):
        pre = out / f"pretrain_{v}" / "best.pt"
        add(f"maskclr_kd_{v}_s{seed}", py + ["train.distill", "--config", "configs/nw_ucla_distill.yaml",
                                             f"model.variant={v}", f"train.seed={seed}", *common,
                                             f"distill.teacher_file={teacher_npz}", f"model.init={pre}",
                                             f"name=maskclr_kd_{v}_s{seed}", f"output_dir={out}/maskclr_kd_{v}_s{seed}"],
            needs=[teacher_npz, out / f"pretrain_{v}" / "summary.json"])

    # priority order (the CPU may not run everything): the pretrainings first (every MaskCLR arm waits on them),
    # then last_nano complete (scratch, KD, MaskCLR + KD, 10 % labels), then last_small seed by seed; one
    # pretraining per variant (seed 0) serves every seed's fine-tune
    pretrain("last_nano")
    pretrain("last_small")

    def scratch_kd(v, seed):
        add(f"scratch_{v}_s{seed}", py + ["train.fit", "--config", "configs/nw_ucla_last_small.yaml",
                                          f"model.variant={v}", f"train.seed={seed}", *common,
                                          f"name=scratch_{v}_s{seed}", f"output_dir={out}/scratch_{v}_s{seed}"])
        add(f"kd_{v}_s{seed}", py + ["train.distill", "--config", "configs/nw_ucla_distill.yaml",
                                     f"model.variant={v}", f"train.seed={seed}", *common,
                                     f"distill.teacher_file={teacher_npz}", f"name=kd_{v}_s{seed}",
                                     f"output_dir={out}/kd_{v}_s{seed}"], needs=[teacher_npz])

    scratch_kd("last_small", args.seeds[0])
    for seed in args.seeds:
        scratch_kd("last_nano", seed)
    for seed in args.seeds:
        maskclr_kd("last_nano", seed)
    lv = args.low_label_variant
    low = ["train.fit", "--config", "configs/nw_ucla_low_label.yaml", f"model.variant={lv}",
           f"schedule.epochs={args.low_label_epochs}"]
    for seed in args.seeds:
        add(f"low_scratch_s{seed}", py + low + [f"train.seed={seed}", f"name=low_scratch_s{seed}",
                                                f"output_dir={out}/low_scratch_s{seed}"])
        add(f"low_maskclr_s{seed}", py + low + [f"train.seed={seed}", f"model.init={out / f'pretrain_{lv}' / 'best.pt'}",
                                                f"name=low_maskclr_s{seed}", f"output_dir={out}/low_maskclr_s{seed}"],
            needs=[out / f"pretrain_{lv}" / "summary.json"])
    for seed in args.seeds[1:]:
        scratch_kd("last_small", seed)
    for seed in args.seeds:
        maskclr_kd("last_small", seed)
    # extras, one seed: the weight EMA of a scratch run, and the live teacher with per-stage feature mimicry
    add("ema_scratch_last_nano_s0", py + ["train.fit", "--config", "configs/nw_ucla_last_small.yaml",
                                          "model.variant=last_nano", "train.seed=0", *common,
                                          f"train.ema_decay={args.ema_decay}", "name=ema_scratch_last_nano_s0",
                                          f"output_dir={out}/ema_scratch_last_nano_s0"])
    add("kdlive_feat_last_nano_s0", py + ["train.distill", "--config", "configs/nw_ucla_distill.yaml",
                                          "model.variant=last_nano", "train.seed=0", *common,
                                          "distill.teacher_file=null", f"distill.teacher={args.teacher}",
                                          "distill.feature_weight=0.1", "name=kdlive_feat_last_nano_s0",
                                          f"output_dir={out}/kdlive_feat_last_nano_s0"],
        needs=[args.teacher] + ([args.teacher_done] if args.teacher_done else []))
    return listing


def finished(job: dict, out: Path) -> bool:
    if job["kind"] == "file":
        return (out / "teacher.npz").exists()
    summary = out / job["name"] / "summary.json"
    return summary.exists() and json.loads(summary.read_text()).get("finished", False)


def ready(job: dict) -> bool:
    for need in job["needs"]:
        if not need.exists():
            return False
        if need.name == "summary.json" and not json.loads(need.read_text()).get("finished", False):
            return False
    return True


def run_all(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs(args) if not finished(j, out) and j["name"] not in args.skip + args.ignore
            and (not args.only or any(k in j["name"] for k in args.only))]
    lock = threading.Lock()
    wrap = shlex.split(args.wrap) if args.wrap else []

    def alive(name: str) -> bool:
        """Whether a process started elsewhere (an earlier driver) still trains into out/name."""
        needle = f"output_dir={out}/{name}".encode()
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and needle in (proc / "cmdline").read_bytes():
                    return True
            except OSError:
                continue
        return False

    def worker(k: int) -> None:
        adopted = args.skip[k] if k < len(args.skip) else None
        while adopted and alive(adopted):  # this worker's slot is held by a run an earlier driver started
            time.sleep(15)
        while True:
            with lock:
                if not todo:
                    return
                job = next((j for j in todo if ready(j)), None)
                if job is not None:
                    todo.remove(job)
            if job is None:
                time.sleep(15)
                continue
            cmd = wrap + job["cmd"]
            (out / "logs").mkdir(exist_ok=True)
            print(f"[worker {k}] {time.strftime('%H:%M:%S')} start {job['name']}: {shlex.join(job['cmd'])}",
                  flush=True)
            with open(out / "logs" / f"{job['name']}.log", "w") as log:
                rc = subprocess.call(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            print(f"[worker {k}] {time.strftime('%H:%M:%S')} end {job['name']} rc={rc}", flush=True)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# ---------------------------------------------------------------------------------------------
# report


def load_run(path: Path) -> dict | None:
    s, m = path / "summary.json", path / "metrics.jsonl"
    if not s.exists() or not m.exists():
        return None
    summary = json.loads(s.read_text())
    if not summary.get("finished"):
        return None
    rows = [json.loads(line) for line in m.read_text().splitlines()]
    evaluated = [r for r in rows if r.get("val_top1") is not None]
    return {"best": summary["best_top1"], "best_epoch": summary["best_epoch"], "last": evaluated[-1]["val_top1"],
            "minutes": summary["wall_seconds"] / 60, "epochs": summary["epochs"], "curve": evaluated}


def stat(values: list[float]) -> str:
    if not values:
        return "-"
    a = 100 * np.asarray(values)
    if len(a) == 1:
        return f"{a[0]:.2f} (one seed)"
    return f"{a.mean():.2f} ± {a.std(ddof=1):.2f} ({', '.join(f'{v:.2f}' for v in a)})"


def report(args: argparse.Namespace) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    meta = {}
    if (out / "teacher.npz").exists():
        meta = json.loads(str(np.load(out / "teacher.npz")["meta_json"]))
    arms = [(f"{a}_{v}", v, a) for v in VARIANTS for a in ("scratch", "kd", "maskclr_kd")]
    arms += [("low_scratch", args.low_label_variant, "10% labels: scratch"),
             ("low_maskclr", args.low_label_variant, "10% labels: MaskCLR fine-tune")]
    lines = ["| student | arm | seeds | best-epoch top-1 (%) | last-epoch top-1 (%) | wall min / run (shared CPU) |",
             "|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    for prefix, variant, arm in arms:
        runs = [r for s in args.seeds if (r := load_run(out / f"{prefix}_s{s}")) is not None]
        if not runs:
            lines.append(f"| {variant} | {arm} | 0 | not run | not run | - |")
            continue
        minutes = np.mean([r["minutes"] for r in runs])
        lines.append(f"| {variant} | {arm} | {len(runs)} | {stat([r['best'] for r in runs])} | "
                     f"{stat([r['last'] for r in runs])} | {minutes:.1f} |")
        ax = axes[0 if variant == "last_nano" and not prefix.startswith("low") else
                  1 if not prefix.startswith("low") else 2]
        ep = [c["epoch"] for c in runs[0]["curve"]]
        curves = np.array([[100 * c["val_top1"] for c in r["curve"]] for r in runs if len(r["curve"]) == len(ep)])
        ax.plot(ep, curves.mean(0), label=f"{arm} (n={len(curves)})")
        ax.fill_between(ep, curves.min(0), curves.max(0), alpha=0.15)
    for ax, title in zip(axes, ("last_nano (joint)", "last_small (joint)", f"{args.low_label_variant}, 10% labels")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test-view top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    extra_lines = []
    for name, what in (("ema_scratch_last_nano_s0", f"last_nano scratch with weight EMA (decay {args.ema_decay})"),
                       ("kdlive_feat_last_nano_s0", "last_nano KD from the live teacher + stage mimicry (gamma 0.1)")):
        r = load_run(out / name)
        if r is None:
            continue
        line = (f"| {what} | 1 (seed 0) | {100 * r['best']:.2f} | {100 * r['last']:.2f} | {r['minutes']:.1f} |")
        if "ema" in name:
            ema = [c.get("ema_top1") for c in r["curve"]]
            line = (f"| {what}: raw weights | 1 (seed 0) | {100 * r['best']:.2f} | {100 * r['last']:.2f} | "
                    f"{r['minutes']:.1f} |\n| {what}: EMA weights | 1 (seed 0) | {100 * max(ema):.2f} | "
                    f"{100 * ema[-1]:.2f} | (same run) |")
        extra_lines.append(line)
    teacher = (f"teacher {meta.get('variant')} ({'+'.join(meta.get('streams', []))}), "
               f"{meta.get('checkpoint')}" if meta else "teacher file missing")
    fig.suptitle(f"NW-UCLA cross-view, {args.epochs} epochs per arm (low-label: {args.low_label_epochs}); {teacher}")
    fig.tight_layout()
    fig.savefig(out / "grid.png", dpi=110)
    pre_notes = []
    for v in VARIANTS:
        s = out / f"pretrain_{v}" / "summary.json"
        if s.exists():
            info = json.loads(s.read_text())
            pre_notes.append(f"{v} {info['epochs']} epochs, {info['wall_seconds'] / 60:.1f} min")
    table = "\n".join(lines)
    if extra_lines:
        table += ("\n\n| extra run | seeds | best-epoch top-1 (%) | last-epoch top-1 (%) | train min |\n"
                  "|---|---|---|---|---|\n" + "\n".join(extra_lines))
    text = (f"{table}\n\nTeacher: {teacher}"
            + (f" (its top-1 on the training split: {100 * meta['top1_on_split']:.2f}%)" if meta else "")
            + "\nMaskCLR pretraining (one run per variant, seed 0, training split only): "
            + (", ".join(pre_notes) or "not run") + "\n")
    (out / "grid.md").write_text(text)
    print(text)
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python scripts/nw_ucla_distill_grid.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default="runs/nw_ucla/last_base_jvb/best.pt")
    p.add_argument("--teacher-done", default="runs/nw_ucla/last_base_jvb/summary.json",
                   help="a file that exists once the teacher's training finished ('' if none)")
    p.add_argument("--out", default="runs/grid")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--low-label-epochs", type=int, default=30)
    p.add_argument("--low-label-variant", default="last_nano")
    p.add_argument("--skip", nargs="*", default=[], help="runs still going from an earlier driver: left alone, each holds one worker until it ends")
    p.add_argument("--ignore", nargs="*", default=[], help="job names not to run this time")
    p.add_argument("--ema-decay", type=float, default=0.995)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--wrap", default="", help="prefix for every command, e.g. a job-queue wrapper (or run the whole "
                   "script under it with --workers 1: one CPU slot, the runs one after the other)")
    p.add_argument("--only", nargs="*", default=None, help="run only jobs whose name contains one of these")
    p.add_argument("--report-only", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    a = parse_args()
    if not a.report_only:
        run_all(a)
    report(a)
