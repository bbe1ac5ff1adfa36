"""Winograd F(2x2, 3x3) convolution (csrc/kernels/conv/winograd.c) against NumPy.

The reference below computes the same algorithm in float32 NumPy with the C code's operations
in the C code's order: the input, kernel and output transforms, and the 16 products summed over
input channels one channel at a time (multiply, then add, as the scalar reference microkernel
does). At the "ref" ISA level the C result must equal it bit for bit. The SIMD levels use FMA in
the products, so they are compared with a float64 direct convolution at a tolerance scaled by
sum |x| |w| over each window, as the direct path's tests do; the transforms themselves have no
FMA to contract and use only +, - and * 0.5, so every level computes the same transforms.

Shapes cover: odd output sizes (tiles cut by the image edge), 'same', 'valid' and asymmetric
padding, batch 1, channel counts off the 16-lane vectors and the 32-column register tile,
several blocks per call (tiles spanning images), the input gradient (a Winograd convolution of
dy with the flipped kernel), the fused bias/relu/batch-norm/quantizer epilogue, and thread
counts (blocks do not depend on the team, so 1 and 2 threads give the same bits)."""

import numpy as np
import pytest

import qnn_ext
from qnn_ext import _core, backend, layers
from qnn_ext import quantizers as Q

F32 = np.float32


# --------------------------------------------------------------------------- NumPy reference

def _pad(x, pads):
    t, b, l, r = pads
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))


def np_winograd(x, w, pads, magnitude=False):
    """F(2x2, 3x3) in float32, operation for operation as winograd_body.h and the scalar
    reference microkernel compute it. magnitude=True: the same algorithm on |x|, |w| with every
    subtraction an addition (the transforms' absolute values), in float64: a bound on the sizes
    of all the terms each output sums, which scales its rounding error."""
    dt = np.float64 if magnitude else F32
    x = np.abs(x).astype(dt) if magnitude else x.astype(dt)
    w = np.abs(w).astype(dt) if magnitude else w.astype(dt)
    sub = np.add if magnitude else np.subtract
    N, H, W, C = x.shape
    CO = w.shape[3]
    HO, WO = H + pads[0] + pads[1] - 2, W + pads[2] + pads[3] - 2
    TH, TW = (HO + 1) // 2, (WO + 1) // 2
    # pad so every tile's 4x4 window exists (zeros past the image, as the C code reads)
    xp = _pad(x, (pads[0], 2 * TH + 2 - H - pads[0], pads[2], 2 * TW + 2 - W - pads[2]))
    d = np.empty((4, 4, N, TH, TW, C), dt)
    for i in range(4):
        for j in range(4):
            d[i, j] = xp[:, i:i + 2 * TH:2, j:j + 2 * TW:2, :]
    # B^T d B
    t = np.empty_like(d)
    t[0] = sub(d[0], d[2])
    t[1] = d[1] + d[2]
    t[2] = sub(d[2], d[1])
    t[3] = sub(d[1], d[3])
    v = np.empty_like(d)
    v[:, 0] = sub(t[:, 0], t[:, 2])
    v[:, 1] = t[:, 1] + t[:, 2]
    v[:, 2] = sub(t[:, 2], t[:, 1])
    v[:, 3] = sub(t[:, 1], t[:, 3])
    # G g G^T
    g = w
    h = dt(0.5)
    tg = np.empty((4, 3, C, CO), dt)
    tg[0] = g[0]
    tg[1] = h * ((g[0] + g[1]) + g[2])
    tg[2] = h * (sub(g[0], g[1]) + g[2])
    tg[3] = g[2]
    u = np.empty((4, 4, C, CO), dt)
    u[:, 0] = tg[:, 0]
    u[:, 1] = h * ((tg[:, 0] + tg[:, 1]) + tg[:, 2])
    u[:, 2] = h * (sub(tg[:, 0], tg[:, 1]) + tg[:, 2])
    u[:, 3] = tg[:, 2]
    # the 16 products, summed over channels in order, each step rounded: multiply, then add
    m = np.zeros((4, 4, N, TH, TW, CO), dt)
    for c in range(C):
        m = m + v[..., c:c + 1] * u[:, :, c][:, :, None, None, None, :]
    # A^T m A
    s = np.empty((2, 4) + m.shape[2:], dt)
    s[0] = (m[0] + m[1]) + m[2]
    s[1] = sub(sub(m[1], m[2]), m[3])
    y = np.empty((2, 2) + m.shape[2:], dt)
    y[:, 0] = (s[:, 0] + s[:, 1]) + s[:, 2]
    y[:, 1] = sub(sub(s[:, 1], s[:, 2]), s[:, 3])
    out = np.empty((N, 2 * TH, 2 * TW, CO), dt)
    for i in range(2):
        for j in range(2):
            out[:, i::2, j::2, :] = y[i, j]
    return out[:, :HO, :WO, :]


def direct64(x, w, pads):
    xp = _pad(x.astype(np.float64), pads)
    HO, WO = xp.shape[1] - 2, xp.shape[2] - 2
    y = np.zeros((x.shape[0], HO, WO, w.shape[3]))
    for kh in range(3):
        for kw in range(3):
            y += xp[:, kh:kh + HO, kw:kw + WO, :] @ w[kh, kw].astype(np.float64)
    return y


def flipped(w):
    """The kernel of the stride-1 input gradient as a forward convolution: flipped in space,
    input and output channels swapped."""
    return np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))


def assert_close(got, x, w, pads, rel=2e-6):
    """Within rel (~32 float32 ulps) of the size of the terms the Winograd sums add up."""
    want = direct64(x, w, pads)
    scale = np_winograd(x, w, pads, magnitude=True) + 1e-30
    err = np.abs(got.astype(np.float64) - want) / scale
    assert err.max() < rel, err.max()


def fwd(x, w, pads, algo="winograd", **kw):
    return _core.conv2d_forward("c", x, w, (1, 1), pads, (1, 1), 1, algo=algo, **kw)


SAME, VALID = (1, 1, 1, 1), (0, 0, 0, 0)
SHAPES = [
    # (x shape, out channels, padding)
    ((2, 8, 8, 16), 32, SAME),        # whole tiles, one register-tile column
    ((1, 7, 9, 16), 20, SAME),        # odd sizes: the last tile row and column cut; batch 1
    ((2, 9, 6, 17), 33, VALID),       # C off the vector width, CO one past the 32-wide tile
    ((3, 6, 7, 33), 5, (2, 1, 0, 2)),  # asymmetric padding, taps wholly in the padding
    ((3, 30, 30, 16), 16, SAME),      # 675 tiles: several blocks, blocks spanning images
    ((1, 3, 3, 24), 70, SAME),        # one tile row; three register-tile columns
    ((2, 5, 4, 16), 1, (0, 2, 2, 0)),  # a single output channel
]
IDS = ["8x8", "odd", "valid", "asym", "blocks", "tiny", "co1"]


def data(xs, co, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(F32)
    w = (rng.standard_normal((3, 3, xs[3], co)) / np.sqrt(9 * xs[3])).astype(F32)
    return x, w


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("case", SHAPES, ids=IDS)
def test_forward_ref_level_is_the_numpy_algorithm_bit_for_bit(num_threads, case, nt):
    previous = qnn_ext.build_info()["isa"]
    _core.set_isa("ref")
    try:
        num_threads(nt)
        xs, co, pads = case
        x, w = data(xs, co)
        np.testing.assert_array_equal(fwd(x, w, pads), np_winograd(x, w, pads))
    finally:
        _core.set_isa(previous)


@pytest.mark.parametrize("case", SHAPES, ids=IDS)
def test_forward_every_level_against_float64(isa, num_threads, case):
    xs, co, pads = case
    x, w = data(xs, co, 1)
    got = []
    for nt in (1, 2):
        num_threads(nt)
        got.append(fwd(x, w, pads))
    np.testing.assert_array_equal(got[0], got[1])  # the same blocks whatever the team
    assert_close(got[0], x, w, pads)
    # the same algorithm as NumPy's up to the products' summation (FMA at the SIMD levels)
    np.testing.assert_allclose(got[0], np_winograd(x, w, pads), rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", SHAPES, ids=IDS)
def test_input_gradient_is_winograd_of_dy_with_the_flipped_kernel(isa, case):
    xs, co, pads = case
    x, w = data(xs, co, 2)
    HO, WO = xs[1] + pads[0] + pads[1] - 2, xs[2] + pads[2] + pads[3] - 2
    dy = np.random.default_rng(3).standard_normal((xs[0], HO, WO, co)).astype(F32)
    dx = _core.conv2d_backward_input("c", dy, w, xs, (1, 1), pads, (1, 1), 1, algo="winograd")
    fpads = tuple(2 - p for p in pads)
    wt = flipped(w)
    np.testing.assert_array_equal(dx, fwd(dy, wt, fpads))
    assert_close(dx, dy, wt, fpads)
    if isa == "ref":
        np.testing.assert_array_equal(dx, np_winograd(dy, wt, fpads))
    # and the direct path's input gradient agrees to float rounding
    ddx = _core.conv2d_backward_input("c", dy, w, xs, (1, 1), pads, (1, 1), 1, algo="direct")
    np.testing.assert_allclose(dx, ddx, rtol=0, atol=1e-5)


def test_forward_differs_from_direct_only_by_rounding(isa):
    x, w = data((4, 16, 16, 64), 64, 4)
    yw, yd = fwd(x, w, SAME), fwd(x, w, SAME, algo="direct")
    assert not np.array_equal(yw, yd)  # another summation order: a real second algorithm
    np.testing.assert_allclose(yw, yd, rtol=0, atol=2e-5)


@pytest.mark.parametrize("nt", [1, 2])
def test_epilogue_bias_relu_scale_shift(isa, num_threads, nt):
    num_threads(nt)
    x, w = data((3, 30, 30, 16), 40, 5)
    rng = np.random.default_rng(6)
    bias = rng.standard_normal(40).astype(F32)
    sc = rng.uniform(0.5, 2, 40).astype(F32)
    sh = rng.standard_normal(40).astype(F32)
    z = fwd(x, w, SAME)
    np.testing.assert_array_equal(fwd(x, w, SAME, bias=bias), z + bias)
    np.testing.assert_array_equal(fwd(x, w, SAME, bias=bias, act="relu"),
                                  np.maximum(z + bias, F32(0)))
    np.testing.assert_array_equal(fwd(x, w, SAME, bias=bias, scale=sc, shift=sh, act="relu"),
                                  np.maximum((z + bias) * sc + sh, F32(0)))


@pytest.mark.parametrize("case", [((3, 30, 30, 16), 40), ((2, 7, 9, 16), 20)], ids=["blocks", "odd"])
def test_epilogue_quantizer_and_its_ste_mask(isa, num_threads, case):
    xs, co = case
    x, w = data(xs, co, 7)
    z = fwd(x, w, SAME)
    q = Q.quantized_relu(4, 2, negative_slope=0.25)
    spec = q._fused_spec(np.broadcast_to(F32(0), z.shape), True)
    pf, sc, sc2, inner, pb, sb, ib = spec
    for nt in (1, 2):
        num_threads(nt)
        y, mask = fwd(x, w, SAME, act=spec, ste_mask=True)
        np.testing.assert_array_equal(
            y, _core.quant_forward("q", z, pf, scale=sc, scale2=sc2, inner=inner))
        dy = np.random.default_rng(8).standard_normal(z.shape).astype(F32)
        np.testing.assert_array_equal(_core.quant_ste_backward("q", spec, mask, dy),
                                      _core.quant_backward("q", z, dy, pb, scale=sb, inner=ib))


def test_auto_picks_winograd_only_where_it_pays(isa):
    few = data((2, 16, 16, 16), 16, 9)   # 128 tiles: too few to amortise the kernel transform
    many = data((4, 16, 16, 16), 16, 9)  # 256 tiles, 16 channels: Winograd
    thin = data((8, 16, 16, 8), 16, 9)   # 8 input channels: direct
    for (x, w), wino in ((few, False), (many, True), (thin, False)):
        auto = fwd(x, w, SAME, algo="auto")
        np.testing.assert_array_equal(auto, fwd(x, w, SAME, algo="winograd" if wino else "direct"))
    # shapes Winograd cannot take run direct whatever algo says
    x, w = data((4, 16, 16, 16), 16, 9)
    for st, dil in (((2, 2), (1, 1)), ((1, 1), (2, 2))):
        got = _core.conv2d_forward("c", x, w, st, SAME, dil, 1, algo="winograd")
        np.testing.assert_array_equal(
            got, _core.conv2d_forward("c", x, w, st, SAME, dil, 1, algo="direct"))
    w5 = np.ones((5, 5, 16, 4), F32)
    np.testing.assert_array_equal(fwd(x, w5, (2, 2, 2, 2)), fwd(x, w5, (2, 2, 2, 2), algo="direct"))


def test_algo_is_checked():
    x, w = data((1, 4, 4, 16), 4)
    with pytest.raises(ValueError, match="c: algo must be 'auto', 'direct' or 'winograd', got 'fast'"):
        fwd(x, w, SAME, algo="fast")
    with pytest.raises(TypeError):
        fwd(x, w, SAME, algo=2)
    with pytest.raises(ValueError, match="algo must be 'auto'"):
        _core.conv2d_backward_input("c", np.zeros((1, 4, 4, 4), F32), w, (1, 4, 4, 16), (1, 1),
                                    SAME, (1, 1), 1, algo="")


@pytest.mark.parametrize("where", ["x", "w"])
def test_non_finite_values_reach_the_outputs_the_direct_convolution_reaches(isa, where):
    """The transforms mix a tile's whole 4x4 window, but with these matrices an input or weight
    reaches exactly the outputs whose 3x3 window holds it, as in the direct convolution: a NaN
    makes the same outputs NaN. An inf makes the same outputs non-finite, but mostly NaN
    rather than +-inf (the output transform subtracts the infinite products from each other)."""
    x, w = data((1, 8, 8, 16), 4, 10)
    for bad in (np.nan, np.inf):
        x2, w2 = x.copy(), w.copy()
        if where == "x":
            x2[0, 4, 4, 3] = bad
        else:
            w2[1, 1, 3, 0] = bad
        yw, yd = fwd(x2, w2, SAME), fwd(x2, w2, SAME, algo="direct")
        np.testing.assert_array_equal(np.isfinite(yw), np.isfinite(yd))
        # a pixel reaches its 3x3 neighbourhood in all 4 output channels; a weight of output
        # channel 0 reaches that channel at all 64 pixels
        assert (~np.isfinite(yd)).sum() == (36 if where == "x" else 64)
        if bad != bad:
            np.testing.assert_array_equal(np.isnan(yw), np.isnan(yd))


def test_set_conv_algorithm_reaches_the_layers():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 16, 16, 16)).astype(F32)
    conv = layers.Conv2D(24, 3, padding="same", use_bias=False)
    conv(x)  # builds it
    w = conv.get_weights()[0]
    try:
        for algo in ("direct", "winograd"):
            backend.set_conv_algorithm(algo)
            assert backend.conv_algorithm() == algo
            np.testing.assert_array_equal(conv(x), fwd(x, w, SAME, algo=algo))
            conv(x, training=True)
            dy = rng.standard_normal((4, 16, 16, 24)).astype(F32)
            np.testing.assert_array_equal(
                conv.backward(dy),
                _core.conv2d_backward_input("c", dy, w, x.shape, (1, 1), SAME, (1, 1), 1,
                                            algo=algo))
        with pytest.raises(ValueError, match="set_conv_algorithm: algo must be one of"):
            backend.set_conv_algorithm("fft")
    finally:
        backend.set_conv_algorithm("auto")


def test_training_a_model_with_winograd_tracks_direct():
    """Two epochs of a small conv net from the same start: the Winograd and direct runs stay
    within float rounding of each other's losses."""
    from qnn_ext import Input, Model, Flatten, Dense, Conv2D
    rng = np.random.default_rng(12)
    x = rng.standard_normal((64, 12, 12, 16)).astype(F32)
    y = rng.integers(0, 3, 64)
    losses = {}
    for algo in ("direct", "winograd"):
        backend.set_conv_algorithm(algo)
        try:
            backend.set_random_seed(1)
            models_seed = np.random.default_rng(2)
            inp = Input((12, 12, 16))
            h = Conv2D(16, 3, padding="same", activation="relu")(inp)
            h = Conv2D(16, 3, padding="same", activation="relu")(h)
            out = Dense(3, activation="softmax")(Flatten()(h))
            m = Model(inp, out)
            m.set_weights([(models_seed.standard_normal(v.shape) * 0.1).astype(F32)
                           for v in m.get_weights()])
            m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
            hist = m.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
            losses[algo] = np.array(hist.history["loss"])
        finally:
            backend.set_conv_algorithm("auto")
    np.testing.assert_allclose(losses["winograd"], losses["direct"], rtol=1e-4)
    assert losses["winograd"][1] < losses["winograd"][0]
