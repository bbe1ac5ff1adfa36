/* Binding of the integer inference kernels (kernels/bnn): bnn_bitpack, bnn_conv2d, bnn_maxpool
 * and bnn_workspace. Every array is checked for dtype, dims, shape, contiguity and size against
 * the geometry before the GIL is released; messages name `who` (the layer), the argument and
 * expected vs actual. */
#include "module/args.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "kernels/bnn/bnn.h"
#include "runtime/dispatch.h"

#define GEOM_MAX ((long long)1 << 20)

/* ------------------------------------------------------------------ helpers */

static const char *dtype_name(PyArrayObject *a) { return PyArray_DESCR(a)->typeobj->tp_name; }

/* `obj` must be a C-contiguous aligned ndarray of `type` with `nd` dims (nd < 0: any). */
static PyArrayObject *arg_typed(const char *who, const char *arg, PyObject *obj, int type,
                                const char *tname, int nd) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be a numpy.ndarray of %s, got %s", who, arg,
                     tname, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != type) {
        PyErr_Format(PyExc_TypeError, "%s: %s must have dtype %s, got %s", who, arg, tname,
                     dtype_name(a));
        return NULL;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a)) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be C-contiguous and aligned", who, arg);
        return NULL;
    }
    if (nd >= 0 && PyArray_NDIM(a) != nd) {
        char s[160];
        qnn_shape_str(a, s, sizeof s);
        PyErr_Format(PyExc_ValueError, "%s: %s must have %d dims, got shape %s", who, arg, nd, s);
        return NULL;
    }
    return a;
}


static int parse_ints(const char *who, const char *arg, PyObject *obj, int n, long long lo,
                      long long hi, long long *v) {
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
        int ovf = 0;
        v[i] = PyLong_Check(it) ? PyLong_AsLongLongAndOverflow(it, &ovf) : 0;
        if (!PyLong_Check(it) || ovf || v[i] < lo || v[i] > hi) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s: %s[%d] must be an int in [%lld, %lld]", who, arg, i,
                         lo, hi);
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

/* A new output array, or the caller's `out` checked (type, shape, writeable, no overlap). */
static PyArrayObject *make_out(const char *who, PyObject *out, int nd, npy_intp *dims, int type,
                               const char *tname, PyArrayObject *const *ins, int n_ins) {
    if (out == Py_None) return (PyArrayObject *)PyArray_SimpleNew(nd, dims, type);
    PyArrayObject *o = arg_typed(who, "out", out, type, tname, nd);
    if (!o || qnn_check_shape(who, "out", o, nd, dims, "")) return NULL;
    if (!PyArray_ISWRITEABLE(o)) {
        PyErr_Format(PyExc_ValueError, "%s: out must be writeable", who);
        return NULL;
    }
    for (int i = 0; i < n_ins; i++)
        if (ins[i] && qnn_arrays_overlap(o, ins[i])) {
            PyErr_Format(PyExc_ValueError, "%s: out must not overlap the inputs", who);
            return NULL;
        }
    Py_INCREF(o);
    return o;
}

/* ------------------------------------------------------------------ workspace */

typedef struct {
    qnn_bnn_ws ws;
    int busy; /* set while a kernel uses it with the GIL released */
} bnn_ws_box;

static void ws_destroy(PyObject *cap) {
    bnn_ws_box *b = PyCapsule_GetPointer(cap, "qnn_ext.bnn_workspace");
    if (b) { qnn_bnn_ws_release(&b->ws); PyMem_Free(b); }
}

static PyObject *py_bnn_workspace(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    bnn_ws_box *b = PyMem_Calloc(1, sizeof *b);
    if (!b) return PyErr_NoMemory();
    PyObject *cap = PyCapsule_New(b, "qnn_ext.bnn_workspace", ws_destroy);
    if (!cap) PyMem_Free(b);
    return cap;
}

/* ------------------------------------------------------------------ bitpack */

static PyObject *py_bnn_bitpack(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "x", "out", NULL};
    const char *who;
    PyObject *xo, *out = Py_None;
    if (!qnn_parse_args(args, kw, "sO|O:bnn_bitpack", kwlist, &who, &xo, &out))
        return NULL;
    PyArrayObject *x = qnn_arg_f32(who, "x", xo);
    if (!x) return NULL;
    const int nd = PyArray_NDIM(x);
    if (nd < 1 || nd > 8 || PyArray_DIM(x, nd - 1) < 1) {
        char s[160];
        qnn_shape_str(x, s, sizeof s);
        PyErr_Format(PyExc_ValueError, "%s: x must have 1 to 8 dims and >= 1 channel (last axis), got shape %s",
                     who, s);
        return NULL;
    }
    npy_intp dims[8];
    for (int i = 0; i < nd; i++) dims[i] = PyArray_DIM(x, i);
    const size_t C = (size_t)dims[nd - 1];
    dims[nd - 1] = (npy_intp)qnn_bnn_words(C);
    const size_t rows = C ? (size_t)(PyArray_SIZE(x) / (npy_intp)C) : 0;
    PyArrayObject *ins[1] = {x};
    PyArrayObject *o = make_out(who, out, nd, dims, NPY_UINT64, "uint64", ins, 1);
    if (!o) return NULL;
    const qnn_bitpack_fn f = qnn_dispatch_table.bitpack;
    Py_BEGIN_ALLOW_THREADS
    f(rows, C, PyArray_DATA(x), PyArray_DATA(o));
    Py_END_ALLOW_THREADS
    return (PyObject *)o;
}

/* ------------------------------------------------------------------ geometry */

/* Fills s from x's (N, H, W) and the kernel geometry; C and CO are set by the caller. */
static int geometry(const char *who, PyArrayObject *x, const char *kname, PyObject *ko,
                    PyObject *so, PyObject *po, qnn_conv2d_shape *s) {
    long long k[2], st[2], pd[4];
    if (parse_ints(who, kname, ko, 2, 1, GEOM_MAX, k) ||
        parse_ints(who, "strides", so, 2, 1, GEOM_MAX, st) ||
        parse_ints(who, "padding", po, 4, 0, GEOM_MAX, pd))
        return -1;
    memset(s, 0, sizeof *s);
    s->N = (size_t)PyArray_DIM(x, 0); s->H = (size_t)PyArray_DIM(x, 1); s->W = (size_t)PyArray_DIM(x, 2);
    s->KH = (size_t)k[0]; s->KW = (size_t)k[1]; s->sh = (size_t)st[0]; s->sw = (size_t)st[1];
    s->pt = (size_t)pd[0]; s->pb = (size_t)pd[1]; s->pl = (size_t)pd[2]; s->pr = (size_t)pd[3];
    s->dh = s->dw = 1; s->groups = 1;
    if (s->H < 1 || s->W < 1 || qnn_conv2d_out_size(s->H, s->KH, s->sh, s->pt, s->pb, 1, &s->HO) ||
        qnn_conv2d_out_size(s->W, s->KW, s->sw, s->pl, s->pr, 1, &s->WO)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: input %zux%zu with padding (%lld, %lld, %lld, %lld) is smaller than the "
                     "kernel %lldx%lld", who, s->H, s->W, pd[0], pd[1], pd[2], pd[3], k[0], k[1]);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ conv */

static PyObject *py_bnn_conv2d(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "kind", "x", "w", "cin", "out_channels", "kernel_size",
                             "strides", "padding", "ibias", "imul", "mode", "mul", "add", "thr",
                             "dir", "code_mul", "wsum", "zp", "ws", "out", NULL};
    const char *who, *kind, *mode;
    PyObject *xo, *wo, *ko, *so, *po, *ibo, *mulo = Py_None, *addo = Py_None, *thro = Py_None;
    PyObject *diro = Py_None, *wsumo = Py_None, *wso = Py_None, *out = Py_None;
    long long cin, CO;
    int imul, code_mul = 1, zp = 0;
    if (!qnn_parse_args(args, kw, "ssOOLLOOOOis|OOOOiOiOO:bnn_conv2d", kwlist, &who,
                        &kind, &xo, &wo, &cin, &CO, &ko, &so, &po, &ibo, &imul, &mode,
                        &mulo, &addo, &thro, &diro, &code_mul, &wsumo, &zp, &wso, &out))
        return NULL;
    /* 'tt': ternary weights on ternary activations (sign/nonzero word pairs) */
    const int tt = strcmp(kind, "tt") == 0;
    const int ternary = tt || strcmp(kind, "ternary") == 0;
    const int binary = ternary || strcmp(kind, "binary") == 0; /* all take packed words */
    if (!binary && strcmp(kind, "int8") != 0) {
        PyErr_Format(PyExc_ValueError, "%s: kind must be 'binary', 'ternary', 'tt' or 'int8', got '%s'", who, kind);
        return NULL;
    }
    int emode;
    if (strcmp(mode, "float") == 0) emode = QNN_EPI_FLOAT;
    else if (strcmp(mode, "codes") == 0) emode = QNN_EPI_CODES;
    else if (strcmp(mode, "bits") == 0) emode = QNN_EPI_BITS;
    else if (strcmp(mode, "tbits") == 0) emode = QNN_EPI_TBITS;
    else {
        PyErr_Format(PyExc_ValueError, "%s: mode must be 'float', 'codes', 'bits' or 'tbits', got '%s'", who, mode);
        return NULL;
    }
    if (cin < 1 || cin > ((long long)1 << 24) || CO < 1 || CO > ((long long)1 << 24)) {
        PyErr_Format(PyExc_ValueError, "%s: cin and out_channels must be in [1, 2^24], got %lld and %lld",
                     who, cin, CO);
        return NULL;
    }
    if (imul < -2 || imul > 2) {
        PyErr_Format(PyExc_ValueError, "%s: imul must be in [-2, 2], got %d", who, imul);
        return NULL;
    }
    PyArrayObject *x = arg_typed(who, "x", xo, binary ? NPY_UINT64 : NPY_UINT8,
                                 binary ? "uint64" : "uint8", 4);
    if (!x) return NULL;
    const size_t Cx = binary ? qnn_bnn_words((size_t)cin) * (tt ? 2 : 1) : (size_t)cin;
    if ((size_t)PyArray_DIM(x, 3) != Cx) {
        PyErr_Format(PyExc_ValueError, "%s: x must have %zu %s in its last axis for cin=%lld, got %zd",
                     who, Cx, binary ? "64-bit words" : "channels", cin, (Py_ssize_t)PyArray_DIM(x, 3));
        return NULL;
    }
    qnn_conv2d_shape s;
    if (geometry(who, x, "kernel_size", ko, so, po, &s)) return NULL;
    s.C = (size_t)cin;
    s.CO = (size_t)CO;
    /* Sizes: every product below stays far from overflow given the bounds checked above,
     * except the totals, checked here in 64-bit against the byte range. */
    const unsigned long long taps = (unsigned long long)s.KH * s.KW;
    const unsigned long long M = (unsigned long long)s.N * s.HO * s.WO;
    const unsigned long long Kelems = binary ? taps * qnn_bnn_words((size_t)cin) : (taps * (size_t)cin + 3) / 4;
    const unsigned long long rowbytes = binary ? Kelems * 8 * (tt ? 2 : 1) : Kelems * 4;
    if (taps > ((unsigned long long)1 << 24) || Kelems > ((unsigned long long)1 << 26) ||
        (M && rowbytes > (unsigned long long)(NPY_MAX_INTP / 8) / M) ||
        (M > (unsigned long long)(NPY_MAX_INTP / 8) / (unsigned long long)CO)) {
        PyErr_Format(PyExc_ValueError, "%s: convolution of %zux%zux%zux%lld with a %zux%zu kernel is too large",
                     who, s.N, s.H, s.W, cin, s.KH, s.KW);
        return NULL;
    }
    /* |acc| must fit int32: binary |dot| <= K, int8 |dot| <= K*255*128, plus |ibias|. */
    const long long K = (long long)taps * cin;
    const long long dot_max = binary ? 2 * K : K * 255 * 128;
    if (dot_max > ((long long)1 << 29)) {
        PyErr_Format(PyExc_ValueError, "%s: the dot product length %lld could overflow the int32 "
                     "accumulator (at most %lld)", who, K, binary ? (1LL << 28) : (1LL << 29) / (255 * 128));
        return NULL;
    }
    PyArrayObject *w;
    if (ternary) {
        npy_intp wd[4] = {(npy_intp)((CO + QNN_BNN_NR - 1) / QNN_BNN_NR), (npy_intp)Kelems, 2, QNN_BNN_NR};
        w = arg_typed(who, "w", wo, NPY_UINT64, "uint64", 4);
        if (!w || qnn_check_shape(who, "w", w, 4, wd, "")) return NULL;
    } else if (binary) {
        npy_intp wd[3] = {(npy_intp)((CO + QNN_BNN_NR - 1) / QNN_BNN_NR), (npy_intp)Kelems, QNN_BNN_NR};
        w = arg_typed(who, "w", wo, NPY_UINT64, "uint64", 3);
        if (!w || qnn_check_shape(who, "w", w, 3, wd, "")) return NULL;
    } else {
        npy_intp wd[4] = {(npy_intp)((CO + QNN_INT8_NR - 1) / QNN_INT8_NR), (npy_intp)Kelems, QNN_INT8_NR, 4};
        w = arg_typed(who, "w", wo, NPY_INT8, "int8", 4);
        if (!w || qnn_check_shape(who, "w", w, 4, wd, "")) return NULL;
    }
    npy_intp cod[1] = {(npy_intp)CO};
    PyArrayObject *ib = arg_typed(who, "ibias", ibo, NPY_INT32, "int32", 1);
    if (!ib || qnn_check_shape(who, "ibias", ib, 1, cod, "")) return NULL;
    const int32_t *ibv = PyArray_DATA(ib);
    for (long long c = 0; c < CO; c++)
        if (ibv[c] > (1 << 30) || ibv[c] < -(1 << 30)) {
            PyErr_Format(PyExc_ValueError, "%s: ibias[%lld] = %d is outside [-2^30, 2^30]", who, c, ibv[c]);
            return NULL;
        }
    PyArrayObject *wsum = NULL;
    if (binary && !tt) {
        npy_intp sd[2] = {(npy_intp)taps, (npy_intp)CO};
        wsum = arg_typed(who, "wsum", wsumo, NPY_INT32, "int32", 2);
        if (!wsum || qnn_check_shape(who, "wsum", wsum, 2, sd, "")) return NULL;
        const int32_t *v = PyArray_DATA(wsum);
        for (size_t i = 0; i < (size_t)taps * (size_t)CO; i++)
            if (v[i] > cin || v[i] < -cin) {
                PyErr_Format(PyExc_ValueError, "%s: wsum values must be in [-cin, cin] = [-%lld, %lld], got %d",
                             who, cin, cin, v[i]);
                return NULL;
            }
    } else if (zp < 0 || zp > 255) {
        PyErr_Format(PyExc_ValueError, "%s: zp must be in [0, 255], got %d", who, zp);
        return NULL;
    }
    qnn_epilogue e = {emode, imul, ibv, NULL, NULL, NULL, NULL, 0, (size_t)CO, code_mul};
    PyArrayObject *mu_a = NULL, *ad_a = NULL, *th_a = NULL, *di_a = NULL;
    if (emode == QNN_EPI_FLOAT) {
        PyArrayObject *mu = qnn_arg_f32(who, "mul", mulo), *ad = mu ? qnn_arg_f32(who, "add", addo) : NULL;
        if (!ad || qnn_check_shape(who, "mul", mu, 1, cod, "") || qnn_check_shape(who, "add", ad, 1, cod, "")) return NULL;
        mu_a = mu;
        ad_a = ad;
        e.mul = PyArray_DATA(mu);
        e.add = PyArray_DATA(ad);
    } else {
        PyArrayObject *th = arg_typed(who, "thr", thro, NPY_INT32, "int32", 2);
        if (!th) return NULL;
        const npy_intp nthr = PyArray_DIM(th, 0);
        if (nthr < 1 || nthr > 255 || (emode == QNN_EPI_BITS && nthr != 1) ||
            (emode == QNN_EPI_TBITS && nthr != 2)) {
            PyErr_Format(PyExc_ValueError, "%s: thr must have %s rows (levels - 1), got %zd", who,
                         emode == QNN_EPI_BITS ? "1" : emode == QNN_EPI_TBITS ? "2" : "1 to 255",
                         (Py_ssize_t)nthr);
            return NULL;
        }
        npy_intp td[2] = {nthr, (npy_intp)CO};
        PyArrayObject *di = arg_typed(who, "dir", diro, NPY_INT8, "int8", 1);
        if (qnn_check_shape(who, "thr", th, 2, td, "") || !di || qnn_check_shape(who, "dir", di, 1, cod, "")) return NULL;
        if (emode == QNN_EPI_CODES && (code_mul < 1 || (long long)code_mul * nthr > 255)) {
            PyErr_Format(PyExc_ValueError, "%s: code_mul * (levels - 1) must be in [1, 255], got %d * %zd",
                         who, code_mul, (Py_ssize_t)nthr);
            return NULL;
        }
        th_a = th;
        di_a = di;
        e.thr = PyArray_DATA(th);
        e.dir = PyArray_DATA(di);
        e.nthr = (size_t)nthr;
    }
    bnn_ws_box *box = NULL;
    if (wso != Py_None) {
        box = PyCapsule_GetPointer(wso, "qnn_ext.bnn_workspace");
        if (!box) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: ws must come from _core.bnn_workspace(), got %s", who,
                         Py_TYPE(wso)->tp_name);
            return NULL;
        }
    }
    npy_intp od[4] = {(npy_intp)s.N, (npy_intp)s.HO, (npy_intp)s.WO,
                      emode == QNN_EPI_BITS    ? (npy_intp)qnn_bnn_words((size_t)CO)
                      : emode == QNN_EPI_TBITS ? 2 * (npy_intp)qnn_bnn_words((size_t)CO)
                                               : (npy_intp)CO};
    const int otype = emode == QNN_EPI_FLOAT ? NPY_FLOAT32 : emode == QNN_EPI_CODES ? NPY_UINT8 : NPY_UINT64;
    const char *oname = emode == QNN_EPI_FLOAT ? "float32" : emode == QNN_EPI_CODES ? "uint8" : "uint64";
    /* every array the kernel reads while writing out */
    PyArrayObject *ins[8] = {x, w, ib, wsum, mu_a, ad_a, th_a, di_a};
    PyArrayObject *o = make_out(who, out, 4, od, otype, oname, ins, 8);
    if (!o) return NULL;
    /* A workspace in use by another thread is not shared: this call takes a private one. */
    qnn_bnn_ws local = {NULL, 0};
    qnn_bnn_ws *use = (box && !box->busy) ? &box->ws : &local;
    if (use != &local) box->busy = 1;
    int rc;
    void *xd = PyArray_DATA(x), *wd = PyArray_DATA(w), *od_ = PyArray_DATA(o);
    const int32_t *wsd = wsum ? PyArray_DATA(wsum) : NULL;
    Py_BEGIN_ALLOW_THREADS
    if (tt)
        rc = qnn_ttconv2d(&s, xd, wd, &e, od_, use);
    else if (ternary)
        rc = qnn_tconv2d(&s, xd, wd, wsd, &e, od_, use);
    else if (binary)
        rc = qnn_bconv2d(&s, xd, wd, wsd, &e, od_, use);
    else
        rc = qnn_iconv2d(&s, xd, (uint8_t)zp, wd, &e, od_, use);
    Py_END_ALLOW_THREADS
    if (use != &local) box->busy = 0;
    qnn_bnn_ws_release(&local);
    if (rc) { Py_DECREF(o); qnn_raise_status(who, rc); return NULL; }
    return (PyObject *)o;
}

/* ------------------------------------------------------------------ max pooling */

static PyObject *py_bnn_maxpool(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "x", "pool_size", "strides", "padding", "planes", NULL};
    const char *who;
    PyObject *xo, *ko, *so, *po;
    int planes = 1;
    if (!qnn_parse_args(args, kw, "sOOOO|i:bnn_maxpool", kwlist, &who, &xo, &ko, &so, &po,
                        &planes))
        return NULL;
    if (!PyArray_Check(xo) || (PyArray_TYPE((PyArrayObject *)xo) != NPY_UINT8 &&
                               PyArray_TYPE((PyArrayObject *)xo) != NPY_UINT64)) {
        PyErr_Format(PyExc_TypeError, "%s: x must be a numpy.ndarray of uint8 levels or uint64 packed signs",
                     who);
        return NULL;
    }
    const int bits = PyArray_TYPE((PyArrayObject *)xo) == NPY_UINT64;
    PyArrayObject *x = arg_typed(who, "x", xo, bits ? NPY_UINT64 : NPY_UINT8, bits ? "uint64" : "uint8", 4);
    if (!x) return NULL;
    qnn_conv2d_shape s;
    if (geometry(who, x, "pool_size", ko, so, po, &s)) return NULL;
    s.C = s.CO = (size_t)PyArray_DIM(x, 3);
    long long pd[4] = {(long long)s.pt, (long long)s.pb, (long long)s.pl, (long long)s.pr};
    if ((size_t)pd[0] >= s.KH || (size_t)pd[1] >= s.KH || (size_t)pd[2] >= s.KW || (size_t)pd[3] >= s.KW) {
        PyErr_Format(PyExc_ValueError, "%s: padding must be smaller than pool_size (every window needs "
                     "an input cell), got (%lld, %lld, %lld, %lld)", who, pd[0], pd[1], pd[2], pd[3]);
        return NULL;
    }
    npy_intp od[4] = {(npy_intp)s.N, (npy_intp)s.HO, (npy_intp)s.WO, (npy_intp)s.C};
    PyArrayObject *o = (PyArrayObject *)PyArray_SimpleNew(4, od, bits ? NPY_UINT64 : NPY_UINT8);
    if (!o) return NULL;
    if (planes != 1 && (planes != 2 || !bits || s.C % 2)) {
        Py_DECREF(o);
        PyErr_Format(PyExc_ValueError, "%s: planes=2 (ternary word pairs) needs uint64 x with an even last "
                     "axis, got planes=%d", who, planes);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    if (planes == 2)
        rc = qnn_bnn_maxpool_tbits(&s, PyArray_DATA(x), PyArray_DATA(o));
    else
        rc = qnn_bnn_maxpool(&s, bits, PyArray_DATA(x), PyArray_DATA(o));
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(o); qnn_raise_status(who, rc); return NULL; }
    return (PyObject *)o;
}

/* ------------------------------------------------------------------ float thresholds */

static PyObject *py_bnn_fthresh_pool(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "z", "thr", "dir", "mode", "pool_size", "strides", "padding",
                             "code_mul", "w", "conv_strides", "conv_padding", NULL};
    const char *who, *mode;
    PyObject *zo, *tho, *dio, *ko, *so, *po, *wo = Py_None, *cso = Py_None, *cpo = Py_None;
    int code_mul = 1;
    if (!qnn_parse_args(args, kw, "sOOOsOOO|iOOO:bnn_fthresh_pool", kwlist, &who, &zo,
                        &tho, &dio, &mode, &ko, &so, &po, &code_mul, &wo, &cso, &cpo))
        return NULL;
    const int bits = strcmp(mode, "bits") == 0 ? 1 : strcmp(mode, "tbits") == 0 ? 2 : 0;
    if (!bits && strcmp(mode, "codes") != 0) {
        PyErr_Format(PyExc_ValueError, "%s: mode must be 'codes', 'bits' or 'tbits', got '%s'", who, mode);
        return NULL;
    }
    PyArrayObject *z = qnn_arg_f32(who, "z", zo);
    if (!z) return NULL;
    if (PyArray_NDIM(z) != 4) {
        char s[160];
        qnn_shape_str(z, s, sizeof s);
        PyErr_Format(PyExc_ValueError, "%s: z must have 4 dims (batch, height, width, channels), got shape %s",
                     who, s);
        return NULL;
    }
    /* With w, z is the input of a float conv (the first layer) whose output is pooled. */
    qnn_conv2d_shape cs, s;
    PyArrayObject *w = NULL;
    if (wo != Py_None) {
        w = qnn_arg_f32(who, "w", wo);
        if (!w) return NULL;
        if (PyArray_NDIM(w) != 4 || PyArray_DIM(w, 2) != PyArray_DIM(z, 3) || PyArray_DIM(w, 3) < 1 ||
            PyArray_DIM(w, 0) > QNN_FCONV_KMAX || PyArray_DIM(w, 1) > QNN_FCONV_KMAX ||
            PyArray_DIM(w, 0) * PyArray_DIM(w, 1) * PyArray_DIM(w, 2) > QNN_FCONV_KMAX) {
            PyErr_Format(PyExc_ValueError, "%s: w must be (kh, kw, %zd, out_channels) with kh*kw*%zd <= %d",
                         who, (Py_ssize_t)PyArray_DIM(z, 3), (Py_ssize_t)PyArray_DIM(z, 3), QNN_FCONV_KMAX);
            return NULL;
        }
        PyObject *ks = Py_BuildValue("(nn)", PyArray_DIM(w, 0), PyArray_DIM(w, 1));
        if (!ks) return NULL;
        const int bad = geometry(who, z, "w kernel size", ks, cso, cpo, &cs);
        Py_DECREF(ks);
        if (bad) return NULL;
        cs.C = (size_t)PyArray_DIM(z, 3);
        cs.CO = (size_t)PyArray_DIM(w, 3);
        s = cs; /* the pool's input is the conv output */
        s.H = cs.HO; s.W = cs.WO;
        long long k[2], st[2], pd[4];
        if (parse_ints(who, "pool_size", ko, 2, 1, GEOM_MAX, k) ||
            parse_ints(who, "strides", so, 2, 1, GEOM_MAX, st) ||
            parse_ints(who, "padding", po, 4, 0, GEOM_MAX, pd))
            return NULL;
        s.KH = (size_t)k[0]; s.KW = (size_t)k[1]; s.sh = (size_t)st[0]; s.sw = (size_t)st[1];
        s.pt = (size_t)pd[0]; s.pb = (size_t)pd[1]; s.pl = (size_t)pd[2]; s.pr = (size_t)pd[3];
        if (qnn_conv2d_out_size(s.H, s.KH, s.sh, s.pt, s.pb, 1, &s.HO) ||
            qnn_conv2d_out_size(s.W, s.KW, s.sw, s.pl, s.pr, 1, &s.WO)) {
            PyErr_Format(PyExc_ValueError, "%s: the conv output is smaller than pool_size", who);
            return NULL;
        }
        s.C = s.CO = cs.CO;
    } else {
        if (geometry(who, z, "pool_size", ko, so, po, &s)) return NULL;
        s.C = s.CO = (size_t)PyArray_DIM(z, 3);
    }
    if (s.C < 1 || s.pt >= s.KH || s.pb >= s.KH || s.pl >= s.KW || s.pr >= s.KW) {
        PyErr_Format(PyExc_ValueError, "%s: z needs >= 1 channel and padding smaller than pool_size", who);
        return NULL;
    }
    PyArrayObject *th = qnn_arg_f32(who, "thr", tho);
    if (!th) return NULL;
    const npy_intp nthr = PyArray_NDIM(th) == 2 ? PyArray_DIM(th, 0) : 0;
    npy_intp td[2] = {nthr, (npy_intp)s.C}, cd[1] = {(npy_intp)s.C};
    if (nthr < 1 || nthr > 255 || (bits && nthr != (npy_intp)bits)) {
        PyErr_Format(PyExc_ValueError, "%s: thr must have shape (levels - 1, channels) with %s rows", who,
                     bits == 1 ? "1" : bits == 2 ? "2" : "1 to 255");
        return NULL;
    }
    PyArrayObject *di = arg_typed(who, "dir", dio, NPY_INT8, "int8", 1);
    if (qnn_check_shape(who, "thr", th, 2, td, "") || !di || qnn_check_shape(who, "dir", di, 1, cd, "")) return NULL;
    if (!bits && (code_mul < 1 || (long long)code_mul * nthr > 255)) {
        PyErr_Format(PyExc_ValueError, "%s: code_mul * (levels - 1) must be in [1, 255], got %d * %zd",
                     who, code_mul, (Py_ssize_t)nthr);
        return NULL;
    }
    if ((unsigned long long)s.N * s.HO * s.WO > (unsigned long long)(NPY_MAX_INTP / 8) / s.C) {
        PyErr_Format(PyExc_ValueError, "%s: output is too large", who);
        return NULL;
    }
    npy_intp od[4] = {(npy_intp)s.N, (npy_intp)s.HO, (npy_intp)s.WO,
                      bits ? (npy_intp)qnn_bnn_words(s.C) * bits : (npy_intp)s.C};
    PyArrayObject *o = (PyArrayObject *)PyArray_SimpleNew(4, od, bits ? NPY_UINT64 : NPY_UINT8);
    if (!o) return NULL;
    int rc;
    const float *wd = w ? PyArray_DATA(w) : NULL;
    Py_BEGIN_ALLOW_THREADS
    if (wd)
        rc = qnn_fconv_thresh_pool(&cs, &s, PyArray_DATA(z), wd, PyArray_DATA(th), (size_t)nthr,
                                   PyArray_DATA(di), bits, code_mul, PyArray_DATA(o));
    else
        rc = qnn_fthresh_pool(&s, PyArray_DATA(z), PyArray_DATA(th), (size_t)nthr, PyArray_DATA(di), bits,
                              code_mul, PyArray_DATA(o));
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(o); qnn_raise_status(who, rc); return NULL; }
    return (PyObject *)o;
}

/* ------------------------------------------------------------------ small float conv */

static PyObject *py_bnn_fconv(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "x", "w", "strides", "padding", "out", NULL};
    const char *who;
    PyObject *xo, *wo, *so, *po, *out = Py_None;
    if (!qnn_parse_args(args, kw, "sOOOO|O:bnn_fconv", kwlist, &who, &xo, &wo, &so, &po, &out))
        return NULL;
    PyArrayObject *x = qnn_arg_f32(who, "x", xo), *w = x ? qnn_arg_f32(who, "w", wo) : NULL;
    if (!w) return NULL;
    if (PyArray_NDIM(x) != 4 || PyArray_NDIM(w) != 4) {
        PyErr_Format(PyExc_ValueError, "%s: x (batch, height, width, channels) and w (kernel_h, kernel_w, "
                     "in_channels, out_channels) must have 4 dims, got %d and %d", who, PyArray_NDIM(x),
                     PyArray_NDIM(w));
        return NULL;
    }
    /* the size limit first: the geometry would report an oversized w as a kernel size */
    if (PyArray_DIM(w, 2) != PyArray_DIM(x, 3) || PyArray_DIM(x, 3) < 1 || PyArray_DIM(w, 3) < 1 ||
        PyArray_DIM(w, 0) > QNN_FCONV_KMAX || PyArray_DIM(w, 1) > QNN_FCONV_KMAX ||
        PyArray_DIM(w, 0) * PyArray_DIM(w, 1) * PyArray_DIM(w, 2) > QNN_FCONV_KMAX) {
        PyErr_Format(PyExc_ValueError, "%s: w must be (kh, kw, %zd, out_channels >= 1) with kh*kw*%zd <= %d",
                     who, (Py_ssize_t)PyArray_DIM(x, 3), (Py_ssize_t)PyArray_DIM(x, 3), QNN_FCONV_KMAX);
        return NULL;
    }
    PyObject *ks = Py_BuildValue("(nn)", PyArray_DIM(w, 0), PyArray_DIM(w, 1));
    if (!ks) return NULL;
    qnn_conv2d_shape s;
    const int bad = geometry(who, x, "w kernel size", ks, so, po, &s);
    Py_DECREF(ks);
    if (bad) return NULL;
    s.C = (size_t)PyArray_DIM(x, 3);
    s.CO = (size_t)PyArray_DIM(w, 3);
    if ((size_t)PyArray_DIM(w, 2) != s.C || s.C < 1 || s.CO < 1 || s.KH * s.KW * s.C > QNN_FCONV_KMAX) {
        PyErr_Format(PyExc_ValueError, "%s: w must be (kh, kw, %zu, out_channels >= 1) with kh*kw*%zu <= %d",
                     who, s.C, s.C, QNN_FCONV_KMAX);
        return NULL;
    }
    if ((unsigned long long)s.N * s.HO * s.WO > (unsigned long long)(NPY_MAX_INTP / 8) / s.CO) {
        PyErr_Format(PyExc_ValueError, "%s: output is too large", who);
        return NULL;
    }
    npy_intp od[4] = {(npy_intp)s.N, (npy_intp)s.HO, (npy_intp)s.WO, (npy_intp)s.CO};
    PyArrayObject *ins[2] = {x, w};
    PyArrayObject *o = make_out(who, out, 4, od, NPY_FLOAT32, "float32", ins, 2);
    if (!o) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_fconv_small(&s, PyArray_DATA(x), PyArray_DATA(w), PyArray_DATA(o));
    Py_END_ALLOW_THREADS
    if (rc) { Py_DECREF(o); qnn_raise_status(who, rc); return NULL; }
    return (PyObject *)o;
}

PyMethodDef qnn_bnn_methods[] = {
    {"bnn_fconv", (PyCFunction)(void (*)(void))py_bnn_fconv, METH_VARARGS | METH_KEYWORDS,
     "Direct float conv for K <= 256 with the float GEMM's arithmetic (a float first layer)."},
    {"bnn_fthresh_pool", (PyCFunction)(void (*)(void))py_bnn_fthresh_pool, METH_VARARGS | METH_KEYWORDS,
     "Float tensor -> levels or packed signs by per-channel thresholds, after optional max pooling."},
    {"bnn_workspace", py_bnn_workspace, METH_NOARGS,
     "A grow-only scratch buffer for bnn_conv2d (one per layer)."},
    {"bnn_bitpack", (PyCFunction)(void (*)(void))py_bnn_bitpack, METH_VARARGS | METH_KEYWORDS,
     "Pack signs along the last axis into uint64 words (bit 1 = negative)."},
    {"bnn_conv2d", (PyCFunction)(void (*)(void))py_bnn_conv2d, METH_VARARGS | METH_KEYWORDS,
     "Binary (XNOR-popcount) or int8 convolution with a fused output transform."},
    {"bnn_maxpool", (PyCFunction)(void (*)(void))py_bnn_maxpool, METH_VARARGS | METH_KEYWORDS,
     "Max pooling of u8 levels or packed signs."},
    {NULL, NULL, 0, NULL},
};
