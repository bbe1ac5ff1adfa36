"""The acceptance check on real data: the main job's CNN (python/train_fashion_mnist.py), trained
briefly on Fashion-MNIST at the binary and 4-bit settings, converted to an integer model: its
logits equal the fake-quant model's on the test images and the predicted classes agree on 100%."""
import importlib.util
import os

import numpy as np
import pytest

import qnn_ext
from qnn_ext import deploy

HERE = os.path.dirname(os.path.abspath(__file__))


def _job():
    spec = importlib.util.spec_from_file_location(
        "train_fashion_mnist", os.path.join(HERE, "..", "python", "train_fashion_mnist.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _data():
    from qnn_ext.datasets import fashion_mnist
    try:
        (xtr, ytr), (xte, yte) = fashion_mnist.load_data()
    except (OSError, FileNotFoundError) as e:
        pytest.skip(f"Fashion-MNIST data not installed ({e})")
    return ((xtr[:1500] / np.float32(255))[..., None].astype(np.float32), ytr[:1500],
            (xte[:2000] / np.float32(255))[..., None].astype(np.float32))


@pytest.mark.parametrize("setting", ["binary", "4-bit"])
def test_trained_fashion_mnist_integer_model_is_exact(setting):
    xtr, ytr, xte = _data()
    job = _job()
    qnn_ext.utils.set_random_seed(1)
    model = job.build_model(setting)
    model.compile(optimizer=qnn_ext.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    model.fit(xtr, ytr, batch_size=128, epochs=1, verbose=0)
    want = model.predict(xte, batch_size=500)
    im = deploy.convert(model)
    assert len(im.integer_layers()) >= 3
    got = im.predict(xte, batch_size=64)
    np.testing.assert_array_equal(got, want)
    assert np.mean(got.argmax(1) == want.argmax(1)) == 1.0
