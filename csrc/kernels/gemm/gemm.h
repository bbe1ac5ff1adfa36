/* Float32 GEMM for the training path: C = alpha * op(A) @ op(B) + beta * C, row-major.
 *
 * Goto/BLIS structure (spec/performance.md §3): B is packed into KC x NC panels, A into MC x KC
 * blocks, and an MR x NR register-tile microkernel (one per ISA, chosen through the dispatch
 * table) streams the packed slivers. An A whose rows lie in memory as contiguous runs of K is not
 * copied: the indirect microkernel reads it in place through a table of row addresses (and B
 * likewise where its slivers lie in memory whole). Operands are described by element strides, so
 * transposes and strided sub-matrices (conv groups) cost nothing beyond the packing. Either
 * operand can instead come from a caller-supplied packer: the convolutions use that for im2col
 * patches straight from the NHWC input (implicit im2col), packed or read in place. */
#ifndef QNN_KERNELS_GEMM_H
#define QNN_KERNELS_GEMM_H

#include <stddef.h>

#include "kernels/quant/quant.h" /* enum qnn_status, shared by every kernel family */
#include "runtime/workspace.h"

/* Depth of a K slice and the row stride of a packed A sliver. A compile-time row stride lets the
 * microkernels address all MR rows from one base register with constant displacements, and lets
 * every A packer (strided views and im2col patches alike) copy contiguous runs of K. */
#ifndef QNN_SGEMM_KC
#define QNN_SGEMM_KC 256
#endif

/* Microkernel: acc = sum_k a[i*QNN_SGEMM_KC + k] * b[k*NR + j] over kc <= QNN_SGEMM_KC steps
 * (packed, 64-byte aligned),
 * then C[i, j] = alpha*acc + beta*C[i, j] for i < m, j < n (beta == 0: C is not read, so NaN
 * garbage in an uninitialised output is overwritten as BLAS does). */
typedef void (*qnn_sgemm_ukernel)(size_t kc, const float *a, const float *b, float *c,
                                  size_t ldc, size_t m, size_t n, float alpha, float beta);

void qnn_sgemm_ukernel_ref(size_t, const float *, const float *, float *, size_t, size_t, size_t,
                           float, float);
void qnn_sgemm_ukernel_avx2(size_t, const float *, const float *, float *, size_t, size_t,
                            size_t, float, float);
void qnn_sgemm_ukernel_avx512(size_t, const float *, const float *, float *, size_t, size_t,
                              size_t, float, float);
/* Indirect microkernel: the same product, but A is read where it lies instead of from a packed
 * sliver. The K range is nseg segments; segment s is len[s] steps long and row i of it starts at
 * rows[s*MR + i] (len[s] contiguous floats; rows i >= m may repeat any readable address). pf is
 * the next sliver's table with the same segments, fetched into cache while this one computes
 * (NULL: nothing to fetch). The sum runs over k in the same order as the packed kernel of the
 * same ISA, so both give the same bits. */
typedef void (*qnn_sgemm_ind_ukernel)(size_t nseg, const size_t *len, const float *const *rows,
                                      const float *const *pf, const float *b, float *c,
                                      size_t ldc, size_t m, size_t n, float alpha, float beta);

void qnn_sgemm_ind_ukernel_ref(size_t, const size_t *, const float *const *, const float *const *,
                               const float *, float *, size_t, size_t, size_t, float, float);
void qnn_sgemm_ind_ukernel_avx2(size_t, const size_t *, const float *const *,
                                const float *const *, const float *, float *, size_t, size_t,
                                size_t, float, float);
void qnn_sgemm_ind_ukernel_avx512(size_t, const size_t *, const float *const *,
                                  const float *const *, const float *, float *, size_t, size_t,
                                  size_t, float, float);
/* Copying indirect microkernel: the indirect product over one K segment of kc steps (kc a
 * multiple of 16, the AVX-512 form's copy step) that also writes row i's kc values of A to
 * cp[i] (rows i >= m repeat row m-1 in both tables), so the driver's later B slivers can read a
 * copy whose rows do not share L1 sets (sgemm.c). Same k order as the indirect kernel of the
 * same ISA, so the same bits. */
typedef void (*qnn_sgemm_indc_ukernel)(size_t kc, const float *const *rows, float *const *cp,
                                       const float *const *pf, const float *b, float *c,
                                       size_t ldc, size_t m, size_t n, float alpha, float beta);

void qnn_sgemm_indc_ukernel_ref(size_t, const float *const *, float *const *,
                                const float *const *, const float *, float *, size_t, size_t,
                                size_t, float, float);
void qnn_sgemm_indc_ukernel_avx2(size_t, const float *const *, float *const *,
                                 const float *const *, const float *, float *, size_t, size_t,
                                 size_t, float, float);
void qnn_sgemm_indc_ukernel_avx512(size_t, const float *const *, float *const *,
                                   const float *const *, const float *, float *, size_t, size_t,
                                   size_t, float, float);
/* Indirect-B microkernel: as qnn_sgemm_ukernel (A packed), but row k of the B sliver is read
 * at brow[k]: NR contiguous floats, any alignment. Same k order as the packed kernel, so the
 * same bits. */
typedef void (*qnn_sgemm_indb_ukernel)(size_t kc, const float *a, const float *const *brow,
                                       float *c, size_t ldc, size_t m, size_t n, float alpha,
                                       float beta);

void qnn_sgemm_indb_ukernel_ref(size_t, const float *, const float *const *, float *, size_t,
                                size_t, size_t, float, float);
void qnn_sgemm_indb_ukernel_avx2(size_t, const float *, const float *const *, float *, size_t,
                                 size_t, size_t, float, float);
void qnn_sgemm_indb_ukernel_avx512(size_t, const float *, const float *const *, float *, size_t,
                                   size_t, size_t, float, float);

/* Packs a block of a transposed A (element (i, k) at src[i + k*cs]): dst[i*QNN_SGEMM_KC + k]
 * for i < m, k < kc. The SIMD forms transpose 16 x 16 (8 x 8) tiles in registers; the scalar
 * one walks blocks of 16 rows so its reads stay sequential. */
typedef void (*qnn_sgemm_pack_at_fn)(const float *src, size_t cs, size_t m, size_t kc,
                                     float *dst);
void qnn_sgemm_pack_at_ref(const float *, size_t, size_t, size_t, float *);
void qnn_sgemm_pack_at_avx2(const float *, size_t, size_t, size_t, float *);
void qnn_sgemm_pack_at_avx512(const float *, size_t, size_t, size_t, float *);

/* Most segments an in-place A may cut one K slice into, and the deepest K slice it is asked
 * for: deeper than a packed slice (QNN_SGEMM_KC), as no copy has to fit in L2; fewer slices
 * mean fewer passes over C, and each A row is one long stream for the prefetchers (+3-5% on
 * 16384 x 128 x 1152 and 65536 x 64 x 576 over 256-deep slices). */
#define QNN_SGEMM_IND_MAXSEG 128
#ifndef QNN_SGEMM_IND_KC
#define QNN_SGEMM_IND_KC 1024
#endif

/* Register tile of each build (the packing follows the tile of the selected microkernel). */
#define QNN_SGEMM_MR_REF 4
#define QNN_SGEMM_NR_REF 8
#define QNN_SGEMM_MR_AVX2 6
#define QNN_SGEMM_NR_AVX2 16
#define QNN_SGEMM_MR_AVX512 14
#define QNN_SGEMM_NR_AVX512 32
/* The tallest tile of any ISA (a bound for per-sliver tables on the stack). */
#define QNN_SGEMM_MR_MAX 14

/* A strided matrix view: element (i, j) is p[i*rs + j*cs]. */
typedef struct qnn_mat {
    const float *p;
    ptrdiff_t rs, cs;
} qnn_mat;

/* Custom A packer: writes rows [i0, i0+m) x cols [k0, k0+kc) of op(A), row i at
 * dst[i*QNN_SGEMM_KC + k] (slivers of mr rows are consecutive), and zero-fills the first kc
 * entries of rows m .. round_up(m, mr)-1. Must be safe to call from several threads at once
 * (different dst). */
typedef struct qnn_apacker {
    void (*pack)(const void *ctx, size_t i0, size_t m, size_t k0, size_t kc, size_t mr,
                 float *dst);
    const void *ctx;
    /* Optional, for an A whose rows lie in memory as runs of contiguous K (a row-major matrix,
     * the pixels of an NHWC image): describes rows [i0, i0+m) x cols [k0, k0+kc) for the
     * indirect microkernel instead of copying them, for any kc <= QNN_SGEMM_IND_KC. Writes the
     * segment lengths to len (1 to QNN_SGEMM_IND_MAXSEG of them, summing to kc) and the row
     * addresses of sliver v (rows i0 + v*mr ..) to tab[(v*nseg + s)*mr + i], rows past m at
     * any readable address; returns nseg. NULL: A is packed. */
    size_t (*rows)(const void *ctx, size_t i0, size_t m, size_t k0, size_t kc, size_t mr,
                   const float **tab, size_t *len);
} qnn_apacker;

/* Custom B packer: writes rows [k0, k0+kc) x cols [j0, j0+nn) of B as dst[k*nr + j], columns
 * nn .. nr-1 zero-filled. Thread-safe like the A packer. */
typedef struct qnn_bpacker {
    void (*pack)(const void *ctx, size_t k0, size_t kc, size_t j0, size_t nn, size_t nr,
                 float *dst);
    const void *ctx;
    /* Optional, for a B whose every sliver (nr columns from a multiple of nr) lies in each row
     * as nr contiguous floats (the patch matrix of an NHWC image with Cg a multiple of nr): the
     * addresses of rows [k0, k0+kc) of the sliver at column j0 into tab[0 .. kc), instead of a
     * packed copy; a row may point at nr zeros. Used when A is packed. NULL: B is packed. */
    void (*rows)(const void *ctx, size_t k0, size_t kc, size_t j0, size_t nr, const float **tab);
} qnn_bpacker;

/* Applied once to each block of C that is final (all of K reduced) while it is still in cache:
 * rows [i0, i0+m), columns [j0, j0+n) of C (c points at C(0, 0), row stride ldc). Element-wise
 * and thread-safe; the blocks cover C exactly once. */
typedef struct qnn_gemm_epilogue {
    void (*apply)(const void *ctx, size_t i0, size_t m, size_t j0, size_t n, float *c,
                  size_t ldc);
    const void *ctx;
} qnn_gemm_epilogue;

/* The bias + activation epilogue: C(i, j) = act(C(i, j) + bias[j]) (bias may be NULL; relu as
 * the activation kernels compute it: x < 0 ? 0 : x), the same float operations as a separate
 * bias add and activation, so the same bits.
 *
 * q (may be NULL): then a quantizer activation, applied as qnn_quant_run would apply it to the
 * whole output (same flat indices for per-channel scales and random draws): element (i, j) of
 * this C has flat index i * ldc + col0 + j (col0: the first column of a group's C in the full
 * output). ste (may be NULL): before quantizing, the STE codes of the pre-activation go to
 * mask + i * mask_rb + j / 8 (plane 1 at + mask_plane), so the backward needs no float copy. */
typedef struct qnn_bias_act {
    const float *bias;
    int relu;
    /* scale/shift (both or neither): a per-column affine map after the bias, c * scale + shift
     * (an inference batch norm, as qnn_bn_apply computes it), before relu and the quantizer */
    const float *scale, *shift;
    const qnn_quant_params *q;
    const float *sc, *sc2;
    size_t S, inner, col0;
    const qnn_ste_code *ste;
    uint8_t *mask;
    size_t mask_rb, mask_plane;
} qnn_bias_act;
void qnn_bias_act_apply(const void *ctx, size_t i0, size_t m, size_t j0, size_t n, float *c,
                        size_t ldc);

/* C (M x N, row stride ldc, unit column stride) = ep(alpha * A @ B + beta * C). A is M x K
 * (either a strided view `a` or produced by `ap` when ap != NULL), B is K x N (a strided view
 * `b`, or produced by `bp` when bp != NULL), ep an optional epilogue. `nthreads` caps the OpenMP
 * team (<= 0: the runtime's rule from the amount of work). The packing buffers come from the
 * workspace's GEMM slots (and QNN_WS_SPLITK), grown as needed; ws == NULL: a temporary one,
 * freed before returning. Returns QNN_OK or QNN_ENOMEM. */
int qnn_sgemm_ex(size_t M, size_t N, size_t K, float alpha, qnn_mat a, const qnn_apacker *ap,
                 qnn_mat b, const qnn_bpacker *bp, float beta, float *c, size_t ldc,
                 const qnn_gemm_epilogue *ep, int nthreads, qnn_workspace *ws);

/* BLAS-like row-major entry: op(A) = A (M x K, lda) or A^T (A stored K x M, lda). */
int qnn_sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
              const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
              size_t ldc, const qnn_gemm_epilogue *ep, qnn_workspace *ws);

#endif
