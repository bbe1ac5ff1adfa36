/* Scalar reference of the quantizer microkernels: built with vectorisation disabled. */
#define QNN_FN(name) name##_ref
#define QNN_SIMD
#include "kernels/quant/quant_body.h"
