/* Data-dependent scale entry points: each calls the variant of the ISA level the dispatch
 * table holds (quant_auto_body.h compiled per level). */
#include "kernels/quant/quant.h"
#include "runtime/dispatch.h"

int qnn_quant_auto_bits(const qnn_quant_params *p, const qnn_auto_params *a,
                        const qnn_channel_layout *L, const float *x, float *y,
                        const float *scale_in, float *scale_out) {
    return qnn_dispatch_table.qauto->bits(p, a, L, x, y, scale_in, scale_out);
}

int qnn_quant_auto_linear(const qnn_quant_params *p, const qnn_auto_params *a,
                          const qnn_channel_layout *L, const float *x, float *y, float *scale_out) {
    return qnn_dispatch_table.qauto->linear(p, a, L, x, y, scale_out);
}

int qnn_quant_auto_binary(const qnn_quant_params *p, const qnn_auto_params *a,
                          const qnn_channel_layout *L, const float *x, float *y,
                          float *scale_out) {
    return qnn_dispatch_table.qauto->binary(p, a, L, x, y, scale_out);
}

int qnn_quant_auto_ternary(const qnn_quant_params *p, const qnn_auto_params *a,
                           const qnn_channel_layout *L, const float *x, float *y,
                           float *scale_out) {
    return qnn_dispatch_table.qauto->ternary(p, a, L, x, y, scale_out);
}

int qnn_quant_stochastic(const qnn_quant_params *p, const qnn_auto_params *a,
                         const qnn_channel_layout *L, const float *x, float *y,
                         const float *scale_in, float *scale_out) {
    return qnn_dispatch_table.qauto->stochastic(p, a, L, x, y, scale_in, scale_out);
}
