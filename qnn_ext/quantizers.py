"""QKeras quantizers with C kernels underneath.

Every class mirrors QKeras 0.9's constructor, defaults, ``__str__``, ``get_config`` and
``max()/min()/range()`` (see ``spec/quantizers.md``). Calling a quantizer on an array-like runs
the forward pass in C and returns a float32 NumPy array of the input's shape;
``q.gradient(x, dy)`` returns dL/dx through the straight-through estimator (STE) QKeras uses for
that quantizer. The STE forms named in the docstrings:

* **A**: ``y = x + stop_gradient(qf*(xq - x))`` -> gradient 1 everywhere (unclipped).
* **A'**: the same around a relu'd/capped ``x_u`` -> gradient ``d x_u/dx``.
* **B**: rounding inside a smooth/clipped formula counts as identity -> gradient of the rest.
* ``use_ste=False``: ``y = (1-qf)*x + stop_gradient(qf*xq)`` -> gradient ``1 - qf``.

Stochastic behaviour (stochastic rounding, ``stochastic_*``, ``bernoulli``) happens only when
training: ``training=None`` reads the global :func:`qnn_ext.backend.learning_phase`.
"""
import inspect
import math
import numbers

import numpy as np

from . import _quant_ops as K
from . import backend
from ._quant_ops import F32, OP

__all__ = [
    "BaseQuantizer", "quantized_bits", "quantized_linear", "quantized_relu", "quantized_tanh",
    "quantized_sigmoid", "quantized_ulaw", "quantized_po2", "quantized_relu_po2",
    "quantized_hswish", "binary", "stochastic_binary", "ternary", "stochastic_ternary",
    "bernoulli", "hard_sigmoid", "smooth_sigmoid", "binary_sigmoid", "binary_tanh",
    "hard_tanh", "smooth_tanh", "set_internal_sigmoid", "get_quantizer", "get_weight_scale",
]

_EPS = 1e-7
_internal_sigmoid = "hard"


def set_internal_sigmoid(mode):
    """Select the sigmoid QKeras uses inside quantizers: "hard" (0.5x+0.5, default), "smooth"
    (0.1875x+0.5) or "real" (logistic). Process-wide, like QKeras's."""
    global _internal_sigmoid
    if mode not in ("real", "hard", "smooth"):
        raise ValueError(f"set_internal_sigmoid: mode has to be 'real', 'hard' or 'smooth', "
                         f"got {mode!r}")
    _internal_sigmoid = mode


def _is_po2(alpha):
    return isinstance(alpha, str) and alpha == "auto_po2"


def _sigmoid_mode():
    return K.SIGMOID_MODES[_internal_sigmoid]


def get_weight_scale(quantizer, x=None):
    """The quantizer's per-channel scale after a call (binary/ternary/auto alphas), else 1.0."""
    del x
    s = getattr(quantizer, "scale", None)
    return 1.0 if s is None else s


def _get_integer_bits(min_value, max_value, bits=8, symmetric=False, keep_negative=False,
                      is_clipping=True):
    """Integer bits (left of the binary point) that cover [min_value, max_value] with `bits`
    bits, QKeras's rule for QAdaptiveActivation (float32 arithmetic like TF's).

    With clipping: ``round(max(log2|v|, 0))`` of min and max; without: ``ceil`` and one more
    bit where the value would not fit ``2**int - 2**min(int - unsigned_bits, 0)`` (the min side
    only when symmetric). Result ``min(unsigned_bits, max(int_min, int_max))`` as int32.
    """
    mn = np.asarray(min_value, dtype=F32)
    mx = np.asarray(max_value, dtype=F32)
    if not keep_negative:
        mn = np.maximum(mn, F32(0))
        mx = np.maximum(mx, F32(0))
    ub = bits - int(bool(keep_negative))
    with np.errstate(divide="ignore", invalid="ignore"):
        mn_l = (np.log(np.abs(mn)) / F32(np.log(2.0))).astype(F32)
        mx_l = (np.log(np.abs(mx)) / F32(np.log(2.0))).astype(F32)
    mn_l = np.where(mn_l > 0, mn_l, F32(0)).astype(F32)
    mx_l = np.where(mx_l > 0, mx_l, F32(0)).astype(F32)
    if is_clipping:
        mn_i, mx_i = np.rint(mn_l), np.rint(mx_l)
    else:
        mn_i, mx_i = np.ceil(mn_l), np.ceil(mx_l)
        mx_po2 = (F32(2.0) ** mx_i - F32(2.0) ** np.minimum(mx_i - ub, 0)).astype(F32)
        mx_i = np.where(mx <= mx_po2, mx_i, mx_i + 1)
        if symmetric:
            mn_po2 = (-F32(2.0) ** mn_i + F32(2.0) ** np.minimum(mn_i - ub, 0)).astype(F32)
            mn_i = np.where(mn_po2 <= mn, mn_i, mn_i + 1)
    return np.minimum(np.int32(ub), np.maximum(mn_i, mx_i).astype(np.int32))


# ---------------------------------------------------------------- argument checks

def _check_int(who, name, v, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        if isinstance(v, numbers.Real) and float(v).is_integer():
            v = int(v)
        else:
            raise TypeError(f"{who}: {name} must be an int, got {v!r}")
    if lo is not None and v < lo:
        raise ValueError(f"{who}: {name} must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{who}: {name} must be <= {hi}, got {v}")
    return int(v)


def _check_flag(who, name, v):
    """A QKeras flag (bool, or a number used as int(v)): a NaN, inf or non-number would fail deep
    inside the parameter computation without the argument's name."""
    if isinstance(v, (bool, np.bool_)):
        return v
    if not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{who}: {name} must be a bool or a finite number, got {v!r}")
    return v


def _check_po2_exponent(who, name, v):
    """None or an int exponent of a float32 power of two (the kernels' range, [-126, 127])."""
    return None if v is None else _check_int(who, name, v, -126, 127)


# 2**bits is formed in float64 and used in float32: beyond 64 bits the scales overflow (inf or
# an OverflowError without the argument's name), and no fixed-point format needs more.
MAX_BITS = 64


def _check_real(who, name, v, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{who}: {name} must be a real number, got {v!r}")
    return v


def _check_po2_slope(who, slope):
    _check_real(who, "negative_slope", slope)
    if slope < 0:
        raise ValueError(f"{who}: negative_slope must be >= 0, got {slope}")
    if slope != 0 and math.log2(slope) % 1 != 0:
        raise ValueError(f"{who}: negative_slope must be a power of 2 (e.g. 0.125), got {slope}")


def _check_alpha(who, alpha, strings=("auto", "auto_po2")):
    if alpha is None or isinstance(alpha, str):
        if isinstance(alpha, str) and alpha not in strings:
            raise ValueError(f"{who}: alpha must be None, a number, an array or one of "
                             f"{list(strings)}, got {alpha!r}")
        return alpha
    if isinstance(alpha, bool):
        raise TypeError(f"{who}: alpha must be None, a number, an array or a string, got {alpha!r}")
    try:
        a64 = np.asarray(alpha, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"{who}: alpha must be None, a number, an array or a string, "
                        f"got {alpha!r}") from None
    # the kernels scale in float32: NaN, inf or a number beyond float32 would give NaN/inf
    # outputs without an error (checked in float64, before the float32 cast could overflow)
    if not np.all(np.abs(a64) <= np.finfo(F32).max):
        raise ValueError(f"{who}: alpha must be finite (within float32 range), got {alpha!r}")
    if a64.size == 0:
        raise ValueError(f"{who}: alpha must not be an empty array")
    return alpha if isinstance(alpha, numbers.Real) else a64.astype(F32)


def _fmt(v):
    return str(v)


# ---------------------------------------------------------------- base class

class BaseQuantizer:
    """Common interface: ``q(x, training=None)``, ``q.gradient(x, dy, training=None)``."""

    _name = "quantizer"
    _cfg = ()

    def __init__(self):
        self.built = False

    def build(self, var_name=None, use_variables=False):
        del var_name, use_variables
        self.built = True

    def _set_trainable_parameter(self):
        pass

    def update_qnoise_factor(self, qnoise_factor):
        """Set the fraction of quantization noise (0 = float, 1 = fully quantized)."""
        qf = _check_real(self._name, "qnoise_factor", float(qnoise_factor)
                         if isinstance(qnoise_factor, (np.floating, np.integer)) else qnoise_factor)
        if not 0.0 <= qf <= 1.0:
            raise ValueError(f"{self._name}: qnoise_factor must be in [0, 1], got {qf}")
        self.qnoise_factor = float(qf)

    # QKeras hides its quantizer variables from Keras.
    @property
    def variables(self):
        return ()

    @property
    def trainable_variables(self):
        return ()

    @property
    def non_trainable_variables(self):
        return ()

    def __call__(self, x, training=None, out=None):
        x = K.as_input(self._name, x)
        self.built = True
        if x.size == 0 and out is not None:
            K.check_out(self._name, x, out)  # several _forward return early on empty x
        return self._forward(x, backend.resolve_training(training), out)

    def _fused_spec(self, x, training):
        """Kernel arguments for applying this quantizer inside another kernel (the batch-norm
        fusion): ``(params_f, scale_f, scale2_f, inner_f, params_b, scale_b, inner_b)`` exactly
        as ``_forward`` / ``_backward`` would pass them for ``x``, with the same side effects
        (scale attributes, random key), or None when the quantizer is not a pure element-wise
        map of x (data-dependent scales, stochastic draws over statistics, composed kernels)."""
        return None

    def gradient(self, x, dy, training=None, out=None):
        """dL/dx for upstream gradient ``dy`` (same shape as x), by this quantizer's STE."""
        x = K.as_input(self._name, x)
        dy = K.as_input(self._name, dy, "dy")
        if dy.shape != x.shape:
            raise ValueError(f"{self._name}: dy must have the shape of x {x.shape}, got {dy.shape}")
        if x.size == 0 and out is not None:
            K.check_out(self._name, x, out)
        return self._backward(x, dy, backend.resolve_training(training), out)

    def get_config(self):
        return {k: getattr(self, k) for k in self._cfg}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return str(self)

    def _stochastic(self, p, on):
        """Turn on stochastic rounding in kernel params `p` with a fresh key from the seeded
        stream (kept in ``_last_key`` so tests can rebuild the draws)."""
        if on:
            p["flags"] = p.get("flags", 0) | K.SR
            p["key"] = self._last_key = backend.next_random_key()
        return p

    # params common to the qnoise-aware quantizers
    def _qnoise_params(self):
        qf = float(self.qnoise_factor)
        return dict(qf=qf, flags=0 if self.use_ste else K.NO_STE)


# ---------------------------------------------------------------- quantized_bits

class quantized_bits(BaseQuantizer):
    """Fixed-point quantizer ``ap_fixed<bits, integer+1>`` (legacy QKeras workhorse).

    Forward (alpha None/number/array a): ``m = 2**(bits-keep_negative)``, ``m_i = 2**integer``,
    ``xq = a * m_i * clip(round(x*m/m_i), keep_negative*(-m+symmetric), m-1) / m``; with
    ``bits - keep_negative == 0`` a sign with 0 -> +1. alpha "auto"/"auto_po2": per-channel
    least-squares scale (po2 refined 5 times), ``scale = s*m`` is stored in ``self.scale``.
    STE: form A (gradient 1, unclipped), or ``1 - qnoise_factor`` with ``use_ste=False``.
    """

    _name = "quantized_bits"

    def __init__(self, bits=8, integer=0, symmetric=0, keep_negative=True, alpha=None,
                 use_stochastic_rounding=False, scale_axis=None, qnoise_factor=1.0,
                 var_name=None, use_ste=True, use_variables=False, elements_per_scale=None,
                 min_po2_exponent=None, max_po2_exponent=None, post_training_scale=None):
        super().__init__()
        who = self._name
        self.bits = _check_int(who, "bits", bits, 1, MAX_BITS)
        self.integer = _check_int(who, "integer", integer, -MAX_BITS, MAX_BITS)
        self.symmetric = _check_flag(self._name, "symmetric", symmetric)
        self.keep_negative = keep_negative
        self.alpha = _check_alpha(who, alpha)
        self.use_stochastic_rounding = use_stochastic_rounding
        self.post_training_scale = (None if post_training_scale is None
                                    else np.asarray(post_training_scale, dtype=F32))
        if isinstance(self.alpha, str):
            self.freeze_scale = False
            self.symmetric = True
            self.scale = None
            if self.post_training_scale is not None:
                self.scale = np.array(self.post_training_scale)
                self.freeze_scale = True
        else:
            if self.post_training_scale is not None:
                raise ValueError(f"{who}: alpha={alpha} doesn't support post_training_scale: "
                                 f"{post_training_scale}")
            self.scale = None
            self.freeze_scale = True
        self.scale_axis = scale_axis
        self.update_qnoise_factor(qnoise_factor)
        self.use_ste = use_ste
        self.var_name = var_name
        self.use_variables = use_variables
        self.elements_per_scale = elements_per_scale
        self.min_po2_exponent = _check_po2_exponent(self._name, "min_po2_exponent", min_po2_exponent)
        self.max_po2_exponent = _check_po2_exponent(self._name, "max_po2_exponent", max_po2_exponent)

    def __str__(self):
        flags = [str(self.bits), str(self.integer), str(int(self.symmetric))]
        if not self.keep_negative:
            flags.append("keep_negative=False")
        if self.alpha is not None and (not isinstance(self.alpha, np.ndarray) or self.alpha.size):
            if isinstance(self.alpha, str):
                flags.append("alpha='" + self.alpha + "'")
            elif isinstance(self.alpha, np.ndarray) or self.alpha:
                flags.append("alpha=" + str(self.alpha))
        if self.use_stochastic_rounding:
            flags.append("use_stochastic_rounding=" + str(int(self.use_stochastic_rounding)))
        return "quantized_bits(" + ",".join(flags) + ")"

    def _set_trainable_parameter(self):
        if self.alpha is None:
            self.alpha = "auto_po2"
            self.freeze_scale = False
            self.symmetric = True

    def _check_call(self):
        if not _is_po2(self.alpha):
            for k in ("elements_per_scale", "min_po2_exponent", "max_po2_exponent"):
                if getattr(self, k) is not None:
                    raise ValueError(f"{self._name}: {k} is only supported with alpha='auto_po2'")

    def _fixed_params(self, x, training):
        ub = self.bits - int(bool(self.keep_negative))
        p = self._qnoise_params()
        self._stochastic(p, self.use_stochastic_rounding and training)
        if ub > 0:
            m, m_i = 2.0 ** ub, 2.0 ** self.integer
            p.update(op=OP["BITS"], in_mul=m / m_i, out_mul=m_i / m,
                     lo=int(bool(self.keep_negative)) * (-m + int(self.symmetric)), hi=m - 1)
        else:
            p.update(op=OP["BITS_SIGN"])
        return p

    def _scale_args(self, x):
        a = self.alpha
        if a is None:
            return None, 1
        if isinstance(a, np.ndarray):
            return K.broadcast_scale(self._name, "alpha", x, a)
        return K.scalar_scale(x, float(a))

    def _auto(self, x, training, out=None):
        who = self._name
        lay = K.channel_layout(who, x.shape, self.scale_axis, self.elements_per_scale)
        m = 2.0 ** (self.bits - int(bool(self.keep_negative)))
        levels = (2 ** (self.bits - 1) - 1) * 2 if self.symmetric else 2 ** self.bits - 1
        p = self._qnoise_params()
        p.update(op=OP["AUTOBITS"], in_mul=2.0 ** -self.integer, out_mul=2.0 ** self.integer / m,
                 m=m, hi=levels / 2)
        a = dict(po2=int(_is_po2(self.alpha)), iterations=5,
                 global_init=int(x.ndim <= 1 and self.scale_axis is None),
                 has_min_exp=int(self.min_po2_exponent is not None),
                 has_max_exp=int(self.max_po2_exponent is not None),
                 min_po2_exp=self.min_po2_exponent or 0, max_po2_exp=self.max_po2_exponent or 0,
                 frozen=int(self.freeze_scale))
        scale_in = lay.channel_vector(self.scale) if self.freeze_scale else None
        xk = lay.to_kernel(x)
        if x.size == 0:
            return x.copy(), np.ones(lay.scale_shape, F32)
        y, s = K._core.quant_auto(who, "bits", xk, p, a, lay.outer, lay.S, lay.inner, lay.group,
                                  out if lay.perm is None else None, scale_in)
        if a["global_init"] and not a["po2"]:
            # rank 1 with "auto": one max over the vector and no per-element refinement.
            return lay.from_kernel(y), s[:1].copy()
        return lay.from_kernel(y), lay.scale_array(s)

    def _forward(self, x, training, out):
        self._check_call()
        if isinstance(self.alpha, str):
            y, s = self._auto(x, training, out)
            if not self.freeze_scale:
                self.scale = s
            return y
        sc, inner = self._scale_args(x)
        self.scale = 1.0 if self.alpha is None else self.alpha
        return K.fwd(self._name, x, self._fixed_params(x, training), out, sc, None, inner)

    def _backward(self, x, dy, training, out):
        p = dict(op=OP["BITS"], **self._qnoise_params())
        return K.bwd(self._name, x, dy, p, out)

    def _fused_spec(self, x, training):
        if type(self)._forward is not quantized_bits._forward or isinstance(self.alpha, str) \
                or x.size == 0:
            return None
        self._check_call()
        sc, inner = self._scale_args(x)
        self.scale = 1.0 if self.alpha is None else self.alpha
        pf = self._fixed_params(x, training)
        return pf, sc, None, inner, dict(op=OP["BITS"], **self._qnoise_params()), None, 1

    def max(self):
        """max(1, 2**integer) (ignores alpha, as QKeras)."""
        if self.bits - int(bool(self.keep_negative)) > 0:
            return max(1.0, float(np.float32(2.0 ** self.integer)))
        return 1.0

    def min(self):
        if not self.keep_negative:
            return 0.0
        if self.bits - int(bool(self.keep_negative)) > 0:
            return -max(1.0, float(np.float32(2.0 ** self.integer)))
        return -1.0

    def range(self):
        """All representable values in two's-complement code order (symmetric=0, alpha 1)."""
        if self.symmetric != 0 or not self.keep_negative or not (
                self.alpha is None or (not isinstance(self.alpha, (str, np.ndarray))
                                       and self.alpha == 1.0)):
            raise ValueError(f"{self._name}: range() needs symmetric=0, keep_negative=True and "
                             f"alpha None or 1.0")
        x = np.arange(2 ** self.bits, dtype=F32)
        half = 2 ** (self.bits - 1)
        p_and_n = np.where(x >= half, (x - half) - half, x)
        return (p_and_n * np.float32(2.0 ** (-self.bits + self.integer + 1))).astype(F32)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("post_training_scale") is not None:
            config["post_training_scale"] = np.array(config["post_training_scale"])
        return cls(**config)

    def get_config(self):
        alpha = self.alpha.tolist() if isinstance(self.alpha, np.ndarray) else self.alpha
        return {
            "bits": self.bits, "integer": self.integer, "symmetric": self.symmetric,
            "alpha": alpha, "keep_negative": self.keep_negative,
            "use_stochastic_rounding": self.use_stochastic_rounding,
            "qnoise_factor": self.qnoise_factor,
            "post_training_scale": (self.post_training_scale.tolist()
                                    if self.post_training_scale is not None else None),
        }


class quantized_hswish(quantized_bits):
    """Quantized hard swish: ``h = x*min(relu(x + relu_shift), relu_upper_bound)/relu_upper_bound``
    then :class:`quantized_bits` of h (keep_negative forced True). STE: gradient dh/dx."""

    _name = "quantized_hswish"

    def __init__(self, bits=8, integer=0, symmetric=0, alpha=None, use_stochastic_rounding=False,
                 scale_axis=None, qnoise_factor=1.0, var_name=None, use_variables=False,
                 relu_shift=3, relu_upper_bound=6):
        super().__init__(bits=bits, integer=integer, symmetric=symmetric, keep_negative=True,
                         alpha=alpha, use_stochastic_rounding=use_stochastic_rounding,
                         scale_axis=scale_axis, qnoise_factor=qnoise_factor, var_name=var_name,
                         use_ste=True, use_variables=use_variables)
        self.relu_shift = _check_real(self._name, "relu_shift", relu_shift)
        self.relu_upper_bound = _check_real(self._name, "relu_upper_bound", relu_upper_bound)
        if self.relu_upper_bound <= 0:
            raise ValueError(f"{self._name}: relu_upper_bound must be > 0, got {relu_upper_bound}")

    def __str__(self):
        # QKeras's __str__ always raises here (it asserts a str is an int); ours is parseable.
        s = super().__str__()[len("quantized_bits("):-1]
        flags = [s] if s else []
        if self.relu_shift != 3:
            flags.append(f"relu_shift={self.relu_shift}")
        if self.relu_upper_bound != 6:
            flags.append(f"relu_upper_bound={self.relu_upper_bound}")
        return "quantized_hswish(" + ",".join(flags) + ")"

    def _hswish_params(self):
        return dict(shift=float(self.relu_shift), ub=float(self.relu_upper_bound))

    def _forward(self, x, training, out):
        self._check_call()
        if isinstance(self.alpha, str):
            h = K.fwd(self._name, x, dict(op=OP["HSWISH_PRE"], **self._hswish_params()))
            y, s = self._auto(h, training, out)
            if not self.freeze_scale:
                self.scale = s
            return y
        sc, inner = self._scale_args(x)
        self.scale = 1.0 if self.alpha is None else self.alpha
        p = self._fixed_params(x, training)
        if p["op"] == OP["BITS"]:
            p["op"] = OP["HSWISH"]
            p.update(self._hswish_params())
            return K.fwd(self._name, x, p, out, sc, None, inner)
        h = K.fwd(self._name, x, dict(op=OP["HSWISH_PRE"], **self._hswish_params()))
        return K.fwd(self._name, h, p, out, sc, None, inner)

    def _backward(self, x, dy, training, out):
        p = dict(op=OP["HSWISH"], **self._qnoise_params(), **self._hswish_params())
        return K.bwd(self._name, x, dy, p, out)

    def min(self):
        # QKeras calls a non-existent method here for default parameters; the true minimum of
        # h is -shift**2/(4*ub) (at x = -shift/2), clipped to what the bits can represent.
        hmin = -(self.relu_shift ** 2) / (4.0 * self.relu_upper_bound)
        return max(super().min(), hmin)

    def get_config(self):
        config = super().get_config()
        config.update(relu_shift=self.relu_shift, relu_upper_bound=self.relu_upper_bound)
        return config

    @classmethod
    def from_config(cls, config):
        # QKeras's config carries quantized_bits's keys, which the hswish constructor does not
        # take (its from_config fails); keep_negative is forced True and post_training_scale
        # unused here.
        config = dict(config)
        config.pop("keep_negative", None)
        config.pop("post_training_scale", None)
        return cls(**config)


# ---------------------------------------------------------------- quantized_linear

class quantized_linear(BaseQuantizer):
    """Linear quantizer (QKeras's refactor of quantized_bits).

    ``xq = qs * (round(clip(x/qs, lo, hi) - shift) + shift)`` with
    ``qs = alpha * 2**(integer - bits + keep_negative)`` (alpha None -> 1; "auto"/"auto_po2":
    per-channel from the data, po2 refined by least squares until it stops changing, at most 5
    times). 1-bit signed: sign mode (clip [-0.5, 0.5], shift 0.5). Output ``x + qf*(xq - x)``
    without stop_gradient, so the STE is clipped: gradient ``(1-qf) + qf*[lo <= x/qs <= hi]``.
    """

    _name = "quantized_linear"
    _cfg = ("bits", "integer", "symmetric", "alpha", "keep_negative", "use_stochastic_rounding",
            "qnoise_factor")

    def __init__(self, bits=8, integer=0, symmetric=1, keep_negative=True, alpha=None,
                 use_stochastic_rounding=False, scale_axis=None, qnoise_factor=1.0,
                 var_name=None, use_variables=False):
        super().__init__()
        who = self._name
        if isinstance(bits, numbers.Real) and not isinstance(bits, bool) and bits <= 0:
            raise ValueError(f"{who}: bits must be > 0, got {bits}")
        self._bits = _check_int(who, "bits", bits, 1, MAX_BITS)
        self._integer = _check_int(who, "integer", integer, -MAX_BITS, MAX_BITS)
        self.symmetric = _check_flag(self._name, "symmetric", symmetric)
        self._keep_negative = keep_negative
        if alpha is not None and not isinstance(alpha, str):
            if isinstance(alpha, bool) or not isinstance(alpha, (numbers.Real, list, tuple, np.ndarray)):
                raise TypeError(f"{who}: alpha must be None, 'auto', 'auto_po2' or array-like, "
                                f"got {alpha!r}")
        self.alpha = _check_alpha(who, alpha)
        self._use_stochastic_rounding = use_stochastic_rounding
        self._scale_axis = scale_axis
        self.update_qnoise_factor(qnoise_factor)
        self.var_name = var_name
        self._use_variables = use_variables
        self.quantization_scale = self.default_quantization_scale

    bits = property(lambda self: self._bits)
    integer = property(lambda self: self._integer)
    keep_negative = property(lambda self: self._keep_negative)
    use_stochastic_rounding = property(lambda self: self._use_stochastic_rounding)
    scale_axis = property(lambda self: self._scale_axis)
    use_variables = property(lambda self: self._use_variables)

    @property
    def auto_alpha(self):
        return isinstance(self.alpha, str)

    @property
    def use_sign_function(self):
        return self.bits == 1 and bool(self.keep_negative)

    @property
    def data_type_scale(self):
        return 2.0 ** (self.integer - self.bits + int(bool(self.keep_negative)))

    @property
    def default_quantization_scale(self):
        if self.alpha is not None and not self.auto_alpha:
            return np.asarray(self.alpha, dtype=F32) * F32(self.data_type_scale)
        return self.data_type_scale

    @property
    def scale(self):
        with np.errstate(over="ignore"):  # a huge auto scale over a tiny data_type_scale -> inf
            return np.asarray(self.quantization_scale, dtype=F32) / F32(self.data_type_scale)

    def get_clip_bounds(self):
        if self.use_sign_function:
            return -0.5, 0.5
        ubp = 2.0 ** (self.bits - int(bool(self.keep_negative)))
        lo = int(bool(self.keep_negative)) * (-ubp + int(self.symmetric))
        return float(lo), ubp - 1.0

    def _params(self, training):
        lo, hi = self.get_clip_bounds()
        p = dict(op=OP["LINEAR"], qf=float(self.qnoise_factor), lo=lo, hi=hi,
                 shift=0.5 if self.use_sign_function else 0.0, flags=0)
        self._stochastic(p, self.use_stochastic_rounding and training)
        return p

    def _scales(self, x, training, out=None):
        """(y, per-channel scale vector, inner) for x; y is None unless auto computed it."""
        if self.auto_alpha:
            lay = K.channel_layout(self._name, x.shape, self.scale_axis)
            a = dict(po2=int(_is_po2(self.alpha)),
                     iterations=1 if self.use_sign_function else 5)
            y, s = K._core.quant_auto(self._name, "linear", lay.to_kernel(x), self._params(training),
                                      a, lay.outer, lay.S, lay.inner, lay.group,
                                      out if lay.perm is None else None)
            self.quantization_scale = lay.scale_array(s)
            return lay.from_kernel(y), None, 1
        qs = self.default_quantization_scale
        if isinstance(qs, np.ndarray) and qs.size > 1:
            sc, inner = K.broadcast_scale(self._name, "alpha", x, qs)
        else:
            sc, inner = K.scalar_scale(x, float(np.asarray(qs).reshape(-1)[0]))
        return None, sc, inner

    def _forward(self, x, training, out):
        if x.size == 0:
            return x.copy()
        y, sc, inner = self._scales(x, training, out)
        if y is not None:
            return y
        return K.fwd(self._name, x, self._params(training), out, sc, None, inner)

    def _backward(self, x, dy, training, out):
        if x.size == 0:
            return dy.copy()
        if self.auto_alpha:
            self._scales(x, False)
            sc, inner = K.broadcast_scale(self._name, "scale", x, self.quantization_scale)
        else:
            _, sc, inner = self._scales(x, training)
        return K.bwd(self._name, x, dy, self._params(False), out, sc, inner)

    def max(self):
        return self.get_clip_bounds()[1] * self.quantization_scale

    def min(self):
        return self.get_clip_bounds()[0] * self.quantization_scale

    def range(self):
        if self.use_sign_function:
            return np.asarray([self.max(), self.min()], dtype=F32)
        lo, hi = self.get_clip_bounds()
        vals = np.concatenate([np.arange(int(hi) + 1), np.arange(int(lo), 0)]).astype(F32)
        return (np.asarray(self.quantization_scale, dtype=F32) * vals).astype(F32)

    def __str__(self):
        flags = [str(int(self.bits)), str(int(self.integer)), str(int(self.symmetric))]
        if not self.keep_negative:
            flags.append("keep_negative=False")
        if self.auto_alpha:
            flags.append("alpha='" + self.alpha + "'")
        elif self.alpha is not None:
            # QKeras raises UnboundLocalError here; print the value instead.
            flags.append("alpha=" + str(np.asarray(self.alpha)))
        if self.use_stochastic_rounding:
            flags.append("use_stochastic_rounding=" + str(int(self.use_stochastic_rounding)))
        return "quantized_linear(" + ",".join(flags) + ")"

    def _set_trainable_parameter(self):
        if self.alpha is None:
            self.alpha = "auto_po2"
            self.symmetric = True

    def get_config(self):
        c = super().get_config()
        if isinstance(c["alpha"], np.ndarray):
            c["alpha"] = c["alpha"].tolist()
        return c


# ---------------------------------------------------------------- quantized_relu

class quantized_relu(BaseQuantizer):
    """Quantized (leaky) relu on the unsigned grid ``k*2**(integer-bits)``.

    Forward: ``xq = m_i*clip(round(x*m/m_i)/m, 0, 1-1/m)`` (``m = 2**(bits - (slope != 0))``),
    plus the negative part ``m_i*slope*clip(round(p*slope)/(slope*m), -1, 0)`` when
    ``negative_slope > 0``; ``use_sigmoid`` uses ``2*round(sigmoid(x/m_i)*m)/m - 1`` instead.
    STE: form A' around ``x_u`` = leaky relu capped at ``2**integer - LSB`` (is_quantized_clip)
    or at relu_upper_bound: gradient 1 on (0, cap], ``negative_slope`` below 0, 0 above the cap.
    """

    _name = "quantized_relu"
    _cfg = ("bits", "integer", "use_sigmoid", "negative_slope", "use_stochastic_rounding",
            "relu_upper_bound", "qnoise_factor")

    def __init__(self, bits=8, integer=0, use_sigmoid=0, negative_slope=0.0,
                 use_stochastic_rounding=False, relu_upper_bound=None, is_quantized_clip=True,
                 qnoise_factor=1.0, var_name=None, use_ste=True, use_variables=False,
                 enable_fast_inference=False):
        super().__init__()
        who = self._name
        self.bits = _check_int(who, "bits", bits, 1, MAX_BITS)
        self.integer = _check_int(who, "integer", integer, -MAX_BITS, MAX_BITS)
        self.use_sigmoid = use_sigmoid
        _check_po2_slope(who, negative_slope)
        self.negative_slope = negative_slope
        self.use_stochastic_rounding = use_stochastic_rounding
        self.relu_upper_bound = _check_real(who, "relu_upper_bound", relu_upper_bound, True)
        self.is_quantized_clip = is_quantized_clip
        self.update_qnoise_factor(qnoise_factor)
        self.use_ste = use_ste
        self.var_name = var_name
        self.use_variables = use_variables
        self.enable_fast_inference = enable_fast_inference

    def __str__(self):
        flags = [str(self.bits), str(self.integer)]
        if self.use_sigmoid or self.use_stochastic_rounding:
            flags.append(str(int(self.use_sigmoid)))
        if self.negative_slope:
            flags.append(str(self.negative_slope))
        if self.use_stochastic_rounding:
            flags.append(str(int(self.use_stochastic_rounding)))
        return "quantized_relu(" + ",".join(flags) + ")"

    def _params(self, training):
        slope = float(self.negative_slope)
        nsb = self.bits - (slope != 0.0)
        m, m_i = 2.0 ** nsb, 2.0 ** self.integer
        p = self._qnoise_params()
        p.update(op=OP["RELU"], m=m, m_i=m_i, cap=float(F32(m_i) - F32(2.0 ** (self.integer - nsb))),
                 in_mul=1.0 / m_i if self.use_sigmoid else m / m_i,
                 out_mul=1.0 / (slope * m) if slope else 1.0, slope=slope,
                 sigmoid=_sigmoid_mode())
        if self.use_sigmoid:
            p["flags"] |= K.USE_SIGMOID
        if self.is_quantized_clip:
            p["flags"] |= K.QCLIP
        if self.relu_upper_bound is not None:
            p["flags"] |= K.UB
            p["ub"] = float(self.relu_upper_bound)
        self._stochastic(p, self.use_stochastic_rounding and training)
        return p

    def _forward(self, x, training, out):
        return K.fwd(self._name, x, self._params(training), out)

    def _backward(self, x, dy, training, out):
        return K.bwd(self._name, x, dy, self._params(False), out)

    def _fused_spec(self, x, training):
        if type(self)._forward is not quantized_relu._forward or x.size == 0:
            return None
        return self._params(training), None, None, 1, self._params(False), None, 1

    def max(self):
        if self.bits - (self.negative_slope != 0.0) > 0:
            return max(1.0, float(np.float32(2.0 ** self.integer)))
        return 1.0

    def min(self):
        if self.negative_slope == 0.0:
            return 0.0
        if self.bits - 1 > 0:
            return min(-0.0, -self.negative_slope * float(np.float32(2.0 ** self.integer)))
        return -1.0

    def range(self):
        if self.use_sigmoid or self.negative_slope:
            raise ValueError(f"{self._name}: range() needs use_sigmoid=0 and negative_slope=0")
        return (np.arange(2 ** self.bits) * np.float32(2.0 ** (self.integer - self.bits))).astype(F32)


# ---------------------------------------------------------------- tanh / sigmoid / ulaw

class quantized_tanh(BaseQuantizer):
    """Quantized tanh: ``clip(round(p*m)/m, -1 + symmetric/m, 1 - 1/m)``, ``m = 2**(bits-1)``,
    ``p = 2*sigmoid(x) - 1`` with the internal (hard) sigmoid, or ``tanh(x)`` with
    use_real_tanh. STE form B: gradient of p where the clip passes (1 on [-1, 1] for hard)."""

    _name = "quantized_tanh"
    _cfg = ("bits", "symmetric", "use_stochastic_rounding", "use_real_tanh")

    def __init__(self, bits=8, use_stochastic_rounding=False, symmetric=False, use_real_tanh=False):
        super().__init__()
        self.bits = _check_int(self._name, "bits", bits, 1, MAX_BITS)
        self.symmetric = _check_flag(self._name, "symmetric", symmetric)
        self.use_stochastic_rounding = use_stochastic_rounding
        self.use_real_tanh = use_real_tanh

    def __str__(self):
        flags = [str(self.bits)]
        if self.use_stochastic_rounding:
            flags.append(str(int(self.use_stochastic_rounding)))
        if self.symmetric:
            flags.append(str(int(self.symmetric)))
        if self.use_real_tanh:
            flags.append(str(int(self.use_real_tanh)))
        return "quantized_tanh(" + ",".join(flags) + ")"

    def _params(self, training):
        m = 2.0 ** (self.bits - 1)
        p = dict(op=OP["TANH"], m=m, lo=-1.0 + int(bool(self.symmetric)) / m, hi=1.0 - 1.0 / m,
                 sigmoid=_sigmoid_mode(), flags=K.REAL if self.use_real_tanh else 0)
        self._stochastic(p, self.use_stochastic_rounding and training)
        return p

    def _forward(self, x, training, out):
        return K.fwd(self._name, x, self._params(training), out)

    def _backward(self, x, dy, training, out):
        return K.bwd(self._name, x, dy, self._params(False), out)

    def max(self):
        return 1.0 - 1.0 / 2 ** (self.bits - 1)

    def min(self):
        return -1.0 + int(bool(self.symmetric)) / 2 ** (self.bits - 1)


class quantized_sigmoid(BaseQuantizer):
    """Quantized sigmoid: ``clip(round(p*m)/m, symmetric/m, 1 - 1/m)``, ``m = 2**bits``,
    ``p`` = internal sigmoid (or the logistic with use_real_sigmoid). STE form B."""

    _name = "quantized_sigmoid"
    _cfg = ("bits", "symmetric", "use_real_sigmoid", "use_stochastic_rounding")

    def __init__(self, bits=8, symmetric=False, use_real_sigmoid=False,
                 use_stochastic_rounding=False):
        super().__init__()
        self.bits = _check_int(self._name, "bits", bits, 1, MAX_BITS)
        self.symmetric = _check_flag(self._name, "symmetric", symmetric)
        self.use_real_sigmoid = use_real_sigmoid
        self.use_stochastic_rounding = use_stochastic_rounding

    def __str__(self):
        flags = [str(self.bits)]
        if self.symmetric:
            flags.append(str(int(self.symmetric)))
        if self.use_real_sigmoid:
            flags.append(str(int(self.use_real_sigmoid)))
        if self.use_stochastic_rounding:
            flags.append(str(int(self.use_stochastic_rounding)))
        return "quantized_sigmoid(" + ",".join(flags) + ")"

    def _params(self, training):
        m = 2.0 ** self.bits
        p = dict(op=OP["SIGMOID"], m=m, lo=int(bool(self.symmetric)) / m, hi=1.0 - 1.0 / m,
                 sigmoid=_sigmoid_mode(), flags=K.REAL if self.use_real_sigmoid else 0)
        self._stochastic(p, self.use_stochastic_rounding and training)
        return p

    _forward = quantized_tanh._forward
    _backward = quantized_tanh._backward

    def max(self):
        return 1.0 - 1.0 / 2 ** self.bits

    def min(self):
        return int(bool(self.symmetric)) / 2 ** self.bits


class quantized_ulaw(BaseQuantizer):
    """u-law quantizer: ``rp = 2*round(sigmoid(x/m_i)*m)/m - 1``,
    ``y = m_i*clip(sign(rp)*log(1+u|rp|)/log(1+u), -1 + symmetric/m, 1 - 1/m)``,
    ``m = 2**(bits-1)``. STE form B (gradient of the u-law curve where the clip passes)."""

    _name = "quantized_ulaw"
    _cfg = ("bits", "integer", "symmetric", "u")

    def __init__(self, bits=8, integer=0, symmetric=0, u=255.0):
        super().__init__()
        self.bits = _check_int(self._name, "bits", bits, 1, MAX_BITS)
        self.integer = _check_int(self._name, "integer", integer, -MAX_BITS, MAX_BITS)
        self.symmetric = _check_flag(self._name, "symmetric", symmetric)
        self.u = _check_real(self._name, "u", u)
        if self.u <= 0:
            raise ValueError(f"{self._name}: u must be > 0, got {u}")

    def __str__(self):
        flags = [str(self.bits), str(self.integer)]
        if self.symmetric or self.u != 255.0:
            flags.append(str(int(self.symmetric)))
        if self.u != 255.0:
            flags.append(str(self.u))
        return "quantized_ulaw(" + ",".join(flags) + ")"

    def _params(self, training):
        del training
        m, m_i = 2.0 ** (self.bits - 1), 2.0 ** self.integer
        return dict(op=OP["ULAW"], m=m, m_i=m_i, in_mul=1.0 / m_i, u=float(self.u),
                    log1pu=float(np.log(np.float32(1.0 + self.u))),
                    lo=-1.0 + int(bool(self.symmetric)) / m, hi=1.0 - 1.0 / m,
                    sigmoid=_sigmoid_mode())

    _forward = quantized_tanh._forward
    _backward = quantized_tanh._backward

    def max(self):
        return max(1.0, 2.0 ** self.integer) if self.bits - 1 > 0 else 1.0

    def min(self):
        return -self.max()


# ---------------------------------------------------------------- power of two

def _need_exponent_sign_bit(who, max_value):
    if max_value is None:
        return 1
    _check_real(who, "max_value", max_value)
    if max_value < 0:
        raise ValueError(f"{who}: po2 max_value should be non-negative, got {max_value}")
    return 1 if max_value > 1 else 0


class _po2_base(BaseQuantizer):
    def _check_rounding(self):
        if self.log2_rounding not in ("rnd", "floor"):
            raise ValueError(f"{self._name}: log2_rounding must be 'rnd' or 'floor', "
                             f"got {self.log2_rounding!r}")

    def _po2_params(self, op, training):
        p = self._qnoise_params()
        p.update(op=OP[op], min_exp=self._min_exp, max_exp=self._max_exp)
        if self.max_value is not None:
            p["flags"] |= K.HAS_MAX
            p["ub"] = float(self.max_value)
        if self.quadratic_approximation:
            p["flags"] |= K.QUAD
        if self.log2_rounding == "floor":
            p["flags"] |= K.FLOOR
        else:
            self._stochastic(p, self.use_stochastic_rounding and training)
        return p

    def _str_flags(self):
        flags = [str(self.bits)]
        if self.max_value is not None or self.use_stochastic_rounding:
            flags.append(str(int(self.max_value)) if self.max_value is not None else "None")
        return flags


class quantized_po2(_po2_base):
    """Signed power-of-two quantizer: ``xq = sign(x)*2**clip(round(log2|x|), min_exp, max_exp)``
    (0 -> +2**min_exp, never 0), ``|x|`` capped at max_value first; quadratic_approximation
    rounds the exponent of sqrt(|x|) and doubles it. STE form A."""

    _name = "quantized_po2"

    def __init__(self, bits=8, max_value=None, use_stochastic_rounding=False,
                 quadratic_approximation=False, log2_rounding="rnd", qnoise_factor=1.0,
                 var_name=None, use_ste=True, use_variables=False):
        super().__init__()
        who = self._name
        self.bits = _check_int(who, "bits", bits, 2, MAX_BITS)
        if self.bits > 17:
            raise ValueError(f"{who}: bits must be <= 17 (exponents beyond float32), got {bits}")
        self.max_value = max_value
        self.use_stochastic_rounding = use_stochastic_rounding
        self.log2_rounding = log2_rounding
        self._check_rounding()
        self.quadratic_approximation = quadratic_approximation
        eff = self.bits - 1 - _need_exponent_sign_bit(who, max_value)
        self._min_exp, self._max_exp = -2 ** eff, 2 ** eff - 1
        if quadratic_approximation:
            self._max_exp = 2 * (self._max_exp // 2)
        self.update_qnoise_factor(qnoise_factor)
        self.use_ste = use_ste
        self.var_name = var_name
        self.use_variables = use_variables

    def __str__(self):
        flags = self._str_flags()
        if self.use_stochastic_rounding:
            flags.append(str(int(self.use_stochastic_rounding)))
        if self.quadratic_approximation:
            flags.append("quadratic_approximation=" + str(int(self.quadratic_approximation)))
        return "quantized_po2(" + ",".join(flags) + ")"

    def _forward(self, x, training, out):
        return K.fwd(self._name, x, self._po2_params("PO2", training), out)

    def _backward(self, x, dy, training, out):
        return K.bwd(self._name, x, dy, self._po2_params("PO2", False), out)

    def max(self):
        return max(1.0, self.max_value) if self.max_value else max(1.0, 2.0 ** self._max_exp)

    def min(self):
        return -self.max()

    def get_config(self):
        return {"bits": self.bits, "max_value": self.max_value,
                "use_stochastic_rounding": self.use_stochastic_rounding,
                "quadratic_approximation": self.quadratic_approximation,
                "qnoise_factor": self.qnoise_factor, "log2_rounding": self.log2_rounding}


class quantized_relu_po2(_po2_base):
    """Power-of-two relu: ``2**e(relu(x))`` for x >= 0 (0 and, with slope 0, negatives ->
    2**min_exp), ``-2**e(slope*|x|)`` below 0 with a negative_slope. STE form A' around the
    leaky relu capped at max_value."""

    _name = "quantized_relu_po2"

    def __init__(self, bits=8, max_value=None, negative_slope=0, use_stochastic_rounding=False,
                 quadratic_approximation=False, log2_rounding="rnd", qnoise_factor=1.0,
                 var_name=None, use_ste=True, use_variables=False):
        super().__init__()
        who = self._name
        self.bits = _check_int(who, "bits", bits, 1, MAX_BITS)
        if self.bits > 16:
            raise ValueError(f"{who}: bits must be <= 16 (exponents beyond float32), got {bits}")
        self.max_value = max_value
        _check_po2_slope(who, negative_slope)
        self.negative_slope = negative_slope
        self.use_stochastic_rounding = use_stochastic_rounding
        self.log2_rounding = log2_rounding
        self._check_rounding()
        self.quadratic_approximation = quadratic_approximation
        eff = self.bits - _need_exponent_sign_bit(who, max_value)
        self._min_exp, self._max_exp = -2 ** eff, 2 ** eff - 1
        if quadratic_approximation:
            self._max_exp = 2 * (self._max_exp // 2)
        self.update_qnoise_factor(qnoise_factor)
        self.use_ste = use_ste
        self.var_name = var_name
        self.use_variables = use_variables

    def __str__(self):
        flags = self._str_flags()
        if self.negative_slope:
            flags.append(str(self.negative_slope))
        if self.use_stochastic_rounding:
            flags.append(str(int(self.use_stochastic_rounding)))
        if self.quadratic_approximation:
            flags.append("quadratic_approximation=" + str(int(self.quadratic_approximation)))
        return "quantized_relu_po2(" + ",".join(flags) + ")"

    def _params(self, training):
        p = self._po2_params("RELU_PO2", training)
        p["slope"] = float(self.negative_slope)
        return p

    def _forward(self, x, training, out):
        return K.fwd(self._name, x, self._params(training), out)

    def _backward(self, x, dy, training, out):
        return K.bwd(self._name, x, dy, self._params(False), out)

    def max(self):
        return max(1.0, self.max_value) if self.max_value else max(1.0, 2.0 ** self._max_exp)

    def min(self):
        if self.negative_slope == 0.0:
            return 2.0 ** self._min_exp
        if self.bits - 1 > 0:
            return min(2.0 ** self._min_exp, -self.negative_slope * 2.0 ** (self.bits - 1))
        return 2.0 ** self._min_exp

    def get_config(self):
        return {"bits": self.bits, "max_value": self.max_value,
                "negative_slope": self.negative_slope,
                "use_stochastic_rounding": self.use_stochastic_rounding,
                "quadratic_approximation": self.quadratic_approximation,
                "qnoise_factor": self.qnoise_factor, "log2_rounding": self.log2_rounding}


# ---------------------------------------------------------------- binary / ternary

def _alpha_kind(alpha):
    """LS scale kind for the C code: 0 none (1.0), 1 auto, 2 auto_po2, 3 given."""
    if alpha is None:
        return 0
    if isinstance(alpha, str):
        return 2 if alpha == "auto_po2" else 1
    return 3


def _str_alpha(alpha):
    return "'" + alpha + "'" if isinstance(alpha, str) else str(alpha)


class binary(BaseQuantizer):
    """Sign quantizer: ``k = sign(x)`` with 0 -> +1 (``use_01``: (k+1)/2), output ``scale*k``.

    scale: alpha None -> 1 (and the STE surrogate is tanh(x): gradient ``1 - tanh(x)**2``);
    number/array -> alpha; "auto"/"auto_po2" -> per-channel least squares of (x, k) (rank-1
    inputs: one scale per element). use_stochastic_rounding (training): x is first stochastically
    rounded at precision 1/8 of ``2*min(max|x|, 1)`` and zeros get a random sign. STE form A.
    """

    _name = "binary"

    def __init__(self, use_01=False, alpha=None, use_stochastic_rounding=False, scale_axis=None,
                 elements_per_scale=None, min_po2_exponent=None, max_po2_exponent=None):
        super().__init__()
        self.use_01 = use_01
        self.bits = 1
        self.alpha = _check_alpha(self._name, alpha)
        self.use_stochastic_rounding = use_stochastic_rounding
        self.default_alpha = 1.0
        self.scale = None
        self.scale_axis = scale_axis
        self.elements_per_scale = elements_per_scale
        self.min_po2_exponent = _check_po2_exponent(self._name, "min_po2_exponent", min_po2_exponent)
        self.max_po2_exponent = _check_po2_exponent(self._name, "max_po2_exponent", max_po2_exponent)

    def __str__(self):
        flags = []
        if self.use_01:
            flags.append("use_01=" + str(int(self.use_01)))
        if self.alpha is not None:
            flags.append("alpha=" + _str_alpha(self.alpha))
        if self.elements_per_scale is not None:
            flags.append("elements_per_scale=" + str(self.elements_per_scale))
        if self.scale_axis is not None:
            flags.append("scale_axis=" + str(self.scale_axis))
        if self.min_po2_exponent is not None:
            flags.append("min_po2_exponent=" + str(self.min_po2_exponent))
        if self.max_po2_exponent is not None:
            flags.append("max_po2_exponent=" + str(self.max_po2_exponent))
        if self.use_stochastic_rounding:
            # QKeras prints the value as given here (True), unlike the other classes' int().
            flags.append("use_stochastic_rounding=" + str(self.use_stochastic_rounding))
        return "binary(" + ",".join(flags) + ")"

    def _flags(self):
        f = K.USE01 if self.use_01 else 0
        return f | (K.TANH_SURR if self.alpha is None else 0)

    def _auto_args(self):
        return dict(po2=int(_is_po2(self.alpha)), alpha_kind=_alpha_kind(self.alpha),
                    has_min_exp=int(self.min_po2_exponent is not None),
                    has_max_exp=int(self.max_po2_exponent is not None),
                    min_po2_exp=self.min_po2_exponent or 0, max_po2_exp=self.max_po2_exponent or 0)

    def _forward(self, x, training, out):
        sr = bool(self.use_stochastic_rounding) and training
        if isinstance(self.alpha, str) or sr:
            lay = K.channel_layout(self._name, x.shape, self.scale_axis, self.elements_per_scale)
            p = dict(op=OP["SIGN"], flags=self._flags())
            self._stochastic(p, sr)
            a = self._auto_args()
            a["global_init"] = int(x.ndim <= 1 and self.scale_axis is None)
            scale_in = None
            if not isinstance(self.alpha, str):
                scale_in = np.ascontiguousarray(np.broadcast_to(
                    np.asarray(1.0 if self.alpha is None else self.alpha, F32).reshape(-1)
                    if np.ndim(self.alpha) <= 1 else np.asarray(self.alpha, F32),
                    (lay.S,)) if np.size(self.alpha if self.alpha is not None else 1) in (1, lay.S)
                    else lay.channel_vector(self.alpha))
            if x.size == 0:
                return x.copy()
            y, s = K._core.quant_auto(self._name, "binary", lay.to_kernel(x), p, a, lay.outer,
                                      lay.S, lay.inner, lay.group,
                                      out if lay.perm is None else None, scale_in)
            self.scale = (lay.scale_array(s) if isinstance(self.alpha, str)
                          else (self.default_alpha if self.alpha is None else self.alpha))
            return lay.from_kernel(y)
        self.scale = self.default_alpha if self.alpha is None else self.alpha
        if isinstance(self.alpha, np.ndarray) and self.alpha.size > 1:
            sc, inner = K.broadcast_scale(self._name, "alpha", x, self.alpha)
        else:
            sc, inner = K.scalar_scale(x, float(np.asarray(self.scale).reshape(-1)[0]))
        return K.fwd(self._name, x, dict(op=OP["SIGN"], flags=self._flags()), out, sc, None, inner)

    def _backward(self, x, dy, training, out):
        return K.bwd(self._name, x, dy, dict(op=OP["SIGN"], flags=self._flags()), out)

    def _fused_spec(self, x, training):
        if (type(self)._forward is not binary._forward or isinstance(self.alpha, str)
                or (self.use_stochastic_rounding and training) or x.size == 0):
            return None
        self.scale = self.default_alpha if self.alpha is None else self.alpha
        if isinstance(self.alpha, np.ndarray) and self.alpha.size > 1:
            sc, inner = K.broadcast_scale(self._name, "alpha", x, self.alpha)
        else:
            sc, inner = K.scalar_scale(x, float(np.asarray(self.scale).reshape(-1)[0]))
        p = dict(op=OP["SIGN"], flags=self._flags())
        return p, sc, None, inner, dict(p), None, 1

    def _set_trainable_parameter(self):
        if self.alpha is None:
            self.alpha = "auto_po2"

    def max(self):
        if self.alpha is None or isinstance(self.alpha, str):
            return 1.0
        return max(1.0, self.alpha)

    def min(self):
        if self.use_01:
            return 0.0
        if self.alpha is None or isinstance(self.alpha, str):
            return -1.0
        return -max(1.0, self.alpha)

    def get_config(self):
        alpha = self.alpha.tolist() if isinstance(self.alpha, np.ndarray) else self.alpha
        return {"use_01": self.use_01, "alpha": alpha,
                "use_stochastic_rounding": self.use_stochastic_rounding}


class stochastic_binary(binary):
    """Stochastic sign: while training ``q = +1 if sigmoid(T*x/std) >= u else -1`` (u uniform;
    std per channel for string alphas, else 1), output ``scale*q`` with the least-squares scale
    of the deterministic sign. Inference: :class:`binary`. STE form A."""

    _name = "stochastic_binary"

    def __init__(self, alpha=None, temperature=6.0, use_real_sigmoid=True):
        super().__init__(alpha=alpha)
        self.temperature = _check_real(self._name, "temperature", temperature)
        self.use_real_sigmoid = use_real_sigmoid

    def __str__(self):
        flags = []
        if self.alpha is not None:
            flags.append("alpha=" + _str_alpha(self.alpha))
        if self.temperature != 6.0:
            flags.append("temperature=" + str(self.temperature))
        if not self.use_real_sigmoid:
            flags.append("use_real_sigmoid=" + str(int(self.use_real_sigmoid)))
        return "stochastic_binary(" + ",".join(flags) + ")"

    def _sample(self, x, out, use01):
        lay = K.channel_layout(self._name, x.shape)
        p = dict(op=OP["STOCH_SIGN"], flags=K.USE01 if use01 else 0,
                 temperature=float(self.temperature),
                 sigmoid=2 if self.use_real_sigmoid else _sigmoid_mode())
        p["key"] = self._last_key = backend.next_random_key()
        a = dict(po2=int(_is_po2(self.alpha)), alpha_kind=_alpha_kind(self.alpha),
                 global_init=int(x.ndim <= 1))
        scale_in = None
        if a["alpha_kind"] == 3:
            scale_in = np.ascontiguousarray(np.broadcast_to(
                np.asarray(self.alpha, F32).reshape(-1), (lay.S,)))
        if x.size == 0:
            return x.copy()
        y, s = K._core.quant_auto(self._name, "stochastic", x, p, a, lay.outer, lay.S, lay.inner,
                                  lay.group, out, scale_in)
        self.scale = lay.scale_array(s) if isinstance(self.alpha, str) else (
            1.0 if self.alpha is None else self.alpha)
        return y

    def _forward(self, x, training, out):
        if training:
            return self._sample(x, out, False)
        return binary._forward(self, x, training, out)

    def _backward(self, x, dy, training, out):
        if training:
            return K.bwd(self._name, x, dy, dict(op=OP["SIGN"]), out)
        return binary._backward(self, x, dy, training, out)

    def get_config(self):
        return {"alpha": self.alpha, "temperature": self.temperature,
                "use_real_sigmoid": self.use_real_sigmoid}


class bernoulli(BaseQuantizer):
    """Bernoulli sample (always stochastic): ``q = 1 if sigmoid(T*x/std) >= u else 0``, output
    ``scale*q`` with the least-squares scale of the step function (alpha None -> 1). STE form A."""

    _name = "bernoulli"

    def __init__(self, alpha=None, temperature=6.0, use_real_sigmoid=True):
        super().__init__()
        self.alpha = _check_alpha(self._name, alpha)
        self.bits = 1
        self.temperature = _check_real(self._name, "temperature", temperature)
        self.use_real_sigmoid = use_real_sigmoid
        self.default_alpha = 1.0
        self.scale = None

    def __str__(self):
        flags = []
        if self.alpha is not None:
            flags.append("alpha=" + _str_alpha(self.alpha))
        if self.temperature != 6.0:
            flags.append("temperature=" + str(self.temperature))
        if not self.use_real_sigmoid:
            flags.append("use_real_sigmoid=" + str(int(self.use_real_sigmoid)))
        return "bernoulli(" + ",".join(flags) + ")"

    def _forward(self, x, training, out):
        return stochastic_binary._sample(self, x, out, True)

    def _backward(self, x, dy, training, out):
        return K.bwd(self._name, x, dy, dict(op=OP["SIGN"]), out)

    def _set_trainable_parameter(self):
        if self.alpha is None:
            self.alpha = "auto_po2"

    def max(self):
        if self.alpha is None or isinstance(self.alpha, str):
            return 1.0
        return max(1.0, self.alpha)

    def min(self):
        return 0.0

    def get_config(self):
        return {"alpha": self.alpha}


class ternary(BaseQuantizer):
    """Ternary quantizer: ``q = sign(x)*[|x| >= threshold]`` (threshold 0.33 by default),
    output ``scale*q``. alpha None: scale 1 and STE surrogate tanh(x); number/array: alpha;
    "auto"/"auto_po2" (weights; threshold must be None): per channel ``s = 2*max|x|/3``, then
    ``number_of_unrolls`` times ``q = sign(x)*[round(|x|/s) >= 1]``, ``s = LS(x, q)``. STE form A.
    """

    _name = "ternary"

    def __init__(self, alpha=None, threshold=None, use_stochastic_rounding=False,
                 number_of_unrolls=5):
        super().__init__()
        self.bits = 2
        self.alpha = _check_alpha(self._name, alpha)
        self.threshold = _check_real(self._name, "threshold", threshold, True)
        self.use_stochastic_rounding = use_stochastic_rounding
        self.default_alpha = 1.0
        self.default_threshold = 0.33
        self.number_of_unrolls = _check_int(self._name, "number_of_unrolls", number_of_unrolls, 1)
        self.scale = None

    def __str__(self):
        flags = []
        if self.alpha is not None:
            flags.append("alpha=" + _str_alpha(self.alpha))
        if self.threshold is not None:
            flags.append("threshold=" + str(self.threshold))
        if self.use_stochastic_rounding:
            flags.append("use_stochastic_rounding=" + str(int(self.use_stochastic_rounding)))
        if self.number_of_unrolls != 5:
            flags.append("number_of_unrolls=" + str(int(self.number_of_unrolls)))
        return "ternary(" + ",".join(flags) + ")"

    def _flags(self):
        return K.TANH_SURR if self.alpha is None else 0

    def _forward(self, x, training, out):
        who = self._name
        if isinstance(self.alpha, str):
            if self.threshold is not None:
                raise ValueError(f"{who}: threshold must be None with alpha={self.alpha!r} "
                                 f"(the threshold comes from the scale), got {self.threshold}")
            lay = K.channel_layout(who, x.shape)
            p = dict(op=OP["TERNARY"])
            self._stochastic(p, self.use_stochastic_rounding and training)
            a = dict(po2=int(_is_po2(self.alpha)), iterations=self.number_of_unrolls,
                     global_init=int(x.ndim <= 1))
            if x.size == 0:
                return x.copy()
            y, s = K._core.quant_auto(who, "ternary", x, p, a, lay.outer, lay.S, lay.inner,
                                      lay.group, out)
            self.scale = lay.scale_array(s)
            return y
        if self.use_stochastic_rounding:
            raise ValueError(f"{who}: use_stochastic_rounding needs alpha 'auto' or 'auto_po2', "
                             f"got alpha={self.alpha!r}")
        thr = self.default_threshold if self.threshold is None else self.threshold
        self.scale = self.default_alpha if self.alpha is None else self.alpha
        if isinstance(self.alpha, np.ndarray) and self.alpha.size > 1:
            sc, inner = K.broadcast_scale(who, "alpha", x, self.alpha)
        else:
            sc, inner = K.scalar_scale(x, float(np.asarray(self.scale).reshape(-1)[0]))
        p = dict(op=OP["TERNARY"], thr=float(thr), flags=self._flags())
        return K.fwd(who, x, p, out, sc, None, inner)

    def _backward(self, x, dy, training, out):
        return K.bwd(self._name, x, dy, dict(op=OP["TERNARY"], flags=self._flags()), out)

    def _fused_spec(self, x, training):
        if (type(self)._forward is not ternary._forward or isinstance(self.alpha, str)
                or self.use_stochastic_rounding or x.size == 0):
            return None
        thr = self.default_threshold if self.threshold is None else self.threshold
        self.scale = self.default_alpha if self.alpha is None else self.alpha
        if isinstance(self.alpha, np.ndarray) and self.alpha.size > 1:
            sc, inner = K.broadcast_scale(self._name, "alpha", x, self.alpha)
        else:
            sc, inner = K.scalar_scale(x, float(np.asarray(self.scale).reshape(-1)[0]))
        pf = dict(op=OP["TERNARY"], thr=float(thr), flags=self._flags())
        return pf, sc, None, inner, dict(op=OP["TERNARY"], flags=self._flags()), None, 1

    def _set_trainable_parameter(self):
        if self.alpha is None:
            self.alpha = "auto_po2"

    def max(self):
        if self.alpha is None or isinstance(self.alpha, str):
            return 1.0
        return max(1.0, self.alpha)

    def min(self):
        if self.alpha is None or isinstance(self.alpha, str):
            return -1.0
        return -max(1.0, self.alpha)

    def get_config(self):
        alpha = self.alpha.tolist() if isinstance(self.alpha, np.ndarray) else self.alpha
        return {"alpha": alpha, "threshold": self.threshold,
                "use_stochastic_rounding": self.use_stochastic_rounding,
                "number_of_unrolls": self.number_of_unrolls}


class stochastic_ternary(ternary):
    """Stochastic ternary (training; needs alpha "auto"/"auto_po2"): scale as :class:`ternary`
    with the threshold rule ``|x| >= s/2``; ``xn = x/(std+eps)``, ``T = s/(2(std+eps))``,
    ``q0, q1 = ±1`` by ``sigmoid(temp*(xn ∓ T)) >= u``, ``q = (q0+q1)/2``, output ``s*q``.
    Inference: :class:`ternary`. STE form A."""

    _name = "stochastic_ternary"

    def __init__(self, alpha=None, threshold=None, temperature=8.0, use_real_sigmoid=True,
                 number_of_unrolls=5):
        super().__init__(alpha=alpha, threshold=threshold, number_of_unrolls=number_of_unrolls)
        if threshold == 1.0:
            raise ValueError(f"{self._name}: threshold must not be 1.0")
        self.temperature = _check_real(self._name, "temperature", temperature)
        self.use_real_sigmoid = use_real_sigmoid

    def __str__(self):
        flags = []
        if self.alpha is not None:
            flags.append("alpha=" + _str_alpha(self.alpha))
        if self.threshold is not None:
            flags.append("threshold=" + str(self.threshold))
        if self.temperature != 8.0:
            flags.append("temperature=" + str(self.temperature))
        if not self.use_real_sigmoid:
            flags.append("use_real_sigmoid=0")
        if self.number_of_unrolls != 5:
            flags.append("number_of_unrolls=" + str(self.number_of_unrolls))
        return "stochastic_ternary(" + ",".join(flags) + ")"

    def _forward(self, x, training, out):
        if not training:
            return ternary._forward(self, x, training, out)
        who = self._name
        if not isinstance(self.alpha, str):
            raise ValueError(f"{who}: training needs alpha 'auto' or 'auto_po2', "
                             f"got alpha={self.alpha!r}")
        lay = K.channel_layout(who, x.shape)
        p = dict(op=OP["STOCH_TERNARY"], temperature=float(self.temperature),
                 sigmoid=2 if self.use_real_sigmoid else _sigmoid_mode())
        p["key"] = self._last_key = backend.next_random_key()
        a = dict(po2=int(_is_po2(self.alpha)), alpha_kind=_alpha_kind(self.alpha),
                 iterations=self.number_of_unrolls, global_init=int(x.ndim <= 1))
        if x.size == 0:
            return x.copy()
        y, s = K._core.quant_auto(who, "stochastic", x, p, a, lay.outer, lay.S, lay.inner,
                                  lay.group, out)
        self.scale = lay.scale_array(s)
        return y

    def _backward(self, x, dy, training, out):
        if training:
            return K.bwd(self._name, x, dy, dict(op=OP["SIGN"]), out)
        return ternary._backward(self, x, dy, training, out)

    def get_config(self):
        return {"alpha": self.alpha, "threshold": self.threshold,
                "temperature": self.temperature, "use_real_sigmoid": self.use_real_sigmoid,
                "number_of_unrolls": self.number_of_unrolls}


# ---------------------------------------------------------------- plain functions

class _QFunction:
    """A QKeras activation function with a C forward and its STE gradient."""

    def __init__(self, name, op, tanh, doc):
        self.__name__ = self._name = name
        self.__doc__ = doc
        self._params = dict(op=OP[op], m=2.0 if tanh else 1.0)

    def __call__(self, x):
        return K.fwd(self._name, K.as_input(self._name, x), self._params)

    def gradient(self, x, dy):
        """dL/dx (rounding inside binary_* counts as identity: STE form B)."""
        x = K.as_input(self._name, x)
        dy = K.as_input(self._name, dy, "dy")
        if dy.shape != x.shape:
            raise ValueError(f"{self._name}: dy must have the shape of x {x.shape}, got {dy.shape}")
        return K.bwd(self._name, x, dy, self._params)

    def __repr__(self):
        return f"<function {self._name}>"


hard_sigmoid = _QFunction("hard_sigmoid", "HARD_SIGMOID", False,
                          "clip(0.5*x + 0.5, 0, 1); gradient 0.5 on [-1, 1].")
smooth_sigmoid = _QFunction("smooth_sigmoid", "SMOOTH_SIGMOID", False,
                            "clip(0.1875*x + 0.5, 0, 1); gradient 0.1875 where not clipped.")
binary_sigmoid = _QFunction("binary_sigmoid", "BINARY_SIGMOID", False,
                            "round(hard_sigmoid(x)) in {0, 1} (1 iff x > 0); STE: hard_sigmoid's gradient.")
hard_tanh = _QFunction("hard_tanh", "HARD_SIGMOID", True,
                       "2*hard_sigmoid(x) - 1 = clip(x, -1, 1); gradient 1 on [-1, 1].")
smooth_tanh = _QFunction("smooth_tanh", "SMOOTH_SIGMOID", True,
                         "2*smooth_sigmoid(x) - 1; gradient 0.375 where not clipped.")
binary_tanh = _QFunction("binary_tanh", "BINARY_SIGMOID", True,
                         "2*binary_sigmoid(x) - 1 in {-1, +1}; binary_tanh(0) = -1 (half-to-even).")

_QUANTIZER_CLASSES = {c.__name__: c for c in (
    quantized_linear, quantized_bits, bernoulli, ternary, stochastic_ternary, binary,
    stochastic_binary, quantized_relu, quantized_ulaw, quantized_tanh, quantized_sigmoid,
    quantized_po2, quantized_relu_po2, quantized_hswish)}
_FUNCTIONS = {f.__name__: f for f in (hard_sigmoid, smooth_sigmoid, binary_sigmoid, binary_tanh,
                                      hard_tanh, smooth_tanh)}


def lookup_quantizer(name):
    """The registered quantizer class called `name` (QKeras's quantizer_registry)."""
    try:
        return _QUANTIZER_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown quantizer {name!r}") from None


def get_quantizer(identifier):
    """Resolve a quantizer: None, an object or callable (returned as is), a config dict
    ``{"class_name": ..., "config": {...}}``, or a string such as ``"quantized_relu(3)"``
    (parsed by a small grammar, never ``eval``). Names not among the quantizers fall back to
    the activations (``"relu"``, ``"softmax"``, ...)."""
    from . import activations
    from .quantizer_strings import close_names, parse_quantizer_string

    if identifier is None:
        return None
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        config = identifier.get("config", {})
        if not isinstance(name, str) or not isinstance(config, dict):
            raise ValueError("get_quantizer: a dict identifier needs 'class_name' (str) and "
                             f"'config' (dict), got {identifier!r}")
        return _instantiate(name, (), config, close_names, from_config=True)
    if isinstance(identifier, str):
        call = parse_quantizer_string(identifier)
        if call.name in _QUANTIZER_CLASSES:
            return _instantiate(call.name, call.args, call.kwargs, close_names)
        if call.name in _FUNCTIONS:
            if call.args or call.kwargs:
                raise TypeError(f"get_quantizer: {call.name} takes no arguments in a quantizer "
                                f"string, got {identifier!r}")
            return _FUNCTIONS[call.name]
        act = activations.lookup(call.name)
        if act is not None:
            return act
        valid = list(_QUANTIZER_CLASSES) + list(_FUNCTIONS) + activations.names()
        hint = close_names(call.name, valid)
        raise ValueError(f"get_quantizer: unknown quantizer {call.name!r}"
                         + (f"; did you mean {', '.join(hint)}?" if hint else "")
                         + f" (valid: {', '.join(sorted(valid))})")
    if isinstance(identifier, BaseQuantizer) or callable(identifier):
        return identifier
    raise QuantizerIdentifierError(
        f"get_quantizer: could not interpret quantizer identifier {identifier!r} (type "
        f"{type(identifier).__name__}); expected None, a str, a config dict, a quantizer or a "
        f"callable")


class QuantizerIdentifierError(ValueError, TypeError):
    """An identifier get_quantizer cannot interpret. QKeras raises ValueError ("Could not
    interpret quantizer identifier"); it is also a TypeError because the type is what is wrong."""


def _instantiate(name, args, kwargs, close_names, from_config=False):
    cls = _QUANTIZER_CLASSES.get(name)
    if cls is None:
        hint = close_names(name, list(_QUANTIZER_CLASSES))
        raise ValueError(f"get_quantizer: unknown quantizer class {name!r}"
                         + (f"; did you mean {', '.join(hint)}?" if hint else ""))
    if from_config:
        try:
            return cls.from_config(kwargs)
        except TypeError as e:
            raise TypeError(f"get_quantizer: bad config for {name}: {e}") from None
    try:
        inspect.signature(cls.__init__).bind(None, *args, **kwargs)
    except TypeError as e:
        raise TypeError(f"get_quantizer: bad arguments for {name}: {e}") from None
    return cls(*args, **kwargs)
