"""Layers: forward vs NumPy references, float backward by finite differences (inputs and
weights), quantized backward by the quantizer's STE, get_config round trips, bad input."""
import numpy as np
import pytest

import qnn_ext
from qnn_ext import layers as L
from qnn_ext import quantizers as Q

F32 = np.float32
RNG = np.random.default_rng(0)


def rnd(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(F32)


# ---------------------------------------------------------------- NumPy references

def conv2d_ref(x, w, strides, pads, dil=(1, 1), groups=1):
    x = np.pad(x.astype(np.float64), ((0, 0), (pads[0], pads[1]), (pads[2], pads[3]), (0, 0)))
    n, h, wd, c = x.shape
    kh, kw, cig, co = w.shape
    ho = (h - dil[0] * (kh - 1) - 1) // strides[0] + 1
    wo = (wd - dil[1] * (kw - 1) - 1) // strides[1] + 1
    cog = co // groups
    y = np.zeros((n, ho, wo, co))
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = x[:, i * dil[0]: i * dil[0] + strides[0] * (ho - 1) + 1: strides[0],
                          j * dil[1]: j * dil[1] + strides[1] * (wo - 1) + 1: strides[1],
                          g * cig:(g + 1) * cig]
                y[..., g * cog:(g + 1) * cog] += patch @ w[i, j, :, g * cog:(g + 1) * cog].astype(np.float64)
    return y


def numeric_grads(layer, x, g, eps=1e-3):
    """Central differences of sum(layer(x) * g) w.r.t. x and every trainable weight (float64
    accumulation of float32 forwards)."""
    def f():
        return float(np.sum(layer(x.astype(F32)).astype(np.float64) * g))
    dx = np.zeros(x.shape)
    flat = x.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps; fp = f()
        flat[i] = old - eps; fm = f()
        flat[i] = old
        dx.reshape(-1)[i] = (fp - fm) / (2 * eps)
    dws = []
    for v in layer.trainable_weights:
        d = np.zeros(v.shape)
        fl = v.value.reshape(-1)
        for i in range(fl.size):
            old = fl[i]
            fl[i] = old + eps; fp = f()
            fl[i] = old - eps; fm = f()
            fl[i] = old
            d.reshape(-1)[i] = (fp - fm) / (2 * eps)
        dws.append(d)
    return dx, dws


def check_backward(layer, x, rtol=2e-2, atol=2e-3):
    x = x.astype(np.float64)
    y = layer(x.astype(F32))
    g = RNG.standard_normal(y.shape)
    layer(x.astype(F32))  # fresh cache
    dx = layer.backward(g.astype(F32))
    ndx, ndws = numeric_grads(layer, x.copy(), g)
    np.testing.assert_allclose(dx, ndx, rtol=rtol, atol=atol)
    assert len(layer.grads) == len(layer.trainable_weights)
    for got, want in zip(layer.grads, ndws):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def roundtrip(layer):
    cfg = layer.get_config()
    clone = type(layer).from_config(cfg)
    assert clone.get_config() == cfg
    return clone


# ---------------------------------------------------------------- dense

def test_dense_forward_and_backward():
    layer = L.Dense(5, activation="tanh", name="d1")
    x = rnd(4, 7)
    y = layer(x)
    k, b = layer.get_weights()
    np.testing.assert_allclose(y, np.tanh(x.astype(np.float64) @ k + b), rtol=1e-5, atol=1e-6)
    check_backward(layer, rnd(3, 7))


def test_dense_on_3d_input_uses_last_axis():
    layer = L.Dense(4)
    x = rnd(2, 3, 6)
    k, b = layer(x) is not None and layer.get_weights()
    np.testing.assert_allclose(layer(x), x @ k + b, rtol=1e-5, atol=1e-6)
    check_backward(layer, rnd(2, 3, 6))


def test_qdense_uses_quantized_kernel_and_ste():
    kq = Q.quantized_bits(4, 0, 1, alpha=1)
    layer = L.QDense(3, kernel_quantizer=kq, bias_quantizer=Q.quantized_bits(8, 2, 1, alpha=1),
                     activation="quantized_relu(4,1)")
    x = rnd(5, 6)
    y = layer(x)
    k, b = layer.get_weights()
    z = x.astype(np.float64) @ kq(k) + Q.quantized_bits(8, 2, 1, alpha=1)(b)
    np.testing.assert_allclose(y, Q.quantized_relu(4, 1)(z.astype(F32)), atol=1e-6)
    # STE: gradients reach the float kernel through quantized_bits' identity and relu's A'
    g = rnd(5, 3)
    layer(x)
    dx = layer.backward(g)
    dz = Q.quantized_relu(4, 1).gradient(z.astype(F32), g)
    np.testing.assert_allclose(layer.grads[0], x.T.astype(np.float64) @ dz, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dz @ kq(k).T, rtol=1e-5, atol=1e-5)


def test_qdense_layer_default_auto_po2_and_clip():
    layer = L.QDense(4, kernel_quantizer=Q.quantized_bits(4, 0, 1))
    assert str(layer.kernel_quantizer_internal) == "quantized_bits(4,0,1,alpha='auto_po2')"
    layer(rnd(2, 3))
    c = layer.kernel.constraint
    assert c.get_config() == {"min_value": -1.0, "max_value": 1.0}
    assert layer.get_quantizers()[1] is None


def test_dense_config_roundtrip_and_quantization_config():
    layer = L.QDense(6, kernel_quantizer="quantized_bits(4,0,1)", bias_quantizer="quantized_bits(4)",
                     activation="quantized_relu(3)", name="qd")
    clone = roundtrip(layer)
    assert str(clone.kernel_quantizer_internal) == "quantized_bits(4,0,1,alpha='auto_po2')"
    qc = layer.get_quantization_config()
    assert qc["units"] == 6 and qc["activation"] == "quantized_relu(3,0)"


# ---------------------------------------------------------------- convolutions

@pytest.mark.parametrize("kw", [
    dict(filters=4, kernel_size=3, padding="valid"),
    dict(filters=3, kernel_size=(3, 2), strides=2, padding="same"),
    dict(filters=4, kernel_size=3, dilation_rate=2, padding="same"),
    dict(filters=4, kernel_size=1),
    dict(filters=4, kernel_size=3, groups=2, padding="same"),
])
def test_conv2d_forward_backward(kw):
    layer = L.Conv2D(**kw, activation="relu")
    x = rnd(2, 7, 6, 4)
    y = layer(x)
    k, b = layer.get_weights()
    pads = layer._pads(x.shape[1:3])
    ref = np.maximum(conv2d_ref(x, k, layer.strides, pads, layer.dilation_rate, layer.groups) + b, 0)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    small = L.Conv2D(**kw)
    check_backward(small, rnd(1, 5, 5, 4))


def test_conv1d_matches_conv2d_reference():
    layer = L.Conv1D(3, 3, padding="causal")
    x = rnd(2, 9, 2)
    y = layer(x)
    k, b = layer.get_weights()
    ref = conv2d_ref(x[:, None], k[None], (1, 1), (0, 0, 2, 0))[:, 0] + b
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    check_backward(L.Conv1D(2, 3, strides=2, padding="same"), rnd(1, 7, 2))


def test_depthwise_and_separable():
    dw = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")
    x = rnd(2, 5, 5, 3)
    y = dw(x)
    k, b = dw.get_weights()
    ref = conv2d_ref(x, k.reshape(3, 3, 1, 6), (1, 1), (1, 1, 1, 1), groups=3) + b
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)
    check_backward(L.DepthwiseConv2D(3, depth_multiplier=2), rnd(1, 4, 4, 2))
    sep = L.SeparableConv2D(4, 3, padding="same", depth_multiplier=1)
    ys = sep(x)
    d, p, bb = sep.get_weights()
    h = conv2d_ref(x, d.reshape(3, 3, 1, 3), (1, 1), (1, 1, 1, 1), groups=3)
    np.testing.assert_allclose(ys, h @ p[0, 0] + bb, rtol=1e-4, atol=1e-5)
    check_backward(L.SeparableConv2D(2, 3), rnd(1, 4, 4, 2))


def test_conv2d_transpose_is_the_adjoint_of_conv2d():
    t = L.Conv2DTranspose(3, 3, strides=2, padding="same")
    x = rnd(1, 3, 3, 2)
    y = t(x)
    assert y.shape == (1, 6, 6, 3)
    k, b = t.get_weights()
    # <conv_transpose(x), u> == <x, conv(u)> (bias aside)
    u = rnd(*y.shape)
    pads = t._pads((6, 6))
    lhs = float(np.sum((y - b) * u))
    rhs = float(np.sum(x * conv2d_ref(u, k, (2, 2), pads)))
    assert abs(lhs - rhs) < 1e-3 * max(1.0, abs(lhs))
    check_backward(L.Conv2DTranspose(2, 2, strides=2), rnd(1, 2, 2, 2))


def test_qconv2d_mask_and_quantized_kernel():
    mask = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], F32)
    kq = Q.quantized_bits(4, 0, 1, alpha=1)
    layer = L.QConv2D(2, 3, kernel_quantizer=kq, mask=mask, use_bias=False)
    x = rnd(1, 5, 5, 2)
    y = layer(x)
    k = layer.get_weights()[0]
    np.testing.assert_allclose(y, conv2d_ref(x, kq(k) * mask[:, :, None, None], (1, 1), (0, 0, 0, 0)),
                               rtol=1e-5, atol=1e-5)
    assert roundtrip(layer).mask.tolist() == mask.tolist()


# ---------------------------------------------------------------- pooling, BN, misc

def test_pooling_layers():
    x = rnd(2, 5, 5, 3)
    mp = L.MaxPooling2D(2)
    np.testing.assert_array_equal(mp(x), x[:, :4, :4].reshape(2, 2, 2, 2, 2, 3).max(axis=(2, 4)))
    ap = L.AveragePooling2D(2, strides=1, padding="same")
    assert ap(x).shape == (2, 5, 5, 3)
    np.testing.assert_allclose(ap(x)[:, -1, -1], x[:, -1, -1], rtol=1e-6)  # corner: 1 valid cell
    gap = L.GlobalAveragePooling2D()
    np.testing.assert_allclose(gap(x), x.mean(axis=(1, 2)), rtol=1e-5)
    for layer in (L.MaxPooling2D(2), L.AveragePooling2D(3, strides=2, padding="same"),
                  L.GlobalAveragePooling2D()):
        check_backward(layer, rnd(1, 5, 5, 2))


def test_qaverage_pooling_quantizes_the_factor():
    x = rnd(1, 4, 4, 2)
    q = L.QAveragePooling2D(2, average_quantizer="quantized_bits(4,0,1,alpha=1)")
    # A = 4, Q(1/4) = 0.25 exactly -> plain average
    np.testing.assert_allclose(q(x), L.AveragePooling2D(2)(x), rtol=1e-6)
    q3 = L.QAveragePooling2D(3, strides=1, average_quantizer="quantized_bits(3,0,1,alpha=1)")
    f = Q.quantized_bits(3, 0, 1, alpha=1)(np.array([1 / 9], F32))[0]  # 0.0 or 0.25
    np.testing.assert_allclose(q3(x), L.AveragePooling2D(3, strides=1)(x * 9) * f, rtol=1e-5, atol=1e-6)
    g = L.QGlobalAveragePooling2D(average_quantizer="quantized_bits(8,0,1,alpha=1)")
    f16 = Q.quantized_bits(8, 0, 1, alpha=1)(np.array([1 / 16], F32))[0]
    np.testing.assert_allclose(g(x), x.sum(axis=(1, 2)) * f16, rtol=1e-5)


def test_batchnorm_training_inference_and_moving_stats():
    bn = L.BatchNormalization(momentum=0.9, epsilon=1e-3)
    x = rnd(8, 3, 3, 4, scale=2.0) + 1.0
    y = bn(x, training=True)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4)
    n = 8 * 3 * 3
    np.testing.assert_allclose(bn.moving_mean.value, 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.value, 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    yi = bn(x, training=False)
    np.testing.assert_allclose(yi, (x - bn.moving_mean.value) / np.sqrt(bn.moving_variance.value + 1e-3),
                               rtol=1e-4, atol=1e-4)
    layer = L.BatchNormalization()
    layer(rnd(4, 3), training=True)
    x2 = rnd(4, 3)
    y2 = layer(x2, training=True)
    g = rnd(*y2.shape)
    layer(x2, training=True)
    dx = layer.backward(g)
    # closed form of the batch-norm input gradient
    xm = x2 - x2.mean(0)
    inv = 1 / np.sqrt(x2.var(0) + 1e-3)
    want = inv / 4 * (4 * g - g.sum(0) - xm * inv ** 2 * (g * xm).sum(0))
    np.testing.assert_allclose(dx, want, rtol=1e-3, atol=1e-4)


def test_qbatchnorm_default_quantizers_and_inference_formula():
    qbn = L.QBatchNormalization()
    assert [str(q) for q in qbn.get_quantizers()[:4]] == [
        "quantized_relu_po2(6,2048)", "quantized_po2(5)", "quantized_po2(5)",
        "quantized_relu_po2(6,quadratic_approximation=1)"]
    x = rnd(6, 4) * 3
    qbn(x, training=True)
    y = qbn(x, training=False)
    g, b, m, v = qbn.get_weights()
    qg = Q.quantized_relu_po2(6, 2048)(g)
    qv = Q.quantized_relu_po2(6, quadratic_approximation=True)(v)
    inv = qg / np.sqrt(qv + F32(1e-3))
    want = x * inv + (Q.quantized_po2(5)(b) - Q.quantized_po2(5)(m) * inv)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_shape_layers_and_merges():
    x = rnd(2, 3, 4)
    f = L.Flatten()
    assert f(x).shape == (2, 12)
    np.testing.assert_array_equal(f.backward(np.ones((2, 12), F32)), np.ones_like(x))
    r = L.Reshape((4, -1))
    assert r(x).shape == (2, 4, 3)
    with pytest.raises(ValueError, match="Reshape"):
        L.Reshape((5, -1))(x)
    a = L.Add()
    np.testing.assert_array_equal(a([x, x]), 2 * x)
    c = L.Concatenate()
    assert c([x, x[..., :1]]).shape == (2, 3, 5)
    ga, gb = c.backward(np.ones((2, 3, 5), F32))
    assert ga.shape == x.shape and gb.shape == (2, 3, 1)


def test_dropout_inverted_scaling_and_identity_at_inference():
    qnn_ext.utils.set_random_seed(3)
    d = L.Dropout(0.5)
    x = np.ones((200, 50), F32)
    np.testing.assert_array_equal(d(x), x)
    y = d(x, training=True)
    assert set(np.unique(y)) <= {0.0, 2.0} and abs(float((y == 0).mean()) - 0.5) < 0.03
    np.testing.assert_array_equal(d.backward(np.ones_like(x)), y)


def test_activation_layers():
    # Keras: no activation means the "linear" activation object (QKeras's conversion tests rely on it)
    assert L.Conv2D(32, (3, 3)).activation.__name__ == "linear"
    assert L.QDense(3).activation.__name__ == "linear"
    x = rnd(3, 5)
    np.testing.assert_allclose(L.Activation("relu")(x), np.maximum(x, 0))
    np.testing.assert_allclose(L.LeakyReLU(0.2)(x), np.where(x > 0, x, 0.2 * x), rtol=1e-6)
    np.testing.assert_allclose(L.ReLU(max_value=0.5)(x), np.clip(x, 0, 0.5))
    s = L.Softmax()(x)
    np.testing.assert_allclose(s.sum(-1), 1, rtol=1e-6)
    qa = L.QActivation("quantized_relu(3)")
    np.testing.assert_array_equal(qa(x), Q.quantized_relu(3)(x))
    np.testing.assert_array_equal(qa.backward(np.ones_like(x)), Q.quantized_relu(3).gradient(x, np.ones_like(x)))
    for layer in (L.Activation("tanh"), L.Activation("sigmoid"), L.Softmax(), L.LeakyReLU(0.1)):
        check_backward(layer, rnd(2, 4))


# ---------------------------------------------------------------- errors

def test_bad_inputs_name_layer_and_argument():
    layer = L.QConv2D(4, 3, name="conv1")
    with pytest.raises(ValueError, match=r"conv1.*4 dims"):
        layer(np.zeros((28, 28), F32))
    layer(np.zeros((1, 8, 8, 3), F32))
    with pytest.raises(ValueError, match=r"conv1.*shape"):
        layer(np.zeros((1, 8, 8, 2), F32))
    with pytest.raises(ValueError, match="channels_last"):
        L.Conv2D(4, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="units"):
        L.Dense(0)
    d = L.Dense(3, name="dd")
    d(np.zeros((2, 4), F32))
    with pytest.raises(ValueError, match=r"dd.*set_weights expects 2"):
        d.set_weights([np.zeros((4, 3))])
    with pytest.raises(ValueError, match=r"dd.*shape \(4, 3\)"):
        d.set_weights([np.zeros((3, 3)), np.zeros(3)])
    with pytest.raises(TypeError, match="numeric"):
        d(np.array([["a"] * 4]))
    with pytest.raises(ValueError, match="unknown"):
        L.Dense(3, activation="not_an_activation")


def test_global_max_pooling_and_backward():
    x = rnd(2, 4, 3, 5)
    gm = L.GlobalMaxPooling2D()
    np.testing.assert_array_equal(gm(x), x.max(axis=(1, 2)))
    check_backward(L.GlobalMaxPooling2D(), rnd(1, 3, 3, 2))


def test_qbatchnorm_training_forward_uses_quantized_batch_moments():
    qbn = L.QBatchNormalization(momentum=0.5)
    x = rnd(16, 5) * 2 + 0.5
    y = qbn(x, training=True)
    g, b, m, v = qbn.get_weights()
    mean, var = x.mean(0).astype(F32), x.var(0).astype(F32)
    qm, qv = Q.quantized_po2(5)(mean), Q.quantized_relu_po2(6, quadratic_approximation=True)(var)
    inv = Q.quantized_relu_po2(6, 2048)(g) / np.sqrt(qv + F32(1e-3))
    np.testing.assert_allclose(y, x * inv + (Q.quantized_po2(5)(b) - qm * inv), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m, 0.5 * mean, rtol=1e-5)  # moving stats stay float
    np.testing.assert_allclose(v, 0.5 + 0.5 * var * 16 / 15, rtol=1e-5)


def test_qdepthwise_uses_quantized_kernel():
    kq = Q.quantized_bits(4, 0, 1, alpha=1)
    layer = L.QDepthwiseConv2D(3, depthwise_quantizer=kq, bias_quantizer=kq, padding="same")
    x = rnd(1, 5, 5, 2)
    y = layer(x)
    k, b = layer.get_weights()
    ref = conv2d_ref(x, kq(k).reshape(3, 3, 1, 2), (1, 1), (1, 1, 1, 1), groups=2) + kq(b)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert [str(q) for q in layer.get_quantizers()] == ["quantized_bits(4,0,1,alpha=1)"] * 2
