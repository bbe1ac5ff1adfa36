"""Models: functional and Sequential graphs, compile/fit/evaluate/predict, summary, errors."""
import io
import contextlib

import numpy as np
import pytest

import qnn_ext
from qnn_ext import (Activation, Add, BatchNormalization, Concatenate, Dense, Flatten,
                     Input, MaxPooling2D, Model, QActivation, QConv2D, QDense, Sequential)
from qnn_ext import callbacks, optimizers

F32 = np.float32


def blobs(n=600, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((3, 8)) * 3
    y = rng.integers(0, 3, n)
    x = (centers[y] + rng.standard_normal((n, 8))).astype(F32)
    return x, y


def test_functional_and_sequential_give_the_same_function():
    qnn_ext.utils.set_random_seed(1)
    inp = Input((8,))
    h = Dense(16, activation="relu", name="h")(inp)
    out = Dense(3, activation="softmax", name="o")(h)
    m = Model(inp, out)
    s = Sequential([Input((8,)), Dense(16, activation="relu"), Dense(3, activation="softmax")])
    s.set_weights(m.get_weights())
    x, _ = blobs(20)
    np.testing.assert_allclose(m.predict(x), s.predict(x), rtol=1e-6)
    np.testing.assert_allclose(m(x), s(x), rtol=1e-6)
    assert [l.name for l in m.layers][1:] == ["h", "o"]
    assert m.get_layer("h") is m.layers[1]
    assert m.count_params() == 8 * 16 + 16 + 16 * 3 + 3


def test_fit_learns_and_reports_history():
    qnn_ext.utils.set_random_seed(2)
    x, y = blobs()
    m = Sequential([Dense(16, activation="relu", input_shape=(8,)), Dense(3, activation="softmax")])
    m.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    with contextlib.redirect_stdout(io.StringIO()) as out:
        h = m.fit(x, y, batch_size=32, epochs=5, validation_split=0.2, verbose=2)
    hist = h.history
    assert set(hist) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(hist["loss"]) == 5 and hist["loss"][-1] < hist["loss"][0]
    assert hist["val_accuracy"][-1] > 0.9
    assert "Epoch 5/5" in out.getvalue()
    loss, acc = m.evaluate(x, y, verbose=0)
    assert acc > 0.9 and loss < hist["loss"][0]
    p = m.predict(x[:7])
    assert p.shape == (7, 3) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_sgd_step_through_fit_matches_hand_update():
    qnn_ext.utils.set_random_seed(3)
    m = Sequential([Dense(2, input_shape=(3,), name="lin")])
    m.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    x = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 1.0]], F32)
    y = np.array([[1.0, 0.0], [0.0, 1.0]], F32)
    k, b = m.get_weights()
    pred = x @ k + b
    dpred = 2 * (pred - y) / pred.size
    m.train_on_batch(x, y)
    k2, b2 = m.get_weights()
    np.testing.assert_allclose(k2, k - 0.1 * x.T @ dpred, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b2, b - 0.1 * dpred.sum(0), rtol=1e-5, atol=1e-6)


def test_cnn_with_quantizers_trains():
    qnn_ext.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((128, 8, 8, 1)).astype(F32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int64)
    inp = Input((8, 8, 1))
    h = QConv2D(8, 3, padding="same", kernel_quantizer="quantized_bits(4,0,1)")(inp)
    h = BatchNormalization()(h)
    h = QActivation("quantized_relu(4,2)")(h)
    h = MaxPooling2D(2)(h)
    h = Flatten()(h)
    out = QDense(2, kernel_quantizer="quantized_bits(8,0,1)", activation="softmax")(h)
    m = Model(inp, out)
    m.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    h0 = m.evaluate(x, y, verbose=0)[0]
    m.fit(x, y, batch_size=32, epochs=8, verbose=0)
    loss, acc = m.evaluate(x, y, verbose=0)
    assert loss < h0 and acc > 0.8


def test_branches_add_and_concatenate_backward():
    qnn_ext.utils.set_random_seed(5)
    inp = Input((6,))
    a = Dense(4, name="a")(inp)
    b = Dense(4, name="b")(inp)
    s = Add()([a, b])
    c = Concatenate()([s, a])
    out = Dense(1, name="o")(c)
    m = Model(inp, out)
    m.compile("sgd", "mse")
    x = np.random.default_rng(5).standard_normal((16, 6)).astype(F32)
    yt = x[:, :1] * 2
    before = m.evaluate(x, yt, verbose=0)
    for _ in range(30):
        m.train_on_batch(x, yt)
    assert m.evaluate(x, yt, verbose=0) < before


def test_summary_lists_layers_params_and_quantizers():
    m = Sequential([Input((4,)), QDense(3, kernel_quantizer="quantized_bits(4,0,1)", name="qd"),
                    Activation("softmax")])
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "qd (QDense)" in text and "(None, 3)" in text
    assert "quantized_bits(4,0,1,alpha='auto_po2')" in text
    assert "Total params: 15" in text


def test_terminate_on_nan_stops_training():
    m = Sequential([Dense(1, input_shape=(2,))])
    m.compile(optimizers.SGD(1e30), "mse")
    x = np.ones((64, 2), F32) * 1e20
    y = np.ones((64, 1), F32)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        h = m.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert len(h.history["loss"]) == 1
    assert "Invalid loss, terminating training" in out.getvalue()  # Keras's message


def test_errors_name_model_layer_and_argument():
    m = Sequential([Input((4,)), Dense(3, activation="softmax")])
    with pytest.raises(RuntimeError, match="compile"):
        m.fit(np.zeros((2, 4)), np.zeros(2))
    m.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"shape \(None, 4\)"):
        m.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="samples"):
        m.fit(np.zeros((4, 4)), np.zeros(3))
    with pytest.raises(ValueError):
        m.fit(np.zeros((4, 4), F32), np.array([0, 1, 2, 7]), verbose=0)  # label out of range
    with pytest.raises(ValueError, match="set_weights expects"):
        m.set_weights([np.zeros((4, 3))])
    with pytest.raises(ValueError):
        optimizers.get("adamw_typo")


def test_fused_softmax_cross_entropy_matches_the_generic_path():
    """With a softmax output and (sparse) categorical cross-entropy, loss and gradient come
    from the logits (tf.keras does the same); away from probability clipping they equal the
    generic loss.gradient -> softmax backward path."""
    from qnn_ext import losses
    x, y = blobs(64, seed=7)
    for loss, target in (("sparse_categorical_crossentropy", y),
                         (losses.CategoricalCrossentropy(), np.eye(3, dtype=F32)[y])):
        qnn_ext.utils.set_random_seed(8)
        a = Sequential([Input((8,)), Dense(3, activation="softmax")])
        b = Sequential([Input((8,)), Dense(3, activation="softmax")])
        b.set_weights(a.get_weights())
        a.compile(optimizers.SGD(0.1), loss)
        b.compile(optimizers.SGD(0.1), loss)
        a.train_on_batch(x, target)
        assert a._fused is a.layers[0]
        b._fused_pending = False  # force the generic path
        b._fused = None
        pred = b.predict(x)
        want_loss = b.loss(target, pred)
        b.train_on_batch(x, target)
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
        assert abs(a.evaluate(x, target, verbose=0) - b.evaluate(x, target, verbose=0)) < 1e-5
        assert want_loss > 0


def test_functional_model_config_round_trip():
    qnn_ext.utils.set_random_seed(9)
    inp = Input((8,), name="in")
    a = QDense(6, kernel_quantizer="quantized_bits(4,0,1)", activation="quantized_relu(4)", name="a")(inp)
    b = Dense(6, name="b")(inp)
    c = Concatenate(name="cat")([a, Add(name="add")([a, b])])
    out = Dense(3, activation="softmax", name="out")(c)
    m = Model(inp, out, name="net")
    clone = Model.from_config(m.get_config())
    assert clone.get_config() == m.get_config()
    clone.set_weights(m.get_weights())
    x, _ = blobs(10)
    np.testing.assert_array_equal(clone.predict(x), m.predict(x))
    with pytest.raises(ValueError, match="unknown layer class"):
        cfg = m.get_config()
        cfg["layers"][1]["class_name"] = "os.system"
        Model.from_config(cfg)
