/* AVX2 + FMA sgemm microkernels (packed, indirect A, indirect B; gemm.h): a 6 x 16 tile, 12 ymm
 * accumulators.
 *
 * Per k step: two B vectors, six broadcasts, twelve FMAs; 12 independent accumulators cover the
 * FMA latency of 4 cycles on 2 pipes, and 6 x 16 leaves ymm registers for the B vectors and the
 * broadcast. FMA rounds once per step where the reference rounds twice: results agree to float
 * summation, not bit for bit. */
#include <immintrin.h>
#include <string.h>

#include "kernels/gemm/gemm.h"

#define MR QNN_SGEMM_MR_AVX2
#define NR QNN_SGEMM_NR_AVX2

_Static_assert(MR == 6 && NR == 16, "the unrolled tile below is 6 x 16");

/* C tile = alpha * acc + beta * C, rows < m, columns < n. */
static inline void store_tile(const __m256 *acc, float *c, size_t ldc, size_t m, size_t n,
                              float alpha, float beta) {
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (n == NR) {
        for (size_t i = 0; i < m; i++) {
            float *ci = c + i * ldc;
            __m256 r0 = _mm256_mul_ps(va, acc[2 * i]), r1 = _mm256_mul_ps(va, acc[2 * i + 1]);
            if (beta != 0.0f) {
                r0 = _mm256_add_ps(r0, _mm256_mul_ps(vb, _mm256_loadu_ps(ci)));
                r1 = _mm256_add_ps(r1, _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8)));
            }
            _mm256_storeu_ps(ci, r0);
            _mm256_storeu_ps(ci + 8, r1);
        }
        return;
    }
    /* Column edge: go through a row buffer (AVX2 has no cheap masked float store of any width). */
    for (size_t i = 0; i < m; i++) {
        float row[NR], *ci = c + i * ldc;
        _mm256_storeu_ps(row, _mm256_mul_ps(va, acc[2 * i]));
        _mm256_storeu_ps(row + 8, _mm256_mul_ps(va, acc[2 * i + 1]));
        for (size_t j = 0; j < n; j++) ci[j] = beta != 0.0f ? row[j] + beta * ci[j] : row[j];
    }
}

/* The 6 x 16 tile in 12 named accumulators (x: columns 0-7, y: 8-15), held in registers:
 * QNN_TILE_BEGIN declares them zeroed and prefetches the C tile, QNN_TILE_END stores the tile
 * (both use the kernels' c, ldc, m, n, alpha, beta). */
#define QNN_TILE_BEGIN                                                                        \
    __m256 x0 = _mm256_setzero_ps(), y0 = x0, x1 = x0, y1 = x0, x2 = x0, y2 = x0, x3 = x0,     \
           y3 = x0, x4 = x0, y4 = x0, x5 = x0, y5 = x0;                                       \
    for (size_t i_ = 0; i_ < m; i_++) _mm_prefetch((const char *)(c + i_ * ldc), _MM_HINT_T0)
#define QNN_TILE_END                                                                           \
    const __m256 acc_[2 * MR] = {x0, y0, x1, y1, x2, y2, x3, y3, x4, y4, x5, y5};              \
    store_tile(acc_, c, ldc, m, n, alpha, beta)

/* One k step's 12 FMAs with a packed A sliver pa (row i at pa[i*QNN_SGEMM_KC]) and the B
 * vectors b0, b1, for the packed and the indirect-B kernels. */
#define QNN_PA_ROW(i)                                                 \
    {                                                                 \
        const __m256 ai = _mm256_broadcast_ss(pa + i * QNN_SGEMM_KC); \
        x##i = _mm256_fmadd_ps(ai, b0, x##i);                         \
        y##i = _mm256_fmadd_ps(ai, b1, y##i);                         \
    }
#define QNN_PACKED_A_ROWS \
    QNN_PA_ROW(0) QNN_PA_ROW(1) QNN_PA_ROW(2) QNN_PA_ROW(3) QNN_PA_ROW(4) QNN_PA_ROW(5)

void qnn_sgemm_ukernel_avx2(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                            size_t m, size_t n, float alpha, float beta) {
    const float *pa = __builtin_assume_aligned(a, 64);
    const float *pb = __builtin_assume_aligned(b, 64);
    QNN_TILE_BEGIN;
    for (size_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(pb), b1 = _mm256_load_ps(pb + 8);
        QNN_PACKED_A_ROWS
        pa += 1;
        pb += NR;
    }
    QNN_TILE_END;
}

/* The indirect form (gemm.h): the same tile and k order, the six A rows read through a pointer
 * table, the next sliver's rows prefetched into L2 one line per k step (as the AVX-512 kernel). */
void qnn_sgemm_ind_ukernel_avx2(size_t nseg, const size_t *len, const float *const *rows,
                                const float *const *pf, const float *b, float *c, size_t ldc,
                                size_t m, size_t n, float alpha, float beta) {
    const float *pb = __builtin_assume_aligned(b, 64);
    QNN_TILE_BEGIN;
#define QNN_ROW(i, k)                                \
    {                                                \
        const __m256 ai = _mm256_broadcast_ss(a##i + (k)); \
        x##i = _mm256_fmadd_ps(ai, b0, x##i);        \
        y##i = _mm256_fmadd_ps(ai, b1, y##i);        \
    }
#define QNN_STEP(k)                                                                        \
    {                                                                                      \
        const __m256 b0 = _mm256_load_ps(pb), b1 = _mm256_load_ps(pb + 8);                 \
        QNN_ROW(0, k) QNN_ROW(1, k) QNN_ROW(2, k) QNN_ROW(3, k) QNN_ROW(4, k) QNN_ROW(5, k) \
        pb += NR;                                                                          \
    }
#define QNN_PF_STEP(u)                                                     \
    _mm_prefetch((const char *)(q[u] + k), _MM_HINT_T1);                   \
    QNN_STEP(k + u)
    for (size_t s = 0; s < nseg; s++) {
        const float *const *r = rows + s * MR;
        const float *a0 = r[0], *a1 = r[1], *a2 = r[2], *a3 = r[3], *a4 = r[4], *a5 = r[5];
        const size_t l = len[s];
        size_t k = 0;
        if (pf) {
            const float *const *q = pf + s * MR;
            for (; k + 16 <= l; k += 16) {
                QNN_PF_STEP(0) QNN_PF_STEP(1) QNN_PF_STEP(2) QNN_PF_STEP(3) QNN_PF_STEP(4)
                QNN_PF_STEP(5)
                QNN_STEP(k + 6) QNN_STEP(k + 7) QNN_STEP(k + 8) QNN_STEP(k + 9) QNN_STEP(k + 10)
                QNN_STEP(k + 11) QNN_STEP(k + 12) QNN_STEP(k + 13) QNN_STEP(k + 14)
                QNN_STEP(k + 15)
            }
        }
        for (; k < l; k++) QNN_STEP(k)
    }
#undef QNN_PF_STEP
#undef QNN_STEP
#undef QNN_ROW
    QNN_TILE_END;
}

/* The copying indirect form (gemm.h). Six rows never crowd one L1 set enough for the driver to
 * ask for a copy (sgemm.c: more than 8 rows), so this one is plain: the copy, then the product. */
void qnn_sgemm_indc_ukernel_avx2(size_t kc, const float *const *rows, float *const *cp,
                                 const float *const *pf, const float *b, float *c, size_t ldc,
                                 size_t m, size_t n, float alpha, float beta) {
    for (size_t i = 0; i < MR; i++) memcpy(cp[i], rows[i], kc * sizeof(float));
    qnn_sgemm_ind_ukernel_avx2(1, &kc, rows, pf, b, c, ldc, m, n, alpha, beta);
}

/* The indirect-B form (gemm.h): packed A, B row k of the sliver read at brow[k]. */
void qnn_sgemm_indb_ukernel_avx2(size_t kc, const float *a, const float *const *brow, float *c,
                                 size_t ldc, size_t m, size_t n, float alpha, float beta) {
    const float *pa = __builtin_assume_aligned(a, 64);
    QNN_TILE_BEGIN;
    for (size_t k = 0; k < kc; k++) {
        const float *pb = brow[k];
        const __m256 b0 = _mm256_loadu_ps(pb), b1 = _mm256_loadu_ps(pb + 8);
        QNN_PACKED_A_ROWS
        pa += 1;
    }
#undef QNN_PACKED_A_ROWS
#undef QNN_PA_ROW
    QNN_TILE_END;
}

/* In-register transpose: on return r[i] holds what was column i of the 8 rows. */
static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x20);
        r[j + 4] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x31);
    }
}

/* Transposed-A packing (gemm.h) in 8 x 8 tiles; the edges element by element. */
void qnn_sgemm_pack_at_avx2(const float *src, size_t cs, size_t m, size_t kc, float *dst) {
    const size_t m8 = m / 8 * 8, k8 = kc / 8 * 8;
    for (size_t i0 = 0; i0 < m8; i0 += 8) {
        for (size_t k0 = 0; k0 < k8; k0 += 8) {
            __m256 r[8];
            for (size_t k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(src + (k0 + k) * cs + i0);
            transpose8(r);
            for (size_t i = 0; i < 8; i++)
                _mm256_storeu_ps(dst + (i0 + i) * QNN_SGEMM_KC + k0, r[i]);
        }
        for (size_t k = k8; k < kc; k++)
            for (size_t i = i0; i < i0 + 8; i++) dst[i * QNN_SGEMM_KC + k] = src[k * cs + i];
    }
    for (size_t k = 0; k < kc; k++)
        for (size_t i = m8; i < m; i++) dst[i * QNN_SGEMM_KC + k] = src[k * cs + i];
}
