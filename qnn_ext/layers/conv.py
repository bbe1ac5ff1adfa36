"""Convolution layers (NHWC activations, HWIO kernels as Keras). One base generic over rank:
Conv1D runs through the 2-D kernels with a height of 1. Float Keras layers are the Q-layers
without quantizers."""
import numpy as np

from .. import _core, backend
from ..quantizers import get_quantizer
from .base import Layer, _shape_str, positive_int
from .quant_utils import (QuantizedWeightsMixin, act_backward, act_config, act_forward,
                          act_after_epilogue)


def _tuple(v, n, what, who):
    t = tuple(v) if isinstance(v, (list, tuple)) else (v,) * n
    if len(t) != n or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 1 for a in t):
        raise ValueError(f"{who}: {what} must be a positive int or a tuple of {n}, got {v!r}")
    return tuple(int(a) for a in t)


def same_padding(size, k, s, d):
    """TF's 'SAME' padding for one spatial axis: (before, after)."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def conv_out(size, k, s, d, before, after):
    return (size + before + after - ((k - 1) * d + 1)) // s + 1


class _Conv(QuantizedWeightsMixin, Layer):
    rank = 2
    _default_kernel_initializer = "glorot_uniform"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer=None, bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, kernel_quantizer=None, bias_quantizer=None,
                 kernel_range=None, bias_range=None, **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{who}: only data_format='channels_last' is supported (NHWC), got {data_format!r}")
        self.filters = positive_int(who, "filters", filters)
        self.kernel_size = _tuple(kernel_size, self.rank, "kernel_size", who)
        self.strides = _tuple(strides, self.rank, "strides", who)
        self.dilation_rate = _tuple(dilation_rate, self.rank, "dilation_rate", who)
        padding = padding.lower() if isinstance(padding, str) else padding
        allowed = ("valid", "same", "causal") if self.rank == 1 else ("valid", "same")
        if padding not in allowed:
            raise ValueError(f"{who}: padding must be one of {allowed}, got {padding!r}")
        self.padding = padding
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1 or self.filters % groups:
            raise ValueError(f"{who}: groups must be a positive int dividing filters ({filters}), got {groups!r}")
        self.groups = int(groups)
        self.data_format = "channels_last"
        self._init_output(activation, use_bias, activity_regularizer)
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer
        self._init_quantizers(kernel_quantizer=kernel_quantizer, bias_quantizer=bias_quantizer,
                              kernel_initializer=kernel_initializer or self._default_kernel_initializer,
                              bias_initializer=bias_initializer, kernel_constraint=kernel_constraint,
                              bias_constraint=bias_constraint, kernel_range=kernel_range,
                              bias_range=bias_range)

    # spatial bookkeeping in 2-D terms (rank 1 -> height 1)
    def _k2(self):
        return (1,) + self.kernel_size if self.rank == 1 else self.kernel_size

    def _s2(self):
        return (1,) + self.strides if self.rank == 1 else self.strides

    def _d2(self):
        return (1,) + self.dilation_rate if self.rank == 1 else self.dilation_rate

    def _pads(self, spatial):
        """(top, bottom, left, right) for the 2-D view of the input's spatial sizes."""
        sp = (1,) + tuple(spatial) if self.rank == 1 else tuple(spatial)
        k, s, d = self._k2(), self._s2(), self._d2()
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "causal":
            return (0, 0, (k[1] - 1) * d[1], 0)
        t, b = same_padding(sp[0], k[0], s[0], d[0])
        l, r = same_padding(sp[1], k[1], s[1], d[1])
        return (t, b, l, r)

    def _check_rank(self, input_shape):
        if len(input_shape) != self.rank + 2:
            dims = "(batch, steps, channels)" if self.rank == 1 else "(batch, height, width, channels)"
            raise ValueError(f"{type(self).__name__} '{self.name}': input must have {self.rank + 2} dims "
                             f"{dims}, got shape {_shape_str(input_shape)}")
        if input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': the channel dimension must be known")

    def _kernel_shape(self, cin):
        if cin % self.groups:
            raise ValueError(f"{type(self).__name__} '{self.name}': input channels ({cin}) must be "
                             f"divisible by groups ({self.groups})")
        return self.kernel_size + (cin // self.groups, self.filters)

    def build(self, input_shape):
        self._check_rank(input_shape)
        self.kernel = self._add_quantized_weight("kernel", self._kernel_shape(input_shape[-1]))
        self.bias = self._add_quantized_weight("bias", (self.filters,)) if self.use_bias else None

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        spatial = input_shape[1:-1]
        if any(v is None for v in spatial):
            return (input_shape[0],) + (None,) * self.rank + (self.filters,)
        t, b, l, r = self._pads(spatial)
        sp = (1,) + tuple(spatial) if self.rank == 1 else tuple(spatial)
        k, s, d = self._k2(), self._s2(), self._d2()
        out = (conv_out(sp[0], k[0], s[0], d[0], t, b), conv_out(sp[1], k[1], s[1], d[1], l, r))
        if min(out) < 1:
            raise ValueError(f"{type(self).__name__} '{self.name}': input {_shape_str(input_shape)} is "
                             f"too small for kernel {self.kernel_size} with padding '{self.padding}'")
        return (input_shape[0],) + (out[1:] if self.rank == 1 else out) + (self.filters,)

    def _epilogue_shape(self, x_shape):
        """The shape of the kernel's output (rank 1: with a unit height axis)."""
        out = self.compute_output_shape(x_shape)
        return (out[0], 1) + tuple(out[1:]) if self.rank == 1 else out

    def _to2d(self, a):
        return a.reshape(a.shape[0], 1, a.shape[1], a.shape[2]) if self.rank == 1 else a

    def _kernel2d(self, kq):
        return kq.reshape((1,) + kq.shape) if self.rank == 1 else kq

    def _quantized_kernel(self, training):
        return self._quantize("kernel", training)

    def call(self, x, training=False):
        x4 = self._to2d(x)
        kq = self._quantized_kernel(training)
        pads = self._pads(x.shape[1:-1])
        # bias and the activation run in the GEMM epilogue, on each block of z while in cache
        act, fused, ekw = self._epilogue(self._epilogue_shape(x.shape), training)
        bias = self._quantize("bias", training) if self.use_bias else None
        z = _core.conv2d_forward(self.name, x4, self._kernel2d(kq), self._s2(), pads, self._d2(),
                                 self.groups, bias=bias, workspace=self._workspace,
                                 algo=backend.conv_algorithm(), **ekw)
        y, self._act_cache = act_after_epilogue(act, fused, z, training, self.name)
        self._cache = (x4, kq, pads, x.shape)
        return y.reshape(y.shape[0], y.shape[2], y.shape[3]) if self.rank == 1 else y

    def _kernel_grad(self, dkq):
        return self._quantizer_grad("kernel", dkq)

    def backward(self, grad):
        x4, kq, pads, xshape = self._cache
        g4 = self._to2d(grad)
        dz = self._out_grad(g4)
        k2 = self._kernel2d(kq)
        dk = _core.conv2d_backward_filter(self.name, x4, dz, k2.shape, self._s2(), pads,
                                          self._d2(), self.groups,
                                          workspace=self._workspace).reshape(kq.shape)
        grads = [self._kernel_grad(dk)]
        if self.use_bias:
            grads.append(self._quantizer_grad("bias", _core.bias_grad(self.name, dz)))
        self.grads = grads if self.trainable else []
        if not self._need_input_grad:
            return None
        dx = _core.conv2d_backward_input(self.name, dz, k2, x4.shape, self._s2(), pads,
                                         self._d2(), self.groups, workspace=self._workspace,
                                         algo=backend.conv_algorithm())
        return dx.reshape(xshape)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=list(self.kernel_size),
                      strides=list(self.strides), padding=self.padding,
                      data_format=self.data_format, dilation_rate=list(self.dilation_rate),
                      groups=self.groups, activation=act_config(self._activation_config),
                      use_bias=self.use_bias, **self._quantizer_config())
        return config


class Conv2D(_Conv):
    rank = 2


class Conv1D(_Conv):
    rank = 1


class QConv2D(Conv2D):
    """QKeras QConv2D: he_normal kernels, kernel/bias quantizers, optional (h, w) `mask`
    multiplied into the quantized kernel."""

    _default_kernel_initializer = "he_normal"

    def __init__(self, filters, kernel_size, *args, mask=None, **kwargs):
        super().__init__(filters, kernel_size, *args, **kwargs)
        self.mask = None
        if mask is not None:
            m = np.asarray(mask, dtype=np.float32)
            if m.shape != self.kernel_size:
                raise ValueError(f"QConv2D '{self.name}': mask must have shape {self.kernel_size}, got {m.shape}")
            self.mask = m

    def _quantized_kernel(self, training):
        kq = self._quantize("kernel", training)
        return kq if self.mask is None else kq * self.mask[:, :, None, None]

    def _kernel_grad(self, dkq):
        if self.mask is not None:
            dkq = dkq * self.mask[:, :, None, None]
        return self._quantizer_grad("kernel", dkq)

    def get_config(self):
        config = super().get_config()
        config["mask"] = None if self.mask is None else self.mask.tolist()
        return config


class QConv1D(Conv1D):
    _default_kernel_initializer = "he_normal"


class DepthwiseConv2D(QuantizedWeightsMixin, Layer):
    """Per-channel 2-D convolution: depthwise_kernel (kh, kw, C, depth_multiplier), output
    channel c*dm + j, run as a grouped convolution with groups = C."""

    _default_initializer = "glorot_uniform"

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer=None, bias_initializer="zeros", depthwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 bias_constraint=None, depthwise_quantizer=None, bias_quantizer=None,
                 depthwise_range=None, bias_range=None, **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        self._conv = Conv2D(1, kernel_size, strides=strides, padding=padding,
                            dilation_rate=dilation_rate, data_format=data_format,
                            name=self.name + "/_geometry")
        self.kernel_size, self.strides = self._conv.kernel_size, self._conv.strides
        self.padding, self.dilation_rate = self._conv.padding, self._conv.dilation_rate
        self.depth_multiplier = positive_int(who, "depth_multiplier", depth_multiplier)
        self._init_output(activation, use_bias, activity_regularizer)
        self.depthwise_regularizer, self.bias_regularizer = depthwise_regularizer, bias_regularizer
        self._init_quantizers(depthwise_quantizer=depthwise_quantizer, bias_quantizer=bias_quantizer,
                              depthwise_initializer=depthwise_initializer or self._default_initializer,
                              bias_initializer=bias_initializer, depthwise_constraint=depthwise_constraint,
                              bias_constraint=bias_constraint, depthwise_range=depthwise_range,
                              bias_range=bias_range)

    def build(self, input_shape):
        self._conv._check_rank(input_shape)
        c = input_shape[-1]
        self.depthwise_kernel = self._add_quantized_weight(
            "depthwise", self.kernel_size + (c, self.depth_multiplier))
        self.depthwise_kernel.name = f"{self.name}/depthwise_kernel"
        self.bias = (self._add_quantized_weight("bias", (c * self.depth_multiplier,))
                     if self.use_bias else None)

    def compute_output_shape(self, input_shape):
        out = self._conv.compute_output_shape(input_shape)
        return out[:-1] + (input_shape[-1] * self.depth_multiplier,)

    def _epilogue_shape(self, x_shape):
        return self.compute_output_shape(x_shape)

    def call(self, x, training=False):
        kq = self._quantize("depthwise", training)
        c = x.shape[-1]
        w = kq.reshape(self.kernel_size + (1, c * self.depth_multiplier))
        pads = self._conv._pads(x.shape[1:-1])
        act, fused, ekw = self._epilogue(self._epilogue_shape(x.shape), training)
        bias = self._quantize("bias", training) if self.use_bias else None
        z = _core.conv2d_forward(self.name, x, w, self.strides, pads, self.dilation_rate, c,
                                 bias=bias, workspace=self._workspace, **ekw)
        y, self._act_cache = act_after_epilogue(act, fused, z, training, self.name)
        self._cache = (x, w, pads, kq.shape)
        return y

    def backward(self, grad):
        x, w, pads, kshape = self._cache
        dz = self._out_grad(grad)
        c = x.shape[-1]
        dw = _core.conv2d_backward_filter(self.name, x, dz, w.shape, self.strides, pads,
                                          self.dilation_rate, c,
                                          workspace=self._workspace).reshape(kshape)
        grads = [self._quantizer_grad("depthwise", dw)]
        if self.use_bias:
            grads.append(self._quantizer_grad("bias", _core.bias_grad(self.name, dz)))
        self.grads = grads if self.trainable else []
        return _core.conv2d_backward_input(self.name, dz, w, x.shape, self.strides, pads,
                                           self.dilation_rate, c, workspace=self._workspace)

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=list(self.kernel_size), strides=list(self.strides),
                      padding=self.padding, depth_multiplier=self.depth_multiplier,
                      dilation_rate=list(self.dilation_rate),
                      activation=act_config(self._activation_config), use_bias=self.use_bias,
                      **self._quantizer_config())
        return config


class QDepthwiseConv2D(DepthwiseConv2D):
    _default_initializer = "he_normal"


class _SeparableConv(QuantizedWeightsMixin, Layer):
    """Depthwise then 1x1 pointwise convolution, bias and activation after the pointwise
    (QKeras: no quantization between the two)."""

    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_activation=None, depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, depthwise_quantizer=None,
                 pointwise_quantizer=None, bias_quantizer=None, **kwargs):
        super().__init__(**kwargs)
        conv_cls = Conv1D if self.rank == 1 else Conv2D
        self._dw = conv_cls(1, kernel_size, strides=strides, padding=padding,
                            dilation_rate=dilation_rate, data_format=data_format,
                            name=self.name + "/_geometry")
        self.filters = int(filters)
        self.kernel_size, self.strides = self._dw.kernel_size, self._dw.strides
        self.padding, self.dilation_rate = self._dw.padding, self._dw.dilation_rate
        self.depth_multiplier = int(depth_multiplier)
        self._init_output(activation, use_bias, activity_regularizer)
        # applied between the depthwise and the pointwise convolution (QKeras README example)
        self.depthwise_activation = get_quantizer(depthwise_activation)
        self._dw_activation_config = depthwise_activation
        self.depthwise_regularizer, self.pointwise_regularizer = depthwise_regularizer, pointwise_regularizer
        self.bias_regularizer = bias_regularizer
        self._init_quantizers(
            depthwise_quantizer=depthwise_quantizer, pointwise_quantizer=pointwise_quantizer,
            bias_quantizer=bias_quantizer, depthwise_initializer=depthwise_initializer,
            pointwise_initializer=pointwise_initializer, bias_initializer=bias_initializer,
            depthwise_constraint=depthwise_constraint, pointwise_constraint=pointwise_constraint,
            bias_constraint=bias_constraint)

    def build(self, input_shape):
        self._dw._check_rank(input_shape)
        c = input_shape[-1]
        self.depthwise_kernel = self._add_quantized_weight(
            "depthwise", self.kernel_size + (c, self.depth_multiplier))
        self.pointwise_kernel = self._add_quantized_weight(
            "pointwise", (1,) * self.rank + (c * self.depth_multiplier, self.filters))
        self.bias = self._add_quantized_weight("bias", (self.filters,)) if self.use_bias else None

    def compute_output_shape(self, input_shape):
        return self._dw.compute_output_shape(input_shape)[:-1] + (self.filters,)

    def _epilogue_shape(self, x_shape):
        return self._dw._epilogue_shape(x_shape)[:-1] + (self.filters,)

    def call(self, x, training=False):
        d = self._dw
        x4 = d._to2d(x)
        c = x.shape[-1]
        dq = self._quantize("depthwise", training)
        pq = self._quantize("pointwise", training)
        wd = d._kernel2d(dq).reshape(d._k2() + (1, c * self.depth_multiplier))
        pads = d._pads(x.shape[1:-1])
        h = _core.conv2d_forward(self.name, x4, wd, d._s2(), pads, d._d2(), c,
                                 workspace=self._workspace)
        h, self._dw_act_cache = act_forward(self.depthwise_activation, h, training)
        h2 = h.reshape(-1, h.shape[-1])
        act, fused, ekw = self._epilogue(h.shape[:-1] + (self.filters,), training)
        bias = self._quantize("bias", training) if self.use_bias else None
        z = _core.gemm(self.name, h2, pq.reshape(pq.shape[-2], pq.shape[-1]), bias=bias,
                       workspace=self._workspace, **ekw)
        oshape = h.shape[:-1] + (self.filters,)
        z = (z[0].reshape(oshape), z[1]) if isinstance(fused, tuple) else z.reshape(oshape)
        y, self._act_cache = act_after_epilogue(act, fused, z, training, self.name)
        self._cache = (x4, wd, pads, dq.shape, h2, pq, h.shape, x.shape)
        return y.reshape(y.shape[0], y.shape[2], y.shape[3]) if self.rank == 1 else y

    def backward(self, grad):
        d = self._dw
        x4, wd, pads, dshape, h2, pq, hshape, xshape = self._cache
        dz = self._out_grad(d._to2d(grad))
        dz2 = dz.reshape(-1, self.filters)
        p2 = pq.reshape(pq.shape[-2], pq.shape[-1])
        dp = _core.gemm(self.name, h2, dz2, trans_a=True,
                        workspace=self._workspace).reshape(pq.shape)
        dh = _core.gemm(self.name, dz2, p2, trans_b=True, workspace=self._workspace).reshape(hshape)
        dh = np.ascontiguousarray(act_backward(self.depthwise_activation, self._dw_act_cache, dh))
        c = x4.shape[-1]
        dd = _core.conv2d_backward_filter(self.name, x4, dh, wd.shape, d._s2(), pads, d._d2(),
                                          c, workspace=self._workspace).reshape(dshape)
        grads = [self._quantizer_grad("depthwise", dd), self._quantizer_grad("pointwise", dp)]
        if self.use_bias:
            grads.append(self._quantizer_grad("bias", _core.bias_grad(self.name, dz2)))
        self.grads = grads if self.trainable else []
        dx = _core.conv2d_backward_input(self.name, dh, wd, x4.shape, d._s2(), pads, d._d2(), c,
                                         workspace=self._workspace)
        return dx.reshape(xshape)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=list(self.kernel_size),
                      strides=list(self.strides), padding=self.padding,
                      dilation_rate=list(self.dilation_rate), depth_multiplier=self.depth_multiplier,
                      activation=act_config(self._activation_config), use_bias=self.use_bias,
                      depthwise_activation=act_config(self._dw_activation_config),
                      **{k: v for k, v in self._quantizer_config().items() if not k.endswith("_range")})
        return config


class SeparableConv2D(_SeparableConv):
    rank = 2


class SeparableConv1D(_SeparableConv):
    rank = 1


class QSeparableConv2D(SeparableConv2D):
    pass


class QSeparableConv1D(SeparableConv1D):
    pass


class Conv2DTranspose(Conv2D):
    """Transposed convolution (the input gradient of a convolution): kernel
    (kh, kw, filters, in_channels), output size (in-1)*stride + k ('valid') or in*stride
    ('same'). output_padding is not supported (QKeras forces it to None)."""

    _epilogue_shape = None  # not a forward GEMM: the model does not fuse a following activation

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 **kwargs):
        if output_padding is not None:
            raise ValueError("Conv2DTranspose: output_padding is not supported (QKeras ignores it); pass None")
        super().__init__(filters, kernel_size, strides=strides, padding=padding, **kwargs)
        if self.groups != 1:
            raise ValueError(f"Conv2DTranspose '{self.name}': groups must be 1")
        self.output_padding = None

    def _out_spatial(self, spatial):
        out = []
        for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate):
            eff = (k - 1) * d + 1
            out.append(n * s if self.padding == "same" else (n - 1) * s + eff)
        return tuple(out)

    def build(self, input_shape):
        self._check_rank(input_shape)
        self.kernel = self._add_quantized_weight("kernel", self.kernel_size + (self.filters, input_shape[-1]))
        self.bias = self._add_quantized_weight("bias", (self.filters,)) if self.use_bias else None

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        if any(v is None for v in input_shape[1:-1]):
            return (input_shape[0], None, None, self.filters)
        return (input_shape[0],) + self._out_spatial(input_shape[1:-1]) + (self.filters,)

    def call(self, x, training=False):
        kq = self._quantized_kernel(training)
        out_sp = self._out_spatial(x.shape[1:-1])
        pads = self._pads(out_sp)  # the forward convolution's padding on the output grid
        yshape = (x.shape[0],) + out_sp + (self.filters,)
        z = _core.conv2d_backward_input(self.name, x, kq, yshape, self.strides, pads,
                                        self.dilation_rate, 1, workspace=self._workspace,
                                        algo=backend.conv_algorithm())
        if self.use_bias:
            z = _core.bias_add(self.name, z, self._quantize("bias", training), out=z)
        y, self._act_cache = act_forward(self.activation, z, training)
        self._cache = (x, kq, pads)
        return y

    def backward(self, grad):
        x, kq, pads = self._cache
        dz = self._act_grad(self.activation, self._act_cache, grad)
        # y = conv^T(x): dx = conv(dz), dW from the convolution that maps dz to x
        dk = _core.conv2d_backward_filter(self.name, dz, x, kq.shape, self.strides, pads,
                                          self.dilation_rate, 1, workspace=self._workspace)
        grads = [self._kernel_grad(dk)]
        if self.use_bias:
            grads.append(self._quantizer_grad("bias", _core.bias_grad(self.name, dz)))
        self.grads = grads if self.trainable else []
        return _core.conv2d_forward(self.name, dz, kq, self.strides, pads, self.dilation_rate, 1,
                                    workspace=self._workspace, algo=backend.conv_algorithm())

    def get_config(self):
        config = super().get_config()
        config.pop("groups", None)
        config["output_padding"] = None
        return config


class QConv2DTranspose(Conv2DTranspose):
    pass
