/* AVX-512 sgemm microkernels (packed, indirect A, indirect B; gemm.h): a 14 x 32 tile, 28 zmm
 * accumulators.
 *
 * Per k step it loads two B vectors and broadcasts 14 A scalars (one per packed A row, all at
 * constant offsets from one pointer) (16 loads against 28 FMAs, well
 * inside Zen 5's 2 loads + 2 FMAs per cycle), and the 28 independent accumulators cover the FMA
 * latency of 4 cycles on 2 pipes (>= 8 needed). 32 columns suit conv-shaped products, whose
 * N = Cout is a multiple of 32; 14 rows use the register file fully (28 + 2 B + 2 spare).
 * FMA here rounds once per step where the reference rounds twice: results agree to float
 * summation, not bit for bit (tests compare with a tolerance). */
#include <immintrin.h>

#include "kernels/gemm/gemm.h"

#define MR QNN_SGEMM_MR_AVX512
#define NR QNN_SGEMM_NR_AVX512

_Static_assert(MR == 14 && NR == 32, "the unrolled tile below is 14 x 32");

static inline __mmask16 col_mask(size_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* C tile = alpha * acc + beta * C, rows < m, columns < n. */
static inline void store_tile(const __m512 *acc, float *c, size_t ldc, size_t m, size_t n,
                              float alpha, float beta) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __mmask16 k0 = col_mask(n), k1 = n > 16 ? col_mask(n - 16) : 0;
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[2 * i]), r1 = _mm512_mul_ps(va, acc[2 * i + 1]);
        if (beta != 0.0f) {
            /* Separate multiply and add, as the reference: only the dot products use FMA. */
            r0 = _mm512_add_ps(r0, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(k0, ci)));
            r1 = _mm512_add_ps(r1, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(k1, ci + 16)));
        }
        _mm512_mask_storeu_ps(ci, k0, r0);
        _mm512_mask_storeu_ps(ci + 16, k1, r1);
    }
}

/* Every kernel below keeps the 14 x 32 tile in 28 named accumulators (x: columns 0-15, y:
 * 16-31), so GCC holds them in registers. QNN_TILE_BEGIN declares them zeroed and prefetches the
 * C tile, needed once at the end (fetching it now hides the misses behind the k loop);
 * QNN_TILE_END stores the tile. Both use the kernels' c, ldc, m, n, alpha, beta. */
#define QNN_TILE_BEGIN                                                                        \
    __m512 x0 = _mm512_setzero_ps(), y0 = x0, x1 = x0, y1 = x0, x2 = x0, y2 = x0, x3 = x0,     \
           y3 = x0, x4 = x0, y4 = x0, x5 = x0, y5 = x0, x6 = x0, y6 = x0, x7 = x0, y7 = x0,   \
           x8 = x0, y8 = x0, x9 = x0, y9 = x0, x10 = x0, y10 = x0, x11 = x0, y11 = x0,        \
           x12 = x0, y12 = x0, x13 = x0, y13 = x0;                                            \
    for (size_t i_ = 0; i_ < m; i_++) {                                                       \
        _mm_prefetch((const char *)(c + i_ * ldc), _MM_HINT_T0);                              \
        _mm_prefetch((const char *)(c + i_ * ldc + 16), _MM_HINT_T0);                         \
    }
#define QNN_TILE_END                                                                           \
    const __m512 acc_[2 * MR] = {x0, y0, x1, y1, x2, y2, x3, y3, x4, y4, x5, y5, x6, y6,       \
                                 x7, y7, x8, y8, x9, y9, x10, y10, x11, y11, x12, y12, x13,   \
                                 y13};                                                        \
    store_tile(acc_, c, ldc, m, n, alpha, beta)

/* One k step's 28 FMAs with a packed A sliver pa (row i at pa[i*QNN_SGEMM_KC]) and the B
 * vectors b0, b1, for the packed and the indirect-B kernels. */
#define QNN_PA_ROW(i)                                               \
    {                                                               \
        const __m512 ai = _mm512_set1_ps(pa[i * QNN_SGEMM_KC]);     \
        x##i = _mm512_fmadd_ps(ai, b0, x##i);                       \
        y##i = _mm512_fmadd_ps(ai, b1, y##i);                       \
    }
#define QNN_PACKED_A_ROWS                                                                  \
    QNN_PA_ROW(0) QNN_PA_ROW(1) QNN_PA_ROW(2) QNN_PA_ROW(3) QNN_PA_ROW(4) QNN_PA_ROW(5)     \
    QNN_PA_ROW(6) QNN_PA_ROW(7) QNN_PA_ROW(8) QNN_PA_ROW(9) QNN_PA_ROW(10) QNN_PA_ROW(11)   \
    QNN_PA_ROW(12) QNN_PA_ROW(13)

void qnn_sgemm_ukernel_avx512(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                              size_t m, size_t n, float alpha, float beta) {
    const float *pa = __builtin_assume_aligned(a, 64);
    const float *pb = __builtin_assume_aligned(b, 64);
    QNN_TILE_BEGIN;
#pragma GCC unroll 4
    for (size_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(pb), b1 = _mm512_load_ps(pb + 16);
        QNN_PACKED_A_ROWS
        pa += 1;
        pb += NR;
    }
    QNN_TILE_END;
}

/* One k step of the indirect kernels: row i's A value at a##i[k], the B vectors at pb. */
#define QNN_ROW(i, k)                                \
    {                                                \
        const __m512 ai = _mm512_set1_ps(a##i[k]);   \
        x##i = _mm512_fmadd_ps(ai, b0, x##i);        \
        y##i = _mm512_fmadd_ps(ai, b1, y##i);        \
    }
#define QNN_STEP(k)                                                                       \
    {                                                                                     \
        const __m512 b0 = _mm512_load_ps(pb), b1 = _mm512_load_ps(pb + 16);               \
        QNN_ROW(0, k) QNN_ROW(1, k) QNN_ROW(2, k) QNN_ROW(3, k) QNN_ROW(4, k) QNN_ROW(5, k) \
        QNN_ROW(6, k) QNN_ROW(7, k) QNN_ROW(8, k) QNN_ROW(9, k) QNN_ROW(10, k)              \
        QNN_ROW(11, k) QNN_ROW(12, k) QNN_ROW(13, k)                                      \
        pb += NR;                                                                         \
    }
#define QNN_IND_ROWS(r)                                                                 \
    const float *a0 = (r)[0], *a1 = (r)[1], *a2 = (r)[2], *a3 = (r)[3], *a4 = (r)[4],     \
                *a5 = (r)[5], *a6 = (r)[6], *a7 = (r)[7], *a8 = (r)[8], *a9 = (r)[9],     \
                *a10 = (r)[10], *a11 = (r)[11], *a12 = (r)[12], *a13 = (r)[13]
/* 16 k steps from k, prefetching one line of each row of the next sliver's table q. */
#define QNN_PF_STEP(u)                                                     \
    _mm_prefetch((const char *)(q[u] + k), _MM_HINT_T1);                   \
    QNN_STEP(k + u)
#define QNN_PF_GROUP                                                                      \
    {                                                                                     \
        QNN_PF_STEP(0) QNN_PF_STEP(1) QNN_PF_STEP(2) QNN_PF_STEP(3) QNN_PF_STEP(4)         \
        QNN_PF_STEP(5) QNN_PF_STEP(6) QNN_PF_STEP(7) QNN_PF_STEP(8) QNN_PF_STEP(9)         \
        QNN_PF_STEP(10) QNN_PF_STEP(11) QNN_PF_STEP(12) QNN_PF_STEP(13)                    \
        QNN_STEP(k + 14) QNN_STEP(k + 15)                                                 \
    }

/* The indirect form: the same tile and k order, the 14 A rows read through a pointer table.
 * With no packed copy in L2 to stream from, the rows of the next sliver are prefetched here,
 * one line of one row per k step (14 of every 16 steps), so the fetches spread over the whole
 * product instead of stalling in a burst between calls. They go to L2 (T1), not L1: the next
 * sliver is needed a whole call later, and a product streaming A from DRAM (65536 x 64 x 576)
 * ran 3-8% faster so, convolutions and L3-resident squares unchanged (in-process A/B). */
void qnn_sgemm_ind_ukernel_avx512(size_t nseg, const size_t *len, const float *const *rows,
                                  const float *const *pf, const float *b, float *c, size_t ldc,
                                  size_t m, size_t n, float alpha, float beta) {
    const float *pb = __builtin_assume_aligned(b, 64);
    QNN_TILE_BEGIN;
    for (size_t s = 0; s < nseg; s++) {
        const float *const *r = rows + s * MR;
        QNN_IND_ROWS(r);
        const size_t l = len[s];
        size_t k = 0;
        if (pf) {
            const float *const *q = pf + s * MR;
            for (; k + 16 <= l; k += 16) QNN_PF_GROUP
        }
#pragma GCC unroll 4
        for (; k < l; k++) QNN_STEP(k)
    }
    QNN_TILE_END;
}

/* The copying indirect form (gemm.h): as the indirect kernel over one segment, and each group
 * of 16 k steps first moves its 16 columns of the 14 rows to cp with one vector load and store a
 * row, then broadcasts from the copy. The aliased rows are so read once, a line at a time, and
 * the copy rides along the first B sliver's pass: a separate copy pass cost 4% on 2048^3. */
void qnn_sgemm_indc_ukernel_avx512(size_t kc, const float *const *rows, float *const *cp,
                                   const float *const *pf, const float *b, float *c, size_t ldc,
                                   size_t m, size_t n, float alpha, float beta) {
    const float *pb = __builtin_assume_aligned(b, 64);
    QNN_TILE_BEGIN;
    QNN_IND_ROWS(cp);
#define QNN_CP(i) _mm512_storeu_ps(cp[i] + k, _mm512_loadu_ps(rows[i] + k));
#define QNN_CP_ALL                                                                               \
    QNN_CP(0) QNN_CP(1) QNN_CP(2) QNN_CP(3) QNN_CP(4) QNN_CP(5) QNN_CP(6) QNN_CP(7) QNN_CP(8) \
    QNN_CP(9) QNN_CP(10) QNN_CP(11) QNN_CP(12) QNN_CP(13)
    size_t k = 0;
    if (pf) {
        const float *const *q = pf;
        for (; k + 16 <= kc; k += 16) {
            QNN_CP_ALL
            QNN_PF_GROUP
        }
    }
    for (; k + 16 <= kc; k += 16) {
        QNN_CP_ALL
        QNN_STEP(k) QNN_STEP(k + 1) QNN_STEP(k + 2) QNN_STEP(k + 3) QNN_STEP(k + 4)
        QNN_STEP(k + 5) QNN_STEP(k + 6) QNN_STEP(k + 7) QNN_STEP(k + 8) QNN_STEP(k + 9)
        QNN_STEP(k + 10) QNN_STEP(k + 11) QNN_STEP(k + 12) QNN_STEP(k + 13) QNN_STEP(k + 14)
        QNN_STEP(k + 15)
    }
#undef QNN_CP_ALL
#undef QNN_CP
    QNN_TILE_END;
}
#undef QNN_PF_GROUP
#undef QNN_PF_STEP
#undef QNN_STEP
#undef QNN_ROW
#undef QNN_IND_ROWS

/* The indirect-B form (gemm.h): packed A, B row k of the sliver read at brow[k]. */
void qnn_sgemm_indb_ukernel_avx512(size_t kc, const float *a, const float *const *brow, float *c,
                                   size_t ldc, size_t m, size_t n, float alpha, float beta) {
    const float *pa = __builtin_assume_aligned(a, 64);
    QNN_TILE_BEGIN;
#pragma GCC unroll 4
    for (size_t k = 0; k < kc; k++) {
        const float *pb = brow[k];
        const __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 16);
        QNN_PACKED_A_ROWS
        pa += 1;
    }
#undef QNN_PACKED_A_ROWS
#undef QNN_PA_ROW
    QNN_TILE_END;
}

/* In-register transpose: on return r[i] holds what was column i of the 16 rows. */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0x88);
            t[8 * i + j + 4] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0xdd);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
        r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xdd);
    }
}

/* Transposed-A packing (gemm.h) in 16 x 16 tiles: 16 contiguous row values per k in, 16
 * contiguous k values per row out; masks cover the edges. */
void qnn_sgemm_pack_at_avx512(const float *src, size_t cs, size_t m, size_t kc, float *dst) {
    for (size_t i0 = 0; i0 < m; i0 += 16) {
        const size_t mi = m - i0 < 16 ? m - i0 : 16;
        const __mmask16 rm = col_mask(mi);
        for (size_t k0 = 0; k0 < kc; k0 += 16) {
            const size_t mk = kc - k0 < 16 ? kc - k0 : 16;
            __m512 r[16];
            for (size_t k = 0; k < 16; k++)
                r[k] = k < mk ? _mm512_maskz_loadu_ps(rm, src + (k0 + k) * cs + i0)
                              : _mm512_setzero_ps();
            transpose16(r);
            const __mmask16 km = col_mask(mk);
            for (size_t i = 0; i < mi; i++)
                _mm512_mask_storeu_ps(dst + (i0 + i) * QNN_SGEMM_KC + k0, km, r[i]);
        }
    }
}
