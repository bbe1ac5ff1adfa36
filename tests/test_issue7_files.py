"""Model files with the issue-7 layers (QConv2DBatchnorm, QDepthwiseConv2DBatchnorm,
QAdaptiveActivation): save -> load -> predict identical, training resumes identically, and
every corrupted config field or weight array of these layers gives a clean ValueError (or a
valid model), never another exception and never code execution."""
import os
import warnings

import numpy as np

from qnn_ext import (Dense, Flatten, Input, Model, QAdaptiveActivation, QConv2DBatchnorm,
                     QDepthwiseConv2DBatchnorm, optimizers)
from qnn_ext.models import load_model
from qnn_ext.utils import set_random_seed
from test_saving import HOSTILE_STRINGS, PWNED, WRONG_VALUES, _file, _members, _replace

F32 = np.float32
NEW = ("QConv2DBatchnorm", "QDepthwiseConv2DBatchnorm", "QAdaptiveActivation")


def folded_model():
    x = Input((6, 6, 2))
    h = QConv2DBatchnorm(3, 3, padding="same", kernel_quantizer="quantized_bits(4,0,1)",
                         bias_quantizer="quantized_bits(8,3,1)", ema_freeze_delay=3,
                         folding_mode="batch_stats_folding", name="fold")(x)
    h = QAdaptiveActivation("quantized_relu", 4, quantization_delay=1, ema_decay=0.5,
                            per_channel=True, name="qa")(h)
    h = QDepthwiseConv2DBatchnorm(2, depth_multiplier=2,
                                  depthwise_quantizer="quantized_bits(4,0,1,alpha=1)",
                                  name="dwfold")(h)
    m = Model(x, Dense(2, name="out")(Flatten()(h)))
    m.compile(optimizers.Adam(1e-2), "mse")
    return m


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6, 6, 2)).astype(F32), rng.standard_normal((n, 2)).astype(F32)


def test_save_load_predict_and_resume_training(tmp_path):
    set_random_seed(3)
    m = folded_model()
    x, y = data()
    m.fit(x, y, epochs=2, batch_size=6, verbose=0)
    path = tmp_path / "folded.zip"
    m.save(path)
    back = load_model(path)
    assert back.get_config() == m.get_config()
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    for name in ("fold", "qa", "dwfold"):
        for a, b in zip(m.get_layer(name).get_weights(), back.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    # same optimizer state, same step counters: one more epoch gives the same weights
    m.fit(x, y, epochs=1, batch_size=6, verbose=0, shuffle=False)
    back.fit(x, y, epochs=1, batch_size=6, verbose=0, shuffle=False)
    for a, b in zip(m.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_hostile_fields_of_the_new_layers(tmp_path):
    set_random_seed(4)
    m = folded_model()
    x, y = data()
    m.fit(x, y, epochs=1, batch_size=6, verbose=0)
    src = tmp_path / "valid.zip"
    m.save(src)
    doc, arrays = _members(src.read_bytes())
    layers = doc["config"]["layers"]
    cases = []
    for i, spec in enumerate(layers):
        if spec["class_name"] not in NEW:
            continue
        for key in spec["config"]:
            for v in WRONG_VALUES + HOSTILE_STRINGS[:4] + [1e300, -1e300, "ema_stats_folding"]:
                cases.append((f"{spec['class_name']}.{key}={v!r:.30}",
                              _file(_replace(doc, ("config", "layers", i, "config", key), v),
                                    arrays)))
    # the weights of these layers: wrong shapes, huge shapes, NaNs, wrong dtypes
    names = sorted(arrays)
    for k in names:
        a = arrays[k]
        for label, bad in [("shape", np.zeros(a.shape + (2,), a.dtype)),
                           ("flat", a.reshape(-1)[:1].copy()),
                           ("nan", np.full(a.shape, np.nan, np.float32)),
                           ("int", np.zeros(a.shape, np.int64)),
                           ("f64", np.zeros(a.shape, np.float64))]:
            cases.append((f"weights.{k}.{label}", _file(doc, dict(arrays, **{k: bad}))))
    if os.path.exists(PWNED):
        os.remove(PWNED)
    problems, rejected = [], 0
    path = tmp_path / "h.zip"
    for label, blob in cases:
        path.write_bytes(blob)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # overflow to inf is a bad outcome too
            try:
                loaded = load_model(path)
            except ValueError:
                rejected += 1
                continue
            except BaseException as e:  # noqa: BLE001 -- the point of the test
                problems.append(f"{label}: {type(e).__name__}: {e}")
                continue
            try:  # a model that loads must also run
                loaded.predict(x, verbose=0)
            except ValueError:
                pass
            except BaseException as e:  # noqa: BLE001
                problems.append(f"{label}: loads, then predict raises {type(e).__name__}: {e}")
    assert not os.path.exists(PWNED), "code from a model file was executed"
    assert not problems, f"{len(problems)} bad outcomes:\n" + "\n".join(problems[:30])
    assert len(cases) > 300 and rejected > len(cases) // 3
