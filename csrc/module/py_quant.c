/* Binding of the quantizer kernels: _core.quant_forward / quant_backward / quant_auto / uniform.
 * The Python quantizer classes (qnn_ext/quantizers.py) fill the parameter dict; this file only
 * validates, releases the GIL and calls the kernels. */
#include "module/args.h"
#include "module/py_quant.h"

#include <string.h>

#include "kernels/quant/quant.h"

/* ------------------------------------------------------------------ helpers */

static int parse_params(const char *who, PyObject *d, qnn_quant_params *p) {
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "%s: params must be a dict, got %s", who, Py_TYPE(d)->tp_name);
        return -1;
    }
    long long op, flags, sig, mn, mx;
    if (qnn_dict_int(who, d, "op", &op, 0) || qnn_dict_int(who, d, "flags", &flags, 0) ||
        qnn_dict_int(who, d, "sigmoid", &sig, 0) || qnn_dict_int(who, d, "min_exp", &mn, 0) ||
        qnn_dict_int(who, d, "max_exp", &mx, 0))
        return -1;
    if (op <= 0 || op >= QNN_Q_OP_END) {
        PyErr_Format(PyExc_ValueError, "%s: params['op'] must be in [1, %d), got %lld", who, QNN_Q_OP_END, op);
        return -1;
    }
    if (sig < 0 || sig > 2 || mn < -100000 || mx > 100000 || mn > mx) {
        PyErr_Format(PyExc_ValueError, "%s: invalid params (sigmoid %lld, exponents [%lld, %lld])", who, sig, mn, mx);
        return -1;
    }
    memset(p, 0, sizeof *p);
    p->op = (int)op;
    p->flags = (unsigned)flags;
    p->sigmoid = (int)sig;
    p->min_exp = (int)mn;
    p->max_exp = (int)mx;
    struct { const char *k; float *dst; float dflt; } fs[] = {
        {"qf", &p->qf, 1.0f}, {"in_mul", &p->in_mul, 1.0f}, {"out_mul", &p->out_mul, 1.0f},
        {"lo", &p->lo, 0.0f}, {"hi", &p->hi, 0.0f}, {"m", &p->m, 1.0f}, {"m_i", &p->m_i, 1.0f},
        {"cap", &p->cap, 0.0f}, {"slope", &p->slope, 0.0f}, {"ub", &p->ub, 0.0f},
        {"thr", &p->thr, 0.0f}, {"u", &p->u, 0.0f}, {"log1pu", &p->log1pu, 1.0f},
        {"shift", &p->shift, 0.0f}, {"temperature", &p->temperature, 1.0f},
    };
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        if (qnn_dict_float(who, d, fs[i].k, fs[i].dst, fs[i].dflt)) return -1;
    PyObject *key = PyDict_GetItemString(d, "key");
    if (key) {
        unsigned long long k = PyLong_AsUnsignedLongLongMask(key);
        if (k == (unsigned long long)-1 && PyErr_Occurred()) return -1;
        p->key = k;
    }
    return 0;
}

/* A per-channel vector: float32, 1-D, C-contiguous, of length `want` (0 = any, returned). */
static PyArrayObject *channel_vec(const char *who, const char *arg, PyObject *obj, npy_intp want) {
    PyArrayObject *a = qnn_arg_f32(who, arg, obj);
    if (!a) return NULL;
    if (PyArray_NDIM(a) != 1 || PyArray_DIM(a, 0) < 1 || (want && PyArray_DIM(a, 0) != want)) {
        char s[128];
        qnn_shape_str(a, s, sizeof s);
        if (want)
            PyErr_Format(PyExc_ValueError, "%s: %s must have shape (%zd,), got %s", who, arg, (Py_ssize_t)want, s);
        else
            PyErr_Format(PyExc_ValueError, "%s: %s must be 1-D and non-empty, got shape %s", who, arg, s);
        return NULL;
    }
    return a;
}

/* n must equal S*inner*k for some k (channel period S*inner), checked without overflow;
 * `scale` names the per-channel vector whose length is S. */
static int check_period(const char *who, const char *scale, npy_intp n, npy_intp S, npy_intp inner) {
    if (inner < 1 || S < 1 || S > NPY_MAX_INTP / inner || (n % (S * inner)) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: x has %zd elements, not a multiple of channels (%zd, the length of %s) x "
                     "inner (%zd)", who, (Py_ssize_t)n, (Py_ssize_t)S, scale, (Py_ssize_t)inner);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ entry points */

PyObject *qnn_py_quant_forward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "x", "params", "out", "scale", "scale2", "inner", NULL};
    const char *who;
    PyObject *xo, *po, *out = Py_None, *so = Py_None, *s2o = Py_None;
    Py_ssize_t inner = 1;
    if (!qnn_parse_args(args, kw, "sOO|OOOn:quant_forward", kwlist, &who, &xo, &po,
                        &out, &so, &s2o, &inner))
        return NULL;
    qnn_quant_params p;
    PyArrayObject *x = qnn_arg_f32(who, "x", xo);
    if (!x || parse_params(who, po, &p)) return NULL;
    const npy_intp n = PyArray_SIZE(x);
    PyArrayObject *sc = NULL, *sc2 = NULL;
    npy_intp S = 1;
    if (so != Py_None) {
        if (!(sc = channel_vec(who, "scale", so, 0))) return NULL;
        S = PyArray_DIM(sc, 0);
        if (check_period(who, "scale", n, S, inner)) return NULL;
    }
    if (s2o != Py_None) {
        if (!sc) { PyErr_Format(PyExc_ValueError, "%s: scale2 needs scale", who); return NULL; }
        if (!(sc2 = channel_vec(who, "scale2", s2o, S))) return NULL;
    }
    PyArrayObject *ins[1] = {x};
    PyArrayObject *y = qnn_arg_out(who, "out", out, x, ins, 1);
    if (!y) return NULL;
    p.n_total = (uint64_t)n;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_quant_forward(&p, PyArray_DATA(x), PyArray_DATA(y), (size_t)n,
                           sc ? PyArray_DATA(sc) : NULL, sc2 ? PyArray_DATA(sc2) : NULL,
                           (size_t)S, (size_t)inner);
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(y); qnn_raise_status(who, rc); return NULL; }
    return (PyObject *)y;
}

PyObject *qnn_py_quant_backward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "x", "dy", "params", "out", "scale", "inner", NULL};
    const char *who;
    PyObject *xo, *dyo, *po, *out = Py_None, *so = Py_None;
    Py_ssize_t inner = 1;
    if (!qnn_parse_args(args, kw, "sOOO|OOn:quant_backward", kwlist, &who, &xo,
                        &dyo, &po, &out, &so, &inner))
        return NULL;
    qnn_quant_params p;
    PyArrayObject *x = qnn_arg_f32(who, "x", xo);
    if (!x) return NULL;
    PyArrayObject *dy = qnn_arg_f32(who, "dy", dyo);
    if (!dy || parse_params(who, po, &p)) return NULL;
    if (!PyArray_SAMESHAPE(x, dy)) {
        char s1[128], s2[128];
        qnn_shape_str(x, s1, sizeof s1);
        qnn_shape_str(dy, s2, sizeof s2);
        PyErr_Format(PyExc_ValueError, "%s: dy must have the shape of x %s, got %s", who, s1, s2);
        return NULL;
    }
    const npy_intp n = PyArray_SIZE(x);
    PyArrayObject *sc = NULL;
    npy_intp S = 1;
    if (so != Py_None) {
        if (!(sc = channel_vec(who, "scale", so, 0))) return NULL;
        S = PyArray_DIM(sc, 0);
        if (check_period(who, "scale", n, S, inner)) return NULL;
    }
    PyArrayObject *ins[2] = {x, dy};
    PyArrayObject *dx = qnn_arg_out(who, "out", out, x, ins, 2);
    if (!dx) return NULL;
    p.n_total = (uint64_t)n;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_quant_backward(&p, PyArray_DATA(x), PyArray_DATA(dy), PyArray_DATA(dx), (size_t)n,
                            sc ? PyArray_DATA(sc) : NULL, (size_t)S, (size_t)inner);
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(dx); qnn_raise_status(who, rc); return NULL; }
    return (PyObject *)dx;
}

PyObject *qnn_py_quant_auto(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "kind", "x", "params", "auto", "outer", "S", "inner",
                             "group", "out", "scale_in", NULL};
    const char *who, *kind;
    PyObject *xo, *po, *ao, *out = Py_None, *sio = Py_None;
    Py_ssize_t outer, S, inner, group;
    if (!qnn_parse_args(args, kw, "ssOOOnnnn|OO:quant_auto", kwlist, &who, &kind,
                        &xo, &po, &ao, &outer, &S, &inner, &group, &out, &sio))
        return NULL;
    qnn_quant_params p;
    PyArrayObject *x = qnn_arg_f32(who, "x", xo);
    if (!x || parse_params(who, po, &p)) return NULL;
    if (!PyDict_Check(ao)) {
        PyErr_Format(PyExc_TypeError, "%s: auto must be a dict", who);
        return NULL;
    }
    qnn_auto_params a;
    long long v[9];
    const char *keys[9] = {"po2", "global_init", "has_min_exp", "has_max_exp", "min_po2_exp",
                           "max_po2_exp", "frozen", "iterations", "alpha_kind"};
    for (int i = 0; i < 9; i++)
        if (qnn_dict_int(who, ao, keys[i], &v[i], 0)) return NULL;
    if (v[4] < -126 || v[4] > 127 || v[5] < -126 || v[5] > 127) {
        PyErr_Format(PyExc_ValueError, "%s: min/max_po2_exponent must be in [-126, 127], got %lld, %lld", who, v[4], v[5]);
        return NULL;
    }
    if (v[7] < 0 || v[7] > 1000) {
        PyErr_Format(PyExc_ValueError, "%s: iterations must be in [0, 1000], got %lld", who, v[7]);
        return NULL;
    }
    a = (qnn_auto_params){(int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4], (int)v[5],
                          (int)v[6], (int)v[7], (int)v[8]};
    const npy_intp n = PyArray_SIZE(x);
    if (outer < 1 || S < 1 || inner < 1 || group < 1 || S % group != 0 ||
        S > NPY_MAX_INTP / inner || outer > NPY_MAX_INTP / (S * inner) || outer * S * inner != n) {
        PyErr_Format(PyExc_ValueError,
                     "%s: layout (outer %zd, channels %zd, inner %zd, group %zd) does not fit x of %zd elements",
                     who, (Py_ssize_t)outer, (Py_ssize_t)S, (Py_ssize_t)inner, (Py_ssize_t)group, (Py_ssize_t)n);
        return NULL;
    }
    PyArrayObject *si = NULL;
    if (sio != Py_None && !(si = channel_vec(who, "scale_in", sio, S))) return NULL;
    PyArrayObject *ins[1] = {x};
    PyArrayObject *y = qnn_arg_out(who, "out", out, x, ins, 1);
    if (!y) return NULL;
    npy_intp G = S / group;
    PyArrayObject *scale = (PyArrayObject *)PyArray_SimpleNew(1, &G, NPY_FLOAT32);
    if (!scale) { Py_DECREF(y); return NULL; }
    float *so = PyArray_DATA(scale);
    for (npy_intp g = 0; g < G; g++) so[g] = si ? ((float *)PyArray_DATA(si))[g * group] : 1.0f;
    qnn_channel_layout L = {(size_t)outer, (size_t)S, (size_t)inner, (size_t)group};
    p.n_total = (uint64_t)n;
    const float *sin = si ? PyArray_DATA(si) : NULL;
    int rc = QNN_EINVAL;
    enum { K_BITS, K_LINEAR, K_BINARY, K_TERNARY, K_STOCH, K_BAD } k = K_BAD;
    if (!strcmp(kind, "bits")) k = K_BITS;
    else if (!strcmp(kind, "linear")) k = K_LINEAR;
    else if (!strcmp(kind, "binary")) k = K_BINARY;
    else if (!strcmp(kind, "ternary")) k = K_TERNARY;
    else if (!strcmp(kind, "stochastic")) k = K_STOCH;
    if (k == K_BAD || (k == K_BITS && a.frozen && !si)) {
        Py_DECREF(y); Py_DECREF(scale);
        PyErr_Format(PyExc_ValueError, "%s: unknown auto kind '%s' or missing scale_in", who, kind);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    switch (k) {
    case K_BITS: rc = qnn_quant_auto_bits(&p, &a, &L, PyArray_DATA(x), PyArray_DATA(y), sin, so); break;
    case K_LINEAR: rc = qnn_quant_auto_linear(&p, &a, &L, PyArray_DATA(x), PyArray_DATA(y), so); break;
    case K_BINARY: rc = qnn_quant_auto_binary(&p, &a, &L, PyArray_DATA(x), PyArray_DATA(y), so); break;
    case K_TERNARY: rc = qnn_quant_auto_ternary(&p, &a, &L, PyArray_DATA(x), PyArray_DATA(y), so); break;
    case K_STOCH: rc = qnn_quant_stochastic(&p, &a, &L, PyArray_DATA(x), PyArray_DATA(y), sin, so); break;
    default: break;
    }
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(y); Py_DECREF(scale); qnn_raise_status(who, rc); return NULL; }
    return Py_BuildValue("(NN)", y, scale);
}

PyObject *qnn_py_uniform(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"key", "n", "offset", NULL};
    PyObject *ko;
    Py_ssize_t n;
    unsigned long long offset = 0;
    if (!qnn_parse_args(args, kw, "On|K:uniform", kwlist, &ko, &n, &offset)) return NULL;
    /* any int is a key (taken mod 2**64, as offset): only non-ints are refused */
    PyObject *ki = PyNumber_Index(ko);
    if (!ki) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "uniform: key must be an int, got %s", Py_TYPE(ko)->tp_name);
        return NULL;
    }
    unsigned long long key = PyLong_AsUnsignedLongLongMask(ki);
    Py_DECREF(ki);
    if (key == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "uniform: n must be >= 0, got %zd", n);
        return NULL;
    }
    npy_intp dim = n;
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(1, &dim, NPY_FLOAT32);
    if (!out) return NULL;
    Py_BEGIN_ALLOW_THREADS
    qnn_uniform_fill(key, offset, PyArray_DATA(out), (size_t)n);
    Py_END_ALLOW_THREADS
    return (PyObject *)out;
}

/* ------------------------------------------------------------------ fused activation specs */

int qnn_py_act_spec(const char *who, PyObject *spec, npy_intp n, qnn_py_act *a) {
    memset(a, 0, sizeof *a);
    a->S_f = a->S_b = 1;
    a->inner_f = a->inner_b = 1;
    PyObject *pfo, *sfo, *s2fo, *pbo, *sbo;
    Py_ssize_t inf, inb;
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 7 ||
        !PyArg_ParseTuple(spec, "OOOnOOn", &pfo, &sfo, &s2fo, &inf, &pbo, &sbo, &inb)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: act must be None, 'relu' or a quantizer spec tuple "
                     "(params_f, scale_f, scale2_f, inner_f, params_b, scale_b, inner_b), got %R",
                     who, spec);
        return -1;
    }
    if (parse_params(who, pfo, &a->pf) || parse_params(who, pbo, &a->pb)) return -1;
    a->pf.n_total = a->pb.n_total = (uint64_t)n;
    a->inner_f = inf;
    a->inner_b = inb;
    if (sfo != Py_None) {
        if (!(a->sc_f = channel_vec(who, "act scale_f", sfo, 0))) return -1;
        a->S_f = PyArray_DIM(a->sc_f, 0);
        if (check_period(who, "act scale_f", n, a->S_f, a->inner_f)) return -1;
    }
    if (s2fo != Py_None) {
        if (!a->sc_f) { PyErr_Format(PyExc_ValueError, "%s: act scale2_f needs scale_f", who); return -1; }
        if (!(a->sc2_f = channel_vec(who, "act scale2_f", s2fo, a->S_f))) return -1;
    }
    if (sbo != Py_None) {
        if (!(a->sc_b = channel_vec(who, "act scale_b", sbo, 0))) return -1;
        a->S_b = PyArray_DIM(a->sc_b, 0);
        if (check_period(who, "act scale_b", n, a->S_b, a->inner_b)) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ STEs kept as bit codes */

int qnn_py_ste_code(const char *who, const qnn_quant_params *pb, qnn_ste_code *ste) {
    if (qnn_quant_ste_code(pb, ste)) return 0;
    PyErr_Format(PyExc_ValueError, "%s: this quantizer's STE (op %d) reads the pre-activation "
                 "itself and cannot be kept as a bit mask (ste_mask)", who, pb->op);
    return -1;
}

PyObject *qnn_py_ste_planes(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"spec", NULL};
    PyObject *spec;
    if (!qnn_parse_args(args, kw, "O:ste_planes", kwlist, &spec)) return NULL;
    /* only the backward params matter: the scales' layout is checked where a tensor is given */
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 7) {
        PyErr_Format(PyExc_TypeError, "ste_planes: spec must be a quantizer spec tuple "
                     "(params_f, scale_f, scale2_f, inner_f, params_b, scale_b, inner_b), got %R",
                     spec);
        return NULL;
    }
    qnn_quant_params pb;
    qnn_ste_code ste;
    if (parse_params("ste_planes", PyTuple_GET_ITEM(spec, 4), &pb)) return NULL;
    if (!qnn_quant_ste_code(&pb, &ste)) Py_RETURN_NONE;
    return PyLong_FromLong(ste.planes);
}

PyObject *qnn_py_quant_ste_backward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "spec", "mask", "dy", "out", NULL};
    const char *who;
    PyObject *spec, *mo, *dyo, *out = Py_None;
    if (!qnn_parse_args(args, kw, "sOOO|O:quant_ste_backward", kwlist, &who, &spec, &mo, &dyo,
                        &out))
        return NULL;
    PyArrayObject *dy = qnn_arg_f32(who, "dy", dyo);
    if (!dy) return NULL;
    qnn_py_act pa;
    qnn_ste_code ste;
    if (qnn_py_act_spec(who, spec, PyArray_SIZE(dy), &pa) || qnn_py_ste_code(who, &pa.pb, &ste))
        return NULL;
    if (!PyArray_Check(mo) || PyArray_TYPE((PyArrayObject *)mo) != NPY_UINT8) {
        PyErr_Format(PyExc_TypeError, "%s: mask must be the uint8 array of a fused forward "
                     "(gemm/conv2d_forward with ste_mask=True), got %s", who,
                     PyArray_Check(mo) ? "another dtype" : Py_TYPE(mo)->tp_name);
        return NULL;
    }
    if (!PyArray_IS_C_CONTIGUOUS((PyArrayObject *)mo) || PyArray_NDIM((PyArrayObject *)mo) != 3) {
        char s1[128];
        qnn_shape_str((PyArrayObject *)mo, s1, sizeof s1);
        PyErr_Format(PyExc_ValueError, "%s: mask must be C-contiguous with 3 dims (groups, rows, "
                     "row_bytes), got shape %s%s", who, s1,
                     PyArray_IS_C_CONTIGUOUS((PyArrayObject *)mo) ? "" : " (not contiguous)");
        return NULL;
    }
    PyArrayObject *mask = (PyArrayObject *)mo;
    const npy_intp N = PyArray_NDIM(dy) ? PyArray_DIM(dy, PyArray_NDIM(dy) - 1) : 1;
    const npy_intp M = N ? PyArray_SIZE(dy) / N : 0, G = PyArray_DIM(mask, 0);
    if (G < 1 || N % G != 0 || PyArray_DIM(mask, 1) != M ||
        PyArray_DIM(mask, 2) != (npy_intp)qnn_ste_row_bytes(&ste, (size_t)(N / G))) {
        char s1[128], s2[128];
        qnn_shape_str(mask, s1, sizeof s1);
        qnn_shape_str(dy, s2, sizeof s2);
        PyErr_Format(PyExc_ValueError, "%s: mask of shape %s does not fit dy of shape %s (want "
                     "(groups, %zd, planes * ceil(channels_per_group / 8)) with %d plane(s), "
                     "groups dividing %zd)", who, s1, s2, (Py_ssize_t)M, ste.planes,
                     (Py_ssize_t)N);
        return NULL;
    }
    PyArrayObject *ins[1] = {dy};
    PyArrayObject *dx = qnn_arg_out(who, "out", out, dy, ins, 0);
    if (!dx) return NULL;
    /* element-wise: out may be dy itself, but not a shifted view of it */
    if (PyArray_DATA(dx) != PyArray_DATA(dy) && qnn_arrays_overlap(dx, dy)) {
        PyErr_Format(PyExc_ValueError, "%s: out must be dy itself or not share memory with it",
                     who);
        Py_DECREF(dx);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    qnn_quant_ste_backward(&ste, (size_t)M, (size_t)G, (size_t)(N / G), PyArray_DATA(mask),
                           PyArray_DATA(dy), PyArray_DATA(dx));
    Py_END_ALLOW_THREADS
    return (PyObject *)dx;
}
