/* _core.Workspace: persistent scratch memory for the GEMM and convolution entry points
 * (runtime/workspace.h), owned by a Python object so that a layer keeps its packing buffers
 * between calls and frees them with itself. */
#ifndef QNN_MODULE_PY_WORKSPACE_H
#define QNN_MODULE_PY_WORKSPACE_H

#include "module/args.h"
#include "runtime/workspace.h"

extern PyTypeObject qnn_workspace_type;

/* A workspace borrowed for one kernel call. */
typedef struct qnn_ws_lease {
    PyObject *owner; /* the Workspace object, NULL when none or busy */
    qnn_workspace *ws; /* NULL: the kernel uses a temporary one */
} qnn_ws_lease;

/* Takes the `workspace=` argument: None, or a Workspace (TypeError naming who otherwise). A
 * workspace that another thread is using right now (the GIL is released during kernels) is not
 * shared: the call runs on a temporary one instead. Called with the GIL held. */
int qnn_ws_lease_take(const char *who, PyObject *obj, qnn_ws_lease *lease);
/* Gives it back; with the GIL held again. */
void qnn_ws_lease_return(qnn_ws_lease *lease);

#endif
