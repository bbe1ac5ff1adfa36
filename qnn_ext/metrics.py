"""Keras stateful metrics: ``update_state(y_true, y_pred, sample_weight=None)``, ``result()``,
``reset_state()``, ``name``.

Every metric here is a running (optionally weighted) mean of per-sample values, like Keras's
``Mean``/``MeanMetricWrapper``; totals are accumulated in float64 (Keras uses float32 variables,
which drifts over long epochs). ``get("accuracy", loss=..., output_shape=...)`` picks the
accuracy variant as described in :func:`get`.
"""
import difflib

import numpy as np

from . import losses as _losses

__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy",
           "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
           "SparseTopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError",
           "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
           "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
           "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
           "get", "serialize", "deserialize"]


def _unknown(kind, name, valid):
    close = difflib.get_close_matches(str(name), list(valid), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"Unknown {kind} {name!r}.{hint} Valid names: {', '.join(sorted(valid))}")


# ---------------------------------------------------------------- per-sample functions

def _arrays(y_true, y_pred):
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if p.ndim == 0:
        raise ValueError(f"metrics: y_pred must have a batch dimension, got shape {p.shape}")
    return t, p


def _match_last(t, p):
    """(N,) against (N, 1) (either way round) as Keras squeezes/expands them."""
    if t.shape == p.shape:
        return t, p
    if p.shape[-1:] == (1,) and t.shape == p.shape[:-1]:
        return t.reshape(p.shape), p
    if t.shape[-1:] == (1,) and t.shape[:-1] == p.shape:
        return t.reshape(p.shape), p
    raise ValueError(f"metrics: y_true shape {t.shape} does not match y_pred shape {p.shape}")


def accuracy(y_true, y_pred):
    """1.0 where y_true == y_pred exactly."""
    t, p = _match_last(*_arrays(y_true, y_pred))
    return (t == p).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Mean over the last axis of ``(y_pred > threshold) == y_true``."""
    t, p = _arrays(y_true, y_pred)
    if p.ndim == 1:
        p = p.reshape(-1, 1)
    t, p = _match_last(t, p)
    return ((p > threshold).astype(np.float32) == t.astype(np.float32)).mean(axis=-1,
                                                                              dtype=np.float32)


def categorical_accuracy(y_true, y_pred):
    """``argmax(y_true) == argmax(y_pred)`` over the last axis."""
    t, p = _arrays(y_true, y_pred)
    if t.shape != p.shape:
        raise ValueError(f"categorical_accuracy: one-hot y_true shape {t.shape} does not match "
                         f"y_pred shape {p.shape}")
    return (np.argmax(t, axis=-1) == np.argmax(p, axis=-1)).astype(np.float32)


def _sparse_targets(t, p):
    if t.ndim == p.ndim and t.shape[-1:] == (1,):
        t = t.reshape(t.shape[:-1])
    if t.shape != p.shape[:-1]:
        raise ValueError(f"sparse accuracy: labels of shape {t.shape} do not match y_pred shape "
                         f"{p.shape} (expected {p.shape[:-1]} or {p.shape[:-1] + (1,)})")
    return t


def sparse_categorical_accuracy(y_true, y_pred):
    """``argmax(y_pred) == y_true`` for integer labels of shape (N,) or (N, 1)."""
    t, p = _arrays(y_true, y_pred)
    t = _sparse_targets(t, p)
    return (np.argmax(p, axis=-1).astype(np.float64) == t.astype(np.float64)).astype(np.float32)


def _in_top_k(p, target, k):
    """TF's ``in_top_k``: the target's score is in the top k, ties at the boundary count as in,
    non-finite scores never do."""
    ok = (target >= 0) & (target < p.shape[-1])
    tgt = np.clip(target, 0, p.shape[-1] - 1)
    score = np.take_along_axis(p, tgt[..., None], axis=-1)
    greater = (p > score).sum(axis=-1)
    return (ok & np.isfinite(score[..., 0]) & (greater < k)).astype(np.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    t, p = _arrays(y_true, y_pred)
    if t.shape != p.shape:
        raise ValueError(f"top_k_categorical_accuracy: one-hot y_true shape {t.shape} does not "
                         f"match y_pred shape {p.shape}")
    return _in_top_k(p, np.argmax(t, axis=-1), k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    t, p = _arrays(y_true, y_pred)
    t = _sparse_targets(t, p)
    return _in_top_k(p, np.asarray(t).astype(np.int64), k)


# ---------------------------------------------------------------- base classes

class Metric:
    """Keras metric interface; ``metric(y_true, y_pred)`` updates and returns ``result()``."""

    def __init__(self, name=None, dtype=None):
        self.name = name or type(self).__name__.lower()
        self.dtype = dtype or "float32"
        self.reset_state()

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        raise NotImplementedError

    reset_states = reset_state  # Keras 2.x < 2.5 name

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} result={self.result():.4g}>"


class Mean(Metric):
    """Weighted running mean of the values passed to ``update_state(values, sample_weight)``."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name, dtype)

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        v = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            self.total += float(v.sum())
            self.count += float(v.size)
            return
        w = np.asarray(sample_weight, dtype=np.float64)
        while w.ndim > v.ndim and w.shape[-1] == 1:
            w = w.reshape(w.shape[:-1])
        while v.ndim > w.ndim and v.shape[-1] == 1 and w.ndim > 0:
            v = v.reshape(v.shape[:-1])
        try:
            w = np.broadcast_to(w, v.shape)
        except ValueError:
            raise ValueError(f"{self.name}: sample_weight of shape {np.shape(sample_weight)} "
                             f"cannot be broadcast to values of shape {v.shape}") from None
        self.total += float((v * w).sum())
        self.count += float(w.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


class Sum(Metric):
    """Running (weighted) sum."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name, dtype)

    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        v = np.asarray(values, dtype=np.float64)
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            while w.ndim > v.ndim and w.shape[-1] == 1:
                w = w.reshape(w.shape[:-1])
            v = v * w.reshape(w.shape + (1,) * (v.ndim - w.ndim))
        self.total += float(v.sum())

    def result(self):
        return self.total


class MeanMetricWrapper(Mean):
    """Mean of ``fn(y_true, y_pred, **kwargs)`` over every sample seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name or getattr(fn, "__name__", "metric"), dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self):
        cfg = {**super().get_config(), **self._fn_kwargs}
        if type(self) is MeanMetricWrapper:  # subclasses fix their function
            cfg["fn"] = self._fn
        return cfg


class Accuracy(MeanMetricWrapper):
    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name, dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)
        self.threshold = threshold


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name, dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name, dtype, k=k)
        self.k = k


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(sparse_top_k_categorical_accuracy, name, dtype, k=k)
        self.k = k


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(_losses.mean_squared_error, name, dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(_losses.mean_absolute_error, name, dtype)


class CategoricalCrossentropy(MeanMetricWrapper):
    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0.0):
        super().__init__(_losses.categorical_crossentropy, name, dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing)


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False):
        super().__init__(_losses.sparse_categorical_crossentropy, name, dtype,
                         from_logits=from_logits)


class BinaryCrossentropy(MeanMetricWrapper):
    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0.0):
        super().__init__(_losses.binary_crossentropy, name, dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing)


class _AutoAccuracy(Mean):
    """"accuracy" whose variant is chosen from the first batch, tf.keras's rule: one output ->
    binary; labels of lower rank or last dim 1 against several outputs -> sparse; else
    categorical. The name stays what the user wrote."""

    def __init__(self, name="accuracy", dtype=None):
        self._fn = None
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self._fn is None:
            t, p = np.asarray(y_true), np.asarray(y_pred)
            if p.shape[-1:] == (1,) or p.ndim == 1:
                self._fn = binary_accuracy
            elif t.ndim < p.ndim or (t.shape[-1:] == (1,) and p.shape[-1] > 1):
                self._fn = sparse_categorical_accuracy
            else:
                self._fn = categorical_accuracy
        super().update_state(self._fn(y_true, y_pred), sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


# ---------------------------------------------------------------- lookup

_CLASSES = {c.__name__: c for c in (
    Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError,
    CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy)}
_NAMES = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
}
_FUNCTIONS = {binary_accuracy: BinaryAccuracy, categorical_accuracy: CategoricalAccuracy,
              sparse_categorical_accuracy: SparseCategoricalAccuracy,
              top_k_categorical_accuracy: TopKCategoricalAccuracy,
              sparse_top_k_categorical_accuracy: SparseTopKCategoricalAccuracy,
              _losses.mean_squared_error: MeanSquaredError,
              _losses.mean_absolute_error: MeanAbsoluteError}


def _loss_kind(loss):
    """"sparse", "binary", "categorical" or None for a loss given as name/object/function."""
    if loss is None:
        return None
    if isinstance(loss, str):
        name = loss
    elif isinstance(loss, _losses.Loss):
        name = type(loss).__name__
    else:
        name = getattr(loss, "__name__", type(loss).__name__)
    key = name.lower().replace("_", "")
    if "sparsecategoricalcrossentropy" in key:
        return "sparse"
    if "binarycrossentropy" in key:
        return "binary"
    if "categoricalcrossentropy" in key:
        return "categorical"
    return None


def _accuracy_for(name, loss, output_shape):
    last = None
    if output_shape is not None:
        shape = tuple(output_shape)
        last = shape[-1] if shape else None
    kind = _loss_kind(loss)
    if last == 1 or kind == "binary":
        return BinaryAccuracy(name=name)
    if kind == "sparse":
        return SparseCategoricalAccuracy(name=name)
    if kind == "categorical":
        return CategoricalAccuracy(name=name)
    return _AutoAccuracy(name=name)


def serialize(metric):
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config, custom_objects=None):
    if isinstance(config, str):
        return get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"metrics.deserialize: expected a dict with 'class_name' and 'config', "
                         f"got {config!r}")
    classes = dict(_CLASSES)
    classes.update(custom_objects or {})
    name = config["class_name"]
    if name not in classes:
        raise _unknown("metric", name, list(_CLASSES))
    return classes[name].from_config(dict(config.get("config", {})))


def get(identifier, loss=None, output_shape=None):
    """A Metric from a name, class name, dict, function or Metric instance.

    "accuracy"/"acc": binary_accuracy for a single output (``output_shape[-1] == 1``) or a binary
    cross-entropy loss; sparse_categorical_accuracy for a sparse categorical cross-entropy loss;
    categorical_accuracy for a categorical cross-entropy loss; otherwise decided from the first
    batch's shapes (tf.keras's rule). String metrics keep the string as their name, as in
    ``model.compile(metrics=[...])``."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            return _accuracy_for(identifier, loss, output_shape)
        if identifier in _NAMES:
            return _NAMES[identifier](name=identifier)
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
        raise _unknown("metric", identifier,
                       ["accuracy", "acc"] + list(_NAMES) + list(_CLASSES))
    if callable(identifier) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")
