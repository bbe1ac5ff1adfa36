/* Binding of the dense (GEMM) and convolution kernels. */
#include "module/args.h"

PyMethodDef qnn_gemm_methods[] = {
    {NULL, NULL, 0, NULL},
};
