"""QAdaptiveActivation: ports of QKeras's qadaptiveactivation_test (integer bits from the EMAs,
unquantized output before quantization_delay, EMA with freezing and step estimation), the STE
gradient, file round trip, and model_quantize's QAdaptiveActivation rules."""
import itertools

import numpy as np
import pytest

from qnn_ext import Activation, Dense, Input, Model, QAdaptiveActivation, Sequential
from qnn_ext.quantizers import _get_integer_bits, quantized_bits, quantized_relu
from qnn_ext.utils import load_qmodel, model_quantize
from qnn_ext.variables import Variable

F32 = np.float32


def reference(kind, bits, symmetric, slope, integer, x, per_channel):
    """The quantizer QKeras's layer would hold, applied with each channel's integer bits."""
    def make(i):
        if kind == "quantized_relu":
            return quantized_relu(bits, int(i), negative_slope=slope, is_quantized_clip=False)
        return quantized_bits(bits, int(i), symmetric, keep_negative=True, alpha=1.0)
    integer = np.asarray(integer).reshape(-1)
    if not per_channel:
        return make(integer[0])(x)
    return np.stack([make(integer[c])(np.ascontiguousarray(x[..., c]))
                     for c in range(x.shape[-1])], axis=-1)


def run_case(x, kind, bits, symmetric, per_channel, po2_rounding, slope):
    step = Variable(np.zeros(1), "step", trainable=False)
    layer = QAdaptiveActivation(kind, bits, current_step=step, symmetric=symmetric,
                                quantization_delay=1, ema_freeze_delay=None, ema_decay=0.0,
                                per_channel=per_channel, po2_rounding=po2_rounding,
                                relu_neg_slope=slope)
    model = Sequential([layer])
    keep_negative = slope != 0.0 if kind == "quantized_relu" else True
    # untrained EMAs (zeros)
    i0 = _get_integer_bits(np.zeros(1), np.zeros(1), bits, symmetric, keep_negative, po2_rounding)
    qout = model(x, training=False)
    np.testing.assert_allclose(qout, reference(kind, bits, symmetric, slope,
                                               np.repeat(i0, x.shape[-1]) if per_channel else i0,
                                               x, per_channel))
    assert not layer.ema_min.value.any() and not layer.ema_max.value.any()
    # step 0 < quantization_delay: the activation is not quantized, the EMAs train (decay 0)
    out = model(x, training=True)
    assert layer.current_step == 0
    np.testing.assert_allclose(out, np.maximum(x, 0) if kind == "quantized_relu" else x)
    axes = (0, 1, 2) if per_channel else None
    np.testing.assert_allclose(layer.ema_min.value, np.min(x, axis=axes).reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(layer.ema_max.value, np.max(x, axis=axes).reshape(-1), rtol=1e-6)
    want_bits = _get_integer_bits(layer.ema_min.value, layer.ema_max.value, bits, symmetric,
                                  keep_negative, po2_rounding)
    np.testing.assert_array_equal(layer.integer_bits, np.asarray(want_bits).reshape(-1))
    # from quantization_delay on: quantized with the EMA's integer bits, training or not
    step.value[...] = 1
    want = reference(kind, bits, symmetric, slope, layer.integer_bits, x, per_channel)
    np.testing.assert_allclose(model(x, training=True), want)
    np.testing.assert_allclose(model(x, training=False), want)


def test_qkeras_qadaptiveactivation_cases():
    """QKeras's test_qadaptiveactivation grid (relu_neg_slope -0.5 there is not a valid
    quantized_relu slope here; 0.5 is used instead)."""
    rng = np.random.default_rng(0)
    options = dict(kind=["quantized_bits", "quantized_relu"], bits=[1, 2, 4, 8, 16],
                   symmetric=[True, False], per_channel=[True, False],
                   po2_rounding=[True, False], slope=[0.0, 0.5])
    for args in itertools.product(*options.values()):
        kw = dict(zip(options, args))
        if kw["kind"] == "quantized_bits" and kw["slope"]:
            continue  # the slope only exists for relu
        for shape in [(1, 6, 6, 3), (1, 3, 4, 5)]:
            for scale in [255, 1]:
                run_case((rng.random(shape) * scale).astype(F32), **kw)


@pytest.mark.parametrize("momentum,ema_freeze_delay,total_steps,estimate",
                         [(0.9, 50, 100, False), (0.1, 2, 100, False), (0.999, 98, 100, False),
                          (0.9, 50, 100, True), (0.1, 2, 100, True), (0.999, 98, 100, True),
                          (0.5, 1000, 1500, True)])
def test_qkeras_qadaptiveact_ema(momentum, ema_freeze_delay, total_steps, estimate):
    rng = np.random.default_rng(int(momentum * 1000) + total_steps)
    step = None if estimate else Variable(np.zeros(1), "step", trainable=False)
    layer = QAdaptiveActivation("quantized_bits", 8, current_step=step,
                                quantization_delay=total_steps * 2,
                                ema_freeze_delay=ema_freeze_delay, ema_decay=momentum,
                                per_channel=True, po2_rounding=False)
    model = Sequential([layer])
    exp_max = exp_min = F32(0.0)
    m = F32(momentum)
    for i in range(total_steps):
        vals = (rng.random((1, 2, 1)) * i).astype(F32)
        model(vals, training=True)
        assert layer.current_step == i
        if i <= ema_freeze_delay:
            exp_max = exp_max * m + vals.max() * (F32(1) - m)
            exp_min = exp_min * m + vals.min() * (F32(1) - m)
        assert abs(exp_max - layer.ema_max.value[0]) <= 1e-4 * max(1.0, abs(float(exp_max)))
        want = _get_integer_bits(np.array([exp_min]), np.array([exp_max]), 8, True, True, False)
        np.testing.assert_array_equal(layer.integer_bits, np.asarray(want).reshape(-1))
        if not estimate:
            step.value[...] += 1


def test_int_current_step_is_fixed_and_inference_never_counts():
    layer = QAdaptiveActivation("quantized_relu", 4, current_step=5, quantization_delay=3,
                                ema_decay=0.5)
    x = np.linspace(-1, 3, 12, dtype=F32).reshape(3, 4)
    layer(x, training=True)
    layer(x, training=True)
    assert layer.current_step == 5  # QKeras: an int start is not advanced
    counting = QAdaptiveActivation("quantized_relu", 4)
    counting(x)
    counting(x)
    assert counting.current_step == -1
    counting(x, training=True)
    assert counting.current_step == 0
    before = counting.ema_max.value.copy()
    counting(x * 10)  # inference does not move the averages
    np.testing.assert_array_equal(counting.ema_max.value, before)


def test_gradient_is_the_quantizers_ste_at_the_forward_qnoise():
    layer = QAdaptiveActivation("quantized_relu", 4, quantization_delay=2, ema_decay=0.0)
    x = np.linspace(-2, 6, 16, dtype=F32).reshape(4, 4)
    g = np.ones_like(x)
    layer(x, training=True)                    # step 0: qnoise 0 -> plain relu
    np.testing.assert_array_equal(layer.backward(g), (x > 0).astype(F32))
    layer(x, training=True)
    layer(x, training=True)                    # step 2: quantized, integer bits from the EMA
    i = int(layer._cache[1][0])
    want = quantized_relu(4, i, is_quantized_clip=False).gradient(x, g, training=True)
    np.testing.assert_array_equal(layer.backward(g), want)


def test_saved_model_keeps_the_moving_averages(tmp_path):
    x = Input((5,))
    m = Model(x, QAdaptiveActivation("quantized_bits", 6, per_channel=True, ema_decay=0.0,
                                     name="qa")(Dense(3, name="d")(x)))
    xs = np.random.default_rng(1).standard_normal((8, 5)).astype(F32) * 4
    m(xs, training=True)
    m.save(tmp_path / "qa.zip")
    back = load_qmodel(tmp_path / "qa.zip")
    np.testing.assert_array_equal(back.get_layer("qa").ema_max.value, m.get_layer("qa").ema_max.value)
    np.testing.assert_array_equal(back.predict(xs, verbose=0), m.predict(xs, verbose=0))
    assert back.get_config() == m.get_config()


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation must be one of"):
        QAdaptiveActivation("quantized_relu(4,2)", 4)
    with pytest.raises(ValueError, match="total_bits"):
        QAdaptiveActivation("quantized_bits", 0)
    with pytest.raises(ValueError):
        QAdaptiveActivation("quantized_relu", 4, relu_neg_slope=0.3)  # not a power of two


def relu_model():
    xi = Input((6,))
    x = Activation("relu", name="a1")(Dense(4, name="d")(xi))
    x = Activation("tanh", name="a2")(x)
    return Model(xi, x)


def test_model_quantize_qadaptiveactivation_rules():
    cfg = {"QActivation": {"relu": "quantized_relu(3)"}, "QAdaptiveActivation": "quantized_bits(6)"}
    # QActivation is looked up first; its dict does not name tanh, and QKeras does not then
    # fall back to the QAdaptiveActivation entry
    q = model_quantize(relu_model(), cfg, 4)
    assert [type(l).__name__ for l in q.layers][2:] == ["QActivation", "Activation"]
    q = model_quantize(relu_model(), cfg, 4, prefer_qadaptiveactivation=True)
    a1, a2 = q.get_layer("a1"), q.get_layer("a2")
    assert type(a1).__name__ == "QAdaptiveActivation" and a1.total_bits == 6
    assert type(a1.quantizer).__name__ == "quantized_bits"
    assert type(a2).__name__ == "QAdaptiveActivation"
    q = model_quantize(relu_model(), {"QAdaptiveActivation": {"relu": "quantized_relu(5)"}}, 4,
                       prefer_qadaptiveactivation=True)
    assert (type(q.get_layer("a1")).__name__, q.get_layer("a1").total_bits) == ("QAdaptiveActivation", 5)
    assert type(q.get_layer("a2")).__name__ == "Activation"
    with pytest.raises(ValueError, match="only the total bits"):
        model_quantize(relu_model(), {"QAdaptiveActivation": "quantized_relu(4,2)"}, 4)
