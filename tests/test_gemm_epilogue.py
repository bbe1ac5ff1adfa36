"""Bias + relu fused into the GEMM epilogue (_core.gemm / _core.conv2d_forward with bias=, act=):
the same bits as the GEMM followed by the separate bias-add and relu kernels, on every GEMM path
(whole-B tall products, the general blocked loop, split-K, K = 0) and ISA level, and the layers
that use it give the gradients of the unfused computation."""
import numpy as np
import pytest

from qnn_ext import _core, layers

F32 = np.float32


def _separate(z, bias, act):
    if bias is not None:
        z = _core.bias_add("ref", z, bias)
    if act == "relu":
        z = _core.activation_forward("ref", "relu", z)
    return z


# (M, N, K): tall narrow with several K slices (whole-B path), square-ish with several K slices
# (general path), short and wide, tiny M x N with a long K (split-K at 2 threads), K = 0.
SHAPES = [(4100, 64, 600), (300, 700, 530), (17, 45, 3), (24, 40, 60000), (33, 20, 0), (1, 1, 1)]


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("bias_on,act", [(True, None), (False, "relu"), (True, "relu"),
                                         (True, "linear")])
def test_gemm_epilogue_bit_identical(isa, num_threads, M, N, K, bias_on, act, nt):
    rng = np.random.default_rng(M + N + K)
    a = rng.standard_normal((M, K)).astype(F32)
    b = rng.standard_normal((K, N)).astype(F32)
    bias = rng.standard_normal(N).astype(F32) if bias_on else None
    num_threads(nt)
    want = _separate(_core.gemm("g", a, b), bias, act)
    got = _core.gemm("g", a, b, bias=bias, act=act)
    np.testing.assert_array_equal(got, want)
    if act == "relu":
        assert (got >= 0).all() and (got == 0).any() == (want == 0).any()


def test_gemm_epilogue_with_beta_and_transposes():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((70, 40)).astype(F32)
    b = rng.standard_normal((50, 70)).astype(F32)
    c0 = rng.standard_normal((40, 50)).astype(F32)
    bias = rng.standard_normal(50).astype(F32)
    want = _core.gemm("g", a, b, out=c0.copy(), trans_a=True, trans_b=True, alpha=0.5, beta=2.0)
    want = _separate(want, bias, "relu")
    got = _core.gemm("g", a, b, out=c0.copy(), trans_a=True, trans_b=True, alpha=0.5, beta=2.0,
                     bias=bias, act="relu")
    np.testing.assert_array_equal(got, want)


CONVS = [  # x shape, w shape, strides, pads, dilation, groups
    ((2, 9, 9, 3), (3, 3, 3, 16), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((3, 12, 10, 32), (3, 3, 32, 64), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((2, 11, 11, 8), (5, 5, 4, 6), (2, 2), (2, 2, 2, 2), (1, 1), 2),  # grouped: bias per group
    ((2, 8, 8, 6), (3, 3, 1, 12), (1, 1), (1, 1, 1, 1), (2, 2), 6),   # depthwise, multiplier 2
    ((1, 5, 5, 1), (1, 1, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
]


@pytest.mark.parametrize("xs,ws,st,pads,dil,groups", CONVS)
@pytest.mark.parametrize("bias_on,act", [(True, None), (False, "relu"), (True, "relu")])
def test_conv_epilogue_bit_identical(isa, xs, ws, st, pads, dil, groups, bias_on, act):
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.standard_normal(xs).astype(F32)
    w = rng.standard_normal(ws).astype(F32)
    bias = rng.standard_normal(ws[-1]).astype(F32) if bias_on else None
    want = _separate(_core.conv2d_forward("c", x, w, st, pads, dil, groups), bias, act)
    got = _core.conv2d_forward("c", x, w, st, pads, dil, groups, bias=bias, act=act)
    np.testing.assert_array_equal(got, want)


def test_epilogue_argument_errors():
    a = np.ones((4, 3), F32)
    b = np.ones((3, 5), F32)
    with pytest.raises(ValueError, match=r"g: bias must have shape \(5,\) \(one per output"):
        _core.gemm("g", a, b, bias=np.ones(4, F32))
    with pytest.raises(TypeError, match="g: bias must have dtype float32"):
        _core.gemm("g", a, b, bias=np.ones(5))
    with pytest.raises(ValueError, match="g: act must be None, 'linear', 'relu' or a quantizer spec tuple, got 'tanh'"):
        _core.gemm("g", a, b, act="tanh")
    with pytest.raises(TypeError, match="g: act must be None, 'linear', 'relu' or a quantizer spec tuple, got int"):
        _core.gemm("g", a, b, act=1)
    out = np.zeros(20, F32)
    with pytest.raises(ValueError, match="g: out must not share memory with the inputs"):
        _core.gemm("g", a, b, out=out[:20].reshape(4, 5), bias=out[:5])
    x = np.ones((1, 4, 4, 2), F32)
    w = np.ones((3, 3, 2, 3), F32)
    with pytest.raises(ValueError, match=r"c: bias must have shape \(3,\)"):
        _core.conv2d_forward("c", x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1, bias=np.ones(2, F32))


@pytest.mark.parametrize("make", [
    lambda: layers.Dense(7, activation="relu"),
    lambda: layers.QDense(7, activation="relu", kernel_quantizer="quantized_bits(4,0,1)",
                          bias_quantizer="quantized_bits(4,0,1)"),
    lambda: layers.Conv2D(5, 3, padding="same", activation="relu"),
    lambda: layers.DepthwiseConv2D(3, activation="relu"),
    lambda: layers.SeparableConv2D(4, 3, activation="relu"),
])
def test_layers_with_relu_epilogue_match_the_unfused_computation(make):
    rng = np.random.default_rng(3)
    layer = make()
    shape = (4, 6, 6, 3) if not isinstance(layer, layers.Dense) else (9, 5)
    x = rng.standard_normal(shape).astype(F32)
    layer.build(shape)
    for v in layer.trainable_weights:  # a bias large enough that relu clips some outputs
        v.value[...] = rng.standard_normal(v.value.shape).astype(F32)
    y = layer.call(x, training=True)
    dy = rng.standard_normal(y.shape).astype(F32)
    dx = layer.backward(dy)
    # the unfused forward: the same layer without its activation, then relu and its gradient
    lin = type(layer).from_config({**layer.get_config(), "activation": "linear"})
    lin.build(shape)
    lin.set_weights(layer.get_weights())
    z = lin.call(x, training=True)
    np.testing.assert_array_equal(y, np.where(z < 0, F32(0), z))
    assert (y == 0).any() and (y > 0).any()
    dz = _core.activation_backward("ref", "relu", z, None, dy)
    dx_ref = lin.backward(dz)
    np.testing.assert_array_equal(dx, dx_ref)
    for g, g_ref in zip(layer.grads, lin.grads):
        np.testing.assert_array_equal(g, g_ref)
