"""QKeras's QAdaptiveActivation: a quantized activation whose integer bits follow exponential
moving averages of the activation's min and max.

    qnoise  = 1 if step >= quantization_delay (or not training) else 0
    y       = Q_I(x) with qnoise   (Q = quantized_bits(total_bits, I, symmetric, alpha=1) or
                                    quantized_relu(total_bits, I, negative_slope, relu_upper_bound,
                                    is_quantized_clip=False))
    ema_min = ema_min*decay + min(a)*(1-decay), ema_max likewise, a = Q_I(x) with qnoise 0
              (the activation before quantization), while training and step <= ema_freeze_delay
    I       = _get_integer_bits(ema_min, ema_max, total_bits, symmetric, keep_negative,
                                po2_rounding)  (per channel with per_channel; used next call)

The gradient is the quantizer's STE at the qnoise of the forward pass. ``step`` counts training
calls from -1 when ``current_step`` is None; an int starts a counter that does not advance (as
QKeras, which then warns that the layer is disconnected from the optimizer); a
:class:`qnn_ext.variables.Variable` is read, never written (share one to drive several layers).

Differences from QKeras, on purpose: ema_min, ema_max and the own step counter are ordinary
non-trainable weights (QKeras hides them, so a saved model forgets them and predicts differently
after loading), the moving averages update only in training calls (QKeras also updates them at
inference before the freeze step), and ``relu_upper_bound`` is kept in the config.
"""
import numpy as np

from ..quantizers import _get_integer_bits, quantized_bits, quantized_relu
from ..variables import Variable
from .base import Layer, _shape_str

F32 = np.float32
_SUPPORTED = ("quantized_bits", "quantized_relu")


class QAdaptiveActivation(Layer):
    def __init__(self, activation, total_bits, current_step=None, symmetric=True,
                 quantization_delay=0, ema_freeze_delay=None, ema_decay=0.9999, per_channel=False,
                 po2_rounding=False, relu_neg_slope=0.0, relu_upper_bound=None, **kwargs):
        super().__init__(**kwargs)
        who = f"QAdaptiveActivation '{self.name}'"
        if activation not in _SUPPORTED:
            raise ValueError(f"{who}: activation must be one of {_SUPPORTED} with no parameters "
                             f"(this layer sets them), got {activation!r}")
        if isinstance(total_bits, bool) or not isinstance(total_bits, (int, np.integer)) or total_bits < 1:
            raise ValueError(f"{who}: total_bits must be a positive int, got {total_bits!r}")
        if not 0.0 <= float(ema_decay) <= 1.0:
            raise ValueError(f"{who}: ema_decay must be in [0, 1], got {ema_decay!r}")
        for arg, v in (("quantization_delay", quantization_delay),
                       ("ema_freeze_delay", ema_freeze_delay), ("current_step", current_step)):
            if v is None or isinstance(v, Variable):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or abs(v) > 2 ** 24:
                # steps live in a float32 weight: exact up to 2**24
                raise ValueError(f"{who}: {arg} must be an int within +-2**24, got {v!r}")
        self.total_bits = int(total_bits)
        self.symmetric = symmetric
        self.quantization_delay = int(quantization_delay)
        self.ema_freeze_delay = None if ema_freeze_delay is None else int(ema_freeze_delay)
        self.ema_decay = float(ema_decay)
        self.per_channel = bool(per_channel)
        self.po2_rounding = bool(po2_rounding)
        self.relu_neg_slope = relu_neg_slope
        self.relu_upper_bound = relu_upper_bound
        if activation == "quantized_relu":
            self.quantizer = quantized_relu(self.total_bits, 0, negative_slope=relu_neg_slope,
                                            relu_upper_bound=relu_upper_bound or None,
                                            is_quantized_clip=False)
            self.quantizer.symmetric = symmetric
            self.keep_negative = relu_neg_slope != 0.0
        else:
            self.quantizer = quantized_bits(self.total_bits, 0, symmetric, keep_negative=True,
                                            alpha=1.0)
            self.keep_negative = True
        self.activation = self.quantizer  # what print_qstats / QTools read
        self._external_step = current_step if isinstance(current_step, Variable) else None
        self._counting = current_step is None
        self._step_start = -1 if current_step is None or self._external_step is not None else int(current_step)

    def build(self, input_shape):
        channels = input_shape[-1] if self.per_channel else 1
        if channels is None:
            raise ValueError(f"QAdaptiveActivation '{self.name}': per_channel needs a known channel "
                             f"dimension, got {_shape_str(input_shape)}")
        self.ema_min = self.add_weight("ema_min", (channels,), "zeros", trainable=False)
        self.ema_max = self.add_weight("ema_max", (channels,), "zeros", trainable=False)
        self.step = (self._external_step if self._external_step is not None
                     else self.add_weight("step", (1,), "zeros", trainable=False))
        if self._external_step is None:
            self.step.value[...] = self._step_start
        self.integer_bits = self._integer_bits()

    @property
    def current_step(self):
        return int(np.asarray(self.step.value).reshape(-1)[0])

    def _integer_bits(self):
        bits = _get_integer_bits(self.ema_min.value, self.ema_max.value, self.total_bits,
                                 self.symmetric, self.keep_negative, self.po2_rounding)
        return np.asarray(bits, dtype=np.int64).reshape(-1)

    def _apply(self, fn, x, integer):
        """fn(x) with the quantizer's integer bits set per channel group (one call per distinct
        value: the quantizers take one integer, and a power-of-two rescale is not the same
        thing for 1-bit quantizers)."""
        q = self.quantizer
        if integer.size == 1:
            q.integer = int(integer[0])
            return np.asarray(fn(x), dtype=F32)
        out = np.empty_like(x)
        for v in np.unique(integer):
            cols = np.flatnonzero(integer == v)
            q.integer = int(v)
            out[..., cols] = fn(np.ascontiguousarray(x[..., cols]))
        return out

    def call(self, x, training=False):
        training = bool(training) and self.trainable
        if training and self._counting:
            self.step.value[...] += 1
        q = self.quantizer
        # from the current averages (QKeras sets them at the end of the previous call; this
        # also covers averages restored by set_weights or a loaded file)
        integer = self._integer_bits()
        qnoise = 1.0 if (not training or self.current_step >= self.quantization_delay) else 0.0
        q.update_qnoise_factor(qnoise)
        y = self._apply(lambda a: q(a, training=training), x, integer)
        self._cache = (x, integer, qnoise, training)
        frozen = self.ema_freeze_delay is not None and self.current_step > self.ema_freeze_delay
        if training and not frozen:
            q.update_qnoise_factor(0.0)
            act = self._apply(lambda a: q(a, training=training), x, integer)
            q.update_qnoise_factor(qnoise)
            axes = tuple(range(x.ndim - 1)) if (self.per_channel and x.ndim > 1) else None
            lo = np.min(act, axis=axes).reshape(-1)
            hi = np.max(act, axis=axes).reshape(-1)
            d = F32(self.ema_decay)
            self.ema_min.value[...] = self.ema_min.value * d + lo * (F32(1) - d)
            self.ema_max.value[...] = self.ema_max.value * d + hi * (F32(1) - d)
        self.integer_bits = self._integer_bits()
        q.integer = int(self.integer_bits[0]) if self.integer_bits.size == 1 else q.integer
        return y

    def backward(self, grad):
        self.grads = []
        x, integer, qnoise, training = self._cache
        q = self.quantizer
        keep = q.qnoise_factor
        q.update_qnoise_factor(qnoise)
        try:
            dx = np.empty_like(x)
            if integer.size == 1:
                q.integer = int(integer[0])
                dx = q.gradient(x, np.ascontiguousarray(grad, F32), training=training)
            else:
                for v in np.unique(integer):
                    cols = np.flatnonzero(integer == v)
                    q.integer = int(v)
                    dx[..., cols] = q.gradient(np.ascontiguousarray(x[..., cols]),
                                               np.ascontiguousarray(grad[..., cols], F32),
                                               training=training)
        finally:
            q.update_qnoise_factor(keep)
        return np.asarray(dx, F32)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_quantizers(self):
        return [self.quantizer]

    def get_quantization_config(self):
        return str(self.quantizer)

    def get_config(self):
        config = super().get_config()
        config.update(activation=type(self.quantizer).__name__, total_bits=self.total_bits,
                      current_step=None if self._counting else
                      (self.current_step if self.built else self._step_start),
                      symmetric=self.symmetric, quantization_delay=self.quantization_delay,
                      ema_freeze_delay=self.ema_freeze_delay, ema_decay=self.ema_decay,
                      per_channel=self.per_channel, po2_rounding=self.po2_rounding,
                      relu_neg_slope=self.relu_neg_slope, relu_upper_bound=self.relu_upper_bound)
        return config
