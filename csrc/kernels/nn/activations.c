/* Element-wise activations and the row softmax, forward and backward.
 *
 * Gradients follow TF's kernels: ReluGrad passes dy where x > 0 (0 at x == 0), LeakyReluGrad
 * uses alpha * dy where x <= 0, SigmoidGrad dy * y * (1 - y), TanhGrad dy * (1 - y^2) and
 * SoftmaxGrad (dy - sum(dy * y)) * y, all from the saved forward output where TF uses it. */
#include <math.h>
#include <string.h>

#include "kernels/nn/nn.h"
#include "kernels/nn/nn_internal.h"

/* ------------------------------------------------------------------ softmax rows */

static void softmax_row(size_t k, const float *restrict x, float *restrict y) {
    float mx = x[0];
    for (size_t j = 1; j < k; j++) mx = x[j] > mx ? x[j] : mx;
    for (size_t j = 0; j < k; j++) y[j] = qnn_nn_expf(x[j] - mx);
    const float sf = (float)qnn_nn_sum_f64(k, y);
    for (size_t j = 0; j < k; j++) y[j] = y[j] / sf;
}

static void softmax_back_row(size_t k, const float *restrict y, const float *restrict dy,
                             float *restrict dx) {
    const float sf = (float)qnn_nn_dot_f64(k, dy, y);
    for (size_t j = 0; j < k; j++) dx[j] = (dy[j] - sf) * y[j];
}

/* ------------------------------------------------------------------ element-wise */

/* Cephes' tanhf, branch-free so it vectorises (libm's tanhf is a call per element): an odd
 * polynomial below 0.625, where 1 - 2 / (e^2|x| + 1) would cancel, and that formula above. */
static inline float tanh_f32(float x) {
    const float a = fabsf(x), z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    const float small = p * z * x + x;
    const float big = 1.0f - 2.0f / (qnn_nn_expf(a + a) + 1.0f);
    const float r = a < 0.625f ? small : (x < 0.0f ? -big : big);
    /* NaN and the zeros (keeping their sign) come back unchanged */
    return x == x && a != 0.0f ? r : x;
}

static void act_forward_range(int kind, size_t n, float alpha, const float *restrict x,
                              float *restrict y) {
    switch (kind) {
    case QNN_ACT_RELU:
    case QNN_ACT_LEAKY_RELU:
        /* '<' so NaN passes through; alpha == 0 gives +0 rather than alpha * x = -0 */
        if (alpha == 0.0f) {
            for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        } else {
            for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? alpha * x[i] : x[i];
        }
        break;
    case QNN_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) {
            /* exp of a non-positive argument never overflows */
            const float e = qnn_nn_expf(-fabsf(x[i]));
            y[i] = x[i] >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
        }
        break;
    case QNN_ACT_TANH:
        for (size_t i = 0; i < n; i++) y[i] = tanh_f32(x[i]);
        break;
    default: /* linear */
        memmove(y, x, n * sizeof(float));
        break;
    }
}

static void act_backward_range(int kind, size_t n, float alpha, const float *restrict x,
                               const float *restrict y, const float *restrict dy,
                               float *restrict dx) {
    switch (kind) {
    case QNN_ACT_RELU:
    case QNN_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : alpha * dy[i];
        break;
    case QNN_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
        break;
    case QNN_ACT_TANH:
        for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
    default: /* linear */
        memmove(dx, dy, n * sizeof(float));
        break;
    }
}

/* Element-wise work is cut into fixed blocks so each thread streams a contiguous range. */
#define ACT_BLOCK ((size_t)1 << 14)

static double act_cost(int kind) {
    return (kind == QNN_ACT_SIGMOID || kind == QNN_ACT_TANH || kind == QNN_ACT_SOFTMAX) ? 10.0 : 1.0;
}

int qnn_activation_forward(int kind, size_t n, size_t k, float alpha, const float *x, float *y) {
    if (n == 0) return QNN_NN_OK;
    const int nt = qnn_nn_threads(act_cost(kind) * (double)n);
    if (kind == QNN_ACT_SOFTMAX) {
        if (k == 0) return QNN_NN_OK;
        const size_t rows = n / k;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (size_t r = 0; r < rows; r++) softmax_row(k, x + r * k, y + r * k);
        return QNN_NN_OK;
    }
    const size_t blocks = (n + ACT_BLOCK - 1) / ACT_BLOCK;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t b = 0; b < blocks; b++) {
        const size_t i0 = b * ACT_BLOCK, len = n - i0 < ACT_BLOCK ? n - i0 : ACT_BLOCK;
        act_forward_range(kind, len, alpha, x + i0, y + i0);
    }
    return QNN_NN_OK;
}

int qnn_activation_backward(int kind, size_t n, size_t k, float alpha, const float *x,
                            const float *y, const float *dy, float *dx) {
    if (n == 0) return QNN_NN_OK;
    const int nt = qnn_nn_threads((kind == QNN_ACT_SOFTMAX ? 4.0 : 1.0) * (double)n);
    if (kind == QNN_ACT_SOFTMAX) {
        if (k == 0) return QNN_NN_OK;
        const size_t rows = n / k;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (size_t r = 0; r < rows; r++) softmax_back_row(k, y + r * k, dy + r * k, dx + r * k);
        return QNN_NN_OK;
    }
    const size_t blocks = (n + ACT_BLOCK - 1) / ACT_BLOCK;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t b = 0; b < blocks; b++) {
        const size_t i0 = b * ACT_BLOCK, len = n - i0 < ACT_BLOCK ? n - i0 : ACT_BLOCK;
        act_backward_range(kind, len, alpha, x ? x + i0 : NULL, y ? y + i0 : NULL, dy + i0,
                           dx + i0);
    }
    return QNN_NN_OK;
}
