"""QKeras's batch-norm folding layers: QConv2DBatchnorm and QDepthwiseConv2DBatchnorm.

A convolution followed by batch normalization, trained as one layer so that the weights that get
quantized are the *folded* ones, the ones the hardware will hold (quantizers.md §4):

    inv         = gamma / sqrt(var + eps)                   (per output channel)
    W_fold      = W * inv                                    then kernel quantizer
    b_fold      = inv * (b - mean) + beta                    then bias quantizer
    y           = act(conv(x, Q(W_fold)) * corr + Q(b_fold))

Which statistics go where (QKeras's two ``folding_mode``\\ s), with ``bn_training`` = training
and (no ``ema_freeze_delay`` or ``iteration <= ema_freeze_delay``):

* ``"ema_stats_folding"`` (default, as TFLite): the kernel is always folded with the moving
  statistics; while ``bn_training`` the bias uses the batch moments and the output is rescaled
  by ``corr = sqrt(moving_var + eps) / sqrt(batch_var + eps)`` so the layer equals conv + BN on
  the batch; otherwise ``corr = 1`` and the bias uses the moving statistics.
* ``"batch_stats_folding"``: kernel and bias are folded with the batch moments while
  ``bn_training``, with the moving statistics afterwards; no correction.

At inference both modes use the moving statistics (= :meth:`get_folded_weights`). While
``bn_training`` the moving statistics are first updated from the batch moments of
``conv(x, W) + b`` (Keras's fused rule: Bessel-corrected variance; ``fused=False`` keeps the
biased one) and the updated values are used, as in QKeras where the BatchNormalization call runs
first. ``iteration`` (shape (1,), float32 like every weight here; QKeras keeps an int64 scalar) starts
at -1 and counts training calls. Gradients: the batch moments are
differentiated (through the extra unquantized convolution), the moving statistics are constants,
the quantizers pass their STE gradient.
"""
import numpy as np

from .. import _core, backend
from .conv import QConv2D, QDepthwiseConv2D
from .quant_utils import act_forward, serialize

F32 = np.float32
_MODES = ("ema_stats_folding", "batch_stats_folding")


class _BatchnormFolding:
    """The batch-norm half shared by the two folded layers. Subclasses provide
    ``_raw_conv(x, w)``, ``_conv_grads(x, dz, w, need_dx)`` -> (dx, dw), ``_channel(v)`` (an
    output-channel vector shaped to broadcast against the kernel), ``_kernel_name`` (the kernel
    attribute) and ``_quantized`` (its quantizer's prefix)."""

    _epilogue_shape = None  # own call(): the model does not fuse a following activation

    def _init_bn(self, axis, momentum, epsilon, center, scale, beta_initializer,
                 gamma_initializer, moving_mean_initializer, moving_variance_initializer,
                 beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint, renorm,
                 renorm_clipping, renorm_momentum, fused, virtual_batch_size, adjustment,
                 ema_freeze_delay, folding_mode):
        who = f"{type(self).__name__} '{self.name}'"
        if axis not in (-1, 3, [-1], [3]):
            raise ValueError(f"{who}: only the channel axis (-1) can be normalized, got axis={axis!r}")
        if renorm or renorm_clipping is not None or virtual_batch_size is not None or adjustment is not None:
            raise ValueError(f"{who}: renorm, renorm_clipping, virtual_batch_size and adjustment are "
                             f"not supported (QKeras's folding never uses them)")
        if folding_mode not in _MODES:
            raise ValueError(f"{who}: folding_mode must be one of {_MODES}, got {folding_mode!r}")
        if ema_freeze_delay is not None and (isinstance(ema_freeze_delay, bool)
                                             or not isinstance(ema_freeze_delay, (int, np.integer))
                                             or abs(ema_freeze_delay) > 2 ** 24):
            # the step counter is a float32 weight: exact up to 2**24
            raise ValueError(f"{who}: ema_freeze_delay must be None or an int within +-2**24, "
                             f"got {ema_freeze_delay!r}")
        m, e = float(momentum), float(epsilon)
        if not 0.0 <= m <= 1.0 or not 0.0 < e < 1e30:
            raise ValueError(f"{who}: need 0 <= momentum <= 1 and 0 < epsilon < 1e30 (float32), "
                             f"got {momentum!r}, {epsilon!r}")
        self.axis, self.momentum, self.epsilon = -1, m, e
        self.center, self.scale = bool(center), bool(scale)
        self.renorm, self.renorm_momentum, self.fused = False, float(renorm_momentum), fused
        self._bn_inits = dict(beta=beta_initializer, gamma=gamma_initializer,
                              moving_mean=moving_mean_initializer,
                              moving_variance=moving_variance_initializer)
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer
        self.beta_constraint, self.gamma_constraint = beta_constraint, gamma_constraint
        self.ema_freeze_delay = None if ema_freeze_delay is None else int(ema_freeze_delay)
        self.folding_mode = folding_mode

    def _build_bn(self, channels):
        """gamma, beta, iteration, moving_mean, moving_variance after kernel and bias: QKeras's
        get_weights() order (trainable first, then the non-trainable ones)."""
        from .. import constraints, regularizers
        reg = regularizers.get
        self.gamma = (self.add_weight("gamma", (channels,), self._bn_inits["gamma"],
                                      constraint=constraints.get(self.gamma_constraint),
                                      regularizer=reg(self.gamma_regularizer)
                                      if self.gamma_regularizer is not None else None)
                      if self.scale else None)
        self.beta = (self.add_weight("beta", (channels,), self._bn_inits["beta"],
                                     constraint=constraints.get(self.beta_constraint),
                                     regularizer=reg(self.beta_regularizer)
                                     if self.beta_regularizer is not None else None)
                     if self.center else None)
        self.iteration = self.add_weight("iteration", (1,), "zeros", trainable=False)
        self.iteration.value[...] = -1
        self.moving_mean = self.add_weight("moving_mean", (channels,),
                                           self._bn_inits["moving_mean"], trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (channels,),
                                               self._bn_inits["moving_variance"], trainable=False)

    # ------------------------------------------------------------------ folding
    def _bn_params(self, channels):
        g = self.gamma.value if self.gamma is not None else np.ones(channels, F32)
        beta = self.beta.value if self.beta is not None else np.zeros(channels, F32)
        b = self.bias.value if self.use_bias else np.zeros(channels, F32)
        return g, beta, b

    def get_folded_weights(self):
        """``[W * inv, inv * (b - moving_mean) + beta]`` with ``inv = gamma /
        sqrt(moving_variance + eps)``: the float weights the hardware folds (not quantized)."""
        kernel = getattr(self, self._kernel_name).value
        c = self.moving_mean.value.shape[0]
        g, beta, b = self._bn_params(c)
        inv = (g / np.sqrt(self.moving_variance.value + F32(self.epsilon))).astype(F32)
        folded_kernel = (kernel * self._channel(inv)).astype(F32)
        folded_bias = (inv * (b - self.moving_mean.value) + beta).astype(F32)
        return [folded_kernel, folded_bias]

    def _bn_training(self, training):
        if not training:
            return False
        d = self.ema_freeze_delay
        return d is None or d < 0 or float(self.iteration.value[0]) <= d

    def _update_moving(self, mean, var, n):
        m = F32(self.momentum)
        if n > 1 and self.fused is not False:
            var = (var * F32(n / (n - 1))).astype(F32)
        self.moving_mean.value[...] = self.moving_mean.value * m + mean * (F32(1) - m)
        self.moving_variance.value[...] = self.moving_variance.value * m + var * (F32(1) - m)

    def call(self, x, training=False):
        training = bool(training)
        kname = self._quantized
        kernel = getattr(self, self._kernel_name).value
        c = self.moving_mean.value.shape[0]
        g, beta, b = self._bn_params(c)
        eps = F32(self.epsilon)
        bn_training = self._bn_training(training)
        st = dict(training=training, bn_training=bn_training, g=g, b=b, kname=kname)
        if bn_training:
            z = self._raw_conv(x, kernel)
            z = (z + b).astype(F32)
            red = tuple(range(z.ndim - 1))
            mean = z.mean(axis=red, dtype=np.float64).astype(F32)
            var = ((z - mean) ** 2).mean(axis=red, dtype=np.float64).astype(F32)
            self._update_moving(mean, var, z.size // c)
            rv = (F32(1) / np.sqrt(var + eps)).astype(F32)
            st.update(z=z, mean=mean, rv=rv)
        if training:
            self.iteration.value[...] += 1
        mm, mv = self.moving_mean.value.copy(), self.moving_variance.value.copy()
        rm = (F32(1) / np.sqrt(mv + eps)).astype(F32)
        if bn_training:
            folded_bias = (g * st["rv"] * (b - st["mean"]) + beta).astype(F32)
            inv_rs = st["rv"] if self.folding_mode == "batch_stats_folding" else rm
        else:
            folded_bias = (g * rm * (b - mm) + beta).astype(F32)
            inv_rs = rm
        inv = (g * inv_rs).astype(F32)
        folded_kernel = (kernel * self._channel(inv)).astype(F32)
        kq = self._quantize_value(kname, folded_kernel, training)
        bq = self._quantize_value("bias", folded_bias, training)
        y = self._raw_conv(x, kq)
        corr = None
        if bn_training and self.folding_mode == "ema_stats_folding":
            corr = (np.sqrt(mv + eps) * st["rv"]).astype(F32)
            st["y_raw"] = y
            y = (y * corr).astype(F32)
        y = (y + bq).astype(F32)
        st.update(x=x, kernel=kernel, inv=inv, inv_rs=inv_rs, rm=rm, mm=mm, mv=mv, corr=corr,
                  folded_kernel=folded_kernel, folded_bias=folded_bias, kq=kq)
        self._fold_cache = st
        out, self._act_cache = act_forward(self.activation, y, training)
        return out

    def _quantize_value(self, w, value, training):
        q = getattr(self, f"{w}_quantizer_internal")
        return value if q is None else np.asarray(q(value, training=training), dtype=F32)

    def _quantize_grad(self, w, value, grad, training):
        q = getattr(self, f"{w}_quantizer_internal")
        return grad if q is None else np.asarray(q.gradient(value, grad, training=training), dtype=F32)

    def backward(self, grad):
        st = self._fold_cache
        training, x, kernel = st["training"], st["x"], st["kernel"]
        dy = self._act_grad(self.activation, self._act_cache, grad)
        red = tuple(range(dy.ndim - 1))
        sum64 = lambda a: a.sum(axis=red, dtype=np.float64).astype(F32)  # noqa: E731
        d_bq = sum64(dy)
        if st["corr"] is not None:
            d_corr = sum64(dy * st["y_raw"])
            dy = (dy * st["corr"]).astype(F32)
        dx, d_kq = self._conv_grads(x, dy, st["kq"], self._need_input_grad)
        d_kf = self._quantize_grad(st["kname"], st["folded_kernel"], d_kq, training)
        d_kernel = (d_kf * self._channel(st["inv"])).astype(F32)
        d_inv = self._channel_sum(d_kf * kernel)
        d_fb = self._quantize_grad("bias", st["folded_bias"], d_bq, training)
        g, b = st["g"], st["b"]
        if not st["bn_training"]:
            d_g = (d_inv + d_fb * (b - st["mm"])) * st["rm"]
            d_b = d_fb * g * st["rm"]
        else:
            rv, mean = st["rv"], st["mean"]
            if self.folding_mode == "ema_stats_folding":
                d_g = d_inv * st["rm"] + d_fb * rv * (b - mean)
                d_rv = d_fb * g * (b - mean) + d_corr * np.sqrt(st["mv"] + F32(self.epsilon))
                d_mean = -d_fb * g * rv
            else:
                d_inv = d_inv + d_fb * (b - mean)
                d_g = d_inv * rv
                d_rv = d_inv * g
                d_mean = -d_fb * g * rv
            d_var = d_rv * F32(-0.5) * rv ** 3
            z = st["z"]
            m = z.size // z.shape[-1]
            dz = (d_mean / F32(m) + (d_var * F32(2.0 / m)) * (z - mean)).astype(F32)
            dx2, dk2 = self._conv_grads(x, dz, kernel, self._need_input_grad)
            d_kernel = (d_kernel + dk2).astype(F32)
            if dx is not None:
                dx = (dx + dx2).astype(F32)
            d_b = d_fb * g * rv + sum64(dz)
        grads = [d_kernel]
        if self.use_bias:
            grads.append(np.asarray(d_b, F32))
        if self.scale:
            grads.append(np.asarray(d_g, F32))
        if self.center:
            grads.append(np.asarray(d_fb, F32))
        self.grads = grads if self.trainable else []
        return dx

    def _bn_config(self):
        return dict(axis=self.axis, momentum=self.momentum, epsilon=self.epsilon,
                    center=self.center, scale=self.scale,
                    **{f"{k}_initializer": serialize(v) for k, v in self._bn_inits.items()},
                    beta_regularizer=serialize(self.beta_regularizer),
                    gamma_regularizer=serialize(self.gamma_regularizer),
                    beta_constraint=serialize(self.beta_constraint),
                    gamma_constraint=serialize(self.gamma_constraint),
                    renorm=False, renorm_clipping=None, renorm_momentum=self.renorm_momentum,
                    fused=self.fused, virtual_batch_size=None, adjustment=None,
                    ema_freeze_delay=self.ema_freeze_delay, folding_mode=self.folding_mode)

    def get_quantizers(self):
        return [getattr(self, f"{self._quantized}_quantizer_internal"), self.bias_quantizer_internal]

    def get_folded_quantized_weight(self):
        """:meth:`get_folded_weights` through the kernel and bias quantizers (inference mode):
        the weights an unfolded QConv2D / QDepthwiseConv2D would hold for the same outputs."""
        fk, fb = self.get_folded_weights()
        return [self._quantize_value(self._quantized, fk, False),
                self._quantize_value("bias", fb, False)]


_BN_DEFAULTS = dict(axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                    beta_initializer="zeros", gamma_initializer="ones",
                    moving_mean_initializer="zeros", moving_variance_initializer="ones",
                    beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                    gamma_constraint=None, renorm=False, renorm_clipping=None,
                    renorm_momentum=0.99, fused=None, virtual_batch_size=None, adjustment=None,
                    ema_freeze_delay=None, folding_mode="ema_stats_folding")


def _split_bn(kwargs):
    bn = {k: kwargs.pop(k, v) for k, v in _BN_DEFAULTS.items()}
    return bn


class QConv2DBatchnorm(_BatchnormFolding, QConv2D):
    """QKeras QConv2DBatchnorm: QConv2D arguments + BatchNormalization arguments +
    ``ema_freeze_delay=None, folding_mode="ema_stats_folding"`` (see the module docstring for the
    formulas). Weights: kernel, [bias], [gamma], [beta], iteration, moving_mean, moving_variance;
    :meth:`get_quantizers` = [kernel_quantizer, bias_quantizer] (they act on the folded
    weights)."""

    _kernel_name, _quantized = "kernel", "kernel"

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format="channels_last", dilation_rate=(1, 1), activation=None,
                 use_bias=True, kernel_initializer="he_normal", bias_initializer="zeros", **kwargs):
        bn = _split_bn(kwargs)
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         **kwargs)
        if self.mask is not None:
            raise ValueError(f"QConv2DBatchnorm '{self.name}': mask is not supported")
        self._init_bn(**bn)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_bn(self.filters)

    def _channel(self, v):
        return v  # HWIO: the output channel is the last kernel axis

    def _channel_sum(self, a):
        return a.reshape(-1, a.shape[-1]).sum(axis=0, dtype=np.float64).astype(F32)

    def _raw_conv(self, x, w):
        pads = self._pads(x.shape[1:-1])
        return _core.conv2d_forward(self.name, x, np.ascontiguousarray(w, F32), self.strides,
                                    pads, self.dilation_rate, self.groups,
                                    workspace=self._workspace, algo=backend.conv_algorithm())

    def _conv_grads(self, x, dz, w, need_dx):
        pads = self._pads(x.shape[1:-1])
        dz = np.ascontiguousarray(dz, F32)
        dw = _core.conv2d_backward_filter(self.name, x, dz, w.shape, self.strides, pads,
                                          self.dilation_rate, self.groups,
                                          workspace=self._workspace)
        dx = (_core.conv2d_backward_input(self.name, dz, np.ascontiguousarray(w, F32), x.shape,
                                          self.strides, pads, self.dilation_rate, self.groups,
                                          workspace=self._workspace,
                                          algo=backend.conv_algorithm())
              if need_dx else None)
        return dx, dw

    def get_config(self):
        config = super().get_config()
        config.pop("mask", None)
        config.update(self._bn_config())
        return config

    def get_quantization_config(self):
        return {"kernel_quantizer": str(self.kernel_quantizer_internal),
                "bias_quantizer": str(self.bias_quantizer_internal),
                "activation": str(self.activation), "filters": str(self.filters)}


class QDepthwiseConv2DBatchnorm(_BatchnormFolding, QDepthwiseConv2D):
    """QKeras QDepthwiseConv2DBatchnorm: QDepthwiseConv2D + BatchNormalization arguments +
    ``ema_freeze_delay``, ``folding_mode``; ``inv`` is reshaped to (channels, depth_multiplier)
    to fold into the depthwise kernel. Weights: depthwise_kernel, [bias], [gamma], [beta],
    iteration, moving_mean, moving_variance."""

    _kernel_name, _quantized = "depthwise_kernel", "depthwise"

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, activation=None, use_bias=True,
                 depthwise_initializer="he_normal", bias_initializer="zeros", **kwargs):
        bn = _split_bn(kwargs)
        super().__init__(kernel_size, strides=strides, padding=padding,
                         depth_multiplier=depth_multiplier, data_format=data_format,
                         activation=activation, use_bias=use_bias,
                         depthwise_initializer=depthwise_initializer,
                         bias_initializer=bias_initializer, **kwargs)
        self._init_bn(**bn)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_bn(input_shape[-1] * self.depth_multiplier)

    def _channel(self, v):
        return v.reshape(-1, self.depth_multiplier)  # (C, dm): output channel c*dm + j

    def _channel_sum(self, a):
        return a.reshape(-1, a.shape[-2] * a.shape[-1]).sum(axis=0, dtype=np.float64).astype(F32)

    def _as_grouped(self, w):
        return np.ascontiguousarray(w, F32).reshape(self.kernel_size + (1, w.shape[2] * w.shape[3]))

    def _raw_conv(self, x, w):
        pads = self._conv._pads(x.shape[1:-1])
        return _core.conv2d_forward(self.name, x, self._as_grouped(w), self.strides, pads,
                                    self.dilation_rate, x.shape[-1], workspace=self._workspace)

    def _conv_grads(self, x, dz, w, need_dx):
        pads = self._conv._pads(x.shape[1:-1])
        dz = np.ascontiguousarray(dz, F32)
        wg = self._as_grouped(w)
        c = x.shape[-1]
        dw = _core.conv2d_backward_filter(self.name, x, dz, wg.shape, self.strides, pads,
                                          self.dilation_rate, c,
                                          workspace=self._workspace).reshape(w.shape)
        dx = (_core.conv2d_backward_input(self.name, dz, wg, x.shape, self.strides, pads,
                                          self.dilation_rate, c,
                                          workspace=self._workspace) if need_dx else None)
        return dx, dw

    def get_config(self):
        config = super().get_config()
        config.update(self._bn_config())
        return config

    def get_quantization_config(self):
        return {"depthwise_quantizer": str(self.depthwise_quantizer_internal),
                "bias_quantizer": str(self.bias_quantizer_internal),
                "activation": str(self.activation)}
