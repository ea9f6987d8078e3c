"""python -m core.models: a table of every LAST variant (params, GFLOPs, fp32 size, CPU latency)."""
from __future__ import annotations

import sys

import torch

from core.cli import ArgumentParser, run_cli
from core.layouts import list_layouts
from core.models.last import create_model, list_variants
from core.models.profile import profile_model


PROG = "python -m core.models"


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--layout", default="ntu25", choices=list_layouts())
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--persons", type=int, default=1)
    parser.add_argument("--classes", type=int, default=60)
    parser.add_argument("--variants", default=",".join(list_variants()), help="comma-separated")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for name in variants:  # every name checked before any model is built
        create_model(name, num_classes=2, layout=args.layout)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # subnormal activations slow CPUs down many times over
    print(f"LAST variants at T={args.frames}, layout={args.layout}, M={args.persons}, "
          f"{args.classes} classes, batch 1, {torch.get_num_threads()} CPU threads")
    print(f"{'variant':<18}{'params':>12}{'GFLOPs':>10}{'fp32 MB':>10}{'latency ms':>12}")
    for name in variants:
        model = create_model(name, num_classes=args.classes, layout=args.layout)
        p = profile_model(model, args.frames, args.persons, latency=not args.no_latency)
        lat = f"{p.latency_ms:.2f}" if p.latency_ms is not None else "-"
        print(f"{p.variant:<18}{p.params:>12,}{p.gflops:>10.3f}{p.size_mb:>10.2f}{lat:>12}")


if __name__ == "__main__":
    sys.exit(run_cli(main, PROG))
