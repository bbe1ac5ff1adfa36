"""The value grid of an activation quantizer: the finite, evenly spaced set of float32 values it
can output, and how the integer kernels store them.

A grid with values ``v0 + j*delta`` (j = 0..n-1, "levels") is stored as bytes ``j*code_mul`` and
read by an int8 layer as the integer ``byte - zp`` times ``step``, with ``step = delta/code_mul``
and ``zp = -v0/step``: binary +-a is bytes {0, 2}, zp 1, step a; ternary {-a, 0, a} bytes {0, 1, 2},
zp 1; quantized_bits codes ``lo..hi`` bytes ``0..hi-lo``, zp ``-lo``; quantized_relu zp 0.
A two-level symmetric grid (+-a) can also be stored as packed sign bits.
"""
import numpy as np

from .. import quantizers as Q

F32 = np.float32


class Grid:
    def __init__(self, vals, name):
        vals = np.unique(np.asarray(vals, F32))
        if vals.size < 2 or vals.size > 256:
            raise ValueError(f"{name}: {vals.size} output values (an integer layer needs 2 to 256)")
        d = np.diff(vals.astype(np.float64))
        if not np.all(d == d[0]):
            raise ValueError(f"{name}: output values are not evenly spaced")
        delta, v0 = float(d[0]), float(vals[0])
        for m in (1, 2):
            step = delta / m
            zp = -v0 / step
            if zp == round(zp):
                break
        else:
            raise ValueError(f"{name}: the lowest value {v0} is not a multiple of half the step {delta}")
        zp = int(round(zp))
        if not 0 <= zp <= 255 or (vals.size - 1) * m > 255:
            raise ValueError(f"{name}: {vals.size} levels do not fit a byte")
        self.vals, self.n, self.name = vals, int(vals.size), name
        self.step, self.zp, self.code_mul = F32(step), zp, m
        self.binary = self.n == 2 and vals[0] == -vals[1]
        self.ternary = self.n == 3 and vals[0] == -vals[2] and vals[1] == 0

    def level_index(self, y, who):
        """Level of each value of y; raises when a value is off the grid."""
        y = np.asarray(y, F32)
        v0, delta = self.vals[0], self.vals[1] - self.vals[0]  # exact: the grid is even
        idx = np.clip(np.rint((y - v0) / delta), 0, self.n - 1).astype(np.intp)
        if not np.array_equal(self.vals[idx], y):
            bad = y[self.vals[idx] != y].ravel()[:3]
            raise ValueError(f"{who}: output values {bad.tolist()} are not on the grid of {self.name}")
        return idx

    def encode(self, y, to, who):
        """Float values on the grid -> packed signs ('bits'), ternary word pairs ('tbits') or
        bytes ('levels')."""
        from .. import _core
        from .packing import pack_tbits
        if to == "bits":
            return _core.bnn_bitpack(who, np.ascontiguousarray(y, F32))
        if to == "tbits":
            self.level_index(y, who)
            return pack_tbits(np.asarray(y, F32))
        return (self.level_index(y, who) * self.code_mul).astype(np.uint8)

    def decode(self, a, frm, c):
        """Packed signs / bytes -> float32 values (c channels)."""
        from .packing import unpack_signs, unpack_tbits
        if frm == "bits":
            return np.where(unpack_signs(a, c), self.vals[0], self.vals[1]).astype(F32)
        if frm == "tbits":
            return self.vals[unpack_tbits(a, c).astype(np.intp) + 1]
        return self.vals[a // self.code_mul]


def _nominal(q):
    """Candidate outputs of a supported quantizer, or raise ValueError with the reason."""
    t = type(q)
    alpha = getattr(q, "alpha", None)
    if alpha is not None and (isinstance(alpha, (str, bool)) or np.ndim(alpha) != 0):
        raise ValueError(f"alpha={alpha!r} (a per-tensor number or None is needed)")
    if getattr(q, "use_stochastic_rounding", False):
        raise ValueError("stochastic rounding")
    if float(getattr(q, "qnoise_factor", 1.0)) != 1.0:
        raise ValueError("qnoise_factor != 1")
    if t is Q.binary:
        return [-1e6, 1e6]
    if t is Q.ternary:
        return [-1e6, 0.0, 1e6]
    if t is Q.quantized_bits:
        ub = q.bits - int(bool(q.keep_negative))
        if ub == 0:
            return [-1e6, 1e6]
        step = 2.0 ** (q.integer - ub)  # the quantizer multiplies its codes by alpha itself
        lo = -(2 ** ub) + int(bool(q.symmetric)) if q.keep_negative else 0
        return [k * step for k in range(lo, 2 ** ub)]
    if t is Q.quantized_relu:
        if q.use_sigmoid or q.negative_slope or q.relu_upper_bound is not None:
            raise ValueError("use_sigmoid, negative_slope or relu_upper_bound")
        step = 2.0 ** (q.integer - q.bits)
        return [k * step for k in range(2 ** q.bits)]
    raise ValueError(f"{t.__name__} has no integer grid here (supported: binary, ternary, "
                     f"quantized_bits, quantized_relu)")


def grid_of(q):
    """The Grid of quantizer q, or (None, reason)."""
    if q is None or not isinstance(q, Q.BaseQuantizer):
        return None, "not a quantizer"
    try:
        nominal = np.asarray(_nominal(q), F32)
        vals = np.asarray(q(nominal, training=False), F32)
        return Grid(vals, str(q)), None
    except ValueError as e:
        return None, str(e)
