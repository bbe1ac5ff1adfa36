"""The C optimizer updates (_core.sgd_update / adam_update / rmsprop_update) against the NumPy
expressions of Keras 2.x's update rules, bit for bit, over several steps, at 1 and 2 threads,
and their argument checks."""
import numpy as np
import pytest

from qnn_ext import _core
from qnn_ext.optimizers import SGD, Adam, RMSprop
from qnn_ext.variables import Variable

F32 = np.float32


def np_sgd(w, g, slots, lr, momentum, nesterov):
    if not slots:
        w -= lr * g
        return
    m = F32(momentum)
    v = slots[0]
    v *= m
    v -= lr * g
    if nesterov:
        w += m * v - lr * g
    else:
        w += v


def np_adam(w, g, slots, lr, t, b1, b2, eps, amsgrad):
    b1, b2 = F32(b1), F32(b2)
    lr_t = lr * (np.sqrt(F32(1) - b2 ** F32(t)) / (F32(1) - b1 ** F32(t)))
    m, v = slots[0], slots[1]
    m *= b1
    m += (F32(1) - b1) * g
    v *= b2
    v += (F32(1) - b2) * (g * g)
    if amsgrad:
        np.maximum(slots[2], v, out=slots[2])
        v = slots[2]
    w -= lr_t * m / (np.sqrt(v) + F32(eps))


def np_rmsprop(w, g, slots, lr, rho, momentum, eps, centered):
    rho, eps = F32(rho), F32(eps)
    ms = slots[0]
    ms *= rho
    ms += (F32(1) - rho) * (g * g)
    denom = ms
    if centered:
        mg = slots[-1]
        mg *= rho
        mg += (F32(1) - rho) * g
        denom = ms - mg * mg
    if momentum > 0:
        mom = slots[1]
        mom *= F32(momentum)
        mom += lr * g / np.sqrt(denom + eps)
        w -= mom
    else:
        w -= lr * g / (np.sqrt(denom) + eps)


CASES = [
    ("sgd", lambda: SGD(0.05), lambda w, g, s, lr, t: np_sgd(w, g, s, lr, 0.0, False)),
    ("sgd_mom", lambda: SGD(0.05, momentum=0.9), lambda w, g, s, lr, t: np_sgd(w, g, s, lr, 0.9, False)),
    ("sgd_nesterov", lambda: SGD(0.05, momentum=0.7, nesterov=True),
     lambda w, g, s, lr, t: np_sgd(w, g, s, lr, 0.7, True)),
    ("adam", lambda: Adam(0.01), lambda w, g, s, lr, t: np_adam(w, g, s, lr, t, 0.9, 0.999, 1e-7, False)),
    ("adam_ams", lambda: Adam(0.01, beta_1=0.8, amsgrad=True),
     lambda w, g, s, lr, t: np_adam(w, g, s, lr, t, 0.8, 0.999, 1e-7, True)),
    ("rmsprop", lambda: RMSprop(0.01), lambda w, g, s, lr, t: np_rmsprop(w, g, s, lr, 0.9, 0.0, 1e-7, False)),
    ("rmsprop_mom_centered", lambda: RMSprop(0.01, momentum=0.5, centered=True),
     lambda w, g, s, lr, t: np_rmsprop(w, g, s, lr, 0.9, 0.5, 1e-7, True)),
    ("rmsprop_centered", lambda: RMSprop(0.02, rho=0.8, centered=True),
     lambda w, g, s, lr, t: np_rmsprop(w, g, s, lr, 0.8, 0.0, 1e-7, True)),
]


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("name,opt,ref", CASES, ids=[c[0] for c in CASES])
def test_update_bit_identical_to_numpy(name, opt, ref, nthreads, num_threads):
    opt = opt()
    rng = np.random.default_rng(len(name))
    shapes = [(3, 3, 4, 33), (257,), (1,)]  # big enough to thread, odd, single element
    var = [Variable(rng.standard_normal(s).astype(F32), f"w{i}") for i, s in enumerate(shapes)]
    w_ref = [v.value.copy() for v in var]
    slots_ref = [[np.zeros(s, F32) for _ in opt._slot_names] for s in shapes]
    num_threads(nthreads)
    for step in range(1, 6):
        grads = [(rng.standard_normal(s) * 10.0 ** rng.integers(-6, 2)).astype(F32)
                 for s in shapes]
        lr = opt._current_lr()
        opt.apply_gradients(zip(grads, var))
        for w, g, s in zip(w_ref, grads, slots_ref):
            ref(w, g, s, lr, step)
        for v, w in zip(var, w_ref):
            np.testing.assert_array_equal(v.value, w)
        for i, s in enumerate(slots_ref):
            for got, want in zip(opt._slots[i], s):
                np.testing.assert_array_equal(got, want)


def test_adam_amsgrad_nan_propagates_like_numpy_maximum():
    w, g = np.ones(4, F32), np.array([np.nan, 1, 2, 3], F32)
    m, v, vhat = np.zeros(4, F32), np.zeros(4, F32), np.array([0, np.nan, 0, 0], F32)
    _core.adam_update("adam", w, g, m, v, vhat, 0.1, 0.9, 0.999, 1e-7)
    assert np.isnan(vhat[0]) and np.isnan(vhat[1]) and np.isnan(w[0]) and np.isnan(w[1])
    assert np.isfinite(w[2:]).all()


def test_gradient_sharing_memory_with_the_variable_is_copied_first():
    v = Variable(np.arange(1, 5, dtype=F32), "w")
    SGD(0.5).apply_gradients([(v.value, v)])  # w -= 0.5 * w, read before written
    np.testing.assert_array_equal(v.value, np.arange(1, 5, dtype=F32) * F32(0.5))
    v2 = Variable(np.arange(6, dtype=F32).reshape(2, 3), "w2")
    g = np.ones((3, 2), F32).T  # a non-contiguous gradient
    SGD(1.0).apply_gradients([(g, v2)])
    np.testing.assert_array_equal(v2.value, np.arange(6, dtype=F32).reshape(2, 3) - 1)


def _arrays(n=5):
    return [np.zeros(6, F32) for _ in range(n)]


@pytest.mark.parametrize("fn,args,tail", [
    (_core.sgd_update, 3, (0.1, 0.9, False)),
    (_core.adam_update, 5, (0.1, 0.9, 0.999, 1e-7)),
    (_core.rmsprop_update, 5, (0.1, 0.9, 0.5, 1e-7)),
])
def test_argument_errors(fn, args, tail):
    names = {3: ["w", "g", "momentum_slot"], 5: None}[args] or (
        ["w", "g", "m", "v", "vhat"] if fn is _core.adam_update else ["w", "g", "ms", "mom", "mg"])
    for i, name in enumerate(names):
        a = _arrays(args)
        a[i] = np.zeros(6, np.float64)
        with pytest.raises(TypeError, match=f"opt: {name} must have dtype float32"):
            fn("opt", *a, *tail)
        a = _arrays(args)
        a[i] = np.zeros(12, F32)[::2]
        with pytest.raises(ValueError, match=f"opt: {name} must be C-contiguous"):
            fn("opt", *a, *tail)
        if i > 0:
            a = _arrays(args)
            a[i] = np.zeros(7, F32)
            with pytest.raises(ValueError, match=rf"opt: {name} must have shape \(6,\)"):
                fn("opt", *a, *tail)
            a = _arrays(args)
            a[i] = a[0]
            with pytest.raises(ValueError, match=f"opt: w and {name} must not share memory"):
                fn("opt", *a, *tail)
        if name != "g":
            a = _arrays(args)
            a[i].flags.writeable = False
            with pytest.raises(ValueError, match=f"opt: {name} must be writeable"):
                fn("opt", *a, *tail)
    a = _arrays(args)
    a[1] = None
    with pytest.raises(TypeError, match="opt: g must be a float32 array, got None"):
        fn("opt", *a, *tail)
    with pytest.raises(ValueError, match=r"must be a finite float \(float32 range\), got nan"):
        fn("opt", *_arrays(args), float("nan"), *tail[1:])
    with pytest.raises(TypeError):
        fn("opt", *_arrays(args), "0.1", *tail[1:])
