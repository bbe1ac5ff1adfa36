#include "runtime/dispatch.h"

#include <string.h>

#include "runtime/cpu.h"

#define QNN_DISPATCH_REF                                                                    \
    {QNN_ISA_REF, qnn_quant_fwd_ref, qnn_quant_bwd_ref, qnn_sgemm_ukernel_ref,            \
     QNN_SGEMM_MR_REF, QNN_SGEMM_NR_REF, qnn_bgemm_ukernel_ref, qnn_igemm_ukernel_ref,       \
     qnn_bnn_epilogue_ref, qnn_bitpack_ref, QNN_BGEMM_MR_REF, QNN_IGEMM_MR_REF,             \
     qnn_fconv_pixel_ref, qnn_tgemm_ukernel_ref, QNN_TGEMM_MR_REF, qnn_ttgemm_ukernel_ref,   \
     QNN_TTGEMM_MR_REF, &qnn_bn_kernels_ref, &qnn_quant_auto_kernels_ref,        \
     qnn_sgemm_ind_ukernel_ref, qnn_sgemm_indb_ukernel_ref, qnn_sgemm_pack_at_ref,       \
     qnn_ste_encode_ref, qnn_ste_decode_ref, &qnn_wino_kernels_ref,                     \
     qnn_sgemm_indc_ukernel_ref}

qnn_dispatch qnn_dispatch_table = QNN_DISPATCH_REF;

static const char *const isa_names[QNN_ISA_COUNT] = {"ref", "avx2", "avx512"};

const char *qnn_isa_name(int isa) {
    return (isa >= 0 && isa < QNN_ISA_COUNT) ? isa_names[isa] : "unknown";
}

int qnn_isa_from_name(const char *name) {
    for (int i = 0; i < QNN_ISA_COUNT; i++)
        if (strcmp(name, isa_names[i]) == 0) return i;
    return -1;
}

int qnn_isa_available(int isa) {
    if (isa == QNN_ISA_REF) return 1;
#if QNN_HAVE_X86_ISAS
    qnn_cpu_features f = qnn_cpu_detect();
    if (isa == QNN_ISA_AVX2) return f.avx2;
    /* The AVX-512 kernels are built with VNNI and VPOPCNTDQ enabled, so require them too. */
    if (isa == QNN_ISA_AVX512) return f.avx512 && f.avx512_vnni && f.avx512_vpopcntdq;
#endif
    return 0;
}

int qnn_isa_best(void) {
    for (int i = QNN_ISA_COUNT - 1; i > 0; i--)
        if (qnn_isa_available(i)) return i;
    return QNN_ISA_REF;
}

int qnn_dispatch_select(int isa) {
    if (isa < 0 || isa >= QNN_ISA_COUNT || !qnn_isa_available(isa)) return -1;
    qnn_dispatch d = QNN_DISPATCH_REF;
#if QNN_HAVE_X86_ISAS
    if (isa == QNN_ISA_AVX2) {
        d = (qnn_dispatch){QNN_ISA_AVX2, qnn_quant_fwd_avx2, qnn_quant_bwd_avx2,
                           qnn_sgemm_ukernel_avx2, QNN_SGEMM_MR_AVX2, QNN_SGEMM_NR_AVX2,
                           qnn_bgemm_ukernel_avx2, qnn_igemm_ukernel_avx2, qnn_bnn_epilogue_avx2,
                           qnn_bitpack_avx2, QNN_BGEMM_MR_AVX2, QNN_IGEMM_MR_AVX2,
                           qnn_fconv_pixel_avx2, qnn_tgemm_ukernel_avx2, QNN_TGEMM_MR_AVX2,
                           qnn_ttgemm_ukernel_avx2, QNN_TTGEMM_MR_AVX2,
                           &qnn_bn_kernels_avx2, &qnn_quant_auto_kernels_avx2,
                           qnn_sgemm_ind_ukernel_avx2, qnn_sgemm_indb_ukernel_avx2,
                           qnn_sgemm_pack_at_avx2, qnn_ste_encode_avx2,
                           qnn_ste_decode_avx2, &qnn_wino_kernels_avx2,
                           qnn_sgemm_indc_ukernel_avx2};
    } else if (isa == QNN_ISA_AVX512) {
        d = (qnn_dispatch){QNN_ISA_AVX512, qnn_quant_fwd_avx512, qnn_quant_bwd_avx512,
                           qnn_sgemm_ukernel_avx512, QNN_SGEMM_MR_AVX512, QNN_SGEMM_NR_AVX512,
                           qnn_bgemm_ukernel_avx512, qnn_igemm_ukernel_avx512,
                           qnn_bnn_epilogue_avx512, qnn_bitpack_avx512, QNN_BGEMM_MR_AVX512,
                           QNN_IGEMM_MR_AVX512, qnn_fconv_pixel_avx512, qnn_tgemm_ukernel_avx512,
                           QNN_TGEMM_MR_AVX512, qnn_ttgemm_ukernel_avx512, QNN_TTGEMM_MR_AVX512,
                           &qnn_bn_kernels_avx512, &qnn_quant_auto_kernels_avx512,
                           qnn_sgemm_ind_ukernel_avx512,
                           qnn_sgemm_indb_ukernel_avx512, qnn_sgemm_pack_at_avx512,
                           qnn_ste_encode_avx512, qnn_ste_decode_avx512,
                           &qnn_wino_kernels_avx512, qnn_sgemm_indc_ukernel_avx512};
    }
#endif
    qnn_dispatch_table = d;
    return 0;
}
