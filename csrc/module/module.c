/* qnn_ext._core: module init, runtime entry points (ISA, threads, build info) and the method
 * table. Kernel families have their own py_<family>.c. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define PY_ARRAY_UNIQUE_SYMBOL qnn_ext_ARRAY_API
#include <numpy/arrayobject.h>

#include <limits.h>
#include <stdlib.h>

#include "module/py_quant.h"
#include "module/py_workspace.h"

/* Method tables of the other kernel families (py_gemm.c, py_nn.c, py_bnn.c, py_optim.c), added at init. */
extern PyMethodDef qnn_gemm_methods[];
extern PyMethodDef qnn_nn_methods[];
extern PyMethodDef qnn_bnn_methods[];
extern PyMethodDef qnn_optim_methods[];
#include "runtime/cpu.h"
#include "runtime/dispatch.h"
#include "runtime/threads.h"

#ifndef QNN_EXT_VERSION
#define QNN_EXT_VERSION "0.1.0"
#endif

static PyObject *py_build_info(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    PyObject *avail = PyList_New(0);
    if (!avail) return NULL;
    for (int i = 0; i < QNN_ISA_COUNT; i++) {
        if (!qnn_isa_available(i)) continue;
        PyObject *s = PyUnicode_FromString(qnn_isa_name(i));
        if (!s || PyList_Append(avail, s)) { Py_XDECREF(s); Py_DECREF(avail); return NULL; }
        Py_DECREF(s);
    }
    qnn_cpu_features f = qnn_cpu_detect();
    return Py_BuildValue(
        "{s:s,s:N,s:s,s:s,s:i,s:i,s:s,s:{s:O,s:O,s:O,s:O,s:O}}",
        "isa", qnn_isa_name(qnn_dispatch_table.isa), "isas_available", avail,
        "compiler", "gcc " __VERSION__, "openmp", qnn_have_openmp() ? "yes" : "no",
        "openmp_version", qnn_have_openmp(), "num_threads", qnn_get_num_threads(),
        "version", QNN_EXT_VERSION, "cpu", "avx2", f.avx2 ? Py_True : Py_False, "avx512",
        f.avx512 ? Py_True : Py_False, "avx512_vnni", f.avx512_vnni ? Py_True : Py_False,
        "avx512_vpopcntdq", f.avx512_vpopcntdq ? Py_True : Py_False, "avx512_bf16",
        f.avx512_bf16 ? Py_True : Py_False);
}

static PyObject *py_set_isa(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "set_isa: isa must be a str, got %s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
    int isa = qnn_isa_from_name(name);
    if (isa < 0) {
        PyErr_Format(PyExc_ValueError, "set_isa: isa must be one of 'ref', 'avx2', 'avx512', got '%s'", name);
        return NULL;
    }
    if (qnn_dispatch_select(isa)) {
        PyErr_Format(PyExc_ValueError, "set_isa: this CPU or build does not support '%s'", name);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_get_isa(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyUnicode_FromString(qnn_isa_name(qnn_dispatch_table.isa));
}

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "set_num_threads: n must be an int, got %s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    int ovf = 0;
    long n = PyLong_AsLongAndOverflow(arg, &ovf);
    if (ovf) n = ovf > 0 ? LONG_MAX : LONG_MIN;
    if (n < 1 || n > 1024) {
        PyErr_Format(PyExc_ValueError, "set_num_threads: n must be in [1, 1024], got %R", arg);
        return NULL;
    }
    qnn_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyLong_FromLong(qnn_get_num_threads());
}

static PyMethodDef methods[] = {
    {"build_info", py_build_info, METH_NOARGS, "Build and runtime facts (ISA, compiler, OpenMP)."},
    {"set_isa", py_set_isa, METH_O, "Select the kernel ISA level ('ref', 'avx2', 'avx512')."},
    {"get_isa", py_get_isa, METH_NOARGS, "The kernel ISA level in use."},
    {"set_num_threads", py_set_num_threads, METH_O, "Set the number of kernel threads."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "The number of kernel threads."},
    {"quant_forward", (PyCFunction)(void (*)(void))qnn_py_quant_forward, METH_VARARGS | METH_KEYWORDS,
     "Element-wise quantizer forward."},
    {"quant_backward", (PyCFunction)(void (*)(void))qnn_py_quant_backward, METH_VARARGS | METH_KEYWORDS,
     "Element-wise quantizer STE backward."},
    {"quant_auto", (PyCFunction)(void (*)(void))qnn_py_quant_auto, METH_VARARGS | METH_KEYWORDS,
     "Quantizer forward with data-dependent per-channel scales."},
    {"uniform", (PyCFunction)(void (*)(void))qnn_py_uniform, METH_VARARGS | METH_KEYWORDS,
     "Counter-based uniform draws in [0, 1) (the stochastic quantizers' random numbers)."},
    {"ste_planes", (PyCFunction)(void (*)(void))qnn_py_ste_planes, METH_VARARGS | METH_KEYWORDS,
     "Bit planes per element a quantizer spec's STE needs as a mask (0: none), or None when "
     "its STE reads the pre-activation itself."},
    {"quant_ste_backward", (PyCFunction)(void (*)(void))qnn_py_quant_ste_backward,
     METH_VARARGS | METH_KEYWORDS,
     "dx from dy and the STE bit mask a fused forward (gemm/conv2d_forward ste_mask=True) kept."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "qnn_ext._core",
                                       "C kernels of qnn_ext.", -1, methods,
                                       NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__core(void) {
    import_array();
    /* Pick the ISA once: the best the CPU has, or a lower one forced by QNN_EXT_ISA. */
    int isa = qnn_isa_best();
    const char *env = getenv("QNN_EXT_ISA");
    if (env && *env) {
        int want = qnn_isa_from_name(env);
        if (want < 0) {
            PyErr_Format(PyExc_ImportError, "QNN_EXT_ISA must be 'ref', 'avx2' or 'avx512', got '%s'", env);
            return NULL;
        }
        if (!qnn_isa_available(want)) {
            PyErr_Format(PyExc_ImportError, "QNN_EXT_ISA=%s but this CPU or build does not support it", env);
            return NULL;
        }
        isa = want;
    }
    qnn_dispatch_select(isa);
    if (PyType_Ready(&qnn_workspace_type) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&qnn_workspace_type);
    if (PyModule_AddObject(m, "Workspace", (PyObject *)&qnn_workspace_type)) {
        Py_DECREF(&qnn_workspace_type);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddFunctions(m, qnn_gemm_methods) || PyModule_AddFunctions(m, qnn_nn_methods) ||
        PyModule_AddFunctions(m, qnn_bnn_methods) ||
        PyModule_AddFunctions(m, qnn_optim_methods)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
