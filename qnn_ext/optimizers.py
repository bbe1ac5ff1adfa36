"""Keras optimizers (tf.keras 2.x ``OptimizerV2`` update rules) on
:class:`~qnn_ext.variables.Variable`.

``opt.apply_gradients([(grad, var), ...])`` updates ``var.value`` in place (float32), then applies
the variable's constraint, then increments ``opt.iterations`` — the order Keras uses. The
learning rate is a float or a :class:`schedules.LearningRateSchedule` evaluated at
``iterations`` (the step count *before* this update, as in Keras).

Optimizer state (slots) is created on a variable's first update and kept in first-seen variable
order, so ``get_weights()`` = ``[iterations] + slots of var 0 + slots of var 1 + ...`` can be
saved and restored (``set_weights`` before the first update is held until the variables are
known, which is what resuming from a checkpoint needs).
"""
import difflib
import math

import numpy as np

from . import _core

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "schedules", "get", "serialize", "deserialize"]

_F32 = np.float32


def _unknown(kind, name, valid):
    close = difflib.get_close_matches(str(name).lower(), [v.lower() for v in valid], n=3,
                                      cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"Unknown {kind} {name!r}.{hint} Valid names: {', '.join(sorted(valid))}")


# ---------------------------------------------------------------- learning-rate schedules

class _Schedules:
    """Namespace mirroring ``tf.keras.optimizers.schedules``."""


class LearningRateSchedule:
    """A learning rate as a function of the optimizer step: ``schedule(step) -> float``."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_positive(who, name, v):
    if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool) or v <= 0:
        raise ValueError(f"{who}: {name} must be a positive number, got {v!r}")


class _RateDecay(LearningRateSchedule):
    """What ExponentialDecay and InverseTimeDecay share: their arguments, config and the
    (optionally floored) progress ``step / decay_steps``."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        _check_positive(type(self).__name__, "decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def _progress(self, step):
        p = float(step) / float(self.decay_steps)
        return math.floor(p) if self.staircase else p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_RateDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (integer division if
    ``staircase``)."""

    def __call__(self, step):
        return float(_F32(self.initial_learning_rate) * _F32(self.decay_rate) ** _F32(self._progress(step)))


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` for step <= boundaries[0], ``values[i]`` for boundaries[i-1] < step <=
    boundaries[i], ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries, values, name=None):
        if len(boundaries) != len(values) - 1:
            raise ValueError("PiecewiseConstantDecay: the length of boundaries should be 1 less "
                             f"than the length of values, got {len(boundaries)} boundaries and "
                             f"{len(values)} values")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step):
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return float(v)
        return float(self.values[-1])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class InverseTimeDecay(_RateDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (floored ratio if
    ``staircase``)."""

    def __call__(self, step):
        denom = _F32(1.0) + _F32(self.decay_rate) * _F32(self._progress(step))
        return float(_F32(self.initial_learning_rate) / denom)


class CosineDecay(LearningRateSchedule):
    """``lr * ((1 - alpha) * c + alpha)`` with
    ``c = 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))``."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name=None):
        _check_positive("CosineDecay", "decay_steps", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name

    def __call__(self, step):
        s = min(float(step), float(self.decay_steps))
        cosine = 0.5 * (1.0 + math.cos(math.pi * s / float(self.decay_steps)))
        decayed = _F32((1.0 - self.alpha) * cosine + self.alpha)
        return float(_F32(self.initial_learning_rate) * decayed)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name}


_SCHEDULES = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, InverseTimeDecay,
                                      CosineDecay)}


def _serialize_schedule(s):
    return {"class_name": type(s).__name__, "config": s.get_config()}


def _deserialize_schedule(config):
    name = config.get("class_name")
    if name not in _SCHEDULES:
        raise _unknown("learning rate schedule", name, _SCHEDULES)
    return _SCHEDULES[name].from_config(dict(config.get("config", {})))


schedules = _Schedules()
for _c in _SCHEDULES.values():
    setattr(schedules, _c.__name__, _c)
schedules.LearningRateSchedule = LearningRateSchedule
schedules.serialize = _serialize_schedule
schedules.deserialize = _deserialize_schedule
del _c


# ---------------------------------------------------------------- base optimizer

class Optimizer:
    """Base class: learning-rate handling, gradient clipping, slots, weights and config.

    Subclasses define ``_slot_names`` and ``_update(var, grad, slots, lr, t)`` (in place)."""

    _slot_names = ()
    _legacy_kwargs = ("lr", "decay", "clipnorm", "clipvalue", "global_clipnorm")

    def __init__(self, name, learning_rate, **kwargs):
        unknown = set(kwargs) - set(self._legacy_kwargs)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{sorted(unknown)}; allowed: {list(self._legacy_kwargs)}")
        if "lr" in kwargs:  # Keras 2.x still accepts the old name
            learning_rate = kwargs.pop("lr")
        self.name = name
        self.learning_rate = learning_rate
        self.decay = float(kwargs.pop("decay", 0.0))
        if self.decay < 0:
            raise ValueError(f"{type(self).__name__}: decay must be >= 0, got {self.decay}")
        self.clipnorm = kwargs.pop("clipnorm", None)
        self.clipvalue = kwargs.pop("clipvalue", None)
        self.global_clipnorm = kwargs.pop("global_clipnorm", None)
        if self.clipnorm is not None and self.global_clipnorm is not None:
            raise ValueError(f"{type(self).__name__}: cannot accept both `clipnorm` and "
                             "`global_clipnorm`")
        self.iterations = 0
        self._vars = []       # first-seen order
        self._index = {}      # id(var) -> position in _vars / _slots
        self._slots = []      # per variable: list of float32 arrays in _slot_names order
        self._pending_weights = None

    # -- learning rate
    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, LearningRateSchedule) or callable(value):
            self._learning_rate = value
            return
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                and not (isinstance(value, np.ndarray) and value.ndim == 0):
            raise TypeError(f"{type(self).__name__}: learning_rate must be a float or a "
                            f"LearningRateSchedule, got {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be a finite number >= 0, "
                             f"got {value}")
        self._learning_rate = value

    lr = learning_rate  # Keras 2.x alias (LearningRateScheduler reads optimizer.lr)

    def _current_lr(self):
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = lr(self.iterations)
        elif callable(lr):  # Keras also takes a zero-argument callable
            lr = lr()
        lr = _F32(lr)
        if self.decay > 0:  # Keras 2.x legacy time-based decay
            lr = lr / (_F32(1.0) + _F32(self.decay) * _F32(self.iterations))
        return _F32(lr)

    # -- slots / state
    def build(self, var_list):
        """Create the state of each variable (in this order) if it has none yet."""
        for v in var_list:
            self._slot_index(v)
        self._apply_pending()

    def _slot_index(self, var):
        i = self._index.get(id(var))
        if i is None:
            i = len(self._vars)
            self._index[id(var)] = i
            self._vars.append(var)
            self._slots.append([np.zeros(var.value.shape, np.float32) for _ in self._slot_names])
        return i

    def variables(self):
        return self.get_weights()

    def get_weights(self):
        """``[iterations] + every slot array`` (copies), variables in first-seen order."""
        out = [np.array(self.iterations, dtype=np.int64)]
        for slots in self._slots:
            out.extend(s.copy() for s in slots)
        return out

    def set_weights(self, weights):
        """Restore ``get_weights()`` output. Before the first update the slot arrays cannot be
        checked yet, so they are kept and installed once the variables are known."""
        weights = list(weights)
        if not weights:
            raise ValueError(f"{type(self).__name__}.set_weights: empty weight list")
        n_slots = len(self._slot_names)
        if (len(weights) - 1) % max(n_slots, 1) != 0 or (n_slots == 0 and len(weights) != 1):
            raise ValueError(f"{type(self).__name__}.set_weights: expected 1 + {n_slots} * "
                             f"n_variables arrays, got {len(weights)}")
        self.iterations = int(np.asarray(weights[0]).reshape(()))
        self._pending_weights = [np.asarray(w, dtype=np.float32) for w in weights[1:]]
        self._apply_pending()

    def _apply_pending(self):
        pend = self._pending_weights
        if pend is None:
            return
        n_slots = len(self._slot_names)
        n_vars = len(pend) // n_slots if n_slots else 0
        if len(self._vars) < n_vars:
            return  # wait for apply_gradients / build to reveal the variables
        for i in range(n_vars):
            for j in range(n_slots):
                w = pend[i * n_slots + j]
                dst = self._slots[i][j]
                if w.shape != dst.shape:
                    raise ValueError(f"{type(self).__name__}.set_weights: slot "
                                     f"'{self._slot_names[j]}' of variable "
                                     f"'{self._vars[i].name}' has shape {dst.shape}, got "
                                     f"{w.shape}")
                np.copyto(dst, w)
        self._pending_weights = None

    # -- updates
    def _clip(self, grads):
        if self.clipvalue is not None:
            c = _F32(self.clipvalue)
            grads = [np.clip(g, -c, c) for g in grads]
        if self.clipnorm is not None:
            out = []
            for g in grads:
                n = _F32(np.sqrt(np.sum(g * g, dtype=np.float32)))
                out.append(g * (_F32(self.clipnorm) / n) if n > self.clipnorm else g)
            grads = out
        if self.global_clipnorm is not None:
            n = _F32(np.sqrt(sum(float(np.sum(g * g, dtype=np.float32)) for g in grads)))
            if n > self.global_clipnorm:
                grads = [g * (_F32(self.global_clipnorm) / n) for g in grads]
        return [np.asarray(g, dtype=np.float32) for g in grads]

    def apply_gradients(self, grads_and_vars, name=None, **kwargs):
        """Apply one update step to every ``(grad, Variable)`` pair (``grad=None`` skips the
        variable); then apply constraints; then ``iterations += 1``. Returns ``iterations``."""
        del name, kwargs
        pairs = []
        for k, gv in enumerate(grads_and_vars):
            try:
                g, v = gv
            except (TypeError, ValueError):
                raise TypeError(f"{type(self).__name__}.apply_gradients: item {k} must be a "
                                f"(gradient, Variable) pair, got {type(gv).__name__}") from None
            if not hasattr(v, "value") or not hasattr(v, "apply_constraint"):
                raise TypeError(f"{type(self).__name__}.apply_gradients: item {k}: expected a "
                                f"qnn_ext Variable, got {type(v).__name__}")
            if g is None:
                continue
            g = np.asarray(g, dtype=np.float32)
            if g.shape != v.value.shape:
                raise ValueError(f"{type(self).__name__}.apply_gradients: gradient for variable "
                                 f"'{v.name}' has shape {g.shape}, expected {v.value.shape}")
            pairs.append((g, v))
        if not pairs:
            raise ValueError(f"{type(self).__name__}.apply_gradients: no gradients provided for "
                             "any variable")
        grads = self._clip([g for g, _ in pairs])
        lr = self._current_lr()
        t = self.iterations + 1
        idx = [self._slot_index(v) for _, v in pairs]
        self._apply_pending()
        for g, (_, v), i in zip(grads, pairs, idx):
            # the kernels update w in place and read g: g must be contiguous and apart from w
            if not g.flags.c_contiguous or np.may_share_memory(g, v.value):
                g = np.array(g, dtype=np.float32, order="C")
            self._update(v.value, g, self._slots[i], lr, t)
        for _, v in pairs:
            v.apply_constraint()
        self.iterations += 1
        return self.iterations

    def minimize(self, *args, **kwargs):
        raise NotImplementedError("qnn_ext optimizers have no autodiff: compute gradients with the "
                                  "model and call apply_gradients([(grad, variable), ...])")

    def _update(self, w, g, slots, lr, t):
        raise NotImplementedError

    # -- config
    def get_config(self):
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = _serialize_schedule(lr)
        cfg = {"name": self.name, "learning_rate": lr, "decay": self.decay}
        for k in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, k) is not None:
                cfg[k] = getattr(self, k)
        return cfg

    @classmethod
    def from_config(cls, config, custom_objects=None):
        del custom_objects
        config = dict(config)
        lr = config.get("learning_rate", config.get("lr"))
        if isinstance(lr, dict):
            config["learning_rate"] = _deserialize_schedule(lr)
            config.pop("lr", None)
        return cls(**config)

    def __repr__(self):
        return (f"<{type(self).__name__} learning_rate={self._learning_rate!r} "
                f"iterations={self.iterations}>")


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, Keras 2.x form:

    ``v = momentum * v - lr * g``; ``w += v`` or, with ``nesterov``, ``w += momentum * v - lr * g``;
    with ``momentum == 0``: ``w -= lr * g``."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.number)) \
                or not 0 <= momentum <= 1:
            raise ValueError(f"SGD: momentum must be a number in [0, 1], got {momentum!r}")
        super().__init__(name, learning_rate, **kwargs)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._slot_names = ("momentum",) if self.momentum > 0 else ()

    def _update(self, w, g, slots, lr, t):
        _core.sgd_update(self.name, w, g, slots[0] if slots else None, lr, self.momentum,
                         self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam, Keras 2.x form (``epsilon`` is Kingma & Ba's epsilon-hat):

    ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``;
    ``w -= lr * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + epsilon)`` (``v`` replaced by its running
    maximum with ``amsgrad``), ``t`` = iterations + 1."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 name="Adam", **kwargs):
        for n, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if isinstance(b, bool) or not isinstance(b, (int, float, np.number)) or not 0 <= b < 1:
                raise ValueError(f"Adam: {n} must be a number in [0, 1), got {b!r}")
        super().__init__(name, learning_rate, **kwargs)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = 1e-7 if epsilon is None else float(epsilon)
        self.amsgrad = bool(amsgrad)
        self._slot_names = ("m", "v", "vhat") if self.amsgrad else ("m", "v")

    def _update(self, w, g, slots, lr, t):
        b1, b2 = _F32(self.beta_1), _F32(self.beta_2)
        lr_t = lr * (np.sqrt(_F32(1) - b2 ** _F32(t)) / (_F32(1) - b1 ** _F32(t)))
        _core.adam_update(self.name, w, g, slots[0], slots[1], slots[2] if self.amsgrad else None,
                          float(_F32(lr_t)), self.beta_1, self.beta_2, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class RMSprop(Optimizer):
    """RMSprop, Keras 2.x form: ``ms = rho ms + (1-rho) g^2`` (``mg`` likewise for ``g`` when
    ``centered``, and ``ms - mg^2`` is used); without momentum
    ``w -= lr g / (sqrt(ms) + epsilon)``; with momentum
    ``mom = momentum mom + lr g / sqrt(ms + epsilon)``, ``w -= mom``."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name="RMSprop", **kwargs):
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.number)) \
                or not 0 <= momentum <= 1:
            raise ValueError(f"RMSprop: momentum must be a number in [0, 1], got {momentum!r}")
        super().__init__(name, learning_rate, **kwargs)
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.epsilon = 1e-7 if epsilon is None else float(epsilon)
        self.centered = bool(centered)
        names = ["rms"]
        if self.momentum > 0:
            names.append("momentum")
        if self.centered:
            names.append("mg")
        self._slot_names = tuple(names)

    def _update(self, w, g, slots, lr, t):
        _core.rmsprop_update(self.name, w, g, slots[0],
                             slots[1] if self.momentum > 0 else None,
                             slots[-1] if self.centered else None,
                             lr, self.rho, self.momentum, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


# ---------------------------------------------------------------- lookup

_CLASSES = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}
_ALIASES = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def serialize(optimizer):
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config, custom_objects=None):
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"optimizers.deserialize: expected a dict with 'class_name' and 'config', "
                         f"got {config!r}")
    name = config["class_name"]
    classes = dict(_CLASSES)
    classes.update(custom_objects or {})
    cls = classes.get(name) or _ALIASES.get(str(name).lower())
    if cls is None:
        raise _unknown("optimizer", name, list(_CLASSES) + list(_ALIASES))
    return cls.from_config(config.get("config", {}))


def get(identifier):
    """An optimizer from a name ("sgd", "adam", "rmsprop"; case-insensitive), a
    ``{"class_name", "config"}`` dict, or an Optimizer instance (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _CLASSES.get(identifier) or _ALIASES.get(identifier.lower())
        if cls is None:
            raise _unknown("optimizer", identifier, list(_ALIASES))
        return cls()
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")
