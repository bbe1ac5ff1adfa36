#include "module/args.h"

#include <stdarg.h>
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

int qnn_dict_int(const char *who, PyObject *d, const char *key, long long *out, long long dflt) {
    PyObject *v = PyDict_GetItemString(d, key); /* borrowed */
    if (!v) { *out = dflt; return 0; }
    PyObject *iv = PyNumber_Index(v); /* numpy integers too */
    if (!iv) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: params['%s'] must be an int, got %s", who, key,
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    int ovf = 0;
    const long long r = PyLong_AsLongLongAndOverflow(iv, &ovf);
    Py_DECREF(iv);
    if (ovf) {
        PyErr_Format(PyExc_OverflowError, "%s: params['%s'] = %R does not fit 64 bits", who, key, v);
        return -1;
    }
    *out = r;
    return 0;
}

int qnn_dict_float(const char *who, PyObject *d, const char *key, float *out, float dflt) {
    PyObject *v = PyDict_GetItemString(d, key);
    if (!v) { *out = dflt; return 0; }
    const double r = PyFloat_AsDouble(v);
    if (r == -1.0 && PyErr_Occurred()) {
        PyObject *t = PyErr_ExceptionMatches(PyExc_OverflowError) ? PyExc_OverflowError : PyExc_TypeError;
        PyErr_Clear();
        PyErr_Format(t, "%s: params['%s'] must be a float, got %R", who, key, v);
        return -1;
    }
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

/* CPython's converters report a bad scalar as "argument 3 must be str" or just "must be real
 * number, not str": neither names the parameter. After a failed parse, each supplied value is
 * converted again on its own to find the first one that fails, and the error is raised again
 * with the entry point and parameter names. Only the format codes the bindings use appear. */
static void name_bad_arg(PyObject *args, PyObject *kw, const char *fmt, char **kwlist) {
    if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_OverflowError) &&
        !PyErr_ExceptionMatches(PyExc_ValueError))
        return;
    const char *fname = strchr(fmt, ':');
    fname = fname ? fname + 1 : "?";
    const Py_ssize_t npos = PyTuple_GET_SIZE(args);
    int i = 0;
    for (const char *f = fmt; *f && *f != ':' && *f != ';'; f++) {
        if (*f == '|') continue;
        const char code = *f;
        const char *name = kwlist[i];
        PyObject *obj = i < npos ? PyTuple_GET_ITEM(args, i) : (kw ? PyDict_GetItemString(kw, name) : NULL);
        i++;
        if (!obj || code == 'O') continue;
        PyObject *one = PyTuple_Pack(1, obj);
        if (!one) return;
        union { const char *s; double d; int i; long long ll; unsigned long long ull; Py_ssize_t n; } u;
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        const char code_fmt[2] = {code, 0};
        const int ok = PyArg_ParseTuple(one, code_fmt, &u);
        Py_DECREF(one);
        if (ok) { PyErr_Restore(et, ev, etb); continue; }
        Py_XDECREF(et); Py_XDECREF(ev); Py_XDECREF(etb);
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        PyObject *msg = v ? PyObject_Str(v) : NULL;
        const char *m = msg ? PyUnicode_AsUTF8(msg) : NULL;
        if (!m) { PyErr_Clear(); m = "invalid value"; }
        /* the lone re-parse calls its value "argument" or "argument 1": drop that */
        if (strncmp(m, "argument 1 ", 11) == 0) m += 11;
        else if (strncmp(m, "argument ", 9) == 0) m += 9;
        PyErr_Format(t ? t : PyExc_TypeError, "%s: %s: %s", fname, name, m);
        Py_XDECREF(msg); Py_XDECREF(t); Py_XDECREF(v); Py_XDECREF(tb);
        return;
    }
}

int qnn_parse_args(PyObject *args, PyObject *kw, const char *fmt, char **kwlist, ...) {
    va_list va;
    va_start(va, kwlist);
    const int ok = PyArg_VaParseTupleAndKeywords(args, kw, fmt, kwlist, va);
    va_end(va);
    if (!ok) name_bad_arg(args, kw, fmt, kwlist);
    return ok;
}
