/* AVX2+FMA build of the quantizer microkernels (FMA contraction stays off: same bits as ref). */
#include <immintrin.h>
#define QNN_FN(name) name##_avx2
#define QNN_SIMD _Pragma("omp simd")
#define QNN_STREAM_WIDTH 8
#define QNN_STREAM_FENCE() _mm_sfence()
static inline void qnn_stream_block(float *y, const float *b) { _mm256_stream_ps(y, _mm256_load_ps(b)); }
#include "kernels/quant/quant_body.h"
