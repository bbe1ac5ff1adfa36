/* AVX-512 build of the quantizer microkernels (FMA contraction stays off: same bits as ref). */
#define QNN_FN(name) name##_avx512
#define QNN_SIMD _Pragma("omp simd")
#include "kernels/quant/quant_body.h"
