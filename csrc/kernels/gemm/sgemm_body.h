/* The sgemm register-tile microkernel, compiled once per ISA.
 *
 * Included by sgemm_ref.c (vectorisation off: the scalar reference), sgemm_avx2.c and
 * sgemm_avx512.c, which define QNN_FN(name), QNN_MR and QNN_NR. Written as plain C over a fixed
 * MR x NR accumulator array so GCC fully unrolls the row loop and vectorises the column loop,
 * keeping the tile in registers (NR is a multiple of the vector width: one or two vectors per
 * row). FMA contraction is off at build time, so each step is a multiply and an add; Zen 5 has
 * separate multiply and add pipes, so that costs little throughput. */

#include <stddef.h>

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
