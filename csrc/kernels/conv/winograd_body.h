/* Winograd F(2x2, 3x3) transforms over a run of channels (winograd.h), one build per ISA:
 * winograd_ref.c (vectorisation off: the scalar reference), winograd_avx2.c, winograd_avx512.c,
 * each defining QNN_FN(name). The loops over channels carry no dependence, so the compiler
 * vectorises them at the build's vector width; FMA contraction is off in every build and the
 * only constant factor is 0.5, so all builds compute the same floats.
 *
 *   B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1 1  1  0]
 *         [0  1  1  0]        [1/2  1/2  1/2]          [0 1 -1 -1]
 *         [0 -1  1  0]        [1/2 -1/2  1/2]
 *         [0  1  0 -1]        [ 0    0    1 ] */
#include <stddef.h>

#include "kernels/conv/winograd.h"

static void QNN_FN(wino_input)(const float *const *d, float *v, size_t vs, size_t C) {
    const float *restrict d0 = d[0], *restrict d1 = d[1], *restrict d2 = d[2],
                *restrict d3 = d[3], *restrict d4 = d[4], *restrict d5 = d[5],
                *restrict d6 = d[6], *restrict d7 = d[7], *restrict d8 = d[8],
                *restrict d9 = d[9], *restrict d10 = d[10], *restrict d11 = d[11],
                *restrict d12 = d[12], *restrict d13 = d[13], *restrict d14 = d[14],
                *restrict d15 = d[15];
    float *restrict v0 = v, *restrict v1 = v + vs, *restrict v2 = v + 2 * vs,
                    *restrict v3 = v + 3 * vs, *restrict v4 = v + 4 * vs,
                    *restrict v5 = v + 5 * vs, *restrict v6 = v + 6 * vs,
                    *restrict v7 = v + 7 * vs, *restrict v8 = v + 8 * vs,
                    *restrict v9 = v + 9 * vs, *restrict v10 = v + 10 * vs,
                    *restrict v11 = v + 11 * vs, *restrict v12 = v + 12 * vs,
                    *restrict v13 = v + 13 * vs, *restrict v14 = v + 14 * vs,
                    *restrict v15 = v + 15 * vs;
#pragma omp simd
    for (size_t c = 0; c < C; c++) {
        /* rows: t = B^T d (column j of d is d[j], d[4 + j], d[8 + j], d[12 + j]) */
        const float t00 = d0[c] - d8[c], t01 = d1[c] - d9[c], t02 = d2[c] - d10[c],
                    t03 = d3[c] - d11[c];
        const float t10 = d4[c] + d8[c], t11 = d5[c] + d9[c], t12 = d6[c] + d10[c],
                    t13 = d7[c] + d11[c];
        const float t20 = d8[c] - d4[c], t21 = d9[c] - d5[c], t22 = d10[c] - d6[c],
                    t23 = d11[c] - d7[c];
        const float t30 = d4[c] - d12[c], t31 = d5[c] - d13[c], t32 = d6[c] - d14[c],
                    t33 = d7[c] - d15[c];
        /* columns: v = t B */
        v0[c] = t00 - t02; v1[c] = t01 + t02; v2[c] = t02 - t01; v3[c] = t01 - t03;
        v4[c] = t10 - t12; v5[c] = t11 + t12; v6[c] = t12 - t11; v7[c] = t11 - t13;
        v8[c] = t20 - t22; v9[c] = t21 + t22; v10[c] = t22 - t21; v11[c] = t21 - t23;
        v12[c] = t30 - t32; v13[c] = t31 + t32; v14[c] = t32 - t31; v15[c] = t31 - t33;
    }
}

static void QNN_FN(wino_output)(const float *m, size_t ms, float *const *y, size_t CO) {
    const float *restrict m0 = m, *restrict m1 = m + ms, *restrict m2 = m + 2 * ms,
                *restrict m3 = m + 3 * ms, *restrict m4 = m + 4 * ms,
                *restrict m5 = m + 5 * ms, *restrict m6 = m + 6 * ms,
                *restrict m7 = m + 7 * ms, *restrict m8 = m + 8 * ms,
                *restrict m9 = m + 9 * ms, *restrict m10 = m + 10 * ms,
                *restrict m11 = m + 11 * ms, *restrict m12 = m + 12 * ms,
                *restrict m13 = m + 13 * ms, *restrict m14 = m + 14 * ms,
                *restrict m15 = m + 15 * ms;
    float *restrict y0 = y[0], *restrict y1 = y[1], *restrict y2 = y[2], *restrict y3 = y[3];
#pragma omp simd
    for (size_t c = 0; c < CO; c++) {
        /* rows: s = A^T m */
        const float s00 = m0[c] + m4[c] + m8[c], s01 = m1[c] + m5[c] + m9[c],
                    s02 = m2[c] + m6[c] + m10[c], s03 = m3[c] + m7[c] + m11[c];
        const float s10 = m4[c] - m8[c] - m12[c], s11 = m5[c] - m9[c] - m13[c],
                    s12 = m6[c] - m10[c] - m14[c], s13 = m7[c] - m11[c] - m15[c];
        /* columns: y = s A */
        y0[c] = s00 + s01 + s02;
        y1[c] = s01 - s02 - s03;
        y2[c] = s10 + s11 + s12;
        y3[c] = s11 - s12 - s13;
    }
}

static void QNN_FN(wino_kernel)(const float *w, size_t C, size_t CO, size_t c0, size_t c1,
                                size_t nr, float *u, size_t ustride) {
    const size_t tap = C * CO, nsl = (CO + nr - 1) / nr;
    for (size_t c = c0; c < c1; c++)
        for (size_t sl = 0; sl < nsl; sl++) {
            const size_t o0 = sl * nr, no = CO - o0 < nr ? CO - o0 : nr;
            const float *g = w + c * CO + o0;
            float *restrict dst = u + sl * C * nr + c * nr;
#pragma omp simd
            for (size_t o = 0; o < no; o++) {
                const float g00 = g[o], g01 = g[tap + o], g02 = g[2 * tap + o];
                const float g10 = g[3 * tap + o], g11 = g[4 * tap + o], g12 = g[5 * tap + o];
                const float g20 = g[6 * tap + o], g21 = g[7 * tap + o], g22 = g[8 * tap + o];
                /* rows: t = G g */
                const float t00 = g00, t01 = g01, t02 = g02;
                const float t10 = 0.5f * ((g00 + g10) + g20), t11 = 0.5f * ((g01 + g11) + g21),
                            t12 = 0.5f * ((g02 + g12) + g22);
                const float t20 = 0.5f * ((g00 - g10) + g20), t21 = 0.5f * ((g01 - g11) + g21),
                            t22 = 0.5f * ((g02 - g12) + g22);
                const float t30 = g20, t31 = g21, t32 = g22;
                /* columns: u = t G^T */
#define QNN_WK_ROW(r)                                                                   \
    dst[(r * 4 + 0) * ustride + o] = t##r##0;                                           \
    dst[(r * 4 + 1) * ustride + o] = 0.5f * ((t##r##0 + t##r##1) + t##r##2);            \
    dst[(r * 4 + 2) * ustride + o] = 0.5f * ((t##r##0 - t##r##1) + t##r##2);            \
    dst[(r * 4 + 3) * ustride + o] = t##r##2;
                QNN_WK_ROW(0) QNN_WK_ROW(1) QNN_WK_ROW(2) QNN_WK_ROW(3)
#undef QNN_WK_ROW
            }
            for (size_t o = no; o < nr; o++)
                for (size_t xi = 0; xi < 16; xi++) dst[xi * ustride + o] = 0.0f;
        }
}

const qnn_wino_kernels QNN_FN(qnn_wino_kernels) = {QNN_FN(wino_input), QNN_FN(wino_output),
                                                   QNN_FN(wino_kernel)};
