#include "runtime/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <stdint.h>

static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    /* xgetbv is only legal when the OS set OSXSAVE; callers check that first. */
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

qnn_cpu_features qnn_cpu_detect(void) {
    qnn_cpu_features f = {0};
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return f;
    const uint64_t xcr0 = read_xcr0();
    const bool ymm_ok = (xcr0 & 0x6) == 0x6;          /* SSE + AVX state */
    const bool zmm_ok = ymm_ok && (xcr0 & 0xE0) == 0xE0; /* opmask + ZMM hi256 + hi16 */
    if (__get_cpuid_max(0, 0) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2 = (b >> 5) & 1, bmi2 = (b >> 8) & 1;
    const bool f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    f.avx2 = ymm_ok && avx2 && fma && bmi2;
    f.avx512 = f.avx2 && zmm_ok && f512 && dq && bw && vl;
    f.avx512_vnni = f.avx512 && ((c >> 11) & 1);
    f.avx512_vpopcntdq = f.avx512 && ((c >> 14) & 1);
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    (void)b1; (void)c1; (void)d1;
    f.avx512_bf16 = f.avx512 && ((a1 >> 5) & 1);
    return f;
}
#else
qnn_cpu_features qnn_cpu_detect(void) {
    qnn_cpu_features f = {0};
    return f;
}
#endif
