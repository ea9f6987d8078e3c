"""Experiment grids that reproduce themselves: every arm x seed is a plain train.fit / train.distill / train.pretrain
run, finished runs are skipped and killed ones resumed, and the numbers published are read back from the runs.

    python -m train.grid --spec configs/grids/nw_ucla_kd.yaml --workers 2       # run what is missing, then report
    python -m train.grid --spec configs/grids/nw_ucla_kd.yaml --report-only     # table, plot and JSON only
    python -m train.grid --spec configs/grids/nw_ucla_kd.yaml --list            # the jobs and their state

A spec (YAML) names the grid's output folder, the results file, the seeds, the options every run shares, and its
arms. An arm is a method on a config:

    method     scratch | kd (live teacher, consistent; cached per seed) | kd_file (un-augmented teacher file) |
               teacher | pretrain (MaskCLR) | maskclr (fine-tune from this seed's pretraining) | maskclr_kd
    config     the training YAML (its model section names the variant and streams)
    teacher    checkpoint paths or `arm:<name>` (that arm's best.pt of the same seed, or `arm:<name>@<seed>`);
               several average into one teacher
    init       `arm:<pretrain arm>` for maskclr / maskclr_kd
    overrides  section.key=value for this arm; seeds / epochs override the grid's

Every run chooses its epoch on the validation split and is scored once on the test split (train.trainer), so the
results file holds, per arm and seed, `test_top1_at_val_epoch`, `test_top1_last_epoch` and `val_top1`, with
`epochs` and `minutes` (the wall time of the run, pretraining included for maskclr arms).
Exit codes (core.cli): 0 done, 1 a run failed, 2 bad spec.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.cli import ArgumentParser, BadInput, run_cli
from core.markdown import replace_section, table_head
from core.plots import pyplot, save_figure
from core.stats import paired_difference, seed_summary

PROG = "python -m train.grid"
METHODS = ("scratch", "kd", "kd_file", "teacher", "pretrain", "maskclr", "maskclr_kd", "ensemble")
MODULE = {"scratch": "train.fit", "teacher": "train.fit", "maskclr": "train.fit", "kd": "train.distill",
          "kd_file": "train.distill", "maskclr_kd": "train.distill", "pretrain": "train.pretrain"}
METRICS = ("test_top1_at_val_epoch", "test_top1_last_epoch", "val_top1")


@dataclass
class Arm:
    name: str
    method: str
    config: str
    seeds: list[int]
    epochs: int | None = None
    teacher: list[str] = field(default_factory=list)
    init: str | None = None
    overrides: list[str] = field(default_factory=list)
    note: str = ""
    priority: int = 0  # jobs run in (priority, seed, arm order)
    against: str | None = None  # the control arm of the comparisons (default: scratch of the same variant)
    output: str | None = None  # run folder template ("{seed}"), e.g. a checkpoint other commands read


@dataclass
class Job:
    arm: Arm
    seed: int
    out: Path
    cmd: list[str]
    needs: list[Path]  # finished runs' summary.json / files that must exist first

    @property
    def name(self) -> str:
        return f"{self.arm.name}_s{self.seed}"


@dataclass
class Grid:
    name: str
    out: Path
    results: Path
    seeds: list[int]
    epochs: int | None
    common: list[str]
    arms: list[Arm]
    doc: Path | None = None
    plot: Path | None = None
    spec_path: str = ""


def load_spec(path: str | Path) -> Grid:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"--spec {path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"--spec {path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("arms"), list) or not raw["arms"]:
        raise BadInput(f"--spec {path}: needs a mapping with a non-empty `arms` list")
    seeds = [int(s) for s in raw.get("seeds", [0])]
    arms, names = [], set()
    for i, a in enumerate(raw["arms"]):
        where = f"--spec {path}: arms[{i}]"
        if not isinstance(a, dict) or "name" not in a or "method" not in a or "config" not in a:
            raise BadInput(f"{where}: every arm needs name, method and config")
        if a["method"] not in METHODS:
            raise BadInput(f"{where} ({a['name']}): method {a['method']!r} is not one of {', '.join(METHODS)}")
        if a["name"] in names:
            raise BadInput(f"{where}: arm name {a['name']!r} repeats")
        names.add(a["name"])
        teacher = a.get("teacher") or []
        arm = Arm(a["name"], a["method"], a["config"], [int(s) for s in a.get("seeds", seeds)], a.get("epochs"),
                  [teacher] if isinstance(teacher, str) else list(teacher), a.get("init"),
                  list(a.get("overrides") or []), a.get("note", ""), priority=int(a.get("priority", 0)),
                  output=a.get("output"), against=a.get("against"))
        if arm.method in ("kd", "kd_file", "maskclr_kd", "ensemble") and not arm.teacher:
            raise BadInput(f"{where} ({arm.name}): method {arm.method} needs a teacher")
        if arm.method in ("maskclr", "maskclr_kd") and not (arm.init or "").startswith("arm:"):
            raise BadInput(f"{where} ({arm.name}): method {arm.method} needs init: arm:<pretrain arm>")
        if not Path(arm.config).is_file():
            raise BadInput(f"{where} ({arm.name}): config {arm.config} not found")
        arms.append(arm)
    for arm in arms:
        for ref in arm.teacher + ([arm.init] if arm.init else []):
            if ref.startswith("arm:") and ref[4:].split("@")[0] not in names:
                raise BadInput(f"--spec {path}: arm {arm.name} refers to {ref}, which is not an arm of the grid")
    out = Path(raw.get("out", f"runs/grids/{path.stem}"))
    return Grid(raw.get("name", path.stem), out, Path(raw.get("results", out / "results.json")), seeds,
                raw.get("epochs"), list(raw.get("common") or []), arms,
                Path(raw["doc"]) if raw.get("doc") else None, Path(raw["plot"]) if raw.get("plot") else None,
                str(path))


# ---------------------------------------------------------------------------------------------
# jobs


def arm_dir(grid: Grid, arm: Arm, seed: int) -> Path:
    """An arm's run folder for a seed: the grid's <arm>_s<seed>, or the arm's `output` template ({seed}; {suffix}
    is empty for seed 0 and _s<seed> otherwise, so seed 0 can be a published checkpoint's own folder)."""
    if not arm.output:
        return grid.out / f"{arm.name}_s{seed}"
    return Path(arm.output.format(seed=seed, suffix="" if seed == 0 else f"_s{seed}"))


def resolve(ref: str, seed: int, grid: Grid) -> Path:
    """A checkpoint reference: a path, or arm:<name>[@<seed>] (that arm's best.pt of this or the given seed)."""
    if not ref.startswith("arm:"):
        return Path(ref)
    name, _, at = ref[4:].partition("@")
    arm = next(a for a in grid.arms if a.name == name)
    return arm_dir(grid, arm, int(at) if at else seed) / "best.pt"


def checkpoint_need(path: Path) -> Path:
    """What a run that reads checkpoint `path` waits for: the finished training run it comes from, else the file."""
    if path.name == "best.pt" and (path.parent / "config.yaml").exists() or path.name == "best.pt" and not path.exists():
        return path.parent / "summary.json"
    return path


def jobs(grid: Grid) -> list[Job]:
    out: list[Job] = []
    for arm in grid.arms:
        if arm.method == "ensemble":
            continue  # scored from its members' checkpoints when the results are written
        for seed in arm.seeds:
            folder = arm_dir(grid, arm, seed)
            epochs = arm.epochs if arm.epochs is not None else grid.epochs
            opts = list(grid.common) + ([f"schedule.epochs={epochs}"] if epochs is not None else [])
            opts += [f"train.seed={seed}", f"name={grid.name}_{arm.name}_s{seed}", f"output_dir={folder}"]
            needs: list[Path] = []
            teachers = [resolve(t, seed, grid) for t in arm.teacher]
            needs += [checkpoint_need(t) for t in teachers]
            if arm.method in ("kd", "maskclr_kd"):
                opts += [f"distill.teacher={teachers[0]}", "distill.teacher_file=null",
                         f"distill.teacher_ensemble=[{','.join(map(str, teachers[1:]))}]",
                         f"distill.teacher_cache={grid.out / 'teacher_cache' / cache_name(arm, seed)}"]
            if arm.method == "kd_file":
                if len(teachers) > 1:
                    raise BadInput(f"arm {arm.name}: kd_file takes one teacher checkpoint")
                npz = grid.out / "teacher_files" / f"{teachers[0].parent.name}.npz"
                opts += [f"distill.teacher_file={npz}", "distill.teacher=null"]
                needs.append(npz)
            if arm.init:
                init = resolve(arm.init, seed, grid)
                opts.append(f"model.init={init}")
                needs.append(init.parent / "summary.json")
            cmd = [sys.executable, "-m", MODULE[arm.method], "--config", arm.config, *opts, *arm.overrides]
            out.append(Job(arm, seed, folder, cmd, needs))
    order = {arm.name: i for i, arm in enumerate(grid.arms)}
    return sorted(out, key=lambda j: (j.arm.priority, j.seed, order[j.arm.name]))


def cache_name(arm: Arm, seed: int) -> str:
    """One teacher cache per teacher set and seed: students of one seed share the teacher's outputs."""
    key = "+".join(Path(t).name if not t.startswith("arm:") else t[4:].replace("@", "-") for t in arm.teacher)
    return f"{key}_s{seed}".replace("/", "_")


def teacher_file_jobs(grid: Grid, all_jobs: list[Job]) -> list[tuple[Path, list[str], list[Path]]]:
    """(file, command, needs) for every un-augmented teacher file a kd_file arm reads."""
    seen, out = set(), []
    for job in all_jobs:
        if job.arm.method != "kd_file":
            continue
        teacher = resolve(job.arm.teacher[0], job.seed, grid)
        npz = grid.out / "teacher_files" / f"{teacher.parent.name}.npz"
        if npz in seen:
            continue
        seen.add(npz)
        cfg = yaml.safe_load(Path(job.arm.config).read_text()) or {}
        data = ((cfg.get("data") or {}).get("name")) or "nw_ucla"
        base = cfg.get("_base_")
        if base and not (cfg.get("data") or {}).get("name"):
            bcfg = yaml.safe_load((Path(job.arm.config).parent / base).read_text()) or {}
            data = (bcfg.get("data") or {}).get("name", data)
        cmd = [sys.executable, "-m", "train.teacher", "--ckpt", str(teacher), "--data", f"{data}:train", "--out",
               str(npz), "--threads", "1", "--no-progress"]
        out.append((npz, cmd, [checkpoint_need(teacher)]))
    return out


def training_elsewhere(run_dir: Path) -> bool:
    """Whether a process started outside this grid (another driver, a shell) trains into run_dir now: a
    `python -m train.*` whose output_dir override, or its --config file's output_dir, is run_dir."""
    want = run_dir.resolve()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if not any(a.startswith("train.") for a in args):
            continue
        out = next((a.split("=", 1)[1] for a in args if a.startswith("output_dir=")), None)
        if out is None and "--config" in args[:-1]:
            try:
                out = (yaml.safe_load((cwd / args[args.index("--config") + 1]).read_text()) or {}).get("output_dir")
            except (OSError, yaml.YAMLError):
                out = None
        if out is not None and (cwd / out).resolve() == want:
            return True
    return False


def finished(run_dir: Path) -> bool:
    s = run_dir / "summary.json"
    try:
        return s.is_file() and bool(json.loads(s.read_text()).get("finished"))
    except (OSError, json.JSONDecodeError):
        return False


def ready(needs: list[Path]) -> bool:
    return all((finished(n.parent) if n.name == "summary.json" else n.exists()) for n in needs)


def run_grids(grids: list[Grid], workers: int, only: list[str]) -> list[str]:
    """Run every unfinished job of the grids (resuming killed ones), `workers` at a time, in (priority, seed, arm)
    order across the grids; the names of failed jobs."""
    todo: list[tuple[str, list[str], list[Path], Path]] = []
    all_jobs = []
    for grid in grids:
        grid_jobs = jobs(grid)
        for npz, cmd, needs in teacher_file_jobs(grid, grid_jobs):
            if not npz.exists():
                todo.append((f"teacher_file_{npz.stem}", cmd, needs, npz))
        all_jobs += grid_jobs
    order = {id(j): i for i, j in enumerate(all_jobs)}
    seen_dirs = set()
    for job in sorted(all_jobs, key=lambda j: (j.arm.priority, j.seed, order[id(j)])):
        if job.out in seen_dirs:  # two grids naming the same run: it runs once
            continue
        seen_dirs.add(job.out)
        if finished(job.out) or (only and not any(o in job.name for o in only)):
            continue
        if training_elsewhere(job.out):
            print(f"{job.name}: another process trains into {job.out}; the grid waits for it", flush=True)
            todo.append((job.name, [], [job.out / "summary.json"], job.out))
            continue
        cmd = job.cmd + (["--resume"] if (job.out / "last.pt").exists() else [])
        todo.append((job.name, cmd, job.needs, job.out))
    logs = grids[0].out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    lock, failed, running = threading.Lock(), [], [0]

    def worker(k: int) -> None:
        while True:
            with lock:
                if not todo:
                    return
                pick = next((t for t in todo if ready(t[2])), None)
                if pick is not None:
                    todo.remove(pick)
                    running[0] += 1
                elif running[0] == 0:  # nothing runs and nothing is ready: the rest waits on failed runs
                    for t in todo:
                        failed.append(f"{t[0]} (not started: waits on a failed run)")
                    todo.clear()
                    return
            if pick is None:
                time.sleep(10)
                continue
            name, cmd, _, _ = pick
            if not cmd:  # a run another process finished for us
                with lock:
                    running[0] -= 1
                continue
            print(f"[{time.strftime('%H:%M:%S')}] worker {k} starts {name}: {shlex.join(cmd)}", flush=True)
            start = time.time()
            with open(logs / f"{name}.log", "a") as log:
                rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
            print(f"[{time.strftime('%H:%M:%S')}] worker {k} ends {name}: rc={rc} after "
                  f"{(time.time() - start) / 60:.1f} min (log {logs / f'{name}.log'})", flush=True)
            with lock:
                running[0] -= 1
                if rc != 0:
                    failed.append(name)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failed


# ---------------------------------------------------------------------------------------------
# results


def arm_streams(arm: Arm) -> tuple[str, str]:
    """(streams joined by '+', variant) of an arm's resolved config."""
    from train.config import load_config

    cfg = load_config(arm.config, [o for o in arm.overrides if o.startswith("model.")])
    return "+".join(cfg["model"]["streams"]), cfg["model"]["variant"]


def score_ensemble(grid: Grid, arm: Arm, seed: int) -> Path | None:
    """An ensemble arm's summary.json (written once): validation and test top-1 of its members' averaged logits,
    each member at its validation-chosen epoch (and, for the test split, also at its last epoch)."""
    import numpy as np

    from core.checkpoint import input_spec, load_model
    from core.evaluation import load_data_split, predict_split, torch_predict_fn

    out = arm_dir(grid, arm, seed)
    if finished(out):
        return out / "summary.json"
    members = [resolve(t, seed, grid) for t in arm.teacher]
    if not all(finished(m.parent) for m in members):
        return None
    val_logits, test_best, test_last, labels = [], [], [], {}
    for m in members:
        model, ckpt = load_model(m)
        data = ckpt["train"]["data"]
        val = load_data_split(f"{data}:val", layout=ckpt["layout"], ckpt=ckpt)
        val_logits.append(predict_split(torch_predict_fn(model), val, input_spec(ckpt), progress=False))
        labels["val"] = val.labels
        saved = np.load(m.parent / "test_predictions.npz")
        test_best.append(saved["logits_at_val_epoch"])
        test_last.append(saved["logits_last_epoch"])
        labels["test"] = saved["labels"]

    def top1(logits: list, key: str) -> float:
        return float((np.mean(logits, axis=0).argmax(1) == labels[key]).mean())

    out.mkdir(parents=True, exist_ok=True)
    summary = {"finished": True, "members": [str(m) for m in members], "val_top1": top1(val_logits, "val"),
               "test_top1_at_val_epoch": top1(test_best, "test"), "test_top1_last_epoch": top1(test_last, "test"),
               "best_epoch": None, "epochs": None, "wall_seconds": sum(
                   json.loads((m.parent / "summary.json").read_text()).get("wall_seconds", 0.0) for m in members)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return out / "summary.json"


def collect(grid: Grid) -> dict[str, Any]:
    """The results file: one entry per arm with every finished seed's numbers."""
    arms = []
    by_name = {}
    for arm in grid.arms:
        streams, variant = arm_streams(arm)
        per_seed = {}
        for seed in arm.seeds:
            if arm.method == "ensemble":
                score_ensemble(grid, arm, seed)
            folder = arm_dir(grid, arm, seed)
            if not finished(folder):
                continue
            s = json.loads((folder / "summary.json").read_text())
            minutes = s.get("wall_seconds", 0.0) / 60
            if arm.init:  # the pretraining this fine-tune started from is part of its cost
                pre = resolve(arm.init, seed, grid).parent / "summary.json"
                if pre.is_file():
                    minutes += json.loads(pre.read_text()).get("wall_seconds", 0.0) / 60
            per_seed[str(seed)] = {"test_top1_at_val_epoch": pct(s.get("test_top1_at_val_epoch")),
                                   "test_top1_last_epoch": pct(s.get("test_top1_last_epoch")),
                                   "val_top1": pct(s.get("val_top1")), "best_epoch": s.get("best_epoch"),
                                   "selection": (s.get("selection") or {}).get("rule", "top1"),
                                   "epochs": s.get("epochs"), "minutes": round(minutes, 2)}
        entry = {"name": arm.name, "variant": variant, "streams": streams, "method": arm.method,
                 "teacher": "+".join(arm.teacher) or None, "init": arm.init, "config": arm.config,
                 "overrides": arm.overrides, "note": arm.note, "planned_seeds": arm.seeds,
                 "seeds": [int(k) for k in per_seed], "per_seed": per_seed,
                 "epochs": sorted({v["epochs"] for v in per_seed.values()}),
                 "minutes": round(sum(v["minutes"] for v in per_seed.values()) / max(len(per_seed), 1), 2)}
        for metric in METRICS:
            entry[metric] = seed_summary([v[metric] for v in per_seed.values() if v[metric] is not None])
        arms.append(entry)
        by_name[arm.name] = entry
    return {"grid": grid.name, "command": f"python -m train.grid --spec {grid.spec_path}",
            "updated": time.strftime("%Y-%m-%d"), "seeds": grid.seeds, "common": grid.common,
            "epochs": grid.epochs, "arms": arms, "comparisons": comparisons(grid, by_name)}


def pct(x: float | None) -> float | None:
    return None if x is None else round(100 * float(x), 2)


def comparisons(grid: Grid, arms: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each arm against its control (`against`, else the first scratch arm of the same variant and streams): the
    seed-paired differences of test top-1 at the validation-chosen epoch (mean ± std), and the clip-paired ones of
    each seed (clips fixed / broken, exact 95 % interval) with all seeds' clips pooled."""
    out = []
    spec = {a.name: a for a in grid.arms}
    for name, a in arms.items():
        if not a["seeds"] or a["method"] in ("teacher", "ensemble", "pretrain"):
            continue
        wanted = spec[name].against
        ref = arms.get(wanted) if wanted else next(
            (r for r in arms.values() if r["method"] == "scratch" and r["variant"] == a["variant"]
             and r["streams"] == a["streams"] and r["name"] != name), None)
        if ref is None or ref["name"] == name:
            continue
        both = [s for s in a["per_seed"] if s in ref["per_seed"]]
        diffs = [a["per_seed"][s]["test_top1_at_val_epoch"] - ref["per_seed"][s]["test_top1_at_val_epoch"]
                 for s in both]
        if not diffs:
            continue
        per_seed, pooled = {}, [[], [], []]
        for seed in both:
            preds = [arm_dir(grid, spec[n], int(seed)) / "test_predictions.npz" for n in (ref["name"], name)]
            if not all(p.is_file() for p in preds):
                continue
            (r_logits, labels), (c_logits, _) = [(np.load(p)["logits_at_val_epoch"], np.load(p)["labels"])
                                                 for p in preds]
            per_seed[seed] = paired_difference(labels, r_logits, c_logits).to_dict()
            pooled[0].append(labels), pooled[1].append(r_logits), pooled[2].append(c_logits)
        entry = {"arm": name, "against": ref["name"], "seeds": [int(s) for s in both],
                 "test_top1_difference": seed_summary(diffs), "paired_clips": per_seed}
        if pooled[0]:
            entry["paired_clips_pooled"] = paired_difference(*(np.concatenate(x) for x in pooled)).to_dict()
        out.append(entry)
    return out


def fmt(s: dict[str, Any]) -> str:
    if not s or not s.get("n"):
        return "-"
    if s["n"] == 1:
        return f"{s['mean']:.2f} (1 seed)"
    return f"{s['mean']:.2f} ± {s['std']:.2f}"


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Grid `{results['grid']}` (`{results['command']}`, updated {results['updated']}): test top-1 at the "
             f"epoch chosen on the validation split, mean ± std over seeds (per-seed values in the JSON).", ""]
    lines += table_head(["arm", "variant", "streams", "method", "teacher / init", "seeds", "epochs",
                         "test top-1 (chosen epoch)", "test top-1 (last epoch)", "val top-1", "minutes / run",
                         "Δ vs control (seed-paired)", "Δ, clips pooled over seeds [95 % CI] (fixed / broken)"])
    diffs = {c["arm"]: c for c in results["comparisons"]}
    for a in results["arms"]:
        d = diffs.get(a["name"])
        lines.append("| " + " | ".join([
            a["name"], a["variant"], a["streams"], a["method"], (a["teacher"] or a["init"] or "-").replace("|", "/"),
            f"{len(a['seeds'])}/{len(a['planned_seeds'])}", ",".join(map(str, a["epochs"])) or "-",
            fmt(a["test_top1_at_val_epoch"]), fmt(a["test_top1_last_epoch"]), fmt(a["val_top1"]),
            f"{a['minutes']:.1f}" if a["seeds"] else "-",
            f"{d['test_top1_difference']['mean']:+.2f} ± {d['test_top1_difference']['std']:.2f} "
            f"({', '.join(f'{v:+.2f}' for v in d['test_top1_difference']['values'])}) vs {d['against']}" if d else "-",
            pooled_text(d)]) + " |")
    return "\n".join(lines) + "\n"


def pooled_text(d: dict[str, Any] | None) -> str:
    p = (d or {}).get("paired_clips_pooled")
    if not p:
        return "-"
    return f"{p['delta']:+.2f} [{p['low']:+.2f}, {p['high']:+.2f}] (+{p['fixed']} / -{p['broken']})"


def plot(results: dict[str, Any], path: Path) -> Path:
    plt = pyplot()

    arms = [a for a in results["arms"] if a["seeds"]]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(arms) + 2), 4.5))
    for i, a in enumerate(arms):
        values = [v["test_top1_at_val_epoch"] for v in a["per_seed"].values()]
        ax.scatter([i] * len(values), values, color="tab:blue", alpha=0.7, zorder=3)
        ax.errorbar(i + 0.15, a["test_top1_at_val_epoch"]["mean"], yerr=a["test_top1_at_val_epoch"]["std"],
                    fmt="s", color="k", capsize=4, zorder=4)
    ax.set_xticks(range(len(arms)))
    ax.set_xticklabels([a["name"] for a in arms], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("test top-1 at the validation-chosen epoch (%)")
    ax.set_title(f"{results['grid']}: seeds (dots), mean ± std (squares)")
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=110)


def write_results(grid: Grid) -> dict[str, Any]:
    results = collect(grid)
    grid.results.parent.mkdir(parents=True, exist_ok=True)
    grid.results.write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    if grid.doc is not None:
        replace_section(grid.doc, f"grid:{grid.name}", table)
    if grid.plot is not None and any(a["seeds"] for a in results["arms"]):
        plot(results, grid.plot)
    print(table)
    return results


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description="Run an experiment grid (resumable) and publish its results.",
                       epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True, nargs="+", help="the grid's YAML (configs/grids/*.yaml); several run "
                                                             "as one queue, each publishes its own results")
    p.add_argument("--workers", type=int, default=1, help="runs at a time (each run's threads: train.threads)")
    p.add_argument("--only", nargs="*", default=[], help="run only jobs whose name contains one of these")
    p.add_argument("--report-only", action="store_true", help="write the results file, table and plot; run nothing")
    p.add_argument("--list", action="store_true", help="print every job with its state and exit")
    args = p.parse_args(argv)
    grids = [load_spec(spec) for spec in args.spec]
    if args.list:
        for grid in grids:
            for job in jobs(grid):
                state = "finished" if finished(job.out) else ("resumable" if (job.out / "last.pt").exists() else
                                                               ("ready" if ready(job.needs) else "waiting"))
                print(f"{grid.name}/{job.name:40s} {state:10s} {shlex.join(job.cmd[1:])}")
        return 0
    failed = [] if args.report_only else run_grids(grids, args.workers, args.only)
    for grid in grids:
        write_results(grid)
    if failed:
        print(f"{PROG}: error: {len(failed)} run(s) failed: {', '.join(failed)} (logs in {grids[0].out / 'logs'})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, PROG))
