#include "runtime/threads.h"

#ifdef _OPENMP
#include <omp.h>
int qnn_get_num_threads(void) { return omp_get_max_threads(); }
void qnn_set_num_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }
int qnn_have_openmp(void) { return _OPENMP; }
#else
int qnn_get_num_threads(void) { return 1; }
void qnn_set_num_threads(int n) { (void)n; }
int qnn_have_openmp(void) { return 0; }
#endif

/* ~256 K elements is ~0.1 ms of streaming work per thread: well above the fork/join cost. */
#define QNN_ELEMS_PER_THREAD_MIN ((size_t)1 << 18)

int qnn_threads_for(size_t work) {
    int t = qnn_get_num_threads();
    size_t useful = work / QNN_ELEMS_PER_THREAD_MIN;
    if (useful < 1) useful = 1;
    return (size_t)t > useful ? (int)useful : t;
}
