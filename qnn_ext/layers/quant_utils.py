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


def epilogue_act(act, out_shape=None, training=False):
    """The part of a layer's activation its GEMM epilogue runs, as the kernels' ``act``
    argument: 'relu'; a quantizer's kernel spec (computed for an output of ``out_shape``, with
    the side effects the quantizer's own call would have: its ``scale``, its random key) when the
    quantizer is a pure element-wise map whose STE can be kept as a bit mask; or None (linear,
    or an activation the epilogue cannot run, which act_after_epilogue then applies)."""
    if act is _activations.get("relu"):
        return "relu"
    if not isinstance(act, BaseQuantizer) or out_shape is None:
        return None
    from .. import _core
    probe = np.broadcast_to(F32(0), out_shape)  # shape only: the spec never reads values
    if probe.size == 0:
        return None
    spec = act._fused_spec(probe, training)
    if spec is None:
        return None
    if _core.ste_planes(spec) is None:
        # the quantizer's call would now repeat the spec's side effects: only quantizers
        # without random keys reach here (binary/ternary with the tanh surrogate)
        return None
    return spec


class SteMask:
    """The backward of a quantizer activation that ran in a GEMM epilogue: its STE kept as bit
    codes of the pre-activation (a few bits per element instead of the float tensor)."""

    __slots__ = ("spec", "mask", "who")

    def __init__(self, spec, mask, who):
        self.spec, self.mask, self.who = spec, mask, who

    def gradient(self, dy):
        from .. import _core
        return _core.quant_ste_backward(self.who, self.spec, self.mask, np.ascontiguousarray(dy))


def act_after_epilogue(act, fused, z, training, who="layer"):
    """act_forward(act, z) for an output whose epilogue already applied ``fused``. For relu,
    z is already the output and stands in for the pre-activation in the cache: relu's gradient
    reads only the sign of its input, and the output is > 0 exactly where the pre-activation is
    (NaN and -0.0 pass through unchanged). For a quantizer spec, z is (y, STE mask)."""
    if fused is None:
        return act_forward(act, z, training)
    if isinstance(fused, tuple):
        y, mask = z
        return y, SteMask(fused, mask, who)
    return z, (act, z, z, training)


def epilogue_kwargs(fused):
    """The kernels' keyword arguments for the epilogue ``fused`` (epilogue_act)."""
    return dict(act=fused, ste_mask=isinstance(fused, tuple))


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
    if isinstance(cache, SteMask):
        return cache.gradient(dy)
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

    _fused_next = None  # (activation, epilogue act, affine, batch norm) while call_fused runs
    _fused_bn = None    # the inference batch norm the last call ran in its epilogue

    def _epilogue(self, out_shape, training):
        """(activation, epilogue act, kernel keyword arguments) of this call: a following batch
        norm's and activation layer's when the model fused them (call_fused), else the layer's
        own activation."""
        if self._fused_next is not None:
            act, fused, affine, self._fused_bn = self._fused_next
        else:
            act, affine, self._fused_bn = self.activation, None, None
            fused = epilogue_act(act, out_shape, training)
        kw = epilogue_kwargs(fused)
        if affine is not None:
            kw.update(scale=affine[0], shift=affine[1])
        return act, fused, kw

    def _out_grad(self, grad):
        """The gradient at the GEMM output from the gradient of the layer's output: through the
        activation and, when it ran in the epilogue, the inference batch norm."""
        dz = self._act_grad(self.activation, self._act_cache, grad)
        return dz if self._fused_bn is None else self._fused_bn._inference_grad(dz)

    def call_fused(self, x, activation=None, bn=None, training=False):
        """``activation(bn(self(x)))`` with the following layers' work run in this layer's GEMM
        epilogue while each output block is in cache: ``activation`` (an Activation or
        QActivation layer's) and, at inference only (training=False), ``bn`` (a
        BatchNormalization, whose moving statistics make it a per-channel affine map). Returns
        None when the layer has an activation of its own or the epilogue cannot run these (the
        layers then run one by one). Outputs and gradients are bit-identical to the layers run
        one by one; backward() then takes the gradient of the last fused layer's output, and a
        quantizer's STE is kept as a bit mask instead of the float pre-activation."""
        shape_of = getattr(self, "_epilogue_shape", None)
        if shape_of is None or self.activation is not _activations.get("linear"):
            return None
        if (activation is None and bn is None) or (bn is not None and training):
            return None
        fused = None
        if activation is not None:
            fused = epilogue_act(activation, shape_of(x.shape), training)
            if fused is None:
                return None
        affine = None if bn is None else bn._inference_affine(shape_of(x.shape)[-1])
        self._fused_next = (activation or _activations.get("linear"), fused, affine, bn)
        try:
            return self.call(x, training=training)
        finally:
            self._fused_next = None

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
