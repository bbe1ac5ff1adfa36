"""Pooling layers (NHWC). QAveragePooling2D / QGlobalAveragePooling2D quantize the 1/area
factor as QKeras does: ``y = avg(x*A) * Q(1/A)`` and ``y = sum_HW(x) * Q(1/(H*W))``."""
import numpy as np

from .. import _core
from ..quantizers import get_quantizer
from .base import Layer, _shape_str
from .conv import _tuple, conv_out, same_padding
from .quant_utils import act_config, act_forward, serialize

F32 = np.float32


class _Pool2D(Layer):
    kind = "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{who}: only data_format='channels_last' is supported, got {data_format!r}")
        self.pool_size = _tuple(pool_size, 2, "pool_size", who)
        self.strides = _tuple(strides, 2, "strides", who) if strides is not None else self.pool_size
        padding = padding.lower() if isinstance(padding, str) else padding
        if padding not in ("valid", "same"):
            raise ValueError(f"{who}: padding must be 'valid' or 'same', got {padding!r}")
        self.padding = padding

    def _pads(self, h, w):
        if self.padding == "valid":
            return (0, 0, 0, 0)
        return same_padding(h, self.pool_size[0], self.strides[0], 1) + same_padding(
            w, self.pool_size[1], self.strides[1], 1)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} '{self.name}': input must have 4 dims "
                             f"(batch, height, width, channels), got shape {_shape_str(input_shape)}")
        h, w = input_shape[1:3]
        if h is None or w is None:
            return (input_shape[0], None, None, input_shape[3])
        t, b, l, r = self._pads(h, w)
        oh = conv_out(h, self.pool_size[0], self.strides[0], 1, t, b)
        ow = conv_out(w, self.pool_size[1], self.strides[1], 1, l, r)
        if oh < 1 or ow < 1:
            raise ValueError(f"{type(self).__name__} '{self.name}': input {_shape_str(input_shape)} is "
                             f"smaller than pool_size {self.pool_size}")
        return (input_shape[0], oh, ow, input_shape[3])

    def call(self, x, training=False):
        self.compute_output_shape((None,) + x.shape[1:])
        pads = self._pads(x.shape[1], x.shape[2])
        self._cache = (x, pads)
        return _core.pool2d_forward(self.name, self.kind, x, self.pool_size, self.strides, pads)

    def backward(self, grad):
        self.grads = []
        x, pads = self._cache
        return _core.pool2d_backward(self.name, self.kind, x, grad, self.pool_size, self.strides, pads)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=list(self.pool_size), strides=list(self.strides),
                      padding=self.padding, data_format="channels_last")
        return config


class MaxPooling2D(_Pool2D):
    kind = "max"


class AveragePooling2D(_Pool2D):
    kind = "avg"


class QAveragePooling2D(AveragePooling2D):
    """``y = activation(avg(x*A) * Q(1/A))``, A = pool area (QKeras)."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 average_quantizer=None, activation=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)
        self.average_quantizer = average_quantizer
        self.average_quantizer_internal = get_quantizer(average_quantizer)
        self._activation_config = activation
        self.activation = get_quantizer(activation)

    def _factor(self, area, training):
        q = self.average_quantizer_internal
        if q is None:
            return None
        return float(np.asarray(q(np.array([1.0 / area], F32), training=training)).reshape(-1)[0])

    def call(self, x, training=False):
        area = self.pool_size[0] * self.pool_size[1]
        f = self._factor(area, training)
        z = super().call(x if f is None else (x * F32(area)).astype(F32), training)
        if f is not None:
            z = (z * F32(f)).astype(F32)
        self._f, self._area = f, area
        y, self._act_cache = act_forward(self.activation, z, training)
        return y

    def backward(self, grad):
        dz = self._act_grad(self.activation, self._act_cache, grad)
        if self._f is None:
            return super().backward(dz)
        dx = super().backward((dz * F32(self._f)).astype(F32))
        return (dx * F32(self._area)).astype(F32)

    def get_quantizers(self):
        return [self.average_quantizer_internal]

    def get_config(self):
        config = super().get_config()
        config.update(average_quantizer=serialize(self.average_quantizer_internal),
                      activation=act_config(self._activation_config))
        return config


class GlobalAveragePooling2D(Layer):
    kind = "avg"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{type(self).__name__}: only channels_last is supported, got {data_format!r}")
        self.keepdims = keepdims

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} '{self.name}': input must have 4 dims "
                             f"(batch, height, width, channels), got shape {_shape_str(input_shape)}")
        return (input_shape[0], 1, 1, input_shape[3]) if self.keepdims else (input_shape[0], input_shape[3])

    def call(self, x, training=False):
        self.compute_output_shape((None,) + x.shape[1:])
        self._x = x
        y = _core.global_pool2d_forward(self.name, self.kind, x)
        return y.reshape(x.shape[0], 1, 1, x.shape[3]) if self.keepdims else y

    def backward(self, grad):
        self.grads = []
        return _core.global_pool2d_backward(self.name, self.kind, self._x,
                                            np.ascontiguousarray(grad.reshape(grad.shape[0], -1)))

    def get_config(self):
        config = super().get_config()
        config.update(data_format="channels_last", keepdims=self.keepdims)
        return config


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    kind = "max"


class QGlobalAveragePooling2D(GlobalAveragePooling2D):
    """``y = activation(sum_HW(x) * Q(1/(H*W)))`` (QKeras)."""

    def __init__(self, data_format=None, average_quantizer=None, activation=None, keepdims=False,
                 **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
        self.average_quantizer = average_quantizer
        self.average_quantizer_internal = get_quantizer(average_quantizer)
        self._activation_config = activation
        self.activation = get_quantizer(activation)

    def call(self, x, training=False):
        q = self.average_quantizer_internal
        area = x.shape[1] * x.shape[2]
        z = super().call(x, training)
        if q is not None:
            f = float(np.asarray(q(np.array([1.0 / area], F32), training=training)).reshape(-1)[0])
            z = (z * F32(area * f)).astype(F32)  # mean * A * Q(1/A) = sum * Q(1/A)
            self._scale = F32(area * f)
        else:
            self._scale = None
        y, self._act_cache = act_forward(self.activation, z, training)
        return y

    def backward(self, grad):
        dz = self._act_grad(self.activation, self._act_cache, grad)
        if self._scale is not None:
            dz = (dz * self._scale).astype(F32)
        return super().backward(dz)

    def get_quantizers(self):
        return [self.average_quantizer_internal]

    def get_config(self):
        config = super().get_config()
        config.update(average_quantizer=serialize(self.average_quantizer_internal),
                      activation=act_config(self._activation_config))
        return config
