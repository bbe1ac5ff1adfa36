"""The steps an IntegerModel runs, in order. Each takes and returns a tensor in one of three
representations: float32 (NHWC or 2-D), packed sign bits (uint64 words along channels) or u8
levels (see grid.py). Integer steps carry their packed weights and output transform; float
steps run the model's own layer objects, so they compute exactly what ``model.predict`` does."""
import threading

import numpy as np

from .. import _core
from .grid import Grid

F32 = np.float32


class Step:
    kind = "step"
    layers = ()        # names of the model layers this step computes

    def run(self, x):
        raise NotImplementedError

    # what summary() reports
    def kernel(self):
        return self.kind

    def weight_bits(self):
        return None

    def packed_bytes(self):
        return 0

    def macs(self, batch):
        return 0


class QuantizeInput(Step):
    """Applies the user's input quantizer in float (values then lie on its grid)."""
    kind = "quantize_input"

    def __init__(self, quantizer):
        self.quantizer = quantizer
        self.layers = ("<input>",)

    def run(self, x):
        return np.asarray(self.quantizer(x, training=False), F32)


class Encode(Step):
    """Float values on a grid -> packed signs or u8 levels."""
    kind = "encode"

    def __init__(self, grid, to, name):
        self.grid, self.to, self.name = grid, to, name
        self.layers = (f"{name} input",)

    def run(self, x):
        return self.grid.encode(x, self.to, f"deploy encode '{self.name}'")

    def kernel(self):
        return f"encode {self.to}"


class Decode(Step):
    """Packed signs or u8 levels -> float32 values, reshaped to the model's tensor shape."""
    kind = "decode"

    def __init__(self, grid, frm, channels, shape, name):
        self.grid, self.frm, self.channels, self.shape, self.name = grid, frm, channels, tuple(shape), name
        self.layers = (f"{name} input",)

    def run(self, x):
        y = self.grid.decode(x, self.frm, self.channels)
        return np.ascontiguousarray(y.reshape((y.shape[0],) + self.shape), F32)

    def kernel(self):
        return f"decode {self.frm}"


class FloatLayer(Step):
    """One model layer on the float kernels (the model itself is float here)."""
    kind = "float"

    def __init__(self, layer, in_shape, activation_only=False, out_shape=None):
        self.layer, self.in_shape, self.activation_only = layer, tuple(in_shape), activation_only
        self.out_shape = tuple(out_shape) if out_shape is not None else self.in_shape
        self.layers = (layer.name + (":activation" if activation_only else ""),)

    def run(self, x):
        x = np.ascontiguousarray(x.reshape((x.shape[0],) + self.in_shape), F32)
        if self.activation_only:
            from ..layers.quant_utils import act_forward
            return np.asarray(act_forward(self.layer.activation, x, False)[0], F32)
        return np.asarray(self.layer.call(x, training=False), F32)

    def kernel(self):
        return f"float {type(self.layer).__name__}"

    def weight_bits(self):
        return 32 if self.layer.weights and not self.activation_only else None

    def packed_bytes(self):
        return 0 if self.activation_only else sum(v.value.nbytes for v in self.layer.weights)

    def macs(self, batch):
        k = getattr(self.layer, "kernel", None)
        if k is None or self.activation_only:
            return 0
        return int(batch * np.prod(self.out_shape[:-1], dtype=np.int64) * k.value.size)


class FloatThreshPool(Step):
    """A float layer's output -> packed signs or u8 levels: the following BN, activations and
    quantizer as per-channel float thresholds, and the max pooling after them (if any), in one
    pass (_core.bnn_fthresh_pool)."""
    kind = "fthresh"

    def __init__(self, name, layers, thr, dirs, mode, code_mul, out_grid, pool_size=(1, 1),
                 strides=(1, 1), padding=(0, 0, 0, 0), conv=None):
        # conv: None, or (w, strides, padding) of a float first conv computed on the fly
        # (_core.bnn_fconv's arithmetic, checked equal to the model's layer at convert time)
        self.conv = conv
        self.name, self.layers = name, tuple(layers)
        self.thr, self.dirs, self.mode, self.code_mul, self.out_grid = thr, dirs, mode, int(code_mul), out_grid
        self.pool_size, self.strides, self.padding = tuple(pool_size), tuple(strides), tuple(padding)

    def run(self, x):
        x = x.reshape(x.shape[0], 1, 1, x.shape[-1]) if x.ndim == 2 else x
        conv = {} if self.conv is None else dict(w=self.conv[0], conv_strides=self.conv[1],
                                                 conv_padding=self.conv[2])
        return _core.bnn_fthresh_pool(self.name, np.ascontiguousarray(x, F32), self.thr, self.dirs,
                                      self.mode, self.pool_size, self.strides, self.padding,
                                      code_mul=self.code_mul, **conv)

    def kernel(self):
        pool = "" if self.pool_size == (1, 1) else " + maxpool"
        conv = "" if self.conv is None else "float direct conv + "
        return f"{conv}thresholds{pool} -> {'levels' if self.mode == 'codes' else self.mode}"

    def weight_bits(self):
        return None if self.conv is None else 32

    def packed_bytes(self):
        return self.thr.nbytes + self.dirs.nbytes + (0 if self.conv is None else self.conv[0].nbytes)

    def macs(self, batch):
        if self.conv is None:
            return 0
        return int(batch * np.prod(self.conv_out) * self.conv[0].size) if hasattr(self, "conv_out") else 0


class MaxPool(Step):
    """Max pooling on u8 levels (max) or packed signs (AND): both orders agree with the float
    values' order, so this equals pooling the float tensor."""
    kind = "maxpool"

    def __init__(self, name, pool_size, strides, padding, planes=1):
        self.name, self.pool_size, self.strides, self.padding = name, pool_size, strides, padding
        self.planes = int(planes)  # 2: ternary sign/nonzero word pairs
        self.layers = (name,)

    def run(self, x):
        return _core.bnn_maxpool(self.name, x, self.pool_size, self.strides, self.padding,
                                 planes=self.planes)

    def kernel(self):
        return "maxpool levels/bits"


class IntConv(Step):
    """A Dense/Conv2D (plus the layers folded into its output transform) on the binary or
    int8 kernels. Fields mirror _core.bnn_conv2d's arguments; `codes` are the integer weights
    the panel was packed from."""
    kind = "int"

    def __init__(self, name, layers, conv_kind, cin, cout, kernel_size, strides, padding, in_hw,
                 panel, wsum, ibias, imul, zp, mode, mul=None, add=None, thr=None, dirs=None,
                 code_mul=1, out_grid=None, weight_bits=8, exact=True, dense=False, codes=None):
        self.name, self.layers, self.conv_kind = name, tuple(layers), conv_kind
        self.cin, self.cout = int(cin), int(cout)
        self.kernel_size, self.strides, self.padding = tuple(kernel_size), tuple(strides), tuple(padding)
        self.in_hw = tuple(in_hw)
        self.panel, self.wsum, self.ibias, self.imul, self.zp = panel, wsum, ibias, int(imul), int(zp)
        self.mode, self.mul, self.add, self.thr, self.dirs = mode, mul, add, thr, dirs
        self.code_mul, self.out_grid, self._wbits, self.exact = int(code_mul), out_grid, int(weight_bits), exact
        self.dense = bool(dense)
        self.codes = codes  # (KH, KW, C, CO) int8, what a deploy file stores
        # Scratch and output buffers are reused between calls (fresh pages cost ~3 ms/MB here) and
        # kept per thread, so predict can run from several threads at once.
        self._local = threading.local()

    def out_hw(self):
        (h, w), (kh, kw), (sh, sw), (pt, pb, pl, pr) = self.in_hw, self.kernel_size, self.strides, self.padding
        return (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1

    def run(self, x):
        x = x.reshape((x.shape[0],) + self.in_hw + (x.shape[-1],)) if x.ndim != 4 else x
        n = x.shape[0]
        loc = self._local
        if not hasattr(loc, "out"):
            loc.out, loc.ws = {}, _core.bnn_workspace()
        out = loc.out.get(n)
        if out is None:
            ho, wo = self.out_hw()
            words = -(-self.cout // 64)
            c = {"bits": words, "tbits": 2 * words}.get(self.mode, self.cout)
            dt = {"float": F32, "codes": np.uint8, "bits": np.uint64, "tbits": np.uint64}[self.mode]
            out = loc.out[n] = np.empty((n, ho, wo, c), dt)
            if len(loc.out) > 4:  # keep a few batch sizes (the last batch of predict is smaller)
                loc.out.pop(next(iter(loc.out)))
        return _core.bnn_conv2d(self.name, self.conv_kind, np.ascontiguousarray(x), self.panel,
                                self.cin, self.cout, self.kernel_size, self.strides, self.padding,
                                self.ibias, self.imul, self.mode, mul=self.mul, add=self.add,
                                thr=self.thr, dir=self.dirs, code_mul=self.code_mul, wsum=self.wsum,
                                zp=self.zp, ws=loc.ws, out=out)

    def kernel(self):
        out = {"float": "float out", "codes": "u8 levels out", "bits": "bit-packed out",
               "tbits": "2-plane out"}[self.mode]
        k = {"binary": "xnor-popcount", "ternary": "ternary 2-plane popcount",
             "tt": "ternary x ternary planes"}.get(self.conv_kind, "int8 u8xs8")
        shape = "dense" if self.dense else f"{self.kernel_size[0]}x{self.kernel_size[1]}"
        return f"{k} {shape}, {out}"

    def weight_bits(self):
        return self._wbits

    def packed_bytes(self):
        """Bytes of the weights at their bit width (plus per-channel scales/thresholds)."""
        k = self.kernel_size[0] * self.kernel_size[1] * self.cin * self.cout
        side = sum(a.nbytes for a in (self.ibias, self.mul, self.add, self.thr, self.dirs) if a is not None)
        return -(-k * self._wbits // 8) + side

    def macs(self, batch):
        ho, wo = self.out_hw()
        return int(batch * ho * wo * self.cout * self.kernel_size[0] * self.kernel_size[1] * self.cin)


__all__ = ["Step", "QuantizeInput", "Encode", "Decode", "FloatLayer", "FloatThreshPool", "MaxPool",
           "IntConv", "Grid"]
