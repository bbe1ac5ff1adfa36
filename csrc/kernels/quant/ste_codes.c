/* Straight-through gradients kept as bit codes: which quantizers allow it, and the threaded
 * backward over a whole (grouped) output. The per-ISA encode/decode kernels are in
 * ste_codes_{ref,avx2,avx512}.c; the forward encodes inside the GEMM epilogue. */
#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
static void qnn_store_fence(void) { _mm_sfence(); }
#else
static void qnn_store_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
#endif

#include "kernels/quant/quant.h"
#include "runtime/dispatch.h"
#include "runtime/fpenv.h"
#include "runtime/threads.h"

static float ste_factor(const qnn_quant_params *p) {
    return (p->flags & QNN_QF_NO_STE) ? 1.0f - p->qf : 1.0f; /* as quant_math.h */
}

int qnn_quant_ste_code(const qnn_quant_params *pb, qnn_ste_code *s) {
    *s = (qnn_ste_code){0, 0, 0.0f, ste_factor(pb), {0.0f, 1.0f, 0.0f}, 0};
    switch (pb->op) {
    case QNN_Q_RELU:
    case QNN_Q_RELU_PO2:
        if (pb->op == QNN_Q_RELU && (pb->flags & QNN_QF_QCLIP)) {
            s->bounded = 1;
            s->ub = pb->cap;
        } else if (pb->flags & (pb->op == QNN_Q_RELU ? QNN_QF_UB : QNN_QF_HAS_MAX)) {
            s->bounded = 1;
            s->ub = pb->ub;
        }
        s->g[2] = pb->slope;
        /* t * -0.0 and t * +0.0 differ in sign: only a +0 slope shares code 0's factor */
        s->planes = (pb->slope == 0.0f && !signbit(pb->slope)) ? 1 : 2;
        return 1;
    case QNN_Q_BITS:
    case QNN_Q_BITS_SIGN:
    case QNN_Q_AUTOBITS:
    case QNN_Q_PO2:
    case QNN_Q_SIGN:
    case QNN_Q_TERNARY:
    case QNN_Q_TERNARY_Q:
    case QNN_Q_STOCH_SIGN:
    case QNN_Q_STOCH_TERNARY:
        /* STE form A (quant_body.h's default backward): dy * ste, unless the tanh surrogate */
        if (pb->flags & QNN_QF_TANH_SURR) return 0;
        return 1;
    default:
        return 0;
    }
}

size_t qnn_ste_row_bytes(const qnn_ste_code *s, size_t n) {
    return (size_t)s->planes * ((n + 7) / 8);
}

/* Runs under flush-to-zero like the element-wise backward it replaces (quant_driver.c): a
 * subnormal dy must give the same dx either way. A dx beyond L2 is written with non-temporal
 * stores, as that backward does: it is read back by the next layer's GEMMs from memory anyway,
 * and ordinary stores would first read every line of it (read-for-ownership). */
#define QNN_STE_STREAM_MIN ((size_t)1 << 18) /* floats: 1 MB */
void qnn_quant_ste_backward(const qnn_ste_code *sc, size_t M, size_t groups, size_t Ng,
                            const uint8_t *mask, const float *dy, float *dx) {
    qnn_ste_code local = *sc;
    local.stream = M * groups * Ng >= QNN_STE_STREAM_MIN && dx != dy;
    const qnn_ste_code *s = &local;
    const qnn_ste_decode_fn dec = qnn_dispatch_table.ste_decode;
    const size_t N = groups * Ng, rb = qnn_ste_row_bytes(s, Ng), plane = rb / 2;
    /* A constant factor, or one plane whose rows hold no padding bits, is one flat run of
     * codes, cut on 64-element (8-byte) boundaries; otherwise row by row and group by group. */
    const int flat = s->planes == 0 || (s->planes == 1 && groups == 1 && Ng % 8 == 0);
    const size_t n = M * N, units = flat ? (n + 63) / 64 : M;
    const int nt = qnn_threads_for(n);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int t = 0; t < nt; t++) {
        const size_t u0 = units * (size_t)t / (size_t)nt, u1 = units * (size_t)(t + 1) / (size_t)nt;
        if (u0 >= u1) continue;
        const qnn_fpenv env = qnn_fpenv_flush_begin();
        if (flat) {
            const size_t a = u0 * 64, b = u1 * 64 < n ? u1 * 64 : n;
            dec(s, b - a, s->planes ? mask + a / 8 : NULL, NULL, dy + a, dx + a);
        } else {
            for (size_t i = u0; i < u1; i++)
                for (size_t g = 0; g < groups; g++) {
                    const uint8_t *p0 = mask + (g * M + i) * rb;
                    const size_t o = i * N + g * Ng;
                    dec(s, Ng, p0, p0 + plane, dy + o, dx + o);
                }
        }
        /* streamed lines must be visible before the team's barrier: one fence per thread */
        if (s->stream) qnn_store_fence();
        qnn_fpenv_end(env);
    }
}
