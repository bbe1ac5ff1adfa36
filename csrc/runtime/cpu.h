/* CPU feature detection. Knows nothing about neural networks. */
#ifndef QNN_RUNTIME_CPU_H
#define QNN_RUNTIME_CPU_H

#include <stdbool.h>

typedef struct qnn_cpu_features {
    bool avx2;        /* AVX2 + FMA + OS-enabled YMM state */
    bool avx512;      /* AVX-512 F/BW/VL/DQ + OS-enabled ZMM state */
    bool avx512_vnni;
    bool avx512_vpopcntdq;
    bool avx512_bf16;
} qnn_cpu_features;

/* Reads cpuid/xgetbv once per call; cheap enough to call at start-up only. */
qnn_cpu_features qnn_cpu_detect(void);

#endif
