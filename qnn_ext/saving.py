"""Model files: ``Model.save(path)`` / ``load_model(path)``, ``to_json`` / ``model_from_json``,
``clone_model``.

A model file is a zip with exactly two members:

* ``config.json``: ``{"format": "qnn_ext-model", "format_version": 1, "class_name": "Model" |
  "Sequential", "config": model.get_config(), "compile": {...} | null, "training": {...}}``;
  ``compile`` holds the optimizer, loss and metric configs; ``training`` the weight shapes and the
  optimizer state layout (iterations, which model weights the slots belong to).
* ``weights.npz``: ``numpy.savez`` arrays ``w0000.npy`` ... (model weights, ``get_weights()``
  order) and ``o0000.npy`` ... (optimizer slots, ``optimizer.get_weights()[1:]`` order), all
  float32.

Loading never runs code from the file: no pickle (arrays are read from their ``.npy`` headers,
float32 only), no eval/import; classes come only from our registries (and ``custom_objects``).
Every field is checked (zip integrity, member names and sizes before reading, JSON types, format
and version, class names, weight count/shapes/dtypes/finiteness, optimizer state) and every
problem is a ``ValueError`` naming the file and the field."""
import io
import json
import math
import os
import zipfile

import numpy as np

__all__ = ["save_model", "load_model", "model_to_json", "model_from_json", "clone_model",
           "FORMAT", "FORMAT_VERSION"]

FORMAT = "qnn_ext-model"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "weights.npz"
MAX_CONFIG_BYTES = 16 * 1024 ** 2
MAX_TOTAL_BYTES = 4 * 1024 ** 3
MAX_ARRAYS = 100_000
MAX_CONFIG_DEPTH = 64
MAX_CONFIG_INT = 2 ** 31 - 1
MAX_JSON_PARAMS = 2 ** 28  # weight elements a model built from a JSON string may create
_TOP_KEYS = ("format", "format_version", "class_name", "config", "compile", "training")
_F4 = np.dtype("<f4")


class ModelFileError(ValueError):
    """A model file (or JSON string) that cannot be loaded."""


def _err(source, field, msg):
    return ModelFileError(f"{source}: {field}: {msg}")


def _model_classes():
    from .models import Model, Sequential
    return {"Model": Model, "Sequential": Sequential}


def _class_name(model):
    from .models import Model, Sequential
    if isinstance(model, Sequential):
        return "Sequential"
    if isinstance(model, Model):
        return "Model"
    raise TypeError(f"expected a qnn_ext Model or Sequential, got {type(model).__name__}")


# ---------------------------------------------------------------- JSON helpers

def _json_default(o):
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot store a {type(o).__name__} ({o!r}) in a model file")


def _dumps(obj, what):
    try:
        return json.dumps(obj, default=_json_default)
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot save {what}: {e}") from None


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _parse_json(text, source, field="JSON"):
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_CONFIG_BYTES:
            raise _err(source, field, f"larger than {MAX_CONFIG_BYTES} bytes")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise _err(source, field, f"not UTF-8 text ({e})") from None
    if not isinstance(text, str):
        raise _err(source, field, f"expected a JSON string, got {type(text).__name__}")
    if len(text) > MAX_CONFIG_BYTES:
        raise _err(source, field, f"larger than {MAX_CONFIG_BYTES} characters")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise _err(source, field, "nested too deeply") from None
    except ValueError as e:
        raise _err(source, field, f"not valid JSON ({e})") from None
    _check_tree(obj, source, field, 0)
    return obj


def _check_tree(obj, source, field, depth):
    """Bound nesting depth and integer sizes, reject non-finite floats outside known places."""
    if depth > MAX_CONFIG_DEPTH:
        raise _err(source, field, f"nested deeper than {MAX_CONFIG_DEPTH} levels")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_tree(v, source, f"{field}.{k}", depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_tree(v, source, f"{field}[{i}]", depth + 1)
    elif isinstance(obj, bool) or obj is None or isinstance(obj, str):
        pass
    elif isinstance(obj, int):
        if abs(obj) > MAX_CONFIG_INT:
            raise _err(source, field, f"integer {obj} is out of range (|value| <= {MAX_CONFIG_INT})")
    elif isinstance(obj, float):
        pass


def _expect(value, types, source, field, what=None):
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        names = "/".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise _err(source, field, f"expected {what or names}, got {type(value).__name__} "
                                  f"{_short(value)}")
    return value


def _short(v):
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _expect_int(value, source, field, lo=0, hi=MAX_CONFIG_INT):
    _expect(value, int, source, field, "an integer")
    if not lo <= value <= hi:
        raise _err(source, field, f"{value} is out of range [{lo}, {hi}]")
    return value


def _expect_shape(value, source, field):
    _expect(value, list, source, field, "a shape (list of integers)")
    if len(value) > 32:
        raise _err(source, field, f"{len(value)} dimensions (at most 32)")
    for i, d in enumerate(value):
        _expect_int(d, source, f"{field}[{i}]")
    return tuple(value)


# ---------------------------------------------------------------- model from config

def _weight_budget(limit, source):
    """While building a model from file data, refuse (before allocating) to create more than
    ``limit`` weight elements: a hostile config asking for a huge layer is a ValueError, not a
    memory exhaustion."""
    from .layers.base import weight_budget
    return weight_budget(limit, lambda msg: _err(source, "config", msg))


def _build(class_name, config, custom_objects, source, field="config", budget=None):
    if budget is not None:
        with _weight_budget(budget, source):
            return _build(class_name, config, custom_objects, source, field)

    classes = _model_classes()
    if not isinstance(class_name, str) or class_name not in classes:
        raise _err(source, "class_name", f"expected 'Model' or 'Sequential', got {_short(class_name)}")
    _expect(config, dict, source, field, "a dict")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"custom_objects must be a dict, got {type(custom_objects).__name__}")
    try:
        return classes[class_name].from_config(config, custom_objects=custom_objects)
    except ModelFileError:
        raise
    except RecursionError:
        raise _err(source, field, "model config nested too deeply") from None
    except MemoryError:
        raise _err(source, field, "the model it describes is too large to build") from None
    except Exception as e:  # noqa: BLE001 -- any failure to build from file data is a bad file
        raise _err(source, field, f"cannot build the {class_name}: {type(e).__name__}: {e}") from None


# ---------------------------------------------------------------- save

def _compile_info(model):
    from . import losses, metrics, optimizers
    opt, loss = model.optimizer, model.loss
    if opt is None or loss is None:
        return None
    if type(opt) not in optimizers._CLASSES.values():
        raise ValueError(f"cannot save the optimizer {type(opt).__name__}: only "
                         f"{', '.join(optimizers._CLASSES)} are supported")
    if not isinstance(opt.learning_rate, (float, int, optimizers.LearningRateSchedule)):
        raise ValueError("cannot save an optimizer whose learning_rate is a plain callable; "
                         "use a float or a LearningRateSchedule")
    if type(loss) in losses._CLASSES.values():
        loss_cfg = losses.serialize(loss)
    else:  # a user function: found again by name in custom_objects at load time
        loss_cfg = getattr(loss, "name", None) or getattr(getattr(loss, "fn", None), "__name__", None)
        if not isinstance(loss_cfg, str):
            raise ValueError(f"cannot save the loss {loss!r}")
    mets = []
    for m in model.compiled_metrics:
        if m.name in ("accuracy", "acc"):
            mets.append(m.name)  # resolved again from the loss, as in compile()
        elif type(m) in metrics._CLASSES.values():
            mets.append(metrics.serialize(m))
        else:
            mets.append(m.name)
    return {"optimizer": optimizers.serialize(opt), "loss": loss_cfg, "metrics": mets}


def _training_info(model, include_optimizer):
    weights = model.weights
    info = {"weights": [{"name": v.name, "shape": list(v.shape)} for v in weights],
            "optimizer": None}
    opt = model.optimizer
    if include_optimizer and opt is not None:
        pos = {id(v): i for i, v in enumerate(weights)}
        idx = []
        for v in opt._vars:
            if id(v) not in pos:
                raise ValueError(f"cannot save the optimizer state: variable '{v.name}' is not a "
                                 f"weight of model '{model.name}'")
            idx.append(pos[id(v)])
        info["optimizer"] = {"iterations": int(opt.iterations), "variables": idx,
                             "slots_per_variable": len(opt._slot_names)}
    return info


def save_model(model, filepath, overwrite=True, include_optimizer=True):
    """Write ``model`` to ``filepath`` (a zip of config.json + weights.npz)."""
    class_name = _class_name(model)
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    compile_info = _compile_info(model) if include_optimizer else None
    training = _training_info(model, include_optimizer and compile_info is not None)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "class_name": class_name,
           "config": model.get_config(), "compile": compile_info, "training": training}
    text = _dumps(doc, f"model '{model.name}'")
    arrays = {f"w{i:04d}": np.ascontiguousarray(w, dtype=np.float32)
              for i, w in enumerate(model.get_weights())}
    if training["optimizer"] is not None:
        for i, s in enumerate(model.optimizer.get_weights()[1:]):
            arrays[f"o{i:04d}"] = np.ascontiguousarray(s, dtype=np.float32)
    for k, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise ValueError(f"cannot save model '{model.name}': array {k} has NaN or inf values")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    tmp = filepath + ".tmp"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(CONFIG_NAME, text)
            zf.writestr(WEIGHTS_NAME, buf.getvalue(), compress_type=zipfile.ZIP_STORED)
        os.replace(tmp, filepath)  # a crash mid-write never leaves a half-written model file
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ---------------------------------------------------------------- load

def _check_members(zf, source, expected, per_cap, total_cap):
    infos = zf.infolist()
    if len(infos) > max(len(expected), 1) * 2 + 16:
        raise _err(source, "members", f"{len(infos)} members, expected {len(expected)}")
    seen = {}
    total = 0
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise _err(source, f"member {name!r}", "absolute path")
        if ".." in name.replace("\\", "/").split("/") or "\x00" in name:
            raise _err(source, f"member {name!r}", "path traversal")
        if name in seen:
            raise _err(source, f"member {name!r}", "duplicate member")
        if name not in expected:
            raise _err(source, f"member {name!r}", f"unexpected member (expected only "
                                                   f"{', '.join(sorted(expected))})")
        if info.flag_bits & 0x1:
            raise _err(source, f"member {name!r}", "encrypted members are not supported")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _err(source, f"member {name!r}", f"unsupported compression {info.compress_type}")
        if info.file_size > per_cap.get(name, total_cap):
            raise _err(source, f"member {name!r}", f"uncompressed size {info.file_size} exceeds "
                                                   f"the limit {per_cap.get(name, total_cap)}")
        total += info.file_size
        if total > total_cap:
            raise _err(source, "members", f"total uncompressed size exceeds {total_cap} bytes")
        seen[name] = info
    missing = sorted(set(expected) - set(seen))
    if missing:
        raise _err(source, "members", f"missing member(s) {', '.join(missing)}")
    return seen


def _read_member(zf, info, source, n=None):
    """Read a member (or its first n bytes), checking it holds exactly file_size bytes."""
    want = info.file_size if n is None else n
    try:
        with zf.open(info) as f:
            data = f.read(want + (1 if n is None else 0))
    except Exception as e:  # noqa: BLE001 -- zlib.error, BadZipFile (CRC), EOFError, OSError...
        raise _err(source, f"member {info.filename!r}", f"corrupt data ({type(e).__name__}: {e})") from None
    if n is None and len(data) != info.file_size:
        raise _err(source, f"member {info.filename!r}", f"holds {len(data)} bytes, header says "
                                                        f"{info.file_size}")
    return data


def _read_npy(data, name, shape, source):
    """A float32 array from .npy bytes whose header must declare (<f4, C order, `shape`)."""
    field = f"{WEIGHTS_NAME}/{name}"
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            hshape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            hshape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as e:  # noqa: BLE001 -- malformed header text
        raise _err(source, field, f"bad .npy header ({type(e).__name__}: {e})") from None
    if dtype != _F4:
        raise _err(source, field, f"dtype {dtype} (only float32 '<f4' is allowed)")
    if fortran:
        raise _err(source, field, "Fortran-order arrays are not allowed")
    if tuple(hshape) != tuple(shape):
        raise _err(source, field, f"shape {tuple(hshape)}, expected {tuple(shape)}")
    nbytes = int(math.prod(shape)) * 4
    start = f.tell()
    if len(data) - start != nbytes:
        raise _err(source, field, f"{len(data) - start} data bytes for shape {tuple(shape)} "
                                  f"({nbytes} expected)")
    arr = np.frombuffer(data, dtype=_F4, count=nbytes // 4, offset=start).reshape(shape)
    arr = arr.astype(np.float32)  # native-order copy
    if not np.all(np.isfinite(arr)):
        raise _err(source, field, "NaN or inf values")
    return arr


def _read_weights(npz_bytes, source, expected):
    """{name: array} for expected {name: shape}; the npz must hold exactly those arrays."""
    try:
        inner = zipfile.ZipFile(io.BytesIO(npz_bytes))
    except Exception as e:  # noqa: BLE001 -- BadZipFile, EOFError, struct errors...
        raise _err(source, WEIGHTS_NAME, f"not a valid .npz ({type(e).__name__}: {e})") from None
    with inner:
        files = {f"{k}.npy": s for k, s in expected.items()}
        caps = {f"{k}.npy": int(math.prod(s)) * 4 + 65536 for k, s in expected.items()}
        try:
            infos = _check_members(inner, f"{source}/{WEIGHTS_NAME}", files, caps, MAX_TOTAL_BYTES)
        except ModelFileError:
            raise
        except Exception as e:  # noqa: BLE001
            raise _err(source, WEIGHTS_NAME, f"corrupt .npz ({type(e).__name__}: {e})") from None
        out = {}
        for k, shape in expected.items():
            data = _read_member(inner, infos[f"{k}.npy"], f"{source}/{WEIGHTS_NAME}")
            out[k] = _read_npy(data, f"{k}.npy", shape, source)
    return out


def _parse_document(doc, source):
    _expect(doc, dict, source, CONFIG_NAME, "a JSON object")
    extra = sorted(set(doc) - set(_TOP_KEYS))
    if extra:
        raise _err(source, CONFIG_NAME, f"unexpected key(s) {', '.join(map(repr, extra))}")
    missing = [k for k in _TOP_KEYS if k not in doc]
    if missing:
        raise _err(source, CONFIG_NAME, f"missing key(s) {', '.join(map(repr, missing))}")
    if doc["format"] != FORMAT:
        raise _err(source, "format", f"expected {FORMAT!r}, got {_short(doc['format'])}")
    ver = doc["format_version"]
    if isinstance(ver, bool) or not isinstance(ver, int):
        raise _err(source, "format_version", f"expected an integer, got {_short(ver)}")
    if ver != FORMAT_VERSION:
        raise _err(source, "format_version", f"version {ver} is not supported (this qnn_ext "
                                             f"reads version {FORMAT_VERSION})")
    if not isinstance(doc["class_name"], str) or doc["class_name"] not in _model_classes():
        raise _err(source, "class_name", f"expected 'Model' or 'Sequential', got "
                                         f"{_short(doc['class_name'])}")
    _expect(doc["config"], dict, source, "config", "a dict")
    if doc["compile"] is not None:
        c = _expect(doc["compile"], dict, source, "compile", "a dict or null")
        if set(c) != {"optimizer", "loss", "metrics"}:
            raise _err(source, "compile", f"expected keys optimizer, loss, metrics; got "
                                          f"{sorted(c)}")
        _expect(c["optimizer"], dict, source, "compile.optimizer", "a dict")
        _expect(c["loss"], (str, dict), source, "compile.loss", "a name or a dict")
        _expect(c["metrics"], list, source, "compile.metrics", "a list")
        for i, m in enumerate(c["metrics"]):
            _expect(m, (str, dict), source, f"compile.metrics[{i}]", "a name or a dict")
    t = _expect(doc["training"], dict, source, "training", "a dict")
    if set(t) != {"weights", "optimizer"}:
        raise _err(source, "training", f"expected keys weights, optimizer; got {sorted(t)}")
    ws = _expect(t["weights"], list, source, "training.weights", "a list")
    if len(ws) > MAX_ARRAYS:
        raise _err(source, "training.weights", f"{len(ws)} weights (at most {MAX_ARRAYS})")
    shapes = []
    for i, w in enumerate(ws):
        f = f"training.weights[{i}]"
        _expect(w, dict, source, f, "a dict")
        if set(w) != {"name", "shape"}:
            raise _err(source, f, f"expected keys name, shape; got {sorted(w)}")
        _expect(w["name"], str, source, f + ".name")
        shapes.append(_expect_shape(w["shape"], source, f + ".shape"))
    o = t["optimizer"]
    if o is not None:
        _expect(o, dict, source, "training.optimizer", "a dict or null")
        if set(o) != {"iterations", "variables", "slots_per_variable"}:
            raise _err(source, "training.optimizer", f"expected keys iterations, variables, "
                                                     f"slots_per_variable; got {sorted(o)}")
        _expect_int(o["iterations"], source, "training.optimizer.iterations", 0, 2 ** 62)
        _expect_int(o["slots_per_variable"], source, "training.optimizer.slots_per_variable", 0, 16)
        _expect(o["variables"], list, source, "training.optimizer.variables", "a list")
        for i, v in enumerate(o["variables"]):
            _expect_int(v, source, f"training.optimizer.variables[{i}]", 0, max(len(ws) - 1, 0))
        if len(set(o["variables"])) != len(o["variables"]):
            raise _err(source, "training.optimizer.variables", "repeated variable index")
        if o["variables"] and not ws:
            raise _err(source, "training.optimizer.variables", "the model has no weights")
        if doc["compile"] is None:
            raise _err(source, "training.optimizer", "optimizer state without compile info")
    return shapes


def _compile(model, info, custom_objects, source):
    from . import losses, metrics, optimizers
    try:
        opt = optimizers.deserialize(info["optimizer"])
    except Exception as e:  # noqa: BLE001
        raise _err(source, "compile.optimizer", f"{type(e).__name__}: {e}") from None
    loss_cfg = info["loss"]
    try:
        if isinstance(loss_cfg, str) and custom_objects and loss_cfg in custom_objects:
            loss = custom_objects[loss_cfg]
        elif isinstance(loss_cfg, str):
            loss = losses.get(loss_cfg)
        else:
            loss = losses.deserialize(loss_cfg, custom_objects)
    except Exception as e:  # noqa: BLE001
        raise _err(source, "compile.loss", f"{type(e).__name__}: {e}") from None
    mets = []
    for i, m in enumerate(info["metrics"]):
        try:
            if isinstance(m, str) and custom_objects and m in custom_objects:
                mets.append(custom_objects[m])
            elif isinstance(m, str):
                mets.append(m)  # checked by compile() below
            else:
                mets.append(metrics.deserialize(m, custom_objects))
        except Exception as e:  # noqa: BLE001
            raise _err(source, f"compile.metrics[{i}]", f"{type(e).__name__}: {e}") from None
    try:
        model.compile(optimizer=opt, loss=loss, metrics=mets)
    except Exception as e:  # noqa: BLE001
        raise _err(source, "compile", f"{type(e).__name__}: {e}") from None
    return opt


DRY_RUN_MAX_ELEMENTS = 1 << 22


def _dry_run(model, source):
    """Run one zero sample, so that a config whose parts do not fit together (a quantizer alpha
    of the wrong shape for its layer, ...) fails at load as a ModelFileError instead of at the
    first predict with a bare NumPy error. Skipped when an input dim is unknown or the sample
    would be large."""
    try:
        shapes = [tuple(t.shape[1:]) for t in model.inputs]
    except Exception:  # noqa: BLE001 -- a model kind without symbolic inputs: nothing to run
        return
    if not shapes or any(not all(isinstance(d, int) and d > 0 for d in sh) or
                         math.prod(sh) > DRY_RUN_MAX_ELEMENTS for sh in shapes):
        return
    xs = [np.zeros((1,) + sh, np.float32) for sh in shapes]
    try:
        model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    except Exception as e:  # noqa: BLE001 -- any inconsistency between the layers
        raise _err(source, "config", f"the model does not run on a zero input "
                                     f"({type(e).__name__}: {e})") from None


def load_model(filepath, custom_objects=None, compile=True):
    """A model written by ``Model.save``; compiled (with its optimizer state) if ``compile``."""
    if hasattr(filepath, "read"):
        source = getattr(filepath, "name", "<file object>")
        fh, close = filepath, False
    else:
        source = os.fspath(filepath)
        fh, close = open(source, "rb"), True  # OSError (missing file...) propagates as is
    source = str(source)
    try:
        try:
            zf = zipfile.ZipFile(fh)
        except Exception as e:  # noqa: BLE001 -- BadZipFile, EOFError, OSError on seek...
            raise _err(source, "zip", f"not a qnn_ext model file (bad zip: {type(e).__name__}: "
                                      f"{e})") from None
        with zf:
            try:
                infos = _check_members(zf, source, {CONFIG_NAME: 1, WEIGHTS_NAME: 1},
                                       {CONFIG_NAME: MAX_CONFIG_BYTES}, MAX_TOTAL_BYTES)
            except ModelFileError:
                raise
            except Exception as e:  # noqa: BLE001
                raise _err(source, "zip", f"corrupt zip ({type(e).__name__}: {e})") from None
            doc = _parse_json(_read_member(zf, infos[CONFIG_NAME], source), source, CONFIG_NAME)
            shapes = _parse_document(doc, source)
            declared = sum(int(math.prod(sh)) for sh in shapes)
            if declared * 4 > infos[WEIGHTS_NAME].file_size:
                raise _err(source, "training.weights", f"declares {declared} weight elements, "
                           f"more than {WEIGHTS_NAME} ({infos[WEIGHTS_NAME].file_size} bytes) holds")
            model = _build(doc["class_name"], doc["config"], custom_objects, source,
                           budget=declared)
            model_ws = model.weights
            if len(model_ws) != len(shapes):
                raise _err(source, "training.weights", f"{len(shapes)} weights, but the model "
                                                       f"has {len(model_ws)}")
            for i, (v, s) in enumerate(zip(model_ws, shapes)):
                if tuple(v.shape) != s:
                    raise _err(source, f"training.weights[{i}].shape", f"weight '{v.name}' has "
                                                                       f"shape {v.shape}, file says {s}")
            expected = {f"w{i:04d}": s for i, s in enumerate(shapes)}
            o = doc["training"]["optimizer"]
            if o is not None:
                k = o["slots_per_variable"]
                j = 0
                for vi in o["variables"]:
                    for _ in range(k):
                        expected[f"o{j:04d}"] = shapes[vi]
                        j += 1
                if len(expected) > MAX_ARRAYS:
                    raise _err(source, "training.optimizer", "too many optimizer arrays")
            arrays = _read_weights(_read_member(zf, infos[WEIGHTS_NAME], source), source, expected)
        model.set_weights([arrays[f"w{i:04d}"] for i in range(len(shapes))])
        _dry_run(model, source)
        if compile and doc["compile"] is not None:
            opt = _compile(model, doc["compile"], custom_objects, source)
            if o is not None:
                if len(opt._slot_names) != o["slots_per_variable"]:
                    raise _err(source, "training.optimizer.slots_per_variable",
                               f"{o['slots_per_variable']}, but {type(opt).__name__} has "
                               f"{len(opt._slot_names)} slot(s) per variable")
                slots = [arrays[f"o{j:04d}"] for j in range(len(o["variables"]) * len(opt._slot_names))]
                try:
                    opt.set_weights([np.array(o["iterations"], dtype=np.int64)] + slots)
                    opt.build([model_ws[i] for i in o["variables"]])
                except Exception as e:  # noqa: BLE001
                    raise _err(source, "training.optimizer", f"{type(e).__name__}: {e}") from None
        return model
    finally:
        if close:
            fh.close()


# ---------------------------------------------------------------- JSON / clone

def model_to_json(model, **kwargs):
    """Keras's ``{"class_name", "config"}`` JSON of the architecture (no weights)."""
    return json.dumps({"class_name": _class_name(model), "config": model.get_config()},
                      default=_json_default, **kwargs)


def model_from_json(json_string, custom_objects=None):
    """A new (uncompiled, freshly initialized) model from ``model_to_json`` output."""
    source = "model JSON"
    doc = _parse_json(json_string, source)
    _expect(doc, dict, source, "JSON", "a JSON object")
    extra = sorted(set(doc) - {"class_name", "config", "keras_version", "backend"})
    if extra:
        raise _err(source, "JSON", f"unexpected key(s) {', '.join(map(repr, extra))}")
    if "class_name" not in doc or "config" not in doc:
        raise _err(source, "JSON", "expected keys 'class_name' and 'config'")
    return _build(doc["class_name"], doc["config"], custom_objects, source,
                  budget=MAX_JSON_PARAMS)


def clone_model(model, custom_objects=None):
    """QKeras's ``clone_model``: a new model with the same config and a copy of the weights."""
    clone = _build(_class_name(model), model.get_config(), custom_objects, f"model '{model.name}'")
    clone.set_weights(model.get_weights())
    return clone
