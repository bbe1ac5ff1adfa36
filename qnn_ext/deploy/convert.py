"""``convert(model)``: plan the integer steps of a trained model.

The model must be one chain of layers (Sequential or a functional model without branches). Each
Dense/Conv2D whose input is on a quantizer's grid (grid.py) and whose quantized kernel is, per
output channel, a scale times small integers becomes an integer convolution:

* binary kernel (+-s) on a +-a input -> XNOR-popcount on packed bits; else int8 (u8 levels x s8);
* the integer dot product ``acc`` equals the float layer's output divided by ``a*s[c]`` (exactly,
  when the scales are powers of two and the sums stay below 2**24, which is when the float model
  itself adds exactly);
* the layers after it that act per channel and monotonically (its own activation, bias,
  BatchNormalization, relu/sigmoid/tanh) up to the next grid quantizer are folded into
  per-channel integer thresholds: the level of the quantizer's output is the number of thresholds
  ``dir*acc`` reaches. The thresholds are found by running *the model's own layers* on every
  possible ``acc`` (or by bisection when the range is large), so they reproduce the float
  model's rounding exactly;
* with no quantizer after it, the output is ``float(acc)*a*s[c] + bias`` (what the float conv and
  bias add compute) and the remaining layers run in float.

Max pooling and Flatten between integer layers work on the packed/level tensors. Everything
else runs the model's layer on the float kernels, exact by construction.
"""
import numpy as np

from .. import quantizers as Q
from ..layers import base as _base
from ..layers.conv import Conv2D, Conv2DTranspose
from ..layers.core import Activation, Dense, Dropout, Flatten, ReLU
from ..layers.normalization import BatchNormalization
from ..layers.pooling import MaxPooling2D
from ..layers.quant_utils import act_forward
from .. import activations as _acts
from .grid import grid_of
from .packing import pack_binary_weights, pack_int8_weights, pack_ternary_weights
from .stages import Decode, Encode, FloatLayer, FloatThreshPool, IntConv, MaxPool, QuantizeInput

F32 = np.float32
NEVER = 2 ** 30          # a threshold no accumulator reaches
ALWAYS = -(2 ** 30)      # a threshold every accumulator reaches
ENUMERATE_MAX = 1 << 13  # accumulator ranges up to this are evaluated point by point


class ConversionError(ValueError):
    """A layer that cannot be made exact in integers (the message names it)."""


def _who(layer):
    return f"{type(layer).__name__} '{layer.name}'"


# ------------------------------------------------------------------ model structure

def _chain(model):
    """The layers of a single-path model, input to output, and the input shape (no batch)."""
    from ..models import Sequential
    if not getattr(model, "_graph", None):
        raise ConversionError(f"convert: model '{model.name}' has no layers (build or call it first)")
    ins = model.inputs
    if len(ins) != 1 or len(model.outputs) != 1:
        raise ConversionError(f"convert: model '{model.name}' must have one input and one output")
    shape = tuple(ins[0].shape[1:])
    if any(d is None for d in shape):
        raise ConversionError(f"convert: model '{model.name}' input shape {ins[0].shape} must be fully known")
    if isinstance(model, Sequential):
        return [l for l in model.layers if not isinstance(l, _base.InputLayer)], shape
    prev = ins[0]
    layers = []
    for t in model._order:
        if len(t.inputs) != 1 or t.inputs[0] is not prev:
            raise ConversionError(f"convert: layer '{t.layer.name}' is not on a single chain from the "
                                  f"input (branches and merges are not supported)")
        layers.append(t.layer)
        prev = t
    if prev is not model.outputs[0]:
        raise ConversionError(f"convert: model '{model.name}' output is not the end of its layer chain")
    return layers, shape


def _is_weight_layer(layer):
    return (isinstance(layer, Dense) or (isinstance(layer, Conv2D) and not isinstance(layer, Conv2DTranspose)
                                         and getattr(layer, "rank", 2) == 2))


def _monotone_act(act):
    """+1/None: whether an activation is per-element monotone non-decreasing (None: no)."""
    if act is None or act is _acts.get("linear"):
        return True
    if isinstance(act, Q.BaseQuantizer):
        return True  # every QKeras quantizer is a non-decreasing staircase
    return any(act is _acts.lookup(n) for n in ("relu", "sigmoid", "tanh"))


def _is_identity(act):
    return act is None or act is _acts.get("linear")


def _elementwise(layer):
    """True for layers acting per channel and monotonically (foldable into thresholds)."""
    if isinstance(layer, BatchNormalization):
        return True
    if isinstance(layer, ReLU):
        return layer.negative_slope >= 0 and layer.threshold == 0
    if isinstance(layer, Activation):
        return _monotone_act(layer.activation)
    return False


# ------------------------------------------------------------------ kernels as integers

def _min_twos_bits(lo, hi):
    b = 1
    while not (-(2 ** (b - 1)) <= lo and hi <= 2 ** (b - 1) - 1):
        b += 1
    return b


def kernel_codes(layer, kq):
    """Quantized kernel (..., CO) -> (codes int8, per-channel scale float64, kind, bits) or
    raise ConversionError. kind 'binary' when every weight is +-s[c], 'ternary' for {-s, 0, s}."""
    k = np.asarray(kq, np.float64).reshape(-1, kq.shape[-1])
    co = k.shape[1]
    amax = np.abs(k).max(axis=0)
    # all magnitudes equal (or zero): +-s or {-s, 0, s}, whatever s is (alpha='auto' included)
    s = np.where(amax > 0, amax, 1.0)
    codes = k / s
    if np.all(np.isin(codes, (-1.0, 0.0, 1.0))):
        binary = not np.any(codes == 0)
        return codes.astype(np.int8), s, ("binary" if binary else "ternary"), (1 if binary else 2)
    # otherwise power-of-two multiples of integers: the scale is the lowest set bit per channel
    scale = np.ones(co)
    for c in range(co):
        nz = k[:, c][k[:, c] != 0]
        if nz.size:
            m, e = np.frexp(nz)                       # nz = m * 2**e, 0.5 <= |m| < 1
            mi = np.abs(m * 2.0 ** 53).astype(np.int64)
            tz = np.array([(int(v) & -int(v)).bit_length() - 1 for v in mi])
            scale[c] = 2.0 ** int(np.min(e - 53 + tz))
    codes = k / scale
    if np.abs(codes).max() > 127 or not np.array_equal(codes, np.round(codes)):
        raise ConversionError(f"convert: {_who(layer)}: its quantized kernel is not a per-channel "
                              f"power-of-two scale times integers in [-127, 127] (kernel quantizer "
                              f"{layer.kernel_quantizer_internal}; use alpha='auto_po2' or alpha=1)")
    codes = codes.astype(np.int8)
    return codes, scale, "int8", _min_twos_bits(int(codes.min()), int(codes.max()))


# ------------------------------------------------------------------ thresholds

def _run_fn(fold, layer, out_ndim):
    """z (P, CO) float32 -> the float values after the folded layers, computed by the layers."""
    def run(z):
        y = z.reshape((z.shape[0],) + (1,) * (out_ndim - 2) + (z.shape[1],))
        for kind, obj in fold:
            if kind == "act":
                y = np.asarray(act_forward(obj.activation, np.ascontiguousarray(y), False)[0], F32)
            else:
                y = np.asarray(obj.call(np.ascontiguousarray(y), training=False), F32)
        return y.reshape(z.shape)
    return run


def thresholds(who, run, mul, bias, lo, hi, grid):
    """Per-channel ascending thresholds (levels-1, CO) int32 and dir (CO,) int8 such that
    level(acc) = #{j : dir*acc >= thr[j]} for every acc in [lo, hi], level being the output
    grid level of run(float32(acc)*mul + bias). Raises ConversionError if not monotone."""
    co = mul.size

    def levels(acc):
        z = acc.astype(F32) * mul
        if bias is not None:
            z = z + bias
        return grid.level_index(run(z.astype(F32)), who)

    lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    d = np.where(levels(hi[None])[0] >= levels(lo[None])[0], 1, -1).astype(np.int64)
    vlo, vhi = np.where(d > 0, lo, -hi), np.where(d > 0, hi, -lo)
    nthr = grid.n - 1
    span = int((vhi - vlo).max()) + 1
    if span <= ENUMERATE_MAX:
        v = vlo[None, :] + np.arange(span)[:, None]
        valid = v <= vhi[None, :]
        v = np.minimum(v, vhi[None, :])
        lev = levels(d[None, :] * v)
        if np.any(np.diff(lev, axis=0) < 0):
            raise ConversionError(f"{who}: the folded layers are not monotone in the accumulator")
        counts = ((lev[:, :, None] < np.arange(1, nthr + 1)[None, None, :]) & valid[:, :, None]).sum(0)
        t = vlo[:, None] + counts                       # (CO, nthr)
    else:
        a = np.repeat(vlo[None, :], nthr, 0)
        b = np.repeat(vhi[None, :] + 1, nthr, 0)
        j = np.arange(1, nthr + 1)[:, None]
        while np.any(a < b):
            mid = (a + b) // 2
            ge = levels(d[None, :] * np.minimum(mid, vhi[None, :])) >= j
            ge &= mid <= vhi[None, :]
            b = np.where(ge & (a < b), mid, b)
            a = np.where(~ge & (a < b), mid + 1, a)
        t = a.T
        # bisection assumed monotonicity: check it on samples and around every threshold
        rng = np.random.default_rng(0)
        probes = [vlo + (rng.random((64, co)) * (vhi - vlo + 1)).astype(np.int64)]
        for off in (-1, 0):
            probes.append(np.clip(t.T + off, vlo, vhi))
        pv = np.concatenate(probes)
        want = levels(d[None, :] * pv)
        got = (pv[:, :, None] >= t[None, :, :]).sum(-1)
        if not np.array_equal(want, got):
            raise ConversionError(f"{who}: the folded layers are not monotone in the accumulator")
    t = np.where(t > vhi[:, None], NEVER, np.where(t <= vlo[:, None], ALWAYS, t))
    return np.ascontiguousarray(t.T.astype(np.int32)), d.astype(np.int8)


# ------------------------------------------------------------------ float thresholds

def _f32_key(f):
    """float32 -> int64 keys in the order of the values (-0 just below +0)."""
    i = np.asarray(f, F32).view(np.int32).astype(np.int64)
    return np.where(i >= 0, i, -(2 ** 31) - i - 1)


def _key_f32(k):
    k = np.asarray(k, np.int64)
    return np.where(k >= 0, k, -(2 ** 31) - k - 1).astype(np.int32).view(F32)


def float_thresholds(who, run, co, grid):
    """Per-channel float32 thresholds (levels-1, CO) and dir (CO,) with level(run(z)) =
    #{j : dir*z >= thr[j]} for every finite float32 z, found by bisection on the ordered float32
    keys with the model's own layers, then checked on samples (ConversionError if not monotone)."""
    big = np.finfo(F32).max

    def levels(v, d):  # v in the dir*z domain, (P, CO)
        z = (_key_f32(v).astype(F32) * d.astype(F32)).astype(F32)
        return grid.level_index(run(z), who)

    one = np.ones(co, np.int64)
    d = np.where(levels(_f32_key(np.full((1, co), big)), one)[0] >=
                 levels(_f32_key(np.full((1, co), -big)), one)[0], 1, -1).astype(np.int64)
    klo, khi = int(_f32_key(-big)), int(_f32_key(big))
    nthr = grid.n - 1
    j = np.arange(1, nthr + 1)[:, None]
    a = np.full((nthr, co), klo, np.int64)
    b = np.full((nthr, co), khi + 1, np.int64)
    while np.any(a < b):
        mid = (a + b) // 2
        ge = (levels(np.minimum(mid, khi), d) >= j) & (mid <= khi)
        b = np.where(ge & (a < b), mid, b)
        a = np.where(~ge & (a < b), mid + 1, a)
    rng = np.random.default_rng(0)
    samples = [_f32_key(rng.standard_normal((256, co)).astype(F32) * F32(10) ** rng.integers(-3, 4, (256, 1)))]
    samples += [np.clip(a + off, klo, khi) for off in (-1, 0)]
    pv = np.concatenate(samples)
    got = (pv[:, :, None] >= a.T[None, :, :]).sum(-1)
    if not np.array_equal(levels(pv, d), got):
        raise ConversionError(f"{who}: the folded layers are not monotone")
    thr = np.where(a > khi, np.inf, np.where(a <= klo, -np.inf, _key_f32(np.clip(a, klo, khi)))).astype(F32)
    return np.ascontiguousarray(thr), d.astype(np.int8)


def _fast_first_conv(layer, in_shape):
    """(w, strides, padding) when a float Conv2D can run as _core.bnn_fconv fused into the next
    step: small K, no bias or activation, and bnn_fconv reproduces the layer bit for bit on
    probe inputs (it follows the float GEMM's arithmetic; if that GEMM changes, this falls back)."""
    if not (isinstance(layer, Conv2D) and not isinstance(layer, Conv2DTranspose) and len(in_shape) == 3
            and getattr(layer, "rank", 2) == 2 and layer.groups == 1
            and tuple(layer.dilation_rate) == (1, 1) and not layer.use_bias
            and _is_identity(layer.activation)):
        return None
    w = np.ascontiguousarray(layer._quantized_kernel(False), F32)
    if w.shape[0] * w.shape[1] * w.shape[2] > 256:
        return None
    from .. import _core
    pads = tuple(layer._pads(in_shape[:2]))
    rng = np.random.default_rng(0)
    probes = [rng.standard_normal((2,) + tuple(in_shape)), rng.random((2,) + tuple(in_shape)),
              np.round(rng.random((2,) + tuple(in_shape)) * 255) / 255]
    for p in probes:
        p = p.astype(F32)
        want = layer.call(p, training=False)
        got = _core.bnn_fconv(layer.name, p, w, tuple(layer.strides), pads)
        if not np.array_equal(want, got):
            return None
    return w, tuple(layer.strides), pads


def _plan_float_tail(layers, i, out_shape):
    """After a float layer at i-1: (fold, grid, used, pool) when layers[i:] are foldable layers
    ending in a grid quantizer (optionally then a MaxPooling2D) feeding an integer-capable layer."""
    fold, used = [], 0
    for layer in layers[i:]:
        if isinstance(layer, Dropout):
            used += 1
            continue
        if not _elementwise(layer):
            return None
        fold.append(("layer", layer))
        used += 1
        act = layer.activation if isinstance(layer, Activation) else None
        g = grid_of(act)[0] if isinstance(act, Q.BaseQuantizer) else None
        if g is not None:
            pool = layers[i + used] if (i + used < len(layers) and isinstance(layers[i + used], MaxPooling2D)
                                        and len(out_shape) == 3) else None
            nxt = _next_consumer(layers, i + used)
            if nxt is None or _kernel_kind(nxt) is None:
                return None
            return fold, g, used + (pool is not None), pool
    return None


# ------------------------------------------------------------------ planning

class _Rep:
    """The tensor between steps: kind 'float' | 'bits' | 'levels', its shape (no batch) as the
    model sees it, and its grid (float values on a grid can be encoded)."""

    def __init__(self, kind, shape, grid=None, spatial=None):
        self.kind, self.shape, self.grid = kind, tuple(shape), grid
        # integer tensors are (H, W, C); `spatial` is that, `shape` the model's (maybe flat) one
        self.spatial = tuple(spatial) if spatial is not None else None


def _next_consumer(layers, i):
    """The next weight layer after position i, skipping pooling/flatten/dropout, or None."""
    for layer in layers[i:]:
        if isinstance(layer, (MaxPooling2D, Flatten, Dropout)):
            continue
        return layer if _is_weight_layer(layer) else None
    return None


def _tt_worth(channels):
    """Ternary activations go on bit-planes when their words are full enough: with fewer than 64
    channels per pixel half of every word is padding, and int8 VNNI is faster there (measured:
    32 channels, 3x3: planes 2.8 ms vs int8 1.7 ms for a batch of 64)."""
    return channels % 64 == 0 or channels >= 128


def _packed_format(grid, nxt, channels):
    """'bits' / 'tbits' when the next weight layer will read packed words, else None (levels)."""
    if nxt is None or _kernel_kind(nxt) not in ("binary", "ternary"):
        return None
    if grid.binary:
        return "bits"
    if grid.ternary and _tt_worth(channels):
        return "tbits"
    return None


def _kernel_kind(layer):
    q = layer.kernel_quantizer_internal
    if q is None:
        return None
    try:
        return kernel_codes(layer, layer._quantized_kernel(False) if isinstance(layer, Conv2D)
                            else layer._quantize("kernel", False))[2]
    except ConversionError:
        return None


def _geometry(layer, rep):
    """(kernel (KH,KW,C,CO) float, kernel_size, strides, padding, in (H,W,C), out shape)."""
    if isinstance(layer, Conv2D):
        if layer.groups != 1 or tuple(layer.dilation_rate) != (1, 1):
            raise ConversionError(f"convert: {_who(layer)}: groups and dilation must be 1")
        kq = layer._quantized_kernel(False)
        h, w, c = rep.spatial
        pads = layer._pads((h, w))
        ks, st = tuple(layer.kernel_size), tuple(layer.strides)
        out = layer.compute_output_shape((None, h, w, c))[1:]
        return kq, ks, st, pads, (h, w, c), out
    kq = layer._quantize("kernel", False)
    cin, units = kq.shape
    h, w, c = rep.spatial
    if len(rep.shape) == 1:       # Dense on a flat vector: a conv whose kernel covers the input
        if h * w * c != cin:
            raise ConversionError(f"convert: {_who(layer)}: input size {h * w * c} != kernel rows {cin}")
        return kq.reshape(h, w, c, units), (h, w), (1, 1), (0, 0, 0, 0), (h, w, c), (units,)
    return kq.reshape(1, 1, cin, units), (1, 1), (1, 1), (0, 0, 0, 0), (h, w, c), rep.shape[:-1] + (units,)


def _plan_int(layer, rep, layers, i):
    """The IntConv for layers[i] and how many layers it consumes, or raise ConversionError."""
    who = f"convert: {_who(layer)}"
    grid = rep.grid
    kq, ks, st, pads, (h, w, c), out_shape = _geometry(layer, rep)
    codes, wscale, kkind, wbits = kernel_codes(layer, kq)
    co = codes.shape[-1]
    codes = codes.reshape(ks + (c, co))
    binary = kkind == "binary" and grid.binary
    ternary = kkind == "ternary" and grid.binary  # two bit-planes on packed signs
    tt = kkind in ("binary", "ternary") and grid.ternary and _tt_worth(c)  # planes on both sides
    if binary or ternary or tt:
        a_scale = float(grid.vals[-1])
        amin, amax = -1, 1
    else:
        a_scale = float(grid.step)
        amin, amax = -grid.zp, (grid.n - 1) * grid.code_mul - grid.zp
    mul64 = a_scale * wscale
    mul = mul64.astype(F32)
    wk = codes.reshape(-1, co).astype(np.int64)
    lo = (np.minimum(amin * wk, amax * wk)).sum(0)
    hi = (np.maximum(amin * wk, amax * wk)).sum(0)
    if not np.all(np.frexp(mul64)[0] == 0.5):
        # The float layer sums terms like +-0.37 with a rounding per addition, in its GEMM's
        # order; the integer sum times the scale rounds once. Thresholds near a tie would then
        # disagree, and a flipped sign changes everything after it: refuse instead.
        raise ConversionError(f"{who}: the product of its input and kernel scales is not a power of "
                              f"two (kernel quantizer {layer.kernel_quantizer_internal}, input {grid.name}), "
                              f"so its float rounding cannot be reproduced; use alpha='auto_po2' or a "
                              f"power-of-two alpha")
    # Partial sums of the float model are exact below 2**24 units; beyond that (only with wide
    # 8-bit layers) the integer result is the exact one and the float model may differ from it.
    exact = bool(float(max(np.abs(lo).max(), np.abs(hi).max())) < 2.0 ** 24)
    bias = np.asarray(layer._quantize("bias", False), F32) if layer.use_bias else None
    # the layers folded into the output transform, up to a grid quantizer
    fold, used, out_grid = [], 1, None
    acts = [("act", layer)] if not _is_identity(layer.activation) else []
    for kind, obj in acts + [("layer", l) for l in layers[i + 1:]]:
        act = obj.activation if kind == "act" or isinstance(obj, Activation) else None
        if kind == "layer" and isinstance(obj, Dropout):
            used += 1
            continue
        if kind == "layer" and not _elementwise(obj):
            break
        if kind == "act" and not _monotone_act(act):
            break
        fold.append((kind, obj))
        used += kind == "layer"
        g, _ = grid_of(act) if isinstance(act, Q.BaseQuantizer) else (None, None)
        if g is not None:
            out_grid = g
            break
    names = [layer.name] + [o.name for k, o in fold if k == "layer"]
    geo = dict(cin=c, cout=co, kernel_size=ks, strides=st, padding=pads, in_hw=(h, w),
               imul=-2 if binary or ternary else 1, weight_bits=wbits, exact=exact,
               dense=isinstance(layer, Dense), codes=codes)
    if binary:
        panel, wsum = pack_binary_weights(codes)
        geo.update(conv_kind="binary", panel=panel, wsum=wsum,
                   ibias=np.full(co, ks[0] * ks[1] * c, np.int32), zp=0)
    elif ternary:
        panel, wsum, nnz = pack_ternary_weights(codes)
        geo.update(conv_kind="ternary", panel=panel, wsum=wsum, ibias=nnz, zp=0)
    elif tt:
        geo.update(conv_kind="tt", panel=pack_ternary_weights(codes)[0], wsum=None,
                   ibias=np.zeros(co, np.int32), zp=0, imul=1)
    else:
        geo.update(conv_kind="int8", panel=pack_int8_weights(codes), wsum=None,
                   ibias=(-grid.zp * wk.sum(0)).astype(np.int32), zp=grid.zp)
    spatial_out = (1, 1, co) if len(out_shape) == 1 else tuple(out_shape)
    if out_grid is None:
        # float output: only the conv (and its bias); the rest runs in float
        step = IntConv(layer.name, [layer.name], mode="float", mul=mul,
                       add=bias if bias is not None else np.zeros(co, F32), **geo)
        return step, 1, _Rep("float", out_shape, None, spatial_out), bool(acts)
    thr, dirs = thresholds(who, _run_fn(fold, layer, len(out_shape) + 1), mul, bias, lo, hi, out_grid)
    nxt = _next_consumer(layers, i + used)
    fmt = _packed_format(out_grid, nxt, co)
    if fmt == "tbits":
        step = IntConv(layer.name, names, mode="tbits", thr=thr, dirs=dirs, out_grid=out_grid, **geo)
        return step, used, _Rep("tbits", out_shape, out_grid, spatial_out), False
    if fmt == "bits":
        step = IntConv(layer.name, names, mode="bits", thr=thr[:1], dirs=dirs, out_grid=out_grid, **geo)
        return step, used, _Rep("bits", out_shape, out_grid, spatial_out), False
    step = IntConv(layer.name, names, mode="codes", thr=thr, dirs=dirs, code_mul=out_grid.code_mul,
                   out_grid=out_grid, **geo)
    return step, used, _Rep("levels", out_shape, out_grid, spatial_out), False


def _to_float(steps, rep, name):
    if rep.kind != "float":
        ch = rep.spatial[-1]
        steps.append(Decode(rep.grid, rep.kind, ch, rep.shape, name))
        return _Rep("float", rep.shape, rep.grid)
    return rep


def plan(model, input_quantizer=None, strict=True):
    """The list of steps for `model` (see the module docstring)."""
    layers, shape = _chain(model)
    steps, grid = [], None
    if input_quantizer is not None:
        q = Q.get_quantizer(input_quantizer)
        grid, why = grid_of(q)
        if grid is None:
            raise ConversionError(f"convert: input_quantizer {q}: {why}")
        steps.append(QuantizeInput(q))
    rep = _Rep("float", shape, grid)
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Dropout):
            i += 1
            continue
        if _is_weight_layer(layer):
            quantized = layer.kernel_quantizer_internal is not None
            reason = None
            if rep.grid is None:
                reason = "its input is float (not the output of a supported quantizer)"
            else:
                try:
                    src = rep
                    if rep.kind == "float":
                        sp = rep.shape if len(rep.shape) == 3 else (1, 1, rep.shape[-1]) if len(rep.shape) == 1 else None
                        if sp is None:
                            raise ConversionError(f"convert: {_who(layer)}: input rank {len(rep.shape)} unsupported")
                        src = _Rep("float", rep.shape, rep.grid, sp)
                    step, used, new, own_act = _plan_int(layer, src, layers, i)
                    want = {"binary": "bits", "ternary": "bits", "tt": "tbits"}.get(step.conv_kind, "levels")
                    if rep.kind == "float":
                        steps.append(Encode(rep.grid, want, layer.name))
                    elif rep.kind != want:
                        raise ConversionError(f"convert: {_who(layer)}: input format mismatch")
                    steps.append(step)
                    if own_act:
                        steps.append(FloatLayer(layer, new.shape, activation_only=True))
                    rep = new
                    i += used
                    continue
                except ConversionError as e:
                    reason = str(e)
            if quantized and strict and rep.grid is not None:
                raise ConversionError(f"{reason} (pass strict=False to run it on float kernels)")
        elif isinstance(layer, MaxPooling2D) and rep.kind != "float":
            h, w, c = rep.spatial
            pads = layer._pads(h, w)
            steps.append(MaxPool(layer.name, layer.pool_size, layer.strides, pads,
                                 planes=2 if rep.kind == "tbits" else 1))
            out = layer.compute_output_shape((None, h, w, c))[1:]
            rep = _Rep(rep.kind, out, rep.grid, out)
            i += 1
            continue
        elif isinstance(layer, Flatten) and rep.kind != "float":
            rep = _Rep(rep.kind, (int(np.prod(rep.spatial)),), rep.grid, rep.spatial)
            i += 1
            continue
        # float: the model's layer itself
        rep = _to_float(steps, rep, layer.name)
        out = layer.compute_output_shape((None,) + rep.shape)[1:]
        steps.append(FloatLayer(layer, rep.shape, out_shape=out))
        tail = _plan_float_tail(layers, i + 1, out) if len(out) in (1, 3) else None
        if tail is not None:
            fold, g, used, pool = tail
            try:
                thr, dirs = float_thresholds(f"convert: {_who(fold[-1][1])}", _run_fn(fold, layer, len(out) + 1),
                                             out[-1], g)
            except ConversionError:
                tail = None
        if tail is not None:
            nxt = _next_consumer(layers, i + 1 + used)
            mode = _packed_format(g, nxt, out[-1]) or "codes"
            names = [o.name for _, o in fold] + ([pool.name] if pool is not None else [])
            sp = out if len(out) == 3 else (1, 1, out[0])
            conv = _fast_first_conv(layer, rep.shape)
            if conv is not None:
                steps.pop()  # the float layer is computed inside the fused step
                names = [layer.name] + names
            if pool is not None:
                pads = pool._pads(out[0], out[1])
                sp = pool.compute_output_shape((None,) + tuple(out))[1:]
                steps.append(FloatThreshPool(names[0], names, thr, dirs, mode,
                                             g.code_mul, g, pool.pool_size, pool.strides, pads, conv=conv))
            else:
                steps.append(FloatThreshPool(names[0], names, thr, dirs, mode, g.code_mul, g, conv=conv))
            if conv is not None:
                steps[-1].conv_out = out[:2]
            rep = _Rep({"bits": "bits", "tbits": "tbits"}.get(mode, "levels"), sp if len(out) == 3 else out, g, sp)
            i += 1 + used
            continue
        g = None
        if isinstance(layer, Activation) and isinstance(layer.activation, Q.BaseQuantizer):
            g, _ = grid_of(layer.activation)
        if (_is_weight_layer(layer) and isinstance(layer.activation, Q.BaseQuantizer)):
            g, _ = grid_of(layer.activation)
        if isinstance(layer, (MaxPooling2D, Flatten)) and rep.grid is not None:
            g = rep.grid  # max and reshapes keep values on the grid
        rep = _Rep("float", out, g, out if len(out) == 3 else None)
        i += 1
    rep = _to_float(steps, rep, "<output>")
    return steps, shape, rep.shape
