/* Optimizer updates (Keras 2.x SGD / Adam / RMSprop) in one pass over each variable.
 *
 * The NumPy form in qnn_ext/optimizers.py makes 6-10 passes over w and its slots, each with a
 * temporary array; here every element is read and written once. Each expression is evaluated in
 * float32 in exactly the order NumPy evaluates the Python one (the file is built with
 * -ffp-contract=off; sqrtf and '/' are correctly rounded like NumPy's), so the two agree bit for
 * bit and the result does not depend on the thread count. */
#include <math.h>

#include "kernels/nn/nn.h"
#include "kernels/nn/nn_internal.h"

static int optim_threads(size_t n) { return qnn_nn_threads(4.0 * (double)n); }

int qnn_sgd_update(size_t n, float *w, const float *g, float *v, float lr, float momentum,
                   int nesterov) {
    const int nt = optim_threads(n);
    if (!v) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (size_t i = 0; i < n; i++) w[i] -= lr * g[i];
        return QNN_NN_OK;
    }
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float vi = v[i] * momentum - lr * g[i];
        v[i] = vi;
        w[i] += nesterov ? momentum * vi - lr * g[i] : vi;
    }
    return QNN_NN_OK;
}

int qnn_adam_update(size_t n, float *w, const float *g, float *m, float *v, float *vhat,
                    float lr_t, float beta_1, float beta_2, float eps) {
    const float c1 = 1.0f - beta_1, c2 = 1.0f - beta_2;
    const int nt = optim_threads(n);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float mi = m[i] * beta_1 + c1 * gi;
        float vi = v[i] * beta_2 + c2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        if (vhat) {
            /* np.maximum: NaN wins */
            vi = (vi > vhat[i] || vi != vi) ? vi : vhat[i];
            vhat[i] = vi;
        }
        w[i] -= lr_t * mi / (sqrtf(vi) + eps);
    }
    return QNN_NN_OK;
}

int qnn_rmsprop_update(size_t n, float *w, const float *g, float *ms, float *mom, float *mg,
                       float lr, float rho, float momentum, float eps) {
    const float c = 1.0f - rho;
    const int nt = optim_threads(n);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float msi = ms[i] * rho + c * (gi * gi);
        ms[i] = msi;
        float denom = msi;
        if (mg) {
            const float mgi = mg[i] * rho + c * gi;
            mg[i] = mgi;
            denom = msi - mgi * mgi;
        }
        if (mom) {
            const float mo = mom[i] * momentum + lr * gi / sqrtf(denom + eps);
            mom[i] = mo;
            w[i] -= mo;
        } else {
            w[i] -= lr * gi / (sqrtf(denom) + eps);
        }
    }
    return QNN_NN_OK;
}
