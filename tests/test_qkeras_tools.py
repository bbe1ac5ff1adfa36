"""analyze_accumulator(_from_sample), quantized_model_debug, clone_model_and_freeze_auto_po2_scale
and export_hls4ml_config."""
import json
import math
import os
import re

import numpy as np
import pytest

from qnn_ext import (Dense, Flatten, Input, Model, QActivation, QConv2D, QConv2DBatchnorm, QDense,
                     QDepthwiseConv2D, binary, quantized_bits, quantized_po2, quantized_relu,
                     quantized_tanh, ternary)
from qnn_ext.utils import (analyze_accumulator, analyze_accumulator_from_sample,
                           clone_model_and_freeze_auto_po2_scale, export_hls4ml_config,
                           quantized_model_debug)
from qnn_ext.hls4ml_export import quantizer_precision
from qnn_ext.utils import load_qmodel, set_random_seed

F32 = np.float32
RNG = np.random.default_rng(11)


def rnd(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(F32)


# ---------------------------------------------------------------- accumulators
def acc_bits_ref(k2d, b, x_min, x_max):
    """Largest |accumulator| over inputs in [x_min, x_max], by choosing each input at an end."""
    worst = 0.0
    for i in range(k2d.shape[1]):
        w = k2d[:, i].astype(np.float64)
        hi = np.where(w > 0, w * x_max, w * x_min).sum() + b[i]
        lo = np.where(w > 0, w * x_min, w * x_max).sum() + b[i]
        worst = max(worst, hi, -lo)
    return math.ceil(math.log2(worst))


def test_analyze_accumulator_dense_numbers():
    x = Input((2,))
    d = QDense(2, kernel_quantizer=quantized_bits(4, 2, 1, alpha=1), name="d")
    m = Model(x, d(x))
    d.set_weights([np.array([[1, -2], [0.5, 3]], F32), np.array([0.25, -1], F32)])
    # channel 1: positives 3, negatives -2 + -1: 3*2 + (-3)*(-1) = 9 -> 4 bits
    assert analyze_accumulator(m, {"d": (-1.0, 2.0)}) == {"d": 4}
    assert analyze_accumulator(m, {"d": (0.0, 1.0)}) == {"d": 2}   # max(1.75, 3) -> 2
    with pytest.raises(ValueError, match="no input range"):
        analyze_accumulator(m, {})


def test_analyze_accumulator_every_output_channel_of_convs(capsys):
    x = Input((6, 6, 3))
    c = QConv2D(5, 3, kernel_quantizer=quantized_bits(4, 0, 1), name="c")
    y = c(x)
    dw = QDepthwiseConv2D(2, depth_multiplier=2, depthwise_quantizer=quantized_bits(4, 0, 1),
                          use_bias=False, name="dw")
    m = Model(x, dw(y))
    k = rnd(3, 3, 3, 5, scale=0.2)
    k[..., 4] *= 40  # only the last output channel needs many bits (QKeras's loop misses it)
    c.set_weights([k, rnd(5)])
    dk = rnd(2, 2, 5, 2)
    dw.set_weights([dk])
    got = analyze_accumulator(m, {"c": (0.0, 1.0), "dw": (-3.0, 3.0)}, verbose=True)
    assert got["c"] == acc_bits_ref(k.reshape(-1, 5), c.get_weights()[1], 0.0, 1.0)
    assert got["dw"] == acc_bits_ref(dk.reshape(4, 10), np.zeros(10), -3.0, 3.0)
    assert "c - input range: (0.0, 1.0)" in capsys.readouterr().out


def test_analyze_accumulator_from_sample_modes():
    x = Input((4, 4, 2))
    c = QConv2D(3, 2, kernel_quantizer=quantized_bits(4, 0, 1), name="c")
    y = QActivation("quantized_relu(4,2)", name="a")(c(x))
    d = QDense(2, kernel_quantizer=quantized_bits(4, 0, 1), name="d")
    m = Model(x, d(Flatten()(y)))
    xs = rnd(6, 4, 4, 2, scale=3)
    sampled = analyze_accumulator_from_sample(m, xs, mode="sampled")
    assert sampled["c"] == math.ceil(math.log2(np.abs(c(xs)).max()))
    h = Flatten()(QActivation("quantized_relu(4,2)")(c(xs)))
    assert sampled["d"] == math.ceil(math.log2(np.abs(d(h)).max()))
    cons = analyze_accumulator_from_sample(m, xs)
    want = analyze_accumulator(m, {"c": (float(xs.min()), float(xs.max())),
                                   "d": (float(h.min()), float(h.max()))})
    assert cons == want
    with pytest.raises(ValueError, match="mode"):
        analyze_accumulator_from_sample(m, xs, mode="guess")


# ---------------------------------------------------------------- quantized_model_debug
class FakePlt:
    def __init__(self):
        self.calls = []

    def hist(self, data, bins):
        self.calls.append(("hist", data.size, bins))

    def title(self, t):
        self.calls.append(("title", t))

    def show(self):
        self.calls.append(("show",))


def test_quantized_model_debug_lines(capsys):
    x = Input((3,))
    d = QDense(2, kernel_quantizer=quantized_bits(4, 0, 1, alpha=1),
               bias_quantizer=quantized_bits(4, 0, 1, alpha=1), name="d")
    a = QActivation(quantized_relu(3, 1), name="a")
    m = Model(x, Dense(1, name="float")(a(d(x))))
    d.set_weights([np.array([[0.3, -0.6], [0.1, 0.9], [-0.2, 0.45]], F32), np.array([0.2, -0.1], F32)])
    xs = np.array([[1., 0., -1.], [0.5, 0.5, 0.5]], F32)
    quantized_model_debug(m, xs)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "{:30} {: 8.4f} {: 8.4f}".format("input", -1.0, 1.0)
    y = d(xs)
    kq = quantized_bits(4, 0, 1, alpha=1)(d.get_weights()[0])
    assert lines[1] == ("{:30} {: 8.4f} {: 8.4f}".format("d", y.min(), y.max())
                        + " ({: 8.4f} {: 8.4f})".format(kq.min(), kq.max())
                        + " ({: 8.4f} {: 8.4f})".format(-0.125, 0.25))
    ya = a(y)
    assert lines[2] == "{:30} {: 8.4f} {: 8.4f}".format("a", ya.min(), ya.max())
    assert len(lines) == 3  # the float Dense is not a registered Q layer
    plt = FakePlt()
    quantized_model_debug(m, xs, plot=True, plt_instance=plt)
    assert ("title", "d(output)") in plt.calls and ("title", "d(weights)") in plt.calls
    with pytest.raises(ValueError, match="plt_instance"):
        quantized_model_debug(m, xs, plot=True)


def test_quantized_model_debug_prints_auto_po2_scales(capsys):
    x = Input((4,))
    d = QDense(3, kernel_quantizer=quantized_bits(4, 0, 1), name="d")  # auto_po2 in layers
    m = Model(x, d(x))
    m.predict(rnd(2, 4), verbose=0)
    quantized_model_debug(m, rnd(2, 4))
    line = capsys.readouterr().out.splitlines()[1]
    s = np.asarray(d.kernel_quantizer_internal.scale)
    assert line.endswith(" a({: 10.6f} {: 10.6f})".format(s.min(), s.max()))


# ---------------------------------------------------------------- auto_po2 freezing
def auto_po2_model():
    x = Input((6,))
    d = QDense(4, kernel_quantizer=quantized_bits(4, 0, 1, alpha="auto_po2"),
               bias_quantizer=quantized_bits(8, 3, 1), name="d")
    return Model(x, d(x))


def test_clone_model_and_freeze_auto_po2_scale(tmp_path):
    set_random_seed(5)
    m = auto_po2_model()
    xs = rnd(5, 6)
    y0 = m.predict(xs, verbose=0)
    scale = np.array(m.get_layer("d").kernel_quantizer_internal.scale)
    new, hw = clone_model_and_freeze_auto_po2_scale(m)
    assert hw is None
    q = new.get_layer("d").kernel_quantizer_internal
    np.testing.assert_array_equal(np.asarray(q.post_training_scale).reshape(scale.shape), scale)
    np.testing.assert_array_equal(new.predict(xs, verbose=0), y0)
    # larger weights: the live quantizer rescales, the frozen one keeps its grid and clips
    big = [w * 8 for w in m.get_weights()]
    m.set_weights(big)
    new.set_weights(big)
    live = m.get_layer("d").kernel_quantizer_internal(big[0])
    frozen = q(big[0])
    np.testing.assert_array_equal(np.asarray(q.scale).reshape(scale.shape), scale)
    assert np.abs(frozen).max() <= np.abs(quantized_bits(4, 0, 1, alpha="auto_po2",
                                                         post_training_scale=scale)(big[0])).max()
    assert np.abs(live).max() > np.abs(frozen).max()
    # the config (and so a file) carries the frozen scale
    path = tmp_path / "frozen.zip"
    new.save(path)
    again, hw = clone_model_and_freeze_auto_po2_scale(orig_model_path=path,
                                                      quantize_model_weights=True)
    # hw weights are w * 2**(bits-1-integer) = w*8, i.e. integer codes times the frozen
    # per-channel scale; "scales" = scale * 2**(integer-bits+1)
    s = np.asarray(again.get_layer("d").kernel_quantizer_internal.scale).reshape(1, -1)
    np.testing.assert_array_equal(s, scale.reshape(1, -1))
    np.testing.assert_array_equal(hw["d"]["scales"][0].reshape(1, -1), s / 8)
    codes = hw["d"]["weights"][0] / s
    np.testing.assert_array_equal(codes, np.round(codes))
    assert np.abs(codes).max() <= 7


def scale_freezing_model(bias_quantizer):
    """QKeras utils_test.create_test_model_for_scale_freezing, weights included."""
    from qnn_ext import QBatchNormalization
    x = x_in = Input((4, 4, 1), name="input")
    x = QConv2D(filters=4, kernel_size=2, strides=2,
                kernel_quantizer=quantized_bits(4, 2, 1, alpha="auto_po2"),
                bias_quantizer=quantized_bits(4, 2, 1), use_bias=False, name="conv")(x)
    x = QDepthwiseConv2D(kernel_size=2, strides=1,
                         depthwise_quantizer=quantized_bits(6, 3, 1, alpha="auto_po2"),
                         use_bias=False, bias_quantizer=quantized_bits(4, 2, 1), name="dw_conv")(x)
    x = QBatchNormalization(mean_quantizer=quantized_bits(4, 2, 1), gamma_quantizer=None,
                            variance_quantizer=None, beta_quantizer=quantized_bits(4, 0, 1),
                            inverse_quantizer=quantized_bits(8, 0, 1, alpha="auto_po2"),
                            name="bn")(x)
    x = QActivation(activation=quantized_bits(4, 0), name="relu")(x)
    x = Flatten(name="flatten")(x)
    x = QDense(units=2, kernel_quantizer=quantized_bits(4, 2, 1, alpha="auto_po2"),
               bias_quantizer=bias_quantizer, name="dense")(x)
    m = Model(inputs=x_in, outputs=x)
    m.get_layer("conv").set_weights([np.array(
        [0.23, 2.76, 0.1, 0.33, 0.53, 0.16, 0.3, 1.7, -0.9, 1.43, 2.31, -0.2, -1.7, 0.39, -2.03,
         1.79]).reshape(2, 2, 1, 4)])
    m.get_layer("dw_conv").set_weights([np.array(
        [0.03, 3.6, 2.1, 1.2, 0.13, 1.3, -0.3, 1.2, -0.7, -10.3, 11.7, -0.92, -10.7, 0.59, -1.93,
         2.8]).reshape((2, 2, 4, 1))])
    m.get_layer("bn").set_weights([np.array([0.28, 1.33, 2.27, 3.36]),
                                   np.array([0.31, 0.1, 0.03, 4.26]),
                                   np.array([0.89, -0.21, 1.97, 2.06]),
                                   np.array([1.2, 0.9, 13.2, 10.9])])
    m.get_layer("dense").set_weights([np.array([0.13, 0.66, 0.21, 0.23, 1.07, -0.79, 1.83, 1.81])
                                      .reshape((4, 2)), np.array([-1.3, 0.7])])
    return m


def test_qkeras_clone_model_and_freeze_auto_po2_scale_numbers(tmp_path):
    """Port of QKeras utils_test.test_clone_model_and_freeze_auto_po2_scale (+ serialization):
    the scales come from the current weights, no call needed."""
    new, hw = clone_model_and_freeze_auto_po2_scale(
        scale_freezing_model(quantized_bits(4, 2, 1)), quantize_model_weights=True)
    np.testing.assert_array_equal(hw["conv"]["weights"][0], np.array(
        [[[[0.5, 6, 0, 0.5]], [[1, 0, 0.5, 3.5]]], [[[-2., 3., 3.5, -0.5]], [[-3.5, 1., -3.5, 3.5]]]]))
    np.testing.assert_array_equal(hw["conv"]["scales"][0], np.array([[[[0.25, 0.5, 0.25, 0.25]]]]))
    np.testing.assert_array_equal(hw["dw_conv"]["weights"][0].flatten(), np.array(
        [0., 14, 8, 4, 0, 6, -2, 4, -2, -42, 46, -4, -42, 2, -8, 12]))
    np.testing.assert_array_equal(hw["dense"]["scales"][0], np.array([[0.25, 0.25]]))
    path = tmp_path / "frozen.zip"
    new.save(path)
    loaded = load_qmodel(path)
    assert loaded.get_config() == new.get_config()


def test_clone_model_and_freeze_errors():
    with pytest.raises(ValueError, match="orig_model or orig_model_path"):
        clone_model_and_freeze_auto_po2_scale()
    # QKeras's error case: an auto_po2 bias quantizer next to the auto_po2 kernel
    with pytest.raises(ValueError, match="more than one auto_po2"):
        clone_model_and_freeze_auto_po2_scale(
            scale_freezing_model(quantized_bits(4, 2, 1, alpha="auto_po2")))


# ---------------------------------------------------------------- hls4ml precisions
def grid_of(precision):
    """(step, lo, hi) of an ap_fixed/ap_ufixed/ap_int/ap_uint string."""
    m = re.fullmatch(r"ap_(u?)(fixed|int)<(\d+)(?:,(-?\d+))?>", precision)
    unsigned, kind, w = m.group(1) == "u", m.group(2), int(m.group(3))
    i = int(m.group(4)) if kind == "fixed" else w
    step = 2.0 ** (i - w)
    if unsigned:
        return step, 0.0, 2.0 ** i - step
    return step, -(2.0 ** (i - 1)), 2.0 ** (i - 1) - step


@pytest.mark.parametrize("q", [quantized_bits(6, 2, 1, alpha=1), quantized_bits(4, 0, 0, alpha=1),
                               quantized_bits(5, 3, 0, alpha=1, keep_negative=False),
                               quantized_bits(8, 8, 0, alpha=1), quantized_relu(6, 2),
                               quantized_relu(4, 0), quantized_relu(5, 1, negative_slope=0.5)])
def test_fixed_point_precisions_hold_every_quantizer_value(q):
    """The exported type holds every value the quantizer outputs, and its ends are reached."""
    step, lo, hi = grid_of(quantizer_precision(q))
    x = np.concatenate([np.linspace(-300, 300, 20001), [-1e6, 1e6]]).astype(F32)
    y = np.asarray(q(x), np.float64)
    np.testing.assert_array_equal(np.round(y / step), y / step)
    assert y.min() >= lo and y.max() <= hi
    assert y.max() == hi
    if not (isinstance(q, quantized_relu) and not q.negative_slope):
        if isinstance(q, quantized_bits) and q.keep_negative and not q.symmetric:
            assert y.min() == lo


def test_export_hls4ml_config_table():
    x = Input((8, 8, 1))
    y = QConv2D(4, 3, kernel_quantizer=quantized_bits(6, 2, 1, alpha=1),
                bias_quantizer=quantized_bits(8, 3, 1), activation=quantized_relu(6, 2), name="c")(x)
    y = QActivation(quantized_bits(8, 0, 1, keep_negative=False), name="a")(y)
    y = QConv2DBatchnorm(2, 3, kernel_quantizer=ternary(alpha=1), bias_quantizer=quantized_po2(5),
                         name="f")(y)
    y = Flatten(name="fl")(y)
    y = QDense(3, kernel_quantizer=binary(alpha=1), use_bias=False, name="d")(y)
    y = Dense(2, name="float")(y)
    m = Model(x, y, name="m")
    cfg = export_hls4ml_config(m)
    assert cfg["Model"] == {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"}
    L = cfg["LayerName"]
    assert L["c"] == {"Precision": {"weight": "ap_fixed<6,3>", "bias": "ap_fixed<8,4>",
                                    "result": "ap_ufixed<6,2>"}}
    assert L["a"] == {"Precision": {"result": "ap_ufixed<8,0>"}}
    assert L["f"] == {"Precision": {"weight": "ap_int<2>", "bias": "ap_int<5>"}}
    assert L["d"] == {"Precision": {"weight": "ap_uint<1>"}}
    assert L["float"] == {"Precision": {"weight": "ap_fixed<16,6>", "bias": "ap_fixed<16,6>"}}
    assert "fl" not in L  # no weights, no quantizer: hls4ml's model default applies
    assert L[m.layers[0].name] == {"Precision": {"result": "ap_fixed<16,6>"}}
    json.dumps(cfg)  # plain data


def test_export_warns_for_scales_and_unmapped_quantizers():
    x = Input((4,))
    m = Model(x, QDense(2, kernel_quantizer=quantized_bits(4, 0, 1), name="d",
                        activation=quantized_tanh(4))(x))
    with pytest.warns(UserWarning) as rec:
        cfg = export_hls4ml_config(m)
    msgs = " ".join(str(r.message) for r in rec)
    assert "auto_po2" in msgs and "quantized_tanh" in msgs
    assert cfg["LayerName"]["d"]["Precision"] == {"weight": "ap_fixed<4,1>",
                                                  "bias": "ap_fixed<16,6>",
                                                  "result": "ap_fixed<16,6>"}


# ---------------------------------------------------------------- pooling entries of the hw dict
def test_model_save_quantized_weights_pooling_factors(capsys):
    from qnn_ext import QAveragePooling2D, QGlobalAveragePooling2D
    from qnn_ext.utils import model_save_quantized_weights
    x = Input((6, 6, 2))
    ap = QAveragePooling2D(3, average_quantizer="quantized_bits(4,0,1)", name="ap")
    gp = QGlobalAveragePooling2D(average_quantizer=quantized_bits(8, 0, 1), name="g")
    plain = QGlobalAveragePooling2D(name="plain")
    y = ap(x)
    m = Model(x, [gp(y), plain(y)])
    out = model_save_quantized_weights(m)
    assert "... quantizing model" in capsys.readouterr().out
    # 1/9 on the 4-bit grid (step 1/8) -> 0.125; 1/4 is exact in 8 bits
    assert out["ap"]["pool_area"] == 9 and out["ap"]["q_mult_factor"] == 0.125
    assert out["ap"]["mult_factor"] == np.float32(1 / 9)
    assert (out["g"]["pool_area"], out["g"]["q_mult_factor"]) == (4, 0.25)
    assert out["plain"]["q_mult_factor"] == np.float32(0.25)   # no quantizer: 1/area
    # the factor is what the layers multiply by: avg(x*A)*Q(1/A)
    xs = rnd(2, 6, 6, 2)
    win = xs.reshape(2, 2, 3, 2, 3, 2).sum(axis=(2, 4))
    np.testing.assert_allclose(ap(xs), win * out["ap"]["q_mult_factor"], rtol=1e-6)


def test_quantizer_object_activation_survives_two_file_round_trips(tmp_path):
    """A layer rebuilt from a config keeps its activation as the serialized dict; saving it
    again must write that dict, not its str() (which no loader can read)."""
    x = Input((4,))
    m = Model(x, QActivation(quantized_bits(4, 0), name="a")(QDense(3, name="d")(x)))
    xs = rnd(2, 4)
    m.save(tmp_path / "one.zip")
    once = load_qmodel(tmp_path / "one.zip")
    once.save(tmp_path / "two.zip")
    twice = load_qmodel(tmp_path / "two.zip")
    assert twice.get_config() == m.get_config()
    np.testing.assert_array_equal(twice.predict(xs, verbose=0), m.predict(xs, verbose=0))


def test_quantized_model_dump(tmp_path, capsys):
    from qnn_ext.utils import quantized_model_dump
    x = Input((4,), name="inp")
    d = QDense(3, kernel_quantizer=quantized_bits(4, 0, 1, alpha=1), name="d")
    a = QActivation("quantized_relu(4,1)", name="a")
    m = Model(x, a(d(x)))
    xs = rnd(5, 4)
    out = quantized_model_dump(m, xs, str(tmp_path / "dump"), layers_to_dump=["a"])
    assert sorted(os.listdir(out)) == ["a.bin"]
    np.testing.assert_array_equal(np.fromfile(os.path.join(out, "a.bin"), np.float32).reshape(5, 3),
                                  m.predict(xs, verbose=0))
    assert "create dir" in capsys.readouterr().out
    every = quantized_model_dump(m, xs, str(tmp_path / "all"))
    assert sorted(os.listdir(every)) == ["a.bin", "d.bin", "inp.bin"]  # inputs too, as QKeras
    np.testing.assert_array_equal(np.fromfile(os.path.join(every, "inp.bin"), np.float32),
                                  xs.reshape(-1))
    np.testing.assert_array_equal(np.fromfile(os.path.join(every, "d.bin"), np.float32),
                                  d(xs).reshape(-1))
    with pytest.raises(ValueError, match="no layer named"):
        quantized_model_dump(m, xs, str(tmp_path), layers_to_dump=["nope"])
    x = Input((4,))
    evil = Model(x, QDense(2, name="../escape")(x))
    with pytest.raises(ValueError, match="not a file name"):
        quantized_model_dump(evil, xs, str(tmp_path / "e"))
    assert not (tmp_path / "escape.bin").exists()


def test_export_adaptive_activation_holds_every_channel():
    from qnn_ext import QAdaptiveActivation
    x = Input((3,))
    qa = QAdaptiveActivation("quantized_bits", 6, per_channel=True, ema_decay=0.0,
                             quantization_delay=0, name="qa")
    m = Model(x, qa(x))
    xs = np.array([[0.3, 5.0, -20.0], [-0.2, 1.0, 30.0]], F32)
    m(xs, training=True)
    ints = qa.integer_bits
    assert len(set(ints.tolist())) > 1
    prec = export_hls4ml_config(m)["LayerName"]["qa"]["Precision"]["result"]
    step, lo, hi = grid_of(prec)
    y = np.asarray(qa(np.linspace(-100, 100, 4001, dtype=F32).reshape(-1, 1).repeat(3, 1)),
                   np.float64)
    np.testing.assert_array_equal(np.round(y / step), y / step)
    assert y.min() >= lo and y.max() <= hi
