/* Binding of the pooling, batch-norm, softmax/cross-entropy and activation kernels
 * (csrc/kernels/nn/). Each entry point converts and checks its arguments once, raising
 * TypeError/ValueError messages that name the caller (`who`), the argument and expected vs
 * actual, then releases the GIL around one kernel call. */
#include "module/args.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "kernels/nn/nn.h"
#include "module/py_quant.h"

/* Window sizes, strides and pads are bounded so that every size derived from them (H + pads,
 * offsets inside a window) fits comfortably in 64 bits. */
#define PARAM_MAX 2147483647LL

/* ------------------------------------------------------------------ argument helpers */

/* `obj` is an int (used for all n entries) or a sequence of n ints, each in [lo, PARAM_MAX]. */
static int int_tuple(const char *who, const char *arg, PyObject *obj, int n, long long lo,
                     long long *vals) {
    int ovf = 0;
    if (PyLong_Check(obj)) {
        /* an out-of-range int is clamped so that the range check below names it */
        long long v = PyLong_AsLongLongAndOverflow(obj, &ovf);
        if (ovf) v = ovf > 0 ? LLONG_MAX : LLONG_MIN;
        for (int i = 0; i < n; i++) vals[i] = v;
    } else {
        PyObject *seq = PySequence_Check(obj) && !PyUnicode_Check(obj) ? PySequence_Fast(obj, "") : NULL;
        if (!seq || PySequence_Fast_GET_SIZE(seq) != n) {
            Py_XDECREF(seq);
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: %s must be an int or a sequence of %d ints, got %R",
                         who, arg, n, obj);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
            if (!PyLong_Check(it)) {
                PyErr_Format(PyExc_TypeError, "%s: %s must contain ints, got %R", who, arg, obj);
                Py_DECREF(seq);
                return -1;
            }
            vals[i] = PyLong_AsLongLongAndOverflow(it, &ovf);
            if (ovf) vals[i] = ovf > 0 ? LLONG_MAX : LLONG_MIN;
        }
        Py_DECREF(seq);
    }
    for (int i = 0; i < n; i++) {
        if (vals[i] < lo || vals[i] > PARAM_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: %s values must be in [%lld, %lld], got %R", who,
                         arg, lo, PARAM_MAX, obj);
            return -1;
        }
    }
    return 0;
}

/* A float32 array with exactly `nd` dims; `dims` names them for the message. */
static PyArrayObject *f32_ndim(const char *who, const char *arg, PyObject *obj, int nd,
                               const char *dims) {
    PyArrayObject *a = qnn_arg_f32(who, arg, obj);
    if (!a) return NULL;
    if (PyArray_NDIM(a) != nd) {
        char s[160];
        qnn_shape_str(a, s, sizeof s);
        PyErr_Format(PyExc_ValueError, "%s: %s must have %d dims %s, got shape %s", who, arg, nd,
                     dims, s);
        return NULL;
    }
    return a;
}


static int same_shape(const char *who, const char *arg, PyArrayObject *a, PyArrayObject *like,
                      const char *what) {
    return qnn_check_shape(who, arg, a, PyArray_NDIM(like), PyArray_DIMS(like), what);
}

/* Optional per-channel float32 vector of length c (None -> NULL, *err stays 0). */
static PyArrayObject *opt_channel_vec(const char *who, const char *arg, PyObject *obj,
                                      npy_intp c, int *err) {
    if (obj == NULL || obj == Py_None) return NULL;
    PyArrayObject *a = qnn_arg_f32(who, arg, obj);
    if (!a || qnn_check_shape(who, arg, a, 1, &c, " (channels)")) { *err = 1; return NULL; }
    return a;
}

/* A new output of shape dims (None) or the caller's `out`, checked by qnn_arg_out against a
 * zero-stride stand-in of that shape (no allocation for the check). */
static PyArrayObject *out_shaped(const char *who, const char *arg, PyObject *out, int nd,
                                 npy_intp *dims, PyArrayObject *const *inputs, int n_inputs) {
    npy_intp total = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] != 0 && total > (NPY_MAX_INTP / (npy_intp)sizeof(float)) / dims[i]) {
            PyErr_Format(PyExc_ValueError, "%s: %s would have too many elements", who, arg);
            return NULL;
        }
        total *= dims[i];
    }
    if (out == NULL || out == Py_None)
        return (PyArrayObject *)PyArray_SimpleNew(nd, dims, NPY_FLOAT32);
    static const float stand_in = 0.0f;
    npy_intp strides[NPY_MAXDIMS] = {0};
    PyArrayObject *like = (PyArrayObject *)PyArray_New(&PyArray_Type, nd, dims, NPY_FLOAT32,
                                                       strides, (void *)&stand_in, sizeof(float),
                                                       0, NULL);
    if (!like) return NULL;
    PyArrayObject *o = qnn_arg_out(who, arg, out, like, inputs, n_inputs);
    Py_DECREF(like);
    return o;
}

static int pool_kind(const char *who, const char *kind) {
    if (strcmp(kind, "max") == 0) return QNN_POOL_MAX;
    if (strcmp(kind, "avg") == 0) return QNN_POOL_AVG;
    PyErr_Format(PyExc_ValueError, "%s: kind must be 'max' or 'avg', got '%s'", who, kind);
    return -1;
}

static PyObject *raise_status(const char *who, int rc) {
    qnn_raise_status(who, rc);
    return NULL;
}

/* ------------------------------------------------------------------ 2-D pooling */

#define X4_DIMS "(batch, height, width, channels)"

/* Validates x, pool, strides and padding and fills s (output size included). */
static int pool2d_setup(const char *who, PyArrayObject *x, PyObject *po, PyObject *so,
                        PyObject *pado, qnn_pool2d_shape *s) {
    long long pool[2], st[2], pad[4];
    if (int_tuple(who, "pool", po, 2, 1, pool) || int_tuple(who, "strides", so, 2, 1, st) ||
        int_tuple(who, "padding", pado, 4, 0, pad))
        return -1;
    /* a pad >= the window would create windows with no valid cell (max/avg undefined) */
    if (pad[0] >= pool[0] || pad[1] >= pool[0] || pad[2] >= pool[1] || pad[3] >= pool[1]) {
        PyErr_Format(PyExc_ValueError,
                     "%s: padding (top, bottom, left, right) must each be < the pool size (%lld, "
                     "%lld), got (%lld, %lld, %lld, %lld)",
                     who, pool[0], pool[1], pad[0], pad[1], pad[2], pad[3]);
        return -1;
    }
    s->n = PyArray_DIM(x, 0);
    s->h = PyArray_DIM(x, 1);
    s->w = PyArray_DIM(x, 2);
    s->c = PyArray_DIM(x, 3);
    s->ph = pool[0]; s->pw = pool[1];
    s->sh = st[0]; s->sw = st[1];
    s->pt = pad[0]; s->pb = pad[1]; s->pl = pad[2]; s->pr = pad[3];
    const int64_t hp = s->h + s->pt + s->pb, wp = s->w + s->pl + s->pr;
    if (s->h < 1 || s->w < 1 || hp < s->ph || wp < s->pw) {
        char sh[160];
        qnn_shape_str(x, sh, sizeof sh);
        PyErr_Format(PyExc_ValueError,
                     "%s: output size must be >= 1: x of shape %s padded to %lld x %lld is "
                     "smaller than the pool (%lld, %lld)",
                     who, sh, (long long)(s->h < 1 ? 0 : hp), (long long)(s->w < 1 ? 0 : wp),
                     pool[0], pool[1]);
        return -1;
    }
    if (s->ph > (int64_t)INT32_MAX / s->w) {
        PyErr_Format(PyExc_ValueError, "%s: pool height x input width must be <= %d, got %lld x %lld",
                     who, INT32_MAX, (long long)s->ph, (long long)s->w);
        return -1;
    }
    s->ho = (hp - s->ph) / s->sh + 1;
    s->wo = (wp - s->pw) / s->sw + 1;
    return 0;
}

static PyObject *py_pool2d_forward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "kind", "x", "pool", "strides", "padding", "out", NULL};
    const char *who, *kind;
    PyObject *xo, *po, *so, *pado, *out = Py_None;
    if (!qnn_parse_args(args, kw, "ssOOOO|O:pool2d_forward", kwlist, &who, &kind,
                        &xo, &po, &so, &pado, &out))
        return NULL;
    const int k = pool_kind(who, kind);
    if (k < 0) return NULL;
    PyArrayObject *x = f32_ndim(who, "x", xo, 4, X4_DIMS);
    qnn_pool2d_shape s;
    if (!x || pool2d_setup(who, x, po, so, pado, &s)) return NULL;
    npy_intp dims[4] = {(npy_intp)s.n, (npy_intp)s.ho, (npy_intp)s.wo, (npy_intp)s.c};
    PyArrayObject *ins[1] = {x};
    PyArrayObject *y = out_shaped(who, "out", out, 4, dims, ins, 1);
    if (!y) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_pool2d_forward(k, &s, PyArray_DATA(x), PyArray_DATA(y));
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(y); return raise_status(who, rc); }
    return (PyObject *)y;
}

static PyObject *py_pool2d_backward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "kind", "x", "dy", "pool", "strides", "padding", "out", NULL};
    const char *who, *kind;
    PyObject *xo, *dyo, *po, *so, *pado, *out = Py_None;
    if (!qnn_parse_args(args, kw, "ssOOOOO|O:pool2d_backward", kwlist, &who, &kind,
                        &xo, &dyo, &po, &so, &pado, &out))
        return NULL;
    const int k = pool_kind(who, kind);
    if (k < 0) return NULL;
    PyArrayObject *x = f32_ndim(who, "x", xo, 4, X4_DIMS);
    if (!x) return NULL;
    PyArrayObject *dy = qnn_arg_f32(who, "dy", dyo);
    qnn_pool2d_shape s;
    if (!dy || pool2d_setup(who, x, po, so, pado, &s)) return NULL;
    npy_intp ydims[4] = {(npy_intp)s.n, (npy_intp)s.ho, (npy_intp)s.wo, (npy_intp)s.c};
    if (qnn_check_shape(who, "dy", dy, 4, ydims, " (the forward output)")) return NULL;
    PyArrayObject *ins[2] = {x, dy};
    PyArrayObject *dx = qnn_arg_out(who, "out", out, x, ins, 2);
    if (!dx) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_pool2d_backward(k, &s, PyArray_DATA(x), PyArray_DATA(dy), PyArray_DATA(dx));
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(dx); return raise_status(who, rc); }
    return (PyObject *)dx;
}

/* ------------------------------------------------------------------ global pooling */

static PyArrayObject *global_x(const char *who, PyObject *xo) {
    PyArrayObject *x = f32_ndim(who, "x", xo, 4, X4_DIMS);
    if (x && PyArray_DIM(x, 1) >= 1 && PyArray_DIM(x, 2) >= 1 &&
        PyArray_DIM(x, 1) > INT32_MAX / PyArray_DIM(x, 2)) {
        PyErr_Format(PyExc_ValueError, "%s: x height x width must be <= %d, got %zd x %zd", who,
                     INT32_MAX, (Py_ssize_t)PyArray_DIM(x, 1), (Py_ssize_t)PyArray_DIM(x, 2));
        return NULL;
    }
    if (x && (PyArray_DIM(x, 1) < 1 || PyArray_DIM(x, 2) < 1)) {
        char s[160];
        qnn_shape_str(x, s, sizeof s);
        PyErr_Format(PyExc_ValueError, "%s: x must have height and width >= 1, got shape %s", who, s);
        return NULL;
    }
    return x;
}

static PyObject *py_global_pool2d_forward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "kind", "x", "out", NULL};
    const char *who, *kind;
    PyObject *xo, *out = Py_None;
    if (!qnn_parse_args(args, kw, "ssO|O:global_pool2d_forward", kwlist, &who,
                        &kind, &xo, &out))
        return NULL;
    const int k = pool_kind(who, kind);
    if (k < 0) return NULL;
    PyArrayObject *x = global_x(who, xo);
    if (!x) return NULL;
    npy_intp dims[2] = {PyArray_DIM(x, 0), PyArray_DIM(x, 3)};
    PyArrayObject *ins[1] = {x};
    PyArrayObject *y = out_shaped(who, "out", out, 2, dims, ins, 1);
    if (!y) return NULL;
    const size_t hw = (size_t)PyArray_DIM(x, 1) * (size_t)PyArray_DIM(x, 2);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_global_pool_forward(k, (size_t)dims[0], hw, (size_t)dims[1], PyArray_DATA(x),
                                 PyArray_DATA(y));
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(y); return raise_status(who, rc); }
    return (PyObject *)y;
}

static PyObject *py_global_pool2d_backward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "kind", "x", "dy", "out", NULL};
    const char *who, *kind;
    PyObject *xo, *dyo, *out = Py_None;
    if (!qnn_parse_args(args, kw, "ssOO|O:global_pool2d_backward", kwlist, &who,
                        &kind, &xo, &dyo, &out))
        return NULL;
    const int k = pool_kind(who, kind);
    if (k < 0) return NULL;
    PyArrayObject *x = global_x(who, xo);
    if (!x) return NULL;
    PyArrayObject *dy = qnn_arg_f32(who, "dy", dyo);
    if (!dy) return NULL;
    npy_intp ydims[2] = {PyArray_DIM(x, 0), PyArray_DIM(x, 3)};
    if (qnn_check_shape(who, "dy", dy, 2, ydims, " (the forward output)")) return NULL;
    PyArrayObject *ins[2] = {x, dy};
    PyArrayObject *dx = qnn_arg_out(who, "out", out, x, ins, 2);
    if (!dx) return NULL;
    const size_t hw = (size_t)PyArray_DIM(x, 1) * (size_t)PyArray_DIM(x, 2);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_global_pool_backward(k, (size_t)ydims[0], hw, (size_t)ydims[1], PyArray_DATA(x),
                                  PyArray_DATA(dy), PyArray_DATA(dx));
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(dx); return raise_status(who, rc); }
    return (PyObject *)dx;
}

/* ------------------------------------------------------------------ batch normalisation */

/* x: float32 with >= 2 dims, channels last; returns it and sets (*m, *c). */
static PyArrayObject *bn_x(const char *who, const char *arg, PyObject *xo, size_t *m, size_t *c) {
    PyArrayObject *x = qnn_arg_f32(who, arg, xo);
    if (!x) return NULL;
    if (PyArray_NDIM(x) < 2 || PyArray_DIM(x, PyArray_NDIM(x) - 1) < 1) {
        char s[160];
        qnn_shape_str(x, s, sizeof s);
        PyErr_Format(PyExc_ValueError,
                     "%s: %s must have at least 2 dims (batch, ..., channels) and channels >= 1, "
                     "got shape %s", who, arg, s);
        return NULL;
    }
    *c = (size_t)PyArray_DIM(x, PyArray_NDIM(x) - 1);
    *m = (size_t)PyArray_SIZE(x) / *c;
    return x;
}

/* act argument of the batch-norm entry points: None, "relu" or a quantizer spec tuple. Returns
 * 0 and fills *a (kind NONE for None), or -1 with an exception set. */
static int bn_act_arg(const char *who, PyObject *o, npy_intp n, qnn_py_act *pa, qnn_bn_act *a) {
    memset(a, 0, sizeof *a);
    if (o == Py_None) return 0;
    if (PyUnicode_Check(o)) {
        if (PyUnicode_CompareWithASCIIString(o, "relu") == 0) {
            a->kind = QNN_BN_ACT_RELU;
            return 0;
        }
        PyErr_Format(PyExc_ValueError, "%s: act must be None, 'relu' or a quantizer spec, got '%U'",
                     who, o);
        return -1;
    }
    if (qnn_py_act_spec(who, o, n, pa)) return -1;
    *a = (qnn_bn_act){QNN_BN_ACT_QUANT, &pa->pf, &pa->pb,
                      pa->sc_f ? PyArray_DATA(pa->sc_f) : NULL,
                      pa->sc2_f ? PyArray_DATA(pa->sc2_f) : NULL,
                      pa->sc_b ? PyArray_DATA(pa->sc_b) : NULL,
                      (size_t)pa->S_f, (size_t)pa->inner_f, (size_t)pa->S_b, (size_t)pa->inner_b};
    return 0;
}

static int check_eps(const char *who, double eps) {
    if (eps >= 0.0 && eps <= 1.0e30) return 0;
    char e[64];
    snprintf(e, sizeof e, "%.9g", eps);
    PyErr_Format(PyExc_ValueError, "%s: eps must be a finite float >= 0, got %s", who, e);
    return -1;
}

static PyObject *py_batchnorm_forward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "x", "gamma", "beta", "eps", "training", "mean", "var",
                             "out", "act", NULL};
    const char *who;
    PyObject *xo, *go, *bo, *mo = Py_None, *vo = Py_None, *out = Py_None, *ao = Py_None;
    double eps;
    int training;
    if (!qnn_parse_args(args, kw, "sOOOdp|OOOO:batchnorm_forward", kwlist, &who, &xo,
                        &go, &bo, &eps, &training, &mo, &vo, &out, &ao))
        return NULL;
    size_t m, c;
    PyArrayObject *x = bn_x(who, "x", xo, &m, &c);
    if (!x) return NULL;
    if (check_eps(who, eps)) return NULL;
    int err = 0;
    const npy_intp C = (npy_intp)c;
    PyArrayObject *gamma = opt_channel_vec(who, "gamma", go, C, &err);
    PyArrayObject *beta = err ? NULL : opt_channel_vec(who, "beta", bo, C, &err);
    /* moving statistics may be passed in training too (one call site in the layer); unused there */
    PyArrayObject *mean = err ? NULL : opt_channel_vec(who, "mean", mo, C, &err);
    PyArrayObject *var = err ? NULL : opt_channel_vec(who, "var", vo, C, &err);
    if (err) return NULL;
    if (!training && (!mean || !var)) {
        PyErr_Format(PyExc_ValueError, "%s: training=False needs mean and var of shape (%zd,)",
                     who, (Py_ssize_t)C);
        return NULL;
    }
    if (training && m == 0) {
        PyErr_Format(PyExc_ValueError, "%s: x must have at least one row for batch statistics "
                     "(training=True), got size 0", who);
        return NULL;
    }
    qnn_py_act pa;
    qnn_bn_act act;
    if (bn_act_arg(who, ao, PyArray_SIZE(x), &pa, &act)) return NULL;
    if (act.kind != QNN_BN_ACT_NONE && !training) {
        PyErr_Format(PyExc_ValueError, "%s: a fused act needs training=True", who);
        return NULL;
    }
    PyArrayObject *ins[5] = {x, gamma, beta, mean, var};
    PyArrayObject *y = qnn_arg_out(who, "out", out, x, ins, 5);
    if (!y) return NULL;
    const float *gp = gamma ? PyArray_DATA(gamma) : NULL, *bp = beta ? PyArray_DATA(beta) : NULL;
    int rc;
    if (!training) {
        Py_BEGIN_ALLOW_THREADS
        rc = qnn_bn_inference(m, c, PyArray_DATA(x), PyArray_DATA(mean), PyArray_DATA(var),
                              (float)eps, gp, bp, PyArray_DATA(y));
        Py_END_ALLOW_THREADS
        if (rc) { Py_DECREF(y); return raise_status(who, rc); }
        return (PyObject *)y;
    }
    PyArrayObject *bm = (PyArrayObject *)PyArray_SimpleNew(1, (npy_intp *)&C, NPY_FLOAT32);
    PyArrayObject *bv = (PyArrayObject *)PyArray_SimpleNew(1, (npy_intp *)&C, NPY_FLOAT32);
    PyArrayObject *is = (PyArrayObject *)PyArray_SimpleNew(1, (npy_intp *)&C, NPY_FLOAT32);
    if (!bm || !bv || !is) goto error;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_bn_stats(m, c, PyArray_DATA(x), (float)eps, PyArray_DATA(bm), PyArray_DATA(bv),
                      PyArray_DATA(is));
    if (!rc && act.kind == QNN_BN_ACT_NONE)
        rc = qnn_bn_apply(m, c, PyArray_DATA(x), PyArray_DATA(bm), PyArray_DATA(is), gp, bp,
                          PyArray_DATA(y));
    else if (!rc)
        rc = qnn_bn_apply_act(m, c, PyArray_DATA(x), PyArray_DATA(bm), PyArray_DATA(is), gp, bp,
                              &act, PyArray_DATA(y));
    Py_END_ALLOW_THREADS
    if (rc) { raise_status(who, rc); goto error; }
    return Py_BuildValue("(NNNN)", y, bm, bv, is);
error:
    Py_DECREF(y);
    Py_XDECREF(bm);
    Py_XDECREF(bv);
    Py_XDECREF(is);
    return NULL;
}

/* The per-channel vectors of the backward kernels, each float32 of c channels: gamma and beta
 * (optional, NULL for None), batch_mean and inv_std (required). 0, or -1 with an exception. */
typedef struct bn_vecs {
    PyArrayObject *gamma, *beta, *mean, *inv_std;
} bn_vecs;

static int bn_backward_vecs(const char *who, PyObject *go, PyObject *bo, PyObject *mo,
                            PyObject *iso, npy_intp c, bn_vecs *v) {
    int err = 0;
    v->gamma = opt_channel_vec(who, "gamma", go, c, &err);
    v->beta = err ? NULL : opt_channel_vec(who, "beta", bo, c, &err);
    if (err) return -1;
    if (mo == Py_None || iso == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s: batch_mean and inv_std are required (float32 arrays "
                     "of shape (%zd,))", who, (Py_ssize_t)c);
        return -1;
    }
    v->mean = opt_channel_vec(who, "batch_mean", mo, c, &err);
    v->inv_std = err ? NULL : opt_channel_vec(who, "inv_std", iso, c, &err);
    return err ? -1 : 0;
}

static const float *vec_data(PyArrayObject *a) { return a ? PyArray_DATA(a) : NULL; }

/* The (dx, dgamma, dbeta) result of a batch-norm backward, or NULL with the kernel's status (or
 * the allocation's exception) raised and the three arrays released. */
static PyObject *bn_grads_result(const char *who, int rc, PyArrayObject *dx, PyArrayObject *dg,
                                 PyArrayObject *db) {
    if (dx && dg && db && !rc) return Py_BuildValue("(NNN)", dx, dg, db);
    if (rc) raise_status(who, rc);
    Py_XDECREF(dx);
    Py_XDECREF(dg);
    Py_XDECREF(db);
    return NULL;
}

static PyObject *py_batchnorm_backward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "dy", "x", "gamma", "batch_mean", "inv_std", "out", "beta",
                             "act", NULL};
    const char *who;
    PyObject *dyo, *xo, *go, *mo, *iso, *out = Py_None, *bo = Py_None, *ao = Py_None;
    if (!qnn_parse_args(args, kw, "sOOOOO|OOO:batchnorm_backward", kwlist, &who, &dyo,
                        &xo, &go, &mo, &iso, &out, &bo, &ao))
        return NULL;
    size_t m, c;
    PyArrayObject *x = bn_x(who, "x", xo, &m, &c);
    if (!x) return NULL;
    PyArrayObject *dy = qnn_arg_f32(who, "dy", dyo);
    if (!dy || same_shape(who, "dy", dy, x, " (the shape of x)")) return NULL;
    const npy_intp C = (npy_intp)c;
    bn_vecs v;
    if (bn_backward_vecs(who, go, bo, mo, iso, C, &v)) return NULL;
    qnn_py_act pa;
    qnn_bn_act act;
    if (bn_act_arg(who, ao, PyArray_SIZE(x), &pa, &act)) return NULL;
    PyArrayObject *ins[6] = {x, dy, v.gamma, v.mean, v.inv_std, v.beta};
    PyArrayObject *dx = qnn_arg_out(who, "out", out, x, ins, 6);
    if (!dx) return NULL;
    PyArrayObject *dg = (PyArrayObject *)PyArray_SimpleNew(1, (npy_intp *)&C, NPY_FLOAT32);
    PyArrayObject *db = (PyArrayObject *)PyArray_SimpleNew(1, (npy_intp *)&C, NPY_FLOAT32);
    int rc;
    if (!dg || !db) return bn_grads_result(who, 0, dx, dg, db);
    Py_BEGIN_ALLOW_THREADS
    if (act.kind == QNN_BN_ACT_NONE)
        rc = qnn_bn_backward(m, c, PyArray_DATA(dy), PyArray_DATA(x), vec_data(v.gamma),
                             vec_data(v.mean), vec_data(v.inv_std), PyArray_DATA(dx),
                             PyArray_DATA(dg), PyArray_DATA(db));
    else
        rc = qnn_bn_backward_act(m, c, PyArray_DATA(dy), PyArray_DATA(x), vec_data(v.gamma),
                                 vec_data(v.beta), vec_data(v.mean), vec_data(v.inv_std), &act,
                                 PyArray_DATA(dx), PyArray_DATA(dg), PyArray_DATA(db));
    Py_END_ALLOW_THREADS
    return bn_grads_result(who, rc, dx, dg, db);
}

/* ------------------------------------------------------------------ batch norm + act + max pool */

/* x (n, h, w, c) and pool (ph, pw) for the fused kernels: windows tile x (strides = pool, no
 * padding), at most 256 cells (the winner is kept in a byte), at least one window. */
static PyArrayObject *bnpool_setup(const char *who, PyObject *xo, PyObject *po,
                                   qnn_bn_pool_shape *s) {
    PyArrayObject *x = f32_ndim(who, "x", xo, 4, "(batch, height, width, channels)");
    if (!x) return NULL;
    long long p[2];
    if (int_tuple(who, "pool", po, 2, 1, p)) return NULL;
    if (p[0] * p[1] > 256) {
        PyErr_Format(PyExc_ValueError, "%s: pool must have at most 256 cells, got %lld x %lld",
                     who, p[0], p[1]);
        return NULL;
    }
    *s = (qnn_bn_pool_shape){(size_t)PyArray_DIM(x, 0), (size_t)PyArray_DIM(x, 1),
                             (size_t)PyArray_DIM(x, 2), (size_t)PyArray_DIM(x, 3),
                             (size_t)p[0], (size_t)p[1], 0, 0};
    s->ho = s->h / s->ph;
    s->wo = s->w / s->pw;
    if (s->ho == 0 || s->wo == 0 || s->c == 0 || s->n == 0) {
        char sh[160];
        qnn_shape_str(x, sh, sizeof sh);
        PyErr_Format(PyExc_ValueError, "%s: x must hold at least one %lld x %lld window in a "
                     "non-empty batch with channels >= 1, got shape %s", who, p[0], p[1], sh);
        return NULL;
    }
    return x;
}

/* The act spec's scales must be per channel of the last axis (or one scalar): the backward
 * applies the quantizer to the pooled tensor, whose flat index keeps only the channel. */
static int bnpool_act(const char *who, PyObject *ao, PyArrayObject *x, qnn_py_act *pa,
                      qnn_bn_act *act) {
    if (bn_act_arg(who, ao, PyArray_SIZE(x), pa, act)) return -1;
    if (act->kind != QNN_BN_ACT_QUANT) return 0;
    const size_t c = (size_t)PyArray_DIM(x, 3);
    const size_t S[2] = {act->sc_f ? act->S_f : 1, act->sc_b ? act->S_b : 1};
    const size_t in[2] = {act->inner_f, act->inner_b};
    for (int i = 0; i < 2; i++) {
        if (S[i] != 1 && !(S[i] == c && in[i] == 1)) {
            PyErr_Format(PyExc_ValueError, "%s: act scales must be one value or one per channel "
                         "of the last axis (%zu) to fuse with pooling, got %zu with inner %zu",
                         who, c, S[i], in[i]);
            return -1;
        }
    }
    return 0;
}

static PyObject *py_batchnorm_act_maxpool_forward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "x", "gamma", "beta", "eps", "act", "pool", NULL};
    const char *who;
    PyObject *xo, *go, *bo, *ao, *po;
    double eps;
    if (!qnn_parse_args(args, kw, "sOOOdOO:batchnorm_act_maxpool_forward", kwlist,
                                     &who, &xo, &go, &bo, &eps, &ao, &po))
        return NULL;
    qnn_bn_pool_shape s;
    PyArrayObject *x = bnpool_setup(who, xo, po, &s);
    if (!x || check_eps(who, eps)) return NULL;
    int err = 0;
    const npy_intp C = (npy_intp)s.c;
    PyArrayObject *gamma = opt_channel_vec(who, "gamma", go, C, &err);
    PyArrayObject *beta = err ? NULL : opt_channel_vec(who, "beta", bo, C, &err);
    if (err) return NULL;
    qnn_py_act pa;
    qnn_bn_act act;
    if (bnpool_act(who, ao, x, &pa, &act)) return NULL;
    npy_intp yd[4] = {(npy_intp)s.n, (npy_intp)s.ho, (npy_intp)s.wo, C};
    PyArrayObject *y = (PyArrayObject *)PyArray_SimpleNew(4, yd, NPY_FLOAT32);
    PyArrayObject *idx = (PyArrayObject *)PyArray_SimpleNew(4, yd, NPY_UINT8);
    PyArrayObject *xsel = (PyArrayObject *)PyArray_SimpleNew(4, yd, NPY_FLOAT32);
    PyArrayObject *bm = (PyArrayObject *)PyArray_SimpleNew(1, (npy_intp *)&C, NPY_FLOAT32);
    PyArrayObject *bv = (PyArrayObject *)PyArray_SimpleNew(1, (npy_intp *)&C, NPY_FLOAT32);
    PyArrayObject *is = (PyArrayObject *)PyArray_SimpleNew(1, (npy_intp *)&C, NPY_FLOAT32);
    int rc;
    if (!y || !idx || !xsel || !bm || !bv || !is) goto error;
    const size_t m = s.n * s.h * s.w;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_bn_stats(m, s.c, PyArray_DATA(x), (float)eps, PyArray_DATA(bm), PyArray_DATA(bv),
                      PyArray_DATA(is));
    if (!rc)
        rc = qnn_bn_act_maxpool_forward(&s, PyArray_DATA(x), PyArray_DATA(bm), PyArray_DATA(is),
                                        gamma ? PyArray_DATA(gamma) : NULL,
                                        beta ? PyArray_DATA(beta) : NULL, &act, PyArray_DATA(y),
                                        PyArray_DATA(idx), PyArray_DATA(xsel));
    Py_END_ALLOW_THREADS
    if (rc) { raise_status(who, rc); goto error; }
    return Py_BuildValue("(NNNNNN)", y, bm, bv, is, idx, xsel);
error:
    Py_XDECREF(y);
    Py_XDECREF(idx);
    Py_XDECREF(xsel);
    Py_XDECREF(bm);
    Py_XDECREF(bv);
    Py_XDECREF(is);
    return NULL;
}

static PyObject *py_batchnorm_act_maxpool_backward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "dy", "x", "idx", "xsel", "gamma", "beta", "batch_mean",
                             "inv_std", "act", "pool", NULL};
    const char *who;
    PyObject *dyo, *xo, *io, *xso, *go, *bo, *mo, *iso, *ao, *po;
    if (!qnn_parse_args(args, kw, "sOOOOOOOOOO:batchnorm_act_maxpool_backward",
                                     kwlist, &who, &dyo, &xo, &io, &xso, &go, &bo, &mo, &iso, &ao,
                                     &po))
        return NULL;
    qnn_bn_pool_shape s;
    PyArrayObject *x = bnpool_setup(who, xo, po, &s);
    if (!x) return NULL;
    const npy_intp C = (npy_intp)s.c;
    npy_intp yd[4] = {(npy_intp)s.n, (npy_intp)s.ho, (npy_intp)s.wo, C};
    PyArrayObject *dy = qnn_arg_f32(who, "dy", dyo);
    if (!dy || qnn_check_shape(who, "dy", dy, 4, yd, " (the pooled output)")) return NULL;
    PyArrayObject *xsel = qnn_arg_f32(who, "xsel", xso);
    if (!xsel || qnn_check_shape(who, "xsel", xsel, 4, yd, " (the pooled output)")) return NULL;
    if (!PyArray_Check(io) || PyArray_TYPE((PyArrayObject *)io) != NPY_UINT8 ||
        !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)io)) {
        PyErr_Format(PyExc_TypeError, "%s: idx must be a C-contiguous uint8 array (the forward's "
                     "winning cells), got %s", who,
                     PyArray_Check(io) ? PyArray_DESCR((PyArrayObject *)io)->typeobj->tp_name
                                       : Py_TYPE(io)->tp_name);
        return NULL;
    }
    PyArrayObject *idx = (PyArrayObject *)io;
    if (qnn_check_shape(who, "idx", idx, 4, yd, " (the pooled output)")) return NULL;
    /* an out-of-window index would scatter outside the block */
    const uint8_t *ip = PyArray_DATA(idx);
    const size_t cells = s.ph * s.pw;
    const npy_intp nidx = PyArray_SIZE(idx);
    unsigned top = 0;
    for (npy_intp i = 0; i < nidx; i++) top = ip[i] > top ? ip[i] : top; /* vectorised scan */
    for (npy_intp i = 0; top >= cells && i < nidx; i++) {
        if (ip[i] >= cells) {
            PyErr_Format(PyExc_ValueError, "%s: idx values must be < %zu (cells in a window), got "
                         "idx.flat[%zd] = %u", who, cells, (Py_ssize_t)i, (unsigned)ip[i]);
            return NULL;
        }
    }
    bn_vecs v;
    if (bn_backward_vecs(who, go, bo, mo, iso, C, &v)) return NULL;
    qnn_py_act pa;
    qnn_bn_act act;
    if (bnpool_act(who, ao, x, &pa, &act)) return NULL;
    PyArrayObject *dx = (PyArrayObject *)PyArray_SimpleNew(4, PyArray_DIMS(x), NPY_FLOAT32);
    PyArrayObject *dg = (PyArrayObject *)PyArray_SimpleNew(1, (npy_intp *)&C, NPY_FLOAT32);
    PyArrayObject *db = (PyArrayObject *)PyArray_SimpleNew(1, (npy_intp *)&C, NPY_FLOAT32);
    int rc;
    if (!dx || !dg || !db) return bn_grads_result(who, 0, dx, dg, db);
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_bn_act_maxpool_backward(&s, PyArray_DATA(dy), PyArray_DATA(x), ip,
                                     PyArray_DATA(xsel), vec_data(v.gamma), vec_data(v.beta),
                                     vec_data(v.mean), vec_data(v.inv_std), &act,
                                     PyArray_DATA(dx), PyArray_DATA(dg), PyArray_DATA(db));
    Py_END_ALLOW_THREADS
    return bn_grads_result(who, rc, dx, dg, db);
}

/* ------------------------------------------------------------------ softmax cross-entropy */

static PyObject *py_softmax_cross_entropy(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "logits", "labels", NULL};
    const char *who;
    PyObject *zo, *lo;
    if (!qnn_parse_args(args, kw, "sOO:softmax_cross_entropy", kwlist, &who, &zo, &lo))
        return NULL;
    PyArrayObject *z = f32_ndim(who, "logits", zo, 2, "(batch, classes)");
    if (!z) return NULL;
    const npy_intp N = PyArray_DIM(z, 0), K = PyArray_DIM(z, 1);
    if (K < 1) {
        PyErr_Format(PyExc_ValueError, "%s: logits must have at least 1 class, got shape (%zd, 0)",
                     who, (Py_ssize_t)N);
        return NULL;
    }
    if (!PyArray_Check(lo)) {
        PyErr_Format(PyExc_TypeError, "%s: labels must be a numpy.ndarray, got %s", who,
                     Py_TYPE(lo)->tp_name);
        return NULL;
    }
    PyArrayObject *lab = (PyArrayObject *)lo;
    const int t = PyArray_TYPE(lab);
    const int is_int32 = PyArray_EquivTypenums(t, NPY_INT32);
    const int is_int64 = !is_int32 && PyArray_EquivTypenums(t, NPY_INT64);
    if (is_int32 || is_int64) {
        if (!PyArray_IS_C_CONTIGUOUS(lab) || !PyArray_ISALIGNED(lab)) {
            PyErr_Format(PyExc_ValueError, "%s: labels must be C-contiguous and aligned", who);
            return NULL;
        }
        if (qnn_check_shape(who, "labels", lab, 1, &N, " (one class index per logits row)"))
            return NULL;
        for (npy_intp i = 0; i < N; i++) {
            const long long v = is_int32 ? (long long)((const int32_t *)PyArray_DATA(lab))[i]
                                         : (long long)((const int64_t *)PyArray_DATA(lab))[i];
            if (v < 0 || v >= (long long)K) {
                PyErr_Format(PyExc_ValueError, "%s: labels must be in [0, %zd), got labels[%zd] = %lld",
                             who, (Py_ssize_t)K, (Py_ssize_t)i, v);
                return NULL;
            }
        }
    } else if (t == NPY_FLOAT32) {
        if (!qnn_arg_f32(who, "labels", lo)) return NULL;
        if (same_shape(who, "labels", lab, z, " (one-hot or probability targets like logits)"))
            return NULL;
    } else {
        PyErr_Format(PyExc_TypeError,
                     "%s: labels must be int32/int64 class indices of shape (N,) or float32 "
                     "targets of shape (N, K), got dtype %s", who,
                     PyArray_DESCR(lab)->typeobj->tp_name);
        return NULL;
    }
    PyArrayObject *loss = (PyArrayObject *)PyArray_SimpleNew(1, (npy_intp *)&N, NPY_FLOAT32);
    PyArrayObject *dz = (PyArrayObject *)PyArray_SimpleNew(2, PyArray_DIMS(z), NPY_FLOAT32);
    int rc;
    if (!loss || !dz) goto error;
    {
        const void *ld = PyArray_DATA(lab);
        Py_BEGIN_ALLOW_THREADS
        rc = qnn_softmax_xent((size_t)N, (size_t)K, PyArray_DATA(z),
                              is_int32 ? (const int32_t *)ld : NULL,
                              is_int64 ? (const int64_t *)ld : NULL,
                              (!is_int32 && !is_int64) ? (const float *)ld : NULL,
                              PyArray_DATA(loss), PyArray_DATA(dz));
        Py_END_ALLOW_THREADS
    }
    if (rc) { raise_status(who, rc); goto error; }
    return Py_BuildValue("(NN)", loss, dz);
error:
    Py_XDECREF(loss);
    Py_XDECREF(dz);
    return NULL;
}

/* ------------------------------------------------------------------ activations */

static int act_kind(const char *who, const char *kind) {
    static const struct { const char *name; int kind; } kinds[] = {
        {"linear", QNN_ACT_LINEAR}, {"relu", QNN_ACT_RELU}, {"leaky_relu", QNN_ACT_LEAKY_RELU},
        {"sigmoid", QNN_ACT_SIGMOID}, {"tanh", QNN_ACT_TANH}, {"softmax", QNN_ACT_SOFTMAX},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kind, kinds[i].name) == 0) return kinds[i].kind;
    PyErr_Format(PyExc_ValueError,
                 "%s: kind must be one of 'relu', 'leaky_relu', 'sigmoid', 'tanh', 'softmax', "
                 "'linear', got '%s'", who, kind);
    return -1;
}

/* The leaky slope is used as a float: NaN, inf or a double beyond FLT_MAX would turn every
 * negative input into NaN/inf without an error. */
static int act_alpha(const char *who, double alpha) {
    if (fabs(alpha) <= FLT_MAX) return 0;
    char a[64];
    snprintf(a, sizeof a, "%.9g", alpha);
    PyErr_Format(PyExc_ValueError, "%s: alpha must be a finite float32 value, got %s", who, a);
    return -1;
}

/* Row length for softmax (the last axis; 0-d input has none). */
static int act_rows(const char *who, int k, PyArrayObject *x, size_t *row) {
    *row = 1;
    if (k != QNN_ACT_SOFTMAX) return 0;
    if (PyArray_NDIM(x) < 1) {
        PyErr_Format(PyExc_ValueError, "%s: softmax needs x with at least 1 dim, got a 0-d array", who);
        return -1;
    }
    *row = (size_t)PyArray_DIM(x, PyArray_NDIM(x) - 1);
    return 0;
}

static PyObject *py_activation_forward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "kind", "x", "alpha", "out", NULL};
    const char *who, *kind;
    PyObject *xo, *out = Py_None;
    double alpha = 0.0;
    if (!qnn_parse_args(args, kw, "ssO|dO:activation_forward", kwlist, &who, &kind,
                        &xo, &alpha, &out))
        return NULL;
    const int k = act_kind(who, kind);
    if (k < 0 || act_alpha(who, alpha)) return NULL;
    PyArrayObject *x = qnn_arg_f32(who, "x", xo);
    size_t row;
    if (!x || act_rows(who, k, x, &row)) return NULL;
    PyArrayObject *ins[1] = {x};
    PyArrayObject *y = qnn_arg_out(who, "out", out, x, ins, 1);
    if (!y) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_activation_forward(k, (size_t)PyArray_SIZE(x), row, (float)alpha, PyArray_DATA(x),
                                PyArray_DATA(y));
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(y); return raise_status(who, rc); }
    return (PyObject *)y;
}

static PyObject *py_activation_backward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "kind", "x", "y", "dy", "alpha", "out", NULL};
    const char *who, *kind;
    PyObject *xo, *yo, *dyo, *out = Py_None;
    double alpha = 0.0;
    if (!qnn_parse_args(args, kw, "ssOOO|dO:activation_backward", kwlist, &who,
                        &kind, &xo, &yo, &dyo, &alpha, &out))
        return NULL;
    const int k = act_kind(who, kind);
    if (k < 0 || act_alpha(who, alpha)) return NULL;
    PyArrayObject *dy = qnn_arg_f32(who, "dy", dyo);
    size_t row;
    if (!dy || act_rows(who, k, dy, &row)) return NULL;
    const int need_x = k == QNN_ACT_RELU || k == QNN_ACT_LEAKY_RELU;
    const int need_y = k == QNN_ACT_SIGMOID || k == QNN_ACT_TANH || k == QNN_ACT_SOFTMAX;
    PyArrayObject *x = NULL, *y = NULL;
    if (xo != Py_None || need_x) {
        if (xo == Py_None) {
            PyErr_Format(PyExc_TypeError, "%s: %s backward needs x (the forward input), got None", who, kind);
            return NULL;
        }
        if (!(x = qnn_arg_f32(who, "x", xo)) || same_shape(who, "x", x, dy, " (the shape of dy)"))
            return NULL;
    }
    if (yo != Py_None || need_y) {
        if (yo == Py_None) {
            PyErr_Format(PyExc_TypeError, "%s: %s backward needs y (the forward output), got None", who, kind);
            return NULL;
        }
        if (!(y = qnn_arg_f32(who, "y", yo)) || same_shape(who, "y", y, dy, " (the shape of dy)"))
            return NULL;
    }
    PyArrayObject *ins[3] = {dy, x, y};
    PyArrayObject *dx = qnn_arg_out(who, "out", out, dy, ins, 3);
    if (!dx) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_activation_backward(k, (size_t)PyArray_SIZE(dy), row, (float)alpha,
                                 x ? PyArray_DATA(x) : NULL, y ? PyArray_DATA(y) : NULL,
                                 PyArray_DATA(dy), PyArray_DATA(dx));
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(dx); return raise_status(who, rc); }
    return (PyObject *)dx;
}

/* ------------------------------------------------------------------ method table */

#define KW (METH_VARARGS | METH_KEYWORDS)
#define FN(f) ((PyCFunction)(void (*)(void))(f))

PyMethodDef qnn_nn_methods[] = {
    {"pool2d_forward", FN(py_pool2d_forward), KW,
     "pool2d_forward(who, kind, x, pool, strides, padding, out=None) -> y\n\n"
     "kind 'max'|'avg'; x (N, H, W, C) float32; padding (top, bottom, left, right), each < pool."},
    {"pool2d_backward", FN(py_pool2d_backward), KW,
     "pool2d_backward(who, kind, x, dy, pool, strides, padding, out=None) -> dx\n\n"
     "max: dy goes to the first maximum of each window (row-major scan), recomputed from x."},
    {"global_pool2d_forward", FN(py_global_pool2d_forward), KW,
     "global_pool2d_forward(who, kind, x, out=None) -> y (N, C)"},
    {"global_pool2d_backward", FN(py_global_pool2d_backward), KW,
     "global_pool2d_backward(who, kind, x, dy, out=None) -> dx"},
    {"batchnorm_forward", FN(py_batchnorm_forward), KW,
     "batchnorm_forward(who, x, gamma, beta, eps, training, mean=None, var=None, out=None, "
     "act=None)\n\n"
     "Statistics over all axes but the last. training=True -> (y, batch_mean, batch_var "
     "(biased), inv_std); training=False -> y from mean/var. gamma/beta may be None. act "
     "(training only): 'relu' or a quantizer spec tuple fused after the affine step."},
    {"batchnorm_backward", FN(py_batchnorm_backward), KW,
     "batchnorm_backward(who, dy, x, gamma, batch_mean, inv_std, out=None, beta=None, act=None)"
     " -> (dx, dgamma, dbeta); with act, dy is the gradient of act(bn(x))."},
    {"batchnorm_act_maxpool_forward", FN(py_batchnorm_act_maxpool_forward), KW,
     "batchnorm_act_maxpool_forward(who, x, gamma, beta, eps, act, pool) -> "
     "(y, batch_mean, batch_var, inv_std, idx, xsel)\n\n"
     "Training forward of maxpool(act(bn(x))) for pools that tile x (strides = pool, no "
     "padding). act: None, 'relu' or a quantizer spec. idx (uint8) is each window's winning "
     "cell (first maximum, row-major) and xsel its x: the backward's inputs."},
    {"batchnorm_act_maxpool_backward", FN(py_batchnorm_act_maxpool_backward), KW,
     "batchnorm_act_maxpool_backward(who, dy, x, idx, xsel, gamma, beta, batch_mean, inv_std, "
     "act, pool) -> (dx, dgamma, dbeta); dy is the gradient of the pooled output."},
    {"softmax_cross_entropy", FN(py_softmax_cross_entropy), KW,
     "softmax_cross_entropy(who, logits, labels) -> (loss (N,), dlogits (N, K))\n\n"
     "labels: int32/int64 (N,) class indices or float32 (N, K) targets; dlogits = softmax - "
     "target per sample (not divided by N)."},
    {"activation_forward", FN(py_activation_forward), KW,
     "activation_forward(who, kind, x, alpha=0.0, out=None) -> y\n\n"
     "kind: relu, leaky_relu (both x < 0 -> alpha * x), sigmoid, tanh, softmax (last axis), linear."},
    {"activation_backward", FN(py_activation_backward), KW,
     "activation_backward(who, kind, x, y, dy, alpha=0.0, out=None) -> dx\n\n"
     "relu/leaky_relu read x, sigmoid/tanh/softmax read y (the forward output); the unused one "
     "may be None."},
    {NULL, NULL, 0, NULL},
};
