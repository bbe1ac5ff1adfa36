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

#endif
