/* 2-D convolution for training: NHWC activations, HWIO kernels (Keras layout), any stride,
 * explicit (top, bottom, left, right) padding, dilation and groups.
 *
 * Forward and the filter gradient run the float GEMM (kernels/gemm) with im2col patches packed
 * straight from the input (implicit im2col, no column matrix); the input gradient is a GEMM
 * into a per-batch-chunk column buffer followed by a col2im *gather* (each dx element sums its
 * own contributions, so threads split dx rows without atomics). Depthwise convolutions
 * (one input channel per group) take direct loops, where a GEMM per channel would waste most
 * of each register tile. Group g uses input channels [g*Cg, (g+1)*Cg) and output channels
 * [g*COg, (g+1)*COg), Cg = C/groups, COg = CO/groups (depthwise: channel c*dm + j). */
#ifndef QNN_KERNELS_CONV_H
#define QNN_KERNELS_CONV_H

#include <stddef.h>

#include "kernels/gemm/gemm.h" /* qnn_bias_act */
#include "kernels/quant/quant.h" /* enum qnn_status */

typedef struct qnn_conv2d_shape {
    size_t N, H, W, C;        /* input x (N, H, W, C) */
    size_t KH, KW, CO;        /* kernel w (KH, KW, C/groups, CO) */
    size_t sh, sw;            /* strides >= 1 */
    size_t pt, pb, pl, pr;    /* zero padding: top, bottom, left, right */
    size_t dh, dw;            /* dilation >= 1 */
    size_t groups;            /* divides C and CO */
    size_t HO, WO;            /* output y (N, HO, WO, CO), from qnn_conv2d_out_size */
    int algo;                 /* enum qnn_conv_algo; 0 (auto) when left out of an initialiser */
} qnn_conv2d_shape;

/* How the forward (and the stride-1 input gradient, a forward convolution of dy) is computed:
 * AUTO picks Winograd F(2x2, 3x3) (winograd.h) for the 3x3 stride-1 layers where it is the
 * faster, DIRECT is always the implicit-im2col GEMM, WINOGRAD wherever the shape allows. */
enum qnn_conv_algo { QNN_CONV_AUTO = 0, QNN_CONV_DIRECT = 1, QNN_CONV_WINOGRAD = 2 };

/* Output extent (in + p0 + p1 - d*(k-1) - 1)/s + 1; returns 0, or -1 when it would be < 1. */
int qnn_conv2d_out_size(size_t in, size_t k, size_t s, size_t p0, size_t p1, size_t d,
                        size_t *out);

/* y = conv(x, w). All buffers dense, caller-owned; y is fully overwritten. ws: the scratch
 * (flipped kernel, column and partial buffers, and the GEMM's packing) is taken from it, or from a
 * temporary workspace when NULL. */
/* ba (may be NULL): bias add, relu and a quantizer fused into the GEMM epilogue
 * (qnn_bias_act_apply; its col0 and the group's mask are set here). A mask (ba->ste) has
 * qnn_conv2d_epilogue_groups(s) blocks of N*HO*WO rows of ba->mask_rb bytes. */
int qnn_conv2d_forward(const qnn_conv2d_shape *s, const float *x, const float *w,
                       const qnn_bias_act *ba, float *y, qnn_workspace *ws);
/* The column groups the forward's epilogue sees: s->groups when each group is its own GEMM, 1
 * for depthwise convolutions (direct loops, then one epilogue over the whole output). */
size_t qnn_conv2d_epilogue_groups(const qnn_conv2d_shape *s);
/* dx = d(sum(y*dy))/dx; dx (N, H, W, C) fully overwritten. */
int qnn_conv2d_backward_input(const qnn_conv2d_shape *s, const float *dy, const float *w,
                              float *dx, qnn_workspace *ws);
/* dw = d(sum(y*dy))/dw; dw (KH, KW, C/groups, CO) fully overwritten. */
int qnn_conv2d_backward_filter(const qnn_conv2d_shape *s, const float *x, const float *dy,
                               float *dw, qnn_workspace *ws);

/* out[r, c] = y[r, c] + b[c] over rows x C (out may equal y). */
int qnn_bias_add(size_t rows, size_t C, const float *y, const float *b, float *out);
/* db[c] = sum_r dy[r, c], accumulated in double over fixed row blocks, so the result does not
 * depend on the thread count. */
int qnn_bias_grad(size_t rows, size_t C, const float *dy, float *db);

#endif
