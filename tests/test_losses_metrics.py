"""Losses (values against Keras's formulas, gradients by finite differences) and metrics."""
import numpy as np
import pytest

from qnn_ext import losses, metrics

RNG = np.random.default_rng(1)
EPS = 1e-7


def _probs(n, k):
    z = RNG.standard_normal((n, k))
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _fd(loss, y_true, y_pred, h=1e-6, **kw):
    y_pred = np.array(y_pred, dtype=np.float64)
    g = np.zeros_like(y_pred)
    it = np.nditer(y_pred, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        a = y_pred.copy()
        a[i] += h
        b = y_pred.copy()
        b[i] -= h
        g[i] = (loss(y_true, a, **kw) - loss(y_true, b, **kw)) / (2 * h)
    return g


def _check_grad(loss, y_true, y_pred, **kw):
    y_pred = np.asarray(y_pred, dtype=np.float64)
    got = loss.gradient(y_true, y_pred, **kw)
    assert got.dtype == np.float32 and got.shape == y_pred.shape
    np.testing.assert_allclose(got, _fd(loss, y_true, y_pred, **kw), rtol=2e-4, atol=1e-6)


# ---------------------------------------------------------------- values

def test_categorical_crossentropy_value():
    p = _probs(5, 4).astype(np.float32)
    t = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]]
    ref = -np.sum(t * np.log(np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)), -1).mean()
    assert losses.CategoricalCrossentropy()(t, p) == pytest.approx(ref, rel=1e-6)
    np.testing.assert_allclose(losses.categorical_crossentropy(t, p),
                               -np.sum(t * np.log(p), -1), rtol=1e-5)
    # clipping: a zero probability on the true class gives -log(1e-7), not inf
    assert losses.CategoricalCrossentropy()([[1, 0]], [[0.0, 1.0]]) == \
        pytest.approx(-np.log(np.float32(EPS)), rel=1e-5)


def test_categorical_from_logits_and_label_smoothing():
    z = RNG.standard_normal((4, 3)).astype(np.float32)
    t = np.eye(3, dtype=np.float32)[[0, 2, 1, 1]]
    ls = 0.1
    ts = t * (1 - ls) + ls / 3
    logsm = z - z.max(-1, keepdims=True)
    logsm = logsm - np.log(np.exp(logsm).sum(-1, keepdims=True))
    ref = -(ts * logsm).sum(-1).mean()
    got = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=ls)(t, z)
    assert got == pytest.approx(ref, rel=1e-5)


def test_sparse_equals_categorical_on_one_hot():
    p = _probs(6, 5).astype(np.float32)
    y = np.array([0, 4, 2, 2, 1, 3])
    onehot = np.eye(5, dtype=np.float32)[y]
    for fl in (False, True):
        a = losses.SparseCategoricalCrossentropy(from_logits=fl)(y, p)
        b = losses.CategoricalCrossentropy(from_logits=fl)(onehot, p)
        assert a == pytest.approx(b, rel=1e-5)
    # (N, 1) labels and float-valued integer labels are accepted, as in Keras
    assert losses.SparseCategoricalCrossentropy()(y.reshape(-1, 1).astype(np.float32), p) == \
        pytest.approx(losses.SparseCategoricalCrossentropy()(y, p))


def test_binary_crossentropy_value():
    p = RNG.uniform(0, 1, (5, 3)).astype(np.float32)
    p[0, 0] = 0.0
    p[1, 1] = 1.0
    t = RNG.integers(0, 2, (5, 3)).astype(np.float32)
    c = np.clip(p, EPS, 1 - EPS)
    ref = -(t * np.log(c + EPS) + (1 - t) * np.log(1 - c + EPS)).mean()
    assert losses.BinaryCrossentropy()(t, p) == pytest.approx(ref, rel=1e-5)
    z = RNG.standard_normal((5, 3)).astype(np.float32)
    s = 1 / (1 + np.exp(-z))
    ref = -(t * np.log(s) + (1 - t) * np.log(1 - s)).mean()
    assert losses.BinaryCrossentropy(from_logits=True)(t, z) == pytest.approx(ref, rel=1e-5)
    # (N,) labels against (N, 1) predictions
    assert losses.binary_crossentropy(t[:, 0], p[:, :1]).shape == (5,)


def test_mse_mae_values():
    p = RNG.standard_normal((4, 3)).astype(np.float32)
    t = RNG.standard_normal((4, 3)).astype(np.float32)
    assert losses.get("mse")(t, p) == pytest.approx(((p - t) ** 2).mean(), rel=1e-6)
    assert losses.get("mae")(t, p) == pytest.approx(np.abs(p - t).mean(), rel=1e-6)
    np.testing.assert_allclose(losses.mse(t, p), ((p - t) ** 2).mean(-1), rtol=1e-6)


def test_sample_weight_and_reductions():
    p = RNG.standard_normal((4, 2)).astype(np.float32)
    t = np.zeros((4, 2), np.float32)
    w = np.array([1.0, 0.0, 2.0, 1.0])
    per = ((p - t) ** 2).mean(-1)
    assert losses.MeanSquaredError()(t, p, sample_weight=w) == pytest.approx((per * w).sum() / 4)
    assert losses.MeanSquaredError(reduction="sum")(t, p) == pytest.approx(per.sum(), rel=1e-6)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="none")(t, p), per, rtol=1e-6)
    _check_grad(losses.MeanSquaredError(), t, p, sample_weight=w)
    with pytest.raises(ValueError, match="invalid reduction"):
        losses.MeanSquaredError(reduction="mean")


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cce_gradient(from_logits, label_smoothing):
    p = RNG.standard_normal((4, 5)) if from_logits else _probs(4, 5) * 1.3  # unnormalised rows
    t = np.eye(5)[[0, 3, 2, 4]]
    _check_grad(losses.CategoricalCrossentropy(from_logits, label_smoothing), t, p)


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_cce_gradient(from_logits):
    p = RNG.standard_normal((5, 4)) if from_logits else _probs(5, 4)
    _check_grad(losses.SparseCategoricalCrossentropy(from_logits), np.array([0, 3, 1, 1, 2]), p)


@pytest.mark.parametrize("from_logits", [False, True])
def test_bce_gradient(from_logits):
    p = RNG.standard_normal((4, 3)) * 3 if from_logits else RNG.uniform(0.05, 0.95, (4, 3))
    t = RNG.integers(0, 2, (4, 3)).astype(np.float64)
    _check_grad(losses.BinaryCrossentropy(from_logits), t, p)
    _check_grad(losses.BinaryCrossentropy(from_logits, label_smoothing=0.1), t, p)
    _check_grad(losses.BinaryCrossentropy(from_logits), t[:, 0], p[:, :1])


def test_clipped_gradient_is_zero_where_clip_active():
    g = losses.BinaryCrossentropy().gradient([[1.0, 0.0]], [[0.0, 1.0]])
    np.testing.assert_array_equal(g, [[0.0, 0.0]])


@pytest.mark.parametrize("cls", [losses.MeanSquaredError, losses.MeanAbsoluteError])
def test_regression_gradients(cls):
    p = RNG.standard_normal((3, 4))
    t = RNG.standard_normal((3, 4))
    _check_grad(cls(), t, p)
    _check_grad(cls(), t[:, 0], p[:, 0])  # rank-1 predictions
    _check_grad(cls(), RNG.standard_normal((2, 3, 4)), RNG.standard_normal((2, 3, 4)))


def test_gradient_float32_input():
    p = _probs(3, 4).astype(np.float32)
    g = losses.CategoricalCrossentropy().gradient(np.eye(4)[[0, 1, 2]], p)
    assert g.dtype == np.float32 and g.shape == (3, 4)


# ---------------------------------------------------------------- validation

def test_sparse_label_validation_messages():
    p = _probs(3, 4)
    loss = losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy: label 4 .*\[0, 4\)"):
        loss([0, 4, 1], p)
    with pytest.raises(ValueError, match=r"label -1 "):
        loss([0, -1, 1], p)
    with pytest.raises(ValueError, match=r"integer class indices, got 1\.5"):
        loss(np.array([0, 1.5, 1]), p)
    with pytest.raises(ValueError, match=r"shape \(3,\) or \(3, 1\).*got shape \(3, 4\).*one-hot"):
        loss(np.eye(4)[[0, 1, 2]], p)
    with pytest.raises(ValueError, match=r"got shape \(2,\)"):
        loss([0, 1], p)


def test_one_hot_shape_validation():
    with pytest.raises(ValueError, match=r"categorical_crossentropy: one-hot y_true shape \(3,\) "
                                         r".*sparse_categorical_crossentropy"):
        losses.CategoricalCrossentropy()(np.array([0, 1, 2]), _probs(3, 4))
    with pytest.raises(ValueError, match=r"mean_squared_error: y_true shape \(3, 2\)"):
        losses.MeanSquaredError()(np.zeros((3, 2)), np.zeros((3, 4)))


def test_loss_get_and_config():
    for name in ("categorical_crossentropy", "sparse_categorical_crossentropy",
                 "binary_crossentropy", "mse", "mean_squared_error", "mae",
                 "mean_absolute_error", "CategoricalCrossentropy"):
        obj = losses.get(name)
        assert isinstance(obj, losses.Loss)
        again = type(obj).from_config(obj.get_config())
        assert again.get_config() == obj.get_config()
        assert losses.deserialize(losses.serialize(obj)).get_config() == obj.get_config()
    assert isinstance(losses.get(losses.binary_crossentropy), losses.BinaryCrossentropy)
    cfg = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1).get_config()
    assert cfg["from_logits"] is True and cfg["label_smoothing"] == 0.1
    with pytest.raises(ValueError, match="'categorical_crossentropy'"):
        losses.get("categorical_crossentropyy")


# ---------------------------------------------------------------- metrics

def test_accuracy_metrics_stateful():
    p = np.array([[0.1, 0.9], [0.8, 0.2], [0.6, 0.4]], np.float32)
    onehot = np.array([[0, 1], [0, 1], [1, 0]], np.float32)
    m = metrics.CategoricalAccuracy()
    m.update_state(onehot[:2], p[:2])
    assert m.result() == pytest.approx(0.5)
    m.update_state(onehot[2:], p[2:])
    assert m.result() == pytest.approx(2 / 3)
    m.reset_state()
    assert m.result() == 0.0
    s = metrics.SparseCategoricalAccuracy()
    s.update_state(np.array([[1], [1], [0]]), p)
    assert s.result() == pytest.approx(2 / 3)
    b = metrics.BinaryAccuracy(threshold=0.5)
    b.update_state([0, 1, 0], p[:, :1])
    assert b.result() == pytest.approx(2 / 3) and b.name == "binary_accuracy"
    w = metrics.CategoricalAccuracy()
    w.update_state(onehot, p, sample_weight=[1.0, 3.0, 0.0])
    assert w.result() == pytest.approx(0.25)


def test_top_k_with_ties():
    p = np.array([[0.1, 0.5, 0.5, 0.2], [0.4, 0.3, 0.2, 0.1]], np.float32)
    m = metrics.SparseTopKCategoricalAccuracy(k=1)
    m.update_state([2, 3], p)  # tie at the boundary counts as in the top-1 (tf.math.in_top_k)
    assert m.result() == pytest.approx(0.5)
    t = metrics.TopKCategoricalAccuracy(k=2)
    t.update_state(np.eye(4)[[0, 1]], p)
    assert t.result() == pytest.approx(0.5)
    assert metrics.TopKCategoricalAccuracy().k == 5


def test_mean_and_regression_metrics():
    m = metrics.Mean()
    m.update_state([1.0, 2.0])
    m.update_state(6.0)
    assert m.result() == pytest.approx(3.0)
    m.update_state([10.0], sample_weight=[0.0])
    assert m.result() == pytest.approx(3.0)
    mse = metrics.get("mse")
    assert mse.name == "mse"
    mse.update_state(np.zeros((2, 2)), np.ones((2, 2)))
    assert mse.result() == pytest.approx(1.0)
    assert metrics.MeanAbsoluteError().name == "mean_absolute_error"


@pytest.mark.parametrize("loss,shape,y_true,y_pred,kind", [
    ("categorical_crossentropy", (None, 3), np.eye(3)[[0, 1]], _probs(2, 3), "categorical"),
    ("sparse_categorical_crossentropy", (None, 3), np.array([0, 1]), _probs(2, 3), "sparse"),
    (losses.SparseCategoricalCrossentropy(), None, np.array([0, 1]), _probs(2, 3), "sparse"),
    ("binary_crossentropy", (None, 1), np.array([[1], [0]]), np.array([[0.7], [0.6]]), "binary"),
    ("mse", (None, 1), np.array([[1], [0]]), np.array([[0.7], [0.6]]), "binary"),
])
def test_accuracy_resolution(loss, shape, y_true, y_pred, kind):
    expected = {"categorical": metrics.CategoricalAccuracy,
                "sparse": metrics.SparseCategoricalAccuracy,
                "binary": metrics.BinaryAccuracy}[kind]
    for name in ("accuracy", "acc"):
        m = metrics.get(name, loss=loss, output_shape=shape)
        assert isinstance(m, expected) and m.name == name
        m.update_state(y_true, y_pred)
        assert 0.0 <= m.result() <= 1.0


@pytest.mark.parametrize("y_true,y_pred,expected", [
    (np.array([[1], [0]]), np.array([[0.7], [0.6]]), 0.5),           # binary
    (np.array([1, 0]), np.array([[0.2, 0.8], [0.9, 0.1]]), 1.0),     # sparse by rank
    (np.array([[1], [1]]), np.array([[0.2, 0.8], [0.9, 0.1]]), 0.5),  # sparse by last dim 1
    (np.eye(2)[[1, 1]], np.array([[0.2, 0.8], [0.9, 0.1]]), 0.5),    # categorical
])
def test_accuracy_lazy_resolution_from_shapes(y_true, y_pred, expected):
    m = metrics.get("accuracy")
    m.update_state(y_true, y_pred)
    assert m.result() == pytest.approx(expected)


def test_metric_config_and_get():
    for m in (metrics.BinaryAccuracy(threshold=0.3), metrics.TopKCategoricalAccuracy(k=3),
              metrics.CategoricalAccuracy(), metrics.Mean(name="loss"),
              metrics.CategoricalCrossentropy(from_logits=True)):
        again = type(m).from_config(m.get_config())
        assert again.get_config() == m.get_config()
        assert metrics.deserialize(metrics.serialize(m)).get_config() == m.get_config()
    assert metrics.get("categorical_accuracy").name == "categorical_accuracy"
    custom = metrics.get(lambda t, p: np.abs(t - p).sum(-1))
    again = type(custom).from_config(custom.get_config())
    again.update_state(np.zeros((2, 2)), np.ones((2, 2)))
    assert again.result() == pytest.approx(2.0)
    assert isinstance(metrics.get(metrics.sparse_categorical_accuracy),
                      metrics.SparseCategoricalAccuracy)
    with pytest.raises(ValueError, match="'categorical_accuracy'"):
        metrics.get("categorical_acuracy")
    cce = metrics.get("categorical_crossentropy")
    cce.update_state(np.eye(2), np.array([[0.5, 0.5], [0.5, 0.5]]))
    assert cce.result() == pytest.approx(np.log(2), rel=1e-5)
