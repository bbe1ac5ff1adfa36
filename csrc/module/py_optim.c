/* Binding of the optimizer update kernels (csrc/kernels/nn/optim.c). The variable, its gradient
 * and its slots are all updated in place, so each must be a writeable float32 C-contiguous array
 * of the variable's shape, and no two may share memory (a slot aliasing w would make the update
 * read values it has already overwritten). */
#include "module/args.h"

#include <float.h>

#include "kernels/nn/nn.h"

#define MAX_ARRAYS 5

typedef struct {
    const char *name;
    PyObject *obj;
    int optional, writeable;
    PyArrayObject *arr; /* borrowed; NULL for an absent optional slot */
} optim_arg;

/* Check every array against w (args[0]) and against each other; 0 or -1 with an exception. */
static int optim_check(const char *who, optim_arg *a, int n) {
    for (int i = 0; i < n; i++) {
        a[i].arr = NULL;
        if (a[i].obj == Py_None) {
            if (a[i].optional) continue;
            PyErr_Format(PyExc_TypeError, "%s: %s must be a float32 array, got None", who,
                         a[i].name);
            return -1;
        }
        PyArrayObject *x = qnn_arg_f32(who, a[i].name, a[i].obj);
        if (!x) return -1;
        if (a[i].writeable && !PyArray_ISWRITEABLE(x)) {
            PyErr_Format(PyExc_ValueError, "%s: %s must be writeable (it is updated in place)", who,
                         a[i].name);
            return -1;
        }
        if (i > 0 && qnn_check_shape(who, a[i].name, x, PyArray_NDIM(a[0].arr),
                                     PyArray_DIMS(a[0].arr), " (the shape of the variable)"))
            return -1;
        for (int j = 0; j < i; j++) {
            if (a[j].arr && qnn_arrays_overlap(a[j].arr, x)) {
                PyErr_Format(PyExc_ValueError, "%s: %s and %s must not share memory", who,
                             a[j].name, a[i].name);
                return -1;
            }
        }
        a[i].arr = x;
    }
    return 0;
}

static float *data(const optim_arg *a) { return a->arr ? (float *)PyArray_DATA(a->arr) : NULL; }

/* A hyper-parameter: finite in float32, the precision the kernel computes in (rates and decay
 * factors are range-checked by the Python classes; here only what would make the kernel's
 * arithmetic meaningless is refused). */
static int check_finite(const char *who, const char *arg, double v) {
    if (v >= -FLT_MAX && v <= FLT_MAX) return 0;
    char s[48];
    snprintf(s, sizeof s, "%.9g", v);
    PyErr_Format(PyExc_ValueError, "%s: %s must be a finite float (float32 range), got %s", who,
                 arg, s);
    return -1;
}

static PyObject *done(const char *who, int rc) {
    if (rc) { qnn_raise_status(who, rc); return NULL; }
    Py_RETURN_NONE;
}

static PyObject *py_sgd_update(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "w", "g", "momentum_slot", "lr", "momentum", "nesterov", NULL};
    const char *who;
    double lr, mom;
    int nesterov;
    optim_arg a[3] = {{"w", NULL, 0, 1, NULL}, {"g", NULL, 0, 0, NULL},
                      {"momentum_slot", NULL, 1, 1, NULL}};
    if (!qnn_parse_args(args, kw, "sOOOddp:sgd_update", kwlist, &who, &a[0].obj,
                                     &a[1].obj, &a[2].obj, &lr, &mom, &nesterov))
        return NULL;
    if (optim_check(who, a, 3) || check_finite(who, "lr", lr) ||
        check_finite(who, "momentum", mom))
        return NULL;
    int rc;
    const size_t n = (size_t)PyArray_SIZE(a[0].arr);
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_sgd_update(n, data(&a[0]), data(&a[1]), data(&a[2]), (float)lr, (float)mom, nesterov);
    Py_END_ALLOW_THREADS
    return done(who, rc);
}

static PyObject *py_adam_update(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "w", "g", "m", "v", "vhat", "lr_t", "beta_1", "beta_2",
                             "epsilon", NULL};
    const char *who;
    double lr, b1, b2, eps;
    optim_arg a[5] = {{"w", NULL, 0, 1, NULL}, {"g", NULL, 0, 0, NULL}, {"m", NULL, 0, 1, NULL},
                      {"v", NULL, 0, 1, NULL}, {"vhat", NULL, 1, 1, NULL}};
    if (!qnn_parse_args(args, kw, "sOOOOOdddd:adam_update", kwlist, &who, &a[0].obj,
                                     &a[1].obj, &a[2].obj, &a[3].obj, &a[4].obj, &lr, &b1, &b2,
                                     &eps))
        return NULL;
    if (optim_check(who, a, 5) || check_finite(who, "lr_t", lr) ||
        check_finite(who, "beta_1", b1) || check_finite(who, "beta_2", b2) ||
        check_finite(who, "epsilon", eps))
        return NULL;
    int rc;
    const size_t n = (size_t)PyArray_SIZE(a[0].arr);
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_adam_update(n, data(&a[0]), data(&a[1]), data(&a[2]), data(&a[3]), data(&a[4]),
                         (float)lr, (float)b1, (float)b2, (float)eps);
    Py_END_ALLOW_THREADS
    return done(who, rc);
}

static PyObject *py_rmsprop_update(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"who", "w", "g", "ms", "mom", "mg", "lr", "rho", "momentum",
                             "epsilon", NULL};
    const char *who;
    double lr, rho, mom, eps;
    optim_arg a[5] = {{"w", NULL, 0, 1, NULL}, {"g", NULL, 0, 0, NULL}, {"ms", NULL, 0, 1, NULL},
                      {"mom", NULL, 1, 1, NULL}, {"mg", NULL, 1, 1, NULL}};
    if (!qnn_parse_args(args, kw, "sOOOOOdddd:rmsprop_update", kwlist, &who,
                                     &a[0].obj, &a[1].obj, &a[2].obj, &a[3].obj, &a[4].obj, &lr,
                                     &rho, &mom, &eps))
        return NULL;
    if (optim_check(who, a, 5) || check_finite(who, "lr", lr) || check_finite(who, "rho", rho) ||
        check_finite(who, "momentum", mom) || check_finite(who, "epsilon", eps))
        return NULL;
    int rc;
    const size_t n = (size_t)PyArray_SIZE(a[0].arr);
    Py_BEGIN_ALLOW_THREADS
    rc = qnn_rmsprop_update(n, data(&a[0]), data(&a[1]), data(&a[2]), data(&a[3]), data(&a[4]),
                            (float)lr, (float)rho, (float)mom, (float)eps);
    Py_END_ALLOW_THREADS
    return done(who, rc);
}

#define KW (METH_VARARGS | METH_KEYWORDS)
#define FN(f) ((PyCFunction)(void (*)(void))(f))

PyMethodDef qnn_optim_methods[] = {
    {"sgd_update", FN(py_sgd_update), KW,
     "sgd_update(who, w, g, momentum_slot, lr, momentum, nesterov)\n\n"
     "In place: momentum_slot None -> w -= lr g; else v = momentum v - lr g and w += v "
     "(nesterov: w += momentum v - lr g)."},
    {"adam_update", FN(py_adam_update), KW,
     "adam_update(who, w, g, m, v, vhat, lr_t, beta_1, beta_2, epsilon)\n\n"
     "In place: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; vhat (None or amsgrad's running "
     "max of v) replaces v; w -= lr_t m / (sqrt(v) + epsilon). float32 arithmetic in NumPy's "
     "order, so the result equals the NumPy expressions bit for bit."},
    {"rmsprop_update", FN(py_rmsprop_update), KW,
     "rmsprop_update(who, w, g, ms, mom, mg, lr, rho, momentum, epsilon)\n\n"
     "In place: ms = rho ms + (1-rho) g^2; mg (centered) likewise with g, denom = ms - mg^2; "
     "mom: mom = momentum mom + lr g / sqrt(denom + eps), w -= mom; else "
     "w -= lr g / (sqrt(denom) + eps)."},
    {NULL, NULL, 0, NULL},
};
