/* Counter-based uniform random numbers: draw `idx` of stream `key` is a pure function of both,
 * so stochastic quantizers give the same bits for the same seed whatever the thread count or the
 * ISA level, and a kernel can be split across threads without sharing generator state. */
#ifndef QNN_KERNELS_RNG_H
#define QNN_KERNELS_RNG_H

#include <stdint.h>

/* Chris Wellons' "lowbias32" integer finaliser: a bijection on 32 bits with good avalanche. */
static inline uint32_t qnn_hash32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Uniform in [0, 1) with 24 random bits: every value is exactly representable in float32. */
static inline float qnn_uniform01(uint64_t key, uint64_t idx) {
    uint32_t h = qnn_hash32((uint32_t)idx ^ (uint32_t)key);
    h = qnn_hash32(h ^ (uint32_t)(idx >> 32) ^ 0x9E3779B9U);
    h = qnn_hash32(h + (uint32_t)(key >> 32));
    return (float)(h >> 8) * 0x1p-24f;
}

#endif
