/* AVX2 integer kernels. Binary: popcount by a vpshufb nibble table into byte counters, folded
 * into 64-bit lanes with vpsadbw before a byte can overflow (31 words x 8 bits < 256). int8:
 * exact products by sign-extending to 16 bits and vpmaddwd; vpmaddubsw would be 2x faster but
 * saturates at 2*255*128 (spec §4), and the integer model must be exact. */
#include <immintrin.h>
#include <string.h>

#include "kernels/bnn/bnn.h"
#include "kernels/bnn/bnn_epilogue_body.h"

#define MR 4

static inline void bgemm_avx2(size_t mr, size_t kw, const uint64_t *a, size_t lda, const uint64_t *b,
                              int32_t *pc, int ternary) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f), z = _mm256_setzero_si256();
    const uint64_t *ar[MR];
    for (size_t i = 0; i < MR; i++) ar[i] = a + (i < mr ? i : 0) * lda;
    for (size_t g = 0; g < QNN_BNN_NR; g += 4) {
        __m256i s64[MR], s8[MR];
        for (size_t i = 0; i < MR; i++) s64[i] = s8[i] = z;
        size_t since = 0;
        for (size_t k = 0; k < kw; k++) {
            const uint64_t *bk = b + k * (ternary ? 2 : 1) * QNN_BNN_NR;
            const __m256i bv = _mm256_loadu_si256((const __m256i *)(bk + g));
            const __m256i mv = ternary ? _mm256_loadu_si256((const __m256i *)(bk + QNN_BNN_NR + g))
                                       : _mm256_set1_epi64x(-1);
            for (size_t i = 0; i < MR; i++) {
                const __m256i x = _mm256_and_si256(
                    _mm256_xor_si256(_mm256_set1_epi64x((long long)ar[i][k]), bv), mv);
                const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(x, low));
                const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
                s8[i] = _mm256_add_epi8(s8[i], _mm256_add_epi8(lo, hi));
            }
            if (++since == 31) {
                for (size_t i = 0; i < MR; i++) {
                    s64[i] = _mm256_add_epi64(s64[i], _mm256_sad_epu8(s8[i], z));
                    s8[i] = z;
                }
                since = 0;
            }
        }
        for (size_t i = 0; i < mr && i < MR; i++) {
            const __m256i t = _mm256_add_epi64(s64[i], _mm256_sad_epu8(s8[i], z));
            long long v[4];
            _mm256_storeu_si256((__m256i *)v, t);
            for (size_t j = 0; j < 4; j++) pc[i * QNN_BNN_NR + g + j] = (int32_t)v[j];
        }
    }
}

void qnn_bgemm_ukernel_avx2(size_t mr, size_t kw, const uint64_t *a, size_t lda, const uint64_t *b,
                            int32_t *pc) {
    bgemm_avx2(mr, kw, a, lda, b, pc, 0);
}

/* Ternary weights: the same with the nonzero plane ANDed in. */
void qnn_tgemm_ukernel_avx2(size_t mr, size_t kw, const uint64_t *a, size_t lda, const uint64_t *b,
                            int32_t *pc) {
    bgemm_avx2(mr, kw, a, lda, b, pc, 1);
}

/* Ternary x ternary: two popcounts per word (the nonzero overlap and its negative part), byte
 * counters folded every 31 words as in the binary kernel. */
void qnn_ttgemm_ukernel_avx2(size_t mr, size_t kw, const uint64_t *a, size_t lda, const uint64_t *b,
                             int32_t *pc) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f), z = _mm256_setzero_si256();
    const uint64_t *ar[MR];
    for (size_t i = 0; i < MR; i++) ar[i] = a + (i < mr ? i : 0) * lda;
#define CNT8(x) _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x, low)), \
                                _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low)))
    for (size_t g = 0; g < QNN_BNN_NR; g += 4) {
        __m256i nz64[MR], ng64[MR], nz8[MR], ng8[MR];
        for (size_t i = 0; i < MR; i++) nz64[i] = ng64[i] = nz8[i] = ng8[i] = z;
        size_t since = 0;
        for (size_t k = 0; k < kw; k++) {
            const uint64_t *bk = b + k * 2 * QNN_BNN_NR;
            const __m256i sw = _mm256_loadu_si256((const __m256i *)(bk + g));
            const __m256i mw = _mm256_loadu_si256((const __m256i *)(bk + QNN_BNN_NR + g));
            for (size_t i = 0; i < MR; i++) {
                const __m256i t = _mm256_and_si256(_mm256_set1_epi64x((long long)ar[i][2 * k + 1]), mw);
                const __m256i ng = _mm256_and_si256(
                    t, _mm256_xor_si256(_mm256_set1_epi64x((long long)ar[i][2 * k]), sw));
                nz8[i] = _mm256_add_epi8(nz8[i], CNT8(t));
                ng8[i] = _mm256_add_epi8(ng8[i], CNT8(ng));
            }
            if (++since == 31) {
                for (size_t i = 0; i < MR; i++) {
                    nz64[i] = _mm256_add_epi64(nz64[i], _mm256_sad_epu8(nz8[i], z));
                    ng64[i] = _mm256_add_epi64(ng64[i], _mm256_sad_epu8(ng8[i], z));
                    nz8[i] = ng8[i] = z;
                }
                since = 0;
            }
        }
        for (size_t i = 0; i < mr && i < MR; i++) {
            long long v[4], u[4];
            _mm256_storeu_si256((__m256i *)v, _mm256_add_epi64(nz64[i], _mm256_sad_epu8(nz8[i], z)));
            _mm256_storeu_si256((__m256i *)u, _mm256_add_epi64(ng64[i], _mm256_sad_epu8(ng8[i], z)));
            for (size_t j = 0; j < 4; j++) pc[i * QNN_BNN_NR + g + j] = (int32_t)(v[j] - 2 * u[j]);
        }
    }
#undef CNT8
}

void qnn_igemm_ukernel_avx2(size_t mr, size_t kq, const uint8_t *a, size_t lda, const int8_t *b,
                            int32_t *acc) {
    const uint8_t *ar[MR];
    for (size_t i = 0; i < MR; i++) ar[i] = a + (i < mr ? i : 0) * lda;
    /* 8 channels (two 4-channel halves) per pass; each s32 lane holds a pair-sum of one
     * channel, the two pairs of a channel are added at the end. */
    for (size_t g = 0; g < QNN_INT8_NR; g += 8) {
        __m256i c[MR][2];
        for (size_t i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm256_setzero_si256();
        for (size_t k = 0; k < kq; k++) {
            const int8_t *bk = b + k * 4 * QNN_INT8_NR + g * 4;
            const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)bk));
            const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(bk + 16)));
            for (size_t i = 0; i < MR; i++) {
                int32_t q;
                memcpy(&q, ar[i] + 4 * k, 4);
                const __m256i av = _mm256_cvtepu8_epi16(_mm_set1_epi32(q));
                c[i][0] = _mm256_add_epi32(c[i][0], _mm256_madd_epi16(av, w0));
                c[i][1] = _mm256_add_epi32(c[i][1], _mm256_madd_epi16(av, w1));
            }
        }
        for (size_t i = 0; i < mr && i < MR; i++) {
            int32_t v[16];
            _mm256_storeu_si256((__m256i *)v, c[i][0]);
            _mm256_storeu_si256((__m256i *)(v + 8), c[i][1]);
            for (size_t j = 0; j < 8; j++) acc[i * QNN_INT8_NR + g + j] = v[2 * j] + v[2 * j + 1];
        }
    }
}

void qnn_bnn_epilogue_avx2(const qnn_epilogue *e, size_t mr, size_t n0, size_t nr,
                           const int32_t *raw, size_t ldr, const int32_t *const *corr, void *out,
                           size_t ldo) {
    bnn_epilogue_portable(e, mr, n0, nr, raw, ldr, corr, out, ldo);
}

void qnn_bitpack_avx2(size_t rows, size_t C, const float *x, uint64_t *out) {
    const size_t words = qnn_bnn_words(C);
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        for (size_t w = 0; w < words; w++) {
            uint64_t v = 0;
            size_t c = w * 64;
            const size_t end = C < c + 64 ? C : c + 64;
            /* movemask of (x < 0) gives 8 sign bits per compare. */
            for (; c + 8 <= end; c += 8) {
                const __m256 lt = _mm256_cmp_ps(_mm256_loadu_ps(xr + c), _mm256_setzero_ps(), _CMP_LT_OQ);
                v |= (uint64_t)(unsigned)_mm256_movemask_ps(lt) << (c - w * 64);
            }
            for (; c < end; c++) v |= (uint64_t)(xr[c] < 0.0f) << (c - w * 64);
            out[r * words + w] = v;
        }
    }
}

#define QNN_FN(name) name##_avx2
#define QNN_FCONV_FMA 1
#include "kernels/bnn/bnn_fconv_body.h"
