/* Helpers shared by the nn kernel files (not part of the kernel API). */
#ifndef QNN_KERNELS_NN_INTERNAL_H
#define QNN_KERNELS_NN_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "runtime/threads.h"

#ifdef _OPENMP
#include <omp.h>
#define QNN_NN_TID() omp_get_thread_num()
#else
#define QNN_NN_TID() 0
#endif

/* Work estimates multiply several sizes; saturate rather than wrap so a huge call still threads. */
static inline size_t qnn_nn_work(double units) {
    return units >= (double)SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)units;
}

static inline int qnn_nn_threads(double units) { return qnn_threads_for(qnn_nn_work(units)); }

/* exp in float32 that GCC can vectorise (libm's expf is a call per element): Cephes' range
 * reduction x = n ln2 + r (ln2 split in two for exactness) and degree-6 polynomial, ~1 ulp in
 * [ln FLT_MIN, ln FLT_MAX]. Results below FLT_MIN flush to 0 (softmax / sigmoid lose nothing),
 * above FLT_MAX give +inf, NaN propagates. 2^n is applied as two factors so n = 128 and
 * n = -126 both stay normal numbers. */
static inline float qnn_nn_expf(float x) {
    const float hi = 88.72283935546875f, lo = -87.3365478515625f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    xc = xc == xc ? xc : 0.0f;
    /* round to nearest by the 1.5 * 2^23 trick (no rintf call) */
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float e = p * r * r + r + 1.0f;
    const int32_t ni = (int32_t)n, n1 = ni / 2, n2 = ni - n1;
    const uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    float y = e * s1 * s2;
    y = x > hi ? INFINITY : y;
    y = x < lo ? 0.0f : y;
    return x == x ? y : x;
}

/* Sum of n floats in double with 8 interleaved partial sums: the fixed order keeps results
 * independent of threads and ISA while letting GCC vectorise (a single running double sum is a
 * serial dependency chain it may not reorder). */
static inline double qnn_nn_sum_f64(size_t n, const float *restrict p) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) acc[u] += (double)p[j + u];
    double s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; j < n; j++) s += (double)p[j];
    return s;
}

/* Same for sum of a[j] * b[j]. */
static inline double qnn_nn_dot_f64(size_t n, const float *restrict a, const float *restrict b) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) acc[u] += (double)a[j + u] * (double)b[j + u];
    double s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; j < n; j++) s += (double)a[j] * (double)b[j];
    return s;
}

#endif
