/* Persistent 64-byte aligned scratch memory. First touch of fresh pages costs ~3 ms/MB on this
 * VM (spec/performance.md §7), so kernels reuse a workspace owned by the caller (a layer or a
 * quantizer object) instead of allocating per call. A workspace is not shared between threads. */
#ifndef QNN_RUNTIME_WORKSPACE_H
#define QNN_RUNTIME_WORKSPACE_H

#include <stddef.h>

#define QNN_ALIGN 64

typedef struct qnn_workspace {
    void *ptr;
    size_t size;
} qnn_workspace;

void *qnn_aligned_alloc(size_t bytes);
void qnn_aligned_free(void *p);
/* Returns a pointer to at least `bytes` bytes (grown, never shrunk), or NULL when out of memory. */
void *qnn_workspace_reserve(qnn_workspace *ws, size_t bytes);
void qnn_workspace_release(qnn_workspace *ws);

#endif
