"""Keras activation functions by name, as QKeras's ``get_quantizer`` falls back to them
(``QActivation("relu")``). Each is a callable on arrays with ``gradient(x, dy, y=None)``; both
run in C (``_core.activation_forward/backward``)."""
import numpy as np

from . import _core

F32 = np.float32


class Activation:
    def __init__(self, name, kind):
        self.__name__ = name
        self._kind = kind

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype=F32)
        return _core.activation_forward(self.__name__, self._kind, x)

    def gradient(self, x, dy, y=None):
        """dL/dx; sigmoid/tanh/softmax use the forward output `y` (recomputed if not given)."""
        x = np.ascontiguousarray(x, dtype=F32)
        dy = np.ascontiguousarray(dy, dtype=F32)
        if y is None:
            y = self(x)
        return _core.activation_backward(self.__name__, self._kind, x,
                                         np.ascontiguousarray(y, dtype=F32), dy)

    def get_config(self):
        return self.__name__

    def __repr__(self):
        return f"<activation {self.__name__}>"


_ACTS = {name: Activation(name, name) for name in ("linear", "relu", "sigmoid", "tanh", "softmax")}


def lookup(name):
    """The activation called `name`, or None."""
    return _ACTS.get(name)


def names():
    return list(_ACTS)


def get(identifier):
    """Resolve an activation by name, callable or None (-> linear)."""
    if identifier is None:
        return _ACTS["linear"]
    if callable(identifier):
        return identifier
    act = lookup(identifier) if isinstance(identifier, str) else None
    if act is None:
        raise ValueError(f"unknown activation {identifier!r}; valid: {', '.join(names())}")
    return act
