/* Scalar reference of the STE-code kernels (the SIMD levels must give the same bytes and bits). */
#include "kernels/quant/quant.h"

static int ste_code_of(const qnn_ste_code *s, float x) {
    if (s->bounded && !(x <= s->ub)) return 0;
    return x > 0.0f ? 1 : 2;
}

void qnn_ste_encode_ref(const qnn_ste_code *s, size_t n, const float *x, uint8_t *p0,
                        uint8_t *p1) {
    if (s->planes == 0) return;
    for (size_t b = 0; b < (n + 7) / 8; b++) {
        unsigned v0 = 0, v1 = 0;
        for (size_t k = 0; k < 8 && b * 8 + k < n; k++) {
            const int c = ste_code_of(s, x[b * 8 + k]);
            v0 |= (unsigned)(c == 1) << k;
            v1 |= (unsigned)(c == 2) << k;
        }
        p0[b] = (uint8_t)v0;
        if (s->planes == 2) p1[b] = (uint8_t)v1;
    }
}

void qnn_ste_decode_ref(const qnn_ste_code *s, size_t n, const uint8_t *p0, const uint8_t *p1,
                        const float *dy, float *dx) {
    for (size_t i = 0; i < n; i++) {
        const float t = dy[i] * s->a;
        if (s->planes == 0) {
            dx[i] = t;
            continue;
        }
        const int c1 = (p0[i / 8] >> (i % 8)) & 1;
        const int c2 = s->planes == 2 && ((p1[i / 8] >> (i % 8)) & 1);
        dx[i] = t * (c1 ? s->g[1] : c2 ? s->g[2] : s->g[0]);
    }
}
