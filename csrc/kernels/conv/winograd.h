/* Winograd F(2x2, 3x3) convolution (Lavin & Gray, 2015) for 3x3, stride-1, undilated,
 * ungrouped layers: each 2x2 block of output pixels ("tile") is computed from its 4x4 input
 * window as  Y = A^T [ (G g G^T) (.) (B^T d B) ] A,  so the 36 multiplies per channel pair of
 * a direct 2x2 block become 16 (2.25x fewer), at the price of adds in the transforms.
 *
 * The 16 element-wise products over all channel pairs are 16 GEMMs, (tiles x C) @ (C x CO),
 * run on the sgemm microkernels: the transformed input rows are read in place (the indirect
 * microkernel) and the transformed kernel is written straight in the packed-B sliver layout.
 * Transforms are adds, subtracts and halvings only (exact powers of two), so every ISA level
 * computes them with the same float operations; the sums differ by the GEMM's FMA only.
 *
 * The transforms are one C source per ISA (winograd_body.h, like the quantizers): scalar
 * reference, AVX2 and AVX-512 builds, vectorised over channels. */
#ifndef QNN_KERNELS_WINOGRAD_H
#define QNN_KERNELS_WINOGRAD_H

#include <stddef.h>

#include "kernels/conv/conv.h"

/* Input transform of one tile: d[i*4 + j] is the C channels of input pixel (i, j) of the
 * 4x4 window (a run of zeros where it falls in the padding); v + xi*vs receives the C channels
 * of transformed element xi = (r*4 + s) of B^T d B. */
typedef void (*qnn_wino_in_fn)(const float *const *d, float *v, size_t vs, size_t C);
/* Output transform of one tile: m + xi*ms holds the CO channels of element xi of the 16
 * products summed over input channels; y[i*2 + j] receives output pixel (i, j) of A^T m A. */
typedef void (*qnn_wino_out_fn)(const float *m, size_t ms, float *const *y, size_t CO);
/* Kernel transform of input channels [c0, c1): w is the HWIO 3 x 3 x C x CO kernel; element xi
 * of G g G^T for (c, o) goes to u[xi*ustride + (o / nr)*C*nr + c*nr + o % nr] (the packed-B
 * sliver layout of the sgemm microkernel with NR = nr), columns o >= CO of the last sliver
 * zero. */
typedef void (*qnn_wino_kernel_fn)(const float *w, size_t C, size_t CO, size_t c0, size_t c1,
                                   size_t nr, float *u, size_t ustride);

typedef struct qnn_wino_kernels {
    qnn_wino_in_fn input;
    qnn_wino_out_fn output;
    qnn_wino_kernel_fn kernel;
} qnn_wino_kernels;
extern const qnn_wino_kernels qnn_wino_kernels_ref, qnn_wino_kernels_avx2,
    qnn_wino_kernels_avx512;

/* Whether qnn_conv2d_winograd handles this shape: 3x3, strides 1, dilation 1, one group. */
int qnn_conv2d_winograd_fits(const qnn_conv2d_shape *s);
/* y = conv(x, w) (+ the bias/activation epilogue ba, as qnn_conv2d_forward), by F(2x2, 3x3).
 * Scratch from ws (its GEMM slots: this path does not call the GEMM driver). */
int qnn_conv2d_winograd(const qnn_conv2d_shape *s, const float *x, const float *w,
                        const qnn_bias_act *ba, float *y, qnn_workspace *ws);

#endif
