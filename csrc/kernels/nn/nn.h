/* Memory-bound training kernels: 2-D pooling (NHWC), batch normalisation (channels last),
 * softmax cross-entropy and the element-wise activations, forward and backward.
 *
 * Plain C11 compiled once: these loops stream memory, so per-ISA variants would gain little;
 * inner loops run over the contiguous channel axis so GCC vectorises them at -O3. Every kernel
 * threads over batch items or rows above qnn_threads_for's threshold, and each output element is
 * computed in an order that does not depend on the thread count, so results are bit-identical
 * for any number of threads. Arguments are validated by the binding (csrc/module/py_nn.c);
 * kernels only return QNN_NN_ENOMEM when a small scratch allocation fails. */
#ifndef QNN_KERNELS_NN_H
#define QNN_KERNELS_NN_H

#include <stddef.h>

#include "kernels/quant/quant.h"
#include <stdint.h>

/* Same values as enum qnn_status (kernels/quant/quant.h), which qnn_raise_status understands. */
enum { QNN_NN_OK = 0, QNN_NN_ENOMEM = -1 };

/* ------------------------------------------------------------------ pooling */

enum qnn_pool_kind { QNN_POOL_MAX = 0, QNN_POOL_AVG = 1 };

/* x (n, h, w, c) -> y (n, ho, wo, c); window (ph, pw), strides (sh, sw), explicit padding
 * (pt, pb, pl, pr) with every pad < its window size (so every window has a valid cell), and
 * ph * w <= INT32_MAX (max-pool backward keeps in-window offsets as int32). */
typedef struct qnn_pool2d_shape {
    int64_t n, h, w, c;
    int64_t ph, pw, sh, sw;
    int64_t pt, pb, pl, pr;
    int64_t ho, wo;
} qnn_pool2d_shape;

int qnn_pool2d_forward(int kind, const qnn_pool2d_shape *s, const float *x, float *y);
/* dx gets the gradient of sum(y * dy): max -> dy to the first maximum in window scan order
 * (row-major over the window), recomputed from x; avg -> dy / valid-cell count to each valid cell. */
int qnn_pool2d_backward(int kind, const qnn_pool2d_shape *s, const float *x, const float *dy,
                        float *dx);

/* x (n, hw, c) -> y (n, c): max or mean over the hw positions (hw <= INT32_MAX). */
int qnn_global_pool_forward(int kind, size_t n, size_t hw, size_t c, const float *x, float *y);
int qnn_global_pool_backward(int kind, size_t n, size_t hw, size_t c, const float *x,
                             const float *dy, float *dx);

/* ------------------------------------------------------------------ batch normalisation */

/* x viewed as (m, c), statistics per channel over the m rows: mean and biased variance (as
 * tf.nn.moments), accumulated in double; inv_std = 1 / sqrt(var + eps) in float32. */
int qnn_bn_stats(size_t m, size_t c, const float *x, float eps, float *mean, float *var,
                 float *inv_std);
/* y = (x - mean) * inv_std * gamma + beta, as x * scale + shift per channel.
 * gamma / beta may be NULL (1 / 0: Keras scale=False / center=False). */
int qnn_bn_apply(size_t m, size_t c, const float *x, const float *mean, const float *inv_std,
                 const float *gamma, const float *beta, float *y);
/* Inference: y = (x - mean) / sqrt(var + eps) * gamma + beta with the given statistics. */
int qnn_bn_inference(size_t m, size_t c, const float *x, const float *mean, const float *var,
                     float eps, const float *gamma, const float *beta, float *y);
/* Training-mode backward: dbeta = sum dy, dgamma = sum dy * xhat (xhat = (x - mean) * inv_std),
 * dx = gamma * inv_std * (dy - dbeta / m - xhat * dgamma / m). gamma may be NULL. */
int qnn_bn_backward(size_t m, size_t c, const float *dy, const float *x, const float *gamma,
                    const float *mean, const float *inv_std, float *dx, float *dgamma,
                    float *dbeta);

/* The activation that follows a batch norm, fused into its forward and backward so the
 * normalised tensor z never travels to memory: the forward writes act(z) directly, and the
 * backward recomputes z from x chunk by chunk to form dz = act'(z) * dy in cache. Results are
 * bit-identical to the unfused layers (same formulas, same order, the quantizer under FTZ). */
enum qnn_bn_act_kind { QNN_BN_ACT_NONE = 0, QNN_BN_ACT_RELU = 1, QNN_BN_ACT_QUANT = 2 };
typedef struct qnn_bn_act {
    int kind;
    /* QNN_BN_ACT_QUANT: the quantizer's forward and backward kernel parameters and scales,
     * as qnn_quant_forward / qnn_quant_backward take them (sc may be NULL) */
    const qnn_quant_params *pf, *pb;
    const float *sc_f, *sc2_f, *sc_b;
    size_t S_f, inner_f, S_b, inner_b;
} qnn_bn_act;

/* y = act(x * scale + shift), the batch-norm affine of qnn_bn_apply followed by `act`. */
int qnn_bn_apply_act(size_t m, size_t c, const float *x, const float *mean, const float *inv_std,
                     const float *gamma, const float *beta, const qnn_bn_act *act, float *y);
/* qnn_bn_backward for dy = d(loss)/d(act(z)) (beta needed to recompute z). */
int qnn_bn_backward_act(size_t m, size_t c, const float *dy, const float *x, const float *gamma,
                        const float *beta, const float *mean, const float *inv_std,
                        const qnn_bn_act *act, float *dx, float *dgamma, float *dbeta);

/* act(bn(x)) followed by max pooling whose windows tile x: pool (ph, pw) with strides equal to
 * it and no padding; rows/columns past the last whole window are dropped, as 'valid' pooling
 * does. x is (n, h, w, c), y/idx/xsel are (n, ho, wo, c) with ho = h / ph, wo = w / pw. */
typedef struct qnn_bn_pool_shape {
    size_t n, h, w, c, ph, pw, ho, wo;
} qnn_bn_pool_shape;

/* Training forward from the batch statistics (qnn_bn_stats): y = maxpool(act(bn(x))), with
 * idx the winning cell of each window (row-major in the window, first maximum; ph * pw <= 256)
 * and xsel its x, which the backward needs. */
int qnn_bn_act_maxpool_forward(const qnn_bn_pool_shape *s, const float *x, const float *mean,
                               const float *inv_std, const float *gamma, const float *beta,
                               const qnn_bn_act *act, float *y, uint8_t *idx, float *xsel);
/* qnn_bn_backward for dy = d(loss)/dy of the pooled output (n, ho, wo, c). */
int qnn_bn_act_maxpool_backward(const qnn_bn_pool_shape *s, const float *dy, const float *x,
                                const uint8_t *idx, const float *xsel, const float *gamma,
                                const float *beta, const float *mean, const float *inv_std,
                                const qnn_bn_act *act, float *dx, float *dgamma, float *dbeta);

/* The batch-norm kernels of one ISA level (batchnorm_body.h), for the dispatch table. */
typedef struct qnn_bn_kernels {
    int (*stats)(size_t, size_t, const float *, float, float *, float *, float *);
    int (*apply)(size_t, size_t, const float *, const float *, const float *, const float *,
                 const float *, float *);
    int (*inference)(size_t, size_t, const float *, const float *, const float *, float,
                     const float *, const float *, float *);
    int (*backward)(size_t, size_t, const float *, const float *, const float *, const float *,
                    const float *, float *, float *, float *);
    int (*apply_act)(size_t, size_t, const float *, const float *, const float *, const float *,
                     const float *, const qnn_bn_act *, float *);
    int (*backward_act)(size_t, size_t, const float *, const float *, const float *,
                        const float *, const float *, const float *, const qnn_bn_act *, float *,
                        float *, float *);
    int (*maxpool_forward)(const qnn_bn_pool_shape *, const float *, const float *,
                           const float *, const float *, const float *, const qnn_bn_act *,
                           float *, uint8_t *, float *);
    int (*maxpool_backward)(const qnn_bn_pool_shape *, const float *, const float *,
                            const uint8_t *, const float *, const float *, const float *,
                            const float *, const float *, const qnn_bn_act *, float *, float *,
                            float *);
} qnn_bn_kernels;
extern const qnn_bn_kernels qnn_bn_kernels_ref, qnn_bn_kernels_avx2, qnn_bn_kernels_avx512;

/* ------------------------------------------------------------------ softmax cross-entropy */

/* logits (n, k). Targets: labels (n,) class indices (int32 if labels32, else int64, all in
 * [0, k), checked by the caller), or probs (n, k) (exactly one of labels32/labels64/probs is
 * non-NULL). loss[i] = -sum_j t_ij * log_softmax_ij, dlogits = softmax - t. */
int qnn_softmax_xent(size_t n, size_t k, const float *logits, const int32_t *labels32,
                     const int64_t *labels64, const float *probs, float *loss, float *dlogits);

/* ------------------------------------------------------------------ optimizer updates */

/* In-place Keras 2.x updates of n elements of w from gradient g (see optim.c; formulas in
 * qnn_ext/optimizers.py). Optional slots are NULL when the optimizer has none. */
int qnn_sgd_update(size_t n, float *w, const float *g, float *v, float lr, float momentum,
                   int nesterov);
int qnn_adam_update(size_t n, float *w, const float *g, float *m, float *v, float *vhat,
                    float lr_t, float beta_1, float beta_2, float eps);
int qnn_rmsprop_update(size_t n, float *w, const float *g, float *ms, float *mom, float *mg,
                       float lr, float rho, float momentum, float eps);

/* ------------------------------------------------------------------ activations */

enum qnn_act_kind {
    QNN_ACT_LINEAR = 0,
    QNN_ACT_RELU,        /* x > 0 ? x : alpha * x (alpha 0: plain relu, as keras relu(alpha=)) */
    QNN_ACT_LEAKY_RELU,  /* same formula; a separate name because Keras has both */
    QNN_ACT_SIGMOID,
    QNN_ACT_TANH,
    QNN_ACT_SOFTMAX,     /* over the last axis: rows of length k */
};

/* n elements (softmax: n / k rows of k). */
int qnn_activation_forward(int kind, size_t n, size_t k, float alpha, const float *x, float *y);
/* relu / leaky_relu read x, sigmoid / tanh / softmax read y (the forward output), linear
 * neither; pointers not read may be NULL. */
int qnn_activation_backward(int kind, size_t n, size_t k, float alpha, const float *x,
                            const float *y, const float *dy, float *dx);

#endif
