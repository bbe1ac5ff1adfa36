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

QK_INLINE float qk_fwd_bits(const qnn_quant_params *p, float x, float s, float u0, int sr,
                                int qf1) {
    const float v = x * p->in_mul;
    const float r = sr ? qk_sround(v, 1.0f, u0) : qk_rint(v);
    const float xq = s * (qk_clip(r, p->lo, p->hi) * p->out_mul);
    return qk_mix(p, x, xq, qf1);
}

QK_INLINE float qk_fwd_bits_sign(const qnn_quant_params *p, float x, float s, int qf1) {
    const float k = x != x ? x : (x >= 0.0f ? 1.0f : -1.0f);
    return qk_mix(p, x, s * k, qf1);
}

QK_INLINE float qk_hswish_pre(const qnn_quant_params *p, float x) {
    const float r = qk_clip(fmaxf(x + p->shift, 0.0f), 0.0f, p->ub);
    /* r == 0 gives h = 0 also at x = -inf (its limit), where TF computes -inf*0 = NaN. */
    return x != x ? x : (r == 0.0f ? 0.0f : (x * r) / p->ub);
}

QK_INLINE float qk_fwd_autobits(const qnn_quant_params *p, float x, float s, int qf1) {
    /* x/m_i, z = sign*min(floor(|xn|/s + 0.5), levels/2), out (s*m)*((m_i*z)/m); hi = levels/2 */
    const float xn = x * p->in_mul;
    const float v = qk_floor(fabsf(xn) / s + 0.5f);
    const float mag = v < p->hi ? v : p->hi;
    const float sg = xn > 0.0f ? 1.0f : (xn < 0.0f ? -1.0f : (xn != xn ? xn : 0.0f));
    const float xq = (s * p->m) * ((sg * mag) * p->out_mul);
    return qk_mix(p, x, xq, qf1);
}

QK_INLINE float qk_fwd_linear(const qnn_quant_params *p, float x, float qs, float u0, int sr,
                                  int qf1) {
    const float c = qk_clip(x / qs, p->lo, p->hi) - p->shift;
    const float r = (sr ? qk_sround(c, 1.0f, u0) : qk_rint(c)) + p->shift;
    const float xq = r * qs;
    return qf1 ? xq : x + p->qf * (xq - x);
}

QK_INLINE float qk_relu_xu(const qnn_quant_params *p, float x) {
    if (p->flags & QNN_QF_QCLIP) return x <= p->cap ? qk_leaky(x, p->slope) : p->cap;
    if (p->flags & QNN_QF_UB) return x <= p->ub ? qk_leaky(x, p->slope) : p->ub;
    return qk_leaky(x, p->slope);
}

QK_INLINE float qk_fwd_relu(const qnn_quant_params *p, float x, float u0, float u1, int sr,
                                int qf1, int sig, int plain) {
    if (plain) { /* no sigmoid, no negative slope: the common activation quantizer */
        const float inv_m = 1.0f / p->m;
        const float pv = x * p->in_mul;
        const float r = sr ? qk_sround(pv, 2.0f, u0) : qk_rint(pv);
        float xq = p->m_i * qk_clip(r * inv_m, 0.0f, 1.0f - inv_m);
        const int clamp_ub = (p->flags & QNN_QF_UB) && !(p->flags & QNN_QF_QCLIP);
        xq = (clamp_ub && !(xq <= p->ub)) ? p->ub : xq;
        const float y = qk_mix(p, qk_relu_xu(p, x), xq, qf1);
        return x != x ? x : y;
    }
    /* Both the plain and the use_sigmoid forms are computed and one selected: branch-free
     * bodies are what the vectoriser needs (the flag is loop-invariant, the cost is small). */
    const float inv_m = 1.0f / p->m;
    const int use_sig = (p->flags & QNN_QF_USE_SIGMOID) != 0;
    const float pv = use_sig ? qk_sigmoid(x * p->in_mul, sig) * p->m : x * p->in_mul;
    const float r = sr ? qk_sround(pv, 2.0f, u0) : qk_rint(pv);
    const float pos = use_sig ? 2.0f * (r * inv_m) - 1.0f : r * inv_m;
    float xq = p->m_i * qk_clip(pos, 0.0f, 1.0f - inv_m);
    const float ps = pv * p->slope;
    const float rn = sr ? qk_sround(ps, 2.0f, u1) : qk_rint(ps);
    const float neg = use_sig ? 2.0f * (rn * p->out_mul) - 1.0f : rn * p->out_mul;
    const float xneg = xq + (p->m_i * p->slope) * qk_clip(neg, -1.0f, 0.0f);
    xq = p->slope > 0.0f ? xneg : xq;
    const int clamp_ub = (p->flags & QNN_QF_UB) && !(p->flags & QNN_QF_QCLIP);
    xq = (clamp_ub && !(xq <= p->ub)) ? p->ub : xq;
    const float y = qk_mix(p, qk_relu_xu(p, x), xq, qf1);
    return x != x ? x : y;
}

QK_INLINE float qk_tanh_p(float x, int sig, int real) {
    return real ? qk_tanhf(x) : 2.0f * qk_sigmoid(x, sig) - 1.0f;
}

QK_INLINE float qk_fwd_tanh(const qnn_quant_params *p, float x, float u0, int sr, int sig,
                                int real) {
    const float pm = qk_tanh_p(x, sig, real) * p->m;
    const float r = sr ? qk_sround(pm, 2.0f, u0) : qk_rint(pm);
    return qk_clip(r / p->m, p->lo, p->hi);
}

QK_INLINE float qk_sigm_p(float x, int sig, int real) {
    return real ? 1.0f / (1.0f + qk_expf(-x)) : qk_sigmoid(x, sig);
}

QK_INLINE float qk_fwd_sigmoid(const qnn_quant_params *p, float x, float u0, int sr, int sig,
                                   int real) {
    const float pm = qk_sigm_p(x, sig, real) * p->m;
    const float r = sr ? qk_sround(pm, 2.0f, u0) : qk_rint(pm);
    return qk_clip(r / p->m, p->lo, p->hi);
}

QK_INLINE float qk_ulaw_rp(const qnn_quant_params *p, float x, int sig) {
    const float pv = qk_sigmoid(x * p->in_mul, sig) * p->m;
    return 2.0f * (qk_rint(pv) / p->m) - 1.0f;
}

QK_INLINE float qk_fwd_ulaw(const qnn_quant_params *p, float x, int sig) {
    const float rp = qk_ulaw_rp(p, x, sig);
    const float sg = rp > 0.0f ? 1.0f : (rp < 0.0f ? -1.0f : (rp != rp ? rp : 0.0f));
    const float ul = (sg * logf(1.0f + p->u * fabsf(rp))) / p->log1pu;
    return p->m_i * qk_clip(ul, p->lo, p->hi);
}

QK_INLINE float qk_fwd_po2(const qnn_quant_params *p, float x, float u0, int sr, int qf1,
                           int quad) {
    const float sg = x >= 0.0f ? 1.0f : -1.0f;
    const float xq = sg * qk_exp2i(qk_po2_exponent(p, fabsf(x), u0, sr, quad));
    const float y = qk_mix(p, x, xq, qf1);
    return x != x ? x : y;
}

QK_INLINE float qk_fwd_relu_po2(const qnn_quant_params *p, float x, float u0, float u1,
                                    int sr, int qf1, int quad) {
    const float lk = qk_leaky(x, p->slope);
    const float xu = ((p->flags & QNN_QF_HAS_MAX) && !(x <= p->ub)) ? p->ub : lk;
    const float pos = qk_exp2i(qk_po2_exponent(p, x > 0.0f ? x : 0.0f, u0, sr, quad));
    const float neg = -qk_exp2i(qk_po2_exponent(p, (-x) * p->slope, u1, sr, quad));
    const float xq = (x >= 0.0f || p->slope == 0.0f) ? pos : neg;
    const float y = qk_mix(p, xu, xq, qf1);
    return x != x ? x : y;
}

QK_INLINE float qk_sign01(const qnn_quant_params *p, float x) {
    const float k = x >= 0.0f ? 1.0f : -1.0f;
    return (p->flags & QNN_QF_USE01) ? (k + 1.0f) / 2.0f : k;
}

QK_INLINE float qk_fwd_sign(const qnn_quant_params *p, float x, float s) {
    return x != x ? x : s * qk_sign01(p, x);
}

QK_INLINE float qk_fwd_ternary(const qnn_quant_params *p, float x, float s) {
    const float sg = x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
    return x != x ? x : s * ((fabsf(x) >= p->thr ? 1.0f : 0.0f) * sg);
}

QK_INLINE float qk_fwd_stoch_sign(const qnn_quant_params *p, float x, float s, float s2,
                                      float u0, int sig) {
    const float pr = qk_sigmoid((p->temperature * x) / s2, sig);
    const float q = pr >= u0 ? 1.0f : ((p->flags & QNN_QF_USE01) ? 0.0f : -1.0f);
    return x != x ? x : s * q;
}

QK_INLINE float qk_fwd_stoch_ternary(const qnn_quant_params *p, float x, float s, float s2,
                                         float u0, float u1, int sig) {
    /* s2 = std + eps; T = s / (2*(std+eps)) as QKeras */
    const float xn = x / s2, T = s / (2.0f * s2);
    const float p0 = qk_sigmoid(p->temperature * (xn - T), sig);
    const float p1 = qk_sigmoid(p->temperature * (xn + T), sig);
    const float q0 = p0 >= u0 ? 1.0f : -1.0f, q1 = p1 >= u1 ? 1.0f : -1.0f;
    return x != x ? x : s * ((q0 + q1) / 2.0f);
}

QK_INLINE float qk_fwd_fn(const qnn_quant_params *p, float x) {
    float f;
    if (p->op == QNN_Q_SMOOTH_SIGMOID) f = qk_sigmoid(x, QNN_SIG_SMOOTH);
    else if (p->op == QNN_Q_BINARY_SIGMOID) f = qk_rint(qk_sigmoid(x, QNN_SIG_HARD));
    else f = qk_sigmoid(x, QNN_SIG_HARD);
    return p->m == 2.0f ? 2.0f * f - 1.0f : f; /* the *_tanh variants: 2*f - 1 */
}

/* ---------------------------------------------------------------- backward, per element */

QK_INLINE float qk_tanh_surr(float x) {
    const float t = qk_tanhf(x);
    return 1.0f - t * t;
}

QK_INLINE float qk_bwd_hswish(const qnn_quant_params *p, float x, float dy) {
    const float t = x + p->shift;
    const float r = qk_clip(fmaxf(t, 0.0f), 0.0f, p->ub);
    const float g = (dy * qk_ste_factor(p)) / p->ub;
    if (x != x) return x;
    return g * r + ((t > 0.0f && t <= p->ub) ? g * x : 0.0f);
}

QK_INLINE float qk_bwd_linear(const qnn_quant_params *p, float x, float dy, float qs) {
    /* y = x + qf*(xq - x) without stop_gradient: (1 - qf) + qf*[lo <= x/qs <= hi] */
    const float v = x / qs;
    const float g = (1.0f - p->qf) + ((v >= p->lo && v <= p->hi) ? p->qf : 0.0f);
    return dy * g;
}

QK_INLINE float qk_dleaky(float x, float slope) { return x > 0.0f ? 1.0f : slope; }

QK_INLINE float qk_bwd_relu(const qnn_quant_params *p, float x, float dy) {
    float g;
    if (p->flags & QNN_QF_QCLIP) g = x <= p->cap ? qk_dleaky(x, p->slope) : 0.0f;
    else if (p->flags & QNN_QF_UB) g = x <= p->ub ? qk_dleaky(x, p->slope) : 0.0f;
    else g = qk_dleaky(x, p->slope);
    return (dy * qk_ste_factor(p)) * g;
}

QK_INLINE float qk_bwd_relu_po2(const qnn_quant_params *p, float x, float dy) {
    float g;
    if (p->flags & QNN_QF_HAS_MAX) g = x <= p->ub ? qk_dleaky(x, p->slope) : 0.0f;
    else g = qk_dleaky(x, p->slope);
    return (dy * qk_ste_factor(p)) * g;
}

QK_INLINE float qk_bwd_tanh(const qnn_quant_params *p, float x, float dy, int sig, int real) {
    const float v = qk_rint(qk_tanh_p(x, sig, real) * p->m) / p->m;
    if (!(v >= p->lo && v <= p->hi)) return 0.0f;
    if (real) return dy * qk_tanh_surr(x);
    return (dy * 2.0f) * qk_dsigmoid(x, sig);
}

QK_INLINE float qk_bwd_sigmoid(const qnn_quant_params *p, float x, float dy, int sig, int real) {
    const float v = qk_rint(qk_sigm_p(x, sig, real) * p->m) / p->m;
    if (!(v >= p->lo && v <= p->hi)) return 0.0f;
    return dy * qk_dsigmoid(x, real ? QNN_SIG_REAL : sig);
}

QK_INLINE float qk_bwd_ulaw(const qnn_quant_params *p, float x, float dy, int sig) {
    const float rp = qk_ulaw_rp(p, x, sig);
    const float sg = rp > 0.0f ? 1.0f : (rp < 0.0f ? -1.0f : 0.0f);
    const float ar = fabsf(rp);
    const float ul = (sg * logf(1.0f + p->u * ar)) / p->log1pu;
    if (!(ul >= p->lo && ul <= p->hi)) return 0.0f;
    /* d/d rp of sign(rp)*log(1+u|rp|)/log(1+u) with TF's sign' = 0 and |.|'(0) = 0 */
    const float g = (((dy * p->m_i) / p->log1pu) * sg) * (p->u / (1.0f + p->u * ar)) * sg;
    /* through 2*(round_through(p)/m) - 1 and p = sigmoid(x/m_i)*m */
    return (((g * 2.0f) / p->m) * p->m) * qk_dsigmoid(x * p->in_mul, sig) * p->in_mul;
}

QK_INLINE float qk_bwd_fn(const qnn_quant_params *p, float x, float dy) {
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

/* Loop-invariant choices become block-local constants, so each loop below is compiled for one
 * combination and stays free of branches and of libm calls it does not need (what lets the
 * compiler vectorise it). */
#define QK_SPEC_SRQF(BODY)                                                              \
    do {                                                                                \
        if (P.flags & QNN_QF_SR) { const int sr = 1, qf1 = P.qf == 1.0f; (void)sr; (void)qf1; QK_LOOP(BODY); } \
        else if (P.qf == 1.0f) { const int sr = 0, qf1 = 1; (void)sr; (void)qf1; QK_LOOP(BODY); } \
        else { const int sr = 0, qf1 = 0; (void)sr; (void)qf1; QK_LOOP(BODY); }        \
    } while (0)
#define QK_SPEC_SIG(MODE, BODY)                                                         \
    do {                                                                                \
        if ((MODE) == QNN_SIG_HARD) { const int sig = QNN_SIG_HARD; BODY; }             \
        else if ((MODE) == QNN_SIG_SMOOTH) { const int sig = QNN_SIG_SMOOTH; BODY; }    \
        else { const int sig = QNN_SIG_REAL; BODY; }                                    \
    } while (0)
#define QK_SPEC_REAL(BODY)                                                              \
    do {                                                                                \
        if (P.flags & QNN_QF_REAL) { const int real = 1; BODY; }                        \
        else { const int real = 0; BODY; }                                              \
    } while (0)

#define QK_SPEC_QUAD(BODY)                                                              \
    do {                                                                                \
        if (P.flags & QNN_QF_QUAD) { const int quad = 1; BODY; }                        \
        else { const int quad = 0; BODY; }                                              \
    } while (0)

#define U0 (sr ? qnn_uniform01(P.key, idx0 + i) : 0.0f)
#define U1 (sr ? qnn_uniform01(P.key, P.n_total + idx0 + i) : 0.0f)
#define U0_ALWAYS qnn_uniform01(P.key, idx0 + i)
#define U1_ALWAYS qnn_uniform01(P.key, P.n_total + idx0 + i)

static void QNN_FN(quant_fwd_run)(const qnn_quant_params *restrict p, size_t n,
                                  const float *restrict x, float *restrict y, uint64_t idx0,
                                  const float *restrict sc, const float *restrict sc2, int stride) {
    const qnn_quant_params P = *p; /* a local copy: provably not aliased by y */
    const qnn_quant_params *const q = &P;
    switch (P.op) {
    case QNN_Q_BITS: QK_SPEC_SRQF(y[i] = qk_fwd_bits(q, x[i], s, U0, sr, qf1)); break;
    case QNN_Q_BITS_SIGN: QK_SPEC_SRQF(y[i] = qk_fwd_bits_sign(q, x[i], s, qf1)); break;
    case QNN_Q_HSWISH: QK_SPEC_SRQF(y[i] = qk_fwd_bits(q, qk_hswish_pre(q, x[i]), s, U0, sr, qf1)); break;
    case QNN_Q_AUTOBITS: QK_SPEC_SRQF(y[i] = qk_fwd_autobits(q, x[i], s, qf1)); break;
    case QNN_Q_LINEAR: QK_SPEC_SRQF(y[i] = qk_fwd_linear(q, x[i], s, U0, sr, qf1)); break;
    case QNN_Q_RELU:
        if (!(P.flags & QNN_QF_USE_SIGMOID) && P.slope == 0.0f) {
            const int sig = QNN_SIG_HARD;
            QK_SPEC_SRQF(y[i] = qk_fwd_relu(q, x[i], U0, U1, sr, qf1, sig, 1));
        } else {
            QK_SPEC_SIG(P.sigmoid, QK_SPEC_SRQF(y[i] = qk_fwd_relu(q, x[i], U0, U1, sr, qf1, sig, 0)));
        }
        break;
    case QNN_Q_TANH:
        QK_SPEC_REAL(QK_SPEC_SIG(P.sigmoid, QK_SPEC_SRQF(y[i] = qk_fwd_tanh(q, x[i], U0, sr, sig, real))));
        break;
    case QNN_Q_SIGMOID:
        QK_SPEC_REAL(QK_SPEC_SIG(P.sigmoid, QK_SPEC_SRQF(y[i] = qk_fwd_sigmoid(q, x[i], U0, sr, sig, real))));
        break;
    case QNN_Q_ULAW: QK_SPEC_SIG(P.sigmoid, QK_LOOP(y[i] = qk_fwd_ulaw(q, x[i], sig))); break;
    case QNN_Q_PO2: QK_SPEC_QUAD(QK_SPEC_SRQF(y[i] = qk_fwd_po2(q, x[i], U0, sr, qf1, quad))); break;
    case QNN_Q_RELU_PO2:
        QK_SPEC_QUAD(QK_SPEC_SRQF(y[i] = qk_fwd_relu_po2(q, x[i], U0, U1, sr, qf1, quad)));
        break;
    case QNN_Q_SIGN: QK_LOOP(y[i] = qk_fwd_sign(q, x[i], s)); break;
    case QNN_Q_TERNARY: QK_LOOP(y[i] = qk_fwd_ternary(q, x[i], s)); break;
    case QNN_Q_STOCH_SIGN:
        QK_SPEC_SIG(P.sigmoid, QK_LOOP(y[i] = qk_fwd_stoch_sign(q, x[i], s, s2, U0_ALWAYS, sig)));
        break;
    case QNN_Q_STOCH_TERNARY:
        QK_SPEC_SIG(P.sigmoid, QK_LOOP(y[i] = qk_fwd_stoch_ternary(q, x[i], s, s2, U0_ALWAYS, U1_ALWAYS, sig)));
        break;
    case QNN_Q_HARD_SIGMOID:
    case QNN_Q_SMOOTH_SIGMOID:
    case QNN_Q_BINARY_SIGMOID: QK_LOOP(y[i] = qk_fwd_fn(q, x[i])); break;
    case QNN_Q_HSWISH_PRE: QK_LOOP(y[i] = qk_hswish_pre(q, x[i])); break;
    default: break;
    }
}

static void QNN_FN(quant_bwd_run)(const qnn_quant_params *restrict p, size_t n,
                                  const float *restrict x, const float *restrict dy,
                                  float *restrict dx, const float *restrict sc, int stride) {
    const qnn_quant_params P = *p;
    const qnn_quant_params *const q = &P;
    const float *sc2 = sc;
    switch (P.op) {
    case QNN_Q_HSWISH:
    case QNN_Q_HSWISH_PRE: QK_LOOP(dx[i] = qk_bwd_hswish(q, x[i], dy[i])); break;
    case QNN_Q_LINEAR: QK_LOOP(dx[i] = qk_bwd_linear(q, x[i], dy[i], s)); break;
    case QNN_Q_RELU: QK_LOOP(dx[i] = qk_bwd_relu(q, x[i], dy[i])); break;
    case QNN_Q_RELU_PO2: QK_LOOP(dx[i] = qk_bwd_relu_po2(q, x[i], dy[i])); break;
    case QNN_Q_TANH:
        QK_SPEC_REAL(QK_SPEC_SIG(P.sigmoid, QK_LOOP(dx[i] = qk_bwd_tanh(q, x[i], dy[i], sig, real))));
        break;
    case QNN_Q_SIGMOID:
        QK_SPEC_REAL(QK_SPEC_SIG(P.sigmoid, QK_LOOP(dx[i] = qk_bwd_sigmoid(q, x[i], dy[i], sig, real))));
        break;
    case QNN_Q_ULAW: QK_SPEC_SIG(P.sigmoid, QK_LOOP(dx[i] = qk_bwd_ulaw(q, x[i], dy[i], sig))); break;
    case QNN_Q_HARD_SIGMOID:
    case QNN_Q_SMOOTH_SIGMOID:
    case QNN_Q_BINARY_SIGMOID: QK_LOOP(dx[i] = qk_bwd_fn(q, x[i], dy[i])); break;
    default:
        /* STE form A: identity (or 1 - qf without STE), or the tanh surrogate's derivative. */
        if (P.flags & QNN_QF_TANH_SURR) {
            QK_LOOP(dx[i] = dy[i] * qk_tanh_surr(x[i]));
        } else {
            const float g = qk_ste_factor(q);
            QK_LOOP(dx[i] = dy[i] * g);
        }
        break;
    }
}

/* ---------------------------------------------------------------- streaming stores */

#ifdef QNN_STREAM_WIDTH
/* A large output is written once and not read again soon: compute a chunk into an L1-resident
 * buffer, then stream it to memory with non-temporal stores. Ordinary stores would first read
 * every output cache line (read-for-ownership), 50% more DRAM traffic. Same arithmetic, same
 * bits; only the store path differs. */
#define QNN_STREAM_MIN ((size_t)1 << 18) /* 1 MB of output per run: beyond L2 */
#define QNN_CHUNK 2048

static void QNN_FN(stream_out)(float *restrict y, const float *restrict buf, size_t len) {
    size_t k = 0;
    for (; k + QNN_STREAM_WIDTH <= len; k += QNN_STREAM_WIDTH) qnn_stream_block(y + k, buf + k);
    for (; k < len; k++) y[k] = buf[k];
}

/* Elements before y reaches 64-byte alignment (stream stores need aligned addresses). */
static size_t QNN_FN(head_len)(const float *y, size_t n) {
    const size_t mis = (size_t)((uintptr_t)y & 63u);
    size_t h = mis ? (64u - mis) / sizeof(float) : 0;
    if ((uintptr_t)y & 3u) h = n; /* not even float-aligned: no streaming */
    return h < n ? h : n;
}

void QNN_FN(qnn_quant_fwd)(const qnn_quant_params *restrict p, size_t n,
                           const float *restrict x, float *restrict y, uint64_t idx0,
                           const float *restrict sc, const float *restrict sc2, int stride) {
    if (n < QNN_STREAM_MIN) {
        QNN_FN(quant_fwd_run)(p, n, x, y, idx0, sc, sc2, stride);
        return;
    }
    _Alignas(64) float buf[QNN_CHUNK];
    size_t i = QNN_FN(head_len)(y, n);
    QNN_FN(quant_fwd_run)(p, i, x, y, idx0, sc, sc2, stride);
    for (; i < n; i += QNN_CHUNK) {
        const size_t len = n - i < QNN_CHUNK ? n - i : QNN_CHUNK;
        const size_t o = stride ? i : 0;
        QNN_FN(quant_fwd_run)(p, len, x + i, buf, idx0 + i, sc + o, sc2 + o, stride);
        QNN_FN(stream_out)(y + i, buf, len);
    }
    QNN_STREAM_FENCE();
}

void QNN_FN(qnn_quant_bwd)(const qnn_quant_params *restrict p, size_t n,
                           const float *restrict x, const float *restrict dy,
                           float *restrict dx, const float *restrict sc, int stride) {
    if (n < QNN_STREAM_MIN) {
        QNN_FN(quant_bwd_run)(p, n, x, dy, dx, sc, stride);
        return;
    }
    _Alignas(64) float buf[QNN_CHUNK];
    size_t i = QNN_FN(head_len)(dx, n);
    QNN_FN(quant_bwd_run)(p, i, x, dy, dx, sc, stride);
    for (; i < n; i += QNN_CHUNK) {
        const size_t len = n - i < QNN_CHUNK ? n - i : QNN_CHUNK;
        QNN_FN(quant_bwd_run)(p, len, x + i, dy + i, buf, sc + (stride ? i : 0), stride);
        QNN_FN(stream_out)(dx + i, buf, len);
    }
    QNN_STREAM_FENCE();
}
#else
void QNN_FN(qnn_quant_fwd)(const qnn_quant_params *restrict p, size_t n,
                           const float *restrict x, float *restrict y, uint64_t idx0,
                           const float *restrict sc, const float *restrict sc2, int stride) {
    QNN_FN(quant_fwd_run)(p, n, x, y, idx0, sc, sc2, stride);
}

void QNN_FN(qnn_quant_bwd)(const qnn_quant_params *restrict p, size_t n,
                           const float *restrict x, const float *restrict dy,
                           float *restrict dx, const float *restrict sc, int stride) {
    QNN_FN(quant_bwd_run)(p, n, x, dy, dx, sc, stride);
}
#endif
