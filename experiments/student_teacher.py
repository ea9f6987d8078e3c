"""Did distillation align the student's features with the teacher's? Feature similarity of many students to one
teacher over the same clips, grouped by how the students were trained, seeds summarised as mean ± std.

    python experiments/student_teacher.py --teacher runs/nw_ucla/last_large_jvb/best.pt --data nw_ucla:test \
        --group plain=runs/nw_ucla/last_nano_jvb{,_s1,_s2}/best.pt \
        --group kd_file=runs/grids/nw_ucla_kd/kd_file_nano_jvb_s{0,1,2}/best.pt \
        --group kd_live=runs/grids/nw_ucla_kd/kd_nano_jvb_s{0,1,2}/best.pt \
        --json docs/explain/student_teacher.json --doc docs/explain.md

Per student: top-1 on the split, linear CKA with the teacher's pooled features, the share of each clip's 10
nearest neighbours the two spaces have in common (k-NN agreement), and the student's own 10-NN accuracy; the same
numbers as `python -m train.explain --teacher` (core.explain), without the attribution and the t-SNE. With --doc
the table is written between the `<!-- explain:student_teacher -->` markers of that page.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core import explain  # noqa: E402
from core.checkpoint import input_spec, load_model  # noqa: E402
from core.evaluation import check_split_matches, load_data_split  # noqa: E402
from core.markdown import replace_section, table_head  # noqa: E402
from core.stats import seed_summary  # noqa: E402
from train.explain import pooled_features  # noqa: E402

K = 10
MARKER = "explain:student_teacher"


def features_of(ckpt_path: str, split, data: str, batch: int) -> tuple[np.ndarray, np.ndarray, str]:
    model, ckpt = load_model(ckpt_path)
    spec = input_spec(ckpt)
    check_split_matches(split, spec.layout, list(ckpt["class_names"]), data, ckpt_path)
    feats, logits = pooled_features(model, split, spec, batch, "cpu", Path(ckpt_path).parent.name)
    return feats, logits, model.variant


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python experiments/student_teacher.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", required=True)
    p.add_argument("--data", default="nw_ucla:test")
    p.add_argument("--group", action="append", required=True, metavar="NAME=CKPT[,CKPT...]",
                   help="students trained the same way (one per seed); repeat for each way")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    p.add_argument("--doc", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    groups: dict[str, list[str]] = {}
    for text in args.group:
        name, _, paths = text.partition("=")
        groups[name] = [q for q in paths.replace(" ", ",").split(",") if q]
        missing = [q for q in groups[name] if not Path(q).is_file()]
        if not name or not groups[name] or missing:
            p.error(f"--group {text!r}: expected NAME=CKPT[,CKPT...] with existing files (missing: {missing})")
    _, teacher_ckpt = load_model(args.teacher)
    split = load_data_split(args.data, layout=input_spec(teacher_ckpt).layout)
    labels = split.labels
    teacher, teacher_logits, teacher_variant = features_of(args.teacher, split, args.data, args.batch)
    teacher_row = {"top1": float((teacher_logits.argmax(1) == labels).mean()),
                   "knn_accuracy": explain.knn_accuracy(teacher, labels, K)}
    rows = []
    for name, paths in groups.items():
        for path in paths:
            feats, logits, variant = features_of(path, split, args.data, args.batch)
            row = {"group": name, "ckpt": path, "variant": variant,
                   "top1": float((logits.argmax(1) == labels).mean()),
                   "linear_cka": explain.linear_cka(feats, teacher),
                   "knn_agreement": explain.knn_agreement(feats, teacher, K),
                   "knn_accuracy": explain.knn_accuracy(feats, labels, K)}
            rows.append(row)
            print(f"{name:10s} {path}: top-1 {100 * row['top1']:.2f}, CKA {row['linear_cka']:.3f}, "
                  f"{K}-NN agreement {100 * row['knn_agreement']:.1f} %, {K}-NN accuracy "
                  f"{100 * row['knn_accuracy']:.1f} %", flush=True)
    summary = {}
    for name in groups:
        mine = [r for r in rows if r["group"] == name]
        summary[name] = {key: seed_summary([r[key] for r in mine]) for key in
                         ("top1", "linear_cka", "knn_agreement", "knn_accuracy")}
    chance = K / (len(labels) - 1)
    lines = table_head(["students", "seeds", "top-1 %", "linear CKA with the teacher", f"{K}-NN agreement %",
                        f"student {K}-NN accuracy %"])

    def fmt(stat: dict, scale: float, digits: int) -> str:
        return f"{scale * stat['mean']:.{digits}f} ± {scale * stat['std']:.{digits}f}"
    for name, s in summary.items():
        lines.append(f"| {name} | {s['top1']['n']} | {fmt(s['top1'], 100, 1)} | {fmt(s['linear_cka'], 1, 3)} | "
                     f"{fmt(s['knn_agreement'], 100, 1)} | {fmt(s['knn_accuracy'], 100, 1)} |")
    lines.append(f"| teacher ({teacher_variant}) | 1 | {100 * teacher_row['top1']:.1f} | 1 | 100 | "
                 f"{100 * teacher_row['knn_accuracy']:.1f} |")
    table = "\n".join(lines) + "\n"
    command = "python experiments/student_teacher.py " + " ".join(argv if argv is not None else sys.argv[1:])
    note = (f"\n{len(labels)} clips of `{args.data}`; mean ± std over seeds; {K}-NN agreement by chance: "
            f"{100 * chance:.1f} %. Command: `{command}`.\n")
    print(table + note)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": command, "teacher": args.teacher, "data": args.data,
                                         "clips": int(len(labels)), "k": K, "knn_agreement_chance": chance,
                                         "teacher_row": teacher_row, "rows": rows, "summary": summary}, indent=1))
    if args.doc:
        replace_section(args.doc, MARKER, table + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
