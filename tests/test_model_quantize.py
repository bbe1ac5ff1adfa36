"""model_quantize: QKeras's lookup rules (layer name, then Q-class name, no "default"), the
activation rules, BatchNormalization and pooling conversion, BN folding, transfer_weights,
and ports of QKeras's utils_test / print_qstats_test models."""
import numpy as np
import pytest

from qnn_ext import (Activation, Add, AveragePooling2D, BatchNormalization, Conv1D, Conv2D, Dense,
                     DepthwiseConv2D, Flatten, GlobalAveragePooling2D, Input, LeakyReLU, Model,
                     ReLU, SeparableConv2D, Sequential, Softmax)
from qnn_ext.utils import (get_model_sparsity, model_quantize, print_qstats, quantize_activation,
                           quantized_model_from_json)

F32 = np.float32
RNG = np.random.default_rng(3)


def conv_relu_network():
    """QKeras utils_test.create_quantized_network's float model."""
    xi = Input((28, 28, 1))
    x = Conv2D(32, (3, 3), name="c1")(xi)
    x = Activation("relu", name="a1")(x)
    x = Conv2D(32, (3, 3), activation="relu", name="c2")(x)
    x = Activation("softmax", name="sm")(x)
    return Model(inputs=xi, outputs=x)


QCONFIG = {"QConv2D": {"kernel_quantizer": "quantized_bits(4)", "bias_quantizer": "quantized_bits(4)"},
           "QActivation": {"relu": "ternary"}}


def classes(model):
    return [type(layer).__name__ for layer in model.layers]


def test_create_quantized_network_rules():
    q = model_quantize(conv_relu_network(), QCONFIG, 4)
    assert classes(q) == ["InputLayer", "QConv2D", "QActivation", "QConv2D", "Activation"]
    c1, a1, c2, sm = (q.get_layer(n) for n in ("c1", "a1", "c2", "sm"))
    # kernel quantizers get the layer-default auto_po2 (quantizers.md §1.2), biases not
    assert str(c1.kernel_quantizer_internal) == "quantized_bits(4,0,1,alpha='auto_po2')"
    assert str(c1.bias_quantizer_internal) == "quantized_bits(4,0,0)"
    assert str(a1.activation) == "ternary()"
    # a converted layer's relu becomes quantized_relu(activation_bits)
    assert str(c2.activation) == "quantized_relu(4,0)"
    assert c1.get_config()["activation"] is None      # linear stays linear
    assert sm.get_config()["activation"] == "softmax"  # no entry for softmax: stays float


def test_port_qkeras_get_model_sparsity_on_model_quantize_result():
    q = model_quantize(conv_relu_network(), QCONFIG, 4)
    rng = np.random.default_rng(0)
    for true_sparsity in np.concatenate((rng.random(6), [1.0, 0.0])).round(2):
        for layer in q.layers:
            ws = []
            for w in layer.get_weights():
                s = rng.random(w.size) + 0.1
                s[:int(w.size * true_sparsity)] = 0
                rng.shuffle(s)
                ws.append(s.reshape(w.shape))
            layer.set_weights(ws)
        assert abs(get_model_sparsity(q) - true_sparsity) < 0.01


def test_layer_name_entry_beats_class_entry_and_no_default_key():
    cfg = {"c2": {"kernel_quantizer": "binary", "activation_quantizer": "quantized_relu(2,1)"},
           "QConv2D": {"kernel_quantizer": "quantized_bits(6,2,1)"},
           "default": {"kernel_quantizer": "ternary"}}
    q = model_quantize(conv_relu_network(), cfg, 8)
    c1, c2 = q.get_layer("c1"), q.get_layer("c2")
    assert str(c1.kernel_quantizer_internal).startswith("quantized_bits(6,2,1")
    assert str(c2.kernel_quantizer_internal).startswith("binary(")
    assert str(c2.activation) == "quantized_relu(2,1)"
    # c2's entry has no bias_quantizer: the class entry is not merged in
    assert c2.bias_quantizer_internal is None and c1.bias_quantizer_internal is None
    # the Activation layers have no QActivation entry: unchanged
    assert classes(q)[2] == "Activation"
    # "default" alone converts nothing (QKeras documents it but never reads it)
    assert classes(model_quantize(conv_relu_network(), {"default": {"kernel_quantizer": "binary"}},
                                  4)) == classes(conv_relu_network())


def test_activation_string_entry_converts_every_activation_layer():
    q = model_quantize(conv_relu_network(), {"QActivation": "quantized_bits(4,0,1)"}, 4)
    assert classes(q)[2] == "QActivation" and classes(q)[4] == "QActivation"
    assert str(q.get_layer("sm").activation) == "quantized_bits(4,0,1)"
    # a dict entry leaves activations it does not name (softmax) alone
    q = model_quantize(conv_relu_network(), {"QActivation": {"relu": "quantized_relu(3)"}}, 4)
    assert classes(q) == ["InputLayer", "Conv2D", "QActivation", "Conv2D", "Activation"]


def test_activation_quantize_rules():
    for act, want in (("relu", "quantized_relu(5)"), ("tanh", "quantized_tanh(5)"),
                      ("sigmoid", "quantized_sigmoid(5)"), ("linear", "linear"), ("softmax", "softmax")):
        cfg = {"activation": act}
        quantize_activation(cfg, 5)
        assert cfg["activation"] == want
    cfg = {"activation": None}
    quantize_activation(cfg, 5)
    assert cfg["activation"] is None


def test_dense_conv1d_separable_pooling_and_relu_layers():
    xi = Input((16, 3))
    x = Conv1D(4, 3, activation="tanh", name="c1d")(xi)
    x = Flatten()(x)
    x = Dense(5, activation="sigmoid", name="d")(x)
    m1 = Model(xi, x)
    q1 = model_quantize(m1, {"QDense": {"kernel_quantizer": "ternary"},
                             "QConv1D": {"kernel_quantizer": "quantized_bits(3,0,1)"}}, 6)
    assert str(q1.get_layer("c1d").activation) == "quantized_tanh(6)"
    assert type(q1.get_layer("d")).__name__ == "QDense"
    assert str(q1.get_layer("d").activation).startswith("quantized_sigmoid(6")

    xi = Input((8, 8, 2))
    x = SeparableConv2D(4, 3, name="sep")(xi)
    x = ReLU(name="r")(x)
    x = LeakyReLU(0.125, name="lr")(x)
    x = AveragePooling2D(name="ap")(x)
    x = GlobalAveragePooling2D(name="gap")(x)
    m2 = Model(xi, x)
    cfg = {"QSeparableConv2D": {"kernel_quantizer": "quantized_bits(4,0,1)",
                                "pointwise_quantizer": "binary"},
           "QActivation": {"relu": "quantized_relu(4,2)", "leakyrelu": "quantized_relu(4,2,negative_slope=0.125)"},
           "QAveragePooling2D": {"average_quantizer": "quantized_bits(8,0,1)"},
           "gap": {"average_quantizer": "quantized_bits(6,0,1)", "activation_quantizer": "quantized_bits(8,3,1)"}}
    q2 = model_quantize(m2, cfg, 4)
    assert classes(q2) == ["InputLayer", "QSeparableConv2D", "QActivation", "QActivation",
                           "QAveragePooling2D", "QGlobalAveragePooling2D"]
    sep = q2.get_layer("sep")
    assert str(sep.depthwise_quantizer_internal).startswith("quantized_bits(4,0,1")
    assert str(sep.pointwise_quantizer_internal).startswith("binary(")
    assert str(q2.get_layer("r").activation) == "quantized_relu(4,2)"
    assert q2.get_layer("lr").activation.negative_slope == 0.125
    assert str(q2.get_layer("ap").average_quantizer_internal) == "quantized_bits(8,0,1)"
    assert str(q2.get_layer("gap").activation) == "quantized_bits(8,3,1)"
    x = RNG.standard_normal((2, 8, 8, 2)).astype(F32)
    assert q2.predict(x, verbose=0).shape == (2, 4)


def test_batchnorm_only_with_an_entry():
    xi = Input((6, 6, 2))
    x = Conv2D(3, 3, name="c")(xi)
    x = BatchNormalization(name="bn")(x)
    m = Model(xi, x)
    assert classes(model_quantize(m, QCONFIG, 4))[-1] == "BatchNormalization"
    q = model_quantize(m, {"QBatchNormalization": {"gamma_quantizer": "quantized_relu_po2(4)"}}, 4)
    bn = q.get_layer("bn")
    assert type(bn).__name__ == "QBatchNormalization"
    qs = bn.get_quantizers()
    assert str(qs[0]).startswith("quantized_relu_po2(4") and qs[1:4] == [None, None, None]
    q = model_quantize(m, {"bn": {}}, 4)
    assert type(q.get_layer("bn")).__name__ == "QBatchNormalization"


def test_transfer_weights_and_sequential():
    m = Sequential([Input((5,)), Dense(4, activation="relu", name="d1"), Dense(3, name="d2")])
    q = model_quantize(m, {"QDense": {"kernel_quantizer": "quantized_bits(8,2,1,alpha=1)",
                                      "bias_quantizer": "quantized_bits(8,2,1)"}}, 4,
                       transfer_weights=True)
    assert type(q).__name__ == "Sequential" and classes(q) == ["QDense", "QDense"]
    for a, b in zip(m.get_weights(), q.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = RNG.standard_normal((4, 5)).astype(F32)
    k1, b1, k2, b2 = (w.astype(np.float64) for w in m.get_weights())
    qk = lambda w: np.clip(np.round(w * 32), -127, 127) / 32  # quantized_bits(8,2,1), alpha=1  # noqa: E731
    qb = lambda w: np.clip(np.round(w * 32), -127, 127) / 32  # noqa: E731
    # quantized_relu(4,0): grid 1/16 on [0, 15/16]
    h = np.clip(np.round(np.maximum(x @ qk(k1) + qb(b1), 0) * 16), 0, 15) / 16
    want = h @ qk(k2) + qb(b2)
    assert str(q.layers[0].activation) == "quantized_relu(4,0)"
    np.testing.assert_allclose(q.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_bn_folding_conversion_and_print_qstats(capsys):
    """QKeras print_qstats_test.create_network_with_bn with enable_bn_folding: the folded
    layers count as the QConv2D / QDepthwiseConv2D QKeras unfolds them into."""
    xi = Input((28, 28, 1))
    x = Conv2D(32, (3, 3), name="c")(xi)
    x = BatchNormalization(name="bn1", epsilon=1e-2)(x)
    x = Activation("relu", name="a")(x)
    x = DepthwiseConv2D((3, 3), activation="relu", name="dw")(x)
    x = BatchNormalization(name="bn2")(x)
    x = Activation("softmax", name="sm")(x)
    m = Model(xi, x)
    d2 = {"QConv2D": {"kernel_quantizer": "binary", "bias_quantizer": "binary"},
          "QActivation": {"relu": "ternary"},
          "QConv2DBatchnorm": {"kernel_quantizer": "ternary", "bias_quantizer": "ternary",
                               "folding_mode": "batch_stats_folding", "ema_freeze_delay": 100},
          "QDepthwiseConv2DBatchnorm": {"depthwise_quantizer": "ternary", "bias_quantizer": "ternary"}}
    q = model_quantize(m, d2, 4, enable_bn_folding=True)
    assert classes(q) == ["InputLayer", "QConv2DBatchnorm", "QActivation",
                          "QDepthwiseConv2DBatchnorm", "Activation"]
    c, dw = q.get_layer("c"), q.get_layer("dw")
    assert c.use_bias and c.folding_mode == "batch_stats_folding" and c.ema_freeze_delay == 100
    assert c.epsilon == 1e-2  # carried from the removed BatchNormalization
    assert dw.folding_mode == "ema_stats_folding" and dw.ema_freeze_delay is None
    assert str(dw.activation) == "quantized_relu(4,0)"
    assert q.get_layer("sm").get_config()["activation"] == "softmax"
    print_qstats(q)
    out = capsys.readouterr().out
    assert "    {:30}: {:5} ({})".format("c", "194688", "smux_2_8") in out   # 26*26*32*9
    assert "    {:30}: {:5} ({})".format("dw", "165888", "smux_2_2") in out  # 3*3*24*24*32
    # the kernel quantizer falls back to the QConv2D entry when no folded entry exists
    q = model_quantize(m, {"QConv2D": {"kernel_quantizer": "binary"}}, 4, enable_bn_folding=True)
    assert classes(q)[1] == "QConv2DBatchnorm"
    assert str(q.get_layer("c").kernel_quantizer_internal).startswith("binary(")
    # a conv with no quantizer at all stays float and keeps its BatchNormalization
    assert "BatchNormalization" in classes(q) and classes(q)[3:5] == ["DepthwiseConv2D", "BatchNormalization"]


def test_folding_needs_a_single_consumer_and_rewires_the_graph():
    """QKeras utils_test.test_convert_to_folded_model: two conv+BN branches into an Add."""
    x = x_in = Input((4, 4, 1), name="input")
    x1 = Conv2D(4, (2, 2), name="conv2d_1")(x)
    x1 = BatchNormalization(name="bn_1")(x1)
    x1 = Activation("relu", name="relu_1")(x1)
    x2 = Conv2D(4, (2, 2), name="conv2d_2")(x)
    x2 = BatchNormalization(name="bn_2")(x2)
    x2 = Activation("relu", name="relu_2")(x2)
    x = Add(name="add")([x1, x2])
    x = Softmax(name="softmax")(x)
    m = Model(x_in, x)
    q = model_quantize(m, {"QConv2D": {"kernel_quantizer": "quantized_bits(8,2,1,alpha=1)"}}, 8,
                       enable_bn_folding=True)
    assert [layer.name for layer in q.layers][:6] == ["input", "conv2d_1", "relu_1", "conv2d_2",
                                                      "relu_2", "add"]
    assert q.layers[5].name == "add"  # QKeras's assertion on fmodel.layers[5]
    xs = RNG.standard_normal((3, 4, 4, 1)).astype(F32)
    assert q.predict(xs, verbose=0).shape == (3, 3, 3, 4)
    # conv feeding two layers: no folding
    xi = Input((4, 4, 1))
    c = Conv2D(2, 2, name="c")(xi)
    m2 = Model(xi, [BatchNormalization(name="bn")(c), Activation("relu", name="r")(c)])
    q2 = model_quantize(m2, {"QConv2D": {"kernel_quantizer": "binary"}}, 4, enable_bn_folding=True)
    assert classes(q2)[1] == "QConv2D" and "BatchNormalization" in classes(q2)


def test_transfer_weights_not_with_folding_and_json_round_trip():
    xi = Input((5, 5, 2))
    x = Conv2D(3, 3, name="c")(xi)
    m = Model(xi, BatchNormalization(name="bn")(x))
    q = model_quantize(m, {"QConv2D": {"kernel_quantizer": "quantized_bits(4,0,1)"}}, 4,
                       transfer_weights=True, enable_bn_folding=True)
    assert not np.array_equal(q.get_layer("c").get_weights()[0], m.get_layer("c").get_weights()[0])
    assert quantized_model_from_json(q.to_json()).get_config() == q.get_config()


def test_errors():
    m = conv_relu_network()
    with pytest.raises(TypeError, match="quantizer_config must be a dict"):
        model_quantize(m, [("QConv2D", "binary")], 4)
    with pytest.raises(ValueError, match="must be a dict"):
        model_quantize(m, {"QConv2D": "binary"}, 4)
    with pytest.raises(ValueError):
        model_quantize(m, {"QConv2D": {"kernel_quantizer": "__import__('os').system('true')"}}, 4)


def test_sequential_folding_and_inference_matches_conv_then_bn():
    """A folded Sequential model predicts what conv + BatchNormalization predict when the
    folded layer holds the same weights and statistics (no quantizers: the float path)."""
    m = Sequential([Input((6, 6, 2)), Conv2D(3, 3, name="c"), BatchNormalization(name="bn"),
                    Flatten(name="f"), Dense(2, name="d")])
    rng = np.random.default_rng(8)
    m.get_layer("bn").set_weights([rng.random(3).astype(F32) + 0.5, rng.standard_normal(3).astype(F32),
                                   rng.standard_normal(3).astype(F32), rng.random(3).astype(F32) + 0.5])
    # quantized_bits(16, 6, alpha=1): step 2**-9 over +-64, close to float for these weights
    q = model_quantize(m, {"QConv2DBatchnorm": {"kernel_quantizer": "quantized_bits(16,6,1,alpha=1)"}},
                       8, enable_bn_folding=True)
    assert type(q).__name__ == "Sequential"
    assert classes(q) == ["QConv2DBatchnorm", "Flatten", "Dense"]
    k, b = m.get_layer("c").get_weights()
    q.get_layer("c").set_weights([k, b] + m.get_layer("bn").get_weights()[:2] + [np.array([-1], F32)]
                                 + m.get_layer("bn").get_weights()[2:])
    q.get_layer("d").set_weights(m.get_layer("d").get_weights())
    xs = rng.standard_normal((4, 6, 6, 2)).astype(F32)
    np.testing.assert_allclose(q.predict(xs, verbose=0), m.predict(xs, verbose=0), atol=2e-2)
