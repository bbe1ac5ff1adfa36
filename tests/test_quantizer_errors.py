"""Bad and unusual inputs to the qnn_ext quantizers.

Bad input never crashes the process: it raises a Python exception whose message names the
quantizer, the argument and the expected vs the actual value/type. Unusual but valid input
(scalars, empty arrays, non-contiguous / Fortran-order / negative-stride views, float64, ints,
float16, big-endian, read-only arrays, lists) is cast to float32 and gives the same values as the
contiguous float32 copy.

Decisions encoded here (the API contract says "float32 ndarray of x's shape"):
* Python floats, NumPy scalars and 0-d arrays are accepted and give a 0-d float32 ndarray.
* Empty arrays give empty float32 arrays of the same shape (also for "auto" alphas).
* A broadcast view of 2**62 elements raises MemoryError or ValueError at once.
* QKeras's assertions (negative_slope, elements_per_scale, log2_rounding, ...) are ValueErrors.
"""

import re
import time

import numpy as np
import pytest

import qnn_ext
from qnn_ext import quantizers as qz

F32 = np.float32




def make(name, args=(), kwargs=None):
    return getattr(qz, name)(*args, **(kwargs or {}))


# One instance of every class (and "auto" variants), plus the plain functions.
QUANTIZERS = [
    ("quantized_bits", (4,), None), ("quantized_bits", (4,), {"alpha": "auto"}),
    ("quantized_bits", (4,), {"alpha": "auto_po2"}), ("quantized_linear", (4,), None),
    ("quantized_linear", (4,), {"alpha": "auto_po2"}), ("quantized_relu", (4,), None),
    ("quantized_relu", (6, 2, 1, 0.125), None), ("quantized_tanh", (4,), None),
    ("quantized_sigmoid", (4,), None), ("quantized_ulaw", (8,), None),
    ("quantized_po2", (4,), None), ("quantized_relu_po2", (4,), None),
    ("quantized_hswish", (8, 3), None), ("binary", (), None), ("binary", (), {"alpha": "auto"}),
    ("ternary", (), None), ("ternary", (), {"alpha": "auto_po2"}), ("stochastic_binary", (), None),
    ("stochastic_ternary", (), {"alpha": "auto"}), ("bernoulli", (), None),
]
ELEMENTWISE = [c for c in QUANTIZERS if not isinstance((c[2] or {}).get("alpha"), str)]
FUNCTIONS = ["hard_sigmoid", "smooth_sigmoid", "binary_sigmoid", "binary_tanh", "hard_tanh",
             "smooth_tanh"]


def _id(name, args, kwargs):
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    return f"{name}({','.join(parts)})"


def _params(cases):
    return [pytest.param(*c, id=_id(*c)) for c in cases]


def _call_seeded(q, x, **kw):
    # bernoulli is always stochastic: same seed + same flat C-order index -> same draws
    qnn_ext.utils.set_random_seed(2024)
    return q(x, **kw)


def _check_message(err, *needles, pattern=None):
    msg = str(err.value)
    for needle in needles:
        assert needle.lower() in msg.lower(), f"{needle!r} not in message {msg!r}"
    if pattern is not None:
        assert re.search(pattern, msg), f"/{pattern}/ not in message {msg!r}"
    return msg


# ---------------------------------------------------------------------------------------------
# Inputs that cannot be quantized
# ---------------------------------------------------------------------------------------------

BAD_X = [
    ("object_none", lambda: np.array([1.0, None], dtype=object), "object"),
    ("object_obj", lambda: np.array([object(), object()], dtype=object), "object"),
    ("strings", lambda: np.array(["abc", "1"]), None),
    ("python_str", lambda: "abc", None),
    ("bytes", lambda: np.array([b"ab", b"c"]), None),
    ("complex", lambda: np.array([1 + 2j, 0.5 + 0j]), "complex"),
    ("complex64", lambda: np.array([1 + 2j], dtype=np.complex64), "complex"),
    ("datetime", lambda: np.array(["2020-01-01"], dtype="datetime64[D]"), None),
]


@pytest.mark.parametrize("name, args, kwargs", _params(QUANTIZERS[:1] + QUANTIZERS[2:3]
                                                         + QUANTIZERS[5:6] + QUANTIZERS[9:10]
                                                         + QUANTIZERS[13:14]))
@pytest.mark.parametrize("label, factory, actual", BAD_X, ids=[b[0] for b in BAD_X])
def test_bad_x_raises(name, args, kwargs, label, factory, actual):
    q = make(name, args, kwargs)
    with pytest.raises((TypeError, ValueError)) as err:
        q(factory())
    needles = [name] + ([actual] if actual else [])
    _check_message(err, *needles, pattern=r"\bx\b")


@pytest.mark.parametrize("fname", FUNCTIONS)
def test_bad_x_raises_functions(fname):
    with pytest.raises((TypeError, ValueError)) as err:
        getattr(qz, fname)(np.array([1.0, None], dtype=object))
    _check_message(err, fname, "object", pattern=r"\bx\b")


def test_bad_x_message_names_expected_type():
    with pytest.raises((TypeError, ValueError)) as err:
        qz.quantized_bits(4)(np.array([1j]))
    _check_message(err, "quantized_bits", "complex", "float", pattern=r"\bx\b")


@pytest.mark.parametrize("label, factory, actual", BAD_X[:2] + BAD_X[5:6],
                         ids=[b[0] for b in BAD_X[:2] + BAD_X[5:6]])
def test_bad_x_raises_in_gradient(label, factory, actual):
    q = qz.quantized_relu(4)
    with pytest.raises((TypeError, ValueError)) as err:
        q.gradient(factory(), np.ones(2, np.float32))
    _check_message(err, "quantized_relu", actual, pattern=r"\bx\b")


def test_bad_dy_raises_in_gradient():
    q = qz.quantized_relu(4)
    with pytest.raises((TypeError, ValueError)) as err:
        q.gradient(np.zeros(2, np.float32), np.array([1.0, None], dtype=object))
    _check_message(err, "quantized_relu", "dy", "object")
    with pytest.raises((TypeError, ValueError)) as err:
        q.gradient(np.zeros(2, np.float32), np.array([1j, 2j]))
    _check_message(err, "quantized_relu", "dy", "complex")


def test_complex_with_zero_imaginary_part_is_still_rejected():
    # NumPy would silently drop the imaginary part (ComplexWarning); we refuse complex input.
    with pytest.raises((TypeError, ValueError)):
        qz.quantized_bits(4)(np.array([0.5 + 0j]))


# ---------------------------------------------------------------------------------------------
# Scalars and 0-d arrays
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("x", [0.3, np.float32(0.3), np.float64(0.3), np.array(0.3),
                               np.array(0.3, np.float32)],
                         ids=["float", "np.float32", "np.float64", "0d_f64", "0d_f32"])
def test_scalar_input_gives_0d_array(isa, x):
    q = qz.quantized_bits(4)
    y = q(x)
    assert isinstance(y, np.ndarray)
    assert y.shape == () and y.dtype == np.float32
    assert float(y) == 0.25
    g = q.gradient(x, 1.0)
    assert isinstance(g, np.ndarray)
    assert g.shape == () and g.dtype == np.float32
    assert float(g) == 1.0


@pytest.mark.parametrize("name, args, kwargs", _params(ELEMENTWISE))
def test_scalar_input_all_elementwise(isa, name, args, kwargs):
    q = make(name, args, kwargs)
    y = _call_seeded(q, -0.3)
    assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == np.float32
    ref = _call_seeded(q, np.array([-0.3], np.float32))
    assert float(y) == float(ref[0])


@pytest.mark.parametrize("fname", FUNCTIONS)
def test_scalar_input_functions(fname):
    f = getattr(qz, fname)
    y = f(0.25)
    assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == np.float32
    assert float(y) == float(f(np.array([0.25], np.float32))[0])


def test_python_list_and_tuple_inputs():
    q = qz.quantized_relu(4, 2)
    np.testing.assert_array_equal(q([0.2, 9.0]), [0.25, 3.75])
    np.testing.assert_array_equal(q((0.2, 9.0)), [0.25, 3.75])
    np.testing.assert_array_equal(q([[0.2], [9.0]]), [[0.25], [3.75]])


# ---------------------------------------------------------------------------------------------
# Empty arrays
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 4), (2, 0, 3)])
@pytest.mark.parametrize("name, args, kwargs", _params(QUANTIZERS))
def test_empty_input(isa, name, args, kwargs, shape):
    q = make(name, args, kwargs)
    x = np.zeros(shape, np.float32)
    y = q(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == shape
    g = q.gradient(x, np.zeros(shape, np.float32))
    assert isinstance(g, np.ndarray) and g.dtype == np.float32 and g.shape == shape


@pytest.mark.parametrize("fname", FUNCTIONS)
def test_empty_input_functions(fname):
    y = getattr(qz, fname)(np.zeros((0, 3), np.float64))
    assert y.dtype == np.float32 and y.shape == (0, 3)


# ---------------------------------------------------------------------------------------------
# Memory layouts and dtypes
# ---------------------------------------------------------------------------------------------

def _base():
    rng = np.random.default_rng(12)
    return rng.normal(0, 1.5, size=(6, 10)).astype(np.float32)


LAYOUTS = [
    ("strided_cols", lambda b: b[:, ::2]),
    ("strided_rows", lambda b: b[::2, :]),
    ("negative_stride", lambda b: b[::-1, ::-3]),
    ("transpose", lambda b: b.T),
    ("fortran", lambda b: np.asfortranarray(b)),
    ("fortran_3d", lambda b: np.asfortranarray(b.reshape(2, 3, 10))),
    ("column_view", lambda b: b[:, 3]),
    ("unaligned", lambda b: np.frombuffer(b'\x00' + b.tobytes(), dtype=np.float32,
                                          offset=1, count=b.size).reshape(b.shape)),
]


@pytest.mark.parametrize("layout, view", LAYOUTS, ids=[v[0] for v in LAYOUTS])
@pytest.mark.parametrize("name, args, kwargs", _params(QUANTIZERS))
def test_layouts_match_contiguous_copy(isa, name, args, kwargs, layout, view):
    q = make(name, args, kwargs)
    x = view(_base())
    xc = np.ascontiguousarray(x)
    y = _call_seeded(q, x)
    yc = _call_seeded(q, xc)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(y, yc)
    dy = view(_base() * F32(0.5) + F32(1))
    g = q.gradient(x, dy)
    gc = q.gradient(xc, np.ascontiguousarray(dy))
    np.testing.assert_array_equal(g, gc)


def test_auto_scale_follows_logical_last_axis_for_fortran_input(isa):
    # per-channel statistics are over the logical axes, not the memory order
    x = _base().reshape(3, 20)
    q1, q2 = qz.quantized_bits(4, alpha="auto_po2"), qz.quantized_bits(4, alpha="auto_po2")
    np.testing.assert_array_equal(q1(np.asfortranarray(x)), q2(x))
    np.testing.assert_array_equal(np.asarray(q1.scale), np.asarray(q2.scale))
    assert np.asarray(q1.scale).shape == (1, 20)


DTYPES = [np.float64, np.float16, np.int32, np.int64, np.int8, np.uint8, ">f4", ">f8"]


@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).str for d in DTYPES])
@pytest.mark.parametrize("name, args, kwargs", _params(QUANTIZERS[:2] + QUANTIZERS[5:6]
                                                         + QUANTIZERS[10:11]
                                                         + QUANTIZERS[13:15]))
def test_other_dtypes_are_cast_to_float32(isa, name, args, kwargs, dtype):
    q = make(name, args, kwargs)
    base = np.array([[-3, -1, 0, 1, 2], [5, 7, -2, 0, 3]], dtype=np.float64)
    if np.dtype(dtype).kind in "ui":
        base = np.abs(base) if np.dtype(dtype).kind == "u" else base
    else:
        base = base * 0.37
    x = base.astype(dtype)
    y = q(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, q(x.astype(np.float32)))


def test_float64_is_cast_before_quantizing():
    # float32(0.06250000001) == 0.0625, which rounds half-to-even to 0; computing in float64
    # would round 0.50000000008 up to 1 and give 0.125.
    q = qz.quantized_bits(4)
    assert float(q(np.float64(0.06250000001))) == 0.0
    np.testing.assert_array_equal(q(np.array([0.06250000001, -0.18750000001])), [0.0, -0.25])


def test_int_input_values():
    np.testing.assert_array_equal(qz.quantized_relu(4, 2)(np.array([-1, 0, 1, 2, 5])),
                                  [0, 0, 1, 2, 3.75])


def test_read_only_input_and_no_mutation(isa):
    x = _base()
    x.flags.writeable = False
    keep = x.copy()
    for name, args, kwargs in QUANTIZERS:
        q = make(name, args, kwargs)
        _call_seeded(q, x)
        q.gradient(x, x)
        np.testing.assert_array_equal(x, keep)


def test_output_is_a_new_array():
    x = np.array([0.25, 0.5], np.float32)   # already on the grid: output values == input
    y = qz.quantized_bits(4)(x)
    assert not np.shares_memory(x, y)
    y[0] = 7
    assert x[0] == 0.25


# ---------------------------------------------------------------------------------------------
# Huge shapes
# ---------------------------------------------------------------------------------------------

# NumPy itself refuses views of more than 2**63 bytes (e.g. (2**31, 2**31) float32), so the
# largest float32 views it can build are used: 2**60 elements = 4 EiB.
HUGE_SHAPES = [(2 ** 30, 2 ** 30), (2 ** 60,), (2 ** 20, 2 ** 20, 2 ** 20)]


@pytest.mark.parametrize("shape", HUGE_SHAPES, ids=["2d", "1d", "3d"])
@pytest.mark.parametrize("name, args, kwargs", _params(
    QUANTIZERS[:2] + QUANTIZERS[5:6] + QUANTIZERS[13:15] + QUANTIZERS[19:20]))
def test_huge_broadcast_view_fails_fast(name, args, kwargs, shape):
    q = make(name, args, kwargs)
    huge = np.broadcast_to(np.float32(1), shape)
    start = time.monotonic()
    with pytest.raises((MemoryError, ValueError)):
        q(huge)
    with pytest.raises((MemoryError, ValueError)):
        q.gradient(huge, huge)
    assert time.monotonic() - start < 5.0


def test_huge_broadcast_view_fails_fast_function():
    huge = np.broadcast_to(np.float32(1), HUGE_SHAPES[0])
    start = time.monotonic()
    with pytest.raises((MemoryError, ValueError)):
        qz.hard_sigmoid(huge)
    assert time.monotonic() - start < 5.0


def test_moderate_broadcast_view_works():
    # a broadcast view that fits in memory is just another non-contiguous input
    x = np.broadcast_to(np.float32(0.3), (1000, 7))
    y = qz.quantized_bits(4)(x)
    assert y.shape == (1000, 7)
    assert np.all(y == 0.25)


# ---------------------------------------------------------------------------------------------
# Parameter errors
# ---------------------------------------------------------------------------------------------

def _raises_on_build_or_call(exc, build, x=None):
    """The error may come from the constructor or from the first call."""
    with pytest.raises(exc) as err:
        q = build()
        q(np.zeros((2, 4, 8), np.float32) if x is None else x)
    return err


@pytest.mark.parametrize("build, rank, axis", [
    (lambda: qz.quantized_bits(4, alpha="auto", scale_axis=5), 2, 5),
    (lambda: qz.quantized_bits(4, alpha="auto_po2", scale_axis=2), 2, 2),
    (lambda: qz.quantized_linear(4, alpha="auto", scale_axis=3), 2, 3),
    (lambda: qz.binary(alpha="auto", scale_axis=7), 3, 7),
    (lambda: qz.binary(alpha="auto_po2", scale_axis=[0, 4]), 3, 4),
], ids=["bits_auto_5", "bits_auto_po2_2", "linear_3", "binary_7", "binary_list"])
def test_scale_axis_out_of_range(build, rank, axis):
    x = np.ones((4,) * rank, np.float32)
    err = _raises_on_build_or_call(ValueError, build, x)
    msg = _check_message(err, "scale_axis")
    assert str(axis) in msg and str(rank) in msg, msg


@pytest.mark.parametrize("build", [
    lambda: qz.quantized_bits(4, alpha="auto_po2", scale_axis=1, elements_per_scale=3),
    lambda: qz.binary(alpha="auto", scale_axis=1, elements_per_scale=3),
    lambda: qz.binary(alpha="auto_po2", scale_axis=[1, 2], elements_per_scale=3),
    lambda: qz.binary(alpha="auto_po2", scale_axis=[1, 2], elements_per_scale=[2, 3]),
], ids=["bits", "binary", "binary_list_axis", "binary_lists"])
def test_elements_per_scale_must_divide_axis(build):
    err = _raises_on_build_or_call(ValueError, build)   # x (2, 4, 8)
    _check_message(err, "elements_per_scale")


@pytest.mark.parametrize("build", [
    lambda: qz.quantized_bits(4, alpha="auto_po2", scale_axis=1, elements_per_scale=[2, 2]),
    lambda: qz.binary(alpha="auto_po2", scale_axis=[1, 2], elements_per_scale=[2, 2, 2]),
    lambda: qz.quantized_bits(4, alpha="auto_po2", elements_per_scale=2),  # no scale_axis
    lambda: qz.quantized_bits(4, alpha="auto", scale_axis=1, elements_per_scale=2),
    lambda: qz.quantized_bits(4, alpha=None, min_po2_exponent=-3),
    lambda: qz.quantized_bits(4, alpha="auto", max_po2_exponent=3),
], ids=["int_axis_list_eps", "length_mismatch", "no_scale_axis", "auto_not_po2",
        "min_exp_alpha_none", "max_exp_auto"])
def test_elements_per_scale_and_po2_exponent_misuse(build):
    _raises_on_build_or_call(ValueError, build)


@pytest.mark.parametrize("build", [
    lambda: qz.quantized_linear(0), lambda: qz.quantized_linear(-2),
    lambda: qz.quantized_bits(0), lambda: qz.quantized_bits(-1),
    lambda: qz.quantized_bits(0, keep_negative=False),
], ids=["linear0", "linear-2", "bits0", "bits-1", "bits0_unsigned"])
def test_bits_must_be_positive(build):
    # QKeras: quantized_linear raises ValueError; quantized_bits(0) silently behaves like a
    # sign quantizer (ub <= 0 branch) - we raise.
    err = _raises_on_build_or_call(ValueError, build, np.array([0.3], np.float32))
    _check_message(err, "bits")


def test_quantized_linear_bits_checked_in_constructor():
    with pytest.raises(ValueError) as err:
        qz.quantized_linear(0)
    _check_message(err, "bits", "0")


@pytest.mark.parametrize("build", [
    lambda: qz.quantized_po2(4, -1.0),
    lambda: qz.quantized_relu_po2(4, -0.5),
], ids=["po2", "relu_po2"])
def test_negative_max_value(build):
    with pytest.raises(ValueError) as err:
        build()
    _check_message(err, "max_value")


@pytest.mark.parametrize("build", [
    lambda: qz.quantized_relu(4, 0, 0, 0.1),
    lambda: qz.quantized_relu(4, 0, 0, 0.3),
    lambda: qz.quantized_relu(4, 0, 0, -0.25),
    lambda: qz.quantized_relu_po2(4, negative_slope=0.3),
    lambda: qz.quantized_relu_po2(4, negative_slope=-0.5),
], ids=["relu_0.1", "relu_0.3", "relu_neg", "relu_po2_0.3", "relu_po2_neg"])
def test_negative_slope_power_of_two(build):
    with pytest.raises(ValueError) as err:
        build()
    _check_message(err, "negative_slope")


def test_negative_slope_valid_values():
    for slope in (0, 0.0, 0.125, 0.5, 1.0, 2 ** -6):
        qz.quantized_relu(4, 0, 0, slope)
        qz.quantized_relu_po2(4, negative_slope=slope)


@pytest.mark.parametrize("x_shape, dy_shape", [((3, 4), (4, 3)), ((3, 4), (3, 5)),
                                               ((5,), (6,)), ((2, 3), (2, 3, 1))])
@pytest.mark.parametrize("name, args, kwargs", _params(QUANTIZERS[:2] + QUANTIZERS[5:6]
                                                         + QUANTIZERS[13:14]))
def test_gradient_dy_wrong_shape(name, args, kwargs, x_shape, dy_shape):
    q = make(name, args, kwargs)
    with pytest.raises(ValueError) as err:
        q.gradient(np.zeros(x_shape, np.float32), np.ones(dy_shape, np.float32))
    msg = _check_message(err, "dy")
    assert str(x_shape) in msg and str(dy_shape) in msg, msg


def test_gradient_dy_wrong_shape_function():
    with pytest.raises(ValueError) as err:
        qz.hard_sigmoid.gradient(np.zeros((3, 4), np.float32), np.ones((4, 3), np.float32))
    msg = _check_message(err, "dy", "hard_sigmoid")
    assert "(3, 4)" in msg and "(4, 3)" in msg, msg


def test_set_internal_sigmoid_invalid():
    with pytest.raises(ValueError) as err:
        qz.set_internal_sigmoid("foo")
    _check_message(err, "foo", "hard", "smooth", "real")
    # the mode is unchanged (still hard): hard 0.5 -> 0.5, smooth would give 0.25
    np.testing.assert_array_equal(qz.quantized_tanh(4)(np.array([0.5], np.float32)), [0.5])
    for bad in ("HARD", "", None, 1):
        with pytest.raises((ValueError, TypeError)):
            qz.set_internal_sigmoid(bad)


@pytest.mark.parametrize("build", [
    lambda: qz.quantized_bits(4, alpha="foo"),
    lambda: qz.quantized_bits(4, alpha="uto_po"),   # what an unquoted alpha=auto_po2 parses to
    lambda: qz.quantized_linear(4, alpha="auto_po3"),
    lambda: qz.binary(alpha="foo"),
    lambda: qz.ternary(alpha="foo"),
    lambda: qz.bernoulli(alpha="foo"),
], ids=["bits", "bits_unquoted", "linear", "binary", "ternary", "bernoulli"])
def test_invalid_alpha_string(build):
    err = _raises_on_build_or_call(ValueError, build, np.ones((4, 2), np.float32))
    _check_message(err, "alpha")


def test_post_training_scale_needs_string_alpha():
    with pytest.raises(ValueError) as err:
        qz.quantized_bits(4, alpha=1.0, post_training_scale=np.array([1.0]))
    _check_message(err, "post_training_scale")
    with pytest.raises(ValueError):
        qz.quantized_bits(4, post_training_scale=np.array([1.0]))


@pytest.mark.parametrize("build", [
    lambda: qz.quantized_po2(4, log2_rounding="ceil"),
    lambda: qz.quantized_relu_po2(4, log2_rounding="nearest"),
], ids=["po2", "relu_po2"])
def test_invalid_log2_rounding(build):
    err = _raises_on_build_or_call(ValueError, build, np.ones(3, np.float32))
    _check_message(err, "log2_rounding")


def test_ternary_string_alpha_with_threshold():
    _raises_on_build_or_call(ValueError, lambda: qz.ternary(alpha="auto", threshold=0.3),
                             np.ones((4, 2), np.float32))


def test_stochastic_ternary_threshold_one():
    with pytest.raises(ValueError) as err:
        qz.stochastic_ternary(threshold=1.0)
    _check_message(err, "threshold")


# ---------------------------------------------------------------------------------------------
# Special float values (API contract decisions 2 and 3)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, args, kwargs", _params(QUANTIZERS))
def test_nan_in_nan_out(isa, name, args, kwargs):
    q = make(name, args, kwargs)
    x = np.array([[0.5, -1.0], [np.nan, 0.25], [2.0, np.nan]], np.float32)
    y = _call_seeded(q, x)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.isnan(y[1, 0]) and np.isnan(y[2, 1]), y


@pytest.mark.parametrize("fname", FUNCTIONS)
def test_nan_in_nan_out_functions(fname):
    y = getattr(qz, fname)(np.array([np.nan, 0.5], np.float32))
    assert np.isnan(y[0])


@pytest.mark.parametrize("name, args, kwargs, lo, hi", [
    ("quantized_bits", (4, 0, 0), None, -1.0, 0.875),
    ("quantized_bits", (4, 0, 1), None, -0.875, 0.875),
    ("quantized_linear", (4, 0), None, -0.875, 0.875),
    ("quantized_relu", (4, 0), None, 0.0, 0.9375),
    ("quantized_tanh", (4,), None, -1.0, 0.875),
    ("quantized_tanh", (4,), {"use_real_tanh": True}, -1.0, 0.875),
    ("quantized_sigmoid", (4,), None, 0.0, 0.9375),
    ("quantized_sigmoid", (4,), {"use_real_sigmoid": True}, 0.0, 0.9375),
    ("quantized_ulaw", (8,), None, -1.0, 127 / 128),
    ("quantized_po2", (4,), None, -8.0, 8.0),
    ("quantized_po2", (4, 2.0), None, -2.0, 2.0),
    ("quantized_relu_po2", (4,), None, 2.0 ** -8, 128.0),
    ("binary", (), None, -1.0, 1.0),
    ("ternary", (), None, -1.0, 1.0),
    ("hard_sigmoid", None, None, 0.0, 1.0),
    ("hard_tanh", None, None, -1.0, 1.0),
])
def test_infinities_saturate(isa, name, args, kwargs, lo, hi):
    q = getattr(qz, name) if args is None else make(name, args, kwargs)
    y = q(np.array([-np.inf, np.inf], np.float32))
    np.testing.assert_array_equal(y, [lo, hi])


def test_subnormal_inputs_are_zero(isa):
    # DAZ: a subnormal input is 0, so its sign is +1 for the sign-based quantizers.
    tiny = np.array([-1e-40, 1e-40, -1e-45], np.float32)
    np.testing.assert_array_equal(qz.binary()(tiny), [1, 1, 1])
    np.testing.assert_array_equal(qz.quantized_bits(1, 0)(tiny), [1, 1, 1])
    np.testing.assert_array_equal(qz.quantized_po2(4)(tiny), [0.0625, 0.0625, 0.0625])


def test_negative_zero_sign_quantizers(isa):
    np.testing.assert_array_equal(qz.binary()(np.array([-0.0], np.float32)), [1.0])
    np.testing.assert_array_equal(qz.quantized_bits(1, 0)(np.array([-0.0], np.float32)), [1.0])


@pytest.mark.parametrize("name, args, kwargs", _params(QUANTIZERS))
def test_extreme_values_do_not_crash(isa, name, args, kwargs):
    q = make(name, args, kwargs)
    x = np.array([[0.0, -0.0], [3.4e38, -3.4e38], [1e-45, -1e-38], [np.inf, -np.inf],
                  [65504.0, 1e-30]], np.float32)
    y = _call_seeded(q, x)
    assert y.shape == x.shape and y.dtype == np.float32
    g = q.gradient(x, np.ones_like(x))
    assert g.shape == x.shape and g.dtype == np.float32


@pytest.mark.parametrize("name, args, kwargs", _params(
    [c for c in QUANTIZERS if isinstance((c[2] or {}).get("alpha"), str)]))
def test_auto_all_zero_channel(isa, name, args, kwargs):
    # An all-zero channel must not produce NaN (scale denominators carry eps).
    q = make(name, args, kwargs)
    x = np.zeros((5, 3), np.float32)
    x[:, 1] = [0.5, -0.25, 1.0, 0.0, -2.0]
    y = _call_seeded(q, x)
    assert np.all(np.isfinite(y)), y
    assert np.all(y[:, 0] == 0) and np.all(y[:, 2] == 0), y
