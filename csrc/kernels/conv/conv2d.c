#include "kernels/conv/conv.h"

#include <string.h>

#include "kernels/conv/winograd.h"
#include "kernels/gemm/gemm.h"
#include "runtime/dispatch.h"
#include "runtime/fpenv.h"
#include "runtime/threads.h"
#include "runtime/workspace.h"

typedef ptrdiff_t idx;

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

int qnn_conv2d_out_size(size_t in, size_t k, size_t s, size_t p0, size_t p1, size_t d,
                        size_t *out) {
    /* Callers bound every term far below SIZE_MAX/4, so the sums cannot wrap. */
    const size_t span = d * (k - 1) + 1, padded = in + p0 + p1;
    if (k < 1 || s < 1 || d < 1 || padded < span) return -1;
    *out = (padded - span) / s + 1;
    return 0;
}

/* ------------------------------------------------------------ implicit im2col packers */

/* Row p of the patch matrix of group g is output pixel p = (n*HO + oh)*WO + ow; column
 * k = (kh*KW + kw)*Cg + ci. */
typedef struct patch_ctx {
    const qnn_conv2d_shape *s;
    const float *x;
    size_t g, Cg; /* group and channels per group */
} patch_ctx;

/* Where column c0 of a patch row starts: tap (kh, kw) and channel ci. A packer computes it once
 * for all its rows; with Cg = 1..3 and 9 taps per row (first layers), per-row divisions cost more
 * than the copy itself. */
typedef struct tap_pos {
    size_t kh, kw, ci;
} tap_pos;

static tap_pos tap_at(const qnn_conv2d_shape *s, size_t c0) {
    const size_t Cg = s->C / s->groups, khw = c0 / Cg;
    return (tap_pos){khw / s->KW, khw % s->KW, c0 % Cg};
}

/* Columns [c0, c0+len) of the patch row of output pixel (n, oh, ow), c0 at tap t0, column c =
 * (kh*KW + kw)*Cg + ci, into d: each (kh, kw) tap is a contiguous Cg run of x, copied whole
 * (zeros where the tap falls in the padding). */
static void patch_row(const patch_ctx *ctx, tap_pos t0, size_t n, size_t oh, size_t ow,
                      size_t len, float *d) {
    const qnn_conv2d_shape *s = ctx->s;
    const size_t Cg = ctx->Cg, H = s->H, W = s->W, C = s->C, KW = s->KW;
    const idx ih0 = (idx)(oh * s->sh) - (idx)s->pt, iw0 = (idx)(ow * s->sw) - (idx)s->pl;
    const float *xn = ctx->x + n * H * W * C + ctx->g * Cg;
    if (t0.kh == 0 && t0.kw == 0 && t0.ci == 0 && len == s->KH * KW * Cg && ih0 >= 0 &&
        iw0 >= 0 && ih0 + (idx)((s->KH - 1) * s->dh) < (idx)H &&
        iw0 + (idx)((KW - 1) * s->dw) < (idx)W) {
        /* the whole window inside x (most pixels): no per-tap bounds or segment logic */
        const float *src = xn + ((size_t)ih0 * W + (size_t)iw0) * C;
        if (s->dw == 1 && Cg == C) {
            /* undilated, ungrouped: the KW taps of a kernel row are one contiguous run of x */
            const size_t run = KW * C;
            for (size_t kh = 0; kh < s->KH; kh++, d += run) {
                const float *p = src + kh * s->dh * W * C;
                if (run <= 4) {
                    for (size_t t = 0; t < run; t++) d[t] = p[t];
                } else {
                    memcpy(d, p, run * sizeof(float));
                }
            }
            return;
        }
        for (size_t kh = 0; kh < s->KH; kh++) {
            const float *row = src + kh * s->dh * W * C;
            for (size_t kw = 0; kw < KW; kw++, d += Cg) {
                const float *p = row + kw * s->dw * C;
                if (Cg <= 4) {
                    for (size_t t = 0; t < Cg; t++) d[t] = p[t];
                } else {
                    memcpy(d, p, Cg * sizeof(float));
                }
            }
        }
        return;
    }
    size_t ci = t0.ci, kh = t0.kh, kw = t0.kw, k = 0;
    while (k < len) {
        const size_t seg = min_sz(Cg - ci, len - k);
        const idx ih = ih0 + (idx)(kh * s->dh), iw = iw0 + (idx)(kw * s->dw);
        if (ih >= 0 && ih < (idx)H && iw >= 0 && iw < (idx)W) {
            const float *src = xn + ((size_t)ih * W + (size_t)iw) * C + ci;
            if (seg <= 4) {
                for (size_t t = 0; t < seg; t++) d[k + t] = src[t];
            } else {
                memcpy(d + k, src, seg * sizeof(float));
            }
        } else {
            for (size_t t = 0; t < seg; t++) d[k + t] = 0.0f;
        }
        k += seg;
        ci = 0;
        if (++kw == KW) { kw = 0; kh++; }
    }
}

/* Advances an output-pixel position (n, oh, ow) by one pixel in row-major order. */
static void next_pixel(const qnn_conv2d_shape *s, size_t *n, size_t *oh, size_t *ow) {
    if (++*ow == s->WO) {
        *ow = 0;
        if (++*oh == s->HO) { *oh = 0; ++*n; }
    }
}

/* Forward orientation: the A operand, rows are pixels [i0, i0+m), columns [k0, k0+kc). */
static void pack_patches(const void *vctx, size_t i0, size_t m, size_t k0, size_t kc, size_t mr,
                         float *dst) {
    const patch_ctx *ctx = vctx;
    const qnn_conv2d_shape *s = ctx->s;
    const size_t ld = QNN_SGEMM_KC, msl = (m + mr - 1) / mr * mr;
    size_t ow = i0 % s->WO, oh = (i0 / s->WO) % s->HO, n = i0 / (s->WO * s->HO);
    const tap_pos t0 = tap_at(s, k0);
    for (size_t i = 0; i < m; i++, next_pixel(s, &n, &oh, &ow))
        patch_row(ctx, t0, n, oh, ow, kc, dst + i * ld);
    for (size_t i = m; i < msl; i++) memset(dst + i * ld, 0, kc * sizeof(float));
}

/* What the in-place patch rows point at for a tap in the padding. Read-only. */
static const float zero_run[QNN_SGEMM_IND_KC];

/* In-place patch rows need channel runs of at least this many floats: shorter segments spend
 * more on the microkernel's per-segment pointer loads than the copy would cost. */
#define QNN_CONV_IND_MIN_CG 16
_Static_assert(QNN_SGEMM_IND_KC / QNN_CONV_IND_MIN_CG + 2 <= QNN_SGEMM_IND_MAXSEG,
               "a K slice of in-place patch rows must fit the segment table");

/* Forward orientation, read in place (gemm.h, qnn_apacker.rows): the patch rows of pixels
 * [i0, i0+m) over columns [k0, k0+kc) as one segment per (kh, kw) tap, each row's segment
 * pointing at the tap's Cg channels in x, or at zeros where the tap falls in the padding. Rows
 * past m point at zeros too. */
static size_t rows_patches(const void *vctx, size_t i0, size_t m, size_t k0, size_t kc, size_t mr,
                           const float **tab, size_t *len) {
    const patch_ctx *ctx = vctx;
    const qnn_conv2d_shape *s = ctx->s;
    const size_t Cg = ctx->Cg, H = s->H, W = s->W, C = s->C;
    idx seg_h[QNN_SGEMM_IND_MAXSEG], seg_w[QNN_SGEMM_IND_MAXSEG];
    size_t seg_c[QNN_SGEMM_IND_MAXSEG], nseg = 0;
    const tap_pos t0 = tap_at(s, k0);
    for (size_t k = 0, ci = t0.ci, kh = t0.kh, kw = t0.kw; k < kc; nseg++) {
        len[nseg] = min_sz(Cg - ci, kc - k);
        seg_h[nseg] = (idx)(kh * s->dh);
        seg_w[nseg] = (idx)(kw * s->dw);
        seg_c[nseg] = ci;
        k += len[nseg];
        ci = 0;
        if (++kw == s->KW) { kw = 0; kh++; }
    }
    const size_t msl = (m + mr - 1) / mr * mr;
    size_t ow = i0 % s->WO, oh = (i0 / s->WO) % s->HO, n = i0 / (s->WO * s->HO);
    for (size_t i = 0; i < msl; i++) {
        const float **t = tab + (i / mr) * nseg * mr + i % mr;
        if (i >= m) {
            for (size_t q = 0; q < nseg; q++) t[q * mr] = zero_run;
            continue;
        }
        const idx ih0 = (idx)(oh * s->sh) - (idx)s->pt, iw0 = (idx)(ow * s->sw) - (idx)s->pl;
        const float *xn = ctx->x + n * H * W * C + ctx->g * Cg;
        for (size_t q = 0; q < nseg; q++) {
            const idx ih = ih0 + seg_h[q], iw = iw0 + seg_w[q];
            t[q * mr] = ih >= 0 && ih < (idx)H && iw >= 0 && iw < (idx)W
                            ? xn + ((size_t)ih * W + (size_t)iw) * C + seg_c[q]
                            : zero_run;
        }
        next_pixel(s, &n, &oh, &ow);
    }
    return nseg;
}

/* Filter-gradient orientation: the patch matrix as the B operand of dW^T = dy^T @ patches
 * (K rows are pixels [k0, k0+kc), columns [j0, j0+nn) of the patch row, padded to nr). */
static void pack_patches_b(const void *vctx, size_t k0, size_t kc, size_t j0, size_t nn,
                           size_t nr, float *dst) {
    const patch_ctx *ctx = vctx;
    const qnn_conv2d_shape *s = ctx->s;
    size_t ow = k0 % s->WO, oh = (k0 / s->WO) % s->HO, n = k0 / (s->WO * s->HO);
    const tap_pos t0 = tap_at(s, j0);
    for (size_t k = 0; k < kc; k++, next_pixel(s, &n, &oh, &ow)) {
        float *d = dst + k * nr;
        patch_row(ctx, t0, n, oh, ow, nn, d);
        for (size_t j = nn; j < nr; j++) d[j] = 0.0f;
    }
}

/* The same B operand read in place (gemm.h, qnn_bpacker.rows), for Cg a multiple of nr: the
 * nr columns from j0 lie inside one (kh, kw) tap, so each pixel's row of the sliver is nr
 * contiguous channels of x, or zeros where the tap falls in the padding. */
static void rows_patches_b(const void *vctx, size_t k0, size_t kc, size_t j0, size_t nr,
                           const float **tab) {
    const patch_ctx *ctx = vctx;
    const qnn_conv2d_shape *s = ctx->s;
    const size_t H = s->H, W = s->W, C = s->C, WO = s->WO, sw = s->sw;
    (void)nr;
    const tap_pos t = tap_at(s, j0);
    const idx dh = (idx)(t.kh * s->dh) - (idx)s->pt, dw = (idx)(t.kw * s->dw) - (idx)s->pl;
    /* Output columns whose tap lands inside x: ow_lo <= ow < ow_hi (iw = ow*sw + dw). */
    const size_t ow_lo = dw >= 0 ? 0 : ((size_t)(-dw) + sw - 1) / sw;
    const size_t ow_hi = (idx)W - dw <= 0 ? 0 : min_sz(WO, ((size_t)((idx)W - dw) + sw - 1) / sw);
    const float *xg = ctx->x + ctx->g * ctx->Cg + t.ci;
    size_t ow = k0 % WO, oh = (k0 / WO) % s->HO, n = k0 / (WO * s->HO), k = 0;
    /* One output row at a time: inside it the pointer steps by sw*C between the two bounds. */
    while (k < kc) {
        const size_t run = min_sz(WO - ow, kc - k);
        const idx ih = (idx)(oh * s->sh) + dh;
        if (ih < 0 || ih >= (idx)H) {
            for (size_t q = 0; q < run; q++) tab[k + q] = zero_run;
        } else {
            const float *row = xg + (n * H + (size_t)ih) * W * C;
            for (size_t q = 0; q < run; q++) {
                const size_t o = ow + q;
                tab[k + q] = o >= ow_lo && o < ow_hi ? row + (size_t)((idx)(o * sw) + dw) * C
                                                     : zero_run;
            }
        }
        k += run;
        ow = 0;
        if (++oh == s->HO) { oh = 0; n++; }
    }
}

/* The same patch matrix transposed, as the A operand of dW = patches^T @ dy (rows r = (kh, kw, ci),
 * columns are pixels); for thin kernels (KH*KW*Cg below Cout) this orientation wastes less of the
 * register tile. Along one output row, pixel k reads x at a fixed stride, so each row of the
 * packed sliver is filled in runs of constant (n, oh). */
static void pack_patches_t(const void *vctx, size_t i0, size_t m, size_t k0, size_t kc, size_t mr,
                           float *dst) {
    const patch_ctx *ctx = vctx;
    const qnn_conv2d_shape *s = ctx->s;
    const size_t Cg = s->C / s->groups, ld = QNN_SGEMM_KC;
    const size_t msl = (m + mr - 1) / mr * mr;
    for (size_t i = 0; i < m; i++) {
        const size_t r = i0 + i, khw = r / Cg;
        const idx offh = (idx)((khw / s->KW) * s->dh) - (idx)s->pt;
        const idx offw = (idx)((khw % s->KW) * s->dw) - (idx)s->pl;
        const size_t offc = ctx->g * Cg + r % Cg;
        float *d = dst + i * ld;
        size_t p = k0, ow = p % s->WO, oh = (p / s->WO) % s->HO, n = p / (s->WO * s->HO);
        for (size_t k = 0; k < kc;) {
            const size_t run = min_sz(s->WO - ow, kc - k);
            const idx ih = (idx)(oh * s->sh) + offh;
            if (ih < 0 || ih >= (idx)s->H) {
                memset(d + k, 0, run * sizeof(float));
            } else {
                const float *xr = ctx->x + ((n * s->H + (size_t)ih) * s->W) * s->C + offc;
                for (size_t t = 0; t < run; t++) {
                    const idx iw = (idx)((ow + t) * s->sw) + offw;
                    d[k + t] = (iw >= 0 && iw < (idx)s->W) ? xr[(size_t)iw * s->C] : 0.0f;
                }
            }
            k += run;
            ow += run;
            if (ow == s->WO) {
                ow = 0;
                if (++oh == s->HO) { oh = 0; n++; }
            }
        }
    }
    for (size_t i = m; i < msl; i++) memset(dst + i * ld, 0, kc * sizeof(float));
}

/* ------------------------------------------------------------ depthwise (Cg == 1) direct loops */

static int dw_threads(const qnn_conv2d_shape *s, size_t units) {
    return qnn_threads_for(units * s->KH * s->KW);
}

static void dw_forward(const qnn_conv2d_shape *s, const float *x, const float *w, float *y) {
    const size_t C = s->C, CO = s->CO, dm = CO / C;
    const long rows = (long)(s->N * s->HO);
    const int nt = dw_threads(s, s->N * s->HO * s->WO * CO);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (long r = 0; r < rows; r++) {
        const size_t n = (size_t)r / s->HO, oh = (size_t)r % s->HO;
        for (size_t ow = 0; ow < s->WO; ow++) {
            float *yo = y + (((size_t)r) * s->WO + ow) * CO;
            for (size_t o = 0; o < CO; o++) yo[o] = 0.0f;
            for (size_t kh = 0; kh < s->KH; kh++) {
                const idx ih = (idx)(oh * s->sh + kh * s->dh) - (idx)s->pt;
                if (ih < 0 || ih >= (idx)s->H) continue;
                for (size_t kw = 0; kw < s->KW; kw++) {
                    const idx iw = (idx)(ow * s->sw + kw * s->dw) - (idx)s->pl;
                    if (iw < 0 || iw >= (idx)s->W) continue;
                    const float *xp = x + ((n * s->H + (size_t)ih) * s->W + (size_t)iw) * C;
                    const float *wp = w + (kh * s->KW + kw) * CO;
                    if (dm == 1) {
                        for (size_t c = 0; c < C; c++) yo[c] += xp[c] * wp[c];
                    } else {
                        for (size_t c = 0; c < C; c++)
                            for (size_t j = 0; j < dm; j++) yo[c * dm + j] += xp[c] * wp[c * dm + j];
                    }
                }
            }
        }
    }
}

/* The output index that tap k of a stride-st, dilation-d, pad-pad convolution reads input
 * index i from, or -1 when that tap does not reach i. */
static idx tap_source(size_t i, size_t pad, size_t k, size_t d, size_t st, size_t out) {
    const idx t = (idx)(i + pad) - (idx)(k * d);
    if (t < 0 || t % (idx)st || (size_t)t / st >= out) return -1;
    return t / (idx)st;
}

/* dx as a gather over the (kh, kw) taps that reach each input pixel: rows of dx are independent. */
static void dw_backward_input(const qnn_conv2d_shape *s, const float *dy, const float *w,
                              float *dx) {
    const size_t C = s->C, CO = s->CO, dm = CO / C;
    const long rows = (long)(s->N * s->H);
    const int nt = dw_threads(s, s->N * s->HO * s->WO * CO);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (long r = 0; r < rows; r++) {
        const size_t n = (size_t)r / s->H, ih = (size_t)r % s->H;
        for (size_t iw = 0; iw < s->W; iw++) {
            float *d = dx + ((size_t)r * s->W + iw) * C;
            for (size_t c = 0; c < C; c++) d[c] = 0.0f;
            for (size_t kh = 0; kh < s->KH; kh++) {
                const idx oht = tap_source(ih, s->pt, kh, s->dh, s->sh, s->HO);
                if (oht < 0) continue;
                const size_t oh = (size_t)oht;
                for (size_t kw = 0; kw < s->KW; kw++) {
                    const idx owt = tap_source(iw, s->pl, kw, s->dw, s->sw, s->WO);
                    if (owt < 0) continue;
                    const size_t ow = (size_t)owt;
                    const float *g = dy + ((n * s->HO + oh) * s->WO + ow) * CO;
                    const float *wp = w + (kh * s->KW + kw) * CO;
                    if (dm == 1) {
                        for (size_t c = 0; c < C; c++) d[c] += g[c] * wp[c];
                    } else {
                        for (size_t c = 0; c < C; c++) {
                            float acc = 0.0f;
                            for (size_t j = 0; j < dm; j++) acc += g[c * dm + j] * wp[c * dm + j];
                            d[c] += acc;
                        }
                    }
                }
            }
        }
    }
}

/* dw reduces over every output pixel: each thread sums a fixed share of the images into its
 * own partial, and the partials are added in thread order. */
static int dw_backward_filter(const qnn_conv2d_shape *s, const float *x, const float *dy,
                              float *dw, qnn_workspace *ws) {
    const size_t C = s->C, CO = s->CO, dm = CO / C, wsz = s->KH * s->KW * CO;
    int nt = dw_threads(s, s->N * s->HO * s->WO * CO);
    if ((size_t)nt > s->N) nt = s->N > 0 ? (int)s->N : 1;
    float *part = qnn_ws_get(ws, QNN_WS_CONV, (size_t)nt * wsz * sizeof(float));
    if (!part) return QNN_ENOMEM;
    memset(part, 0, (size_t)nt * wsz * sizeof(float));
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int t = 0; t < nt; t++) {
        float *acc = part + (size_t)t * wsz;
        const size_t n0 = s->N * (size_t)t / (size_t)nt, n1 = s->N * (size_t)(t + 1) / (size_t)nt;
        for (size_t n = n0; n < n1; n++)
            for (size_t oh = 0; oh < s->HO; oh++)
                for (size_t ow = 0; ow < s->WO; ow++) {
                    const float *g = dy + ((n * s->HO + oh) * s->WO + ow) * CO;
                    for (size_t kh = 0; kh < s->KH; kh++) {
                        const idx ih = (idx)(oh * s->sh + kh * s->dh) - (idx)s->pt;
                        if (ih < 0 || ih >= (idx)s->H) continue;
                        for (size_t kw = 0; kw < s->KW; kw++) {
                            const idx iw = (idx)(ow * s->sw + kw * s->dw) - (idx)s->pl;
                            if (iw < 0 || iw >= (idx)s->W) continue;
                            const float *xp = x + ((n * s->H + (size_t)ih) * s->W + (size_t)iw) * C;
                            float *a = acc + (kh * s->KW + kw) * CO;
                            if (dm == 1) {
                                for (size_t c = 0; c < C; c++) a[c] += xp[c] * g[c];
                            } else {
                                for (size_t c = 0; c < C; c++)
                                    for (size_t j = 0; j < dm; j++) a[c * dm + j] += xp[c] * g[c * dm + j];
                            }
                        }
                    }
                }
    }
    memcpy(dw, part, wsz * sizeof(float));
    for (int t = 1; t < nt; t++)
        for (size_t i = 0; i < wsz; i++) dw[i] += part[(size_t)t * wsz + i];
    return QNN_OK;
}

/* ------------------------------------------------------------ general (GEMM) paths */

size_t qnn_conv2d_epilogue_groups(const qnn_conv2d_shape *s) {
    return s->C / s->groups == 1 && s->groups > 1 ? 1 : s->groups;
}

static int use_winograd(const qnn_conv2d_shape *s) {
    if (!qnn_conv2d_winograd_fits(s) || s->algo == QNN_CONV_DIRECT) return 0;
    if (s->algo == QNN_CONV_WINOGRAD) return 1;
    /* Measured on VGG-style layers (python/bench_conv.py): 1.3-1.7x faster than the direct
     * GEMM from 16 input channels and 256 tiles on; with fewer channels the transforms cost
     * more than the multiplies they save (3 -> 64: 0.7x), with fewer tiles the per-call kernel
     * transform (16 x C x CO floats) does (a 7x7x512 -> 512 layer at batch 1: 0.4-0.6x). */
    const size_t tiles = s->N * ((s->HO + 1) / 2) * ((s->WO + 1) / 2);
    return s->C >= 16 && s->CO >= 8 && tiles >= 256;
}

static int conv2d_forward_ws(const qnn_conv2d_shape *s, const float *x, const float *w,
                             const qnn_bias_act *ba, float *y, qnn_workspace *ws) {
    const size_t Cg = s->C / s->groups, COg = s->CO / s->groups;
    const size_t M = s->N * s->HO * s->WO, K = s->KH * s->KW * Cg;
    if (qnn_conv2d_epilogue_groups(s) == 1 && s->groups > 1) {
        dw_forward(s, x, w, y);
        if (ba) { /* over the whole output as one group: the mask has one block of rows */
            const int nt = qnn_threads_for(M * s->CO * (ba->q ? 8 : 1));
            const long nb = (long)((M + 63) / 64);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
            for (long b = 0; b < nb; b++) {
                const qnn_fpenv env = qnn_fpenv_flush_begin(); /* as inside the GEMM */
                const size_t i0 = (size_t)b * 64;
                qnn_bias_act_apply(ba, i0, M - i0 < 64 ? M - i0 : 64, 0, s->CO, y, s->CO);
                qnn_fpenv_end(env);
            }
        }
        return QNN_OK;
    }
    if (use_winograd(s)) return qnn_conv2d_winograd(s, x, w, ba, y, ws);
    for (size_t g = 0; g < s->groups; g++) {
        const patch_ctx ctx = {s, x, g, Cg};
        const qnn_apacker ap = {pack_patches, &ctx,
                                ctx.Cg >= QNN_CONV_IND_MIN_CG ? rows_patches : NULL};
        const qnn_mat none = {NULL, 0, 0};
        const qnn_mat b = {w + g * COg, (idx)s->CO, 1};
        /* the group's columns of C start at channel g * COg: so does its slice of the bias */
        qnn_bias_act gba = {0};
        if (ba) {
            gba = *ba;
            gba.bias = ba->bias ? ba->bias + g * COg : NULL;
            gba.scale = ba->scale ? ba->scale + g * COg : NULL;
            gba.shift = ba->shift ? ba->shift + g * COg : NULL;
            gba.col0 = g * COg;
            gba.mask = ba->mask ? ba->mask + g * M * ba->mask_rb : NULL;
        }
        const qnn_gemm_epilogue ep = {qnn_bias_act_apply, &gba};
        const int rc = qnn_sgemm_ex(M, COg, K, 1.0f, none, &ap, b, NULL, 0.0f, y + g * COg, s->CO,
                                    ba ? &ep : NULL, 0, ws);
        if (rc) return rc;
    }
    return QNN_OK;
}

/* col2im gather for group g over images [n0, n0+nb): dcol row p (pixel within the chunk), column
 * (kh*KW + kw)*Cg + ci. */
static void col2im_gather(const qnn_conv2d_shape *s, size_t g, size_t n0, size_t nb,
                          const float *dcol, float *dx) {
    const size_t Cg = s->C / s->groups, ldcol = s->KH * s->KW * Cg;
    const long rows = (long)(nb * s->H);
    const int nt = qnn_threads_for(nb * s->H * s->W * ldcol);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (long r = 0; r < rows; r++) {
        const size_t nl = (size_t)r / s->H, ih = (size_t)r % s->H;
        for (size_t iw = 0; iw < s->W; iw++) {
            float *d = dx + (((n0 + nl) * s->H + ih) * s->W + iw) * s->C + g * Cg;
            for (size_t c = 0; c < Cg; c++) d[c] = 0.0f;
            for (size_t kh = 0; kh < s->KH; kh++) {
                const idx oht = tap_source(ih, s->pt, kh, s->dh, s->sh, s->HO);
                if (oht < 0) continue;
                const size_t oh = (size_t)oht;
                for (size_t kw = 0; kw < s->KW; kw++) {
                    const idx owt = tap_source(iw, s->pl, kw, s->dw, s->sw, s->WO);
                    if (owt < 0) continue;
                    const size_t ow = (size_t)owt;
                    const float *src =
                        dcol + ((nl * s->HO + oh) * s->WO + ow) * ldcol + (kh * s->KW + kw) * Cg;
                    for (size_t c = 0; c < Cg; c++) d[c] += src[c];
                }
            }
        }
    }
}

/* Stride 1: dx is the forward convolution of dy with the spatially flipped, transposed kernel
 * (dx[ih] gathers dy[ih + pt - kh*dh], i.e. tap KH-1-kh at padding dh*(KH-1) - pt), so it runs on
 * the forward's implicit-im2col GEMM with no column buffer and no scatter. */
static int backward_input_flipped(const qnn_conv2d_shape *s, const float *dy, const float *w,
                                  float *dx, qnn_workspace *ws) {
    const size_t Cg = s->C / s->groups, COg = s->CO / s->groups, taps = s->KH * s->KW;
    qnn_conv2d_shape t = *s;
    t.H = s->HO; t.W = s->WO; t.C = s->CO; t.CO = s->C;
    t.pt = s->dh * (s->KH - 1) - s->pt; t.pl = s->dw * (s->KW - 1) - s->pl;
    t.pb = s->dh * (s->KH - 1) - s->pb; t.pr = s->dw * (s->KW - 1) - s->pr;
    t.HO = s->H; t.WO = s->W;
    /* wt[kh', kw', j, g*Cg + ci] = w[KH-1-kh', KW-1-kw', ci, g*COg + j] */
    float *wt = qnn_ws_get(ws, QNN_WS_CONV, taps * COg * s->C * sizeof(float));
    if (!wt) return QNN_ENOMEM;
    for (size_t tap = 0; tap < taps; tap++) {
        const float *src = w + (taps - 1 - tap) * Cg * s->CO;
        float *d = wt + tap * COg * s->C;
        for (size_t g = 0; g < s->groups; g++)
            for (size_t ci = 0; ci < Cg; ci++)
                for (size_t j = 0; j < COg; j++)
                    d[j * s->C + g * Cg + ci] = src[ci * s->CO + g * COg + j];
    }
    return conv2d_forward_ws(&t, dy, wt, NULL, dx, ws);
}

static int conv2d_backward_input_ws(const qnn_conv2d_shape *s, const float *dy, const float *w,
                                    float *dx, qnn_workspace *ws) {
    const size_t Cg = s->C / s->groups, COg = s->CO / s->groups;
    if (s->N == 0) return QNN_OK;
    if (Cg == 1 && s->groups > 1) { dw_backward_input(s, dy, w, dx); return QNN_OK; }
    /* The flipped conv's output channels are the input's: below 16 per group most of each
     * register tile would be padding, and the column GEMM (N = KH*KW*Cg) wastes less. */
    if (s->sh == 1 && s->sw == 1 && Cg >= 16 && s->pt <= s->dh * (s->KH - 1) &&
        s->pb <= s->dh * (s->KH - 1) &&
        s->pl <= s->dw * (s->KW - 1) && s->pr <= s->dw * (s->KW - 1))
        return backward_input_flipped(s, dy, w, dx, ws);
    const size_t ldcol = s->KH * s->KW * Cg, per_img = s->HO * s->WO * ldcol;
    /* Column buffer for a chunk of images, ~8 MB at most (at least one image). */
    size_t nb = ((size_t)1 << 21) / (per_img ? per_img : 1);
    nb = nb < 1 ? 1 : min_sz(nb, s->N);
    float *dcol = qnn_ws_get(ws, QNN_WS_CONV, nb * per_img * sizeof(float));
    if (!dcol) return QNN_ENOMEM;
    for (size_t n0 = 0; n0 < s->N; n0 += nb) {
        const size_t cnt = min_sz(nb, s->N - n0), M = cnt * s->HO * s->WO;
        for (size_t g = 0; g < s->groups; g++) {
            /* dcol = dy_g @ w_g^T: w_g^T(j, k) = w[k*CO + g*COg + j]. */
            const qnn_mat a = {dy + n0 * s->HO * s->WO * s->CO + g * COg, (idx)s->CO, 1};
            const qnn_mat b = {w + g * COg, 1, (idx)s->CO};
            const int rc =
                qnn_sgemm_ex(M, ldcol, COg, 1.0f, a, NULL, b, NULL, 0.0f, dcol, ldcol, NULL, 0, ws);
            if (rc) return rc;
            col2im_gather(s, g, n0, cnt, dcol, dx);
        }
    }
    return QNN_OK;
}

static int conv2d_backward_filter_ws(const qnn_conv2d_shape *s, const float *x, const float *dy,
                                     float *dw, qnn_workspace *ws) {
    const size_t Cg = s->C / s->groups, COg = s->CO / s->groups;
    if (Cg == 1 && s->groups > 1) return dw_backward_filter(s, x, dy, dw, ws);
    /* dW_g^T (COg x KH*KW*Cg) = dy_g^T @ patches_g, reduced over the N*HO*WO pixels: dy^T packs
     * as transposed A (contiguous channel runs per pixel) and the patches as B rows (contiguous
     * Cg runs), then the small result is transposed into the HWIO kernel. */
    const size_t Kp = s->KH * s->KW * Cg, P = s->N * s->HO * s->WO;
    if (Kp < COg) {
        for (size_t g = 0; g < s->groups; g++) {
            const patch_ctx ctx = {s, x, g, Cg};
            const qnn_apacker ap = {pack_patches_t, &ctx, NULL};
            const qnn_mat none = {NULL, 0, 0};
            const qnn_mat b = {dy + g * COg, (idx)s->CO, 1};
            const int rc =
                qnn_sgemm_ex(Kp, COg, P, 1.0f, none, &ap, b, NULL, 0.0f, dw + g * COg, s->CO,
                             NULL, 0, ws);
            if (rc) return rc;
        }
        return QNN_OK;
    }
    float *dwt = qnn_ws_get(ws, QNN_WS_CONV, COg * Kp * sizeof(float));
    if (!dwt) return QNN_ENOMEM;
    for (size_t g = 0; g < s->groups; g++) {
        const patch_ctx ctx = {s, x, g, Cg};
        const size_t nr = (size_t)qnn_dispatch_table.sgemm_nr;
        const qnn_bpacker bp = {pack_patches_b, &ctx, ctx.Cg % nr == 0 ? rows_patches_b : NULL};
        const qnn_mat a = {dy + g * COg, 1, (idx)s->CO};
        const qnn_mat none = {NULL, 0, 0};
        const int rc =
            qnn_sgemm_ex(COg, Kp, P, 1.0f, a, NULL, none, &bp, 0.0f, dwt, Kp, NULL, 0, ws);
        if (rc) return rc;
        for (size_t r = 0; r < Kp; r++)
            for (size_t j = 0; j < COg; j++) dw[r * s->CO + g * COg + j] = dwt[j * Kp + r];
    }
    return QNN_OK;
}

int qnn_conv2d_forward(const qnn_conv2d_shape *s, const float *x, const float *w,
                       const qnn_bias_act *ba, float *y, qnn_workspace *ws) {
    qnn_workspace tmp = {0};
    const int rc = conv2d_forward_ws(s, x, w, ba, y, ws ? ws : &tmp);
    qnn_workspace_release(&tmp);
    return rc;
}

int qnn_conv2d_backward_input(const qnn_conv2d_shape *s, const float *dy, const float *w,
                              float *dx, qnn_workspace *ws) {
    qnn_workspace tmp = {0};
    const int rc = conv2d_backward_input_ws(s, dy, w, dx, ws ? ws : &tmp);
    qnn_workspace_release(&tmp);
    return rc;
}

int qnn_conv2d_backward_filter(const qnn_conv2d_shape *s, const float *x, const float *dy,
                               float *dw, qnn_workspace *ws) {
    qnn_workspace tmp = {0};
    const int rc = conv2d_backward_filter_ws(s, x, dy, dw, ws ? ws : &tmp);
    qnn_workspace_release(&tmp);
    return rc;
}

/* ------------------------------------------------------------ bias */

int qnn_bias_add(size_t rows, size_t C, const float *y, const float *b, float *out) {
    const int nt = qnn_threads_for(rows * C);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (long r = 0; r < (long)rows; r++) {
        const float *yr = y + (size_t)r * C;
        float *o = out + (size_t)r * C;
        for (size_t c = 0; c < C; c++) o[c] = yr[c] + b[c];
    }
    return QNN_OK;
}

#define QNN_BIAS_ROWS 256 /* fixed reduction blocks: the same sums for any thread count */

int qnn_bias_grad(size_t rows, size_t C, const float *dy, float *db) {
    /* C == 0: nothing to sum, whatever rows says (a zero-size dy may have huge other dims;
     * walking its row blocks would take forever) */
    const size_t nblk = C ? (rows + QNN_BIAS_ROWS - 1) / QNN_BIAS_ROWS : 0;
    if (nblk == 0) {
        for (size_t c = 0; c < C; c++) db[c] = 0.0f;
        return QNN_OK;
    }
    double *part = qnn_aligned_alloc(nblk * C * sizeof(double));
    if (!part) return QNN_ENOMEM;
    const int nt = qnn_threads_for(rows * C);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (long bk = 0; bk < (long)nblk; bk++) {
        double *p = part + (size_t)bk * C;
        for (size_t c = 0; c < C; c++) p[c] = 0.0;
        const size_t r1 = min_sz(rows, ((size_t)bk + 1) * QNN_BIAS_ROWS);
        for (size_t r = (size_t)bk * QNN_BIAS_ROWS; r < r1; r++)
            for (size_t c = 0; c < C; c++) p[c] += (double)dy[r * C + c];
    }
    for (size_t c = 0; c < C; c++) {
        double acc = 0.0;
        for (size_t bk = 0; bk < nblk; bk++) acc += part[bk * C + c];
        db[c] = (float)acc;
    }
    qnn_aligned_free(part);
    return QNN_OK;
}
