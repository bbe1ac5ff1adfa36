"""Weights: a float32 NumPy array with a name, a trainable flag and an optional constraint.

Layers keep float master weights (QKeras semantics: quantizers run on every call); optimizers
update ``value`` in place and then apply ``constraint`` (Keras applies constraints after each
update)."""
import numpy as np

__all__ = ["Variable"]


class Variable:
    __slots__ = ("name", "value", "trainable", "constraint")

    def __init__(self, value, name, trainable=True, constraint=None):
        self.value = np.ascontiguousarray(value, dtype=np.float32)
        self.name = name
        self.trainable = bool(trainable)
        self.constraint = constraint

    @property
    def shape(self):
        return self.value.shape

    def assign(self, value):
        """Copy `value` in (same shape), keeping the array object (optimizer state refers to it)."""
        v = np.asarray(value, dtype=np.float32)
        if v.shape != self.value.shape:
            raise ValueError(f"Variable '{self.name}': cannot assign a value of shape {v.shape} "
                             f"to a variable of shape {self.value.shape}")
        np.copyto(self.value, v)

    def apply_constraint(self):
        c = self.constraint
        if c is None:
            return
        inplace = getattr(c, "apply_inplace", None)
        if inplace is not None and inplace(self.value):  # e.g. Clip: one pass, no copies
            return
        self.assign(c(self.value))

    def numpy(self):
        return self.value

    def __repr__(self):
        return f"<Variable '{self.name}' shape={self.value.shape} trainable={self.trainable}>"
