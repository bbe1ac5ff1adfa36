/* Batch normalisation over channels-last tensors viewed as (m rows, c channels).
 *
 * Per-channel sums walk the rows and update a c-long accumulator (contiguous, so vectorised),
 * in double: a float sum over a 64x32x32 batch keeps only ~7 significant bits of each term. The
 * rows are cut into a fixed number of chunks that depends only on m (never on the thread count),
 * each chunk has its own partial sums and the partials are added in chunk order, so statistics
 * and gradients are bit-identical for any number of threads. Mean and variance use two passes
 * (variance of x - mean, as tf.nn.moments), which stays accurate when |mean| >> std. */
#include <math.h>
#include <stdlib.h>

#include "kernels/nn/nn.h"
#include "kernels/nn/nn_internal.h"

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

int qnn_bn_stats(size_t m, size_t c, const float *x, float eps, float *mean, float *var,
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

int qnn_bn_apply(size_t m, size_t c, const float *x, const float *mean, const float *inv_std,
                 const float *gamma, const float *beta, float *y) {
    if (c == 0 || m == 0) return QNN_NN_OK;
    float *scale = malloc(2 * c * sizeof(float));
    if (!scale) return QNN_NN_ENOMEM;
    float *shift = scale + c;
    /* Keras folds the affine part the same way: x * (gamma * inv) + (beta - mean * gamma * inv) */
    for (size_t cc = 0; cc < c; cc++) {
        scale[cc] = inv_std[cc] * (gamma ? gamma[cc] : 1.0f);
        shift[cc] = (beta ? beta[cc] : 0.0f) - mean[cc] * scale[cc];
    }
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

int qnn_bn_inference(size_t m, size_t c, const float *x, const float *mean, const float *var,
                     float eps, const float *gamma, const float *beta, float *y) {
    if (c == 0 || m == 0) return QNN_NN_OK;
    float *inv_std = malloc(c * sizeof(float));
    if (!inv_std) return QNN_NN_ENOMEM;
    for (size_t cc = 0; cc < c; cc++) inv_std[cc] = 1.0f / sqrtf(var[cc] + eps);
    const int rc = qnn_bn_apply(m, c, x, mean, inv_std, gamma, beta, y);
    free(inv_std);
    return rc;
}

int qnn_bn_backward(size_t m, size_t c, const float *dy, const float *x, const float *gamma,
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
        double *restrict a = part + j * c, *restrict b = part2 + j * c;
        const float *restrict mu = mean;
        for (size_t cc = 0; cc < c; cc++) a[cc] = b[cc] = 0.0;
        for (size_t r = chunk_start(m, K, j); r < chunk_start(m, K, j + 1); r++) {
            const float *restrict xr = x + r * c, *restrict gr = dy + r * c;
            for (size_t cc = 0; cc < c; cc++) {
                a[cc] += (double)gr[cc];
                b[cc] += (double)gr[cc] * ((double)xr[cc] - (double)mu[cc]);
            }
        }
    }
    reduce_chunks(K, c, part, sdy);
    reduce_chunks(K, c, part2, sdyx);

    /* dx = a * (dy - b - (x - mean) * k) with a = gamma * inv_std, b = dbeta / m,
     * k = dgamma * inv_std / m, the constants formed in double and rounded once. */
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
    free(part);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t r = 0; r < m; r++) {
        const float *restrict xr = x + r * c, *restrict gr = dy + r * c;
        const float *restrict mu = mean, *restrict a = ca, *restrict b = cb, *restrict k = ck;
        float *restrict dr = dx + r * c;
        for (size_t cc = 0; cc < c; cc++) dr[cc] = a[cc] * (gr[cc] - b[cc] - (xr[cc] - mu[cc]) * k[cc]);
    }
    free(coef);
    return QNN_NN_OK;
}
