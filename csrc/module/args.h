/* Argument checking for the binding: every entry point converts and validates its arrays once,
 * raising TypeError/ValueError messages that name the caller (`who`, e.g. a quantizer or layer
 * name), the argument, and the expected vs actual value. */
#ifndef QNN_MODULE_ARGS_H
#define QNN_MODULE_ARGS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL qnn_ext_ARRAY_API
#include <numpy/arrayobject.h>

/* `obj` must be a float32, C-contiguous, aligned ndarray; returns it (borrowed) or NULL. */
PyArrayObject *qnn_arg_f32(const char *who, const char *arg, PyObject *obj);
/* An optional output array: None -> a new array shaped like `like`; else it must match `like`'s
 * shape, be float32, C-contiguous, writeable and not overlap any array of `inputs`.
 * Returns a new reference or NULL. */
PyArrayObject *qnn_arg_out(const char *who, const char *arg, PyObject *out, PyArrayObject *like,
                           PyArrayObject *const *inputs, int n_inputs);
/* Describe a shape as "(2, 3)" into buf. */
void qnn_shape_str(PyArrayObject *a, char *buf, size_t len);
/* 0 if `a` has shape (nd, dims), else -1 with "<who>: <arg> must have shape (...)<what>, got
 * (...)" raised; `what` says where the expected shape comes from ("" for nothing). */
int qnn_check_shape(const char *who, const char *arg, PyArrayObject *a, int nd,
                    const npy_intp *dims, const char *what);
int qnn_arrays_overlap(PyArrayObject *a, PyArrayObject *b);
/* Reads an optional int/float field of a params dict (missing -> default). */
int qnn_dict_int(const char *who, PyObject *d, const char *key, long long *out, long long dflt);
int qnn_dict_float(const char *who, PyObject *d, const char *key, float *out, float dflt);
/* PyArg_ParseTupleAndKeywords whose errors name the entry point (after ':' in fmt) and the
 * parameter ("gemm: alpha must be real number, not str"). */
int qnn_parse_args(PyObject *args, PyObject *kw, const char *fmt, char **kwlist, ...);
/* Raise the exception for a kernel status code. */
void qnn_raise_status(const char *who, int status);

#endif
