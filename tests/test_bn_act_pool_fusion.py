"""Batch norm + activation + max pooling fused into one training kernel
(_core.batchnorm_act_maxpool_forward/backward, BatchNormalization.call_fused_maxpool).

The forward output and the moving averages must equal the three layers run one by one bit for
bit; the gradients agree to float32 rounding (the per-channel sums visit the same non-zero terms
in another order) and are identical for 1 and 2 threads."""
import numpy as np
import pytest

import qnn_ext
from qnn_ext import _core, activations
from qnn_ext import quantizers as Q
from qnn_ext.layers import BatchNormalization, MaxPooling2D, QActivation

ACTS = ["relu", "quantized_relu(4,2)", "binary()", "ternary()", "quantized_bits(4,0,1)",
        "binary(alpha=0.5)", "per-channel alpha", "linear"]


def _act(name, c):
    if name == "relu":
        return activations.lookup("relu")
    if name == "per-channel alpha":
        return Q.quantized_bits(6, 2, 1, alpha=np.linspace(0.5, 2.0, c).astype(np.float32))
    if name == "linear":
        return None
    return Q.get_quantizer(name)


def _layers(shape, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 0.5).astype(np.float32)
    bn = BatchNormalization()
    bn.build(shape)
    bn.gamma.value[...] = rng.uniform(0.5, 2.0, shape[-1]).astype(np.float32)
    bn.beta.value[...] = rng.uniform(-1, 1, shape[-1]).astype(np.float32)
    bn2 = BatchNormalization.from_config(bn.get_config())
    bn2.build(shape)
    bn2.set_weights(bn.get_weights())
    return rng, x, bn, bn2


def _reference(bn, act, pool, x, dy_fn):
    z = bn.call(x, training=True)
    layer = QActivation(act) if act is not None else None
    a = layer.call(z, training=True) if layer else z
    mp = MaxPooling2D(pool)
    y = mp.call(a, training=True)
    dy = dy_fn(y.shape)
    da = mp.backward(dy)
    dz = layer.backward(da) if layer else da
    dx = bn.backward(dz)
    return y, dy, dx, [g.copy() for g in bn.grads]


SHAPES = [((7, 6, 6, 3), (2, 2)), ((2, 9, 9, 64), (2, 2)), ((3, 8, 12, 5), (2, 3)),
          ((1, 4, 4, 1), (4, 4)), ((2, 5, 7, 17), (1, 2)), ((4, 28, 28, 32), (2, 2))]


@pytest.mark.parametrize("shape,pool", SHAPES, ids=[f"{s}-{p}" for s, p in SHAPES])
@pytest.mark.parametrize("name", ACTS)
def test_fused_matches_layers(isa, shape, pool, name):
    rng, x, bn, bn2 = _layers(shape, len(name))
    act = _act(name, shape[-1])
    dys = {}

    def dy_fn(s):
        dys["dy"] = rng.standard_normal(s).astype(np.float32)
        return dys["dy"]

    y_ref, dy, dx_ref, g_ref = _reference(bn, act, pool, x, dy_fn)
    y = bn2.call_fused_maxpool(x, act if act is not None else activations.lookup("linear"), pool) \
        if act is not None else None
    if act is None:  # a linear activation is no activation: the kernel takes act=None
        g, b = bn2._gamma_beta(shape[-1])
        y, mean, var, inv, idx, xsel = _core.batchnorm_act_maxpool_forward(
            "bn", x, g, b, bn2.epsilon, None, pool)
        bn2._update_moving(mean, var, x.size // shape[-1])
        bn2._cache = ("maxpool", x, g, mean, inv, b, None, pool, idx, xsel)
    assert y is not None
    np.testing.assert_array_equal(y, y_ref)
    for a, b in zip(bn2.get_weights(), bn.get_weights()):  # moving averages
        np.testing.assert_array_equal(a, b)
    dx = bn2.backward(dy)
    scale = np.abs(dx_ref).max() + 1e-30
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6 * scale)
    for a, b in zip(bn2.grads, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * (np.abs(b).max() + 1e-30))
    if shape[1] % pool[0] or shape[2] % pool[1]:
        # pixels past the last whole window take no gradient from the pool (only the BN terms)
        assert dx.shape == x.shape


@pytest.mark.parametrize("name", ["relu", "binary()", "quantized_relu(4,2)"])
def test_one_and_two_threads_identical(name, num_threads):
    _, x, bn, _ = _layers((6, 10, 10, 48), 5)
    act = _act(name, 48)
    outs = []
    for nt in (1, 2):
        num_threads(nt)
        b = BatchNormalization.from_config(bn.get_config())
        b.build(x.shape)
        b.set_weights(bn.get_weights())
        y = b.call_fused_maxpool(x, act, (2, 2))
        dx = b.backward(np.linspace(-1, 1, y.size, dtype=np.float32).reshape(y.shape))
        outs.append([y, dx] + b.grads)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_not_fused_when_it_cannot_be():
    x = np.ones((2, 4, 4, 3), np.float32)
    bn = BatchNormalization()
    bn.build(x.shape)
    relu = activations.lookup("relu")
    assert bn.call_fused_maxpool(x, activations.lookup("tanh"), (2, 2)) is None
    assert bn.call_fused_maxpool(x, Q.stochastic_binary(), (2, 2)) is None
    assert bn.call_fused_maxpool(x, relu, (5, 2)) is None  # no whole window
    assert bn.call_fused_maxpool(x, relu, (17, 16)) is None  # more than 256 cells
    assert bn.call_fused_maxpool(x.reshape(2, 4, 12), relu, (2, 2)) is None


def test_kernel_argument_errors():
    x = np.ones((2, 4, 4, 3), np.float32)
    g = np.ones(3, np.float32)
    f = _core.batchnorm_act_maxpool_forward
    with pytest.raises(ValueError, match="bn: x must have 4 dims"):
        f("bn", x[0], g, g, 1e-3, "relu", (2, 2))
    with pytest.raises(ValueError, match="at most 256 cells"):
        f("bn", x, g, g, 1e-3, "relu", (32, 9))
    with pytest.raises(ValueError, match=r"at least one 5 x 2 window"):
        f("bn", x, g, g, 1e-3, "relu", (5, 2))
    with pytest.raises(ValueError, match="bn: pool values must be in"):
        f("bn", x, g, g, 1e-3, "relu", (0, 2))
    with pytest.raises(ValueError, match="bn: eps must be a finite float"):
        f("bn", x, g, g, float("nan"), "relu", (2, 2))
    with pytest.raises(ValueError, match="bn: gamma"):
        f("bn", x, np.ones(4, np.float32), g, 1e-3, "relu", (2, 2))
    spec = Q.quantized_bits(4, 0, 1, alpha=np.ones(3, np.float32))._fused_spec(x, True)
    bad = spec[:3] + (4,) + spec[4:]  # scale per channel, but not on the last axis
    with pytest.raises(ValueError, match="one per channel of the last axis"):
        f("bn", x.reshape(2, 4, 2, 6), np.ones(6, np.float32), None, 1e-3, bad, (2, 2))
    y, mean, var, inv, idx, xsel = f("bn", x, g, g, 1e-3, "relu", (2, 2))
    b = _core.batchnorm_act_maxpool_backward
    args = dict(dy=y, x=x, idx=idx, xsel=xsel, gamma=g, beta=g, batch_mean=mean, inv_std=inv,
                act="relu", pool=(2, 2))
    dx, dg, db = b("bn", **args)
    assert dx.shape == x.shape and dg.shape == db.shape == (3,)
    bad_idx = idx.copy()
    bad_idx.flat[5] = 4
    with pytest.raises(ValueError, match=r"bn: idx values must be < 4 .* idx.flat\[5\] = 4"):
        b("bn", **{**args, "idx": bad_idx})
    with pytest.raises(TypeError, match="bn: idx must be a C-contiguous uint8 array"):
        b("bn", **{**args, "idx": idx.astype(np.int32)})
    with pytest.raises(ValueError, match=r"bn: dy must have shape \(2, 2, 2, 3\) \(the pooled"):
        b("bn", **{**args, "dy": x})
    with pytest.raises(ValueError, match=r"bn: xsel must have shape"):
        b("bn", **{**args, "xsel": x})
    with pytest.raises(TypeError, match="bn: batch_mean and inv_std are required"):
        b("bn", **{**args, "batch_mean": None})


def _model(act, pool_padding="valid", size=8):
    from qnn_ext import Dense, Flatten, Input, Model, QConv2D
    x = inp = Input((size, size, 2))
    x = QConv2D(4, 3, padding="same", kernel_quantizer="quantized_bits(4,0,1)")(x)
    x = BatchNormalization()(x)
    x = QActivation(act)(x)
    x = MaxPooling2D(2, padding=pool_padding)(x)
    x = Flatten()(x)
    x = Dense(3, activation="softmax")(x)
    return Model(inp, x)


def _without_pool_fusion(monkeypatch, model):
    """Keep the batch-norm + activation pairs fused but run max pooling as its own layer."""
    full = type(model)._bn_act_pairs
    monkeypatch.setattr(type(model), "_bn_act_pairs", lambda self: (full(self)[0], {}))


@pytest.mark.parametrize("act", ["relu", "quantized_relu(3,1)", "binary()", "ternary()"])
def test_model_gradients_with_and_without_pool_fusion(act, monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    grads = []
    for fuse in (True, False):
        qnn_ext.utils.set_random_seed(3)
        m = _model(act)
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        if not fuse:
            _without_pool_fusion(monkeypatch, m)
        assert len(m._bn_act_pairs()[1]) == (1 if fuse else 0)
        m.train_on_batch(x, y)
        bn = m.layers[2]
        assert isinstance(bn._cache[0], str) == fuse  # the pooled kernel really ran
        grads.append([g.copy() for layer in m.layers for g in layer.grads])
        monkeypatch.undo()
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * (np.abs(b).max() + 1e-30))


def test_same_padding_pool_fuses_only_when_it_pads_nothing():
    rng = np.random.default_rng(2)
    for size, fused in ((8, True), (7, False)):
        m = _model("relu", "same", size)
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        x = rng.standard_normal((4, size, size, 2)).astype(np.float32)
        m.train_on_batch(x, rng.integers(0, 3, 4))
        assert isinstance(m.layers[2]._cache[0], str) == fused


def test_fit_relu_with_pool_fusion_tracks_unfused(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    weights = []
    for fuse in (True, False):
        qnn_ext.utils.set_random_seed(3)
        m = _model("relu")
        if not fuse:
            _without_pool_fusion(monkeypatch, m)
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        m.fit(x, y, batch_size=16, epochs=2, verbose=0)
        weights.append(m.get_weights())
        monkeypatch.undo()
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
