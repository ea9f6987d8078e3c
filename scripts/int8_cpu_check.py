"""Do onnxruntime's INT8 kernels give the same logits on CPUs with and without AVX-512 / VNNI?

onnxruntime (MLAS) picks its kernels from CPUID and has no switch to force a lower instruction set, so the
check runs the same artifacts twice: natively, and under QEMU's user-mode emulator with a CPU model that
has AVX2 but no AVX-512 and no VNNI (QEMU's TCG implements no AVX-512 at all):

    python scripts/int8_cpu_check.py prepare runs/int8_cpu                  # QAT checkpoint + Q/DQ ONNX (~1 min)
    python scripts/int8_cpu_check.py compare runs/int8_cpu native
    qemu-x86_64 -cpu EPYC-Rome "$(which python)" scripts/int8_cpu_check.py compare runs/int8_cpu avx2   # ~3 min
    python scripts/int8_cpu_check.py report runs/int8_cpu docs/reliability_int8_cpu.json

(apt-get install qemu-user). Each compare writes the simulated (QAT) logits, onnxruntime's logits with its
fused integer kernels, and onnxruntime's logits with the QDQ fusions off (Q/DQ op by op, float convolutions).
The report gives the differences in INT8 steps of the classifier input, the unit tests/test_qat.py uses."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def prepare(out: Path) -> None:
    from converters import int8
    from converters.calib import build_calibration, save_calibration
    from core.checkpoint import load_checkpoint
    from core.data import load_split
    from train.config import load_config
    from train.fit import run
    from train.qat import main as qat_main
    base = ["data.name=synthetic", "data.frames=24", "data.num_workers=0", "model.variant=last_nano",
            "model.streams=[joint,velocity,bone]", "optim.batch_size=16", "schedule.warmup_epochs=0",
            "schedule.name=cosine", "train.threads=1", "schedule.epochs=2"]  # the recipe of tests/test_qat.py
    run(load_config(None, base + [f"output_dir={out / 'fp32'}"]))
    qat_main(["--ckpt", str(out / "fp32" / "best.pt"), "--out", str(out / "qat"), "schedule.epochs=1"])
    ck = load_checkpoint(out / "qat" / "best.pt")
    calib = save_calibration(out / "calib.npz", build_calibration(ck, load_split("synthetic", "test"), num=64))
    result = int8.export(out / "qat" / "best.pt", out / "int8", calib=calib, quantizer="ort")
    print(result.summary())


def compare(out: Path, tag: str) -> None:
    import onnxruntime as ort
    import torch
    from core.checkpoint import load_checkpoint, load_model
    from core.models.quant import QuantSim
    ckpt = load_checkpoint(out / "qat" / "best.pt")
    model, _ = load_model(out / "qat" / "best.pt")
    sim = QuantSim(model)
    sim.load_ranges(ckpt["quantization"]["activation_amax"])
    sim.observe(False)
    x = np.load(out / "calib.npz")["x"][:32]
    with torch.no_grad():
        simulated = model.eval()(torch.from_numpy(x)).numpy()
    logits = {}
    for name, fused in (("fused", True), ("op_by_op", False)):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        if not fused:
            options.add_session_config_entry("session.disable_quant_qdq", "1")
        session = ort.InferenceSession(str(out / "int8" / "best_int8.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        logits[name] = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.savez(out / f"logits_{tag}.npz", simulated=simulated, **logits,
             torch_capability=np.array(torch.backends.cpu.get_cpu_capability()))
    print(f"{tag}: torch dispatch {torch.backends.cpu.get_cpu_capability()}, max |fused - op by op| "
          f"{np.abs(logits['fused'] - logits['op_by_op']).max():.3g}")


def report(out: Path, json_path: Path) -> None:
    from core.checkpoint import load_checkpoint
    ckpt = load_checkpoint(out / "qat" / "best.pt")
    weight = ckpt["state_dict"]["fc.weight"].numpy()
    step = ckpt["quantization"]["activation_amax"]["fc"] / 127.5 * float(np.abs(weight).sum(1).max())
    runs = {}
    for f in sorted(out.glob("logits_*.npz")):
        d = np.load(f)
        runs[f.stem[len("logits_"):]] = {
            "torch_dispatch": str(d["torch_capability"]),
            "max_logit": float(np.abs(d["simulated"]).max()),
            "sim_vs_op_by_op_steps": float(np.abs(d["simulated"] - d["op_by_op"]).max() / step),
            "fused_vs_op_by_op_steps": float(np.abs(d["fused"] - d["op_by_op"]).max() / step),
            "fused_vs_sim_logits": float(np.abs(d["fused"] - d["simulated"]).max()),
            "argmax_agreement_fused_vs_sim": float(np.mean(d["fused"].argmax(1) == d["simulated"].argmax(1)))}
    result = {"command": "scripts/int8_cpu_check.py (see its docstring)", "one_step_in_logits": step, "runs": runs}
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    if mode == "prepare":
        prepare(folder)
    elif mode == "compare":
        compare(folder, sys.argv[3])
    elif mode == "report":
        report(folder, Path(sys.argv[3]))
    else:
        sys.exit(f"usage: {sys.argv[0]} prepare|compare|report FOLDER [TAG|JSON]")
