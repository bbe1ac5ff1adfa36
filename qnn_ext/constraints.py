"""Keras weight constraints and QKeras's ``Clip``, applied by the optimizer after each update
(``Variable.apply_constraint``). ``constraint(w) -> new w`` (float32 NumPy array)."""

import numpy as np
from . import _registry

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "Clip", "max_norm",
           "non_neg", "unit_norm", "min_max_norm", "get", "serialize", "deserialize"]

_EPS = np.float32(1e-7)  # K.epsilon() in every norm denominator


def _w(who, w):
    w = np.asarray(w)
    if not np.issubdtype(w.dtype, np.floating):
        w = w.astype(np.float32)
    return w


def _norms(w, axis):
    return np.sqrt(np.sum(w * w, axis=axis, keepdims=True))


class Constraint(_registry.Configurable):
    def __call__(self, w):
        return w


class MaxNorm(Constraint):
    """Rescale slices along ``axis`` whose L2 norm exceeds ``max_value`` (``axis=0`` = per output
    unit of a dense kernel; ``[0, 1, 2]`` for an HWIO conv kernel)."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w):
        w = _w("MaxNorm", w)
        n = _norms(w, _axis(self.axis))
        desired = np.clip(n, 0, self.max_value)
        return (w * (desired / (_EPS + n))).astype(w.dtype)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


def _axis(axis):
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


class NonNeg(Constraint):
    """Zero the negative weights."""

    def __call__(self, w):
        w = _w("NonNeg", w)
        return (w * (w >= 0)).astype(w.dtype)


class UnitNorm(Constraint):
    """Unit L2 norm along ``axis``."""

    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        w = _w("UnitNorm", w)
        return (w / (_EPS + _norms(w, _axis(self.axis)))).astype(w.dtype)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Norms along ``axis`` moved toward ``[min_value, max_value]``:
    ``rate * clip(norm) + (1 - rate) * norm``."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w):
        w = _w("MinMaxNorm", w)
        n = _norms(w, _axis(self.axis))
        desired = self.rate * np.clip(n, self.min_value, self.max_value) + (1 - self.rate) * n
        return (w * (desired / (_EPS + n))).astype(w.dtype)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


class Clip(Constraint):
    """QKeras's Clip: optional inner ``constraint`` (then ``quantizer``) first, then clip to
    ``[min_value, max_value]`` with Keras's ``K.clip`` rule (``max_value < min_value`` raises the
    upper bound to ``min_value``, so every value becomes ``min_value``). get_config has only
    ``min_value`` and ``max_value``, as in QKeras."""

    def __init__(self, min_value=0.0, max_value=1.0, constraint=None, quantizer=None):
        self.min_value = min_value
        self.max_value = max_value
        self.constraint = get(constraint)
        if isinstance(self.constraint, Clip):  # QKeras: don't wrap yourself
            self.constraint = None
        if quantizer is not None:
            from .quantizers import get_quantizer
            quantizer = get_quantizer(quantizer)
        self.quantizer = quantizer

    def __call__(self, w):
        w = _w("Clip", w)
        if self.constraint:
            w = _w("Clip", self.constraint(w))
            if self.quantizer:
                w = _w("Clip", self.quantizer(np.asarray(w, np.float32)))
        lo, hi = self.min_value, self.max_value
        if hi < lo:
            hi = lo
        return np.clip(w, lo, hi).astype(w.dtype)

    def apply_inplace(self, w):
        """Clip the float32 array ``w`` in place (what ``w[...] = self(w)`` gives, without the
        temporaries) and return True; False when there is an inner constraint or ``__call__``
        is overridden, so the caller assigns ``self(w)``."""
        if self.constraint or type(self).__call__ is not Clip.__call__ or w.dtype != np.float32:
            return False
        lo, hi = self.min_value, self.max_value
        np.clip(w, lo, lo if hi < lo else hi, out=w)
        return True

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value}


max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_CLASSES = {c.__name__: c for c in (MaxNorm, NonNeg, UnitNorm, MinMaxNorm, Clip)}
_NAMES = {"max_norm": MaxNorm, "maxnorm": MaxNorm, "non_neg": NonNeg, "nonneg": NonNeg,
          "unit_norm": UnitNorm, "unitnorm": UnitNorm, "min_max_norm": MinMaxNorm,
          "minmaxnorm": MinMaxNorm, "clip": Clip}


def serialize(constraint):
    return _registry.serialize(constraint)


def deserialize(config, custom_objects=None):
    return _registry.deserialize("constraint", config, _CLASSES, _NAMES, get, custom_objects)


def get(identifier):
    """A constraint from a name ("max_norm", "non_neg", "unit_norm", "min_max_norm", class
    names, "Clip"), a config dict, a Constraint/callable (returned as is) or None."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _CLASSES.get(identifier) or _NAMES.get(identifier)
        if cls is None:
            raise _registry.unknown("constraint", identifier, list(_NAMES) + list(_CLASSES))
        return cls()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")
