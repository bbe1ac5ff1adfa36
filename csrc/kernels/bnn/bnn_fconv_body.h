/* A direct float convolution with the float GEMM's arithmetic, compiled once per ISA.
 *
 * The first layer of a binary/low-bit network is float (the model itself is float there) and has
 * tiny K (3x3x1 for Fashion-MNIST), where the packed GEMM spends its time packing. This computes
 * each output exactly as kernels/gemm does for K <= its KC (256): acc = 0, then acc += x_k*w_k in
 * im2col order (kh, kw, c) with padded taps as 0*w, then 1*acc. Each step is a fused
 * multiply-add in the AVX2/AVX-512 builds (QNN_FCONV_FMA, as the sgemm microkernels of those
 * ISAs) and a multiply then an add in the reference build (as the reference microkernel). deploy.convert uses it only after checking it
 * reproduces the model's layer bit for bit, so a changed GEMM falls back instead of drifting.
 * Included by bnn_ref.c / bnn_avx2.c / bnn_avx512.c, which define QNN_FN. */
#include <math.h>
#include <stddef.h>

#include "kernels/bnn/bnn.h"

#define FCONV_NC 64

void QNN_FN(qnn_fconv_pixel)(const qnn_conv2d_shape *s, const float *x, const float *w, size_t n,
                             size_t oh, size_t ow, float *zr) {
    const size_t K = s->KH * s->KW * s->C, CO = s->CO;
    float xr[QNN_FCONV_KMAX];
    const long long ih0 = (long long)(oh * s->sh) - (long long)s->pt;
    const long long iw0 = (long long)(ow * s->sw) - (long long)s->pl;
    const size_t row = s->KW * s->C;
    if (ih0 >= 0 && ih0 + (long long)s->KH <= (long long)s->H && iw0 >= 0 &&
        iw0 + (long long)s->KW <= (long long)s->W) {
        /* interior pixel: each kernel row is KW*C contiguous input floats */
        for (size_t kh = 0; kh < s->KH; kh++) {
            const float *src = x + ((n * s->H + (size_t)ih0 + kh) * s->W + (size_t)iw0) * s->C;
            for (size_t i = 0; i < row; i++) xr[kh * row + i] = src[i];
        }
    } else {
        for (size_t kh = 0; kh < s->KH; kh++) {
            const long long ih = ih0 + (long long)kh;
            for (size_t kw = 0; kw < s->KW; kw++) {
                const long long iw = iw0 + (long long)kw;
                float *d = xr + (kh * s->KW + kw) * s->C;
                if (ih < 0 || ih >= (long long)s->H || iw < 0 || iw >= (long long)s->W)
                    for (size_t c = 0; c < s->C; c++) d[c] = 0.0f;
                else
                    for (size_t c = 0; c < s->C; c++)
                        d[c] = x[((n * s->H + (size_t)ih) * s->W + (size_t)iw) * s->C + c];
            }
        }
    }
#ifdef QNN_FCONV_FMA
#define QNN_MAC(acc, a, b) fmaf((a), (b), (acc))
#else
#define QNN_MAC(acc, a, b) ((acc) + (a) * (b))
#endif
#ifdef QNN_FCONV_ZMM
    /* Accumulators held in zmm registers (the array form keeps them on the stack, a store and
     * reload per k); the same fused multiply-add per element, so the same bits. */
    size_t c0 = 0;
    for (; c0 + 64 <= CO; c0 += 64) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t k = 0; k < K; k++) {
            const __m512 xk = _mm512_set1_ps(xr[k]);
            const float *wk = w + k * CO + c0;
            a0 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(wk), a0);
            a1 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(wk + 16), a1);
            a2 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(wk + 32), a2);
            a3 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(wk + 48), a3);
        }
        _mm512_storeu_ps(zr + c0, a0);
        _mm512_storeu_ps(zr + c0 + 16, a1);
        _mm512_storeu_ps(zr + c0 + 32, a2);
        _mm512_storeu_ps(zr + c0 + 48, a3);
    }
    for (; c0 + 16 <= CO; c0 += 16) {
        __m512 a0 = _mm512_setzero_ps();
        for (size_t k = 0; k < K; k++)
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(xr[k]), _mm512_loadu_ps(w + k * CO + c0), a0);
        _mm512_storeu_ps(zr + c0, a0);
    }
#else
    size_t c0 = 0;
    for (; c0 + FCONV_NC <= CO; c0 += FCONV_NC) {
        float acc[FCONV_NC];
        for (int j = 0; j < FCONV_NC; j++) acc[j] = 0.0f;
        for (size_t k = 0; k < K; k++) {
            const float xk = xr[k];
            const float *wk = w + k * CO + c0;
            for (int j = 0; j < FCONV_NC; j++) acc[j] = QNN_MAC(acc[j], xk, wk[j]);
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
            for (int j = 0; j < 32; j++) acc[j] = QNN_MAC(acc[j], xk, wk[j]);
        }
        for (int j = 0; j < 32; j++) zr[c0 + j] = 1.0f * acc[j];
    }
    for (; c0 + 16 <= CO; c0 += 16) {
        float acc[16];
        for (int j = 0; j < 16; j++) acc[j] = 0.0f;
        for (size_t k = 0; k < K; k++) {
            const float xk = xr[k];
            const float *wk = w + k * CO + c0;
            for (int j = 0; j < 16; j++) acc[j] = QNN_MAC(acc[j], xk, wk[j]);
        }
        for (int j = 0; j < 16; j++) zr[c0 + j] = 1.0f * acc[j];
    }
#endif
    for (size_t c = c0; c < CO; c++) {
        float acc = 0.0f;
        for (size_t k = 0; k < K; k++) acc = QNN_MAC(acc, xr[k], w[k * CO + c]);
        zr[c] = 1.0f * acc;
    }
}
#undef QNN_MAC
