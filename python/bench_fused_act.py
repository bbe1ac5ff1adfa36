"""Benchmark the quantizer activation fused into the convolution / dense GEMM epilogue.

The QKeras / hls4ml pattern without batch norm: every QConv2D or QDense is followed by a
QActivation("quantized_relu(4)"). Fused (the default), the model runs that activation in the
layer's GEMM epilogue while each output block is in cache and keeps its straight-through
gradient as one bit per element; unfused (the pairing switched off on that model instance), the
convolution writes its float output, the quantizer reads it back and writes the activation, and
the backward keeps the float pre-activation. Both run in this process, interleaved, with the
same weights and data (their outputs and updates are bit-identical: tests/test_ste_mask.py).

Networks (batch 64 / 128, --threads threads):
  * vgg:     VGG-small for 32x32x3 without batch norm: six 3x3 'same' convs 64-64-128-128-256-256,
             2x2 max pooling after every pair, dense 10-way softmax;
  * fashion: the main job's network without batch norm: conv 32 - pool - conv 64 - pool -
             dense 128 - dense 10.
Kernels quantized_bits(4,0,1) (the first conv float). Prints median ms of --repeat runs for a
training step and for inference (predict on the batch), the ratio unfused / fused, and the
bytes the activations keep for the backward.

With batch norm (predict only: a training batch norm needs the batch statistics first, and its
activation is fused into the batch-norm kernel instead): at inference the batch norm is a
per-channel affine map, and it runs in the epilogue too, with the activation after it:
  * vgg-bn:     VGG-small of bench_train_step.py, 8-bit setting (Conv - BN - QActivation);
  * fashion-bn: the main job's network, 4-bit setting.

    python python/bench_fused_act.py
    python python/bench_fused_act.py --threads 1 --nets vgg
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from benchutil import timeit  # noqa: E402

ACT = "quantized_relu(4)"
WQ = "quantized_bits(4,0,1)"


def vgg():
    from qnn_ext import Dense, Flatten, Input, MaxPooling2D, Model, QActivation, QConv2D
    x = inp = Input((32, 32, 3))
    for i, f in enumerate((64, 64, 128, 128, 256, 256)):
        x = QConv2D(f, 3, padding="same", kernel_quantizer=None if i == 0 else WQ)(x)
        x = QActivation(ACT)(x)
        if i % 2 == 1:
            x = MaxPooling2D(2)(x)
    x = Dense(10, activation="softmax")(Flatten()(x))
    return Model(inp, x), 64, (32, 32, 3)


def fashion():
    from qnn_ext import (Dense, Flatten, Input, MaxPooling2D, Model, QActivation, QConv2D,
                         QDense)
    x = inp = Input((28, 28, 1))
    x = QActivation(ACT)(QConv2D(32, 3, padding="same")(x))
    x = MaxPooling2D(2)(x)
    x = QActivation(ACT)(QConv2D(64, 3, padding="same", kernel_quantizer=WQ)(x))
    x = MaxPooling2D(2)(x)
    x = QActivation(ACT)(QDense(128, kernel_quantizer=WQ)(Flatten()(x)))
    x = Dense(10, activation="softmax")(x)
    return Model(inp, x), 128, (28, 28, 1)


def vgg_bn():
    import bench_train_step
    return bench_train_step.qnn_vgg("8-bit"), 64, (32, 32, 3)


def fashion_bn():
    import train_fashion_mnist
    return train_fashion_mnist.build_model("4-bit"), 128, (28, 28, 1)


BUILD = {"vgg": vgg, "fashion": fashion, "vgg-bn": vgg_bn, "fashion-bn": fashion_bn}


def kept_bytes(model):
    """Bytes the activations keep for the backward after a training step."""
    from qnn_ext.layers.quant_utils import SteMask
    from qnn_ext.quantizers import BaseQuantizer
    total = 0
    for layer in model.layers:
        c = getattr(layer, "_act_cache", None)
        if isinstance(c, SteMask):
            total += c.mask.nbytes
        elif isinstance(c, tuple) and len(c) == 4 and isinstance(c[0], BaseQuantizer):
            total += c[1].nbytes
    return total


def run(net, threads, repeat):
    import qnn_ext
    from qnn_ext import _core
    _core.set_num_threads(threads)
    build = BUILD[net]
    pair = []
    for fused in (True, False):
        qnn_ext.backend.set_random_seed(1)
        model, batch, shape = build()
        if not fused:
            model._weight_act_pairs = lambda: {}  # this instance only
        model.compile(optimizer=qnn_ext.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy")
        pair.append(model)
    pair[1].set_weights(pair[0].get_weights())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, batch)
    res = {}
    kinds = ("predict",) if net.endswith("-bn") else ("step", "predict")
    for kind in kinds:
        fns = [(lambda m=m: m.train_on_batch(x, y)) if kind == "step" else
               (lambda m=m: m.predict(x, batch_size=batch, verbose=0)) for m in pair]
        ts = [[], []]
        for r in range(repeat):
            # interleaved, so drifts of the VM hit both alike; the order alternates, as a step
            # runs faster or slower after the other model's (its freed memory, its caches)
            for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                ts[i].append(timeit(fns[i], 3, warm=2 if r < 2 else 1))
        res[kind] = [float(np.median(t)) for t in ts]
    if "step" in kinds:
        pair[0].train_on_batch(x, y)
        pair[1].train_on_batch(x, y)
        res["kept"] = [kept_bytes(m) for m in pair]
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nets", default="vgg,fashion,vgg-bn,fashion-bn")
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    from qnn_ext import _core
    print(f"qnn_ext {_core.get_isa()}, {a.threads} thread(s), activation {ACT}, kernels {WQ}; "
          f"median of {a.repeat} interleaved runs of 3")
    print(f"{'net':10s} {'what':8s} {'fused ms':>9s} {'unfused ms':>11s} {'unfused/fused':>14s}")
    for net in a.nets.split(","):
        r = run(net, a.threads, a.repeat)
        for kind in ("step", "predict"):
            if kind not in r:
                continue
            f, u = r[kind]
            print(f"{net:10s} {kind:8s} {f * 1e3:9.2f} {u * 1e3:11.2f} {u / f:14.2f}")
        if "kept" not in r:
            continue
        kf, ku = r["kept"]
        print(f"{net:10s} {'kept':8s} {kf / 2**20:8.2f}M {ku / 2**20:10.2f}M {ku / max(kf, 1):14.1f}"
              f"   (MB the activations keep for the backward)")


if __name__ == "__main__":
    main()
