"""Time the cross-modal teacher (train.video_teacher) per video on the real NTU RGB sample (1920x1080, 103 frames):
decode + sample, preprocess (the model's image processor), model forward; for randomly initialised VideoMAEs of
a tiny size and of VideoMAE-Base's size (same compute as the real weights; no weights are downloaded).

    python -m experiments.video_teacher [--repeats 3] [--threads 1] [--sizes tiny,base] [--out runs/bench]

Prints a table and writes video_teacher.json and video_teacher.png under --out.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from core.data.paths import shared_root
from core.plots import pyplot
from train.video_teacher import VideoTeacher, extract_features

SIZES = {  # VideoMAEConfig keywords; "base" is VideoMAE-Base (MCG-NJU/videomae-base*): ViT-B/16, 16 frames, 224
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def default_video() -> Path:
    return shared_root() / "data" / "ntu" / "S001C001P001R001A001_rgb.avi"


def build_model(folder: Path, size: str) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.VideoMAEConfig(image_size=224, patch_size=16, num_frames=16, tubelet_size=2,
                                         **SIZES[size])
    transformers.VideoMAEModel(config).save_pretrained(folder)
    transformers.VideoMAEImageProcessor().save_pretrained(folder)  # 224 shortest edge, 224 crop, ImageNet norm


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m experiments.video_teacher", description=__doc__.split("\n\n")[0])
    p.add_argument("--video", default=None, help="default: the NTU RGB sample in the shared data")
    p.add_argument("--sizes", default="tiny,base")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/bench")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    video = Path(args.video) if args.video else default_video()
    if not video.is_file():
        raise SystemExit(f"python -m experiments.video_teacher: error: video not found: {video}")
    from train.video_teacher import sample_name

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            folder = Path(tmp) / size
            build_model(folder, size)
            teacher = VideoTeacher(folder, "cpu")
            params = sum(p.numel() for p in teacher.backbone.parameters())
            pairs = [(sample_name(video), video)]
            extract_features(teacher, pairs, batch=1, progress=False)  # warm-up
            runs = []
            for _ in range(args.repeats):
                names, f, pf, stats = extract_features(teacher, pairs, batch=1, progress=False)
                runs.append(stats["seconds"])
            row = {"size": size, "params_M": round(params / 1e6, 2), "features": list(f.shape),
                   "frame_features": list(pf.shape), "threads": args.threads, "repeats": args.repeats,
                   **{k: round(statistics.median(r[k] for r in runs), 3) for k in ("read", "preprocess", "model")}}
            row["total"] = round(row["read"] + row["preprocess"] + row["model"], 3)
            rows.append(row)
            del teacher
    header = f"{'model':<6} {'params':>8} {'features':>10} {'frame_feat':>12} {'read s':>7} {'prep s':>7} " \
             f"{'model s':>8} {'s/video':>8}"
    print(f"{video.name} ({args.threads} thread(s), median of {args.repeats})")
    print(header)
    for r in rows:
        print(f"{r['size']:<6} {r['params_M']:>7}M {str(tuple(r['features'])):>10} "
              f"{str(tuple(r['frame_features'])):>12} {r['read']:>7.3f} {r['preprocess']:>7.3f} "
              f"{r['model']:>8.3f} {r['total']:>8.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "video_teacher.json").write_text(json.dumps({"video": str(video), "rows": rows}, indent=2))
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3))
    left = [0.0] * len(rows)
    for stage, colour in (("read", "tab:blue"), ("preprocess", "tab:orange"), ("model", "tab:green")):
        widths = [r[stage] for r in rows]
        ax.barh([f"{r['size']} ({r['params_M']}M)" for r in rows], widths, left=left, label=stage, color=colour)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel(f"seconds per video ({args.threads} CPU thread(s))")
    ax.set_title(f"cross-modal teacher on {video.name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "video_teacher.png", dpi=120)
    print(f"wrote {out / 'video_teacher.json'} and {out / 'video_teacher.png'}")
    return rows


if __name__ == "__main__":
    main()
