"""A numpy reference evaluator for CoreML ML Programs: check an .mlpackage numerically off macOS.

CoreML's own predict() runs only on macOS. This module reads the package's MIL program (the
model.mlmodel protobuf and weights/weight.bin) and runs it op by op in numpy, rounding every
tensor to the dtype the program declares for it (fp16 models are evaluated in fp16 storage
precision, fp32 math). That is close to what CoreML's CPU fp16 path does, and it exposes what
matters: wrong graphs, fp16 overflow (|x| > 65504 -> inf/NaN) and weight-quantization error.

    from core import mil_eval
    program = mil_eval.load("runs/coreml/last_small_fp16.mlpackage")
    logits = program.predict(x)            # x (N, C, T, V, M) float32 -> (N, classes) float32
    report = program.ranges(x[:1])         # per-op max|x|, fp16 overflow flags

It implements the ops the LAST family and coremltools' weight/activation quantization produce
(const, conv, linear, matmul, elementwise, activations, reductions, batch_norm, layout ops,
constexpr_affine_dequantize, constexpr_blockwise_shift_scale, quantize, dequantize); any other op
raises UnsupportedOpError naming it, so an unknown model fails loudly instead of silently.
Importing coremltools (for the protobuf and the blob reader) happens inside load().
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

FP16_MAX = 65504.0


class MILEvalError(RuntimeError):
    """The package cannot be evaluated (the message names the file and the reason)."""


class UnsupportedOpError(MILEvalError):
    """The program uses a MIL op this evaluator does not implement."""


# MIL DataType enum values (coremltools/proto/MIL.proto) -> numpy dtypes
_DTYPES: dict[int, Any] = {1: np.bool_, 10: np.float16, 11: np.float32, 12: np.float64, 21: np.int8, 22: np.int16,
                           23: np.int32, 24: np.int64, 31: np.uint8, 32: np.uint16, 33: np.uint32, 34: np.uint64}
# weight-blob data types -> (the reader's method, the view that gives its numbers: fp16 comes back as raw uint16)
BLOB_READERS: dict[int, tuple[str, Any]] = {
    10: ("read_fp16_data", np.float16), 11: ("read_float_data", None), 21: ("read_int8_data", None),
    31: ("read_uint8_data", None), 22: ("read_int16_data", None), 32: ("read_uint16_data", None),
    23: ("read_int32_data", None)}
_CAST_NAMES = {"fp16": np.float16, "fp32": np.float32, "int32": np.int32, "int16": np.int16, "int8": np.int8,
               "uint8": np.uint8, "bool": np.bool_, "fp64": np.float64, "int64": np.int64}


# ------------------------------------------------------------------------------------------------
# Op implementations. Each takes the op's resolved inputs (name -> value) and returns one value or a
# tuple of values (one per declared output). Math runs in float32 (float64 for fp64 inputs); the
# interpreter rounds results to the declared output dtype.

def _f(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype in (np.float16, np.bool_) or x.dtype.kind in "iu" else x


def _conv(a: dict[str, Any]) -> np.ndarray:
    x, w = _f(a["x"]), _f(a["weight"])
    spatial = x.ndim - 2
    if spatial not in (1, 2):
        raise UnsupportedOpError(f"conv with {spatial} spatial dims")
    if spatial == 1:  # treat as 2-D with a unit width
        x, w = x[..., None], w[..., None]
    strides = list(np.asarray(a.get("strides", [1] * spatial)).ravel()) + ([1] if spatial == 1 else [])
    dil = list(np.asarray(a.get("dilations", [1] * spatial)).ravel()) + ([1] if spatial == 1 else [])
    groups = int(a.get("groups", 1))
    kh, kw = w.shape[2], w.shape[3]
    pad_type = str(a.get("pad_type", "valid"))
    if pad_type == "custom":
        p = [int(v) for v in np.asarray(a.get("pad", [0] * 2 * spatial)).ravel()]
        pads = p + [0, 0] if spatial == 1 else p  # (top, bottom, left, right)
    elif pad_type == "valid":
        pads = [0, 0, 0, 0]
    elif pad_type in ("same", "same_lower"):
        pads = []
        for size, k, s, d in zip(x.shape[2:], (kh, kw), strides, dil):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            lo = total // 2 if pad_type == "same" else total - total // 2
            pads += [lo, total - lo]
    else:
        raise UnsupportedOpError(f"conv pad_type {pad_type!r}")
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    n, cin, h, wd = x.shape
    cout = w.shape[0]
    oh = (h - (kh - 1) * dil[0] - 1) // strides[0] + 1
    ow = (wd - (kw - 1) * dil[1] - 1) // strides[1] + 1
    cin_g, cout_g = cin // groups, cout // groups
    y = np.zeros((n, cout, oh, ow), dtype=np.float32)
    if groups == cin and cin_g == 1 and cout == cin:  # depthwise: per-channel shifted multiply-adds
        for i in range(kh):
            for j in range(kw):
                patch = x[:, :, i * dil[0]: i * dil[0] + (oh - 1) * strides[0] + 1: strides[0],
                          j * dil[1]: j * dil[1] + (ow - 1) * strides[1] + 1: strides[1]]
                y += patch * w[None, :, 0, i, j, None, None]
    else:
        for g in range(groups):
            xs = x[:, g * cin_g:(g + 1) * cin_g]
            ws = w[g * cout_g:(g + 1) * cout_g]
            for i in range(kh):
                for j in range(kw):
                    patch = xs[:, :, i * dil[0]: i * dil[0] + (oh - 1) * strides[0] + 1: strides[0],
                               j * dil[1]: j * dil[1] + (ow - 1) * strides[1] + 1: strides[1]]
                    y[:, g * cout_g:(g + 1) * cout_g] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    if a.get("bias") is not None:
        y += _f(a["bias"])[None, :, None, None]
    return y[..., 0] if spatial == 1 else y


def _matmul(a: dict[str, Any]) -> np.ndarray:
    x, y = _f(a["x"]), _f(a["y"])
    if a.get("transpose_x", False) and x.ndim > 1:
        x = np.swapaxes(x, -1, -2)
    if a.get("transpose_y", False) and y.ndim > 1:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def _linear(a: dict[str, Any]) -> np.ndarray:
    y = _f(a["x"]) @ _f(a["weight"]).T
    return y + _f(a["bias"]) if a.get("bias") is not None else y


def _axes(a: dict[str, Any]) -> tuple[int, ...] | None:
    axes = a.get("axes")
    return None if axes is None else tuple(int(v) for v in np.asarray(axes).ravel())


def _reduce(fn: Callable[..., np.ndarray]) -> Callable[[dict[str, Any]], np.ndarray]:
    return lambda a: fn(_f(a["x"]), axis=_axes(a), keepdims=bool(a.get("keep_dims", False)))


def _batch_norm(a: dict[str, Any]) -> np.ndarray:
    x = _f(a["x"])
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = _f(a["mean"]).reshape(shape), _f(a["variance"]).reshape(shape)
    y = (x - mean) / np.sqrt(var + float(a.get("epsilon", 1e-5)))
    if a.get("gamma") is not None:
        y = y * _f(a["gamma"]).reshape(shape)
    if a.get("beta") is not None:
        y = y + _f(a["beta"]).reshape(shape)
    return y


def _slice_by_index(a: dict[str, Any]) -> np.ndarray:
    x = np.asarray(a["x"])
    begin = np.asarray(a["begin"]).ravel()
    end = np.asarray(a["end"]).ravel()
    stride = np.asarray(a.get("stride", np.ones_like(begin))).ravel()
    rank = x.ndim
    bmask = np.asarray(a.get("begin_mask", [False] * rank)).ravel()
    emask = np.asarray(a.get("end_mask", [False] * rank)).ravel()
    smask = np.asarray(a.get("squeeze_mask", [False] * rank)).ravel()
    index = []
    for d in range(rank):
        s = int(stride[d])
        b = None if bmask[d] else int(begin[d])
        e = None if emask[d] else int(end[d])
        if smask[d]:
            index.append(int(begin[d]))
        else:
            index.append(slice(b, e, s))
    return x[tuple(index)]


def _slice_by_size(a: dict[str, Any]) -> np.ndarray:
    x = np.asarray(a["x"])
    begin, size = np.asarray(a["begin"]).ravel(), np.asarray(a["size"]).ravel()
    return x[tuple(slice(int(b), None if int(s) == -1 else int(b) + int(s)) for b, s in zip(begin, size))]


def _split(a: dict[str, Any], outputs: int) -> tuple[np.ndarray, ...]:
    x, axis = np.asarray(a["x"]), int(a.get("axis", 0))
    if a.get("split_sizes") is not None:
        cuts = np.cumsum(np.asarray(a["split_sizes"]).ravel())[:-1]
        return tuple(np.split(x, cuts, axis=axis))
    return tuple(np.split(x, int(a.get("num_splits", outputs)), axis=axis))


def _concat(a: dict[str, Any]) -> np.ndarray:
    values = [np.asarray(v) for v in a["values"]]
    if a.get("interleave", False):
        raise UnsupportedOpError("concat with interleave=True")
    return np.concatenate(values, axis=int(a["axis"]))


def _elu(a: dict[str, Any]) -> np.ndarray:
    x = _f(a["x"])
    return np.where(x > 0, x, float(a.get("alpha", 1.0)) * np.expm1(np.minimum(x, 0)))


def _axis_shape(value: Any, axis: int | None, rank: int) -> np.ndarray:
    v = np.asarray(value)
    if v.ndim == 0 or v.size == 1 and axis is None:
        return v.reshape(())
    shape = [1] * rank
    shape[axis % rank] = -1
    return v.reshape(shape)


def _dequantize(a: dict[str, Any], data_key: str = "input") -> np.ndarray:
    q = np.asarray(a[data_key]).astype(np.float32)
    axis = a.get("axis")
    axis = None if axis is None else int(axis)
    zp = a.get("zero_point")
    zp = 0.0 if zp is None else _axis_shape(zp, axis, q.ndim).astype(np.float32)
    scale = _axis_shape(a["scale"], axis, q.ndim).astype(np.float32)
    return (q - zp) * scale


def _quantize(a: dict[str, Any]) -> np.ndarray:
    x = _f(a["input"])
    axis = a.get("axis")
    axis = None if axis is None else int(axis)
    dtype = _CAST_NAMES[str(a["output_dtype"])]
    zp = a.get("zero_point")
    zp = 0.0 if zp is None else _axis_shape(zp, axis, x.ndim).astype(np.float32)
    info = np.iinfo(dtype)
    q = np.round(x / _axis_shape(a["scale"], axis, x.ndim)) + zp
    return np.clip(q, info.min, info.max).astype(dtype)


def _blockwise_shift_scale(a: dict[str, Any]) -> np.ndarray:
    data = np.asarray(a["data"]).astype(np.float32)
    scale = np.asarray(a["scale"]).astype(np.float32)
    offset = a.get("offset")

    def expand(t: np.ndarray) -> np.ndarray:  # repeat each block's parameter over its block
        for d in range(data.ndim):
            if t.shape[d] != data.shape[d]:
                t = np.repeat(t, data.shape[d] // t.shape[d], axis=d)
        return t

    if offset is not None:
        data = data - expand(np.asarray(offset).astype(np.float32))
    return data * expand(scale)


def _gather(a: dict[str, Any]) -> np.ndarray:
    return np.take(np.asarray(a["x"]), np.asarray(a["indices"]).astype(np.int64), axis=int(a.get("axis", 0)))


OPS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "conv": _conv,
    "matmul": _matmul,
    "linear": _linear,
    "add": lambda a: _f(a["x"]) + _f(a["y"]),
    "sub": lambda a: _f(a["x"]) - _f(a["y"]),
    "mul": lambda a: _f(a["x"]) * _f(a["y"]),
    "real_div": lambda a: _f(a["x"]) / _f(a["y"]),
    "maximum": lambda a: np.maximum(_f(a["x"]), _f(a["y"])),
    "minimum": lambda a: np.minimum(_f(a["x"]), _f(a["y"])),
    "pow": lambda a: np.power(_f(a["x"]), _f(a["y"])),
    "relu": lambda a: np.maximum(_f(a["x"]), 0),
    "elu": _elu,
    "tanh": lambda a: np.tanh(_f(a["x"])),
    "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-_f(a["x"]))),
    "exp": lambda a: np.exp(_f(a["x"])),
    "sqrt": lambda a: np.sqrt(_f(a["x"])),
    "rsqrt": lambda a: 1.0 / np.sqrt(_f(a["x"]) + float(a.get("epsilon", 1e-12))),
    "clip": lambda a: np.clip(_f(a["x"]), float(a["alpha"]), float(a["beta"])),
    "reduce_mean": _reduce(np.mean),
    "reduce_sum": _reduce(np.sum),
    "reduce_max": _reduce(np.max),
    "batch_norm": _batch_norm,
    "reshape": lambda a: np.reshape(a["x"], [int(v) for v in np.asarray(a["shape"]).ravel()]),
    "transpose": lambda a: np.transpose(a["x"], [int(v) for v in np.asarray(a["perm"]).ravel()]),
    "expand_dims": lambda a: np.expand_dims(a["x"], _axes(a)),
    "squeeze": lambda a: np.squeeze(a["x"], axis=_axes(a)),
    "concat": _concat,
    "slice_by_index": _slice_by_index,
    "slice_by_size": _slice_by_size,
    "gather": _gather,
    "fill": lambda a: np.full([int(v) for v in np.asarray(a["shape"]).ravel()], a.get("value", 0.0)),
    "identity": lambda a: a["x"],
    "cast": lambda a: np.asarray(a["x"]).astype(_CAST_NAMES[str(a["dtype"])]),
    "dequantize": _dequantize,
    "quantize": _quantize,
    "constexpr_affine_dequantize": lambda a: _dequantize(a, "quantized_data"),
    "constexpr_blockwise_shift_scale": _blockwise_shift_scale,
}
MULTI_OUTPUT_OPS = {"split": _split}


# ------------------------------------------------------------------------------------------------
# Protobuf decoding

def _tensor_type_dtype(value_type: Any) -> Any:
    kind = value_type.WhichOneof("type")
    if kind == "tensorType":
        return _DTYPES.get(value_type.tensorType.dataType)
    return None


def _decode_value(value: Any, blobs: Callable[[str, int, int, tuple[int, ...]], np.ndarray]) -> Any:
    """A MIL Value (immediate or blob-file) -> numpy array / python scalar / list."""
    kind = value.WhichOneof("value")
    vtype = value.type
    if kind == "blobFileValue":
        tt = vtype.tensorType
        shape = tuple(int(d.constant.size) for d in tt.dimensions)
        return blobs(value.blobFileValue.fileName, int(value.blobFileValue.offset), tt.dataType, shape)
    imm = value.immediateValue
    which = imm.WhichOneof("value")
    if which == "list":
        return [_decode_value(v, blobs) for v in imm.list.values]
    if which == "tuple":
        return tuple(_decode_value(v, blobs) for v in imm.tuple.values)
    if which != "tensor":
        raise MILEvalError(f"unsupported immediate value kind {which!r}")
    tt = vtype.tensorType
    dtype = _DTYPES.get(tt.dataType)
    shape = tuple(int(d.constant.size) for d in tt.dimensions)
    t = imm.tensor
    field_name = t.WhichOneof("value")
    if field_name == "strings":
        vals = list(t.strings.values)
        return vals[0] if tt.rank == 0 else vals
    if field_name == "bytes":  # packed fp16 / int8 / uint8 immediates
        arr = np.frombuffer(t.bytes.values, dtype=dtype).copy()
    elif field_name is None:
        arr = np.zeros(0, dtype=dtype)
    else:
        arr = np.asarray(list(getattr(t, field_name).values), dtype=dtype)
    return arr.reshape(shape) if tt.rank > 0 else arr.reshape(())


@dataclass
class OpRange:
    """What one op produced during a traced run."""
    op: str
    type: str
    dtype: str
    max_abs: float
    nonfinite: int
    fp16_overflow: bool


@dataclass
class MILProgram:
    """A loaded ML Program: call predict() like CoreML's MLModel.predict, but with numpy."""
    path: Path
    inputs: dict[str, tuple[tuple[int, ...], Any]]  # name -> (shape, dtype)
    outputs: list[str]
    output_dtypes: dict[str, Any]
    operations: list[Any] = field(repr=False)
    constants: dict[str, Any] = field(repr=False)
    metadata: dict[str, str] = field(default_factory=dict)
    opset: str = ""

    @property
    def input_name(self) -> str:
        return next(iter(self.inputs))

    @property
    def batch(self) -> int:
        return int(self.inputs[self.input_name][0][0])

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.operations:
            counts[op.type] = counts.get(op.type, 0) + 1
        return counts

    def run(self, feeds: dict[str, np.ndarray], trace: list[OpRange] | None = None) -> dict[str, np.ndarray]:
        """Evaluate the program on one feed dict of arrays with the declared (fixed) shapes."""
        env: dict[str, Any] = dict(self.constants)
        for name, (shape, dtype) in self.inputs.items():
            if name not in feeds:
                raise MILEvalError(f"{self.path}: missing input {name!r}")
            x = np.asarray(feeds[name])
            if tuple(x.shape) != tuple(shape):
                raise MILEvalError(f"{self.path}: input {name!r} must have shape {tuple(shape)}, got {x.shape}")
            env[name] = x.astype(dtype)
        for op in self.operations:
            if op.type == "const":
                continue
            if op.type.startswith("constexpr_"):
                continue  # folded into the constants at load time
            args = self._arguments(op, env)
            names = [o.name for o in op.outputs]
            try:
                if op.type in MULTI_OUTPUT_OPS:
                    results = MULTI_OUTPUT_OPS[op.type](args, len(names))
                elif op.type in OPS:
                    results = (OPS[op.type](args),)
                else:
                    raise UnsupportedOpError(f"{self.path}: MIL op {op.type!r} (output {names[0]!r}) is not "
                                             f"implemented by converters.mil_eval")
            except (ValueError, IndexError, KeyError) as exc:
                raise MILEvalError(f"{self.path}: op {op.type} -> {names[0]}: {exc}") from exc
            for out, value in zip(op.outputs, results):
                dtype = _tensor_type_dtype(out.type)
                raw = np.asarray(value)
                if dtype is not None and raw.dtype != dtype:
                    with np.errstate(over="ignore", invalid="ignore"):
                        value = raw.astype(dtype)
                env[out.name] = value
                if trace is not None and dtype is not None and np.issubdtype(np.dtype(dtype), np.floating):
                    finite = np.isfinite(raw)
                    max_abs = float(np.abs(raw[finite]).max()) if finite.any() else float("nan")
                    trace.append(OpRange(out.name, op.type, np.dtype(dtype).name, max_abs,
                                         int(raw.size - finite.sum()),
                                         dtype == np.float16 and (max_abs > FP16_MAX or not finite.all())))
        return {name: np.asarray(env[name]) for name in self.outputs}

    def _arguments(self, op: Any, env: dict[str, Any]) -> dict[str, Any]:
        """An op's inputs (by name from env, or immediate) plus its attributes (constexpr ops keep
        their parameters there)."""
        args: dict[str, Any] = {key: _decode_value(value, self._blob) for key, value in op.attributes.items()
                                if key != "name"}
        for key, arg in op.inputs.items():
            vals = [env[b.name] if b.WhichOneof("binding") == "name" else _decode_value(b.value, self._blob)
                    for b in arg.arguments]
            args[key] = vals if key == "values" else vals[0]
        return args

    def fold_constexprs(self) -> None:
        """Evaluate the constexpr_* ops (compressed weights) once, like CoreML does at load time."""
        for op in self.operations:
            if op.type.startswith("constexpr_"):
                if op.type not in OPS:
                    raise UnsupportedOpError(f"{self.path}: MIL op {op.type!r} is not implemented by "
                                             "converters.mil_eval")
                value = OPS[op.type](self._arguments(op, self.constants))
                dtype = _tensor_type_dtype(op.outputs[0].type)
                self.constants[op.outputs[0].name] = np.asarray(value).astype(dtype) if dtype else value

    def predict(self, x: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """Logits (N, classes) float32 for x (N, ...); a fixed-batch program is run row block by block."""
        if isinstance(x, dict):
            return np.asarray(self.run(x)[self.outputs[0]], dtype=np.float32)
        x = np.asarray(x, dtype=np.float32)
        b = self.batch
        if len(x) % b:
            raise MILEvalError(f"{self.path}: batch {len(x)} is not a multiple of the model's fixed batch {b}")
        outs = [self.run({self.input_name: x[i:i + b]})[self.outputs[0]] for i in range(0, len(x), b)]
        return np.concatenate(outs).astype(np.float32)

    def ranges(self, x: np.ndarray) -> list[OpRange]:
        """Per-op max|x| and fp16 overflow flags on one input batch (the fp16-safety check)."""
        trace: list[OpRange] = []
        self.run({self.input_name: np.asarray(x, dtype=np.float32)[: self.batch]}, trace)
        return trace

    # weights/weight.bin access, one reader per file
    def _blob(self, file_name: str, offset: int, data_type: int, shape: tuple[int, ...]) -> np.ndarray:
        raise MILEvalError("blob reader not initialised")


def _model_file(path: Path) -> tuple[Path, Path]:
    """(model.mlmodel, weights folder) of an .mlpackage."""
    manifest = path / "Manifest.json"
    if not manifest.is_file():
        raise MILEvalError(f"{path}: not an .mlpackage (no Manifest.json)")
    data = path / "Data" / "com.apple.CoreML"
    spec_file = data / "model.mlmodel"
    try:
        info = json.loads(manifest.read_text())
        root = info.get("rootModelIdentifier")
        item = info.get("itemInfoEntries", {}).get(root, {})
        if item.get("path"):
            spec_file = data / Path(item["path"]).name if (data / Path(item["path"]).name).is_file() else spec_file
    except (json.JSONDecodeError, AttributeError):
        pass
    if not spec_file.is_file():
        raise MILEvalError(f"{path}: model spec {spec_file} is missing")
    return spec_file, data / "weights"


def load(path: str | Path) -> MILProgram:
    """Read an .mlpackage (ML Program) into a MILProgram."""
    path = Path(path)
    try:
        from coremltools.proto import Model_pb2
        from coremltools import libmilstoragepython
    except ImportError as exc:
        raise MILEvalError("converters.mil_eval needs coremltools: pip install 'coremltools>=8' "
                           "'typing-extensions<4.13'") from exc
    spec_file, weights_dir = _model_file(path)
    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(spec_file.read_bytes())
    except Exception as exc:  # protobuf DecodeError
        raise MILEvalError(f"{spec_file}: unreadable CoreML spec ({exc})") from exc
    if spec.WhichOneof("Type") != "mlProgram":
        raise MILEvalError(f"{path}: not an ML Program (model type {spec.WhichOneof('Type')!r})")
    fn = spec.mlProgram.functions["main"]
    opset = fn.opset
    block = fn.block_specializations[opset]

    readers: dict[str, Any] = {}

    def blob(file_name: str, offset: int, data_type: int, shape: tuple[int, ...]) -> np.ndarray:
        file = weights_dir / Path(file_name.replace("@model_path/weights/", "")).name
        if file.name not in readers:
            if not file.is_file():
                raise MILEvalError(f"{path}: weight file {file} is missing")
            readers[file.name] = libmilstoragepython._BlobStorageReader(str(file))
        reader = readers[file.name]
        if data_type not in BLOB_READERS:
            raise UnsupportedOpError(f"{path}: weight blob of MIL data type {data_type}")
        method, view = BLOB_READERS[data_type]
        arr = getattr(reader, method)(offset)
        if view is not None:
            arr = arr.view(view)
        return np.asarray(arr).reshape(shape)

    constants: dict[str, Any] = {}
    for op in block.operations:
        if op.type == "const":
            constants[op.outputs[0].name] = _decode_value(op.attributes["val"], blob)

    inputs = {}
    for inp in fn.inputs:
        tt = inp.type.tensorType
        inputs[inp.name] = (tuple(int(d.constant.size) for d in tt.dimensions), _DTYPES[tt.dataType])
    outputs = list(block.outputs)
    program = MILProgram(path=path, inputs=inputs, outputs=outputs, output_dtypes={}, operations=list(block.operations),
                         constants=constants, metadata=dict(spec.description.metadata.userDefined), opset=opset)
    program._blob = blob  # type: ignore[method-assign]
    program.fold_constexprs()
    return program
