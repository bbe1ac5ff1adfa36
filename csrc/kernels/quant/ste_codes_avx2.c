/* AVX2 STE-code kernels: 8 codes per compare + movemask (one byte), and the decode expands a
 * code byte back into a lane mask for blendv. Same bits as ste_codes_ref.c. */
#include <immintrin.h>
#include <stdint.h>

#include "kernels/quant/quant.h"

static inline void codes8(const qnn_ste_code *s, __m256 v, unsigned *c1, unsigned *c2) {
    const unsigned in = s->bounded
        ? (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_set1_ps(s->ub), _CMP_LE_OQ))
        : 0xFFu;
    const unsigned pos =
        (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
    *c1 = in & pos;
    *c2 = in & ~pos & 0xFFu;
}

static inline __m256i live_lanes(size_t k) { /* lanes [0, k) all ones */
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

void qnn_ste_encode_avx2(const qnn_ste_code *s, size_t n, const float *x, uint8_t *p0,
                         uint8_t *p1) {
    if (s->planes == 0) return;
    unsigned c1, c2;
    for (size_t i = 0; i < n; i += 8) {
        const size_t k = n - i < 8 ? n - i : 8;
        const __m256 v = k == 8 ? _mm256_loadu_ps(x + i) : _mm256_maskload_ps(x + i, live_lanes(k));
        codes8(s, v, &c1, &c2);
        const unsigned live = (1u << k) - 1u;
        p0[i / 8] = (uint8_t)(c1 & live);
        if (s->planes == 2) p1[i / 8] = (uint8_t)(c2 & live);
    }
}

void qnn_ste_decode_avx2(const qnn_ste_code *s, size_t n, const uint8_t *p0, const uint8_t *p1,
                         const float *dy, float *dx) {
    const __m256 a = _mm256_set1_ps(s->a), g0 = _mm256_set1_ps(s->g[0]),
                 g1 = _mm256_set1_ps(s->g[1]), g2 = _mm256_set1_ps(s->g[2]);
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    for (size_t i = 0; i < n; i += 8) {
        const size_t k = n - i < 8 ? n - i : 8;
        const __m256i live = live_lanes(k);
        const __m256 t = _mm256_mul_ps(k == 8 ? _mm256_loadu_ps(dy + i) : _mm256_maskload_ps(dy + i, live), a);
        __m256 r = t;
        if (s->planes) {
            const __m256i m1 = _mm256_cmpeq_epi32(
                _mm256_and_si256(_mm256_set1_epi32(p0[i / 8]), bit), bit);
            r = _mm256_blendv_ps(_mm256_mul_ps(t, g0), _mm256_mul_ps(t, g1), _mm256_castsi256_ps(m1));
            if (s->planes == 2) {
                const __m256i m2 = _mm256_cmpeq_epi32(
                    _mm256_and_si256(_mm256_set1_epi32(p1[i / 8]), bit), bit);
                r = _mm256_blendv_ps(r, _mm256_mul_ps(t, g2), _mm256_castsi256_ps(m2));
            }
        }
        if (k == 8 && s->stream && ((uintptr_t)(dx + i) & 31) == 0) _mm256_stream_ps(dx + i, r);
        else if (k == 8) _mm256_storeu_ps(dx + i, r);
        else _mm256_maskstore_ps(dx + i, live, r);
    }
}
