/* ref build of the Winograd transforms (see winograd_body.h). */
#define QNN_FN(name) name##_ref
#include "kernels/conv/winograd_body.h"
