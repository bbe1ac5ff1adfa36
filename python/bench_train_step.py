"""Benchmark one training step (forward, loss, backward, Adam update) against PyTorch.

Networks:
  * VGG-small for 32x32x3 inputs, batch 64: six 3x3 'same' convs 64-64-128-128-256-256, each
    followed by batch norm and the activation, 2x2 max pooling after every pair, then a dense
    10-way softmax classifier (spec/performance.md §8-§9);
  * the Fashion-MNIST network of the main job (python/train_fashion_mnist.py), batch 128.
Settings:
  * float: float weights, ReLU;
  * 8-bit: quantized_bits(8,0,1) kernels and quantized_relu(8,2) activations (QAT, fake-quant);
    PyTorch: per-tensor 8-bit fake_quantize_per_tensor_affine on weights and activations, as
    torch.ao.quantization QAT does (its STE keeps the in-range gradient);
  * binary: binary() kernels and activations; PyTorch: sign with the clipped STE on both.
First conv of VGG-small stays float in the binary settings, as is usual (and in the main job).

PyTorch runs in child processes (NCHW, its native layout), twice: with glibc's default malloc
and with GLIBC_TUNABLES that stop glibc returning freed memory to the OS (our step is also timed
with them, in a child, so that column compares like with like) (first touch of fresh
pages costs ~3 ms/MB on this VM, spec §7, and PyTorch re-faults its large temporaries on every
step otherwise). Prints median ms/step of --steps warm steps and the ratios; our 8-bit and
binary steps are also given relative to our own float step.

    python python/bench_train_step.py                 # 2 threads, both networks
    python python/bench_train_step.py --threads 1 --nets vgg
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from benchutil import timeit  # noqa: E402

TUNABLES = "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=17179869184"
SETTINGS = ("float", "8-bit", "binary")
NETS = {"vgg": (64, (32, 32, 3)), "fashion": (128, (28, 28, 1))}




def data(net):
    batch, shape = NETS[net]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, batch)
    return x, y


# ------------------------------------------------------------------------------- qnn_ext

def qnn_vgg(setting):
    from qnn_ext import (BatchNormalization, Dense, Flatten, Input, MaxPooling2D, Model,
                         QActivation, QConv2D)
    wq = {"float": None, "8-bit": "quantized_bits(8,0,1)", "binary": "binary()"}[setting]
    act = {"float": "relu", "8-bit": "quantized_relu(8,2)", "binary": "binary()"}[setting]
    x = inp = Input((32, 32, 3))
    for i, f in enumerate((64, 64, 128, 128, 256, 256)):
        first = i == 0 and setting == "binary"
        x = QConv2D(f, 3, padding="same", use_bias=False,
                    kernel_quantizer=None if first else wq)(x)
        x = BatchNormalization()(x)
        x = QActivation(act)(x)
        if i % 2 == 1:
            x = MaxPooling2D(2)(x)
    x = Flatten()(x)
    x = Dense(10, activation="softmax")(x)
    return Model(inp, x)


def qnn_step(net, setting, threads):
    import qnn_ext
    from qnn_ext import _core
    _core.set_num_threads(threads)
    if net == "vgg":
        model = qnn_vgg(setting)
    else:
        import train_fashion_mnist as tfm
        model = tfm.build_model(setting)
    model.compile(optimizer=qnn_ext.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy")
    x, y = data(net)
    return lambda: model.train_on_batch(x, y)


# ------------------------------------------------------------------------------- PyTorch

def torch_step(net, setting, threads):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.set_num_threads(threads)

    class SignSTE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.where(x >= 0, 1.0, -1.0)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (x.abs() <= 1).to(g.dtype)

    def fq(t):  # 8-bit per-tensor fake quant, scale from the current range (as an observer)
        scale = float(t.detach().abs().max()) / 127.0 + 1e-12
        return torch.fake_quantize_per_tensor_affine(t, scale, 0, -128, 127)

    def fq_relu(t):
        scale = 4.0 / 255.0  # quantized_relu(8,2): [0, 4) in 256 steps
        return torch.fake_quantize_per_tensor_affine(F.relu(t), scale, 0, 0, 255)

    wq = {"float": lambda w: w, "8-bit": fq, "binary": SignSTE.apply}[setting]
    act = {"float": F.relu, "8-bit": fq_relu, "binary": SignSTE.apply}[setting]

    class QConv(nn.Conv2d):
        def __init__(self, cin, cout, quant):
            super().__init__(cin, cout, 3, padding=1, bias=False)
            self.quant = quant

        def forward(self, x):
            return F.conv2d(x, self.quant(self.weight) if self.quant else self.weight,
                            padding=1)

    class QLinear(nn.Linear):
        def __init__(self, cin, cout, quant):
            super().__init__(cin, cout, bias=False)
            self.quant = quant

        def forward(self, x):
            return F.linear(x, self.quant(self.weight) if self.quant else self.weight)

    layers = []
    if net == "vgg":
        cin = 3
        for i, f in enumerate((64, 64, 128, 128, 256, 256)):
            first = i == 0 and setting == "binary"
            layers += [QConv(cin, f, None if first else wq), nn.BatchNorm2d(f), Act(act)]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            cin = f
        layers += [nn.Flatten(), nn.Linear(256 * 4 * 4, 10)]
    else:  # the main job's network, with its per-setting first/last quantizers
        first = None if setting in ("float", "binary") else fq
        last = None if setting == "float" else fq
        layers = [QConv(1, 32, first), nn.BatchNorm2d(32), Act(act), nn.MaxPool2d(2),
                  QConv(32, 64, wq if setting != "float" else None), nn.BatchNorm2d(64),
                  Act(act), nn.MaxPool2d(2), nn.Flatten(),
                  QLinear(64 * 7 * 7, 128, wq if setting != "float" else None),
                  nn.BatchNorm1d(128), Act(act), nn.Linear(128, 10)]
        if last:
            layers[-1] = QLinearBias(128, 10, last)
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = data(net)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    yt = torch.from_numpy(y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return step


class Act:
    """Wraps a function as an nn.Module (defined lazily so torch stays optional)."""

    def __new__(cls, fn):
        import torch.nn as nn

        class _Act(nn.Module):
            def forward(self, x):
                return fn(x)
        return _Act()


class QLinearBias:
    def __new__(cls, cin, cout, quant):
        import torch.nn as nn
        import torch.nn.functional as F

        class _L(nn.Linear):
            def forward(self, x):
                return F.linear(x, quant(self.weight), self.bias)
        return _L(cin, cout)


def child(args):
    res = {}
    make = qnn_step if args.child == "ours" else torch_step
    for net in args.nets:
        for s in SETTINGS:
            res[f"{net}/{s}"] = timeit(make(net, s, args.threads[0]), args.steps)
    print(json.dumps(res))


def run_child(args, nt, tunables, who="torch"):
    """Median step times of `who` ('torch' or 'ours') measured in a child process, with glibc's
    default malloc or with TUNABLES."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(nt)
    if tunables:
        env["GLIBC_TUNABLES"] = TUNABLES
    else:
        env.pop("GLIBC_TUNABLES", None)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", who, "--threads", str(nt),
           "--steps", str(args.steps), "--nets"] + args.nets
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-2000:])
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="*", default=[2])
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--nets", nargs="*", default=list(NETS), choices=list(NETS))
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--child", choices=("torch", "ours"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    try:
        import torch  # noqa: F401
        have_torch = not args.no_torch
    except ImportError:
        have_torch = False
        print("# torch not installed (pip install torch==2.13.0): PyTorch columns are nan")
    nan = float("nan")
    for nt in args.threads:
        t_def = run_child(args, nt, False) if have_torch else None
        t_tun = run_child(args, nt, True) if have_torch else None
        o_tun = run_child(args, nt, True, "ours")
        hdr = (f"{'network':<10}{'setting':<8}{'thr':>4}{'ours ms':>9}{'ours+tun ms':>12}"
               f"{'x own float':>12}{'torch ms':>10}{'torch+tun ms':>13}{'x torch':>9}"
               f"{'x torch+tun':>12}{'torch x own float':>18}")
        print(hdr)
        print("-" * len(hdr))
        for net in args.nets:
            ours = {}
            for s in SETTINGS:
                ours[s] = timeit(qnn_step(net, s, nt), args.steps)
                key = f"{net}/{s}"
                td = t_def[key] if t_def else nan
                tt = t_tun[key] if t_tun else nan
                tf = t_tun[f"{net}/float"] if t_tun else nan
                ot = o_tun[key] if o_tun else nan
                print(f"{net:<10}{s:<8}{nt:>4}{ours[s] * 1e3:>9.1f}{ot * 1e3:>12.1f}"
                      f"{ours[s] / ours['float']:>12.2f}{td * 1e3:>10.1f}{tt * 1e3:>13.1f}"
                      f"{td / ours[s]:>9.2f}{tt / ot:>12.2f}{tt / tf:>18.2f}", flush=True)
    print("x own float: our step / our float step; x torch: PyTorch time / our time, both with "
          "glibc's default malloc; x torch+tun: the same with GLIBC_TUNABLES (no munmap) for both "
          "(> 1: we are faster); torch x own float: PyTorch's quantized step / its float step. "
          "Median of", args.steps, "steps.")


if __name__ == "__main__":
    main()
