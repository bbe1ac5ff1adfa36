/* The portable sgemm microkernels (packed, indirect A, indirect B) over a fixed MR x NR
 * accumulator array.
 *
 * Included by sgemm_ref.c, which defines QNN_FN(name), QNN_MR and QNN_NR and is built with
 * vectorisation and FMA contraction off: each step is a multiply then an add, the scalar
 * reference the SIMD kernels (sgemm_avx2.c, sgemm_avx512.c, intrinsics) are tested against. */

#include <stddef.h>

/* C tile = alpha * acc + beta * C, rows < m, columns < n. */
static void QNN_FN(store_tile)(float acc[QNN_MR][QNN_NR], float *c, size_t ldc, size_t m,
                               size_t n, float alpha, float beta) {
    if (m == QNN_MR && n == QNN_NR) {
        if (beta == 0.0f) {
            for (int i = 0; i < QNN_MR; i++)
                for (int j = 0; j < QNN_NR; j++) c[i * ldc + j] = alpha * acc[i][j];
        } else {
            for (int i = 0; i < QNN_MR; i++)
                for (int j = 0; j < QNN_NR; j++)
                    c[i * ldc + j] = alpha * acc[i][j] + beta * c[i * ldc + j];
        }
        return;
    }
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            c[i * ldc + j] = beta == 0.0f ? alpha * acc[i][j]
                                          : alpha * acc[i][j] + beta * c[i * ldc + j];
}

void QNN_FN(qnn_sgemm_ukernel)(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                               size_t m, size_t n, float alpha, float beta) {
    const float *restrict pa = __builtin_assume_aligned(a, 64);
    const float *restrict pb = __builtin_assume_aligned(b, 64);
    float acc[QNN_MR][QNN_NR];
    for (int i = 0; i < QNN_MR; i++)
        for (int j = 0; j < QNN_NR; j++) acc[i][j] = 0.0f;
    for (size_t k = 0; k < kc; k++) {
        const float *restrict bk = pb + k * QNN_NR;
#pragma GCC unroll 16
        for (int i = 0; i < QNN_MR; i++) {
            const float ai = pa[i * QNN_SGEMM_KC + k];
            for (int j = 0; j < QNN_NR; j++) acc[i][j] += ai * bk[j];
        }
    }
    QNN_FN(store_tile)(acc, c, ldc, m, n, alpha, beta);
}

/* The indirect form (gemm.h): the same k order, A rows read through a pointer table. The
 * prefetch table is a hint the portable build does without. */
void QNN_FN(qnn_sgemm_ind_ukernel)(size_t nseg, const size_t *len, const float *const *rows,
                                   const float *const *pf, const float *b, float *c, size_t ldc,
                                   size_t m, size_t n, float alpha, float beta) {
    (void)pf;
    const float *restrict pb = __builtin_assume_aligned(b, 64);
    float acc[QNN_MR][QNN_NR];
    for (int i = 0; i < QNN_MR; i++)
        for (int j = 0; j < QNN_NR; j++) acc[i][j] = 0.0f;
    for (size_t s = 0; s < nseg; s++) {
        const float *const *r = rows + s * QNN_MR;
        for (size_t k = 0; k < len[s]; k++) {
#pragma GCC unroll 16
            for (int i = 0; i < QNN_MR; i++) {
                const float ai = r[i][k];
                for (int j = 0; j < QNN_NR; j++) acc[i][j] += ai * pb[j];
            }
            pb += QNN_NR;
        }
    }
    QNN_FN(store_tile)(acc, c, ldc, m, n, alpha, beta);
}

/* The copying indirect form (gemm.h): the copy first, then the indirect product. */
void QNN_FN(qnn_sgemm_indc_ukernel)(size_t kc, const float *const *rows, float *const *cp,
                                    const float *const *pf, const float *b, float *c, size_t ldc,
                                    size_t m, size_t n, float alpha, float beta) {
    for (int i = 0; i < QNN_MR; i++)
        for (size_t k = 0; k < kc; k++) cp[i][k] = rows[i][k];
    QNN_FN(qnn_sgemm_ind_ukernel)(1, &kc, rows, pf, b, c, ldc, m, n, alpha, beta);
}

/* The indirect-B form (gemm.h): packed A, B row k of the sliver read at brow[k]. */
void QNN_FN(qnn_sgemm_indb_ukernel)(size_t kc, const float *a, const float *const *brow,
                                    float *c, size_t ldc, size_t m, size_t n, float alpha,
                                    float beta) {
    const float *restrict pa = __builtin_assume_aligned(a, 64);
    float acc[QNN_MR][QNN_NR];
    for (int i = 0; i < QNN_MR; i++)
        for (int j = 0; j < QNN_NR; j++) acc[i][j] = 0.0f;
    for (size_t k = 0; k < kc; k++) {
        const float *restrict bk = brow[k];
#pragma GCC unroll 16
        for (int i = 0; i < QNN_MR; i++) {
            const float ai = pa[i * QNN_SGEMM_KC + k];
            for (int j = 0; j < QNN_NR; j++) acc[i][j] += ai * bk[j];
        }
    }
    QNN_FN(store_tile)(acc, c, ldc, m, n, alpha, beta);
}

void QNN_FN(qnn_sgemm_pack_at)(const float *src, size_t cs, size_t m, size_t kc, float *dst) {
    for (size_t ib = 0; ib < m; ib += 16) {
        const size_t ie = ib + 16 < m ? ib + 16 : m;
        for (size_t k = 0; k < kc; k++) {
            const float *s = src + k * cs;
            for (size_t i = ib; i < ie; i++) dst[i * QNN_SGEMM_KC + k] = s[i];
        }
    }
}
