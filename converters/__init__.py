"""Converters: checkpoint -> ONNX (fp32, INT8 Q/DQ), TensorRT, TFLite and CoreML, one shared signature.

    python -m converters.onnx  --ckpt best.pt                      # fp32 ONNX, verified against PyTorch
    python -m converters.calib --ckpt best.pt --data nw_ucla:train # calibration set (.npz) for INT8
    python -m converters.int8  --ckpt best.pt --calib calib.npz    # static INT8 Q/DQ ONNX
    python -m converters.trt   --ckpt best.pt --precision int8 --calib calib.npz
    python -m converters --ckpt best.pt --formats onnx,int8,trt,tflite,coreml --data nw_ucla:test

Every format module exposes export(ckpt, out_dir, precision, calib=None, batch=1, **opts) -> ExportResult
(converters.common). Backends are imported lazily: importing this package needs none of them.
"""
