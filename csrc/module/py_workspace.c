/* _core.Workspace (see py_workspace.h). */
#include "module/py_workspace.h"

#include <stddef.h>

typedef struct {
    PyObject_HEAD
    qnn_workspace ws;
    int busy; /* a kernel call holds it; read and written only with the GIL held */
} WorkspaceObject;

static PyObject *ws_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    if (PyTuple_GET_SIZE(args) != 0 || (kw && PyDict_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Workspace() takes no arguments");
        return NULL;
    }
    WorkspaceObject *self = (WorkspaceObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->ws = (qnn_workspace){0};
    self->busy = 0;
    return (PyObject *)self;
}

static void ws_dealloc(PyObject *o) {
    /* busy cannot be set here: a kernel call keeps its argument alive */
    qnn_workspace_release(&((WorkspaceObject *)o)->ws);
    Py_TYPE(o)->tp_free(o);
}

static PyObject *ws_release(PyObject *o, PyObject *noargs) {
    (void)noargs;
    WorkspaceObject *self = (WorkspaceObject *)o;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Workspace.release: a kernel call is using it");
        return NULL;
    }
    qnn_workspace_release(&self->ws);
    Py_RETURN_NONE;
}

/* Copies and pickles start empty: the buffers are scratch, not state. */
static PyObject *ws_reduce(PyObject *o, PyObject *noargs) {
    (void)noargs;
    return Py_BuildValue("(O())", (PyObject *)Py_TYPE(o));
}

static PyObject *ws_nbytes(PyObject *o, void *closure) {
    (void)closure;
    return PyLong_FromSize_t(qnn_ws_bytes(&((WorkspaceObject *)o)->ws));
}

static PyObject *ws_allocations(PyObject *o, void *closure) {
    (void)closure;
    return PyLong_FromSize_t(((WorkspaceObject *)o)->ws.grows);
}

static PyObject *ws_repr(PyObject *o) {
    const WorkspaceObject *self = (const WorkspaceObject *)o;
    return PyUnicode_FromFormat("<qnn_ext._core.Workspace: %zu bytes, %zu allocations>",
                                qnn_ws_bytes(&self->ws), self->ws.grows);
}

static PyMethodDef ws_methods[] = {
    {"release", ws_release, METH_NOARGS, "Free the buffers now (they grow again on next use)."},
    {"__reduce__", ws_reduce, METH_NOARGS, "Copies and pickles are new, empty workspaces."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ws_getset[] = {
    {"nbytes", ws_nbytes, NULL, "Bytes of scratch memory held.", NULL},
    {"allocations", ws_allocations, NULL,
     "Buffer allocations made so far (constant once the call shapes repeat).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject qnn_workspace_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "qnn_ext._core.Workspace",
    .tp_basicsize = sizeof(WorkspaceObject),
    .tp_dealloc = ws_dealloc,
    .tp_repr = ws_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Workspace()\n--\n\n"
              "Scratch memory kept between kernel calls: pass it as workspace= to gemm and the\n"
              "conv2d entry points, and their packing buffers are taken from it (grown, never\n"
              "shrunk) instead of being allocated per call. One call uses it at a time; a call\n"
              "made while another thread's call holds it runs on temporary buffers.",
    .tp_methods = ws_methods,
    .tp_getset = ws_getset,
    .tp_new = ws_new,
};

int qnn_ws_lease_take(const char *who, PyObject *obj, qnn_ws_lease *lease) {
    lease->owner = NULL;
    lease->ws = NULL;
    if (obj == NULL || obj == Py_None) return 0;
    if (!PyObject_TypeCheck(obj, &qnn_workspace_type)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: workspace must be a qnn_ext._core.Workspace or None, got %s", who,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    WorkspaceObject *w = (WorkspaceObject *)obj;
    if (w->busy) return 0;
    w->busy = 1;
    Py_INCREF(obj);
    lease->owner = obj;
    lease->ws = &w->ws;
    return 0;
}

void qnn_ws_lease_return(qnn_ws_lease *lease) {
    if (!lease->owner) return;
    ((WorkspaceObject *)lease->owner)->busy = 0;
    Py_CLEAR(lease->owner);
    lease->ws = NULL;
}
