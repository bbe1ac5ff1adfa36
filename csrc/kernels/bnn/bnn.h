/* Integer inference kernels: bit-packed binary (XNOR-popcount) and int8 (u8 x s8) convolution
 * with a fused per-channel output transform. Dense layers are 1x1 (or full-extent) convolutions.
 *
 * Bit-packing conventions (LCE semantics, one place for all of them):
 *  - activations are NHWC; the channel axis is packed into 64-bit words, channel c in word c/64,
 *    bit c%64 (so on little-endian memory 32-bit word c/32 holds bit c%32 too);
 *  - bit = 1 means negative (x < 0); +0, -0 and NaN pack as 0 (+1), matching sign() with 0 -> +1;
 *  - padding bits of the last word are 0 in activations *and* weights, so they XOR to 0 and never
 *    count: a dot product over K real channels is K - 2*popcount(a XOR w).
 *
 * int8 path: activations are stored as u8 "levels" v with value (v - zp)*step; weights are s8
 * codes with a per-channel scale. sum (v - zp)*w = sum v*w - zp*sum w: the second term is a
 * per-channel constant folded into the epilogue's integer bias, so spatial zero padding is exact
 * by padding with the byte zp.
 *
 * Weight panels (packed once, identical for every ISA so a saved model runs anywhere):
 *  - binary: [CO/32 blocks][Kw words][32 channels] uint64, Kw = KH*KW*ceil(C/64);
 *  - ternary (weights in {-1, 0, 1} on binary activations, two bit-planes, spec §6):
 *            [CO/32 blocks][Kw words][2 planes: sign, nonzero][32 channels] uint64;
 *  - int8:   [CO/64 blocks][Kq groups][64 channels][4 bytes] int8, Kq = ceil(KH*KW*C/4);
 *  channels past CO are zero. */
#ifndef QNN_KERNELS_BNN_H
#define QNN_KERNELS_BNN_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/conv/conv.h" /* qnn_conv2d_shape, qnn_conv2d_out_size, enum qnn_status */

#define QNN_BNN_NR 32  /* channels per binary weight block */
#define QNN_INT8_NR 64 /* channels per int8 weight block */
#define QNN_TILE_MR_MAX 8

static inline size_t qnn_bnn_words(size_t c) { return (c + 63) / 64; }

/* The output transform, per output channel c, on the integer dot product
 *     acc = ibias[c] + imul * raw   (+ border correction),
 * raw being what the microkernel returns (binary: popcount, imul = -2, ibias = K; int8: the u8 x s8
 * sum, imul = 1, ibias = -zp*sum(w)). Then:
 *  FLOAT: y = (float)acc * mul[c] + add[c]   (two float32 roundings, like a float conv + bias_add:
 *         with a power-of-two mul the first is exact)
 *  CODES: level = #{j : dir[c]*acc >= thr[j*ldt + c]} (thresholds ascending), stored as the byte
 *         level*code_mul: the next layer's quantized activation after BN/activation/quantizer
 *  BITS:  as CODES with nthr = 1, stored as one bit, 1 (negative) for level 0;
 *  TBITS: as CODES with nthr = 2 (a ternary output), stored as two bit-planes: sign (level 0) and
 *         nonzero (level != 1), interleaved per 64-channel word: [sign w0, nonzero w0, sign w1, ...].
 *
 * Ternary activations use that two-plane layout everywhere (packed sign/nonzero word pairs, zero
 * padding = both planes 0, which contributes nothing: no border correction). */
enum qnn_epi_mode { QNN_EPI_FLOAT = 0, QNN_EPI_CODES = 1, QNN_EPI_BITS = 2, QNN_EPI_TBITS = 3 };

typedef struct qnn_epilogue {
    int mode;
    int imul;
    const int32_t *ibias;
    const float *mul, *add;
    const int32_t *thr; /* [nthr][ldt]: threshold j of channel c at thr[j*ldt + c] */
    const int8_t *dir;
    size_t nthr, ldt;
    int code_mul;
} qnn_epilogue;

/* pc[i*32 + j] = sum_k popcount(a[i*lda + k] ^ b[k*32 + j]), i < mr <= MR, j < 32. */
typedef void (*qnn_bgemm_ukernel)(size_t mr, size_t kw, const uint64_t *a, size_t lda,
                                  const uint64_t *b, int32_t *pc);
/* pc[i*32 + j] = sum_k popcount((a[i*lda + k] ^ sign[k][j]) & nonzero[k][j]): the negative products
 * of +-1 activations with ternary weights; dot = nnz(w) - 2*pc. b: [k][2][32] words. */
typedef void (*qnn_tgemm_ukernel)(size_t mr, size_t kw, const uint64_t *a, size_t lda,
                                  const uint64_t *b, int32_t *pc);
/* Ternary x ternary: a holds word pairs (sign, nonzero) per k (lda in words); b the ternary
 * panel. pc[i*32 + j] = sum_k popcount(t) - 2*popcount(t & (sa ^ sw)), t = nza & nzw: the dot. */
typedef qnn_tgemm_ukernel qnn_ttgemm_ukernel;
/* acc[i*64 + j] = sum_{k < 4*kq} a[i*lda + k] * b[(k/4)*256 + j*4 + k%4], a u8, b s8. */
typedef void (*qnn_igemm_ukernel)(size_t mr, size_t kq, const uint8_t *a, size_t lda,
                                  const int8_t *b, int32_t *acc);
/* Applies e to the raw tile (mr rows of ldr int32, nr <= ldr valid channels starting at channel
 * n0) and writes output rows: out + i*ldo elements of the output type (float, u8, or uint32
 * words for BITS; n0 is then a multiple of 32). corr[i], when non-NULL, is added per channel. */
typedef void (*qnn_epilogue_fn)(const qnn_epilogue *e, size_t mr, size_t n0, size_t nr,
                                const int32_t *raw, size_t ldr, const int32_t *const *corr,
                                void *out, size_t ldo);
/* The CO outputs at (n, oh, ow) of a direct float conv with the float GEMM's arithmetic
 * (bnn_fconv_body.h); K = KH*KW*C <= QNN_FCONV_KMAX, w (K, CO). */
#define QNN_FCONV_KMAX 256
typedef void (*qnn_fconv_fn)(const qnn_conv2d_shape *s, const float *x, const float *w, size_t n,
                             size_t oh, size_t ow, float *zr);
/* out[r*words + w] = packed signs of x[r*C .. r*C + C) (bit 1 for x < 0). */
typedef void (*qnn_bitpack_fn)(size_t rows, size_t C, const float *x, uint64_t *out);

#define QNN_BNN_DECLARE(isa)                                                                       \
    void qnn_bgemm_ukernel_##isa(size_t mr, size_t kw, const uint64_t *a, size_t lda,            \
                                 const uint64_t *b, int32_t *pc);                                \
    void qnn_tgemm_ukernel_##isa(size_t mr, size_t kw, const uint64_t *a, size_t lda,            \
                                 const uint64_t *b, int32_t *pc);                                \
    void qnn_ttgemm_ukernel_##isa(size_t mr, size_t kw, const uint64_t *a, size_t lda,           \
                                  const uint64_t *b, int32_t *pc);                               \
    void qnn_igemm_ukernel_##isa(size_t mr, size_t kq, const uint8_t *a, size_t lda,             \
                                 const int8_t *b, int32_t *acc);                                 \
    void qnn_bnn_epilogue_##isa(const qnn_epilogue *e, size_t mr, size_t n0, size_t nr,          \
                                const int32_t *raw, size_t ldr, const int32_t *const *corr,      \
                                void *out, size_t ldo);                                          \
    void qnn_bitpack_##isa(size_t rows, size_t C, const float *x, uint64_t *out);                \
    void qnn_fconv_pixel_##isa(const qnn_conv2d_shape *s, const float *x, const float *w,         \
                               size_t n, size_t oh, size_t ow, float *zr);

QNN_BNN_DECLARE(ref)
QNN_BNN_DECLARE(avx2)
QNN_BNN_DECLARE(avx512)

#define QNN_BGEMM_MR_REF 4
#define QNN_BGEMM_MR_AVX2 4
#define QNN_BGEMM_MR_AVX512 6
#define QNN_TGEMM_MR_REF 4
#define QNN_TGEMM_MR_AVX2 4
#define QNN_TGEMM_MR_AVX512 5 /* 20 accumulators + 8 weight vectors fit the 32 zmm */
#define QNN_TTGEMM_MR_REF 4
#define QNN_TTGEMM_MR_AVX2 4
#define QNN_TTGEMM_MR_AVX512 5
#define QNN_IGEMM_MR_REF 4
#define QNN_IGEMM_MR_AVX2 4
#define QNN_IGEMM_MR_AVX512 6

/* ---------------------------------------------------------------- drivers (bnn_driver.c) */

/* Grow-only scratch owned by the caller (an integer layer): the im2col rows and border
 * corrections. Not shared between concurrent calls. */
typedef struct qnn_bnn_ws {
    void *ptr;
    size_t size;
} qnn_bnn_ws;
void qnn_bnn_ws_release(qnn_bnn_ws *ws);

/* Binary conv: x (N, H, W, ceil(C/64)) words, w the binary panel, wsum (KH*KW, CO) per-tap sums of
 * the +-1 weights (for the zero-padding correction), out per e.mode: float (N,HO,WO,CO), u8
 * (N,HO,WO,CO) or words (N,HO,WO,ceil(CO/64)). s->groups and dilation must be 1. */
int qnn_bconv2d(const qnn_conv2d_shape *s, const uint64_t *x, const uint64_t *w,
                const int32_t *wsum, const qnn_epilogue *e, void *out, qnn_bnn_ws *ws);
/* The same with the ternary panel (ibias = nonzero weights per channel, imul = -2). With
 * ternary activations (x: (N, H, W, 2*ceil(C/64)) sign/nonzero word pairs) use qnn_ttconv2d
 * (ibias 0, imul 1, wsum unused). */
int qnn_ttconv2d(const qnn_conv2d_shape *s, const uint64_t *x, const uint64_t *w,
                 const qnn_epilogue *e, void *out, qnn_bnn_ws *ws);
int qnn_tconv2d(const qnn_conv2d_shape *s, const uint64_t *x, const uint64_t *w,
                const int32_t *wsum, const qnn_epilogue *e, void *out, qnn_bnn_ws *ws);
/* int8 conv: x (N, H, W, C) u8 levels, padding with the byte zp, w the int8 panel. */
int qnn_iconv2d(const qnn_conv2d_shape *s, const uint8_t *x, uint8_t zp, const int8_t *w,
                const qnn_epilogue *e, void *out, qnn_bnn_ws *ws);
/* Max pooling of u8 levels (max) or packed signs (AND: the max of +-1 values is -1 only when all
 * are): x (N, H, W, C) bytes or (N, H, W, words) uint64; windows see only in-bounds cells. */
int qnn_bnn_maxpool(const qnn_conv2d_shape *s, int bits, const void *x, void *out);
/* Max pooling of ternary sign/nonzero word pairs (x: (N, H, W, C) words, C even). */
int qnn_bnn_maxpool_tbits(const qnn_conv2d_shape *s, const uint64_t *x, uint64_t *out);

/* Float tensor -> levels, packed signs (bits = 1) or ternary word pairs (bits = 2, nthr = 2)
 * through per-channel float thresholds, with an optional
 * max pooling first (s: the pool geometry, KH = KW = 1 for none; s->C channels): for each output
 * cell v = max over the window of dir[c]*z (a max pooling of a non-increasing function is the
 * min, and negation is exact), level = #{j : v >= thr[j*C + c]}, stored as level*code_mul or as
 * a sign bit (1 for level 0). For a float layer followed by BN, activation, quantizer and max
 * pooling, thresholds found on the model's own layers make this equal to running them. */
/* z = conv(x, w) for K <= QNN_FCONV_KMAX through the dispatched qnn_fconv_pixel, threaded. */
int qnn_fconv_small(const qnn_conv2d_shape *s, const float *x, const float *w, float *z);
/* qnn_fthresh_pool(conv(x, w)) without writing the conv output: c the conv geometry, p the pool
 * geometry over the conv output (p->C = c->CO). */
int qnn_fconv_thresh_pool(const qnn_conv2d_shape *c, const qnn_conv2d_shape *p, const float *x,
                          const float *w, const float *thr, size_t nthr, const int8_t *dir, int bits,
                          int code_mul, void *out);

int qnn_fthresh_pool(const qnn_conv2d_shape *s, const float *z, const float *thr, size_t nthr,
                     const int8_t *dir, int bits, int code_mul, void *out);

#endif
