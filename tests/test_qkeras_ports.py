"""QKeras's own layer/network tests, re-created on qnn_ext.

Every expected number below is QKeras's, transcribed from its test files (google/qkeras; the
file and test are named above each test), never computed with qnn_ext. The networks, seeds,
weight draws and inputs are rebuilt step by step so that NumPy's legacy seeded generator yields
the same weights and inputs QKeras fed its layers.

What QKeras does that qnn_ext has no counterpart for is replaced as follows:
* ``qkeras.utils.model_save_quantized_weights(model)``: its effect on the model (each weight
  replaced by ``quantizer(weight)``, zipping ``get_quantizers()`` with ``get_weights()``) is
  done by ``_quantize_weights_in_place``; the hardware-weight dict it returns is not used by
  these tests.
* JSON / HDF5 save-and-reload steps (``quantized_model_from_json``, ``model.save`` +
  ``load_qmodel``): they do not change any value the tests assert; where a test compares a
  reloaded model's weights/prediction, ``save_weights``/``load_weights`` into an identically
  built model stands in for it.
* ``print_qstats`` / ``extract_model_operations`` / ``model_quantize`` / QTools: not part of
  qnn_ext; their assertions are not ported (listed in the report, not faked here).
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose

from qnn_ext import (Activation, Flatten, Input, Model, QActivation, QAveragePooling2D,
                     QConv1D, QConv2D, QConv2DTranspose, QDense, QGlobalAveragePooling2D,
                     QScaleShift, QSeparableConv1D, QSeparableConv2D, backend, binary,
                     quantized_bits, quantized_relu, ternary)


# ---------------------------------------------------------------------------- helpers

def _quantize_weights_in_place(model):
    """What model_save_quantized_weights does to the model: every layer that has
    get_quantizers() gets ``q(w)`` for each (quantizer, weight) pair (zip semantics, so layers
    without weights are untouched), then set_weights."""
    for layer in model.layers:
        if not hasattr(layer, "get_quantizers"):
            continue
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for q, w in zip(layer.get_quantizers(), ws):
            new.append(np.asarray(q(w.astype(np.float32)), dtype=np.float32) if q else w)
        new += ws[len(new):]
        layer.set_weights(new)


def _he_like_draw(rng, input_size, shape):
    # QKeras's tests: "he normal initialization with a scale factor of 2.0" written as
    # 10 * N(0, sqrt(2 / input_size)); numpy's legacy normal(loc, scale, size).
    return 10.0 * rng.normal(0.0, np.sqrt(2.0 / input_size), shape)


# ---------------------------------------------------------------------------- qlayers_test.py

# google/qkeras tests/qlayers_test.py::test_qdense (both parametrizations; rtol 1e-4 as there).
@pytest.mark.parametrize("kwargs, expected", [
    (dict(units=2, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros"),
     np.array([[40, 80]], dtype=np.float32)),
    (dict(units=2, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
          kernel_quantizer="quantized_bits(2,0,alpha=1.0)", bias_quantizer="quantized_bits(2,0)"),
     np.array([[2, 2]], dtype=np.float32)),
], ids=["float", "quantized_bits(2,0,alpha=1)"])
def test_qdense(kwargs, expected):
    data = np.array([[1, 1, 1, 1]], dtype=np.float32)
    kernel = np.array([[10, 20], [10, 20], [10, 20], [10, 20]], dtype=np.float32)
    bias = np.array([0, 0], dtype=np.float32)
    layer = QDense(**kwargs)
    x = Input(shape=data.shape[1:], dtype=data.dtype)
    y = layer(x)
    layer.set_weights([kernel, bias])
    model = Model(x, y)
    assert_allclose(model.predict(data), expected, rtol=1e-4)


# ---------------------------------------------------------------------------- qconvolutional_test.py

# google/qkeras tests/qconvolutional_test.py::test_qnetwork (version at commit 8d1ebeee: the
# separable layer has activation=quantized_bits(6,2,1,alpha=1.0), and its pointwise kernel and
# bias are drawn with input_size // prod(kernel_size)).
_QNETWORK_WEIGHT_SUMS = np.array([2., -6.75, -0.625, -2., -0.25, -56., 1.125, -1.625, -1.125])

_QNETWORK_OUTPUT = np.array([
    [0., 0., 0., 0., 0., 0., 1., 0., 0., 0.],
    [0., 0., 0., 0., 0., 0., 1., 0., 0., 7.6e-06],
    [0., 0., 0., 0., 0., 0., 0., 0., 0., 1.],
    [0., 0., 0., 0., 0., 0., 1., 0., 0., 0.],
    [0., 0., 0., 0., 0., 0., 1., 0., 0., 0.],
    [0., 0., 0., 0., 0., 0., 0., 0., 0., 1.],
    [0., 0., 0., 0., 0., 0., 1., 0., 0., 0.],
    [0., 1., 0., 0., 0., 0., 0., 0., 0., 0.],
    [0., 0., 0., 0., 1., 0., 0., 0., 0., 0.],
    [0., 0., 0., 0., 0., 1., 0., 0., 0., 0.]]).astype(np.float16)


def _build_qnetwork():
    """The QKeras test network; returns the model and each layer's input shape (no batch)."""
    in_shape = {}
    x = x_in = Input((28, 28, 1), name="input")

    def add(layer, t):
        in_shape[layer.name] = t.shape[1:]
        return layer(t)

    x = add(QSeparableConv2D(32, (2, 2), strides=(2, 2),
                             depthwise_quantizer=binary(alpha=1.0),
                             pointwise_quantizer=quantized_bits(4, 0, 1, alpha=1.0),
                             activation=quantized_bits(6, 2, 1, alpha=1.0),
                             bias_quantizer=quantized_bits(4, 0, 1),
                             name="conv2d_0_m"), x)
    x = add(QActivation("quantized_relu(6,2,1)", name="act0_m"), x)
    x = add(QConv2D(64, (3, 3), strides=(2, 2), kernel_quantizer=ternary(alpha=1.0),
                    bias_quantizer=quantized_bits(4, 0, 1), name="conv2d_1_m",
                    activation=quantized_relu(6, 3, 1)), x)
    x = add(QConv2D(64, (2, 2), strides=(2, 2),
                    kernel_quantizer=quantized_bits(6, 2, 1, alpha=1.0),
                    bias_quantizer=quantized_bits(4, 0, 1), name="conv2d_2_m"), x)
    x = add(QActivation("quantized_relu(6,4,1)", name="act2_m"), x)
    x = add(Flatten(name="flatten"), x)
    x = add(QDense(10, kernel_quantizer=quantized_bits(6, 2, 1, alpha=1.0),
                   bias_quantizer=quantized_bits(4, 0, 1), name="dense"), x)
    x = add(Activation("softmax", name="softmax"), x)
    return Model(inputs=[x_in], outputs=[x]), in_shape


def _qnetwork_after_quantization():
    backend.set_learning_phase(1)  # as QKeras's test (no stochastic quantizer in this network)
    model, in_shape = _build_qnetwork()
    rng = np.random.RandomState(42)  # same stream as np.random.seed(42)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for i, w in enumerate(ws):
            input_size = int(np.prod(in_shape[layer.name]))
            if len(ws) == 3 and i > 0:  # separable: pointwise kernel and bias
                input_size //= int(np.prod(layer.kernel_size))
            new.append(_he_like_draw(rng, input_size, w.shape))
        layer.set_weights(new)
    _quantize_weights_in_place(model)
    inputs = 2 * rng.rand(10, 28, 28, 1)
    return model, inputs


def test_qnetwork_weight_quantization():
    model, _ = _qnetwork_after_quantization()
    sums = np.array([np.sum(w) for layer in model.layers for w in layer.get_weights()])
    assert sums.size == _QNETWORK_WEIGHT_SUMS.size
    assert np.all(sums == _QNETWORK_WEIGHT_SUMS), (sums, _QNETWORK_WEIGHT_SUMS)


def test_qnetwork_forward():
    model, inputs = _qnetwork_after_quantization()
    out = model.predict(inputs)
    if isinstance(out, list):  # see test_qnetwork_predict_returns_array
        out = out[0]
    actual = np.asarray(out).astype(np.float16)
    assert_allclose(actual, _QNETWORK_OUTPUT, rtol=1e-4)


def test_qnetwork_predict_returns_array():
    # QKeras's test_qnetwork builds Model(inputs=[x_in], outputs=[x]) and calls
    # model.predict(inputs).astype(np.float16): tf.keras unwraps a one-element output list, so
    # predict returns one array, not a list of one array.
    model, _ = _build_qnetwork()
    out = model.predict(np.zeros((1, 28, 28, 1), np.float32))
    assert isinstance(out, np.ndarray), type(out)
    assert out.shape == (1, 10)


# google/qkeras tests/qconvolutional_test.py::test_qconv1d, parametrized over QConv1D and
# QSeparableConv1D (rtol 1e-4 as there; the older QConv1D-only version asserted p == y).
_QCONV1D_OUTPUT = {
    "QConv1D": np.array([[[-2.441, 3.816], [-3.807, -1.426], [-2.684, -1.317], [-1.659, 0.9834]],
                         [[-4.99, 1.139], [-2.559, -1.216], [-2.285, 1.905], [-2.652, -0.467]]]
                        ).astype(np.float16),
    "QSeparableConv1D": np.array([[[-2.275, -3.178], [-0.4358, -3.262], [1.987, 0.3987]],
                                  [[-0.01251, -0.376], [0.3928, -1.328], [-1.243, -2.43]]]
                                 ).astype(np.float16),
}


def _build_qconv1d(layer_cls):
    x = Input((4, 4))
    if layer_cls == "QConv1D":
        layer = QConv1D(2, 1, kernel_quantizer=quantized_bits(6, 2, 1, alpha=1.0),
                        bias_quantizer=quantized_bits(4, 0, 1), name="qconv1d")
    else:
        layer = QSeparableConv1D(2, 2, depthwise_quantizer=quantized_bits(6, 2, 1, alpha=1.0),
                                 pointwise_quantizer=quantized_bits(4, 0, 1, alpha=1.0),
                                 bias_quantizer=quantized_bits(4, 0, 1), name="qconv1d")
    return Model(inputs=x, outputs=layer(x))


@pytest.mark.parametrize("layer_cls", ["QConv1D", "QSeparableConv1D"])
def test_qconv1d(layer_cls, tmp_path):
    rng = np.random.RandomState(33)  # np.random.seed(33) before the model is built
    model = _build_qconv1d(layer_cls)
    input_size = 4 * 4  # prod(layer.input.shape[1:]) for every weight of the layer
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([_he_like_draw(rng, input_size, w.shape) for w in ws])
    # QKeras: model.save(h5) + load_qmodel; here the weights make the same round trip.
    path = str(tmp_path / "qconv1d.npz")
    model.save_weights(path)
    model = _build_qconv1d(layer_cls)
    model.load_weights(path)
    _quantize_weights_in_place(model)
    inputs = rng.rand(2, 4, 4)
    p = model.predict(inputs).astype(np.float16)
    assert_allclose(p, _QCONV1D_OUTPUT[layer_cls], rtol=1e-4)


# google/qkeras tests/qconvolutional_test.py::test_qconv2dtranspose (binary() kernel and bias;
# the kernel quantizer becomes binary(alpha='auto_po2') under the layer-default rule).
def test_qconv2dtranspose():
    x = Input((4, 4, 1))
    y = QConv2DTranspose(1, kernel_size=(3, 3), kernel_quantizer=binary(),
                         bias_quantizer=binary(), name="conv2d_tran")(x)
    model = Model(inputs=x, outputs=y)
    model.get_layer("conv2d_tran").set_weights([np.ones((3, 3, 1, 1)), np.ones((1,))])
    actual = model.predict(np.ones((1, 4, 4, 1))).astype(np.float16)
    expected = np.array([[2., 3., 4., 4., 3., 2.],
                         [3., 5., 7., 7., 5., 3.],
                         [4., 7., 10., 10., 7., 4.],
                         [4., 7., 10., 10., 7., 4.],
                         [3., 5., 7., 7., 5., 3.],
                         [2., 3., 4., 4., 3., 2.]]).reshape((1, 6, 6, 1)).astype(np.float16)
    assert_allclose(actual, expected, rtol=1e-4)


# ---------------------------------------------------------------------------- qpooling_test.py

# google/qkeras tests/qpooling_test.py::test_q_average_pooling (the five channels_last cases;
# rtol 1e-4 on float16 as there). The channels_first case only checks that TF's CPU kernel
# raises InvalidArgumentError: not ported (TF-only behaviour).
_QB401 = (4, 0, 1)  # quantized_bits(4, 0, 1)
_POOLING_CASES = [
    ("QAveragePooling2D", (2, 2), (2, 2), "valid", _QB401, _QB401,
     np.array([[[[0.375, 0.625, 0.375], [0.25, 0.75, 0.5]],
                [[0.375, 0.25, 0.625], [0.625, 0.5, 0.375]]],
               [[[0.375, 0.375, 0.5], [0.375, 0.5, 0.625]],
                [[0.75, 0.625, 0.5], [0.5, 0.5, 0.75]]]])),
    ("QAveragePooling2D", (3, 3), (3, 3), "valid", _QB401, _QB401,
     np.array([[[[0.375, 0.625, 0.625]]], [[[0.625, 0.5, 0.625]]]])),
    ("QGlobalAveragePooling2D", (2, 2), (2, 2), "valid", (10, 0, 1), _QB401,
     np.array([[0.5, 0.5, 0.375], [0.5, 0.5, 0.625]])),
    ("QAveragePooling2D", (2, 2), (3, 3), "valid", _QB401, _QB401,
     np.array([[[[0.375, 0.625, 0.375]]], [[[0.375, 0.375, 0.5]]]])),
    ("QAveragePooling2D", (2, 2), (3, 3), "same", _QB401, _QB401,
     np.array([[[[0.375, 0.625, 0.375], [0.375, 0.75, 0.25]],
                [[0.75, 0.25, 0.375], [0.75, 0.75, 0.25]]],
               [[[0.375, 0.375, 0.5], [0.25, 0.625, 0.5]],
                [[0.625, 0.625, 0.5], [0.625, 0.625, 0.875]]]])),
]


@pytest.mark.parametrize("pooling, pool_size, strides, padding, avg_q, act_q, expected",
                         _POOLING_CASES,
                         ids=["avg2x2s2", "avg3x3s3", "global", "avg2x2s3", "avg2x2s3same"])
def test_q_average_pooling(pooling, pool_size, strides, padding, avg_q, act_q, expected):
    rng = np.random.RandomState(33)
    x = xin = Input((4, 4, 3))
    # quantizer objects, as in QKeras's parametrization
    avg_q, act_q = quantized_bits(*avg_q), quantized_bits(*act_q)
    if pooling == "QAveragePooling2D":
        x = QAveragePooling2D(pool_size=pool_size, strides=strides, padding=padding,
                              data_format="channels_last", average_quantizer=avg_q,
                              activation=act_q, name="qpooling")(x)
    else:
        x = QGlobalAveragePooling2D(data_format="channels_last", average_quantizer=avg_q,
                                    activation=act_q, name="qpooling")(x)
    model = Model(inputs=xin, outputs=x)
    inputs = rng.rand(2, 4, 4, 3)
    p = model.predict(inputs).astype(np.float16)
    assert_allclose(p, expected.astype(np.float16), rtol=1e-4)
    # QKeras then reloads (JSON, h5) and applies model_save_quantized_weights: no weights here,
    # so the prediction must simply be unchanged.
    _quantize_weights_in_place(model)
    assert_allclose(model.predict(inputs).astype(np.float16), expected.astype(np.float16),
                    rtol=1e-4)


# google/qkeras tests/qpooling_test.py::test_QAveragePooling_output (exact equality as there).
def test_qaveragepooling_output():
    x = np.ones((2, 6, 6, 1))
    x[0, 0, :, :] = 0
    y = QAveragePooling2D(pool_size=(3, 3), strides=3, padding="valid",
                          average_quantizer="quantized_bits(8, 1, 1)")(x)
    assert np.all(np.asarray(y) == [[[[0.65625], [0.65625]], [[0.984375], [0.984375]]],
                                    [[[0.984375], [0.984375]], [[0.984375], [0.984375]]]])


# google/qkeras tests/qpooling_test.py::test_QGlobalAveragePooling_output (exact equality).
def test_qglobalaveragepooling_output():
    x = np.ones((2, 3, 3, 2))
    x[0, 0, 1, :] = 0
    y = QGlobalAveragePooling2D(average_quantizer="quantized_bits(8, 1, 1)")(x)
    assert np.all(np.asarray(y) == np.array([[0.875, 0.875], [0.984375, 0.984375]]))


# google/qkeras tests/qpooling_test.py::test_qpooling_in_model_quantize, partially: QKeras builds
# the two layers with model_quantize (absent from qnn_ext) from this config and checks the
# str() of the resolved quantizers; here the layers are built directly from the same strings.
def test_qpooling_quantizer_strings():
    x = xin = Input((16, 16, 3))
    x = QAveragePooling2D(pool_size=(2, 2), average_quantizer="binary", activation="binary",
                          name="pooling")(x)
    x = QGlobalAveragePooling2D(average_quantizer="quantized_bits(4, 0, 1)",
                                activation="ternary", name="global_pooling")(x)
    qmodel = Model(inputs=xin, outputs=x)
    assert str(qmodel.layers[1].average_quantizer_internal) == "binary()"
    assert str(qmodel.layers[1].activation) == "binary()"
    assert str(qmodel.layers[2].average_quantizer_internal) == "quantized_bits(4,0,1)"
    assert str(qmodel.layers[2].activation) == "ternary()"


# ---------------------------------------------------------------------------- qmac_test.py

def _build_qmac(data):
    layer = QScaleShift(weight_quantizer="quantized_bits(8,2,alpha=1.0)",
                        bias_quantizer="quantized_bits(8,2,alpha=1.0)",
                        activation="quantized_bits(8,4,alpha=1.0)")
    x = Input(shape=data.shape[1:], dtype=data.dtype)
    return layer, Model(x, layer(x))


# google/qkeras tests/qmac_test.py::test_qmac (QScaleShift; rtol 1e-4, then a save/load round
# trip that must keep the weights and the prediction bit-identical).
def test_qmac(tmp_path):
    data = np.array([[1, 1], [2, 2]], dtype=np.float32)
    layer, model = _build_qmac(data)
    layer.set_weights([np.array([[1.0]]), np.array([[4.0]])])
    actual = model.predict(data)
    assert_allclose(actual, np.array([[5, 5], [6, 6]], dtype=np.float32), rtol=1e-4)
    path = str(tmp_path / "qmac.npz")
    model.save_weights(path)
    _, loaded = _build_qmac(data)
    loaded.load_weights(path)
    assert len(model.weights) == len(loaded.weights)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_equal(a, b)
    np.testing.assert_equal(actual, loaded.predict(data))
