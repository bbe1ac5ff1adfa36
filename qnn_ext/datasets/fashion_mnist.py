"""Fashion-MNIST (Zalando): 28x28 grayscale images of 10 clothing classes, as
``keras.datasets.fashion_mnist.load_data()`` returns it, read from local IDX files only.

    from qnn_ext.datasets import fashion_mnist
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    # x_*: uint8 (N, 28, 28) in 0..255; y_*: uint8 (N,) in 0..9; N = 60000 train, 10000 test

Files: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
t10k-labels-idx1-ubyte, each gzipped (``.gz``) or plain. Looked up in ``path=``, else
``$QNN_EXT_DATA/fashion-mnist/``, ``$QNN_EXT_DATA/``, then ``/usr/share/datasets/fashion-mnist/``
(Debian package ``dataset-fashion-mnist``). Missing files raise ``DatasetNotFoundError`` (a
``FileNotFoundError``); malformed ones ``IDXFormatError`` (a ``ValueError``).
"""

import numpy as np

from . import DatasetNotFoundError, locate_files  # noqa: F401  (re-exported for callers)
from .idx import IDXFormatError, read_idx

__all__ = ["load_data", "CLASS_NAMES", "DATASET", "DEBIAN_PACKAGE", "FILES"]

DATASET = "fashion-mnist"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = len(CLASS_NAMES)


def _check_images(x, name):
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise IDXFormatError("%s: expected Fashion-MNIST images, uint8 of shape (N, %d, %d); "
                             "got %s of shape %s" % (name, IMAGE_SHAPE[0], IMAGE_SHAPE[1],
                                                     x.dtype, x.shape))


def _check_labels(y, name):
    if y.dtype != np.uint8 or y.ndim != 1:
        raise IDXFormatError("%s: expected Fashion-MNIST labels, uint8 of shape (N,); got %s of "
                             "shape %s" % (name, y.dtype, y.shape))
    bad = np.flatnonzero(y >= NUM_CLASSES)
    if bad.size:
        i = int(bad[0])
        raise IDXFormatError("%s: labels must be in 0..%d; %d label(s) outside, first at index "
                             "%d with value %d" % (name, NUM_CLASSES - 1, bad.size, i, int(y[i])))


def _load_split(files, split):
    x_path, y_path = files["x_" + split], files["y_" + split]
    x = read_idx(x_path)
    _check_images(x, x_path)
    y = read_idx(y_path)
    _check_labels(y, y_path)
    if x.shape[0] != y.shape[0]:
        raise IDXFormatError("%s split: image/label count mismatch: %s holds %d images but %s "
                             "holds %d labels" % (split, x_path, x.shape[0], y_path, y.shape[0]))
    return x, y


def load_data(*, path=None):
    """Return ``(x_train, y_train), (x_test, y_test)`` like Keras: uint8 arrays of shapes
    (60000, 28, 28), (60000,), (10000, 28, 28), (10000,) for the real data set.

    path: directory holding the four IDX files (gzipped or not); when given, only it is searched.
    Unlike Keras's arrays (read-only views of the downloaded bytes), these are writeable.
    """
    names = [FILES[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    located = locate_files(DATASET, names, path=path, package=DEBIAN_PACKAGE)
    files = {k: located[FILES[k]] for k in FILES}
    x_train, y_train = _load_split(files, "train")
    x_test, y_test = _load_split(files, "test")
    return (x_train, y_train), (x_test, y_test)
