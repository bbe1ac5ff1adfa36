"""Integer inference speed: per layer and end to end, integer kernels vs our float inference vs
PyTorch float, batch 1 and 64, 1 and 2 threads. Every ratio is against a reference measured in
the same run; times are medians of several warm runs (this VM is shared and noisy).

    python python/bench_deploy.py                 # everything (~1-2 min)
    python python/bench_deploy.py --quick         # fewer runs, batch 64 end to end only

Layers:
  ternary weights (two bit-planes) on the same binary input, same output;
  binary 3x3 conv 14x14x256 -> 256, "same" zero padding (115.6 M binary MACs per image), input
  bit-packed, BN + sign fused, bit-packed output (what a binary layer gets from and gives to its
  neighbours); our float conv and PyTorch's on the same +-1 values;
  int8 3x3 conv of the same shape with 4-bit activations (u8 levels in, levels out via
  thresholds) and 4-bit weights.
End to end: the main job's CNN (python/train_fashion_mnist.py) at the binary and 4-bit settings,
IntegerModel.predict vs Model.predict vs the same network as a PyTorch float module.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import qnn_ext  # noqa: E402
from qnn_ext import _core, deploy  # noqa: E402
from qnn_ext.deploy.packing import (pack_binary_weights, pack_int8_weights,  # noqa: E402
                                    pack_ternary_weights)

F32 = np.float32


def median_time(fn, runs, min_time=0.2):
    fn()
    fn()
    ts = []
    t_end = time.perf_counter() + min_time
    while len(ts) < runs or (time.perf_counter() < t_end and len(ts) < 50 * runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def torch_or_none():
    try:
        import torch
        return torch
    except ImportError:
        return None


def set_threads(n, torch):
    qnn_ext.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def bench_layers(batches, threads, runs, torch):
    rng = np.random.default_rng(0)
    H = W = 14
    C = CO = 256
    rows = []
    for n in batches:
        xf = np.where(rng.random((n, H, W, C)) < 0.5, -1.0, 1.0).astype(F32)
        wcodes = np.where(rng.random((3, 3, C, CO)) < 0.5, -1, 1)
        wf = wcodes.astype(F32)
        panel, wsum = pack_binary_weights(wcodes)
        xk = _core.bnn_bitpack("bench", xf)
        ib = np.full(CO, 9 * C, np.int32)
        thr = rng.integers(-50, 50, (1, CO)).astype(np.int32)
        dirs = np.ones(CO, np.int8)
        ws = _core.bnn_workspace()
        ob = np.empty((n, H, W, CO // 64), np.uint64)
        tpanel, twsum, tnnz = pack_ternary_weights(rng.integers(-1, 2, (3, 3, C, CO)))
        xi = rng.integers(0, 16, (n, H, W, C)).astype(np.uint8)
        wi = rng.integers(-7, 8, (3, 3, C, CO)).astype(np.int8)
        pi = pack_int8_weights(wi)
        thr4 = np.sort(rng.integers(-3000, 3000, (15, CO)), axis=0).astype(np.int32)
        oi = np.empty((n, H, W, CO), np.uint8)
        xt = wt = None
        if torch is not None:
            xt = torch.from_numpy(xf).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
            wt = torch.from_numpy(wf).permute(3, 2, 0, 1).contiguous()
        for t in threads:
            set_threads(t, torch)
            tb = median_time(lambda: _core.bnn_conv2d(
                "bench", "binary", xk, panel, C, CO, (3, 3), (1, 1), (1, 1, 1, 1), ib, -2, "bits",
                thr=thr, dir=dirs, wsum=wsum, ws=ws, out=ob), runs)
            tpk = median_time(lambda: _core.bnn_bitpack("bench", xf), runs)
            tter = median_time(lambda: _core.bnn_conv2d(
                "bench", "ternary", xk, tpanel, C, CO, (3, 3), (1, 1), (1, 1, 1, 1), tnnz, -2, "bits",
                thr=thr, dir=dirs, wsum=twsum, ws=ws, out=ob), runs)
            ti = median_time(lambda: _core.bnn_conv2d(
                "bench", "int8", xi, pi, C, CO, (3, 3), (1, 1), (1, 1, 1, 1), np.zeros(CO, np.int32), 1,
                "codes", thr=thr4, dir=dirs, code_mul=1, zp=0, ws=ws, out=oi), runs)
            tf = median_time(lambda: _core.conv2d_forward("bench", xf, wf, (1, 1), (1, 1, 1, 1), (1, 1), 1),
                             runs)
            tt = float("nan")
            if torch is not None:
                with torch.no_grad():
                    tt = median_time(lambda: torch.nn.functional.conv2d(xt, wt, padding=1), runs)
            bmacs = n * H * W * CO * 9 * C
            rows.append(dict(batch=n, threads=t, binary_us=tb * 1e6, bitpack_us=tpk * 1e6, ternary_us=tter * 1e6,
                             int8_us=ti * 1e6, float_us=tf * 1e6, torch_us=tt * 1e6,
                             tbmacs=bmacs / tb / 1e12, int8_gops=2 * bmacs / ti / 1e9,
                             float_gflops=2 * bmacs / tf / 1e9))
    print("\nLayer: 3x3 conv 14x14x256 -> 256, same padding (115.6 M MACs per image)")
    print(f"{'batch':>5s} {'thr':>3s} | {'binary µs':>10s} {'TbMAC/s':>7s} {'(+pack µs)':>10s} {'tern µs':>8s} | "
          f"{'int8 µs':>9s} {'GOPS':>5s} | {'float µs':>9s} {'GFLOPS':>6s} | {'torch µs':>9s} | "
          f"{'bin/float':>9s} {'bin/torch':>9s} {'int8/float':>10s} {'int8/torch':>10s}")
    for r in rows:
        print(f"{r['batch']:5d} {r['threads']:3d} | {r['binary_us']:10.1f} {r['tbmacs']:7.2f} "
              f"{r['bitpack_us']:10.1f} {r['ternary_us']:8.1f} | {r['int8_us']:9.1f} {r['int8_gops']:5.0f} | {r['float_us']:9.1f} "
              f"{r['float_gflops']:6.0f} | {r['torch_us']:9.1f} | {r['float_us'] / r['binary_us']:8.1f}x "
              f"{r['torch_us'] / r['binary_us']:8.1f}x {r['float_us'] / r['int8_us']:9.1f}x "
              f"{r['torch_us'] / r['int8_us']:9.1f}x")
    return rows


def torch_cnn(model, torch):
    """The job's CNN as a float PyTorch module with the same (float) weights."""
    nn = torch.nn
    get = lambda name: model.get_layer(name)

    def conv(name, cin, cout):
        m = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        m.weight.data = torch.from_numpy(get(name).kernel.value.transpose(3, 2, 0, 1).copy())
        return m

    def bn(name, c, d=2):
        m = nn.BatchNorm2d(c, eps=1e-3) if d == 2 else nn.BatchNorm1d(c, eps=1e-3)
        layer = get(name)
        m.weight.data = torch.from_numpy(layer.gamma.value.copy())
        m.bias.data = torch.from_numpy(layer.beta.value.copy())
        m.running_mean = torch.from_numpy(layer.moving_mean.value.copy())
        m.running_var = torch.from_numpy(layer.moving_variance.value.copy())
        return m

    d1 = nn.Linear(7 * 7 * 64, 128, bias=False)
    d1.weight.data = torch.from_numpy(get("dense1").kernel.value.T.copy())
    d2 = nn.Linear(128, 10)
    d2.weight.data = torch.from_numpy(get("dense2").kernel.value.T.copy())
    d2.bias.data = torch.from_numpy(get("dense2").bias.value.copy())
    net = nn.Sequential(conv("conv1", 1, 32), bn("bn1", 32), nn.ReLU(), nn.MaxPool2d(2),
                        conv("conv2", 32, 64), bn("bn2", 64), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), d1, bn("bn3", 128, 1), nn.ReLU(), d2, nn.Softmax(-1))
    return net.eval()


def bench_end_to_end(batches, threads, runs, torch):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import train_fashion_mnist as job
    rng = np.random.default_rng(1)
    rows = []
    for setting in ("binary", "4-bit"):
        qnn_ext.utils.set_random_seed(1)
        model = job.build_model(setting)
        for layer in model.layers:  # trained-looking BN statistics
            if isinstance(layer, qnn_ext.BatchNormalization):
                c = layer.gamma.value.size
                layer.moving_mean.value[...] = rng.normal(0, 2, c)
                layer.moving_variance.value[...] = rng.uniform(1, 10, c)
        im = deploy.convert(model)
        net = torch_cnn(model, torch) if torch is not None else None
        for n in batches:
            x = rng.random((n, 28, 28, 1)).astype(F32)
            assert np.array_equal(im.predict(x, batch_size=n), model.predict(x, batch_size=n))
            xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()) if torch is not None else None
            for t in threads:
                set_threads(t, torch)
                ti = median_time(lambda: im.predict(x, batch_size=n), runs)
                tf = median_time(lambda: model.predict(x, batch_size=n), runs)
                tt = float("nan")
                if torch is not None:
                    with torch.no_grad():
                        tt = median_time(lambda: net(xt), runs)
                rows.append(dict(setting=setting, batch=n, threads=t, int_ms=ti * 1e3,
                                 float_ms=tf * 1e3, torch_ms=tt * 1e3))
    print("\nEnd to end: the main job's Fashion-MNIST CNN (predict of one batch)")
    print(f"{'setting':8s} {'batch':>5s} {'thr':>3s} | {'integer ms':>10s} {'our float ms':>12s} "
          f"{'torch ms':>9s} | {'vs our float':>12s} {'vs torch':>8s}")
    for r in rows:
        print(f"{r['setting']:8s} {r['batch']:5d} {r['threads']:3d} | {r['int_ms']:10.3f} "
              f"{r['float_ms']:12.3f} {r['torch_ms']:9.3f} | {r['float_ms'] / r['int_ms']:11.1f}x "
              f"{r['torch_ms'] / r['int_ms']:7.1f}x")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args(argv)
    runs = args.runs or (5 if args.quick else 15)
    torch = torch_or_none()
    info = qnn_ext.build_info()
    print(f"qnn_ext {info['version']} isa={info['isa']} | torch "
          f"{torch.__version__ if torch else 'not installed'} | medians of >= {runs} runs")
    threads = [1, 2]
    bench_layers([1] if args.quick else [1, 64], threads, runs, torch)
    bench_end_to_end([64] if args.quick else [1, 64], threads, runs, torch)


if __name__ == "__main__":
    main()
