"""Apply the `significant` epoch-selection rule to finished runs, without training again.

    python -m train.reselect runs/nw_ucla/last_small_jvb runs/grids/nw_ucla_kd/*

train.select=significant keeps the last epoch unless the best-validation-top-1 epoch beats it on the validation
clips by an exact McNemar test (p < 0.05). A run that chose by top-1 has both candidates on disk (best.pt and
last.pt), so the rule can be applied afterwards: both are scored on the run's validation split (never the test
split), and when the difference is not significant best.pt becomes the last epoch's weights and summary.json takes
the last epoch's numbers (its test top-1 at the last epoch was scored at the end of training; the multi-clip test
figure, which was not, is dropped rather than scored again). A run already chosen by this rule is left alone.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from core.checkpoint import input_spec, load_checkpoint, load_model, save_checkpoint
from core.cli import ArgumentParser, BadInput, run_cli
from core.evaluation import load_data_split, predict_split, torch_predict_fn
from core.stats import mcnemar_exact_p

PROG = "python -m train.reselect"


def reselect(run: Path) -> dict[str, Any]:
    summary_path = run / "summary.json"
    if not summary_path.is_file():
        raise BadInput(f"{run}: no summary.json (not a finished train.fit / train.distill run)")
    summary = json.loads(summary_path.read_text())
    if not summary.get("finished") or summary.get("chosen_on") is None:
        return {"run": str(run), "skipped": "not finished, or no validation split"}
    if (summary.get("selection") or {}).get("rule") == "significant":
        return {"run": str(run), "skipped": "already chosen by this rule", **summary["selection"]}
    best_ckpt, last_ckpt = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    if "quantization" in best_ckpt:
        return {"run": str(run), "skipped": "a QAT run (its candidates are INT8 simulations)"}
    best_epoch, last_epoch = int(best_ckpt["train"]["epoch"]), int(last_ckpt["train"]["epoch"])
    decision: dict[str, Any] = {"rule": "significant", "best_top1_epoch": best_epoch, "last_epoch": last_epoch,
                                "applied_after_training": True}
    if best_epoch == last_epoch:
        summary["selection"] = {**decision, "kept": last_epoch}
        summary_path.write_text(json.dumps(summary, indent=2))
        return {"run": str(run), **summary["selection"]}
    data = best_ckpt["train"]["data"]
    val = load_data_split(f"{data}:val", layout=best_ckpt["layout"], ckpt=best_ckpt)
    right = []
    for ckpt_path in (run / "best.pt", run / "last.pt"):
        model, ck = load_model(ckpt_path)
        logits = predict_split(torch_predict_fn(model), val, input_spec(ck), progress=False)
        right.append(logits.argmax(1) == val.labels)
    fixed, broken = int(np.sum(right[0] & ~right[1])), int(np.sum(~right[0] & right[1]))
    p = mcnemar_exact_p(fixed, broken)
    decision.update(best_right_last_wrong=fixed, best_wrong_last_right=broken, p_value=p)
    if fixed > broken and p < 0.05:
        summary["selection"] = {**decision, "kept": best_epoch}
    else:
        history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        row = next(h for h in history if h["epoch"] == last_epoch)
        model, _ = load_model(run / "last.pt")
        metrics = {"top1": row["val_top1"], "top5": row["val_top5"], "epoch": last_epoch,
                   "mean_class_accuracy": row["val_mean_class"], "loss": row["val_loss"]}
        train_info = {k: v for k, v in last_ckpt["train"].items()}
        save_checkpoint(run / "best.pt", model, input_spec(last_ckpt), last_ckpt["class_names"], train=train_info,
                        metrics=metrics)
        summary.update(val_top1=row["val_top1"], val_top5=row["val_top5"], best_epoch=last_epoch,
                       selection={**decision, "kept": last_epoch})
        if "test_top1_last_epoch" in summary:
            summary["test_top1_at_val_epoch"] = summary["test_top1_last_epoch"]
            summary["test_top5_at_val_epoch"] = summary.get("test_top5_last_epoch")
            summary.pop("test_mean_class_at_val_epoch", None)
            for key in [k for k in summary if k.startswith("test_top") and k.endswith("clips")]:
                summary.pop(key)  # a multi-clip score of the other epoch: not scored again
            preds = run / "test_predictions.npz"
            if preds.is_file():
                with np.load(preds, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                arrays["logits_at_val_epoch"] = arrays["logits_last_epoch"]
                arrays["best_epoch"] = np.array(last_epoch)
                np.savez_compressed(preds, **arrays)
    summary_path.write_text(json.dumps(summary, indent=2))
    return {"run": str(run), **summary["selection"]}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished run folders (output_dir)")
    args = p.parse_args(argv)
    for run in args.runs:  # every folder checked before any is changed
        if not (run / "summary.json").is_file():
            raise BadInput(f"{run}: no summary.json (not a finished train.fit / train.distill run)")
    out = []
    for run in args.runs:
        r = reselect(run)
        out.append(r)
        kept = r.get("kept")
        print(f"{run}: " + (r["skipped"] if "skipped" in r and kept is None else
                            f"kept epoch {kept} (top-1 epoch {r['best_top1_epoch']}, last {r['last_epoch']}"
                            + (f"; {r['best_right_last_wrong']}:{r['best_wrong_last_right']} clips, p = "
                               f"{r['p_value']:.3f}" if "p_value" in r else "") + ")"))
    return out


if __name__ == "__main__":
    sys.exit(run_cli(main, PROG))
