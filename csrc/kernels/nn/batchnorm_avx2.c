/* AVX2 build of the batch-norm kernels (see batchnorm_body.h). */
#define QNN_FN(name) name##_avx2
#include "kernels/nn/batchnorm_body.h"
