/* A direct float convolution with the float GEMM's arithmetic, compiled once per ISA.
 *
 * The first layer of a binary/low-bit network is float (the model itself is float there) and has
 * tiny K (3x3x1 for Fashion-MNIST), where the packed GEMM spends its time packing. This computes
 * each output exactly as kernels/gemm does for K <= its KC (256): acc = 0, then acc += x_k*w_k in
 * im2col order (kh, kw, c) with padded taps as 0*w, a multiply and an add per step (FMA
 * contraction is off at build time), then 1*acc. deploy.convert uses it only after checking it
 * reproduces the model's layer bit for bit, so a changed GEMM falls back instead of drifting.
 * Included by bnn_ref.c / bnn_avx2.c / bnn_avx512.c, which define QNN_FN. */
#include <stddef.h>
#include <string.h>

#include "kernels/bnn/bnn.h"

#define FCONV_NC 64

void QNN_FN(qnn_fconv_pixel)(const qnn_conv2d_shape *s, const float *x, const float *w, size_t n,
                             size_t oh, size_t ow, float *zr) {
    const size_t K = s->KH * s->KW * s->C, CO = s->CO;
    float xr[QNN_FCONV_KMAX];
    for (size_t kh = 0; kh < s->KH; kh++) {
        const long long ih = (long long)(oh * s->sh) - (long long)s->pt + (long long)kh;
        for (size_t kw = 0; kw < s->KW; kw++) {
            const long long iw = (long long)(ow * s->sw) - (long long)s->pl + (long long)kw;
            float *d = xr + (kh * s->KW + kw) * s->C;
            if (ih < 0 || ih >= (long long)s->H || iw < 0 || iw >= (long long)s->W)
                for (size_t c = 0; c < s->C; c++) d[c] = 0.0f;
            else
                memcpy(d, x + ((n * s->H + (size_t)ih) * s->W + (size_t)iw) * s->C, s->C * sizeof(float));
        }
    }
    size_t c0 = 0;
    for (; c0 + FCONV_NC <= CO; c0 += FCONV_NC) {
        float acc[FCONV_NC];
        for (int j = 0; j < FCONV_NC; j++) acc[j] = 0.0f;
        for (size_t k = 0; k < K; k++) {
            const float xk = xr[k];
            const float *wk = w + k * CO + c0;
            for (int j = 0; j < FCONV_NC; j++) acc[j] += xk * wk[j];
        }
        for (int j = 0; j < FCONV_NC; j++) zr[c0 + j] = 1.0f * acc[j];
    }
    /* 32- and 16-wide remainders: each accumulator vector is a 4-cycle add chain over K, so
     * the widest group that fits keeps the most chains in flight. */
    for (; c0 + 32 <= CO; c0 += 32) {
        float acc[32];
        for (int j = 0; j < 32; j++) acc[j] = 0.0f;
        for (size_t k = 0; k < K; k++) {
            const float xk = xr[k];
            const float *wk = w + k * CO + c0;
            for (int j = 0; j < 32; j++) acc[j] += xk * wk[j];
        }
        for (int j = 0; j < 32; j++) zr[c0 + j] = 1.0f * acc[j];
    }
    for (; c0 + 16 <= CO; c0 += 16) {
        float acc[16];
        for (int j = 0; j < 16; j++) acc[j] = 0.0f;
        for (size_t k = 0; k < K; k++) {
            const float xk = xr[k];
            const float *wk = w + k * CO + c0;
            for (int j = 0; j < 16; j++) acc[j] += xk * wk[j];
        }
        for (int j = 0; j < 16; j++) zr[c0 + j] = 1.0f * acc[j];
    }
    for (size_t c = c0; c < CO; c++) {
        float acc = 0.0f;
        for (size_t k = 0; k < K; k++) acc += xr[k] * w[k * CO + c];
        zr[c] = 1.0f * acc;
    }
}
