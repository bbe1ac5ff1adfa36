/* Winograd F(2x2, 3x3) driver (winograd.h): blocks of tiles (a multiple of the register
 * tile's rows), each transformed, multiplied and transformed back while it is in L2, split
 * between threads. */
#include "kernels/conv/winograd.h"

#include <string.h>

#include "runtime/dispatch.h"
#include "runtime/fpenv.h"
#include "runtime/threads.h"
#include "runtime/workspace.h"

typedef ptrdiff_t idx;

/* Transformed input and products of one block (16 planes each, tiles x C and tiles x CO) are
 * sized to about this, so both stay in L2 between the three steps. */
#ifndef QNN_WINO_BLOCK_BYTES
#define QNN_WINO_BLOCK_BYTES (1024u * 1024u)
#endif

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static size_t round_up(size_t a, size_t m) { return (a + m - 1) / m * m; }

int qnn_conv2d_winograd_fits(const qnn_conv2d_shape *s) {
    return s->KH == 3 && s->KW == 3 && s->sh == 1 && s->sw == 1 && s->dh == 1 && s->dw == 1 &&
           s->groups == 1 && s->C > 0 && s->CO > 0;
}

typedef struct wino_plan {
    const qnn_conv2d_shape *s;
    const float *x, *u;
    float *y;
    const qnn_bias_act *ba;
    size_t TH, TW, tiles, tiles_per_block, nblocks;
    size_t vplane, mplane;      /* plane strides of the block buffers */
    float *scratch;             /* per thread: V, M, zeros, four dump rows, the row table */
    size_t scratch_floats;
} wino_plan;

/* Plane strides are padded by one cache line: 16 planes a power-of-two apart would fall in
 * the same L1 sets, and the transforms touch all 16 at once. */
static size_t plane_floats(size_t tiles, size_t width) { return round_up(tiles * width, 16) + 16; }

/* A tile's place: image n, tile row th, tile column tw (tiles are numbered in that order). */
typedef struct tile_pos {
    size_t n, th, tw;
} tile_pos;

static tile_pos tile_at(const wino_plan *p, size_t t) {
    const size_t r = t / p->TW;
    return (tile_pos){r / p->TH, r % p->TH, t % p->TW};
}

/* The next tile in order, without divisions. */
static void next_tile(const wino_plan *p, tile_pos *q) {
    if (++q->tw == p->TW) {
        q->tw = 0;
        if (++q->th == p->TH) { q->th = 0; q->n++; }
    }
}

static void wino_block(const wino_plan *p, size_t blk, float *my) {
    const qnn_conv2d_shape *s = p->s;
    const qnn_wino_kernels *wk = qnn_dispatch_table.wino;
    const size_t C = s->C, CO = s->CO, TW = p->TW;
    const size_t mr = (size_t)qnn_dispatch_table.sgemm_mr, nr = (size_t)qnn_dispatch_table.sgemm_nr;
    const size_t t0 = blk * p->tiles_per_block, T = min_sz(p->tiles, t0 + p->tiles_per_block) - t0;
    float *V = my, *M = V + 16 * p->vplane, *zeros = M + 16 * p->mplane;
    float *dump = zeros + round_up(C, 16); /* 4 rows: the transform's outputs never alias */
    const float **tab = (const float **)(void *)(dump + 4 * round_up(CO, 16));

    /* 1. input transform, tile by tile */
    tile_pos q = tile_at(p, t0);
    for (size_t t = 0; t < T; t++, next_tile(p, &q)) {
        const idx ih0 = (idx)(2 * q.th) - (idx)s->pt, iw0 = (idx)(2 * q.tw) - (idx)s->pl;
        const float *xn = p->x + q.n * s->H * s->W * C;
        const float *d[16];
        if (ih0 >= 0 && iw0 >= 0 && ih0 + 4 <= (idx)s->H && iw0 + 4 <= (idx)s->W) {
            const float *b = xn + ((size_t)ih0 * s->W + (size_t)iw0) * C;
            for (size_t i = 0; i < 4; i++)
                for (size_t j = 0; j < 4; j++) d[i * 4 + j] = b + (i * s->W + j) * C;
        } else {
            for (size_t i = 0; i < 4; i++) {
                const idx ih = ih0 + (idx)i;
                for (size_t j = 0; j < 4; j++) {
                    const idx iw = iw0 + (idx)j;
                    d[i * 4 + j] = ih >= 0 && ih < (idx)s->H && iw >= 0 && iw < (idx)s->W
                                       ? xn + ((size_t)ih * s->W + (size_t)iw) * C
                                       : zeros;
                }
            }
        }
        wk->input(d, V + t * C, p->vplane, C);
    }

    /* 2. the 16 products (T x C) @ (C x CO), the transformed rows read in place */
    const qnn_sgemm_ind_ukernel uk = qnn_dispatch_table.sgemm_ind;
    const size_t nsl = (CO + nr - 1) / nr, nv = (T + mr - 1) / mr;
    for (size_t xi = 0; xi < 16; xi++) {
        const float *vx = V + xi * p->vplane;
        const float *ux = p->u + xi * nsl * C * nr;
        float *mx = M + xi * p->mplane;
        for (size_t i = 0; i < nv * mr; i++) tab[i] = vx + min_sz(i, T - 1) * C;
        for (size_t vv = 0; vv < nv; vv++) {
            const float *const *tv = tab + vv * mr;
            const size_t m = min_sz(mr, T - vv * mr);
            for (size_t sl = 0; sl < nsl; sl++)
                uk(1, &C, tv, sl == 0 && vv + 1 < nv ? tv + mr : NULL, ux + sl * C * nr,
                   mx + vv * mr * CO + sl * nr, CO, m, min_sz(nr, CO - sl * nr), 1.0f, 0.0f);
        }
    }

    /* 3. output transform; outputs past the edge of an odd-sized image go to a dump row */
    q = tile_at(p, t0);
    for (size_t t = 0; t < T; t++, next_tile(p, &q)) {
        const size_t oh = 2 * q.th, ow = 2 * q.tw;
        float *yo[4];
        float *yb = p->y + ((q.n * s->HO + oh) * s->WO + ow) * CO;
        if (oh + 2 <= s->HO && ow + 2 <= s->WO) {
            yo[0] = yb; yo[1] = yb + CO; yo[2] = yb + s->WO * CO; yo[3] = yo[2] + CO;
        } else {
            for (size_t i = 0; i < 2; i++)
                for (size_t j = 0; j < 2; j++)
                    yo[i * 2 + j] = oh + i < s->HO && ow + j < s->WO
                                        ? yb + (i * s->WO + j) * CO
                                        : dump + (i * 2 + j) * round_up(CO, 16);
        }
        wk->output(M + t * CO, p->mplane, yo, CO);
    }

    /* 4. the epilogue over the block's outputs while they are in L2: in each tile row the
     * block covers, two runs of output pixels (one per output row of the tiles) */
    if (p->ba) {
        q = tile_at(p, t0);
        for (size_t t = 0; t < T;) {
            const size_t run = min_sz(TW - q.tw, T - t); /* tiles left in this tile row */
            const size_t ow0 = 2 * q.tw, ow1 = min_sz(2 * (q.tw + run), s->WO);
            for (size_t oh = 2 * q.th; oh < min_sz(2 * q.th + 2, s->HO); oh++)
                qnn_bias_act_apply(p->ba, (q.n * s->HO + oh) * s->WO + ow0, ow1 - ow0, 0, CO,
                                   p->y, CO);
            t += run;
            q.tw += run - 1; /* to the row's last tile (or the block's), then one more */
            next_tile(p, &q);
        }
    }
}

static void wino_run(const wino_plan *p) {
    const int tid = qnn_thread_id(), nt = qnn_team_size();
    const qnn_fpenv env = qnn_fpenv_flush_begin(); /* as the GEMM runs */
    float *my = p->scratch + (size_t)tid * p->scratch_floats;
    memset(my + 16 * (p->vplane + p->mplane), 0, round_up(p->s->C, 16) * sizeof(float));
    const size_t b0 = p->nblocks * (size_t)tid / (size_t)nt;
    const size_t b1 = p->nblocks * (size_t)(tid + 1) / (size_t)nt;
    for (size_t b = b0; b < b1; b++) wino_block(p, b, my);
    qnn_fpenv_end(env);
}

int qnn_conv2d_winograd(const qnn_conv2d_shape *s, const float *x, const float *w,
                        const qnn_bias_act *ba, float *y, qnn_workspace *ws) {
    const size_t C = s->C, CO = s->CO;
    const size_t mr = (size_t)qnn_dispatch_table.sgemm_mr, nr = (size_t)qnn_dispatch_table.sgemm_nr;
    const size_t nsl = (CO + nr - 1) / nr, TH = (s->HO + 1) / 2, TW = (s->WO + 1) / 2;
    if (s->N == 0 || s->HO == 0 || s->WO == 0) return QNN_OK;

    /* Kernel transform, once per call, in the packed-B layout of each of the 16 planes. */
    const size_t uplane = nsl * C * nr;
    float *u = qnn_ws_get(ws, QNN_WS_GEMM_B, 16 * uplane * sizeof(float));
    if (!u) return QNN_ENOMEM;
    const qnn_wino_kernels *wk = qnn_dispatch_table.wino;
    {
        const int nt = qnn_threads_for(16 * uplane);
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            const int tid = qnn_thread_id(), tn = qnn_team_size();
            wk->kernel(w, C, CO, C * (size_t)tid / (size_t)tn, C * (size_t)(tid + 1) / (size_t)tn,
                       nr, u, uplane);
        }
    }

    /* Blocks of a multiple of MR tiles (no partial register tiles but the very last), about
     * QNN_WINO_BLOCK_BYTES of V and M each. */
    size_t tpb = QNN_WINO_BLOCK_BYTES / (16 * (C + CO) * sizeof(float)) / mr * mr;
    if (tpb < mr) tpb = mr;
    const size_t tiles = s->N * TH * TW;
    if (tpb > round_up(tiles, mr)) tpb = round_up(tiles, mr);
    wino_plan p = {s, x, u, y, ba, TH, TW, tiles, tpb, (tiles + tpb - 1) / tpb, 0, 0, NULL, 0};
    p.vplane = plane_floats(tpb, C);
    p.mplane = plane_floats(tpb, CO);
    const size_t tab_floats = round_up((round_up(tpb, mr) * sizeof(float *) +
                                        sizeof(float) - 1) / sizeof(float), 16);
    p.scratch_floats = 16 * (p.vplane + p.mplane) + round_up(C, 16) + 4 * round_up(CO, 16) +
                       tab_floats;
    int nt = qnn_threads_for(2 * tiles * C * CO);
    if ((size_t)nt > p.nblocks) nt = (int)p.nblocks;
    p.scratch = qnn_ws_get(ws, QNN_WS_GEMM_A, (size_t)nt * p.scratch_floats * sizeof(float));
    if (!p.scratch) return QNN_ENOMEM;
#pragma omp parallel num_threads(nt) if (nt > 1)
    wino_run(&p);
    return QNN_OK;
}
