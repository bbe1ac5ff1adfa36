/* Softmax cross-entropy over rows of logits, with its gradient, in one pass per row.
 *
 * log-sum-exp with the row maximum subtracted: exp never overflows (logits of 1e4 stay finite)
 * and the sum of exponentials (accumulated in double) is >= 1, so its log is exact to float
 * rounding. loss = -sum_j t_j (z_j - lse) is formed as sum_j t_j ((m - z_j) + log s), which keeps
 * the small differences exact instead of subtracting two large numbers. */
#include <math.h>

#include "kernels/nn/nn.h"
#include "kernels/nn/nn_internal.h"

int qnn_softmax_xent(size_t n, size_t k, const float *logits, const int32_t *labels32,
                     const int64_t *labels64, const float *probs, float *loss, float *dlogits) {
    if (n == 0) return QNN_NN_OK;
    if (k == 0) {
        for (size_t i = 0; i < n; i++) loss[i] = 0.0f;
        return QNN_NN_OK;
    }
    /* exp costs ~10 element-wise operations */
    const int nt = qnn_nn_threads(10.0 * (double)n * (double)k);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float *restrict z = logits + i * k;
        float *restrict d = dlogits + i * k;
        float mx = z[0];
        for (size_t j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
        for (size_t j = 0; j < k; j++) d[j] = qnn_nn_expf(z[j] - mx);
        const double s = qnn_nn_sum_f64(k, d);
        const double logs = log(s);
        const float sf = (float)s;
        for (size_t j = 0; j < k; j++) d[j] = d[j] / sf;
        if (probs) {
            const float *restrict t = probs + i * k;
            double l = 0.0;
            for (size_t j = 0; j < k; j++) {
                /* t == 0 contributes nothing even where the log-probability is -inf */
                if (t[j] != 0.0f) l += (double)t[j] * (((double)mx - (double)z[j]) + logs);
                d[j] -= t[j];
            }
            loss[i] = (float)l;
        } else {
            const size_t lab = labels32 ? (size_t)labels32[i] : (size_t)labels64[i];
            loss[i] = (float)(((double)mx - (double)z[lab]) + logs);
            d[lab] -= 1.0f;
        }
    }
    return QNN_NN_OK;
}
