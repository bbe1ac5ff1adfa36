"""Dense (GEMM) and convolution kernels of qnn_ext._core against float64 NumPy references.

Tolerances: the kernels sum in float32 in a blocked order that differs per ISA level, so results
are compared with a float64 reference to rtol 1e-5 *relative to the magnitude bound*
sum |a||b| of each output (the usual backward-error bound of a dot product), not elementwise.
Gradients of the convolutions are also checked by central finite differences of the float64
reference loss sum(y * g) (the loss is linear in x and in w, so differences are exact up to
rounding)."""

import numpy as np
import pytest

from qnn_ext import _core

RTOL = 1e-5


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _close(got, ref, bound):
    err = np.abs(got.astype(np.float64) - ref)
    assert np.all(err <= RTOL * bound + 1e-30), float(np.max(err / (bound + 1e-30)))


# ---------------------------------------------------------------------------------- references


def conv_ref(x, w, strides, padding, dilation, groups):
    """Direct float64 convolution, NHWC x HWIO; group g: input channels g*Cg.., outputs g*COg.."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c = x.shape
    kh_, kw_, cg, co = w.shape
    cog = co // groups
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = strides, padding, dilation
    ho = (h + pt + pb - dh * (kh_ - 1) - 1) // sh + 1
    wo = (wd + pl + pr - dw * (kw_ - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    y = np.zeros((n, ho, wo, co))
    for kh in range(kh_):
        for kw in range(kw_):
            patch = xp[:, kh * dh:kh * dh + sh * (ho - 1) + 1:sh, kw * dw:kw * dw + sw * (wo - 1) + 1:sw]
            for g in range(groups):
                y[..., g * cog:(g + 1) * cog] += np.einsum(
                    "nhwc,co->nhwo", patch[..., g * cg:(g + 1) * cg], w[kh, kw, :, g * cog:(g + 1) * cog])
    return y


def conv_dx_ref(dy, w, x_shape, strides, padding, dilation, groups):
    dy = np.asarray(dy, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c = x_shape
    kh_, kw_, cg, co = w.shape
    cog = co // groups
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = strides, padding, dilation
    ho, wo = dy.shape[1:3]
    dxp = np.zeros((n, h + pt + pb, wd + pl + pr, c))
    for kh in range(kh_):
        for kw in range(kw_):
            sl = (slice(None), slice(kh * dh, kh * dh + sh * (ho - 1) + 1, sh),
                  slice(kw * dw, kw * dw + sw * (wo - 1) + 1, sw))
            for g in range(groups):
                dxp[sl + (slice(g * cg, (g + 1) * cg),)] += np.einsum(
                    "nhwo,co->nhwc", dy[..., g * cog:(g + 1) * cog], w[kh, kw, :, g * cog:(g + 1) * cog])
    return dxp[:, pt:pt + h, pl:pl + wd]


def conv_dw_ref(x, dy, w_shape, strides, padding, dilation, groups):
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    kh_, kw_, cg, co = w_shape
    cog = co // groups
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = strides, padding, dilation
    ho, wo = dy.shape[1:3]
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    dwt = np.zeros(w_shape)
    for kh in range(kh_):
        for kw in range(kw_):
            patch = xp[:, kh * dh:kh * dh + sh * (ho - 1) + 1:sh, kw * dw:kw * dw + sw * (wo - 1) + 1:sw]
            for g in range(groups):
                dwt[kh, kw, :, g * cog:(g + 1) * cog] = np.einsum(
                    "nhwc,nhwo->co", patch[..., g * cg:(g + 1) * cg], dy[..., g * cog:(g + 1) * cog])
    return dwt


# ---------------------------------------------------------------------------------- gemm

GEMM_SIZES = [(1, 1, 1), (1, 37, 9), (23, 1, 4), (17, 33, 5), (129, 65, 257), (40, 300, 1), (3, 5, 0)]


@pytest.mark.parametrize("m,n,k", GEMM_SIZES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_vs_numpy(isa, m, n, k, ta, tb):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a = _rand(rng, k, m) if ta else _rand(rng, m, k)
    b = _rand(rng, n, k) if tb else _rand(rng, k, n)
    oa, ob = (a.T if ta else a).astype(np.float64), (b.T if tb else b).astype(np.float64)
    c = _core.gemm("g", a, b, trans_a=ta, trans_b=tb)
    assert c.shape == (m, n) and c.dtype == np.float32
    _close(c, oa @ ob, np.abs(oa) @ np.abs(ob))


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, 0.0), (-2.0, 1.0), (1.5, -0.25), (0.0, 3.0)])
def test_gemm_alpha_beta_out(isa, alpha, beta):
    rng = np.random.default_rng(7)
    a, b, c0 = _rand(rng, 37, 300), _rand(rng, 300, 45), _rand(rng, 37, 45)
    out = c0.copy()
    if beta == 0.0:
        out[:] = np.nan  # beta == 0: the old contents are not read (BLAS convention)
    r = _core.gemm("g", a, b, out=out, alpha=alpha, beta=beta)
    assert r is out
    ref = alpha * (a.astype(np.float64) @ b) + beta * c0.astype(np.float64)
    bound = abs(alpha) * (np.abs(a).astype(np.float64) @ np.abs(b)) + abs(beta * c0)
    _close(out, ref, bound)


def test_gemm_large_k_blocks(isa):
    # K spans several KC slices and N several column panels' worth of slivers.
    rng = np.random.default_rng(3)
    a, b = _rand(rng, 70, 1100), _rand(rng, 1100, 130)
    _close(_core.gemm("g", a, b), a.astype(np.float64) @ b, np.abs(a).astype(np.float64) @ np.abs(b))


@pytest.mark.parametrize("m,n,k,beta", [
    (3000, 70, 600, 0.0),    # tall and narrow: the whole-B, row-block-major path
    (3000, 70, 600, 0.5),    # ... applying beta on the first K slice only
    (100, 40, 3000, 0.0),    # few tiles, long K: split-K across threads
    (100, 40, 3000, -1.5),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_driver_paths(isa, num_threads, m, n, k, beta, threads):
    rng = np.random.default_rng(m + n + k)
    a, b, c0 = _rand(rng, m, k), _rand(rng, k, n), _rand(rng, m, n)
    num_threads(threads)
    out = c0.copy()
    _core.gemm("g", a, b, out=out, beta=beta)
    ref = a.astype(np.float64) @ b + beta * c0.astype(np.float64)
    _close(out, ref, np.abs(a).astype(np.float64) @ np.abs(b) + abs(beta * c0))


def test_gemm_threads_agree(num_threads):
    rng = np.random.default_rng(4)
    a, b = _rand(rng, 300, 256), _rand(rng, 256, 270)
    num_threads(1)
    c1 = _core.gemm("g", a, b)
    num_threads(2)
    c2 = _core.gemm("g", a, b)
    _close(c2, c1.astype(np.float64), np.abs(a).astype(np.float64) @ np.abs(b))


# ---------------------------------------------------------------------------------- conv cases

# (x_shape, (KH, KW, Cout), strides, padding (t, b, l, r), dilation, groups)
CONV_CASES = [
    ((2, 7, 9, 3), (1, 1, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((2, 8, 8, 4), (3, 3, 6), (1, 1), (1, 1, 1, 1), (1, 1), 1),          # 'same'
    ((1, 9, 7, 3), (3, 3, 4), (2, 2), (0, 0, 0, 0), (1, 1), 1),          # valid, stride 2
    ((2, 8, 10, 5), (3, 3, 7), (2, 2), (0, 1, 0, 1), (1, 1), 1),         # TF 'same' stride 2 (asym)
    ((1, 11, 10, 2), (5, 5, 3), (1, 2), (2, 2, 1, 3), (1, 1), 1),        # 5x5, mixed strides
    ((2, 12, 11, 3), (3, 3, 4), (1, 1), (2, 2, 2, 2), (2, 2), 1),        # dilation 2
    ((1, 10, 9, 1), (3, 2, 1), (1, 1), (1, 0, 0, 1), (2, 1), 1),         # single channel
    ((2, 7, 8, 6), (3, 3, 4), (1, 1), (1, 1, 1, 1), (1, 1), 2),          # groups 2
    ((1, 9, 9, 4), (3, 3, 8), (2, 1), (1, 1, 1, 1), (1, 1), 4),          # depthwise, multiplier 2
    ((2, 8, 7, 5), (3, 3, 5), (1, 1), (1, 1, 1, 1), (2, 2), 5),          # depthwise, dilation 2
    ((1, 6, 6, 3), (5, 5, 6), (2, 2), (2, 1, 2, 1), (1, 1), 3),          # depthwise 5x5 stride 2
    ((3, 5, 5, 64), (3, 3, 33), (1, 1), (1, 1, 1, 1), (1, 1), 1),        # K spans a KC slice
    ((2, 7, 7, 4), (3, 3, 2), (1, 1), (1, 1, 1, 1), (1, 1), 2),          # groups, 1 output each
    ((2, 20, 19, 40), (3, 3, 70), (1, 1), (1, 1, 1, 1), (1, 1), 1),      # row blocks, N edge
    ((1, 9, 9, 3), (3, 3, 5), (1, 1), (0, 2, 2, 0), (1, 1), 1),          # lopsided padding
    ((2, 6, 6, 3), (3, 3, 4), (1, 1), (3, 0, 0, 3), (1, 1), 1),          # pad beyond the kernel
]


def _case(case, seed):
    x_shape, (kh, kw, co), strides, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x = _rand(rng, *x_shape)
    w = _rand(rng, kh, kw, x_shape[3] // groups, co)
    return x, w, strides, padding, dilation, groups


@pytest.mark.parametrize("ci", range(len(CONV_CASES)))
def test_conv_forward(isa, ci):
    x, w, st, pd, dl, g = _case(CONV_CASES[ci], ci)
    y = _core.conv2d_forward("conv", x, w, st, pd, dl, g)
    ref = conv_ref(x, w, st, pd, dl, g)
    assert y.shape == ref.shape and y.dtype == np.float32
    _close(y, ref, conv_ref(np.abs(x), np.abs(w), st, pd, dl, g))


@pytest.mark.parametrize("ci", range(len(CONV_CASES)))
def test_conv_backward_input(isa, ci):
    x, w, st, pd, dl, g = _case(CONV_CASES[ci], ci)
    dy = _rand(np.random.default_rng(100 + ci), *conv_ref(x, w, st, pd, dl, g).shape)
    out = np.full(x.shape, np.nan, np.float32)  # every element must be written
    dx = _core.conv2d_backward_input("conv", dy, w, x.shape, st, pd, dl, g, out=out)
    assert dx is out
    ref = conv_dx_ref(dy, w, x.shape, st, pd, dl, g)
    _close(dx, ref, conv_dx_ref(np.abs(dy), np.abs(w), x.shape, st, pd, dl, g))


@pytest.mark.parametrize("ci", range(len(CONV_CASES)))
def test_conv_backward_filter(isa, ci):
    x, w, st, pd, dl, g = _case(CONV_CASES[ci], ci)
    dy = _rand(np.random.default_rng(200 + ci), *conv_ref(x, w, st, pd, dl, g).shape)
    out = np.full(w.shape, np.nan, np.float32)
    dw = _core.conv2d_backward_filter("conv", x, dy, w.shape, st, pd, dl, g, out=out)
    assert dw is out
    ref = conv_dw_ref(x, dy, w.shape, st, pd, dl, g)
    _close(dw, ref, conv_dw_ref(np.abs(x), np.abs(dy), w.shape, st, pd, dl, g))


def test_conv_empty_batch():
    x = np.zeros((0, 5, 5, 2), np.float32)
    w = np.ones((3, 3, 2, 4), np.float32)
    y = _core.conv2d_forward("conv", x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert y.shape == (0, 5, 5, 4)
    dw = _core.conv2d_backward_filter("conv", x, y, w.shape, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert np.all(dw == 0)


@pytest.mark.parametrize("case", [CONV_CASES[3], CONV_CASES[7], CONV_CASES[9]])
def test_conv_gradients_finite_differences(case):
    x_shape, (kh, kw, co), st, pd, dl, g = case
    x_shape = (1,) + tuple(min(s, 6) for s in x_shape[1:3]) + (x_shape[3],)
    x, w, st, pd, dl, g = _case((x_shape, (kh, kw, co), st, pd, dl, g), 5)
    gy = _rand(np.random.default_rng(9), *conv_ref(x, w, st, pd, dl, g).shape).astype(np.float64)

    def loss(xv, wv):
        return float(np.sum(conv_ref(xv, wv, st, pd, dl, g) * gy))

    eps = 1e-3
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    fdx = np.zeros_like(x64)
    for i in np.ndindex(x.shape):
        xp, xm = x64.copy(), x64.copy()
        xp[i] += eps
        xm[i] -= eps
        fdx[i] = (loss(xp, w64) - loss(xm, w64)) / (2 * eps)
    fdw = np.zeros_like(w64)
    for i in np.ndindex(w.shape):
        wp, wm = w64.copy(), w64.copy()
        wp[i] += eps
        wm[i] -= eps
        fdw[i] = (loss(x64, wp) - loss(x64, wm)) / (2 * eps)
    dy = gy.astype(np.float32)
    dx = _core.conv2d_backward_input("conv", dy, w, x.shape, st, pd, dl, g)
    dw = _core.conv2d_backward_filter("conv", x, dy, w.shape, st, pd, dl, g)
    np.testing.assert_allclose(dx, fdx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, fdw, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups,cout", [(1, 32), (32, 32)])
def test_conv_threads_agree(num_threads, groups, cout):
    rng = np.random.default_rng(11)
    x = _rand(rng, 8, 16, 16, 32)  # large enough for the runtime to use 2 threads
    w = _rand(rng, 3, 3, 32 // groups, cout)
    args = ((1, 1), (1, 1, 1, 1), (1, 1), groups)
    dy = _rand(rng, 8, 16, 16, cout)
    res = []
    for t in (1, 2):
        num_threads(t)
        res.append((_core.conv2d_forward("c", x, w, *args),
                    _core.conv2d_backward_input("c", dy, w, x.shape, *args),
                    _core.conv2d_backward_filter("c", x, dy, w.shape, *args)))
    bounds = (conv_ref(np.abs(x), np.abs(w), *args), conv_dx_ref(np.abs(dy), np.abs(w), x.shape, *args),
              conv_dw_ref(np.abs(x), np.abs(dy), w.shape, *args))
    for a, b, bd in zip(res[0], res[1], bounds):
        _close(b, a.astype(np.float64), bd)


# ---------------------------------------------------------------------------------- bias


@pytest.mark.parametrize("shape", [(5,), (3, 7), (2, 4, 5, 6), (1000, 3)])
def test_bias_add_and_grad(shape):
    rng = np.random.default_rng(len(shape))
    y, b = _rand(rng, *shape), _rand(rng, shape[-1])
    np.testing.assert_array_equal(_core.bias_add("b", y, b), y + b)
    out = np.empty_like(y)
    assert _core.bias_add("b", y, b, out=out) is out
    np.testing.assert_array_equal(out, y + b)
    y2 = y.copy()
    _core.bias_add("b", y2, b, out=y2)  # in place
    np.testing.assert_array_equal(y2, y + b)
    db = _core.bias_grad("b", y)
    ref = y.astype(np.float64).reshape(-1, shape[-1]).sum(0)
    np.testing.assert_allclose(db, ref, rtol=1e-6, atol=1e-6)


def test_bias_grad_thread_independent(num_threads):
    y = _rand(np.random.default_rng(1), 70000, 8)
    num_threads(1)
    a = _core.bias_grad("b", y)
    num_threads(2)
    b = _core.bias_grad("b", y)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------- bad inputs

F = np.float32
X = np.zeros((2, 8, 8, 16), F)
W = np.zeros((3, 3, 16, 32), F)
GEO = ((1, 1), (1, 1, 1, 1), (1, 1), 1)


def _fwd(x=X, w=W, st=(1, 1), pd=(1, 1, 1, 1), dl=(1, 1), g=1, **kw):
    return _core.conv2d_forward("conv1", x, w, st, pd, dl, g, **kw)


BAD = [
    (lambda: _core.gemm("d1", np.zeros((2, 3), np.float64), np.zeros((3, 2), F)), TypeError, "a must have dtype float32"),
    (lambda: _core.gemm("d1", np.zeros((2, 3), F), [[1.0]]), TypeError, "b must be a numpy.ndarray"),
    (lambda: _core.gemm("d1", np.zeros((2, 3, 1), F), np.zeros((3, 2), F)), ValueError, "a must have 2 dims"),
    (lambda: _core.gemm("d1", np.zeros((2, 3), F), np.zeros((4, 2), F)), ValueError, "inner dims differ"),
    (lambda: _core.gemm("d1", np.zeros((2, 3), F), np.zeros((2, 3), F), trans_b=False), ValueError, "op(b) is (2, 3)"),
    (lambda: _core.gemm("d1", np.zeros((3, 4), F).T, np.zeros((3, 2), F)), ValueError, "a must be C-contiguous"),
    (lambda: _core.gemm("d1", np.zeros((2, 3), F), np.zeros((3, 2), F), beta=1.0), ValueError, "needs out="),
    (lambda: _core.gemm("d1", np.zeros((2, 3), F), np.zeros((3, 2), F), out=np.zeros((2, 3), F)), ValueError, "out must have shape (2, 2)"),
    (lambda: _core.gemm("d1", np.zeros((2, 2), F), np.zeros((2, 2), F), out=np.zeros((2, 2), F)[:, :]), None, None),
    (lambda: (lambda a: _core.gemm("d1", a, np.zeros((2, 2), F), out=a))(np.zeros((2, 2), F)), ValueError, "share memory"),
    (lambda: _core.gemm("d1", np.zeros((2, 2), F), np.zeros((2, 2), F), alpha=float("nan")), ValueError, "alpha"),
    (lambda: _fwd(x=np.zeros((8, 8, 16), F)), ValueError, "x must have 4 dims (batch, height, width, channels), got shape (8, 8, 16)"),
    (lambda: _fwd(x=X.astype(np.float64)), TypeError, "x must have dtype float32"),
    (lambda: _fwd(w=np.zeros((3, 3, 16), F)), ValueError, "w must have 4 dims"),
    (lambda: _fwd(w=np.zeros((3, 3, 8, 32), F)), ValueError,
     "conv1: w must have shape (3, 3, 16, *) for x with 16 channels and groups=1, got (3, 3, 8, 32)"),
    (lambda: _fwd(g=3, w=np.zeros((3, 3, 5, 30), F)), ValueError, "not divisible by groups=3"),
    (lambda: _fwd(g=2, w=np.zeros((3, 3, 8, 31), F)), ValueError, "31 output channels, not divisible by groups=2"),
    (lambda: _fwd(g=0), ValueError, "groups must be in [1, 16]"),
    (lambda: _fwd(g=1.0), TypeError, "groups must be an int"),
    (lambda: _fwd(st=(0, 1)), ValueError, "strides must be in"),
    (lambda: _fwd(st=(1,)), ValueError, "strides must have 2 values"),
    (lambda: _fwd(st="ab"), TypeError, "strides must be a sequence"),
    (lambda: _fwd(st=(1.5, 1)), TypeError, "strides[0] must be an int"),
    (lambda: _fwd(dl=(1, -1)), ValueError, "dilation must be in"),
    (lambda: _fwd(pd=(1, 1, -1, 1)), ValueError, "padding (top, bottom, left, right) must be in"),
    (lambda: _fwd(pd=(1, 1)), ValueError, "padding must have 4 values"),
    (lambda: _fwd(w=np.zeros((11, 3, 16, 32), F)), ValueError, "output height would be < 1"),
    (lambda: _fwd(w=np.zeros((3, 3, 16, 32), F), dl=(1, 5), pd=(0, 0, 0, 0)), ValueError, "output width would be < 1"),
    (lambda: _fwd(w=np.zeros((3, 3, 16, 0), F)), ValueError, "w must have all dims >= 1"),
    (lambda: _fwd(x=np.zeros((2, 8, 8, 0), F), w=np.zeros((3, 3, 0, 4), F)), ValueError, "x must have height, width and channels >= 1"),
    (lambda: _fwd(out=np.zeros((2, 8, 8, 16), F)), ValueError, "out must have shape (2, 8, 8, 32)"),
    (lambda: _fwd(out=np.zeros((2, 8, 8, 32), np.float64)), TypeError, "out must have dtype float32"),
    (lambda: _fwd(out=np.zeros((2, 8, 8, 64), F)[..., ::2]), ValueError, "out must be C-contiguous"),
    (lambda: (lambda o: (o.setflags(write=False), _fwd(out=o)))(np.zeros((2, 8, 8, 32), F)), ValueError, "out must be writeable"),
    (lambda: _core.conv2d_backward_input("conv1", np.zeros((2, 8, 8, 31), F), W, X.shape, *GEO), ValueError,
     "dy must have the forward output shape (2, 8, 8, 32), got (2, 8, 8, 31)"),
    (lambda: _core.conv2d_backward_input("conv1", np.zeros((2, 8, 8, 32), F), W, (2, 8, 8), *GEO), ValueError, "x_shape must have 4 values"),
    (lambda: _core.conv2d_backward_input("conv1", np.zeros((2, 8, 8, 32), F), W, (2, 8, 8, -16), *GEO), ValueError, "x_shape must have non-negative dims"),
    (lambda: _core.conv2d_backward_input("conv1", np.zeros((2, 8, 8, 32), F), W, (2, 8, 8, 8), *GEO), ValueError,
     "w must have shape (3, 3, 8, *) for x_shape with 8 channels"),
    (lambda: _core.conv2d_backward_input("conv1", np.zeros((2, 8, 8, 32), F), W, (2**40, 2**20, 8, 16), *GEO), ValueError, "too large"),
    (lambda: _core.conv2d_backward_filter("conv1", X, np.zeros((2, 4, 8, 32), F), W.shape, *GEO), ValueError, "dy must have the forward output shape"),
    (lambda: _core.conv2d_backward_filter("conv1", X, np.zeros((2, 8, 8, 32), F), (3, 3, 16), *GEO), ValueError, "w_shape must have 4 values"),
    (lambda: _core.conv2d_backward_filter("conv1", X, np.zeros((2, 8, 8, 32), F), W.shape, *GEO, out=np.zeros((3, 3, 16, 31), F)),
     ValueError, "out must have shape (3, 3, 16, 32)"),
    (lambda: _core.bias_add("dense", np.zeros((2, 3), F), np.zeros(4, F)), ValueError, "b must have shape (3,) for y of shape (2, 3), got (4,)"),
    (lambda: _core.bias_add("dense", np.zeros((2, 3), F), np.zeros((1, 3), F)), ValueError, "b must have shape (3,)"),
    (lambda: _core.bias_add("dense", np.zeros((), F), np.zeros(1, F)), ValueError, "y must have at least 1 dim"),
    (lambda: _core.bias_add("dense", np.zeros((2, 3), np.int32), np.zeros(3, F)), TypeError, "y must have dtype float32"),
    (lambda: _core.bias_grad("dense", np.zeros((2, 3), np.float16)), TypeError, "dy must have dtype float32"),
    (lambda: _core.bias_grad("dense", np.zeros((), F)), ValueError, "dy must have at least 1 dim"),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_inputs(i):
    fn, exc, msg = BAD[i]
    if exc is None:
        fn()
        return
    with pytest.raises(exc) as ei:
        fn()
    text = str(ei.value)
    assert msg in text, text
    assert text.startswith(("d1:", "conv1:", "dense:")), text  # the caller's name comes first
