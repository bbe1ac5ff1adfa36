"""Keras activation functions by name, as QKeras's ``get_quantizer`` falls back to them
(``QActivation("relu")``). Each is a callable on arrays with a ``gradient(x, dy)`` method.

These are NumPy for now; the layers work moves them onto C kernels with the rest of the
float layers.
"""
import numpy as np

F32 = np.float32


class Activation:
    def __init__(self, name, f, df):
        self.__name__ = name
        self._f, self._df = f, df

    def __call__(self, x):
        return np.asarray(self._f(np.asarray(x, dtype=F32)), dtype=F32)

    def gradient(self, x, dy, y=None):
        """dL/dx; `y` (the forward output) is reused where the derivative is written in it."""
        x = np.asarray(x, dtype=F32)
        return np.asarray(self._df(x, np.asarray(dy, dtype=F32)), dtype=F32)

    def get_config(self):
        return self.__name__

    def __repr__(self):
        return f"<activation {self.__name__}>"


def _sigmoid(x):
    return F32(1) / (F32(1) + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _dsoftmax(x, dy):
    y = _softmax(x)
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


_ACTS = {
    "linear": Activation("linear", lambda x: x, lambda x, dy: dy),
    "relu": Activation("relu", lambda x: np.maximum(x, F32(0)), lambda x, dy: dy * (x > 0)),
    "sigmoid": Activation("sigmoid", _sigmoid,
                          lambda x, dy: dy * _sigmoid(x) * (F32(1) - _sigmoid(x))),
    "tanh": Activation("tanh", np.tanh, lambda x, dy: dy * (F32(1) - np.tanh(x) ** 2)),
    "softmax": Activation("softmax", _softmax, _dsoftmax),
}


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
