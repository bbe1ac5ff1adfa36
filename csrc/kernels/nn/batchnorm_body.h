/* Batch normalisation over channels-last tensors viewed as (m rows, c channels).
 *
 * Per-channel sums walk the rows and update a c-long accumulator (contiguous, so vectorised),
 * in double: a float sum over a 64x32x32 batch keeps only ~7 significant bits of each term. The
 * rows are cut into a fixed number of chunks that depends only on m (never on the thread count),
 * each chunk has its own partial sums and the partials are added in chunk order, so statistics
 * and gradients are bit-identical for any number of threads. Mean and variance use two passes
 * (variance of x - mean, as tf.nn.moments), which stays accurate when |mean| >> std.
 *
 * This body is compiled once per ISA level (batchnorm_{ref,avx2,avx512}.c, QNN_FN names the
 * variant): the loops are plain C that the compiler vectorises at each width. Channels are the
 * vector lanes and every sum keeps its own accumulator, so no level reorders an addition and
 * all levels give the same bits (FMA contraction is off for the whole build). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/nn/nn.h"
#include "kernels/nn/nn_internal.h"
#include "runtime/fpenv.h"

#define BN_CHUNK_ROWS 256
#define BN_MAX_CHUNKS 32

static size_t bn_chunks(size_t m) {
    size_t k = m / BN_CHUNK_ROWS + 1;
    return k > BN_MAX_CHUNKS ? BN_MAX_CHUNKS : k;
}

/* First row of chunk j of K (balanced split, no m * j overflow). */
static size_t chunk_start(size_t m, size_t K, size_t j) {
    const size_t q = m / K, r = m % K;
    return j * q + (j < r ? j : r);
}

/* Sum the K partial vectors (K x c) in chunk order into tot (c). */
static void reduce_chunks(size_t K, size_t c, const double *part, double *tot) {
    for (size_t cc = 0; cc < c; cc++) tot[cc] = 0.0;
    for (size_t j = 0; j < K; j++) {
        const double *restrict p = part + j * c;
        for (size_t cc = 0; cc < c; cc++) tot[cc] += p[cc];
    }
}

int QNN_FN(qnn_bn_stats)(size_t m, size_t c, const float *x, float eps, float *mean, float *var,
                         float *inv_std) {
    if (c == 0) return QNN_NN_OK;
    const size_t K = bn_chunks(m);
    double *part = malloc((K + 2) * c * sizeof(double));
    if (!part) return QNN_NN_ENOMEM;
    double *mean_d = part + K * c, *tot = mean_d + c;
    const int nt = qnn_nn_threads((double)m * (double)c);

#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t j = 0; j < K; j++) {
        double *restrict a = part + j * c;
        for (size_t cc = 0; cc < c; cc++) a[cc] = 0.0;
        for (size_t r = chunk_start(m, K, j); r < chunk_start(m, K, j + 1); r++) {
            const float *restrict xr = x + r * c;
            for (size_t cc = 0; cc < c; cc++) a[cc] += (double)xr[cc];
        }
    }
    reduce_chunks(K, c, part, tot);
    /* m == 0 gives NaN statistics, as the mean of an empty batch does in NumPy / TF */
    for (size_t cc = 0; cc < c; cc++) mean_d[cc] = tot[cc] / (double)m;

#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t j = 0; j < K; j++) {
        double *restrict a = part + j * c;
        const double *restrict mu = mean_d;
        for (size_t cc = 0; cc < c; cc++) a[cc] = 0.0;
        for (size_t r = chunk_start(m, K, j); r < chunk_start(m, K, j + 1); r++) {
            const float *restrict xr = x + r * c;
            for (size_t cc = 0; cc < c; cc++) {
                const double d = (double)xr[cc] - mu[cc];
                a[cc] += d * d;
            }
        }
    }
    reduce_chunks(K, c, part, tot);
    for (size_t cc = 0; cc < c; cc++) {
        mean[cc] = (float)mean_d[cc];
        var[cc] = (float)(tot[cc] / (double)m);
        /* float32 like Keras's rsqrt(variance + epsilon) */
        inv_std[cc] = 1.0f / sqrtf(var[cc] + eps);
    }
    free(part);
    return QNN_NN_OK;
}

/* Keras folds the affine part this way: x * (gamma * inv) + (beta - mean * gamma * inv). */
static void bn_affine(size_t c, const float *mean, const float *inv_std, const float *gamma,
                      const float *beta, float *scale, float *shift) {
    for (size_t cc = 0; cc < c; cc++) {
        scale[cc] = inv_std[cc] * (gamma ? gamma[cc] : 1.0f);
        shift[cc] = (beta ? beta[cc] : 0.0f) - mean[cc] * scale[cc];
    }
}

int QNN_FN(qnn_bn_apply)(size_t m, size_t c, const float *x, const float *mean,
                         const float *inv_std, const float *gamma, const float *beta, float *y) {
    if (c == 0 || m == 0) return QNN_NN_OK;
    float *scale = malloc(2 * c * sizeof(float));
    if (!scale) return QNN_NN_ENOMEM;
    float *shift = scale + c;
    bn_affine(c, mean, inv_std, gamma, beta, scale, shift);
    const int nt = qnn_nn_threads((double)m * (double)c);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t r = 0; r < m; r++) {
        const float *restrict xr = x + r * c;
        float *restrict yr = y + r * c;
        const float *restrict sc = scale, *restrict sh = shift;
        for (size_t cc = 0; cc < c; cc++) yr[cc] = xr[cc] * sc[cc] + sh[cc];
    }
    free(scale);
    return QNN_NN_OK;
}

int QNN_FN(qnn_bn_inference)(size_t m, size_t c, const float *x, const float *mean,
                             const float *var, float eps, const float *gamma, const float *beta,
                             float *y) {
    if (c == 0 || m == 0) return QNN_NN_OK;
    float *inv_std = malloc(c * sizeof(float));
    if (!inv_std) return QNN_NN_ENOMEM;
    for (size_t cc = 0; cc < c; cc++) inv_std[cc] = 1.0f / sqrtf(var[cc] + eps);
    const int rc = QNN_FN(qnn_bn_apply)(m, c, x, mean, inv_std, gamma, beta, y);
    free(inv_std);
    return rc;
}

/* a += g, b += g * (x - mean) over rows [r0, r1) (g row-major from row r0), in row order. */
static void grad_sums(size_t c, const float *x, const float *g, const float *mean, size_t r0,
                      size_t r1, double *restrict a, double *restrict b) {
    for (size_t r = r0; r < r1; r++) {
        const float *restrict xr = x + r * c, *restrict gr = g + (r - r0) * c;
        const float *restrict mu = mean;
        for (size_t cc = 0; cc < c; cc++) {
            a[cc] += (double)gr[cc];
            b[cc] += (double)gr[cc] * ((double)xr[cc] - (double)mu[cc]);
        }
    }
}

/* dx = a * (dy - b - (x - mean) * k) with a = gamma * inv_std, b = dbeta / m,
 * k = dgamma * inv_std / m, the constants formed in double and rounded once into coef (3c). */
static void grad_coefs(size_t m, size_t c, const double *sdy, const double *sdyx,
                       const float *inv_std, const float *gamma, float *coef, float *dgamma,
                       float *dbeta) {
    float *ca = coef, *cb = coef + c, *ck = coef + 2 * c;
    const double md = (double)m;
    for (size_t cc = 0; cc < c; cc++) {
        const double is = (double)inv_std[cc], g = gamma ? (double)gamma[cc] : 1.0;
        const double dg = sdyx[cc] * is;
        dbeta[cc] = (float)sdy[cc];
        dgamma[cc] = (float)dg;
        ca[cc] = (float)(g * is);
        cb[cc] = (float)(sdy[cc] / md);
        ck[cc] = (float)(dg * is / md);
    }
}

/* dx rows [r0, r1) from g (row-major from row r0); g may be dx itself (in place). */
static void grad_rows(size_t c, const float *x, const float *g, const float *mean,
                      const float *coef, size_t r0, size_t r1, float *dx) {
    for (size_t r = r0; r < r1; r++) {
        const float *restrict xr = x + r * c, *gr = g + (r - r0) * c;
        const float *restrict mu = mean, *restrict a = coef, *restrict b = coef + c,
                              *restrict k = coef + 2 * c;
        float *dr = dx + r * c;
        for (size_t cc = 0; cc < c; cc++)
            dr[cc] = a[cc] * (gr[cc] - b[cc] - (xr[cc] - mu[cc]) * k[cc]);
    }
}

int QNN_FN(qnn_bn_backward)(size_t m, size_t c, const float *dy, const float *x, const float *gamma,
                            const float *mean, const float *inv_std, float *dx, float *dgamma,
                            float *dbeta) {
    if (c == 0) return QNN_NN_OK;
    const size_t K = bn_chunks(m);
    double *part = malloc((2 * K + 2) * c * sizeof(double));
    float *coef = malloc(3 * c * sizeof(float));
    if (!part || !coef) { free(part); free(coef); return QNN_NN_ENOMEM; }
    double *part2 = part + K * c, *sdy = part2 + K * c, *sdyx = sdy + c;
    const int nt = qnn_nn_threads((double)m * (double)c);

#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t j = 0; j < K; j++) {
        double *a = part + j * c, *b = part2 + j * c;
        for (size_t cc = 0; cc < c; cc++) a[cc] = b[cc] = 0.0;
        const size_t r0 = chunk_start(m, K, j);
        grad_sums(c, x, dy + r0 * c, mean, r0, chunk_start(m, K, j + 1), a, b);
    }
    reduce_chunks(K, c, part, sdy);
    reduce_chunks(K, c, part2, sdyx);
    grad_coefs(m, c, sdy, sdyx, inv_std, gamma, coef, dgamma, dbeta);
    free(part);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t r = 0; r < m; r++) grad_rows(c, x, dy + r * c, mean, coef, r, r + 1, dx);
    free(coef);
    return QNN_NN_OK;
}

/* ------------------------------------------------------------------ fused activation */


/* Elements of z (and dz) a thread keeps at a time: 16 KB each, so they stay in L1/L2 between
 * the affine step and the activation. */
#define BN_ACT_BLOCK 4096


/* z = x * scale + shift for rows [r0, r1) into z (row-major, c wide), as qnn_bn_apply. */
static void affine_rows(size_t c, const float *x, const float *scale, const float *shift,
                        size_t r0, size_t r1, float *z) {
    for (size_t r = r0; r < r1; r++) {
        const float *restrict xr = x + r * c, *restrict sc = scale, *restrict sh = shift;
        float *restrict zr = z + (r - r0) * c;
        for (size_t cc = 0; cc < c; cc++) zr[cc] = xr[cc] * sc[cc] + sh[cc];
    }
}

/* y = act(z) for the n elements starting at flat index i0 (y points at element i0). */
static void act_forward(const qnn_bn_act *a, const float *z, float *y, size_t i0, size_t n) {
    if (a->kind == QNN_BN_ACT_RELU) {
        for (size_t i = 0; i < n; i++) y[i] = z[i] < 0.0f ? 0.0f : z[i]; /* as activations.c */
    } else if (a->kind == QNN_BN_ACT_QUANT) {
        const qnn_fpenv env = qnn_fpenv_flush_begin();
        qnn_quant_run(a->pf, z, NULL, y, a->sc_f, a->sc2_f, a->S_f, a->inner_f, i0, n, 0);
        qnn_fpenv_end(env);
    } else {
        memcpy(y, z, n * sizeof(float));
    }
}

/* dz = act'(z) * dy for n elements at flat index i0 (dy points at element i0). */
static void act_backward(const qnn_bn_act *a, const float *z, const float *dy, float *dz,
                         size_t i0, size_t n) {
    if (a->kind == QNN_BN_ACT_RELU) {
        for (size_t i = 0; i < n; i++) dz[i] = z[i] > 0.0f ? dy[i] : 0.0f * dy[i];
    } else if (a->kind == QNN_BN_ACT_QUANT) {
        const qnn_fpenv env = qnn_fpenv_flush_begin();
        qnn_quant_run(a->pb, z, dy, dz, a->sc_b, NULL, a->S_b, a->inner_b, i0, n, 1);
        qnn_fpenv_end(env);
    } else {
        memcpy(dz, dy, n * sizeof(float));
    }
}

static size_t act_rows_per_block(size_t c) { return c >= BN_ACT_BLOCK ? 1 : BN_ACT_BLOCK / c; }

int QNN_FN(qnn_bn_apply_act)(size_t m, size_t c, const float *x, const float *mean,
                             const float *inv_std, const float *gamma, const float *beta,
                             const qnn_bn_act *act, float *y) {
    if (c == 0 || m == 0) return QNN_NN_OK;
    const size_t rb = act_rows_per_block(c), nblk = (m + rb - 1) / rb;
    float *coef = malloc(2 * c * sizeof(float));
    if (!coef) return QNN_NN_ENOMEM;
    bn_affine(c, mean, inv_std, gamma, beta, coef, coef + c);
    const int nt = qnn_nn_threads((double)m * (double)c);
    float *zs = malloc((size_t)nt * rb * c * sizeof(float)); /* one z block per thread */
    if (!zs) { free(coef); return QNN_NN_ENOMEM; }
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t b = 0; b < nblk; b++) {
        float *z = zs + (size_t)QNN_NN_TID() * rb * c;
        const size_t r0 = b * rb, r1 = r0 + rb < m ? r0 + rb : m;
        affine_rows(c, x, coef, coef + c, r0, r1, z);
        act_forward(act, z, y + r0 * c, r0 * c, (r1 - r0) * c);
    }
    free(zs);
    free(coef);
    return QNN_NN_OK;
}

int QNN_FN(qnn_bn_backward_act)(size_t m, size_t c, const float *dy, const float *x,
                                const float *gamma, const float *beta, const float *mean,
                                const float *inv_std, const qnn_bn_act *act, float *dx,
                                float *dgamma, float *dbeta) {
    if (c == 0) return QNN_NN_OK;
    const size_t K = bn_chunks(m), rb = act_rows_per_block(c);
    double *part = malloc((2 * K + 2) * c * sizeof(double));
    float *coef = malloc(5 * c * sizeof(float));
    if (!part || !coef) { free(part); free(coef); return QNN_NN_ENOMEM; }
    double *part2 = part + K * c, *sdy = part2 + K * c, *sdyx = sdy + c;
    float *scale = coef + 3 * c, *shift = coef + 4 * c;
    bn_affine(c, mean, inv_std, gamma, beta, scale, shift);
    const int nt = qnn_nn_threads((double)m * (double)c);
    const int keep = act->kind == QNN_BN_ACT_QUANT;
    float *zs = malloc((size_t)nt * 2 * rb * c * sizeof(float)); /* z and dz blocks per thread */
    if (!zs) { free(part); free(coef); return QNN_NN_ENOMEM; }

    /* Pass 1: the sums of qnn_bn_backward over dz, chunk by chunk in the same row order. */
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t j = 0; j < K; j++) {
        float *z = zs + (size_t)QNN_NN_TID() * 2 * rb * c, *dz = z + rb * c;
        double *a = part + j * c, *b = part2 + j * c;
        for (size_t cc = 0; cc < c; cc++) a[cc] = b[cc] = 0.0;
        const size_t ce = chunk_start(m, K, j + 1);
        for (size_t r0 = chunk_start(m, K, j); r0 < ce; r0 += rb) {
            const size_t r1 = r0 + rb < ce ? r0 + rb : ce;
            /* Quantizer STEs (tanh surrogates, clip masks with scales) cost more than a store:
             * keep dz in dx for pass 2. relu's mask is cheaper to recompute. */
            float *dzb = keep ? dx + r0 * c : dz;
            affine_rows(c, x, scale, shift, r0, r1, z);
            act_backward(act, z, dy + r0 * c, dzb, r0 * c, (r1 - r0) * c);
            grad_sums(c, x, dzb, mean, r0, r1, a, b);
        }
    }
    reduce_chunks(K, c, part, sdy);
    reduce_chunks(K, c, part2, sdyx);
    grad_coefs(m, c, sdy, sdyx, inv_std, gamma, coef, dgamma, dbeta);
    free(part);

    /* Pass 2: dx from dz, recomputed block by block (or read back from dx). */
    const size_t nblk = (m + rb - 1) / rb;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t bk = 0; bk < nblk; bk++) {
        float *z = zs + (size_t)QNN_NN_TID() * 2 * rb * c, *dz = z + rb * c;
        const size_t r0 = bk * rb, r1 = r0 + rb < m ? r0 + rb : m;
        const float *dzb = dx + r0 * c;
        if (!keep) {
            affine_rows(c, x, scale, shift, r0, r1, z);
            act_backward(act, z, dy + r0 * c, dz, r0 * c, (r1 - r0) * c);
            dzb = dz;
        }
        grad_rows(c, x, dzb, mean, coef, r0, r1, dx);
    }
    free(zs);
    free(coef);
    return QNN_NN_OK;
}

/* ------------------------------------------------------------------ fused activation + max pool */

/* act(bn(x)) followed by max pooling with windows that tile the image (stride = window, no
 * padding): each pooled row (n, oh) reads its ph image rows once, keeps z and act(z) for them in
 * a per-thread block and writes only the pooled maxima. The backward needs, per pooled element,
 * which cell won (idx, < 256 cells) and that cell's x (xsel), so neither the normalised tensor
 * nor the un-pooled activation is ever stored, and the gradient of every losing cell, zero,
 * never has to be written and read back: the batch-norm sums run over the winners only. */

static size_t pool_block(const qnn_bn_pool_shape *s) { return s->ph * s->w * s->c; }

/* First maximum of each window of the act block a (ph rows x w pixels x c) in row-major cell
 * order with strict '>' (a NaN wins), as the max-pool kernels; writes y, idx and the winner's x.
 * Cells are the outer loop and channels the inner one, so every step is a vector compare and
 * selects (bi: int32 scratch of c, the width of the float mask, a byte at the end). */
static void block_maxpool(const qnn_bn_pool_shape *s, const float *a, const float *xb, float *y,
                          uint8_t *idx, float *xsel, int32_t *restrict bi) {
    const size_t c = s->c, w = s->w;
    for (size_t ow = 0; ow < s->wo; ow++) {
        float *restrict yo = y + ow * c, *restrict xo = xsel + ow * c;
        const size_t first = ow * s->pw * c;
        memcpy(yo, a + first, c * sizeof(float));
        memcpy(xo, xb + first, c * sizeof(float));
        memset(bi, 0, c * sizeof(int32_t));
        for (size_t kh = 0; kh < s->ph; kh++) {
            for (size_t kw = kh == 0 ? 1 : 0; kw < s->pw; kw++) {
                const size_t off = first + (kh * w + kw) * c;
                const float *restrict av = a + off, *restrict xv = xb + off;
                const int32_t cell = (int32_t)(kh * s->pw + kw);
                for (size_t cc = 0; cc < c; cc++) {
                    /* the x select on the bits through the int mask: GCC 12 vectorises one
                     * float select per compare, not two */
                    const float v = av[cc], b = yo[cc];
                    /* larger, or the window's first NaN (max pooling's rule, pool.c) */
                    const int tk = v > b || (v != v && b == b);
                    const int32_t gt = -(int32_t)tk;
                    int32_t xn, xw;
                    memcpy(&xn, xv + cc, sizeof xn);
                    memcpy(&xw, xo + cc, sizeof xw);
                    const int32_t xs = (xn & gt) | (xw & ~gt);
                    memcpy(xo + cc, &xs, sizeof xs);
                    bi[cc] = (cell & gt) | (bi[cc] & ~gt);
                    yo[cc] = tk ? v : b;
                }
            }
        }
        uint8_t *restrict io = idx + ow * c;
        for (size_t cc = 0; cc < c; cc++) io[cc] = (uint8_t)bi[cc];
    }
}

int QNN_FN(qnn_bn_act_maxpool_forward)(const qnn_bn_pool_shape *s, const float *x,
                                       const float *mean, const float *inv_std, const float *gamma,
                                       const float *beta, const qnn_bn_act *act, float *y,
                                       uint8_t *idx, float *xsel) {
    const size_t c = s->c, rows = s->n * s->ho, blk = pool_block(s), prow = s->wo * s->c;
    if (rows == 0 || prow == 0) return QNN_NN_OK;
    float *coef = malloc(2 * c * sizeof(float));
    if (!coef) return QNN_NN_ENOMEM;
    bn_affine(c, mean, inv_std, gamma, beta, coef, coef + c);
    const int nt = qnn_nn_threads((double)rows * (double)blk);
    float *zs = malloc((size_t)nt * 2 * blk * sizeof(float)); /* z and act(z) blocks per thread */
    int32_t *bis = malloc((size_t)nt * c * sizeof(int32_t));
    if (!zs || !bis) { free(zs); free(bis); free(coef); return QNN_NN_ENOMEM; }
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *z = zs + (size_t)QNN_NN_TID() * 2 * blk, *a = z + blk;
        int32_t *bi = bis + (size_t)QNN_NN_TID() * c;
        const size_t n = r / s->ho, oh = r % s->ho;
        const size_t p0 = (n * s->h + oh * s->ph) * s->w; /* first pixel of the block */
        affine_rows(c, x, coef, coef + c, p0, p0 + s->ph * s->w, z);
        act_forward(act, z, a, p0 * c, blk);
        block_maxpool(s, a, x + p0 * c, y + r * prow, idx + r * prow, xsel + r * prow, bi);
    }
    free(bis);
    free(zs);
    free(coef);
    return QNN_NN_OK;
}

int QNN_FN(qnn_bn_act_maxpool_backward)(const qnn_bn_pool_shape *s, const float *dy, const float *x,
                                        const uint8_t *idx, const float *xsel, const float *gamma,
                                        const float *beta, const float *mean, const float *inv_std,
                                        const qnn_bn_act *act, float *dx, float *dgamma,
                                        float *dbeta) {
    const size_t c = s->c, rows = s->n * s->ho, prow = s->wo * s->c, blk = pool_block(s);
    const size_t m = s->n * s->h * s->w; /* batch-norm rows: every pixel */
    if (c == 0) return QNN_NN_OK;
    /* pooled pixels in fixed chunks (a function of the shape only): thread-count independent */
    const size_t pm = rows * s->wo, K = bn_chunks(pm);
    double *part = malloc((2 * K + 2) * c * sizeof(double));
    float *coef = malloc(5 * c * sizeof(float));
    float *dzp = malloc((pm * c > 0 ? pm * c : 1) * sizeof(float));
    if (!part || !coef || !dzp) { free(part); free(coef); free(dzp); return QNN_NN_ENOMEM; }
    double *part2 = part + K * c, *sdy = part2 + K * c, *sdyx = sdy + c;
    float *scale = coef + 3 * c, *shift = coef + 4 * c;
    bn_affine(c, mean, inv_std, gamma, beta, scale, shift);
    const int nt = qnn_nn_threads((double)m * (double)c);
    const size_t zrows = BN_ACT_BLOCK / c > 0 ? BN_ACT_BLOCK / c : 1; /* pooled pixels per step */
    const size_t zlen = (zrows * c > blk ? zrows * c : blk);
    float *zs = malloc((size_t)nt * zlen * sizeof(float));
    if (!zs) { free(part); free(coef); free(dzp); return QNN_NN_ENOMEM; }

    /* Pass 1: dz of the winners (z recomputed from xsel exactly as the forward did) and the
     * sums of qnn_bn_backward over them; the losers' dz is 0 and adds nothing. */
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t j = 0; j < K; j++) {
        float *z = zs + (size_t)QNN_NN_TID() * zlen;
        double *a = part + j * c, *b = part2 + j * c;
        for (size_t cc = 0; cc < c; cc++) a[cc] = b[cc] = 0.0;
        const size_t ce = chunk_start(pm, K, j + 1);
        for (size_t p0 = chunk_start(pm, K, j); p0 < ce; p0 += zrows) {
            const size_t p1 = p0 + zrows < ce ? p0 + zrows : ce;
            affine_rows(c, xsel, scale, shift, p0, p1, z);
            /* pooled flat index p * c + cc has channel cc, all a quantizer's scale needs */
            act_backward(act, z, dy + p0 * c, dzp + p0 * c, p0 * c, (p1 - p0) * c);
            grad_sums(c, xsel, dzp + p0 * c, mean, p0, p1, a, b);
        }
    }
    reduce_chunks(K, c, part, sdy);
    reduce_chunks(K, c, part2, sdyx);
    grad_coefs(m, c, sdy, sdyx, inv_std, gamma, coef, dgamma, dbeta);
    free(part);

    /* Pass 2: dx of every pixel; the winners' dz is scattered into a zeroed block. */
    size_t cell_off[256]; /* window cell -> offset of its first channel in the block */
    for (size_t k = 0; k < s->ph * s->pw; k++) cell_off[k] = ((k / s->pw) * s->w + k % s->pw) * c;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *g = zs + (size_t)QNN_NN_TID() * zlen;
        const size_t n = r / s->ho, oh = r % s->ho;
        const size_t p0 = (n * s->h + oh * s->ph) * s->w;
        memset(g, 0, blk * sizeof(float));
        const float *restrict d = dzp + r * prow;
        const uint8_t *restrict id = idx + r * prow;
        for (size_t ow = 0; ow < s->wo; ow++) {
            float *restrict gw = g + ow * s->pw * c;
            for (size_t cc = 0; cc < c; cc++) gw[cell_off[id[ow * c + cc]] + cc] = d[ow * c + cc];
        }
        grad_rows(c, x, g, mean, coef, p0, p0 + s->ph * s->w, dx);
    }
    /* rows below the last window (h not a multiple of ph) take no gradient from the pool */
    const size_t tail = s->h - s->ho * s->ph;
    if (tail) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (size_t n = 0; n < s->n; n++) {
            float *g = zs + (size_t)QNN_NN_TID() * zlen;
            memset(g, 0, s->w * c * sizeof(float));
            for (size_t h = s->ho * s->ph; h < s->h; h++) {
                const size_t p0 = (n * s->h + h) * s->w;
                grad_rows(c, x, g, mean, coef, p0, p0 + s->w, dx);
            }
        }
    }
    free(zs);
    free(dzp);
    free(coef);
    return QNN_NN_OK;
}

const qnn_bn_kernels QNN_FN(qnn_bn_kernels) = {
    QNN_FN(qnn_bn_stats),        QNN_FN(qnn_bn_apply),
    QNN_FN(qnn_bn_inference),    QNN_FN(qnn_bn_backward),
    QNN_FN(qnn_bn_apply_act),    QNN_FN(qnn_bn_backward_act),
    QNN_FN(qnn_bn_act_maxpool_forward), QNN_FN(qnn_bn_act_maxpool_backward),
};
