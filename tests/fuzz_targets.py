"""Fuzz targets shared by the hypothesis tests (tests/test_fuzz_targets.py) and the time-budget
runner (python/fuzz.py).

A target takes one generated input and returns normally when the code under test either accepts
it or refuses it with a documented exception:

* parser: ``parse_quantizer_string`` -> ``QuantizerStringError`` (a ValueError); ``get_quantizer``
  and calling the quantizer -> ValueError / TypeError naming the problem.
* loader: ``saving.load_model`` -> ``ModelFileError`` (a ValueError naming the file and field).
* deploy: ``deploy.load`` -> ``DeployFileError`` (a ModelFileError).

Anything else (another exception type, a crash, a pickled object executed) escapes the target
and is a bug. Inputs come from a ``random.Random`` (hypothesis hands one in through
``st.randoms()``, the runner seeds its own), mutating valid seeds: flipped bytes, truncations,
inserted bytes, structural edits of the JSON (wrong types, huge and negative ints, NaN, deep
nesting, unknown class names), .npy members with huge shapes or pickled objects.
"""
import hashlib
import io
import json
import os
import random
import tempfile
import zipfile

import numpy as np

PWNED = os.path.join(tempfile.gettempdir(), "qnn_ext_fuzz_pwned")
COUNTS = {"parser": 0, "loader": 0, "deploy": 0, "kernels": 0}

# ---------------------------------------------------------------------------- quantizer strings

NAMES = ["quantized_bits", "quantized_relu", "quantized_po2", "quantized_relu_po2", "binary",
         "ternary", "stochastic_binary", "stochastic_ternary", "bernoulli", "quantized_tanh",
         "quantized_sigmoid", "quantized_ulaw", "quantized_linear", "quantized_hswish",
         "hard_sigmoid", "binary_tanh", "relu", "softmax", "nope", "quantized_bitz"]
KEYS = ["bits", "integer", "symmetric", "keep_negative", "alpha", "use_stochastic_rounding",
        "scale_axis", "qnoise_factor", "max_value", "negative_slope", "threshold", "temperature",
        "use_sigmoid", "relu_upper_bound", "elements_per_scale", "min_po2_exponent", "x", "_"]
VALUES = ["0", "1", "4", "-1", "32", "64", "65", "1e9", "2147483648", "99999999999999999999",
          "1e400", "-1e400", "nan", "inf", "-inf", "0.5", "1.0", "True", "False", "None", "'auto'",
          "'auto_po2'", "auto_po2", "[1 2]", "[0.5 1.0 2]", "[]", "'x'", "''", "1e-45", "3.4e38",
          "[1e400]", "[nan]", "-0", "0x10", "1_000", ""]
CHARS = "()=,.'\"[] _-+e0123456789abcdefghijklmnopqrstuvwxyzAZ\t\n\\{}#:;"


CONFIG_VALUES = [None, True, 0, 1, 4, -1, 2 ** 40, 1e400, float("nan"), "auto", "x", [], [1, 2],
                 {"a": 1}, [[1.0]], 3.5]


def parser_input(rnd):
    """A quantizer string (a well-formed call of random names/args, then maybe mutated) or, one
    time in five, a config dict {"class_name", "config"} with random fields (as in model files)."""
    name = rnd.choice(NAMES)
    if rnd.random() < 0.2:
        cfg = {rnd.choice(KEYS): rnd.choice(CONFIG_VALUES) for _ in range(rnd.randint(0, 4))}
        return {"class_name": name, "config": cfg}
    if rnd.random() < 0.1:
        return name
    args = [rnd.choice(VALUES) for _ in range(rnd.randint(0, 4))]
    args += [f"{rnd.choice(KEYS)}={rnd.choice(VALUES)}" for _ in range(rnd.randint(0, 3))]
    s = f"{name}({','.join(args)})"
    for _ in range(rnd.choice([0, 0, 1, 2, 4])):
        i = rnd.randrange(len(s) + 1)
        op = rnd.randrange(3)
        if op == 0:
            s = s[:i] + rnd.choice(CHARS) + s[i:]
        elif op == 1 and s:
            s = s[:i] + s[i + 1:]
        else:
            s = s[:i] + "(" * rnd.randint(1, 3) + s[i:]
    return s


X_PROBE = np.array([[-3.0, -0.7, 0.0, 0.2, 1.5, 9.0]], np.float32)


def run_parser(s):
    from qnn_ext.quantizer_strings import QuantizerStringError, parse_quantizer_string
    from qnn_ext.quantizers import get_quantizer
    COUNTS["parser"] += 1
    if isinstance(s, str):
        try:
            parse_quantizer_string(s)
        except QuantizerStringError:
            pass
    try:
        q = get_quantizer(s)
    except (ValueError, TypeError):
        return
    if not callable(q):
        raise AssertionError(f"get_quantizer({s!r}) returned a non-callable {q!r}")
    try:
        y = q(X_PROBE)
    except (ValueError, TypeError):
        return
    y = np.asarray(y)
    if y.shape != X_PROBE.shape:
        raise AssertionError(f"{s!r}: output shape {y.shape}, expected {X_PROBE.shape}")


# ---------------------------------------------------------------------------- file mutations

HOSTILE_VALUES = [None, True, -1, 0, 2 ** 31, 2 ** 63, -(2 ** 63), 10 ** 30, 1e308, "NaN", "",
                  "x" * 300, [], {}, [[[[[]]]]], {"class_name": "os.system", "config": {}},
                  {"class_name": "Dense", "config": {"units": 2 ** 40}}, [2 ** 40, 2 ** 40],
                  "__import__('os')", "Lambda", "../../etc/passwd", 1.5, [-1, 3]]


def _json_paths(obj, path=(), out=None, depth=0):
    if out is None:
        out = []
    out.append(path)
    if depth > 12:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            _json_paths(v, path + (k,), out, depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _json_paths(v, path + (i,), out, depth + 1)
    return out


def _set_path(obj, path, value):
    if not path:
        return value
    node = obj
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return obj


def mutate_json(doc, rnd):
    doc = json.loads(json.dumps(doc))
    paths = _json_paths(doc)
    for _ in range(rnd.randint(1, 3)):
        path = rnd.choice(paths)
        op = rnd.randrange(5)
        if op == 0:
            value = rnd.choice(HOSTILE_VALUES)
        elif op == 1:  # deep nesting (recursion limits)
            value = 0
            for _ in range(rnd.choice([10, 100, 3000])):
                value = [value]
        elif op == 2:
            value = rnd.choice(["Dense", "QDense", "Conv2D", "Model", "Sequential", "UnknownLayer",
                                "QActivation", "quantized_bits", "Adam", "int", "float32"])
        elif op == 3:
            value = rnd.randint(-3, 2 ** 33)
        else:  # delete a key / list element
            if path:
                parent = doc
                for p in path[:-1]:
                    parent = parent[p]
                try:
                    del parent[path[-1]]
                except (KeyError, IndexError, TypeError):
                    pass
                paths = _json_paths(doc)
                continue
            value = {}
        try:
            doc = _set_path(doc, path, value)
        except (KeyError, IndexError, TypeError):
            pass
        paths = _json_paths(doc)
    return doc


def npy_bytes(shape, dtype="<f4", fortran=False, payload=b"", header_extra=""):
    """A .npy v1 file with any header (the shape may be absurd: the payload does not follow it)."""
    d = "{'descr': %r, 'fortran_order': %s, 'shape': %r, %s}" % (dtype, fortran, tuple(shape), header_extra)
    h = d.encode("latin1")
    pad = 64 - (10 + len(h) + 1) % 64
    h = h + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + payload


class _Pwn:
    """Unpickling this creates PWNED: a pickled object inside a file must never be loaded."""

    def __reduce__(self):
        return (open, (PWNED, "w"))


def pickled_npy():
    buf = io.BytesIO()
    np.save(buf, np.array([_Pwn()], dtype=object), allow_pickle=True)
    return buf.getvalue()


def mutate_npz(raw_npz, rnd):
    """Replace, drop or add one member of an npz archive."""
    with zipfile.ZipFile(io.BytesIO(raw_npz)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    names = sorted(members)
    op = rnd.randrange(6)
    target = rnd.choice(names) if names else "w0000.npy"
    if op == 0:
        members[target] = pickled_npy()
    elif op == 1:
        members[target] = npy_bytes(rnd.choice([(2 ** 40,), (2 ** 31, 2 ** 31), (-1, 3), (3, 0)]),
                                    payload=b"\x00" * 64)
    elif op == 2:
        members[target] = npy_bytes((2,), dtype=rnd.choice(["<f8", "|O", "<i8", ">f4", "<U3", "V8"]),
                                    payload=b"\x00" * 64)
    elif op == 3 and names:
        del members[target]
    elif op == 4:
        members["extra.npy"] = members.get(target, b"")
    else:
        data = bytearray(members.get(target, b""))
        if data:
            data[rnd.randrange(min(len(data), 128))] ^= 1 << rnd.randrange(8)
        members[target] = bytes(data)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return out.getvalue()


def mutate_file(raw, json_name, npz_name, rnd):
    """One mutated model/deploy file: byte-level damage or a structural edit (weighted towards
    JSON edits: byte damage mostly stops at the zip CRC check)."""
    op = rnd.choice([0, 1, 2, 3, 3, 3, 3, 3, 4, 4, 5])
    if op == 0:  # flipped bytes
        data = bytearray(raw)
        for _ in range(rnd.randint(1, 8)):
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        return bytes(data)
    if op == 1:  # truncated
        return raw[:rnd.randrange(len(raw))]
    if op == 2:  # inserted / duplicated bytes
        i = rnd.randrange(len(raw))
        chunk = raw[rnd.randrange(len(raw)):][:rnd.randint(1, 64)] if rnd.random() < 0.5 \
            else bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        return raw[:i] + chunk + raw[i:]
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    if op == 3 and json_name in members:
        try:
            doc = json.loads(members[json_name])
            text = json.dumps(mutate_json(doc, rnd))
        except (ValueError, RecursionError):
            text = "{"
        members[json_name] = text.encode()
    elif op == 4 and npz_name in members:
        members[npz_name] = mutate_npz(members[npz_name], rnd)
    else:  # members renamed, dropped or added
        k = rnd.choice(sorted(members))
        choice = rnd.randrange(3)
        if choice == 0:
            members[k + "x"] = members.pop(k)
        elif choice == 1:
            members.pop(k)
        else:
            members["../evil.json"] = b"{}"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=rnd.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])) as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return out.getvalue()


# ---------------------------------------------------------------------------- seeds

_SEEDS = {}


def _small_model():
    from qnn_ext import (BatchNormalization, Flatten, Input, MaxPooling2D, Model, QActivation,
                         QConv2D, QDense)
    inp = Input((6, 6, 1), name="x")
    h = QConv2D(4, (3, 3), kernel_quantizer="quantized_bits(4,0,1)", name="conv")(inp)
    h = BatchNormalization(name="bn")(h)
    h = QActivation("quantized_relu(4)", name="act")(h)
    h = MaxPooling2D((2, 2), name="pool")(h)
    h = Flatten(name="flat")(h)
    out = QDense(3, kernel_quantizer="quantized_bits(4,0,1)", activation="softmax", name="out")(h)
    return Model(inp, out, name="fuzz")


def loader_seed():
    if "loader" not in _SEEDS:
        import qnn_ext
        from qnn_ext import optimizers
        qnn_ext.utils.set_random_seed(11)
        m = _small_model()
        m.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
        rng = np.random.default_rng(0)
        m.fit(rng.standard_normal((8, 6, 6, 1)).astype(np.float32), rng.integers(0, 3, 8),
              epochs=1, batch_size=8, verbose=0)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "seed.qnn")
            m.save(p)
            with open(p, "rb") as f:
                _SEEDS["loader"] = f.read()
    return _SEEDS["loader"]


def deploy_seed():
    if "deploy" not in _SEEDS:
        import qnn_ext
        from qnn_ext import deploy
        qnn_ext.utils.set_random_seed(12)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "seed.qnnd")
            deploy.convert(_small_model(), input_quantizer="quantized_bits(8,0,1)", strict=False).save(p)
            with open(p, "rb") as f:
                _SEEDS["deploy"] = f.read()
    return _SEEDS["deploy"]


def loader_input(rnd):
    return mutate_file(loader_seed(), "config.json", "weights.npz", rnd)


def deploy_input(rnd):
    return mutate_file(deploy_seed(), "deploy.json", "arrays.npz", rnd)


def _no_code_ran():
    if os.path.exists(PWNED):
        os.remove(PWNED)
        raise AssertionError("a pickled object in the file was unpickled (code from the file ran)")


def run_loader(data):
    from qnn_ext.saving import ModelFileError, load_model
    COUNTS["loader"] += 1
    try:
        m = load_model(io.BytesIO(data))
    except ModelFileError as e:
        assert "<file object>" in str(e) or ":" in str(e), str(e)
        return
    finally:
        _no_code_ran()
    # an accepted file must give a model that runs (one zero sample per input)
    shapes = [(1,) + tuple(t.shape[1:]) for t in m.inputs]
    if all(isinstance(d, int) and 0 < d < 10_000 for sh in shapes for d in sh[1:]):
        xs = [np.zeros(sh, np.float32) for sh in shapes]
        y = m.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        assert all(np.asarray(o).shape[0] == 1 for o in (y if isinstance(y, list) else [y]))


def run_deploy(data):
    from qnn_ext import deploy
    from qnn_ext.saving import ModelFileError  # DeployFileError and the shared zip checks
    COUNTS["deploy"] += 1
    with tempfile.NamedTemporaryFile(suffix=".qnnd", delete=False) as f:
        f.write(data)
        path = f.name
    try:
        try:
            im = deploy.load(path)
        except ModelFileError as e:
            assert path in str(e), str(e)
            return
        finally:
            _no_code_ran()
        y = im.predict(np.zeros((2,) + tuple(im.input_shape), np.float32))
        assert y.shape[0] == 2 and np.all(np.isfinite(y))
    finally:
        os.remove(path)


TARGETS = {
    "parser": (parser_input, run_parser),
    "loader": (loader_input, run_loader),
    "deploy": (deploy_input, run_deploy),
}


def run_one(target, seed):
    """Generate input number `seed` of `target` and run it; returns the input (for reports)."""
    gen, run = TARGETS[target]
    x = gen(random.Random(seed))
    run(x)
    return x


def describe(x):
    if isinstance(x, bytes):
        return f"<{len(x)} bytes, sha1 {hashlib.sha1(x).hexdigest()[:12]}>"
    return repr(x)


__all__ = ["TARGETS", "COUNTS", "run_one", "describe", "parser_input", "run_parser",
           "loader_input", "run_loader", "deploy_input", "run_deploy", "npy_bytes",
           "pickled_npy"]
