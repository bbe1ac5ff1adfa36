/* The portable output transform, included by each ISA file so it is compiled (and, outside
 * _ref.c, auto-vectorised) with that file's flags; the AVX-512 file replaces the hot modes. */
#ifndef QNN_KERNELS_BNN_EPILOGUE_BODY_H
#define QNN_KERNELS_BNN_EPILOGUE_BODY_H

#include "kernels/bnn/bnn.h"

static inline int32_t bnn_acc(const qnn_epilogue *e, const int32_t *corr, size_t c, int32_t raw) {
    int32_t a = e->ibias[c] + e->imul * raw;
    return corr ? a + corr[c] : a;
}

/* Number of thresholds <= v (they ascend): a binary search, so 8-bit outputs cost 8 steps. */
static inline unsigned bnn_level(const int32_t *t, size_t n, size_t stride, int32_t v) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t[mid * stride] <= v) lo = mid + 1; else hi = mid;
    }
    return (unsigned)lo;
}

static inline void bnn_epilogue_portable(const qnn_epilogue *e, size_t mr, size_t n0, size_t nr,
                                         const int32_t *raw, size_t ldr,
                                         const int32_t *const *corr, void *out, size_t ldo) {
    for (size_t i = 0; i < mr; i++) {
        const int32_t *r = raw + i * ldr;
        const int32_t *cr = corr ? corr[i] : NULL;
        if (e->mode == QNN_EPI_FLOAT) {
            float *y = (float *)out + i * ldo + n0;
            for (size_t j = 0; j < nr; j++) {
                size_t c = n0 + j;
                y[j] = (float)bnn_acc(e, cr, c, r[j]) * e->mul[c] + e->add[c];
            }
        } else if (e->mode == QNN_EPI_CODES) {
            uint8_t *y = (uint8_t *)out + i * ldo + n0;
            for (size_t j = 0; j < nr; j++) {
                size_t c = n0 + j;
                int32_t v = bnn_acc(e, cr, c, r[j]);
                v = e->dir[c] < 0 ? -v : v;
                y[j] = (uint8_t)(bnn_level(e->thr + c, e->nthr, e->ldt, v) * (unsigned)e->code_mul);
            }
        } else if (e->mode == QNN_EPI_TBITS) {
            /* 32-channel halves of 64-channel words; word w holds [sign, nonzero] u64 pairs */
            uint32_t *y = (uint32_t *)out + i * ldo;
            for (size_t w = 0; w * 32 < nr; w++) {
                uint32_t sg = 0, nz = 0;
                for (size_t j = w * 32; j < nr && j < w * 32 + 32; j++) {
                    const size_t c = n0 + j;
                    int32_t v = bnn_acc(e, cr, c, r[j]);
                    v = e->dir[c] < 0 ? -v : v;
                    const unsigned lev = (unsigned)(v >= e->thr[c]) + (unsigned)(v >= e->thr[e->ldt + c]);
                    sg |= (uint32_t)(lev == 0) << (j % 32);
                    nz |= (uint32_t)(lev != 1) << (j % 32);
                }
                const size_t blk = (n0 + w * 32) / 32, word = blk / 2, half = blk % 2;
                y[4 * word + half] = sg;
                y[4 * word + 2 + half] = nz;
            }
        } else {
            uint32_t *y = (uint32_t *)out + i * ldo + n0 / 32;
            for (size_t w = 0; w * 32 < nr; w++) {
                uint32_t word = 0;
                for (size_t j = w * 32; j < nr && j < w * 32 + 32; j++) {
                    size_t c = n0 + j;
                    int32_t v = bnn_acc(e, cr, c, r[j]);
                    v = e->dir[c] < 0 ? -v : v;
                    word |= (uint32_t)(v < e->thr[c]) << (j % 32);
                }
                y[w] = word;
            }
        }
    }
}

#endif
