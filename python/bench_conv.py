"""Benchmark our 3x3 convolutions (forward, input gradient, filter gradient) against PyTorch.

Shapes are the convolutions of VGG-small for 32x32x3 inputs at batch 64 and of the Fashion-MNIST
network of the main job at batch 128, NHWC for us, NCHW for PyTorch (its native CPU layout);
'same' padding, stride 1. Prints one table per thread count: median ms of --repeat warm runs,
GFLOPS (2*N*HO*WO*KH*KW*Cin*Cout per pass; forward+backward = 3 passes), % of peak at the
stated clock, and the ratio PyTorch time / our time (> 1: we are faster) for the forward and
for forward+backward (PyTorch: conv2d forward + autograd.grad for input and weight).

--algo (default auto) selects our forward / input-gradient algorithm (backend.set_conv_algorithm:
auto = Winograd F(2x2, 3x3) on the layers it suits, the im2col GEMM elsewhere); the columns
"fwd dir" / "dx dir" time the direct GEMM path in the same run. Winograd does fewer multiplies,
so its GFLOPS (and %peak) are *effective*: the direct convolution's flop count over the time.

    python python/bench_conv.py
    python python/bench_conv.py --threads 2 --repeat 9
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchutil import timeit  # noqa: E402
from qnn_ext import _core  # noqa: E402

# (batch, H=W, Cin, Cout, what); the first layer of each network also needs no input gradient
# in training, but its dx is timed too.
SHAPES = [
    (64, 32, 3, 64, "VGG-small conv1"),
    (64, 32, 64, 64, "VGG-small conv2"),
    (64, 16, 64, 128, "VGG-small conv3"),
    (64, 16, 128, 128, "VGG-small conv4"),
    (64, 8, 128, 256, "VGG-small conv5"),
    (64, 8, 256, 256, "VGG-small conv6"),
    (128, 28, 1, 32, "Fashion conv1"),
    (128, 14, 32, 64, "Fashion conv2"),
]
PAD = (1, 1, 1, 1)




def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--clock-ghz", type=float, default=3.5)
    ap.add_argument("--algo", choices=("auto", "direct", "winograd"), default="auto")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
        print("# torch not installed (pip install torch==2.13.0): PyTorch columns are nan")
    isa = _core.get_isa()
    per_cycle = {"avx512": 64, "avx2": 32}.get(isa, 8)
    print(f"# qnn_ext isa {isa}, torch {torch.__version__ if torch else '-'}; peak at "
          f"{args.clock_ghz} GHz = {per_cycle * args.clock_ghz:.0f} GFLOPS/core")
    rng = np.random.default_rng(0)
    for nt in args.threads:
        _core.set_num_threads(nt)
        if torch:
            torch.set_num_threads(nt)
        hdr = (f"{'layer':<17}{'shape NHWC->Cout':<20}{'thr':>4}{'fwd ms':>8}{'dx ms':>8}"
               f"{'dW ms':>8}{'fwd dir':>8}{'dx dir':>8}{'fwd GF':>8}{'f+b GF':>8}{'%peak':>7}"
               f"{'torch fwd':>10}"
               f"{'torch f+b':>10}{'x fwd':>7}{'x f+b':>7}")
        print(hdr)
        print("-" * len(hdr))
        for n, h, ci, co, what in SHAPES:
            x = rng.standard_normal((n, h, h, ci), dtype=np.float32)
            w = (rng.standard_normal((3, 3, ci, co)) * 0.1).astype(np.float32)
            y = np.empty((n, h, h, co), np.float32)
            dy = rng.standard_normal(y.shape, dtype=np.float32)
            dx, dw = np.empty_like(x), np.empty_like(w)
            t = {}
            for algo in dict.fromkeys((args.algo, "direct")):
                t[algo] = (
                    timeit(lambda: _core.conv2d_forward("c", x, w, (1, 1), PAD, (1, 1), 1, out=y,
                                                        algo=algo), args.repeat),
                    timeit(lambda: _core.conv2d_backward_input("c", dy, w, x.shape, (1, 1), PAD,
                                                               (1, 1), 1, out=dx, algo=algo),
                           args.repeat))
            tf, tdx = t[args.algo]
            tdw = timeit(lambda: _core.conv2d_backward_filter("c", x, dy, w.shape, (1, 1), PAD,
                                                             (1, 1), 1, out=dw), args.repeat)
            flop = 2.0 * n * h * h * 9 * ci * co
            tfb = tf + tdx + tdw
            ttf = ttfb = float("nan")
            if torch:
                xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().requires_grad_()
                wt = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous().requires_grad_()
                gt = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous()
                conv = torch.nn.functional.conv2d
                with torch.no_grad():
                    ttf = timeit(lambda: conv(xt, wt, padding=1), args.repeat)
                ttfb = timeit(lambda: torch.autograd.grad(conv(xt, wt, padding=1), (xt, wt), gt),
                              args.repeat)
            peak = nt * per_cycle * args.clock_ghz
            print(f"{what:<17}{f'{n}x{h}x{h}x{ci}->{co}':<20}{nt:>4}{tf * 1e3:>8.2f}"
                  f"{tdx * 1e3:>8.2f}{tdw * 1e3:>8.2f}{t['direct'][0] * 1e3:>8.2f}"
                  f"{t['direct'][1] * 1e3:>8.2f}{flop / tf / 1e9:>8.1f}"
                  f"{3 * flop / tfb / 1e9:>8.1f}{100 * 3 * flop / tfb / 1e9 / peak:>6.0f}%"
                  f"{ttf * 1e3:>10.2f}{ttfb * 1e3:>10.2f}{ttf / tf:>7.2f}{ttfb / tfb:>7.2f}",
                  flush=True)
    print(f"algo {args.algo}; f+b = forward + dx + dW; %peak of f+b (effective for Winograd); "
          "fwd dir / dx dir: our direct GEMM path; x fwd / x f+b: PyTorch time / our time.")


if __name__ == "__main__":
    main()
