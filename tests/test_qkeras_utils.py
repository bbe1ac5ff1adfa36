"""qnn_ext.qkeras_utils: model_save_quantized_weights, extract_model_operations / print_qstats,
get_model_sparsity / print_model_sparsity (QKeras utils.py / estimate.py behaviour)."""
import numpy as np
import pytest

from qnn_ext import (Activation, Add, Dense, Flatten, Input, Model, QActivation,
                     QBatchNormalization, QConv1D, QConv2D, QDense, QDepthwiseConv2D,
                     QSeparableConv2D, Sequential, binary, quantized_bits, quantized_po2,
                     quantized_relu, quantized_relu_po2, ternary)
from qnn_ext import utils
from qnn_ext.qkeras_utils import (add_bn_fusing_weights, extract_model_operations,
                                  find_bn_fusing_layer_pair, get_model_sparsity, get_quant_mode,
                                  model_save_quantized_weights, print_model_sparsity, print_qstats)


def small_model():
    x = Input((6, 6, 2))
    y = QConv2D(4, 3, kernel_quantizer=quantized_bits(4, 0, 1),
                bias_quantizer=quantized_bits(4, 0, 1), name="conv")(x)
    y = QActivation(quantized_relu(4), name="act")(y)
    y = Flatten(name="flat")(y)
    y = QDense(3, kernel_quantizer=binary(), name="dense")(y)
    return Model(x, y)


def test_reexported_from_utils():
    for n in ("model_save_quantized_weights", "extract_model_operations", "print_qstats",
              "get_model_sparsity", "print_model_sparsity"):
        assert n in utils.__all__ and getattr(utils, n) is globals()[n]


# ---------------------------------------------------------------- operation typing
def test_get_quant_mode_table():
    assert get_quant_mode(quantized_bits(4, 0, 1)) == (0, 4, 1)
    assert get_quant_mode(quantized_bits(4, 0, 0, keep_negative=False)) == (0, 4, 1)
    assert get_quant_mode(quantized_bits(2, 1, 1)) == (2, 2, 1)     # ternary-like
    assert get_quant_mode(quantized_relu(8, 0)) == (0, 8, 0)
    assert get_quant_mode(quantized_relu(1, 1)) == (4, 1, 0)        # binary {0,1}
    assert get_quant_mode(quantized_po2(4)) == (1, 4, 1)
    assert get_quant_mode(quantized_relu_po2(5)) == (1, 5, 0)
    assert get_quant_mode(ternary()) == (2, 2, 1)
    assert get_quant_mode(binary()) == (3, 1, 1)
    assert get_quant_mode(None) == (5, 32, 1)


def test_extract_model_operations_small_model():
    ops = extract_model_operations(small_model())
    assert sorted(ops) == ["conv", "dense"]
    c = ops["conv"]
    # Ho*Wo*Co*kh*kw*Ci = 4*4*4*3*3*2
    assert c["number_of_operations"] == 1152
    assert c["number_of_weights"] == 72 and c["number_of_bias"] == 4
    # weights quantized_bits (mode 0, signed) x assumed input quantized_relu(8,0) (mode 0)
    assert c["type"] == ("mult", (0, 0), (4, 8), (1, 0))
    assert c["type_of_weights"] == (0, 4, 1) and c["type_of_bias"] == (0, 4, 1)
    d = ops["dense"]
    assert d["number_of_operations"] == 64 * 3 and d["number_of_weights"] == 192
    # binary weights (3) x the QActivation's quantized_relu(4) (0) through Flatten -> mux
    assert d["type"] == ("mux", (3, 0), (1, 4), (1, 0))
    assert d["type_of_bias"] == (5, 32, 1)   # no bias quantizer -> float


def test_operation_counts_other_layers():
    x = Input((8, 8, 3))
    y = QDepthwiseConv2D(3, depthwise_quantizer=quantized_po2(4), name="dw")(x)
    y = QActivation(ternary(), name="t")(y)
    y = QSeparableConv2D(5, 3, depthwise_quantizer=quantized_bits(4, 0, 1),
                         pointwise_quantizer=binary(), name="sep")(y)
    ops = extract_model_operations(Model(x, y))
    dw = ops["dw"]
    assert dw["number_of_operations"] == 3 * 3 * 6 * 6 * 3        # kh*kw*Ho*Wo*Ci
    assert dw["number_of_weights"] == 3 * 3 * 3 * 3               # QKeras: kh*kw*Co*Ci
    assert dw["type"] == ("barrel", (1, 0), (4, 8), (1, 0))       # po2 x qb -> barrel
    sep = ops["sep"]
    assert sep["number_of_operations"] == 3 * 3 * 4 * 4 * 3 + 4 * 4 * 5
    assert sep["number_of_weights"] == [3 * 3 * 3, 5 * 3]
    assert sep["type"] == ("mux", (0, 2), (4, 2), (1, 1))         # qb x ternary -> mux
    assert sep["type_of_weights"] == [(0, 4, 1), (3, 1, 1)]

    x = Input((10, 2))
    y = QConv1D(4, 3, kernel_quantizer=binary(), name="c1")(x)
    y = QActivation(binary(), name="b")(y)
    y = QConv1D(2, 2, kernel_quantizer=binary(), name="c2")(y)
    ops = extract_model_operations(Model(x, y))
    assert ops["c1"]["number_of_operations"] == 8 * 4 * 3 * 2     # To*Co*k*Ci
    assert ops["c2"]["number_of_operations"] == 7 * 2 * 2 * 4
    assert ops["c2"]["type"] == ("xor", (3, 3), (1, 1), (1, 1))


def test_sequential_input_assumed_quantized_relu_8():
    m = Sequential([QDense(3, kernel_quantizer=quantized_po2(4), input_shape=(5,), name="d")])
    ops = extract_model_operations(m)
    assert ops["d"]["type"] == ("barrel", (1, 0), (4, 8), (1, 0))
    assert ops["d"]["number_of_operations"] == 15


def test_print_qstats_output(capsys):
    np.random.seed(1)
    m = small_model()
    assert print_qstats(m) is None
    out = capsys.readouterr().out.splitlines()
    for line in ["Number of operations in model:",
                 "    {:30}: {:5} ({})".format("conv", "1152", "smult_4_8"),
                 "    {:30}: {:5} ({})".format("dense", "192", "smux_1_4"),
                 "Number of operation types in model:",
                 "    {:30}: {}".format("smult_4_8", 1152),
                 "    {:30}: {}".format("smux_1_4", 192),
                 "Weight profiling:",
                 "    {:30} : {:5} ({}-bit unit)".format("conv_weights", "72", "4"),
                 "    {:30} : {:5} ({}-bit unit)".format("conv_bias", "4", "4"),
                 "    {:30} : {:5} ({}-bit unit)".format("dense_weights", "192", "1"),
                 "    {:30} : {:5} ({}-bit unit)".format("dense_bias", "3", "32"),
                 # 72*4 + 4*4 + 192*1 + 3*32
                 "    {:30} : {:5}".format("Total Bits", 592),
                 "Weight sparsity:", "... quantizing model"]:
        assert line in out, line
    assert any(l.startswith("    Total Sparsity") for l in out)
    assert any(l.startswith("    dense                          : 0.0154") for l in out)  # 3/195


# ---------------------------------------------------------------- quantized weights
def po2_autopo2_model():
    x = Input((2,))
    y = QDense(2, kernel_quantizer=quantized_po2(4), bias_quantizer=quantized_po2(4), name="po2")(x)
    y = QDense(2, kernel_quantizer=quantized_bits(4, 0, 1, alpha="auto_po2"), use_bias=False,
               name="ap")(y)
    y = QDense(2, kernel_quantizer=quantized_relu_po2(4), name="rpo2")(y)
    y = Dense(2, name="plain")(y)
    m = Model(x, y)
    m.get_layer("po2").set_weights([np.array([[0.5, -0.25], [1.0, -2.0]]), np.array([0.125, -0.5])])
    m.get_layer("ap").set_weights([np.array([[1.0, -0.25], [0.25, 0.75]])])
    m.get_layer("rpo2").set_weights([np.array([[0.5, 0.25], [1.0, 0.3]]), np.array([0.0, 0.0])])
    return m


def test_model_save_quantized_weights_dict_and_mutation(capsys, tmp_path):
    m = po2_autopo2_model()
    plain_before = [w.copy() for w in m.get_layer("plain").get_weights()]
    fn = str(tmp_path / "qw.npz")
    r = model_save_quantized_weights(m, fn)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "... quantizing model"
    assert "  plain has not been quantized" in out
    assert sorted(r) == ["ap", "po2", "rpo2"]
    # quantized_po2: exponents round(log2|w|) + signs (zeros -> +1)
    p = r["po2"]
    np.testing.assert_array_equal(p["weights"][0], [[-1, -2], [0, 1]])
    np.testing.assert_array_equal(p["weights"][1], [-3, -1])
    np.testing.assert_array_equal(p["signs"][0], [[1, -1], [1, -1]])
    np.testing.assert_array_equal(p["signs"][1], [1, -1])
    assert p["enable_bn_fusing"] is False and "scales" not in p
    # quantized_relu_po2: exponents, no signs; 0.3 -> 0.25 -> -2; unquantized bias kept
    q = r["rpo2"]
    np.testing.assert_array_equal(q["weights"][0], [[-1, -2], [0, -2]])
    np.testing.assert_array_equal(q["weights"][1], [0, 0])
    assert "signs" not in q
    # auto_po2: hw = w * 2**(bits-1-integer) = w*8, scales = scale * 2**(integer-bits+1)
    a = r["ap"]
    kq = m.get_layer("ap").get_quantizers()[0]
    scale = np.asarray(kq.scale)
    np.testing.assert_array_equal(scale, [[1.0, 1.0]])   # column maxima 1.0, 0.75
    np.testing.assert_array_equal(a["weights"][0], [[7, -2], [2, 6]])   # 1.0 clips to 7/8
    np.testing.assert_array_equal(a["scales"][0], [[0.125, 0.125]])
    np.testing.assert_array_equal(a["weights"][0] * a["scales"][0], m.get_layer("ap").get_weights()[0])
    # the model's weights were overwritten with the quantized (software) values
    np.testing.assert_array_equal(m.get_layer("ap").get_weights()[0], [[0.875, -0.25], [0.25, 0.75]])
    np.testing.assert_array_equal(m.get_layer("rpo2").get_weights()[0], [[0.5, 0.25], [1.0, 0.25]])
    for b, a_ in zip(plain_before, m.get_layer("plain").get_weights()):
        np.testing.assert_array_equal(a_, b)
    # filename -> model.save_weights
    saved = np.load(fn)
    np.testing.assert_array_equal(saved["w0002"], [[0.875, -0.25], [0.25, 0.75]])


def test_auto_po2_scales_reported_with_a_plain_bias_after_them():
    # QKeras's utils_test (clone_model_and_freeze_auto_po2_scale numbers) expects "scales" for
    # a dense layer whose auto_po2 kernel is followed by a plainly quantized bias: the entry is
    # [scale, []] (nothing for the bias).
    x = Input((2,))
    y = QDense(2, kernel_quantizer=quantized_bits(4, 0, 1, alpha="auto_po2"),
               bias_quantizer=quantized_bits(4, 0, 1), name="d")(x)
    m = Model(x, y)
    m.get_layer("d").set_weights([np.array([[1.0, -0.25], [0.25, 0.75]]), np.array([0.3, -0.3])])
    r = model_save_quantized_weights(m)
    np.testing.assert_array_equal(r["d"]["scales"][0], [[0.125, 0.125]])
    assert list(r["d"]["scales"][1]) == []
    np.testing.assert_array_equal(r["d"]["weights"][0], [[7, -2], [2, 6]])
    np.testing.assert_array_equal(r["d"]["weights"][1], [0.25, -0.25])


def test_bn_fusing_in_model_save_quantized_weights():
    x = Input((3, 3, 1))
    y = QConv2D(2, 2, kernel_quantizer=quantized_bits(4, 0, 1, alpha=1),
                bias_quantizer=quantized_bits(4, 0, 1), name="conv")(x)
    y = QBatchNormalization(mean_quantizer=quantized_bits(4, 0, 1), gamma_quantizer=None,
                            variance_quantizer=None, beta_quantizer=quantized_bits(4, 0, 1),
                            name="bn")(y)
    m = Model(x, y)
    m.get_layer("conv").set_weights([np.full((2, 2, 1, 2), 0.25), np.array([0.5, -0.3])])
    m.get_layer("bn").set_weights([np.array([1.0, 0.5]), np.array([0.25, 0.5]),
                                   np.array([0.5, 0.25]), np.array([3.0, 0.25])])
    r = model_save_quantized_weights(m)
    assert r["bn"]["enable_bn_fusing"] is True
    c = r["conv"]
    assert c["enable_bn_fusing"] is True and c["fused_bn_layer_name"] == "bn"
    inv = np.array([1.0 / np.sqrt(3.001), 0.5 / np.sqrt(0.251)], dtype=np.float32)
    np.testing.assert_allclose(c["bn_inv"], inv, rtol=1e-6)
    # bias quantized to [0.5, -0.25]
    np.testing.assert_allclose(c["fused_bias"], inv * np.array([0.5, -0.25]) + [0.25, 0.5]
                               - inv * [0.5, 0.25], rtol=1e-6, atol=1e-6)


# Port of google/qkeras tests/utils_test.py::test_find_bn_fusing_layer_pair (numbers kept).
def test_qkeras_find_bn_fusing_layer_pair():
    x = x_in = Input((23, 23, 1), name="input")
    x1 = QConv2D(2, 2, 1, kernel_quantizer=quantized_bits(4, 0, 1),
                 bias_quantizer=quantized_bits(4, 0, 1), use_bias=False, name="conv1")(x)
    x1 = QBatchNormalization(mean_quantizer=quantized_bits(4, 0, 1), gamma_quantizer=None,
                             variance_quantizer=None, beta_quantizer=quantized_bits(4, 0, 1),
                             inverse_quantizer=quantized_bits(8, 0, 1), name="bn1")(x1)
    x2 = QConv2D(2, 2, 1, kernel_quantizer=quantized_bits(3, 0),
                 bias_quantizer=quantized_bits(3, 2), name="conv2")(x)
    x2 = QBatchNormalization(mean_quantizer=quantized_bits(4, 0, 1), gamma_quantizer=None,
                             variance_quantizer=None, beta_quantizer=quantized_bits(4, 0, 1),
                             inverse_quantizer=quantized_bits(8, 0, 1), name="bn2")(x2)
    x = Add(name="add")([x1, x2])
    model = Model(inputs=[x_in], outputs=[x])
    pairs, _ = find_bn_fusing_layer_pair(model)
    assert pairs["conv1"] == "bn1" and pairs["conv2"] == "bn2"
    conv_layer, bn_layer = model.get_layer("conv1"), model.get_layer("bn1")
    conv_layer.set_weights([np.array([[[[0.5, 0.75]], [[1.5, -0.625]]],
                                      [[[-0.875, 1.25]], [[-1.25, -2.5]]]])])
    bn_layer.set_weights([np.array([1., 0.25]), np.array([0.5, 1.0]), np.array([0.5, 2.5]),
                          np.array([1.5, 1.])])
    saved_weights = {conv_layer.name: {}}
    add_bn_fusing_weights(conv_layer, bn_layer, saved_weights)
    d = saved_weights[conv_layer.name]
    assert d["enable_bn_fusing"]
    assert d["fused_bn_layer_name"] == "bn1"
    assert np.all(d["bn_inv"] == np.array([0.8125, 0.25]))
    assert np.all(d["fused_bias"] == np.array([0.09375, 0.65625]))


# ---------------------------------------------------------------- sparsity
def set_network_sparsity(model, sparsity, rng):
    for layer in model.layers:
        new = []
        for w in layer.get_weights():
            s = rng.random(w.size) + 0.1
            s[:int(w.size * sparsity)] = 0
            rng.shuffle(s)
            new.append(s.reshape(w.shape))
        layer.set_weights(new)
    return model


def quantized_network():
    # what QKeras's create_quantized_network gets from model_quantize(Conv2D/relu network,
    # {"QConv2D": quantized_bits(4) kernel+bias, "QActivation": {"relu": "ternary"}}, 4)
    xi = Input((28, 28, 1))
    x = QConv2D(32, (3, 3), kernel_quantizer="quantized_bits(4)", bias_quantizer="quantized_bits(4)")(xi)
    x = QActivation("ternary")(x)
    x = QConv2D(32, (3, 3), kernel_quantizer="quantized_bits(4)", bias_quantizer="quantized_bits(4)",
                activation="quantized_relu(4)")(x)
    x = Activation("softmax")(x)
    return Model(xi, x)


# Port of google/qkeras tests/utils_test.py::test_get_model_sparsity (fixed seed).
def test_qkeras_get_model_sparsity():
    rng = np.random.default_rng(0)
    qmodel = quantized_network()
    for true_sparsity in np.concatenate((rng.random(10), [1.0, 0.0])).round(2):
        set_network_sparsity(qmodel, true_sparsity, rng)
        assert abs(get_model_sparsity(qmodel) - true_sparsity) < 0.01


# Port of google/qkeras tests/utils_test.py::test_get_po2_model_sparsity (fixed seed).
def test_qkeras_get_po2_model_sparsity():
    rng = np.random.default_rng(1)
    xi = Input((28, 28, 1))
    x = QConv2D(32, (3, 3), kernel_quantizer=quantized_po2(4))(xi)
    x = QActivation(quantized_bits(8))(x)
    x = QConv2D(32, (3, 3), kernel_quantizer=quantized_po2(4))(x)
    x = QActivation(quantized_bits(8))(x)
    qmodel = Model(xi, x, name="simple_po2_qmodel")
    for s in np.concatenate((rng.random(10), [1.0, 0.0])).round(2):
        set_network_sparsity(qmodel, s, rng)
        assert abs(get_model_sparsity(qmodel) - 0) < 0.01


def test_get_model_sparsity_per_layer_and_allow_list():
    m = small_model()
    m.get_layer("conv").set_weights([np.zeros((3, 3, 2, 4)), np.array([0.5, 0.5, 0.5, 0.5])])
    m.get_layer("dense").set_weights([np.ones((64, 3)), np.zeros(3)])
    total, per = get_model_sparsity(m, per_layer=True)
    assert per == [("conv", 72 / 76), ("dense", 3 / 195)]
    assert total == pytest.approx((72 + 3) / (76 + 195))
    assert get_model_sparsity(m, allow_list=["QDense"]) == pytest.approx(3 / 195)
    assert get_model_sparsity(m, allow_list=[]) == 0.0


def test_print_model_sparsity(capsys):
    m = small_model()
    m.get_layer("conv").set_weights([np.zeros((3, 3, 2, 4)), np.ones(4)])
    m.get_layer("dense").set_weights([np.ones((64, 3)), np.zeros(3)])
    print_model_sparsity(m)
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["Model Sparsity Summary (%s)" % m.name, "--"]
    assert "conv: (conv/kernel, 1.0)" in out
    assert "dense: (dense/kernel, 0.0)" in out


# Port of google/qkeras tests/print_qstats_test.py::test_conversion_print_qstats (the
# model_quantize result built by hand; the BN-folding half needs QConv2DBatchnorm).
def test_qkeras_conversion_print_qstats(capsys):
    xi = Input((28, 28, 1))
    x = QConv2D(32, (3, 3), kernel_quantizer="binary", bias_quantizer="binary", name="c1")(xi)
    x = QActivation("ternary", name="a1")(x)
    x = QConv2D(32, (3, 3), kernel_quantizer="binary", bias_quantizer="binary",
                activation="quantized_relu(4)", name="c2")(x)
    x = Activation("softmax")(x)
    print_qstats(Model(xi, x))
    out = capsys.readouterr().out
    assert "    {:30}: {:5} ({})".format("c1", "194688", "smux_1_8") in out   # 26*26*32*9
    assert "    {:30}: {:5} ({})".format("c2", "5308416", "smux_1_2") in out  # 24*24*32*9*32
    # unquantized model: empty blocks, no error
    xi = Input((28, 28, 1))
    from qnn_ext import Conv2D
    x = Conv2D(32, (3, 3))(xi)
    x = Activation("relu")(x)
    print_qstats(Model(xi, x))
    out = capsys.readouterr().out
    assert "    {:30} : {:5}".format("Total Bits", 0) in out
    # mixture of quantized and unquantized layers
    xi = Input((28, 28, 1))
    x = QConv2D(32, (3, 3), kernel_quantizer=binary(), name="q")(xi)
    x = Activation("relu")(x)
    x = Conv2D(32, (3, 3))(x)
    x = Activation("softmax")(x)
    print_qstats(Model(xi, x))
    out = capsys.readouterr().out
    assert "    {:30}: {:5} ({})".format("q", "194688", "smux_1_8") in out
    assert "    {:30} : {:5} ({}-bit unit)".format("q_bias", "32", "32") in out
