"""Benchmark the fused C quantizer kernels against the same math in NumPy and PyTorch.

For quantized_bits, quantized_relu, binary, ternary and quantized_po2 on N floats (default
16 M), forward and forward+gradient, at every ISA level this CPU has. Prints one table:
median time of --repeat warm runs, effective bandwidth (forward moves 8 bytes/element: read x,
write y; forward+gradient adds 12: read x and dy, write dx) and the speed ratio to NumPy (same
math, preallocated outputs, each ufunc one pass; and as usually written, with temporaries)
and to PyTorch (fake_quantize_per_tensor_affine
for the affine quantizers, composed tensor ops for the others) when torch is installed.

    python python/bench_quantizers.py                # 1 thread, 16 M floats
    python python/bench_quantizers.py --threads 2 --n 4000000
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchutil import timeit  # noqa: E402
import qnn_ext  # noqa: E402
from qnn_ext import _core  # noqa: E402

F32 = np.float32




# ---------------------------------------------------------------- NumPy references (same math)

def np_bits(x, y, t):
    # quantized_bits(4,0,0): clip(rint(x*8), -8, 7) / 8
    np.multiply(x, F32(8), out=t)
    np.rint(t, out=t)
    np.clip(t, F32(-8), F32(7), out=t)
    np.multiply(t, F32(0.125), out=y)


def np_relu(x, y, t):
    # quantized_relu(4,0): clip(rint(x*16)/16, 0, 15/16)
    np.multiply(x, F32(16), out=t)
    np.rint(t, out=t)
    np.multiply(t, F32(1 / 16), out=t)
    np.clip(t, F32(0), F32(15 / 16), out=y)


def np_binary(x, y, t):
    np.copysign(F32(1), x, out=y)
    # copysign keeps -0.0 -> -1; binary maps 0 -> +1 like x >= 0
    np.putmask(y, x == 0, F32(1))


def np_ternary(x, y, t):
    np.abs(x, out=t)
    np.greater_equal(t, F32(0.33), out=y)
    np.sign(x, out=t)
    np.multiply(y, t, out=y)


def np_po2(x, y, t):
    # quantized_po2(4): sign * 2**clip(round(log2|x|), -4, 3); |x| < eps -> 2**-4
    np.abs(x, out=t)
    small = t < F32(1e-7)
    np.log2(t, out=t)
    np.rint(t, out=t)
    np.clip(t, F32(-4), F32(3), out=t)
    t[small] = F32(-4)
    np.exp2(t, out=t)
    np.copysign(t, x, out=y)
    np.putmask(y, x == 0, F32(2 ** -4))


# The same math as NumPy code is usually written: expressions with temporaries.
NAIVE = {
    "fq": lambda x: np.clip(np.rint(x * F32(8)), -8, 7) * F32(0.125),
    "fq_relu": lambda x: np.clip(np.rint(x * F32(16)) / F32(16), 0, F32(15 / 16)),
    "sign": lambda x: np.where(x >= 0, F32(1), F32(-1)),
    "ternary": lambda x: np.sign(x) * (np.abs(x) >= F32(0.33)),
    "po2": lambda x: np.where(np.abs(x) < F32(1e-7), F32(2 ** -4) * np.where(x >= 0, 1, -1),
                              np.where(x >= 0, F32(1), F32(-1)) * np.exp2(np.clip(np.rint(np.log2(np.abs(x))), -4, 3))),
}


def np_ste_grad(x, dy, dx):
    np.copyto(dx, dy)  # form A: identity


def np_relu_grad(x, dy, dx):
    np.multiply(dy, (x > 0) & (x <= F32(15 / 16)), out=dx)


CASES = [
    ("quantized_bits(4,0,0)", lambda: qnn_ext.quantized_bits(4, 0, 0), np_bits, np_ste_grad, "fq"),
    ("quantized_relu(4,0)", lambda: qnn_ext.quantized_relu(4, 0), np_relu, np_relu_grad, "fq_relu"),
    ("binary()", lambda: qnn_ext.binary(alpha=1.0), np_binary, np_ste_grad, "sign"),
    ("ternary()", lambda: qnn_ext.ternary(alpha=1.0), np_ternary, np_ste_grad, "ternary"),
    ("quantized_po2(4)", lambda: qnn_ext.quantized_po2(4), np_po2, np_ste_grad, "po2"),
]


def torch_fns(kind, torch, n):
    x = torch.randn(n)
    if kind == "fq":
        f = lambda t: torch.fake_quantize_per_tensor_affine(t, 0.125, 0, -8, 7)
    elif kind == "fq_relu":
        f = lambda t: torch.fake_quantize_per_tensor_affine(t, 1 / 16, 0, 0, 15)
    elif kind == "sign":
        f = lambda t: torch.where(t >= 0, 1.0, -1.0) + (t - t.detach())
    elif kind == "ternary":
        f = lambda t: (torch.sign(t) * (t.abs() >= 0.33)).detach() + (t - t.detach())
    else:
        f = lambda t: (torch.sign(t) * torch.exp2(torch.clamp(torch.round(torch.log2(t.abs())), -4, 3))).detach() + (t - t.detach())

    def fwd():
        with torch.no_grad():
            f(x)

    xg = x.clone().requires_grad_(True)
    dy = torch.randn(n)

    def fwd_bwd():
        xg.grad = None
        f(xg).backward(dy)

    return fwd, fwd_bwd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16 * 1024 * 1024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()

    qnn_ext.set_num_threads(args.threads)
    torch = None
    if not args.no_torch:
        try:
            import torch as _t
            torch = _t
            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    info = qnn_ext.build_info()
    isas = info["isas_available"]
    n = args.n
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * 0.7).astype(F32)
    dy = rng.standard_normal(n).astype(F32)
    y, dx, t = np.empty_like(x), np.empty_like(x), np.empty_like(x)

    print(f"qnn_ext {info['version']} | {n/1e6:.1f} M floats | threads {args.threads} | ISAs {isas} "
          f"| numpy {np.__version__} | torch {torch.__version__ if torch else 'not installed'} "
          f"| OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print(f"median of {args.repeat} warm runs; forward moves 8 B/elem, forward+gradient 20 B/elem; "
          f"qnn_ext writes into preallocated out= buffers")
    hdr = (f"{'quantizer':24s} {'pass':9s} {'isa':7s} {'ms':>8s} {'GB/s':>7s} {'np ms':>7s} "
           f"{'x np':>6s} {'np-naive ms':>11s} {'x naive':>7s} {'torch ms':>9s} {'x torch':>8s}")
    print(hdr)
    print("-" * len(hdr))
    old_isa = _core.get_isa()
    results = []
    for name, make, np_f, np_g, tkind in CASES:
        q = make()
        t_np_f = timeit(lambda: np_f(x, y, t), args.repeat)
        t_nv_f = timeit(lambda: NAIVE[tkind](x), args.repeat)
        t_np_fb = t_np_f + timeit(lambda: np_g(x, dy, dx), args.repeat)
        if torch is not None:
            tf, tfb = torch_fns(tkind, torch, n)
            t_t_f, t_t_fb = timeit(tf, args.repeat), timeit(tfb, args.repeat)
        else:
            t_t_f = t_t_fb = None
        for isa in isas:
            _core.set_isa(isa)
            t_f = timeit(lambda: q(x, out=y), args.repeat)
            t_fb = timeit(lambda: (q(x, out=y), q.gradient(x, dy, out=dx)), args.repeat)
            for pas, tq, tn, tv, tt, nbytes in (("fwd", t_f, t_np_f, t_nv_f, t_t_f, 8),
                                                ("fwd+grad", t_fb, t_np_fb, None, t_t_fb, 20)):
                gbs = n * nbytes / tq / 1e9
                tor = f"{tt*1e3:9.2f} {tt/tq:8.1f}" if tt else f"{'-':>9s} {'-':>8s}"
                nv = f"{tv*1e3:11.2f} {tv/tq:7.1f}" if tv else f"{'-':>11s} {'-':>7s}"
                print(f"{name:24s} {pas:9s} {isa:7s} {tq*1e3:8.2f} {gbs:7.1f} {tn*1e3:7.2f} "
                      f"{tn/tq:6.1f} {nv} {tor}")
                results.append((name, pas, isa, tq, gbs, tn / tq, (tt / tq) if tt else None))
        _core.set_isa(old_isa)
    return results


if __name__ == "__main__":
    main()
