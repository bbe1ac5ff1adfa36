"""Inference batch norm (and the activation after it) in the GEMM epilogue of the Dense or
convolution before it: _core.gemm / conv2d_forward with scale=, shift= against the separate
kernels, and models whose predict() fuses Conv/Dense -> BatchNormalization -> (Q)Activation,
bit for bit against the same model run layer by layer (outputs, and gradients of a backward
after an inference-mode call)."""
import numpy as np
import pytest

from qnn_ext import _core, layers, models, quantizers as Q

F32 = np.float32


def _bn_ref(z, mean, var, gamma, beta, eps):
    return _core.batchnorm_forward("bn", z, gamma, beta, eps, False, mean=mean, var=var)


def _stats(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n).astype(F32), rng.uniform(0.1, 3.0, n).astype(F32),
            rng.standard_normal(n).astype(F32), rng.standard_normal(n).astype(F32))


def _affine(mean, var, gamma, beta, eps):
    bn = layers.BatchNormalization(epsilon=eps)
    bn.build((None, mean.size))
    bn.moving_mean.value[...] = mean
    bn.moving_variance.value[...] = var
    bn.gamma.value[...] = gamma
    bn.beta.value[...] = beta
    return bn._inference_affine(mean.size)


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("M,N,K", [(300, 64, 75), (37, 37, 19), (5, 7, 0), (130, 200, 40)])
def test_gemm_scale_shift_is_the_batchnorm_kernel(isa, num_threads, M, N, K, nt):
    num_threads(nt)
    rng = np.random.default_rng(M + N)
    a = rng.standard_normal((M, K)).astype(F32)
    b = rng.standard_normal((K, N)).astype(F32)
    bias = rng.standard_normal(N).astype(F32)
    mean, var, gamma, beta = _stats(N, 1)
    sc, sh = _affine(mean, var, gamma, beta, 1e-3)
    want = _bn_ref(_core.gemm("g", a, b, bias=bias), mean, var, gamma, beta, 1e-3)
    np.testing.assert_array_equal(_core.gemm("g", a, b, bias=bias, scale=sc, shift=sh), want)
    # then relu, then a quantizer (with its mask)
    np.testing.assert_array_equal(_core.gemm("g", a, b, bias=bias, scale=sc, shift=sh, act="relu"),
                                  _core.activation_forward("ref", "relu", want))
    q = Q.quantized_relu(3)
    spec = q._fused_spec(np.broadcast_to(F32(0), (M, N)), False)
    y, mask = _core.gemm("g", a, b, bias=bias, scale=sc, shift=sh, act=spec, ste_mask=True)
    np.testing.assert_array_equal(y, q(want))
    dy = rng.standard_normal((M, N)).astype(F32)
    np.testing.assert_array_equal(_core.quant_ste_backward("g", spec, mask, dy), q.gradient(want, dy))


@pytest.mark.parametrize("conv", [((2, 9, 9, 3), (3, 3, 3, 19), 1), ((2, 11, 11, 8), (5, 5, 4, 6), 2),
                                  ((2, 8, 8, 6), (3, 3, 1, 12), 6)],
                         ids=["plain", "grouped", "depthwise"])
def test_conv_scale_shift_per_group(isa, conv):
    xs, ws, groups = conv
    rng = np.random.default_rng(3)
    x = rng.standard_normal(xs).astype(F32)
    w = rng.standard_normal(ws).astype(F32)
    mean, var, gamma, beta = _stats(ws[-1], 2)
    sc, sh = _affine(mean, var, gamma, beta, 1e-5)
    args = ("c", x, w, (1, 1), (1, 1, 1, 1), (1, 1), groups)
    want = _bn_ref(_core.conv2d_forward(*args), mean, var, gamma, beta, 1e-5)
    np.testing.assert_array_equal(_core.conv2d_forward(*args, scale=sc, shift=sh), want)


def test_scale_and_shift_go_together():
    a, b = np.ones((3, 4), F32), np.ones((4, 5), F32)
    with pytest.raises(ValueError, match="g: scale and shift go together"):
        _core.gemm("g", a, b, scale=np.ones(5, F32))
    with pytest.raises(ValueError, match=r"g: shift must have shape \(5,\)"):
        _core.gemm("g", a, b, scale=np.ones(5, F32), shift=np.ones(4, F32))


def _model(kind, act):
    inp = layers.Input((8, 8, 3))
    x = layers.QConv2D(8, 3, padding="same", kernel_quantizer="quantized_bits(4,0,1)",
                       use_bias=kind != "nobias", name="c1")(inp)
    x = layers.BatchNormalization(name="bn1")(x)
    if act:
        x = layers.QActivation(act, name="a1")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.Activation("relu", name="a2")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.QDense(16, kernel_quantizer="quantized_bits(4,0,1)", name="d1")(x)
    x = layers.BatchNormalization(name="bn3")(x)
    out = layers.Dense(4, activation="softmax", name="out")(x)
    m = models.Model(inp, out)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


@pytest.mark.parametrize("kind,act", [("bias", "quantized_relu(3)"), ("nobias", "quantized_bits(4,1,1,alpha=1.0)"),
                                      ("bias", "binary"), ("bias", None)])
def test_predict_fuses_batchnorm_and_activation(monkeypatch, kind, act):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 8, 3)).astype(F32)
    y = rng.integers(0, 4, 16)
    net = _model(kind, act)
    net.fit(x, y, batch_size=8, epochs=1, verbose=0)  # moving statistics away from 0/1
    fused_pred = net.predict(x, verbose=0)
    fused_names = {t.layer.name for t in net._order if id(t) in net._fused_acts}
    # binary() has the tanh-surrogate STE: bn1 runs in c1's epilogue, its activation apart
    want = {"bn1", "bn2", "a2", "bn3"} | ({"a1"} if act not in (None, "binary") else set())
    assert fused_names == want
    out = net(x, training=False)
    g = rng.standard_normal(out.shape).astype(F32)
    net.backward(g)
    grads_f = {l.name: [v.copy() for v in l.grads] for l in net.layers if getattr(l, "grads", None)}
    with monkeypatch.context() as m:
        m.setattr(models.Model, "_weight_act_pairs", lambda self: {})
        np.testing.assert_array_equal(net.predict(x, verbose=0), fused_pred)
        out_u = net(x, training=False)
        assert not net._fused_acts
        np.testing.assert_array_equal(out_u, out)
        net.backward(g)
        grads_u = {l.name: [v.copy() for v in l.grads] for l in net.layers if getattr(l, "grads", None)}
    for name, gs in grads_f.items():
        if name.startswith(("bn", "a")):
            continue  # fused away: their (zero) inference-mode grads are not computed
        for a, b in zip(gs, grads_u[name]):
            np.testing.assert_array_equal(a, b)
    assert {"c1", "dw", "d1"} <= set(grads_f)
