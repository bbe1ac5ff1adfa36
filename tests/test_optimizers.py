"""Optimizers against the tf.keras 2.x update formulas written out in NumPy."""
import numpy as np
import pytest

from qnn_ext import optimizers
from qnn_ext.optimizers import SGD, Adam, RMSprop, schedules
from qnn_ext.variables import Variable

RNG = np.random.default_rng(0)
W0 = RNG.standard_normal((3, 4)).astype(np.float32)
GRADS = [RNG.standard_normal((3, 4)).astype(np.float32) for _ in range(4)]


def _run(opt, w0=W0, grads=GRADS, constraint=None):
    v = Variable(w0.copy(), "w", constraint=constraint)
    arr = v.value
    for g in grads:
        opt.apply_gradients([(g, v)])
    assert v.value is arr  # updated in place
    return v.value


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_keras_formula(momentum, nesterov):
    lr = np.float32(0.1)
    w = W0.copy()
    vel = np.zeros_like(w)
    for g in GRADS:
        if momentum == 0:
            w = w - lr * g
        else:
            vel = np.float32(momentum) * vel - lr * g
            w = w + (np.float32(momentum) * vel - lr * g if nesterov else vel)
    got = _run(SGD(learning_rate=0.1, momentum=momentum, nesterov=nesterov))
    np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_keras_formula(amsgrad):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    w = W0.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    vhat = np.zeros_like(w)
    for t, g in enumerate(GRADS, start=1):
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vhat = np.maximum(vhat, v)
        w = w - lr_t * m / (np.sqrt(vhat if amsgrad else v) + eps)
    got = _run(Adam(learning_rate=lr, amsgrad=amsgrad))
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum,centered", [(0.0, False), (0.5, False), (0.0, True),
                                               (0.5, True)])
def test_rmsprop_matches_keras_formula(momentum, centered):
    lr, rho, eps = 0.01, 0.9, 1e-7
    w = W0.astype(np.float64)
    ms = np.zeros_like(w)
    mg = np.zeros_like(w)
    mom = np.zeros_like(w)
    for g in GRADS:
        ms = rho * ms + (1 - rho) * g * g
        denom = ms
        if centered:
            mg = rho * mg + (1 - rho) * g
            denom = ms - mg * mg
        if momentum:
            mom = momentum * mom + lr * g / np.sqrt(denom + eps)
            w = w - mom
        else:
            w = w - lr * g / (np.sqrt(denom) + eps)
    got = _run(RMSprop(learning_rate=lr, momentum=momentum, centered=centered))
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-5)


def test_defaults_match_keras():
    assert SGD().get_config() == {"name": "SGD", "learning_rate": 0.01, "decay": 0.0,
                                  "momentum": 0.0, "nesterov": False}
    a = Adam().get_config()
    assert (a["learning_rate"], a["beta_1"], a["beta_2"], a["epsilon"], a["amsgrad"]) == \
        (0.001, 0.9, 0.999, 1e-7, False)
    r = RMSprop().get_config()
    assert (r["learning_rate"], r["rho"], r["momentum"], r["epsilon"], r["centered"]) == \
        (0.001, 0.9, 0.0, 1e-7, False)


def test_constraint_applied_after_update():
    calls = []

    def clip(w):
        calls.append(w.copy())
        return np.clip(w, -0.5, 0.5)

    got = _run(SGD(learning_rate=1.0), grads=[GRADS[0]], constraint=clip)
    np.testing.assert_allclose(calls[0], W0 - GRADS[0], rtol=1e-6)  # saw the updated value
    np.testing.assert_allclose(got, np.clip(W0 - GRADS[0], -0.5, 0.5), rtol=1e-6)


def test_iterations_and_schedule_evaluated_before_increment():
    sched = schedules.PiecewiseConstantDecay([0, 1], [1.0, 0.5, 0.25])
    opt = SGD(learning_rate=sched)
    v = Variable(np.zeros(2, np.float32), "w")
    g = np.ones(2, np.float32)
    seen = []
    for _ in range(3):
        before = v.value.copy()
        opt.apply_gradients([(g, v)])
        seen.append(float((before - v.value)[0]))
    assert opt.iterations == 3
    assert seen == [1.0, 0.5, 0.25]


def test_schedules_formulas_and_config():
    e = schedules.ExponentialDecay(0.1, 10, 0.5)
    assert e(5) == pytest.approx(0.1 * 0.5 ** 0.5, rel=1e-6)
    assert schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)(15) == pytest.approx(0.05)
    i = schedules.InverseTimeDecay(0.1, 10, 1.0)
    assert i(10) == pytest.approx(0.05)
    c = schedules.CosineDecay(0.1, 100, alpha=0.1)
    assert c(0) == pytest.approx(0.1)
    assert c(100) == pytest.approx(0.01) and c(500) == pytest.approx(0.01)
    assert c(50) == pytest.approx(0.1 * (0.9 * 0.5 + 0.1), rel=1e-6)
    for s in (e, i, c, schedules.PiecewiseConstantDecay([5], [1.0, 0.1])):
        s2 = type(s).from_config(s.get_config())
        assert s2.get_config() == s.get_config()
    with pytest.raises(ValueError, match="1 less"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0])


def test_learning_rate_settable_and_lr_alias():
    opt = Adam()
    opt.learning_rate = 0.5
    assert opt.lr == 0.5
    opt.lr = 0.25
    assert opt.learning_rate == 0.25
    with pytest.raises(ValueError):
        opt.learning_rate = -1.0
    assert SGD(lr=0.3).learning_rate == 0.3  # Keras 2.x legacy keyword


def test_config_round_trip_with_schedule():
    opt = Adam(learning_rate=schedules.ExponentialDecay(0.01, 100, 0.9), beta_1=0.8, amsgrad=True)
    cfg = opt.get_config()
    assert cfg["learning_rate"]["class_name"] == "ExponentialDecay"
    opt2 = Adam.from_config(cfg)
    assert opt2.get_config() == cfg
    opt3 = optimizers.deserialize(optimizers.serialize(opt))
    assert isinstance(opt3, Adam) and opt3.get_config() == cfg


def test_get_weights_resume_matches_uninterrupted():
    def make():
        return [Variable(W0.copy(), "a"), Variable(W0[0].copy(), "b")]

    ref = Adam(0.01)
    va = make()
    for g in GRADS:
        ref.apply_gradients([(g, va[0]), (g[0], va[1])])

    first = Adam(0.01)
    vb = make()
    for g in GRADS[:2]:
        first.apply_gradients([(g, vb[0]), (g[0], vb[1])])
    state = first.get_weights()
    assert len(state) == 1 + 2 * 2 and int(state[0]) == 2
    resumed = Adam(0.01)
    resumed.set_weights(state)  # before any variable is known: held until the first step
    for g in GRADS[2:]:
        resumed.apply_gradients([(g, vb[0]), (g[0], vb[1])])
    np.testing.assert_array_equal(vb[0].value, va[0].value)
    np.testing.assert_array_equal(vb[1].value, va[1].value)
    assert resumed.iterations == ref.iterations == 4


def test_set_weights_shape_errors():
    opt = SGD(momentum=0.9)
    v = Variable(np.zeros(3, np.float32), "w")
    opt.build([v])
    with pytest.raises(ValueError, match="momentum"):
        opt.set_weights([np.int64(0), np.zeros(4, np.float32)])
    with pytest.raises(ValueError, match="empty"):
        opt.set_weights([])
    with pytest.raises(ValueError, match="1 \\+ 2"):
        Adam().set_weights([np.int64(0), np.zeros(3)])


def test_apply_gradients_validation():
    opt = SGD()
    v = Variable(np.zeros((2, 2), np.float32), "kernel")
    with pytest.raises(ValueError, match="kernel.*shape"):
        opt.apply_gradients([(np.zeros(3, np.float32), v)])
    with pytest.raises(ValueError, match="no gradients"):
        opt.apply_gradients([(None, v)])
    with pytest.raises(TypeError):
        opt.apply_gradients([np.zeros(2)])
    with pytest.raises(ValueError, match="momentum"):
        SGD(momentum=1.5)


def test_clipnorm_and_clipvalue():
    v = Variable(np.zeros(2, np.float32), "w")
    SGD(1.0, clipnorm=1.0).apply_gradients([(np.array([3.0, 4.0], np.float32), v)])
    np.testing.assert_allclose(v.value, [-0.6, -0.8], rtol=1e-6)
    v2 = Variable(np.zeros(2, np.float32), "w")
    SGD(1.0, clipvalue=0.5).apply_gradients([(np.array([3.0, -0.1], np.float32), v2)])
    np.testing.assert_allclose(v2.value, [-0.5, 0.1], rtol=1e-6)


def test_get():
    assert isinstance(optimizers.get("adam"), Adam)
    assert isinstance(optimizers.get("SGD"), SGD)
    assert isinstance(optimizers.get("RMSprop"), RMSprop)
    o = Adam()
    assert optimizers.get(o) is o
    d = optimizers.get({"class_name": "SGD", "config": {"learning_rate": 0.2, "momentum": 0.5}})
    assert d.learning_rate == 0.2 and d.momentum == 0.5
    with pytest.raises(ValueError, match="'adam'.*Valid names: adam, rmsprop, sgd"):
        optimizers.get("adma")
    with pytest.raises(ValueError):
        optimizers.get(3)
