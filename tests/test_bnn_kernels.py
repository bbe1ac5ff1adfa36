"""Integer inference kernels (csrc/kernels/bnn) at every ISA level against the scalar C level and
a NumPy reference: bit-packing, binary (XNOR-popcount) and int8 convolutions with every output
transform, odd channel counts, strides, asymmetric zero padding, batch 1, max pooling, bad input."""
import numpy as np
import pytest

from qnn_ext import _core
from qnn_ext.deploy.packing import (pack_binary_weights, pack_int8_weights, pack_signs,
                                    pack_tbits, pack_ternary_weights, unpack_signs, unpack_tbits,
                                    words)

F32 = np.float32

# (N, H, W, C, CO, KH, KW, strides, padding (top, bottom, left, right))
SHAPES = [
    (1, 5, 6, 3, 5, 3, 3, (1, 1), (1, 1, 1, 1)),
    (2, 7, 7, 70, 33, 3, 3, (2, 2), (1, 1, 1, 1)),
    (2, 6, 5, 64, 64, 1, 1, (1, 1), (0, 0, 0, 0)),      # rows are the input rows (1x1)
    (3, 4, 4, 65, 10, 4, 4, (1, 1), (0, 0, 0, 0)),      # full-extent kernel (Dense after Flatten)
    (1, 9, 9, 130, 97, 3, 3, (1, 2), (0, 2, 1, 0)),     # asymmetric padding
    (2, 8, 8, 1, 7, 2, 2, (2, 2), (0, 0, 0, 0)),
    (1, 3, 3, 5, 129, 5, 5, (1, 1), (2, 2, 2, 2)),      # padding on every tap of the corners
]


def conv_ref(x, w, strides, pads):
    """Integer convolution with zero padding, int64."""
    x = x.astype(np.int64)
    w = w.astype(np.int64)
    n, h, wd, c = x.shape
    kh, kw, _, co = w.shape
    pt, pb, pl, pr = pads
    sh, sw = strides
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    ho, wo = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
    out = np.zeros((n, ho, wo, co), np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :]
            out += np.einsum("nhwc,co->nhwo", patch, w[i, j])
    return out


def epilogue_ref(acc, mode, p):
    if mode == "float":
        return acc.astype(F32) * p["mul"] + p["add"]
    v = acc * p["dir"].astype(np.int64)
    level = (v[..., None] >= p["thr"].T).sum(-1)
    if mode == "codes":
        return (level * p["code_mul"]).astype(np.uint8)
    if mode == "tbits":
        return pack_tbits(level - 1)
    return pack_signs(level == 0)


def epilogue_params(rng, acc, co, mode, nthr):
    if mode == "float":
        return dict(mul=(2.0 ** rng.integers(-8, 3, co)).astype(F32),
                    add=rng.standard_normal(co).astype(F32))
    lo, hi = int(acc.min()) - 2, int(acc.max()) + 2
    thr = np.sort(rng.integers(lo, hi + 1, (nthr, co)), axis=0).astype(np.int32)
    thr[:, 0] = np.int32(2 ** 30)         # a channel that never reaches level 1
    d = np.where(rng.random(co) < 0.5, -1, 1).astype(np.int8)
    return dict(thr=thr, dir=d, code_mul=2 if mode == "codes" else 1)


def run_conv(kind, xk, wpanel, cin, co, shape, ibias, imul, mode, p, wsum=None, zp=0, ws=None):
    _, _, _, _, _, kh, kw, st, pads = shape
    return _core.bnn_conv2d("t", kind, xk, wpanel, cin, co, (kh, kw), st, pads, ibias, imul, mode,
                            mul=p.get("mul"), add=p.get("add"), thr=p.get("thr"), dir=p.get("dir"),
                            code_mul=p.get("code_mul", 1), wsum=wsum, zp=zp, ws=ws)


def at_ref(fn):
    prev = _core.get_isa()
    _core.set_isa("ref")
    try:
        return fn()
    finally:
        _core.set_isa(prev)


@pytest.mark.parametrize("c", [1, 5, 63, 64, 65, 130])
def test_bitpack_matches_numpy(isa, c):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((3, 4, c)).astype(F32)
    x.flat[::7] = 0.0
    x.flat[1::11] = -0.0  # -0 is not negative: sign(-0) -> +1 like binary()
    got = _core.bnn_bitpack("t", x)
    assert got.shape == (3, 4, words(c)) and got.dtype == np.uint64
    np.testing.assert_array_equal(got, pack_signs(x < 0))
    np.testing.assert_array_equal(unpack_signs(got, c), x < 0)


@pytest.mark.parametrize("mode", ["float", "codes", "bits"])
@pytest.mark.parametrize("shape", SHAPES)
def test_binary_conv(isa, shape, mode):
    n, h, w, c, co, kh, kw, st, pads = shape
    rng = np.random.default_rng(abs(hash((shape, mode))) % 2 ** 32)
    x = np.where(rng.random((n, h, w, c)) < 0.5, -1.0, 1.0).astype(F32)
    wt = np.where(rng.random((kh, kw, c, co)) < 0.5, -1, 1)
    acc = conv_ref(x, wt, st, pads)
    panel, wsum = pack_binary_weights(wt)
    xk = _core.bnn_bitpack("t", x)
    ibias = np.full(co, kh * kw * c, np.int32)
    p = epilogue_params(rng, acc, co, mode, 3 if mode == "codes" else 1)
    got = run_conv("binary", xk, panel, c, co, shape, ibias, -2, mode, p, wsum=wsum,
                   ws=_core.bnn_workspace())
    want = epilogue_ref(acc, mode, p)
    np.testing.assert_array_equal(got, want)
    ref = at_ref(lambda: run_conv("binary", xk, panel, c, co, shape, ibias, -2, mode, p, wsum=wsum))
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("mode", ["float", "codes", "bits"])
@pytest.mark.parametrize("shape", SHAPES)
def test_ternary_weights_binary_activations_conv(isa, shape, mode):
    """Two bit-planes (sign, nonzero); zero padding corrected like the binary conv."""
    n, h, w, c, co, kh, kw, st, pads = shape
    rng = np.random.default_rng(abs(hash((shape, mode, 3))) % 2 ** 32)
    x = np.where(rng.random((n, h, w, c)) < 0.5, -1.0, 1.0).astype(F32)
    wt = rng.integers(-1, 2, (kh, kw, c, co))
    acc = conv_ref(x, wt, st, pads)
    panel, wsum, nnz = pack_ternary_weights(wt)
    xk = _core.bnn_bitpack("t", x)
    p = epilogue_params(rng, acc, co, mode, 3 if mode == "codes" else 1)
    run = lambda: run_conv("ternary", xk, panel, c, co, shape, nnz, -2, mode, p, wsum=wsum,
                           ws=_core.bnn_workspace())
    got = run()
    np.testing.assert_array_equal(got, epilogue_ref(acc, mode, p))
    np.testing.assert_array_equal(got, at_ref(run))


@pytest.mark.parametrize("mode", ["float", "codes", "bits", "tbits"])
@pytest.mark.parametrize("shape", SHAPES)
def test_ternary_weights_ternary_activations_conv(isa, shape, mode):
    """Sign/nonzero planes on both sides; zero padding is all-zero pairs (no correction)."""
    n, h, w, c, co, kh, kw, st, pads = shape
    rng = np.random.default_rng(abs(hash((shape, mode, 33))) % 2 ** 32)
    x = rng.integers(-1, 2, (n, h, w, c)).astype(F32)
    wt = rng.integers(-1, 2, (kh, kw, c, co))
    acc = conv_ref(x, wt, st, pads)
    panel, _, _ = pack_ternary_weights(wt)
    xk = pack_tbits(x)
    np.testing.assert_array_equal(unpack_tbits(xk, c), x.astype(np.int8))
    p = epilogue_params(rng, acc, co, mode, 2 if mode in ("codes", "tbits") else 1)
    run = lambda: run_conv("tt", xk, panel, c, co, shape, np.zeros(co, np.int32), 1, mode, p,
                           ws=_core.bnn_workspace())
    got = run()
    np.testing.assert_array_equal(got, epilogue_ref(acc, mode, p))
    np.testing.assert_array_equal(got, at_ref(run))


@pytest.mark.parametrize("mode", ["float", "codes", "bits"])
@pytest.mark.parametrize("shape", SHAPES + [(2, 3, 3, 6, 3, 1, 1, (1, 1), (0, 0, 0, 0))])
def test_int8_conv(isa, shape, mode):
    n, h, w, c, co, kh, kw, st, pads = shape
    rng = np.random.default_rng(abs(hash((shape, mode, 8))) % 2 ** 32)
    zp = int(rng.integers(0, 9))
    x = rng.integers(0, 256, (n, h, w, c)).astype(np.uint8)
    wt = rng.integers(-128, 128, (kh, kw, c, co)).astype(np.int8)
    acc = conv_ref(x.astype(np.int64) - zp, wt, st, pads)  # padding is the value 0 = level zp
    ibias = (-zp * wt.reshape(-1, co).astype(np.int64).sum(0)).astype(np.int32)
    p = epilogue_params(rng, acc, co, mode, 15 if mode == "codes" else 1)
    if mode == "float":
        p["mul"] = (2.0 ** rng.integers(-12, -6, co)).astype(F32)
    panel = pack_int8_weights(wt)
    got = run_conv("int8", x, panel, c, co, shape, ibias, 1, mode, p, zp=zp, ws=_core.bnn_workspace())
    np.testing.assert_array_equal(got, epilogue_ref(acc, mode, p))
    ref = at_ref(lambda: run_conv("int8", x, panel, c, co, shape, ibias, 1, mode, p, zp=zp))
    np.testing.assert_array_equal(got, ref)


def test_int8_codes_many_levels(isa):
    """255 thresholds take the binary-search path of the epilogue."""
    rng = np.random.default_rng(5)
    shape = (2, 5, 5, 9, 20, 3, 3, (1, 1), (1, 1, 1, 1))
    x = rng.integers(0, 16, (2, 5, 5, 9)).astype(np.uint8)
    wt = rng.integers(-8, 8, (3, 3, 9, 20)).astype(np.int8)
    acc = conv_ref(x, wt, (1, 1), (1, 1, 1, 1))
    p = epilogue_params(rng, acc, 20, "codes", 255)
    p["code_mul"] = 1
    got = run_conv("int8", x, pack_int8_weights(wt), 9, 20, shape, np.zeros(20, np.int32), 1, "codes", p)
    np.testing.assert_array_equal(got, epilogue_ref(acc, "codes", p))


def pool_ref(x, k, s, pads, combine, fill):
    n, h, w, c = x.shape
    pt, pb, pl, pr = pads
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    ho, wo = (h + pt + pb - k[0]) // s[0] + 1, (w + pl + pr - k[1]) // s[1] + 1
    out = None
    for i in range(k[0]):
        for j in range(k[1]):
            v = xp[:, i:i + s[0] * (ho - 1) + 1:s[0], j:j + s[1] * (wo - 1) + 1:s[1], :]
            out = v if out is None else combine(out, v)
    return out


@pytest.mark.parametrize("k,s,pads", [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (2, 2), (1, 1, 1, 1)),
                                      ((2, 3), (1, 2), (0, 1, 1, 1))])
def test_maxpool_levels_and_bits(isa, k, s, pads):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 200, (2, 7, 6, 5)).astype(np.uint8)
    np.testing.assert_array_equal(_core.bnn_maxpool("t", x, k, s, pads),
                                  pool_ref(x, k, s, pads, np.maximum, 0))
    f = np.where(rng.random((2, 7, 6, 70)) < 0.3, -1.0, 1.0).astype(F32)
    got = _core.bnn_maxpool("t", _core.bnn_bitpack("t", f), k, s, pads)
    # max of +-1 values, padding never wins (it is -inf for a max)
    want = pool_ref(f, k, s, pads, np.maximum, -np.inf)
    np.testing.assert_array_equal(got, pack_signs(want < 0))
    t = rng.integers(-1, 2, (2, 7, 6, 70)).astype(F32)
    got = _core.bnn_maxpool("t", pack_tbits(t), k, s, pads, planes=2)
    np.testing.assert_array_equal(got, pack_tbits(pool_ref(t, k, s, pads, np.maximum, -np.inf)))


def _good_binary_args():
    x = _core.bnn_bitpack("t", np.ones((1, 4, 4, 10), F32))
    panel, wsum = pack_binary_weights(np.ones((3, 3, 10, 4)))
    return dict(who="L", kind="binary", x=x, w=panel, cin=10, out_channels=4, kernel_size=(3, 3),
                strides=(1, 1), padding=(1, 1, 1, 1), ibias=np.zeros(4, np.int32), imul=-2,
                mode="float", mul=np.ones(4, F32), add=np.zeros(4, F32), wsum=wsum)


@pytest.mark.parametrize("change,exc,words_in_msg", [
    (dict(x=np.zeros((1, 4, 4, 1), np.float32)), TypeError, ["L", "x", "uint64"]),
    (dict(x=np.zeros((4, 4, 1), np.uint64)), ValueError, ["x", "4 dims"]),
    (dict(x=np.zeros((1, 4, 4, 2), np.uint64)), ValueError, ["x", "cin=10"]),
    (dict(w=np.zeros((1, 8, 32), np.uint64)), ValueError, ["w", "(1, 9, 32)"]),
    (dict(ibias=np.zeros(5, np.int32)), ValueError, ["ibias", "(4,)"]),
    (dict(wsum=np.zeros((9, 4), np.int64)), TypeError, ["wsum", "int32"]),
    (dict(wsum=np.full((9, 4), 99, np.int32)), ValueError, ["wsum"]),
    (dict(mode="bits"), TypeError, ["thr"]),
    (dict(mode="codes", thr=np.zeros((1, 4), np.int32), dir=np.ones(4, np.int8), code_mul=300),
     ValueError, ["code_mul"]),
    (dict(mode="nope"), ValueError, ["mode"]),
    (dict(kind="int4"), ValueError, ["kind"]),
    (dict(kernel_size=(9, 9), padding=(0, 0, 0, 0)), ValueError, ["smaller than the kernel"]),
    (dict(strides=(0, 1)), ValueError, ["strides"]),
    (dict(cin=1 << 25), ValueError, ["cin"]),
    (dict(ws=object()), TypeError, ["ws"]),
    (dict(out=np.zeros((1, 4, 4, 3), F32)), ValueError, ["out", "(1, 4, 4, 4)"]),
])
def test_conv_bad_arguments_raise_with_names(change, exc, words_in_msg):
    args = _good_binary_args()
    args.update(change)
    with pytest.raises(exc) as e:
        _core.bnn_conv2d(**args)
    for wd in words_in_msg:
        assert wd in str(e.value)


def test_conv_out_buffer_is_used_and_valid_args_run():
    args = _good_binary_args()
    args["ibias"] = np.full(4, 90, np.int32)  # K = 3*3*10
    out = np.full((1, 4, 4, 4), 7.0, F32)
    r = _core.bnn_conv2d(**args, out=out)
    assert r is out
    # all-ones input and weights: each output is the number of in-bounds taps times 10
    taps = np.array([2, 3, 3, 2])
    np.testing.assert_array_equal(out[0, :, :, 0], (taps[:, None] * taps[None, :] * 10).astype(F32))


def test_int8_accumulator_bound_is_checked():
    x = np.zeros((1, 1, 1, 20000), np.uint8)
    panel = np.zeros((1, 5000, 64, 4), np.int8)
    with pytest.raises(ValueError, match="overflow"):
        _core.bnn_conv2d("L", "int8", x, panel, 20000, 1, (1, 1), (1, 1), (0, 0, 0, 0),
                         np.zeros(1, np.int32), 1, "float", mul=np.ones(1, F32), add=np.zeros(1, F32))


@pytest.mark.parametrize("mode,nthr", [("bits", 1), ("tbits", 2), ("codes", 15), ("codes", 200)])
@pytest.mark.parametrize("k,s,pads", [((1, 1), (1, 1), (0, 0, 0, 0)), ((2, 2), (2, 2), (0, 0, 0, 0)),
                                      ((3, 3), (2, 2), (1, 1, 1, 1))])
def test_float_thresholds_with_pooling(isa, mode, nthr, k, s, pads):
    rng = np.random.default_rng(nthr)
    z = rng.standard_normal((2, 7, 6, 70)).astype(F32)
    thr = np.sort(rng.standard_normal((nthr, 70)), axis=0).astype(F32)
    d = np.where(rng.random(70) < 0.5, -1, 1).astype(np.int8)
    got = _core.bnn_fthresh_pool("t", z, thr, d, mode, k, s, pads, code_mul=1)
    v = pool_ref(z * d.astype(F32), k, s, pads, np.maximum, -np.inf)
    level = (v[..., None] >= thr.T).sum(-1)
    want = (pack_signs(level == 0) if mode == "bits" else pack_tbits(level - 1) if mode == "tbits"
            else level.astype(np.uint8))
    np.testing.assert_array_equal(got, want)


def test_float_thresholds_bad_arguments():
    z = np.zeros((1, 4, 4, 3), F32)
    ok = dict(thr=np.zeros((1, 3), F32), dir=np.ones(3, np.int8), mode="bits", pool_size=(2, 2),
              strides=(2, 2), padding=(0, 0, 0, 0))
    for change, exc, word in [(dict(thr=np.zeros((2, 3), F32)), ValueError, "thr"),
                              (dict(dir=np.ones(3, np.int32)), TypeError, "dir"),
                              (dict(mode="x"), ValueError, "mode"),
                              (dict(padding=(2, 0, 0, 0)), ValueError, "padding")]:
        args = dict(ok, **change)
        with pytest.raises(exc, match=word):
            _core.bnn_fthresh_pool("L", z, **args)
    with pytest.raises(ValueError, match="4 dims"):
        _core.bnn_fthresh_pool("L", np.zeros((4, 3), F32), **ok)


@pytest.mark.parametrize("shape", [(2, 9, 8, 1, 32, 3, 3, (1, 1), (1, 1, 1, 1)),
                                   (1, 7, 7, 3, 70, 3, 3, (2, 2), (0, 1, 0, 1)),
                                   (2, 5, 6, 4, 5, 2, 2, (1, 1), (0, 0, 0, 0))])
def test_direct_float_conv_matches_model_conv_bit_for_bit(isa, shape):
    """bnn_fconv follows the float GEMM's arithmetic (deploy checks this at convert time too)."""
    n, h, w, c, co, kh, kw, st, pads = shape
    rng = np.random.default_rng(co)
    x = rng.standard_normal((n, h, w, c)).astype(F32)
    wt = rng.standard_normal((kh, kw, c, co)).astype(F32)
    want = _core.conv2d_forward("t", x, wt, st, pads, (1, 1), 1)
    np.testing.assert_array_equal(_core.bnn_fconv("t", x, wt, st, pads), want)
    thr = rng.standard_normal((3, co)).astype(F32)
    thr.sort(axis=0)
    d = np.where(rng.random(co) < 0.5, -1, 1).astype(np.int8)
    fused = _core.bnn_fthresh_pool("t", x, thr, d, "codes", (2, 2), (1, 1), (0, 0, 0, 0), w=wt,
                                   conv_strides=st, conv_padding=pads)
    np.testing.assert_array_equal(fused, _core.bnn_fthresh_pool("t", want, thr, d, "codes", (2, 2), (1, 1),
                                                                (0, 0, 0, 0)))
    with pytest.raises(ValueError, match="w must be"):
        _core.bnn_fconv("t", x, np.zeros((kh, kw, c + 1, 2), F32), st, pads)
    with pytest.raises(ValueError, match="<= 256"):
        _core.bnn_fconv("t", np.zeros((1, 20, 20, 64), F32), np.zeros((3, 3, 64, 2), F32), (1, 1), (1, 1, 1, 1))
