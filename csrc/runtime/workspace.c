#include "runtime/workspace.h"

#include <stdlib.h>

void *qnn_aligned_alloc(size_t bytes) {
    if (bytes == 0) bytes = QNN_ALIGN;
    if (bytes > (size_t)-1 - QNN_ALIGN) return NULL;
    size_t rounded = (bytes + QNN_ALIGN - 1) / QNN_ALIGN * QNN_ALIGN;
    return aligned_alloc(QNN_ALIGN, rounded);
}

void qnn_aligned_free(void *p) { free(p); }

void *qnn_ws_get(qnn_workspace *ws, enum qnn_ws_slot slot, size_t bytes) {
    if (ws->ptr[slot] && ws->size[slot] >= bytes) return ws->ptr[slot];
    /* Grow by 1/4 more than asked, so a batch that creeps up does not reallocate every call;
     * free first, so peak memory is the new block only. */
    size_t want = bytes + bytes / 4;
    if (want < bytes) want = bytes;
    qnn_aligned_free(ws->ptr[slot]);
    ws->ptr[slot] = qnn_aligned_alloc(want);
    ws->size[slot] = ws->ptr[slot] ? want : 0;
    ws->grows++;
    return ws->ptr[slot];
}

size_t qnn_ws_bytes(const qnn_workspace *ws) {
    size_t n = 0;
    for (int s = 0; s < QNN_WS_SLOTS; s++) n += ws->size[s];
    return n;
}

void qnn_workspace_release(qnn_workspace *ws) {
    for (int s = 0; s < QNN_WS_SLOTS; s++) {
        qnn_aligned_free(ws->ptr[s]);
        ws->ptr[s] = NULL;
        ws->size[s] = 0;
    }
}
