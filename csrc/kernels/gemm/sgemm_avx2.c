/* AVX2 build of the sgemm microkernel: 6 x 16 tile = 12 ymm accumulators. */
#include "kernels/gemm/gemm.h"
#define QNN_FN(name) name##_avx2
#define QNN_MR QNN_SGEMM_MR_AVX2
#define QNN_NR QNN_SGEMM_NR_AVX2
#include "kernels/gemm/sgemm_body.h"
