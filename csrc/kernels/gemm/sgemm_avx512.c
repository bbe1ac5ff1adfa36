/* AVX-512 build of the sgemm microkernel: 8 x 32 tile = 16 zmm accumulators. */
#include "kernels/gemm/gemm.h"
#define QNN_FN(name) name##_avx512
#define QNN_MR QNN_SGEMM_MR_AVX512
#define QNN_NR QNN_SGEMM_NR_AVX512
#include "kernels/gemm/sgemm_body.h"
