"""Property tests (hypothesis) of the kernels against their NumPy references: random shapes
including the edge sizes (0, 1, SIMD widths +- 1), random geometry and quantizer parameters, every
ISA level and 1 or 2 threads. The example count comes from the hypothesis profile
(tests/conftest.py: "ci" by default, "fuzz" in python/fuzz.py)."""
import numpy as np
from hypothesis import assume, given, settings, strategies as st

import npref
import qnn_ext
from qnn_ext import _core, quantizers
from test_gemm_conv import conv_dw_ref, conv_dx_ref, conv_ref
from test_nn_kernels import ref_pool

F32 = np.float32
ISAS = list(qnn_ext.build_info()["isas_available"]) or ["ref"]
EDGE = [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65]

isas = st.sampled_from(ISAS)
threads = st.sampled_from([1, 2])


def dims(lo=0, hi=70):
    return st.one_of(st.sampled_from([d for d in EDGE if lo <= d <= hi]), st.integers(lo, hi))


class at:
    """Run a block at one ISA level and thread count, restoring both."""

    def __init__(self, isa, nt):
        self.isa, self.nt = isa, nt

    def __enter__(self):
        self.prev = (_core.get_isa(), _core.get_num_threads())
        _core.set_isa(self.isa)
        _core.set_num_threads(self.nt)

    def __exit__(self, *exc):
        _core.set_isa(self.prev[0])
        _core.set_num_threads(self.prev[1])


def count():
    from fuzz_targets import COUNTS
    COUNTS["kernels"] += 1


def arr(seed, shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(F32)


def close(got, ref, bound, rtol=2e-6):
    """|got - ref| <= rtol * bound elementwise, bound = the sum of |terms| (a float32 sum of n
    terms errs by at most ~n ulp of that sum; rtol covers the blocked orders)."""
    err = np.abs(got.astype(np.float64) - ref)
    assert np.all(err <= rtol * np.maximum(bound, 1e-30) * 64 + 1e-30), float(np.max(err))


@given(m=dims(), n=dims(), k=dims(), ta=st.booleans(), tb=st.booleans(),
       alpha=st.sampled_from([1.0, -0.5, 2.0]), beta=st.sampled_from([0.0, 1.0, -2.0]),
       isa=isas, nt=threads, seed=st.integers(0, 2 ** 16))
def test_gemm(m, n, k, ta, tb, alpha, beta, isa, nt, seed):
    count()
    a = arr(seed, (k, m) if ta else (m, k))
    b = arr(seed + 1, (n, k) if tb else (k, n))
    c0 = arr(seed + 2, (m, n))
    out = c0.copy()
    with at(isa, nt):
        got = _core.gemm("fuzz", a, b, out=out if beta else None, trans_a=ta, trans_b=tb,
                         alpha=alpha, beta=beta)
    A = (a.T if ta else a).astype(np.float64)
    B = (b.T if tb else b).astype(np.float64)
    ref = alpha * A @ B + beta * c0
    close(got, ref, abs(alpha) * np.abs(A) @ np.abs(B) + abs(beta) * np.abs(c0))


@st.composite
def conv_geometry(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 4))
    cog = draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    st_ = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dl = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    n = draw(st.sampled_from([0, 1, 2, 3]))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    assume(h + pad[0] + pad[1] >= dl[0] * (kh - 1) + 1 and w + pad[2] + pad[3] >= dl[1] * (kw - 1) + 1)
    return (n, h, w, cg * groups), (kh, kw, cg, cog * groups), st_, pad, dl, groups


@given(geo=conv_geometry(), isa=isas, nt=threads, seed=st.integers(0, 2 ** 16))
def test_conv2d_forward_and_backward(geo, isa, nt, seed):
    count()
    xs, ws, strides, pad, dil, g = geo
    x, w = arr(seed, xs), arr(seed + 1, ws)
    with at(isa, nt):
        y = _core.conv2d_forward("fuzz", x, w, strides, pad, dil, g)
        dy = arr(seed + 2, y.shape)
        dx = _core.conv2d_backward_input("fuzz", dy, w, xs, strides, pad, dil, g)
        dw = _core.conv2d_backward_filter("fuzz", x, dy, ws, strides, pad, dil, g)
    close(y, conv_ref(x, w, strides, pad, dil, g), conv_ref(np.abs(x), np.abs(w), strides, pad, dil, g))
    close(dx, conv_dx_ref(dy, w, xs, strides, pad, dil, g),
          conv_dx_ref(np.abs(dy), np.abs(w), xs, strides, pad, dil, g))
    close(dw, conv_dw_ref(x, dy, ws, strides, pad, dil, g),
          conv_dw_ref(np.abs(x), np.abs(dy), ws, strides, pad, dil, g))


@st.composite
def winograd_geometry(draw):
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    assume(h + pad[0] + pad[1] >= 3 and w + pad[2] + pad[3] >= 3)
    return ((draw(st.sampled_from([0, 1, 2, 3])), h, w, draw(dims(1, 40))),
            draw(dims(1, 40)), pad)


@given(geo=winograd_geometry(), isa=isas, nt=threads, seed=st.integers(0, 2 ** 16))
def test_winograd_forward_and_input_gradient(geo, isa, nt, seed):
    """algo='winograd' on any 3x3 stride-1 shape: forward and dx within the rounding bound of
    the transforms' magnitudes (tests/test_winograd.py) of the float64 convolution."""
    from test_winograd import np_winograd, flipped
    count()
    xs, co, pad = geo
    x, w = arr(seed, xs), arr(seed + 1, (3, 3, xs[3], co))
    with at(isa, nt):
        y = _core.conv2d_forward("fuzz", x, w, (1, 1), pad, (1, 1), 1, algo="winograd")
        dy = arr(seed + 2, y.shape)
        dx = _core.conv2d_backward_input("fuzz", dy, w, xs, (1, 1), pad, (1, 1), 1,
                                         algo="winograd")
    if xs[0] == 0:
        assert y.shape[0] == 0 and dx.shape == xs
        return
    close(y, conv_ref(x, w, (1, 1), pad, (1, 1), 1), np_winograd(x, w, pad, magnitude=True))
    fpad = tuple(2 - p for p in pad)
    close(dx, conv_dx_ref(dy, w, xs, (1, 1), pad, (1, 1), 1),
          np_winograd(dy, flipped(w), fpad, magnitude=True))


@st.composite
def pool_geometry(draw):
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pad = (draw(st.integers(0, ph - 1)), draw(st.integers(0, ph - 1)),
           draw(st.integers(0, pw - 1)), draw(st.integers(0, pw - 1)))
    h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    assume(h + pad[0] + pad[1] >= ph and w + pad[2] + pad[3] >= pw)
    return ((draw(st.sampled_from([0, 1, 2])), h, w, draw(dims(0, 33))), (ph, pw),
            (draw(st.integers(1, 3)), draw(st.integers(1, 3))), pad)


@given(geo=pool_geometry(), kind=st.sampled_from(["max", "avg"]), isa=isas, nt=threads,
       seed=st.integers(0, 2 ** 16))
def test_pool2d(geo, kind, isa, nt, seed):
    count()
    xs, pool, strides, pad = geo
    x = arr(seed, xs)
    with at(isa, nt):
        y = _core.pool2d_forward("fuzz", kind, x, pool, strides, pad)
    np.testing.assert_allclose(y, ref_pool(kind, x, pool, strides, pad), rtol=1e-6, atol=1e-6)


@given(bits=st.integers(1, 12), integer=st.integers(0, 3), symmetric=st.booleans(),
       keep_negative=st.booleans(), shape=st.lists(dims(0, 40), min_size=0, max_size=3),
       scale=st.sampled_from([0.1, 1.0, 8.0]), isa=isas, nt=threads, seed=st.integers(0, 2 ** 16))
def test_quantized_bits(bits, integer, symmetric, keep_negative, shape, scale, isa, nt, seed):
    count()
    assume(bits - int(keep_negative) >= 0)
    kw = dict(bits=bits, integer=integer, symmetric=int(symmetric), keep_negative=keep_negative)
    x = arr(seed, tuple(shape), scale)
    with at(isa, nt):
        got = quantizers.quantized_bits(**kw, alpha=1)(x)
    ref, _ = npref.ref_quantized_bits(x, **kw, alpha=1)
    # away from rounding ties (where float32 vs float64 products may round either way)
    ub = bits - int(keep_negative)
    t = x.astype(np.float64) * 2.0 ** (ub - integer) if ub > 0 else np.full(x.shape, 0.25)
    clear = np.abs(t - np.floor(t) - 0.5) > 1e-4
    np.testing.assert_array_equal(got[clear], np.asarray(ref, F32)[clear])


@given(shape=st.lists(dims(0, 33), min_size=1, max_size=3), isa=isas, nt=threads,
       seed=st.integers(0, 2 ** 16))
def test_bias_grad_and_bitpack(shape, isa, nt, seed):
    count()
    dy = arr(seed, tuple(shape))
    rows = dy.reshape(int(np.prod(shape[:-1])), shape[-1])  # reshape(-1, 0) is ambiguous
    with at(isa, nt):
        db = _core.bias_grad("fuzz", dy)
        packed = _core.bnn_bitpack("fuzz", dy) if shape[-1] >= 1 and len(shape) <= 8 else None
    np.testing.assert_allclose(db, rows.astype(np.float64).sum(0),
                               rtol=1e-5, atol=1e-5)
    if packed is not None:
        neg = rows < 0
        c = shape[-1]
        want = np.zeros((neg.shape[0], (c + 63) // 64), np.uint64)
        for j in range(c):
            want[:, j // 64] |= neg[:, j].astype(np.uint64) << np.uint64(j % 64)
        np.testing.assert_array_equal(packed.reshape(want.shape), want)


@given(rows=dims(1, 40), c=dims(1, 40), eps=st.sampled_from([1e-5, 1e-3, 0.1]), isa=isas,
       nt=threads, seed=st.integers(0, 2 ** 16))
def test_batchnorm_training_forward(rows, c, eps, isa, nt, seed):
    count()
    x = arr(seed, (rows, c), 3.0) + F32(2.0)
    with at(isa, nt):
        y, mean, var, inv = _core.batchnorm_forward("fuzz", x, None, None, eps, True)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(var, x64.var(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y, (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + eps), rtol=1e-4, atol=1e-4)


@settings(max_examples=6)  # large sizes: a few examples (the fuzz runner repeats the test)
@given(m=st.integers(128, 400), n=st.integers(32, 200), k=st.integers(64, 300),
       isa=st.sampled_from(ISAS[-1:]), seed=st.integers(0, 2 ** 16))
def test_threads_give_identical_results(m, n, k, isa, seed):
    """Sizes above the per-thread threshold (the small cases above run single-threaded whatever
    the setting). Element-wise, pooling, bias and forward conv results are bit-identical for 1
    and 2 threads; a GEMM that splits K across threads (the filter gradient) adds the partials
    in thread order, so it may differ by float summation only (README "Training kernels")."""
    count()
    a, b = arr(seed, (m, k)), arr(seed + 1, (k, n))
    x = arr(seed + 2, (2, 24, 24, max(k // 16, 1)))
    w = arr(seed + 3, (3, 3, x.shape[3], 16))
    q = quantizers.quantized_bits(4, 0, 1, alpha="auto_po2")
    res = []
    for nt in (1, 2):
        with at(isa, nt):
            y = _core.conv2d_forward("fuzz", x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1)
            res.append(dict(
                gemm=_core.gemm("fuzz", a, b), y=y,
                dw=_core.conv2d_backward_filter("fuzz", x, y, w.shape, (1, 1), (1, 1, 1, 1), (1, 1), 1),
                pool=_core.pool2d_forward("fuzz", "max", y, (2, 2), (2, 2), (0, 0, 0, 0)),
                q=q(a), db=_core.bias_grad("fuzz", y)))
    for key in ("y", "pool", "q", "db"):
        np.testing.assert_array_equal(res[0][key], res[1][key], err_msg=key)
    bound_g = np.abs(a).astype(np.float64) @ np.abs(b)
    close(res[1]["gemm"], res[0]["gemm"].astype(np.float64), bound_g)
    bound_w = conv_dw_ref(np.abs(x), np.abs(res[0]["y"]), w.shape, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    close(res[1]["dw"], res[0]["dw"].astype(np.float64), bound_w)


@given(bits=st.integers(1, 12), integer=st.integers(0, 3),
       shape=st.lists(dims(0, 40), min_size=0, max_size=3), scale=st.sampled_from([0.1, 1.0, 8.0]),
       isa=isas, nt=threads, seed=st.integers(0, 2 ** 16))
def test_quantized_relu(bits, integer, shape, scale, isa, nt, seed):
    count()
    x = arr(seed, tuple(shape), scale)
    with at(isa, nt):
        got = quantizers.quantized_relu(bits, integer)(x)
        grad = quantizers.quantized_relu(bits, integer).gradient(x, np.ones_like(x))
    ref, _ = npref.ref_quantized_relu(x, bits=bits, integer=integer)
    gref = npref.ref_quantized_relu_grad(x, np.ones_like(x), bits=bits, integer=integer)
    t = x.astype(np.float64) * 2.0 ** (bits - integer)
    clear = np.abs(t - np.floor(t) - 0.5) > 1e-4  # away from rounding ties
    np.testing.assert_array_equal(got[clear], np.asarray(ref, F32)[clear])
    edge = np.isclose(x, 2.0 ** integer * (1 - 2.0 ** -bits), rtol=1e-5) | (x == 0)
    np.testing.assert_array_equal(np.asarray(grad)[~edge], np.asarray(gref, F32)[~edge])


@given(geo=conv_geometry(), bits=st.integers(2, 8), integer=st.integers(0, 3),
       slope=st.sampled_from([0.0, 0.0, 0.25, 0.5]), clip=st.booleans(), isa=isas, nt=threads,
       seed=st.integers(0, 2 ** 16))
def test_conv_quantizer_epilogue_and_ste_mask(geo, bits, integer, slope, clip, isa, nt, seed):
    """quantized_relu in the conv epilogue: the fused output is the quantizer of the unfused
    output, and the backward from the bit mask is the quantizer's backward from the float
    pre-activation (all in our kernels, bit for bit), on random geometry and parameters."""
    count()
    xs, ws, strides, pad, dil, g = geo
    x, w = arr(seed, xs), arr(seed + 1, ws)
    bias = arr(seed + 3, (ws[-1],))
    q = quantizers.quantized_relu(bits, integer, negative_slope=slope, is_quantized_clip=clip)
    with at(isa, nt):
        z = _core.conv2d_forward("fuzz", x, w, strides, pad, dil, g, bias=bias)
        if z.size == 0:
            return
        spec = q._fused_spec(z, True)
        y, mask = _core.conv2d_forward("fuzz", x, w, strides, pad, dil, g, bias=bias, act=spec,
                                       ste_mask=True)
        dy = arr(seed + 2, z.shape)
        dx = _core.quant_ste_backward("fuzz", spec, mask, dy)
        np.testing.assert_array_equal(y, q(z))
        np.testing.assert_array_equal(dx, q.gradient(z, dy))
