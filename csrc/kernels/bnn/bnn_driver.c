/* Drivers of the integer convolutions: im2col of packed words / u8 levels (or none when the
 * input rows already are the GEMM rows: 1x1 stride 1, or a kernel covering the whole input as
 * for a Dense after Flatten), the zero-padding correction of binary convs, the tile loop over
 * the dispatched microkernel and epilogue, and max pooling on levels and packed signs. */
#include <stdlib.h>
#include <string.h>

#include "kernels/bnn/bnn.h"
#include "runtime/dispatch.h"
#include "runtime/threads.h"
#include "runtime/workspace.h"

void qnn_bnn_ws_release(qnn_bnn_ws *ws) {
    qnn_aligned_free(ws->ptr);
    ws->ptr = NULL;
    ws->size = 0;
}

static void *ws_reserve(qnn_bnn_ws *ws, size_t bytes) {
    if (ws->ptr && ws->size >= bytes) return ws->ptr;
    void *p = qnn_aligned_alloc(bytes);
    if (!p) return NULL;
    qnn_aligned_free(ws->ptr);
    ws->ptr = p;
    ws->size = bytes;
    return p;
}

static size_t round64(size_t b) { return (b + 63) / 64 * 64; }

/* The GEMM rows are the input rows themselves (no im2col). */
static int rows_are_input(const qnn_conv2d_shape *s) {
    const int nopad = !(s->pt | s->pb | s->pl | s->pr);
    if (!nopad || s->dh != 1 || s->dw != 1) return 0;
    if (s->KH == 1 && s->KW == 1 && s->sh == 1 && s->sw == 1) return 1;
    return s->KH == s->H && s->KW == s->W; /* one output pixel per image */
}

/* Valid kernel-tap range [lo, hi) of an output coordinate along one axis. */
static void tap_range(size_t o, size_t st, size_t p0, size_t k, size_t in, size_t *lo, size_t *hi) {
    const long long base = (long long)(o * st) - (long long)p0;
    long long a = base < 0 ? -base : 0;
    long long b = (long long)in - base;
    if (b > (long long)k) b = (long long)k;
    if (a > b) a = b;
    *lo = (size_t)a;
    *hi = (size_t)b;
}

/* The input window of output pixel m = (n*HO + oh)*WO + ow of a pooling: image n, its first
 * valid input row/column (ih0, iw0) and its valid height/width (hh, ww), padding clipped. */
typedef struct pool_window {
    size_t n, ih0, iw0, hh, ww;
} pool_window;

static pool_window window_of(const qnn_conv2d_shape *s, size_t m) {
    const size_t ow = m % s->WO, oh = (m / s->WO) % s->HO;
    size_t h0, h1, w0, w1;
    tap_range(oh, s->sh, s->pt, s->KH, s->H, &h0, &h1);
    tap_range(ow, s->sw, s->pl, s->KW, s->W, &w0, &w1);
    return (pool_window){m / (s->WO * s->HO), oh * s->sh + h0 - s->pt, ow * s->sw + w0 - s->pl,
                         h1 - h0, w1 - w0};
}

/* Class of each output coordinate by its valid tap range; returns the class count. */
static size_t classify(size_t n_out, size_t st, size_t p0, size_t k, size_t in, size_t *cls,
                       size_t *lo, size_t *hi) {
    size_t n = 0;
    for (size_t o = 0; o < n_out; o++) {
        size_t l, h, c;
        tap_range(o, st, p0, k, in, &l, &h);
        for (c = 0; c < n; c++)
            if (lo[c] == l && hi[c] == h) break;
        if (c == n) { lo[n] = l; hi[n] = h; n++; }
        cls[o] = c;
    }
    return n;
}

/* im2col of one output pixel's taps: `elem` bytes per input pixel, `fill` for padded taps.
 * Packed binary rows are a few words per tap, so whole words are copied inline (a memcpy call per
 * tap costs more than the copy). */
static void gather_row(const qnn_conv2d_shape *s, const uint8_t *x, size_t elem, int fill,
                       size_t m, uint8_t *row) {
    const size_t ow = m % s->WO, oh = (m / s->WO) % s->HO, n = m / (s->WO * s->HO);
    const int words = elem % 8 == 0;
    for (size_t kh = 0; kh < s->KH; kh++) {
        const long long ih = (long long)(oh * s->sh) - (long long)s->pt + (long long)kh;
        const int row_ok = ih >= 0 && ih < (long long)s->H;
        const uint8_t *xr = row_ok ? x + (n * s->H + (size_t)ih) * s->W * elem : NULL;
        for (size_t kw = 0; kw < s->KW; kw++) {
            const long long iw = (long long)(ow * s->sw) - (long long)s->pl + (long long)kw;
            uint8_t *dst = row + (kh * s->KW + kw) * elem;
            if (!row_ok || iw < 0 || iw >= (long long)s->W) {
                memset(dst, fill, elem);
            } else if (words) {
                const uint64_t *src = (const uint64_t *)(xr + (size_t)iw * elem);
                uint64_t *d = (uint64_t *)dst;
                for (size_t i = 0; i < elem / 8; i++) d[i] = src[i];
            } else {
                memcpy(dst, xr + (size_t)iw * elem, elem);
            }
        }
    }
}

/* kind 0: binary weights, 1: ternary weights, 2: ternary weights on ternary activations (word
 * pairs per k; padding is all-zero pairs, which contribute nothing, so no correction). */
static int xconv2d(const qnn_conv2d_shape *s, const uint64_t *x, const uint64_t *w,
                   const int32_t *wsum, const qnn_epilogue *e, void *out, qnn_bnn_ws *ws, int kind) {
    if (s->groups != 1 || s->dh != 1 || s->dw != 1) return QNN_EINVAL;
    const int ternary = kind >= 1;
    const size_t apl = kind == 2 ? 2 : 1; /* activation words per channel word */
    const size_t Cw = qnn_bnn_words(s->C) * apl, Kw = s->KH * s->KW * Cw;
    const size_t M = s->N * s->HO * s->WO, CO = s->CO, NB = (CO + QNN_BNN_NR - 1) / QNN_BNN_NR;
    const int direct = rows_are_input(s);
    const int padded = kind != 2 && (s->pt | s->pb | s->pl | s->pr) != 0;
    size_t *rcls = NULL, *ccls = NULL, nrc = 0, ncc = 0;
    /* workspace: [im2col rows][row-class and column-class tables][correction vectors] */
    const size_t a_bytes = direct ? 0 : round64(M * Kw * 8);
    const size_t t_bytes = padded ? round64((s->HO + s->WO) * 3 * sizeof(size_t) * 2) : 0;
    const size_t c_bytes = padded ? round64(s->HO * s->WO * CO * 4) : 0;
    /* The correction table is at most (classes of rows) x (classes of cols) x CO, bounded by
     * HO*WO*CO above. */
    uint8_t *base = ws_reserve(ws, a_bytes + t_bytes + c_bytes + 64);
    if (!base) return QNN_ENOMEM;
    const uint64_t *A = direct ? x : (const uint64_t *)base;
    const size_t lda = direct ? (s->KH == 1 && s->KW == 1 ? Cw : s->H * s->W * Cw) : Kw;
    int32_t *corr = NULL;
    if (padded) {
        size_t *t = (size_t *)(base + a_bytes);
        rcls = t; ccls = t + s->HO;
        size_t *rlo = ccls + s->WO, *rhi = rlo + s->HO, *clo = rhi + s->HO, *chi = clo + s->WO;
        nrc = classify(s->HO, s->sh, s->pt, s->KH, s->H, rcls, rlo, rhi);
        ncc = classify(s->WO, s->sw, s->pl, s->KW, s->W, ccls, clo, chi);
        corr = (int32_t *)(base + a_bytes + t_bytes);
        for (size_t r = 0; r < nrc; r++)
            for (size_t c = 0; c < ncc; c++) {
                int32_t *v = corr + (r * ncc + c) * CO;
                memset(v, 0, CO * sizeof *v);
                for (size_t kh = 0; kh < s->KH; kh++)
                    for (size_t kw = 0; kw < s->KW; kw++) {
                        if (kh >= rlo[r] && kh < rhi[r] && kw >= clo[c] && kw < chi[c]) continue;
                        const int32_t *ws_tap = wsum + (kh * s->KW + kw) * CO;
                        for (size_t o = 0; o < CO; o++) v[o] -= ws_tap[o];
                    }
            }
        /* From here rlo/clo flag the classes with every tap valid (no correction). */
        for (size_t r = 0; r < nrc; r++) rlo[r] = (rlo[r] == 0 && rhi[r] == s->KH);
        for (size_t c = 0; c < ncc; c++) clo[c] = (clo[c] == 0 && chi[c] == s->KW);
    }
    const size_t ldo = e->mode == QNN_EPI_BITS ? 2 * qnn_bnn_words(CO)
                     : e->mode == QNN_EPI_TBITS ? 4 * qnn_bnn_words(CO) : CO;
    if (e->mode == QNN_EPI_BITS || e->mode == QNN_EPI_TBITS) memset(out, 0, M * ldo * 4);
    /* The ternary panel has the same shape per channel block with two planes per word. */
    const qnn_bgemm_ukernel uk = kind == 2 ? qnn_dispatch_table.ttgemm
                               : ternary ? qnn_dispatch_table.tgemm : qnn_dispatch_table.bgemm;
    const qnn_epilogue_fn epi = qnn_dispatch_table.bnn_epilogue;
    const size_t MR = (size_t)(kind == 2 ? qnn_dispatch_table.ttgemm_mr
                               : ternary ? qnn_dispatch_table.tgemm_mr : qnn_dispatch_table.bgemm_mr);
    const size_t planes = ternary ? 2 : 1;
    const size_t kwords = Kw / apl; /* the microkernel's k counts channel words (pairs for kind 2) */
    /* One word of a tile row costs about what one element of streaming work does (the
     * threshold qnn_threads_for is tuned for), per output channel. */
    const int nt = qnn_threads_for(M * CO * Kw);
    if (!direct) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (size_t m = 0; m < M; m++)
            gather_row(s, (const uint8_t *)x, Cw * 8, 0, m, (uint8_t *)(base + m * Kw * 8));
    }
    const size_t ntiles = (M + MR - 1) / MR;
    const size_t *rfull = padded ? ccls + s->WO : NULL;                /* = rlo */
    const size_t *cfull = padded ? ccls + s->WO + 2 * s->HO : NULL; /* = clo */
    /* Channel blocks outside, pixel tiles inside: a block's weights (Kw x 32 words) stay in L1
     * while the activation rows, read as 8-byte broadcasts, stream from L2. */
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t bt = 0; bt < NB * ntiles; bt++) {
        int32_t tile[QNN_TILE_MR_MAX * QNN_BNN_NR];
        const int32_t *cp[QNN_TILE_MR_MAX];
        const size_t nb = bt / ntiles, t = bt % ntiles;
        const size_t m0 = t * MR, mr = M - m0 < MR ? M - m0 : MR;
        int any = 0;
        if (padded) {
            size_t ow = m0 % s->WO, oh = (m0 / s->WO) % s->HO;
            for (size_t i = 0; i < mr; i++) {
                const size_t r = rcls[oh], c = ccls[ow];
                cp[i] = NULL;
                if (!(rfull[r] && cfull[c])) { cp[i] = corr + (r * ncc + c) * CO; any = 1; }
                if (++ow == s->WO) { ow = 0; if (++oh == s->HO) oh = 0; }
            }
        }
        const size_t n0 = nb * QNN_BNN_NR, nr = CO - n0 < QNN_BNN_NR ? CO - n0 : QNN_BNN_NR;
        uk(mr, kwords, A + m0 * lda, lda, w + nb * kwords * planes * QNN_BNN_NR, tile);
        void *o = e->mode == QNN_EPI_FLOAT ? (void *)((float *)out + m0 * ldo)
                : e->mode == QNN_EPI_CODES ? (void *)((uint8_t *)out + m0 * ldo)
                                           : (void *)((uint32_t *)out + m0 * ldo);
        epi(e, mr, n0, nr, tile, QNN_BNN_NR, any ? cp : NULL, o, ldo);
    }
    return QNN_OK;
}

int qnn_bconv2d(const qnn_conv2d_shape *s, const uint64_t *x, const uint64_t *w,
                const int32_t *wsum, const qnn_epilogue *e, void *out, qnn_bnn_ws *ws) {
    return xconv2d(s, x, w, wsum, e, out, ws, 0);
}

int qnn_tconv2d(const qnn_conv2d_shape *s, const uint64_t *x, const uint64_t *w,
                const int32_t *wsum, const qnn_epilogue *e, void *out, qnn_bnn_ws *ws) {
    return xconv2d(s, x, w, wsum, e, out, ws, 1);
}

int qnn_ttconv2d(const qnn_conv2d_shape *s, const uint64_t *x, const uint64_t *w,
                 const qnn_epilogue *e, void *out, qnn_bnn_ws *ws) {
    return xconv2d(s, x, w, NULL, e, out, ws, 2);
}

int qnn_iconv2d(const qnn_conv2d_shape *s, const uint8_t *x, uint8_t zp, const int8_t *w,
                const qnn_epilogue *e, void *out, qnn_bnn_ws *ws) {
    if (s->groups != 1 || s->dh != 1 || s->dw != 1) return QNN_EINVAL;
    const size_t K = s->KH * s->KW * s->C, Kq = (K + 3) / 4;
    const size_t M = s->N * s->HO * s->WO, CO = s->CO, NB = (CO + QNN_INT8_NR - 1) / QNN_INT8_NR;
    const int direct = rows_are_input(s) && K % 4 == 0;
    const size_t lda = direct ? K : 4 * Kq;
    uint8_t *A = direct ? NULL : ws_reserve(ws, round64(M * lda) + 64);
    if (!direct && !A) return QNN_ENOMEM;
    const qnn_igemm_ukernel uk = qnn_dispatch_table.igemm;
    const qnn_epilogue_fn epi = qnn_dispatch_table.bnn_epilogue;
    const size_t MR = (size_t)qnn_dispatch_table.igemm_mr;
    const int nt = qnn_threads_for(M * CO * Kq);
    if (!direct) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (size_t m = 0; m < M; m++) {
            gather_row(s, x, s->C, zp, m, A + m * lda);
            memset(A + m * lda + K, 0, lda - K); /* zero weights there too */
        }
    }
    const uint8_t *Ap = direct ? x : A;
    const size_t ldo = e->mode == QNN_EPI_BITS ? 2 * qnn_bnn_words(CO)
                     : e->mode == QNN_EPI_TBITS ? 4 * qnn_bnn_words(CO) : CO;
    if (e->mode == QNN_EPI_BITS || e->mode == QNN_EPI_TBITS) memset(out, 0, M * ldo * 4);
    const size_t ntiles = (M + MR - 1) / MR;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t t = 0; t < ntiles; t++) {
        int32_t tile[QNN_TILE_MR_MAX * QNN_INT8_NR];
        const size_t m0 = t * MR, mr = M - m0 < MR ? M - m0 : MR;
        for (size_t nb = 0; nb < NB; nb++) {
            const size_t n0 = nb * QNN_INT8_NR, nr = CO - n0 < QNN_INT8_NR ? CO - n0 : QNN_INT8_NR;
            uk(mr, Kq, Ap + m0 * lda, lda, w + nb * Kq * 4 * QNN_INT8_NR, tile);
            void *o = e->mode == QNN_EPI_FLOAT ? (void *)((float *)out + m0 * ldo)
                    : e->mode == QNN_EPI_CODES ? (void *)((uint8_t *)out + m0 * ldo)
                                               : (void *)((uint32_t *)out + m0 * ldo);
            epi(e, mr, n0, nr, tile, QNN_INT8_NR, NULL, o, ldo);
        }
    }
    return QNN_OK;
}

int qnn_bnn_maxpool_tbits(const qnn_conv2d_shape *s, const uint64_t *x, uint64_t *out) {
    /* max of {-1, 0, 1}: +1 if any cell is positive, else 0 if any is >= 0, else -1; per bit,
     * positive = nz & ~sign and >= 0 = ~(sign & nz). Padding bits (0, 0) stay (0, 0). */
    const size_t C = s->C, M = s->N * s->HO * s->WO;
    if (C == 0) return QNN_OK; /* an empty output: no need to visit its M = N*HO*WO cells */
    const int nt = qnn_threads_for(M * C * s->KH * s->KW);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t m = 0; m < M; m++) {
        const pool_window pw = window_of(s, m);
        const size_t n = pw.n, ih0 = pw.ih0, iw0 = pw.iw0;
        for (size_t c = 0; c + 1 < C; c += 2) {
            uint64_t gt0 = 0, ge0 = 0;
            for (size_t i = 0; i < pw.hh; i++)
                for (size_t j = 0; j < pw.ww; j++) {
                    const uint64_t *p = x + ((n * s->H + ih0 + i) * s->W + iw0 + j) * C + c;
                    gt0 |= p[1] & ~p[0];
                    ge0 |= ~(p[0] & p[1]);
                }
            out[m * C + c] = ~ge0;
            out[m * C + c + 1] = gt0 | ~ge0;
        }
    }
    return QNN_OK;
}

int qnn_bnn_maxpool(const qnn_conv2d_shape *s, int bits, const void *x, void *out) {
    const size_t C = s->C, M = s->N * s->HO * s->WO;
    if (C == 0) return QNN_OK; /* an empty output: no need to visit its M = N*HO*WO cells */
    const int nt = qnn_threads_for(M * C * s->KH * s->KW);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t m = 0; m < M; m++) {
        const pool_window pw = window_of(s, m);
        const size_t n = pw.n, ih0 = pw.ih0, iw0 = pw.iw0;
        if (bits) {
            uint64_t *o = (uint64_t *)out + m * C;
            for (size_t c = 0; c < C; c++) o[c] = ~(uint64_t)0;
            for (size_t i = 0; i < pw.hh; i++)
                for (size_t j = 0; j < pw.ww; j++) {
                    const uint64_t *p = (const uint64_t *)x + ((n * s->H + ih0 + i) * s->W + iw0 + j) * C;
                    for (size_t c = 0; c < C; c++) o[c] &= p[c];
                }
        } else {
            uint8_t *o = (uint8_t *)out + m * C;
            memset(o, 0, C);
            for (size_t i = 0; i < pw.hh; i++)
                for (size_t j = 0; j < pw.ww; j++) {
                    const uint8_t *p = (const uint8_t *)x + ((n * s->H + ih0 + i) * s->W + iw0 + j) * C;
                    for (size_t c = 0; c < C; c++) o[c] = p[c] > o[c] ? p[c] : o[c];
                }
        }
    }
    return QNN_OK;
}

/* The pooled threshold transform shared by qnn_fthresh_pool and qnn_fconv_thresh_pool: `row`
 * gives the C values of input cell (n, ih, iw), from a tensor or computed on the fly. */
typedef const float *(*cell_fn)(const void *ctx, size_t n, size_t ih, size_t iw, float *buf);

static int thresh_pool(const qnn_conv2d_shape *s, cell_fn row, const void *ctx, const float *thr,
                       size_t nthr, const int8_t *dir, int bits, int code_mul, void *out) {
    const size_t C = s->C, M = s->N * s->HO * s->WO, words = qnn_bnn_words(C);
    const int nt = qnn_threads_for(M * C * s->KH * s->KW * 4);
    int failed = 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *buf = qnn_aligned_alloc(C * sizeof(float)), *v = qnn_aligned_alloc(C * sizeof(float));
        float *sg = qnn_aligned_alloc(C * sizeof(float));
        int32_t *lev = qnn_aligned_alloc(C * sizeof(int32_t));
        const int ok = buf && v && sg && lev;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
        /* Flat loops over channels (sign as a +-1 multiply, exact) so the compiler vectorises. */
        for (size_t c = 0; ok && c < C; c++) sg[c] = dir[c] < 0 ? -1.0f : 1.0f;
        {
#pragma omp for schedule(static)
            for (size_t m = 0; m < M; m++) {
                if (!ok) continue;
                const pool_window pw = window_of(s, m);
                const size_t n = pw.n, ih0 = pw.ih0, iw0 = pw.iw0;
                for (size_t c = 0; c < C; c++) v[c] = -__builtin_inff();
                for (size_t i = 0; i < pw.hh; i++)
                    for (size_t j = 0; j < pw.ww; j++) {
                        const float *p = row(ctx, n, ih0 + i, iw0 + j, buf);
                        for (size_t c = 0; c < C; c++) {
                            const float t = p[c] * sg[c];
                            v[c] = t > v[c] ? t : v[c];
                        }
                    }
                if (bits || nthr <= 32) { /* bits: 1 sign bit, 2 ternary word pairs */
                    for (size_t c = 0; c < C; c++) lev[c] = 0;
                    for (size_t t = 0; t < nthr; t++) {
                        const float *tt = thr + t * C;
                        for (size_t c = 0; c < C; c++) lev[c] += v[c] >= tt[c];
                    }
                } else {
                    for (size_t c = 0; c < C; c++) {
                        size_t lo = 0, hi = nthr;
                        while (lo < hi) {
                            const size_t mid = (lo + hi) / 2;
                            if (thr[mid * C + c] <= v[c]) lo = mid + 1; else hi = mid;
                        }
                        lev[c] = (int32_t)lo;
                    }
                }
                if (bits == 2) {
                    uint64_t *o = (uint64_t *)out + m * 2 * words;
                    for (size_t w = 0; w < words; w++) {
                        uint64_t sg = 0, nz = 0;
                        for (size_t b = 0; b < 64 && w * 64 + b < C; b++) {
                            sg |= (uint64_t)(lev[w * 64 + b] == 0) << b;
                            nz |= (uint64_t)(lev[w * 64 + b] != 1) << b;
                        }
                        o[2 * w] = sg;
                        o[2 * w + 1] = nz;
                    }
                } else if (bits) {
                    uint64_t *o = (uint64_t *)out + m * words;
                    for (size_t w = 0; w < words; w++) {
                        uint64_t word = 0;
                        for (size_t b = 0; b < 64 && w * 64 + b < C; b++)
                            word |= (uint64_t)(lev[w * 64 + b] == 0) << b;
                        o[w] = word;
                    }
                } else {
                    uint8_t *o = (uint8_t *)out + m * C;
                    for (size_t c = 0; c < C; c++) o[c] = (uint8_t)(lev[c] * code_mul);
                }
            }
        }
        qnn_aligned_free(buf); qnn_aligned_free(v); qnn_aligned_free(sg); qnn_aligned_free(lev);
    }
    return failed ? QNN_ENOMEM : QNN_OK;
}

typedef struct { const qnn_conv2d_shape *s; const float *z; } tensor_ctx;

static const float *tensor_cell(const void *ctx, size_t n, size_t ih, size_t iw, float *buf) {
    (void)buf;
    const tensor_ctx *t = ctx;
    return t->z + ((n * t->s->H + ih) * t->s->W + iw) * t->s->C;
}

int qnn_fthresh_pool(const qnn_conv2d_shape *s, const float *z, const float *thr, size_t nthr,
                     const int8_t *dir, int bits, int code_mul, void *out) {
    tensor_ctx t = {s, z};
    return thresh_pool(s, tensor_cell, &t, thr, nthr, dir, bits, code_mul, out);
}

typedef struct { const qnn_conv2d_shape *c; const float *x, *w; qnn_fconv_fn f; } conv_ctx;

static const float *conv_cell(const void *ctx, size_t n, size_t oh, size_t ow, float *buf) {
    const conv_ctx *t = ctx;
    t->f(t->c, t->x, t->w, n, oh, ow, buf);
    return buf;
}

int qnn_fconv_thresh_pool(const qnn_conv2d_shape *c, const qnn_conv2d_shape *p, const float *x,
                          const float *w, const float *thr, size_t nthr, const int8_t *dir, int bits,
                          int code_mul, void *out) {
    if (c->KH * c->KW * c->C > QNN_FCONV_KMAX || p->C != c->CO || p->H != c->HO || p->W != c->WO)
        return QNN_EINVAL;
    conv_ctx t = {c, x, w, qnn_dispatch_table.fconv_pixel};
    return thresh_pool(p, conv_cell, &t, thr, nthr, dir, bits, code_mul, out);
}

int qnn_fconv_small(const qnn_conv2d_shape *s, const float *x, const float *w, float *z) {
    if (s->KH * s->KW * s->C > QNN_FCONV_KMAX || s->groups != 1 || s->dh != 1 || s->dw != 1)
        return QNN_EINVAL;
    const size_t M = s->N * s->HO * s->WO;
    const qnn_fconv_fn f = qnn_dispatch_table.fconv_pixel;
    const int nt = qnn_threads_for(M * s->CO * s->KH * s->KW * s->C / 4);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t m = 0; m < M; m++)
        f(s, x, w, m / (s->WO * s->HO), (m / s->WO) % s->HO, m % s->WO, z + m * s->CO);
    return QNN_OK;
}
