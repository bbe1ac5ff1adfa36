"""What every quantized weight layer shares (QKeras semantics, quantizers.md §1.2 and §4):
the user's quantizer kept as given and resolved into ``<w>_quantizer_internal``, the layer-default
``auto_po2`` rule for kernel-type quantizers, the default ``Clip(-M, M)`` constraint and
``QInitializer``, float master weights quantized on every call, and the STE gradient back to them.
"""
import numpy as np

from .. import activations as _activations
from ..quantizers import BaseQuantizer, get_quantizer

F32 = np.float32


def serialize(obj):
    """Keras-style {"class_name", "config"} for quantizers/objects with get_config, else as is."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, dict):  # already serialized (a layer rebuilt from a config keeps it)
        return obj
    if hasattr(obj, "get_config") and not isinstance(obj, _activations.Activation):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    return getattr(obj, "__name__", str(obj))


def act_config(activation):
    return serialize(activation) if not isinstance(activation, str) else activation


def resolve_activation(identifier):
    """A layer's activation: a quantizer or Keras activation; None is Keras's "linear"."""
    act = get_quantizer(identifier)
    return _activations.get("linear") if act is None else act


def epilogue_act(act):
    """The part of a layer's activation its GEMM epilogue can run: 'relu', or None (linear, or
    an activation the epilogue cannot run, which act_after_epilogue then applies)."""
    return "relu" if act is _activations.get("relu") else None


def act_after_epilogue(act, fused, z, training):
    """act_forward(act, z) for an output whose epilogue already applied ``fused``. For relu,
    z is already the output and stands in for the pre-activation in the cache: relu's gradient
    reads only the sign of its input, and the output is > 0 exactly where the pre-activation is
    (NaN and -0.0 pass through unchanged)."""
    if fused is None:
        return act_forward(act, z, training)
    return z, (act, z, z, training)


def act_forward(act, x, training):
    """Apply an activation (None, a Keras activation or a quantizer); returns (y, cache)."""
    if act is None or act is _activations.get("linear"):
        return x, None
    if isinstance(act, BaseQuantizer):
        return act(x, training=training), (act, x, None, training)
    y = act(x)
    return np.asarray(y, dtype=F32), (act, x, y, training)


def act_backward(act, cache, dy):
    if cache is None:
        return dy
    act, x, y, training = cache
    if isinstance(act, BaseQuantizer):
        return act.gradient(x, dy, training=training)
    if isinstance(act, _activations.Activation):
        return act.gradient(x, dy, y)
    if hasattr(act, "gradient"):
        return act.gradient(x, dy)
    raise TypeError(f"activation {act!r} has no gradient(): use a Keras activation name, a "
                    f"qnn_ext quantizer or an object with gradient(x, dy)")


class QInitializer:
    """QKeras's initializer wrapper: redraws with a larger scale when the quantizer's step
    would swamp the initial weights, then clips to the quantizer's range."""

    def __init__(self, initializer, use_scale, quantizer):
        from .. import initializers
        self.initializer = initializers.get(initializer)
        self.use_scale = use_scale
        self.quantizer = quantizer
        try:
            self.is_po2 = "po2" in type(quantizer).__name__
        except Exception:
            self.is_po2 = False

    def __call__(self, shape, dtype="float32"):
        x = np.asarray(self.initializer(shape, dtype=dtype), dtype=F32)
        q = self.quantizer
        if self.use_scale and q is not None and hasattr(q, "max") and hasattr(q, "bits"):
            max_x, std_x = float(np.max(np.abs(x))), float(np.std(x))
            delta = float(q.max()) * 2.0 ** -q.bits
            if delta > std_x and hasattr(self.initializer, "scale"):
                qx = np.asarray(q(x), dtype=np.float64)
                q_std = float(np.std(qx))
                if q_std != 0:
                    s = float(np.sum(qx * qx)) / max(float(np.sum(qx * x)), 1e-30)
                else:
                    s = max_x / max(std_x, 1e-30)
                self.initializer.scale *= max(1.0, s)
                x = np.asarray(self.initializer(shape, dtype=dtype), dtype=F32)
            m = float(q.max())
            x = np.clip(x, -m, m).astype(F32)
        return x

    def get_config(self):
        return {"initializer": serialize(self.initializer), "use_scale": self.use_scale,
                "quantizer": serialize(self.quantizer)}


class QuantizedWeightsMixin:
    """Per-weight quantizers. ``_init_quantizers(<w>_quantizer=..., <w>_initializer=...,
    <w>_constraint=..., <w>_range=...)``; kernel-type weights get the auto_po2 rule."""

    _kernel_type = ("kernel", "depthwise", "pointwise", "recurrent", "weight")

    def _init_output(self, activation, use_bias, activity_regularizer):
        """The output side every weight layer shares: its activation (a quantizer or Keras
        activation, None = linear) as given and resolved, use_bias, activity_regularizer."""
        self._activation_config = activation
        self.activation = resolve_activation(activation)
        self.use_bias = use_bias
        self.activity_regularizer = activity_regularizer

    def _init_quantizers(self, **kw):
        from .. import constraints
        self._wspec = {}
        names = list(dict.fromkeys(k.rsplit("_", 1)[0] for k in kw if k.endswith("_quantizer")))
        for w in names:
            user_q = kw.get(f"{w}_quantizer")
            q = get_quantizer(user_q)
            if q is not None and w in self._kernel_type and hasattr(q, "_set_trainable_parameter"):
                q._set_trainable_parameter()
            setattr(self, f"{w}_quantizer", user_q)
            setattr(self, f"{w}_quantizer_internal", q)
            rng = kw.get(f"{w}_range")
            setattr(self, f"{w}_range", rng)
            init = kw.get(f"{w}_initializer")
            constraint = constraints.get(kw.get(f"{w}_constraint"))
            if constraint is None and q is not None:
                m = max(1.0, float(q.max())) if hasattr(q, "max") else 1.0
                constraint = constraints.Clip(-m, m)
            if q is not None and not self._skip_qinit(init, q):
                init = QInitializer(init, use_scale=True, quantizer=q)
            self._wspec[w] = dict(initializer=init, constraint=constraint, user_init=kw.get(f"{w}_initializer"),
                                  user_constraint=kw.get(f"{w}_constraint"))

    @staticmethod
    def _skip_qinit(init, q):
        name = init if isinstance(init, str) else type(init).__name__
        alpha = getattr(q, "alpha", None)
        return (str(name).lower() in ("ones", "zeros") or isinstance(init, QInitializer)
                or isinstance(alpha, str))

    def _add_quantized_weight(self, w, shape, regularizer=None):
        spec = self._wspec[w]
        reg = regularizer if regularizer is not None else getattr(self, f"{w}_regularizer", None)
        if reg is not None:
            from .. import regularizers
            reg = regularizers.get(reg)
        v = self.add_weight(w, shape, initializer=spec["initializer"], constraint=spec["constraint"],
                            regularizer=reg)
        spec["var"] = v
        return v

    def _quantize(self, w, training):
        spec = self._wspec[w]
        q = getattr(self, f"{w}_quantizer_internal")
        value = spec["var"].value
        spec["training"] = training
        return value if q is None else q(value, training=training)

    def _quantizer_grad(self, w, grad_q):
        spec = self._wspec[w]
        q = getattr(self, f"{w}_quantizer_internal")
        if q is None:
            return grad_q
        return q.gradient(spec["var"].value, grad_q, training=spec.get("training", False))

    def get_quantizers(self):
        return [getattr(self, f"{w}_quantizer_internal") for w in self._wspec]

    def get_quantization_config(self):
        config = {f"{w}_quantizer": str(getattr(self, f"{w}_quantizer_internal"))
                  for w in self._wspec}
        act = getattr(self, "activation", None)
        config["activation"] = str(act) if isinstance(act, BaseQuantizer) else getattr(act, "__name__", str(act))
        for attr in ("units", "filters"):
            if hasattr(self, attr):
                config[attr] = getattr(self, attr)
        return config

    def _quantizer_config(self):
        config = {}
        for w, spec in self._wspec.items():
            config[f"{w}_quantizer"] = serialize(getattr(self, f"{w}_quantizer_internal"))
            config[f"{w}_initializer"] = serialize(spec["user_init"])
            config[f"{w}_constraint"] = serialize(spec["user_constraint"])
            config[f"{w}_range"] = getattr(self, f"{w}_range")
        return config
