#include "module/args.h"

#include <string.h>

#include "kernels/quant/quant.h"

void qnn_shape_str(PyArrayObject *a, char *buf, size_t len) {
    size_t pos = 0;
    int nd = PyArray_NDIM(a);
    pos += (size_t)snprintf(buf + pos, len - pos, "(");
    for (int i = 0; i < nd && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, i ? ", %zd" : "%zd", (Py_ssize_t)PyArray_DIM(a, i));
    if (pos < len) snprintf(buf + pos, len - pos, nd == 1 ? ",)" : ")");
}

PyArrayObject *qnn_arg_f32(const char *who, const char *arg, PyObject *obj) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be a numpy.ndarray of float32, got %s", who,
                     arg, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != NPY_FLOAT32) {
        PyErr_Format(PyExc_TypeError, "%s: %s must have dtype float32, got %s", who, arg,
                     PyArray_DESCR(a)->typeobj->tp_name);
        return NULL;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a)) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be C-contiguous and aligned", who, arg);
        return NULL;
    }
    return a;
}

int qnn_arrays_overlap(PyArrayObject *a, PyArrayObject *b) {
    const char *a0 = PyArray_BYTES(a), *b0 = PyArray_BYTES(b);
    const char *a1 = a0 + PyArray_NBYTES(a), *b1 = b0 + PyArray_NBYTES(b);
    return PyArray_NBYTES(a) > 0 && PyArray_NBYTES(b) > 0 && a0 < b1 && b0 < a1;
}

PyArrayObject *qnn_arg_out(const char *who, const char *arg, PyObject *out, PyArrayObject *like,
                           PyArrayObject *const *inputs, int n_inputs) {
    if (out == NULL || out == Py_None) {
        return (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(like), PyArray_DIMS(like), NPY_FLOAT32);
    }
    PyArrayObject *o = qnn_arg_f32(who, arg, out);
    if (!o) return NULL;
    if (!PyArray_ISWRITEABLE(o)) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be writeable", who, arg);
        return NULL;
    }
    if (!PyArray_SAMESHAPE(o, like)) {
        char s1[128], s2[128];
        qnn_shape_str(like, s1, sizeof s1);
        qnn_shape_str(o, s2, sizeof s2);
        PyErr_Format(PyExc_ValueError, "%s: %s must have shape %s, got %s", who, arg, s1, s2);
        return NULL;
    }
    for (int i = 0; i < n_inputs; i++) {
        if (inputs[i] && qnn_arrays_overlap(o, inputs[i])) {
            PyErr_Format(PyExc_ValueError, "%s: %s must not share memory with the inputs", who, arg);
            return NULL;
        }
    }
    Py_INCREF(o);
    return o;
}

int qnn_dict_int(PyObject *d, const char *key, long long *out, long long dflt) {
    PyObject *v = PyDict_GetItemString(d, key); /* borrowed */
    if (!v) { *out = dflt; return 0; }
    long long r = PyLong_AsLongLong(v);
    if (r == -1 && PyErr_Occurred()) return -1;
    *out = r;
    return 0;
}

int qnn_dict_float(PyObject *d, const char *key, float *out, float dflt) {
    PyObject *v = PyDict_GetItemString(d, key);
    if (!v) { *out = dflt; return 0; }
    double r = PyFloat_AsDouble(v);
    if (r == -1.0 && PyErr_Occurred()) return -1;
    *out = (float)r;
    return 0;
}

void qnn_raise_status(const char *who, int status) {
    if (status == QNN_ENOMEM) PyErr_Format(PyExc_MemoryError, "%s: out of memory in kernel", who);
    else PyErr_Format(PyExc_ValueError, "%s: invalid kernel arguments (status %d)", who, status);
}

int qnn_check_shape(const char *who, const char *arg, PyArrayObject *a, int nd,
                       const npy_intp *dims, const char *what) {
    int ok = PyArray_NDIM(a) == nd;
    for (int i = 0; ok && i < nd; i++) ok = PyArray_DIM(a, i) == dims[i];
    if (ok) return 0;
    char want[160], got[160];
    size_t pos = (size_t)snprintf(want, sizeof want, "(");
    for (int i = 0; i < nd && pos < sizeof want; i++)
        pos += (size_t)snprintf(want + pos, sizeof want - pos, i ? ", %zd" : "%zd", (Py_ssize_t)dims[i]);
    if (pos < sizeof want) snprintf(want + pos, sizeof want - pos, nd == 1 ? ",)" : ")");
    qnn_shape_str(a, got, sizeof got);
    PyErr_Format(PyExc_ValueError, "%s: %s must have shape %s%s, got %s", who, arg, want, what, got);
    return -1;
}
