"""Several Python threads using qnn_ext at once: kernels release the GIL, so these calls really
overlap. Results must equal those of the same calls made one after another, and changing the
thread count between calls must be safe."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import qnn_ext
from qnn_ext import (BatchNormalization, Dense, Flatten, Input, MaxPooling2D, Model, QActivation,
                     QConv2D, QDense, _core)


def _model(seed, act):
    qnn_ext.utils.set_random_seed(seed)
    x = inp = Input((12, 12, 3))
    x = QConv2D(8, 3, padding="same", use_bias=False, kernel_quantizer="quantized_bits(4,0,1)")(x)
    x = BatchNormalization()(x)
    x = QActivation(act)(x)
    x = MaxPooling2D(2)(x)
    x = Flatten()(x)
    x = QDense(16, kernel_quantizer="binary()")(x)
    x = QActivation(act)(x)
    x = Dense(4, activation="softmax")(x)
    m = Model(inp, x)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


def _data(seed, n=96):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 12, 12, 3)).astype(np.float32), rng.integers(0, 4, n)


ACTS = ["quantized_relu(3,1)", "binary()", "relu", "ternary()"]


def test_concurrent_predict_matches_serial():
    models = [_model(i, ACTS[i]) for i in range(4)]
    xs = [_data(10 + i)[0] for i in range(4)]
    serial = [m.predict(x, batch_size=32, verbose=0) for m, x in zip(models, xs)]
    with ThreadPoolExecutor(4) as ex:
        for _ in range(5):
            got = list(ex.map(lambda mx: mx[0].predict(mx[1], batch_size=32, verbose=0),
                              zip(models, xs)))
            for a, b in zip(got, serial):
                np.testing.assert_array_equal(a, b)


def _fit(m, i):
    # shuffle=False: the shuffling stream (like Keras's global seed) is shared by all threads,
    # so concurrent shuffled fits would legitimately draw different orders
    x, y = _data(20 + i)
    m.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
    return m.get_weights()


def test_concurrent_fit_matches_serial():
    # models are built one after another (initialisers also draw from the global stream)
    twins = [(_model(i, ACTS[i]), _model(i, ACTS[i])) for i in range(4)]
    serial = [_fit(a, i) for i, (a, _) in enumerate(twins)]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda ib: _fit(ib[1][1], ib[0]), enumerate(twins)))
    for ws, ref in zip(got, serial):
        for a, b in zip(ws, ref):
            np.testing.assert_array_equal(a, b)


def test_changing_thread_count_between_calls():
    prev = _core.get_num_threads()
    m = _model(0, "relu")
    x = _data(30)[0]
    try:
        _core.set_num_threads(1)
        ref = m.predict(x, verbose=0)
        for n in (2, 1, 3, 2):
            _core.set_num_threads(n)
            assert _core.get_num_threads() == n
            # same up to float summation order (split-K and thread-partitioned reductions)
            np.testing.assert_allclose(m.predict(x, verbose=0), ref, rtol=1e-5, atol=1e-6)
    finally:
        _core.set_num_threads(prev)


_SMALL_TEAM = r"""
import numpy as np
from qnn_ext import _core
_core.set_num_threads(2)
rng = np.random.default_rng(0)
worst = 0.0
# a tile-split product, a split-K one (small M x N, long K) and a conv with its filter gradient
for M, N, K in [(300, 200, 100), (24, 40, 30000), (5000, 64, 600)]:
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    ref = a.astype(np.float64) @ b
    worst = max(worst, float(np.max(np.abs(_core.gemm("g", a, b) - ref) / (np.abs(a) @ np.abs(b)))))
x = rng.standard_normal((8, 16, 16, 32)).astype(np.float32)
w = rng.standard_normal((3, 3, 32, 16)).astype(np.float32)
y = _core.conv2d_forward("c", x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1)
dw = _core.conv2d_backward_filter("c", x, y, w.shape, (1, 1), (1, 1, 1, 1), (1, 1), 1)
_core.set_num_threads(1)
dw1 = _core.conv2d_backward_filter("c", x, y, w.shape, (1, 1), (1, 1, 1, 1), (1, 1), 1)
print(worst, float(np.max(np.abs(dw - dw1)) / float(np.max(np.abs(dw1)))))
"""


def test_a_smaller_openmp_team_than_asked_for_gives_the_same_results():
    """OMP_THREAD_LIMIT / OMP_DYNAMIC can hand a parallel region fewer threads than
    num_threads asks for; the GEMM's static partitions (and split-K's K shares) must follow
    the team that runs, not the request (they left C unwritten: NaN and garbage)."""
    import os
    import subprocess
    import sys
    for env in ({"OMP_THREAD_LIMIT": "1"}, {"OMP_DYNAMIC": "true"}, {}):
        out = subprocess.run([sys.executable, "-c", _SMALL_TEAM], capture_output=True, text=True,
                             env=dict(os.environ, **env), timeout=120, check=True).stdout
        rel_gemm, rel_dw = map(float, out.split())
        assert rel_gemm < 1e-5, (env, rel_gemm)
        assert rel_dw < 1e-5, (env, rel_dw)
