"""The runtime: build info, ISA selection, threads, the GIL and reproducible random streams."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import qnn_ext
from qnn_ext import _core, backend, utils


def test_build_info_reports_the_runtime():
    info = qnn_ext.build_info()
    assert info["isa"] in info["isas_available"]
    assert info["isas_available"][0] == "ref"
    assert set(info["isas_available"]) <= {"ref", "avx2", "avx512"}
    assert info["openmp"] == "yes" and info["openmp_version"] >= 201107
    assert info["compiler"].startswith("gcc") and info["version"] == qnn_ext.__version__
    assert info["num_threads"] == qnn_ext.get_num_threads()
    # the best level the CPU has is chosen unless QNN_EXT_ISA forces one
    if "QNN_EXT_ISA" not in os.environ:
        assert _core.get_isa() == info["isas_available"][-1] or info["isa"] == _core.get_isa()


def test_set_isa_rejects_unknown_and_unavailable():
    with pytest.raises(ValueError, match="'ref', 'avx2', 'avx512'.*'sse9'"):
        _core.set_isa("sse9")
    with pytest.raises(TypeError, match="must be a str"):
        _core.set_isa(3)


@pytest.mark.parametrize("level", ["ref", "avx2", "avx512"])
def test_env_var_forces_isa(level):
    if level not in qnn_ext.build_info()["isas_available"]:
        pytest.skip(f"this CPU has no {level}")  # not a pass: the level does not exist here
    code = "import qnn_ext; print(qnn_ext.build_info()['isa'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, QNN_EXT_ISA=level), check=True)
    assert out.stdout.strip() == level


def test_env_var_bad_value_fails_import():
    out = subprocess.run([sys.executable, "-c", "import qnn_ext"], capture_output=True, text=True,
                         env=dict(os.environ, QNN_EXT_ISA="avx9000"))
    assert out.returncode != 0 and "QNN_EXT_ISA must be" in out.stderr


def test_set_num_threads_round_trips_and_validates():
    old = qnn_ext.get_num_threads()
    try:
        qnn_ext.set_num_threads(1)
        assert qnn_ext.get_num_threads() == 1
        qnn_ext.set_num_threads(2)
        assert qnn_ext.get_num_threads() == 2
        for bad in (0, -3, 100000):
            with pytest.raises(ValueError, match="set_num_threads: n must be in"):
                qnn_ext.set_num_threads(bad)
    finally:
        qnn_ext.set_num_threads(old)


def test_results_do_not_depend_on_thread_count():
    # 1 M elements: above the threading threshold, so 2 threads really split the work.
    x = np.random.default_rng(1).standard_normal(1 << 20).astype(np.float32) * 3
    old = qnn_ext.get_num_threads()
    qs = [qnn_ext.quantized_bits(4, 1), qnn_ext.quantized_relu(3, 1), qnn_ext.quantized_po2(5),
          qnn_ext.quantized_tanh(4), qnn_ext.ternary()]
    try:
        for q in qs:
            qnn_ext.set_num_threads(1)
            a, ga = q(x), q.gradient(x, x)
            qnn_ext.set_num_threads(2)
            b, gb = q(x), q.gradient(x, x)
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(ga, gb)
    finally:
        qnn_ext.set_num_threads(old)


@pytest.mark.parametrize("make", [
    lambda: qnn_ext.quantized_bits(4, 0, use_stochastic_rounding=True),
    lambda: qnn_ext.quantized_relu(4, 1, use_stochastic_rounding=True),
    lambda: qnn_ext.stochastic_binary(),
    lambda: qnn_ext.stochastic_ternary(alpha="auto_po2"),
    lambda: qnn_ext.bernoulli(),
], ids=["bits_sr", "relu_sr", "stochastic_binary", "stochastic_ternary", "bernoulli"])
def test_same_seed_same_bits_any_thread_count(make):
    x = np.random.default_rng(2).standard_normal((4096, 64)).astype(np.float32)
    old = qnn_ext.get_num_threads()
    outs = []
    try:
        backend.set_learning_phase(1)
        for threads, seed in ((1, 7), (2, 7), (2, 8)):
            qnn_ext.set_num_threads(threads)
            utils.set_random_seed(seed)
            q = make()
            outs.append((q(x), q(x)))
    finally:
        backend.set_learning_phase(0)
        qnn_ext.set_num_threads(old)
    (a1, a2), (b1, b2), (c1, _) = outs
    np.testing.assert_array_equal(a1, b1)  # same seed, 1 vs 2 threads
    np.testing.assert_array_equal(a2, b2)  # ... and the next call of the stream too
    assert not np.array_equal(a1, a2)      # successive calls draw fresh numbers
    assert not np.array_equal(a1, c1)      # a different seed gives different bits


def test_uniform_draws_are_uniform_and_keyed():
    u = _core.uniform(12345, 1 << 20)
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    assert abs(float(u.mean()) - 0.5) < 2e-3 and abs(float(u.var()) - 1 / 12) < 2e-3
    np.testing.assert_array_equal(_core.uniform(12345, 100), u[:100])
    np.testing.assert_array_equal(_core.uniform(12345, 10, 50), u[50:60])
    assert not np.array_equal(_core.uniform(12346, 100), u[:100])
    # neighbouring draws are not correlated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5e-3


def _count_while_worker_runs(call):
    """How far a Python loop in this thread counts while another thread runs `call` once."""
    inside, done = threading.Event(), threading.Event()

    def worker():
        inside.set()
        call()
        done.set()

    counts = 0
    t = threading.Thread(target=worker)
    t.start()
    inside.wait()
    while not done.is_set():
        counts += 1
    t.join()
    return counts


def test_gil_is_released_during_kernels():
    """While one thread is inside a kernel, another Python thread keeps running.

    One long kernel call (the scalar reference level, ~0.1 s) runs in a worker; this thread
    counts meanwhile. With the GIL released the loop runs all along, reaching about what it
    reaches alone in the same time; with the GIL held it only runs in the call's few bytecode
    gaps (a few percent; checked by building the binding without the release)."""
    import time

    x = np.random.default_rng(3).standard_normal(1 << 23).astype(np.float32)
    y = np.empty_like(x)
    q = qnn_ext.quantized_relu_po2(4)
    old_isa, old_threads = _core.get_isa(), qnn_ext.get_num_threads()
    try:
        _core.set_isa("ref")
        qnn_ext.set_num_threads(1)
        t0 = time.perf_counter()
        q(x, out=y)
        kernel_s = time.perf_counter() - t0
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < kernel_s:
            n += 1
        alone = n  # the loop's count over one kernel's duration, with a check per step as below
        during = _count_while_worker_runs(lambda: q(x, out=y))
    finally:
        _core.set_isa(old_isa)
        qnn_ext.set_num_threads(old_threads)
    assert during > 0.25 * alone, (during, alone, kernel_s)


def test_concurrent_calls_give_serial_results():
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((256, 128)).astype(np.float32) for _ in range(4)]
    quantizers = [qnn_ext.quantized_bits(4, 0, 1, alpha="auto_po2"), qnn_ext.quantized_relu(3),
                  qnn_ext.ternary(alpha="auto"), qnn_ext.quantized_po2(4)]
    serial = [[type(q).from_config(q.get_config())(x) for x in xs] for q in quantizers]
    results = {}

    def run(i):
        q = type(quantizers[i]).from_config(quantizers[i].get_config())
        results[i] = [q(x) for x in xs for _ in range(20)][::20]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(quantizers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(len(quantizers)):
        for a, b in zip(serial[i], results[i]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [
    lambda: qnn_ext.quantized_bits(4, 1), lambda: qnn_ext.quantized_relu(4, 2),
    lambda: qnn_ext.quantized_tanh(3), lambda: qnn_ext.quantized_po2(5, 2),
    lambda: qnn_ext.binary(alpha=0.5), lambda: qnn_ext.ternary(alpha=2.0),
    lambda: qnn_ext.quantized_bits(3, 0, 1, alpha=np.linspace(0.5, 2, 7, dtype=np.float32)),
], ids=["bits", "relu", "tanh", "po2", "binary", "ternary", "bits_alpha_vector"])
def test_large_outputs_same_bits_at_every_level(make):
    """Runs of >= 256 K elements take the streaming-store path (chunked through an L1 buffer,
    non-temporal stores after an unaligned head); every level must give the reference's bits,
    for a 64-byte aligned output and for one that starts 12 bytes later."""
    n = 7 * ((1 << 19) // 7 + 1)  # 524293: odd, divisible by the 7-channel alpha vector
    x = (np.random.default_rng(5).standard_normal(n) * 3).astype(np.float32).reshape(-1, 7)
    dy = np.random.default_rng(6).standard_normal(x.shape).astype(np.float32)
    q = make()
    old_isa, old_threads = _core.get_isa(), qnn_ext.get_num_threads()
    outs = {}
    try:
        qnn_ext.set_num_threads(1)  # one run per call: the longest streaming run
        for isa in qnn_ext.build_info()["isas_available"]:
            _core.set_isa(isa)
            base = np.empty(x.size + 16, np.float32)
            unaligned = base[3:3 + x.size].reshape(x.shape)
            y1 = q(x)
            y2 = q(x, out=unaligned)
            g1 = q.gradient(x, dy)
            g2 = q.gradient(x, dy, out=np.empty(x.size + 16, np.float32)[5:5 + x.size].reshape(x.shape))
            np.testing.assert_array_equal(y1, y2)
            np.testing.assert_array_equal(g1, g2)
            outs[isa] = (y1, g1)
    finally:
        _core.set_isa(old_isa)
        qnn_ext.set_num_threads(old_threads)
    ref_y, ref_g = outs["ref"]
    for isa, (y, g) in outs.items():
        np.testing.assert_array_equal(y, ref_y, err_msg=isa)
        np.testing.assert_array_equal(g, ref_g, err_msg=isa)
