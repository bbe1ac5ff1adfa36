/* Binding of the pooling, batch-norm, softmax/cross-entropy and activation kernels. */
#include "module/args.h"

PyMethodDef qnn_nn_methods[] = {
    {NULL, NULL, 0, NULL},
};
