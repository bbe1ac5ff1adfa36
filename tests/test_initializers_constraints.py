"""Initializers (statistics with fixed seeds), constraints and regularizers."""
import math

import numpy as np
import pytest

from qnn_ext import constraints, initializers, regularizers, utils
from qnn_ext.initializers import compute_fans


# ---------------------------------------------------------------- initializers

def test_fans_dense_and_conv():
    assert compute_fans((784, 128)) == (784, 128)
    assert compute_fans((3, 3, 16, 32)) == (9 * 16, 9 * 32)
    assert compute_fans((5, 8, 4)) == (40, 20)
    assert compute_fans((7,)) == (7, 7)
    assert compute_fans(()) == (1, 1)


def test_constant_family():
    assert initializers.get("zeros")((2, 3)).tolist() == [[0.0] * 3] * 2
    o = initializers.Ones()((4,))
    assert o.dtype == np.float32 and o.tolist() == [1.0] * 4
    c = initializers.Constant(0.5)((2, 2))
    assert c.dtype == np.float32 and np.all(c == 0.5)
    assert initializers.Zeros()((2,), dtype="float64").dtype == np.float64
    with pytest.raises(ValueError, match="floating point dtype"):
        initializers.RandomNormal()((2,), dtype="int32")


@pytest.mark.parametrize("init,mean,std,lo,hi", [
    (initializers.RandomNormal(mean=1.0, stddev=0.5, seed=1), 1.0, 0.5, None, None),
    (initializers.RandomUniform(minval=-0.2, maxval=0.4, seed=2), 0.1, 0.6 / math.sqrt(12),
     -0.2, 0.4),
    # a normal cut at 2 stddev has std 0.87962566 * stddev
    (initializers.TruncatedNormal(mean=0.0, stddev=0.1, seed=3), 0.0, 0.1 * 0.87962566,
     -0.2, 0.2),
])
def test_random_statistics(init, mean, std, lo, hi):
    x = init((200, 100))
    assert x.dtype == np.float32 and x.shape == (200, 100)
    assert abs(x.mean() - mean) < 0.02 * max(1.0, abs(mean)) + 3 * std / math.sqrt(x.size)
    assert x.std() == pytest.approx(std, rel=0.02)
    if lo is not None:
        assert x.min() >= lo and x.max() <= hi


@pytest.mark.parametrize("name,shape,var", [
    ("glorot_uniform", (300, 100), 2.0 / 400),
    ("glorot_normal", (300, 100), 2.0 / 400),
    ("he_normal", (3, 3, 64, 32), 2.0 / (9 * 64)),
    ("he_uniform", (3, 3, 64, 32), 2.0 / (9 * 64)),
    ("lecun_normal", (500, 50), 1.0 / 500),
    ("lecun_uniform", (500, 50), 1.0 / 500),
])
def test_variance_scaling_presets(name, shape, var):
    init = type(initializers.get(name))(seed=7)
    x = init(shape)
    assert x.dtype == np.float32 and x.shape == shape
    assert x.var() == pytest.approx(var, rel=0.05)
    fan_in, fan_out = compute_fans(shape)
    n = (fan_in + fan_out) / 2 if "glorot" in name else fan_in
    scale = (2.0 if "he" in name else 1.0) / n
    if "uniform" in name:
        assert np.abs(x).max() <= math.sqrt(3 * scale) + 1e-7
    else:  # truncated at 2 * sqrt(scale) / 0.8796...
        assert np.abs(x).max() <= 2 * math.sqrt(scale) / 0.87962566103423978 + 1e-6


def test_variance_scaling_modes_and_untruncated():
    x = initializers.VarianceScaling(3.0, "fan_out", "untruncated_normal", seed=0)((100, 400))
    assert x.var() == pytest.approx(3.0 / 400, rel=0.05)
    assert np.abs(x).max() > 2 * math.sqrt(3.0 / 400)  # not cut
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan")
    with pytest.raises(ValueError, match="scale"):
        initializers.VarianceScaling(scale=0)


def test_orthogonal_and_identity():
    q = initializers.Orthogonal(gain=2.0, seed=0)((6, 4))
    np.testing.assert_allclose(q.T @ q, 4.0 * np.eye(4), atol=1e-5)
    w = initializers.Orthogonal(seed=0)((4, 6))
    np.testing.assert_allclose(w @ w.T, np.eye(4), atol=1e-5)
    k = initializers.Orthogonal(seed=1)((3, 3, 2, 8))
    flat = k.reshape(-1, 8)
    np.testing.assert_allclose(flat.T @ flat, np.eye(8), atol=1e-5)
    np.testing.assert_array_equal(initializers.Identity(gain=3.0)((2, 3)),
                                  [[3, 0, 0], [0, 3, 0]])
    with pytest.raises(ValueError, match="2D"):
        initializers.Identity()((2, 2, 2))
    with pytest.raises(ValueError, match="two-dimensional"):
        initializers.Orthogonal()((4,))


def test_seeds_and_global_stream():
    a = initializers.GlorotUniform(seed=5)((4, 4))
    np.testing.assert_array_equal(a, initializers.GlorotUniform(seed=5)((4, 4)))
    assert not np.array_equal(a, initializers.GlorotUniform(seed=6)((4, 4)))
    utils.set_random_seed(123)
    u1 = [initializers.get("he_normal")((3, 3)), initializers.RandomUniform()((5,))]
    utils.set_random_seed(123)
    u2 = [initializers.get("he_normal")((3, 3)), initializers.RandomUniform()((5,))]
    for x, y in zip(u1, u2):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(initializers.HeNormal()((3, 3)), u1[0])  # stream moved on


def test_initializer_config_and_get():
    for init in (initializers.Zeros(), initializers.Constant(0.3),
                 initializers.RandomNormal(0.1, 0.2, seed=3), initializers.RandomUniform(seed=1),
                 initializers.TruncatedNormal(stddev=1.0),
                 initializers.VarianceScaling(2.0, "fan_avg", "uniform", seed=4),
                 initializers.GlorotUniform(seed=9), initializers.Orthogonal(0.5),
                 initializers.Identity(2.0)):
        again = type(init).from_config(init.get_config())
        assert again.get_config() == init.get_config()
        assert initializers.deserialize(initializers.serialize(init)).get_config() == \
            init.get_config()
    assert initializers.GlorotUniform(seed=3).get_config() == {"seed": 3}
    assert isinstance(initializers.get("GlorotNormal"), initializers.GlorotNormal)
    assert isinstance(initializers.get({"class_name": "HeNormal", "config": {"seed": 1}}),
                      initializers.HeNormal)
    with pytest.raises(ValueError, match="'glorot_uniform'"):
        initializers.get("glorot_unifrom")


# ---------------------------------------------------------------- constraints

def test_norm_constraints():
    w = np.array([[3.0, 0.1], [4.0, 0.2]], np.float32)  # column norms 5 and ~0.22
    m = constraints.MaxNorm(max_value=2)(w)
    np.testing.assert_allclose(np.linalg.norm(m, axis=0), [2.0, np.linalg.norm(w[:, 1])],
                               rtol=1e-5)
    u = constraints.UnitNorm()(w)
    np.testing.assert_allclose(np.linalg.norm(u, axis=0), [1.0, 1.0], rtol=1e-5)
    mm = constraints.MinMaxNorm(min_value=0.5, max_value=1.0, rate=0.5)(w)
    np.testing.assert_allclose(np.linalg.norm(mm, axis=0),
                               [0.5 * 1.0 + 0.5 * 5.0, 0.5 * 0.5 + 0.5 * np.linalg.norm(w[:, 1])],
                               rtol=1e-5)
    np.testing.assert_array_equal(constraints.NonNeg()(np.array([-1.0, 2.0], np.float32)),
                                  [0.0, 2.0])
    k = np.ones((3, 3, 2, 4), np.float32)
    c = constraints.MaxNorm(1.0, axis=[0, 1, 2])(k)
    np.testing.assert_allclose(np.sqrt((c ** 2).sum(axis=(0, 1, 2))), 1.0, rtol=1e-5)
    assert constraints.MaxNorm()(w).dtype == np.float32


def test_clip_constraint_qkeras():
    c = constraints.Clip(-1.0, 1.0)
    np.testing.assert_array_equal(c(np.array([-3.0, 0.5, 2.0], np.float32)), [-1.0, 0.5, 1.0])
    assert c.get_config() == {"min_value": -1.0, "max_value": 1.0}
    assert constraints.Clip().get_config() == {"min_value": 0.0, "max_value": 1.0}
    # K.clip: max < min raises max to min
    np.testing.assert_array_equal(constraints.Clip(1.0, -1.0)(np.array([-2.0, 0.0, 2.0])),
                                  [1.0, 1.0, 1.0])
    inner = constraints.Clip(-2, 2, constraint=constraints.NonNeg())
    np.testing.assert_array_equal(inner(np.array([-1.0, 3.0])), [0.0, 2.0])
    assert constraints.Clip(constraint=constraints.Clip()).constraint is None
    again = constraints.deserialize(constraints.serialize(c))
    assert isinstance(again, constraints.Clip) and again.get_config() == c.get_config()


def test_constraint_config_and_get():
    for con in (constraints.MaxNorm(3, axis=1), constraints.NonNeg(), constraints.UnitNorm(1),
                constraints.MinMaxNorm(0.1, 2.0, 0.5, 0)):
        assert type(con).from_config(con.get_config()).get_config() == con.get_config()
    assert isinstance(constraints.get("max_norm"), constraints.MaxNorm)
    assert isinstance(constraints.get("NonNeg"), constraints.NonNeg)
    assert constraints.get(None) is None
    with pytest.raises(ValueError, match="'non_neg'"):
        constraints.get("non_negg")


# ---------------------------------------------------------------- regularizers

def test_regularizers_values_and_gradients():
    x = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
    assert regularizers.L1(0.1)(x) == pytest.approx(0.35)
    assert regularizers.L2(0.1)(x) == pytest.approx(0.1 * 5.25)
    r = regularizers.L1L2(l1=0.1, l2=0.2)
    assert r(x) == pytest.approx(0.35 + 0.2 * 5.25)
    np.testing.assert_allclose(r.gradient(x), 0.1 * np.sign(x) + 0.4 * x, rtol=1e-6)
    g = regularizers.L2(0.3).gradient(x)
    assert g.dtype == np.float32
    h = 1e-3
    xd = x.astype(np.float64)
    for i in np.ndindex(x.shape):
        a, b = xd.copy(), xd.copy()
        a[i] += h
        b[i] -= h
        fd = (regularizers.L2(0.3)(a) - regularizers.L2(0.3)(b)) / (2 * h)
        assert g[i] == pytest.approx(fd, rel=1e-3, abs=1e-4)


def test_regularizer_get_and_config():
    assert regularizers.get("l2").get_config() == {"l2": 0.01}
    assert regularizers.get("l1").get_config() == {"l1": 0.01}
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    assert regularizers.L2(l=0.5).l2 == 0.5
    for r in (regularizers.L1(0.2), regularizers.L2(0.3), regularizers.L1L2(0.1, 0.4)):
        assert regularizers.deserialize(regularizers.serialize(r)).get_config() == r.get_config()
    with pytest.raises(ValueError, match="'l2'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match=">= 0"):
        regularizers.L2(-1.0)


def test_clip_in_place_equals_assigning_the_call():
    from qnn_ext.variables import Variable
    rng = np.random.default_rng(0)
    w0 = (rng.standard_normal((40, 7)) * 2).astype(np.float32)
    w0[3, 2] = np.nan
    for lo, hi in ((-1.0, 1.0), (0.5, -0.5), (-0.25, 3)):
        c = constraints.Clip(lo, hi)
        v = Variable(w0.copy(), "w", constraint=c)
        arr = v.value
        v.apply_constraint()
        assert v.value is arr  # updated in place (optimizer slots keep referring to it)
        np.testing.assert_array_equal(v.value, c(w0))
    # an inner constraint, or a subclass's own __call__, takes the general path
    inner = constraints.Clip(-2, 2, constraint=constraints.NonNeg())
    assert not inner.apply_inplace(w0.copy())

    class Halve(constraints.Clip):
        def __call__(self, w):
            return super().__call__(w) / 2

    v = Variable(w0.copy(), "w", constraint=Halve(-1.0, 1.0))
    v.apply_constraint()
    np.testing.assert_array_equal(v.value, constraints.Clip(-1.0, 1.0)(w0) / 2)
