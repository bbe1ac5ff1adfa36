/* Element-wise quantizer microkernels, compiled once per ISA.
 *
 * Included by quant_ref.c (vectorisation off: the scalar reference), quant_avx2.c and
 * quant_avx512.c (same source, ISA flags on, loops marked `omp simd`). The arithmetic is written
 * as the exact float32 operation sequence QKeras performs in TF, with FMA contraction disabled at
 * build time, so every ISA level gives the same bits; tests compare the levels element by
 * element. The including file defines QNN_FN(name) (suffixes the ISA) and QNN_SIMD.
 *
 * Conventions shared by all ops (see README "Numerics"):
 *  - rintf = tf.round (round half to even, the default rounding mode);
 *  - clip lets NaN through (NaN in -> NaN out); TF's clip gradient is inclusive of both bounds;
 *  - qnoise_factor == 1 returns xq exactly (QKeras's x + (xq - x) only differs by cancellation
 *    for huge |x|); otherwise x + qf*(xq - x) in float32. */

#include "kernels/quant/quant_math.h"

/* ---------------------------------------------------------------- forward, per element */

static inline float qk_fwd_bits(const qnn_quant_params *p, float x, float s, float u0) {
    const float v = x * p->in_mul;
    const float r = (p->flags & QNN_QF_SR) ? qk_sround(v, 1.0f, u0) : rintf(v);
    const float xq = s * (qk_clip(r, p->lo, p->hi) * p->out_mul);
    return qk_mix(p, x, xq);
}

static inline float qk_fwd_bits_sign(const qnn_quant_params *p, float x, float s) {
    const float k = x != x ? x : (x >= 0.0f ? 1.0f : -1.0f);
    return qk_mix(p, x, s * k);
}

static inline float qk_hswish_pre(const qnn_quant_params *p, float x) {
    const float r = qk_clip(fmaxf(x + p->shift, 0.0f), 0.0f, p->ub);
    return x != x ? x : (x * r) / p->ub;
}

static inline float qk_fwd_autobits(const qnn_quant_params *p, float x, float s) {
    /* x/m_i, z = sign*min(floor(|xn|/s + 0.5), levels/2), out (s*m)*((m_i*z)/m); hi = levels/2 */
    const float xn = x * p->in_mul;
    const float v = floorf(fabsf(xn) / s + 0.5f);
    const float mag = v < p->hi ? v : p->hi;
    const float sg = xn > 0.0f ? 1.0f : (xn < 0.0f ? -1.0f : (xn != xn ? xn : 0.0f));
    const float xq = (s * p->m) * ((sg * mag) * p->out_mul);
    return qk_mix(p, x, xq);
}

static inline float qk_fwd_linear(const qnn_quant_params *p, float x, float qs, float u0) {
    const float c = qk_clip(x / qs, p->lo, p->hi) - p->shift;
    const float r = ((p->flags & QNN_QF_SR) ? qk_sround(c, 1.0f, u0) : rintf(c)) + p->shift;
    const float xq = r * qs;
    return p->qf == 1.0f ? xq : x + p->qf * (xq - x);
}

static inline float qk_relu_xu(const qnn_quant_params *p, float x) {
    if (p->flags & QNN_QF_QCLIP) return x <= p->cap ? qk_leaky(x, p->slope) : p->cap;
    if (p->flags & QNN_QF_UB) return x <= p->ub ? qk_leaky(x, p->slope) : p->ub;
    return qk_leaky(x, p->slope);
}

static inline float qk_fwd_relu(const qnn_quant_params *p, float x, float u0, float u1) {
    const int sr = (p->flags & QNN_QF_SR) != 0;
    const float inv_m = 1.0f / p->m;
    float xq;
    if (p->flags & QNN_QF_USE_SIGMOID) {
        const float pv = qk_sigmoid(x * p->in_mul, p->sigmoid) * p->m;
        const float r = sr ? qk_sround(pv, 2.0f, u0) : rintf(pv);
        xq = p->m_i * qk_clip(2.0f * (r * inv_m) - 1.0f, 0.0f, 1.0f - inv_m);
        if (p->slope > 0.0f) {
            const float ps = pv * p->slope;
            const float rn = sr ? qk_sround(ps, 2.0f, u1) : rintf(ps);
            xq = xq + (p->m_i * p->slope) * qk_clip(2.0f * (rn * p->out_mul) - 1.0f, -1.0f, 0.0f);
        }
    } else {
        const float pv = x * p->in_mul;
        const float r = sr ? qk_sround(pv, 2.0f, u0) : rintf(pv);
        xq = p->m_i * qk_clip(r * inv_m, 0.0f, 1.0f - inv_m);
        if (p->slope > 0.0f) {
            const float ps = pv * p->slope;
            const float rn = sr ? qk_sround(ps, 2.0f, u1) : rintf(ps);
            xq = xq + (p->m_i * p->slope) * qk_clip(rn * p->out_mul, -1.0f, 0.0f);
        }
    }
    if ((p->flags & QNN_QF_UB) && !(p->flags & QNN_QF_QCLIP)) xq = xq <= p->ub ? xq : p->ub;
    if (x != x) return x;
    return qk_mix(p, qk_relu_xu(p, x), xq);
}

static inline float qk_tanh_p(const qnn_quant_params *p, float x) {
    return (p->flags & QNN_QF_REAL) ? tanhf(x) : 2.0f * qk_sigmoid(x, p->sigmoid) - 1.0f;
}

static inline float qk_fwd_tanh(const qnn_quant_params *p, float x, float u0) {
    const float pm = qk_tanh_p(p, x) * p->m;
    const float r = (p->flags & QNN_QF_SR) ? qk_sround(pm, 2.0f, u0) : rintf(pm);
    return qk_clip(r / p->m, p->lo, p->hi);
}

static inline float qk_sigm_p(const qnn_quant_params *p, float x) {
    return (p->flags & QNN_QF_REAL) ? 1.0f / (1.0f + expf(-x)) : qk_sigmoid(x, p->sigmoid);
}

static inline float qk_fwd_sigmoid(const qnn_quant_params *p, float x, float u0) {
    const float pm = qk_sigm_p(p, x) * p->m;
    const float r = (p->flags & QNN_QF_SR) ? qk_sround(pm, 2.0f, u0) : rintf(pm);
    return qk_clip(r / p->m, p->lo, p->hi);
}

static inline float qk_ulaw_rp(const qnn_quant_params *p, float x) {
    const float pv = qk_sigmoid(x * p->in_mul, p->sigmoid) * p->m;
    return 2.0f * (rintf(pv) / p->m) - 1.0f;
}

static inline float qk_fwd_ulaw(const qnn_quant_params *p, float x) {
    const float rp = qk_ulaw_rp(p, x);
    const float sg = rp > 0.0f ? 1.0f : (rp < 0.0f ? -1.0f : (rp != rp ? rp : 0.0f));
    const float ul = (sg * logf(1.0f + p->u * fabsf(rp))) / p->log1pu;
    return p->m_i * qk_clip(ul, p->lo, p->hi);
}

static inline float qk_fwd_po2(const qnn_quant_params *p, float x, float u0) {
    if (x != x) return x;
    const float sg = x >= 0.0f ? 1.0f : -1.0f;
    const float xq = sg * qk_exp2i(qk_po2_exponent(p, fabsf(x), u0));
    return qk_mix(p, x, xq);
}

static inline float qk_fwd_relu_po2(const qnn_quant_params *p, float x, float u0, float u1) {
    if (x != x) return x;
    const float xu = (p->flags & QNN_QF_HAS_MAX) ? (x <= p->ub ? qk_leaky(x, p->slope) : p->ub)
                                                 : qk_leaky(x, p->slope);
    float xq;
    if (x >= 0.0f || p->slope == 0.0f) {
        xq = qk_exp2i(qk_po2_exponent(p, x > 0.0f ? x : 0.0f, u0));
    } else {
        xq = -qk_exp2i(qk_po2_exponent(p, (-x) * p->slope, u1));
    }
    return qk_mix(p, xu, xq);
}

static inline float qk_sign01(const qnn_quant_params *p, float x) {
    const float k = x >= 0.0f ? 1.0f : -1.0f;
    return (p->flags & QNN_QF_USE01) ? (k + 1.0f) / 2.0f : k;
}

static inline float qk_fwd_sign(const qnn_quant_params *p, float x, float s) {
    return x != x ? x : s * qk_sign01(p, x);
}

static inline float qk_fwd_ternary(const qnn_quant_params *p, float x, float s) {
    const float sg = x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
    return x != x ? x : s * ((fabsf(x) >= p->thr ? 1.0f : 0.0f) * sg);
}

static inline float qk_fwd_stoch_sign(const qnn_quant_params *p, float x, float s, float s2,
                                      float u0) {
    const float pr = qk_sigmoid((p->temperature * x) / s2, p->sigmoid);
    const float q = pr >= u0 ? 1.0f : ((p->flags & QNN_QF_USE01) ? 0.0f : -1.0f);
    return x != x ? x : s * q;
}

static inline float qk_fwd_stoch_ternary(const qnn_quant_params *p, float x, float s, float s2,
                                         float u0, float u1) {
    /* s2 = std + eps; T = s / (2*(std+eps)) as QKeras */
    const float xn = x / s2, T = s / (2.0f * s2);
    const float p0 = qk_sigmoid(p->temperature * (xn - T), p->sigmoid);
    const float p1 = qk_sigmoid(p->temperature * (xn + T), p->sigmoid);
    const float q0 = p0 >= u0 ? 1.0f : -1.0f, q1 = p1 >= u1 ? 1.0f : -1.0f;
    return x != x ? x : s * ((q0 + q1) / 2.0f);
}

static inline float qk_fwd_fn(const qnn_quant_params *p, float x) {
    float f;
    if (p->op == QNN_Q_SMOOTH_SIGMOID) f = qk_sigmoid(x, QNN_SIG_SMOOTH);
    else if (p->op == QNN_Q_BINARY_SIGMOID) f = rintf(qk_sigmoid(x, QNN_SIG_HARD));
    else f = qk_sigmoid(x, QNN_SIG_HARD);
    return p->m == 2.0f ? 2.0f * f - 1.0f : f; /* the *_tanh variants: 2*f - 1 */
}

/* ---------------------------------------------------------------- backward, per element */

static inline float qk_tanh_surr(float x) {
    const float t = tanhf(x);
    return 1.0f - t * t;
}

static inline float qk_bwd_hswish(const qnn_quant_params *p, float x, float dy) {
    const float t = x + p->shift;
    const float r = qk_clip(fmaxf(t, 0.0f), 0.0f, p->ub);
    const float g = (dy * qk_ste_factor(p)) / p->ub;
    return g * r + ((t > 0.0f && t <= p->ub) ? g * x : 0.0f);
}

static inline float qk_bwd_linear(const qnn_quant_params *p, float x, float dy, float qs) {
    const float v = x / qs;
    const float a = p->qf * dy;
    return (dy - a) + ((v >= p->lo && v <= p->hi) ? (a * qs) / qs : 0.0f);
}

static inline float qk_dleaky(float x, float slope) { return x > 0.0f ? 1.0f : slope; }

static inline float qk_bwd_relu(const qnn_quant_params *p, float x, float dy) {
    float g;
    if (p->flags & QNN_QF_QCLIP) g = x <= p->cap ? qk_dleaky(x, p->slope) : 0.0f;
    else if (p->flags & QNN_QF_UB) g = x <= p->ub ? qk_dleaky(x, p->slope) : 0.0f;
    else g = qk_dleaky(x, p->slope);
    return (dy * qk_ste_factor(p)) * g;
}

static inline float qk_bwd_relu_po2(const qnn_quant_params *p, float x, float dy) {
    float g;
    if (p->flags & QNN_QF_HAS_MAX) g = x <= p->ub ? qk_dleaky(x, p->slope) : 0.0f;
    else g = qk_dleaky(x, p->slope);
    return (dy * qk_ste_factor(p)) * g;
}

static inline float qk_bwd_tanh(const qnn_quant_params *p, float x, float dy) {
    const float v = rintf(qk_tanh_p(p, x) * p->m) / p->m;
    if (!(v >= p->lo && v <= p->hi)) return 0.0f;
    if (p->flags & QNN_QF_REAL) return dy * qk_tanh_surr(x);
    return (dy * 2.0f) * qk_dsigmoid(x, p->sigmoid);
}

static inline float qk_bwd_sigmoid(const qnn_quant_params *p, float x, float dy) {
    const float v = rintf(qk_sigm_p(p, x) * p->m) / p->m;
    if (!(v >= p->lo && v <= p->hi)) return 0.0f;
    return dy * qk_dsigmoid(x, (p->flags & QNN_QF_REAL) ? QNN_SIG_REAL : p->sigmoid);
}

static inline float qk_bwd_ulaw(const qnn_quant_params *p, float x, float dy) {
    const float rp = qk_ulaw_rp(p, x);
    const float sg = rp > 0.0f ? 1.0f : (rp < 0.0f ? -1.0f : 0.0f);
    const float ar = fabsf(rp);
    const float ul = (sg * logf(1.0f + p->u * ar)) / p->log1pu;
    if (!(ul >= p->lo && ul <= p->hi)) return 0.0f;
    /* d/d rp of sign(rp)*log(1+u|rp|)/log(1+u) with TF's sign' = 0 and |.|'(0) = 0 */
    const float g = (((dy * p->m_i) / p->log1pu) * sg) * (p->u / (1.0f + p->u * ar)) * sg;
    /* through 2*(round_through(p)/m) - 1 and p = sigmoid(x/m_i)*m */
    return (((g * 2.0f) / p->m) * p->m) * qk_dsigmoid(x * p->in_mul, p->sigmoid) * p->in_mul;
}

static inline float qk_bwd_fn(const qnn_quant_params *p, float x, float dy) {
    const int mode = p->op == QNN_Q_SMOOTH_SIGMOID ? QNN_SIG_SMOOTH : QNN_SIG_HARD;
    const float d = p->m == 2.0f ? dy * 2.0f : dy;
    return d * qk_dsigmoid(x, mode);
}

/* ---------------------------------------------------------------- microkernels */

/* Loop over the run with the per-channel values either advancing (stride 1) or shared. */
#define QK_LOOP(BODY)                                                                   \
    do {                                                                                \
        if (stride) {                                                                   \
            QNN_SIMD for (size_t i = 0; i < n; i++) {                                   \
                const float s = sc[i], s2 = sc2[i];                                     \
                (void)s; (void)s2;                                                      \
                BODY;                                                                   \
            }                                                                           \
        } else {                                                                        \
            const float s = sc[0], s2 = sc2[0];                                         \
            (void)s; (void)s2;                                                          \
            QNN_SIMD for (size_t i = 0; i < n; i++) { BODY; }                           \
        }                                                                               \
    } while (0)

#define U0 ((p->flags & QNN_QF_SR) ? qnn_uniform01(p->key, idx0 + i) : 0.0f)
#define U1 ((p->flags & QNN_QF_SR) ? qnn_uniform01(p->key, p->n_total + idx0 + i) : 0.0f)
#define U0_ALWAYS qnn_uniform01(p->key, idx0 + i)
#define U1_ALWAYS qnn_uniform01(p->key, p->n_total + idx0 + i)

void QNN_FN(qnn_quant_fwd)(const qnn_quant_params *restrict p, size_t n,
                           const float *restrict x, float *restrict y, uint64_t idx0,
                           const float *restrict sc, const float *restrict sc2, int stride) {
    switch (p->op) {
    case QNN_Q_BITS: QK_LOOP(y[i] = qk_fwd_bits(p, x[i], s, U0)); break;
    case QNN_Q_BITS_SIGN: QK_LOOP(y[i] = qk_fwd_bits_sign(p, x[i], s)); break;
    case QNN_Q_HSWISH: QK_LOOP(y[i] = qk_fwd_bits(p, qk_hswish_pre(p, x[i]), s, U0)); break;
    case QNN_Q_AUTOBITS: QK_LOOP(y[i] = qk_fwd_autobits(p, x[i], s)); break;
    case QNN_Q_LINEAR: QK_LOOP(y[i] = qk_fwd_linear(p, x[i], s, U0)); break;
    case QNN_Q_RELU: QK_LOOP(y[i] = qk_fwd_relu(p, x[i], U0, U1)); break;
    case QNN_Q_TANH: QK_LOOP(y[i] = qk_fwd_tanh(p, x[i], U0)); break;
    case QNN_Q_SIGMOID: QK_LOOP(y[i] = qk_fwd_sigmoid(p, x[i], U0)); break;
    case QNN_Q_ULAW: QK_LOOP(y[i] = qk_fwd_ulaw(p, x[i])); break;
    case QNN_Q_PO2: QK_LOOP(y[i] = qk_fwd_po2(p, x[i], U0)); break;
    case QNN_Q_RELU_PO2: QK_LOOP(y[i] = qk_fwd_relu_po2(p, x[i], U0, U1)); break;
    case QNN_Q_SIGN: QK_LOOP(y[i] = qk_fwd_sign(p, x[i], s)); break;
    case QNN_Q_TERNARY: QK_LOOP(y[i] = qk_fwd_ternary(p, x[i], s)); break;
    case QNN_Q_STOCH_SIGN: QK_LOOP(y[i] = qk_fwd_stoch_sign(p, x[i], s, s2, U0_ALWAYS)); break;
    case QNN_Q_STOCH_TERNARY:
        QK_LOOP(y[i] = qk_fwd_stoch_ternary(p, x[i], s, s2, U0_ALWAYS, U1_ALWAYS));
        break;
    case QNN_Q_HARD_SIGMOID:
    case QNN_Q_SMOOTH_SIGMOID:
    case QNN_Q_BINARY_SIGMOID: QK_LOOP(y[i] = qk_fwd_fn(p, x[i])); break;
    case QNN_Q_HSWISH_PRE: QK_LOOP(y[i] = qk_hswish_pre(p, x[i])); break;
    default: break;
    }
}

void QNN_FN(qnn_quant_bwd)(const qnn_quant_params *restrict p, size_t n,
                           const float *restrict x, const float *restrict dy,
                           float *restrict dx, const float *restrict sc, int stride) {
    const float *sc2 = sc;
    switch (p->op) {
    case QNN_Q_HSWISH:
    case QNN_Q_HSWISH_PRE: QK_LOOP(dx[i] = qk_bwd_hswish(p, x[i], dy[i])); break;
    case QNN_Q_LINEAR: QK_LOOP(dx[i] = qk_bwd_linear(p, x[i], dy[i], s)); break;
    case QNN_Q_RELU: QK_LOOP(dx[i] = qk_bwd_relu(p, x[i], dy[i])); break;
    case QNN_Q_RELU_PO2: QK_LOOP(dx[i] = qk_bwd_relu_po2(p, x[i], dy[i])); break;
    case QNN_Q_TANH: QK_LOOP(dx[i] = qk_bwd_tanh(p, x[i], dy[i])); break;
    case QNN_Q_SIGMOID: QK_LOOP(dx[i] = qk_bwd_sigmoid(p, x[i], dy[i])); break;
    case QNN_Q_ULAW: QK_LOOP(dx[i] = qk_bwd_ulaw(p, x[i], dy[i])); break;
    case QNN_Q_HARD_SIGMOID:
    case QNN_Q_SMOOTH_SIGMOID:
    case QNN_Q_BINARY_SIGMOID: QK_LOOP(dx[i] = qk_bwd_fn(p, x[i], dy[i])); break;
    default:
        /* STE form A: identity (or 1 - qf without STE), or the tanh surrogate's derivative. */
        if (p->flags & QNN_QF_TANH_SURR) {
            QK_LOOP(dx[i] = dy[i] * qk_tanh_surr(x[i]));
        } else {
            const float g = qk_ste_factor(p);
            QK_LOOP(dx[i] = dy[i] * g);
        }
        break;
    }
}
