"""Batch norm fused with the activation that follows it (training): the fused kernels must give
bit-identical outputs and gradients to the two layers run one after the other, at every ISA
level, and a model trained with the fusion must match one trained without it exactly."""
import numpy as np
import pytest

import qnn_ext
from qnn_ext import _core, activations
from qnn_ext import quantizers as Q
from qnn_ext.layers import Activation, BatchNormalization, QActivation


def _acts():
    return [
        ("relu", activations.lookup("relu")),
        ("quantized_relu(4,2)", Q.quantized_relu(4, 2)),
        ("quantized_relu(3,1,sr)", Q.quantized_relu(3, 1, use_stochastic_rounding=True)),
        ("binary()", Q.binary()),
        ("binary(alpha=0.5)", Q.binary(alpha=0.5)),
        ("ternary()", Q.ternary()),
        ("quantized_bits(4,0,1)", Q.quantized_bits(4, 0, 1)),
        ("quantized_bits(6,2,1,alpha=[..])", None),  # per-channel alpha, built per shape
    ]


def _pair(act, shape, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 0.5).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    bn = BatchNormalization(gamma_initializer="ones")
    bn.build(shape)
    bn.gamma.value[...] = rng.uniform(0.5, 2.0, shape[-1]).astype(np.float32)
    bn.beta.value[...] = rng.uniform(-1, 1, shape[-1]).astype(np.float32)
    return x, dy, bn


@pytest.mark.parametrize("shape", [(1, 3), (7, 5, 5, 3), (64, 33), (3, 5000), (2, 9, 9, 64)])
@pytest.mark.parametrize("k", range(8))
def test_fused_bn_act_matches_layers(isa, shape, k):
    name, act = _acts()[k]
    if act is None:
        alpha = np.linspace(0.5, 2.0, shape[-1]).astype(np.float32)
        act = Q.quantized_bits(6, 2, 1, alpha=alpha)
    x, dy, bn = _pair(act, shape, k)
    bn2 = BatchNormalization.from_config(bn.get_config())
    bn2.build(shape)
    bn2.set_weights(bn.get_weights())
    layer = QActivation(act)

    qnn_ext.utils.set_random_seed(7)
    z = bn.call(x, training=True)
    y_ref = layer.call(z, training=True)
    dz = layer.backward(dy)
    dx_ref = bn.backward(dz)
    g_ref = [g.copy() for g in bn.grads]

    qnn_ext.utils.set_random_seed(7)
    y = bn2.call_fused(x, act)
    assert y is not None, name
    dx = bn2.backward(dy)
    np.testing.assert_array_equal(y, y_ref, err_msg=name)
    np.testing.assert_array_equal(dx, dx_ref, err_msg=name)
    for a, b in zip(bn2.grads, g_ref):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for a, b in zip(bn2.get_weights(), bn.get_weights()):  # moving averages too
        np.testing.assert_array_equal(a, b, err_msg=name)
    # the quantized output really is quantized (the fused kernel ran the quantizer)
    assert np.unique(y).size <= max(np.unique(y_ref).size, 1)


def test_unfusable_activations_are_left_alone():
    x = np.ones((4, 3), np.float32)
    bn = BatchNormalization()
    bn.build(x.shape)
    assert bn.call_fused(x, activations.lookup("tanh")) is None
    assert bn.call_fused(x, Q.quantized_bits(4, 0, 1, alpha="auto_po2")) is None
    assert bn.call_fused(x, Q.stochastic_binary()) is None
    assert bn.call_fused(x, Q.quantized_hswish(4)) is None


def test_kernel_rejects_bad_act_specs():
    x = np.ones((4, 3), np.float32)
    g = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="act must be None, 'relu'"):
        _core.batchnorm_forward("bn", x, g, g, 1e-3, True, act="gelu")
    with pytest.raises(TypeError, match="act"):
        _core.batchnorm_forward("bn", x, g, g, 1e-3, True, act=3)
    with pytest.raises(ValueError, match="needs training=True"):
        _core.batchnorm_forward("bn", x, g, g, 1e-3, False, mean=g, var=g, act="relu")
    spec = Q.binary()._fused_spec(x, True)
    bad = (spec[0], np.ones(5, np.float32), None, 1) + spec[4:]
    with pytest.raises(ValueError, match="not a multiple of channels"):
        _core.batchnorm_forward("bn", x, g, g, 1e-3, True, act=bad)


def _model(act):
    from qnn_ext import Dense, Flatten, Input, MaxPooling2D, Model, QConv2D
    x = inp = Input((8, 8, 2))
    x = QConv2D(4, 3, padding="same", use_bias=False, kernel_quantizer="quantized_bits(4,0,1)")(x)
    x = BatchNormalization()(x)
    x = QActivation(act)(x)
    x = MaxPooling2D(2)(x)
    x = Flatten()(x)
    x = Dense(8)(x)
    x = BatchNormalization()(x)
    x = Activation("relu")(x)
    x = Dense(3, activation="softmax")(x)
    return Model(inp, x)


@pytest.mark.parametrize("act", ["relu", "quantized_relu(3,1)", "binary()", "ternary()"])
def test_fit_with_and_without_fusion_is_identical(act, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    weights = []
    for fuse in (True, False):
        qnn_ext.utils.set_random_seed(3)
        m = _model(act)
        # the pair fusion only (the pooled one matches to rounding: tests/test_bn_act_pool_fusion.py)
        pairs_only = type(m)._bn_act_pairs
        monkeypatch.setattr(type(m), "_bn_act_pairs",
                            lambda self: (pairs_only(self)[0], {}) if fuse else ({}, {}))
        assert len(m._bn_act_pairs()[0]) == (2 if fuse else 0)
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        m.fit(x, y, batch_size=16, epochs=2, verbose=0)
        weights.append(m.get_weights())
        monkeypatch.undo()
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
