/* Batch-norm entry points: each calls the variant of the ISA level the dispatch table holds
 * (batchnorm_body.h compiled per level). */
#include "kernels/nn/nn.h"
#include "runtime/dispatch.h"

int qnn_bn_stats(size_t m, size_t c, const float *x, float eps, float *mean, float *var,
                 float *inv_std) {
    return qnn_dispatch_table.bn->stats(m, c, x, eps, mean, var, inv_std);
}

int qnn_bn_apply(size_t m, size_t c, const float *x, const float *mean, const float *inv_std,
                 const float *gamma, const float *beta, float *y) {
    return qnn_dispatch_table.bn->apply(m, c, x, mean, inv_std, gamma, beta, y);
}

int qnn_bn_inference(size_t m, size_t c, const float *x, const float *mean, const float *var,
                     float eps, const float *gamma, const float *beta, float *y) {
    return qnn_dispatch_table.bn->inference(m, c, x, mean, var, eps, gamma, beta, y);
}

int qnn_bn_backward(size_t m, size_t c, const float *dy, const float *x, const float *gamma,
                    const float *mean, const float *inv_std, float *dx, float *dgamma,
                    float *dbeta) {
    return qnn_dispatch_table.bn->backward(m, c, dy, x, gamma, mean, inv_std, dx, dgamma, dbeta);
}

int qnn_bn_apply_act(size_t m, size_t c, const float *x, const float *mean, const float *inv_std,
                     const float *gamma, const float *beta, const qnn_bn_act *act, float *y) {
    return qnn_dispatch_table.bn->apply_act(m, c, x, mean, inv_std, gamma, beta, act, y);
}

int qnn_bn_backward_act(size_t m, size_t c, const float *dy, const float *x, const float *gamma,
                        const float *beta, const float *mean, const float *inv_std,
                        const qnn_bn_act *act, float *dx, float *dgamma, float *dbeta) {
    return qnn_dispatch_table.bn->backward_act(m, c, dy, x, gamma, beta, mean, inv_std, act, dx,
                                               dgamma, dbeta);
}

int qnn_bn_act_maxpool_forward(const qnn_bn_pool_shape *s, const float *x, const float *mean,
                               const float *inv_std, const float *gamma, const float *beta,
                               const qnn_bn_act *act, float *y, uint8_t *idx, float *xsel) {
    return qnn_dispatch_table.bn->maxpool_forward(s, x, mean, inv_std, gamma, beta, act, y, idx,
                                                  xsel);
}

int qnn_bn_act_maxpool_backward(const qnn_bn_pool_shape *s, const float *dy, const float *x,
                                const uint8_t *idx, const float *xsel, const float *gamma,
                                const float *beta, const float *mean, const float *inv_std,
                                const qnn_bn_act *act, float *dx, float *dgamma, float *dbeta) {
    return qnn_dispatch_table.bn->maxpool_backward(s, dy, x, idx, xsel, gamma, beta, mean,
                                                   inv_std, act, dx, dgamma, dbeta);
}
