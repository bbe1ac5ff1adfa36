#ifndef QNN_MODULE_PY_QUANT_H
#define QNN_MODULE_PY_QUANT_H
#include "module/args.h"
#include "kernels/quant/quant.h"
PyObject *qnn_py_quant_forward(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qnn_py_quant_backward(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qnn_py_quant_auto(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qnn_py_uniform(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qnn_py_ste_planes(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qnn_py_quant_ste_backward(PyObject *self, PyObject *args, PyObject *kw);
/* A quantizer activation to fuse into another kernel, parsed from the tuple
 * (params_f, scale_f, scale2_f, inner_f, params_b, scale_b, inner_b) that
 * qnn_ext.quantizers builds (scales may be None). The arrays are borrowed from the tuple. */
typedef struct qnn_py_act {
    qnn_quant_params pf, pb;
    PyArrayObject *sc_f, *sc2_f, *sc_b;
    npy_intp S_f, inner_f, S_b, inner_b;
} qnn_py_act;
int qnn_py_act_spec(const char *who, PyObject *spec, npy_intp n, qnn_py_act *a);
/* The bit-code form of the STE of backward params pb (qnn_quant_ste_code), or -1 with a
 * ValueError naming `who` when that STE reads the pre-activation itself. */
int qnn_py_ste_code(const char *who, const qnn_quant_params *pb, qnn_ste_code *ste);
#endif
