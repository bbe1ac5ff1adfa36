"""Quantizer demo (the main job until the layers land): quantize a weight tensor and an
activation tensor at the bit widths the Fashion-MNIST job will compare, and print what each
setting costs in accuracy (SNR) and how fast the C kernels run.

    python python/quantizer_demo.py            # ~10 s
    python python/quantizer_demo.py --quick    # ~2 s
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import qnn_ext  # noqa: E402
from qnn_ext import get_quantizer  # noqa: E402

WEIGHT_SETTINGS = [
    ("float", None),
    ("8-bit", "quantized_bits(8,0,1,alpha='auto_po2')"),
    ("4-bit", "quantized_bits(4,0,1,alpha='auto_po2')"),
    ("2-bit", "quantized_bits(2,0,1,alpha='auto_po2')"),
    ("ternary", "ternary(alpha='auto_po2')"),
    ("binary", "binary(alpha='auto_po2')"),
    ("po2 4-bit", "quantized_po2(4,1)"),
]
ACT_SETTINGS = [
    ("relu 8-bit", "quantized_relu(8,3)"),
    ("relu 4-bit", "quantized_relu(4,2)"),
    ("relu 2-bit", "quantized_relu(2,1)"),
    ("tanh 3-bit", "quantized_tanh(3)"),
    ("binary_tanh", "binary_tanh"),
]


def snr_db(x, y):
    err = np.mean((x.astype(np.float64) - y) ** 2)
    return float("inf") if err == 0 else 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / err)


def timed(f, x, repeat):
    f(x)
    t0 = time.perf_counter()
    for _ in range(repeat):
        f(x)
    return (time.perf_counter() - t0) / repeat


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller tensors, fewer repeats")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    info = qnn_ext.build_info()
    print(f"qnn_ext {info['version']}  isa={info['isa']} (available {info['isas_available']})  "
          f"threads={info['num_threads']}  {info['compiler']}")
    w = (rng.standard_normal((3, 3, 64, 128)) * 0.08).astype(np.float32)  # HWIO conv kernel
    n_act = 1 << (20 if args.quick else 23)
    a = np.maximum(rng.standard_normal(n_act).astype(np.float32) * 1.5, -4).astype(np.float32)
    repeat = 3 if args.quick else 10

    print(f"\nWeights: conv kernel {w.shape}, per-output-channel auto_po2 scales")
    print(f"{'setting':12s} {'quantizer':42s} {'levels':>6s} {'SNR dB':>7s} {'ms':>7s}")
    for name, s in WEIGHT_SETTINGS:
        if s is None:
            print(f"{name:12s} {'-':42s} {'-':>6s} {'inf':>7s} {'-':>7s}")
            continue
        q = get_quantizer(s)
        y = q(w)
        t = timed(q, w, repeat)
        levels = len(np.unique(y / (np.asarray(q.scale) if np.ndim(getattr(q, "scale", 1.0)) else 1.0)))
        print(f"{name:12s} {str(q):42s} {levels:6d} {snr_db(w, y):7.1f} {t*1e3:7.3f}")

    print(f"\nActivations: {n_act/1e6:.1f} M values (relu-like and tanh-like inputs)")
    print(f"{'setting':12s} {'quantizer':42s} {'levels':>6s} {'SNR dB':>7s} {'GB/s':>7s}")
    for name, s in ACT_SETTINGS:
        q = get_quantizer(s)
        ref = np.maximum(a, 0) if "relu" in s else np.clip(a, -1, 1)
        if "relu" in s:
            ref = np.minimum(ref, q.max() - 2.0 ** (q.integer - q.bits))
        y = q(a)
        buf = np.empty_like(a)
        t = timed(lambda v: q(v, out=buf), a, repeat) if hasattr(q, "bits") else timed(q, a, repeat)
        print(f"{name:12s} {str(q) if hasattr(q, 'bits') else s:42s} {len(np.unique(y)):6d} "
              f"{snr_db(ref, y):7.1f} {8 * a.size / t / 1e9:7.1f}")
    print("\nSNR is against the unquantized (clipped) values; GB/s counts 8 bytes per element "
          "(read x, write y into a preallocated out= buffer; binary_tanh allocates its result).")


if __name__ == "__main__":
    main()
