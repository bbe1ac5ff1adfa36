"""Deploy files: ``IntegerModel.save(path)`` / ``deploy.load(path)``.

A zip with exactly two members, hardened like model files (saving.py): ``deploy.json`` (format,
version, shapes, the steps with their parameters, and the dtype/shape of every array) and
``arrays.npz`` (only the declared arrays; dtypes from a short list, no pickle, headers checked
before reading). Integer layers store their weights bit-packed at their bit width (binary 1 bit,
4-bit 4 bits ...), plus the per-channel output transform; the kernel panels, padding corrections
and integer biases are rebuilt from them at load. Float layers are stored as a layer config
(rebuilt through our registries, never imported or evaluated) and float32 weights. Loading ends
with a dry run of one sample, so an inconsistent file fails at load, with a ValueError naming
the file and the field, not later."""
import io
import math
import os
import zipfile

import numpy as np

from .. import quantizers as Q
from .. import saving as S
from .grid import Grid
from .packing import (pack_binary_weights, pack_codes, pack_int8_weights, pack_ternary_weights,
                      unpack_codes)
from .stages import Decode, Encode, FloatLayer, FloatThreshPool, IntConv, MaxPool, QuantizeInput

FORMAT = "qnn_ext-integer-model"
FORMAT_VERSION = 1
JSON_NAME = "deploy.json"
ARRAYS_NAME = "arrays.npz"
DTYPES = {"float32": "<f4", "int32": "<i4", "int8": "|i1", "uint8": "|u1"}
MAX_STEPS = 10_000


class DeployFileError(S.ModelFileError):
    """A deploy file that cannot be loaded."""


def _err(source, field, msg):
    return DeployFileError(f"{source}: {field}: {msg}")


# ------------------------------------------------------------------ save

def save(im, path):
    arrays = {}

    def put(a):
        if a is None:
            return None
        name = f"a{len(arrays):04d}"
        arrays[name] = np.ascontiguousarray(a)
        return name

    steps = []
    for s in im.steps:
        if isinstance(s, QuantizeInput):
            steps.append({"type": "quantize_input", "quantizer": {
                "class_name": type(s.quantizer).__name__, "config": s.quantizer.get_config()}})
        elif isinstance(s, Encode):
            steps.append({"type": "encode", "grid": s.grid.vals.tolist(), "to": s.to, "name": s.name})
        elif isinstance(s, Decode):
            steps.append({"type": "decode", "grid": s.grid.vals.tolist(), "from": s.frm,
                          "channels": s.channels, "shape": list(s.shape), "name": s.name})
        elif isinstance(s, MaxPool):
            steps.append({"type": "maxpool", "name": s.name, "pool_size": list(s.pool_size),
                          "strides": list(s.strides), "padding": list(s.padding), "planes": s.planes})
        elif isinstance(s, FloatThreshPool):
            steps.append({"type": "fthresh", "name": s.name, "layers": list(s.layers), "mode": s.mode,
                          "code_mul": s.code_mul, "out_grid": s.out_grid.vals.tolist(),
                          "pool_size": list(s.pool_size), "strides": list(s.strides),
                          "padding": list(s.padding), "thr": put(s.thr), "dirs": put(s.dirs),
                          "conv": None if s.conv is None else {
                              "w": put(s.conv[0]), "strides": list(s.conv[1]), "padding": list(s.conv[2]),
                              "out_hw": list(getattr(s, "conv_out", (0, 0)))}})
        elif isinstance(s, FloatLayer):
            layer = s.layer
            steps.append({"type": "float", "layer": {"class_name": type(layer).__name__,
                                                     "config": layer.get_config()},
                          "in_shape": list(s.in_shape), "out_shape": list(s.out_shape),
                          "activation_only": s.activation_only,
                          "weights": [put(w.astype(np.float32)) for w in layer.get_weights()]})
        elif isinstance(s, IntConv):
            codes = s.codes
            # +-1 kernels are stored as sign bits, everything else in two's complement
            signs = s.weight_bits() == 1 and not np.any(codes == 0)
            steps.append({"type": "int", "name": s.name, "layers": list(s.layers),
                          "conv_kind": s.conv_kind, "cin": s.cin, "cout": s.cout,
                          "kernel_size": list(s.kernel_size), "strides": list(s.strides),
                          "padding": list(s.padding), "in_hw": list(s.in_hw), "zp": s.zp,
                          "mode": s.mode, "code_mul": s.code_mul, "weight_bits": s.weight_bits(),
                          "exact": bool(s.exact), "dense": s.dense,
                          "out_grid": None if s.out_grid is None else s.out_grid.vals.tolist(),
                          "code_format": "sign" if signs else "twos",
                          "codes": put(pack_codes(codes, s.weight_bits(), signs)),
                          "mul": put(s.mul), "add": put(s.add), "thr": put(s.thr), "dirs": put(s.dirs)})
        else:
            raise TypeError(f"IntegerModel.save: unknown step {type(s).__name__}")
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": im.name,
           "input_shape": list(im.input_shape), "output_shape": list(im.output_shape), "steps": steps,
           "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()}}
    text = S._dumps(doc, "the integer model")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    tmp = f"{path}.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(JSON_NAME, text)
        zf.writestr(ARRAYS_NAME, buf.getvalue())
    os.replace(tmp, path)


# ------------------------------------------------------------------ load

def _read_npy(data, name, dtype, shape, source):
    field = f"{ARRAYS_NAME}/{name}"
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            hshape, fortran, dt = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            hshape, fortran, dt = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as e:  # noqa: BLE001 -- malformed header text
        raise _err(source, field, f"bad .npy header ({type(e).__name__}: {e})") from None
    if dt.str != DTYPES[dtype] and not (dt.itemsize == 1 and dt.kind == np.dtype(DTYPES[dtype]).kind):
        raise _err(source, field, f"dtype {dt}, expected {dtype}")
    if fortran or tuple(hshape) != tuple(shape):
        raise _err(source, field, f"shape {tuple(hshape)} (fortran={fortran}), expected {tuple(shape)}")
    nbytes = int(math.prod(shape)) * dt.itemsize
    start = f.tell()
    if len(data) - start != nbytes:
        raise _err(source, field, f"{len(data) - start} data bytes, expected {nbytes}")
    arr = np.frombuffer(data, dtype=dt, count=int(math.prod(shape)), offset=start).reshape(shape).copy()
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise _err(source, field, "NaN or inf values")
    return arr


def _ints(v, source, field, n=None, lo=0, hi=S.MAX_CONFIG_INT):
    S._expect(v, list, source, field, "a list of integers")
    if n is not None and len(v) != n:
        raise _err(source, field, f"expected {n} values, got {len(v)}")
    if len(v) > 32:
        raise _err(source, field, "too many values")
    return tuple(S._expect_int(x, source, f"{field}[{i}]", lo, hi) for i, x in enumerate(v))


def _str(v, source, field, choices=None):
    S._expect(v, str, source, field, "a string")
    if choices is not None and v not in choices:
        raise _err(source, field, f"expected one of {choices}, got {S._short(v)}")
    if len(v) > 1000:
        raise _err(source, field, "string too long")
    return v


def _grid(v, source, field):
    S._expect(v, list, source, field, "a list of numbers")
    if not 2 <= len(v) <= 256 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                         and math.isfinite(x) for x in v):
        raise _err(source, field, "expected 2 to 256 finite numbers")
    try:
        return Grid(v, field)
    except ValueError as e:
        raise _err(source, field, str(e)) from None


def _keys(d, source, field, required, optional=()):
    S._expect(d, dict, source, field, "an object")
    missing = [k for k in required if k not in d]
    extra = [k for k in d if k not in required and k not in optional]
    if missing or extra:
        raise _err(source, field, f"missing keys {missing}, unexpected keys {extra}")


def _array(arrays, name, source, field, dtype, shape=None, optional=False):
    if name is None and optional:
        return None
    _str(name, source, field)
    if name not in arrays:
        raise _err(source, field, f"names undeclared array {S._short(name)}")
    a = arrays[name]
    if str(a.dtype) != dtype or (shape is not None and tuple(a.shape) != tuple(shape)):
        raise _err(source, field, f"array {name} is {a.dtype} {a.shape}, expected {dtype} {shape}")
    return a


def _float_layer(st, arrays, source, field):
    _keys(st, source, field, ("type", "layer", "in_shape", "out_shape", "activation_only", "weights"))
    in_shape = _ints(st["in_shape"], source, f"{field}.in_shape", lo=1)
    out_shape = _ints(st["out_shape"], source, f"{field}.out_shape", lo=1)
    _keys(st["layer"], source, f"{field}.layer", ("class_name", "config"))
    cls = _str(st["layer"]["class_name"], source, f"{field}.layer.class_name")
    cfg = dict(S._expect(st["layer"]["config"], dict, source, f"{field}.layer.config"))
    cfg.pop("batch_input_shape", None)
    seq_cfg = {"name": "deploy_step", "layers": [
        {"class_name": "InputLayer", "config": {"name": "deploy_in", "batch_input_shape": [None] + list(in_shape),
                                                "dtype": "float32"}},
        {"class_name": cls, "config": cfg}]}
    seq = S._build("Sequential", seq_cfg, None, source, f"{field}.layer", budget=S.MAX_JSON_PARAMS)
    layer = seq.layers[-1]
    want = [w.shape for w in layer.get_weights()]
    names = S._expect(st["weights"], list, source, f"{field}.weights")
    if len(names) != len(want):
        raise _err(source, f"{field}.weights", f"{len(names)} arrays, the layer has {len(want)} weights")
    layer.set_weights([_array(arrays, n, source, f"{field}.weights[{i}]", "float32", s)
                       for i, (n, s) in enumerate(zip(names, want))])
    act_only = S._expect(st["activation_only"], bool, source, f"{field}.activation_only")
    return FloatLayer(layer, in_shape, activation_only=act_only, out_shape=out_shape)


def _fthresh_step(st, arrays, source, field):
    _keys(st, source, field, ("type", "name", "layers", "mode", "code_mul", "out_grid", "pool_size",
                              "strides", "padding", "thr", "dirs", "conv"))
    f = lambda k: f"{field}.{k}"
    layers = [_str(x, source, f("layers")) for x in S._expect(st["layers"], list, source, f("layers"))]
    mode = _str(st["mode"], source, f("mode"), ("codes", "bits", "tbits"))
    grid = _grid(st["out_grid"], source, f("out_grid"))
    if (mode == "bits" and not grid.binary) or (mode == "tbits" and not grid.ternary):
        raise _err(source, f("out_grid"), f"does not fit mode {mode!r}")
    thr = _array(arrays, st["thr"], source, f("thr"), "float32")
    if thr.ndim != 2 or thr.shape[0] != grid.n - 1:
        raise _err(source, f("thr"), f"shape {thr.shape} does not match {grid.n} levels")
    dirs = _array(arrays, st["dirs"], source, f("dirs"), "int8", (thr.shape[1],))
    if not np.all(np.abs(dirs) == 1):
        raise _err(source, f("dirs"), "values must be -1 or +1")
    conv = None
    if st["conv"] is not None:
        cv = st["conv"]
        _keys(cv, source, f("conv"), ("w", "strides", "padding", "out_hw"))
        w = _array(arrays, cv["w"], source, f("conv.w"), "float32")
        if w.ndim != 4 or w.shape[3] != thr.shape[1]:
            raise _err(source, f("conv.w"), f"shape {w.shape} does not match {thr.shape[1]} channels")
        conv = (w, _ints(cv["strides"], source, f("conv.strides"), 2, 1, 1 << 20),
                _ints(cv["padding"], source, f("conv.padding"), 4, 0, 1 << 20))
        out_hw = _ints(cv["out_hw"], source, f("conv.out_hw"), 2, 0, 1 << 20)
    step = FloatThreshPool(_str(st["name"], source, f("name")), layers, thr, dirs, mode,
                           S._expect_int(st["code_mul"], source, f("code_mul"), 1, 255), grid,
                           _ints(st["pool_size"], source, f("pool_size"), 2, 1, 1 << 20),
                           _ints(st["strides"], source, f("strides"), 2, 1, 1 << 20),
                           _ints(st["padding"], source, f("padding"), 4, 0, 1 << 20), conv=conv)
    if conv is not None:
        step.conv_out = out_hw
    return step


def _int_step(st, arrays, source, field):
    keys = ("type", "name", "layers", "conv_kind", "cin", "cout", "kernel_size", "strides", "padding",
            "in_hw", "zp", "mode", "code_mul", "weight_bits", "exact", "dense", "out_grid", "code_format", "codes",
            "mul", "add", "thr", "dirs")
    _keys(st, source, field, keys)
    f = lambda k: f"{field}.{k}"
    name = _str(st["name"], source, f("name"))
    layers = [_str(x, source, f("layers")) for x in S._expect(st["layers"], list, source, f("layers"))]
    kind = _str(st["conv_kind"], source, f("conv_kind"), ("binary", "ternary", "tt", "int8"))
    cin = S._expect_int(st["cin"], source, f("cin"), 1, 1 << 24)
    cout = S._expect_int(st["cout"], source, f("cout"), 1, 1 << 24)
    ks = _ints(st["kernel_size"], source, f("kernel_size"), 2, 1, 1 << 20)
    strides = _ints(st["strides"], source, f("strides"), 2, 1, 1 << 20)
    pads = _ints(st["padding"], source, f("padding"), 4, 0, 1 << 20)
    in_hw = _ints(st["in_hw"], source, f("in_hw"), 2, 1, 1 << 20)
    zp = S._expect_int(st["zp"], source, f("zp"), 0, 255)
    mode = _str(st["mode"], source, f("mode"), ("float", "codes", "bits", "tbits"))
    code_mul = S._expect_int(st["code_mul"], source, f("code_mul"), 1, 255)
    wbits = S._expect_int(st["weight_bits"], source, f("weight_bits"), 1, 8)
    exact = S._expect(st["exact"], bool, source, f("exact"))
    dense = S._expect(st["dense"], bool, source, f("dense"))
    out_grid = None if st["out_grid"] is None else _grid(st["out_grid"], source, f("out_grid"))
    if ((mode == "float") != (out_grid is None) or (mode == "bits" and not out_grid.binary)
            or (mode == "tbits" and not out_grid.ternary)):
        raise _err(source, f("out_grid"), f"does not match mode {mode!r}")
    count = ks[0] * ks[1] * cin * cout
    if count > S.MAX_JSON_PARAMS:
        raise _err(source, field, f"{count} weights is too many")
    onebit = _str(st["code_format"], source, f("code_format"), ("sign", "twos")) == "sign"
    if onebit and wbits != 1:
        raise _err(source, f("code_format"), "sign-bit codes need weight_bits 1")
    if kind == "binary" and wbits != 1:
        raise _err(source, f("weight_bits"), "binary layers have 1-bit weights")
    nbytes = -(-count * (1 if onebit else wbits) // 8)
    buf = _array(arrays, st["codes"], source, f("codes"), "uint8", (nbytes,))
    codes = unpack_codes(buf, wbits, count, onebit).reshape(ks + (cin, cout))
    geo = dict(cin=cin, cout=cout, kernel_size=ks, strides=strides, padding=pads, in_hw=in_hw,
               weight_bits=wbits, exact=exact, dense=dense, conv_kind=kind, zp=zp, mode=mode,
               code_mul=code_mul, out_grid=out_grid, codes=codes)
    wk = codes.reshape(-1, cout).astype(np.int64)
    if kind == "binary":
        panel, wsum = pack_binary_weights(codes)
        geo.update(panel=panel, wsum=wsum, imul=-2, ibias=np.full(cout, ks[0] * ks[1] * cin, np.int32))
    elif kind in ("ternary", "tt"):
        if np.abs(codes).max() > 1:
            raise _err(source, f("codes"), "ternary layers have codes in {-1, 0, 1}")
        panel, wsum, nnz = pack_ternary_weights(codes)
        if kind == "ternary":
            geo.update(panel=panel, wsum=wsum, imul=-2, ibias=nnz)
        else:
            geo.update(panel=panel, wsum=None, imul=1, ibias=np.zeros(cout, np.int32))
    else:
        geo.update(panel=pack_int8_weights(codes), wsum=None, imul=1,
                   ibias=(-zp * wk.sum(0)).astype(np.int32))
    if mode == "float":
        geo["mul"] = _array(arrays, st["mul"], source, f("mul"), "float32", (cout,))
        geo["add"] = _array(arrays, st["add"], source, f("add"), "float32", (cout,))
    else:
        nthr = out_grid.n - 1
        geo["thr"] = _array(arrays, st["thr"], source, f("thr"), "int32", (nthr, cout))
        d = geo["dirs"] = _array(arrays, st["dirs"], source, f("dirs"), "int8", (cout,))
        if not np.all(np.abs(d) == 1):
            raise _err(source, f("dirs"), "values must be -1 or +1")
        if np.any(np.diff(geo["thr"].astype(np.int64), axis=0) < 0):
            raise _err(source, f("thr"), "thresholds must ascend per channel")
    return IntConv(name, layers, **geo)


def load(path):
    source = os.fspath(path)
    try:
        zf = zipfile.ZipFile(source)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 -- BadZipFile, truncated files, ...
        raise _err(source, "file", f"not a valid deploy file (zip): {type(e).__name__}: {e}") from None
    with zf:
        infos = S._check_members(zf, source, {JSON_NAME, ARRAYS_NAME},
                                 {JSON_NAME: S.MAX_CONFIG_BYTES}, S.MAX_TOTAL_BYTES)
        doc = S._parse_json(S._read_member(zf, infos[JSON_NAME], source), source, JSON_NAME)
        _keys(doc, source, JSON_NAME, ("format", "format_version", "name", "input_shape",
                                       "output_shape", "steps", "arrays"))
        if doc["format"] != FORMAT:
            raise _err(source, "format", f"expected {FORMAT!r}, got {S._short(doc['format'])}")
        if doc["format_version"] != FORMAT_VERSION:
            raise _err(source, "format_version", f"expected {FORMAT_VERSION}, got {S._short(doc['format_version'])}")
        decl = S._expect(doc["arrays"], dict, source, "arrays")
        if len(decl) > S.MAX_ARRAYS:
            raise _err(source, "arrays", "too many arrays")
        expected = {}
        for k, v in decl.items():
            _keys(v, source, f"arrays.{k}", ("dtype", "shape"))
            if not (isinstance(k, str) and k.isidentifier() and len(k) < 64):
                raise _err(source, "arrays", f"bad array name {S._short(k)}")
            expected[k] = (_str(v["dtype"], source, f"arrays.{k}.dtype", tuple(DTYPES)),
                           S._expect_shape(v["shape"], source, f"arrays.{k}.shape"))
        npz = S._read_member(zf, infos[ARRAYS_NAME], source)
    try:
        inner = zipfile.ZipFile(io.BytesIO(npz))
    except Exception as e:  # noqa: BLE001
        raise _err(source, ARRAYS_NAME, f"not a valid .npz ({type(e).__name__}: {e})") from None
    with inner:
        caps = {f"{k}.npy": int(math.prod(s)) * 4 + 65536 for k, (_, s) in expected.items()}
        members = S._check_members(inner, f"{source}/{ARRAYS_NAME}", set(caps), caps, S.MAX_TOTAL_BYTES)
        arrays = {k: _read_npy(S._read_member(inner, members[f"{k}.npy"], source), k, dt, shp, source)
                  for k, (dt, shp) in expected.items()}
    name = _str(doc["name"], source, "name")
    in_shape = _ints(doc["input_shape"], source, "input_shape", lo=1)
    out_shape = _ints(doc["output_shape"], source, "output_shape", lo=1)
    raw = S._expect(doc["steps"], list, source, "steps")
    if not 1 <= len(raw) <= MAX_STEPS:
        raise _err(source, "steps", f"expected 1 to {MAX_STEPS} steps, got {len(raw)}")
    steps = []
    for i, st in enumerate(raw):
        field = f"steps[{i}]"
        S._expect(st, dict, source, field, "an object")
        t = _str(st.get("type"), source, f"{field}.type",
                 ("quantize_input", "encode", "decode", "maxpool", "fthresh", "float", "int"))
        if t == "quantize_input":
            _keys(st, source, field, ("type", "quantizer"))
            try:
                q = Q.get_quantizer(S._expect(st["quantizer"], dict, source, f"{field}.quantizer"))
            except (ValueError, TypeError) as e:
                raise _err(source, f"{field}.quantizer", str(e)) from None
            steps.append(QuantizeInput(q))
        elif t == "encode":
            _keys(st, source, field, ("type", "grid", "to", "name"))
            steps.append(Encode(_grid(st["grid"], source, f"{field}.grid"),
                                _str(st["to"], source, f"{field}.to", ("bits", "tbits", "levels")),
                                _str(st["name"], source, f"{field}.name")))
        elif t == "decode":
            _keys(st, source, field, ("type", "grid", "from", "channels", "shape", "name"))
            steps.append(Decode(_grid(st["grid"], source, f"{field}.grid"),
                                _str(st["from"], source, f"{field}.from", ("bits", "tbits", "levels")),
                                S._expect_int(st["channels"], source, f"{field}.channels", 1),
                                _ints(st["shape"], source, f"{field}.shape", lo=1),
                                _str(st["name"], source, f"{field}.name")))
        elif t == "maxpool":
            _keys(st, source, field, ("type", "name", "pool_size", "strides", "padding", "planes"))
            steps.append(MaxPool(_str(st["name"], source, f"{field}.name"),
                                 _ints(st["pool_size"], source, f"{field}.pool_size", 2, 1, 1 << 20),
                                 _ints(st["strides"], source, f"{field}.strides", 2, 1, 1 << 20),
                                 _ints(st["padding"], source, f"{field}.padding", 4, 0, 1 << 20),
                                 S._expect_int(st["planes"], source, f"{field}.planes", 1, 2)))
        elif t == "float":
            steps.append(_float_layer(st, arrays, source, field))
        elif t == "fthresh":
            steps.append(_fthresh_step(st, arrays, source, field))
        else:
            steps.append(_int_step(st, arrays, source, field))
    from .model import IntegerModel
    im = IntegerModel(steps, in_shape, out_shape, name=name)
    try:
        im.predict(np.zeros((1,) + in_shape, np.float32))
    except Exception as e:  # noqa: BLE001 -- any inconsistency between the steps
        raise _err(source, "steps", f"the steps do not fit together ({type(e).__name__}: {e})") from None
    return im
