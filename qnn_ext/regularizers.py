"""Keras weight regularizers: ``reg(x) -> float`` penalty added to the loss and
``reg.gradient(x)`` its derivative (float32, x's shape) added to the weight gradient."""

import numpy as np
from . import _registry

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize",
           "deserialize"]


def _factor(who, name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not np.isfinite(v) or v < 0:
        raise ValueError(f"{who}: {name} must be a finite number >= 0, got {v!r}")
    return float(v)


class Regularizer(_registry.Configurable):
    def __call__(self, x):
        return 0.0

    def gradient(self, x):
        return np.zeros(np.shape(x), np.float32)


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x^2)``; gradient ``l1 * sign(x) + 2 * l2 * x``."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(type(self).__name__, "l1", l1)
        self.l2 = _factor(type(self).__name__, "l2", l2)

    def __call__(self, x):
        x = np.asarray(x, np.float32)
        r = np.float32(0)
        if self.l1:
            r += np.float32(self.l1) * np.sum(np.abs(x), dtype=np.float32)
        if self.l2:
            r += np.float32(self.l2) * np.sum(x * x, dtype=np.float32)
        return float(r)

    def gradient(self, x):
        x = np.asarray(x, np.float32)
        g = np.zeros(x.shape, np.float32)
        if self.l1:
            g += np.float32(self.l1) * np.sign(x)
        if self.l2:
            g += np.float32(2.0 * self.l2) * x
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|x|)`` (``l`` is accepted as the old keyword)."""

    def __init__(self, l1=0.01, **kwargs):
        l1 = kwargs.pop("l", l1)
        if kwargs:
            raise TypeError(f"L1: unexpected keyword argument(s) {sorted(kwargs)}")
        super().__init__(l1=l1, l2=0.0)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(x^2)`` (``l`` is accepted as the old keyword)."""

    def __init__(self, l2=0.01, **kwargs):
        l2 = kwargs.pop("l", l2)
        if kwargs:
            raise TypeError(f"L2: unexpected keyword argument(s) {sorted(kwargs)}")
        super().__init__(l1=0.0, l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1 = L1
l2 = L2


def l1_l2(l1=0.01, l2=0.01):  # noqa: F811  (Keras's function: both factors default to 0.01)
    return L1L2(l1=l1, l2=l2)


_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_NAMES = {"l1": L1, "l2": L2, "l1_l2": l1_l2}


def serialize(regularizer):
    return _registry.serialize(regularizer)


def deserialize(config, custom_objects=None):
    return _registry.deserialize("regularizer", config, _CLASSES,
                                 {"l1": L1, "l2": L2, "l1_l2": L1L2}, get, custom_objects)


def get(identifier):
    """A regularizer from "l1", "l2", "l1_l2" (factors 0.01, as Keras), a class name, a config
    dict, a Regularizer/callable (returned as is) or None."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        make = _NAMES.get(identifier) or _CLASSES.get(identifier)
        if make is None:
            raise _registry.unknown("regularizer", identifier, list(_NAMES) + list(_CLASSES))
        return make()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")
