"""The network of QKeras's README, unchanged apart from the import lines, trained briefly on
Fashion-MNIST (QKeras's README leaves `shape` and `NB_CLASSES` to the reader; the data loading,
compile and fit below are ordinary Keras code).

    python python/qkeras_readme_example.py              # 1 epoch on 10 000 images
    python python/qkeras_readme_example.py --samples 60000 --epochs 3
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# was: from keras.layers import *  /  from qkeras import *
from qnn_ext import *  # noqa: E402,F401,F403
from qnn_ext.datasets import fashion_mnist  # noqa: E402

NB_CLASSES = 10
shape = (28, 28, 1)


def build():
    # ---- QKeras README network, verbatim ----
    x = x_in = Input(shape)
    x = QConv2D(18, (3, 3),
            kernel_quantizer="stochastic_ternary",
            bias_quantizer="ternary", name="first_conv2d")(x)
    x = QActivation("quantized_relu(3)")(x)
    x = QSeparableConv2D(32, (3, 3),
            depthwise_quantizer=quantized_bits(4, 0, 1),
            pointwise_quantizer=quantized_bits(3, 0, 1),
            bias_quantizer=quantized_bits(3),
            depthwise_activation=quantized_tanh(6, 2, 1))(x)
    x = QActivation("quantized_relu(3)")(x)
    x = Flatten()(x)
    x = QDense(NB_CLASSES,
            kernel_quantizer=quantized_bits(3),
            bias_quantizer=quantized_bits(3))(x)
    x = QActivation("quantized_bits(20, 5)")(x)
    x = Activation("softmax")(x)
    # ---- end of the README network ----
    return Model(inputs=x_in, outputs=x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--verbose", type=int, default=2)
    args = ap.parse_args(argv)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    x_train = (x_train[:args.samples].astype("float32") / 255.0)[..., None]
    y_train = y_train[:args.samples]
    x_test = (x_test.astype("float32") / 255.0)[..., None]
    model = build()
    model.summary()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=args.verbose)
    loss, acc = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    print(f"test accuracy: {acc:.4f}")
    return model, acc


if __name__ == "__main__":
    main()
