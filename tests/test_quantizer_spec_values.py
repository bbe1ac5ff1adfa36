"""Exact values of the qnn_ext quantizers, from /work/shared/spec/quantizers.md and QKeras's tests.

* Every [test] and [derived-by-hand] example of quantizers.md §2-§3, asserted exactly (float32
  equality) at every kernel level (``isa`` fixture, tests/conftest.py). Values that come out of a
  division by a data-dependent scale ("auto") or out of a transcendental function are compared
  with rtol 1e-6 (1e-5 for gradients built from tanh/sigmoid).
* The quantizer cases of QKeras's own tests (google/qkeras tests/qactivation_test.py,
  leakyrelu_test.py, qnoise_test.py, qalpha_test.py), re-written here with the same inputs and
  expected numbers. The po2 cases QKeras later disabled (log2_rounding="floor") are included
  because their numbers agree with the spec's exact floor(log2).
* Gradients (``q.gradient(x, dy)``) per STE form (quantizers.md §1 table), the internal sigmoid
  switch, learning-phase semantics and the contract's stochastic draws.
"""

import math

import numpy as np
import pytest

import qnn_ext
from qnn_ext import backend
from qnn_ext import quantizers as qz

F32 = np.float32


def a32(v):
    return np.asarray(v, dtype=np.float32)




def make(name, args=(), kwargs=None):
    return getattr(qz, name)(*args, **(kwargs or {}))


def run(q, x, **call_kwargs):
    """Calls q on float32 x and checks the output contract (float32 ndarray of x's shape)."""
    x = a32(x)
    y = q(x, **call_kwargs)
    assert isinstance(y, np.ndarray), type(y)
    assert y.dtype == np.float32, y.dtype
    assert y.shape == x.shape, (y.shape, x.shape)
    return y


def grad(q, x, dy, **call_kwargs):
    x = a32(x)
    g = q.gradient(x, a32(dy), **call_kwargs)
    assert isinstance(g, np.ndarray), type(g)
    assert g.dtype == np.float32, g.dtype
    assert g.shape == x.shape, (g.shape, x.shape)
    return g


def col(v):
    """A column (n, 1): one channel, so per-channel ("auto") scales average over all of v."""
    return a32(v).reshape(-1, 1)


# ---------------------------------------------------------------------------------------------
# quantizers.md §2-§3 examples, exact
# (case id, class or function name, positional args, keyword args, x, expected y)
# args None = a plain function (hard_sigmoid, ...), called directly.
# ---------------------------------------------------------------------------------------------

SPEC_EXACT = [
    # §2 helpers [derived-by-hand]
    ("hard_sigmoid", "hard_sigmoid", None, None,
     [-2, -0.5, 0, 0.4, 3], [0, 0.25, 0.5, F32(0.7), 1]),
    ("smooth_sigmoid", "smooth_sigmoid", None, None,
     [-3, -1, 1, 2.7], [0, 0.3125, 0.6875, 1]),
    ("binary_tanh", "binary_tanh", None, None,
     [-0.3, 0, 1e-3], [-1, -1, 1]),
    ("binary_sigmoid", "binary_sigmoid", None, None,  # = 1 iff x > 0 (0.5 rounds to even 0)
     [-0.3, 0, 1e-3, 2], [0, 0, 1, 1]),
    ("smooth_tanh", "smooth_tanh", None, None,  # clip(0.375x, -1, 1); smooth_tanh(2) = 0.75
     [2, -4, -1, 1], [0.75, -1, -0.375, 0.375]),
    ("hard_tanh", "hard_tanh", None, None,  # clip(x, -1, 1)
     [-3, -0.5, 0.25, 2], [-1, -0.5, 0.25, 1]),
    # §3.1 quantized_bits [derived-by-hand]
    ("bits(4,0,0)", "quantized_bits", (4, 0, 0), None,
     [-2, -1, -0.3, 0.0625, 0.4, 0.95], [-1, -1, -0.25, 0, 0.375, 0.875]),
    ("bits(4,0,1)", "quantized_bits", (4, 0, 1), None,
     [-2, -0.3, 0.95], [-0.875, -0.25, 0.875]),
    ("bits(5,2,0,kn=False)", "quantized_bits", (5, 2, 0), {"keep_negative": False},
     [-1, 0.1, 0.2, 1.3, 3.0, 9], [0, 0.125, 0.25, 1.25, 3.0, 3.875]),
    ("bits(3,1,1,alpha=0.5)", "quantized_bits", (3, 1, 1), {"alpha": 0.5},
     [-3, -0.6, 0.2, 0.7, 5], [-0.75, -0.25, 0, 0.25, 0.75]),
    ("bits(1,0)", "quantized_bits", (1, 0), None,
     [-2, -0.1, 0, 0.3], [-1, -1, 1, 1]),
    # bits=1 with keep_negative=False: ub = 1, output in {0, 0.5} (§3.1)
    ("bits(1,0,kn=False)", "quantized_bits", (1, 0), {"keep_negative": False},
     [-1, 0.2, 0.3, 0.7], [0, 0, 0.5, 0.5]),
    # §3.2 quantized_linear [derived-by-hand]
    ("linear(8,3)", "quantized_linear", (8, 3), None,
     [0, 0.5, 1, 1.5, 2], [0, 0.5, 1, 1.5, 2]),
    ("linear(4,0)", "quantized_linear", (4, 0), None,
     [-1.2, -0.5, 0.1, 0.3, 0.99], [-0.875, -0.5, 0.125, 0.25, 0.875]),
    ("linear(4,0,sym=0)", "quantized_linear", (4, 0), {"symmetric": 0},
     [-1.2], [-1]),
    ("linear(1)", "quantized_linear", (1,), None,
     [-2, 0, 0.3], [-0.5, 0.5, 0.5]),
    ("linear(3,1,alpha=2)", "quantized_linear", (3, 1), {"alpha": 2},
     [-5, -1.2, 0.3, 0.6, 5], [-3, -1, 0, 1, 3]),
    # §3.3 quantized_relu [derived-by-hand]
    ("relu(4,0)", "quantized_relu", (4, 0), None,
     [-0.5, 0.03, 0.1, 0.47, 0.9, 1.5], [0, 0, 0.125, 0.5, 0.875, 0.9375]),
    ("relu(4,0,fast)", "quantized_relu", (4, 0), {"enable_fast_inference": True},
     [-0.5, 0.03, 0.1, 0.47, 0.9, 1.5], [0, 0, 0.125, 0.5, 0.875, 0.9375]),
    ("relu(4,2)", "quantized_relu", (4, 2), None,
     [0.2, 0.3, 1.1, 3.9, 9], [0.25, 0.25, 1.0, 3.75, 3.75]),
    ("relu(3,1,0,0.5)", "quantized_relu", (3, 1, 0, 0.5), None,
     [-3, -1.2, -0.2, 0.3, 0.9, 5], [-1, -0.5, 0, 0.5, 1, 1.5]),
    ("relu(10,2)", "quantized_relu", (10, 2), None,
     [2.36, 4.98], [2.359375, 3.99609375]),
    # §3.4 quantized_tanh [derived-by-hand]
    ("tanh(4)", "quantized_tanh", (4,), None,
     [-2, -0.6, -0.3, 0.06, 0.2, 0.9], [-1, -0.625, -0.25, 0, 0.25, 0.875]),
    ("tanh(3,real)", "quantized_tanh", (3,), {"use_real_tanh": True},
     [-2, -0.6, 0.2, 0.9], [-1, -0.5, 0.25, 0.75]),
    # §3.5 quantized_sigmoid [derived-by-hand]
    ("sigmoid(4)", "quantized_sigmoid", (4,), None,
     [-3, -0.5, 0, 0.3, 0.95, 2], [0, 0.25, 0.5, 0.625, 0.9375, 0.9375]),
    ("sigmoid(3,real)", "quantized_sigmoid", (3,), {"use_real_sigmoid": True},
     [-3, -0.5, 1, 3], [0, 0.375, 0.75, 0.875]),
    # §3.7 po2 [derived-by-hand]
    ("po2(4)", "quantized_po2", (4,), None,
     [-10, -0.3, 0, 0.07, 0.7, 3, 100], [-8, -0.25, 0.0625, 0.0625, 0.5, 4, 8]),
    ("po2(5,1)", "quantized_po2", (5, 1), None,
     [-10, 0, 0.7], [-1, 2.0 ** -16, 0.5]),
    ("po2(4,3)", "quantized_po2", (4, 3), None,
     [2.5, 3, 10], [2, 4, 4]),
    ("po2(5,quadratic)", "quantized_po2", (5,), {"quadratic_approximation": True},
     [0.3, 3, 7, 100, 1e6], [0.25, 4, 4, 64, 4096]),
    ("relu_po2(4)", "quantized_relu_po2", (4,), None,
     [-1, 0, 0.03, 0.4, 3, 1000], [2.0 ** -8, 2.0 ** -8, 0.03125, 0.5, 4, 128]),
    ("relu_po2(3,1)", "quantized_relu_po2", (3, 1), None,
     [3, 0.01], [1, 0.0078125]),
    # §3.8 binary, §3.9 ternary [derived-by-hand]
    ("binary()", "binary", (), None, [-0.2, 0], [-1, 1]),
    ("binary(use_01)", "binary", (), {"use_01": True}, [-0.2, 0, 3], [0, 1, 1]),
    ("ternary()", "ternary", (), None, [-0.2, 0.33, -1], [0, 1, -1]),
    # §3.11 quantized_hswish [derived-by-hand]
    ("hswish(8,3,0)", "quantized_hswish", (8, 3, 0), None,
     [-4, -1.5, -0.7, 0.5, 2, 5], [0, -0.375, -0.25, 0.3125, 1.6875, 5]),
]


@pytest.mark.parametrize("name, args, kwargs, x, expected",
                         [pytest.param(*c[1:], id=c[0]) for c in SPEC_EXACT])
def test_spec_examples_exact(isa, name, args, kwargs, x, expected):
    q = getattr(qz, name) if args is None else make(name, args, kwargs)
    y = run(q, x)
    np.testing.assert_array_equal(y, a32(expected))
    # The same values must come out of a 2-D input (element-wise quantizers ignore the shape).
    y2 = run(q, a32(x).reshape(1, -1))
    np.testing.assert_array_equal(y2, a32(expected).reshape(1, -1))


# Values with a transcendental function: compared to the exact value within 1e-6.
def _ulaw(rp, u=255.0):
    return math.copysign(math.log1p(u * abs(rp)) / math.log1p(u), rp)


SPEC_CLOSE = [
    # §3.6 quantized_ulaw [derived-by-hand]: 8 bits: m = 128, rp = 2*R(p)/128 - 1.
    ("ulaw(8)", "quantized_ulaw", (8,), None,
     [-1, -0.3, 0, 0.1, 0.5, 1],
     [-1, _ulaw(2 * 45 / 128 - 1), 0, _ulaw(2 * 70 / 128 - 1), _ulaw(0.5), 127 / 128]),
    ("ulaw(4,1)", "quantized_ulaw", (4, 1), None,
     [-3, -1, 0.3, 1], [-2, 2 * _ulaw(-0.5), 2 * _ulaw(0.25), 1.75]),
]


@pytest.mark.parametrize("name, args, kwargs, x, expected",
                         [pytest.param(*c[1:], id=c[0]) for c in SPEC_CLOSE])
def test_spec_examples_transcendental(isa, name, args, kwargs, x, expected):
    y = run(make(name, args, kwargs), x)
    np.testing.assert_allclose(y, np.asarray(expected, np.float64), rtol=1e-6, atol=1e-7)


def test_spec_ulaw_decimals(isa):
    # The decimals printed in quantizers.md §3.6.
    y = run(qz.quantized_ulaw(8), [-0.3, 0.1, 0.5])
    np.testing.assert_allclose(y, [-0.782652, 0.579804, 0.875703], atol=1.5e-6)
    y = run(qz.quantized_ulaw(4, 1), [-1, 0.3])
    np.testing.assert_allclose(y, [-1.751406, 1.504202], atol=1.5e-6)


# ---------------------------------------------------------------------------------------------
# Data-dependent scales ("auto", "auto_po2"): §3.1, §3.2, §3.8, §3.9
# ---------------------------------------------------------------------------------------------

COLUMN = [0.9, -0.6, 0.2, -0.05]


def test_quantized_bits_auto_column(isa):
    # s = 2*0.9/14, z = [7,-5,2,0], output s*z, scale s*8 = 1.028571 (quantizers.md §3.1)
    q = qz.quantized_bits(4, 0, alpha="auto")
    y = run(q, col(COLUMN))
    np.testing.assert_allclose(y, col([0.9, -0.9 * 5 / 7, 0.9 * 2 / 7, 0]), rtol=1e-6)
    assert y[3, 0] == 0
    scale = np.asarray(q.scale)
    assert scale.dtype == np.float32 and scale.shape == (1, 1)
    np.testing.assert_allclose(scale, [[0.9 * 8 / 7]], rtol=1e-6)
    np.testing.assert_allclose(scale, [[1.028571]], rtol=1e-6)


def test_quantized_bits_auto_po2_column(isa):
    q = qz.quantized_bits(4, 0, alpha="auto_po2")
    y = run(q, col(COLUMN))
    np.testing.assert_array_equal(y, col([0.875, -0.625, 0.25, 0]))
    scale = np.asarray(q.scale)
    assert scale.dtype == np.float32 and scale.shape == (1, 1)
    np.testing.assert_array_equal(scale, [[1.0]])


def test_quantized_bits_auto_po2_output_independent_of_integer(isa):
    # With integer=2 the outputs are the same; only the reported scale changes (0.25).
    q = qz.quantized_bits(4, 2, alpha="auto_po2")
    y = run(q, col(COLUMN))
    np.testing.assert_array_equal(y, col([0.875, -0.625, 0.25, 0]))
    np.testing.assert_array_equal(np.asarray(q.scale), [[0.25]])


@pytest.mark.parametrize("shape, scale_shape", [((4, 1), (1, 1)), ((4,), (1,))])
def test_quantized_bits_auto_3bit(isa, shape, scale_shape):
    # (3,0,"auto") on [2,-1.1,0.5,0.3] -> [2,-1.3333,0.6667,0]; levels 6, s = 4/6, scale = 4s.
    # Rank 1 uses one scale over the whole vector (no refinement with "auto").
    q = qz.quantized_bits(3, 0, alpha="auto")
    y = run(q, a32([2, -1.1, 0.5, 0.3]).reshape(shape))
    np.testing.assert_allclose(y, a32([2, -4 / 3, 2 / 3, 0]).reshape(shape), rtol=1e-6)
    scale = np.asarray(q.scale)
    assert scale.shape == scale_shape
    np.testing.assert_allclose(scale, np.full(scale_shape, 8 / 3), rtol=1e-6)


def test_quantized_bits_auto_po2_rank1_trap(isa):
    # [derived from §3.1/§2] Rank 1: the initial max is over the whole vector (s = 0.125), but
    # the refinement is element-wise (x*z/(z*z+eps)): the element with z = 0 gets
    # 2**round(log2(eps)) = 2**-23, then z = -7 -> 2**-7, z = -6 -> stays 2**-7.
    q = qz.quantized_bits(4, 0, alpha="auto_po2")
    y = run(q, COLUMN)
    np.testing.assert_array_equal(y, [0.875, -0.625, 0.25, -0.046875])
    np.testing.assert_array_equal(np.asarray(q.scale), [1, 1, 1, 0.0625])


def test_quantized_linear_auto_column(isa):
    q = qz.quantized_linear(4, alpha="auto")
    y = run(q, col(COLUMN))
    np.testing.assert_allclose(y, col([0.9, -0.9 * 5 / 7, 0.9 * 2 / 7, 0]), rtol=1e-6)
    assert y[3, 0] == 0


def test_quantized_linear_auto_po2_column(isa):
    q = qz.quantized_linear(4, alpha="auto_po2")
    y = run(q, col(COLUMN))
    np.testing.assert_array_equal(y, col([0.875, -0.625, 0.25, 0]))
    # scale = quantization_scale / data_type_scale = 0.125 / 2**(0-4+1)
    np.testing.assert_array_equal(np.asarray(q.scale).reshape(-1), [1.0])


def test_binary_auto_column(isa):
    # scale = mean|x| / (1 + eps) = 0.4 -> [0.4, -0.4, 0.4]
    q = qz.binary(alpha="auto")
    y = run(q, col([0.2, -0.4, 0.6]))
    np.testing.assert_allclose(y, col([0.4, -0.4, 0.4]), rtol=1e-6)
    scale = np.asarray(q.scale)
    assert scale.shape == (1, 1)
    np.testing.assert_allclose(scale, [[0.4]], rtol=1e-6)


def test_binary_auto_po2_column(isa):
    # mean(x*k) = 0.533 -> 0.5 -> [-0.5, 0.5, 0.5]
    q = qz.binary(alpha="auto_po2")
    y = run(q, col([-0.5, 1.0, 0.1]))
    np.testing.assert_array_equal(y, col([-0.5, 0.5, 0.5]))
    np.testing.assert_array_equal(np.asarray(q.scale), [[0.5]])


def test_ternary_auto_column(isa):
    # q = [1,-1,0,0], s = 0.375/(0.5+eps) -> [0.75, -0.75, 0, 0]
    q = qz.ternary(alpha="auto")
    y = run(q, col(COLUMN))
    np.testing.assert_allclose(y, col([0.75, -0.75, 0, 0]), rtol=1e-6)
    assert y[2, 0] == 0 and y[3, 0] == 0
    np.testing.assert_allclose(np.asarray(q.scale), [[0.75]], rtol=1e-6)


def test_ternary_auto_po2_column(isa):
    q = qz.ternary(alpha="auto_po2")
    y = run(q, col(COLUMN))
    np.testing.assert_array_equal(y, col([1, -1, 0, 0]))
    np.testing.assert_array_equal(np.asarray(q.scale), [[1.0]])


@pytest.mark.parametrize("shape, scale_shape", [
    ((4,), (4,)), ((2, 4), (1, 4)), ((3, 3, 4), (1, 1, 4)), ((1, 1, 3, 4), (1, 1, 1, 4))])
def test_least_squares_scale_shapes(isa, shape, scale_shape):
    # §2 [test]: per-channel LS scale shapes; rank 1 is element-wise.
    rng = np.random.default_rng(0)
    x = a32(rng.uniform(0.1, 1.0, size=shape) * rng.choice([-1, 1], size=shape))
    q = qz.binary(alpha="auto")
    run(q, x)
    scale = np.asarray(q.scale)
    assert scale.shape == scale_shape
    assert scale.dtype == np.float32


def test_binary_auto_rank1_is_elementwise(isa):
    # The rank-1 trap (§2, §8.8): every element is its own channel, scale = |x|/(1+eps), y ~ x.
    x = a32([0.5, -0.25, 2.0, -1.0])
    q = qz.binary(alpha="auto")
    y = run(q, x)
    np.testing.assert_allclose(y, x, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(q.scale), np.abs(x), rtol=1e-6)


@pytest.mark.parametrize("name, kwargs", [
    ("binary", {"alpha": "auto_po2"}),
    ("binary", {"alpha": "auto"}),
])
def test_elements_per_scale_groups(isa, name, kwargs):
    # §2 [test]: x (2,4,8), scale_axis=1, elements_per_scale=2 -> scale (1,4,1), 2 distinct values.
    x = np.empty((2, 4, 8), np.float32)
    sign = np.where(np.arange(2 * 4 * 8).reshape(2, 4, 8) % 3 == 0, -1, 1).astype(np.float32)
    x[:, :2, :] = 0.5
    x[:, 2:, :] = 2.0
    x *= sign
    q = make(name, (), dict(kwargs, scale_axis=1, elements_per_scale=2))
    y = run(q, x)
    scale = np.asarray(q.scale)
    assert scale.shape == (1, 4, 1)
    np.testing.assert_allclose(scale.reshape(-1), [0.5, 0.5, 2.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(y, x, rtol=1e-6)


def test_quantized_bits_elements_per_scale(isa):
    x = np.empty((2, 4, 8), np.float32)
    x[:, :2, :] = 0.5
    x[:, 2:, :] = -2.0
    q = qz.quantized_bits(4, 0, alpha="auto_po2", scale_axis=1, elements_per_scale=2)
    y = run(q, x)
    # group 0: s = po2(1/14) = 2**-4, z clipped at 7 -> 0.4375; group 1: s = po2(4/14) = 2**-2,
    # z = 8 -> 7 -> -1.75.  Scale = s*8.
    np.testing.assert_array_equal(y[:, :2, :], np.full((2, 2, 8), 0.4375, np.float32))
    np.testing.assert_array_equal(y[:, 2:, :], np.full((2, 2, 8), -1.75, np.float32))
    scale = np.asarray(q.scale)
    assert scale.shape == (1, 4, 1)
    np.testing.assert_array_equal(scale.reshape(-1), [0.5, 0.5, 2.0, 2.0])


def test_scale_attribute_non_auto():
    # Non-auto quantizers store what QKeras stores: 1.0 for alpha None, alpha otherwise.
    q = qz.quantized_bits(4, 0, 0)
    run(q, [0.3])
    assert float(np.asarray(q.scale)) == 1.0
    q = qz.quantized_bits(3, 1, 1, alpha=0.5)
    run(q, [0.3])
    assert float(np.asarray(q.scale)) == 0.5


def test_post_training_scale_freezes_scale(isa):
    # §3.1: post_training_scale freezes the scale to that value (s = scale / m).
    q = qz.quantized_bits(4, 0, alpha="auto_po2", post_training_scale=np.array([[2.0]]))
    y = run(q, col(COLUMN))
    # s = 2/8 = 0.25: z = floor(|x|/0.25 + 0.5) capped at 7 -> [4, -2, 1, 0] (0.6/0.25 = 2.4)
    np.testing.assert_array_equal(y, col([1.0, -0.5, 0.25, 0]))
    np.testing.assert_array_equal(np.asarray(q.scale), [[2.0]])


# ---------------------------------------------------------------------------------------------
# QKeras tests ported (inputs and expected arrays from google/qkeras tests/)
# ---------------------------------------------------------------------------------------------

_RELU_SIG_X = [
    0.458069, 0.573227, 0.194336, 1.539047, 0.045883, 4.009995, 3.962494, 3.937500, 0.363266,
    0.875198, 0.710938, 4.000000, 7.000000, 3.937500, 3.937592, 0.199326, 0.458008, 0.625977,
    0.544922, 1.046875, 0.586899, 3.367188, 3.804688, 0.312500, 0.062500, 0.562500, 0.375000,
    3.367188, 1.046875, 2.796875, 0.054688, 1.562500, 2.562500]
_LEAKY_X = [-1.0, -0.9, -0.8, -0.7, -0.6, -0.5, -0.4, -0.3, -0.2, -0.1, -2.22044605e-16,
            0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

QKERAS_EXACT = [
    # qactivation_test.py::test_quantized_relu
    ("qa_relu(6,2,0)", "quantized_relu", (6, 2, 0), None,
     [[-3.0, 0.0, 2.5625, 3.3671875, 1.5625, 1.046875, 0.054688]],
     [[0.0, 0.0, 2.5625, 3.375, 1.5625, 1.0625, 0.0625]]),
    ("qa_relu(6,2,1)", "quantized_relu", (6, 2, 1), None,
     [_RELU_SIG_X],
     [[0.5, 0.625, 0.25, 1.5, 0.0, 3.9375, 3.9375, 3.9375, 0.375, 0.875, 0.75, 3.9375, 3.9375,
       3.9375, 3.9375, 0.25, 0.5, 0.625, 0.5, 1.0, 0.625, 3.375, 3.75, 0.25, 0.0, 0.5, 0.375,
       3.375, 1.0, 2.75, 0.0, 1.5, 2.5]]),
    # qactivation_test.py::test_quantized_bits
    ("qa_bits(6,2,0,True)", "quantized_bits", (6, 2, 0, True), None,
     [[-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1, 4, 10]],
     [[-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1, 3.875, 3.875]]),
    ("qa_bits(6,2,0,False)", "quantized_bits", (6, 2, 0, False), None,
     [[-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1, 4, 10]],
     [[0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1, 3.9375, 3.9375]]),
    ("qa_bits(6,2,1,True)", "quantized_bits", (6, 2, 1, True), None,
     [[-10, -4, -1.0, -0.5, 0.0, 0.5, 1, 4, 10]],
     [[-3.875, -3.875, -1.0, -0.5, 0.0, 0.5, 1, 3.875, 3.875]]),
    # qactivation_test.py::test_ternary
    ("qa_ternary(1.0,0.33)", "ternary", (1.0, 0.33), None,
     [[-3.0, -2.0, -1.0, -0.2, 0.0, 0.3, 1, 4, 10]],
     [[-1.0, -1.0, -1.0, 0, 0.0, 0.0, 1, 1, 1]]),
    ("qa_ternary(10,5)", "ternary", (10.0, 5.0), None,
     [[-11.0, -7.0, -4.0, -0.2, 0.0, 0.3, 1, 4, 10]],
     [[-10.0, -10.0, 0.0, 0, 0.0, 0.0, 0, 0, 10]]),
    # qactivation_test.py::test_binary
    ("qa_binary(False,1.0)", "binary", (False, 1.0), None,
     [[-3.0, -2.0, -1.0, -0.2, 0.0, 0.3, 1, 4, 10]],
     [[-1.0, -1.0, -1.0, -1.0, 1, 1, 1, 1, 1]]),
    ("qa_binary(False,5.0)", "binary", (False, 5.0), None,
     [[-11.0, -7.0, -4.0, -0.2, 0.0, 0.3, 1, 4, 10]],
     [[-5.0, -5.0, -5.0, -5, 5.0, 5.0, 5, 5, 5]]),
    ("qa_binary(True,5.0)", "binary", (True, 5.0), None,
     [[-11.0, -7.0, -4.0, -0.2, 0.0, 0.3, 1, 4, 10]],
     [[0, 0, 0, 0, 5, 5, 5, 5, 5]]),
    # qactivation_test.py::test_stochastic_binary_inference_mode (learning phase 0)
    ("qa_sbinary_inf(1.0)", "stochastic_binary", (1.0,), None,
     [[-3.0, -2.0, -1.0, -0.2, 0.0, 0.3, 1, 4, 10]],
     [[-1.0, -1.0, -1.0, -1.0, 1, 1, 1, 1, 1]]),
    ("qa_sbinary_inf(5.0)", "stochastic_binary", (5.0,), None,
     [[-11.0, -7.0, -4.0, -0.2, 0.0, 0.3, 1, 4, 10]],
     [[-5.0, -5.0, -5.0, -5, 5.0, 5.0, 5, 5, 5]]),
    # qactivation_test.py::test_stochastic_ternary_inference_mode (learning phase 0)
    ("qa_sternary_inf(1.0,0.33)", "stochastic_ternary", (1.0, 0.33), None,
     [[-3.0, -2.0, -1.0, -0.2, 0.0, 0.3, 1, 4, 10]],
     [[-1.0, -1.0, -1.0, 0, 0.0, 0.0, 1, 1, 1]]),
    ("qa_sternary_inf(10,5)", "stochastic_ternary", (10.0, 5.0), None,
     [[-11.0, -7.0, -4.0, -0.2, 0.0, 0.3, 1, 4, 10]],
     [[-10.0, -10.0, 0.0, 0, 0.0, 0.0, 0, 0, 10]]),
    # qactivation_test.py::test_quantized_hswish
    ("qa_hswish(6,2,0)", "quantized_hswish", (6, 2, 0), {"relu_shift": 3, "relu_upper_bound": 6},
     [[-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1, 4, 10]],
     [[0., -0.375, -0.375, -0.25, 0., 0.25, 0.625, 3.875, 3.875]]),
    ("qa_hswish(6,4,1)", "quantized_hswish", (6, 4, 1), {"relu_shift": 3, "relu_upper_bound": 6},
     [[-10.0, -2.0, -2.3, -0.25, 0.0, 0.5, 1, 4, 10]],
     [[0., -0.5, -0.5, 0., 0., 0.5, 0.5, 4., 10.]]),
    ("qa_hswish(2,0,0)", "quantized_hswish", (2, 0, 0), {"relu_shift": 3, "relu_upper_bound": 6},
     [[-10.0, -2.0, -2.3, -0.25, 0.0, 0.5, 1, 4, 10]],
     [[0., -0.5, -0.5, 0., 0., 0.5, 0.5, 0.5, 0.5]]),
    # qactivation_test.py::test_quantized_po2 (log2_rounding "rnd"; the version where it ran)
    ("qa_po2(4,None,quad)", "quantized_po2", (4, None, 0, 1, "rnd"), None,
     [[-10.0, -0.25, 0.25, 1.0, 1.99, 2.0, 5.0, 10.0, 16.0, 32.0]],
     [[-16.0, -0.25, 0.25, 1.0, 1.0, 1.0, 4.0, 16.0, 16.0, 16.0]]),
    ("qa_po2(3,0.5)", "quantized_po2", (3, 0.5, 0, 0, "rnd"), None,
     [[-7, -0.12, -0.03, 0.01, 5]], [[-0.5, -0.125, -0.0625, 0.0625, 0.5]]),
    ("qa_po2(8)", "quantized_po2", (8, None, 0, 0, "rnd"), None,
     [[-3, -2, -1.5, -0.5, -0.033, 0.5, 0.667, 1, 1.5, 4, 10]],
     [[-4, -2, -2, -0.5, -0.03125, 0.5, 0.5, 1, 2, 4, 8]]),
    ("qa_po2(4)", "quantized_po2", (4, None, 0, 0, "rnd"), None,
     [[-16, -7, -0.12, -0.03, 0, 0.01, 5, 10]], [[-8, -8, -0.125, -0.0625, 0.0625, 0.0625, 4, 8]]),
    ("qa_po2(4,4)", "quantized_po2", (4, 4, 0, 0, "rnd"), None,
     [[-7, -0.12, -0.03, 0, 0.01, 5]], [[-4, -0.125, -0.0625, 0.0625, 0.0625, 4]]),
    ("qa_po2(4,quad,pos)", "quantized_po2", (4, None, 0, 1, "rnd"), None,
     [[0.01, 0.03, 0.06, 0.5, 1, 2, 5, 10, 16, 32]],
     [[0.015625, 0.015625, 0.0625, 0.25, 1, 1, 4, 16, 16, 16]]),
    ("qa_po2(4,quad,neg)", "quantized_po2", (4, None, 0, 1, "rnd"), None,
     [[-32, -16, -10, -5, -2, -1, -0.5, -0.03, -0.01]],
     [[-16, -16, -16, -4, -1, -1, -0.25, -0.015625, -0.015625]]),
    # qactivation_test.py::disable_test_quantized_po2 (log2_rounding "floor")
    ("qa_po2_floor(4,quad)", "quantized_po2", (4, None, 0, 1, "floor"), None,
     [[-10.0, -0.25, 0.25, 1.0, 1.99, 2.0, 5.0, 10.0, 16.0, 32.0]],
     [[-4.0, -0.25, 0.25, 1.0, 1.0, 1.0, 4.0, 4.0, 16.0, 16.0]]),
    ("qa_po2_floor(3,0.5)", "quantized_po2", (3, 0.5, 0, 0, "floor"), None,
     [[-7, -0.12, -0.03, 0.01, 5]], [[-0.5, -0.0625, -0.0625, 0.0625, 0.5]]),
    ("qa_po2_floor(8)", "quantized_po2", (8, None, 0, 0, "floor"), None,
     [[-3, -2, -1.5, -0.5, -0.033, 0.5, 0.667, 1, 1.5, 4, 10]],
     [[-2, -2, -1, -0.5, -0.03125, 0.5, 0.5, 1, 1, 4, 8]]),
    ("qa_po2_floor(4)", "quantized_po2", (4, None, 0, 0, "floor"), None,
     [[-16, -7, -0.12, -0.03, 0, 0.01, 5, 10]],
     [[-8, -4, -0.0625, -0.0625, 0.0625, 0.0625, 4, 8]]),
    ("qa_po2_floor(4,4)", "quantized_po2", (4, 4, 0, 0, "floor"), None,
     [[-7, -0.12, -0.03, 0, 0.01, 5]], [[-4, -0.0625, -0.0625, 0.0625, 0.0625, 4]]),
    ("qa_po2_floor(4,quad,pos)", "quantized_po2", (4, None, 0, 1, "floor"), None,
     [[0.01, 0.03, 0.06, 0.5, 1, 2, 5, 10, 16, 32]],
     [[0.00390625, 0.015625, 0.015625, 0.25, 1, 1, 4, 4, 16, 16]]),
    ("qa_po2_floor(4,quad,neg)", "quantized_po2", (4, None, 0, 1, "floor"), None,
     [[-32, -16, -10, -5, -2, -1, -0.5, -0.03, -0.01]],
     [[-16, -16, -4, -4, -1, -1, -0.25, -0.015625, -0.00390625]]),
    # qactivation_test.py::test_quantized_relu_po2 ("rnd", the version where it ran); the
    # 2**-128 that QKeras's 8-bit case printed is a subnormal: flushed to 0 (contract decision 2).
    ("qa_relu_po2(3,quad)", "quantized_relu_po2", (3, None, 0, 0, 1, "rnd"), None,
     [[-10.0, -0.25, 0.25, 1.0, 1.99, 2.01, 5.0, 10.0, 16.0, 32.0]],
     [[0.0625, 0.0625, 0.25, 1.0, 1.0, 4.0, 4.0, 16.0, 16.0, 16.0]]),
    ("qa_relu_po2(3,4)", "quantized_relu_po2", (3, 4, 0, 0, 0, "rnd"), None,
     [[-7.0, -0.12, -0.03, 0, 0.01, 5.0]], [[0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 4.0]]),
    ("qa_relu_po2(8)", "quantized_relu_po2", (8, None, 0, 0, 0, "rnd"), None,
     [[-0.033, 0.5, 0.667, 1, 1.5, 4, 10]], [[0.0, 0.5, 0.5, 1, 2, 4, 8]]),
    ("qa_relu_po2(3)", "quantized_relu_po2", (3, None, 0, 0, 0, "rnd"), None,
     [[-16.0, -7.0, -0.12, -0.03, 0, 0.01, 5.0, 10.0]],
     [[0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 4.0, 8.0]]),
    ("qa_relu_po2(2,0.5)", "quantized_relu_po2", (2, 0.5, 0, 0, 0, "rnd"), None,
     [[-7.0, -0.12, -0.03, 0.01, 5.0]], [[0.0625, 0.0625, 0.0625, 0.0625, 0.5]]),
    ("qa_relu_po2(3,quad,pos)", "quantized_relu_po2", (3, None, 0, 0, 1, "rnd"), None,
     [[0.01, 0.03, 0.06, 0.5, 1, 2, 5, 10, 16, 32]],
     [[0.015625, 0.015625, 0.0625, 0.25, 1, 1, 4, 16, 16, 16]]),
    # qactivation_test.py::disable_test_quantized_relu_po2 ("floor")
    ("qa_relu_po2_floor(3,quad)", "quantized_relu_po2", (3, None, 0, 0, 1, "floor"), None,
     [[-10.0, -0.25, 0.25, 1.0, 1.99, 2.01, 5.0, 10.0, 16.0, 32.0]],
     [[0.0625, 0.0625, 0.25, 1.0, 1.0, 1.0, 4.0, 4.0, 16.0, 16.0]]),
    ("qa_relu_po2_floor(3,4)", "quantized_relu_po2", (3, 4, 0, 0, 0, "floor"), None,
     [[-7.0, -0.12, -0.03, 0, 0.01, 5.0]], [[0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 4.0]]),
    ("qa_relu_po2_floor(8)", "quantized_relu_po2", (8, None, 0, 0, 0, "floor"), None,
     [[-0.033, 0.5, 0.667, 1, 1.5, 4, 10]], [[0, 0.5, 0.5, 1, 1, 4, 8]]),
    ("qa_relu_po2_floor(3)", "quantized_relu_po2", (3, None, 0, 0, 0, "floor"), None,
     [[-16.0, -7.0, -0.12, -0.03, 0, 0.01, 5.0, 10.0]],
     [[0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 0.0625, 4.0, 8.0]]),
    ("qa_relu_po2_floor(2,0.5)", "quantized_relu_po2", (2, 0.5, 0, 0, 0, "floor"), None,
     [[-7.0, -0.12, -0.03, 0.01, 5.0]], [[0.0625, 0.0625, 0.0625, 0.0625, 0.5]]),
    ("qa_relu_po2_floor(3,quad,pos)", "quantized_relu_po2", (3, None, 0, 0, 1, "floor"), None,
     [[0.01, 0.03, 0.06, 0.5, 1, 2, 5, 10, 16, 32]],
     [[0.00390625, 0.015625, 0.015625, 0.25, 1, 1, 4, 4, 16, 16]]),
    # leakyrelu_test.py::test_quantized_relu
    ("lr_relu(6,2,0,0.25)", "quantized_relu", (6, 2, 0, 0.25), None,
     [[-3.0, -2.0, -1.0, 0.0, 2.5625, 3.3671875, 1.5625, 1.046875, 0.054688, 6.0]],
     [[-0.75, -0.5, -0.25, 0.0, 2.5, 3.375, 1.5, 1.0, 0.0, 3.875]]),
    ("lr_relu(6,2,1,0.125)pos", "quantized_relu", (6, 2, 1, 0.125), None,
     [_RELU_SIG_X],
     [[0.5, 0.5, 0.25, 1.5, 0., 3.875, 3.875, 3.875, 0.25, 1., 0.75, 3.875, 3.875, 3.875, 3.875,
       0.25, 0.5, 0.75, 0.5, 1., 0.5, 3.25, 3.75, 0.25, 0., 0.5, 0.5, 3.25, 1., 2.75, 0., 1.5,
       2.5]]),
    ("lr_relu(6,2,1,0.125)neg", "quantized_relu", (6, 2, 1, 0.125), None,
     [[-v for v in _RELU_SIG_X]],
     [[0.0, 0.0, 0.0, -0.25, 0.0, -0.5, -0.5, -0.5, 0.0, 0.0, 0.0, -0.5, -0.5, -0.5, -0.5, 0.0,
       0.0, 0.0, 0.0, -0.25, 0.0, -0.5, -0.5, 0.0, 0.0, 0.0, 0.0, -0.5, -0.25, -0.25, 0.0,
       -0.25, -0.25]]),
    # leakyrelu_test.py::test_quantized_relu_po2 (2**-128 -> exactly 0, FTZ)
    ("lr_relu_po2(8,2**-4)", "quantized_relu_po2", (8,), {"negative_slope": 2 ** -4},
     [_LEAKY_X],
     [[-0.0625, -0.0625, -0.0625, -0.03125, -0.03125, -0.03125, -0.03125, -0.015625, -0.015625,
       -0.0078125, 0., 0.125, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5, 1., 1.]]),
    ("lr_relu_po2(3,2**-4)", "quantized_relu_po2", (3,), {"negative_slope": 2 ** -4},
     [_LEAKY_X],
     [[-0.0625] * 11 + [0.125, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5, 1., 1.]]),
    ("lr_relu_po2(6,2**-3)", "quantized_relu_po2", (6,), {"negative_slope": 2 ** -3},
     [[-3.0, -2.0, -1.0, 0.0, 2.5625, 3.3671875, 1.5625, 1.046875, 0.054688, 6.0]],
     [[-0.5, -0.25, -0.125, 2.0 ** -32, 2.0, 4.0, 2.0, 1.0, 0.0625, 8.0]]),
]


@pytest.mark.parametrize("name, args, kwargs, x, expected",
                         [pytest.param(*c[1:], id=c[0]) for c in QKERAS_EXACT])
def test_qkeras_ported_exact(isa, name, args, kwargs, x, expected):
    y = run(make(name, args, kwargs), x)
    np.testing.assert_array_equal(y, a32(expected))


def test_qkeras_relu_po2_leaky_subnormal_is_exactly_zero(isa):
    # leakyrelu_test: -2.2e-16 with slope 2**-4 and 8 bits -> -2**-128, a subnormal -> 0.
    y = run(qz.quantized_relu_po2(8, negative_slope=2 ** -4), [-2.22044605e-16])
    assert y[0] == 0.0


@pytest.mark.parametrize("sigmoid_type, use_real, expected", [
    ("hard", False, [0.015625, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875]),
    ("smooth", False, [0.3125, 0.359375, 0.40625, 0.453125, 0.5, 0.546875, 0.59375, 0.640625]),
    ("real", True, [0.265625, 0.328125, 0.375, 0.4375, 0.5, 0.5625, 0.625, 0.671875]),
])
def test_qkeras_quantized_sigmoid(isa, sigmoid_type, use_real, expected):
    # qactivation_test.py::test_quantized_sigmoid (6 bits, symmetric=True)
    x = [[-1., -0.75, -0.5, -0.25, 0., 0.25, 0.5, 0.75]]
    qz.set_internal_sigmoid(sigmoid_type)
    try:
        y = run(qz.quantized_sigmoid(6, symmetric=True, use_real_sigmoid=use_real), x)
    finally:
        qz.set_internal_sigmoid("hard")
    np.testing.assert_array_equal(y, a32([expected]))


@pytest.mark.parametrize("sigmoid_type, use_real", [
    ("hard", False), ("smooth", False), ("real", True)])
def test_qkeras_quantized_sigmoid_limits(isa, sigmoid_type, use_real):
    qz.set_internal_sigmoid(sigmoid_type)
    try:
        q = qz.quantized_sigmoid(4, symmetric=True, use_real_sigmoid=use_real)
        y = run(q, [-15, 15])
    finally:
        qz.set_internal_sigmoid("hard")
    np.testing.assert_array_equal(y, [0.0625, 0.9375])
    assert float(q.min()) == 0.0625 and float(q.max()) == 0.9375


@pytest.mark.parametrize("use_real, expected", [
    (False, [-0.875, -0.75, -0.5, -0.25, 0., 0.25, 0.5, 0.75]),
    (True, [-0.75, -0.625, -0.5, -0.25, 0., 0.25, 0.5, 0.625]),
])
def test_qkeras_quantized_tanh(isa, use_real, expected):
    # qactivation_test.py::test_quantized_tanh (4 bits, symmetric=True)
    y = run(qz.quantized_tanh(4, symmetric=True, use_real_tanh=use_real),
            [[-1., -0.75, -0.5, -0.25, 0., 0.25, 0.5, 0.75]])
    np.testing.assert_array_equal(y, a32([expected]))


@pytest.mark.parametrize("sigmoid_type, use_real", [
    ("hard", False), ("smooth", False), ("real", True)])
def test_qkeras_quantized_tanh_limits(isa, sigmoid_type, use_real):
    qz.set_internal_sigmoid(sigmoid_type)
    try:
        q = qz.quantized_tanh(4, symmetric=True, use_real_tanh=use_real)
        y = run(q, [-15, 15])
    finally:
        qz.set_internal_sigmoid("hard")
    np.testing.assert_array_equal(y, [-0.875, 0.875])
    assert float(q.min()) == -0.875 and float(q.max()) == 0.875


def test_qkeras_hard_and_smooth_sigmoid_functions(isa):
    # qactivation_test.py::test_hard_sigmoid / test_smooth_sigmoid: the clip formulas.
    x = a32([[-3.0, -2.0, -1.0, -0.5, 0.005, 0.0, 0.005, 0.5, 1, 4, 10]])
    hard = np.clip(F32(0.5) * x + F32(0.5), 0, 1).astype(np.float32)
    smooth = np.clip(F32(0.1875) * x + F32(0.5), 0, 1).astype(np.float32)
    np.testing.assert_array_equal(run(qz.hard_sigmoid, x), hard)
    np.testing.assert_array_equal(run(qz.smooth_sigmoid, x), smooth)


# --- qnoise_test.py -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["quantized_bits", "quantized_linear"])
def test_qkeras_qnoise_linear_quantizers(isa, name):
    q = make(name, (), dict(bits=4, integer=1, symmetric=True, keep_negative=True, alpha=1,
                            use_stochastic_rounding=False, use_variables=True))
    x = a32([0.0, 0.5, -0.5, 0.6, -0.6, 2.0, -2.0])
    xq = a32([0.0, 0.5, -0.5, 0.5, -0.5, 1.75, -1.75])
    q.update_qnoise_factor(0.0)
    np.testing.assert_array_equal(run(q, x), x)
    q.update_qnoise_factor(1.0)
    np.testing.assert_array_equal(run(q, x), xq)
    q.update_qnoise_factor(0.5)
    assert float(q.qnoise_factor) == 0.5
    np.testing.assert_array_equal(run(q, x), F32(0.5) * (x + xq))


_QN_IN = a32([0.0, 0.5, -0.5, 0.6, 2.0, 3.0])
_QN_X = a32([0.0, 0.5, 0.0, 0.6, 2.0, 3.0])          # relu
_QN_X_UB = a32([0.0, 0.5, 0.0, 0.6, 1.5, 1.5])       # relu capped at relu_upper_bound 1.5
_QN_X_CLIP = a32([0.0, 0.5, 0.0, 0.6, 1.875, 1.875])  # relu capped at the quantizer's max
_QN_XQ = a32([0.0, 0.5, 0.0, 0.625, 1.875, 1.875])


@pytest.mark.parametrize("upper_bound, quantized_clip, at0, at1, at05", [
    (None, False, _QN_X, _QN_XQ, F32(0.5) * (_QN_X + _QN_XQ)),
    (None, True, _QN_X_CLIP, _QN_XQ, F32(0.5) * (_QN_X_CLIP + _QN_XQ)),
    (1.5, False, np.minimum(_QN_X_UB, F32(1.5)), np.minimum(_QN_XQ, F32(1.5)),
     np.minimum(F32(0.5) * (_QN_X_UB + _QN_XQ), F32(1.5))),
    (1.5, True, _QN_X_CLIP, _QN_XQ, F32(0.5) * (_QN_X_CLIP + _QN_XQ)),
], ids=["no_bound-no_qclip", "no_bound-qclip", "bound-no_qclip", "bound-qclip"])
def test_qkeras_qnoise_quantized_relu(isa, upper_bound, quantized_clip, at0, at1, at05):
    q = qz.quantized_relu(bits=4, integer=1, use_sigmoid=False, negative_slope=0,
                          use_stochastic_rounding=False, relu_upper_bound=upper_bound,
                          is_quantized_clip=quantized_clip, use_variables=True)
    q.update_qnoise_factor(qnoise_factor=0.0)
    np.testing.assert_array_equal(run(q, _QN_IN), at0)
    q.update_qnoise_factor(qnoise_factor=1.0)
    np.testing.assert_array_equal(run(q, _QN_IN), at1)
    q.update_qnoise_factor(qnoise_factor=0.5)
    np.testing.assert_array_equal(run(q, _QN_IN), at05)


def test_qnoise_factor_constructor_argument(isa):
    # Same as update_qnoise_factor: forward = x + qf*(xq - x) in float32.
    x = a32([0.3, -0.7, 0.05])
    q = qz.quantized_bits(4, 0, 0, qnoise_factor=0.25)
    xq = a32([0.25, -0.75, 0.0])
    np.testing.assert_array_equal(run(q, x), x + F32(0.25) * (xq - x))


# --- qalpha_test.py (statistical; N reduced from 10**6 rows to 5*10**4) ----------------------

_QALPHA_M = [1.0, 0.1, 0.01, 0.001]


def _uniform_weights(m, seed=42, n=50_000):
    rng = np.random.RandomState(seed)
    return rng.uniform(-m, m, (n, 10)).astype(np.float32)


@pytest.mark.parametrize("m", _QALPHA_M)
def test_qkeras_binary_auto_scale(isa, m):
    q = qz.binary(alpha="auto")
    run(q, _uniform_weights(m))
    np.testing.assert_allclose(np.asarray(q.scale), m / 2.0, rtol=0.02)


@pytest.mark.parametrize("m", _QALPHA_M)
def test_qkeras_binary_auto_po2_scale(isa, m):
    x = _uniform_weights(m)
    ref = qz.binary(alpha="auto")
    run(ref, x)
    q = qz.binary(alpha="auto_po2")
    run(q, x)
    expected = np.power(2.0, np.round(np.log2(np.asarray(ref.scale, np.float64))))
    np.testing.assert_allclose(np.asarray(q.scale), expected, rtol=1e-4)


@pytest.mark.parametrize("m", _QALPHA_M)
def test_qkeras_ternary_auto_scale(isa, m):
    q = qz.ternary(alpha="auto")
    run(q, _uniform_weights(m))
    np.testing.assert_allclose(np.mean(np.asarray(q.scale)), (m + m / 3.0) / 2.0, rtol=0.02)


@pytest.mark.parametrize("m", _QALPHA_M)
def test_qkeras_ternary_auto_po2_scale(isa, m):
    x = _uniform_weights(m)
    ref = qz.ternary(alpha="auto")
    run(ref, x)
    q = qz.ternary(alpha="auto_po2")
    run(q, x)
    expected = np.power(2.0, np.round(np.log2(np.asarray(ref.scale, np.float64))))
    np.testing.assert_allclose(np.asarray(q.scale), expected, rtol=1e-4)


_IB_MIN = [-4.0, -4.0, -4.0, -4.0, 1.0, -3.0, -10.0, -16, -25, 0, 0, 0, 0.1, 0.0, -1.0, 0.0, 0.0,
           0.0, 0, 0, 0]
_IB_MAX = [3.5, 3.51, 3.75, 3.751, 2.0, 4.0, 5.0, 8, 0, 0, 0.1, 0.999, 0.5, 0.8751, 0.9375,
           0.93751, 1.875, 1.8751, 9, 11, 12]


@pytest.mark.parametrize("symmetric, keep_negative, is_clipping, expected", [
    (False, False, False, [2, 2, 2, 3, 2, 3, 3, 4, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 4, 4, 4]),
    (False, False, True, [2, 2, 2, 2, 1, 2, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3, 3, 4]),
    (False, True, False, [2, 3, 3, 3, 2, 3, 3, 3, 3, 0, 0, 1, 0, 1, 1, 1, 2, 2, 3, 3, 3]),
    (False, True, True, [2, 2, 2, 2, 1, 2, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3, 3, 3]),
    (True, True, False, [3, 3, 3, 3, 2, 3, 3, 3, 3, 0, 0, 1, 0, 1, 1, 1, 2, 2, 3, 3, 3]),
    (True, True, True, [2, 2, 2, 2, 1, 2, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3, 3, 3]),
])
def test_qkeras_get_integer_bits(symmetric, keep_negative, is_clipping, expected):
    # qalpha_test.py::test_get_integer_bits (§2 _get_integer_bits, used by QAdaptiveActivation).
    fn = getattr(qz, "_get_integer_bits", None)
    if fn is None:
        pytest.skip("qnn_ext.quantizers._get_integer_bits is not provided (not in the API contract)")
    got = fn(min_value=np.array(_IB_MIN), max_value=np.array(_IB_MAX), bits=4,
             symmetric=symmetric, keep_negative=keep_negative, is_clipping=is_clipping)
    np.testing.assert_array_equal(np.asarray(got), expected)


# --- qactivation_test.py stochastic cases (statistical) --------------------------------------

@pytest.mark.parametrize("value", [42.0, 100.0, 48.0, -141.0, -32.0, 32.0, 10031.0, 0.0])
def test_qkeras_stochastic_round_quantized_po2_mean(isa, value):
    qnn_ext.utils.set_random_seed(666)
    backend.set_learning_phase(1)
    y = run(qz.quantized_po2(use_stochastic_rounding=True), np.full((1, 100_000), value))
    np.testing.assert_allclose(np.mean(y, dtype=np.float64), value, rtol=0.1, atol=1e-6)


@pytest.mark.parametrize("value, expected", [
    (42.0, 42.0), (-42.0, 0.0), (0.0, 0.0), (100.0, 100.0), (48.0, 48.0)])
def test_qkeras_stochastic_round_quantized_relu_po2_mean(isa, value, expected):
    qnn_ext.utils.set_random_seed(666)
    backend.set_learning_phase(1)
    y = run(qz.quantized_relu_po2(use_stochastic_rounding=True), np.full((1, 100_000), value))
    np.testing.assert_allclose(np.mean(y, dtype=np.float64), expected, rtol=0.1, atol=1e-6)


def test_qkeras_stochastic_binary_statistics(isa):
    # qactivation_test.py::test_stochastic_binary: x (10,1) sorted uniform(-0.01, 0.01) with
    # numpy seed 42; 1000 draws per element (here: 1000 identical channels in one call).
    np.random.seed(42)
    x = np.sort(np.random.uniform(-0.01, 0.01, size=10)).astype(np.float32)
    xs = np.repeat(x[:, None], 1000, axis=1)
    qnn_ext.utils.set_random_seed(42)
    q = qz.stochastic_binary(alpha="auto_po2")
    y = run(q, xs, training=True)
    scale = np.asarray(q.scale)
    assert scale.shape == (1, 1000)
    np.testing.assert_array_equal(scale, np.full((1, 1000), 2.0 ** -8, np.float32))
    mean = np.mean(y / scale, axis=1)
    expected = [-1., -1., -1., -0.852, 0.782, 0.768, 0.97, 0.978, 1.0, 1.0]
    np.testing.assert_allclose(mean, expected, atol=0.1)


@pytest.mark.parametrize("alpha, expected_values, expected_scale", [
    ("auto",
     [-0.973, -0.903, -0.759, -0.574, -0.242, 0.161, 0.508, 0.723, 0.874, 0.975],
     [0.008427, 0.007001, 0.0057, 0.004457, 0.003537, 0.003416, 0.004507, 0.005536, 0.006853,
      0.008282]),
    ("auto_po2",
     [-0.979, -0.877, -0.639, -0.586, -0.23, 0.154, 0.327, 0.603, 0.83, 0.986],
     [0.007812, 0.007812, 0.007812, 0.003906, 0.003906, 0.003906, 0.007812, 0.007812, 0.007812,
      0.007812]),
])
def test_qkeras_stochastic_ternary_statistics(isa, alpha, expected_values, expected_scale):
    np.random.seed(42)
    x = np.sort(np.random.uniform(-0.01, 0.01, size=(1000, 10)), axis=1).astype(np.float32)
    qnn_ext.utils.set_random_seed(42)
    backend.set_learning_phase(1)
    q = qz.stochastic_ternary(alpha=alpha, temperature=8)
    y = run(q, x)
    scale = np.asarray(q.scale, np.float32).reshape(-1)
    np.testing.assert_allclose(scale, expected_scale, rtol=0.1)
    np.testing.assert_allclose(np.mean(y / scale, axis=0), expected_values, atol=0.1)


# ---------------------------------------------------------------------------------------------
# Gradients per STE form (quantizers.md §1 table and each §3 entry)
# (id, name, args, kwargs, x, dL/dx for dy = 1, rtol, call kwargs)
# ---------------------------------------------------------------------------------------------

def _tanh_d(v):
    t = np.tanh(np.asarray(v, np.float64))
    return list(1 - t * t)


def _sig_d(v):
    s = 1 / (1 + np.exp(-np.asarray(v, np.float64)))
    return list(s * (1 - s))


def _ulaw_d(rp, u=255.0):
    # d/dx of quantized_ulaw(8) with the hard sigmoid (0.5): u / ((1 + u|rp|) ln(1+u))
    return u / ((1 + u * abs(rp)) * math.log1p(u))


GRAD_CASES = [
    # form A: identity everywhere, even in saturation
    ("bits(4,0,0)", "quantized_bits", (4, 0, 0), None,
     [-5, -1, -0.3, 0, 0.4, 0.95, 5], [1] * 7, 0, {}),
    ("bits(4,auto)", "quantized_bits", (4, 0), {"alpha": "auto"},
     [[-5], [-0.3], [0.4], [5]], [[1]] * 4, 0, {}),
    ("bits(1,0)", "quantized_bits", (1, 0), None, [-3, 0, 2], [1] * 3, 0, {}),
    # use_ste=False: 1 - qf
    ("bits(4,ste=False,qf=0.25)", "quantized_bits", (4, 0, 0),
     {"use_ste": False, "qnoise_factor": 0.25}, [-5, 0.3, 5], [0.75] * 3, 0, {}),
    ("bits(4,ste=False,qf=1)", "quantized_bits", (4, 0, 0), {"use_ste": False},
     [-5, 0.3, 5], [0] * 3, 0, {}),
    ("po2(4)", "quantized_po2", (4,), None, [-100, -0.3, 0, 0.07, 3, 100], [1] * 6, 0, {}),
    ("po2(4,ste=False,qf=0.5)", "quantized_po2", (4,), {"use_ste": False, "qnoise_factor": 0.5},
     [-100, 0.3, 100], [0.5] * 3, 0, {}),
    ("binary(alpha=1)", "binary", (), {"alpha": 1.0}, [-3, 0, 0.5], [1] * 3, 0, {}),
    ("binary(auto)", "binary", (), {"alpha": "auto"}, [[-3], [0.1], [0.5]], [[1]] * 3, 0, {}),
    ("ternary(alpha=1)", "ternary", (), {"alpha": 1.0}, [-3, 0, 0.5], [1] * 3, 0, {}),
    ("ternary(auto)", "ternary", (), {"alpha": "auto"}, [[-3], [0.1], [0.5]], [[1]] * 3, 0, {}),
    ("bernoulli()", "bernoulli", (), None, [-3, 0, 0.5], [1] * 3, 0, {}),
    ("stochastic_binary(train)", "stochastic_binary", (), None, [-3, 0, 0.5], [1] * 3, 0,
     {"training": True}),
    ("stochastic_ternary(auto,train)", "stochastic_ternary", (), {"alpha": "auto"},
     [[-3], [0.1], [0.5]], [[1]] * 3, 0, {"training": True}),
    # binary/ternary with alpha None: surrogate tanh(x) -> 1 - tanh(x)**2
    ("binary()", "binary", (), None, [-3, -0.5, 0, 0.5, 3], _tanh_d([-3, -0.5, 0, 0.5, 3]),
     1e-5, {}),
    ("ternary()", "ternary", (), None, [-3, -0.5, 0, 0.5, 3], _tanh_d([-3, -0.5, 0, 0.5, 3]),
     1e-5, {}),
    # stochastic_binary in inference is binary's forward with the same alpha (tanh surrogate)
    ("stochastic_binary(inference)", "stochastic_binary", (), None, [-0.5, 0, 2],
     _tanh_d([-0.5, 0, 2]), 1e-5, {"training": False}),
    # form A': 1 on (0, cap], negative_slope below 0, 0 above the cap
    ("relu(4,0)", "quantized_relu", (4, 0), None,
     [-1, -0.1, 0, 0.1, 0.5, 0.9375, 0.95, 2], [0, 0, 0, 1, 1, 1, 0, 0], 0, {}),
    ("relu(3,1,0,0.5)", "quantized_relu", (3, 1, 0, 0.5), None,
     [-2, -0.5, 0.5, 1.5, 2], [0.5, 0.5, 1, 1, 0], 0, {}),
    ("relu(4,1,ub=1.5,no_qclip)", "quantized_relu", (4, 1),
     {"relu_upper_bound": 1.5, "is_quantized_clip": False},
     [-1, 0.5, 1.5, 1.6, 3], [0, 1, 1, 0, 0], 0, {}),
    ("relu(4,1,no_qclip)", "quantized_relu", (4, 1), {"is_quantized_clip": False},
     [-1, 0.5, 3, 100], [0, 1, 1, 1], 0, {}),
    ("relu(4,0,ste=False,qf=0.5)", "quantized_relu", (4, 0),
     {"use_ste": False, "qnoise_factor": 0.5}, [-1, 0.5, 2], [0, 0.5, 0], 0, {}),
    ("relu_po2(4)", "quantized_relu_po2", (4,), None, [-1, 0, 0.5, 100], [0, 0, 1, 1], 0, {}),
    ("relu_po2(4,4)", "quantized_relu_po2", (4, 4), None, [-1, 0.5, 4, 5], [0, 1, 1, 0], 0, {}),
    ("relu_po2(4,slope=0.25)", "quantized_relu_po2", (4,), {"negative_slope": 0.25},
     [-1, 2], [0.25, 1], 0, {}),
    # form B: derivative of the smooth/clip parts, rounding = identity; 0 where clipped
    ("tanh(4)", "quantized_tanh", (4,), None,
     [-3, -1.5, -0.95, -0.6, -0.3, 0.0, 0.2, 0.5, 0.95, 1.5, 3],
     [0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0], 0, {}),
    ("tanh(4,real)", "quantized_tanh", (4,), {"use_real_tanh": True},
     [-3, -0.6, 0.5, 3], _tanh_d([-3, -0.6, 0.5]) + [0], 1e-5, {}),
    ("sigmoid(4)", "quantized_sigmoid", (4,), None,
     [-3, -0.95, -0.5, 0, 0.3, 0.95, 2], [0, 0.5, 0.5, 0.5, 0.5, 0, 0], 0, {}),
    ("sigmoid(4,real)", "quantized_sigmoid", (4,), {"use_real_sigmoid": True},
     [0, 1, 5], _sig_d([0, 1]) + [0], 1e-5, {}),
    ("ulaw(8)", "quantized_ulaw", (8,), None,
     [-2, -0.3, 0.5, 2], [0, _ulaw_d(-0.296875), _ulaw_d(0.5), 0], 1e-5, {}),
    # quantized_linear: y = x + qf*(xq - x) without stop_gradient -> clipped STE
    ("linear(4,0)", "quantized_linear", (4, 0), None,
     [-1.2, -0.875, -0.5, 0.3, 0.875, 0.99], [0, 1, 1, 1, 1, 0], 0, {}),
    ("linear(4,0,qf=0.5)", "quantized_linear", (4, 0), {"qnoise_factor": 0.5},
     [-1.2, -0.875, 0.3, 0.99], [0.5, 1, 1, 0.5], 0, {}),
    ("linear(1)", "quantized_linear", (1,), None, [-2, -0.5, 0.3, 0.7], [0, 1, 1, 0], 0, {}),
    # quantized_hswish: d/dx of x*min(relu(x+3), 6)/6, then quantized_bits' identity
    ("hswish(8,3,0)", "quantized_hswish", (8, 3, 0), None,
     [-4, -1.5, 0, 1.5, 5], [0, 0, 0.5, 1, 1], 1e-6, {}),
]


@pytest.mark.parametrize("name, args, kwargs, x, expected, rtol, call_kwargs",
                         [pytest.param(*c[1:], id=c[0]) for c in GRAD_CASES])
def test_gradient_ste_forms(isa, name, args, kwargs, x, expected, rtol, call_kwargs):
    q = make(name, args, kwargs)
    x = a32(x)
    ones = np.ones_like(x)
    g = grad(q, x, ones, **call_kwargs)
    if rtol:
        np.testing.assert_allclose(g, np.asarray(expected, np.float64), rtol=rtol, atol=1e-7)
    else:
        np.testing.assert_array_equal(g, a32(expected))
    # dy is multiplied in (powers of two keep the products exact)
    dy = a32(np.resize([2.0, -0.5, 4.0, -1.0], x.size).reshape(x.shape))
    g2 = grad(q, x, dy, **call_kwargs)
    if rtol:
        np.testing.assert_allclose(g2, np.asarray(expected, np.float64) * dy, rtol=rtol, atol=1e-7)
    else:
        np.testing.assert_array_equal(g2, a32(expected) * dy)


FUNC_GRAD_CASES = [
    ("hard_sigmoid", [-2, -0.5, 0, 0.5, 2], [0, 0.5, 0.5, 0.5, 0]),
    ("binary_sigmoid", [-2, -0.5, 0, 0.5, 2], [0, 0.5, 0.5, 0.5, 0]),
    ("smooth_sigmoid", [-3, 0, 2], [0, 0.1875, 0.1875]),
    ("hard_tanh", [-2, -0.5, 0.5, 2], [0, 1, 1, 0]),
    ("binary_tanh", [-2, -0.5, 0.5, 2], [0, 1, 1, 0]),
    ("smooth_tanh", [-3, 0, 2], [0, 0.375, 0.375]),
]


@pytest.mark.parametrize("name, x, expected", FUNC_GRAD_CASES, ids=[c[0] for c in FUNC_GRAD_CASES])
def test_gradient_plain_functions(isa, name, x, expected):
    g = grad(getattr(qz, name), x, np.ones(len(x)))
    np.testing.assert_array_equal(g, a32(expected))


def test_gradient_is_stateless(isa):
    # gradient() does not need a forward call first and does not change q's results.
    q = qz.quantized_relu(4, 0)
    x = a32([-1, 0.5, 2])
    g1 = grad(q, x, np.ones(3))
    y = run(q, x)
    g2 = grad(q, x, np.ones(3))
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(y, run(q, x))


# ---------------------------------------------------------------------------------------------
# The internal sigmoid (set_internal_sigmoid)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, expected", [
    ("hard", [0.5, 0.9375]),     # hard_sigmoid(0.5)*16 = 12 -> 2*12/16-1; hard(1)=1 -> capped
    ("smooth", [0.25, 0.375]),   # smooth(0.5)*16 = 9.5 -> 10 (even); smooth(1)*16 = 11
])
def test_internal_sigmoid_quantized_relu_use_sigmoid(isa, mode, expected):
    qz.set_internal_sigmoid(mode)
    try:
        y = run(qz.quantized_relu(4, 0, 1), [0.5, 1.0])
    finally:
        qz.set_internal_sigmoid("hard")
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("mode, expected", [
    ("hard", [-0.875, 0.5, 0.875]),
    ("smooth", [-0.375, 0.25, 0.75]),   # 2*smooth_sigmoid-1 = clip(0.375x): 1.5 rounds to 2
])
def test_internal_sigmoid_quantized_tanh(isa, mode, expected):
    qz.set_internal_sigmoid(mode)
    try:
        y = run(qz.quantized_tanh(4, symmetric=True), [-1, 0.5, 2])
    finally:
        qz.set_internal_sigmoid("hard")
    np.testing.assert_array_equal(y, expected)


def test_internal_sigmoid_quantized_tanh_gradient(isa):
    qz.set_internal_sigmoid("smooth")
    try:
        g = grad(qz.quantized_tanh(4), [-3, 0.5, 2], np.ones(3))
    finally:
        qz.set_internal_sigmoid("hard")
    # 2 * 0.1875 inside; x=-3 saturates the smooth sigmoid (0.1875*-3+0.5 < 0)
    np.testing.assert_array_equal(g, [0, 0.375, 0.375])


def test_internal_sigmoid_real_quantized_sigmoid(isa):
    # "real" internal sigmoid == use_real_sigmoid=True
    x = [[-1., -0.75, -0.5, -0.25, 0., 0.25, 0.5, 0.75]]
    qz.set_internal_sigmoid("real")
    try:
        y = run(qz.quantized_sigmoid(6, symmetric=True), x)
    finally:
        qz.set_internal_sigmoid("hard")
    np.testing.assert_array_equal(
        y, [[0.265625, 0.328125, 0.375, 0.4375, 0.5, 0.5625, 0.625, 0.671875]])


@pytest.mark.parametrize("mode, expected", [
    ("hard", 0.875),               # p = 6 -> rp = 0.5 -> 0.8757 -> clipped to 1 - 1/8
    ("smooth", _ulaw(0.25, 255)),  # p = 4.75 -> 5 -> rp = 0.25
    ("real", _ulaw(0.25, 255)),    # p = 8*sigmoid(0.5) = 4.98 -> 5
])
def test_internal_sigmoid_quantized_ulaw(isa, mode, expected):
    qz.set_internal_sigmoid(mode)
    try:
        y = run(qz.quantized_ulaw(4), [0.5])
    finally:
        qz.set_internal_sigmoid("hard")
    np.testing.assert_allclose(y, [expected], rtol=1e-6)


def test_internal_sigmoid_switch_and_restore(isa):
    x = a32([0.5, 1.0])
    q = qz.quantized_relu(4, 0, 1)
    before = run(q, x)
    qz.set_internal_sigmoid("smooth")
    try:
        assert not np.array_equal(run(q, x), before)
        # the plain functions do not depend on the mode
        np.testing.assert_array_equal(run(qz.hard_sigmoid, x), [0.75, 1.0])
    finally:
        qz.set_internal_sigmoid("hard")
    np.testing.assert_array_equal(run(q, x), before)


# ---------------------------------------------------------------------------------------------
# Learning phase and stochastic behaviour (contract: training=None -> backend.learning_phase())
# ---------------------------------------------------------------------------------------------

def _rand(shape, seed=0, lo=-1.0, hi=1.0):
    return a32(np.random.default_rng(seed).uniform(lo, hi, size=shape))


def test_learning_phase_default_and_set():
    assert backend.learning_phase() == 0
    backend.set_learning_phase(1)
    assert backend.learning_phase() == 1
    backend.set_learning_phase(0)
    assert backend.learning_phase() == 0


@pytest.mark.parametrize("alpha", ["auto", "auto_po2"])
def test_stochastic_ternary_phase0_equals_ternary(isa, alpha):
    x = _rand((64, 8), seed=1)
    np.testing.assert_array_equal(run(qz.stochastic_ternary(alpha=alpha), x),
                                  run(qz.ternary(alpha=alpha), x))
    # training=False overrides a global learning phase of 1
    backend.set_learning_phase(1)
    np.testing.assert_array_equal(run(qz.stochastic_ternary(alpha=alpha), x, training=False),
                                  run(qz.ternary(alpha=alpha), x))


@pytest.mark.parametrize("alpha", [None, 1.0, "auto_po2"])
def test_stochastic_binary_phase0_equals_binary(isa, alpha):
    x = _rand((64, 8), seed=2)
    np.testing.assert_array_equal(run(qz.stochastic_binary(alpha=alpha), x),
                                  run(qz.binary(alpha=alpha), x))


def test_stochastic_ternary_training_is_stochastic(isa):
    x = _rand((256, 4), seed=3)
    qnn_ext.utils.set_random_seed(7)
    q = qz.stochastic_ternary(alpha="auto")
    y = run(q, x, training=True)
    det = run(qz.ternary(alpha="auto"), x)
    assert not np.array_equal(y, det)
    scale = np.asarray(q.scale)
    codes = y / scale
    assert set(np.unique(np.round(codes, 5))).issubset({-1.0, 0.0, 1.0})


@pytest.mark.parametrize("name, args, precision, grid", [
    ("quantized_bits", (4, 0, 0), 1.0, 8.0),     # precision 1 on the code x*8
    ("quantized_relu", (4, 0), 0.5, 16.0),       # precision 0.5 on x*16: half steps
    ("quantized_tanh", (4,), 0.5, 8.0),
    ("quantized_sigmoid", (4,), 0.5, 16.0),
])
def test_stochastic_rounding_only_when_training(isa, name, args, precision, grid):
    x = _rand((1, 200), seed=4, lo=-0.9, hi=0.9)
    q_det = make(name, args)
    q_sr = make(name, args, {"use_stochastic_rounding": True})
    det = run(q_det, x)
    np.testing.assert_array_equal(run(q_sr, x), det)                  # learning phase 0
    np.testing.assert_array_equal(run(q_sr, x, training=False), det)
    qnn_ext.utils.set_random_seed(11)
    y = run(q_sr, x, training=True)
    assert not np.array_equal(y, det)
    # every output sits on the precision grid
    steps = y * F32(grid / precision)
    np.testing.assert_array_equal(steps, np.round(steps))
    backend.set_learning_phase(1)
    qnn_ext.utils.set_random_seed(11)
    y2 = run(q_sr, x)                                                 # training=None -> phase 1
    np.testing.assert_array_equal(y2, y)


def _draws(q, n, k):
    u = np.asarray(qnn_ext._core.uniform(q._last_key, k * n), np.float32)
    assert u.shape == (k * n,)
    assert np.all((u >= 0) & (u < 1))
    return u.reshape(k, n)


def test_stochastic_rounding_draws_quantized_bits(isa):
    # contract: draw 0; floor if frac(s) < u else ceil (precision 1: s = x*m/m_i)
    x = _rand((3, 50), seed=5, lo=-1.2, hi=1.2)
    q = qz.quantized_bits(4, 0, 0, use_stochastic_rounding=True)
    qnn_ext.utils.set_random_seed(3)
    y = run(q, x, training=True)
    u = _draws(q, x.size, 1)[0].reshape(x.shape)
    s = x * F32(8)
    fl = np.floor(s)
    r = np.where((s - fl) < u, fl, np.ceil(s))
    expected = (np.clip(r, -8, 7) / F32(8)).astype(np.float32)
    np.testing.assert_array_equal(y, expected)


def test_stochastic_rounding_draws_quantized_relu(isa):
    # precision 0.5: s = 2*(x*16), floor/ceil by u, then /2, /16, clipped to [0, 15/16]
    x = _rand((2, 64), seed=6, lo=-0.2, hi=1.1)
    q = qz.quantized_relu(4, 0, use_stochastic_rounding=True)
    qnn_ext.utils.set_random_seed(4)
    y = run(q, x, training=True)
    u = _draws(q, x.size, 1)[0].reshape(x.shape)
    s = (x * F32(16)) * F32(2)
    fl = np.floor(s)
    r = np.where((s - fl) < u, fl, np.ceil(s)) / F32(2)
    expected = np.clip(r / F32(16), 0, F32(15 / 16)).astype(np.float32)
    np.testing.assert_array_equal(y, expected)


def test_bernoulli_always_stochastic_and_draws(isa):
    # bernoulli ignores the learning phase; q = 1 if sigmoid(6x) > u else 0 (alpha None: scale 1)
    x = _rand((4, 32), seed=7, lo=-0.6, hi=0.6)
    q = qz.bernoulli()
    qnn_ext.utils.set_random_seed(5)
    y = run(q, x)
    assert set(np.unique(y)).issubset({0.0, 1.0})
    u = _draws(q, x.size, 1)[0].reshape(x.shape)
    p = 1.0 / (1.0 + np.exp(-6.0 * x.astype(np.float64)))
    expected = (p > u).astype(np.float32)
    far = np.abs(p - u) > 1e-6      # ignore draws within float32 rounding of p
    np.testing.assert_array_equal(y[far], expected[far])


def test_set_random_seed_reproducible(isa):
    x = _rand((8, 16), seed=8)
    q = qz.quantized_bits(4, 0, 0, use_stochastic_rounding=True)
    qnn_ext.utils.set_random_seed(123)
    y1 = run(q, x, training=True)
    y2 = run(q, x, training=True)
    qnn_ext.utils.set_random_seed(123)
    y3 = run(q, x, training=True)
    np.testing.assert_array_equal(y1, y3)
    assert not np.array_equal(y1, y2)  # successive calls draw new numbers


# ---------------------------------------------------------------------------------------------
# _set_trainable_parameter changes the forward (§1.2)
# ---------------------------------------------------------------------------------------------

def test_set_trainable_parameter_makes_bits_auto_po2(isa):
    q = qz.quantized_bits(4, 0, 0)
    q._set_trainable_parameter()
    y = run(q, col(COLUMN))
    np.testing.assert_array_equal(y, col([0.875, -0.625, 0.25, 0]))
    np.testing.assert_array_equal(np.asarray(q.scale), [[1.0]])


# ---------------------------------------------------------------------------------------------
# Kernel levels agree bit for bit
# ---------------------------------------------------------------------------------------------

AGREE = [
    ("quantized_bits", (4, 0, 1), None), ("quantized_bits", (6, 2), {"alpha": "auto_po2"}),
    ("quantized_bits", (5, 1), {"alpha": "auto"}), ("quantized_linear", (4, 1), None),
    ("quantized_linear", (6,), {"alpha": "auto_po2"}), ("quantized_relu", (6, 2, 1, 0.125), None),
    ("quantized_relu", (5, 1), None), ("quantized_tanh", (5,), None),
    ("quantized_tanh", (5,), {"use_real_tanh": True}), ("quantized_sigmoid", (5,), None),
    ("quantized_sigmoid", (5,), {"use_real_sigmoid": True}), ("quantized_ulaw", (8, 1), None),
    ("quantized_po2", (5,), None), ("quantized_po2", (6, 4), {"quadratic_approximation": True}),
    ("quantized_relu_po2", (5,), {"negative_slope": 0.25}), ("quantized_hswish", (8, 3), None),
    ("binary", (), None), ("binary", (), {"alpha": "auto"}), ("ternary", (), None),
    ("ternary", (), {"alpha": "auto_po2"}),
]


def test_isa_levels_agree_bitwise():
    levels = list(qnn_ext.build_info()["isas_available"])
    previous = qnn_ext.build_info()["isa"]
    rng = np.random.default_rng(9)
    x = a32(rng.normal(0, 2, size=(37, 13)))   # odd sizes exercise vector tails
    x[0, :4] = [0.0, -0.0, 0.5, -0.5]
    results = {}
    try:
        for level in levels:
            qnn_ext._core.set_isa(level)
            out = []
            for name, args, kwargs in AGREE:
                q = make(name, args, kwargs)
                out.append((run(q, x), grad(q, x, np.ones_like(x))))
            results[level] = out
    finally:
        qnn_ext._core.set_isa(previous)
    first = levels[0]
    for level in levels[1:]:
        for (name, args, kwargs), (y0, g0), (y1, g1) in zip(AGREE, results[first], results[level]):
            assert np.array_equal(y0.view(np.uint32), y1.view(np.uint32)), (name, args, kwargs,
                                                                             first, level)
            assert np.array_equal(g0.view(np.uint32), g1.view(np.uint32)), (name, args, kwargs,
                                                                             first, level)
