/* Scalar references of the integer kernels: the definitions the SIMD files are tested against. */
#include "kernels/bnn/bnn.h"
#include "kernels/bnn/bnn_epilogue_body.h"

static inline int popcount64(uint64_t v) {
    /* SWAR popcount: portable, and -fno-tree-vectorize keeps it scalar. */
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((v * 0x0101010101010101ULL) >> 56);
}

void qnn_bgemm_ukernel_ref(size_t mr, size_t kw, const uint64_t *a, size_t lda, const uint64_t *b,
                           int32_t *pc) {
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < QNN_BNN_NR; j++) {
            int32_t s = 0;
            for (size_t k = 0; k < kw; k++) s += popcount64(a[i * lda + k] ^ b[k * QNN_BNN_NR + j]);
            pc[i * QNN_BNN_NR + j] = s;
        }
}

void qnn_tgemm_ukernel_ref(size_t mr, size_t kw, const uint64_t *a, size_t lda, const uint64_t *b,
                           int32_t *pc) {
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < QNN_BNN_NR; j++) {
            int32_t s = 0;
            for (size_t k = 0; k < kw; k++) {
                const uint64_t *bk = b + k * 2 * QNN_BNN_NR;
                s += popcount64((a[i * lda + k] ^ bk[j]) & bk[QNN_BNN_NR + j]);
            }
            pc[i * QNN_BNN_NR + j] = s;
        }
}

void qnn_ttgemm_ukernel_ref(size_t mr, size_t kw, const uint64_t *a, size_t lda, const uint64_t *b,
                            int32_t *pc) {
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < QNN_BNN_NR; j++) {
            int32_t s = 0;
            for (size_t k = 0; k < kw; k++) {
                const uint64_t *bk = b + k * 2 * QNN_BNN_NR, *ak = a + i * lda + 2 * k;
                const uint64_t t = ak[1] & bk[QNN_BNN_NR + j];
                s += popcount64(t) - 2 * popcount64(t & (ak[0] ^ bk[j]));
            }
            pc[i * QNN_BNN_NR + j] = s;
        }
}

void qnn_igemm_ukernel_ref(size_t mr, size_t kq, const uint8_t *a, size_t lda, const int8_t *b,
                           int32_t *acc) {
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < QNN_INT8_NR; j++) {
            int32_t s = 0;
            for (size_t k = 0; k < 4 * kq; k++)
                s += (int32_t)a[i * lda + k] * (int32_t)b[(k / 4) * 4 * QNN_INT8_NR + j * 4 + k % 4];
            acc[i * QNN_INT8_NR + j] = s;
        }
}

void qnn_bnn_epilogue_ref(const qnn_epilogue *e, size_t mr, size_t n0, size_t nr,
                          const int32_t *raw, size_t ldr, const int32_t *const *corr, void *out,
                          size_t ldo) {
    bnn_epilogue_portable(e, mr, n0, nr, raw, ldr, corr, out, ldo);
}

void qnn_bitpack_ref(size_t rows, size_t C, const float *x, uint64_t *out) {
    const size_t words = qnn_bnn_words(C);
    for (size_t r = 0; r < rows; r++)
        for (size_t w = 0; w < words; w++) {
            uint64_t v = 0;
            for (size_t b = 0; b < 64 && w * 64 + b < C; b++)
                v |= (uint64_t)(x[r * C + w * 64 + b] < 0.0f) << b;
            out[r * words + w] = v;
        }
}

#define QNN_FN(name) name##_ref
#include "kernels/bnn/bnn_fconv_body.h"
