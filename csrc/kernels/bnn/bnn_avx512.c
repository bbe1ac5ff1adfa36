/* AVX-512 integer kernels (F/BW/VL + VPOPCNTDQ + VNNI).
 *
 * Binary: the "broadcast" layout of spec/performance.md §5: 6 pixel rows x 32 channels, one
 * 64-bit activation word broadcast against 8 channel words per zmm, xor -> vpopcntq -> vpaddq
 * into 24 zmm accumulators, one 64-bit lane per (pixel, channel): no horizontal reductions.
 * int8: 6 rows x 64 channels of vpdpbusd (u8 activations broadcast as 4-byte groups, s8 weights
 * [k/4][64][4]). vpdpbusd goes through an asm wrapper because GCC 12 copies the accumulators of
 * the intrinsic on every call (spec §4, GCC bug 94663), halving throughput. */
#include <immintrin.h>
#include <string.h>

#include "kernels/bnn/bnn.h"
#include "kernels/bnn/bnn_epilogue_body.h"

#define BLOAD(j) _mm512_loadu_si512((const void *)(b + k * QNN_BNN_NR + 8 * (j)))
#define BSTEP(acc, va, bj) acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(va, bj)))
#define BROW(i)                                                                                  \
    do {                                                                                         \
        const __m512i va = _mm512_set1_epi64((long long)a##i[k]);                                \
        BSTEP(c##i##0, va, b0); BSTEP(c##i##1, va, b1);                                          \
        BSTEP(c##i##2, va, b2); BSTEP(c##i##3, va, b3);                                          \
    } while (0)
#define BSTORE(i)                                                                                \
    do {                                                                                         \
        if (i < mr) {                                                                            \
            int32_t *p = pc + i * QNN_BNN_NR;                                                    \
            _mm256_storeu_si256((__m256i *)(p + 0), _mm512_cvtepi64_epi32(c##i##0));            \
            _mm256_storeu_si256((__m256i *)(p + 8), _mm512_cvtepi64_epi32(c##i##1));            \
            _mm256_storeu_si256((__m256i *)(p + 16), _mm512_cvtepi64_epi32(c##i##2));           \
            _mm256_storeu_si256((__m256i *)(p + 24), _mm512_cvtepi64_epi32(c##i##3));           \
        }                                                                                        \
    } while (0)
#define BZERO(i) __m512i c##i##0 = z, c##i##1 = z, c##i##2 = z, c##i##3 = z

void qnn_bgemm_ukernel_avx512(size_t mr, size_t kw, const uint64_t *a, size_t lda,
                              const uint64_t *b, int32_t *pc) {
    /* Rows past mr repeat row 0: the tile always runs at full width, only mr rows are stored. */
    const uint64_t *a0 = a;
    const uint64_t *a1 = mr > 1 ? a + lda : a0, *a2 = mr > 2 ? a + 2 * lda : a0;
    const uint64_t *a3 = mr > 3 ? a + 3 * lda : a0, *a4 = mr > 4 ? a + 4 * lda : a0;
    const uint64_t *a5 = mr > 5 ? a + 5 * lda : a0;
    const __m512i z = _mm512_setzero_si512();
    BZERO(0); BZERO(1); BZERO(2); BZERO(3); BZERO(4); BZERO(5);
    for (size_t k = 0; k < kw; k++) {
        const __m512i b0 = BLOAD(0), b1 = BLOAD(1), b2 = BLOAD(2), b3 = BLOAD(3);
        BROW(0); BROW(1); BROW(2); BROW(3); BROW(4); BROW(5);
    }
    BSTORE(0); BSTORE(1); BSTORE(2); BSTORE(3); BSTORE(4); BSTORE(5);
}

/* Ternary weights on binary activations (spec §6): (a ^ sign) & nonzero is one vpternlogq
 * (truth table 0x28: (A xor B) and C), so the cost per word is the binary kernel's; the 8 weight
 * vectors (sign and nonzero planes) leave room for 5 rows x 4 accumulators. */
#define TSTEP(acc, va, sj, mj)                                                                   \
    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_ternarylogic_epi64(va, sj, mj, 0x28)))
#define TROW(i)                                                                                  \
    do {                                                                                         \
        const __m512i va = _mm512_set1_epi64((long long)a##i[k]);                                \
        TSTEP(c##i##0, va, s0, m0); TSTEP(c##i##1, va, s1, m1);                                  \
        TSTEP(c##i##2, va, s2, m2); TSTEP(c##i##3, va, s3, m3);                                  \
    } while (0)

/* The 5-row ternary-weight tile of qnn_tgemm/qnn_ttgemm: row pointers (rows past mr repeat row
 * 0; only mr rows are stored), zeroed accumulators, and per k step the sign (s*) and nonzero (m*)
 * planes of the 32 weight columns; ROW(i) does row i's step. */
#define T5_KERNEL(ROW)                                                                           \
    const uint64_t *a0 = a;                                                                      \
    const uint64_t *a1 = mr > 1 ? a + lda : a0, *a2 = mr > 2 ? a + 2 * lda : a0;                 \
    const uint64_t *a3 = mr > 3 ? a + 3 * lda : a0, *a4 = mr > 4 ? a + 4 * lda : a0;             \
    const __m512i z = _mm512_setzero_si512();                                                    \
    BZERO(0); BZERO(1); BZERO(2); BZERO(3); BZERO(4);                                            \
    for (size_t k = 0; k < kw; k++) {                                                            \
        const uint64_t *bk = b + k * 2 * QNN_BNN_NR;                                             \
        const __m512i s0 = _mm512_loadu_si512((const void *)bk);                                 \
        const __m512i s1 = _mm512_loadu_si512((const void *)(bk + 8));                           \
        const __m512i s2 = _mm512_loadu_si512((const void *)(bk + 16));                          \
        const __m512i s3 = _mm512_loadu_si512((const void *)(bk + 24));                          \
        const __m512i m0 = _mm512_loadu_si512((const void *)(bk + 32));                          \
        const __m512i m1 = _mm512_loadu_si512((const void *)(bk + 40));                          \
        const __m512i m2 = _mm512_loadu_si512((const void *)(bk + 48));                          \
        const __m512i m3 = _mm512_loadu_si512((const void *)(bk + 56));                          \
        ROW(0); ROW(1); ROW(2); ROW(3); ROW(4);                                                  \
    }                                                                                            \
    BSTORE(0); BSTORE(1); BSTORE(2); BSTORE(3); BSTORE(4)

void qnn_tgemm_ukernel_avx512(size_t mr, size_t kw, const uint64_t *a, size_t lda,
                              const uint64_t *b, int32_t *pc) {
    T5_KERNEL(TROW);
}

/* Ternary x ternary (spec §6): t = nza & nzw, dot = popcount(t) - 2*popcount(t & (sa ^ sw)); the
 * second mask is one vpternlogq (0x28 with t as the AND operand). One accumulator per lane:
 * acc += popcount(t) - (popcount(neg) << 1), so 5 rows x 4 vectors still fit. */
#define TTSTEP(acc, vs, vm, sj, mj)                                                              \
    do {                                                                                         \
        const __m512i t = _mm512_and_si512(vm, mj);                                              \
        const __m512i ng = _mm512_ternarylogic_epi64(vs, sj, t, 0x28);                           \
        acc = _mm512_sub_epi64(_mm512_add_epi64(acc, _mm512_popcnt_epi64(t)),                    \
                               _mm512_slli_epi64(_mm512_popcnt_epi64(ng), 1));                   \
    } while (0)
#define TTROW(i)                                                                                 \
    do {                                                                                         \
        const __m512i vs = _mm512_set1_epi64((long long)a##i[2 * k]);                            \
        const __m512i vm = _mm512_set1_epi64((long long)a##i[2 * k + 1]);                        \
        TTSTEP(c##i##0, vs, vm, s0, m0); TTSTEP(c##i##1, vs, vm, s1, m1);                        \
        TTSTEP(c##i##2, vs, vm, s2, m2); TTSTEP(c##i##3, vs, vm, s3, m3);                        \
    } while (0)

void qnn_ttgemm_ukernel_avx512(size_t mr, size_t kw, const uint64_t *a, size_t lda,
                               const uint64_t *b, int32_t *pc) {
    T5_KERNEL(TTROW);
}

#define VNNI(acc, va, vb) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(va), "v"(vb))
#define IROW(i)                                                                                  \
    do {                                                                                         \
        int32_t g;                                                                               \
        memcpy(&g, a##i + 4 * k, 4);                                                             \
        const __m512i va = _mm512_set1_epi32(g);                                                 \
        VNNI(c##i##0, va, b0); VNNI(c##i##1, va, b1); VNNI(c##i##2, va, b2); VNNI(c##i##3, va, b3); \
    } while (0)
#define ISTORE(i)                                                                                \
    do {                                                                                         \
        if (i < mr) {                                                                            \
            int32_t *p = acc + i * QNN_INT8_NR;                                                  \
            _mm512_storeu_si512((void *)(p + 0), c##i##0);                                       \
            _mm512_storeu_si512((void *)(p + 16), c##i##1);                                      \
            _mm512_storeu_si512((void *)(p + 32), c##i##2);                                      \
            _mm512_storeu_si512((void *)(p + 48), c##i##3);                                      \
        }                                                                                        \
    } while (0)

void qnn_igemm_ukernel_avx512(size_t mr, size_t kq, const uint8_t *a, size_t lda, const int8_t *b,
                              int32_t *acc) {
    const uint8_t *a0 = a;
    const uint8_t *a1 = mr > 1 ? a + lda : a0, *a2 = mr > 2 ? a + 2 * lda : a0;
    const uint8_t *a3 = mr > 3 ? a + 3 * lda : a0, *a4 = mr > 4 ? a + 4 * lda : a0;
    const uint8_t *a5 = mr > 5 ? a + 5 * lda : a0;
    const __m512i z = _mm512_setzero_si512();
    BZERO(0); BZERO(1); BZERO(2); BZERO(3); BZERO(4); BZERO(5);
    for (size_t k = 0; k < kq; k++) {
        const int8_t *bk = b + k * 4 * QNN_INT8_NR;
        const __m512i b0 = _mm512_loadu_si512((const void *)bk);
        const __m512i b1 = _mm512_loadu_si512((const void *)(bk + 64));
        const __m512i b2 = _mm512_loadu_si512((const void *)(bk + 128));
        const __m512i b3 = _mm512_loadu_si512((const void *)(bk + 192));
        IROW(0); IROW(1); IROW(2); IROW(3); IROW(4); IROW(5);
    }
    ISTORE(0); ISTORE(1); ISTORE(2); ISTORE(3); ISTORE(4); ISTORE(5);
}

/* acc = ibias + imul*raw (+corr) for 16 channels, negated where dir < 0 when `directed`. */
static inline __m512i acc16(const qnn_epilogue *e, const int32_t *cr, size_t c, const int32_t *r,
                            int directed) {
    __m512i v = _mm512_mullo_epi32(_mm512_loadu_si512((const void *)r), _mm512_set1_epi32(e->imul));
    v = _mm512_add_epi32(v, _mm512_loadu_si512((const void *)(e->ibias + c)));
    if (cr) v = _mm512_add_epi32(v, _mm512_loadu_si512((const void *)(cr + c)));
    if (directed) {
        const __mmask16 neg = _mm512_cmplt_epi32_mask(
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(e->dir + c))), _mm512_setzero_si512());
        v = _mm512_mask_sub_epi32(v, neg, _mm512_setzero_si512(), v);
    }
    return v;
}

void qnn_bnn_epilogue_avx512(const qnn_epilogue *e, size_t mr, size_t n0, size_t nr,
                             const int32_t *raw, size_t ldr, const int32_t *const *corr, void *out,
                             size_t ldo) {
    /* Full 16-channel groups vectorised; partial groups (the last block of an odd channel
     * count) and CODES with many levels take the portable code. */
    if (nr % 16 || e->mode == QNN_EPI_TBITS || (e->mode == QNN_EPI_CODES && e->nthr > 16)) {
        bnn_epilogue_portable(e, mr, n0, nr, raw, ldr, corr, out, ldo);
        return;
    }
    for (size_t i = 0; i < mr; i++) {
        const int32_t *r = raw + i * ldr;
        const int32_t *cr = corr ? corr[i] : NULL;
        if (e->mode == QNN_EPI_FLOAT) {
            float *y = (float *)out + i * ldo + n0;
            for (size_t j = 0; j < nr; j += 16) {
                const size_t c = n0 + j;
                const __m512 f = _mm512_cvtepi32_ps(acc16(e, cr, c, r + j, 0));
                const __m512 p = _mm512_mul_ps(f, _mm512_loadu_ps(e->mul + c));
                _mm512_storeu_ps(y + j, _mm512_add_ps(p, _mm512_loadu_ps(e->add + c)));
            }
        } else if (e->mode == QNN_EPI_BITS) {
            uint16_t *y = (uint16_t *)((uint32_t *)out + i * ldo + n0 / 32);
            for (size_t j = 0; j < nr; j += 16) {
                const size_t c = n0 + j;
                const __m512i v = acc16(e, cr, c, r + j, 1);
                y[j / 16] = (uint16_t)_mm512_cmplt_epi32_mask(v, _mm512_loadu_si512((const void *)(e->thr + c)));
            }
        } else {
            uint8_t *y = (uint8_t *)out + i * ldo + n0;
            for (size_t j = 0; j < nr; j += 16) {
                const size_t c = n0 + j;
                const __m512i v = acc16(e, cr, c, r + j, 1);
                __m512i lev = _mm512_setzero_si512();
                const __m512i one = _mm512_set1_epi32(1);
                for (size_t t = 0; t < e->nthr; t++) {
                    const __mmask16 ge = _mm512_cmpge_epi32_mask(
                        v, _mm512_loadu_si512((const void *)(e->thr + t * e->ldt + c)));
                    lev = _mm512_mask_add_epi32(lev, ge, lev, one);
                }
                lev = _mm512_mullo_epi32(lev, _mm512_set1_epi32(e->code_mul));
                _mm_storeu_si128((__m128i *)(y + j), _mm512_cvtepi32_epi8(lev));
            }
        }
    }
}

void qnn_bitpack_avx512(size_t rows, size_t C, const float *x, uint64_t *out) {
    const size_t words = qnn_bnn_words(C);
    const __m512 zero = _mm512_setzero_ps();
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        for (size_t w = 0; w < words; w++) {
            uint64_t v = 0;
            for (size_t q = 0; q < 4; q++) {
                const size_t c = w * 64 + q * 16;
                if (c >= C) break;
                const size_t n = C - c < 16 ? C - c : 16;
                const __mmask16 m = (__mmask16)((1u << n) - 1u);
                const __m512 xv = _mm512_maskz_loadu_ps(m, xr + c);
                v |= (uint64_t)_mm512_mask_cmp_ps_mask(m, xv, zero, _CMP_LT_OQ) << (16 * q);
            }
            out[r * words + w] = v;
        }
    }
}

#define QNN_FN(name) name##_avx512
#define QNN_FCONV_FMA 1
#define QNN_FCONV_ZMM 1
#include "kernels/bnn/bnn_fconv_body.h"
