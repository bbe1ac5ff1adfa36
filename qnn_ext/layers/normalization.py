"""Batch normalization (channels last) and QKeras's QBatchNormalization and QScaleShift."""
import numpy as np

from .. import _core
from ..quantizers import get_quantizer
from .base import Layer, _shape_str
from .quant_utils import QuantizedWeightsMixin, act_config, act_forward, serialize

F32 = np.float32


def _per_channel_spec(spec, c):
    """A quantizer spec whose scales are one value or one per channel of the last axis (what
    the pooled backward can index)."""
    _, sf, _, inner_f, _, sb, inner_b = spec
    return all(sc is None or np.size(sc) == 1 or (np.size(sc) == c and inner == 1)
               for sc, inner in ((sf, inner_f), (sb, inner_b)))


class BatchNormalization(Layer):
    """Keras BatchNormalization over the last axis. Training normalizes with the batch moments
    and updates the moving averages (``m = m*momentum + batch*(1-momentum)``; the variance
    average gets Bessel's correction like TF's fused kernel); inference uses the moving ones.
    Weights: [gamma, beta, moving_mean, moving_variance]."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, 3) and axis != [-1]:
            raise ValueError(f"{type(self).__name__} '{self.name}': only the last axis (channels_last) "
                             f"is supported, got axis={axis!r}")
        self.axis, self.momentum, self.epsilon = -1, float(momentum), float(epsilon)
        self.center, self.scale = center, scale
        self._inits = dict(beta=beta_initializer, gamma=gamma_initializer,
                           moving_mean=moving_mean_initializer,
                           moving_variance=moving_variance_initializer)
        self.beta_constraint, self.gamma_constraint = beta_constraint, gamma_constraint
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer

    def build(self, input_shape):
        c = input_shape[-1]
        if c is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': the channel dimension must be known, "
                             f"got {_shape_str(input_shape)}")
        from .. import constraints
        self.gamma = (self.add_weight("gamma", (c,), self._inits["gamma"],
                                      constraint=constraints.get(self.gamma_constraint))
                      if self.scale else None)
        self.beta = (self.add_weight("beta", (c,), self._inits["beta"],
                                     constraint=constraints.get(self.beta_constraint))
                     if self.center else None)
        self.moving_mean = self.add_weight("moving_mean", (c,), self._inits["moving_mean"], trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (c,),
                                               self._inits["moving_variance"], trainable=False)

    def _gamma_beta(self, c):
        g = self.gamma.value if self.gamma is not None else np.ones(c, F32)
        b = self.beta.value if self.beta is not None else np.zeros(c, F32)
        return g, b

    def _update_moving(self, mean, var, n):
        m = F32(self.momentum)
        if n > 1:
            var = (var * F32(n / (n - 1))).astype(F32)
        self.moving_mean.value[...] = self.moving_mean.value * m + mean * (F32(1) - m)
        self.moving_variance.value[...] = self.moving_variance.value * m + var * (F32(1) - m)

    def call(self, x, training=False):
        c = x.shape[-1]
        g, b = self._gamma_beta(c)
        if not training:
            self._cache = None
            return _core.batchnorm_forward(self.name, x, g, b, self.epsilon, False,
                                           mean=self.moving_mean.value, var=self.moving_variance.value)
        y, mean, var, inv_std = _core.batchnorm_forward(self.name, x, g, b, self.epsilon, True)
        self._update_moving(mean, var, x.size // c)
        self._cache = (x, g, mean, inv_std)
        return y

    def _inference_affine(self, c):
        """(scale, shift) of the inference map y = x * scale + shift, with the float32
        operations of the inference kernel (qnn_bn_inference), so that a GEMM epilogue applying
        them gives its bits."""
        g, b = self._gamma_beta(c)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # as the C kernel:
            # a negative or zero variance (a damaged file) gives NaN/inf, silently
            inv_std = F32(1) / np.sqrt(self.moving_variance.value + F32(self.epsilon))
            scale = (inv_std * g).astype(F32)
            return scale, (b - self.moving_mean.value * scale).astype(F32)

    def _inference_grad(self, grad):
        """dL/dx of the inference-mode map for dL/dy = grad."""
        g, _ = self._gamma_beta(grad.shape[-1])
        inv = (g / np.sqrt(self.moving_variance.value + F32(self.epsilon))).astype(F32)
        return (grad * inv).astype(F32)

    @staticmethod
    def _act_spec(x, activation):
        """The fused kernels' act argument for ``activation`` ('relu' or a quantizer spec), or
        None when it cannot be fused."""
        from .. import activations
        from ..quantizers import BaseQuantizer
        if activation is activations.lookup("relu"):
            return "relu"
        if isinstance(activation, BaseQuantizer):
            return activation._fused_spec(x, True)
        return None

    def call_fused(self, x, activation):
        """Training forward of ``activation(self(x))`` in one kernel, or None when the
        activation cannot be fused (then call() and the activation layer run as usual). The
        result, the moving averages and the gradients are bit-identical to the unfused pair;
        the normalised tensor is recomputed in cache by the backward instead of stored."""
        spec = self._act_spec(x, activation)
        if spec is None:
            return None
        c = x.shape[-1]
        g, b = self._gamma_beta(c)
        y, mean, var, inv_std = _core.batchnorm_forward(self.name, x, g, b, self.epsilon, True,
                                                        act=spec)
        self._update_moving(mean, var, x.size // c)
        self._cache = (x, g, mean, inv_std, b, spec)
        return y

    def call_fused_maxpool(self, x, activation, pool):
        """Training forward of ``maxpool(activation(self(x)))`` for a max pool whose windows
        tile x (strides = pool_size, no padding), in one kernel; None when it cannot be fused.

        Only the pooled output, each window's winning cell and that cell's x are stored: the
        backward recomputes what it needs from them, and the zero gradient of the losing cells
        is never materialised. Outputs and moving averages are bit-identical to the three
        layers run one by one; gradients agree to float32 rounding (the per-channel sums of the
        backward visit the same non-zero terms in another order)."""
        if x.ndim != 4 or pool[0] * pool[1] > 256 or x.shape[1] < pool[0] or x.shape[2] < pool[1]:
            return None
        spec = self._act_spec(x, activation)
        if spec is None or (isinstance(spec, tuple) and not _per_channel_spec(spec, x.shape[-1])):
            return None
        c = x.shape[-1]
        g, b = self._gamma_beta(c)
        y, mean, var, inv_std, idx, xsel = _core.batchnorm_act_maxpool_forward(
            self.name, x, g, b, self.epsilon, spec, tuple(pool))
        self._update_moving(mean, var, x.size // c)
        self._cache = ("maxpool", x, g, mean, inv_std, b, spec, tuple(pool), idx, xsel)
        return y

    def backward(self, grad):
        if self._cache is None:  # inference-mode forward: a per-channel affine map
            self.grads = [np.zeros_like(v.value) for v in self.trainable_weights]
            return self._inference_grad(grad)
        if isinstance(self._cache[0], str):  # fused with activation and pool: grad is the pool's
            _, x, g, mean, inv_std, b, spec, pool, idx, xsel = self._cache
            dx, dg, db = _core.batchnorm_act_maxpool_backward(self.name, grad, x, idx, xsel, g, b,
                                                              mean, inv_std, spec, pool)
        elif len(self._cache) == 6:  # fused with the following activation: grad is its gradient
            x, g, mean, inv_std, b, spec = self._cache
            dx, dg, db = _core.batchnorm_backward(self.name, grad, x, g, mean, inv_std, beta=b,
                                                  act=spec)
        else:
            x, g, mean, inv_std = self._cache
            dx, dg, db = _core.batchnorm_backward(self.name, grad, x, g, mean, inv_std)
        grads = []
        if self.scale:
            grads.append(dg)
        if self.center:
            grads.append(db)
        self.grads = grads if self.trainable else []
        return dx

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis, momentum=self.momentum, epsilon=self.epsilon,
                      center=self.center, scale=self.scale,
                      **{f"{k}_initializer": serialize(v) for k, v in self._inits.items()},
                      beta_constraint=serialize(self.beta_constraint),
                      gamma_constraint=serialize(self.gamma_constraint))
        return config


class QBatchNormalization(BatchNormalization):
    """QKeras QBatchNormalization: ``inv = Qg(gamma)/sqrt(Qv(var) + eps)`` [then Qinv],
    ``y = x*inv + (Qb(beta) - Qm(mean)*inv)``; batch moments while training (quantized with
    Qm/Qv), quantized moving moments at inference. Gradients go through each quantizer's STE."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 activation=None, beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None,
                 beta_quantizer="quantized_po2(5)", gamma_quantizer="quantized_relu_po2(6, 2048)",
                 mean_quantizer="quantized_po2(5)",
                 variance_quantizer="quantized_relu_po2(6, quadratic_approximation=True)",
                 inverse_quantizer=None, gamma_constraint=None, beta_constraint=None,
                 beta_range=None, gamma_range=None, **kwargs):
        super().__init__(axis=axis, momentum=momentum, epsilon=epsilon, center=center, scale=scale,
                         beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                         moving_mean_initializer=moving_mean_initializer,
                         moving_variance_initializer=moving_variance_initializer,
                         beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                         beta_constraint=beta_constraint, gamma_constraint=gamma_constraint,
                         **kwargs)
        self.activation = activation  # stored, never applied (QKeras)
        self.beta_range, self.gamma_range = beta_range, gamma_range
        self._q_user = dict(beta=beta_quantizer, gamma=gamma_quantizer, mean=mean_quantizer,
                            variance=variance_quantizer, inverse=inverse_quantizer)
        self._q = {k: get_quantizer(v) for k, v in self._q_user.items()}
        for k in ("gamma", "variance"):
            q = self._q[k]
            if q is not None and hasattr(q, "_set_trainable_parameter"):
                q._set_trainable_parameter()
        if self._q["inverse"] is not None and (self._q["gamma"] is not None or self._q["variance"] is not None):
            raise ValueError(f"QBatchNormalization '{self.name}': inverse_quantizer requires "
                             f"gamma_quantizer and variance_quantizer to be None")
        for k, q in self._q.items():
            setattr(self, f"{k}_quantizer", self._q_user[k])
            setattr(self, f"{k}_quantizer_internal", q)

    def _qz(self, k, v, training):
        q = self._q[k]
        return v if q is None else q(v, training=training)

    def _qgrad(self, k, v, g, training):
        q = self._q[k]
        return g if q is None else q.gradient(v, g, training=training)

    def call(self, x, training=False):
        c = x.shape[-1]
        g, b = self._gamma_beta(c)
        red = tuple(range(x.ndim - 1))
        if training:
            mean = x.mean(axis=red, dtype=np.float64).astype(F32)
            var = ((x - mean) ** 2).mean(axis=red, dtype=np.float64).astype(F32)
            self._update_moving(mean, var, x.size // c)
        else:
            mean, var = self.moving_mean.value, self.moving_variance.value
        qm, qv = self._qz("mean", mean, training), self._qz("variance", var, training)
        qg, qb = self._qz("gamma", g, training), self._qz("beta", b, training)
        r = (F32(1) / np.sqrt(qv + F32(self.epsilon))).astype(F32)
        inv_raw = (r * qg).astype(F32)
        inv = self._qz("inverse", inv_raw, training)
        self._cache = (x, mean, var, g, b, qm, qv, qg, r, inv_raw, inv, training)
        return (x * inv + (qb - qm * inv)).astype(F32)

    def backward(self, grad):
        x, mean, var, g, b, qm, qv, qg, r, inv_raw, inv, training = self._cache
        red = tuple(range(x.ndim - 1))
        n = x.size // x.shape[-1]
        s_dy = grad.sum(axis=red, dtype=np.float64).astype(F32)
        d_inv = (grad * (x - qm)).sum(axis=red, dtype=np.float64).astype(F32)
        d_inv_raw = self._qgrad("inverse", inv_raw, d_inv, training)
        dqg = (d_inv_raw * r).astype(F32)
        dqv = (d_inv_raw * qg * F32(-0.5) * r ** 3).astype(F32)
        dqm = (-inv * s_dy).astype(F32)
        grads = []
        if self.scale:
            grads.append(self._qgrad("gamma", g, dqg, training))
        if self.center:
            grads.append(self._qgrad("beta", b, s_dy, training))
        self.grads = grads if self.trainable else []
        dx = grad * inv
        if training:
            dmean = self._qgrad("mean", mean, dqm, training)
            dvar = self._qgrad("variance", var, dqv, training)
            dx = dx + dmean / F32(n) + dvar * F32(2.0 / n) * (x - mean)
        return dx.astype(F32)

    def get_quantizers(self):
        return [self._q[k] for k in ("gamma", "beta", "mean", "variance", "inverse")]

    def get_quantization_config(self):
        return {f"{k}_quantizer": str(self._q[k]) for k in self._q}

    def get_config(self):
        config = super().get_config()
        config.update({f"{k}_quantizer": serialize(self._q[k]) for k in self._q})
        config.update(activation=self.activation, beta_range=self.beta_range,
                      gamma_range=self.gamma_range)
        return config


class QScaleShift(QuantizedWeightsMixin, Layer):
    """QKeras QScaleShift: ``y = act(Qw(w)*x + Qb(b))`` with scalar (1, 1) weight and bias;
    both quantizers get the layer-default auto_po2 rule."""

    _kernel_type = ("weight", "bias")

    def __init__(self, weight_quantizer=None, bias_quantizer=None, use_bias=True, activation=None,
                 weight_initializer="he_normal", weight_regularizer=None, bias_initializer="zeros",
                 bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.use_bias = use_bias
        self._activation_config = activation
        self.activation = get_quantizer(activation)
        self.weight_regularizer, self.bias_regularizer = weight_regularizer, bias_regularizer
        self._init_quantizers(weight_quantizer=weight_quantizer, bias_quantizer=bias_quantizer,
                              weight_initializer=weight_initializer, bias_initializer=bias_initializer)

    def build(self, input_shape):
        self.weight = self._add_quantized_weight("weight", (1, 1))
        self.bias = self._add_quantized_weight("bias", (1, 1)) if self.use_bias else None

    def call(self, x, training=False):
        w = self._quantize("weight", training)
        z = (x * w.reshape(())).astype(F32)
        if self.use_bias:
            z = (z + self._quantize("bias", training).reshape(())).astype(F32)
        y, self._act_cache = act_forward(self.activation, z, training)
        self._cache = (x, w)
        return y

    def backward(self, grad):
        x, w = self._cache
        dz = self._act_grad(self.activation, self._act_cache, grad)
        grads = [self._quantizer_grad("weight", np.array([[float((dz * x).sum(dtype=np.float64))]], F32))]
        if self.use_bias:
            grads.append(self._quantizer_grad("bias", np.array([[float(dz.sum(dtype=np.float64))]], F32)))
        self.grads = grads if self.trainable else []
        return (dz * w.reshape(())).astype(F32)

    def get_config(self):
        config = super().get_config()
        config.update(use_bias=self.use_bias, activation=act_config(self._activation_config),
                      **{k: v for k, v in self._quantizer_config().items() if not k.endswith(("_range", "_constraint"))})
        return config
