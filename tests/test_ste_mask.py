"""Quantizer activations in the GEMM / convolution epilogue, with their straight-through
gradient kept as bit codes of the pre-activation (kernels/quant/ste_codes*.c).

The fused forward must give the bits of the GEMM followed by the quantizer kernel, the mask the
bits of a NumPy classification of the pre-activation, and the backward from the mask the bits of
the quantizer's own backward from the float pre-activation: on every ISA level, 1 and 2 threads,
odd widths (partial mask bytes), grouped and depthwise convolutions. Then the layers and the
model-level fusion of a following QActivation give the outputs, weights and gradients of the
unfused computation."""
import numpy as np
import pytest

from qnn_ext import _core, layers, models, quantizers as Q
from qnn_ext.layers import quant_utils

F32 = np.float32


def probe(shape):
    return np.broadcast_to(F32(0), shape)


def spec_of(q, shape, training=True):
    s = q._fused_spec(probe(shape), training)
    assert s is not None, q
    return s


def unfused(z, spec):
    """The quantizer kernel on the float pre-activation, as the unfused layer runs it."""
    pf, sc, sc2, inner = spec[:4]
    return _core.quant_forward("ref", z, pf, scale=sc, scale2=sc2, inner=inner)


def unfused_grad(z, dy, spec):
    pb, sb, ib = spec[4:]
    return _core.quant_backward("ref", z, dy, pb, scale=sb, inner=ib)


def np_codes(z, spec):
    """(code 1, code 2) planes in NumPy: the relu family's gradient regions."""
    pb = spec[4]
    flags = pb.get("flags", 0)
    op = pb["op"]
    bounded, ub = False, np.inf
    if op == Q.OP["RELU"] and flags & _core_flag("QCLIP"):
        bounded, ub = True, F32(pb["cap"])
    elif op == Q.OP["RELU"] and flags & _core_flag("UB"):
        bounded, ub = True, F32(pb["ub"])
    elif op == Q.OP["RELU_PO2"] and flags & _core_flag("HAS_MAX"):
        bounded, ub = True, F32(pb["ub"])
    with np.errstate(invalid="ignore"):
        # the kernels run with denormals-are-zero (TF's FTZ/DAZ mode): a subnormal counts as 0
        z = np.where(np.abs(z) < np.finfo(F32).tiny, F32(0), z)
        inside = (z <= ub) if bounded else np.ones(z.shape, bool)
        pos = z > 0
    return inside & pos, inside & ~pos


def _core_flag(name):
    from qnn_ext import _quant_ops
    return getattr(_quant_ops, name)


def _daz(v):
    """Denormals-are-zero / flush-to-zero, as the kernels run (keeps the sign of zero)."""
    return np.where(np.abs(v) < np.finfo(F32).tiny, v * F32(0), v).astype(F32)


def np_ste_grad(z, dy, spec):
    """dx = (dy * a) * g[code] in NumPy float32 (the relu family: g = 0 out of range, 1 for
    x > 0, slope otherwise; STE form A: dy * a)."""
    pb = spec[4]
    a = F32(1.0 - pb.get("qf", 1.0)) if pb.get("flags", 0) & _core_flag("NO_STE") else F32(1)
    with np.errstate(invalid="ignore", over="ignore"):
        t = _daz(_daz(dy) * a)
        if pb["op"] not in (Q.OP["RELU"], Q.OP["RELU_PO2"]):
            return t
        c1, c2 = np_codes(z, spec)
        g = np.where(c1, F32(1), np.where(c2, F32(pb.get("slope", 0.0)), F32(0))).astype(F32)
        return _daz(t * g)


def packed(plane, groups):
    """(groups, rows, ceil(ng / 8)) bytes of a (rows, groups * ng) plane, little bit order."""
    rows, n = plane.shape
    ng = n // groups
    g = plane.reshape(rows, groups, ng).transpose(1, 0, 2)
    return np.packbits(g, axis=-1, bitorder="little")


def check_mask(mask, z, spec, groups):
    """mask == the NumPy codes of z, plane by plane (no bytes at all for a constant STE)."""
    planes = _core.ste_planes(spec)
    assert mask.shape[-1] == planes * (-(-(z.shape[-1] // groups) // 8))
    if planes == 0:
        return
    c1, c2 = np_codes(z.reshape(-1, z.shape[-1]), spec)
    want = [packed(c1, groups), packed(c2, groups)][:planes]
    for w, g in zip(want, np.split(mask, planes, axis=-1)):
        np.testing.assert_array_equal(g, w)


def awkward(shape, seed, spec=None):
    """Random values plus the cases that decide a code: 0, -0, NaN, +-inf, subnormals and the
    clip bound itself."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal(shape) * 3).astype(F32)
    flat = z.reshape(-1)
    special = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-40, -1e-40]
    if spec is not None:
        pb = spec[4]
        special += [pb.get("cap", 1.0), pb.get("ub", 1.0)]
    idx = rng.choice(flat.size, size=min(flat.size, 3 * len(special)), replace=False)
    for k, i in enumerate(idx):
        flat[i] = special[k % len(special)]
    return z


QUANTIZERS = {
    "relu3": lambda: Q.quantized_relu(3),
    "relu4_2_clip_off": lambda: Q.quantized_relu(4, 2, is_quantized_clip=False),
    "relu_ub": lambda: Q.quantized_relu(4, 1, relu_upper_bound=1.5, is_quantized_clip=False),
    "leaky": lambda: Q.quantized_relu(4, 2, negative_slope=0.25),
    "relu_no_ste": lambda: Q.quantized_relu(3, 1, use_ste=False, qnoise_factor=0.5),
    "relu_sr": lambda: Q.quantized_relu(3, use_stochastic_rounding=True),
    "bits": lambda: Q.quantized_bits(4, 0, 1, alpha=1.0),
    "bits_no_ste": lambda: Q.quantized_bits(4, 1, 1, alpha=1.0, use_ste=False, qnoise_factor=0.3),
    "bits_alpha_vec": lambda: Q.quantized_bits(6, 2, 1, alpha=np.linspace(0.5, 2.0, 37).astype(F32)),
    "bits_sr": lambda: Q.quantized_bits(5, 1, 1, alpha=1.0, use_stochastic_rounding=True),
    "binary_alpha": lambda: Q.binary(alpha=1.0),
    "ternary_alpha": lambda: Q.ternary(alpha=0.5, threshold=0.3),
}
PLANES = {"relu3": 1, "relu4_2_clip_off": 1, "relu_ub": 1, "leaky": 2, "relu_no_ste": 1,
          "relu_sr": 1, "bits": 0, "bits_no_ste": 0, "bits_alpha_vec": 0, "bits_sr": 0,
          "binary_alpha": 0, "ternary_alpha": 0}


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_planes_per_quantizer(name):
    assert _core.ste_planes(spec_of(QUANTIZERS[name](), (4, 37))) == PLANES[name]


def test_stes_that_read_x_are_not_masked():
    # binary/ternary with alpha None use tanh(x) as the STE surrogate
    for q in (Q.binary(), Q.ternary()):
        spec = q._fused_spec(probe((3, 5)), True)
        assert spec is not None and _core.ste_planes(spec) is None
        assert quant_utils.epilogue_act(q, (3, 5), True) is None
    # auto scales are not an element-wise map: no spec at all
    assert quant_utils.epilogue_act(Q.quantized_bits(4, 0, 1, alpha="auto_po2"), (3, 5), True) is None
    # a negative-zero slope multiplies by -0.0, not code 0's +0.0: it needs its own plane
    spec = (dict(op=Q.OP["RELU"], slope=-0.0), None, None, 1, dict(op=Q.OP["RELU"], slope=-0.0), None, 1)
    assert _core.ste_planes(spec) == 2


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("M,N,K", [(37, 37, 19), (300, 64, 75), (5, 7, 0), (1, 1, 3), (130, 200, 40),
                                   (24, 40, 30000)])  # the last: split-K at 2 threads
@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_gemm_epilogue_quantizer(isa, num_threads, name, M, N, K, nt):
    num_threads(nt)
    rng = np.random.default_rng(M * N + K)
    a = rng.standard_normal((M, K)).astype(F32)
    b = rng.standard_normal((K, N)).astype(F32)
    bias = awkward((N,), 3)
    q = QUANTIZERS[name]()
    if name == "bits_alpha_vec":
        q = Q.quantized_bits(6, 2, 1, alpha=np.linspace(0.5, 2.0, N).astype(F32))
    spec = spec_of(q, (M, N))
    z = _core.gemm("g", a, b, bias=bias)
    y, mask = _core.gemm("g", a, b, bias=bias, act=spec, ste_mask=True)
    np.testing.assert_array_equal(y, unfused(z, spec))
    check_mask(mask, z, spec, 1)
    dy = awkward((M, N), 7)
    np.testing.assert_array_equal(_core.quant_ste_backward("g", spec, mask, dy), unfused_grad(z, dy, spec))
    # without the mask: the same output
    np.testing.assert_array_equal(_core.gemm("g", a, b, bias=bias, act=spec), y)


@pytest.mark.parametrize("name", ["relu3", "leaky", "relu_ub", "bits", "bits_no_ste"])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100])
def test_codes_and_gradient_every_isa(isa, name, n):
    """The encode/decode kernels on awkward values (NaN, +-0, +-inf, subnormals, the bound) at
    every tail length, through a 1 x n GEMM whose pre-activation is exactly the bias."""
    q = QUANTIZERS[name]()
    spec = spec_of(q, (3, n))
    z = awkward((3, n), n, spec)
    eye = np.eye(3, dtype=F32)
    y, mask = _core.gemm("g", eye, np.zeros((3, n), F32), out=z.copy(), beta=1.0, act=spec,
                         ste_mask=True)
    np.testing.assert_array_equal(y, unfused(z, spec))
    check_mask(mask, z, spec, 1)
    dy = awkward((3, n), n + 1)
    got = _core.quant_ste_backward("g", spec, mask, dy)
    np.testing.assert_array_equal(got, unfused_grad(z, dy, spec))
    np.testing.assert_array_equal(got, np_ste_grad(z, dy, spec))
    # in place
    d2 = dy.copy()
    _core.quant_ste_backward("g", spec, mask, d2, out=d2)
    np.testing.assert_array_equal(d2, got)


def test_relu_po2_codes_from_a_hand_made_spec(isa):
    """quantized_relu_po2 has no fused spec yet; its STE codes are checked on the kernels."""
    for flags, ub in ((0, 0.0), (_core_flag("HAS_MAX"), 2.0)):
        pb = dict(op=Q.OP["RELU_PO2"], flags=flags, ub=ub, slope=0.0)
        spec = (pb, None, None, 1, pb, None, 1)
        z = awkward((6, 21), 5, spec)
        planes = _core.ste_planes(spec)
        c1, c2 = np_codes(z, spec)
        mask = packed(c1, 1) if planes == 1 else np.concatenate([packed(c1, 1), packed(c2, 1)], -1)
        dy = awkward((6, 21), 6)
        np.testing.assert_array_equal(_core.quant_ste_backward("r", spec, mask, dy),
                                      _core.quant_backward("r", z, dy, pb))


CONVS = [  # x shape, w shape, strides, pads, dilation, groups
    ((2, 9, 9, 3), (3, 3, 3, 19), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((2, 12, 10, 32), (3, 3, 32, 40), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((2, 11, 11, 8), (5, 5, 4, 6), (2, 2), (2, 2, 2, 2), (1, 1), 2),    # COg = 3: byte per group
    ((1, 8, 8, 12), (3, 3, 4, 27), (1, 1), (0, 1, 1, 0), (2, 1), 3),    # COg = 9: 2 bytes
    ((2, 8, 8, 6), (3, 3, 1, 12), (1, 1), (1, 1, 1, 1), (2, 2), 6),     # depthwise, multiplier 2
]


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("conv", CONVS, ids=lambda c: "x".join(map(str, c[1])) + f"g{c[5]}")
@pytest.mark.parametrize("name", ["relu3", "leaky", "bits_sr", "relu_sr", "ternary_alpha"])
def test_conv_epilogue_quantizer(isa, num_threads, name, conv, nt):
    num_threads(nt)
    xs, ws, st, pads, dil, groups = conv
    rng = np.random.default_rng(sum(ws))
    x = rng.standard_normal(xs).astype(F32)
    w = (rng.standard_normal(ws) * 0.5).astype(F32)
    bias = rng.standard_normal(ws[-1]).astype(F32)
    z = _core.conv2d_forward("c", x, w, st, pads, dil, groups, bias=bias)
    spec = spec_of(QUANTIZERS[name](), z.shape)
    y, mask = _core.conv2d_forward("c", x, w, st, pads, dil, groups, bias=bias, act=spec,
                                   ste_mask=True)
    np.testing.assert_array_equal(y, unfused(z, spec))
    mg = 1 if xs[-1] == groups and groups > 1 else groups  # depthwise: one epilogue over all
    assert mask.shape[:2] == (mg, z.size // z.shape[-1])
    check_mask(mask, z, spec, mg)
    dy = rng.standard_normal(z.shape).astype(F32)
    np.testing.assert_array_equal(_core.quant_ste_backward("c", spec, mask, dy),
                                  unfused_grad(z, dy, spec))


def test_mask_is_the_same_for_1_and_2_threads(num_threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 16, 16, 32)).astype(F32)
    w = rng.standard_normal((3, 3, 32, 48)).astype(F32)
    spec = spec_of(Q.quantized_relu(4, 2, negative_slope=0.125), (4, 16, 16, 48))
    out = []
    for nt in (1, 2):
        num_threads(nt)
        out.append(_core.conv2d_forward("c", x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1, act=spec,
                                        ste_mask=True))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


# ------------------------------------------------------------------ layers and models

def _no_quant_epilogue(monkeypatch):
    """Layers fall back to the separate quantizer kernel (relu stays fused, as before)."""
    real = quant_utils.epilogue_act
    monkeypatch.setattr(quant_utils, "epilogue_act",
                        lambda act, shape=None, training=False: real(act))


LAYERS = [
    ("dense", lambda a: layers.QDense(13, kernel_quantizer="quantized_bits(4,0,1)",
                                      bias_quantizer="quantized_bits(8,3,1)", activation=a), (5, 20)),
    ("conv", lambda a: layers.QConv2D(11, 3, padding="same", kernel_quantizer="quantized_bits(4,0,1)",
                                      activation=a), (2, 7, 7, 5)),
    ("conv1d", lambda a: layers.QConv1D(9, 3, activation=a), (2, 12, 4)),
    ("depthwise", lambda a: layers.QDepthwiseConv2D(3, depth_multiplier=2, activation=a), (2, 6, 6, 5)),
    ("separable", lambda a: layers.QSeparableConv2D(10, 3, padding="same", activation=a), (2, 6, 6, 4)),
]


@pytest.mark.parametrize("act", ["quantized_relu(3)", "quantized_relu(4,2,negative_slope=0.25)",
                                 "quantized_bits(4,1,1,alpha=1.0)", "quantized_relu(3,use_stochastic_rounding=True)"])
@pytest.mark.parametrize("which", [c[0] for c in LAYERS])
def test_layer_fused_equals_unfused(monkeypatch, which, act):
    from qnn_ext import backend
    make, shape = next((m, s) for n, m, s in LAYERS if n == which)
    x = np.random.default_rng(1).standard_normal(shape).astype(F32)
    res = []
    for fused in (True, False):
        with monkeypatch.context() as m:
            if not fused:
                _no_quant_epilogue(m)
            backend.set_random_seed(5)  # the same stochastic-rounding key both times
            layer = make(act)
            layer.build(shape)
            rng = np.random.default_rng(3)
            for v in layer.weights:
                v.assign(rng.standard_normal(v.shape).astype(F32) * 0.5)
            y = layer.call(x, training=True)
            dy = np.random.default_rng(2).standard_normal(y.shape).astype(F32)
            dx = layer.backward(dy)
            res.append((y, dx, [g.copy() for g in layer.grads], layer._act_cache))
    (y1, dx1, g1, c1), (y0, dx0, g0, c0) = res
    assert isinstance(c1, quant_utils.SteMask) and not isinstance(c0, quant_utils.SteMask)
    # the backward keeps bits, not the float pre-activation
    rows, n = y1.size // y1.shape[-1], y1.shape[-1]
    assert c1.mask.dtype == np.uint8
    assert c1.mask.size == _core.ste_planes(c1.spec) * rows * -(-n // 8)
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(dx1, dx0)
    assert len(g1) == len(g0) > 0
    for a, b in zip(g1, g0):
        np.testing.assert_array_equal(a, b)


def _net(act):
    inp = layers.Input((8, 8, 3))
    x = layers.QConv2D(8, 3, padding="same", kernel_quantizer="quantized_bits(4,0,1)", name="c1")(inp)
    x = layers.QActivation(act, name="a1")(x)
    x = layers.Conv2D(6, 3, padding="same", name="c2")(x)
    x = layers.Activation("relu", name="a2")(x)
    x = layers.Flatten()(x)
    x = layers.QDense(16, kernel_quantizer="quantized_bits(4,0,1)", name="d1")(x)
    x = layers.QActivation(act, name="a3")(x)
    out = layers.Dense(4, activation="softmax", name="out")(x)
    m = models.Model(inp, out)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


@pytest.mark.parametrize("act", ["quantized_relu(3)", "quantized_bits(4,1,1,alpha=1.0)",
                                 "binary"])
def test_model_fuses_the_following_qactivation(monkeypatch, act):
    from qnn_ext import backend
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8, 8, 3)).astype(F32)
    y = rng.integers(0, 4, 32)
    w0 = None
    runs = []
    for fused in (True, False):
        with monkeypatch.context() as m:
            if not fused:
                m.setattr(models.Model, "_weight_act_pairs", lambda self: {})
            backend.set_random_seed(11)
            net = _net(act)
            if w0 is None:
                w0 = [v.copy() for v in net.get_weights()]
            net.set_weights(w0)
            net.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
            runs.append((net, [v.copy() for v in net.get_weights()], net.predict(x, verbose=0)))
    (nf, wf, pf), (nu, wu, pu) = runs
    fused_names = {t.layer.name for t in nf._order if id(t) in nf._fused_acts}
    # binary() has the tanh surrogate STE: not maskable, so its activation stays a layer
    assert fused_names == ({"a2"} if act == "binary" else {"a1", "a2", "a3"})
    assert not nu._fused_acts
    for a, b in zip(wf, wu):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pf, pu)


@pytest.mark.parametrize("name", ["relu3", "leaky", "bits"])
def test_large_backward_streams_the_same_bits(isa, num_threads, name):
    """Beyond 2**18 elements the backward writes dx with non-temporal stores: same values,
    including for a dy whose rows start off the 64-byte grid."""
    num_threads(2)
    spec = spec_of(QUANTIZERS[name](), (700, 403))
    z = awkward((700, 403), 9, spec)
    eye = np.eye(700, dtype=F32)
    _, mask = _core.gemm("g", eye, np.zeros((700, 403), F32), out=z.copy(), beta=1.0, act=spec,
                         ste_mask=True)
    buf = np.empty(700 * 403 + 1, F32)
    dy = buf[1:].reshape(700, 403)  # 4 bytes past the allocation's alignment
    dy[:] = awkward((700, 403), 10)
    np.testing.assert_array_equal(_core.quant_ste_backward("g", spec, mask, dy),
                                  unfused_grad(z, dy, spec))
