#include "runtime/workspace.h"

#include <stdlib.h>

void *qnn_aligned_alloc(size_t bytes) {
    if (bytes == 0) bytes = QNN_ALIGN;
    if (bytes > (size_t)-1 - QNN_ALIGN) return NULL;
    size_t rounded = (bytes + QNN_ALIGN - 1) / QNN_ALIGN * QNN_ALIGN;
    return aligned_alloc(QNN_ALIGN, rounded);
}

void qnn_aligned_free(void *p) { free(p); }

void *qnn_workspace_reserve(qnn_workspace *ws, size_t bytes) {
    if (ws->ptr && ws->size >= bytes) return ws->ptr;
    /* Grow by 1.5x so a slowly growing batch does not reallocate every call. */
    size_t want = bytes + bytes / 2;
    if (want < bytes) want = bytes;
    void *p = qnn_aligned_alloc(want);
    if (!p) return NULL;
    qnn_aligned_free(ws->ptr);
    ws->ptr = p;
    ws->size = want;
    return p;
}

void qnn_workspace_release(qnn_workspace *ws) {
    qnn_aligned_free(ws->ptr);
    ws->ptr = NULL;
    ws->size = 0;
}
