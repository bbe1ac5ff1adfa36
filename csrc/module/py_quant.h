#ifndef QNN_MODULE_PY_QUANT_H
#define QNN_MODULE_PY_QUANT_H
#include "module/args.h"
PyObject *qnn_py_quant_forward(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qnn_py_quant_backward(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qnn_py_quant_auto(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qnn_py_uniform(PyObject *self, PyObject *args, PyObject *kw);
#endif
