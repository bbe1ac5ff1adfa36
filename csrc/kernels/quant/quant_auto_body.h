/* Data-dependent ("auto"/"auto_po2") scales and the per-channel statistics of the stochastic
 * quantizers. Statistics are reduced over every axis but the channel one (layout (outer, S,
 * inner), channels grouped by `group`), accumulated in double in a fixed order so every ISA
 * level and thread count gives the same scale; the final element-wise pass runs through the
 * dispatched microkernels where it is a plain per-channel op. Mirrors QKeras's
 * quantized_bits/_get_least_squares_scale/ternary/stochastic_* (spec/quantizers.md §2-§3).
 *
 * Compiled once per ISA level (quant_auto_{ref,avx2,avx512}.c, QNN_FN names the variant): the
 * statistics passes are plain C whose channel loops vectorise at each width. Channels are the
 * lanes and each keeps its own accumulator, and floor/rint are exact at every level, so all
 * levels give the same bits. */
#include <math.h>
#include <stdlib.h>

#include "kernels/quant/quant.h"
#include "kernels/quant/quant_math.h"
#include "runtime/fpenv.h"

#define G_OF(L) ((L)->S / (L)->group)

/* Visit every element with its flat index e and its statistics group g, in flat order. The
 * channels-last case (inner 1, one channel per group: every kernel of a Dense/Conv layer) gets
 * its own loop nest, whose inner loop over channels vectorises; the generic nest's inner loop
 * would run once per element. Both visit the elements in the same order. */
#define FOR_EACH(L, BODY)                                                         \
    if ((L)->inner == 1 && (L)->group == 1) {                                     \
        for (size_t o_ = 0; o_ < (L)->outer; o_++)                                \
            for (size_t s_ = 0; s_ < (L)->S; s_++) {                              \
                const size_t g = s_, e = o_ * (L)->S + s_;                        \
                (void)g;                                                          \
                BODY;                                                             \
            }                                                                     \
    } else                                                                        \
        for (size_t o_ = 0; o_ < (L)->outer; o_++)                                \
            for (size_t s_ = 0; s_ < (L)->S; s_++) {                              \
                const size_t g = (L)->group == 1 ? s_ : s_ / (L)->group;          \
                const size_t base_ = (o_ * (L)->S + s_) * (L)->inner;             \
                for (size_t i_ = 0; i_ < (L)->inner; i_++) {                      \
                    const size_t e = base_ + i_;                                  \
                    (void)g;                                                      \
                    BODY;                                                         \
                }                                                                 \
            }

static double group_count(const qnn_channel_layout *L) {
    return (double)L->outer * (double)L->inner * (double)L->group;
}

/* max|x| per group (NaN-sticky), or over the whole tensor when `global`. */
static void absmax(const qnn_channel_layout *L, const float *x, float *m, int global, int signed_) {
    const size_t G = G_OF(L);
    for (size_t g = 0; g < G; g++) m[g] = -INFINITY;
    FOR_EACH(L, {
        const float v = signed_ ? fabsf(x[e]) : x[e];
        const size_t k = global ? 0 : g;
        if (v != v || m[k] != m[k]) m[k] = NAN;
        else if (v > m[k]) m[k] = v;
    });
    if (global)
        for (size_t g = 1; g < G; g++) m[g] = m[0];
}

/* Population standard deviation per group (K.std), or over the whole tensor when `global`. */
static int stddev(const qnn_channel_layout *L, const float *x, float *sd, int global) {
    const size_t G = G_OF(L), K = global ? 1 : G;
    double *acc = calloc(2 * K, sizeof(double));
    if (!acc) return QNN_ENOMEM;
    double cnt = group_count(L) * (global ? (double)G : 1.0);
    FOR_EACH(L, { acc[global ? 0 : g] += x[e]; });
    for (size_t k = 0; k < K; k++) acc[k] /= cnt;
    FOR_EACH(L, {
        const size_t k = global ? 0 : g;
        const double d = (double)x[e] - acc[k];
        acc[K + k] += d * d;
    });
    for (size_t g = 0; g < G; g++) sd[g] = (float)sqrt(acc[K + (global ? 0 : g)] / cnt);
    free(acc);
    return QNN_OK;
}

static float po2_round(float t) {
    if (t != t) return t;
    return qk_exp2i(qk_round_log2(t));
}

/* Least-squares scale from the per-group sums: qx/(qq+eps), po2-rounded and clipped for
 * auto_po2. Means are the double sums of the float32 products, rounded to float32. */
static float ls_scale(double sxq, double sqq, double cnt, const qnn_auto_params *a, int po2) {
    const float qx = (float)(sxq / cnt), qq = (float)(sqq / cnt);
    float s = qx / (qq + QNN_EPS);
    if (po2) {
        s = po2_round(s + QNN_EPS);
        if (a->has_min_exp) s = s < qk_exp2i((float)a->min_po2_exp) ? qk_exp2i((float)a->min_po2_exp) : s;
        if (a->has_max_exp) s = s > qk_exp2i((float)a->max_po2_exp) ? qk_exp2i((float)a->max_po2_exp) : s;
    }
    return s;
}

/* Per-group LS over (x, q(e)), with q given by the expression Q evaluated per element. */
#define LS_PASS(L, acc, x, Q)                                                     \
    do {                                                                          \
        const size_t G_ = G_OF(L);                                                \
        for (size_t k_ = 0; k_ < 2 * G_; k_++) (acc)[k_] = 0.0;                   \
        FOR_EACH(L, {                                                             \
            const float q_ = (Q);                                                 \
            (acc)[g] += (double)((x)[e] * q_);                                    \
            (acc)[G_ + g] += (double)(q_ * q_);                                   \
        });                                                                       \
    } while (0)

static void expand(const qnn_channel_layout *L, const float *perg, float *perS) {
    for (size_t s = 0; s < L->S; s++) perS[s] = perg[s / L->group];
}

typedef struct scratch {
    float *a, *b, *S1, *S2;
    double *acc;
} scratch;

static int scratch_alloc(scratch *w, const qnn_channel_layout *L) {
    const size_t G = G_OF(L);
    w->a = malloc(G * sizeof(float));
    w->b = malloc(G * sizeof(float));
    w->S1 = malloc(L->S * sizeof(float));
    w->S2 = malloc(L->S * sizeof(float));
    w->acc = malloc(2 * G * sizeof(double));
    if (!w->a || !w->b || !w->S1 || !w->S2 || !w->acc) return QNN_ENOMEM;
    return QNN_OK;
}

static void scratch_free(scratch *w) {
    free(w->a); free(w->b); free(w->S1); free(w->S2); free(w->acc);
}

static int valid_layout(const qnn_channel_layout *L) {
    return L->S > 0 && L->group > 0 && L->S % L->group == 0 && L->inner > 0;
}

/* ------------------------------------------------------------------ quantized_bits auto */

static inline float autobits_z(float xn, float s, float half) {
    const float v = qk_floor(fabsf(xn) / s + 0.5f);
    const float mag = v < half ? v : half;
    const float sg = xn > 0.0f ? 1.0f : (xn < 0.0f ? -1.0f : (xn != xn ? xn : 0.0f));
    return sg * mag;
}

int QNN_FN(qnn_quant_auto_bits)(const qnn_quant_params *p, const qnn_auto_params *a,
                        const qnn_channel_layout *L, const float *x, float *y,
                        const float *scale_in, float *scale_out) {
    if (!valid_layout(L)) return QNN_EINVAL;
    const size_t G = G_OF(L);
    const double cnt = group_count(L);
    const float levels = 2.0f * p->hi, half = p->hi; /* p->hi = levels/2 */
    scratch w;
    int rc = scratch_alloc(&w, L);
    if (rc) { scratch_free(&w); return rc; }
    qnn_fpenv env = qnn_fpenv_flush_begin();
    /* Per-channel scales (S of them): QKeras takes the initial max per scale_axis index and
     * shares a scale within a group of `group` channels only from the least-squares steps on. */
    float *sch = w.S1, *sg = w.a;
    if (a->frozen) {
        for (size_t c = 0; c < L->S; c++) sch[c] = scale_in[c] / p->m;
    } else {
        /* xn = x/m_i; statistics of xn (multiplying by the power of two 1/m_i is exact). */
        qnn_channel_layout L1 = *L;
        L1.group = 1;
        absmax(&L1, x, sch, a->global_init, 1);
        for (size_t c = 0; c < L->S; c++) sch[c] = ((sch[c] * p->in_mul) * 2.0f) / levels;
        if (a->po2) {
            for (size_t c = 0; c < L->S; c++) sch[c] = po2_round(sch[c] + QNN_EPS);
            for (int it = 0; it < a->iterations; it++) {
                for (size_t k = 0; k < 2 * G; k++) w.acc[k] = 0.0;
                FOR_EACH(L, {
                    const float xn = x[e] * p->in_mul;
                    const float z = autobits_z(xn, sch[s_], half);
                    w.acc[g] += (double)(xn * z);
                    w.acc[G + g] += (double)(z * z);
                });
                for (size_t g = 0; g < G; g++) sg[g] = ls_scale(w.acc[g], w.acc[G + g], cnt, a, 1);
                int same = 1;
                for (size_t c = 0; c < L->S; c++) same &= sg[c / L->group] == sch[c];
                expand(L, sg, sch);
                /* a fixed point: every further step would give these scales again */
                if (same) break;
            }
        }
    }
    for (size_t g = 0; g < G; g++) scale_out[g] = sch[g * L->group] * p->m;
    qnn_fpenv_end(env);
    rc = qnn_quant_forward(p, x, y, L->outer * L->S * L->inner, sch, NULL, L->S, L->inner);
    scratch_free(&w);
    return rc;
}

/* ---------------------------------------------------------------- quantized_linear auto */

static inline float linear_code(const qnn_quant_params *p, float x, float qs) {
    return qk_rint(qk_clip(x / qs, p->lo, p->hi) - p->shift) + p->shift;
}

int QNN_FN(qnn_quant_auto_linear)(const qnn_quant_params *p, const qnn_auto_params *a,
                          const qnn_channel_layout *L, const float *x, float *y, float *scale_out) {
    if (!valid_layout(L)) return QNN_EINVAL;
    const size_t G = G_OF(L);
    const double cnt = group_count(L);
    const float range = p->hi - p->lo;
    const int keep_negative = p->lo < 0.0f;
    scratch w;
    int rc = scratch_alloc(&w, L);
    if (rc) { scratch_free(&w); return rc; }
    qnn_fpenv env = qnn_fpenv_flush_begin();
    float *qs = w.a, *prev = w.b;
    absmax(L, x, qs, 0, keep_negative);
    for (size_t g = 0; g < G; g++) {
        const float v = keep_negative ? (qs[g] * 2.0f) / range : qs[g] / range;
        qs[g] = v != v ? v : (v > QNN_EPS ? v : QNN_EPS);
    }
    if (a->po2) {
        for (size_t g = 0; g < G; g++) { qs[g] = po2_round(qs[g] + QNN_EPS); prev[g] = -1.0f; }
        /* TF while_loop: stop as soon as an iteration leaves every scale unchanged. */
        for (int it = 0; it < a->iterations; it++) {
            int changed = 0;
            for (size_t g = 0; g < G; g++) changed |= prev[g] != qs[g];
            if (!changed) break;
            LS_PASS(L, w.acc, x, linear_code(p, x[e], qs[g]));
            for (size_t g = 0; g < G; g++) {
                prev[g] = qs[g];
                qs[g] = ls_scale(w.acc[g], w.acc[G + g], cnt, a, 1);
            }
        }
    }
    for (size_t g = 0; g < G; g++) scale_out[g] = qs[g];
    qnn_fpenv_end(env);
    expand(L, qs, w.S1);
    rc = qnn_quant_forward(p, x, y, L->outer * L->S * L->inner, w.S1, NULL, L->S, L->inner);
    scratch_free(&w);
    return rc;
}

/* ------------------------------------------------------------------------- binary */

static inline float sign1(float v) { return v >= 0.0f ? 1.0f : -1.0f; }

/* binary with a string alpha, or with use_stochastic_rounding while training. */
int QNN_FN(qnn_quant_auto_binary)(const qnn_quant_params *p, const qnn_auto_params *a,
                          const qnn_channel_layout *L, const float *x, float *y,
                          float *scale_out) {
    if (!valid_layout(L)) return QNN_EINVAL;
    const size_t G = G_OF(L), n = L->outer * L->S * L->inner;
    const double cnt = group_count(L);
    const int use01 = (p->flags & QNN_QF_USE01) != 0;
    scratch w;
    int rc = scratch_alloc(&w, L);
    if (rc) { scratch_free(&w); return rc; }
    qnn_fpenv env = qnn_fpenv_flush_begin();
    float *s = w.a;
    if (p->flags & QNN_QF_SR) {
        /* x' = f*stochastic_round(x/f, 1/8), f = 2*min(max|x|, 1); zeros of sign(x') get a
         * random sign; scale from (x', k). y holds x' until the final pass. */
        float *f = w.b;
        absmax(L, x, f, a->global_init, 1);
        for (size_t g = 0; g < G; g++) f[g] = 2.0f * (f[g] > 1.0f ? 1.0f : f[g]);
        FOR_EACH(L, { y[e] = f[g] * qk_sround(x[e] / f[g], 8.0f, qnn_uniform01(p->key, e)); });
        float *k = malloc(n * sizeof(float));
        if (!k) { qnn_fpenv_end(env); scratch_free(&w); return QNN_ENOMEM; }
        FOR_EACH(L, {
            const float v = y[e];
            float kk = v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : (v != v ? v : 0.0f));
            if (kk == 0.0f) kk = qnn_uniform01(p->key, (uint64_t)n + e) > 0.5f ? 1.0f : -1.0f;
            k[e] = use01 ? (kk + 1.0f) / 2.0f : kk;
        });
        if (a->alpha_kind == 1 || a->alpha_kind == 2) {
            LS_PASS(L, w.acc, y, k[e]);
            for (size_t g = 0; g < G; g++) s[g] = ls_scale(w.acc[g], w.acc[G + g], cnt, a, a->alpha_kind == 2);
        } else {
            for (size_t g = 0; g < G; g++) s[g] = scale_out[g]; /* given alpha (or 1.0) */
        }
        FOR_EACH(L, { y[e] = s[g] * k[e]; });
        free(k);
    } else {
        LS_PASS(L, w.acc, x, use01 ? (sign1(x[e]) + 1.0f) / 2.0f : sign1(x[e]));
        for (size_t g = 0; g < G; g++) s[g] = ls_scale(w.acc[g], w.acc[G + g], cnt, a, a->po2);
    }
    for (size_t g = 0; g < G; g++) scale_out[g] = s[g];
    qnn_fpenv_end(env);
    if (!(p->flags & QNN_QF_SR)) {
        expand(L, s, w.S1);
        rc = qnn_quant_forward(p, x, y, n, w.S1, NULL, L->S, L->inner);
    }
    scratch_free(&w);
    return rc;
}

/* ------------------------------------------------------------------------ ternary */

static inline float sign3(float v) { return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : (v != v ? v : 0.0f)); }

int QNN_FN(qnn_quant_auto_ternary)(const qnn_quant_params *p, const qnn_auto_params *a,
                           const qnn_channel_layout *L, const float *x, float *y,
                           float *scale_out) {
    if (!valid_layout(L) || a->iterations < 1) return QNN_EINVAL;
    const size_t G = G_OF(L), n = L->outer * L->S * L->inner;
    const double cnt = group_count(L);
    const int sr = (p->flags & QNN_QF_SR) != 0;
    scratch w;
    int rc = scratch_alloc(&w, L);
    if (rc) { scratch_free(&w); return rc; }
    qnn_fpenv env = qnn_fpenv_flush_begin();
    float *s = w.a;
    absmax(L, x, s, a->global_init, 1);
    for (size_t g = 0; g < G; g++) {
        s[g] = (2.0f * s[g]) / 3.0f;
        if (a->po2) s[g] = po2_round(s[g] + QNN_EPS);
    }
    /* Each unroll: q = sign(x)*[|s*round(x/s)| >= s/2] (stochastic rounding at precision 1/3
     * while training, draw `it`), then s = LS(x, q). y keeps q for the output. */
    for (int it = 0; it < a->iterations; it++) {
        for (size_t k = 0; k < 2 * G; k++) w.acc[k] = 0.0;
        /* one loop per rounding mode: a mode test inside the loop keeps it from vectorising */
#define TERNARY_UNROLL(ROUND)                                                     \
    FOR_EACH(L, {                                                                 \
        const float sc = s[g];                                                    \
        const float v = sc * (ROUND);                                             \
        const float q = (fabsf(v) >= sc / 2.0f ? 1.0f : 0.0f) * sign3(x[e]);      \
        y[e] = q;                                                                 \
        w.acc[g] += (double)(x[e] * q);                                           \
        w.acc[G + g] += (double)(q * q);                                          \
    })
        if (sr) {
            TERNARY_UNROLL(qk_sround(x[e] / sc, 3.0f, qnn_uniform01(p->key, (uint64_t)it * n + e)));
        } else {
            TERNARY_UNROLL(qk_rint(x[e] / sc));
        }
#undef TERNARY_UNROLL
        int same = 1;
        for (size_t g = 0; g < G; g++) {
            const float t = ls_scale(w.acc[g], w.acc[G + g], cnt, a, a->po2);
            same &= t == s[g];
            s[g] = t;
        }
        /* a fixed point: further unrolls would rebuild this q (in y) and these scales (the
         * stochastic rounding draws anew in each unroll, so it runs them all) */
        if (same && !sr) break;
    }
    FOR_EACH(L, { y[e] = s[g] * y[e]; });
    for (size_t g = 0; g < G; g++) scale_out[g] = s[g];
    qnn_fpenv_end(env);
    scratch_free(&w);
    return rc;
}

/* ------------------------------------------------- stochastic_binary, bernoulli, stochastic_ternary */

int QNN_FN(qnn_quant_stochastic)(const qnn_quant_params *p, const qnn_auto_params *a,
                         const qnn_channel_layout *L, const float *x, float *y,
                         const float *scale_in, float *scale_out) {
    if (!valid_layout(L)) return QNN_EINVAL;
    const size_t G = G_OF(L), n = L->outer * L->S * L->inner;
    const double cnt = group_count(L);
    const int use01 = (p->flags & QNN_QF_USE01) != 0;
    const int string_alpha = a->alpha_kind == 1 || a->alpha_kind == 2;
    scratch w;
    int rc = scratch_alloc(&w, L);
    if (rc) { scratch_free(&w); return rc; }
    qnn_fpenv env = qnn_fpenv_flush_begin();
    float *s = w.a, *sd = w.b;
    if (p->op == QNN_Q_STOCH_TERNARY) {
        if (!string_alpha || a->iterations < 1) { qnn_fpenv_end(env); scratch_free(&w); return QNN_EINVAL; }
        rc = stddev(L, x, sd, a->global_init);
        if (rc) { qnn_fpenv_end(env); scratch_free(&w); return rc; }
        for (size_t g = 0; g < G; g++) sd[g] = sd[g] + QNN_EPS;
        absmax(L, x, s, a->global_init, 1);
        for (size_t g = 0; g < G; g++) {
            s[g] = (2.0f * s[g]) / 3.0f;
            if (a->po2) s[g] = po2_round(s[g] + QNN_EPS);
        }
        for (int it = 0; it < a->iterations; it++) {
            LS_PASS(L, w.acc, x, (fabsf(x[e]) >= s[g] / 2.0f ? 1.0f : 0.0f) * sign3(x[e]));
            for (size_t g = 0; g < G; g++) s[g] = ls_scale(w.acc[g], w.acc[G + g], cnt, a, a->po2);
        }
    } else {
        if (string_alpha) {
            rc = stddev(L, x, sd, a->global_init);
            if (rc) { qnn_fpenv_end(env); scratch_free(&w); return rc; }
            for (size_t g = 0; g < G; g++) sd[g] = sd[g] + QNN_EPS;
            LS_PASS(L, w.acc, x, use01 ? (sign1(x[e]) + 1.0f) / 2.0f : sign1(x[e]));
            for (size_t g = 0; g < G; g++) s[g] = ls_scale(w.acc[g], w.acc[G + g], cnt, a, a->po2);
        } else {
            for (size_t g = 0; g < G; g++) {
                sd[g] = 1.0f;
                s[g] = a->alpha_kind == 3 ? scale_in[g * L->group] : 1.0f;
            }
        }
    }
    for (size_t g = 0; g < G; g++) scale_out[g] = s[g];
    qnn_fpenv_end(env);
    expand(L, s, w.S1);
    expand(L, sd, w.S2);
    rc = qnn_quant_forward(p, x, y, n, w.S1, w.S2, L->S, L->inner);
    scratch_free(&w);
    return rc;
}

const qnn_quant_auto_kernels QNN_FN(qnn_quant_auto_kernels) = {
    QNN_FN(qnn_quant_auto_bits),    QNN_FN(qnn_quant_auto_linear), QNN_FN(qnn_quant_auto_binary),
    QNN_FN(qnn_quant_auto_ternary), QNN_FN(qnn_quant_stochastic),
};
