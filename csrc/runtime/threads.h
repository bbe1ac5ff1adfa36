/* Thread-count control (OpenMP underneath) and the rule for when a kernel is worth threading. */
#ifndef QNN_RUNTIME_THREADS_H
#define QNN_RUNTIME_THREADS_H

#include <stddef.h>

int qnn_get_num_threads(void);
void qnn_set_num_threads(int n);
int qnn_have_openmp(void);
/* Threads to use for `work` units of roughly element-wise cost: fork/join costs ~3-20 us here,
 * so small calls run on the calling thread. */
int qnn_threads_for(size_t work);

/* Inside a parallel region: this thread's number and the size of the team actually running.
 * The runtime may give fewer threads than num_threads asked for (OMP_DYNAMIC,
 * OMP_THREAD_LIMIT, a nested region), so a static partition must be made for the team, not
 * for the count requested, or the missing threads' share is left undone. */
#ifdef _OPENMP
#include <omp.h>
static inline int qnn_thread_id(void) { return omp_get_thread_num(); }
static inline int qnn_team_size(void) { return omp_get_num_threads(); }
#else
static inline int qnn_thread_id(void) { return 0; }
static inline int qnn_team_size(void) { return 1; }
#endif

#endif
