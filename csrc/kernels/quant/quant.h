/* Element-wise QKeras quantizers: forward and straight-through (STE) backward.
 *
 * Every quantizer is one `op` with its parameters in qnn_quant_params. The element-wise
 * microkernels (quant_body.h, compiled once per ISA) process a contiguous run of elements that
 * shares one per-channel scale (stride 0) or walks a per-channel scale vector (stride 1); the
 * driver (quant_driver.c) cuts a tensor into such runs, threads them and computes the
 * data-dependent "auto" scales (quant_auto.c). Semantics: ../shared/spec/quantizers.md. */
#ifndef QNN_KERNELS_QUANT_H
#define QNN_KERNELS_QUANT_H

#include <stddef.h>
#include <stdint.h>

enum qnn_quant_op {
    QNN_Q_BITS = 1,       /* quantized_bits, alpha None/number/array: scale*m_i*C(R(x*m/m_i))/m */
    QNN_Q_BITS_SIGN,      /* quantized_bits with bits - keep_negative == 0: sign, 0 -> +1 */
    QNN_Q_HSWISH,         /* quantized_hswish: h = x*min(relu(x+shift), ub)/ub, then QNN_Q_BITS */
    QNN_Q_AUTOBITS,       /* quantized_bits auto/auto_po2 final pass: sc = s per channel */
    QNN_Q_LINEAR,         /* quantized_linear: sc = quantization scale per channel */
    QNN_Q_RELU,           /* quantized_relu */
    QNN_Q_TANH,           /* quantized_tanh */
    QNN_Q_SIGMOID,        /* quantized_sigmoid */
    QNN_Q_ULAW,           /* quantized_ulaw */
    QNN_Q_PO2,            /* quantized_po2 */
    QNN_Q_RELU_PO2,       /* quantized_relu_po2 */
    QNN_Q_SIGN,           /* binary (deterministic): sc*k, k = sign(x) with 0 -> +1 (or {0,1}) */
    QNN_Q_TERNARY,        /* ternary with a threshold: sc*sign(x)*[|x| >= thr] */
    QNN_Q_TERNARY_Q,      /* sc*q with q already decided per element (auto ternary final pass) */
    QNN_Q_STOCH_SIGN,     /* stochastic_binary / bernoulli: sc*[p >= u], p = sigmoid(T*x/sc2) */
    QNN_Q_STOCH_TERNARY,  /* stochastic_ternary training pass: sc = scale, sc2 = std */
    QNN_Q_HARD_SIGMOID,   /* the plain functions of QKeras (§2), for their forward/backward */
    QNN_Q_SMOOTH_SIGMOID,
    QNN_Q_BINARY_SIGMOID,
    QNN_Q_HSWISH_PRE,     /* h = x*min(relu(x+shift), ub)/ub alone (hswish with auto alpha) */
    QNN_Q_OP_END
};

enum qnn_quant_flag {
    QNN_QF_SR = 1u << 0,         /* stochastic rounding active (flag set and training) */
    QNN_QF_NO_STE = 1u << 1,     /* use_ste=False: y = (1-qf)*x + qf*xq, gradient (1-qf) */
    QNN_QF_USE_SIGMOID = 1u << 2,/* quantized_relu(use_sigmoid) */
    QNN_QF_REAL = 1u << 3,       /* use_real_tanh / use_real_sigmoid */
    QNN_QF_QUAD = 1u << 4,       /* po2 quadratic_approximation */
    QNN_QF_FLOOR = 1u << 5,      /* po2 log2_rounding="floor" */
    QNN_QF_HAS_MAX = 1u << 6,    /* po2 max_value given */
    QNN_QF_USE01 = 1u << 7,      /* binary(use_01) / bernoulli output {0,1} */
    QNN_QF_TANH_SURR = 1u << 8,  /* binary/ternary alpha None: STE surrogate tanh(x) */
    QNN_QF_QCLIP = 1u << 9,      /* quantized_relu is_quantized_clip */
    QNN_QF_UB = 1u << 10,        /* quantized_relu relu_upper_bound given */
    QNN_QF_SIGN_MODE = 1u << 11  /* quantized_linear 1-bit sign mode (shift 0.5) */
};

/* Internal sigmoid (set_internal_sigmoid) and the sigmoid of the stochastic quantizers. */
enum qnn_sigmoid_mode { QNN_SIG_HARD = 0, QNN_SIG_SMOOTH = 1, QNN_SIG_REAL = 2 };

typedef struct qnn_quant_params {
    int op;
    unsigned flags;
    int sigmoid;       /* enum qnn_sigmoid_mode */
    float qf;          /* qnoise_factor */
    float in_mul;      /* multiplier before rounding: m/m_i (bits, relu), 1/m_i (sigmoid paths) */
    float out_mul;     /* multiplier after clipping: m_i/m */
    float lo, hi;      /* clip bounds (codes or values, per op) */
    float m;           /* 2**(bits...) of the op */
    float m_i;         /* 2**integer */
    float cap;         /* relu: m_i - m_f (is_quantized_clip cap) */
    float slope;       /* negative_slope (a power of two) */
    float ub;          /* relu_upper_bound, po2 max_value */
    float thr;         /* ternary threshold */
    float u;           /* ulaw u */
    float log1pu;      /* ulaw: log(1 + u) as float32, the divisor QKeras uses */
    float shift;       /* hswish relu_shift, linear sign-mode shift */
    float temperature; /* stochastic_* / bernoulli */
    int min_exp, max_exp;
    uint64_t key;      /* RNG stream for stochastic paths */
    uint64_t n_total;  /* elements in the tensor: draw j of element i is index j*n_total + i */
} qnn_quant_params;

/* A run of n elements [x, x+n) whose first element has flat index idx0. sc/sc2 point at the
 * per-channel values for the first element; with stride 1 they advance with the element,
 * with stride 0 the whole run shares them. */
typedef void (*qnn_quant_fwd_ukernel)(const qnn_quant_params *p, size_t n, const float *x,
                                      float *y, uint64_t idx0, const float *sc, const float *sc2,
                                      int stride);
typedef void (*qnn_quant_bwd_ukernel)(const qnn_quant_params *p, size_t n, const float *x,
                                      const float *dy, float *dx, const float *sc, int stride);

void qnn_quant_fwd_ref(const qnn_quant_params *, size_t, const float *, float *, uint64_t,
                       const float *, const float *, int);
void qnn_quant_bwd_ref(const qnn_quant_params *, size_t, const float *, const float *, float *,
                       const float *, int);
void qnn_quant_fwd_avx2(const qnn_quant_params *, size_t, const float *, float *, uint64_t,
                        const float *, const float *, int);
void qnn_quant_bwd_avx2(const qnn_quant_params *, size_t, const float *, const float *, float *,
                        const float *, int);
void qnn_quant_fwd_avx512(const qnn_quant_params *, size_t, const float *, float *, uint64_t,
                          const float *, const float *, int);
void qnn_quant_bwd_avx512(const qnn_quant_params *, size_t, const float *, const float *,
                          float *, const float *, int);

/* Per-channel layout of a tensor viewed as (outer, S, inner): element (o, s, i) uses channel s.
 * With group > 1, channels s and s' share statistics when s/group == s'/group. */
typedef struct qnn_channel_layout {
    size_t outer, S, inner, group;
} qnn_channel_layout;

/* Status codes returned by the drivers (the binding turns them into exceptions). */
enum qnn_status { QNN_OK = 0, QNN_ENOMEM = -1, QNN_EINVAL = -2 };

/* Element-wise forward / backward over a whole tensor, threaded. sc/sc2 may be NULL (scalar 1). */
int qnn_quant_forward(const qnn_quant_params *p, const float *x, float *y, size_t n,
                      const float *sc, const float *sc2, size_t S, size_t inner);
int qnn_quant_backward(const qnn_quant_params *p, const float *x, const float *dy, float *dx,
                       size_t n, const float *sc, size_t S, size_t inner);
/* One slice [i0, i0+n) of a tensor-level forward (backward: dy != NULL and backward = 1) on the
 * calling thread, without the FTZ switch: x, dy and y point at element i0 of their slices, and
 * scales and random draws are indexed by the flat position as in qnn_quant_forward. For fused
 * kernels that quantize a chunk while it is still in cache. */
void qnn_quant_run(const qnn_quant_params *p, const float *x, const float *dy, float *y,
                   const float *sc, const float *sc2, size_t S, size_t inner, size_t i0, size_t n,
                   int backward);

/* Data-dependent scales ("auto"/"auto_po2" alphas and the stochastic quantizers' statistics).
 * Each computes the per-group scale into scale_out[G] (G = S/group) and writes y. */
typedef struct qnn_auto_params {
    int po2;              /* alpha "auto_po2" (else "auto") */
    int global_init;      /* rank-1 inputs: initial max over the whole tensor */
    int has_min_exp, has_max_exp;
    int min_po2_exp, max_po2_exp;
    int frozen;           /* quantized_bits post_training_scale: use scale_in */
    int iterations;       /* auto_po2 refinement / ternary unrolls / linear max iterations */
    int alpha_kind;       /* LS scale kind for binary/stochastic paths: 0 none(1.0), 1 auto, 2 auto_po2, 3 given (scale_in) */
} qnn_auto_params;

int qnn_quant_auto_bits(const qnn_quant_params *p, const qnn_auto_params *a,
                        const qnn_channel_layout *L, const float *x, float *y,
                        const float *scale_in, float *scale_out);
int qnn_quant_auto_linear(const qnn_quant_params *p, const qnn_auto_params *a,
                          const qnn_channel_layout *L, const float *x, float *y, float *scale_out);
int qnn_quant_auto_binary(const qnn_quant_params *p, const qnn_auto_params *a,
                          const qnn_channel_layout *L, const float *x, float *y,
                          float *scale_out);
int qnn_quant_auto_ternary(const qnn_quant_params *p, const qnn_auto_params *a,
                           const qnn_channel_layout *L, const float *x, float *y,
                           float *scale_out);
/* stochastic_binary / bernoulli (op QNN_Q_STOCH_SIGN) and stochastic_ternary (training). */
int qnn_quant_stochastic(const qnn_quant_params *p, const qnn_auto_params *a,
                         const qnn_channel_layout *L, const float *x, float *y,
                         const float *scale_in, float *scale_out);

/* The data-dependent scale kernels of one ISA level (quant_auto_body.h), for the dispatch table. */
typedef struct qnn_quant_auto_kernels {
    int (*bits)(const qnn_quant_params *, const qnn_auto_params *, const qnn_channel_layout *,
                const float *, float *, const float *, float *);
    int (*linear)(const qnn_quant_params *, const qnn_auto_params *, const qnn_channel_layout *,
                  const float *, float *, float *);
    int (*binary)(const qnn_quant_params *, const qnn_auto_params *, const qnn_channel_layout *,
                  const float *, float *, float *);
    int (*ternary)(const qnn_quant_params *, const qnn_auto_params *, const qnn_channel_layout *,
                   const float *, float *, float *);
    int (*stochastic)(const qnn_quant_params *, const qnn_auto_params *,
                      const qnn_channel_layout *, const float *, float *, const float *, float *);
} qnn_quant_auto_kernels;
extern const qnn_quant_auto_kernels qnn_quant_auto_kernels_ref, qnn_quant_auto_kernels_avx2,
    qnn_quant_auto_kernels_avx512;

/* Counter-based uniforms, exposed so tests can rebuild the exact draws. */
void qnn_uniform_fill(uint64_t key, uint64_t offset, float *out, size_t n);

/* ------------------------------------------------ straight-through gradients as bit codes */

/* A quantizer whose STE gradient depends on x only through a small per-element code, so the
 * backward needs a few bits per element instead of the float pre-activation:
 *     dx = (dy * a) * g[code],   code 1: x > 0 and in range, 2: !(x > 0) and in range, 0: out
 * of range (x > ub, or NaN when bounded); without a bound every x is in range. That is the
 * exact float sequence of the relu-family backward ((dy * ste) * g) and, with planes = 0, of
 * STE form A (dy * ste, one constant). Codes are stored as bit planes: plane 0 holds code 1,
 * plane 1 code 2 (only when g[2] differs from g[0], a non-zero negative slope). */
typedef struct qnn_ste_code {
    int planes;   /* 0 (constant gradient: nothing stored), 1 or 2 */
    int bounded;
    float ub;
    float a;
    float g[3];
    int stream; /* decode: non-temporal stores (set by the driver for outputs beyond L2) */
} qnn_ste_code;

/* Fills *s for the backward params pb and returns 1, or returns 0 when that STE needs x itself
 * (tanh surrogates, smooth functions, per-channel clip tests). */
int qnn_quant_ste_code(const qnn_quant_params *pb, qnn_ste_code *s);

/* Codes of x[0, n) into plane bytes p0 (and p1 when planes == 2), element k at bit k % 8 of
 * byte k / 8; the bits of a final partial byte past n are written as 0. */
typedef void (*qnn_ste_encode_fn)(const qnn_ste_code *s, size_t n, const float *x, uint8_t *p0,
                                  uint8_t *p1);
/* dx[0, n) from dy and the codes (p1 unused unless planes == 2). dx may equal dy. */
typedef void (*qnn_ste_decode_fn)(const qnn_ste_code *s, size_t n, const uint8_t *p0,
                                  const uint8_t *p1, const float *dy, float *dx);
void qnn_ste_encode_ref(const qnn_ste_code *, size_t, const float *, uint8_t *, uint8_t *);
void qnn_ste_decode_ref(const qnn_ste_code *, size_t, const uint8_t *, const uint8_t *,
                        const float *, float *);
void qnn_ste_encode_avx2(const qnn_ste_code *, size_t, const float *, uint8_t *, uint8_t *);
void qnn_ste_decode_avx2(const qnn_ste_code *, size_t, const uint8_t *, const uint8_t *,
                         const float *, float *);
void qnn_ste_encode_avx512(const qnn_ste_code *, size_t, const float *, uint8_t *, uint8_t *);
void qnn_ste_decode_avx512(const qnn_ste_code *, size_t, const uint8_t *, const uint8_t *,
                           const float *, float *);

/* Bytes of one row of n codes: planes * ceil(n / 8). */
size_t qnn_ste_row_bytes(const qnn_ste_code *s, size_t n);

/* The mask of an (M, groups * Ng) output is groups blocks of M rows of qnn_ste_row_bytes(Ng)
 * bytes (group g, row i at mask + (g * M + i) * rb, plane 1 at +rb/2), so that each group's
 * GEMM writes whole bytes from any column block start (a multiple of the register tile).
 * dx = the STE gradient for dy, both (M, groups * Ng) row-major; dx may equal dy. Threaded. */
void qnn_quant_ste_backward(const qnn_ste_code *s, size_t M, size_t groups, size_t Ng,
                            const uint8_t *mask, const float *dy, float *dx);

#endif
