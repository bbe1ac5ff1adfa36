/* Scalar float32 building blocks shared by the quantizer microkernels and the auto-scale code.
 * Written as the exact float32 operation sequence QKeras performs in TF (see quant_body.h). */
#ifndef QNN_KERNELS_QUANT_MATH_H
#define QNN_KERNELS_QUANT_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/common/rng.h"
#include "kernels/quant/quant.h"

#define QNN_EPS 1e-7f

/* Per-element helpers are always inlined: a call inside a loop stops vectorisation. */
#define QK_INLINE static inline __attribute__((always_inline))

/* Round half to even / floor / ceil, exact. With SSE4.1 or AArch64 these are single
 * instructions; on baseline x86-64 (the scalar reference, the auto-scale code) libm's rintf is
 * a call, so use the 2**23 trick: adding and subtracting 2**23 rounds |v| < 2**23 to an integer
 * in the default (half-to-even) mode; larger floats are integers already. */
#if defined(__SSE4_1__) || defined(__aarch64__)
#define qk_rint rintf
#define qk_floor floorf
#define qk_ceil ceilf
#else
QK_INLINE float qk_rint(float v) {
    const float a = fabsf(v);
    return a < 0x1p23f ? copysignf((a + 0x1p23f) - 0x1p23f, v) : v;
}
QK_INLINE float qk_floor(float v) {
    const float r = qk_rint(v);
    return r > v ? r - 1.0f : r;
}
QK_INLINE float qk_ceil(float v) {
    const float r = qk_rint(v);
    return r < v ? r + 1.0f : r;
}
#endif

QK_INLINE float qk_clip(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

QK_INLINE float qk_mix(const qnn_quant_params *p, float xb, float xq, int qf1) {
    if (qf1) return xq;
    if (p->flags & QNN_QF_NO_STE) return (1.0f - p->qf) * xb + p->qf * xq;
    return xb + p->qf * (xq - xb);
}

QK_INLINE float qk_ste_factor(const qnn_quant_params *p) {
    return (p->flags & QNN_QF_NO_STE) ? 1.0f - p->qf : 1.0f;
}

/* QKeras stochastic_round: floor if frac(v*inv) < u else ceil, back to the grid (precision 1/inv). */
QK_INLINE float qk_sround(float v, float inv, float u) {
    const float sx = v * inv;
    const float fl = qk_floor(sx);
    const float r = (sx - fl) < u ? fl : qk_ceil(sx);
    return r / inv;
}

QK_INLINE uint32_t qk_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
QK_INLINE float qk_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* exp and tanh in float32, written so loops using them vectorise (libm's expf/tanhf are calls
 * per element), and identical at every ISA level (same source, no FMA contraction).
 * exp: Cephes' range reduction x = n*ln2 + r with a degree-6 polynomial, ~1 ulp; clamps to
 * [-87.3, 88.7] (0 / +inf beyond), NaN propagates. tanh: Cephes' odd polynomial for |x| < 0.625
 * (keeps relative accuracy near 0), 1 - 2/(exp(2|x|) + 1) above; ~2 ulp. */
QK_INLINE float qk_expf(float x) {
    const float xc0 = x > 88.72283935546875f ? 88.72283935546875f : x;
    const float xc1 = xc0 < -87.3365478515625f ? -87.3365478515625f : xc0;
    const float xc = xc1 == xc1 ? xc1 : 0.0f;
    const float n = qk_rint(xc * 1.44269504088896341f);
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float e = (p * r2 + r) + 1.0f;
    /* 2**n in two factors so n = 128 and n = -126 stay representable */
    const int32_t ni = (int32_t)n;
    const int32_t n1 = ni / 2, n2 = ni - n1;
    const float f1 = qk_float((uint32_t)(n1 + 127) << 23), f2 = qk_float((uint32_t)(n2 + 127) << 23);
    const float out = (e * f1) * f2;
    return x != x ? x : (x > 88.72283935546875f ? INFINITY : (x < -87.3365478515625f ? 0.0f : out));
}

QK_INLINE float qk_tanhf(float x) {
    const float a = fabsf(x);
    const float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    const float small = (p * z) * x + x;
    const float big = 1.0f - 2.0f / (qk_expf(2.0f * (a > 10.0f ? 10.0f : a)) + 1.0f);
    const float t = a < 0.625f ? small : copysignf(big, x);
    return x != x ? x : t;
}

QK_INLINE float qk_sigmoid(float x, int mode) {
    if (mode == QNN_SIG_HARD) return qk_clip(0.5f * x + 0.5f, 0.0f, 1.0f);
    if (mode == QNN_SIG_SMOOTH) return qk_clip(0.1875f * x + 0.5f, 0.0f, 1.0f);
    return 1.0f / (1.0f + qk_expf(-x));
}

/* d sigmoid/dx, given x; for "real" the derivative is written through y as TF does. */
QK_INLINE float qk_dsigmoid(float x, int mode) {
    if (mode == QNN_SIG_HARD) {
        const float s = 0.5f * x + 0.5f;
        return (s >= 0.0f && s <= 1.0f) ? 0.5f : 0.0f;
    }
    if (mode == QNN_SIG_SMOOTH) {
        const float s = 0.1875f * x + 0.5f;
        return (s >= 0.0f && s <= 1.0f) ? 0.1875f : 0.0f;
    }
    const float y = 1.0f / (1.0f + qk_expf(-x));
    return y * (1.0f - y);
}


/* 2**e for an integer-valued e; below the normal range it flushes to 0 like TF's FTZ.
 * Written as selects (no early returns) so loops using it vectorise. */
QK_INLINE float qk_exp2i(float e) {
    const float ec = qk_clip(e, -127.0f, 128.0f);
    const float r = qk_float((uint32_t)((int32_t)(ec == ec ? ec : 0.0f) + 127) << 23);
    return e != e ? e : (e < -126.0f ? 0.0f : (e > 127.0f ? INFINITY : r));
}

/* Exact floor(log2 t) and round-half-even(log2 t) for t > 0 normal or +inf. Ties are impossible
 * (log2 t = k + 1/2 needs t = sqrt(2)*2**k, irrational), so rounding up exactly when the
 * mantissa is above sqrt(2)'s (0x3504F3.33...) is round-to-nearest of the true log2. */
QK_INLINE float qk_floor_log2(float t) { return (float)((int32_t)(qk_bits(t) >> 23) - 127); }
QK_INLINE float qk_round_log2(float t) {
    /* signed compares only (the mantissa has 23 bits): AVX2 has no unsigned 32-bit compare */
    const int32_t b = (int32_t)qk_bits(t);
    return (float)((b >> 23) - 127 + ((b & 0x7FFFFF) >= 0x3504F4));
}

/* QKeras _clip_power_of_two for one magnitude a >= 0: the (clipped, possibly doubled) exponent.
 * 0 (anything below eps) maps to min_exp, never to a zero output. */
QK_INLINE float qk_po2_exponent(const qnn_quant_params *p, float a, float u, int sr, int quad) {
    const float af = ((p->flags & QNN_QF_HAS_MAX) && a >= p->ub) ? p->ub : a;
    const float t = quad ? sqrtf(af) : af;
    float l;
    if (sr) {
        /* stochastic_round_po2: sample between the neighbouring powers of two so that the
         * expected value is t. */
        const float xl = qk_round_log2(t + QNN_EPS);
        const float po2 = qk_exp2i(xl);
        const float left = po2 > t ? xl - 1.0f : xl;
        const float right = po2 > t ? xl : xl + 1.0f;
        const float minv = qk_exp2i(left), maxv = qk_exp2i(right);
        const float val = u * (maxv - minv) + minv;
        l = t < val ? left : right;
    } else {
        l = (p->flags & QNN_QF_FLOOR) ? qk_floor_log2(t) : qk_round_log2(t);
    }
    l = t == 0.0f ? (float)p->min_exp : l; /* max_value == 0: log -> -inf, clipped to min_exp */
    l = qk_clip(l, (float)p->min_exp, (float)p->max_exp);
    l = quad ? 2.0f * l : l;
    return a < QNN_EPS ? (float)p->min_exp : l;
}

QK_INLINE float qk_leaky(float x, float slope) { return x > 0.0f ? x : (slope != 0.0f ? slope * x : 0.0f); }

#endif
