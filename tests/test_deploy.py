"""deploy.convert: the integer model equals model.predict (bit for bit where the float model adds
exactly), at every ISA level; save/load round trips and hardened loading; clear refusals."""
import os
import zipfile

import numpy as np
import pytest

import qnn_ext
from qnn_ext import (Activation, BatchNormalization, Dense, Flatten, Input, MaxPooling2D, Model,
                     QActivation, QConv2D, QDense, Sequential, deploy)
from qnn_ext.deploy.fileio import DeployFileError

F32 = np.float32

SETTINGS = {  # weight quantizer, activation quantizer
    "binary": ("binary()", "binary()"),
    "ternary": ("ternary()", "ternary()"),
    "4bit": ("quantized_bits(4,0,1)", "quantized_relu(4,2)"),
    "8bit": ("quantized_bits(8,0,1)", "quantized_relu(8,2)"),
    "4bit_signed": ("quantized_bits(4,0,1,alpha=1)", "quantized_bits(4,1,0)"),
    "bin_w_4bit_a": ("binary(alpha=1)", "quantized_relu(4,1)"),
    "tern_w_bin_a": ("ternary()", "binary()"),
    "bin_w_tern_a": ("binary()", "ternary()"),
}


def randomize_bn(model, seed):
    """Trained-looking BN statistics, including negative gammas (decreasing thresholds)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            c = layer.gamma.value.size
            layer.gamma.value[...] = rng.uniform(-1.5, 1.5, c)
            layer.beta.value[...] = rng.normal(0, 0.5, c)
            layer.moving_mean.value[...] = rng.normal(0, 3, c)
            layer.moving_variance.value[...] = rng.uniform(0.5, 20, c)


def cnn(setting, first_q=None, strides=1, bias=False):
    wq, act = SETTINGS[setting]
    x = inp = Input((11, 11, 3))
    x = QConv2D(16, 3, padding="same", use_bias=False, kernel_quantizer=first_q, name="conv1")(x)
    x = BatchNormalization(name="bn1")(x)
    x = QActivation(act, name="act1")(x)
    x = QConv2D(70, 3, strides=strides, padding="same", use_bias=bias, kernel_quantizer=wq,
                bias_quantizer="quantized_bits(8,3,1)" if bias else None, name="conv2")(x)
    x = BatchNormalization(name="bn2")(x)
    x = QActivation(act, name="act2")(x)
    x = MaxPooling2D(2, padding="same", name="pool2")(x)
    x = QConv2D(33, 2, padding="valid", use_bias=False, kernel_quantizer=wq, name="conv3",
                activation=act)(x)
    x = Flatten(name="flatten")(x)
    x = QDense(17, use_bias=False, kernel_quantizer=wq, name="dense1")(x)
    x = BatchNormalization(name="bn3")(x)
    x = QActivation(act, name="act3")(x)
    x = QDense(10, kernel_quantizer="quantized_bits(8,0,1)", name="dense2")(x)
    return Model(inp, Activation("softmax", name="softmax")(x), name=f"cnn_{setting}")


def mlp(setting):
    wq, act = SETTINGS[setting]
    return Sequential([QDense(40, input_shape=(30,), kernel_quantizer=wq, use_bias=False, name="d1"),
                       BatchNormalization(name="b1"), QActivation(act, name="a1"),
                       QDense(65, kernel_quantizer=wq, activation=act, name="d2"),
                       QDense(7, kernel_quantizer=wq, name="d3")], name=f"mlp_{setting}")


def check_equal(model, im, x, isas):
    want = model.predict(x)
    for isa in isas:
        qnn_ext._core.set_isa(isa)
        got = im.predict(x, batch_size=16)
        np.testing.assert_array_equal(got, want, err_msg=f"isa {isa}")
        assert np.mean(got.argmax(-1) == want.argmax(-1)) == 1.0


@pytest.fixture
def isas():
    prev = qnn_ext._core.get_isa()
    yield list(qnn_ext.build_info()["isas_available"])
    qnn_ext._core.set_isa(prev)


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_cnn_integer_model_equals_predict(setting, isas):
    qnn_ext.utils.set_random_seed(3)
    m = cnn(setting, strides=2 if setting == "binary" else 1, bias=setting == "4bit")
    randomize_bn(m, 1)
    x = np.random.default_rng(2).standard_normal((37, 11, 11, 3)).astype(F32)
    im = deploy.convert(m)
    ints = im.integer_layers()
    assert {s.name for s in ints} == {"conv2", "conv3", "dense1", "dense2"}
    # the float first conv, BN and quantizer run as one fused step (direct conv + thresholds)
    assert type(im.steps[0]).__name__ == "FloatThreshPool" and im.steps[0].conv is not None
    assert im.steps[0].layers == ("conv1", "bn1", "act1")
    if setting == "binary":
        assert [s.conv_kind for s in ints] == ["binary", "binary", "binary", "int8"]
        assert ints[0].mode == "bits" and ints[1].mode == "bits"
    if setting == "tern_w_bin_a":
        assert [s.conv_kind for s in ints] == ["ternary", "ternary", "ternary", "int8"]
    if setting in ("ternary", "bin_w_tern_a"):
        # 16, 70 and 33 channels per pixel: half-empty words, int8 is faster than bit-planes
        assert [s.conv_kind for s in ints] == ["int8"] * 4
    check_equal(m, im, x, isas)


def test_ternary_activations_on_bit_planes(isas, tmp_path):
    """With >= 64 channels per pixel ternary activations travel as sign/nonzero planes."""
    qnn_ext.utils.set_random_seed(21)
    x = inp = Input((6, 6, 3))
    x = QConv2D(64, 3, padding="same", use_bias=False, name="c1")(x)
    x = BatchNormalization(name="b1")(x)
    x = QActivation("ternary()", name="a1")(x)
    x = QConv2D(128, 3, padding="same", use_bias=False, kernel_quantizer="ternary()", name="c2")(x)
    x = BatchNormalization(name="b2")(x)
    x = QActivation("ternary()", name="a2")(x)
    x = MaxPooling2D(2, name="p2")(x)
    x = QConv2D(64, 3, padding="valid", use_bias=False, kernel_quantizer="binary()", name="c3")(x)
    x = BatchNormalization(name="b3")(x)
    x = QActivation("ternary()", name="a3")(x)
    x = Flatten(name="f")(x)
    x = QDense(10, kernel_quantizer="ternary()", name="d")(x)
    m = Model(inp, x)
    randomize_bn(m, 22)
    im = deploy.convert(m)
    ints = im.integer_layers()
    assert [(s.conv_kind, s.mode) for s in ints] == [("tt", "tbits"), ("tt", "tbits"), ("tt", "float")]
    assert im.steps[0].mode == "tbits" and any(getattr(s, "planes", 1) == 2 for s in im.steps)
    xs = np.random.default_rng(23).standard_normal((7, 6, 6, 3)).astype(F32)
    check_equal(m, im, xs, isas)
    im.save(tmp_path / "t.qnnd")
    check_equal(m, deploy.load(tmp_path / "t.qnnd"), xs, isas)


@pytest.mark.parametrize("setting", ["binary", "ternary", "4bit", "8bit"])
def test_mlp_and_input_quantizer(setting, isas):
    qnn_ext.utils.set_random_seed(4)
    m = mlp(setting)
    randomize_bn(m, 5)
    aq = SETTINGS[setting][1]
    x = np.random.default_rng(6).standard_normal((20, 30)).astype(F32)
    xq = np.asarray(qnn_ext.quantizers.get_quantizer(aq)(x), F32)
    im = deploy.convert(m, input_quantizer=aq)
    assert [s.name for s in im.integer_layers()] == ["d1", "d2", "d3"]  # the first layer too
    check_equal(m, im, xq, isas)
    np.testing.assert_array_equal(im.predict(x), m.predict(xq))  # input quantized by the model


def test_first_layer_8bit_on_quantized_pixels(isas):
    qnn_ext.utils.set_random_seed(7)
    m = cnn("4bit", first_q="quantized_bits(8,0,1)")
    randomize_bn(m, 8)
    x = (np.random.default_rng(9).integers(0, 256, (9, 11, 11, 3)) / 256).astype(F32)
    im = deploy.convert(m, input_quantizer="quantized_relu(8,0)")
    assert im.integer_layers()[0].name == "conv1"
    check_equal(m, im, x, isas)


def test_save_load_roundtrip_and_file_size_shrinks(tmp_path):
    qnn_ext.utils.set_random_seed(11)
    sizes = {}
    for setting in ("binary", "4bit", "8bit"):
        m = Sequential([QDense(256, input_shape=(512,), kernel_quantizer=SETTINGS[setting][0],
                               use_bias=False, name="d")], name=setting)
        x = np.asarray(qnn_ext.quantizers.get_quantizer(SETTINGS[setting][1])(
            np.random.default_rng(1).standard_normal((5, 512)).astype(F32)), F32)
        im = deploy.convert(m, input_quantizer=SETTINGS[setting][1])
        p = tmp_path / f"{setting}.qnnd"
        im.save(p)
        im2 = deploy.load(p)
        np.testing.assert_array_equal(im2.predict(x), m.predict(x))
        sizes[setting] = os.path.getsize(p)
    f32 = 512 * 256 * 4
    assert sizes["binary"] < f32 / 32 * 1.3
    assert sizes["4bit"] < f32 / 8 * 1.2
    assert sizes["8bit"] < f32 / 4 * 1.2
    assert sizes["binary"] < sizes["4bit"] < sizes["8bit"]


@pytest.mark.parametrize("setting", ["binary", "ternary", "bin_w_tern_a", "tern_w_bin_a", "4bit"])
def test_cnn_save_load(tmp_path, isas, setting):
    qnn_ext.utils.set_random_seed(12)
    m = cnn(setting)
    randomize_bn(m, 13)
    im = deploy.convert(m)
    im.save(tmp_path / "m.qnnd")
    check_equal(m, deploy.load(tmp_path / "m.qnnd"), np.random.default_rng(0).standard_normal(
        (8, 11, 11, 3)).astype(F32), isas)


def _rewrite(src, dst, edit_json=None, edit_members=None):
    import json
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    if edit_json is not None:
        doc = json.loads(members["deploy.json"])
        edit_json(doc)
        members["deploy.json"] = json.dumps(doc).encode()
    if edit_members is not None:
        edit_members(members)
    with zipfile.ZipFile(dst, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)


def _first(doc, t):
    return next(s for s in doc["steps"] if s["type"] == t)


BAD_FILES = {
    "format": (lambda d: d.update(format="pickle"), None, "format"),
    "version": (lambda d: d.update(format_version=9), None, "format_version"),
    "step_type": (lambda d: d["steps"].append({"type": "exec"}), None, "type"),
    "class": (lambda d: _first(d, "float")["layer"].update(class_name="os.system"), None, "layer"),
    "thr_shape": (lambda d: d["arrays"][_first(d, "int")["thr"] or "x"].update(shape=[1, 1]), None, "shape (1, 70)"),
    "dirs": (lambda d: _first(d, "int").update(dirs=_first(d, "int")["codes"]), None, "dirs"),
    "cin": (lambda d: _first(d, "int").update(cin=5), None, "codes"),
    "mode": (lambda d: _first(d, "int").update(mode="bits", out_grid=None), None, "out_grid"),
    "grid": (lambda d: _first(d, "fthresh").update(out_grid=[0, 1, 5]), None, "evenly"),
    "fthresh_dirs": (lambda d: d["arrays"][_first(d, "fthresh")["dirs"]].update(dtype="float32"), None,
                     "dtype"),
    "kernel": (lambda d: _first(d, "int").update(kernel_size=[1, 1]), None, "codes"),
    "extra_key": (lambda d: d.update(evil=1), None, "unexpected"),
    "extra_member": (None, lambda m: m.update({"x.py": b"print(1)"}), "unexpected member"),
    "no_arrays": (None, lambda m: m.pop("arrays.npz"), "missing"),
    "bad_npz": (None, lambda m: m.update({"arrays.npz": b"PK\x03\x04garbage"}), "arrays.npz"),
    "bad_json": (None, lambda m: m.update({"deploy.json": b"{not json"}), "JSON"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_malformed_deploy_files_raise_clear_errors(tmp_path, case):
    qnn_ext.utils.set_random_seed(14)
    m = cnn("binary")
    good = tmp_path / "good.qnnd"
    deploy.convert(m).save(good)
    ej, em, word = BAD_FILES[case]
    bad = tmp_path / "bad.qnnd"
    _rewrite(good, bad, ej, em)
    with pytest.raises(ValueError) as e:
        deploy.load(bad)
    assert isinstance(e.value, ValueError) and str(bad) in str(e.value)
    assert word in str(e.value), str(e.value)


def test_truncated_and_garbage_files(tmp_path):
    qnn_ext.utils.set_random_seed(15)
    good = tmp_path / "good.qnnd"
    deploy.convert(cnn("4bit")).save(good)
    data = good.read_bytes()
    for i, blob in enumerate([data[: len(data) // 2], b"", b"\x00" * 100, data[:-10]]):
        p = tmp_path / f"t{i}.qnnd"
        p.write_bytes(blob)
        with pytest.raises(DeployFileError):
            deploy.load(p)


def test_unsupported_layers_are_refused_with_their_name():
    inp = Input((8,))
    a = QDense(4, kernel_quantizer="binary()", name="left")(inp)
    b = QDense(4, kernel_quantizer="binary()", name="right")(inp)
    from qnn_ext.layers.core import Add
    m = Model(inp, Add(name="merge")([a, b]))
    with pytest.raises(deploy.ConversionError, match="right|merge"):
        deploy.convert(m)
    # a kernel quantizer with a float (non power-of-two) scale cannot run in exact integers
    m = Sequential([QActivation("quantized_relu(4,2)", input_shape=(6,), name="qa"),
                    QDense(5, kernel_quantizer="quantized_bits(4,0,1,alpha='auto')", name="auto_dense")])
    with pytest.raises(deploy.ConversionError, match="auto_dense"):
        deploy.convert(m)
    im = deploy.convert(m, strict=False)  # float kernels for it, still equal to predict
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(F32)
    assert im.integer_layers() == []
    np.testing.assert_array_equal(im.predict(x), m.predict(x))
    # binary weights with a float (least-squares) scale: exact in integers, but the float model
    # rounds every addition of +-alpha; refused rather than approximately equal
    m = Sequential([QActivation("binary()", input_shape=(6,), name="qa"),
                    QDense(5, kernel_quantizer="binary(alpha='auto')", name="auto_binary")])
    with pytest.raises(deploy.ConversionError, match="auto_binary.*power of"):
        deploy.convert(m)
    np.testing.assert_array_equal(deploy.convert(m, strict=False).predict(x), m.predict(x))


def test_float_model_runs_on_float_kernels():
    qnn_ext.utils.set_random_seed(16)
    m = Sequential([Dense(8, input_shape=(5,), activation="relu"), Dense(3)])
    im = deploy.convert(m)
    x = np.random.default_rng(1).standard_normal((6, 5)).astype(F32)
    assert im.integer_layers() == []
    np.testing.assert_array_equal(im.predict(x), m.predict(x))


def test_predict_checks_input_and_summary_measures():
    qnn_ext.utils.set_random_seed(17)
    im = deploy.convert(cnn("binary"))
    with pytest.raises(ValueError, match="shape"):
        im.predict(np.zeros((2, 11, 11, 4), F32))
    with pytest.raises(TypeError, match="numeric"):
        im.predict(np.array([["a"]]))
    lines = []
    rows = im.summary(batch_size=2, runs=2, print_fn=lines.append)
    conv2 = next(r for r in rows if r["layers"].startswith("conv2+"))
    assert conv2["weight_bits"] == 1 and conv2["macs"] == 2 * 11 * 11 * 70 * 9 * 16
    assert conv2["packed_bytes"] >= 9 * 16 * 70 // 8 and all(r["latency_us"] > 0 for r in rows)
    assert "xnor-popcount" in conv2["kernel"] and any("total" in l for l in lines)


def test_float_first_layer_falls_back_when_not_fusable(isas):
    """A first conv with a bias keeps the model's float layer, then float thresholds."""
    qnn_ext.utils.set_random_seed(18)
    x = inp = Input((9, 9, 2))
    x = QConv2D(8, 3, padding="same", name="c1")(x)          # bias: not fused
    x = BatchNormalization(name="b1")(x)
    x = QActivation("binary()", name="a1")(x)
    x = QConv2D(5, 3, kernel_quantizer="binary()", use_bias=False, name="c2")(x)
    m = Model(inp, x)
    randomize_bn(m, 19)
    im = deploy.convert(m)
    kinds = [type(s).__name__ for s in im.steps]
    assert kinds[:2] == ["FloatLayer", "FloatThreshPool"] and im.steps[1].conv is None
    check_equal(m, im, np.random.default_rng(3).standard_normal((6, 9, 9, 2)).astype(F32), isas)


def test_concurrent_predict_from_threads():
    """Buffers are per thread: several threads predicting at once get their own exact results."""
    import threading
    qnn_ext.utils.set_random_seed(24)
    m = cnn("binary")
    randomize_bn(m, 25)
    im = deploy.convert(m)
    xs = [np.random.default_rng(i).standard_normal((9, 11, 11, 3)).astype(F32) for i in range(4)]
    want = [m.predict(x) for x in xs]
    got = [None] * 4

    def work(i):
        for _ in range(5):
            got[i] = im.predict(xs[i], batch_size=4)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
