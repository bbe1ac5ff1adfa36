"""Keras initializers (tf.keras 2.x semantics). (QKeras's ``QInitializer`` lives with the
layers, in ``qnn_ext.layers.quant_utils``.)

``init(shape, dtype="float32")`` returns a NumPy array. A seeded initializer gives the same values
on every call (as Keras's seeded initializers do); an unseeded one draws a fresh seed from
``qnn_ext.backend``'s stream, so ``qnn_ext.utils.set_random_seed(s)`` makes a whole model's
initial weights reproducible.

Fans: dense (in, out) -> (in, out); conv kernels (..., in, out) -> receptive field * in and
receptive field * out (HWIO, channels last); rank 1 -> (n, n); scalars -> (1, 1).
"""
import math

import numpy as np

from . import backend
from . import _registry

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform",
           "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeNormal",
           "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal", "Identity",
           "get", "serialize", "deserialize", "compute_fans"]

# std of a unit normal truncated to [-2, 2]: dividing by it restores the requested variance
_TRUNC_STD = 0.87962566103423978


def _random_generator(seed):
    """A NumPy generator: from `seed` if given, else from a fresh key of the global stream."""
    if seed is None:
        return np.random.default_rng(backend.next_random_key())
    return np.random.default_rng(int(seed))


def compute_fans(shape):
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def _check(who, shape, dtype):
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        shape = (int(shape),)
    if any(s < 0 for s in shape):
        raise ValueError(f"{who}: shape must be non-negative, got {shape}")
    dt = np.dtype("float32" if dtype is None else dtype)
    if not np.issubdtype(dt, np.floating):
        raise ValueError(f"{who}: expected a floating point dtype, got {dt}")
    return shape, dt


def _truncated_normal(rng, shape, mean, stddev):
    """Normal samples, redrawing any beyond 2 standard deviations (TF's truncated_normal)."""
    x = rng.standard_normal(shape)
    bad = np.abs(x) > 2.0
    while bad.any():
        x[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(x) > 2.0
    return mean + stddev * x


class Initializer:
    def __call__(self, shape, dtype=None, **kwargs):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("dtype", None)
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({self.get_config()})"


class Zeros(Initializer):
    def __call__(self, shape, dtype=None, **kwargs):
        shape, dt = _check("Zeros", shape, dtype)
        return np.zeros(shape, dt)


class Ones(Initializer):
    def __call__(self, shape, dtype=None, **kwargs):
        shape, dt = _check("Ones", shape, dtype)
        return np.ones(shape, dt)


class Constant(Initializer):
    def __init__(self, value=0):
        self.value = value

    def __call__(self, shape, dtype=None, **kwargs):
        shape, dt = _check("Constant", shape, dtype)
        v = np.asarray(self.value, dtype=dt)
        if v.ndim == 0:
            return np.full(shape, v, dt)
        try:
            return np.ascontiguousarray(np.broadcast_to(v, shape), dtype=dt)
        except ValueError:
            raise ValueError(f"Constant: value of shape {v.shape} does not fit shape {shape}") \
                from None

    def get_config(self):
        v = self.value
        return {"value": v.tolist() if isinstance(v, np.ndarray) else v}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=None, **kwargs):
        shape, dt = _check("RandomNormal", shape, dtype)
        rng = _random_generator(self.seed)
        return (self.mean + self.stddev * rng.standard_normal(shape)).astype(dt)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype=None, **kwargs):
        shape, dt = _check("RandomUniform", shape, dtype)
        return _random_generator(self.seed).uniform(self.minval, self.maxval, shape).astype(dt)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class TruncatedNormal(Initializer):
    """Normal(mean, stddev) with values beyond 2 stddev redrawn."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=None, **kwargs):
        shape, dt = _check("TruncatedNormal", shape, dtype)
        return _truncated_normal(_random_generator(self.seed), shape, self.mean,
                                 self.stddev).astype(dt)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(Initializer):
    """Samples with variance ``scale / n`` (n = fan_in, fan_out or their mean):
    ``truncated_normal`` (stddev divided by 0.8796..., cut at 2 stddev), ``untruncated_normal``,
    or ``uniform`` in ``[-sqrt(3 scale / n), +sqrt(3 scale / n)]``."""

    _modes = ("fan_in", "fan_out", "fan_avg")
    _dists = ("truncated_normal", "untruncated_normal", "uniform", "normal")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        if not scale > 0.0:
            raise ValueError(f"VarianceScaling: `scale` must be positive float, got {scale!r}")
        if mode not in self._modes:
            raise ValueError(f"VarianceScaling: invalid `mode` argument {mode!r}; expected one "
                             f"of {list(self._modes)}")
        distribution = distribution.lower()
        if distribution == "normal":  # Keras maps the old name to the truncated normal
            distribution = "truncated_normal"
        if distribution not in self._dists:
            raise ValueError(f"VarianceScaling: invalid `distribution` argument {distribution!r}; "
                             f"expected one of {list(self._dists[:3])}")
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def __call__(self, shape, dtype=None, **kwargs):
        shape, dt = _check(type(self).__name__, shape, dtype)
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, n)
        rng = _random_generator(self.seed)
        if self.distribution == "truncated_normal":
            x = _truncated_normal(rng, shape, 0.0, math.sqrt(scale) / _TRUNC_STD)
        elif self.distribution == "untruncated_normal":
            x = math.sqrt(scale) * rng.standard_normal(shape)
        else:
            limit = math.sqrt(3.0 * scale)
            x = rng.uniform(-limit, limit, shape)
        return x.astype(dt)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


class _Preset(VarianceScaling):
    _preset = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed=None):
        super().__init__(*self._preset, seed=seed)

    def get_config(self):
        return {"seed": self.seed}


class GlorotUniform(_Preset):
    _preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    _preset = (1.0, "fan_avg", "truncated_normal")


class HeNormal(_Preset):
    _preset = (2.0, "fan_in", "truncated_normal")


class HeUniform(_Preset):
    _preset = (2.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    _preset = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    _preset = (1.0, "fan_in", "uniform")


class Orthogonal(Initializer):
    """``gain`` times a (semi-)orthogonal matrix from the QR decomposition of a normal draw,
    reshaped to ``shape`` (rows = prod(shape[:-1]), columns = shape[-1])."""

    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = gain, seed

    def __call__(self, shape, dtype=None, **kwargs):
        shape, dt = _check("Orthogonal", shape, dtype)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the tensor to initialize must be at least "
                             f"two-dimensional, got shape {shape}")
        rows = int(np.prod(shape[:-1]))
        cols = shape[-1]
        a = _random_generator(self.seed).standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        d = np.diag(r)
        q = q * np.where(d < 0, -1.0, 1.0)
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(dt)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """``gain`` times the identity; 2-D shapes only (rectangular allowed)."""

    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None, **kwargs):
        shape, dt = _check("Identity", shape, dtype)
        if len(shape) != 2:
            raise ValueError(f"Identity: identity matrix initializer can only be used for 2D "
                             f"matrices, got shape {shape}")
        return (self.gain * np.eye(*shape)).astype(dt)

    def get_config(self):
        return {"gain": self.gain}


# ---------------------------------------------------------------- lookup

_CLASSES = {c.__name__: c for c in (
    Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
    GlorotUniform, GlorotNormal, HeNormal, HeUniform, LecunNormal, LecunUniform, Orthogonal,
    Identity)}
_NAMES = {
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
    "random_normal": RandomNormal, "normal": RandomNormal,
    "random_uniform": RandomUniform, "uniform": RandomUniform,
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_normal": HeNormal, "he_uniform": HeUniform,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform,
    "orthogonal": Orthogonal, "identity": Identity,
}


def serialize(initializer):
    return _registry.serialize(initializer)


def deserialize(config, custom_objects=None):
    return _registry.deserialize("initializer", config, _CLASSES, _NAMES, get, custom_objects)


def get(identifier):
    """An initializer from a name ("glorot_uniform", "he_normal", ... or a class name), a
    ``{"class_name", "config"}`` dict, an Initializer/callable (returned as is) or None."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise _registry.unknown("initializer", identifier, list(_NAMES) + list(_CLASSES))
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")
