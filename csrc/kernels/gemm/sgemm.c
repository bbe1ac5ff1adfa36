/* sgemm driver: packing, cache blocking and the OpenMP split around the dispatched microkernel.
 * The first K slice applies beta, the later ones accumulate, so within one product no thread
 * ever reduces into another's output (split-K adds its partials after a barrier). */
#include "kernels/gemm/gemm.h"

#include <string.h>

#include "runtime/dispatch.h"
#include "runtime/fpenv.h"
#include "runtime/threads.h"
#include "runtime/workspace.h"

/* Cache blocking for a 48 KB L1D and 1 MB L2 (spec/performance.md §1): a KC x NR sliver of B
 * (32 KB for NR = 32) stays in L1 while MR-row slivers of A stream from L2; the MC x KC block of A
 * (<= QNN_A_BYTES) stays in L2 beside the C tiles; the KC x NC panel of B streams from L3 once per
 * MC block. K is cut into equal slices so a remainder slice never runs at a short, slow depth. */
#define QNN_KC QNN_SGEMM_KC
#ifndef QNN_A_BYTES
#define QNN_A_BYTES (384u * 1024u)
#endif
#define QNN_NC 2048
/* Column panel of the in-place-A path, in B slivers. Each A sliver meets every B sliver of the
 * panel while it is in L1, so the panel's K slice (<= 1024 x 256 floats, 1 MB) has to stay in
 * L2; wider products run panel by panel, re-reading A (from L3 or DRAM, prefetched) once per
 * panel. Against a packed A block streamed past L1-resident B slivers this measured 1.02-1.10x
 * faster on 512^3 .. 2048^3 and 1000 x 3000 x 500 (1 and 2 threads, the two builds timed
 * alternately in one process): 4x deeper K slices mean 4x fewer passes over C. */
#define QNN_IND_PANEL_SLIVERS 8
#define QNN_BFULL_BYTES (4u * 1024u * 1024u)
/* L1D sets of 64-byte lines (48 KB 12-way here; 32 KB 8-way L1Ds have 64 sets too). */
#define QNN_L1_SETS 64u
/* An in-place A sliver with more rows than this on one L1 set is copied (aliased_rows)... */
#define QNN_ALIAS_ROWS 8u
/* ... when it meets at least this many B slivers: the copy costs ~1.5% of one pass (2048^3
 * with no aliasing), and with 4 slivers (N = 128) the net was -1%, with 6 +0.5%, with 8 +2-3%
 * (2048^3); with 2 (65536 x 64 x 1024, A from DRAM) -8%. */
#define QNN_ACOPY_MIN_SLIVERS 6
/* Floats of a thread's copy of one aliased A sliver: MR rows of up to IND_KC + 16. */
#define QNN_ACOPY_FLOATS(mr) round_up((mr) * (QNN_SGEMM_IND_KC + 16), 16)

/* A row-address table (round_up(mc, mr) x nseg pointers) fits where the packed block would. */
_Static_assert(QNN_SGEMM_IND_MAXSEG * sizeof(const float *) <= QNN_KC * sizeof(float),
               "the A table must fit in the packed-A buffer");
_Static_assert(QNN_SGEMM_MR_REF <= QNN_SGEMM_MR_MAX && QNN_SGEMM_MR_AVX2 <= QNN_SGEMM_MR_MAX &&
                   QNN_SGEMM_MR_AVX512 <= QNN_SGEMM_MR_MAX,
               "a sliver's row table must fit in QNN_SGEMM_MR_MAX pointers");

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static size_t round_up(size_t a, size_t m) { return (a + m - 1) / m * m; }

/* Default A packer: rows [i0, i0+m) x cols [k0, k0+kc) of a strided view. */
static void pack_a_strided(const void *ctx, size_t i0, size_t m, size_t k0, size_t kc,
                           size_t mr, float *dst) {
    const qnn_mat *a = ctx;
    const size_t ld = QNN_SGEMM_KC, mpad = round_up(m, mr);
    const float *src = a->p + (ptrdiff_t)i0 * a->rs + (ptrdiff_t)k0 * a->cs;
    if (a->cs == 1) {
        for (size_t i = 0; i < m; i++) memcpy(dst + i * ld, src + (ptrdiff_t)i * a->rs, kc * sizeof(float));
    } else if (a->rs == 1 && a->cs > 0) {
        /* Transposed A (each k a contiguous run of rows): transposed in register tiles. */
        qnn_dispatch_table.sgemm_pack_at(src, (size_t)a->cs, m, kc, dst);
    } else {
        for (size_t i = 0; i < m; i++) {
            const float *s = src + (ptrdiff_t)i * a->rs;
            for (size_t k = 0; k < kc; k++) dst[i * ld + k] = s[(ptrdiff_t)k * a->cs];
        }
    }
    for (size_t i = m; i < mpad; i++) memset(dst + i * ld, 0, kc * sizeof(float));
}

/* In-place rows of a row-major view (unit column stride): one segment per K slice. */
static size_t rows_strided(const void *ctx, size_t i0, size_t m, size_t k0, size_t kc, size_t mr,
                           const float **tab, size_t *len) {
    const qnn_mat *a = ctx;
    const size_t mpad = round_up(m, mr);
    for (size_t i = 0; i < mpad; i++)
        tab[i] = a->p + (ptrdiff_t)(i0 + (i < m ? i : m - 1)) * a->rs + (ptrdiff_t)k0;
    len[0] = kc;
    return 1;
}

/* One NR-wide sliver of B: rows [k0, k0+kc) x cols [j0, j0+nn), zero-padded to nr columns. */
static void pack_b_strided(const void *ctx, size_t k0, size_t kc, size_t j0, size_t nn,
                           size_t nr, float *dst) {
    const qnn_mat *b = ctx;
    const float *src = b->p + (ptrdiff_t)k0 * b->rs + (ptrdiff_t)j0 * b->cs;
    if (b->cs == 1) {
        for (size_t k = 0; k < kc; k++) {
            memcpy(dst + k * nr, src + (ptrdiff_t)k * b->rs, nn * sizeof(float));
            for (size_t j = nn; j < nr; j++) dst[k * nr + j] = 0.0f;
        }
    } else {
        for (size_t j = 0; j < nn; j++) {
            const float *s = src + (ptrdiff_t)j * b->cs;
            for (size_t k = 0; k < kc; k++) dst[k * nr + j] = s[(ptrdiff_t)k * b->rs];
        }
        for (size_t j = nn; j < nr; j++)
            for (size_t k = 0; k < kc; k++) dst[k * nr + j] = 0.0f;
    }
}

/* C = beta*C for the degenerate products (K == 0 or alpha == 0), as BLAS: A and B unread. */
static void scale_c(size_t M, size_t N, float beta, float *c, size_t ldc) {
    for (size_t i = 0; i < M; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f) memset(ci, 0, N * sizeof(float));
        else for (size_t j = 0; j < N; j++) ci[j] *= beta;
    }
}

/* One GEMM's blocking plan and buffers; gemm_run() executes it as thread `tid` of `nt`. */
typedef struct gemm_job {
    size_t M, N, K, kcb, mcb, n_mb, astride;
    size_t ncb;   /* column panel width (the jc step) */
    size_t acopy; /* offset (floats) of the aliased-sliver copy in a thread's A buffer, or 0 */
    int bfull; /* all of B packed up front (slice p at bbuf + p*kcb*round_up(N, nr)) */
    int ind;   /* A read in place through ap->rows (else packed) */
    int bind;  /* B read in place through bp->rows (else packed); only with a packed A */
    float alpha, beta;
    const qnn_apacker *ap;
    const qnn_bpacker *bp;
    float *c, *abuf, *bbuf;
    size_t ldc;
    const qnn_gemm_epilogue *ep; /* applied to each finished block */
} gemm_job;

static size_t share(size_t n, int t, int nt) { return n * (size_t)t / (size_t)nt; }

/* Readies the B sliver of columns [j0, j0+nn) over K slice [pc, pc+kc) at dst: a packed copy,
 * or (j->bind) the table of its row addresses. */
static void b_sliver(const gemm_job *j, size_t pc, size_t kc, size_t j0, size_t nn, float *dst) {
    const size_t nr = (size_t)qnn_dispatch_table.sgemm_nr;
    if (j->bind)
        j->bp->rows(j->bp->ctx, pc, kc, j0, nr, (const float **)(void *)dst);
    else
        j->bp->pack(j->bp->ctx, pc, kc, j0, nn, nr, dst);
}

/* Readies row block [i0, i0+mc) x K slice [pc, pc+kc) of A in the thread's buffer: a table of
 * row addresses for the indirect microkernel (returns the number of K segments, lengths in len)
 * or, returning 0, a packed copy. */
static size_t a_block(const gemm_job *j, float *my_a, size_t i0, size_t mc, size_t pc, size_t kc,
                      size_t *len) {
    const size_t mr = (size_t)qnn_dispatch_table.sgemm_mr;
    if (j->ind) return j->ap->rows(j->ap->ctx, i0, mc, pc, kc, mr, (const float **)my_a, len);
    j->ap->pack(j->ap->ctx, i0, mc, pc, kc, mr, my_a);
    return 0;
}

/* Whether rows [0, m) of an in-place A sliver start on so few L1 sets that more than
 * QNN_ALIAS_ROWS share one: a row stride that is a multiple of 4 KB (K = 1024, 2048, ...) puts
 * all 14 on one 12-way set, and each k step's 14 broadcasts then keep evicting one another:
 * 2048^3 ran 6% below 2048 x 2048 x 2064 at the same K slicing, 1024^3 5-7% below
 * 1024 x 1024 x 1008. 7 rows a set (a 2 KB stride) cost ~1%, less than the copy. */
static int aliased_rows(const float *const *r, size_t m) {
    if (m <= QNN_ALIAS_ROWS) return 0;
    unsigned char n[QNN_L1_SETS] = {0};
    for (size_t i = 0; i < m; i++)
        if (++n[((uintptr_t)r[i] >> 6) % QNN_L1_SETS] > QNN_ALIAS_ROWS) return 1;
    return 0;
}

/* Row addresses of a copy of one in-place A sliver (kc floats a row) at dst, with a row stride
 * of an odd number of lines so its rows fall on distinct L1 sets; rows >= m at row m-1, as in
 * the table it replaces. */
static void copy_rows(size_t m, size_t mr, size_t kc, float *dst, float **tab) {
    size_t ld = round_up(kc, 16);
    if ((ld / 16) % 2 == 0) ld += 16;
    for (size_t i = 0; i < mr; i++) tab[i] = dst + (i < m ? i : m - 1) * ld;
}

/* C rows [0, mc) x slivers [s0, s1) (c points at the block's C(0, 0) of this column panel, nc
 * columns wide) = the readied A block times B slivers (sliver sl at bsl + sl*nr*kc). Packed A:
 * each B sliver stays in L1 while the A slivers stream from L2. In-place A: each A sliver is
 * used against every B sliver at once, while it is in L1, and the next one is prefetched during
 * its first use, since it comes from wherever the caller's matrix lies (L3, DRAM). The sum over
 * k runs in the same order either way. */
static void block_mul(const gemm_job *j, float *my_a, size_t nseg, const size_t *len,
                      size_t mc, size_t kc, const float *bsl, size_t s0, size_t s1, float *c,
                      size_t nc, float bt) {
    const size_t mr = (size_t)qnn_dispatch_table.sgemm_mr, nr = (size_t)qnn_dispatch_table.sgemm_nr;
    if (nseg == 0) { /* packed A; B packed, or (j->bind) a table of its row addresses */
        const qnn_sgemm_ukernel uk = qnn_dispatch_table.sgemm;
        const qnn_sgemm_indb_ukernel ukb = qnn_dispatch_table.sgemm_indb;
        for (size_t sl = s0; sl < s1; sl++) {
            const size_t j0 = sl * nr, nn = min_sz(nr, nc - j0);
            const float *b = bsl + j0 * kc;
            for (size_t ir = 0; ir < mc; ir += mr) {
                const float *a = my_a + ir * QNN_KC;
                float *ct = c + ir * j->ldc + j0;
                const size_t m = min_sz(mr, mc - ir);
                if (j->bind)
                    ukb(kc, a, (const float *const *)(const void *)b, ct, j->ldc, m, nn, j->alpha,
                        bt);
                else
                    uk(kc, a, b, ct, j->ldc, m, nn, j->alpha, bt);
            }
        }
        return;
    }
    const qnn_sgemm_ind_ukernel uk = qnn_dispatch_table.sgemm_ind;
    const float *const *tab = (const float *const *)(const void *)my_a;
    const size_t nv = (mc + mr - 1) / mr, per = nseg * mr;
    float *ctab[QNN_SGEMM_MR_MAX];
    for (size_t v = 0; v < nv; v++) {
        const float *const *t = tab + v * per, *const *pf = v + 1 < nv ? t + per : NULL;
        const size_t m = min_sz(mr, mc - v * mr);
        size_t sl = s0;
        /* An aliased sliver meets the first B sliver in place, copying itself out as it goes,
         * and the others from the copy. One segment only, as the plain GEMM's rows (the copying
         * kernel prefetches the next sliver by its one segment), 16-step deep: contiguous rows
         * alias at K = 1024 t, cut into 1024-deep slices. */
        if (j->acopy && nseg == 1 && kc % 16 == 0 && s1 - s0 >= QNN_ACOPY_MIN_SLIVERS &&
            aliased_rows(t, m)) {
            const size_t j0 = sl * nr;
            copy_rows(m, mr, kc, my_a + j->acopy, ctab);
            qnn_dispatch_table.sgemm_indc(kc, t, ctab, pf, bsl + j0 * kc,
                                          c + v * mr * j->ldc + j0, j->ldc, m,
                                          min_sz(nr, nc - j0), j->alpha, bt);
            t = (const float *const *)ctab;
            pf = NULL;
            sl++;
        }
        /* Two B slivers (N <= 64 at AVX-512) and one segment (the plain GEMM's rows): each
         * pass prefetches half of the next sliver's rows (the table repeats them; a repeated
         * line is already on its way), so the fetches spread over both passes. For a tall A
         * streamed from DRAM, all in the first pass asked for ~15 GB/s, one core's bandwidth
         * here: 65536 x 64 x 576 ran 4-8% faster so; 16384 x 64 x 576 (A in L3) within 1%,
         * and products with more slivers were no faster or lost 1-2%. */
        if (pf && nseg == 1 && s1 - sl == 2) {
            const float *q[QNN_SGEMM_MR_MAX];
            for (size_t h = 0; h < 2; h++, sl++) {
                const size_t j0 = sl * nr, r0 = h * (mr / 2), nrow = h ? mr - mr / 2 : mr / 2;
                for (size_t u = 0; u < mr; u++) q[u] = pf[r0 + u % nrow];
                uk(nseg, len, t, q, bsl + j0 * kc, c + v * mr * j->ldc + j0, j->ldc, m,
                   min_sz(nr, nc - j0), j->alpha, bt);
            }
        }
        for (; sl < s1; sl++) {
            const size_t j0 = sl * nr;
            uk(nseg, len, t, sl == s0 ? pf : NULL, bsl + j0 * kc, c + v * mr * j->ldc + j0,
               j->ldc, m, min_sz(nr, nc - j0), j->alpha, bt);
        }
    }
}

/* Loop order (Goto/BLIS): jc over NC-wide column panels, pc over K slices (the B panel packed
 * once per slice, shared by the team), then the (row block, column chunk) items split statically
 * between threads; each thread packs its own A block, reused while consecutive items share the
 * row block. Explicit partitions and barriers (not worksharing constructs) let the split-K path
 * run the same code single-threaded inside its own parallel region. Runs with FTZ/DAZ, as TF's
 * kernels do: subnormal operands made a filter gradient 6x slower. */
/* Tall products with a narrow B (conv layers: M = pixels, N = Cout): B is packed whole, once,
 * and each thread walks all K slices of a row block before the next, so its C block stays in
 * L2 instead of being re-read from DRAM once per K slice (16 MB x 2 x 3 for a 64-channel layer
 * at batch 64). */
static void gemm_run_bfull(const gemm_job *j, int tid, int nt) {
    const size_t nr = (size_t)qnn_dispatch_table.sgemm_nr;
    float *my_a = j->abuf + (size_t)tid * j->astride;
    const size_t n_sl = (j->N + nr - 1) / nr, npad = n_sl * nr, n_pc = (j->K + j->kcb - 1) / j->kcb;
    for (size_t u = share(n_sl * n_pc, tid, nt); u < share(n_sl * n_pc, tid + 1, nt); u++) {
        const size_t p = u / n_sl, sl = u % n_sl, pc = p * j->kcb, kc = min_sz(j->kcb, j->K - pc);
        b_sliver(j, pc, kc, sl * nr, min_sz(nr, j->N - sl * nr),
                 j->bbuf + p * j->kcb * npad + sl * nr * kc);
    }
    if (nt > 1) {
#pragma omp barrier
    }
    size_t n_jb = j->n_mb >= (size_t)nt ? 1 : ((size_t)nt + j->n_mb - 1) / j->n_mb;
    if (n_jb > n_sl) n_jb = n_sl;
    const size_t sl_per_jb = (n_sl + n_jb - 1) / n_jb, n_items = j->n_mb * n_jb;
    for (size_t it = share(n_items, tid, nt); it < share(n_items, tid + 1, nt); it++) {
        const size_t ib = it / n_jb, jb = it % n_jb;
        const size_t i0 = ib * j->mcb, mc = min_sz(j->mcb, j->M - i0);
        const size_t s0 = jb * sl_per_jb, s1 = min_sz(n_sl, s0 + sl_per_jb);
        for (size_t p = 0; p < n_pc; p++) {
            const size_t pc = p * j->kcb, kc = min_sz(j->kcb, j->K - pc);
            const float bt = p == 0 ? j->beta : 1.0f;
            size_t len[QNN_SGEMM_IND_MAXSEG];
            const size_t nseg = a_block(j, my_a, i0, mc, pc, kc, len);
            block_mul(j, my_a, nseg, len, mc, kc, j->bbuf + p * j->kcb * npad, s0, s1,
                      j->c + i0 * j->ldc, j->N, bt);
        }
        if (j->ep) { /* the row block is final and still in L2 */
            const size_t j0 = s0 * nr, j1 = min_sz(j->N, s1 * nr);
            if (j1 > j0) j->ep->apply(j->ep->ctx, i0, mc, j0, j1 - j0, j->c, j->ldc);
        }
    }
}

static void gemm_run(const gemm_job *j, int tid, int nt) {
    const size_t nr = (size_t)qnn_dispatch_table.sgemm_nr;
    const qnn_fpenv env = qnn_fpenv_flush_begin();
    if (j->bfull) {
        gemm_run_bfull(j, tid, nt);
        qnn_fpenv_end(env);
        return;
    }
    float *my_a = j->abuf + (size_t)tid * j->astride;
    for (size_t jc = 0; jc < j->N; jc += j->ncb) {
        const size_t nc = min_sz(j->ncb, j->N - jc);
        const size_t n_sl = (nc + nr - 1) / nr;
        /* Column chunks per row block: enough items to occupy the team when M is short. */
        size_t n_jb = j->n_mb >= (size_t)nt ? 1 : ((size_t)nt + j->n_mb - 1) / j->n_mb;
        if (n_jb > n_sl) n_jb = n_sl;
        const size_t sl_per_jb = (n_sl + n_jb - 1) / n_jb;
        const size_t n_items = j->n_mb * n_jb;
        for (size_t pc = 0; pc < j->K; pc += j->kcb) {
            const size_t kc = min_sz(j->kcb, j->K - pc);
            const float bt = pc == 0 ? j->beta : 1.0f;
            for (size_t sl = share(n_sl, tid, nt); sl < share(n_sl, tid + 1, nt); sl++) {
                const size_t j0 = sl * nr;
                b_sliver(j, pc, kc, jc + j0, min_sz(nr, nc - j0), j->bbuf + j0 * kc);
            }
            if (nt > 1) {
#pragma omp barrier
            }
            size_t packed_ib = (size_t)-1, nseg = 0, len[QNN_SGEMM_IND_MAXSEG];
            for (size_t it = share(n_items, tid, nt); it < share(n_items, tid + 1, nt); it++) {
                const size_t ib = it / n_jb, jb = it % n_jb;
                const size_t i0 = ib * j->mcb, mc = min_sz(j->mcb, j->M - i0);
                if (ib != packed_ib) {
                    nseg = a_block(j, my_a, i0, mc, pc, kc, len);
                    packed_ib = ib;
                }
                const size_t s0 = jb * sl_per_jb, s1 = min_sz(n_sl, s0 + sl_per_jb);
                block_mul(j, my_a, nseg, len, mc, kc, j->bbuf, s0, s1, j->c + i0 * j->ldc + jc,
                          nc, bt);
                if (j->ep && pc + kc >= j->K) { /* last K slice: this block is final */
                    const size_t j0 = s0 * nr, j1 = min_sz(nc, s1 * nr);
                    if (j1 > j0) j->ep->apply(j->ep->ctx, i0, mc, jc + j0, j1 - j0, j->c, j->ldc);
                }
            }
            if (nt > 1) { /* the B panel is repacked next */
#pragma omp barrier
            }
        }
    }
    qnn_fpenv_end(env);
}

/* Plans a GEMM for `nt` threads; the packing buffers (gemm_a_floats / gemm_b_floats) are bound
 * by the caller, from a workspace. */
static void gemm_plan(gemm_job *j, size_t M, size_t N, size_t K, float alpha, const qnn_apacker *ap,
                      const qnn_bpacker *bp, float beta, float *c, size_t ldc,
                      const qnn_gemm_epilogue *ep, int nt) {
    const size_t mr = (size_t)qnn_dispatch_table.sgemm_mr, nr = (size_t)qnn_dispatch_table.sgemm_nr;
    const int ind = ap->rows != NULL;
    const size_t ncb = ind ? QNN_IND_PANEL_SLIVERS * nr : QNN_NC;
    const size_t kmax = ind ? QNN_SGEMM_IND_KC : QNN_KC;
    const size_t n_kc = (K + kmax - 1) / kmax;
    const size_t kcb = min_sz(round_up((K + n_kc - 1) / n_kc, 4), K);
    /* Row blocks: MC, or smaller so that a short M still gives every thread a block. */
    const size_t mc_max = QNN_A_BYTES / (QNN_KC * sizeof(float)) / mr * mr;
    size_t mcb = min_sz(mc_max > mr ? mc_max : mr, round_up(M, mr));
    if (nt > 1 && (M + mcb - 1) / mcb < (size_t)nt) {
        /* Fewer row blocks than threads: split the rows, or keep one block and let the threads
         * take column chunks (gemm_run), whichever leaves the busiest thread fewer tiles. Both
         * round up per thread; for M = 256, N = 2304 (a filter gradient) rows give one thread
         * 10 of 19 A slivers, columns an even half of B. Column chunks make each thread pack
         * the whole A block, cheap next to its share of a wide B. */
        const size_t t = (size_t)nt, m_sl = (M + mr - 1) / mr;
        const size_t n_sl = (min_sz(N, ncb) + nr - 1) / nr;
        const size_t by_rows = (m_sl + t - 1) / t * n_sl, by_cols = m_sl * ((n_sl + t - 1) / t);
        if (!(by_cols < by_rows && n_sl >= 4 * t))
            mcb = round_up((M + t - 1) / t, mr);
    } else if (nt > 1) {
        /* A multiple of nt row blocks of near-equal sliver counts: M = 1024 in 378-row blocks
         * gave one of two threads 2 of 3 blocks (1024^3 ran 1.4x its 1-thread speed). */
        const size_t t = (size_t)nt, m_sl = (M + mr - 1) / mr;
        const size_t n_mb = ((M + mcb - 1) / mcb + t - 1) / t * t;
        mcb = (m_sl + n_mb - 1) / n_mb * mr;
    }
    /* A thread's A buffer: the packed block or the row table, then (in place) a sliver copy. */
    const size_t a_main = round_up(mcb, mr) * QNN_KC;
    *j = (gemm_job){M, N, K, kcb, mcb, (M + mcb - 1) / mcb,
                    a_main + (ind ? QNN_ACOPY_FLOATS(mr) : 0), ncb, ind ? a_main : 0, 0, ind,
                    !ind && bp->rows != NULL, alpha, beta, ap, bp, c, NULL, NULL, ldc, ep};
    const size_t n_pc = (K + kcb - 1) / kcb, npad = round_up(N, nr);
    /* Whole B when it is small next to the C it would otherwise make us re-read. */
    j->bfull = n_pc > 1 && N <= ncb && npad * K * sizeof(float) <= QNN_BFULL_BYTES &&
               M >= 4 * mcb;
}

/* Packing buffer sizes of a plan, in floats, each a multiple of 16 (64 bytes) so buffers carved
 * one after another from a workspace slot stay aligned. */
static size_t gemm_a_floats(const gemm_job *j, int nt) {
    return round_up((size_t)nt * j->astride, 16);
}

static size_t gemm_b_floats(const gemm_job *j) {
    const size_t nr = (size_t)qnn_dispatch_table.sgemm_nr, npad = round_up(j->N, nr);
    const size_t n_pc = (j->K + j->kcb - 1) / j->kcb;
    return round_up(j->bfull ? n_pc * j->kcb * npad : j->kcb * min_sz(npad, j->ncb), 16);
}

/* Packers over a K range [koff, ...) of another packer, for the split-K slices. */
typedef struct shifted_a { const qnn_apacker *ap; size_t koff; } shifted_a;
typedef struct shifted_b { const qnn_bpacker *bp; size_t koff; } shifted_b;

static void pack_a_shifted(const void *ctx, size_t i0, size_t m, size_t k0, size_t kc, size_t mr,
                           float *dst) {
    const shifted_a *s = ctx;
    s->ap->pack(s->ap->ctx, i0, m, s->koff + k0, kc, mr, dst);
}

static size_t rows_shifted(const void *ctx, size_t i0, size_t m, size_t k0, size_t kc, size_t mr,
                           const float **tab, size_t *len) {
    const shifted_a *s = ctx;
    return s->ap->rows(s->ap->ctx, i0, m, s->koff + k0, kc, mr, tab, len);
}

static void pack_b_shifted(const void *ctx, size_t k0, size_t kc, size_t j0, size_t nn, size_t nr,
                           float *dst) {
    const shifted_b *s = ctx;
    s->bp->pack(s->bp->ctx, s->koff + k0, kc, j0, nn, nr, dst);
}

static void rows_b_shifted(const void *ctx, size_t k0, size_t kc, size_t j0, size_t nr,
                           const float **tab) {
    const shifted_b *s = ctx;
    s->bp->rows(s->bp->ctx, s->koff + k0, kc, j0, nr, tab);
}

static int sgemm_ws(size_t M, size_t N, size_t K, float alpha, const qnn_apacker *ap,
                    const qnn_bpacker *bp, float beta, float *c, size_t ldc,
                    const qnn_gemm_epilogue *ep, int nthreads, qnn_workspace *ws);

typedef struct split_k_args {
    size_t M, N, K, nsl, part_floats, per_thread;
    float alpha, beta;
    const qnn_apacker *ap;
    const qnn_bpacker *bp;
    float *c, *part;
    size_t ldc;
    const qnn_gemm_epilogue *ep;
    int nt;
} split_k_args;

/* Slice boundaries on multiples of the K slice keep every thread's slices full depth. */
static size_t split_k0(const split_k_args *s, int t) {
    return min_sz(s->K, share(s->nsl, t, s->nt) * QNN_KC);
}

/* Thread t's share of the product, then (after the team's barrier) its rows of the sum of the
 * partials: orphaned directives, bound to the caller's parallel region. */
static void split_k_thread(const split_k_args *s, int t) {
    const size_t k0 = split_k0(s, t), k1 = split_k0(s, t + 1), M = s->M, N = s->N;
    const shifted_a sa = {s->ap, k0};
    const shifted_b sb = {s->bp, k0};
    const qnn_apacker a1 = {pack_a_shifted, &sa, s->ap->rows ? rows_shifted : NULL};
    const qnn_bpacker b1 = {pack_b_shifted, &sb, s->bp->rows ? rows_b_shifted : NULL};
    gemm_job j;
    if (t == 0)
        gemm_plan(&j, M, N, k1 - k0, s->alpha, &a1, &b1, s->beta, s->c, s->ldc, NULL, 1);
    else
        gemm_plan(&j, M, N, k1 - k0, s->alpha, &a1, &b1, 0.0f, s->part + (size_t)(t - 1) * M * N,
                  N, NULL, 1);
    j.abuf = s->part + s->part_floats + (size_t)t * s->per_thread;
    j.bbuf = j.abuf + gemm_a_floats(&j, 1);
    gemm_run(&j, 0, 1);
#pragma omp barrier
#pragma omp for schedule(static)
    for (long i = 0; i < (long)M; i++) {
        float *ci = s->c + (size_t)i * s->ldc;
        for (int u = 1; u < s->nt; u++) {
            const float *pi = s->part + ((size_t)(u - 1) * M + (size_t)i) * N;
            for (size_t j2 = 0; j2 < N; j2++) ci[j2] += pi[j2];
        }
        if (s->ep) s->ep->apply(s->ep->ctx, (size_t)i, 1, 0, N, s->c, s->ldc);
    }
}

/* Split-K: each thread reduces its own contiguous share of K into a private C (thread 0 straight
 * into C with beta), then the partials are added in thread order. Used when M x N offers too few
 * register tiles to share out but K is long (filter gradients: K = batch x pixels), where a
 * split over tiles would repack the same A block on every thread and meet at a barrier for every
 * K slice. The summation order depends on the thread count only through the K split. */
static int sgemm_split_k(size_t M, size_t N, size_t K, float alpha, const qnn_apacker *ap,
                         const qnn_bpacker *bp, float beta, float *c, size_t ldc,
                         const qnn_gemm_epilogue *ep, int nt, qnn_workspace *ws) {
    split_k_args s = {M, N, K, (K + QNN_KC - 1) / QNN_KC, round_up((size_t)(nt - 1) * M * N, 16),
                      0, alpha, beta, ap, bp, c, NULL, ldc, ep, nt};
    /* One slot holds the nt - 1 partial C's, then each thread's packing buffers, sized for the
     * largest of the threads' plans (their K ranges differ by at most one slice). */
    for (int t = 0; t < nt; t++) {
        gemm_job pj;
        gemm_plan(&pj, M, N, split_k0(&s, t + 1) - split_k0(&s, t), alpha, ap, bp, beta, c, ldc,
                  NULL, 1);
        const size_t f = gemm_a_floats(&pj, 1) + gemm_b_floats(&pj);
        if (f > s.per_thread) s.per_thread = f;
    }
    s.part = qnn_ws_get(ws, QNN_WS_SPLITK,
                        (s.part_floats + (size_t)nt * s.per_thread) * sizeof(float));
    if (!s.part) return QNN_ENOMEM;
    int short_team = 0;
#pragma omp parallel num_threads(nt)
    {
        /* The K shares and their buffers are planned for nt threads: a smaller team (see
         * qnn_team_size in threads.h) computes nothing here, and the product runs on one
         * thread below. */
        if (qnn_team_size() != nt) {
#pragma omp atomic write
            short_team = 1;
        } else {
            split_k_thread(&s, qnn_thread_id());
        }
    }
    if (short_team) return sgemm_ws(M, N, K, alpha, ap, bp, beta, c, ldc, ep, 1, ws);
    return QNN_OK;
}

static int sgemm_ws(size_t M, size_t N, size_t K, float alpha, const qnn_apacker *ap,
                    const qnn_bpacker *bp, float beta, float *c, size_t ldc,
                    const qnn_gemm_epilogue *ep, int nthreads, qnn_workspace *ws) {
    const size_t mr = (size_t)qnn_dispatch_table.sgemm_mr, nr = (size_t)qnn_dispatch_table.sgemm_nr;
    int nt = nthreads;
    if (nt <= 0) {
        /* One multiply-add costs ~1/8 of an element-wise op's memory traffic at these sizes. */
        const double work = (double)M * (double)N * (double)K / 8.0;
        nt = qnn_threads_for(work > 1e18 ? (size_t)1 << 60 : (size_t)work);
    }
    if (nt < 1) nt = 1;
    const size_t tiles = ((M + mr - 1) / mr) * ((N + nr - 1) / nr);
    /* Few register tiles to share out, or a reduction much longer than either side (filter
     * gradients: K = batch x pixels), where a tile split meets at two barriers per K slice. */
    if (nt > 1 && K >= (size_t)nt * 2 * QNN_KC && M * N <= ((size_t)1 << 20) &&
        (tiles < (size_t)nt * 64 || K >= 4 * (M > N ? M : N)))
        return sgemm_split_k(M, N, K, alpha, ap, bp, beta, c, ldc, ep, nt, ws);

    gemm_job j;
    gemm_plan(&j, M, N, K, alpha, ap, bp, beta, c, ldc, ep, nt);
    j.abuf = qnn_ws_get(ws, QNN_WS_GEMM_A, gemm_a_floats(&j, nt) * sizeof(float));
    j.bbuf = j.abuf ? qnn_ws_get(ws, QNN_WS_GEMM_B, gemm_b_floats(&j) * sizeof(float)) : NULL;
    if (!j.abuf || !j.bbuf) return QNN_ENOMEM;
    if (nt == 1) {
        gemm_run(&j, 0, 1);
    } else {
#pragma omp parallel num_threads(nt)
        gemm_run(&j, qnn_thread_id(), qnn_team_size()); /* buffers are sized for nt >= the team */
    }
    return QNN_OK;
}

int qnn_sgemm_ex(size_t M, size_t N, size_t K, float alpha, qnn_mat a, const qnn_apacker *ap,
                 qnn_mat b, const qnn_bpacker *bp, float beta, float *c, size_t ldc,
                 const qnn_gemm_epilogue *ep, int nthreads, qnn_workspace *ws) {
    if (M == 0 || N == 0) return QNN_OK;
    if (K == 0 || alpha == 0.0f) {
        scale_c(M, N, beta, c, ldc);
        if (ep) ep->apply(ep->ctx, 0, M, 0, N, c, ldc);
        return QNN_OK;
    }
    qnn_apacker dflt = {pack_a_strided, &a, a.cs == 1 ? rows_strided : NULL};
    if (!ap) ap = &dflt;
    qnn_bpacker bdflt = {pack_b_strided, &b, NULL};
    if (!bp) bp = &bdflt;
    qnn_workspace tmp = {0};
    const int rc = sgemm_ws(M, N, K, alpha, ap, bp, beta, c, ldc, ep, nthreads, ws ? ws : &tmp);
    qnn_workspace_release(&tmp);
    return rc;
}

int qnn_sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
              const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
              size_t ldc, const qnn_gemm_epilogue *ep, qnn_workspace *ws) {
    const qnn_mat am = trans_a ? (qnn_mat){a, 1, (ptrdiff_t)lda} : (qnn_mat){a, (ptrdiff_t)lda, 1};
    const qnn_mat bm = trans_b ? (qnn_mat){b, 1, (ptrdiff_t)ldb} : (qnn_mat){b, (ptrdiff_t)ldb, 1};
    return qnn_sgemm_ex(M, N, K, alpha, am, NULL, bm, NULL, beta, c, ldc, ep, 0, ws);
}

/* The quantizer step of the epilogue on rows [i0, i0+m) x columns [j0, j0+n) of C while the
 * block is in cache: STE codes of the pre-activation first (row by row: block starts are
 * multiples of the register tile, so each row's codes start on a byte), then the quantizer, from
 * a copy (the quantizer kernels take distinct in and out buffers), over whole chunks of rows when
 * the block spans them (one kernel call per 1024 elements instead of one per row piece). Runs
 * under flush-to-zero like the separate quantizer kernels, whatever the caller runs in (a K = 0
 * product applies the epilogue outside the GEMM's own FTZ region). */
#define QNN_EPI_CHUNK 1024
static void quant_block(const qnn_bias_act *e, size_t i0, size_t m, size_t j0, size_t n,
                        float *c, size_t ldc) {
    const qnn_fpenv env = qnn_fpenv_flush_begin();
    if (e->ste && e->ste->planes) {
        const qnn_ste_encode_fn enc = qnn_dispatch_table.ste_encode;
        if (n == ldc && e->ste->planes == 1 && e->mask_rb * 8 == n) /* one flat bitstream */
            enc(e->ste, m * n, c + i0 * ldc, e->mask + i0 * e->mask_rb, NULL);
        else for (size_t i = i0; i < i0 + m; i++) {
            uint8_t *p0 = e->mask + i * e->mask_rb + j0 / 8;
            enc(e->ste, n, c + i * ldc + j0, p0, p0 + e->mask_plane);
        }
    }
    float buf[QNN_EPI_CHUNK];
    /* whole rows (j0 == 0, n == ldc): one flat run; otherwise row pieces */
    const size_t runs = n == ldc ? 1 : m, len = n == ldc ? m * n : n;
    for (size_t r = 0; r < runs; r++) {
        float *row = c + (i0 + r) * ldc + j0;
        const size_t flat = (i0 + r) * ldc + e->col0 + j0;
        for (size_t o = 0; o < len; o += QNN_EPI_CHUNK) {
            const size_t k = len - o < QNN_EPI_CHUNK ? len - o : QNN_EPI_CHUNK;
            memcpy(buf, row + o, k * sizeof(float));
            qnn_quant_run(e->q, buf, NULL, row + o, e->sc, e->sc2, e->S, e->inner, flat + o, k, 0);
        }
    }
    qnn_fpenv_end(env);
}

void qnn_bias_act_apply(const void *ctx, size_t i0, size_t m, size_t j0, size_t n, float *c,
                        size_t ldc) {
    const qnn_bias_act *e = ctx;
    for (size_t i = i0; i < i0 + m; i++) {
        float *restrict ci = c + i * ldc + j0;
        if (e->bias) {
            const float *restrict b = e->bias + j0;
            for (size_t j = 0; j < n; j++) ci[j] += b[j];
        }
        if (e->scale) {
            const float *restrict sc = e->scale + j0, *restrict sh = e->shift + j0;
            for (size_t j = 0; j < n; j++) ci[j] = ci[j] * sc[j] + sh[j];
        }
        if (e->relu)
            for (size_t j = 0; j < n; j++) ci[j] = ci[j] < 0.0f ? 0.0f : ci[j];
    }
    if (e->q && m && n) quant_block(e, i0, m, j0, n, c, ldc);
}
