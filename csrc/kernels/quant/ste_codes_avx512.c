/* AVX-512 STE-code kernels: a compare gives 16 code bits at once as a mask register, and the
 * decode blends the per-code products under the stored mask. Same bits as ste_codes_ref.c. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/quant/quant.h"

/* Codes 1 and 2 of 16 values (lanes outside `live` read as 0 and are cleared). */
static inline void codes16(const qnn_ste_code *s, __m512 v, __mmask16 live, __mmask16 *c1,
                           __mmask16 *c2) {
    const __mmask16 in =
        s->bounded ? _mm512_cmp_ps_mask(v, _mm512_set1_ps(s->ub), _CMP_LE_OQ) : (__mmask16)0xFFFF;
    const __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
    *c1 = (__mmask16)(in & pos & live);
    *c2 = (__mmask16)(in & ~pos & live);
}

void qnn_ste_encode_avx512(const qnn_ste_code *s, size_t n, const float *x, uint8_t *p0,
                           uint8_t *p1) {
    if (s->planes == 0) return;
    size_t i = 0;
    __mmask16 c1, c2;
    for (; i + 16 <= n; i += 16) {
        codes16(s, _mm512_loadu_ps(x + i), 0xFFFF, &c1, &c2);
        const uint16_t b1 = (uint16_t)c1, b2 = (uint16_t)c2;
        memcpy(p0 + i / 8, &b1, 2);
        if (s->planes == 2) memcpy(p1 + i / 8, &b2, 2);
    }
    if (i < n) {
        const __mmask16 live = (__mmask16)((1u << (n - i)) - 1u);
        codes16(s, _mm512_maskz_loadu_ps(live, x + i), live, &c1, &c2);
        const uint16_t b1 = (uint16_t)c1, b2 = (uint16_t)c2;
        const size_t nb = (n - i + 7) / 8;
        memcpy(p0 + i / 8, &b1, nb); /* little-endian: byte 0 holds elements 0-7 */
        if (s->planes == 2) memcpy(p1 + i / 8, &b2, nb);
    }
}

static inline __m512 decode16(const qnn_ste_code *s, __m512 t, uint16_t b1, uint16_t b2) {
    if (!s->planes) return t;
    __m512 r = _mm512_mask_blend_ps((__mmask16)b1, _mm512_mul_ps(t, _mm512_set1_ps(s->g[0])),
                                    _mm512_mul_ps(t, _mm512_set1_ps(s->g[1])));
    if (s->planes == 2)
        r = _mm512_mask_blend_ps((__mmask16)b2, r, _mm512_mul_ps(t, _mm512_set1_ps(s->g[2])));
    return r;
}

void qnn_ste_decode_avx512(const qnn_ste_code *s, size_t n, const uint8_t *p0, const uint8_t *p1,
                           const float *dy, float *dx) {
    const __m512 a = _mm512_set1_ps(s->a);
    size_t i = 0;
    uint16_t b1 = 0, b2 = 0;
    for (; i + 16 <= n; i += 16) { /* whole vectors: fixed 2-byte code loads */
        if (s->planes) memcpy(&b1, p0 + i / 8, 2);
        if (s->planes == 2) memcpy(&b2, p1 + i / 8, 2);
        const __m512 r = decode16(s, _mm512_mul_ps(_mm512_loadu_ps(dy + i), a), b1, b2);
        if (s->stream && ((uintptr_t)(dx + i) & 63) == 0) _mm512_stream_ps(dx + i, r);
        else _mm512_storeu_ps(dx + i, r);
    }
    if (i < n) { /* the tail: its code bytes only */
        const __mmask16 live = (__mmask16)((1u << (n - i)) - 1u);
        b1 = p0 && s->planes ? p0[i / 8] : 0;
        if (s->planes && n - i > 8) b1 |= (uint16_t)(p0[i / 8 + 1] << 8);
        if (s->planes == 2) {
            b2 = p1[i / 8];
            if (n - i > 8) b2 |= (uint16_t)(p1[i / 8 + 1] << 8);
        }
        const __m512 r = decode16(s, _mm512_mul_ps(_mm512_maskz_loadu_ps(live, dy + i), a), b1, b2);
        _mm512_mask_storeu_ps(dx + i, live, r);
    }
}
