"""Plumbing between the quantizer classes and the C kernels: input conversion, per-channel
layouts and the kernel calls. Nothing here knows QKeras's formulas; quantizers.py does."""
import numpy as np

from . import _core

F32 = np.float32

# Kernel op codes (csrc/kernels/quant/quant.h, enum qnn_quant_op).
OP = dict(BITS=1, BITS_SIGN=2, HSWISH=3, AUTOBITS=4, LINEAR=5, RELU=6, TANH=7, SIGMOID=8,
          ULAW=9, PO2=10, RELU_PO2=11, SIGN=12, TERNARY=13, TERNARY_Q=14, STOCH_SIGN=15,
          STOCH_TERNARY=16, HARD_SIGMOID=17, SMOOTH_SIGMOID=18, BINARY_SIGMOID=19,
          HSWISH_PRE=20)
# Flags (enum qnn_quant_flag).
SR, NO_STE, USE_SIGMOID, REAL, QUAD, FLOOR, HAS_MAX, USE01, TANH_SURR, QCLIP, UB, SIGN_MODE = (
    1 << i for i in range(12))
SIGMOID_MODES = {"hard": 0, "smooth": 1, "real": 2}


def as_input(who, x, arg="x"):
    """x as a C-contiguous float32 array (a copy only when needed), with clear errors."""
    if isinstance(x, np.ndarray):
        a = x
    else:
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{who}: {arg} must be array-like of real numbers: {e}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{who}: {arg} must contain real numbers (bool, int or float), "
                        f"got dtype {a.dtype}")
    a = np.asarray(a, dtype=F32, order="C")  # (ascontiguousarray would make 0-d inputs 1-d)
    if not a.flags.aligned:  # e.g. a float32 view at an odd byte offset of a buffer
        a = a.copy()
    return a


def fwd(who, x, params, out=None, scale=None, scale2=None, inner=1):
    # empty x goes through the kernel too: it checks `out` (an empty result in a wrong-shaped
    # caller buffer would be silent garbage)
    return _core.quant_forward(who, x, params, out, scale, scale2, inner)


def check_out(who, x, out):
    """Raise the kernels' error for an unusable out= (dtype, shape of x, contiguity, writeable,
    overlap with x): an element-wise kernel call on empty x checks out= and writes nothing."""
    _core.quant_forward(who, x, dict(op=OP["BITS_SIGN"]), out)


def bwd(who, x, dy, params, out=None, scale=None, inner=1):
    return _core.quant_backward(who, x, dy, params, out, scale, inner)


def scalar_scale(x, value):
    """A per-tensor scale as the kernels take it: one channel spanning the whole tensor."""
    return np.array([value], dtype=F32), max(x.size, 1)


def broadcast_scale(who, arg, x, alpha):
    """An array alpha/scale as (channel vector, inner) for x, or a per-element vector."""
    a = np.asarray(alpha, dtype=F32)
    try:
        b = np.broadcast_shapes(a.shape, x.shape)
    except ValueError:
        raise ValueError(f"{who}: {arg} of shape {a.shape} does not broadcast to x of shape "
                         f"{x.shape}") from None
    if b != x.shape:
        raise ValueError(f"{who}: {arg} of shape {a.shape} would change x's shape {x.shape} "
                         f"to {b}")
    if a.size == 1:
        return scalar_scale(x, float(a.reshape(-1)[0]))
    full = (1,) * (x.ndim - a.ndim) + a.shape
    varying = [i for i, d in enumerate(full) if d != 1]
    lo, hi = varying[0], varying[-1]
    if all(full[i] == x.shape[i] for i in range(lo, hi + 1)):
        # The non-trivial axes form one block: channel period = that block, inner = the rest.
        inner = int(np.prod(x.shape[hi + 1:], dtype=np.int64))
        return np.ascontiguousarray(a.reshape(-1)), max(inner, 1)
    return np.ascontiguousarray(np.broadcast_to(a, x.shape).reshape(-1)), 1


class Layout:
    """How the per-channel statistics of an auto scale are laid out over x.

    The kernels see x as (outer, S, inner) with channel s's statistics shared by groups of
    `group` consecutive channels. When the kept axes are not one contiguous block (a list
    scale_axis, or elements_per_scale on several axes) x is first permuted so they are
    (`perm`), and the result permuted back.
    """

    def __init__(self, shape, outer, S, inner, group, scale_shape, perm=None, tshape=None,
                 eps=None):
        self.shape, self.outer, self.S, self.inner, self.group = shape, outer, S, inner, group
        self.scale_shape, self.perm, self.tshape, self.eps = scale_shape, perm, tshape, eps

    def to_kernel(self, x):
        if self.perm is None:
            return x
        return np.ascontiguousarray(x.reshape(self.tshape[0]).transpose(self.perm))

    def from_kernel(self, y):
        if self.perm is None:
            return y
        inv = np.argsort(self.perm)
        return np.ascontiguousarray(y.reshape(self.tshape[1]).transpose(inv)).reshape(self.shape)

    def scale_array(self, per_group):
        """Per-group scales (kernel order) expanded and shaped keepdims-style like QKeras."""
        g = np.asarray(per_group, dtype=F32)
        if self.perm is None:
            return np.repeat(g, self.group).reshape(self.scale_shape)
        # general path: groups laid out over the kept axes, repeated back eps times each
        kept_shape, reps = self.eps
        s = g.reshape([d // r for d, r in zip(kept_shape, reps)])
        for ax, r in enumerate(reps):
            s = np.repeat(s, r, axis=ax)
        return s.reshape(self.scale_shape)

    def channel_vector(self, scale):
        """A keepdims scale (e.g. post_training_scale) as the kernel's per-channel vector."""
        s = np.broadcast_to(np.asarray(scale, dtype=F32), self.scale_shape)
        if self.perm is None:
            return np.ascontiguousarray(s.reshape(-1))
        # Same split and permutation as x, restricted to the kept axes.
        kept_shape, reps = self.eps
        split = []
        for d, r in zip(kept_shape, reps):
            split += [d // r, r]
        k = len(reps)
        order = [2 * i for i in range(k)] + [2 * i + 1 for i in range(k)]
        return np.ascontiguousarray(s.reshape(split).transpose(order).reshape(-1))


def _norm_axis(who, axis, rank):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{who}: scale_axis must be an int or a list of ints, got {axis!r}")
    if not -rank <= axis < rank:
        raise ValueError(f"{who}: scale_axis {axis} is out of range for an input of rank {rank}")
    return int(axis) % rank


def channel_layout(who, shape, scale_axis=None, elements_per_scale=None, per_element_rank1=True):
    """Layout of QKeras's per-channel reduction for x of `shape`.

    Channels-last: statistics over every axis but the last, or but `scale_axis` (int or list).
    Rank-1 inputs get one scale per element (QKeras's least-squares rule for rank 1).
    """
    shape = tuple(int(d) for d in shape)
    rank = len(shape)
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if rank <= 1 and scale_axis is None:
        if per_element_rank1:
            return Layout(shape, 1, max(n, 1), 1, 1, (max(n, 1),) if rank else ())
        return Layout(shape, 1, 1, max(n, 1), 1, (1,) if rank else ())
    if scale_axis is None:
        kept = [rank - 1]
    elif isinstance(scale_axis, (list, tuple)):
        kept = sorted({_norm_axis(who, a, rank) for a in scale_axis})
        if not kept:
            raise ValueError(f"{who}: scale_axis must not be an empty list")
    else:
        kept = [_norm_axis(who, scale_axis, rank)]
    eps = elements_per_scale
    if eps is not None:
        if isinstance(scale_axis, (int, np.integer)) and isinstance(eps, (list, tuple)):
            raise ValueError(f"{who}: scale_axis {scale_axis} is an int but elements_per_scale "
                             f"{list(eps)} is a list, which is ambiguous")
        if scale_axis is None:
            raise ValueError(f"{who}: elements_per_scale needs scale_axis to be set")
        reps = list(eps) if isinstance(eps, (list, tuple)) else [eps] * len(kept)
        if len(reps) != len(kept):
            raise ValueError(f"{who}: scale_axis and elements_per_scale lists must have the same "
                             f"length, got {len(kept)} and {len(reps)}")
        for a, r in zip(kept, reps):
            if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
                raise ValueError(f"{who}: elements_per_scale must be positive ints, got {r!r}")
            if shape[a] % r:
                raise ValueError(f"{who}: axis {a} of size {shape[a]} is not divisible by "
                                 f"elements_per_scale {r}")
    else:
        reps = [1] * len(kept)
    scale_shape = tuple(shape[i] if i in kept else 1 for i in range(rank))
    contiguous = kept == list(range(kept[0], kept[-1] + 1))
    if contiguous and (len(kept) == 1 or all(r == 1 for r in reps)):
        outer = int(np.prod(shape[:kept[0]], dtype=np.int64))
        S = int(np.prod(shape[kept[0]:kept[-1] + 1], dtype=np.int64))
        inner = int(np.prod(shape[kept[-1] + 1:], dtype=np.int64))
        if S == 0 or outer == 0 or inner == 0:
            return Layout(shape, max(outer, 1), max(S, 1), max(inner, 1), 1, scale_shape)
        return Layout(shape, outer, S, inner, reps[0], scale_shape)
    # General case: split each kept axis into (groups, reps) and permute to
    # (reduced..., groups..., reps...): channel c = g*R + r, so channels sharing a group are
    # consecutive (group size R) and each kept index is still its own channel for the initial max.
    split_shape, group_axes, rep_axes, red_axes = [], [], [], []
    for i, d in enumerate(shape):
        if i in kept:
            r = reps[kept.index(i)]
            group_axes.append(len(split_shape))
            rep_axes.append(len(split_shape) + 1)
            split_shape += [d // r, r]
        else:
            red_axes.append(len(split_shape))
            split_shape.append(d)
    perm = red_axes + group_axes + rep_axes
    G = int(np.prod([split_shape[a] for a in group_axes], dtype=np.int64))
    R = int(np.prod(reps, dtype=np.int64))
    tshape_after = [split_shape[a] for a in perm]
    outer = int(np.prod([split_shape[a] for a in red_axes], dtype=np.int64))
    return Layout(shape, max(outer, 1), max(G * R, 1), 1, R, scale_shape, perm=perm,
                  tshape=(split_shape, tshape_after),
                  eps=([shape[a] for a in kept], reps))
