"""Leak checks: every kernel family's forward/backward and error paths, and a small fit, run many
times with fresh inputs each call; the memory the interpreter traces (tracemalloc, which NumPy
reports its array buffers to) and the process RSS (/proc/self/statm) must stay flat after a
warm-up.

Why fresh inputs: a reference leaked on an argument or a result keeps that array alive, so a leak
of one reference per call grows memory by the array's size per call. The arrays here are >= 16 KB,
so ITERS calls of a leaking path grow tracemalloc by >= ITERS * 16 KB, far above the slack.
Slack (after WARMUP calls): tracemalloc TRACE_SLACK bytes (interning, free lists, hypothesis-free
caches), RSS RSS_SLACK bytes (the allocator keeps freed pages; the C kernels' workspaces grow
once). The slow variant runs SLOW_ITERS calls per case (``-m slow``).

``python tests/test_leaks.py [iters]`` prints iterations and before/after figures per case.
"""
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

from qnn_ext import _core, quantizers

F32 = np.float32
WARMUP = 30
ITERS = 300
SLOW_ITERS = 5000
TRACE_SLACK = 256 * 1024
RSS_SLACK = 8 * 1024 * 1024
if "libasan" in os.environ.get("LD_PRELOAD", ""):
    # ASan holds freed blocks in its quarantine (256 MB by default) before reusing them, so RSS
    # climbs without a leak; the tracemalloc bound stays exact there.
    RSS_SLACK = 320 * 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def rnd(*shape):
    return np.random.default_rng(len(shape)).standard_normal(shape).astype(F32)


def _raises(fn, *a, **k):
    try:
        fn(*a, **k)
    except (TypeError, ValueError, OverflowError):
        return
    raise AssertionError("expected an error")


# --------------------------------------------------------------------------------------- cases
# each case: a function doing one call with fresh arrays

def c_gemm():
    a, b = rnd(64, 64), rnd(64, 64)
    _core.gemm("L", a, b)
    _core.gemm("L", a, b, out=np.zeros((64, 64), F32), beta=1.0, trans_a=True)


def e_gemm():
    a, b = rnd(64, 64), rnd(64, 64)
    _raises(_core.gemm, "L", a, b, out=np.zeros((64, 63), F32))   # after both arrays
    _raises(_core.gemm, "L", a, b, alpha="x")                     # the named-argument path
    _raises(_core.gemm, "L", a, b, out=a)                         # aliasing


GEO = ((1, 1), (1, 1, 1, 1), (1, 1), 1)


def c_conv():
    x, w = rnd(2, 8, 8, 16), rnd(3, 3, 16, 16)
    y = _core.conv2d_forward("L", x, w, *GEO)
    _core.conv2d_backward_input("L", y, w, x.shape, *GEO)
    _core.conv2d_backward_filter("L", x, y, w.shape, *GEO)
    _core.bias_grad("L", _core.bias_add("L", y, rnd(16)))


def e_conv():
    x, w = rnd(2, 8, 8, 16), rnd(3, 3, 16, 16)
    _raises(_core.conv2d_forward, "L", x, w, *GEO, out=np.zeros((2, 8, 8, 15), F32))
    _raises(_core.conv2d_backward_input, "L", rnd(2, 8, 8, 15), w, x.shape, *GEO)
    _raises(_core.conv2d_forward, "L", x, w, (1, 1), (1, 1, 1, 1), (1, 1), 5)
    _raises(_core.conv2d_forward, "L", x, w, [1, "a"], (1, 1, 1, 1), (1, 1), 1)


_WS = _core.Workspace()


def c_workspace():
    # a kept workspace (the lease taken and given back) and a fresh one freed with its object
    x, w = rnd(2, 8, 8, 16), rnd(3, 3, 16, 16)
    for ws in (_WS, _core.Workspace()):
        y = _core.conv2d_forward("L", x, w, *GEO, workspace=ws)
        _core.conv2d_backward_input("L", y, w, x.shape, *GEO, workspace=ws)
        _core.conv2d_backward_filter("L", x, y, w.shape, *GEO, workspace=ws)
        _core.gemm("L", rnd(64, 64), rnd(64, 64), workspace=ws)
    # error paths after the lease is taken (output checks) give it back
    _raises(_core.gemm, "L", rnd(4, 4), rnd(4, 4), out=np.zeros((4, 3), F32), workspace=_WS)
    _raises(_core.conv2d_forward, "L", x, w, *GEO, out=np.zeros((2, 8, 8, 15), F32),
            workspace=_WS)
    _raises(_core.gemm, "L", rnd(4, 4), rnd(4, 4), workspace=1)


def c_quant():
    x = rnd(64, 64)
    q = quantizers.quantized_bits(4, 0, 1)
    q(x)
    q.gradient(x, rnd(64, 64))
    quantizers.quantized_bits(4, 0, 1, alpha="auto_po2")(x)
    quantizers.ternary(alpha="auto")(x)
    quantizers.quantized_relu(4, use_stochastic_rounding=True)(x, training=True)
    _core.uniform(7, 4096)


def e_quant():
    x = rnd(64, 64)
    p = dict(op=1)
    _raises(_core.quant_forward, "q", x, p, out=np.zeros((64, 63), F32))
    _raises(_core.quant_forward, "q", x, dict(op=1, qf="a"))
    _raises(_core.quant_forward, "q", x, p, scale=np.ones(5, F32))
    _raises(_core.quant_auto, "q", "nope", x, dict(op=4), {}, 64, 64, 1, 1)  # after allocating y
    _raises(_core.quant_backward, "q", x, rnd(64, 63), p)


def c_batchnorm():
    x = rnd(64, 64)
    g, b = rnd(64), rnd(64)
    y, m, v, inv = _core.batchnorm_forward("L", x, g, b, 1e-3, True)
    _core.batchnorm_backward("L", rnd(64, 64), x, g, m, inv)
    spec = quantizers.quantized_relu(4)._fused_spec(x, True)
    _core.batchnorm_forward("L", x, g, b, 1e-3, True, act=spec)
    _core.batchnorm_backward("L", rnd(64, 64), x, g, m, inv, beta=b, act=spec)
    _core.batchnorm_forward("L", x, g, b, 1e-3, False, mean=m, var=v)


def e_batchnorm():
    x = rnd(64, 64)
    g, b = rnd(64), rnd(64)
    _raises(_core.batchnorm_forward, "L", x, g, b, 1e-3, True, act=(1, 2))
    _raises(_core.batchnorm_forward, "L", x, g, b, 1e-3, False, act="relu", mean=g, var=b)
    _raises(_core.batchnorm_backward, "L", rnd(64, 64), x, g, rnd(64), rnd(63))
    _raises(_core.batchnorm_forward, "L", x, g, b, float("nan"), True)


def c_pool():
    x = rnd(2, 16, 16, 16)
    for kind in ("max", "avg"):
        y = _core.pool2d_forward("L", kind, x, (2, 2), (2, 2), (0, 0, 0, 0))
        _core.pool2d_backward("L", kind, x, y, (2, 2), (2, 2), (0, 0, 0, 0))
        _core.pool2d_backward("L", kind, x, rnd(2, 16, 16, 16), (3, 3), (1, 1), (1, 1, 1, 1))
        g = _core.global_pool2d_forward("L", kind, x)
        _core.global_pool2d_backward("L", kind, x, g)
    z, lab = rnd(64, 10), np.arange(64, dtype=np.int64) % 10
    _core.softmax_cross_entropy("L", z, lab)
    a = _core.activation_forward("L", "softmax", z)
    _core.activation_backward("L", "softmax", None, a, rnd(64, 10))


def e_pool():
    x = rnd(2, 16, 16, 16)
    _raises(_core.pool2d_backward, "L", "max", x, rnd(2, 8, 8, 15), (2, 2), (2, 2), (0, 0, 0, 0))
    _raises(_core.pool2d_forward, "L", "max", x, (2, 2), (2, 2), (0, 0, 0, 0), out=np.zeros(3, F32))
    _raises(_core.pool2d_forward, "L", "max", x, [2, "a"], (2, 2), (0, 0, 0, 0))
    _raises(_core.softmax_cross_entropy, "L", rnd(64, 10), np.full(64, 11, np.int64))


def _bconv_args():
    from qnn_ext.deploy.packing import pack_binary_weights
    panel, wsum = pack_binary_weights(np.sign(rnd(3, 3, 64, 32)) + 0.0)
    return panel, wsum


BCONV = None


def _bconv_call():
    """The leading arguments of a bnn_conv2d call (fresh packed input) and its wsum."""
    global BCONV
    if BCONV is None:
        BCONV = _bconv_args()
    panel, wsum = BCONV
    xk = _core.bnn_bitpack("L", rnd(2, 8, 8, 64))
    return ("L", "binary", xk, panel, 64, 32, (3, 3), (1, 1), (1, 1, 1, 1),
            np.zeros(32, np.int32), 1), wsum


def c_bnn():
    args, wsum = _bconv_call()
    _core.bnn_conv2d(*args, "float", mul=np.ones(32, F32), add=np.zeros(32, F32), wsum=wsum,
                     ws=_core.bnn_workspace())
    _core.bnn_conv2d(*args, "bits", thr=np.zeros((1, 32), np.int32), dir=np.ones(32, np.int8),
                     wsum=wsum)
    lv = np.random.default_rng(0).integers(0, 16, (2, 8, 8, 64)).astype(np.uint8)
    _core.bnn_maxpool("L", lv, (2, 2), (2, 2), (0, 0, 0, 0))
    z = rnd(2, 8, 8, 8)
    _core.bnn_fthresh_pool("L", z, np.zeros((3, 8), F32), np.ones(8, np.int8), "codes", (2, 2),
                           (2, 2), (0, 0, 0, 0))
    _core.bnn_fconv("L", z, rnd(3, 3, 8, 16), (1, 1), (1, 1, 1, 1))


def e_bnn():
    args, wsum = _bconv_call()
    _raises(_core.bnn_conv2d, *args, "codes", thr=np.zeros((1, 32), np.int32), dir=np.ones(31, np.int8),
            wsum=wsum)
    _raises(_core.bnn_conv2d, *args, "float", mul=np.ones(32, F32), add=np.zeros(32, F32), wsum=wsum,
            out=np.zeros((2, 8, 8, 31), F32))
    _raises(_core.bnn_conv2d, *args, "float", mul=np.ones(32, F32), add=np.zeros(32, F32), wsum=wsum,
            ws=object())
    _raises(_core.bnn_maxpool, "L", np.zeros((2, 8, 8, 3), np.uint8), (2, 2), (2, 2), (0, 0, 0, 0), planes=2)
    _raises(_core.bnn_fconv, "L", rnd(2, 8, 8, 8), rnd(3, 3, 7, 16), (1, 1), (1, 1, 1, 1))


FIT = {}


def c_fit():
    from qnn_ext import Dense, Input, Model, QActivation, QDense, optimizers
    if "m" not in FIT:
        inp = Input((16,))
        h = QDense(32, kernel_quantizer="quantized_bits(4,0,1)")(inp)
        h = QActivation("quantized_relu(4)")(h)
        out = Dense(4, activation="softmax")(h)
        m = Model(inp, out)
        m.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        FIT["m"] = m
    x = rnd(64, 16)
    y = (np.arange(64) % 4).astype(np.int64)
    FIT["m"].fit(x, y, epochs=1, batch_size=16, verbose=0)


CASES = {"gemm": c_gemm, "gemm errors": e_gemm, "conv+bias": c_conv, "conv errors": e_conv,
         "workspace": c_workspace,
         "quantizers": c_quant, "quant errors": e_quant, "batchnorm": c_batchnorm,
         "batchnorm errors": e_batchnorm, "pool/softmax/act": c_pool, "pool errors": e_pool,
         "bnn deploy": c_bnn, "bnn errors": e_bnn}


def measure(fn, iters, warmup=WARMUP):
    """(tracemalloc bytes before, after, RSS before, after) around iters calls."""
    for _ in range(warmup):
        fn()
    gc.collect()
    tracemalloc.start()
    try:
        fn()  # the first traced call creates tracemalloc's own bookkeeping
        gc.collect()
        t0, r0 = tracemalloc.get_traced_memory()[0], rss()
        for _ in range(iters):
            fn()
        gc.collect()
        t1, r1 = tracemalloc.get_traced_memory()[0], rss()
    finally:
        tracemalloc.stop()
    return t0, t1, r0, r1


def check(name, fn, iters):
    t0, t1, r0, r1 = measure(fn, iters)
    assert t1 - t0 <= TRACE_SLACK, f"{name}: tracemalloc grew {t1 - t0} bytes in {iters} calls"
    assert r1 - r0 <= RSS_SLACK, f"{name}: RSS grew {r1 - r0} bytes in {iters} calls"
    return t0, t1, r0, r1


@pytest.mark.parametrize("name", list(CASES))
def test_no_leak(name):
    check(name, CASES[name], ITERS)


def test_no_leak_fit():
    check("fit", c_fit, 20)


def test_leak_check_detects_a_leak():
    """The check is not vacuous: keeping one 16 KB array per call fails it."""
    kept = []
    with pytest.raises(AssertionError, match="grew"):
        check("leaky", lambda: kept.append(rnd(64, 64)), ITERS)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_no_leak_slow(name):
    check(name, CASES[name], SLOW_ITERS)


@pytest.mark.slow
def test_no_leak_fit_slow():
    check("fit", c_fit, 300)


if __name__ == "__main__":
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else SLOW_ITERS
    print(f"{'case':18s} {'iters':>6s} {'traced before':>14s} {'after':>10s} {'RSS before':>12s} {'after':>10s}")
    for name, fn in list(CASES.items()) + [("fit (64 samples)", c_fit)]:
        n = iters if name != "fit (64 samples)" else max(iters // 20, 20)
        t0, t1, r0, r1 = measure(fn, n)
        print(f"{name:18s} {n:6d} {t0:14d} {t1:10d} {r0 // 1024:10d}KB {r1 // 1024:8d}KB")
