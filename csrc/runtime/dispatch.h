/* The dispatch table: the kernels of the best ISA level this CPU has, chosen once at import.
 * It is the only global mutable state in the C code; nothing above the runtime names an ISA. */
#ifndef QNN_RUNTIME_DISPATCH_H
#define QNN_RUNTIME_DISPATCH_H

#include "kernels/bnn/bnn.h"
#include "kernels/conv/winograd.h"
#include "kernels/gemm/gemm.h"
#include "kernels/nn/nn.h"
#include "kernels/quant/quant.h"

enum qnn_isa { QNN_ISA_REF = 0, QNN_ISA_AVX2 = 1, QNN_ISA_AVX512 = 2, QNN_ISA_COUNT = 3 };

typedef struct qnn_dispatch {
    int isa;
    qnn_quant_fwd_ukernel quant_fwd;
    qnn_quant_bwd_ukernel quant_bwd;
    qnn_sgemm_ukernel sgemm; /* float GEMM register tile; the driver packs to its MR x NR */
    int sgemm_mr, sgemm_nr;
    /* integer inference (kernels/bnn) */
    qnn_bgemm_ukernel bgemm;
    qnn_igemm_ukernel igemm;
    qnn_epilogue_fn bnn_epilogue;
    qnn_bitpack_fn bitpack;
    int bgemm_mr, igemm_mr;
    qnn_fconv_fn fconv_pixel;
    qnn_tgemm_ukernel tgemm;
    int tgemm_mr;
    qnn_ttgemm_ukernel ttgemm;
    int ttgemm_mr;
    const qnn_bn_kernels *bn; /* batch norm (+ fused activation / max pool) */
    const qnn_quant_auto_kernels *qauto; /* data-dependent quantizer scales */
    qnn_sgemm_ind_ukernel sgemm_ind;     /* the sgemm tile reading A in place (same MR x NR) */
    qnn_sgemm_indb_ukernel sgemm_indb;   /* ... and reading B in place */
    qnn_sgemm_pack_at_fn sgemm_pack_at;  /* packing a transposed A block */
    qnn_ste_encode_fn ste_encode;        /* quantizer STEs as bit codes (forward epilogue) */
    qnn_ste_decode_fn ste_decode;        /* ... and back to a gradient */
    const qnn_wino_kernels *wino;        /* Winograd F(2x2, 3x3) transforms */
    qnn_sgemm_indc_ukernel sgemm_indc;   /* sgemm_ind, copying its A sliver out as it goes */
} qnn_dispatch;

extern qnn_dispatch qnn_dispatch_table;

const char *qnn_isa_name(int isa);
int qnn_isa_from_name(const char *name); /* -1 when unknown */
int qnn_isa_available(int isa);
int qnn_isa_best(void);
/* Selects `isa`; returns 0, or -1 when the CPU (or this build) does not have it. Not to be
 * called while kernels run on other threads (tests and start-up only). */
int qnn_dispatch_select(int isa);

#endif
