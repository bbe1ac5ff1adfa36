"""The GEMM's in-place A path against its packed path.

A row-major A (unit column stride) in a product at most 8 B slivers wide is not copied into
packed blocks: the indirect microkernel reads its rows where they lie through a table of row
addresses (csrc/kernels/gemm/sgemm.c, a_block/block_mul). A transposed A (trans_a=True, a
column stride of lda) is always packed. Both microkernels of one ISA level sum over k in the same
order, so the same product computed either way must agree bit for bit; both are also checked
against a float64 NumPy product.

The shapes cover the driver's cases: the whole-B row-block-major path (tall, narrow), the
column-panel path (short M), split-K (few tiles, long K, 2 threads), edges in every dimension
(M not a multiple of the 14- or 6-row tile, N not a multiple of the 32- or 16-column one, K
shorter than the 16-step prefetch block and with a remainder after it), the last sliver of a row
block (no next sliver to prefetch), beta and the fused bias + ReLU epilogue."""

import numpy as np
import pytest

from qnn_ext import _core

SHAPES = [
    (3000, 64, 576),   # conv-shaped: whole B, several K slices, in place
    (3001, 70, 600),   # edges in M and N, K slices of uneven depth
    (1000, 256, 300),  # the widest product still read in place (8 slivers of 32)
    (29, 33, 7),       # K shorter than a prefetch block, one row block
    (15, 1, 17),       # single column, one row past a 14-row tile
    (1, 5, 40),        # batch 1
    (100, 40, 3000),   # split-K at 2 threads
    (500, 300, 200),   # 10 slivers: packed even for a row-major A
]


def _ref(a, b, c0, beta):
    ref = a.astype(np.float64) @ b.astype(np.float64) + beta * c0.astype(np.float64)
    bound = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) + np.abs(beta * c0)
    return ref, bound


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("beta", [0.0, 0.75])
def test_inplace_matches_packed_bitwise(isa, num_threads, m, n, k, threads, beta):
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    num_threads(threads)
    got = c0.copy()
    _core.gemm("g", a, b, out=got, beta=beta)  # row-major A: read in place
    packed = c0.copy()
    _core.gemm("g", np.ascontiguousarray(a.T), b, out=packed, beta=beta, trans_a=True)
    np.testing.assert_array_equal(got, packed)
    ref, bound = _ref(a, b, c0, beta)
    err = np.abs(got.astype(np.float64) - ref)
    assert np.all(err <= 1e-5 * bound + 1e-30), float(np.max(err / (bound + 1e-30)))


@pytest.mark.parametrize("m,n,k", [(3000, 64, 576), (77, 45, 300)])
def test_inplace_epilogue_and_alpha(isa, num_threads, m, n, k):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    for threads in (1, 2):
        num_threads(threads)
        got = _core.gemm("g", a, b, alpha=0.5, bias=bias, act="relu")
        packed = _core.gemm("g", np.ascontiguousarray(a.T), b, alpha=0.5, bias=bias, act="relu",
                            trans_a=True)
        np.testing.assert_array_equal(got, packed)
        ref = np.maximum(0.5 * (a.astype(np.float64) @ b) + bias, 0.0)
        bound = 0.5 * (np.abs(a).astype(np.float64) @ np.abs(b)) + np.abs(bias)
        assert np.all(np.abs(got - ref) <= 1e-5 * bound + 1e-30)
        assert np.all(got >= 0.0)


def test_inplace_reads_only_a(isa):
    """Rows past M repeat a real row (never read past the array): an A that ends exactly at the
    end of a page-aligned buffer slice, with a last row block of 1 row, gives the same values as
    NumPy (ASan in CI also checks the reads)."""
    rng = np.random.default_rng(9)
    m, n, k = 14 * 20 + 1, 32, 64
    buf = rng.standard_normal(m * k + 1).astype(np.float32)
    a = buf[1:].reshape(m, k)  # A's last element is the buffer's last
    b = rng.standard_normal((k, n)).astype(np.float32)
    got = _core.gemm("g", np.ascontiguousarray(a), b)
    ref = a.astype(np.float64) @ b
    assert np.all(np.abs(got - ref) <= 1e-5 * (np.abs(a).astype(np.float64) @ np.abs(b)))
