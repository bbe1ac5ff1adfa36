"""The GEMM's in-place A path against its packed path.

A row-major A (unit column stride) is not copied into packed blocks: the indirect microkernel
reads its rows where they lie through a table of row addresses (csrc/kernels/gemm/sgemm.c,
a_block/block_mul), in K slices up to 1024 deep where packed ones are at most 256, and a product
wider than 8 B slivers runs in column panels of 8 slivers, each reading A again. A transposed A
(trans_a=True, a column stride of lda) is always packed. Both microkernels of one ISA level sum
over k in the same order, so where the K slicing is the same (K <= 256: one slice either way)
the same product computed either way must agree bit for bit; beyond, they differ by where the
slice sums are added into C, and both are checked against a float64 NumPy product.

The shapes cover the driver's cases: the whole-B row-block-major path (tall, narrow), the
column-panel path (short M), split-K (few tiles, long K, 2 threads), edges in every dimension
(M not a multiple of the 14- or 6-row tile, N not a multiple of the 32- or 16-column one, K
shorter than the 16-step prefetch block and with a remainder after it), the last sliver of a row
block (no next sliver to prefetch), several column panels with a narrow last one, more row
blocks than threads (split into a multiple of the team), beta and the fused bias + ReLU
epilogue, and rows so aliased in L1 (4 KB apart) that a sliver is copied as it is first used."""

import numpy as np
import pytest

from qnn_ext import _core

SHAPES = [
    (3000, 64, 256),   # conv-shaped, one K slice: bit for bit
    (3000, 64, 576),   # conv-shaped: one in-place slice against three packed ones
    (3000, 32, 2100),  # several in-place K slices: the whole-B path
    (3001, 70, 600),   # edges in M and N, K slices of uneven depth
    (1000, 256, 300),  # the widest product still read in place (8 slivers of 32)
    (29, 33, 7),       # K shorter than a prefetch block, one row block
    (15, 1, 17),       # single column, one row past a 14-row tile
    (1, 5, 40),        # batch 1
    (100, 40, 3000),   # split-K at 2 threads
    (500, 300, 200),   # 10 slivers: two column panels (256 + 44), one K slice: bit for bit
    (1100, 520, 200),  # three panels (the last 8 wide), 3 row blocks -> 4 at 2 threads
    (800, 600, 1100),  # three panels, two K slices of 552 each, 3 row blocks -> 4
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
    if k <= 256:
        np.testing.assert_array_equal(got, packed)
    ref, bound = _ref(a, b, c0, beta)
    for res in (got, packed):
        err = np.abs(res.astype(np.float64) - ref)
        assert np.all(err <= 1e-5 * bound + 1e-30), float(np.max(err / (bound + 1e-30)))


@pytest.mark.parametrize("m,n,k", [(3000, 64, 250), (77, 45, 200), (900, 600, 250)])
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


@pytest.mark.parametrize("m,n,k", [(1024, 1024, 300), (800, 600, 1100), (2000, 64, 700)])
def test_row_blocks_split_for_the_team_same_bits(isa, num_threads, m, n, k):
    # 1 thread runs 378-row blocks, 2 threads a multiple of 2 blocks of near-equal sliver
    # counts; where rows are cut must not change any element's sum, so the bits agree.
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    out = []
    for threads in (1, 2):
        num_threads(threads)
        out.append(_core.gemm("g", a, b))
        out.append(_core.gemm("g", np.ascontiguousarray(a.T), b, trans_a=True))  # packed
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[1], out[3])
    ref, bound = _ref(a, b, np.zeros((m, n), np.float32), 0.0)
    assert np.all(np.abs(out[0] - ref) <= 1e-5 * bound + 1e-30)


@pytest.mark.parametrize("m,n,k,threads", [(800, 256, 1024, 1), (800, 256, 1024, 2),
                                            (800, 300, 2048, 1), (800, 300, 2048, 2),
                                            (47, 256, 1024, 1)])
@pytest.mark.parametrize("beta", [0.0, 0.75])
def test_aliased_rows_copied_same_bits(isa, num_threads, m, n, k, threads, beta):
    """With K a multiple of 1024, A's rows are a multiple of 4 KB apart and all 14 of a sliver
    fall on one L1 set; when the sliver meets >= 6 B slivers (N >= 192 at AVX-512), the first
    meeting copies it out (the copying microkernel) and the others read the copy. Each column's
    sum runs in the same k order as in a 1-thread product of that column's 32-wide sliver
    alone, which is never copied: the bits agree. 800 rows give each of 2 threads whole panels
    (fewer rows would run split-K at 2 threads, another summation); 47 rows end in a 5-row
    sliver, too short to alias; 2048 is two K slices, the second accumulating into C."""
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    num_threads(threads)
    got = c0.copy()
    _core.gemm("g", a, b, out=got, beta=beta)
    num_threads(1)
    for j0 in range(0, n, 32):
        part = np.ascontiguousarray(c0[:, j0:j0 + 32])
        _core.gemm("g", a, np.ascontiguousarray(b[:, j0:j0 + 32]), out=part, beta=beta)
        np.testing.assert_array_equal(got[:, j0:j0 + 32], part)
    ref, bound = _ref(a, b, c0, beta)
    err = np.abs(got.astype(np.float64) - ref)
    assert np.all(err <= 1e-5 * bound + 1e-30), float(np.max(err / (bound + 1e-30)))


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


# ------------------------------------------------------------------ convolution patches in place


def _im2col(x, kh_, kw_, strides, pads, dil, g, cg):
    """Patch matrix of group g (float32 copies, zeros in the padding): row = output pixel
    (n, oh, ow), column = (kh*KW + kw)*Cg + ci, the order the kernels use."""
    n, h, w, _ = x.shape
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = strides, pads, dil
    ho = (h + pt + pb - dh * (kh_ - 1) - 1) // sh + 1
    wo = (w + pl + pr - dw * (kw_ - 1) - 1) // sw + 1
    xp = np.pad(x[..., g * cg:(g + 1) * cg], ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    cols = [xp[:, kh * dh:kh * dh + sh * (ho - 1) + 1:sh, kw * dw:kw * dw + sw * (wo - 1) + 1:sw]
            for kh in range(kh_) for kw in range(kw_)]
    return np.ascontiguousarray(np.concatenate(cols, axis=-1).reshape(n * ho * wo, -1)), (ho, wo)


CONVS = [  # (N, H, W, C, CO, KH, KW, strides, pads, dilation, groups)
    (2, 9, 11, 16, 24, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),    # 16-channel taps, edges
    (1, 7, 7, 20, 33, 3, 3, (1, 1), (0, 2, 1, 0), (1, 1), 1),     # 20: prefetch block + rest
    (2, 6, 6, 100, 40, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),    # one 900-deep K slice
    (2, 5, 5, 300, 40, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),    # K slices cut taps mid-run
    (1, 12, 10, 32, 64, 5, 5, (2, 1), (2, 2, 2, 2), (1, 1), 1),   # 5x5, strided
    (1, 11, 11, 32, 16, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1),   # dilated
    (2, 5, 5, 64, 64, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),     # 1x1
    (1, 8, 8, 64, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2),     # 2 groups of 32 channels
]


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("threads", [1, 2])
def test_conv_patches_in_place_match_gemm(isa, num_threads, conv, threads):
    """The forward convolution reads its patch rows in place (one segment per tap, padding taps
    pointing at zeros) when a group has >= 16 channels. Its K slicing is then that of the
    in-place GEMM over the same patch matrix built in NumPy, one segment per slice: the two must
    agree bit for bit, and both agree with float64 to float summation."""
    n, h, w, c, co, kh, kw, strides, pads, dil, groups = conv
    rng = np.random.default_rng(h * 31 + c)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    wt = rng.standard_normal((kh, kw, c // groups, co)).astype(np.float32)
    num_threads(threads)
    y = _core.conv2d_forward("t", x, wt, strides, pads, dil, groups)
    cg, cog = c // groups, co // groups
    for g in range(groups):
        cols, (ho, wo) = _im2col(x, kh, kw, strides, pads, dil, g, cg)
        bmat = np.ascontiguousarray(wt[..., g * cog:(g + 1) * cog].reshape(-1, cog))
        flat = _core.gemm("t", cols, bmat)
        np.testing.assert_array_equal(y[..., g * cog:(g + 1) * cog].reshape(-1, cog), flat)
        ref = cols.astype(np.float64) @ bmat.astype(np.float64)
        bound = np.abs(cols).astype(np.float64) @ np.abs(bmat).astype(np.float64)
        assert np.all(np.abs(flat - ref) <= 1e-5 * bound + 1e-30)


# ------------------------------------------------------------- filter gradient: B read in place

DW_CONVS = [  # (N, H, W, C, CO, KH, KW, strides, pads, dilation, groups)
    (2, 9, 11, 32, 24, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),    # 32 channels: in place at AVX-512
    (1, 12, 10, 64, 40, 5, 5, (2, 1), (2, 2, 2, 2), (1, 1), 1),   # 5x5, strided, padded
    (2, 11, 11, 32, 16, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1),   # dilated (K = N*HO*WO)
    (3, 9, 13, 32, 16, 3, 3, (2, 3), (0, 2, 1, 0), (1, 1), 1),    # uneven strides and padding
    (1, 5, 7, 32, 8, 3, 3, (1, 1), (3, 3, 4, 4), (1, 1), 1),      # taps wholly in the padding
    (1, 8, 8, 64, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2),     # 2 groups of 32 channels
    (2, 6, 6, 48, 40, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),     # 48: in place at AVX2 / ref only
    (8, 16, 16, 64, 20, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),   # long K: split-K at 2 threads
]


@pytest.mark.parametrize("conv", DW_CONVS)
@pytest.mark.parametrize("threads", [1, 2])
def test_conv_filter_gradient_patches_in_place(isa, num_threads, conv, threads):
    """dW^T = dy^T @ patches reads the patch matrix (B) in place when a group's channel count is
    a multiple of the register tile's width (32 at AVX-512, 16 at AVX2, 8 for the reference):
    each 32-column sliver of a patch row is then inside one tap of x. Same K slicing and k order
    as the packed GEMM over the NumPy-built patch matrix, so the same bits."""
    n, h, w, c, co, kh, kw, strides, pads, dil, groups = conv
    rng = np.random.default_rng(h * 17 + c + co)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    cg, cog = c // groups, co // groups
    ho = (h + pads[0] + pads[1] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    wo = (w + pads[2] + pads[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    dy = rng.standard_normal((n, ho, wo, co)).astype(np.float32)
    num_threads(threads)
    dw = _core.conv2d_backward_filter("t", x, dy, (kh, kw, cg, co), strides, pads, dil, groups)
    for g in range(groups):
        cols, _ = _im2col(x, kh, kw, strides, pads, dil, g, cg)
        dyg = np.ascontiguousarray(dy.reshape(-1, co)[:, g * cog:(g + 1) * cog])
        packed = _core.gemm("t", dyg, cols, trans_a=True)  # (COg, Kp), both operands packed
        got = dw[..., g * cog:(g + 1) * cog].reshape(-1, cog)
        np.testing.assert_array_equal(got, packed.T)
        ref = cols.T.astype(np.float64) @ dyg.astype(np.float64)
        bound = np.abs(cols.T).astype(np.float64) @ np.abs(dyg).astype(np.float64)
        assert np.all(np.abs(got - ref) <= 1e-5 * bound + 1e-30)
