/* Persistent 64-byte aligned scratch memory. First touch of fresh pages costs ~3 ms/MB on this
 * VM (spec/performance.md §7), and whether freed blocks stay mapped is up to the allocator (glibc
 * returns them past its trim threshold, other allocators sooner), so the GEMM and convolution
 * kernels take their packing buffers from a workspace owned by the caller (_core.Workspace; the
 * layers share one per Python thread) and grown, never shrunk, across calls. A workspace is used by one kernel call
 * at a time; its slots let a kernel that calls another (a convolution calling the GEMM) hold
 * its own scratch while the inner one uses its slots. */
#ifndef QNN_RUNTIME_WORKSPACE_H
#define QNN_RUNTIME_WORKSPACE_H

#include <stddef.h>

#define QNN_ALIGN 64

enum qnn_ws_slot {
    QNN_WS_GEMM_A,  /* packed A blocks, one per thread */
    QNN_WS_GEMM_B,  /* packed B panel */
    QNN_WS_SPLITK,  /* split-K: per-thread partial C and packing buffers */
    QNN_WS_CONV,    /* convolution scratch around the GEMM (flipped kernel, columns, dW^T) */
    QNN_WS_SLOTS
};

typedef struct qnn_workspace {
    void *ptr[QNN_WS_SLOTS];
    size_t size[QNN_WS_SLOTS];
    size_t grows; /* allocations made so far: stays put once the shapes repeat */
} qnn_workspace;

void *qnn_aligned_alloc(size_t bytes);
void qnn_aligned_free(void *p);
/* Returns slot `slot` of ws with at least `bytes` bytes (grown, never shrunk; the contents are
 * not kept when it grows), or NULL when out of memory. */
void *qnn_ws_get(qnn_workspace *ws, enum qnn_ws_slot slot, size_t bytes);
/* Bytes held by all slots. */
size_t qnn_ws_bytes(const qnn_workspace *ws);
void qnn_workspace_release(qnn_workspace *ws);

#endif
