/* Portable build of the data-dependent scale kernels (see quant_auto_body.h). */
#define QNN_FN(name) name##_ref
#include "kernels/quant/quant_auto_body.h"
