"""_core.Workspace: the GEMM and convolution kernels take their packing and scratch buffers from
a caller-owned workspace, grown on first use and reused after, with the same bits as the
per-call buffers."""
import copy
import pickle
import threading

import numpy as np
import pytest

import qnn_ext as q
from qnn_ext import _core

F32 = np.float32


def rnd(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


@pytest.fixture(params=[1, 2], ids=["1t", "2t"])
def threads(request, num_threads):
    num_threads(request.param)
    return request.param


# (name, call(ws)): each covers a different scratch use of the kernels
def _gemm(ws, M=300, N=70, K=500):
    return _core.gemm("t", rnd((M, K), 1), rnd((K, N), 2), workspace=ws)


def _gemm_split_k(ws):
    # a long K and a small M x N: split across threads, with per-thread partials
    return _core.gemm("t", rnd((2048, 40), 3), rnd((2048, 24), 4), trans_a=True, workspace=ws)


def _conv(ws, fn, x, w, strides=(1, 1), pads=(1, 1, 1, 1), groups=1):
    y = _core.conv2d_forward("t", x, w, strides, pads, (1, 1), groups)
    if fn == "forward":
        return _core.conv2d_forward("t", x, w, strides, pads, (1, 1), groups, workspace=ws)
    dy = rnd(y.shape, 9)
    if fn == "input":
        return _core.conv2d_backward_input("t", dy, w, x.shape, strides, pads, (1, 1), groups,
                                           workspace=ws)
    return _core.conv2d_backward_filter("t", x, dy, w.shape, strides, pads, (1, 1), groups,
                                        workspace=ws)


X = rnd((2, 9, 9, 16), 5)
W = rnd((3, 3, 16, 24), 6)
CALLS = {
    "gemm": _gemm,
    "gemm split-K": _gemm_split_k,
    "conv forward": lambda ws: _conv(ws, "forward", X, W),
    "conv dx flipped (stride 1)": lambda ws: _conv(ws, "input", X, W),
    "conv dx columns (stride 2)": lambda ws: _conv(ws, "input", X, W, strides=(2, 2)),
    "conv dw": lambda ws: _conv(ws, "filter", X, W),
    "conv dw thin input (Kp < Cout)": lambda ws: _conv(ws, "filter", np.ascontiguousarray(X[..., :2]),
                                                       np.ascontiguousarray(W[:, :, :2])),
    "grouped conv dx": lambda ws: _conv(ws, "input", X, rnd((3, 3, 4, 24), 7), groups=4),
    "depthwise conv dw": lambda ws: _conv(ws, "filter", X, rnd((3, 3, 1, 32), 8), groups=16),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_same_bits_and_no_new_allocations(name, threads):
    call = CALLS[name]
    want = call(None)
    ws = _core.Workspace()
    first = call(ws)
    allocs, nbytes = ws.allocations, ws.nbytes
    second = call(ws)
    np.testing.assert_array_equal(first, want)
    np.testing.assert_array_equal(second, want)
    assert allocs >= 1 and nbytes > 0
    assert (ws.allocations, ws.nbytes) == (allocs, nbytes)


def test_grows_for_a_larger_product_and_keeps_it_for_a_smaller_one():
    ws = _core.Workspace()
    small = _gemm(ws, 100, 40, 300)
    n_small, a_small = ws.nbytes, ws.allocations
    big = _gemm(ws, 700, 150, 900)
    assert ws.nbytes > n_small and ws.allocations > a_small
    n_big, a_big = ws.nbytes, ws.allocations
    # buffers left full of the big product's panels: the small one must not read them
    again = _gemm(ws, 100, 40, 300)
    assert (ws.nbytes, ws.allocations) == (n_big, a_big)
    np.testing.assert_array_equal(again, small)
    np.testing.assert_array_equal(big, _gemm(None, 700, 150, 900))


def test_release_frees_and_next_call_regrows():
    ws = _core.Workspace()
    want = _gemm(ws)
    ws.release()
    assert ws.nbytes == 0
    np.testing.assert_array_equal(_gemm(ws), want)
    assert ws.nbytes > 0


def test_copies_and_pickles_start_empty():
    ws = _core.Workspace()
    _gemm(ws)
    for other in (copy.copy(ws), copy.deepcopy(ws), pickle.loads(pickle.dumps(ws))):
        assert type(other) is _core.Workspace and other is not ws
        assert (other.nbytes, other.allocations) == (0, 0)
    assert "bytes" in repr(ws)


def test_takes_no_arguments():
    with pytest.raises(TypeError, match="Workspace"):
        _core.Workspace(1)
    with pytest.raises(TypeError, match="Workspace"):
        _core.Workspace(size=1)


def test_shared_between_python_threads():
    # kernels run without the GIL: a call that finds the workspace taken runs on temporary
    # buffers, so concurrent calls on one workspace still give the right answers
    ws = _core.Workspace()
    a, b = rnd((600, 400), 11), rnd((400, 96), 12)
    want = _core.gemm("t", a, b)
    errors = []

    def work():
        try:
            for _ in range(20):
                np.testing.assert_array_equal(_core.gemm("t", a, b, workspace=ws), want)
        except AssertionError as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    ws.release()  # not busy any more


def _model():
    return q.Sequential([
        q.Input((10, 10, 3)),
        q.QConv2D(8, 3, padding="same", kernel_quantizer="quantized_bits(4,0,1)",
                  bias_quantizer="quantized_bits(4,0,1)", name="c1"),
        q.QActivation("quantized_relu(4)"),
        q.SeparableConv2D(16, 3, padding="same", name="sep"),
        q.Flatten(),
        q.QDense(5, kernel_quantizer="quantized_bits(4,0,1)", name="d"),
    ])


def test_layers_share_the_thread_workspace_across_training_steps():
    from qnn_ext.layers.base import thread_workspace
    m = _model()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rnd((16, 10, 10, 3), 13)
    y = np.arange(16) % 5
    ws = thread_workspace()
    ws.release()
    m.train_on_batch(x, y)
    assert all(m.get_layer(n)._workspace is ws for n in ("c1", "sep", "d"))
    seen = (ws.allocations, ws.nbytes)
    assert seen[1] > 0
    for _ in range(3):
        m.train_on_batch(x, y)
    m.predict(x, verbose=0)
    assert (ws.allocations, ws.nbytes) == seen
    # another thread has its own, so layers called from two threads never contend
    other = []
    t = threading.Thread(target=lambda: other.append(thread_workspace()))
    t.start()
    t.join()
    assert other[0] is not ws


def test_clear_session_frees_it():
    from qnn_ext.layers.base import thread_workspace
    _gemm(thread_workspace())
    assert thread_workspace().nbytes > 0
    q.backend.clear_session()
    assert thread_workspace().nbytes == 0


def test_given_back_after_a_failed_call():
    ws = _core.Workspace()
    with pytest.raises(ValueError, match="out"):
        _core.gemm("t", rnd((4, 4), 1), rnd((4, 4), 2), out=np.zeros((4, 3), F32), workspace=ws)
    with pytest.raises(ValueError, match="dy"):
        _core.conv2d_backward_input("t", rnd((2, 9, 9, 5), 3), W, X.shape, (1, 1), (1, 1, 1, 1),
                                    (1, 1), 1, workspace=ws)
    ws.release()  # raises RuntimeError if a call had kept it
    np.testing.assert_array_equal(_gemm(ws), _gemm(None))
