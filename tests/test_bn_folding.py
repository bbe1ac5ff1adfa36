"""QConv2DBatchnorm / QDepthwiseConv2DBatchnorm: folded weights (QKeras's bn_folding_test
numbers), forward against NumPy conv + batch norm in both folding modes, moving statistics and
ema_freeze_delay, backward by finite differences on the float path, training equivalence with a
separate conv + BatchNormalization (QKeras's test_same_training_and_prediction), config and
file round trips, and the hw dict of model_save_quantized_weights."""
import numpy as np
import pytest

from qnn_ext import (BatchNormalization, Dense, Flatten, Input, Model, QConv2D, QConv2DBatchnorm,
                     QDepthwiseConv2D, QDepthwiseConv2DBatchnorm, quantized_bits)
from qnn_ext import optimizers, utils
from qnn_ext.models import load_model
from test_layers import conv2d_ref

F32 = np.float32
RNG = np.random.default_rng(7)
EPS = 1e-3

# QKeras tests/bn_folding_test.py: weights and the folded kernel/bias it expects
KERNEL = np.array([[[[1., 1.]], [[1., 0.]]], [[[1., 1.]], [[0., 1.]]]], F32)
GAMMA, BETA = np.array([2., 1.], F32), np.array([0., 1.], F32)
MMEAN, MVAR = np.array([1., 1.], F32), np.array([1., 2.], F32)
FOLDED_KERNEL = np.array([[[[1.99900079, 0.706930101]], [[1.99900079, 0]]],
                          [[[1.99900079, 0.706930101]], [[0, 0.706930101]]]])
FOLDED_BIAS = np.array([-1.99900079, 0.293069899])


def rnd(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(F32)


def qkeras_conv(folding_mode="ema_stats_folding", ema_freeze_delay=None, **kw):
    return QConv2DBatchnorm(filters=2, kernel_size=(2, 2), strides=(4, 4),
                            kernel_initializer="ones", bias_initializer="zeros", use_bias=False,
                            folding_mode=folding_mode, ema_freeze_delay=ema_freeze_delay,
                            name="foldconv2d", **kw)


def set_qkeras_weights(layer, iteration=-1):
    layer.set_weights([KERNEL, GAMMA, BETA, np.array([iteration], F32), MMEAN, MVAR])


def dw_ref(x, w, strides, pads):
    """Depthwise convolution as a grouped one: kernel (kh, kw, C, dm) -> (kh, kw, 1, C*dm)."""
    kh, kw, c, dm = w.shape
    return conv2d_ref(x, w.reshape(kh, kw, 1, c * dm), strides, pads, groups=c)


# ---------------------------------------------------------------- folded weights (QKeras numbers)
@pytest.mark.parametrize("mode", ["ema_stats_folding", "batch_stats_folding"])
def test_folded_weights_qkeras_numbers(mode):
    layer = qkeras_conv(mode, ema_freeze_delay=10)
    layer(np.zeros((1, 2, 2, 1), F32))
    set_qkeras_weights(layer)
    k, b = layer.get_folded_weights()
    np.testing.assert_allclose(k, FOLDED_KERNEL, rtol=1e-6)
    np.testing.assert_allclose(b, FOLDED_BIAS, rtol=1e-6)
    x = rnd(3, 2, 2, 1)
    # inference: conv with the folded weights == conv then batch norm with the moving stats
    want = conv2d_ref(x, FOLDED_KERNEL, (4, 4), (0, 0, 0, 0)) + FOLDED_BIAS
    np.testing.assert_allclose(layer(x), want, rtol=1e-5, atol=1e-6)
    z = conv2d_ref(x, KERNEL, (4, 4), (0, 0, 0, 0))
    np.testing.assert_allclose(layer(x), GAMMA * (z - MMEAN) / np.sqrt(MVAR + EPS) + BETA,
                               rtol=1e-5, atol=1e-5)


def test_depthwise_folded_weights_qkeras_numbers():
    layer = QDepthwiseConv2DBatchnorm(kernel_size=(2, 2), strides=(2, 2), depth_multiplier=1,
                                      depthwise_initializer="ones", use_bias=False,
                                      ema_freeze_delay=10, name="fold_dw")
    layer(np.zeros((1, 4, 4, 1), F32))
    layer.set_weights([np.array([[[[1.]], [[0.]]], [[[0.]], [[1.]]]], F32), np.array([2.], F32),
                       np.array([0.], F32), np.array([2.], F32), np.array([4.], F32),
                       np.array([2.], F32)])
    k, b = layer.get_folded_weights()
    np.testing.assert_allclose(k, np.array([[[[1.4138602]], [[0.]]], [[[0.]], [[1.4138602]]]]),
                               rtol=1e-6)
    np.testing.assert_allclose(b, [-5.655441], rtol=1e-6)


# ---------------------------------------------------------------- forward in training
def batch_norm_ref(z, gamma, beta):
    mean = z.mean(axis=(0, 1, 2))
    var = z.var(axis=(0, 1, 2))
    return gamma * (z - mean) / np.sqrt(var + EPS) + beta, mean, var


@pytest.mark.parametrize("mode", ["ema_stats_folding", "batch_stats_folding"])
def test_training_forward_equals_conv_then_batch_norm(mode, isa):
    """Without quantizers both modes give conv + batch norm on the batch moments while the
    statistics are not frozen (ema: kernel folded with the moving stats, output corrected)."""
    layer = QConv2DBatchnorm(4, 3, padding="same", folding_mode=mode, name="c")
    x = rnd(5, 6, 6, 3)
    layer(x)
    k, b = rnd(3, 3, 3, 4, scale=0.3), rnd(4)
    gamma, beta = rnd(4, scale=0.3) + 1, rnd(4)
    mm, mv = rnd(4), np.abs(rnd(4)) + 0.5
    layer.set_weights([k, b, gamma, beta, np.array([-1], F32), mm, mv])
    y = layer(x, training=True)
    z = conv2d_ref(x, k, (1, 1), (1, 1, 1, 1)) + b
    want, mean, var = batch_norm_ref(z, gamma, beta)
    np.testing.assert_allclose(y, want, rtol=2e-4, atol=2e-4)
    # moving statistics: Keras's update with the Bessel-corrected variance (fused BN)
    n = z.size // 4
    np.testing.assert_allclose(layer.moving_mean.value, 0.99 * mm + 0.01 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.value, 0.99 * mv + 0.01 * var * n / (n - 1),
                               rtol=1e-5)
    assert layer.iteration.value[0] == 0


def test_batch_stats_mode_quantizes_kernel_folded_with_batch_moments():
    kq = quantized_bits(4, 1, 1, alpha=1)
    bq = quantized_bits(8, 3, 1, alpha=1)
    x = rnd(4, 5, 5, 2)
    for mode in ("batch_stats_folding", "ema_stats_folding"):
        layer = QConv2DBatchnorm(3, 2, kernel_quantizer=kq, bias_quantizer=bq, folding_mode=mode,
                                 momentum=0.5, name="c")
        layer(x)
        k, b = rnd(2, 2, 2, 3, scale=0.5), rnd(3, scale=0.2)
        gamma, beta, mm, mv = rnd(3) * 0.2 + 1, rnd(3), rnd(3), np.abs(rnd(3)) + 0.5
        layer.set_weights([k, b, gamma, beta, np.array([-1], F32), mm, mv])
        y = layer(x, training=True)
        z = conv2d_ref(x, k, (1, 1), (0, 0, 0, 0)) + b
        mean, var = z.mean(axis=(0, 1, 2)), z.var(axis=(0, 1, 2))
        n = z.size // 3
        mv_new = 0.5 * mv + 0.5 * var * n / (n - 1)
        rv = 1 / np.sqrt(var + EPS)
        fb = gamma * rv * (b - mean) + beta
        if mode == "batch_stats_folding":
            kf, corr = k * gamma * rv, 1.0
        else:
            kf, corr = k * gamma / np.sqrt(mv_new + EPS), np.sqrt(mv_new + EPS) * rv
        want = conv2d_ref(x, kq(kf.astype(F32)), (1, 1), (0, 0, 0, 0)) * corr + bq(fb.astype(F32))
        np.testing.assert_allclose(y, want, rtol=2e-4, atol=2e-4)


def test_depthwise_training_forward_equals_depthwise_then_batch_norm(isa):
    layer = QDepthwiseConv2DBatchnorm(3, strides=2, depth_multiplier=2, padding="same", name="d")
    x = rnd(3, 7, 7, 3)
    layer(x)
    k, b = rnd(3, 3, 3, 2, scale=0.4), rnd(6)
    gamma, beta, mm, mv = rnd(6) * 0.3 + 1, rnd(6), rnd(6), np.abs(rnd(6)) + 0.3
    layer.set_weights([k, b, gamma, beta, np.array([-1], F32), mm, mv])
    pads = layer._conv._pads((7, 7))
    z = dw_ref(x, k, (2, 2), pads) + b
    want, _, _ = batch_norm_ref(z, gamma, beta)
    np.testing.assert_allclose(layer(x, training=True), want, rtol=2e-4, atol=2e-4)
    # inference with the (updated) moving stats == get_folded_weights
    fk, fb = layer.get_folded_weights()
    np.testing.assert_allclose(layer(x), dw_ref(x, fk, (2, 2), pads) + fb, rtol=1e-5, atol=1e-5)


def test_ema_freeze_delay_freezes_statistics():
    layer = QConv2DBatchnorm(2, 1, ema_freeze_delay=1, momentum=0.5, name="c")
    x = rnd(4, 3, 3, 2)
    layer(x)
    seen = []
    for _ in range(5):
        layer(x + rnd(4, 3, 3, 2), training=True)
        seen.append((layer.iteration.value[0], layer.moving_mean.value.copy()))
    assert [s[0] for s in seen] == [0, 1, 2, 3, 4]
    # updates while iteration (before the call) <= 1: calls at -1, 0, 1; then frozen
    assert not np.allclose(seen[1][1], seen[2][1])
    np.testing.assert_array_equal(seen[2][1], seen[3][1])
    np.testing.assert_array_equal(seen[3][1], seen[4][1])
    # frozen: training output uses the moving statistics (no batch correction)
    fk, fb = layer.get_folded_weights()
    np.testing.assert_allclose(layer(x, training=True), conv2d_ref(x, fk, (1, 1), (0,) * 4) + fb,
                               rtol=1e-5, atol=1e-5)
    # inference never counts
    layer(x)
    assert layer.iteration.value[0] == 5


# ---------------------------------------------------------------- backward (float path)
def directional_check(layer, x, training, rtol=2e-2):
    """<analytic grad, v> against central differences along a random direction v for the input
    and every trainable weight (momentum=1 keeps the moving statistics constant)."""
    state = layer.get_weights()
    g = RNG.standard_normal(layer(x, training=training).shape)
    layer.set_weights(state)
    layer(x, training=training)
    dx = layer.backward(g.astype(F32))
    grads = list(layer.grads)

    def f(xx, ws):
        layer.set_weights(ws)
        return float((layer(xx.astype(F32), training=training).astype(np.float64) * g).sum())

    h = 1e-2
    v = RNG.standard_normal(x.shape)
    num = (f(x + h * v, state) - f(x - h * v, state)) / (2 * h)
    np.testing.assert_allclose((dx * v).sum(), num, rtol=rtol, atol=1e-3)
    tw = [i for i, w in enumerate(layer.weights) if w.trainable]
    assert len(grads) == len(tw)
    for gi, i in zip(grads, tw):
        v = RNG.standard_normal(state[i].shape)
        plus = [w.copy() for w in state]
        minus = [w.copy() for w in state]
        plus[i] = plus[i] + h * v
        minus[i] = minus[i] - h * v
        num = (f(x, plus) - f(x, minus)) / (2 * h)
        np.testing.assert_allclose((gi * v).sum(), num, rtol=rtol, atol=1e-3,
                                   err_msg=layer.weights[i].name)
    layer.set_weights(state)


@pytest.mark.parametrize("mode", ["ema_stats_folding", "batch_stats_folding"])
@pytest.mark.parametrize("training", [True, False])
def test_conv_backward_finite_differences(mode, training):
    layer = QConv2DBatchnorm(3, 3, strides=2, padding="same", folding_mode=mode, momentum=1.0,
                             activation="tanh", name="c")
    x = rnd(3, 6, 6, 2).astype(np.float64)
    layer(x.astype(F32))
    k, b = rnd(3, 3, 2, 3, scale=0.4), rnd(3, scale=0.3)
    layer.set_weights([k, b, rnd(3) * 0.2 + 1, rnd(3) * 0.3, np.array([-1], F32), rnd(3) * 0.2,
                       np.abs(rnd(3)) + 0.5])
    directional_check(layer, x, training)


@pytest.mark.parametrize("mode", ["ema_stats_folding", "batch_stats_folding"])
def test_depthwise_backward_finite_differences(mode):
    layer = QDepthwiseConv2DBatchnorm(2, depth_multiplier=2, folding_mode=mode, momentum=1.0,
                                      use_bias=False, name="d")
    x = rnd(3, 5, 5, 2).astype(np.float64)
    layer(x.astype(F32))
    layer.set_weights([rnd(2, 2, 2, 2, scale=0.5), rnd(4) * 0.2 + 1, rnd(4) * 0.3,
                       np.array([-1], F32), rnd(4) * 0.2, np.abs(rnd(4)) + 0.5])
    directional_check(layer, x, True)


# ---------------------------------------------------------------- training equivalence
def two_models(mode, depthwise=False):
    shape = (4, 4, 1) if depthwise else (2, 2, 1)
    x = Input(shape)
    if depthwise:
        y = QDepthwiseConv2D((2, 2), strides=(2, 2), depthwise_initializer="ones", use_bias=False,
                             name="conv")(x)
    else:
        y = QConv2D(2, (2, 2), strides=(4, 4), kernel_initializer="ones", use_bias=False,
                    name="conv")(x)
    y = BatchNormalization(name="bn")(y)
    unfold = Model(x, Dense(2, use_bias=False, kernel_initializer="ones", name="dense")(Flatten()(y)))
    x = Input(shape)
    if depthwise:
        y = QDepthwiseConv2DBatchnorm((2, 2), strides=(2, 2), depthwise_initializer="ones",
                                      use_bias=False, folding_mode=mode, ema_freeze_delay=10,
                                      name="fold")(x)
    else:
        y = QConv2DBatchnorm(2, (2, 2), strides=(4, 4), kernel_initializer="ones",
                             use_bias=False, folding_mode=mode, ema_freeze_delay=10,
                             name="fold")(x)
    fold = Model(x, Dense(2, use_bias=False, kernel_initializer="ones", name="dense")(Flatten()(y)))
    for m in (unfold, fold):
        m.compile(optimizers.SGD(learning_rate=1e-3), "mse")
    return unfold, fold


@pytest.mark.parametrize("mode,depthwise", [("ema_stats_folding", False),
                                            ("batch_stats_folding", False),
                                            ("ema_stats_folding", True)])
def test_same_training_and_prediction_as_conv_then_bn(mode, depthwise):
    """QKeras's test_same_training_and_prediction: before the statistics freeze, the folded
    layer trains exactly like conv + BatchNormalization (same weights after 5 SGD steps)."""
    unfold, fold = two_models(mode, depthwise)
    if depthwise:
        k = np.array([[[[1.]], [[0.]]], [[[0.]], [[1.]]]], F32)
        bn = [np.array([2.], F32), np.array([0.], F32), np.array([4.], F32), np.array([2.], F32)]
        x = RNG.random((3, 4, 4, 1)).astype(F32)
        y = np.eye(2, dtype=F32)[RNG.integers(0, 2, 3)]
    else:
        k, bn = KERNEL, [GAMMA, BETA, MMEAN, MVAR]
        x = RNG.random((10, 2, 2, 1)).astype(F32)
        y = np.eye(2, dtype=F32)[RNG.integers(0, 2, 10)]
    unfold.get_layer("conv").set_weights([k])
    unfold.get_layer("bn").set_weights(bn)
    fold.get_layer("fold").set_weights([k, bn[0], bn[1], np.array([-1], F32), bn[2], bn[3]])
    np.testing.assert_allclose(unfold.predict(x, verbose=0), fold.predict(x, verbose=0), rtol=1e-4)
    for _ in range(5):
        unfold.train_on_batch(x, y)
        fold.train_on_batch(x, y)
    fw = fold.get_layer("fold").get_weights()
    np.testing.assert_allclose(fw[0], unfold.get_layer("conv").get_weights()[0], rtol=1e-4, atol=1e-6)
    ub = unfold.get_layer("bn").get_weights()
    for got, want in zip(fw[1:3] + fw[4:], ub):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(unfold.predict(x, verbose=0), fold.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-6)


def test_after_freeze_both_modes_agree_and_differ_from_unfolded():
    unfold, fold_b = two_models("batch_stats_folding")
    _, fold_e = two_models("ema_stats_folding")
    x = RNG.random((10, 2, 2, 1)).astype(F32)
    y = np.eye(2, dtype=F32)[RNG.integers(0, 2, 10)]
    unfold.get_layer("conv").set_weights([KERNEL])
    unfold.get_layer("bn").set_weights([GAMMA, BETA, MMEAN, MVAR])
    for m in (fold_b, fold_e):
        set_qkeras_weights(m.get_layer("fold"), iteration=8)
    for _ in range(5):
        for m in (unfold, fold_b, fold_e):
            m.train_on_batch(x, y)
    pu, pb, pe = (m(x, training=True) for m in (unfold, fold_b, fold_e))
    np.testing.assert_allclose(pb, pe, rtol=1e-4, atol=1e-6)
    assert not np.allclose(pu, pb, rtol=1e-4)


# ---------------------------------------------------------------- config, files, hw weights
def test_config_round_trip_and_file_round_trip(tmp_path):
    x = Input((6, 6, 2))
    y = QConv2DBatchnorm(3, 3, kernel_quantizer="quantized_bits(4,0,1)",
                         bias_quantizer="quantized_bits(8,3,1)", folding_mode="batch_stats_folding",
                         ema_freeze_delay=5, name="c")(x)
    y = QDepthwiseConv2DBatchnorm(2, depthwise_quantizer=quantized_bits(4, 0, 1, alpha=1),
                                  name="d")(y)
    m = Model(x, y)
    xs = rnd(4, 6, 6, 2)
    m.compile(optimizers.SGD(1e-2), "mse")
    m.train_on_batch(xs, rnd(4, 3, 3, 3))
    for layer in m.layers[1:]:
        cfg = layer.get_config()
        assert type(layer).from_config(cfg).get_config() == cfg
    cfg = m.get_layer("c").get_config()
    assert cfg["folding_mode"] == "batch_stats_folding" and cfg["ema_freeze_delay"] == 5
    assert cfg["momentum"] == 0.99 and cfg["gamma_initializer"] == "ones"
    path = tmp_path / "m.zip"
    m.save(path)
    m2 = load_model(path)
    np.testing.assert_array_equal(m2.predict(xs, verbose=0), m.predict(xs, verbose=0))
    assert m2.get_layer("c").iteration.value[0] == 0
    assert m2.get_config() == m.get_config()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="folding_mode"):
        QConv2DBatchnorm(2, 2, folding_mode="fold_it")
    with pytest.raises(ValueError, match="renorm"):
        QDepthwiseConv2DBatchnorm(2, renorm=True)
    with pytest.raises(ValueError, match="ema_freeze_delay"):
        QConv2DBatchnorm(2, 2, ema_freeze_delay="10")


def test_model_save_quantized_weights_uses_folded_weights(capsys):
    x = Input((4, 4, 2))
    layer = QConv2DBatchnorm(2, 2, kernel_quantizer=quantized_bits(4, 0, 1, alpha=1),
                             bias_quantizer=quantized_bits(8, 3, 1), name="c")
    m = Model(x, layer(x))
    k, b = rnd(2, 2, 2, 2, scale=0.3), rnd(2, scale=0.2)
    layer.set_weights([k, b, np.array([0.5, 2.], F32), np.array([0.25, -1.], F32),
                       np.array([-1], F32), np.array([0.5, -0.5], F32), np.array([1., 3.], F32)])
    before = layer.get_weights()
    fk, fb = layer.get_folded_weights()
    out = utils.model_save_quantized_weights(m)
    assert "conv and batchnorm weights cannot be seperately quantized" in capsys.readouterr().out
    hw = out["c"]["weights"]
    np.testing.assert_array_equal(hw[0], quantized_bits(4, 0, 1, alpha=1)(fk))
    np.testing.assert_array_equal(hw[1], quantized_bits(8, 3, 1)(fb))
    assert out["c"]["enable_bn_fusing"] is False
    # folded layers keep their float weights
    for w0, w1 in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(w0, w1)


# ---------------------------------------------------------------- unfolding
def test_qkeras_convert_folded_model_to_normal():
    """Port of QKeras bn_folding_test.test_convert_folded_model_to_normal (an Add stands in for
    its Maximum): the unfolded QConv2D holds the folded quantized weights, for a sequential and
    a branching model, and predicts what the folded model predicts at inference."""
    from qnn_ext import Add, Conv2D
    from qnn_ext.utils import convert_folded_model_to_normal

    def seq_model():
        x = Input((2, 2, 1), name="input")
        layer = qkeras_conv("batch_stats_folding", ema_freeze_delay=10)
        m = Model(x, layer(x))
        set_qkeras_weights(layer)
        return m

    def branching_model():
        x = Input((2, 2, 1), name="input")
        x1 = Conv2D(1, (1, 1), name="conv2d_1")(x)
        x2 = Conv2D(1, (1, 1), name="conv2d_2")(x)
        layer = qkeras_conv("batch_stats_folding", ema_freeze_delay=10)
        y = layer(Add(name="add")([x1, x2]))
        m = Model(x, [y, Dense(2, use_bias=False, kernel_initializer="ones", name="dense")(
            Flatten(name="flatten")(y))])
        set_qkeras_weights(layer)
        return m

    xs = rnd(4, 2, 2, 1)
    for m in (branching_model(), seq_model()):
        normal = convert_folded_model_to_normal(m)
        fold = m.get_layer("foldconv2d")
        conv = normal.get_layer("foldconv2d")
        assert type(conv).__name__ == "QConv2D" and conv.use_bias
        w1, w2 = fold.get_folded_quantized_weight(), conv.get_weights()
        np.testing.assert_array_equal(w1[0], w2[0])
        np.testing.assert_array_equal(w1[1], w2[1])
        np.testing.assert_allclose(w2[0], FOLDED_KERNEL, rtol=1e-6)
        np.testing.assert_allclose(w2[1], FOLDED_BIAS, rtol=1e-6)
        for a, b in zip(*(mm.predict(xs, verbose=0) for mm in (m, normal))):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_unfolded_depthwise_with_quantizers_predicts_the_same():
    from qnn_ext.utils import unfold_model
    x = Input((5, 5, 2))
    layer = QDepthwiseConv2DBatchnorm(2, depth_multiplier=2, name="d",
                                      depthwise_quantizer=quantized_bits(6, 2, 1, alpha=1),
                                      bias_quantizer=quantized_bits(8, 3, 1))
    m = Model(x, layer(x))
    layer.set_weights([rnd(2, 2, 2, 2), rnd(4), rnd(4) * 0.2 + 1, rnd(4), np.array([-1], F32),
                       rnd(4), np.abs(rnd(4)) + 0.5])
    normal = unfold_model(m)
    assert type(normal.get_layer("d")).__name__ == "QDepthwiseConv2D"
    xs = rnd(3, 5, 5, 2)
    # quantized_bits with a fixed alpha is idempotent, so re-quantizing changes nothing
    np.testing.assert_allclose(normal.predict(xs, verbose=0), m.predict(xs, verbose=0),
                               rtol=1e-6, atol=1e-6)
