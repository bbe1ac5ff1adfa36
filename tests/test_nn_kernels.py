"""Pooling, batch-norm, softmax cross-entropy and activation kernels of qnn_ext._core.

Every forward is compared with a plain NumPy reference written here (float64 where it sums), every
backward with the NumPy reference gradient and with central finite differences in float64 of the
reference forward (loss = sum(y * g)); a few also by finite differences through the C forward.
Bad arguments must raise naming the argument; 1 and 2 threads must give identical bits (the
kernels fix their summation order independently of the thread count, BN included).
"""

import numpy as np
import pytest

import qnn_ext
from qnn_ext import _core as core

RNG = np.random.default_rng(1234)


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def rand(*shape, scale=1.0):
    return f32(RNG.standard_normal(shape) * scale)


def distinct(*shape, spacing=0.1):
    """Values with pairwise gaps >= spacing: max windows have a unique maximum, FD steps < gap/2."""
    n = int(np.prod(shape))
    return f32((RNG.permutation(n) - n / 2).reshape(shape) * spacing)


def fd_grad(f, x, g, eps=1e-4):
    """d/dx sum(f(x) * g) by central differences in float64."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        lp = np.sum(np.asarray(f(x), np.float64) * g)
        flat[i] = old - eps
        lm = np.sum(np.asarray(f(x), np.float64) * g)
        flat[i] = old
        grad.reshape(-1)[i] = (lp - lm) / (2 * eps)
    return grad


@pytest.fixture
def threads():
    """Yields a setter for the thread count and restores the original count afterwards."""
    before = qnn_ext.build_info()["num_threads"]
    yield core.set_num_threads
    core.set_num_threads(before)


# ---------------------------------------------------------------------------------- pooling refs


def same_pad(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def out_size(size, k, s, lo, hi):
    return (size + lo + hi - k) // s + 1


def windows(h, w, pool, strides, pad):
    """Yields (oh, ow, h0, h1, w0, w1): the valid input range of each output position."""
    (ph, pw), (sh, sw), (pt, pb, pl, pr) = pool, strides, pad
    for oh in range(out_size(h, ph, sh, pt, pb)):
        for ow in range(out_size(w, pw, sw, pl, pr)):
            h0, w0 = oh * sh - pt, ow * sw - pl
            yield oh, ow, max(h0, 0), min(h0 + ph, h), max(w0, 0), min(w0 + pw, w)


def ref_pool(kind, x, pool, strides, pad):
    n, h, w, c = x.shape
    ho = out_size(h, pool[0], strides[0], pad[0], pad[1])
    wo = out_size(w, pool[1], strides[1], pad[2], pad[3])
    y = np.zeros((n, ho, wo, c), np.float64)
    for oh, ow, h0, h1, w0, w1 in windows(h, w, pool, strides, pad):
        win = np.asarray(x[:, h0:h1, w0:w1, :], np.float64)
        y[:, oh, ow] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return y


def ref_pool_backward(kind, x, dy, pool, strides, pad):
    n, h, w, c = x.shape
    dx = np.zeros((n, h, w, c), np.float64)
    ni, ci = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for oh, ow, h0, h1, w0, w1 in windows(h, w, pool, strides, pad):
        g = np.asarray(dy[:, oh, ow], np.float64)
        if kind == "max":
            win = x[:, h0:h1, w0:w1, :].reshape(n, -1, c)
            k = np.argmax(win, axis=1)  # first maximum in row-major window order
            np.add.at(dx, (ni, h0 + k // (w1 - w0), w0 + k % (w1 - w0), ci), g)
        else:
            dx[:, h0:h1, w0:w1, :] += g[:, None, None, :] / ((h1 - h0) * (w1 - w0))
    return dx


POOL_CASES = [
    # (x shape, pool, strides, padding)
    ((2, 6, 6, 3), (2, 2), (2, 2), (0, 0, 0, 0)),  # valid, even
    ((3, 8, 6, 37), (2, 2), (2, 2), (0, 0, 0, 0)),  # windows tile x exactly, odd channels
    ((1, 9, 6, 5), (3, 2), (3, 2), (0, 0, 0, 0)),  # exact tiling with unequal pool sides
    ((2, 7, 5, 4), (2, 2), (2, 2), (0, 0, 0, 0)),  # valid, odd sizes drop the last row/col
    ((1, 7, 7, 1), (3, 3), (2, 2), (0, 0, 0, 0)),  # batch 1, single channel, pool 3
    ((2, 5, 6, 3), (3, 3), (1, 1), (0, 0, 0, 0)),  # overlapping windows, stride 1
    ((2, 7, 5, 3), (2, 2), (2, 2), same_pad(7, 2, 2) + same_pad(5, 2, 2)),  # 'same', asymmetric
    ((1, 5, 5, 2), (3, 3), (2, 2), same_pad(5, 3, 2) + same_pad(5, 3, 2)),
    ((2, 6, 5, 1), (3, 2), (1, 2), same_pad(6, 3, 1) + same_pad(5, 2, 2)),
    ((1, 4, 4, 5), (3, 3), (1, 1), same_pad(4, 3, 1) + same_pad(4, 3, 1)),
    ((1, 6, 6, 2), (2, 3), (2, 1), (1, 0, 0, 2)),  # explicit asymmetric pads
]


def case_id(case):
    shape, pool, strides, pad = case
    return "x{}-p{}-s{}-pad{}".format(*("x".join(map(str, t)) for t in (shape, pool, strides, pad)))


# ---------------------------------------------------------------------------------- pooling tests


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[case_id(c) for c in POOL_CASES])
def test_pool2d_forward_matches_numpy(kind, case):
    shape, pool, strides, pad = case
    x = rand(*shape)
    y = core.pool2d_forward("pool", kind, x, pool, strides, pad)
    ref = ref_pool(kind, x, pool, strides, pad)
    assert y.dtype == np.float32 and y.shape == ref.shape
    if kind == "max":
        np.testing.assert_array_equal(y, ref.astype(np.float32))
    else:
        np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[case_id(c) for c in POOL_CASES])
def test_pool2d_backward_matches_numpy_and_fd(kind, case):
    shape, pool, strides, pad = case
    x = distinct(*shape)
    y_shape = ref_pool(kind, x, pool, strides, pad).shape
    g = rand(*y_shape)
    dx = core.pool2d_backward("pool", kind, x, g, pool, strides, pad)
    ref = ref_pool_backward(kind, x, g, pool, strides, pad)
    np.testing.assert_allclose(dx, ref, rtol=1e-6, atol=1e-6)
    # finite differences of the float64 reference forward (steps << the 0.1 gaps between values)
    fd = fd_grad(lambda t: ref_pool(kind, t, pool, strides, pad), x, g, eps=1e-3)
    np.testing.assert_allclose(dx, fd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool2d_backward_fd_through_kernel(kind):
    shape, pool, strides, pad = (1, 5, 4, 2), (3, 2), (2, 1), (1, 1, 0, 1)
    x = distinct(*shape)
    g = rand(*ref_pool(kind, x, pool, strides, pad).shape)
    dx = core.pool2d_backward("pool", kind, x, g, pool, strides, pad)
    fd = fd_grad(lambda t: core.pool2d_forward("pool", kind, f32(t), pool, strides, pad),
                 x, g, eps=1e-2)
    np.testing.assert_allclose(dx, fd, rtol=1e-3, atol=1e-4)


def test_maxpool_ties_go_to_first_maximum():
    x = np.zeros((1, 4, 4, 2), np.float32)
    dy = f32(np.arange(1, 9).reshape(1, 2, 2, 2))
    dx = core.pool2d_backward("pool", "max", x, dy, (2, 2), (2, 2), (0, 0, 0, 0))
    want = np.zeros_like(x)
    want[:, 0::2, 0::2, :] = dy
    np.testing.assert_array_equal(dx, want)
    # overlapping windows and ties between some cells only
    x = f32(RNG.integers(0, 3, size=(2, 5, 5, 3)))
    dy = rand(2, 3, 3, 3)
    dx = core.pool2d_backward("pool", "max", x, dy, (3, 3), (1, 1), (0, 0, 0, 0))
    np.testing.assert_allclose(dx, ref_pool_backward("max", x, dy, (3, 3), (1, 1), (0, 0, 0, 0)),
                               rtol=1e-6, atol=1e-6)


def test_maxpool_ignores_padding_even_for_negative_inputs():
    x = -np.abs(rand(1, 3, 3, 2)) - 1.0  # all < -1: a padded 0 must never win
    y = core.pool2d_forward("pool", "max", x, (2, 2), (2, 2), (1, 0, 1, 0))
    assert y.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(y[0, 0, 0], x[0, 0, 0])
    assert (y < -1).all()
    # avg divides by valid cells only: corner window of a 'same' pool holds one cell
    ya = core.pool2d_forward("pool", "avg", x, (2, 2), (2, 2), (1, 0, 1, 0))
    np.testing.assert_array_equal(ya[0, 0, 0], x[0, 0, 0])


def test_pool_out_argument():
    x = rand(2, 4, 4, 3)
    out = np.empty((2, 2, 2, 3), np.float32)
    y = core.pool2d_forward("pool", "avg", x, (2, 2), (2, 2), (0, 0, 0, 0), out=out)
    assert y is out
    np.testing.assert_allclose(out, ref_pool("avg", x, (2, 2), (2, 2), (0, 0, 0, 0)), rtol=1e-6)
    dxo = np.full_like(x, 7.0)  # stale contents must be overwritten
    dx = core.pool2d_backward("pool", "max", x, out, 2, 2, 0, out=dxo)
    assert dx is dxo
    np.testing.assert_allclose(dxo, ref_pool_backward("max", x, out, (2, 2), (2, 2), (0,) * 4))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_global_pool_forward_backward(kind):
    for shape in [(3, 4, 5, 6), (1, 1, 1, 1), (2, 7, 3, 1)]:
        x = distinct(*shape)
        y = core.global_pool2d_forward("gp", kind, x)
        x64 = np.asarray(x, np.float64)
        ref = x64.max(axis=(1, 2)) if kind == "max" else x64.mean(axis=(1, 2))
        assert y.shape == (shape[0], shape[3])
        np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-7)
        g = rand(shape[0], shape[3])
        dx = core.global_pool2d_backward("gp", kind, x, g)
        pool = shape[1:3]
        ref_dx = ref_pool_backward(kind, x, g.reshape(shape[0], 1, 1, -1), pool, pool, (0,) * 4)
        np.testing.assert_allclose(dx, ref_dx, rtol=1e-6, atol=1e-7)
        fd = fd_grad(
            lambda t: t.max(axis=(1, 2)) if kind == "max" else t.mean(axis=(1, 2)), x, g, 1e-3)
        np.testing.assert_allclose(dx, fd, rtol=1e-5, atol=1e-6)


def test_global_maxpool_ties_and_out():
    x = np.ones((2, 3, 3, 2), np.float32)
    g = rand(2, 2)
    dx = core.global_pool2d_backward("gp", "max", x, g)
    want = np.zeros_like(x)
    want[:, 0, 0, :] = g
    np.testing.assert_array_equal(dx, want)
    out = np.empty((2, 2), np.float32)
    assert core.global_pool2d_forward("gp", "avg", x, out=out) is out
    np.testing.assert_array_equal(out, 1.0)


# ---------------------------------------------------------------------------------- batch norm


def ref_bn_train(x, gamma, beta, eps):
    x64 = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - 1))
    mean = x64.mean(axis=axes)
    var = ((x64 - mean) ** 2).mean(axis=axes)
    inv = 1.0 / np.sqrt(var + eps)
    return (x64 - mean) * inv * gamma + beta, mean, var, inv


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 3, 6), (1, 2, 2, 1), (300, 7), (3, 1, 1, 2)])
def test_batchnorm_training_forward(shape):
    c = shape[-1]
    x = rand(*shape, scale=2.0) + 3.0
    gamma, beta = rand(c), rand(c)
    eps = 1e-3
    y, mean, var, inv = core.batchnorm_forward("bn", x, gamma, beta, eps, True)
    ry, rmean, rvar, rinv = ref_bn_train(x, gamma, beta, eps)
    np.testing.assert_allclose(mean, rmean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(var, rvar, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(inv, rinv, rtol=1e-6)
    np.testing.assert_allclose(y, ry, rtol=1e-5, atol=1e-5)
    assert all(a.dtype == np.float32 for a in (y, mean, var, inv))
    assert mean.shape == var.shape == inv.shape == (c,)
    # inv_std is 1/sqrt(var + eps) evaluated in float32 from the float32 var
    np.testing.assert_array_equal(inv, np.float32(1) / np.sqrt(var + np.float32(eps)))


def test_batchnorm_large_mean_small_std_is_accurate():
    x = f32(1e4 + RNG.standard_normal((512, 3)) * 1e-2)
    _, mean, var, _ = core.batchnorm_forward("bn", x, None, None, 0.0, True)
    _, rmean, rvar, _ = ref_bn_train(x, 1.0, 0.0, 0.0)
    np.testing.assert_allclose(var, rvar, rtol=1e-5)
    np.testing.assert_allclose(mean, rmean, rtol=1e-7)


def test_batchnorm_inference_and_optional_affine():
    x = rand(4, 3, 3, 5)
    mean, var = rand(5), f32(np.abs(rand(5)) + 0.1)
    gamma, beta = rand(5), rand(5)
    y = core.batchnorm_forward("bn", x, gamma, beta, 1e-3, False, mean=mean, var=var)
    ref = (x.astype(np.float64) - mean) / np.sqrt(var.astype(np.float64) + 1e-3) * gamma + beta
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    y0 = core.batchnorm_forward("bn", x, None, None, 1e-3, False, mean=mean, var=var)
    ref0 = (x.astype(np.float64) - mean) / np.sqrt(var.astype(np.float64) + 1e-3)
    np.testing.assert_allclose(y0, ref0, rtol=1e-5, atol=1e-5)
    out = np.empty_like(x)
    assert core.batchnorm_forward("bn", x, gamma, beta, 1e-3, False, mean, var, out=out) is out
    np.testing.assert_array_equal(out, y)
    # moving statistics passed in training mode are not used
    yt = core.batchnorm_forward("bn", x, gamma, beta, 1e-3, True, mean=mean, var=var)[0]
    np.testing.assert_array_equal(yt, core.batchnorm_forward("bn", x, gamma, beta, 1e-3, True)[0])


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 2, 4), (1, 2, 2, 1)])
def test_batchnorm_backward_matches_numpy_and_fd(shape):
    c = shape[-1]
    eps = 1e-3
    x, gamma, beta = rand(*shape) + 0.5, rand(c), rand(c)
    y, mean, var, inv = core.batchnorm_forward("bn", x, gamma, beta, eps, True)
    g = rand(*shape)
    dx, dgamma, dbeta = core.batchnorm_backward("bn", g, x, gamma, mean, inv)
    # closed form in float64
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    m = x.size // c
    _, rmean, _, rinv = ref_bn_train(x, gamma, beta, eps)
    xhat = (x64 - rmean) * rinv
    rdb = g64.sum(axis=axes)
    rdg = (g64 * xhat).sum(axis=axes)
    rdx = gamma * rinv / m * (m * g64 - rdb - xhat * rdg)
    np.testing.assert_allclose(dbeta, rdb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dgamma, rdg, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=1e-5)
    # finite differences of the float64 reference forward, for x, gamma and beta
    gamma64, beta64 = gamma.astype(np.float64), beta.astype(np.float64)
    fd_x = fd_grad(lambda t: ref_bn_train(t, gamma64, beta64, eps)[0], x, g, 1e-5)
    fd_g = fd_grad(lambda t: ref_bn_train(x, t, beta64, eps)[0], gamma, g, 1e-5)
    fd_b = fd_grad(lambda t: ref_bn_train(x, gamma64, t, eps)[0], beta, g, 1e-5)
    np.testing.assert_allclose(dx, fd_x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dgamma, fd_g, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dbeta, fd_b, rtol=1e-4, atol=1e-4)


def test_batchnorm_backward_fd_through_kernel_and_no_gamma():
    x, g = rand(5, 2) * 2, rand(5, 2)
    _, mean, _, inv = core.batchnorm_forward("bn", x, None, None, 1e-3, True)
    dx, dgamma, dbeta = core.batchnorm_backward("bn", g, x, None, mean, inv)
    fd = fd_grad(lambda t: core.batchnorm_forward("bn", f32(t), None, None, 1e-3, True)[0],
                 x, g, 1e-2)
    np.testing.assert_allclose(dx, fd, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(dbeta, g.astype(np.float64).sum(0), rtol=1e-6, atol=1e-6)
    out = np.empty_like(x)
    assert core.batchnorm_backward("bn", g, x, None, mean, inv, out=out)[0] is out
    np.testing.assert_array_equal(out, dx)


# ---------------------------------------------------------------------------------- softmax xent


def ref_log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def ref_xent(z, t):
    return -(t * ref_log_softmax(z)).sum(axis=-1)


@pytest.mark.parametrize("label_dtype", [np.int32, np.int64])
def test_softmax_xent_int_labels(label_dtype):
    z = rand(7, 5, scale=3.0)
    lab = RNG.integers(0, 5, size=7).astype(label_dtype)
    loss, dz = core.softmax_cross_entropy("xent", z, lab)
    t = np.eye(5)[lab]
    np.testing.assert_allclose(loss, ref_xent(z, t), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dz, np.exp(ref_log_softmax(z)) - t, rtol=1e-6, atol=1e-7)
    assert loss.shape == (7,) and dz.shape == (7, 5) and loss.dtype == dz.dtype == np.float32
    fd = fd_grad(lambda u: ref_xent(u, t), z, np.ones(7), 1e-5)
    np.testing.assert_allclose(dz, fd, rtol=1e-4, atol=1e-6)
    # one-hot float targets give the same result
    loss2, dz2 = core.softmax_cross_entropy("xent", z, f32(t))
    np.testing.assert_allclose(loss2, loss, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dz2, dz, rtol=1e-6, atol=1e-7)


def test_softmax_xent_soft_targets_and_fd():
    z = rand(4, 6, scale=2.0)
    t = f32(RNG.dirichlet(np.ones(6), size=4))
    loss, dz = core.softmax_cross_entropy("xent", z, t)
    np.testing.assert_allclose(loss, ref_xent(z, t), rtol=1e-6, atol=1e-6)
    w = rand(4)  # loss = sum_i w_i loss_i: the kernel's per-sample gradient scales row-wise
    fd = fd_grad(lambda u: ref_xent(u, t), z, w, 1e-5)
    np.testing.assert_allclose(dz * w[:, None], fd, rtol=1e-4, atol=1e-6)
    fdk = fd_grad(lambda u: core.softmax_cross_entropy("xent", f32(u), t)[0], z, w, 1e-2)
    np.testing.assert_allclose(dz * w[:, None], fdk, rtol=1e-3, atol=1e-3)


def test_softmax_xent_huge_logits_stay_finite():
    z = f32([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4], [1e4, 1e4, 0.0], [0.0, 3e4, -3e4]])
    lab = np.array([1, 0, 2, 1], np.int64)
    loss, dz = core.softmax_cross_entropy("xent", z, lab)
    assert np.isfinite(loss).all() and np.isfinite(dz).all()
    np.testing.assert_allclose(loss, [1e4, np.log(3.0), 1e4 + np.log(2.0), 0.0], rtol=1e-6)
    np.testing.assert_allclose(dz[0], [1.0, -1.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(dz[2], [0.5, 0.5, -1.0], atol=1e-7)
    loss2, dz2 = core.softmax_cross_entropy("xent", z, f32(np.eye(3)[lab]))
    np.testing.assert_allclose(loss2, loss, rtol=1e-6)
    assert np.isfinite(dz2).all()


# ---------------------------------------------------------------------------------- activations


def ref_act(kind, x, alpha=0.0):
    x = np.asarray(x, np.float64)
    if kind in ("relu", "leaky_relu"):
        return np.where(x > 0, x, alpha * x)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if kind == "tanh":
        return np.tanh(x)
    if kind == "softmax":
        return np.exp(ref_log_softmax(x))
    return x


def ref_act_grad(kind, x, dy, alpha=0.0):
    y = ref_act(kind, x, alpha)
    dy = np.asarray(dy, np.float64)
    if kind in ("relu", "leaky_relu"):
        return np.where(np.asarray(x) > 0, dy, alpha * dy)
    if kind == "sigmoid":
        return dy * y * (1 - y)
    if kind == "tanh":
        return dy * (1 - y * y)
    if kind == "softmax":
        return (dy - (dy * y).sum(axis=-1, keepdims=True)) * y
    return dy


ACTS = [("relu", 0.0), ("relu", 0.1), ("leaky_relu", 0.3), ("sigmoid", 0.0), ("tanh", 0.0),
        ("softmax", 0.0), ("linear", 0.0)]


@pytest.mark.parametrize("kind,alpha", ACTS)
@pytest.mark.parametrize("shape", [(3, 7), (2, 3, 4, 5), (1, 1), (17,)])
def test_activation_forward_backward(kind, alpha, shape):
    x = distinct(*shape, spacing=0.37)  # no element within 1e-2 of relu's kink at 0
    x[np.abs(x) < 0.05] = 0.25
    y = core.activation_forward("act", kind, x, alpha=alpha)
    np.testing.assert_allclose(y, ref_act(kind, x, alpha), rtol=2e-6, atol=1e-7)
    g = rand(*shape)
    dx = core.activation_backward("act", kind, x, y, g, alpha=alpha)
    np.testing.assert_allclose(dx, ref_act_grad(kind, x, g, alpha), rtol=1e-5, atol=1e-6)
    fd = fd_grad(lambda t: ref_act(kind, t, alpha), x, g, 1e-5)
    np.testing.assert_allclose(dx, fd, rtol=1e-4, atol=1e-5)
    fdk = fd_grad(lambda t: core.activation_forward("act", kind, f32(t), alpha=alpha), x, g, 1e-2)
    np.testing.assert_allclose(dx, fdk, rtol=2e-3, atol=2e-3)


def test_activation_edge_values():
    x = f32([-1e4, -100.0, -0.0, 0.0, 100.0, 1e4, np.inf, -np.inf])
    sig = core.activation_forward("act", "sigmoid", x)
    assert np.isfinite(sig).all() and (sig >= 0).all() and (sig <= 1).all()
    np.testing.assert_array_equal(sig[[0, 5, 6, 7]], [0.0, 1.0, 1.0, 0.0])
    relu = core.activation_forward("act", "relu", x)
    np.testing.assert_array_equal(relu, np.maximum(x, 0))
    # TF's ReluGrad: 0 at x == 0
    d = core.activation_backward("act", "relu", x, None, np.ones_like(x))
    np.testing.assert_array_equal(d, (x > 0).astype(np.float32))
    sm = core.activation_forward("act", "softmax", f32([[1e4, 0.0, -1e4]]))
    np.testing.assert_array_equal(sm, [[1.0, 0.0, 0.0]])
    # unused x / y may be None; the out= buffer is returned
    out = np.empty_like(x)
    assert core.activation_backward("act", "linear", None, None, x, out=out) is out
    np.testing.assert_array_equal(out, x)
    y = core.activation_forward("act", "tanh", x[:2])
    core.activation_backward("act", "tanh", None, y, np.ones_like(y))


# ---------------------------------------------------------------------------------- threads


def test_one_and_two_threads_give_identical_bits(threads):
    # sizes above the threading threshold (2**18 element-operations per thread)
    x = rand(16, 32, 32, 32)
    gamma, beta = rand(32), rand(32)
    xs = rand(4096, 128, scale=3.0)
    lab = RNG.integers(0, 128, size=4096).astype(np.int32)

    def run():
        r = [core.pool2d_forward("p", k, x, 2, 2, 0) for k in ("max", "avg")]
        r += [core.pool2d_forward("p", "avg", x, 3, 1, (1, 1, 1, 1))]
        r += [core.pool2d_backward("p", k, x, r[i], 2, 2, 0) for i, k in enumerate(("max", "avg"))]
        r += [core.pool2d_backward("p", "avg", x, r[2], 3, 1, (1, 1, 1, 1))]
        r += [core.global_pool2d_forward("g", k, x) for k in ("max", "avg")]
        r += [core.global_pool2d_backward("g", "max", x, r[-2])]
        bn = core.batchnorm_forward("bn", x, gamma, beta, 1e-3, True)
        r += list(bn) + list(core.batchnorm_backward("bn", x, x, gamma, bn[1], bn[3]))
        r += list(core.softmax_cross_entropy("x", xs, lab))
        for kind in ("relu", "sigmoid", "tanh", "softmax"):
            y = core.activation_forward("a", kind, xs)
            r += [y, core.activation_backward("a", kind, xs, y, xs)]
        return r

    threads(1)
    one = run()
    threads(2)
    two = run()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------- bad input

X4 = np.zeros((2, 4, 4, 3), np.float32)
V3 = np.ones(3, np.float32)

BAD = [
    # (call, exception, message fragment)
    (lambda: core.pool2d_forward("pool1", "max", np.zeros((28, 28), np.float32), 2, 2, 0),
     ValueError, r"pool1: x must have 4 dims \(batch, height, width, channels\), got shape \(28, 28\)"),
    (lambda: core.pool2d_forward("pool1", "max", X4.astype(np.float64), 2, 2, 0),
     TypeError, "pool1: x must have dtype float32"),
    (lambda: core.pool2d_forward("pool1", "max", X4[:, ::2], 2, 2, 0),
     ValueError, "pool1: x must be C-contiguous"),
    (lambda: core.pool2d_forward("pool1", "max", X4.tolist(), 2, 2, 0),
     TypeError, "pool1: x must be a numpy.ndarray"),
    (lambda: core.pool2d_forward("pool1", "min", X4, 2, 2, 0),
     ValueError, "pool1: kind must be 'max' or 'avg', got 'min'"),
    (lambda: core.pool2d_forward("pool1", "max", X4, (0, 2), 2, 0),
     ValueError, r"pool1: pool values must be in \[1, "),
    (lambda: core.pool2d_forward("pool1", "max", X4, 2, (1, 0), 0),
     ValueError, r"pool1: strides values must be in \[1, "),
    (lambda: core.pool2d_forward("pool1", "max", X4, 2, 2, (0, 0, -1, 0)),
     ValueError, r"pool1: padding values must be in \[0, "),
    (lambda: core.pool2d_forward("pool1", "max", X4, 2, 2, (2, 0, 0, 0)),
     ValueError, "pool1: padding .* must each be < the pool size"),
    (lambda: core.pool2d_forward("pool1", "max", X4, (2, 2, 2), 2, 0),
     TypeError, "pool1: pool must be an int or a sequence of 2 ints"),
    (lambda: core.pool2d_forward("pool1", "max", X4, (2.0, 2), 2, 0),
     TypeError, "pool1: pool must contain ints"),
    (lambda: core.pool2d_forward("pool1", "max", X4, 2**40, 2, 0),
     ValueError, "pool1: pool values must be in"),
    (lambda: core.pool2d_forward("pool1", "max", X4, 5, 1, 0),
     ValueError, "pool1: output size must be >= 1"),
    (lambda: core.pool2d_forward("pool1", "max", np.zeros((1, 0, 4, 1), np.float32), 1, 1, 0),
     ValueError, "pool1: output size must be >= 1"),
    (lambda: core.pool2d_forward("pool1", "max", X4, 2, 2, 0, out=np.zeros((2, 4, 4, 3), np.float32)),
     ValueError, r"pool1: out must have shape \(2, 2, 2, 3\), got \(2, 4, 4, 3\)"),
    (lambda: core.pool2d_forward("pool1", "max", X4, 1, 1, 0, out=X4),
     ValueError, "pool1: out must not share memory"),
    (lambda: core.pool2d_backward("pool1", "max", X4, np.zeros((2, 3, 3, 3), np.float32), 2, 2, 0),
     ValueError, r"pool1: dy must have shape \(2, 2, 2, 3\) \(the forward output\), got \(2, 3, 3, 3\)"),
    (lambda: core.pool2d_backward("pool1", "avg", X4, np.zeros((2, 2, 2, 3), np.int32), 2, 2, 0),
     TypeError, "pool1: dy must have dtype float32"),
    (lambda: core.global_pool2d_forward("gap", "avg", np.zeros((2, 3), np.float32)),
     ValueError, "gap: x must have 4 dims"),
    (lambda: core.global_pool2d_forward("gap", "avg", np.zeros((2, 0, 3, 1), np.float32)),
     ValueError, "gap: x must have height and width >= 1"),
    (lambda: core.global_pool2d_backward("gap", "max", X4, np.zeros((2, 4), np.float32)),
     ValueError, r"gap: dy must have shape \(2, 3\)"),
    (lambda: core.batchnorm_forward("bn1", np.zeros(3, np.float32), V3, V3, 1e-3, True),
     ValueError, r"bn1: x must have at least 2 dims .* got shape \(3,\)"),
    (lambda: core.batchnorm_forward("bn1", X4, np.ones(4, np.float32), V3, 1e-3, True),
     ValueError, r"bn1: gamma must have shape \(3,\) \(channels\), got \(4,\)"),
    (lambda: core.batchnorm_forward("bn1", X4, V3, np.ones((3, 1), np.float32), 1e-3, True),
     ValueError, "bn1: beta must have shape"),
    (lambda: core.batchnorm_forward("bn1", X4, V3, V3, -1.0, True),
     ValueError, "bn1: eps must be a finite float >= 0"),
    (lambda: core.batchnorm_forward("bn1", X4, V3, V3, float("nan"), True),
     ValueError, "bn1: eps must be"),
    (lambda: core.batchnorm_forward("bn1", X4, V3, V3, 1e-3, False),
     ValueError, "bn1: training=False needs mean and var"),
    (lambda: core.batchnorm_forward("bn1", X4, V3, V3, 1e-3, False, mean=V3, var=V3[:2]),
     ValueError, "bn1: var must have shape"),
    (lambda: core.batchnorm_forward("bn1", np.zeros((0, 3), np.float32), V3, V3, 1e-3, True),
     ValueError, "bn1: x must have at least one row"),
    (lambda: core.batchnorm_backward("bn1", np.zeros((2, 4, 4, 2), np.float32), X4, V3, V3, V3),
     ValueError, r"bn1: dy must have shape \(2, 4, 4, 3\) \(the shape of x\)"),
    (lambda: core.batchnorm_backward("bn1", X4, X4, V3, V3, np.ones(2, np.float32)),
     ValueError, "bn1: inv_std must have shape"),
    (lambda: core.batchnorm_backward("bn1", X4, X4, V3, None, V3),
     TypeError, "bn1: batch_mean and inv_std are required"),
    (lambda: core.softmax_cross_entropy("loss", np.zeros(5, np.float32), np.zeros(5, np.int32)),
     ValueError, r"loss: logits must have 2 dims \(batch, classes\)"),
    (lambda: core.softmax_cross_entropy("loss", np.zeros((3, 4), np.float32), np.array([0, 4, 1])),
     ValueError, r"loss: labels must be in \[0, 4\), got labels\[1\] = 4"),
    (lambda: core.softmax_cross_entropy("loss", np.zeros((3, 4), np.float32),
                                        np.array([0, -1, 1], np.int32)),
     ValueError, r"labels\[1\] = -1"),
    (lambda: core.softmax_cross_entropy("loss", np.zeros((3, 4), np.float32), np.zeros(2, np.int32)),
     ValueError, r"loss: labels must have shape \(3,\)"),
    (lambda: core.softmax_cross_entropy("loss", np.zeros((3, 4), np.float32), np.zeros((3, 4))),
     TypeError, "loss: labels must be int32/int64 class indices .* got dtype .*float64"),
    (lambda: core.softmax_cross_entropy("loss", np.zeros((3, 4), np.float32),
                                        np.zeros((3, 5), np.float32)),
     ValueError, r"loss: labels must have shape \(3, 4\)"),
    (lambda: core.softmax_cross_entropy("loss", np.zeros((3, 0), np.float32), np.zeros(3, np.int32)),
     ValueError, "loss: logits must have at least 1 class"),
    (lambda: core.softmax_cross_entropy("loss", np.zeros((3, 4), np.float32), [0, 1, 2]),
     TypeError, "loss: labels must be a numpy.ndarray"),
    (lambda: core.activation_forward("act1", "gelu", V3),
     ValueError, "act1: kind must be one of .* got 'gelu'"),
    (lambda: core.activation_forward("act1", "softmax", np.ones((), np.float32)),
     ValueError, "act1: softmax needs x with at least 1 dim"),
    (lambda: core.activation_forward("act1", "relu", V3, out=np.zeros(4, np.float32)),
     ValueError, r"act1: out must have shape \(3,\), got \(4,\)"),
    (lambda: core.activation_backward("act1", "relu", None, None, V3),
     TypeError, "act1: relu backward needs x"),
    (lambda: core.activation_backward("act1", "sigmoid", V3, None, V3),
     TypeError, "act1: sigmoid backward needs y"),
    (lambda: core.activation_backward("act1", "tanh", None, np.ones(4, np.float32), V3),
     ValueError, r"act1: y must have shape \(3,\) \(the shape of dy\), got \(4,\)"),
    (lambda: core.activation_backward("act1", "relu", V3, None, V3, out=V3),
     ValueError, "act1: out must not share memory"),
]


@pytest.mark.parametrize("call,exc,msg", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_inputs_raise_naming_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_readonly_out_and_empty_batches():
    ro = np.zeros((2, 2, 2, 3), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="pool1: out must be writeable"):
        core.pool2d_forward("pool1", "max", X4, 2, 2, 0, out=ro)
    # empty batches are fine where nothing is reduced over the batch
    e = np.zeros((0, 4, 4, 3), np.float32)
    assert core.pool2d_forward("p", "max", e, 2, 2, 0).shape == (0, 2, 2, 3)
    assert core.pool2d_backward("p", "max", e, np.zeros((0, 2, 2, 3), np.float32), 2, 2, 0).shape == e.shape
    assert core.global_pool2d_forward("g", "avg", e).shape == (0, 3)
    assert core.softmax_cross_entropy("x", np.zeros((0, 3), np.float32), np.zeros(0, np.int64))[0].shape == (0,)
    assert core.activation_forward("a", "softmax", np.zeros((0, 3), np.float32)).shape == (0, 3)
    assert core.activation_forward("a", "softmax", np.zeros((2, 0), np.float32)).shape == (2, 0)
