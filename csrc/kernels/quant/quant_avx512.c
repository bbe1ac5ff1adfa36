/* AVX-512 build of the quantizer microkernels (FMA contraction stays off: same bits as ref). */
#include <immintrin.h>
#define QNN_FN(name) name##_avx512
#define QNN_SIMD _Pragma("omp simd")
#define QNN_STREAM_WIDTH 16
#define QNN_STREAM_FENCE() _mm_sfence()
static inline void qnn_stream_block(float *y, const float *b) { _mm512_stream_ps(y, _mm512_load_ps(b)); }
#include "kernels/quant/quant_body.h"
