/* avx2 build of the Winograd transforms (see winograd_body.h). */
#define QNN_FN(name) name##_avx2
#include "kernels/conv/winograd_body.h"
