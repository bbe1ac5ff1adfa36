"""Dense, activation and shape layers. The Keras float layers are the Q-layers without
quantizers: one code path (QKeras semantics, quantizers.md §4)."""
import numpy as np

from .. import _core, backend
from .base import F32, Layer, _shape_str, positive_int
from .quant_utils import (QuantizedWeightsMixin, act_config, act_forward, act_after_epilogue,
                          resolve_activation)


class Dense(QuantizedWeightsMixin, Layer):
    """``y = act(x @ Qk(kernel) + Qb(bias))`` over the last axis; kernel (in, units)."""

    _default_kernel_initializer = "glorot_uniform"

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer=None,
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 kernel_quantizer=None, bias_quantizer=None, kernel_range=None, bias_range=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(f"{type(self).__name__} '{self.name}'", "units", units)
        self._init_output(activation, use_bias, activity_regularizer)
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer
        self._init_quantizers(kernel_quantizer=kernel_quantizer, bias_quantizer=bias_quantizer,
                              kernel_initializer=kernel_initializer or self._default_kernel_initializer,
                              bias_initializer=bias_initializer, kernel_constraint=kernel_constraint,
                              bias_constraint=bias_constraint, kernel_range=kernel_range,
                              bias_range=bias_range)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': input needs a known last "
                             f"dimension, got shape {_shape_str(input_shape)}")
        self.kernel = self._add_quantized_weight("kernel", (input_shape[-1], self.units))
        self.bias = self._add_quantized_weight("bias", (self.units,)) if self.use_bias else None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def _epilogue_shape(self, x_shape):
        return (int(np.prod(x_shape[:-1])), self.units)

    def call(self, x, training=False):
        kq = self._quantize("kernel", training)
        x2 = x.reshape(-1, x.shape[-1])
        # bias and the activation run in the GEMM epilogue, on each block of z while in cache
        act, fused, ekw = self._epilogue((x2.shape[0], self.units), training)
        bias = self._quantize("bias", training) if self.use_bias else None
        z = _core.gemm(self.name, x2, kq, bias=bias, workspace=self._workspace, **ekw)
        y, self._act_cache = act_after_epilogue(act, fused, z, training, self.name)
        self._x2, self._kq, self._xshape = x2, kq, x.shape
        return y.reshape(x.shape[:-1] + (self.units,))

    def backward(self, grad):
        dz = self._out_grad(grad.reshape(-1, self.units))
        dkq = _core.gemm(self.name, self._x2, dz, trans_a=True, workspace=self._workspace)
        grads = [self._quantizer_grad("kernel", dkq)]
        if self.use_bias:
            grads.append(self._quantizer_grad("bias", _core.bias_grad(self.name, dz)))
        self.grads = grads if self.trainable else []
        if not self._need_input_grad:
            return None
        dx = _core.gemm(self.name, dz, self._kq, trans_b=True, workspace=self._workspace)
        return dx.reshape(self._xshape)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, activation=act_config(self._activation_config),
                      use_bias=self.use_bias, **self._quantizer_config())
        return config


class QDense(Dense):
    """QKeras QDense: Dense with kernel/bias quantizers, he_normal kernels by default."""

    _default_kernel_initializer = "he_normal"


class Activation(Layer):
    """``y = activation(x)``; the activation may be a Keras name or a quantizer (QKeras)."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._activation_config = activation
        self.activation = resolve_activation(activation)

    def call(self, x, training=False):
        y, self._act_cache = act_forward(self.activation, x, training)
        return y

    def backward(self, grad):
        self.grads = []
        return self._act_grad(self.activation, self._act_cache, grad)

    def get_config(self):
        config = super().get_config()
        config["activation"] = act_config(self._activation_config)
        return config

    def get_quantizers(self):
        return [self.activation]

    def get_quantization_config(self):
        return str(self.activation)


class QActivation(Activation):
    """QKeras QActivation: ``y = quantizer(x)`` with its STE gradient."""


class ReLU(Activation):
    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        if threshold != 0.0:
            raise ValueError(f"ReLU: threshold != 0 is not supported, got {threshold}")
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold
        super().__init__("relu" if max_value is None and negative_slope == 0 else "linear", **kwargs)

    def call(self, x, training=False):
        self._x = x
        y = np.where(x > 0, x, x * F32(self.negative_slope)).astype(F32)
        return np.minimum(y, F32(self.max_value)) if self.max_value is not None else y

    def backward(self, grad):
        self.grads = []
        x = self._x
        g = np.where(x > 0, F32(1), F32(self.negative_slope))
        if self.max_value is not None:
            g = np.where(x > self.max_value, F32(0), g)
        return (grad * g).astype(F32)

    def get_config(self):
        config = Layer.get_config(self)
        config.update(max_value=self.max_value, negative_slope=self.negative_slope,
                      threshold=self.threshold)
        return config


class LeakyReLU(ReLU):
    def __init__(self, alpha=0.3, **kwargs):
        super().__init__(negative_slope=alpha, **kwargs)
        self.alpha = alpha

    def get_config(self):
        config = Layer.get_config(self)
        config["alpha"] = self.alpha
        return config


class Softmax(Activation):
    def __init__(self, axis=-1, **kwargs):
        if axis != -1:
            raise ValueError(f"Softmax: only axis=-1 is supported, got {axis}")
        super().__init__("softmax", **kwargs)
        self.axis = axis

    def get_config(self):
        config = Layer.get_config(self)
        config["axis"] = self.axis
        return config


class Flatten(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Flatten '{self.name}': only channels_last is supported, got {data_format!r}")

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(d is None for d in rest) else int(np.prod(rest, dtype=np.int64))
        return (input_shape[0], n)

    def call(self, x, training=False):
        self._shape = x.shape
        # not reshape(n, -1): NumPy cannot infer -1 when the batch is empty
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, grad):
        self.grads = []
        return grad.reshape(self._shape)


class Reshape(Layer):
    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)
        if sum(d == -1 for d in self.target_shape) > 1:
            raise ValueError(f"Reshape '{self.name}': at most one -1 in target_shape, got {self.target_shape}")

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        if any(d is None for d in rest):
            return (input_shape[0],) + self.target_shape
        n = int(np.prod(rest, dtype=np.int64))
        known = int(np.prod([d for d in self.target_shape if d != -1], dtype=np.int64))
        if -1 in self.target_shape:
            if known == 0 or n % known:
                raise ValueError(f"Reshape '{self.name}': cannot reshape {_shape_str(input_shape)} "
                                 f"to {self.target_shape}")
            return (input_shape[0],) + tuple(n // known if d == -1 else d for d in self.target_shape)
        if known != n:
            raise ValueError(f"Reshape '{self.name}': target_shape {self.target_shape} has {known} "
                             f"elements, input {_shape_str(input_shape)} has {n} per sample")
        return (input_shape[0],) + self.target_shape

    def call(self, x, training=False):
        self._shape = x.shape
        return x.reshape((x.shape[0],) + self.compute_output_shape((None,) + x.shape[1:])[1:])

    def backward(self, grad):
        self.grads = []
        return grad.reshape(self._shape)

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


class Dropout(Layer):
    """Inverted dropout (Keras): training zeroes a fraction `rate` and scales the rest by
    1/(1-rate); inference is the identity. Draws come from the seeded backend stream."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout '{self.name}': rate must be in [0, 1), got {rate}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed
        self._rng = np.random.Generator(np.random.PCG64(seed)) if seed is not None else None

    def call(self, x, training=False):
        self._mask = None
        if not training or self.rate == 0.0:
            return x
        rng = self._rng or np.random.Generator(np.random.PCG64(backend.next_random_key()))
        shape = x.shape if self.noise_shape is None else tuple(
            x.shape[i] if d is None else d for i, d in enumerate(self.noise_shape))
        keep = rng.random(shape, dtype=F32) >= F32(self.rate)
        self._mask = (keep / F32(1.0 - self.rate)).astype(F32)
        return (x * self._mask).astype(F32)

    def backward(self, grad):
        self.grads = []
        return grad if self._mask is None else (grad * self._mask).astype(F32)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, noise_shape=self.noise_shape, seed=self.seed)
        return config


class Add(Layer):
    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"Add '{self.name}': needs a list of at least 2 inputs")
        first = input_shape[0]
        for s in input_shape[1:]:
            if tuple(s[1:]) != tuple(first[1:]):
                raise ValueError(f"Add '{self.name}': inputs must have the same shape, got "
                                 f"{', '.join(_shape_str(t) for t in input_shape)}")
        return first

    def call(self, xs, training=False):
        self.compute_output_shape([(None,) + x.shape[1:] for x in xs])
        _same_batch(self, xs)
        self._n = len(xs)
        y = xs[0].copy()
        for x in xs[1:]:
            y += x
        return y

    def backward(self, grad):
        self.grads = []
        return [grad] * self._n


def _same_batch(layer, xs):
    """The shape checks leave the batch out (None): without this, Add would broadcast a batch
    of 1 over the others and Concatenate would fail inside NumPy without the layer's name."""
    if len({x.shape[0] for x in xs}) > 1:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': inputs must have the same batch "
                         f"size, got shapes {', '.join(str(x.shape) for x in xs)}")


class Concatenate(Layer):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"Concatenate '{self.name}': needs a list of at least 2 inputs")
        rank = len(input_shape[0])
        ax = self.axis % rank
        out = list(input_shape[0])
        for s in input_shape[1:]:
            if len(s) != rank or any(a != b for i, (a, b) in enumerate(zip(s, input_shape[0]))
                                     if i not in (0, ax)):
                raise ValueError(f"Concatenate '{self.name}': shapes must match except on axis "
                                 f"{self.axis}, got {', '.join(_shape_str(t) for t in input_shape)}")
            out[ax] = None if out[ax] is None or s[ax] is None else out[ax] + s[ax]
        return tuple(out)

    def call(self, xs, training=False):
        self.compute_output_shape([(None,) + x.shape[1:] for x in xs])
        _same_batch(self, xs)
        self._sizes = [x.shape[self.axis] for x in xs]
        return np.concatenate(xs, axis=self.axis)

    def backward(self, grad):
        self.grads = []
        return np.split(grad, np.cumsum(self._sizes)[:-1], axis=self.axis)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config
