/* Scalar reference of the sgemm microkernel (built with vectorisation disabled). */
#include "kernels/gemm/gemm.h"
#define QNN_FN(name) name##_ref
#define QNN_MR QNN_SGEMM_MR_REF
#define QNN_NR QNN_SGEMM_NR_REF
#include "kernels/gemm/sgemm_body.h"
