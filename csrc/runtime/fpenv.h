/* Flush-to-zero / denormals-are-zero for the duration of a kernel.
 * TensorFlow runs its CPU kernels with FTZ+DAZ, and QKeras's numbers depend on it
 * (a relu_po2 test expects 2**-128 to come out as exactly 0), so every quantizer kernel runs
 * under the same mode, on every thread, and restores the caller's mode afterwards. */
#ifndef QNN_RUNTIME_FPENV_H
#define QNN_RUNTIME_FPENV_H

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
typedef unsigned int qnn_fpenv;
static inline qnn_fpenv qnn_fpenv_flush_begin(void) {
    qnn_fpenv old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
    return old;
}
static inline void qnn_fpenv_end(qnn_fpenv old) { _mm_setcsr(old); }
#elif defined(__aarch64__)
typedef uint64_t qnn_fpenv;
static inline qnn_fpenv qnn_fpenv_flush_begin(void) {
    uint64_t old;
    __asm__ volatile("mrs %0, fpcr" : "=r"(old));
    __asm__ volatile("msr fpcr, %0" : : "r"(old | (1ull << 24))); /* FZ */
    return old;
}
static inline void qnn_fpenv_end(qnn_fpenv old) { __asm__ volatile("msr fpcr, %0" : : "r"(old)); }
#else
typedef int qnn_fpenv;
static inline qnn_fpenv qnn_fpenv_flush_begin(void) { return 0; }
static inline void qnn_fpenv_end(qnn_fpenv old) { (void)old; }
#endif

#endif
