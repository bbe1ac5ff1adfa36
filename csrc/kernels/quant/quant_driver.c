/* Tensor-level driver of the element-wise quantizer kernels: cuts the flat range into runs that
 * share a per-channel value, spreads it over OpenMP threads, and runs every thread under the
 * flush-to-zero mode TF uses. */
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/common/rng.h"
#include "kernels/quant/quant.h"
#include "runtime/dispatch.h"
#include "runtime/fpenv.h"
#include "runtime/threads.h"

static const float qnn_one = 1.0f;

typedef struct run_args {
    const qnn_quant_params *p;
    const float *x, *dy;
    float *y;
    const float *sc, *sc2;
    size_t S, inner;
    size_t base; /* flat index of x[0], dy[0], y[0] (non-zero for a chunk of a larger tensor) */
} run_args;

/* Process [a, b): for channels-last (inner == 1) a run is the rest of one row of S channels,
 * with the scale vector advancing; otherwise a run is the rest of one channel's inner block. */
static void run_range(const run_args *r, size_t a, size_t b, int backward) {
    const qnn_dispatch d = qnn_dispatch_table;
    size_t i = a;
    while (i < b) {
        size_t len;
        const float *sc = &qnn_one, *sc2 = &qnn_one;
        int stride = 0;
        if (!r->sc) {
            len = b - i;
        } else if (r->inner == 1) {
            const size_t s = i % r->S;
            len = r->S - s;
            sc = r->sc + s;
            sc2 = r->sc2 ? r->sc2 + s : sc;
            stride = 1;
        } else {
            const size_t s = (i / r->inner) % r->S;
            len = r->inner - i % r->inner;
            sc = r->sc + s;
            sc2 = r->sc2 ? r->sc2 + s : sc;
        }
        if (len > b - i) len = b - i;
        const size_t o = i - r->base;
        if (backward)
            d.quant_bwd(r->p, len, r->x + o, r->dy + o, r->y + o, sc, stride);
        else
            d.quant_fwd(r->p, len, r->x + o, r->y + o, i, sc, sc2, stride);
        i += len;
    }
}

static void run_threaded(const run_args *r, size_t n, int backward) {
    const int nt = qnn_threads_for(n);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = 0, T = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        /* Split on 64-element boundaries so SIMD bodies stay aligned with the tensor. */
        const size_t blocks = (n + 63) / 64;
        size_t a = blocks / (size_t)T * (size_t)t + ((size_t)t < blocks % (size_t)T ? (size_t)t : blocks % (size_t)T);
        size_t b = a + blocks / (size_t)T + ((size_t)t < blocks % (size_t)T ? 1 : 0);
        a *= 64;
        b *= 64;
        if (b > n) b = n;
        if (a < b) {
            qnn_fpenv env = qnn_fpenv_flush_begin();
            run_range(r, a, b, backward);
            qnn_fpenv_end(env);
        }
    }
}

int qnn_quant_forward(const qnn_quant_params *p, const float *x, float *y, size_t n,
                      const float *sc, const float *sc2, size_t S, size_t inner) {
    if (p->op <= 0 || p->op >= QNN_Q_OP_END) return QNN_EINVAL;
    if (sc && (S == 0 || inner == 0)) return QNN_EINVAL;
    run_args r = {p, x, NULL, y, sc, sc2, S, inner, 0};
    run_threaded(&r, n, 0);
    return QNN_OK;
}

int qnn_quant_backward(const qnn_quant_params *p, const float *x, const float *dy, float *dx,
                       size_t n, const float *sc, size_t S, size_t inner) {
    if (p->op <= 0 || p->op >= QNN_Q_OP_END) return QNN_EINVAL;
    if (sc && (S == 0 || inner == 0)) return QNN_EINVAL;
    run_args r = {p, x, dy, dx, sc, NULL, S, inner, 0};
    run_threaded(&r, n, 1);
    return QNN_OK;
}

void qnn_quant_run(const qnn_quant_params *p, const float *x, const float *dy, float *y,
                   const float *sc, const float *sc2, size_t S, size_t inner, size_t i0, size_t n,
                   int backward) {
    run_args r = {p, x, dy, y, sc, sc2, S, inner, i0};
    run_range(&r, i0, i0 + n, backward);
}

void qnn_uniform_fill(uint64_t key, uint64_t offset, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = qnn_uniform01(key, offset + i);
}
