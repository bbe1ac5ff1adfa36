"""Keras losses with their analytic gradients.

``loss(y_true, y_pred, sample_weight=None)`` gives a float: per-sample losses (reduced over the
last axis) averaged over every sample position, Keras's default ``"sum_over_batch_size"``
reduction. ``loss.gradient(y_true, y_pred, sample_weight=None)`` gives dL/dy_pred for that same
number, float32 with y_pred's shape.

Non-logit cross-entropies clip probabilities to ``[eps, 1 - eps]`` with ``eps = 1e-7`` exactly as
Keras does (categorical also renormalises the rows first; binary also adds ``eps`` inside the
logs), and the gradient is zero where the clip is active — what TensorFlow's gradient gives.

Arithmetic is float32 like Keras; float64 y_pred is computed in float64 (used by the
finite-difference tests).
"""

import numpy as np
from . import _registry

__all__ = ["Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "BinaryCrossentropy", "MeanSquaredError", "MeanAbsoluteError",
           "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
           "mean_squared_error", "mean_absolute_error", "mse", "mae", "MSE", "MAE",
           "get", "serialize", "deserialize"]

EPSILON = 1e-7
_REDUCTIONS = ("auto", "sum_over_batch_size", "sum", "none")


def _pred(who, y_pred, min_ndim=1):
    p = np.asarray(y_pred)
    if p.dtype != np.float64:
        if not (np.issubdtype(p.dtype, np.number) or p.dtype == np.bool_):
            raise TypeError(f"{who}: y_pred must be numeric, got dtype {p.dtype}")
        p = p.astype(np.float32)
    if p.ndim < min_ndim:
        raise ValueError(f"{who}: y_pred must have at least {min_ndim} dimension(s) "
                         f"(batch{', classes' if min_ndim > 1 else ''}), got shape {p.shape}")
    if p.size == 0:
        raise ValueError(f"{who}: y_pred is empty (shape {p.shape})")
    return p


def _dense_target(who, y_true, p, allow_squeeze=True):
    """y_true as an array of p's shape and dtype; (N,) against (N, 1) is reshaped as Keras does."""
    t = np.asarray(y_true)
    if not (np.issubdtype(t.dtype, np.number) or t.dtype == np.bool_):
        raise TypeError(f"{who}: y_true must be numeric, got dtype {t.dtype}")
    t = t.astype(p.dtype)
    if t.shape != p.shape:
        if allow_squeeze and p.shape[-1:] == (1,) and t.shape == p.shape[:-1]:
            t = t.reshape(p.shape)
        elif allow_squeeze and t.shape[-1:] == (1,) and t.shape[:-1] == p.shape:
            t = t.reshape(p.shape)
        else:
            raise ValueError(f"{who}: y_true shape {t.shape} does not match y_pred shape {p.shape}")
    return t


def _as_rows(p):
    """Rank-1 predictions are one value per sample: view them as (N, 1)."""
    return p.reshape(-1, 1) if p.ndim == 1 else p


# ---------------------------------------------------------------- per-sample kernels
# Each returns (values over sample positions, d values / d y_pred) and never divides by N.

def _cce(who, t, p, from_logits, label_smoothing):
    if t.shape != p.shape:
        hint = ""
        if t.shape == p.shape[:-1] or t.shape == p.shape[:-1] + (1,):
            hint = (" (these look like integer class labels: use "
                    "sparse_categorical_crossentropy, or one-hot encode them)")
        raise ValueError(f"{who}: one-hot y_true shape {t.shape} does not match y_pred shape "
                         f"{p.shape}{hint}")
    k = p.shape[-1]
    if label_smoothing:
        t = t * p.dtype.type(1.0 - label_smoothing) + p.dtype.type(label_smoothing / k)
    one = p.dtype.type(1)
    if from_logits:
        z = p - p.max(axis=-1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=-1, keepdims=True)
        logsm = z - np.log(s)
        vals = -(t * logsm).sum(axis=-1)
        grad = (e / s) * t.sum(axis=-1, keepdims=True) - t
        return vals, grad
    s = p.sum(axis=-1, keepdims=True)
    q = p / s
    eps = p.dtype.type(EPSILON)
    c = np.clip(q, eps, one - eps)
    vals = -(t * np.log(c)).sum(axis=-1)
    gq = np.where((q >= eps) & (q <= one - eps), -t / c, p.dtype.type(0))
    grad = (gq - (gq * q).sum(axis=-1, keepdims=True)) / s
    return vals, grad


def _sparse_labels(who, y_true, p):
    t = np.asarray(y_true)
    lead = p.shape[:-1]
    k = p.shape[-1]
    if t.shape == lead + (1,):
        t = t.reshape(lead)
    elif t.shape != lead:
        hint = (" (this looks one-hot: use categorical_crossentropy or argmax the labels)"
                if t.shape == p.shape and k > 1 else "")
        raise ValueError(f"{who}: integer labels must have shape {lead} or {lead + (1,)} for "
                         f"y_pred of shape {p.shape}, got shape {t.shape}{hint}")
    if t.dtype == np.bool_ or not np.issubdtype(t.dtype, np.number):
        raise TypeError(f"{who}: labels must be integers, got dtype {t.dtype}")
    if not np.issubdtype(t.dtype, np.integer):
        bad = ~np.isfinite(t) | (t != np.floor(np.where(np.isfinite(t), t, 0)))
        if bad.any():
            i = tuple(int(a[0]) for a in np.nonzero(bad))
            raise ValueError(f"{who}: labels must be integer class indices, got {t[i].item()!r} at "
                             f"index {i}")
    bad = (t < 0) | (t >= k)
    if bad.any():
        i = tuple(int(a[0]) for a in np.nonzero(bad))
        raise ValueError(f"{who}: label {t[i].item()!r} at index {i} is out of range [0, {k}) for "
                         f"y_pred with {k} classes")
    return t.astype(np.int64)


def _scce(who, y_true, p, from_logits):
    labels = _sparse_labels(who, y_true, p)
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, labels[..., None], 1, axis=-1)
    if from_logits:
        return _cce(who, onehot, p, True, 0.0)
    # Keras: clip, take logs, then softmax cross-entropy on the logs (renormalises the clipped row)
    one = p.dtype.type(1)
    eps = p.dtype.type(EPSILON)
    c = np.clip(p, eps, one - eps)
    s = c.sum(axis=-1, keepdims=True)
    vals = -np.log(np.take_along_axis(c, labels[..., None], axis=-1)[..., 0]) + np.log(s[..., 0])
    gc = one / s - onehot / c
    grad = np.where((p >= eps) & (p <= one - eps), gc, p.dtype.type(0))
    return vals, grad


def _bce(who, t, p, from_logits, label_smoothing):
    if label_smoothing:
        t = t * p.dtype.type(1.0 - label_smoothing) + p.dtype.type(0.5 * label_smoothing)
    n_last = p.dtype.type(p.shape[-1])
    one = p.dtype.type(1)
    if from_logits:
        # max(z, 0) - z t + log(1 + exp(-|z|)), TF's stable sigmoid cross-entropy
        e = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
        sig = np.where(p >= 0, one / (one + np.exp(-np.abs(p))),
                       np.exp(-np.abs(p)) / (one + np.exp(-np.abs(p))))
        return e.mean(axis=-1), (sig - t) / n_last
    eps = p.dtype.type(EPSILON)
    c = np.clip(p, eps, one - eps)
    e = -(t * np.log(c + eps) + (one - t) * np.log(one - c + eps))
    g = -(t / (c + eps) - (one - t) / (one - c + eps))
    g = np.where((p >= eps) & (p <= one - eps), g, p.dtype.type(0))
    return e.mean(axis=-1), g / n_last


def _mse(who, t, p):
    d = p - t
    return (d * d).mean(axis=-1), d * p.dtype.type(2.0 / p.shape[-1])


def _mae(who, t, p):
    d = p - t
    return np.abs(d).mean(axis=-1), np.sign(d) / p.dtype.type(p.shape[-1])


# ---------------------------------------------------------------- Keras-style functions

def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Per-sample categorical cross-entropy (one-hot / probability targets, last axis = classes)."""
    p = _pred("categorical_crossentropy", y_pred, 2)
    t = np.asarray(y_true).astype(p.dtype)
    return _cce("categorical_crossentropy", t, p, from_logits, float(label_smoothing))[0]


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Per-sample cross-entropy with integer class labels of shape (N,) or (N, 1)."""
    p = _pred("sparse_categorical_crossentropy", y_pred, 2)
    return _scce("sparse_categorical_crossentropy", y_true, p, from_logits)[0]


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Per-sample binary cross-entropy (mean over the last axis)."""
    p = _as_rows(_pred("binary_crossentropy", y_pred))
    t = _dense_target("binary_crossentropy", y_true, p)
    return _bce("binary_crossentropy", t, p, from_logits, float(label_smoothing))[0]


def mean_squared_error(y_true, y_pred):
    """Per-sample mean squared error (mean over the last axis)."""
    p = _as_rows(_pred("mean_squared_error", y_pred))
    return _mse("mean_squared_error", _dense_target("mean_squared_error", y_true, p), p)[0]


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean absolute error (mean over the last axis)."""
    p = _as_rows(_pred("mean_absolute_error", y_pred))
    return _mae("mean_absolute_error", _dense_target("mean_absolute_error", y_true, p), p)[0]


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


# ---------------------------------------------------------------- Loss classes

class Loss:
    """Base class: reduction over sample positions, sample weights and config.

    Subclasses implement ``_compute(y_true, y_pred) -> (values, dvalues/dy_pred)``."""

    def __init__(self, reduction="auto", name=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: invalid reduction {reduction!r}; expected "
                             f"one of {list(_REDUCTIONS)}")
        self.reduction = reduction
        self.name = name

    def _compute(self, y_true, y_pred):
        raise NotImplementedError

    def _weights(self, sample_weight, shape):
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight, dtype=np.float64)
        while w.ndim > len(shape) and w.shape[-1] == 1:
            w = w.reshape(w.shape[:-1])
        try:
            return np.broadcast_to(w, shape)
        except ValueError:
            raise ValueError(f"{self.name}: sample_weight of shape {np.shape(sample_weight)} "
                             f"cannot be broadcast to the per-sample losses of shape {shape}") \
                from None

    def _denominator(self, vals):
        if self.reduction in ("sum", "none"):
            return 1.0
        return float(max(vals.size, 1))

    def __call__(self, y_true, y_pred, sample_weight=None):
        vals, _ = self._compute(y_true, y_pred, need_grad=False)
        w = self._weights(sample_weight, vals.shape)
        if w is not None:
            vals = vals * w.astype(vals.dtype)
        if self.reduction == "none":
            return vals
        return float(vals.sum(dtype=vals.dtype) / vals.dtype.type(self._denominator(vals)))

    def gradient(self, y_true, y_pred, sample_weight=None):
        """dL/dy_pred (float32, y_pred's shape) of ``self(y_true, y_pred, sample_weight)``
        (of the sum of the per-sample losses for ``reduction="none"``)."""
        vals, grad = self._compute(y_true, y_pred, need_grad=True)
        w = self._weights(sample_weight, vals.shape)
        if w is not None:
            grad = grad * w.astype(grad.dtype).reshape(vals.shape + (1,))
        grad = grad / grad.dtype.type(self._denominator(vals))
        return np.ascontiguousarray(grad.reshape(np.shape(y_pred)), dtype=np.float32)

    def get_config(self):
        return {"reduction": self.reduction, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class CategoricalCrossentropy(Loss):
    """``-sum(y_true * log(y_pred))`` over the class axis; probabilities renormalised and clipped
    to [1e-7, 1-1e-7] unless ``from_logits``. Gradient with logits: ``softmax - y_true``."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="auto",
                 name="categorical_crossentropy"):
        super().__init__(reduction, name)
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
        if axis != -1:
            raise ValueError(f"{name}: only axis=-1 (channels-last classes) is supported, "
                             f"got {axis}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = axis

    def _compute(self, y_true, y_pred, need_grad):
        p = _pred(self.name, y_pred, 2)
        t = np.asarray(y_true)
        if not (np.issubdtype(t.dtype, np.number) or t.dtype == np.bool_):
            raise TypeError(f"{self.name}: y_true must be numeric, got dtype {t.dtype}")
        return _cce(self.name, t.astype(p.dtype), p, self.from_logits, self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(Loss):
    """Categorical cross-entropy with integer labels (shape (N,) or (N, 1), values in [0, K))."""

    def __init__(self, from_logits=False, reduction="auto",
                 name="sparse_categorical_crossentropy"):
        super().__init__(reduction, name)
        self.from_logits = bool(from_logits)

    def _compute(self, y_true, y_pred, need_grad):
        return _scce(self.name, y_true, _pred(self.name, y_pred, 2), self.from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class BinaryCrossentropy(Loss):
    """Mean over the last axis of ``-(t log(p + eps) + (1-t) log(1-p + eps))`` with p clipped to
    [eps, 1-eps]; with ``from_logits``, TF's ``sigmoid_cross_entropy_with_logits``."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="auto",
                 name="binary_crossentropy"):
        super().__init__(reduction, name)
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
        if axis != -1:
            raise ValueError(f"{name}: only axis=-1 is supported, got {axis}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = axis

    def _compute(self, y_true, y_pred, need_grad):
        p = _as_rows(_pred(self.name, y_pred))
        t = _dense_target(self.name, y_true, p)
        return _bce(self.name, t, p, self.from_logits, self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class MeanSquaredError(Loss):
    """``mean((y_pred - y_true)^2)`` over the last axis; gradient ``2 (y_pred - y_true) / n``."""

    def __init__(self, reduction="auto", name="mean_squared_error"):
        super().__init__(reduction, name)

    def _compute(self, y_true, y_pred, need_grad):
        p = _as_rows(_pred(self.name, y_pred))
        return _mse(self.name, _dense_target(self.name, y_true, p), p)


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)`` over the last axis; gradient ``sign(y_pred - y_true) / n``."""

    def __init__(self, reduction="auto", name="mean_absolute_error"):
        super().__init__(reduction, name)

    def _compute(self, y_true, y_pred, need_grad):
        p = _as_rows(_pred(self.name, y_pred))
        return _mae(self.name, _dense_target(self.name, y_true, p), p)


class _FunctionLoss(Loss):
    """A user loss function ``fn(y_true, y_pred) -> per-sample values``; it needs a
    ``gradient`` attribute (``fn.gradient(y_true, y_pred) -> d per-sample / d y_pred``) to train."""

    def __init__(self, fn, reduction="auto", name=None):
        super().__init__(reduction, name or getattr(fn, "__name__", "loss"))
        self.fn = fn

    def _compute(self, y_true, y_pred, need_grad):
        vals = np.asarray(self.fn(y_true, y_pred))
        if not np.issubdtype(vals.dtype, np.floating):
            vals = vals.astype(np.float32)
        grad = None
        if need_grad:
            g = getattr(self.fn, "gradient", None)
            if g is None:
                raise NotImplementedError(
                    f"loss function {self.name!r} has no gradient: qnn_ext has no autodiff; give "
                    "it a `gradient(y_true, y_pred)` attribute or use a built-in loss")
            grad = np.asarray(g(y_true, y_pred), dtype=vals.dtype)
        return vals, grad


# ---------------------------------------------------------------- lookup

_CLASSES = {c.__name__: c for c in (CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                    BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError)}
_NAMES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
}
_FUNCTIONS = {categorical_crossentropy: CategoricalCrossentropy,
              sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
              binary_crossentropy: BinaryCrossentropy,
              mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError}


def serialize(loss):
    return _registry.serialize(loss)


def deserialize(config, custom_objects=None):
    return _registry.deserialize("loss", config, _CLASSES, _NAMES, get, custom_objects)


def get(identifier):
    """A Loss object from a Keras name ("categorical_crossentropy", "mse", "mae", ... or a class
    name), a config dict, a Loss instance, one of this module's loss functions, or a user
    function (see ``_FunctionLoss``). ``None`` gives ``None``."""
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise _registry.unknown("loss", identifier, list(_NAMES) + list(_CLASSES))
        inst = cls()
        if identifier in _NAMES:
            inst.name = identifier if identifier not in ("MSE", "MAE") else inst.name
        return inst
    if callable(identifier) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if callable(identifier):
        return _FunctionLoss(identifier)
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")
