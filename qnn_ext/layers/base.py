"""Layer base class and the symbolic tensors of the functional API.

A layer's ``__init__`` stores configuration only, ``build(input_shape)`` creates its weights and
``call(inputs, training)`` computes the output from NumPy arrays, keeping what ``backward``
needs; ``backward(grad)`` returns the input gradient and fills ``self.grads`` aligned with
``self.trainable_weights`` (architecture.md "Autograd"). Calling a layer on a NumPy array runs
it eagerly; calling it on a KerasTensor (from :func:`Input`) records a graph node instead.
"""
import contextlib
import itertools
import math
import re
import threading

import numpy as np

from .. import _core
from ..variables import Variable

F32 = np.float32
_uids = {}
_budget = threading.local()


@contextlib.contextmanager
def weight_budget(limit, error):
    """While active in this thread, ``add_weight`` refuses (before allocating) to create more
    than `limit` weight elements in all, raising ``error(message)``: a model built from file
    data cannot exhaust memory with a hostile layer size."""
    prev = getattr(_budget, "state", None)
    _budget.state = {"left": int(limit), "limit": int(limit), "error": error}
    try:
        yield
    finally:
        _budget.state = prev


def _charge_budget(layer, name, shape):
    st = getattr(_budget, "state", None)
    if st is None:
        return
    try:
        n = math.prod(max(int(d), 0) for d in shape)
    except (TypeError, ValueError, OverflowError):
        return  # not a shape: the initializer's own check reports it
    if n > st["left"]:
        raise st["error"](f"layer '{layer.name}' asks for weight '{name}' of shape "
                          f"{tuple(shape)}: more weight data than allowed ({st['limit']} "
                          f"elements in all)")
    st["left"] -= n


def _unique_name(base):
    n = _uids.get(base, 0)
    _uids[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower().replace("q_", "q")


class KerasTensor:
    """A symbolic tensor: a shape (batch dimension None) and the layer call that produced it."""

    def __init__(self, shape, layer=None, inputs=(), index=0):
        self.shape = tuple(shape)
        self.layer = layer          # the layer whose call produced this tensor
        self.inputs = tuple(inputs)  # the KerasTensors fed to that call
        self.index = index          # which output of the call
        self.name = f"{layer.name}/out{index}" if layer is not None else "tensor"

    @property
    def dtype(self):
        return "float32"

    def __repr__(self):
        return f"<KerasTensor shape={self.shape} from '{self.layer.name if self.layer else None}'>"


def positive_int(who, name, v):
    """`v` as an int >= 1, or a ValueError naming the layer and the argument."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {v!r}")
    return int(v)


def _shape_str(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


_scratch = threading.local()


def thread_workspace():
    """The `_core.Workspace` that layers called from this thread pass to their GEMM and
    convolution kernels: packing and scratch buffers are allocated once, grown to the largest
    layer's need, and reused by every layer and step after, instead of being allocated (and,
    past the allocator's thresholds, page-faulted afresh) per call. One per thread, so layers
    run from several threads never wait for each other; `backend.clear_session()` frees it."""
    ws = getattr(_scratch, "ws", None)
    if ws is None:
        ws = _scratch.ws = _core.Workspace()
    return ws


class Layer:
    """Base class of every layer (and of Model)."""

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None, batch_size=None,
                 input_dim=None, **kwargs):
        if kwargs:
            unknown = ", ".join(sorted(kwargs))
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s): {unknown}")
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{type(self).__name__}: only float32 is supported, got dtype={dtype!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{type(self).__name__}: name must be a non-empty str, got {name!r}")
        self.name = name if name is not None else _unique_name(_snake(type(self).__name__))
        self.trainable = trainable
        self.built = False
        self._variables = []
        self.grads = []
        self._build_input_shape = None
        self._need_input_grad = True  # Model.backward clears it for layers fed by its inputs
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._batch_input_shape = (
            (batch_size,) + tuple(input_shape) if input_shape is not None else None)

    @property
    def _workspace(self):
        """The scratch memory of this thread's GEMM and convolution calls (see
        `thread_workspace`)."""
        return thread_workspace()

    # ------------------------------------------------------------ weights
    def add_weight(self, name, shape, initializer="zeros", trainable=True, constraint=None,
                   regularizer=None):
        from .. import initializers
        _charge_budget(self, name, shape)
        init = initializers.get(initializer)
        value = np.asarray(init(tuple(shape), dtype="float32"), dtype=F32)
        if value.shape != tuple(shape):
            raise ValueError(f"{self.name}: initializer for '{name}' returned shape {value.shape}, "
                             f"expected {tuple(shape)}")
        v = Variable(value, f"{self.name}/{name}", trainable=trainable, constraint=constraint)
        self._variables.append(v)
        self._regularizers = getattr(self, "_regularizers", [])
        if regularizer is not None:
            self._regularizers.append((v, regularizer))
        return v

    @property
    def weights(self):
        return list(self._variables)

    @property
    def trainable_weights(self):
        return [v for v in self._variables if v.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [v for v in self._variables if not (v.trainable and self.trainable)]

    @property
    def variables(self):
        return self.weights

    def get_weights(self):
        return [v.value.copy() for v in self._variables]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self._variables):
            raise ValueError(f"{self.name}: set_weights expects {len(self._variables)} arrays "
                             f"({', '.join(v.name for v in self._variables) or 'none'}), got {len(weights)}")
        for v, w in zip(self._variables, weights):
            w = np.asarray(w)
            if w.shape != v.shape:
                raise ValueError(f"{self.name}: weight '{v.name}' has shape {v.shape}, "
                                 f"set_weights got {w.shape}")
        for v, w in zip(self._variables, weights):
            v.assign(w)

    def count_params(self):
        return int(sum(v.value.size for v in self._variables))

    def regularization_losses(self):
        return [(v, r) for v, r in getattr(self, "_regularizers", [])]

    # ------------------------------------------------------------ building and calling
    def build(self, input_shape):
        self.built = True

    def _maybe_build(self, input_shape):
        if not self.built:
            self._build_input_shape = input_shape
            self.build(input_shape)
            self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def _check_input(self, x):
        """Compare a real input's shape with the shape the layer was built for."""
        want = self._build_input_shape
        if want is None or isinstance(want, list):
            return
        if len(x.shape) != len(want):
            raise ValueError(f"{type(self).__name__} '{self.name}': input must have {len(want)} dims "
                             f"{_shape_str(want)}, got shape {x.shape}")
        for a, b in zip(x.shape[1:], want[1:]):
            if b is not None and a != b:
                raise ValueError(f"{type(self).__name__} '{self.name}': input must have shape "
                                 f"{_shape_str(want)}, got {x.shape}")

    def __call__(self, inputs, training=None, **kwargs):
        if kwargs:
            raise TypeError(f"{self.name}: unexpected call argument(s): {', '.join(sorted(kwargs))}")
        symbolic = isinstance(inputs, KerasTensor) or (
            isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, KerasTensor) for t in inputs))
        if symbolic:
            in_shape = ([t.shape for t in inputs] if isinstance(inputs, (list, tuple)) else inputs.shape)
            self._maybe_build(in_shape)
            out_shape = self.compute_output_shape(in_shape)
            ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            return KerasTensor(out_shape, self, ins)
        if isinstance(inputs, (list, tuple)):
            xs = [self._as_array(t) for t in inputs]
            self._maybe_build([(None,) + x.shape[1:] for x in xs])
            return self.call(xs, training=bool(training))
        x = self._as_array(inputs)
        self._maybe_build((None,) + x.shape[1:])
        self._check_input(x)
        return self.call(x, training=bool(training))

    def _as_array(self, x):
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{type(self).__name__} '{self.name}': inputs must be numeric arrays, "
                            f"got dtype {a.dtype}")
        return np.ascontiguousarray(a, dtype=F32)

    def call(self, inputs, training=False):
        return inputs

    def _act_grad(self, act, cache, grad):
        """Gradient through the layer's output activation; Model's fused softmax/cross-entropy
        sets ``_preact_grad`` and hands in the gradient of the logits directly."""
        if getattr(self, "_preact_grad", False):
            return grad
        from .quant_utils import act_backward
        return act_backward(act, cache, grad)

    def backward(self, grad):
        self.grads = []
        return grad

    # ------------------------------------------------------------ config
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": "float32"}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        bis = config.pop("batch_input_shape", None)
        if bis is not None:
            config["input_shape"] = tuple(bis[1:])
            config["batch_size"] = bis[0]
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} '{self.name}'>"


class InputLayer(Layer):
    def __init__(self, input_shape=None, batch_size=None, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape, batch_size=batch_size,
                         **kwargs)
        self.built = True

    def get_config(self):
        return {"name": self.name, "batch_input_shape": list(self._batch_input_shape),
                "dtype": "float32"}


def Input(shape=None, batch_size=None, name=None, dtype=None, **kwargs):
    """A symbolic input of `shape` (without the batch dimension), as keras.Input."""
    if shape is None:
        raise ValueError("Input: shape is required (the shape of one sample, e.g. (28, 28, 1))")
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
    for d in shape:
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1):
            raise ValueError(f"Input: shape must contain positive ints (or None), got {shape}")
    layer = InputLayer(input_shape=shape, batch_size=batch_size, name=name, dtype=dtype, **kwargs)
    t = KerasTensor((batch_size,) + shape, layer, ())
    layer._output_tensor = t
    return t


def flatten_list(xs):
    return list(itertools.chain.from_iterable(x if isinstance(x, (list, tuple)) else [x] for x in xs))
