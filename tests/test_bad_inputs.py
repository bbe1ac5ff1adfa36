"""Bad-input matrix: every ``qnn_ext._core`` entry point, every public layer and every quantizer
(object and string form) against each kind of bad argument.

Kinds (KINDS): wrong dtype, wrong ndim, wrong shape, non-contiguous, read-only ``out``, ``out``
aliasing an input, zero-size, overflowing sizes (zero-size arrays whose other dims are huge, huge
ints as dims/params), NaN/inf, None, wrong Python types.

Each entry point has a table ``{kind: [cases]}`` or ``{kind: NA(reason)}``. A case either expects
an exception (``Raises``: its type and the argument name, which must appear in the message as a
word, next to the entry point's name) or is a valid input with a documented result (``Valid``:
e.g. empty in -> empty out, NaN propagates), checked against a clean run or a NumPy reference.
The entry points are enumerated from ``dir(_core)``: one without a table fails
``test_every_entry_point_has_a_table``, so a new kernel cannot be forgotten. Array arguments get
the dtype / ndim / non-contiguous / None / wrong-type cases generated from one description
(``ARRAYS``); the other kinds are written per entry point.

``python tests/test_bad_inputs.py`` prints the counts (entry points x kinds, cases).
"""
import inspect
import re
import sys

import numpy as np
import pytest

from qnn_ext import _core, layers, quantizers
from qnn_ext.quantizer_strings import QuantizerStringError, parse_quantizer_string  # noqa: F401

F32 = np.float32
KINDS = ("dtype", "ndim", "shape", "noncontig", "readonly_out", "alias_out", "zero_size",
         "overflow", "nan_inf", "none", "wrong_type")
BIG = 2 ** 70  # beyond every C integer type the bindings use


class Raises:
    def __init__(self, exc, arg, *words):
        self.exc, self.arg, self.words = exc, arg, words


class Valid:
    """A valid input: ``check(result, kwargs, base)`` asserts the documented result (``base`` is
    the result of the unmodified valid call)."""

    def __init__(self, what, check):
        self.what, self.check = what, check


class NA:
    def __init__(self, reason):
        self.reason = reason


def rng_arr(shape, seed=0, lo=-2.0, hi=2.0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(F32)


def noncontig(a):
    """Same shape and values as a, not C-contiguous (every array in the tables has a dim > 1)."""
    ax = next(i for i, d in enumerate(a.shape) if d > 1)
    v = np.repeat(a, 2, axis=ax)
    return v[(slice(None),) * ax + (slice(None, None, 2),)]


def readonly(shape, dtype=F32):
    a = np.zeros(shape, dtype)
    a.flags.writeable = False
    return a


def aliased(kw, arg, out_shape, dtype=F32):
    """kw with kw[arg] moved into a buffer that also backs the returned out= array."""
    a = kw[arg]
    n = max(a.size, int(np.prod(out_shape)))
    buf = np.zeros(n, a.dtype)
    buf[:a.size] = a.ravel()
    kw = dict(kw, **{arg: buf[:a.size].reshape(a.shape)})
    kw["out"] = buf[:int(np.prod(out_shape))].view(dtype).reshape(out_shape) if dtype == a.dtype \
        else np.frombuffer(buf, dtype)[:int(np.prod(out_shape))].reshape(out_shape)
    return kw


def same_as_base(result, kw, base):
    for r, b in zip(_tup(result), _tup(base)):
        np.testing.assert_array_equal(r, b)


def _tup(r):
    return r if isinstance(r, tuple) else (r,)


def empty(shape):
    def check(result, kw, base):
        r = _tup(result)[0]
        assert r.shape == shape and r.size == 0
    return check


def nan_where(index):
    """NaN exactly at result[index] (the cells the NaN input reaches); every other cell equals
    the same call with the NaN/inf inputs replaced by 0.5."""
    def check(result, kw, base):
        clean_kw = {k: (np.where(np.isfinite(v), v, F32(0.5)).astype(v.dtype)
                        if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
                    for k, v in kw.items()}
        r, b = _tup(result)[0], _tup(getattr(_core, kw["who"])(**clean_kw))[0]
        mask = np.zeros(r.shape, bool)
        mask[index] = True
        assert np.isnan(r[mask]).all(), "NaN did not propagate"
        assert not np.isnan(r[~mask]).any(), "NaN leaked beyond the cells it reaches"
        np.testing.assert_allclose(r[~mask], b[~mask], rtol=1e-5, atol=1e-5)
    return check


def with_nan(arg, index, value=np.nan):
    def change(kw):
        a = kw[arg].copy()
        a[index] = value
        return dict(kw, **{arg: a})
    return change


# ---------------------------------------------------------------------------------------------
# valid calls of every entry point


def v_gemm():
    return dict(who="gemm", a=rng_arr((3, 4), 1), b=rng_arr((4, 5), 2))


def v_gemm_sq():
    return dict(who="gemm", a=rng_arr((4, 4), 1), b=rng_arr((4, 4), 2))


CONV = dict(strides=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)


def v_conv_f():
    return dict(who="conv2d_forward", x=rng_arr((2, 5, 5, 3), 1), w=rng_arr((3, 3, 3, 4), 2), **CONV)


def v_conv_bi():
    return dict(who="conv2d_backward_input", dy=rng_arr((2, 5, 5, 4), 1),
                w=rng_arr((3, 3, 3, 4), 2), x_shape=(2, 5, 5, 3), **CONV)


def v_conv_bf():
    return dict(who="conv2d_backward_filter", x=rng_arr((2, 5, 5, 3), 1),
                dy=rng_arr((2, 5, 5, 4), 2), w_shape=(3, 3, 3, 4), **CONV)


def v_bias_add():
    return dict(who="bias_add", y=rng_arr((4, 3), 1), b=rng_arr((3,), 2))


def v_bias_grad():
    return dict(who="bias_grad", dy=rng_arr((4, 3), 1))


POOL = dict(pool=(2, 2), strides=(2, 2), padding=(0, 0, 0, 0))


def v_pool_f():
    return dict(who="pool2d_forward", kind="max", x=rng_arr((2, 6, 6, 3), 1), **POOL)


def v_pool_b():
    return dict(who="pool2d_backward", kind="max", x=rng_arr((2, 6, 6, 3), 1),
                dy=rng_arr((2, 3, 3, 3), 2), **POOL)


def v_gpool_f():
    return dict(who="global_pool2d_forward", kind="max", x=rng_arr((2, 4, 4, 3), 1))


def v_gpool_b():
    return dict(who="global_pool2d_backward", kind="max", x=rng_arr((2, 4, 4, 3), 1),
                dy=rng_arr((2, 3), 2))


def v_bn_f():
    return dict(who="batchnorm_forward", x=rng_arr((8, 3), 1), gamma=rng_arr((3,), 2, 0.5, 2),
                beta=rng_arr((3,), 3), eps=1e-3, training=True)


def v_bn_b():
    x = rng_arr((8, 3), 1)
    _, m, _, inv = _core.batchnorm_forward("b", x, None, None, 1e-3, True)
    return dict(who="batchnorm_backward", dy=rng_arr((8, 3), 2), x=x,
                gamma=rng_arr((3,), 3, 0.5, 2), batch_mean=m, inv_std=inv)


def v_xent():
    return dict(who="softmax_cross_entropy", logits=rng_arr((4, 5), 1),
                labels=np.array([0, 4, 2, 1], np.int64))


def v_act_f():
    return dict(who="activation_forward", kind="relu", x=rng_arr((4, 3), 1))


def v_act_b():
    return dict(who="activation_backward", kind="relu", x=rng_arr((4, 3), 1), y=None,
                dy=rng_arr((4, 3), 2))


def _qb_params(x):
    return quantizers.quantized_bits(4, 0, 1)._fixed_params(x, False)


def v_qf():
    x = rng_arr((4, 3), 1)
    return dict(who="quant_forward", x=x, params=_qb_params(x))


def v_qb():
    x = rng_arr((4, 3), 1)
    return dict(who="quant_backward", x=x, dy=rng_arr((4, 3), 2), params=dict(op=1))


def v_qa():
    x = rng_arr((4, 3), 1)
    return dict(who="quant_auto", kind="bits", x=x,
                params=dict(op=4, in_mul=1.0, out_mul=1.0 / 8, m=8.0, hi=7.0),
                auto=dict(iterations=5), outer=4, S=3, inner=1, group=1)


def _relu3_spec(shape):
    from qnn_ext.quantizers import quantized_relu
    return quantized_relu(3)._fused_spec(np.broadcast_to(F32(0), shape), True)


def v_steb():
    spec = _relu3_spec((4, 6))
    _, mask = _core.gemm("t", rng_arr((4, 5), 2), rng_arr((5, 6), 3), act=spec, ste_mask=True)
    return dict(who="quant_ste_backward", spec=spec, mask=mask, dy=rng_arr((4, 6), 4))


def v_ste_planes():
    return dict(spec=_relu3_spec((4, 6)))


def v_uniform():
    return dict(key=7, n=10)


def v_bitpack():
    return dict(who="bnn_bitpack", x=rng_arr((2, 70), 1))


def v_bconv():
    from qnn_ext.deploy.packing import pack_binary_weights
    x = _core.bnn_bitpack("t", rng_arr((1, 4, 4, 10), 1))
    panel, wsum = pack_binary_weights(np.sign(rng_arr((3, 3, 10, 4), 2)) + 0.0)
    return dict(who="bnn_conv2d", kind="binary", x=x, w=panel, cin=10, out_channels=4,
                kernel_size=(3, 3), strides=(1, 1), padding=(1, 1, 1, 1),
                ibias=np.zeros(4, np.int32), imul=-2, mode="float", mul=np.ones(4, F32),
                add=np.zeros(4, F32), wsum=wsum)


def v_bmaxpool():
    x = np.random.default_rng(1).integers(0, 16, (1, 4, 4, 3)).astype(np.uint8)
    return dict(who="bnn_maxpool", x=x, pool_size=(2, 2), strides=(2, 2), padding=(0, 0, 0, 0))


def v_fthresh():
    return dict(who="bnn_fthresh_pool", z=rng_arr((1, 4, 4, 3), 1), thr=np.zeros((1, 3), F32),
                dir=np.ones(3, np.int8), mode="codes", pool_size=(2, 2), strides=(2, 2),
                padding=(0, 0, 0, 0))


def v_fconv():
    return dict(who="bnn_fconv", x=rng_arr((1, 5, 5, 2), 1), w=rng_arr((3, 3, 2, 4), 2),
                strides=(1, 1), padding=(1, 1, 1, 1))


def v_noargs():
    return {}


# ---------------------------------------------------------------------------------------------
# array arguments: name -> (bad dtype, optional, any ndim accepted)

def arrays(*specs):
    return {s[0]: dict(bad_dtype=s[1], optional=s[2], any_ndim=s[3]) for s in specs}


F64 = np.float64
ARRAYS = {
    "gemm": arrays(("a", F64, False, False), ("b", F64, False, False)),
    "conv2d_forward": arrays(("x", F64, False, False), ("w", F64, False, False)),
    "conv2d_backward_input": arrays(("dy", F64, False, False), ("w", F64, False, False)),
    "conv2d_backward_filter": arrays(("x", F64, False, False), ("dy", F64, False, False)),
    "bias_add": arrays(("y", F64, False, True), ("b", F64, False, False)),
    "bias_grad": arrays(("dy", F64, False, True)),
    "pool2d_forward": arrays(("x", F64, False, False)),
    "pool2d_backward": arrays(("x", F64, False, False), ("dy", F64, False, False)),
    "global_pool2d_forward": arrays(("x", F64, False, False)),
    "global_pool2d_backward": arrays(("x", F64, False, False), ("dy", F64, False, False)),
    "batchnorm_forward": arrays(("x", F64, False, True), ("gamma", F64, True, False),
                                ("beta", F64, True, False)),
    "batchnorm_backward": arrays(("dy", F64, False, False), ("x", F64, False, False),
                                 ("gamma", F64, True, False), ("batch_mean", F64, False, False),
                                 ("inv_std", F64, False, False)),
    "softmax_cross_entropy": arrays(("logits", F64, False, False), ("labels", np.int16, False, False)),
    "activation_forward": arrays(("x", F64, False, True)),
    "activation_backward": arrays(("x", F64, False, False), ("dy", F64, False, False)),
    "quant_forward": arrays(("x", F64, False, True)),
    "quant_backward": arrays(("x", F64, False, False), ("dy", F64, False, False)),
    "quant_auto": arrays(("x", F64, False, True)),  # the layout args give the shape
    "quant_ste_backward": arrays(("dy", F64, False, True), ("mask", np.uint16, False, False)),
    "bnn_bitpack": arrays(("x", F64, False, True)),
    "bnn_conv2d": arrays(("x", np.uint32, False, False), ("w", np.uint32, False, False),
                         ("ibias", np.int64, False, False), ("mul", F64, False, False),
                         ("add", F64, False, False), ("wsum", np.int64, False, False)),
    "bnn_maxpool": arrays(("x", np.int8, False, False)),
    "bnn_fthresh_pool": arrays(("z", F64, False, False), ("thr", F64, False, False),
                               ("dir", np.int32, False, False)),
    "bnn_fconv": arrays(("x", F64, False, False), ("w", F64, False, False)),
}


def array_cases(name, kind):
    """The generated cases of an array-taking entry point for the five array kinds."""
    out = []
    for arg, spec in ARRAYS.get(name, {}).items():
        if kind == "dtype":
            out.append((f"{arg} as {np.dtype(spec['bad_dtype']).name}",
                        lambda kw, a=arg, t=spec["bad_dtype"]: dict(kw, **{a: kw[a].astype(t)}),
                        Raises(TypeError, arg)))
        elif kind == "ndim":
            if spec["any_ndim"]:
                out.append((f"{arg} with a leading axis",
                            lambda kw, a=arg: dict(kw, **{a: kw[a][None]}),
                            Valid("any rank: the same values with the extra axis",
                                  lambda r, kw, b: np.testing.assert_array_equal(
                                      _tup(r)[0], _tup(b)[0][None] if _tup(b)[0].ndim ==
                                      _tup(r)[0].ndim - 1 else _tup(b)[0]))))
            else:
                out.append((f"{arg} with a leading axis",
                            lambda kw, a=arg: dict(kw, **{a: kw[a][None]}), Raises(ValueError, arg)))
        elif kind == "noncontig":
            out.append((f"{arg} strided", lambda kw, a=arg: dict(kw, **{a: noncontig(kw[a])}),
                        Raises(ValueError, arg, "contiguous")))
        elif kind == "none":
            if spec["optional"]:
                out.append((f"{arg}=None", lambda kw, a=arg: dict(kw, **{a: None}),
                            Valid("optional: left out", lambda r, kw, b: None)))
            else:
                out.append((f"{arg}=None", lambda kw, a=arg: dict(kw, **{a: None}),
                            Raises(TypeError, arg)))
        elif kind == "wrong_type":
            out.append((f"{arg} as a list", lambda kw, a=arg: dict(kw, **{a: kw[a].tolist()}),
                        Raises(TypeError, arg)))
    return out


def set_(**changes):
    return lambda kw: dict(kw, **changes)


def out_cases(out_shape, alias_arg, dtype=F32):
    """read-only out and out aliasing alias_arg."""
    return {
        "readonly_out": [("out read-only", lambda kw: dict(kw, out=readonly(out_shape, dtype)),
                          Raises(ValueError, "out", "writeable"))],
        "alias_out": [(f"out shares memory with {alias_arg}",
                       lambda kw: aliased(kw, alias_arg, out_shape, dtype), Raises(ValueError, "out"))],
    }


NO_OUT = {"readonly_out": NA("no out= argument: the result is always a new array"),
          "alias_out": NA("no out= argument: the result is always a new array")}
WHO_NONE = ("who=None", set_(who=None), Raises(TypeError, "who"))
NO_ARRAYS = NA("no array arguments")


CONV_NAN = (0, slice(1, 4), slice(1, 4))  # a 3x3 'same' conv: the cells around (0, 2, 2)


# ---------------------------------------------------------------------------------------------
# per-entry tables (the array kinds dtype/ndim/noncontig/none/wrong_type are added from ARRAYS)

TABLE = {}

TABLE["gemm"] = dict(
    valid=v_gemm,
    shape=[("b rows != a cols", set_(b=rng_arr((5, 5))), Raises(ValueError, "b", "inner dims")),
           ("out of the wrong shape", set_(out=np.zeros((3, 4), F32)), Raises(ValueError, "out"))],
    zero_size=[("M = 0", set_(a=np.zeros((0, 4), F32)), Valid("(0, N) result", empty((0, 5)))),
               ("K = 0", set_(a=np.zeros((3, 0), F32), b=np.zeros((0, 5), F32)),
                Valid("an empty sum: all zeros",
                      lambda r, kw, b: np.testing.assert_array_equal(r, np.zeros((3, 5), F32))))],
    overflow=[("K = 2**40 with M = N = 0", set_(a=np.zeros((0, 2 ** 40), F32),
                                                b=np.zeros((2 ** 40, 0), F32)),
               Valid("(0, 0) result at once", empty((0, 0)))),
              ("alpha beyond float32", set_(alpha=1e300), Raises(ValueError, "alpha")),
              ("beta = 1e39 (beyond float32)", lambda kw: dict(kw, out=np.zeros((3, 5), F32), beta=1e39),
               Raises(ValueError, "beta"))],
    nan_inf=[("NaN in a[0, 0]", with_nan("a", (0, 0)), Valid("row 0 NaN", nan_where((0,)))),
             ("inf in b[0, 1]", with_nan("b", (0, 1), np.inf),
              Valid("column 1 +-inf, rest clean", lambda r, kw, b: (
                  np.testing.assert_array_equal(np.abs(r[:, 1]), np.inf),
                  np.testing.assert_allclose(np.delete(r, 1, 1), np.delete(b, 1, 1))))),
             ("alpha = inf", set_(alpha=float("inf")), Raises(ValueError, "alpha")),
             ("beta = NaN", lambda kw: dict(kw, out=np.zeros((3, 5), F32), beta=float("nan")),
              Raises(ValueError, "beta"))],
    none=[("alpha=None", set_(alpha=None), Raises(TypeError, "alpha")),
          ("out=None", set_(out=None), Valid("a new array", same_as_base))],
    wrong_type=[WHO_NONE, ("alpha='2'", set_(alpha="2"), Raises(TypeError, "alpha"))],
    **out_cases((3, 5), "a"),
)
TABLE["gemm"]["alias_out"] = [("out is a (square operands)", lambda kw: (lambda k: dict(k, out=k["a"]))(v_gemm_sq()),
                               Raises(ValueError, "out", "share memory"))]

_CONV_GEOM = [
    ("strides with 3 values", set_(strides=(1, 1, 1)), Raises(ValueError, "strides")),
    ("groups not dividing channels", set_(groups=2), Raises(ValueError, "groups")),
]
_CONV_OVF = [("strides = (2**70, 1)", set_(strides=(BIG, 1)), Raises(ValueError, "strides")),
             ("padding 2**40", set_(padding=(2 ** 40, 0, 0, 0)), Raises(ValueError, "padding")),
             ("dilation 2**30", set_(dilation=(2 ** 30, 1)), Raises(ValueError, "dilation")),
             ("groups = 2**70", set_(groups=BIG), Raises(ValueError, "groups"))]
_CONV_TYPES = [WHO_NONE, ("strides='11'", set_(strides="11"), Raises(TypeError, "strides")),
               ("strides=(1.0, 1)", set_(strides=(1.0, 1)), Raises(TypeError, "strides")),
               ("groups=1.0", set_(groups=1.0), Raises(TypeError, "groups"))]
_CONV_NONE = [("strides=None", set_(strides=None), Raises(TypeError, "strides")),
              ("groups=None", set_(groups=None), Raises(TypeError, "groups")),
              ("out=None", set_(out=None), Valid("a new array", same_as_base))]

TABLE["conv2d_forward"] = dict(
    valid=v_conv_f,
    shape=[("w in_channels 2 for x with 3", set_(w=rng_arr((3, 3, 2, 4))), Raises(ValueError, "w")),
           ("x smaller than the kernel", lambda kw: dict(kw, x=rng_arr((2, 1, 1, 3)), padding=(0, 0, 0, 0)),
            Raises(ValueError, "height")),
           ("out of the wrong shape", set_(out=np.zeros((2, 5, 5, 3), F32)), Raises(ValueError, "out"))]
    + _CONV_GEOM,
    zero_size=[("batch 0", set_(x=np.zeros((0, 5, 5, 3), F32)), Valid("empty", empty((0, 5, 5, 4)))),
               ("height 0", set_(x=np.zeros((2, 0, 5, 3), F32)), Raises(ValueError, "x")),
               ("w out_channels 0", set_(w=np.zeros((3, 3, 3, 0), F32)), Raises(ValueError, "w"))],
    overflow=[("x (0, 2**30, 2**30, 1): im2col size overflows",
               lambda kw: dict(kw, x=np.zeros((0, 2 ** 30, 2 ** 30, 1), F32), w=rng_arr((3, 3, 1, 4))),
               Raises(ValueError, "x", "too large"))] + _CONV_OVF,
    nan_inf=[("NaN in x[0, 2, 2, 0]", with_nan("x", (0, 2, 2, 0)),
              Valid("the 3x3 outputs around it NaN", nan_where(CONV_NAN)))],
    none=_CONV_NONE, wrong_type=_CONV_TYPES,
    **out_cases((2, 5, 5, 4), "x"),
)

TABLE["conv2d_backward_input"] = dict(
    valid=v_conv_bi,
    shape=[("dy of the wrong shape", set_(dy=rng_arr((2, 5, 5, 3))), Raises(ValueError, "dy")),
           ("x_shape with 3 values", set_(x_shape=(2, 5, 5)), Raises(ValueError, "x_shape")),
           ("out of the wrong shape", set_(out=np.zeros((2, 5, 5, 4), F32)), Raises(ValueError, "out"))]
    + _CONV_GEOM,
    zero_size=[("batch 0", lambda kw: dict(kw, dy=np.zeros((0, 5, 5, 4), F32), x_shape=(0, 5, 5, 3)),
                Valid("empty", empty((0, 5, 5, 3))))],
    overflow=[("x_shape (2**40, 2**40, 1, 3)", set_(x_shape=(2 ** 40, 2 ** 40, 1, 3)),
               Raises(ValueError, "x_shape")),
              ("x_shape (2**70, ...)", set_(x_shape=(BIG, 5, 5, 3)), Raises(ValueError, "x_shape")),
              ("x_shape with a negative dim", set_(x_shape=(-2, 5, 5, 3)), Raises(ValueError, "x_shape"))]
    + _CONV_OVF,
    nan_inf=[("NaN in dy[0, 2, 2, 0]", with_nan("dy", (0, 2, 2, 0)),
              Valid("dx NaN on the 3x3 inputs feeding it", nan_where(CONV_NAN)))],
    none=_CONV_NONE + [("x_shape=None", set_(x_shape=None), Raises(TypeError, "x_shape"))],
    wrong_type=_CONV_TYPES + [("x_shape='abcd'", set_(x_shape="abcd"), Raises(TypeError, "x_shape"))],
    **out_cases((2, 5, 5, 3), "dy"),
)

TABLE["conv2d_backward_filter"] = dict(
    valid=v_conv_bf,
    shape=[("dy of the wrong shape", set_(dy=rng_arr((2, 4, 5, 4))), Raises(ValueError, "dy")),
           ("w_shape in_channels 2", set_(w_shape=(3, 3, 2, 4)), Raises(ValueError, "w_shape")),
           ("out of the wrong shape", set_(out=np.zeros((3, 3, 3, 3), F32)), Raises(ValueError, "out"))]
    + _CONV_GEOM,
    zero_size=[("batch 0", lambda kw: dict(kw, x=np.zeros((0, 5, 5, 3), F32), dy=np.zeros((0, 5, 5, 4), F32)),
                Valid("an empty sum: dw all zeros",
                      lambda r, kw, b: np.testing.assert_array_equal(r, np.zeros((3, 3, 3, 4), F32))))],
    overflow=[("w_shape (2**40, 2**40, 3, 4)", set_(w_shape=(2 ** 40, 2 ** 40, 3, 4)),
               Raises(ValueError, "w_shape"))] + _CONV_OVF,
    nan_inf=[("NaN in x[0, 2, 2, 0]", with_nan("x", (0, 2, 2, 0)),
              Valid("dw[:, :, 0, :] NaN (every tap sees it)",
                    nan_where((slice(None), slice(None), 0))))],
    none=_CONV_NONE + [("w_shape=None", set_(w_shape=None), Raises(TypeError, "w_shape"))],
    wrong_type=_CONV_TYPES + [("w_shape=3", set_(w_shape=3), Raises(TypeError, "w_shape"))],
    **out_cases((3, 3, 3, 4), "x"),
)

TABLE["bias_add"] = dict(
    valid=v_bias_add,
    shape=[("b of length 4 for 3 channels", set_(b=rng_arr((4,))), Raises(ValueError, "b")),
           ("y 0-d", set_(y=np.ones((), F32)), Raises(ValueError, "y")),
           ("out of the wrong shape", set_(out=np.zeros((3, 4), F32)), Raises(ValueError, "out"))],
    zero_size=[("y (0, 3)", set_(y=np.zeros((0, 3), F32)), Valid("empty", empty((0, 3)))),
               ("0 channels", set_(y=np.zeros((4, 0), F32), b=np.zeros(0, F32)), Valid("empty", empty((4, 0))))],
    overflow=[("y (2**40, 2**20, 0)", set_(y=np.zeros((2 ** 40, 2 ** 20, 0), F32), b=np.zeros(0, F32)),
               Valid("empty at once", empty((2 ** 40, 2 ** 20, 0))))],
    nan_inf=[("NaN in y[1, 2]", with_nan("y", (1, 2)), Valid("only that cell NaN", nan_where((1, 2)))),
             ("NaN in b[0]", with_nan("b", 0), Valid("channel 0 NaN", nan_where((slice(None), 0))))],
    none=[("out=None", set_(out=None), Valid("a new array", same_as_base))],
    wrong_type=[WHO_NONE],
    readonly_out=[("out read-only", set_(out=readonly((4, 3))), Raises(ValueError, "out", "writeable"))],
    alias_out=[("out is y (documented in place)", lambda kw: dict(kw, out=kw["y"]),
                Valid("y + b written into y", lambda r, kw, b: (
                    np.testing.assert_array_equal(r, b), np.testing.assert_array_equal(kw["y"], b)))),
               ("out shares memory with b", lambda kw: aliased(kw, "b", (4, 3)),
                Raises(ValueError, "out", "b"))],
)

TABLE["bias_grad"] = dict(
    valid=v_bias_grad,
    shape=[("dy 0-d", set_(dy=np.ones((), F32)), Raises(ValueError, "dy"))],
    zero_size=[("dy (0, 3)", set_(dy=np.zeros((0, 3), F32)),
                Valid("an empty sum: zeros", lambda r, kw, b: np.testing.assert_array_equal(r, np.zeros(3, F32)))),
               ("dy (4, 0)", set_(dy=np.zeros((4, 0), F32)), Valid("empty", empty((0,))))],
    overflow=[("dy (2**40, 2**20, 0) (hung before the fix)", set_(dy=np.zeros((2 ** 40, 2 ** 20, 0), F32)),
               Valid("empty at once", empty((0,))))],
    nan_inf=[("NaN in dy[2, 1]", with_nan("dy", (2, 1)), Valid("db[1] NaN", nan_where((1,))))],
    none=[], wrong_type=[WHO_NONE], **NO_OUT,
)

_POOL_OVF = [("pool (2**40, 2)", set_(pool=(2 ** 40, 2)), Raises(ValueError, "pool")),
             ("strides = 2**70", set_(strides=BIG), Raises(ValueError, "strides")),
             ("padding -1", set_(padding=(-1, 0, 0, 0)), Raises(ValueError, "padding"))]
_POOL_TYPES = [WHO_NONE, ("kind='min'", set_(kind="min"), Raises(ValueError, "kind")),
               ("pool='2'", set_(pool="2"), Raises(TypeError, "pool")),
               ("strides=(2.0, 2)", set_(strides=(2.0, 2)), Raises(TypeError, "strides"))]
_POOL_NONE = [("pool=None", set_(pool=None), Raises(TypeError, "pool")),
              ("kind=None", set_(kind=None), Raises(TypeError, "kind")),
              ("out=None", set_(out=None), Valid("a new array", same_as_base))]

TABLE["pool2d_forward"] = dict(
    valid=v_pool_f,
    shape=[("x smaller than the pool", set_(x=rng_arr((2, 1, 1, 3))), Raises(ValueError, "x")),
           ("padding >= pool", set_(padding=(2, 0, 0, 0)), Raises(ValueError, "padding")),
           ("out of the wrong shape", set_(out=np.zeros((2, 3, 3, 2), F32)), Raises(ValueError, "out"))],
    zero_size=[("batch 0", set_(x=np.zeros((0, 6, 6, 3), F32)), Valid("empty", empty((0, 3, 3, 3)))),
               ("0 channels", set_(x=np.zeros((2, 6, 6, 0), F32)), Valid("empty", empty((2, 3, 3, 0))))],
    overflow=[("x (0, 2**40, 2**15, 1)", set_(x=np.zeros((0, 2 ** 40, 2 ** 15, 1), F32)),
               Valid("empty at once", empty((0, 2 ** 39, 2 ** 14, 1))))] + _POOL_OVF,
    nan_inf=[("NaN in x[0, 1, 1, 0] (not first in its window)", with_nan("x", (0, 1, 1, 0)),
              Valid("max is NaN for that window (NumPy semantics)", nan_where((0, 0, 0, 0)))),
             ("avg: inf in x[1, 5, 5, 2]", lambda kw: dict(with_nan("x", (1, 5, 5, 2), np.inf)(kw), kind="avg"),
              Valid("inf in that window's mean", lambda r, kw, b: np.testing.assert_array_equal(r[1, 2, 2, 2], np.inf)))],
    none=_POOL_NONE, wrong_type=_POOL_TYPES,
    **out_cases((2, 3, 3, 3), "x"),
)

TABLE["pool2d_backward"] = dict(
    valid=v_pool_b,
    shape=[("dy of the wrong shape", set_(dy=rng_arr((2, 3, 3, 2))), Raises(ValueError, "dy")),
           ("out of the wrong shape", set_(out=np.zeros((2, 6, 6, 2), F32)), Raises(ValueError, "out"))],
    zero_size=[("batch 0", set_(x=np.zeros((0, 6, 6, 3), F32), dy=np.zeros((0, 3, 3, 3), F32)),
                Valid("empty", empty((0, 6, 6, 3))))],
    overflow=_POOL_OVF,
    nan_inf=[("NaN in x[0, 1, 1, 0]", with_nan("x", (0, 1, 1, 0)),
              Valid("the gradient goes to the NaN cell (the forward's max)", lambda r, kw, b: (
                  np.testing.assert_array_equal(r[0, 1, 1, 0], kw["dy"][0, 0, 0, 0]),
                  np.testing.assert_array_equal(r[0, :2, :2, 0].sum(), kw["dy"][0, 0, 0, 0])))),
             ("NaN in dy[1, 0, 0, 1]", with_nan("dy", (1, 0, 0, 1)),
              Valid("NaN at that window's arg-max only", lambda r, kw, b: (
                  np.testing.assert_equal(np.isnan(r).sum(), 1),
                  np.testing.assert_equal(np.isnan(r[1, :2, :2, 1]).sum(), 1))))],
    none=_POOL_NONE[:2] + [("dy=None", set_(dy=None), Raises(TypeError, "dy"))],
    wrong_type=_POOL_TYPES,
    **out_cases((2, 6, 6, 3), "x"),
)

TABLE["global_pool2d_forward"] = dict(
    valid=v_gpool_f,
    shape=[("out of the wrong shape", set_(out=np.zeros((2, 2), F32)), Raises(ValueError, "out"))],
    zero_size=[("batch 0", set_(x=np.zeros((0, 4, 4, 3), F32)), Valid("empty", empty((0, 3)))),
               ("height 0", set_(x=np.zeros((2, 0, 4, 3), F32)), Raises(ValueError, "x"))],
    overflow=[("x (0, 2**31, 2**20, 1): H*W beyond int32", set_(x=np.zeros((0, 2 ** 31, 2 ** 20, 1), F32)),
               Raises(ValueError, "x", "height"))],
    nan_inf=[("max: NaN in x[0, 1, 1, 0]", with_nan("x", (0, 1, 1, 0)), Valid("y[0, 0] NaN", nan_where((0, 0)))),
             ("avg: NaN in x[1, 3, 3, 2]", lambda kw: dict(with_nan("x", (1, 3, 3, 2))(kw), kind="avg"),
              Valid("y[1, 2] NaN", nan_where((1, 2))))],
    none=[("kind=None", set_(kind=None), Raises(TypeError, "kind")),
          ("out=None", set_(out=None), Valid("a new array", same_as_base))],
    wrong_type=[WHO_NONE, ("kind='sum'", set_(kind="sum"), Raises(ValueError, "kind"))],
    **out_cases((2, 3), "x"),
)

TABLE["global_pool2d_backward"] = dict(
    valid=v_gpool_b,
    shape=[("dy of the wrong shape", set_(dy=rng_arr((2, 4))), Raises(ValueError, "dy"))],
    zero_size=[("batch 0", set_(x=np.zeros((0, 4, 4, 3), F32), dy=np.zeros((0, 3), F32)),
                Valid("empty", empty((0, 4, 4, 3))))],
    overflow=[("x (0, 2**31, 2**20, 1)", set_(x=np.zeros((0, 2 ** 31, 2 ** 20, 1), F32), dy=np.zeros((0, 1), F32)),
               Raises(ValueError, "x"))],
    nan_inf=[("avg: NaN in dy[0, 1]", lambda kw: dict(with_nan("dy", (0, 1))(kw), kind="avg"),
              Valid("dx[0, :, :, 1] NaN", nan_where((0, slice(None), slice(None), 1))))],
    none=[("dy=None", set_(dy=None), Raises(TypeError, "dy"))],
    wrong_type=[WHO_NONE],
    **out_cases((2, 4, 4, 3), "x"),
)

TABLE["batchnorm_forward"] = dict(
    valid=v_bn_f,
    shape=[("gamma of length 4", set_(gamma=rng_arr((4,))), Raises(ValueError, "gamma")),
           ("x 1-D", set_(x=rng_arr((8,))), Raises(ValueError, "x")),
           ("inference without mean", set_(training=False), Raises(ValueError, "mean")),
           ("out of the wrong shape", set_(out=np.zeros((8, 4), F32)), Raises(ValueError, "out"))],
    zero_size=[("training on 0 rows", set_(x=np.zeros((0, 3), F32)), Raises(ValueError, "x", "row")),
               ("inference on 0 rows", lambda kw: dict(kw, x=np.zeros((0, 3), F32), training=False,
                                                       mean=np.zeros(3, F32), var=np.ones(3, F32)),
                Valid("empty", empty((0, 3))))],
    overflow=[("eps = 1e40", set_(eps=1e40), Raises(ValueError, "eps")),
              ("x (0, 2**40, 3) in training", set_(x=np.zeros((0, 2 ** 40, 3), F32)), Raises(ValueError, "x"))],
    nan_inf=[("NaN in x[0, 0]", with_nan("x", (0, 0)), Valid("channel 0 NaN", nan_where((slice(None), 0)))),
             ("eps = NaN", set_(eps=float("nan")), Raises(ValueError, "eps")),
             ("eps = -1", set_(eps=-1.0), Raises(ValueError, "eps"))],
    none=[("eps=None", set_(eps=None), Raises(TypeError, "eps")),
          ("act=None", set_(act=None), Valid("no activation", same_as_base))],
    wrong_type=[WHO_NONE, ("act='gelu'", set_(act="gelu"), Raises(ValueError, "act")),
                ("act=5", set_(act=5), Raises(TypeError, "act")),
                ("act tuple too short", set_(act=(1, 2)), Raises(TypeError, "act")),
                ("eps='1'", set_(eps="1"), Raises(TypeError, "eps"))],
    **out_cases((8, 3), "x"),
)

TABLE["batchnorm_backward"] = dict(
    valid=v_bn_b,
    shape=[("dy of the wrong shape", set_(dy=rng_arr((8, 4))), Raises(ValueError, "dy")),
           ("inv_std of length 2", set_(inv_std=rng_arr((2,))), Raises(ValueError, "inv_std"))],
    zero_size=[("0 rows", lambda kw: dict(kw, x=np.zeros((0, 3), F32), dy=np.zeros((0, 3), F32)),
                Valid("empty dx, zero dgamma/dbeta", lambda r, kw, b: (
                    np.testing.assert_equal(r[0].shape, (0, 3)),
                    np.testing.assert_array_equal(r[1], np.zeros(3, F32)),
                    np.testing.assert_array_equal(r[2], np.zeros(3, F32)))))],
    overflow=[("x (0, 2**40, 3)", lambda kw: dict(kw, x=np.zeros((0, 2 ** 40, 3), F32),
                                                 dy=np.zeros((0, 2 ** 40, 3), F32)),
               Valid("empty dx, zero dgamma/dbeta", lambda r, kw, b: np.testing.assert_array_equal(r[2], 0)))],
    nan_inf=[("NaN in dy[3, 1]", with_nan("dy", (3, 1)), Valid("dx[:, 1] NaN", nan_where((slice(None), 1))))],
    none=[("batch_mean=None", set_(batch_mean=None), Raises(TypeError, "batch_mean"))],
    wrong_type=[WHO_NONE, ("act='tanh'", set_(act="tanh"), Raises(ValueError, "act"))],
    **out_cases((8, 3), "x"),
)

TABLE["softmax_cross_entropy"] = dict(
    valid=v_xent,
    shape=[("labels of length 5", set_(labels=np.zeros(5, np.int64)), Raises(ValueError, "labels")),
           ("float labels of another shape", set_(labels=np.zeros((4, 4), F32)), Raises(ValueError, "labels"))],
    zero_size=[("0 rows", set_(logits=np.zeros((0, 5), F32), labels=np.zeros(0, np.int64)),
                Valid("empty loss and gradient", empty((0,)))),
               ("0 classes", set_(logits=np.zeros((4, 0), F32)), Raises(ValueError, "logits"))],
    overflow=[("label 2**40", set_(labels=np.array([0, 2 ** 40, 0, 0], np.int64)), Raises(ValueError, "labels")),
              ("label -1", set_(labels=np.array([0, -1, 0, 0], np.int64)), Raises(ValueError, "labels"))],
    nan_inf=[("NaN in logits[2, 3]", with_nan("logits", (2, 3)), Valid("loss[2] NaN", nan_where((2,)))),
             ("NaN target", lambda kw: dict(kw, labels=np.where(np.eye(4, 5) > 0, np.nan, 0).astype(F32)),
              Valid("every loss NaN", lambda r, kw, b: np.testing.assert_equal(np.isnan(r[0]).all(), True)))],
    none=[], wrong_type=[WHO_NONE], **NO_OUT,
)

TABLE["activation_forward"] = dict(
    valid=v_act_f,
    shape=[("softmax of a 0-d x", lambda kw: dict(kw, kind="softmax", x=np.ones((), F32)), Raises(ValueError, "x")),
           ("out of the wrong shape", set_(out=np.zeros((3, 4), F32)), Raises(ValueError, "out"))],
    zero_size=[("x (0, 3)", set_(x=np.zeros((0, 3), F32)), Valid("empty", empty((0, 3)))),
               ("softmax over 0 classes", lambda kw: dict(kw, kind="softmax", x=np.zeros((4, 0), F32)),
                Valid("empty", empty((4, 0))))],
    overflow=[("alpha beyond float32", lambda kw: dict(kw, kind="leaky_relu", alpha=1e300), Raises(ValueError, "alpha"))],
    nan_inf=[("NaN in x[1, 1]", with_nan("x", (1, 1)), Valid("y[1, 1] NaN", nan_where((1, 1)))),
             ("softmax with NaN in x[2, 0]", lambda kw: dict(with_nan("x", (2, 0))(kw), kind="softmax"),
              Valid("row 2 NaN", nan_where((2,)))),
             ("alpha NaN", lambda kw: dict(kw, kind="leaky_relu", alpha=float("nan")), Raises(ValueError, "alpha"))],
    none=[("kind=None", set_(kind=None), Raises(TypeError, "kind")),
          ("out=None", set_(out=None), Valid("a new array", same_as_base))],
    wrong_type=[WHO_NONE, ("kind='gelu'", set_(kind="gelu"), Raises(ValueError, "kind")),
                ("alpha='0.1'", set_(alpha="0.1"), Raises(TypeError, "alpha"))],
    **out_cases((4, 3), "x"),
)

TABLE["activation_backward"] = dict(
    valid=v_act_b,
    shape=[("x of another shape", set_(x=rng_arr((4, 4))), Raises(ValueError, "x")),
           ("sigmoid without y", set_(kind="sigmoid"), Raises(TypeError, "y"))],
    zero_size=[("dy (0, 3)", set_(x=np.zeros((0, 3), F32), dy=np.zeros((0, 3), F32)), Valid("empty", empty((0, 3))))],
    overflow=[("alpha 1e300", lambda kw: dict(kw, kind="leaky_relu", alpha=1e300), Raises(ValueError, "alpha"))],
    nan_inf=[("NaN in dy[0, 2]", with_nan("dy", (0, 2)),
              Valid("dx[0, 2] NaN, also where the relu gate is closed (NaN * 0)", nan_where((0, 2))))],
    none=[("x=None for relu", set_(x=None), Raises(TypeError, "x"))],
    wrong_type=[WHO_NONE],
    **out_cases((4, 3), "dy"),
)

_Q_PARAMS = [("params a list", set_(params=[1]), Raises(TypeError, "params")),
             ("params['op'] = 'a'", set_(params=dict(op="a")), Raises(TypeError, "params")),
             ("params['qf'] = 'a'", lambda kw: dict(kw, params=dict(kw["params"], qf="a")), Raises(TypeError, "params"))]

TABLE["quant_forward"] = dict(
    valid=v_qf,
    shape=[("scale of 5 channels for 12 elements", set_(scale=np.ones(5, F32)), Raises(ValueError, "scale")),
           ("scale2 without scale", set_(scale2=np.ones(3, F32)), Raises(ValueError, "scale2")),
           ("out of the wrong shape", set_(out=np.zeros((3, 4), F32)), Raises(ValueError, "out")),
           ("params['op'] unknown", set_(params=dict(op=999)), Raises(ValueError, "params"))],
    zero_size=[("x (0, 3)", set_(x=np.zeros((0, 3), F32)), Valid("empty", empty((0, 3))))],
    overflow=[("inner = 2**70", lambda kw: dict(kw, scale=np.ones(3, F32), inner=BIG), Raises(OverflowError, "inner")),
              ("inner = 0 with scale", lambda kw: dict(kw, scale=np.ones(3, F32), inner=0), Raises(ValueError, "inner")),
              ("params['op'] = 2**70", set_(params=dict(op=BIG)), Raises(OverflowError, "params")),
              ("params['in_mul'] = 10**400", lambda kw: dict(kw, params=dict(kw["params"], in_mul=10 ** 400)),
               Raises(OverflowError, "params"))],
    nan_inf=[("NaN in x[1, 1]", with_nan("x", (1, 1)), Valid("y[1, 1] NaN (as QKeras)", nan_where((1, 1))))],
    none=[("params=None", set_(params=None), Raises(TypeError, "params")),
          ("out=None", set_(out=None), Valid("a new array", same_as_base))],
    wrong_type=[WHO_NONE] + _Q_PARAMS,
    **out_cases((4, 3), "x"),
)

TABLE["quant_backward"] = dict(
    valid=v_qb,
    shape=[("dy of another shape", set_(dy=rng_arr((3, 4))), Raises(ValueError, "dy")),
           ("scale of 5 channels", set_(scale=np.ones(5, F32)), Raises(ValueError, "scale"))],
    zero_size=[("x (0, 3)", set_(x=np.zeros((0, 3), F32), dy=np.zeros((0, 3), F32)), Valid("empty", empty((0, 3))))],
    overflow=[("inner = 2**70", set_(inner=BIG), Raises(OverflowError, "inner"))],
    nan_inf=[("NaN in dy[2, 0]", with_nan("dy", (2, 0)), Valid("dx[2, 0] NaN (STE)", nan_where((2, 0))))],
    none=[("params=None", set_(params=None), Raises(TypeError, "params"))],
    wrong_type=[WHO_NONE] + _Q_PARAMS[:2],
    **out_cases((4, 3), "x"),
)

TABLE["quant_auto"] = dict(
    valid=v_qa,
    shape=[("layout not matching x", set_(S=5, outer=3), Raises(ValueError, "outer")),
           ("scale_in of length 2", set_(scale_in=np.ones(2, F32)), Raises(ValueError, "scale_in")),
           ("out of the wrong shape", set_(out=np.zeros((3, 4), F32)), Raises(ValueError, "out"))],
    zero_size=[("x (0, 3)", lambda kw: dict(kw, x=np.zeros((0, 3), F32), outer=0),
                Raises(ValueError, "outer"))],
    overflow=[("outer = 2**70", set_(outer=BIG), Raises(OverflowError, "outer")),
              ("S * inner overflows", set_(S=2 ** 62, inner=2 ** 62), Raises(ValueError, "inner")),
              ("auto['iterations'] = 10**6", set_(auto=dict(iterations=10 ** 6)), Raises(ValueError, "iterations")),
              ("auto['po2'] = 2**70", set_(auto=dict(po2=BIG)), Raises(OverflowError, "po2"))],
    nan_inf=[("NaN in x[1, 0]", with_nan("x", (1, 0)),
              Valid("channel 0 (its scale is NaN) NaN, others clean", nan_where((slice(None), 0))))],
    none=[("auto=None", set_(auto=None), Raises(TypeError, "auto")),
          ("outer=None", set_(outer=None), Raises(TypeError, "outer"))],
    wrong_type=[WHO_NONE, ("kind='po3'", set_(kind="po3"), Raises(ValueError, "kind")),
                ("auto a list", set_(auto=[1]), Raises(TypeError, "auto")),
                ("group=1.5", set_(group=1.5), Raises(TypeError, "group"))],
    **out_cases((4, 3), "x"),
)

# a spec whose STE reads x itself (quantized_tanh's): no bit mask can stand for it
_TANH_SPEC = (dict(op=7, m=4.0, lo=-0.75, hi=0.75), None, None, 1, dict(op=7, m=4.0, lo=-0.75, hi=0.75), None, 1)

TABLE["quant_ste_backward"] = dict(
    valid=v_steb,
    shape=[("mask for 3 rows", lambda kw: dict(kw, mask=np.ascontiguousarray(kw["mask"][:, :3])),
            Raises(ValueError, "mask", "does not fit")),
           ("dy with 9 channels", set_(dy=rng_arr((4, 9))), Raises(ValueError, "mask", "does not fit")),
           ("mask with 4 groups for 6 channels", lambda kw: dict(kw, mask=np.zeros((4, 4, 1), np.uint8)),
            Raises(ValueError, "mask")),
           ("out of the wrong shape", set_(out=np.zeros((4, 5), F32)), Raises(ValueError, "out"))],
    zero_size=[("dy (0, 6)", lambda kw: dict(kw, dy=np.zeros((0, 6), F32), mask=np.zeros((1, 0, 1), np.uint8)),
                Valid("empty", empty((0, 6))))],
    overflow=NA("sizes come from the arrays, whose shapes are checked against each other"),
    nan_inf=[("NaN in dy[2, 0]", with_nan("dy", (2, 0)), Valid("dx[2, 0] NaN (t * g)", nan_where((2, 0))))],
    none=[("spec=None", set_(spec=None), Raises(TypeError, "spec")),
          ("out=None", set_(out=None), Valid("a new array", same_as_base))],
    wrong_type=[WHO_NONE, ("spec of quantized_tanh", set_(spec=_TANH_SPEC), Raises(ValueError, "bit mask")),
                ("spec a list", set_(spec=[1]), Raises(TypeError, "spec"))],
    readonly_out=out_cases((4, 6), "dy")["readonly_out"],
    alias_out=[("out overlapping dy one row on", lambda kw: (lambda buf: dict(
                    kw, dy=buf[:24].reshape(4, 6), out=buf[6:30].reshape(4, 6)))(
                    np.concatenate([kw["dy"].ravel(), np.zeros(6, F32)])),
                Raises(ValueError, "out", "share memory")),
               ("out is dy itself", lambda kw: (lambda d: dict(kw, dy=d, out=d))(kw["dy"].copy()),
                Valid("in place: the same values", same_as_base))],
)

TABLE["ste_planes"] = dict(
    valid=v_ste_planes,
    dtype=NO_ARRAYS, ndim=NO_ARRAYS, noncontig=NO_ARRAYS,
    shape=[("spec with 6 fields", lambda kw: dict(kw, spec=kw["spec"][:6]), Raises(TypeError, "spec"))],
    zero_size=NA("a spec has no size"),
    overflow=[("params_b['op'] = 2**70",
               lambda kw: dict(kw, spec=kw["spec"][:4] + (dict(op=BIG),) + kw["spec"][5:]),
               Raises(OverflowError, "op"))],
    nan_inf=[("a spec of quantized_tanh", set_(spec=_TANH_SPEC),
              Valid("None: its STE reads x", lambda r, kw, b: r is None or (_ for _ in ()).throw(AssertionError(r))))],
    none=[("spec=None", set_(spec=None), Raises(TypeError, "spec"))],
    wrong_type=[("spec='relu'", set_(spec="relu"), Raises(TypeError, "spec"))],
    **NO_OUT,
)

TABLE["uniform"] = dict(
    valid=v_uniform,
    dtype=NO_ARRAYS, ndim=NO_ARRAYS, noncontig=NO_ARRAYS,
    shape=[("n = -1", set_(n=-1), Raises(ValueError, "n"))],
    zero_size=[("n = 0", set_(n=0), Valid("empty", empty((0,))))],
    overflow=[("n = 2**70", set_(n=BIG), Raises(OverflowError, "n")),
              ("key = 2**70 + 7", set_(key=BIG + 7),
               Valid("keys are taken mod 2**64 (counter RNG: any bit pattern is a key)",
                     lambda r, kw, b: np.testing.assert_array_equal(r, _core.uniform(7 + (BIG % 2 ** 64), 10))))],
    nan_inf=NA("integer arguments only"),
    none=[("key=None", set_(key=None), Raises(TypeError, "key")),
          ("n=None", set_(n=None), Raises(TypeError, "n"))],
    wrong_type=[("key='7'", set_(key="7"), Raises(TypeError, "key")),
                ("n=10.0", set_(n=10.0), Raises(TypeError, "n"))],
    **NO_OUT,
)

TABLE["bnn_bitpack"] = dict(
    valid=v_bitpack,
    shape=[("x 0-d", set_(x=np.ones((), F32)), Raises(ValueError, "x")),
           ("x with 9 dims", set_(x=np.ones((1,) * 8 + (2,), F32)), Raises(ValueError, "x")),
           ("out of the wrong shape", set_(out=np.zeros((2, 1), np.uint64)), Raises(ValueError, "out")),
           ("out float32", set_(out=np.zeros((2, 2), F32)), Raises(TypeError, "out"))],
    zero_size=[("x (0, 70)", set_(x=np.zeros((0, 70), F32)), Valid("empty", empty((0, 2)))),
               ("0 channels", set_(x=np.zeros((2, 0), F32)), Raises(ValueError, "x"))],
    overflow=[("x (0, 2**40, 3)", set_(x=np.zeros((0, 2 ** 40, 3), F32)), Valid("empty", empty((0, 2 ** 40, 1))))],
    nan_inf=[("NaN and -inf", lambda kw: dict(kw, x=np.array([[np.nan, -np.nan, -np.inf, np.inf]], F32)),
              Valid("NaN is not negative: bit 0 (+1); -inf bit 1",
                    lambda r, kw, b: np.testing.assert_array_equal(r, np.array([[4]], np.uint64))))],
    none=[("out=None", set_(out=None), Valid("a new array", same_as_base))],
    wrong_type=[WHO_NONE],
    readonly_out=[("out read-only", set_(out=readonly((2, 2), np.uint64)), Raises(ValueError, "out"))],
    alias_out=[("out inside x's buffer", lambda kw: dict(kw, out=kw["x"].reshape(-1)[:8].view(np.uint64).reshape(2, 2)),
                Raises(ValueError, "out", "overlap"))],
)


def _bconv_thr(kw):
    return dict(kw, mode="codes", thr=np.zeros((1, 4), np.int32), dir=np.ones(4, np.int8))


TABLE["bnn_conv2d"] = dict(
    valid=v_bconv,
    shape=[("w panel of the wrong shape", set_(w=np.zeros((1, 8, 32), np.uint64)), Raises(ValueError, "w")),
           ("ibias of length 5", set_(ibias=np.zeros(5, np.int32)), Raises(ValueError, "ibias")),
           ("x words for another cin", set_(x=np.zeros((1, 4, 4, 2), np.uint64)), Raises(ValueError, "x")),
           ("thr with 2 rows in bits mode", lambda kw: dict(_bconv_thr(kw), mode="bits", thr=np.zeros((2, 4), np.int32)),
            Raises(ValueError, "thr")),
           ("out of the wrong shape", set_(out=np.zeros((1, 4, 4, 3), F32)), Raises(ValueError, "out"))],
    zero_size=[("batch 0", set_(x=np.zeros((0, 4, 4, 1), np.uint64)), Valid("empty", empty((0, 4, 4, 4)))),
               ("height 0", set_(x=np.zeros((1, 0, 4, 1), np.uint64)), Raises(ValueError, "input"))],
    overflow=[("cin = 2**70", set_(cin=BIG), Raises(OverflowError, "cin")),
              ("out_channels = 2**30", set_(out_channels=2 ** 30), Raises(ValueError, "out_channels")),
              ("imul = 2**40", set_(imul=2 ** 40), Raises(OverflowError, "imul")),
              ("kernel_size 2**30", set_(kernel_size=(2 ** 30, 3)), Raises(ValueError, "kernel_size")),
              ("ibias beyond 2**30", set_(ibias=np.full(4, 2 ** 31 - 1, np.int32)), Raises(ValueError, "ibias")),
              ("code_mul * levels > 255", lambda kw: dict(_bconv_thr(kw), code_mul=300), Raises(ValueError, "code_mul"))],
    nan_inf=[("NaN in mul[1]", with_nan("mul", 1), Valid("output channel 1 NaN", nan_where((Ellipsis, 1))))],
    none=[("mul=None in float mode", set_(mul=None), Raises(TypeError, "mul")),
          ("thr=None in codes mode", lambda kw: dict(_bconv_thr(kw), thr=None), Raises(TypeError, "thr")),
          ("ws=None", set_(ws=None), Valid("a private workspace", same_as_base))],
    wrong_type=[WHO_NONE, ("kind='int4'", set_(kind="int4"), Raises(ValueError, "kind")),
                ("mode='x'", set_(mode="x"), Raises(ValueError, "mode")),
                ("ws=object()", set_(ws=object()), Raises(TypeError, "ws")),
                ("cin='10'", set_(cin="10"), Raises(TypeError, "cin"))],
    **out_cases((1, 4, 4, 4), "mul"),
)

TABLE["bnn_maxpool"] = dict(
    valid=v_bmaxpool,
    shape=[("padding >= pool", set_(padding=(2, 0, 0, 0)), Raises(ValueError, "padding")),
           ("planes=2 on uint8", set_(planes=2), Raises(ValueError, "planes")),
           ("x 3-D", set_(x=np.zeros((4, 4, 3), np.uint8)), Raises(ValueError, "x"))],
    zero_size=[("batch 0", set_(x=np.zeros((0, 4, 4, 3), np.uint8)), Valid("empty", empty((0, 2, 2, 3))))],
    overflow=[("x (2**40, 4, 4, 0) (visited every cell before the fix)",
               set_(x=np.zeros((2 ** 40, 4, 4, 0), np.uint8)), Valid("empty at once", empty((2 ** 40, 2, 2, 0)))),
              ("pool_size 2**40", set_(pool_size=(2 ** 40, 2)), Raises(ValueError, "pool_size")),
              ("planes = 2**40", set_(planes=2 ** 40), Raises(OverflowError, "planes"))],
    nan_inf=NA("integer codes / packed words: no NaN"),
    none=[("pool_size=None", set_(pool_size=None), Raises(TypeError, "pool_size"))],
    wrong_type=[WHO_NONE, ("strides=(2.0, 2)", set_(strides=(2.0, 2)), Raises(ValueError, "strides"))],
    **NO_OUT,
)

TABLE["bnn_fthresh_pool"] = dict(
    valid=v_fthresh,
    shape=[("thr with 2 rows in bits mode", set_(mode="bits", thr=np.zeros((2, 3), F32)), Raises(ValueError, "thr")),
           ("dir of length 2", set_(dir=np.ones(2, np.int8)), Raises(ValueError, "dir")),
           ("w for other channels", set_(w=rng_arr((3, 3, 2, 4)), conv_strides=(1, 1), conv_padding=(1, 1, 1, 1)),
            Raises(ValueError, "w"))],
    zero_size=[("batch 0", set_(z=np.zeros((0, 4, 4, 3), F32)), Valid("empty", empty((0, 2, 2, 3)))),
               ("0 channels", lambda kw: dict(kw, z=np.zeros((1, 4, 4, 0), F32), thr=np.zeros((1, 0), F32),
                                              dir=np.ones(0, np.int8)), Raises(ValueError, "channel"))],
    overflow=[("w with kh*kw*c beyond the limit", set_(w=np.zeros((2 ** 29, 2 ** 29, 3, 0), F32)),
               Raises(ValueError, "w")),
              ("code_mul 2**40", set_(code_mul=2 ** 40), Raises(OverflowError, "code_mul"))],
    nan_inf=[("NaN in z[0, 0, 0, 0]", with_nan("z", (0, 0, 0, 0)),
              Valid("the max skips a NaN cell: as if it were -inf",
                    lambda r, kw, b: np.testing.assert_array_equal(
                        r, _core.bnn_fthresh_pool(**with_nan("z", (0, 0, 0, 0), -np.inf)(kw))))),
             ("a window of NaN", lambda kw: dict(kw, z=np.where(np.arange(4)[None, :, None, None] < 2,
                                                               np.nan, kw["z"]).astype(F32)),
              Valid("NaN compares below every threshold: level 0",
                    lambda r, kw, b: np.testing.assert_array_equal(r[0, 0], 0))),
             ("NaN threshold", with_nan("thr", (0, 1)),
              Valid("no value reaches a NaN threshold: level 0 in channel 1",
                    lambda r, kw, b: np.testing.assert_array_equal(r[..., 1], 0)))],
    none=[("thr=None", set_(thr=None), Raises(TypeError, "thr"))],
    wrong_type=[WHO_NONE, ("mode='x'", set_(mode="x"), Raises(ValueError, "mode"))],
    **NO_OUT,
)

TABLE["bnn_fconv"] = dict(
    valid=v_fconv,
    shape=[("w in_channels 3 for x with 2", set_(w=rng_arr((3, 3, 3, 4))), Raises(ValueError, "w")),
           ("x 3-D", set_(x=rng_arr((5, 5, 2))), Raises(ValueError, "x")),
           ("out of the wrong shape", set_(out=np.zeros((1, 5, 5, 3), F32)), Raises(ValueError, "out"))],
    zero_size=[("batch 0", set_(x=np.zeros((0, 5, 5, 2), F32)), Valid("empty", empty((0, 5, 5, 4))))],
    overflow=[("kh*kw*c beyond the limit", set_(w=np.zeros((2 ** 29, 2 ** 29, 2, 0), F32)),
               Raises(ValueError, "w")),
              ("strides 2**70", set_(strides=(BIG, 1)), Raises(ValueError, "strides"))],
    nan_inf=[("NaN in x[0, 2, 2, 0]", with_nan("x", (0, 2, 2, 0)), Valid("3x3 outputs NaN", nan_where(CONV_NAN)))],
    none=[("strides=None", set_(strides=None), Raises(TypeError, "strides"))],
    wrong_type=[WHO_NONE],
    **out_cases((1, 5, 5, 4), "x"),
)

# runtime entry points
_NOARG = {k: NA("takes no arguments") for k in KINDS if k != "wrong_type"}
for _name in ("build_info", "get_isa", "get_num_threads", "bnn_workspace", "Workspace"):
    TABLE[_name] = dict(valid=v_noargs, **_NOARG,
                        wrong_type=[("an argument", lambda kw: ("pos", 1), Raises(TypeError, _name))])

TABLE["set_isa"] = dict(
    valid=lambda: dict(isa=_core.get_isa()),
    **{k: NA("one str argument") for k in ("dtype", "ndim", "shape", "noncontig", "readonly_out",
                                           "alias_out", "zero_size", "nan_inf")},
    overflow=NA("a name, no size"),
    none=[("None", lambda kw: ("pos", None), Raises(TypeError, "isa"))],
    wrong_type=[("3", lambda kw: ("pos", 3), Raises(TypeError, "isa")),
                ("'avx9'", lambda kw: ("pos", "avx9"), Raises(ValueError, "isa"))],
)
TABLE["set_num_threads"] = dict(
    valid=lambda: dict(n=_core.get_num_threads()),
    **{k: NA("one int argument") for k in ("dtype", "ndim", "shape", "noncontig", "readonly_out",
                                           "alias_out", "zero_size")},
    overflow=[("2**80", lambda kw: ("pos", 2 ** 80), Raises(ValueError, "n")),
              ("0", lambda kw: ("pos", 0), Raises(ValueError, "n"))],
    nan_inf=[("NaN", lambda kw: ("pos", float("nan")), Raises(TypeError, "n"))],
    none=[("None", lambda kw: ("pos", None), Raises(TypeError, "n"))],
    wrong_type=[("'2'", lambda kw: ("pos", "2"), Raises(TypeError, "n"))],
)

# ---------------------------------------------------------------------------------------------
# optimizer updates (in place: w, g and the slots; every array must have w's shape)


def returns_none_and_w(check_w):
    """The update ran (it returns None) and w (updated in place) passes check_w."""
    def check(result, kw, base):
        assert result is None
        check_w(kw["w"])
    return check


def _optim_table(valid, slots, optional, floats):
    """The table of an optimizer update: `slots` are its state arrays (those in `optional` may be
    None), `floats` its scalar hyper-parameters."""
    first_f = floats[0]
    arrs = ["w", "g"] + slots
    t = dict(valid=valid)
    t["dtype"] = [(f"{a} as float64", lambda kw, a=a: dict(kw, **{a: kw[a].astype(F64)}),
                   Raises(TypeError, a)) for a in arrs]
    t["ndim"] = [(f"{a} with a leading axis", lambda kw, a=a: dict(kw, **{a: kw[a][None]}),
                  Raises(ValueError, a)) for a in arrs[1:]]
    t["shape"] = [(f"{a} of another shape", lambda kw, a=a: dict(kw, **{a: rng_arr((3, 4))}),
                   Raises(ValueError, a, "shape of the variable")) for a in arrs[1:]]
    t["noncontig"] = [(f"{a} strided", lambda kw, a=a: dict(kw, **{a: noncontig(kw[a])}),
                       Raises(ValueError, a, "contiguous")) for a in arrs]
    t["readonly_out"] = [(f"{a} read-only (updated in place)",
                          lambda kw, a=a: dict(kw, **{a: readonly(kw[a].shape)}),
                          Raises(ValueError, a, "writeable")) for a in ["w"] + slots]
    t["alias_out"] = [(f"{a} is w", lambda kw, a=a: dict(kw, **{a: kw["w"]}),
                       Raises(ValueError, a, "share memory")) for a in arrs[1:]] + [
        (f"{slots[0]} overlaps w", lambda kw: (lambda buf: dict(
            kw, w=buf[:12].reshape(4, 3), **{slots[0]: buf[6:18].reshape(4, 3)}))(
            np.zeros(18, F32)), Raises(ValueError, slots[0], "share memory"))]
    t["zero_size"] = [("an empty variable", lambda kw: dict(kw, **{a: np.zeros((0, 3), F32)
                                                                   for a in arrs}),
                       Valid("nothing to update", returns_none_and_w(
                           lambda w: np.testing.assert_equal(w.shape, (0, 3)))))]
    t["overflow"] = [(f"{first_f} = 1e300 (beyond float32)", set_(**{first_f: 1e300}),
                      Raises(ValueError, first_f, "float32")),
                     ("w of shape (0, 2**40)", lambda kw: dict(kw, **{a: np.zeros((0, 2 ** 40), F32)
                                                                     for a in arrs}),
                      Valid("returns at once", returns_none_and_w(
                          lambda w: np.testing.assert_equal(w.size, 0))))]
    t["nan_inf"] = [(f"{f} = NaN", set_(**{f: float("nan")}), Raises(ValueError, f))
                    for f in floats] + [
        (f"{floats[-1]} = inf", set_(**{floats[-1]: float("inf")}), Raises(ValueError, floats[-1])),
        ("NaN in g[1, 2]", with_nan("g", (1, 2)),
         Valid("NaN reaches w[1, 2] only", returns_none_and_w(lambda w: (
             np.testing.assert_equal(np.isnan(w[1, 2]), True),
             np.testing.assert_equal(np.isnan(w).sum(), 1)))))]
    t["none"] = [(f"{f}=None", set_(**{f: None}), Raises(TypeError, f)) for f in floats[:1]] + [
        (f"{a}=None", set_(**{a: None}), Raises(TypeError, a)) for a in arrs if a not in optional
    ] + [(f"{a}=None", set_(**{a: None}),
          Valid(f"no {a} state: the update without it", returns_none_and_w(
              lambda w: np.testing.assert_equal(np.isfinite(w).all(), True))))
         for a in optional]
    t["wrong_type"] = [WHO_NONE, (f"{first_f}='0.1'", set_(**{first_f: "0.1"}),
                                  Raises(TypeError, first_f))] + [
        (f"{a} as a list", lambda kw, a=a: dict(kw, **{a: kw[a].tolist()}), Raises(TypeError, a))
        for a in arrs]
    return t


def v_sgd():
    return dict(who="sgd_update", w=rng_arr((4, 3), 1), g=rng_arr((4, 3), 2),
                momentum_slot=np.zeros((4, 3), F32), lr=0.1, momentum=0.9, nesterov=False)


def v_adam():
    return dict(who="adam_update", w=rng_arr((4, 3), 1), g=rng_arr((4, 3), 2),
                m=np.zeros((4, 3), F32), v=np.zeros((4, 3), F32), vhat=np.zeros((4, 3), F32),
                lr_t=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7)


def v_rmsprop():
    return dict(who="rmsprop_update", w=rng_arr((4, 3), 1), g=rng_arr((4, 3), 2),
                ms=np.zeros((4, 3), F32), mom=np.zeros((4, 3), F32), mg=np.zeros((4, 3), F32),
                lr=0.01, rho=0.9, momentum=0.5, epsilon=1e-7)


TABLE["sgd_update"] = _optim_table(v_sgd, ["momentum_slot"], ["momentum_slot"],
                                   ["lr", "momentum"])
TABLE["adam_update"] = _optim_table(v_adam, ["m", "v", "vhat"], ["vhat"],
                                    ["lr_t", "beta_1", "beta_2", "epsilon"])
TABLE["rmsprop_update"] = _optim_table(v_rmsprop, ["ms", "mom", "mg"],
                                       ["mom", "mg"], ["lr", "rho", "momentum", "epsilon"])


# ---------------------------------------------------------------------------------------------
# batch norm + activation + max pool (fused training kernels)


def v_bnp_f():
    return dict(who="batchnorm_act_maxpool_forward", x=rng_arr((2, 4, 6, 3), 1),
                gamma=rng_arr((3,), 2, 0.5, 2), beta=rng_arr((3,), 3), eps=1e-3, act="relu",
                pool=(2, 2))


def v_bnp_b():
    kw = v_bnp_f()
    y, m, _, inv, idx, xsel = _core.batchnorm_act_maxpool_forward(
        "f", kw["x"], kw["gamma"], kw["beta"], 1e-3, "relu", (2, 2))
    return dict(who="batchnorm_act_maxpool_backward", dy=rng_arr(y.shape, 4), x=kw["x"], idx=idx,
                xsel=xsel, gamma=kw["gamma"], beta=kw["beta"], batch_mean=m, inv_std=inv,
                act="relu", pool=(2, 2))


def _bnp_unfused(r, kw, base):
    """act=None: the pooled output equals batch norm then max pooling run as two kernels."""
    z = _core.batchnorm_forward("bn", kw["x"], kw["gamma"], kw["beta"], kw["eps"], True)[0]
    np.testing.assert_array_equal(r[0], _core.pool2d_forward("p", "max", z, (2, 2), (2, 2),
                                                             (0, 0, 0, 0)))


ARRAYS["batchnorm_act_maxpool_forward"] = arrays(("x", F64, False, False),
                                                 ("gamma", F64, True, False),
                                                 ("beta", F64, True, False))
ARRAYS["batchnorm_act_maxpool_backward"] = arrays(
    ("dy", F64, False, False), ("x", F64, False, False), ("xsel", F64, False, False),
    ("gamma", F64, True, False), ("beta", F64, True, False), ("batch_mean", F64, False, False),
    ("inv_std", F64, False, False))
_BNP_NO_OUT = {"readonly_out": NA("no out= argument: every result is a new array"),
               "alias_out": NA("no out= argument: every result is a new array")}

TABLE["batchnorm_act_maxpool_forward"] = dict(
    valid=v_bnp_f,
    shape=[("gamma of length 4", set_(gamma=rng_arr((4,))), Raises(ValueError, "gamma")),
           ("pool larger than x", set_(pool=(5, 2)), Raises(ValueError, "x", "window"))],
    zero_size=[("an empty batch", set_(x=np.zeros((0, 4, 6, 3), F32)), Raises(ValueError, "x")),
               ("no channels", lambda kw: dict(kw, x=np.zeros((2, 4, 6, 0), F32), gamma=None,
                                               beta=None), Raises(ValueError, "x"))],
    overflow=[("pool = (2**70, 2)", set_(pool=(BIG, 2)), Raises(ValueError, "pool")),
              ("pool of 17 x 16 cells", set_(pool=(17, 16)), Raises(ValueError, "pool", "256")),
              ("eps = 1e40", set_(eps=1e40), Raises(ValueError, "eps"))],
    nan_inf=[("NaN in x[0, 0, 0, 1]", with_nan("x", (0, 0, 0, 1)),
              Valid("channel 1 NaN (its statistics)", nan_where((Ellipsis, 1)))),
             ("eps = NaN", set_(eps=float("nan")), Raises(ValueError, "eps"))],
    none=[("eps=None", set_(eps=None), Raises(TypeError, "eps")),
          ("pool=None", set_(pool=None), Raises(TypeError, "pool")),
          ("act=None", set_(act=None), Valid("no activation: bn then max pool", _bnp_unfused))],
    wrong_type=[WHO_NONE, ("act='gelu'", set_(act="gelu"), Raises(ValueError, "act")),
                ("act=5", set_(act=5), Raises(TypeError, "act")),
                ("pool='22'", set_(pool="22"), Raises(TypeError, "pool"))],
    **_BNP_NO_OUT,
)

TABLE["batchnorm_act_maxpool_backward"] = dict(
    valid=v_bnp_b,
    dtype=[("idx as int32", lambda kw: dict(kw, idx=kw["idx"].astype(np.int32)),
            Raises(TypeError, "idx", "uint8"))],
    ndim=[("idx with a leading axis", lambda kw: dict(kw, idx=kw["idx"][None]),
           Raises(ValueError, "idx"))],
    shape=[("dy of the un-pooled shape", lambda kw: dict(kw, dy=rng_arr(kw["x"].shape)),
            Raises(ValueError, "dy", "pooled")),
           ("inv_std of length 2", set_(inv_std=rng_arr((2,))), Raises(ValueError, "inv_std")),
           ("idx of another shape", set_(idx=np.zeros((2, 2, 2, 3), np.uint8)),
            Raises(ValueError, "idx"))],
    noncontig=[("idx strided", lambda kw: dict(kw, idx=noncontig(kw["idx"])),
                Raises(TypeError, "idx", "contiguous"))],
    zero_size=[("an empty batch", lambda kw: dict(kw, x=np.zeros((0, 4, 6, 3), F32)),
                Raises(ValueError, "x"))],
    overflow=[("idx value 4 for 2 x 2 windows", lambda kw: (lambda i: (i.__setitem__((0, 0, 0, 0), 4),
                                                                      dict(kw, idx=i))[1])(kw["idx"].copy()),
               Raises(ValueError, "idx", "< 4")),
              ("pool = (2**70, 2)", set_(pool=(BIG, 2)), Raises(ValueError, "pool"))],
    nan_inf=[("NaN in dy[0, 0, 0, 2]", with_nan("dy", (0, 0, 0, 2)),
              Valid("channel 2 of dx NaN (its sums)", nan_where((Ellipsis, 2))))],
    none=[("batch_mean=None", set_(batch_mean=None), Raises(TypeError, "batch_mean")),
          ("idx=None", set_(idx=None), Raises(TypeError, "idx"))],
    wrong_type=[WHO_NONE, ("act='tanh'", set_(act="tanh"), Raises(ValueError, "act")),
                ("idx as a list", lambda kw: dict(kw, idx=kw["idx"].tolist()),
                 Raises(TypeError, "idx"))],
    **_BNP_NO_OUT,
)

# the bias / act epilogue arguments of gemm and conv2d_forward
TABLE["gemm"]["shape"] = TABLE["gemm"]["shape"] + [
    ("bias of length 4", set_(bias=rng_arr((4,))), Raises(ValueError, "bias", "output channel"))]
TABLE["gemm"]["wrong_type"] = TABLE["gemm"]["wrong_type"] + [
    ("act='tanh'", set_(act="tanh"), Raises(ValueError, "act")),
    ("act=1", set_(act=1), Raises(TypeError, "act")),
    ("bias as float64", set_(bias=np.ones(5)), Raises(TypeError, "bias"))]
TABLE["gemm"]["wrong_type"] = TABLE["gemm"]["wrong_type"] + [
    ("ste_mask=True without a quantizer act", set_(ste_mask=True), Raises(ValueError, "ste_mask")),
    ("ste_mask=True for quantized_tanh's spec", set_(ste_mask=True, act=_TANH_SPEC),
     Raises(ValueError, "ste_mask", "bit mask")),
    ("act a 3-tuple", set_(act=(1, 2, 3)), Raises(TypeError, "act"))]
TABLE["gemm"]["shape"] = TABLE["gemm"]["shape"] + [
    ("act scales for 4 channels of a 3 x 5 output",
     set_(act=(dict(op=1, in_mul=1.0, out_mul=1.0, lo=-8.0, hi=7.0), np.ones(4, F32), None, 1,
               dict(op=1), None, 1)), Raises(ValueError, "scale"))]
TABLE["gemm"]["shape"] = TABLE["gemm"]["shape"] + [
    ("scale without shift", set_(scale=np.ones(5, F32)), Raises(ValueError, "scale", "together")),
    ("shift of length 4", set_(scale=np.ones(5, F32), shift=np.ones(4, F32)), Raises(ValueError, "shift"))]
TABLE["gemm"]["wrong_type"] = TABLE["gemm"]["wrong_type"] + [
    ("scale as float64", set_(scale=np.ones(5), shift=np.ones(5, F32)), Raises(TypeError, "scale"))]
TABLE["conv2d_forward"]["shape"] = TABLE["conv2d_forward"]["shape"] + [
    ("scale of length 3", set_(scale=np.ones(3, F32), shift=np.ones(3, F32)), Raises(ValueError, "scale"))]
TABLE["conv2d_forward"]["wrong_type"] = TABLE["conv2d_forward"]["wrong_type"] + [
    ("ste_mask=True without a quantizer act", set_(ste_mask=True), Raises(ValueError, "ste_mask"))]
TABLE["gemm"]["none"] = TABLE["gemm"]["none"] + [
    ("bias=None, act=None", set_(bias=None, act=None), Valid("no epilogue", same_as_base))]
TABLE["conv2d_forward"]["shape"] = TABLE["conv2d_forward"]["shape"] + [
    ("bias of length 2", set_(bias=rng_arr((2,))), Raises(ValueError, "bias"))]
# algo=: the convolution algorithm of the forward and the input gradient
for _name in ("conv2d_forward", "conv2d_backward_input"):
    TABLE[_name]["wrong_type"] = TABLE[_name]["wrong_type"] + [
        ("algo='fast'", set_(algo="fast"), Raises(ValueError, "algo", "'fast'")),
        ("algo=2", set_(algo=2), Raises(TypeError, "algo")),
        ("algo=None", set_(algo=None), Raises(TypeError, "algo"))]
    TABLE[_name]["none"] = TABLE[_name]["none"] + [
        ("algo='direct'", set_(algo="direct"), Valid("the same result", same_as_base))]
# workspace=: a _core.Workspace or None; anything else names the argument
for _name in ("gemm", "conv2d_forward", "conv2d_backward_input", "conv2d_backward_filter"):
    TABLE[_name]["wrong_type"] = TABLE[_name]["wrong_type"] + [
        ("workspace=3", set_(workspace=3), Raises(TypeError, "workspace")),
        ("workspace=bnn_workspace()", lambda kw: dict(kw, workspace=_core.bnn_workspace()),
         Raises(TypeError, "workspace"))]
    TABLE[_name]["none"] = TABLE[_name]["none"] + [
        ("workspace=None", set_(workspace=None), Valid("no workspace", same_as_base)),
        ("a new Workspace", lambda kw: dict(kw, workspace=_core.Workspace()),
         Valid("the same result", same_as_base))]


ENTRY_POINTS = sorted(n for n in dir(_core) if not n.startswith("_") and callable(getattr(_core, n)))


def core_cases():
    for name in ENTRY_POINTS:
        t = TABLE.get(name)
        if t is None:
            continue
        for kind in KINDS:
            spec = t.get(kind)
            if spec is None:
                spec = array_cases(name, kind)
            elif isinstance(spec, list):
                spec = spec + ([] if kind in ("shape", "zero_size", "overflow", "nan_inf",
                                              "readonly_out", "alias_out") else array_cases(name, kind))
            if isinstance(spec, NA):
                yield name, kind, "n/a", None, spec
                continue
            assert spec, f"{name}: no case for kind {kind!r} (give one or NA(reason))"
            for label, change, expect in spec:
                yield name, kind, label, change, expect


CORE_CASES = list(core_cases())


def test_every_entry_point_has_a_table():
    missing = [n for n in ENTRY_POINTS if n not in TABLE]
    assert not missing, f"_core entry points without a bad-input table: {missing}"
    for name in ENTRY_POINTS:
        covered = {k for (n, k, *_r) in CORE_CASES if n == name}
        assert covered == set(KINDS), f"{name}: kinds without cases or NA: {set(KINDS) - covered}"


def _call(name, kw):
    fn = getattr(_core, name)
    if isinstance(kw, tuple) and kw[0] == "pos":
        return fn(kw[1])
    return fn(**kw)


def _check_raises(name, kw, expect):
    with pytest.raises(expect.exc) as ei:
        _call(name, kw)
    msg = str(ei.value)
    who = kw.get("who") if isinstance(kw, dict) else None
    assert name in msg or (who and who in msg), f"message does not name {name}: {msg}"
    assert re.search(r"(?<![A-Za-z0-9_])" + re.escape(expect.arg) + r"(?![A-Za-z0-9])", msg), \
        f"message does not name {expect.arg!r}: {msg}"
    for w in expect.words:
        assert w in msg, f"{w!r} not in {msg!r}"


@pytest.mark.parametrize("name,kind,label,change,expect",
                         [c for c in CORE_CASES if not isinstance(c[4], NA)],
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CORE_CASES if not isinstance(c[4], NA)])
def test_core_bad_input(name, kind, label, change, expect):
    base_kw = TABLE[name]["valid"]()
    base = _call(name, dict(base_kw)) if name not in ("set_isa", "set_num_threads") else None
    kw = change(dict(base_kw))
    if isinstance(expect, Raises):
        _check_raises(name, kw, expect)
    else:
        result = _call(name, kw)
        expect.check(result, kw, base)


def test_not_applicable_kinds_say_why():
    for name, kind, label, change, expect in CORE_CASES:
        if isinstance(expect, NA):
            assert len(expect.reason) > 8, (name, kind)


# ---------------------------------------------------------------------------------------------
# public layers

LAYER_SPECS = {
    # class name: (constructor kwargs, one input sample's shape)
    "Dense": (dict(units=4), (6,)),
    "QDense": (dict(units=4, kernel_quantizer="quantized_bits(4,0,1)"), (6,)),
    "Conv1D": (dict(filters=3, kernel_size=2), (7, 2)),
    "QConv1D": (dict(filters=3, kernel_size=2, kernel_quantizer="binary"), (7, 2)),
    "Conv2D": (dict(filters=3, kernel_size=2), (5, 5, 2)),
    "QConv2D": (dict(filters=3, kernel_size=2, kernel_quantizer="ternary"), (5, 5, 2)),
    "Conv2DTranspose": (dict(filters=3, kernel_size=2), (4, 4, 2)),
    "QConv2DTranspose": (dict(filters=3, kernel_size=2), (4, 4, 2)),
    "DepthwiseConv2D": (dict(kernel_size=2), (5, 5, 2)),
    "QDepthwiseConv2D": (dict(kernel_size=2), (5, 5, 2)),
    "SeparableConv1D": (dict(filters=3, kernel_size=2), (7, 2)),
    "QSeparableConv1D": (dict(filters=3, kernel_size=2), (7, 2)),
    "SeparableConv2D": (dict(filters=3, kernel_size=2), (5, 5, 2)),
    "QSeparableConv2D": (dict(filters=3, kernel_size=2), (5, 5, 2)),
    "QConv2DBatchnorm": (dict(filters=3, kernel_size=2), (5, 5, 2)),
    "QDepthwiseConv2DBatchnorm": (dict(kernel_size=2), (5, 5, 2)),
    "BatchNormalization": ({}, (5, 3)),
    "QBatchNormalization": ({}, (5, 3)),
    "Activation": (dict(activation="relu"), (5,)),
    "QActivation": (dict(activation="quantized_relu(4)"), (5,)),
    "QAdaptiveActivation": (dict(activation="quantized_relu", total_bits=4), (5,)),
    "LeakyReLU": ({}, (5,)),
    "ReLU": ({}, (5,)),
    "Softmax": ({}, (5,)),
    "Dropout": (dict(rate=0.5), (5,)),
    "Flatten": ({}, (2, 3)),
    "Reshape": (dict(target_shape=(3, 2)), (2, 3)),
    "MaxPooling2D": ({}, (4, 4, 2)),
    "AveragePooling2D": ({}, (4, 4, 2)),
    "QAveragePooling2D": ({}, (4, 4, 2)),
    "GlobalMaxPooling2D": ({}, (4, 4, 2)),
    "GlobalAveragePooling2D": ({}, (4, 4, 2)),
    "QGlobalAveragePooling2D": ({}, (4, 4, 2)),
    "QScaleShift": ({}, (5, 3)),
    "Add": ({}, None),          # merge layers: a list of inputs
    "Concatenate": ({}, None),
}
NOT_LAYERS = {"Layer", "InputLayer", "KerasTensor", "QInitializer", "Input"}
# element-wise layers keep any rank; the rest fix it at build
ANY_RANK = {"Activation", "QActivation", "LeakyReLU", "ReLU", "Softmax", "Dropout",
            "BatchNormalization", "QBatchNormalization", "QScaleShift", "QAdaptiveActivation"}
LAYER_KINDS = {
    "dtype": "a str array -> TypeError naming inputs; float64/int inputs are converted (valid)",
    "ndim": "an extra axis -> ValueError (input must have N dims) unless element-wise",
    "shape": "another sample shape after build -> ValueError naming the input shape",
    "noncontig": "valid: converted, same result as the contiguous input",
    "readonly_out": "n/a: layers take no out=",
    "alias_out": "n/a: layers take no out=",
    "zero_size": "batch 0 -> an empty batch of the output shape",
    "overflow": "a huge size argument in the constructor -> ValueError naming it",
    "nan_inf": "NaN in sample 0 -> NaN only in output sample 0 (samples are independent)",
    "none": "None input -> TypeError naming inputs",
    "wrong_type": "a dict / str input -> TypeError naming inputs",
}


def layer_classes():
    out = []
    for n in dir(layers):
        c = getattr(layers, n)
        if isinstance(c, type) and issubclass(c, layers.Layer) and n not in NOT_LAYERS:
            out.append(n)
    return sorted(out)


def test_every_layer_has_a_spec():
    missing = [n for n in layer_classes() if n not in LAYER_SPECS]
    assert not missing, f"public layers without a bad-input spec: {missing}"


def _make(name, **extra):
    kw, shape = LAYER_SPECS[name]
    return getattr(layers, name)(**dict(kw, **extra)), shape


def _run(layer, x, shape):
    if shape is None:
        return layer([x, x])
    return layer(x)


def _sample(shape, n=3):
    return rng_arr((n,) + (shape or (4,)), 5)


@pytest.mark.parametrize("name", sorted(LAYER_SPECS))
@pytest.mark.parametrize("kind", KINDS)
def test_layer_bad_input(name, kind):
    layer, shape = _make(name)
    x = _sample(shape)
    base = _run(layer, x, shape)
    fresh, _ = _make(name)
    who = re.compile(r"inputs?|input shape|dims|shape")
    if kind == "dtype":
        with pytest.raises(TypeError, match="inputs"):
            _run(fresh, x.astype(str), shape)
        np.testing.assert_allclose(_run(layer, x.astype(np.float64), shape), base, rtol=1e-6)
    elif kind == "ndim":
        if name in ANY_RANK or shape is None:
            r = _run(fresh, x[None], shape)  # built for this rank: valid
            assert r.shape[0] == 1
        else:
            with pytest.raises(ValueError, match=who):
                _run(layer, x[None], shape)
    elif kind == "shape":
        if shape is None:  # merge layers: inputs that do not fit together
            with pytest.raises(ValueError, match=name):
                layer([x, np.ascontiguousarray(x.T)])
            with pytest.raises(ValueError, match=f"{name}.*batch"):  # Add used to broadcast it
                layer([x, x[:1]])
        else:  # a layer is built for one sample shape (element-wise ones too, as Keras)
            with pytest.raises(ValueError, match=who):
                _run(layer, x[..., :-1], shape)
    elif kind == "noncontig":
        np.testing.assert_array_equal(_run(layer, noncontig(np.repeat(x, 1, 0)), shape), base)
    elif kind in ("readonly_out", "alias_out"):  # n/a: no out= to misuse
        assert "out" not in inspect.signature(layer.call).parameters
    elif kind == "zero_size":
        r = _run(layer, x[:0], shape)
        assert r.shape == (0,) + base.shape[1:]
    elif kind == "overflow":
        sizes = [k for k in ("units", "filters") if k in LAYER_SPECS[name][0]]
        if not sizes:
            # layers with no size argument: a huge sample (zero-size, dims 2**40) builds nothing
            big = np.zeros((0,) + (2 ** 20,) * (len(shape) if shape else 1), F32)
            try:
                r = _run(_make(name)[0], big, shape)
                assert r.size == 0
            except (ValueError, MemoryError) as e:  # weights sized from the input are refused
                assert re.search(r"large|memory|shape|size|dims|elements|height", str(e)), str(e)
        else:
            with pytest.raises((ValueError, OverflowError, MemoryError), match=sizes[0] + "|large|memory|elements"):
                _run(_make(name, **{sizes[0]: 2 ** 62})[0], x, shape)
    elif kind == "nan_inf":
        xn = x.copy()
        xn[0] = np.nan
        r = _run(layer, xn, shape)
        if name == "Dropout":  # inference: identity
            assert np.isnan(r[0]).all()
        elif name in ("BatchNormalization", "QBatchNormalization"):
            assert np.isnan(r[0]).all()  # inference: moving statistics, samples independent
        else:
            assert np.isnan(r[0]).any(), "NaN did not propagate"
        np.testing.assert_allclose(r[1:], base[1:], rtol=1e-6)
    elif kind == "none":
        with pytest.raises(TypeError, match="inputs"):
            _run(fresh, None, shape)
    elif kind == "wrong_type":
        with pytest.raises(TypeError, match="inputs"):
            _run(fresh, {"a": 1}, shape)
        with pytest.raises(TypeError, match="inputs"):
            _run(fresh, "abc", shape)


# ---------------------------------------------------------------------------------------------
# quantizers: objects and strings

QUANTIZERS = {
    "quantized_bits": dict(bits=4, integer=0, alpha=1),
    "quantized_linear": dict(bits=4),
    "quantized_relu": dict(bits=4),
    "quantized_tanh": dict(bits=4),
    "quantized_sigmoid": dict(bits=4),
    "quantized_ulaw": dict(bits=4),
    "quantized_po2": dict(bits=4),
    "quantized_relu_po2": dict(bits=4),
    "quantized_hswish": dict(bits=4),
    "binary": {},
    "stochastic_binary": {},
    "bernoulli": {},
    "ternary": {},
    "stochastic_ternary": {},
}
Q_SIZE = {"quantized_bits": "bits", "quantized_linear": "bits", "quantized_relu": "bits",
          "quantized_tanh": "bits", "quantized_sigmoid": "bits", "quantized_ulaw": "bits",
          "quantized_po2": "bits", "quantized_relu_po2": "bits", "quantized_hswish": "bits"}


class _Rekeyed:
    """Calls a quantizer with the random-key counter reset before each call."""

    def __init__(self, q):
        self.q = q

    def __call__(self, *a, **k):
        from qnn_ext import backend
        backend.set_random_seed(1234)
        return self.q(*a, **k)

    def __getattr__(self, n):
        return getattr(self.q, n)


def quantizer_classes():
    return sorted(n for n in dir(quantizers) if isinstance(getattr(quantizers, n), type)
                  and issubclass(getattr(quantizers, n), quantizers.BaseQuantizer)
                  and not n.startswith("_") and n != "BaseQuantizer")


def test_every_quantizer_has_a_spec():
    missing = [n for n in quantizer_classes() if n not in QUANTIZERS]
    assert not missing, f"quantizers without a bad-input spec: {missing}"


RANDOM_EACH_CALL = {"bernoulli"}  # draws new random numbers on every call, also in inference


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
@pytest.mark.parametrize("kind", KINDS)
def test_quantizer_bad_input(name, kind):
    cls = getattr(quantizers, name)
    q = cls(**QUANTIZERS[name])
    x = rng_arr((4, 3), 9)
    base = q(x)
    if name in RANDOM_EACH_CALL:
        # same key for every call: the draws repeat, so results are comparable
        q = _Rekeyed(q)
        base = q(x)
    if kind == "dtype":
        with pytest.raises(TypeError, match=f"{name}.*x"):
            q(x.astype(str))
        np.testing.assert_array_equal(q(x.astype(np.float64)), base)
    elif kind == "ndim":  # element-wise: any rank, the same values
        np.testing.assert_array_equal(q(x[None]), base[None])
    elif kind == "shape":
        with pytest.raises(ValueError, match="out"):
            q(x, out=np.zeros((3, 4), F32))
        with pytest.raises(ValueError, match="dy"):
            q.gradient(x, x[:2])
    elif kind == "noncontig":
        np.testing.assert_array_equal(q(noncontig(x)), base)
        with pytest.raises(ValueError, match="out.*contiguous"):
            q(x, out=noncontig(np.zeros((4, 3), F32)))
    elif kind == "readonly_out":
        with pytest.raises(ValueError, match="out.*writeable"):
            q(x, out=readonly((4, 3)))
    elif kind == "alias_out":
        # in place is not supported: the kernel refuses out sharing memory with x
        with pytest.raises(ValueError, match="out.*share memory"):
            q(x, out=x)
    elif kind == "zero_size":
        assert q(x[:0]).shape == (0, 3)
        with pytest.raises(ValueError, match="out"):  # empty x still checks out= (fixed)
            q(x[:0], out=np.zeros(5, F32))
    elif kind == "overflow":
        if name in Q_SIZE:
            for v in (2 ** 70, -1):
                with pytest.raises((ValueError, OverflowError), match="bits"):
                    cls(**dict(QUANTIZERS[name], bits=v))(x)
        else:
            with pytest.raises(ValueError, match="alpha"):
                cls(alpha=1e300)(x)
        with pytest.raises((ValueError, TypeError), match="bits|quantizer|argument"):
            quantizers.get_quantizer(f"{name}({2 ** 70})") if name in Q_SIZE else \
                quantizers.get_quantizer(f"{name}(1,2,3,4,5,6,7,8,9,10,11,12)")
    elif kind == "nan_inf":
        xn = x.copy()
        xn[1, 1] = np.nan
        r = q(xn)
        assert np.isnan(r[1, 1]), "NaN input did not give NaN"
        mask = np.ones_like(x, bool)
        mask[1, 1] = False
        if "stochastic" not in name and name != "bernoulli":
            np.testing.assert_array_equal(r[mask], base[mask])
        with pytest.raises((ValueError, TypeError), match="bits|alpha|nan|NaN|finite"):
            cls(**dict(QUANTIZERS[name], **({"bits": float("nan")} if name in Q_SIZE
                                             else {"alpha": float("nan")})))(x)
    elif kind == "none":
        with pytest.raises(TypeError, match=f"{name}.*x"):
            q(None)
        with pytest.raises((ValueError, TypeError)):
            quantizers.get_quantizer(f"{name}(None)" if name in Q_SIZE else f"{name}(alpha=None, foo=1)")
    elif kind == "wrong_type":
        with pytest.raises(TypeError, match=f"{name}.*x"):
            q({"a": 1})
        with pytest.raises((ValueError, TypeError), match="bits" if name in Q_SIZE else "alpha"):
            cls(**({"bits": "4"} if name in Q_SIZE else {"alpha": [[["x"]]]}))(x)
        with pytest.raises(ValueError):
            quantizers.get_quantizer(f"{name}(")


def counts():
    n_core = len(ENTRY_POINTS)
    active = [c for c in CORE_CASES if not isinstance(c[4], NA)]
    na = [c for c in CORE_CASES if isinstance(c[4], NA)]
    valid = [c for c in active if isinstance(c[4], Valid)]
    return dict(entry_points=n_core, kinds=len(KINDS), core_cases=len(active),
                core_raises=len(active) - len(valid), core_valid=len(valid), core_na_cells=len(na),
                layers=len(LAYER_SPECS), layer_cases=len(LAYER_SPECS) * len(KINDS),
                quantizers=len(QUANTIZERS), quantizer_cases=len(QUANTIZERS) * len(KINDS))


if __name__ == "__main__":
    c = counts()
    for k, v in c.items():
        print(f"{k:16s} {v}")
    print("per entry point:")
    for name in ENTRY_POINTS:
        rows = [x for x in CORE_CASES if x[0] == name]
        print(f"  {name:24s} cases {sum(not isinstance(r[4], NA) for r in rows):3d}  "
              f"n/a kinds {sum(isinstance(r[4], NA) for r in rows)}")
    sys.exit(0)
