"""Benchmark the float32 GEMM against NumPy (OpenBLAS) and PyTorch, measured in the same run.

Square and conv-shaped products (M = pixels, N = Cout, K = 9*Cin), 1 and 2 threads, every ISA
level of our kernels this CPU has. NumPy is measured in child processes because OpenBLAS reads
OPENBLAS_CORETYPE once at load: once with the variable as the environment sets it ("env", the
image exports Haswell = AVX2 kernels) and once with it unset (auto-detection picks OpenBLAS's
AVX-512 kernels). The whole comparison runs --rounds times (references, then ours, per round):
this VM's speed drifts by 5-10% within minutes, so a ratio is taken within a round and the
table prints the median over rounds (GFLOPS: median of the rounds' medians of --repeat warm
runs), with the lowest and highest round's ratio to OpenBLAS's AVX-512 kernels. % of peak is of
the stated clock x 64 FLOP/cycle/core for AVX-512, 32 for AVX2.

    python python/bench_gemm.py                 # all shapes, 1 and 2 threads
    python python/bench_gemm.py --threads 1 --quick --rounds 1
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from benchutil import timeit  # noqa: E402

SHAPES = [  # (M, N, K, what)
    (1024, 1024, 1024, "square"),
    (2048, 2048, 2048, "square"),
    (16384, 64, 576, "conv 64->64 3x3"),
    (65536, 64, 576, "conv 64->64 3x3, B=64 32x32"),
    (16384, 128, 1152, "conv 128->128 3x3"),
    (4096, 256, 2304, "conv 256->256 3x3"),
    (4096, 256, 1152, "conv 128->256 3x3"),
]
QUICK = [SHAPES[0], SHAPES[2], SHAPES[5]]




def operands(m, n, k):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    return a, b, np.empty((m, n), np.float32)


def worker(kind, shapes, threads, repeat):
    """Runs in a child process: times NumPy or torch matmul, prints {shape: seconds} JSON."""
    res = {}
    if kind == "torch":
        import torch
        torch.set_num_threads(threads)
    for m, n, k, _ in shapes:
        a, b, c = operands(m, n, k)
        if kind == "torch":
            ta, tb, tc = (torch.from_numpy(v) for v in (a, b, c))
            res[f"{m}x{n}x{k}"] = timeit(lambda: torch.matmul(ta, tb, out=tc), repeat)
        else:
            res[f"{m}x{n}x{k}"] = timeit(lambda: np.matmul(a, b, out=c), repeat)
    print(json.dumps(res))


def run_child(kind, shapes, threads, repeat, coretype):
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    if coretype == "unset":
        env.pop("OPENBLAS_CORETYPE", None)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--threads", str(threads),
           "--repeat", str(repeat)] + (["--quick"] if shapes is QUICK else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        if kind == "torch":
            return None  # torch is optional (pip install torch==2.13.0, extra [bench])
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clock-ghz", type=float, default=3.5,
                    help="sustained clock used for %% of peak (spec/performance.md §0)")
    ap.add_argument("--quick", action="store_true", help="three shapes only")
    ap.add_argument("--worker", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    shapes = QUICK if args.quick else SHAPES
    rounds = max(1, args.rounds)
    if args.worker:
        worker(args.worker, shapes, args.threads[0], args.repeat)
        return

    import qnn_ext
    from qnn_ext import _core
    isas = qnn_ext.build_info()["isas_available"]
    isas = [i for i in ("avx512", "avx2") if i in isas] or ["ref"]
    env_core = os.environ.get("OPENBLAS_CORETYPE")
    print(f"# qnn_ext {qnn_ext.build_info()['version']}, numpy {np.__version__}, "
          f"OPENBLAS_CORETYPE in the environment: {env_core!r}; peak at {args.clock_ghz} GHz: "
          f"{64 * args.clock_ghz:.0f} GFLOPS/core AVX-512, {32 * args.clock_ghz:.0f} AVX2")
    hdr = (f"{'shape (M x N x K)':<34}{'thr':>4}{'isa':>7}{'GFLOPS':>8}{'%peak':>7}"
           f"{'np env':>8}{'np unset':>9}{'torch':>7}{'x np env':>9}{'x np unset':>11}"
           f"{'(rounds)':>12}{'x torch':>8}")
    print(hdr)
    print("-" * len(hdr))
    prev_isa = _core.get_isa()
    ws = _core.Workspace()  # persistent packing buffers, as the layers use them
    med = lambda v: float(np.median(v)) if v else float("nan")  # noqa: E731
    for nt in args.threads:
        times = {}  # (key, isa or reference) -> seconds per round
        for _ in range(rounds):
            refs = {"env": run_child("numpy", shapes, nt, args.repeat, "env"),
                    "unset": run_child("numpy", shapes, nt, args.repeat, "unset"),
                    "torch": run_child("torch", shapes, nt, args.repeat, "env")}
            _core.set_num_threads(nt)
            for m, n, k, _ in shapes:
                key = f"{m}x{n}x{k}"
                for name, ref in refs.items():
                    if ref:
                        times.setdefault((key, name), []).append(ref[key])
                a, b, c = operands(m, n, k)
                for isa in isas:
                    _core.set_isa(isa)
                    run = lambda: _core.gemm("bench", a, b, out=c, workspace=ws)  # noqa: E731
                    times.setdefault((key, isa), []).append(timeit(run, args.repeat))
        for m, n, k, what in shapes:
            key = f"{m}x{n}x{k}"
            flop = 2.0 * m * n * k
            gf = {name: flop / med(v) / 1e9 for (kk, name), v in times.items() if kk == key}
            for isa in isas:
                ours = times[(key, isa)]
                ratio = {name: [r / o for r, o in zip(times[(key, name)], ours)]
                         for name in ("env", "unset", "torch") if (key, name) in times}
                peak = nt * args.clock_ghz * (64 if isa == "avx512" else 32)
                lo_hi = (f"{min(ratio['unset']):.2f}-{max(ratio['unset']):.2f}"
                         if len(ours) > 1 else "")
                print(f"{key + ' ' + what:<34}{nt:>4}{isa:>7}{gf[isa]:>8.1f}"
                      f"{100 * gf[isa] / peak:>6.0f}%{gf['env']:>8.1f}{gf['unset']:>9.1f}"
                      f"{gf.get('torch', float('nan')):>7.1f}{med(ratio['env']):>9.2f}"
                      f"{med(ratio['unset']):>11.2f}{lo_hi:>12}"
                      f"{med(ratio.get('torch', [])):>8.2f}", flush=True)
    _core.set_isa(prev_isa)
    print(f"GFLOPS: ours; np env / np unset / torch: GFLOPS of the references (median over "
          f"{rounds} rounds of the median of {args.repeat} runs); x ...: speed ratio ours / "
          f"reference within a round (> 1: we are faster), median over rounds; (rounds): lowest "
          f"and highest round's x np unset.")


if __name__ == "__main__":
    main()
