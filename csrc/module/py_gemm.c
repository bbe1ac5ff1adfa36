/* Binding of the dense (GEMM) and convolution kernels: _core.gemm, conv2d_forward,
 * conv2d_backward_input, conv2d_backward_filter, bias_add, bias_grad. Validates every argument
 * (messages name `who`, the argument, expected vs actual), releases the GIL and calls
 * kernels/gemm and kernels/conv. */
#include "module/args.h"

#include <float.h>
#include <limits.h>
#include <math.h>

#include "kernels/conv/conv.h"
#include "kernels/gemm/gemm.h"
#include "module/py_quant.h"
#include "module/py_workspace.h"

/* Strides, padding and dilation are small in any real network; bounding them keeps every
 * index computation in the kernels far from overflow. */
#define QNN_GEOM_MAX ((long long)1 << 24)

/* a*b*... in npy_intp, or -1 when the product of non-negative factors overflows the byte
 * range of an array of floats. */
static npy_intp checked_prod(const npy_intp *v, int n) {
    npy_intp p = 1;
    const npy_intp lim = NPY_MAX_INTP / (npy_intp)sizeof(double);
    for (int i = 0; i < n; i++) {
        if (v[i] < 0) return -1;
        if (v[i] != 0 && p > lim / v[i]) return -1;
        p *= v[i];
    }
    return p;
}

static void dims_str(const npy_intp *d, int n, char *buf, size_t len) {
    size_t pos = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < n && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, i ? ", %zd" : "%zd", (Py_ssize_t)d[i]);
    if (pos < len) snprintf(buf + pos, len - pos, n == 1 ? ",)" : ")");
}

/* A new output of shape dims, or the caller's `out` checked against it (float32, C-contiguous,
 * writeable, no overlap with the inputs), through qnn_arg_out with a shape-only template. */
static PyArrayObject *make_out(const char *who, PyObject *out, int nd, npy_intp *dims,
                               PyArrayObject *const *inputs, int n_inputs) {
    if (checked_prod(dims, nd) < 0) {
        char s[160];
        dims_str(dims, nd, s, sizeof s);
        PyErr_Format(PyExc_ValueError, "%s: output shape %s is too large", who, s);
        return NULL;
    }
    float dummy = 0.0f; /* the template's data is never read */
    PyArrayObject *like = (PyArrayObject *)PyArray_SimpleNewFromData(nd, dims, NPY_FLOAT32, &dummy);
    if (!like) return NULL;
    PyArrayObject *o = qnn_arg_out(who, "out", out, like, inputs, n_inputs);
    Py_DECREF(like);
    return o;
}

static int check_ndim(const char *who, const char *arg, PyArrayObject *a, int nd, const char *what) {
    if (PyArray_NDIM(a) == nd) return 0;
    char s[160];
    qnn_shape_str(a, s, sizeof s);
    PyErr_Format(PyExc_ValueError, "%s: %s must have %d dims %s, got shape %s", who, arg, nd, what, s);
    return -1;
}

/* A sequence of exactly n Python ints. */
static int parse_ints(const char *who, const char *arg, PyObject *obj, int n, long long *v) {
    PyObject *seq = PySequence_Check(obj) && !PyUnicode_Check(obj) ? PySequence_Fast(obj, "") : NULL;
    if (!seq) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: %s must be a sequence of %d ints, got %s", who, arg, n,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(seq) != n) {
        PyErr_Format(PyExc_ValueError, "%s: %s must have %d values, got %zd", who, arg, n,
                     PySequence_Fast_GET_SIZE(seq));
        Py_DECREF(seq);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyLong_Check(it) && !PyIndex_Check(it)) {
            PyErr_Format(PyExc_TypeError, "%s: %s[%d] must be an int, got %s", who, arg, i,
                         Py_TYPE(it)->tp_name);
            Py_DECREF(seq);
            return -1;
        }
        PyObject *li = PyNumber_Index(it);
        if (!li) { Py_DECREF(seq); return -1; }
        int ovf = 0;
        v[i] = PyLong_AsLongLongAndOverflow(li, &ovf);
        Py_DECREF(li);
        if (ovf || (v[i] == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s: %s[%d] is out of range", who, arg, i);
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static int parse_shape4(const char *who, const char *arg, PyObject *obj, npy_intp *d) {
    long long v[4];
    if (parse_ints(who, arg, obj, 4, v)) return -1;
    for (int i = 0; i < 4; i++) {
        if (v[i] < 0 || v[i] > NPY_MAX_INTP) {
            PyErr_Format(PyExc_ValueError, "%s: %s must have non-negative dims, got (%lld, %lld, %lld, %lld)",
                         who, arg, v[0], v[1], v[2], v[3]);
            return -1;
        }
        d[i] = (npy_intp)v[i];
    }
    if (checked_prod(d, 4) < 0) {
        PyErr_Format(PyExc_ValueError, "%s: %s (%lld, %lld, %lld, %lld) is too large", who, arg,
                     v[0], v[1], v[2], v[3]);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ bias + activation epilogue */

/* The epilogue arguments of the entry points that fuse them into the GEMM: bias (None or
 * float32 of shape (n,)), act (None, 'linear', 'relu' or a quantizer spec tuple, applied to an
 * output of `total` elements) and ste_mask (keep the quantizer's STE as bit codes; needs a spec
 * whose STE allows it). */
typedef struct epi_args {
    qnn_bias_act ba;
    qnn_py_act pa;
    qnn_ste_code ste;
    int use;  /* anything to fuse */
    int mask; /* STE codes wanted */
} epi_args;

static int bias_act_arg(const char *who, PyObject *bo, PyObject *ao, PyObject *so,
                        PyObject *sho, int want_mask, npy_intp n, npy_intp total, epi_args *e) {
    memset(e, 0, sizeof *e);
    if (bo != Py_None) {
        PyArrayObject *b = qnn_arg_f32(who, "bias", bo);
        if (!b || qnn_check_shape(who, "bias", b, 1, &n, " (one per output channel)")) return -1;
        e->ba.bias = PyArray_DATA(b);
        e->use = 1;
    }
    if ((so == Py_None) != (sho == Py_None)) {
        PyErr_Format(PyExc_ValueError, "%s: scale and shift go together (the affine map "
                     "c * scale + shift), got only %s", who, so == Py_None ? "shift" : "scale");
        return -1;
    }
    if (so != Py_None) {
        PyArrayObject *sc = qnn_arg_f32(who, "scale", so);
        if (!sc || qnn_check_shape(who, "scale", sc, 1, &n, " (one per output channel)")) return -1;
        PyArrayObject *sh = qnn_arg_f32(who, "shift", sho);
        if (!sh || qnn_check_shape(who, "shift", sh, 1, &n, " (one per output channel)")) return -1;
        e->ba.scale = PyArray_DATA(sc);
        e->ba.shift = PyArray_DATA(sh);
        e->use = 1;
    }
    if (PyTuple_Check(ao)) {
        if (qnn_py_act_spec(who, ao, total, &e->pa)) return -1;
        e->ba.q = &e->pa.pf;
        e->ba.sc = e->pa.sc_f ? PyArray_DATA(e->pa.sc_f) : NULL;
        e->ba.sc2 = e->pa.sc2_f ? PyArray_DATA(e->pa.sc2_f) : NULL;
        e->ba.S = (size_t)e->pa.S_f;
        e->ba.inner = (size_t)e->pa.inner_f;
        e->use = 1;
        if (want_mask) {
            if (qnn_py_ste_code(who, &e->pa.pb, &e->ste)) return -1;
            e->ba.ste = &e->ste;
            e->mask = 1;
        }
    } else if (ao != Py_None) {
        if (!PyUnicode_Check(ao)) {
            PyErr_Format(PyExc_TypeError, "%s: act must be None, 'linear', 'relu' or a quantizer "
                         "spec tuple, got %s", who, Py_TYPE(ao)->tp_name);
            return -1;
        }
        if (PyUnicode_CompareWithASCIIString(ao, "relu") == 0) {
            e->ba.relu = 1;
            e->use = 1;
        } else if (PyUnicode_CompareWithASCIIString(ao, "linear") != 0) {
            PyErr_Format(PyExc_ValueError, "%s: act must be None, 'linear', 'relu' or a "
                         "quantizer spec tuple, got '%U'", who, ao);
            return -1;
        }
    }
    if (want_mask && !e->mask) {
        PyErr_Format(PyExc_ValueError, "%s: ste_mask=True needs act to be a quantizer spec", who);
        return -1;
    }
    return 0;
}

/* The (groups, rows, row_bytes) uint8 mask for an output of rows x (groups * ng), bound into the
 * epilogue; NULL with an exception set on failure. */
static PyArrayObject *new_mask(epi_args *e, npy_intp groups, npy_intp rows, npy_intp ng) {
    const size_t rb = qnn_ste_row_bytes(&e->ste, (size_t)ng);
    npy_intp d[3] = {groups, rows, (npy_intp)rb};
    PyArrayObject *m = (PyArrayObject *)PyArray_SimpleNew(3, d, NPY_UINT8);
    if (!m) return NULL;
    e->ba.mask = PyArray_DATA(m);
    e->ba.mask_rb = rb;
    e->ba.mask_plane = e->ste.planes == 2 ? rb / 2 : 0;
    return m;
}

/* y, or (y, mask) when the STE mask was asked for; steals both references. */
static PyObject *with_mask(PyObject *y, PyArrayObject *mask) {
    if (!mask) return y;
    if (!y) { Py_DECREF(mask); return NULL; }
    return Py_BuildValue("(NN)", y, (PyObject *)mask);
}

/* ------------------------------------------------------------------ gemm */

static PyObject *py_gemm(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "a", "b", "out", "trans_a", "trans_b", "alpha", "beta",
                             "bias", "act", "workspace", "ste_mask", "scale", "shift", NULL};
    const char *who;
    PyObject *ao, *bo, *out = Py_None, *biaso = Py_None, *acto = Py_None, *wso = Py_None;
    PyObject *sco = Py_None, *sho = Py_None;
    int ta = 0, tb = 0, want_mask = 0;
    double alpha = 1.0, beta = 0.0;
    if (!qnn_parse_args(args, kw, "sOO|OppddOOOpOO:gemm", kwlist, &who, &ao, &bo, &out,
                        &ta, &tb, &alpha, &beta, &biaso, &acto, &wso, &want_mask, &sco, &sho))
        return NULL;
    PyArrayObject *a = qnn_arg_f32(who, "a", ao);
    if (!a) return NULL;
    PyArrayObject *b = qnn_arg_f32(who, "b", bo);
    if (!b) return NULL;
    if (check_ndim(who, "a", a, 2, "(a matrix)") || check_ndim(who, "b", b, 2, "(a matrix)"))
        return NULL;
    const npy_intp M = PyArray_DIM(a, ta ? 1 : 0), K = PyArray_DIM(a, ta ? 0 : 1);
    const npy_intp K2 = PyArray_DIM(b, tb ? 1 : 0), N = PyArray_DIM(b, tb ? 0 : 1);
    if (K != K2) {
        char s1[128], s2[128];
        qnn_shape_str(a, s1, sizeof s1);
        qnn_shape_str(b, s2, sizeof s2);
        PyErr_Format(PyExc_ValueError,
                     "%s: inner dims differ: op(a) is (%zd, %zd) (a %s, trans_a=%s) but op(b) is "
                     "(%zd, %zd) (b %s, trans_b=%s)",
                     who, (Py_ssize_t)M, (Py_ssize_t)K, s1, ta ? "True" : "False", (Py_ssize_t)K2,
                     (Py_ssize_t)N, s2, tb ? "True" : "False");
        return NULL;
    }
    /* PyErr_Format has no %g: the numbers are formatted first */
    char ab[2][32];
    snprintf(ab[0], sizeof ab[0], "%.9g", alpha);
    snprintf(ab[1], sizeof ab[1], "%.9g", beta);
    /* the kernel takes floats: a finite double beyond FLT_MAX would become inf */
    if (!(fabs(alpha) <= FLT_MAX) || !(fabs(beta) <= FLT_MAX)) {
        PyErr_Format(PyExc_ValueError, "%s: alpha and beta must be finite float32 values, got %s and %s", who,
                     ab[0], ab[1]);
        return NULL;
    }
    if (beta != 0.0 && out == Py_None) {
        PyErr_Format(PyExc_ValueError, "%s: beta=%s needs out= (the C that beta scales)", who, ab[1]);
        return NULL;
    }
    npy_intp dims[2] = {M, N};
    const npy_intp total = checked_prod(dims, 2); /* < 0: make_out reports the size */
    epi_args e;
    if (bias_act_arg(who, biaso, acto, sco, sho, want_mask, N, total < 0 ? 0 : total, &e))
        return NULL;
    const qnn_gemm_epilogue ep = {qnn_bias_act_apply, &e.ba};
    PyArrayObject *ins[5] = {a, b, biaso == Py_None ? NULL : (PyArrayObject *)biaso,
                             sco == Py_None ? NULL : (PyArrayObject *)sco,
                             sho == Py_None ? NULL : (PyArrayObject *)sho};
    qnn_ws_lease lease;
    if (qnn_ws_lease_take(who, wso, &lease)) return NULL;
    PyArrayObject *c = make_out(who, out, 2, dims, ins, 5);
    if (!c) { qnn_ws_lease_return(&lease); return NULL; }
    PyArrayObject *mask = e.mask ? new_mask(&e, 1, M, N) : NULL;
    if (e.mask && !mask) { Py_DECREF(c); qnn_ws_lease_return(&lease); return NULL; }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_sgemm(ta, tb, (size_t)M, (size_t)N, (size_t)K, (float)alpha, PyArray_DATA(a),
                   (size_t)PyArray_DIM(a, 1), PyArray_DATA(b), (size_t)PyArray_DIM(b, 1),
                   (float)beta, PyArray_DATA(c), (size_t)N, e.use ? &ep : NULL, lease.ws);
    Py_END_ALLOW_THREADS
    qnn_ws_lease_return(&lease);
    if (rc) { Py_DECREF(c); Py_XDECREF(mask); qnn_raise_status(who, rc); return NULL; }
    return with_mask((PyObject *)c, mask);
}

/* ------------------------------------------------------------------ conv geometry */

/* Validates the geometry and fills s. xd/wd: the shapes of x and w (named xname/wname in
 * messages: the arrays, or x_shape/w_shape for the backward passes). */
static int conv_setup(const char *who, const char *xname, const npy_intp *xd, const char *wname,
                      const npy_intp *wd, PyObject *so, PyObject *po, PyObject *dio,
                      PyObject *go, qnn_conv2d_shape *s) {
    long long st[2], pd[4], dl[2];
    if (parse_ints(who, "strides", so, 2, st) || parse_ints(who, "padding", po, 4, pd) ||
        parse_ints(who, "dilation", dio, 2, dl))
        return -1;
    if (!PyLong_Check(go)) {
        PyErr_Format(PyExc_TypeError, "%s: groups must be an int, got %s", who, Py_TYPE(go)->tp_name);
        return -1;
    }
    int ovf = 0;
    const long long groups = PyLong_AsLongLongAndOverflow(go, &ovf);
    if (groups == -1 && PyErr_Occurred()) return -1;
    for (int i = 0; i < 2; i++) {
        if (st[i] < 1 || st[i] > QNN_GEOM_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: strides must be in [1, %lld], got (%lld, %lld)", who,
                         QNN_GEOM_MAX, st[0], st[1]);
            return -1;
        }
        if (dl[i] < 1 || dl[i] > QNN_GEOM_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: dilation must be in [1, %lld], got (%lld, %lld)", who,
                         QNN_GEOM_MAX, dl[0], dl[1]);
            return -1;
        }
    }
    for (int i = 0; i < 4; i++)
        if (pd[i] < 0 || pd[i] > QNN_GEOM_MAX) {
            PyErr_Format(PyExc_ValueError,
                         "%s: padding (top, bottom, left, right) must be in [0, %lld], got (%lld, %lld, %lld, %lld)",
                         who, QNN_GEOM_MAX, pd[0], pd[1], pd[2], pd[3]);
            return -1;
        }
    char xs[160], ws[160];
    dims_str(xd, 4, xs, sizeof xs);
    dims_str(wd, 4, ws, sizeof ws);
    if (xd[1] < 1 || xd[2] < 1 || xd[3] < 1) {
        PyErr_Format(PyExc_ValueError, "%s: %s must have height, width and channels >= 1, got %s",
                     who, xname, xs);
        return -1;
    }
    if (wd[0] < 1 || wd[1] < 1 || wd[2] < 1 || wd[3] < 1) {
        PyErr_Format(PyExc_ValueError,
                     "%s: %s must have all dims >= 1 (kernel_h, kernel_w, in_channels/groups, "
                     "out_channels), got %s", who, wname, ws);
        return -1;
    }
    if (ovf || groups < 1 || groups > xd[3]) {
        PyErr_Format(PyExc_ValueError, "%s: groups must be in [1, %zd] (the input channels), got %lld",
                     who, (Py_ssize_t)xd[3], ovf ? (long long)LLONG_MAX : groups);
        return -1;
    }
    if (xd[3] % groups) {
        PyErr_Format(PyExc_ValueError, "%s: %s has %zd channels, not divisible by groups=%lld", who,
                     xname, (Py_ssize_t)xd[3], groups);
        return -1;
    }
    if (wd[2] != xd[3] / groups) {
        PyErr_Format(PyExc_ValueError,
                     "%s: %s must have shape (%zd, %zd, %zd, *) for %s with %zd channels and groups=%lld, got %s",
                     who, wname, (Py_ssize_t)wd[0], (Py_ssize_t)wd[1], (Py_ssize_t)(xd[3] / groups),
                     xname, (Py_ssize_t)xd[3], groups, ws);
        return -1;
    }
    if (wd[3] % groups) {
        PyErr_Format(PyExc_ValueError, "%s: %s has %zd output channels, not divisible by groups=%lld",
                     who, wname, (Py_ssize_t)wd[3], groups);
        return -1;
    }
    *s = (qnn_conv2d_shape){(size_t)xd[0], (size_t)xd[1], (size_t)xd[2], (size_t)xd[3],
                            (size_t)wd[0], (size_t)wd[1], (size_t)wd[3],
                            (size_t)st[0], (size_t)st[1],
                            (size_t)pd[0], (size_t)pd[1], (size_t)pd[2], (size_t)pd[3],
                            (size_t)dl[0], (size_t)dl[1], (size_t)groups, 0, 0,
                            QNN_CONV_AUTO};
    const char *axis[2] = {"height", "width"};
    const size_t in[2] = {s->H, s->W}, k[2] = {s->KH, s->KW}, d[2] = {s->dh, s->dw};
    const size_t p0[2] = {s->pt, s->pl}, p1[2] = {s->pb, s->pr}, sd[2] = {s->sh, s->sw};
    size_t o[2];
    for (int i = 0; i < 2; i++) {
        /* k <= 2^62 (an array dim) and d <= 2^24: d*(k-1) overflows only beyond any real input. */
        if (k[i] - 1 > ((size_t)1 << 62) / d[i] ||
            qnn_conv2d_out_size(in[i], k[i], sd[i], p0[i], p1[i], d[i], &o[i])) {
            PyErr_Format(PyExc_ValueError,
                         "%s: output %s would be < 1: input %zu + padding %zu + %zu is smaller than "
                         "the dilated kernel extent (kernel %zu, dilation %zu)",
                         who, axis[i], in[i], p0[i], p1[i], k[i], d[i]);
            return -1;
        }
    }
    s->HO = o[0];
    s->WO = o[1];
    /* The im2col column buffer of one image and the output must stay addressable. */
    const npy_intp ydims[4] = {(npy_intp)s->N, (npy_intp)s->HO, (npy_intp)s->WO, (npy_intp)s->CO};
    const npy_intp col[4] = {(npy_intp)s->HO, (npy_intp)s->WO, (npy_intp)(s->KH * s->KW),
                             (npy_intp)s->C};
    if (checked_prod(ydims, 4) < 0 || checked_prod(col, 4) < 0 ||
        checked_prod(wd, 4) < 0) {
        PyErr_Format(PyExc_ValueError, "%s: convolution of %s %s with %s %s is too large", who,
                     xname, xs, wname, ws);
        return -1;
    }
    return 0;
}

static void y_dims(const qnn_conv2d_shape *s, npy_intp *d) {
    d[0] = (npy_intp)s->N; d[1] = (npy_intp)s->HO; d[2] = (npy_intp)s->WO; d[3] = (npy_intp)s->CO;
}

static int get_4d(const char *who, const char *arg, PyObject *obj, const char *what,
                  PyArrayObject **a, npy_intp *d) {
    *a = qnn_arg_f32(who, arg, obj);
    if (!*a || check_ndim(who, arg, *a, 4, what)) return -1;
    for (int i = 0; i < 4; i++) d[i] = PyArray_DIM(*a, i);
    return 0;
}

#define X_WHAT "(batch, height, width, channels)"
#define W_WHAT "(kernel_h, kernel_w, in_channels/groups, out_channels)"

static int check_dy(const char *who, PyArrayObject *dy, const qnn_conv2d_shape *s) {
    npy_intp want[4];
    y_dims(s, want);
    for (int i = 0; i < 4; i++)
        if (PyArray_DIM(dy, i) != want[i]) {
            char s1[160], s2[160];
            dims_str(want, 4, s1, sizeof s1);
            qnn_shape_str(dy, s2, sizeof s2);
            PyErr_Format(PyExc_ValueError, "%s: dy must have the forward output shape %s, got %s",
                         who, s1, s2);
            return -1;
        }
    return 0;
}

static PyObject *finish(const char *who, int rc, PyArrayObject *o) {
    if (rc) { Py_DECREF(o); qnn_raise_status(who, rc); return NULL; }
    return (PyObject *)o;
}

/* ------------------------------------------------------------------ conv entry points */

/* algo= of the forward and the input gradient (enum qnn_conv_algo). */
static int parse_algo(const char *who, const char *name, qnn_conv2d_shape *s) {
    static const char *const names[] = {"auto", "direct", "winograd"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) { s->algo = i; return 0; }
    PyErr_Format(PyExc_ValueError, "%s: algo must be 'auto', 'direct' or 'winograd', got '%s'",
                 who, name);
    return -1;
}

static PyObject *py_conv2d_forward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "x", "w", "strides", "padding", "dilation", "groups", "out",
                             "bias", "act", "workspace", "ste_mask", "scale", "shift", "algo",
                             NULL};
    const char *who, *algo = "auto";
    PyObject *xo, *wo, *so, *po, *dio, *go, *out = Py_None, *biaso = Py_None, *acto = Py_None;
    PyObject *wso = Py_None, *sco = Py_None, *sho = Py_None;
    int want_mask = 0;
    if (!qnn_parse_args(args, kw, "sOOOOOO|OOOOpOOs:conv2d_forward", kwlist, &who, &xo, &wo,
                        &so, &po, &dio, &go, &out, &biaso, &acto, &wso, &want_mask, &sco, &sho,
                        &algo))
        return NULL;
    PyArrayObject *x, *w;
    npy_intp xd[4], wd[4], yd[4];
    qnn_conv2d_shape s;
    if (get_4d(who, "x", xo, X_WHAT, &x, xd) || get_4d(who, "w", wo, W_WHAT, &w, wd) ||
        conv_setup(who, "x", xd, "w", wd, so, po, dio, go, &s) || parse_algo(who, algo, &s))
        return NULL;
    y_dims(&s, yd);
    const npy_intp total = checked_prod(yd, 4); /* < 0: make_out reports the size */
    epi_args e;
    if (bias_act_arg(who, biaso, acto, sco, sho, want_mask, yd[3], total < 0 ? 0 : total, &e))
        return NULL;
    PyArrayObject *ins[5] = {x, w, biaso == Py_None ? NULL : (PyArrayObject *)biaso,
                             sco == Py_None ? NULL : (PyArrayObject *)sco,
                             sho == Py_None ? NULL : (PyArrayObject *)sho};
    qnn_ws_lease lease;
    if (qnn_ws_lease_take(who, wso, &lease)) return NULL;
    PyArrayObject *y = make_out(who, out, 4, yd, ins, 5);
    if (!y) { qnn_ws_lease_return(&lease); return NULL; }
    PyArrayObject *mask = NULL;
    if (e.mask) {
        const npy_intp G = (npy_intp)qnn_conv2d_epilogue_groups(&s);
        mask = new_mask(&e, G, yd[0] * yd[1] * yd[2], yd[3] / G);
        if (!mask) { Py_DECREF(y); qnn_ws_lease_return(&lease); return NULL; }
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_conv2d_forward(&s, PyArray_DATA(x), PyArray_DATA(w), e.use ? &e.ba : NULL,
                            PyArray_DATA(y), lease.ws);
    Py_END_ALLOW_THREADS
    qnn_ws_lease_return(&lease);
    if (rc) { Py_XDECREF(mask); mask = NULL; }
    return with_mask(finish(who, rc, y), mask);
}

static PyObject *py_conv2d_backward_input(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "dy", "w", "x_shape", "strides", "padding", "dilation",
                             "groups", "out", "workspace", "algo", NULL};
    const char *who, *algo = "auto";
    PyObject *dyo, *wo, *xso, *so, *po, *dio, *go, *out = Py_None, *wso = Py_None;
    if (!qnn_parse_args(args, kw, "sOOOOOOO|OOs:conv2d_backward_input", kwlist, &who,
                        &dyo, &wo, &xso, &so, &po, &dio, &go, &out, &wso, &algo))
        return NULL;
    PyArrayObject *dy, *w;
    npy_intp dyd[4], wd[4], xd[4];
    qnn_conv2d_shape s;
    if (get_4d(who, "dy", dyo, "(batch, out_height, out_width, out_channels)", &dy, dyd) ||
        get_4d(who, "w", wo, W_WHAT, &w, wd) || parse_shape4(who, "x_shape", xso, xd) ||
        conv_setup(who, "x_shape", xd, "w", wd, so, po, dio, go, &s) || check_dy(who, dy, &s) ||
        parse_algo(who, algo, &s))
        return NULL;
    PyArrayObject *ins[2] = {dy, w};
    qnn_ws_lease lease;
    if (qnn_ws_lease_take(who, wso, &lease)) return NULL;
    PyArrayObject *dx = make_out(who, out, 4, xd, ins, 2);
    if (!dx) { qnn_ws_lease_return(&lease); return NULL; }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_conv2d_backward_input(&s, PyArray_DATA(dy), PyArray_DATA(w), PyArray_DATA(dx),
                                   lease.ws);
    Py_END_ALLOW_THREADS
    qnn_ws_lease_return(&lease);
    return finish(who, rc, dx);
}

static PyObject *py_conv2d_backward_filter(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "x", "dy", "w_shape", "strides", "padding", "dilation",
                             "groups", "out", "workspace", NULL};
    const char *who;
    PyObject *xo, *dyo, *wso, *so, *po, *dio, *go, *out = Py_None, *wspo = Py_None;
    if (!qnn_parse_args(args, kw, "sOOOOOOO|OO:conv2d_backward_filter", kwlist, &who,
                        &xo, &dyo, &wso, &so, &po, &dio, &go, &out, &wspo))
        return NULL;
    PyArrayObject *x, *dy;
    npy_intp xd[4], dyd[4], wd[4];
    qnn_conv2d_shape s;
    if (get_4d(who, "x", xo, X_WHAT, &x, xd) ||
        get_4d(who, "dy", dyo, "(batch, out_height, out_width, out_channels)", &dy, dyd) ||
        parse_shape4(who, "w_shape", wso, wd) ||
        conv_setup(who, "x", xd, "w_shape", wd, so, po, dio, go, &s) || check_dy(who, dy, &s))
        return NULL;
    PyArrayObject *ins[2] = {x, dy};
    qnn_ws_lease lease;
    if (qnn_ws_lease_take(who, wspo, &lease)) return NULL;
    PyArrayObject *dw = make_out(who, out, 4, wd, ins, 2);
    if (!dw) { qnn_ws_lease_return(&lease); return NULL; }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_conv2d_backward_filter(&s, PyArray_DATA(x), PyArray_DATA(dy), PyArray_DATA(dw),
                                    lease.ws);
    Py_END_ALLOW_THREADS
    qnn_ws_lease_return(&lease);
    return finish(who, rc, dw);
}

/* ------------------------------------------------------------------ bias */

static PyObject *py_bias_add(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "y", "b", "out", NULL};
    const char *who;
    PyObject *yo, *bo, *out = Py_None;
    if (!qnn_parse_args(args, kw, "sOO|O:bias_add", kwlist, &who, &yo, &bo, &out))
        return NULL;
    PyArrayObject *y = qnn_arg_f32(who, "y", yo);
    if (!y) return NULL;
    PyArrayObject *b = qnn_arg_f32(who, "b", bo);
    if (!b) return NULL;
    if (PyArray_NDIM(y) < 1) {
        PyErr_Format(PyExc_ValueError, "%s: y must have at least 1 dim (..., channels), got a scalar", who);
        return NULL;
    }
    const npy_intp C = PyArray_DIM(y, PyArray_NDIM(y) - 1);
    if (PyArray_NDIM(b) != 1 || PyArray_DIM(b, 0) != C) {
        char s1[160], s2[160];
        qnn_shape_str(y, s1, sizeof s1);
        qnn_shape_str(b, s2, sizeof s2);
        PyErr_Format(PyExc_ValueError, "%s: b must have shape (%zd,) for y of shape %s, got %s", who,
                     (Py_ssize_t)C, s1, s2);
        return NULL;
    }
    /* out=y (in place) is allowed: each element is read once before it is written. */
    PyArrayObject *o;
    if (out == yo) {
        if (!PyArray_ISWRITEABLE(y)) {
            PyErr_Format(PyExc_ValueError, "%s: out must be writeable", who);
            return NULL;
        }
        if (qnn_arrays_overlap(y, b)) {
            PyErr_Format(PyExc_ValueError, "%s: out must not share memory with b", who);
            return NULL;
        }
        Py_INCREF(y);
        o = y;
    } else {
        PyArrayObject *ins[2] = {y, b};
        o = qnn_arg_out(who, "out", out, y, ins, 2);
        if (!o) return NULL;
    }
    const size_t n = (size_t)PyArray_SIZE(y), c = (size_t)C;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_bias_add(c ? n / c : 0, c, PyArray_DATA(y), PyArray_DATA(b), PyArray_DATA(o));
    Py_END_ALLOW_THREADS
    return finish(who, rc, o);
}

static PyObject *py_bias_grad(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "dy", NULL};
    const char *who;
    PyObject *dyo;
    if (!qnn_parse_args(args, kw, "sO:bias_grad", kwlist, &who, &dyo)) return NULL;
    PyArrayObject *dy = qnn_arg_f32(who, "dy", dyo);
    if (!dy) return NULL;
    if (PyArray_NDIM(dy) < 1) {
        PyErr_Format(PyExc_ValueError, "%s: dy must have at least 1 dim (..., channels), got a scalar", who);
        return NULL;
    }
    npy_intp C = PyArray_DIM(dy, PyArray_NDIM(dy) - 1);
    PyArrayObject *db = (PyArrayObject *)PyArray_SimpleNew(1, &C, NPY_FLOAT32);
    if (!db) return NULL;
    const size_t c = (size_t)C;
    /* from the size, not the product of the leading dims: with C == 0 that product may wrap */
    const size_t rows = c ? (size_t)PyArray_SIZE(dy) / c : 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_bias_grad(rows, c, PyArray_DATA(dy), PyArray_DATA(db));
    Py_END_ALLOW_THREADS
    return finish(who, rc, db);
}

#define KWFN(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS

PyMethodDef qnn_gemm_methods[] = {
    {"gemm", KWFN(py_gemm),
     "gemm(who, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None, "
     "act=None): act(alpha*op(a)@op(b) + beta*out + bias) (float32); bias (N,) and act "
     "(None, 'linear', 'relu') run in the GEMM epilogue, with the bits of separate kernels."},
    {"conv2d_forward", KWFN(py_conv2d_forward),
     "conv2d_forward(who, x, w, strides, padding, dilation, groups, out=None, bias=None, "
     "act=None): NHWC x HWIO; bias (Cout,) and act (None, 'linear', 'relu') fused into the "
     "GEMM epilogue."},
    {"conv2d_backward_input", KWFN(py_conv2d_backward_input),
     "conv2d_backward_input(who, dy, w, x_shape, strides, padding, dilation, groups, out=None) -> dx."},
    {"conv2d_backward_filter", KWFN(py_conv2d_backward_filter),
     "conv2d_backward_filter(who, x, dy, w_shape, strides, padding, dilation, groups, out=None) -> dw."},
    {"bias_add", KWFN(py_bias_add), "bias_add(who, y, b, out=None): y + b over the last axis."},
    {"bias_grad", KWFN(py_bias_grad), "bias_grad(who, dy): sum of dy over all but the last axis."},
    {NULL, NULL, 0, NULL},
};
