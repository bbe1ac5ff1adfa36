"""The main job: train one small CNN on Fashion-MNIST at float, 8-bit, 4-bit, 2-bit, ternary and
binary settings and compare test accuracy, time per epoch and weight memory.

Network (same for every setting):
    QConv2D(32, 3x3, same) - BN - act - MaxPool 2
    QConv2D(64, 3x3, same) - BN - act - MaxPool 2
    Flatten - QDense(128) - BN - act - QDense(10) - softmax
Weights of the middle layers (conv 2 and dense 1) and all activations use the setting's
quantizer. The first conv and the last dense keep 8-bit weights in every quantized setting
(binary: the first conv is float), the usual choice for low-bit networks; batch norm and the
softmax stay float. Training: Adam, learning rate 2e-3 with cosine decay, batch 128, 4 epochs.

At the end the binary and 4-bit models are converted to integer models (qnn_ext.deploy:
bit-packed XNOR-popcount / int8 kernels) and their test accuracy, agreement with the
fake-quant model and speed-up at batch 64 are printed next to the float-simulated numbers
(--no-deploy skips this; a failure there is reported, never fatal).

    python python/train_fashion_mnist.py                 # all settings, default epochs
    python python/train_fashion_mnist.py --quick         # one-minute smoke run
    python python/train_fashion_mnist.py --epochs 3 --settings float binary --out results/
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import qnn_ext  # noqa: E402
from qnn_ext import (Activation, BatchNormalization, Flatten, Input, MaxPooling2D, Model,  # noqa: E402
                     QActivation, QConv2D, QDense)
from qnn_ext.datasets import fashion_mnist  # noqa: E402

Q8 = "quantized_bits(8,0,1)"
SETTINGS = {
    #  name      weight quantizer          activation         weight bits  act bits
    "float":   (None,                    "relu",             32, 32),
    "8-bit":   ("quantized_bits(8,0,1)", "quantized_relu(8,2)", 8, 8),
    "4-bit":   ("quantized_bits(4,0,1)", "quantized_relu(4,2)", 4, 4),
    "2-bit":   ("quantized_bits(2,0,1)", "quantized_relu(2,1)", 2, 2),
    "ternary": ("ternary()",             "ternary()",        2, 2),
    "binary":  ("binary()",              "binary()",         1, 1),
}


def build_model(setting):
    wq, act, _, _ = SETTINGS[setting]
    first_q = None if setting in ("float", "binary") else Q8
    last_q = None if setting == "float" else Q8
    x = inp = Input((28, 28, 1))
    x = QConv2D(32, 3, padding="same", use_bias=False, kernel_quantizer=first_q, name="conv1")(x)
    x = BatchNormalization(name="bn1")(x)
    x = QActivation(act, name="act1")(x)
    x = MaxPooling2D(2, name="pool1")(x)
    x = QConv2D(64, 3, padding="same", use_bias=False, kernel_quantizer=wq, name="conv2")(x)
    x = BatchNormalization(name="bn2")(x)
    x = QActivation(act, name="act2")(x)
    x = MaxPooling2D(2, name="pool2")(x)
    x = Flatten(name="flatten")(x)
    x = QDense(128, use_bias=False, kernel_quantizer=wq, name="dense1")(x)
    x = BatchNormalization(name="bn3")(x)
    x = QActivation(act, name="act3")(x)
    x = QDense(10, kernel_quantizer=last_q, bias_quantizer=None, name="dense2")(x)
    out = Activation("softmax", name="softmax")(x)
    return Model(inp, out, name=f"fmnist_{setting}")


def weight_memory_bits(model):
    """Bits to store the weights as deployed: quantized kernels at their bit width, the rest
    (biases, batch norm) as float32."""
    total = 0
    for layer in model.layers:
        qs = dict(zip([w.name.split("/")[-1] for w in layer.weights], [None] * len(layer.weights)))
        for v in layer.weights:
            bits = 32
            short = v.name.split("/")[-1]
            q = getattr(layer, f"{short}_quantizer_internal", None)
            if q is not None and hasattr(q, "bits"):
                bits = int(q.bits)
            total += v.value.size * bits
        del qs
    return int(total)


DEPLOY_SETTINGS = ("binary", "4-bit")


def median_seconds(fn, runs=7):
    fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def deploy_report(model, x_test, y_test, float_probs):
    """Integer model of `model`: accuracy, agreement with the fake-quant predictions (classes and
    logits) and predict time per batch of 64, integer vs float-simulated."""
    from qnn_ext import deploy
    t0 = time.perf_counter()
    im = deploy.convert(model)
    convert_s = time.perf_counter() - t0
    probs = im.predict(x_test, batch_size=64)
    xb = x_test[:64]
    t_int = median_seconds(lambda: im.predict(xb, batch_size=64))
    t_float = median_seconds(lambda: model.predict(xb, batch_size=64))
    return {"accuracy": float(np.mean(probs.argmax(1) == y_test)),
            "class_agreement": float(np.mean(probs.argmax(1) == float_probs.argmax(1))),
            "max_abs_output_diff": float(np.max(np.abs(probs - float_probs))),
            "integer_layers": len(im.integer_layers()), "convert_seconds": round(convert_s, 2),
            "float_ms_per_batch64": round(t_float * 1e3, 3), "int_ms_per_batch64": round(t_int * 1e3, 3),
            "speedup": round(t_float / t_int, 2)}


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["weight_bits"] for r in results]
    ys = [100 * r["test_accuracy"] for r in results]
    ax.plot(xs, ys, "o-")
    for r, x, y in zip(results, xs, ys):
        ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("weight bits")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Fashion-MNIST, qnn_ext")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=None, help="epochs per setting (default 4; --quick: 1)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="smoke run: 6000 training images, 1 epoch")
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--out", default="results", help="output directory (default results/)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-deploy", action="store_true",
                    help="skip converting the binary and 4-bit models to integer models")
    args = ap.parse_args(argv)
    epochs = args.epochs or (1 if args.quick else 4)

    t_start = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    x_train = (x_train.astype(np.float32) / 255.0)[..., None]
    x_test = (x_test.astype(np.float32) / 255.0)[..., None]
    if args.quick:
        x_train, y_train = x_train[:6000], y_train[:6000]
    info = qnn_ext.build_info()
    print(f"qnn_ext {info['version']} isa={info['isa']} threads={info['num_threads']} | "
          f"train {x_train.shape[0]} test {x_test.shape[0]} | epochs {epochs} batch {args.batch_size}")

    results = []
    for name in args.settings:
        qnn_ext.utils.set_random_seed(args.seed)
        model = build_model(name)
        # Adam with a cosine-decayed learning rate: the last epochs at small steps are what lift
        # the low-bit settings at only 4 epochs.
        steps = epochs * -(-x_train.shape[0] // args.batch_size)
        lr = qnn_ext.optimizers.schedules.CosineDecay(2e-3, decay_steps=steps)
        model.compile(optimizer=qnn_ext.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        print(f"\n== {name}: weights {SETTINGS[name][0] or 'float'}, activations {SETTINGS[name][1]}")
        t0 = time.perf_counter()
        model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs, verbose=1)
        sec_per_epoch = (time.perf_counter() - t0) / epochs
        loss, acc = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
        results.append({"name": name, "weight_bits": SETTINGS[name][2],
                        "activation_bits": SETTINGS[name][3], "test_accuracy": float(acc),
                        "seconds_per_epoch": round(sec_per_epoch, 2),
                        "weight_memory_bits": weight_memory_bits(model)})
        print(f"   test accuracy {100 * acc:.2f}%  ({sec_per_epoch:.1f} s/epoch)")
        if name in DEPLOY_SETTINGS and not args.no_deploy:
            try:
                probs = model.predict(x_test, batch_size=500)
                results[-1]["integer"] = deploy_report(model, x_test, y_test, probs)
            except Exception as e:  # the integer model is an extra: report, never lose the run
                print(f"   integer model failed: {type(e).__name__}: {e}")

    total = time.perf_counter() - t_start
    print(f"\n{'setting':9s} {'w bits':>6s} {'a bits':>6s} {'test acc':>9s} {'s/epoch':>8s} {'weight KiB':>11s}")
    for r in results:
        print(f"{r['name']:9s} {r['weight_bits']:6d} {r['activation_bits']:6d} "
              f"{100 * r['test_accuracy']:8.2f}% {r['seconds_per_epoch']:8.1f} "
              f"{r['weight_memory_bits'] / 8192:11.1f}")
    deployed = [r for r in results if "integer" in r]
    if deployed:
        print("\nInteger models (qnn_ext.deploy), test set; time = predict of one batch of 64, median")
        print(f"{'setting':9s} {'fake-quant acc':>14s} {'integer acc':>11s} {'same class':>10s} "
              f"{'max |diff|':>10s} {'float ms':>9s} {'int ms':>7s} {'speed-up':>8s}")
        for r in deployed:
            d = r["integer"]
            print(f"{r['name']:9s} {100 * r['test_accuracy']:13.2f}% {100 * d['accuracy']:10.2f}% "
                  f"{100 * d['class_agreement']:9.2f}% {d['max_abs_output_diff']:10.2g} "
                  f"{d['float_ms_per_batch64']:9.2f} {d['int_ms_per_batch64']:7.2f} {d['speedup']:7.1f}x")
    print(f"total {total:.0f} s")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "fashion_mnist.json"), "w") as f:
        json.dump({"settings": results, "total_seconds": round(total, 1), "build_info": info}, f, indent=2)
    try:
        plot(results, os.path.join(args.out, "fashion_mnist.png"))
    except ImportError:
        print("matplotlib not installed: no plot (pip install -e '.[job]')")
    print(f"wrote {args.out}/fashion_mnist.json and fashion_mnist.png")
    return results


if __name__ == "__main__":
    main()
