/* 2-D and global pooling over NHWC tensors, forward and backward.
 *
 * The channel axis is innermost, so each window cell contributes one contiguous run of c floats
 * and every inner loop below is a vectorisable loop over channels. Max pooling keeps the first
 * maximum in row-major window order (strict '>'), in the forward pass and in the backward pass,
 * which recomputes the arg-max from x instead of storing indices; a NaN in a window wins (see
 * max_takes). Average pooling divides by the
 * number of valid (unpadded) cells, as TF/Keras do for padding='same'. */
#include <stdlib.h>
#include <string.h>

#include "kernels/nn/nn.h"
#include "kernels/nn/nn_internal.h"

/* Whether v replaces the running maximum b: it is larger, or it is the window's first NaN. A
 * NaN input thus gives a NaN output (as NumPy's max) wherever it sits in the window, and the
 * backward pass routes the gradient to that NaN cell, instead of the result depending on
 * whether the NaN came first in the scan. */
static inline int max_takes(float v, float b) { return v > b || (v != v && b == b); }

/* Valid input range [*lo, *hi) of the window starting at o * stride - pad (clipped to [0, size)). */
static inline void window(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t size,
                          int64_t *lo, int64_t *hi) {
    const int64_t start = o * stride - pad;
    *lo = start < 0 ? 0 : start;
    *hi = start + k > size ? size : start + k;
}

/* ------------------------------------------------------------------ 2-D forward */

static void max_row(const qnn_pool2d_shape *s, const float *restrict xn, float *restrict yrow,
                    int64_t oh) {
    const int64_t c = s->c;
    int64_t h0, h1;
    window(oh, s->sh, s->pt, s->ph, s->h, &h0, &h1);
    for (int64_t ow = 0; ow < s->wo; ow++) {
        int64_t w0, w1;
        window(ow, s->sw, s->pl, s->pw, s->w, &w0, &w1);
        float *restrict yo = yrow + ow * c;
        memcpy(yo, xn + (h0 * s->w + w0) * c, (size_t)c * sizeof(float));
        for (int64_t ih = h0; ih < h1; ih++) {
            for (int64_t iw = (ih == h0 ? w0 + 1 : w0); iw < w1; iw++) {
                const float *restrict xi = xn + (ih * s->w + iw) * c;
                for (int64_t cc = 0; cc < c; cc++) yo[cc] = max_takes(xi[cc], yo[cc]) ? xi[cc] : yo[cc];
            }
        }
    }
}

static void avg_row(const qnn_pool2d_shape *s, const float *restrict xn, float *restrict yrow,
                    int64_t oh) {
    const int64_t c = s->c;
    int64_t h0, h1;
    window(oh, s->sh, s->pt, s->ph, s->h, &h0, &h1);
    for (int64_t ow = 0; ow < s->wo; ow++) {
        int64_t w0, w1;
        window(ow, s->sw, s->pl, s->pw, s->w, &w0, &w1);
        float *restrict yo = yrow + ow * c;
        memset(yo, 0, (size_t)c * sizeof(float));
        for (int64_t ih = h0; ih < h1; ih++) {
            for (int64_t iw = w0; iw < w1; iw++) {
                const float *restrict xi = xn + (ih * s->w + iw) * c;
                for (int64_t cc = 0; cc < c; cc++) yo[cc] += xi[cc];
            }
        }
        const float cnt = (float)((h1 - h0) * (w1 - w0));
        for (int64_t cc = 0; cc < c; cc++) yo[cc] /= cnt;
    }
}

int qnn_pool2d_forward(int kind, const qnn_pool2d_shape *s, const float *x, float *y) {
    if (s->n == 0 || s->c == 0) return QNN_NN_OK;
    const int64_t rows = s->n * s->ho;
    const int nt = qnn_nn_threads((double)rows * (double)s->wo * (double)s->c *
                                  (double)s->ph * (double)s->pw);
    const int64_t xn_stride = s->h * s->w * s->c, yrow_stride = s->wo * s->c;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t n = r / s->ho, oh = r % s->ho;
        if (kind == QNN_POOL_MAX) max_row(s, x + n * xn_stride, y + r * yrow_stride, oh);
        else avg_row(s, x + n * xn_stride, y + r * yrow_stride, oh);
    }
    return QNN_NN_OK;
}

/* ------------------------------------------------------------------ 2-D backward */

/* Arg-max of the window rows [h0, h1) x cols [w0, w1) per channel, as the offset of its cell from
 * the first one (first maximum in row-major order); best is scratch. */
static void window_argmax(const qnn_pool2d_shape *s, const float *restrict xn, int64_t h0,
                          int64_t h1, int64_t w0, int64_t w1, float *restrict best,
                          int32_t *restrict idx) {
    const int64_t c = s->c, first = h0 * s->w + w0;
    memcpy(best, xn + first * c, (size_t)c * sizeof(float));
    memset(idx, 0, (size_t)c * sizeof(int32_t));
    for (int64_t ih = h0; ih < h1; ih++) {
        for (int64_t iw = (ih == h0 ? w0 + 1 : w0); iw < w1; iw++) {
            const int32_t off = (int32_t)((ih - h0) * s->w + (iw - w0));
            const float *restrict xi = xn + (first + off) * c;
            for (int64_t cc = 0; cc < c; cc++) {
                /* a bit mask, not `v > b ? off : idx`, which GCC keeps as a branch */
                const float v = xi[cc], b = best[cc];
                const int32_t gt = -(int32_t)max_takes(v, b);
                idx[cc] = (off & gt) | (idx[cc] & ~gt);
                best[cc] = gt ? v : b;
            }
        }
    }
}

/* One batch item: windows overlap when stride < pool, so items (not rows) are the unit of
 * threading, and each dx element is accumulated in the same order whatever the thread count.
 * The arg-max is kept as an int32 offset from the window's first cell (same width as the float
 * compare mask, so the select vectorises); the binding guarantees it fits. */
static void max_back_item(const qnn_pool2d_shape *s, const float *restrict xn,
                          const float *restrict dyn, float *restrict dxn, float *restrict best,
                          int32_t *restrict idx) {
    const int64_t c = s->c;
    for (int64_t oh = 0; oh < s->ho; oh++) {
        int64_t h0, h1;
        window(oh, s->sh, s->pt, s->ph, s->h, &h0, &h1);
        for (int64_t ow = 0; ow < s->wo; ow++) {
            int64_t w0, w1;
            window(ow, s->sw, s->pl, s->pw, s->w, &w0, &w1);
            const int64_t first = h0 * s->w + w0;
            window_argmax(s, xn, h0, h1, w0, w1, best, idx);
            const float *restrict g = dyn + (oh * s->wo + ow) * c;
            float *restrict d0 = dxn + first * c;
            for (int64_t cc = 0; cc < c; cc++) d0[(int64_t)idx[cc] * c + cc] += g[cc];
        }
    }
}

/* Windows that tile x exactly (stride = pool, no padding, no remainder): every dx element
 * belongs to one window, so each is written once, as 0 + g at the arg-max and 0 elsewhere (the
 * same bits as zero-filling and adding), with no zero pass and no scatter. */
static int max_tiles_exactly(const qnn_pool2d_shape *s) {
    return s->sh == s->ph && s->sw == s->pw && s->pt == 0 && s->pl == 0 &&
           s->ho * s->sh == s->h && s->wo * s->sw == s->w;
}

static void max_back_item_tiled(const qnn_pool2d_shape *s, const float *restrict xn,
                                const float *restrict dyn, float *restrict dxn,
                                float *restrict best, int32_t *restrict idx) {
    const int64_t c = s->c;
    for (int64_t oh = 0; oh < s->ho; oh++) {
        for (int64_t ow = 0; ow < s->wo; ow++) {
            const int64_t h0 = oh * s->sh, w0 = ow * s->sw, first = h0 * s->w + w0;
            window_argmax(s, xn, h0, h0 + s->ph, w0, w0 + s->pw, best, idx);
            const float *restrict g = dyn + (oh * s->wo + ow) * c;
            for (int64_t ih = h0; ih < h0 + s->ph; ih++) {
                for (int64_t iw = w0; iw < w0 + s->pw; iw++) {
                    const int32_t off = (int32_t)((ih - h0) * s->w + (iw - w0));
                    float *restrict di = dxn + (first + off) * c;
                    /* a bit mask on the value's bits: a select here became a branch taken at
                     * random (1 in ph*pw), 4x slower than zero-fill + scatter */
                    for (int64_t cc = 0; cc < c; cc++) {
                        const float gv = 0.0f + g[cc];
                        uint32_t bits;
                        memcpy(&bits, &gv, sizeof bits);
                        bits &= (uint32_t)-(int32_t)(idx[cc] == off);
                        memcpy(di + cc, &bits, sizeof bits);
                    }
                }
            }
        }
    }
}

static void avg_back_item(const qnn_pool2d_shape *s, const float *restrict dyn,
                          float *restrict dxn) {
    const int64_t c = s->c;
    for (int64_t oh = 0; oh < s->ho; oh++) {
        int64_t h0, h1;
        window(oh, s->sh, s->pt, s->ph, s->h, &h0, &h1);
        for (int64_t ow = 0; ow < s->wo; ow++) {
            int64_t w0, w1;
            window(ow, s->sw, s->pl, s->pw, s->w, &w0, &w1);
            const float cnt = (float)((h1 - h0) * (w1 - w0));
            const float *restrict g = dyn + (oh * s->wo + ow) * c;
            for (int64_t ih = h0; ih < h1; ih++) {
                for (int64_t iw = w0; iw < w1; iw++) {
                    float *restrict di = dxn + (ih * s->w + iw) * c;
                    for (int64_t cc = 0; cc < c; cc++) di[cc] += g[cc] / cnt;
                }
            }
        }
    }
}

int qnn_pool2d_backward(int kind, const qnn_pool2d_shape *s, const float *x, const float *dy,
                        float *dx) {
    if (s->n == 0 || s->c == 0) return QNN_NN_OK;
    const int nt = qnn_nn_threads((double)s->n * (double)s->ho * (double)s->wo * (double)s->c *
                                  (double)s->ph * (double)s->pw);
    const int64_t xn_stride = s->h * s->w * s->c, yn_stride = s->ho * s->wo * s->c;
    char *scratch = NULL;
    const size_t per_thread = (size_t)s->c * (sizeof(float) + sizeof(int32_t));
    if (kind == QNN_POOL_MAX) {
        scratch = malloc(per_thread * (size_t)nt);
        if (!scratch) return QNN_NN_ENOMEM;
    }
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t n = 0; n < s->n; n++) {
        float *dxn = dx + n * xn_stride;
        if (kind == QNN_POOL_MAX) {
            char *mine = scratch + per_thread * (size_t)QNN_NN_TID();
            int32_t *idx = (int32_t *)mine;
            float *best = (float *)(mine + (size_t)s->c * sizeof(int32_t));
            if (max_tiles_exactly(s)) {
                max_back_item_tiled(s, x + n * xn_stride, dy + n * yn_stride, dxn, best, idx);
            } else {
                memset(dxn, 0, (size_t)xn_stride * sizeof(float));
                max_back_item(s, x + n * xn_stride, dy + n * yn_stride, dxn, best, idx);
            }
        } else {
            memset(dxn, 0, (size_t)xn_stride * sizeof(float));
            avg_back_item(s, dy + n * yn_stride, dxn);
        }
    }
    free(scratch);
    return QNN_NN_OK;
}

/* ------------------------------------------------------------------ global pooling */

int qnn_global_pool_forward(int kind, size_t n, size_t hw, size_t c, const float *x, float *y) {
    if (n == 0 || c == 0 || hw == 0) return QNN_NN_OK;
    const int nt = qnn_nn_threads((double)n * (double)hw * (double)c);
    double *acc = NULL;
    if (kind == QNN_POOL_AVG) {
        acc = malloc((size_t)nt * c * sizeof(double));
        if (!acc) return QNN_NN_ENOMEM;
    }
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float *restrict xi = x + i * hw * c;
        float *restrict yi = y + i * c;
        if (kind == QNN_POOL_MAX) {
            memcpy(yi, xi, c * sizeof(float));
            for (size_t p = 1; p < hw; p++) {
                const float *restrict xp = xi + p * c;
                for (size_t cc = 0; cc < c; cc++) yi[cc] = max_takes(xp[cc], yi[cc]) ? xp[cc] : yi[cc];
            }
        } else {
            /* double sums: a 56x56 map would otherwise lose ~12 bits of each small term */
            double *restrict a = acc + (size_t)QNN_NN_TID() * c;
            for (size_t cc = 0; cc < c; cc++) a[cc] = 0.0;
            for (size_t p = 0; p < hw; p++) {
                const float *restrict xp = xi + p * c;
                for (size_t cc = 0; cc < c; cc++) a[cc] += (double)xp[cc];
            }
            for (size_t cc = 0; cc < c; cc++) yi[cc] = (float)(a[cc] / (double)hw);
        }
    }
    free(acc);
    return QNN_NN_OK;
}

int qnn_global_pool_backward(int kind, size_t n, size_t hw, size_t c, const float *x,
                             const float *dy, float *dx) {
    if (n == 0 || c == 0 || hw == 0) return QNN_NN_OK;
    const int nt = qnn_nn_threads((double)n * (double)hw * (double)c);
    char *scratch = NULL;
    const size_t per_thread = c * (sizeof(float) + sizeof(int32_t));
    if (kind == QNN_POOL_MAX) {
        scratch = malloc(per_thread * (size_t)nt);
        if (!scratch) return QNN_NN_ENOMEM;
    }
    const float hw_f = (float)hw;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float *restrict xi = x + i * hw * c;
        const float *restrict g = dy + i * c;
        float *restrict di = dx + i * hw * c;
        if (kind == QNN_POOL_MAX) {
            char *mine = scratch + per_thread * (size_t)QNN_NN_TID();
            int32_t *restrict idx = (int32_t *)mine;
            float *restrict best = (float *)(mine + c * sizeof(int32_t));
            memcpy(best, xi, c * sizeof(float));
            memset(idx, 0, c * sizeof(int32_t));
            for (size_t p = 1; p < hw; p++) {
                const float *restrict xp = xi + p * c;
                const int32_t pi = (int32_t)p;
                for (size_t cc = 0; cc < c; cc++) {
                    const float v = xp[cc], b = best[cc];
                    const int32_t gt = -(int32_t)max_takes(v, b);
                    idx[cc] = (pi & gt) | (idx[cc] & ~gt);
                    best[cc] = gt ? v : b;
                }
            }
            memset(di, 0, hw * c * sizeof(float));
            for (size_t cc = 0; cc < c; cc++) di[(size_t)idx[cc] * c + cc] = g[cc];
        } else {
            for (size_t p = 0; p < hw; p++)
                for (size_t cc = 0; cc < c; cc++) di[p * c + cc] = g[cc] / hw_f;
        }
    }
    free(scratch);
    return QNN_NN_OK;
}
