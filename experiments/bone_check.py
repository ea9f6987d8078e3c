"""How well the custom import's bone-length check tells a wrong joint order from a right one, on real data.

    python -m experiments.bone_check [--out runs/reports/bone_check]

For each real data set in ../shared (NW-UCLA 3D and its x, y only; the MediaPipe recordings and the same mapped to
coco17; the NTU sample): does the check warn on the data in its right order (it should not), how often would it
warn on single clips, and how often does it warn when the joints are shuffled (50 random orders) or when two joints
that are not mirror twins are exchanged (every such pair, on 40 clips)? Prints a markdown table, writes it and a
bar plot to --out.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.data import load_split
from core.data.checks import implausible_bones
from core.data.ntu import denoise, read_skeleton
from core.data.paths import shared_root
from core.layouts import get_layout
from core.mapping import convert_layout
from core.plots import pyplot


def real_sets() -> dict[str, tuple[list[np.ndarray], str]]:
    def clips(name: str, split: str) -> list[np.ndarray]:
        s = load_split(name, split)
        return [np.asarray(s.sample(i), dtype=np.float32) for i in range(len(s))]

    ucla = clips("nw_ucla", "train")
    mediapipe = clips("mediapipe", "train")
    ntu, _ = denoise(read_skeleton(shared_root() / "data" / "ntu" / "S001C001P001R001A001.skeleton"))
    return {
        "NW-UCLA train, kinect20 3D": (ucla, "kinect20"),
        "NW-UCLA test, kinect20 3D": (clips("nw_ucla", "test"), "kinect20"),
        "NW-UCLA train, kinect20 x, y only": ([c[..., :2] for c in ucla], "kinect20"),
        "MediaPipe recordings, mediapipe33 (image)": (mediapipe, "mediapipe33"),
        "the same mapped to coco17": ([convert_layout(c, "mediapipe33", "coco17") for c in mediapipe], "coco17"),
        "NTU S001C001P001R001A001, ntu25": ([ntu[:1]], "ntu25"),
    }


def measure(clips: list[np.ndarray], layout: str, rng: np.random.Generator) -> dict[str, object]:
    lay = get_layout(layout)
    v = lay.num_joints
    warns = lambda cs: implausible_bones(cs, layout) is not None  # noqa: E731
    single = clips[:: max(1, len(clips) // 100)]
    few = clips[:: max(1, len(clips) // 40)]
    shuffled = sum(warns([c[..., perm, :] for c in clips]) for perm in (rng.permutation(v) for _ in range(50)))
    pairs = [(a, b) for a in range(v) for b in range(a + 1, v) if b != lay.flip_index[a]]
    swapped = 0
    for a, b in pairs:
        perm = np.arange(v)
        perm[[a, b]] = perm[[b, a]]
        swapped += warns([c[..., perm, :] for c in few])
    return {"clips": len(clips), "right": warns(clips), "single": (sum(warns([c]) for c in single), len(single)),
            "shuffled": (shuffled, 50), "swapped": (swapped, len(pairs))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m experiments.bone_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/reports/bone_check", help="folder for report.md and bone_check.png")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    results = {name: measure(clips, layout, rng) for name, (clips, layout) in tqdm(real_sets().items(), unit="set")}
    rows = ["| real data (right order) | clips | warns on the data set | warns on single clips | shuffled orders "
            "caught | two-joint swaps caught |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['clips']} | {'yes' if r['right'] else 'no'} | {r['single'][0]} of {r['single'][1]} "
                    f"| {r['shuffled'][0]} of {r['shuffled'][1]} | {r['swapped'][0]} of {r['swapped'][1]} |")
    table = "\n".join(rows)
    print(table)
    plt = pyplot()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(len(results))
    for k, (key, label) in enumerate((("single", "false alarms, single clips"), ("shuffled", "shuffled caught"),
                                      ("swapped", "swaps caught"))):
        ax.bar(x + 0.27 * (k - 1), [100 * r[key][0] / r[key][1] for r in results.values()], 0.27, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(list(results), rotation=20, ha="right", fontsize=7)
    ax.set_ylabel("%")
    ax.set_title("bone-length check on real data")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "bone_check.png", dpi=110)
    (out / "report.md").write_text(f"# bone-length check\n\n{table}\n\n![plot](bone_check.png)\n", encoding="utf-8")
    print(f"wrote {out / 'report.md'} and {out / 'bone_check.png'}")


if __name__ == "__main__":
    main()
