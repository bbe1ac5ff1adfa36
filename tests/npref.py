"""Independent pure-NumPy reference ("oracle") for the qnn_ext quantizers.

Written from /work/shared/spec/quantizers.md (sections 1-3), the qnn_ext API contract and a
reading of QKeras's qkeras/quantizers.py. No qnn_ext code is imported or copied here.

Conventions (all functions):

* Inputs are cast to float32 first; every step QKeras does in float32 is done in float32 here,
  in the same order (``np.rint`` = ``tf.round`` = round half to even).
* Decision 2 (FTZ/DAZ): subnormal inputs become 0 and subnormal outputs become 0 (also after the
  few intermediate steps that can create subnormals: divisions by 2**integer, 2**e, hswish).
* Decision 1: with qnoise_factor == 1 the output is exactly xq; with qf < 1 it is
  ``x' + qf*(xq - x')`` in float32 (x' = x, or x_u for the relu types). With ``use_ste=False``
  QKeras computes ``(1-qf)*x' + qf*xq``; that formula is used for qf < 1 (see UNCERTAIN below).
* Decision 3: NaN inputs give NaN outputs (forced at the end); +/-inf saturate by the formulas.
* Decision 4: means of the least-squares scales (and std's) are accumulated in float64 and then
  rounded to float32; everything after is float32.
* Decision 5: po2 exponents are round-half-even of the *exact* log2 of the float32 argument
  (computed exactly with frexp; ties are impossible). "floor" uses the exact floor(log2).
* Quantizer functions return ``(y, scale)``; ``scale`` is what QKeras stores in ``self.scale``
  (keepdims float32 array for "auto"/"auto_po2", else 1.0 / alpha / the alpha array), ``None`` for
  classes without a scale. The plain functions (hard_sigmoid, ...) return ``y`` only.
* Gradient functions ``ref_<name>_grad(x, dy, ...)`` return dL/dx as float32: ``dy`` times the
  STE factor (1, 0, (1-qf), the slope, the sigmoid derivative, ...), the factor being the exact
  mathematical one computed in float32 (e.g. ``(dy*qs)/qs`` rounding in TF is ignored).
* Stochastic paths take ``u`` = uniform draws of shape (k, x.size): draw j of flat element i is
  ``u[j, i]`` (contract). Stochastic behaviour only when ``training=True`` (bernoulli always).
  Draws: rounding draw 0 (relu/relu_po2 with negative_slope: negative part draw 1); binary(sr):
  0 rounding, 1 sign of zeros; stochastic_ternary: 0 and 1; ternary(sr): draw i for unroll i.
* ``sigmoid=`` ("hard" | "smooth" | "real") is the process-wide internal sigmoid
  (``set_internal_sigmoid``) where it matters.

UNCERTAIN points are marked "UNCERTAIN" in the code comments.
"""

from __future__ import annotations

import functools

import numpy as np

F32 = np.float32
EPS = F32(1e-7)  # K.epsilon()
_TINY = np.finfo(np.float32).tiny  # smallest normal float32
_SQRT_HALF = np.sqrt(0.5)  # float64; a float32 mantissa can never be this close to it


# Test hook: shift every transcendental result (tanh, logistic, log) by this many ulps, so a test
# can accept the few-ulp differences of another tanh/sigmoid/log implementation (and the rounding
# flips they can cause right at a tie).
_ULP_NUDGE = 0


class nudged:
    """Context manager: ``with npref.nudged(k): ...`` evaluates the reference with every
    transcendental result moved by k ulps."""

    def __init__(self, k):
        self.k = k

    def __enter__(self):
        global _ULP_NUDGE
        self.prev, _ULP_NUDGE = _ULP_NUDGE, self.k
        return self

    def __exit__(self, *exc):
        global _ULP_NUDGE
        _ULP_NUDGE = self.prev
        return False


def _nudge(a):
    a = np.asarray(a, dtype=np.float32)
    if _ULP_NUDGE:
        a = (a + F32(_ULP_NUDGE) * np.abs(np.spacing(a))).astype(np.float32)
    return a


def _tanh(x):
    # evaluated in float64 and rounded once: (nearly always) the correctly rounded float32
    return _nudge(np.tanh(f32(x).astype(np.float64)).astype(np.float32))


def _log(x):
    return _nudge(np.log(f32(x).astype(np.float64)).astype(np.float32))


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def _quiet(fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        with np.errstate(all="ignore"):
            return fn(*a, **k)
    return wrapper


def f32(v):
    return np.asarray(v, dtype=np.float32)


def ftz(a):
    """Flush float32 subnormals to (signed) zero."""
    a = np.asarray(a, dtype=np.float32)
    return np.where(np.abs(a) < _TINY, a * F32(0), a).astype(np.float32)


def _in(x):
    x = np.array(x, dtype=np.float32, copy=True)
    return ftz(x)


def _out(y, x_in, shape=None):
    y = ftz(np.asarray(y, dtype=np.float32))
    if shape is not None:
        y = np.broadcast_to(y, shape).astype(np.float32)
    y = np.where(np.isnan(x_in), F32(np.nan), y).astype(np.float32)  # decision 3
    return y


def _sign(a):
    """tf.sign: -1, 0, +1 (NaN -> NaN)."""
    return np.sign(a).astype(np.float32)


def _sign_pm1(a):
    """sign(x) with 0 -> +1 (QKeras: k = sign(x); k += 1 - |k|)."""
    k = _sign(a)
    return (k + (F32(1) - np.abs(k))).astype(np.float32)


def _clip(a, lo, hi):
    return np.minimum(np.maximum(f32(a), f32(lo)), f32(hi)).astype(np.float32)


def _pow2(e):
    """2**e for float exponents holding integers (or +/-inf, NaN), float32, FTZ."""
    e = np.asarray(e, dtype=np.float64)
    out = np.full(e.shape, np.nan, dtype=np.float64)
    fin = np.isfinite(e)
    out[fin] = np.ldexp(1.0, np.clip(e[fin], -4000, 4000).astype(np.int64))
    out[e == np.inf] = np.inf
    out[e == -np.inf] = 0.0
    return ftz(out.astype(np.float32))


def _log2_round(a):
    """Round half even of the exact log2 of float32 a (decision 5)."""
    a = np.asarray(a, dtype=np.float32)
    fr, ex = np.frexp(a.astype(np.float64))
    r = np.where(fr >= _SQRT_HALF, ex, ex - 1).astype(np.float64)
    r = np.where(a > 0, r, np.where(a == 0, -np.inf, np.nan))
    r = np.where(np.isposinf(a), np.inf, r)
    r = np.where(np.isnan(a), np.nan, r)
    return r.astype(np.float32)


def _log2_floor(a):
    """Exact floor(log2 a) of float32 a. UNCERTAIN: QKeras computes floor(log(a)/log(2)) in float32,
    which can be off by one at exact powers of two; the spec's "floor of log2" is used here."""
    a = np.asarray(a, dtype=np.float32)
    fr, ex = np.frexp(a.astype(np.float64))
    r = (ex - 1).astype(np.float64)
    r = np.where(a > 0, r, np.where(a == 0, -np.inf, np.nan))
    r = np.where(np.isposinf(a), np.inf, r)
    r = np.where(np.isnan(a), np.nan, r)
    return r.astype(np.float32)


def _po2_round_scale(s):
    """2**R(log2(s + eps)) as QKeras's auto_po2."""
    return _pow2(_log2_round(f32(s) + EPS))


def _mean64(a, axis):
    """Mean accumulated in float64 then rounded to float32 (decision 4), keepdims."""
    a = np.asarray(a, dtype=np.float32)
    if axis is None:
        axis = tuple(range(a.ndim))
    axis = tuple(axis)
    if len(axis) == 0:
        return a.copy()
    return np.mean(a.astype(np.float64), axis=axis, keepdims=True).astype(np.float32)


def _std(x, axis):
    """K.std: sqrt(mean(|x - mean(x)|**2)), means per decision 4. UNCERTAIN: decision 4 speaks of
    the auto-scale means; applying the same float64 accumulation to the std is our reading."""
    mu = _mean64(x, axis)
    d = np.abs(x - mu).astype(np.float32)
    var = _mean64((d * d).astype(np.float32), axis)
    return np.sqrt(var).astype(np.float32)


def _draw(u, j, shape):
    if u is None:
        raise ValueError("stochastic path needs u (uniform draws, shape (k, x.size))")
    u = np.asarray(u, dtype=np.float32)
    n = int(np.prod(shape)) if len(shape) else 1
    u = u.reshape(-1, n)
    return u[j].reshape(shape)


def _stoch_round(v, precision, u):
    """QKeras stochastic_round: s = v/precision; floor if frac(s) < u else ceil; /(1/precision)."""
    s = F32(1.0 / precision)
    sx = (f32(v) * s).astype(np.float32)
    fl = np.floor(sx)
    frac = (sx - fl).astype(np.float32)
    res = np.where(frac < u, fl, np.ceil(sx)).astype(np.float32)
    return (res / s).astype(np.float32)


def _round(v, stochastic, precision, u):
    if stochastic:
        return _stoch_round(v, precision, u)
    return np.rint(f32(v)).astype(np.float32)


def _scaling_axes(scale_axis, ndim):
    """_get_scaling_axis (channels_last): the reduction axes."""
    if scale_axis is None:
        return tuple(range(max(ndim - 1, 0)))
    if isinstance(scale_axis, (list, tuple)):
        return tuple(i for i in range(ndim) if i not in scale_axis)
    return tuple(i for i in range(ndim) if i != scale_axis)


def _group_means(x, q, scale_axis, elements_per_scale):
    """_get_scale_mean with elements_per_scale: means over all non-scale axes and within groups of
    `eps` consecutive elements of each scale axis, repeated back to the full axis length."""
    shape = list(x.shape)
    if scale_axis is None:
        raise AssertionError("scale_axis must be set if elements_per_scale is used.")
    if isinstance(scale_axis, int) and isinstance(elements_per_scale, int):
        axes, groups = [scale_axis], [elements_per_scale]
    elif isinstance(scale_axis, int):
        raise ValueError("scale_axis is an int while elements_per_scale is a list")
    elif isinstance(elements_per_scale, int):
        axes, groups = list(scale_axis), [elements_per_scale] * len(scale_axis)
    else:
        axes, groups = list(scale_axis), list(elements_per_scale)
        assert len(axes) == len(groups)
    for a, g in zip(axes, groups):
        assert shape[a] % g == 0, "axis length must be divisible by elements_per_scale"
    gmap = dict(zip(axes, groups))
    unrolled, keep, rolled = [], [], []
    for d, n in enumerate(shape):
        if d in gmap:
            keep.append(len(unrolled))
            unrolled += [n // gmap[d], gmap[d]]
            rolled.append(n // gmap[d])
        else:
            unrolled.append(n)
            rolled.append(1)
    red = tuple(i for i in range(len(unrolled)) if i not in keep)
    xq = (x * q).astype(np.float32).reshape(unrolled)
    qq = (q * q).astype(np.float32).reshape(unrolled)
    mx = _mean64(xq, red).reshape(rolled)
    mq = _mean64(qq, red).reshape(rolled)
    for a, g in zip(axes, groups):
        mx = np.repeat(mx, g, axis=a)
        mq = np.repeat(mq, g, axis=a)
    return mx, mq


def _ls_scale(alpha, x, q, scale_axis=None, per_channel_scale=True, elements_per_scale=None,
              min_po2_exponent=None, max_po2_exponent=None):
    """_get_least_squares_scale: mean(x*q)/(mean(q*q)+eps) per channel (rank 1: element-wise),
    po2-rounded for auto_po2 and clipped to [2**min, 2**max]; None->1.0, number->float."""
    if isinstance(alpha, str):
        assert alpha in ("auto", "auto_po2")
        x = f32(x)
        q = f32(q)
        if not per_channel_scale:
            qx = _mean64(x * q, None)
            qq = _mean64(q * q, None)
        elif x.ndim > 1:
            if elements_per_scale is not None:
                qx, qq = _group_means(x, q, scale_axis, elements_per_scale)
            else:
                axes = _scaling_axes(scale_axis, x.ndim)
                qx = _mean64(x * q, axes)
                qq = _mean64(q * q, axes)
        else:
            qx = (x * q).astype(np.float32)
            qq = (q * q).astype(np.float32)
        scale = (qx / (qq + EPS)).astype(np.float32)
        if alpha == "auto_po2":
            scale = _po2_round_scale(scale)
            if min_po2_exponent is not None or max_po2_exponent is not None:
                lo = -np.inf if min_po2_exponent is None else 2.0 ** min_po2_exponent
                hi = np.inf if max_po2_exponent is None else 2.0 ** max_po2_exponent
                scale = _clip(scale, lo, hi)
        return ftz(scale)
    if alpha is None:
        return 1.0
    if isinstance(alpha, np.ndarray):
        return alpha
    return float(alpha)


def _scale_f32(scale):
    return f32(scale)


def _qnoise(xp, xq, qnoise_factor, use_ste):
    """Decision 1 / use_ste=False mixing of x' and xq (float32)."""
    qf = float(qnoise_factor)
    xp = f32(xp)
    xq = f32(xq)
    if qf == 1.0:
        return xq
    # every float32 op flushes its subnormal result (TF CPU FTZ), e.g. qf*(xq - x) for tiny x
    if use_ste:
        return ftz(xp + ftz(F32(qf) * ftz(xq - xp)))
    # UNCERTAIN: the contract's decision 1 writes x' + qf*(xq - x') for qf < 1; with use_ste=False
    # QKeras computes (1-qf)*x' + qf*xq, which is what the spec's STE table says. We follow QKeras.
    return ftz(ftz(F32(1.0 - qf) * xp) + ftz(F32(qf) * xq))


def _ste_factor(qnoise_factor, use_ste):
    return F32(1.0) if use_ste else F32(1.0 - float(qnoise_factor))


# --------------------------------------------------------------------------------------------
# internal sigmoid and the plain functions (§2)
# --------------------------------------------------------------------------------------------

def _sigmoid_real(x):
    x64 = f32(x).astype(np.float64)
    return ftz(_nudge((1.0 / (1.0 + np.exp(-x64))).astype(np.float32)))


def _sig(x, mode="hard"):
    x = f32(x)
    if mode == "hard":
        return _clip((F32(0.5) * x).astype(np.float32) + F32(0.5), 0.0, 1.0)
    if mode == "smooth":
        return _clip((F32(0.1875) * x).astype(np.float32) + F32(0.5), 0.0, 1.0)
    if mode == "real":
        return _sigmoid_real(x)
    raise ValueError("mode has to be 'real', 'hard' or 'smooth'.")


def _sig_grad(x, dy, mode="hard"):
    """dy * d sigma/dx.

    hard: 0.5 where the float32 value 0.5x+0.5 is in [0, 1] *inclusive*: TF's clip gradient
    (Minimum/Maximum grads use <=/>=) passes at the bounds, so QKeras gives 0.5 also at x = -1,
    x = 1 and x = 1+2**-23 (0.5x+0.5 rounds to 1.0). The spec's "|x| < 1" is shorthand; qnn_ext
    reproduces QKeras (decision recorded in README "Numerics").
    smooth: the spec is silent, so QKeras/TF: 0.1875 where fl(0.1875x+0.5) is in [0, 1].
    real: s*(1-s) (TF's SigmoidGrad order: (dy*s)*(1-s))."""
    x = f32(x)
    dy = f32(dy)
    if mode == "hard":
        v = ((F32(0.5) * x).astype(np.float32) + F32(0.5)).astype(np.float32)
        inside = (v >= 0) & (v <= 1)
        return np.where(inside, (dy * F32(0.5)), F32(0)).astype(np.float32)
    if mode == "smooth":
        v = ((F32(0.1875) * x).astype(np.float32) + F32(0.5)).astype(np.float32)
        inside = (v >= 0) & (v <= 1)
        return np.where(inside, (dy * F32(0.1875)), F32(0)).astype(np.float32)
    if mode == "real":
        s = _sigmoid_real(x)
        return ((dy * s).astype(np.float32) * (F32(1) - s)).astype(np.float32)
    raise ValueError(mode)


@_quiet
def ref_hard_sigmoid(x):
    """y = clip(0.5x + 0.5, 0, 1) (float32). Gradient 0.5 where 0.5x+0.5 is in [0, 1]."""
    x = _in(x)
    return _out(_sig(x, "hard"), x)


@_quiet
def ref_hard_sigmoid_grad(x, dy):
    x = _in(x)
    return ftz(_sig_grad(x, dy, "hard"))


@_quiet
def ref_smooth_sigmoid(x):
    """y = clip(0.1875x + 0.5, 0, 1). Gradient 0.1875 where 0 <= 0.1875x+0.5 <= 1."""
    x = _in(x)
    return _out(_sig(x, "smooth"), x)


@_quiet
def ref_smooth_sigmoid_grad(x, dy):
    x = _in(x)
    return ftz(_sig_grad(x, dy, "smooth"))


@_quiet
def ref_hard_tanh(x):
    """y = 2*hard_sigmoid(x) - 1 in float32 (NOT exactly clip(x,-1,1): 0.5x+0.5 rounds).
    Gradient 1 on |x| < 1."""
    x = _in(x)
    return _out((F32(2) * _sig(x, "hard")).astype(np.float32) - F32(1), x)


@_quiet
def ref_hard_tanh_grad(x, dy):
    x = _in(x)
    return ftz(F32(2) * _sig_grad(x, dy, "hard"))


@_quiet
def ref_smooth_tanh(x):
    """y = 2*smooth_sigmoid(x) - 1 (float32). Gradient 0.375 where 0 <= 0.1875x+0.5 <= 1."""
    x = _in(x)
    return _out((F32(2) * _sig(x, "smooth")).astype(np.float32) - F32(1), x)


@_quiet
def ref_smooth_tanh_grad(x, dy):
    x = _in(x)
    return ftz(F32(2) * _sig_grad(x, dy, "smooth"))


@_quiet
def ref_binary_sigmoid(x):
    """y = R(hard_sigmoid(x)) in {0,1} (1 iff x > 0). STE-B: gradient 0.5 on |x| < 1."""
    x = _in(x)
    return _out(np.rint(_sig(x, "hard")), x)


@_quiet
def ref_binary_sigmoid_grad(x, dy):
    x = _in(x)
    return ftz(_sig_grad(x, dy, "hard"))


@_quiet
def ref_binary_tanh(x):
    """y = 2*R(hard_sigmoid(x)) - 1 in {-1,+1} (binary_tanh(0) = -1). STE-B: gradient 1 on |x|<1."""
    x = _in(x)
    return _out((F32(2) * np.rint(_sig(x, "hard"))).astype(np.float32) - F32(1), x)


@_quiet
def ref_binary_tanh_grad(x, dy):
    x = _in(x)
    return ftz(F32(2) * _sig_grad(x, dy, "hard"))


# --------------------------------------------------------------------------------------------
# quantized_bits (§3.1) and quantized_hswish (§3.11)
# --------------------------------------------------------------------------------------------

def _qbits_xq(x, bits, integer, symmetric, keep_negative, alpha, use_stochastic_rounding,
              scale_axis, elements_per_scale, min_po2_exponent, max_po2_exponent,
              post_training_scale, training, u):
    """Returns (xq, scale) of quantized_bits for float32 x (no qnoise applied)."""
    if isinstance(alpha, str):
        symmetric = True
        freeze = post_training_scale is not None
    else:
        if post_training_scale is not None:
            raise ValueError("alpha=%r doesn't support post_training_scale" % (alpha,))
        freeze = True
    if not (isinstance(alpha, str) and alpha == "auto_po2"):
        assert elements_per_scale is None, "elements_per_scale is only supported with auto_po2"
        assert min_po2_exponent is None, "min_po2_exponent is only supported with auto_po2"
        assert max_po2_exponent is None, "max_po2_exponent is only supported with auto_po2"
    kn = bool(keep_negative)
    ub = bits - int(kn)
    m = F32(2.0 ** ub)
    m_i = F32(2.0 ** integer)

    if isinstance(alpha, str):
        if alpha not in ("auto", "auto_po2"):
            raise ValueError("Invalid alpha '%s'" % alpha)
        axis = _scaling_axes(scale_axis, x.ndim) if x.ndim > 1 else (0,)
        xn = ftz(x / m_i)
        levels = (2 ** (bits - 1) - 1) * 2
        half = F32(levels / 2)

        def codes(s):
            v = np.floor((np.abs(xn) / s).astype(np.float32) + F32(0.5)).astype(np.float32)
            return (_sign(xn) * np.where(v < half, v, half)).astype(np.float32)

        if freeze:
            s = (f32(post_training_scale) / m).astype(np.float32)
        else:
            mx = np.max(np.abs(xn), axis=axis, keepdims=True).astype(np.float32)
            s = ((mx * F32(2)).astype(np.float32) / F32(levels)).astype(np.float32)
            if alpha == "auto_po2":
                s = _po2_round_scale(s)
                for _ in range(5):
                    z = codes(s)
                    s = _ls_scale("auto_po2", xn, z, scale_axis=scale_axis,
                                  elements_per_scale=elements_per_scale,
                                  min_po2_exponent=min_po2_exponent,
                                  max_po2_exponent=max_po2_exponent)
        z = codes(s)
        scale = (s * m).astype(np.float32)
        xq = ((m_i * z).astype(np.float32) / m).astype(np.float32)
        y = (scale * xq).astype(np.float32)
        stored = f32(post_training_scale) if freeze else scale
        return y, stored

    scale = 1.0 if alpha is None else alpha
    if ub > 0:
        p = ((x * m).astype(np.float32) / m_i).astype(np.float32)
        stoch = bool(use_stochastic_rounding) and training
        r = _round(p, stoch, 1.0, _draw(u, 0, x.shape) if stoch else None)
        lo = F32(int(kn)) * (-m + F32(symmetric))
        xq = ((m_i * _clip(r, lo, m - F32(1))).astype(np.float32) / m).astype(np.float32)
    else:
        xq = _sign_pm1(x)
        if not kn:
            xq = ((xq + F32(1)) / F32(2)).astype(np.float32)
    y = (_scale_f32(scale) * xq).astype(np.float32)
    return y, scale


@_quiet
def ref_quantized_bits(x, *, bits=8, integer=0, symmetric=0, keep_negative=True, alpha=None,
                       use_stochastic_rounding=False, scale_axis=None, qnoise_factor=1.0,
                       var_name=None, use_ste=True, use_variables=False, elements_per_scale=None,
                       min_po2_exponent=None, max_po2_exponent=None, post_training_scale=None,
                       training=False, u=None):
    """Fixed point: xq = m_i*C(R(x*m/m_i), kn*(-m+sym), m-1)/m (ub=bits-kn>0; ub==0: sign, 0->+1),
    times alpha; "auto"/"auto_po2": per-channel s (po2 + 5 LS refinements), xq = s*m_i*z with
    z = sign*min(floor(|x/m_i|/s+0.5), levels/2), scale = s*m. STE form A: gradient 1
    (use_ste=False: 1-qf)."""
    x = _in(x)
    xq, scale = _qbits_xq(x, bits, integer, symmetric, keep_negative, alpha,
                          use_stochastic_rounding, scale_axis, elements_per_scale,
                          min_po2_exponent, max_po2_exponent, post_training_scale, training, u)
    y = _qnoise(x, xq, qnoise_factor, use_ste)
    return _out(y, x, x.shape), scale


@_quiet
def ref_quantized_bits_grad(x, dy, *, qnoise_factor=1.0, use_ste=True, training=False, **_ignored):
    """STE form A: dL/dx = dy (use_ste=False: dy*(1-qf))."""
    x = _in(x)
    return ftz(np.broadcast_to((f32(dy) * _ste_factor(qnoise_factor, use_ste)), x.shape))


def _hswish_pre(x, relu_shift, relu_upper_bound):
    ub = F32(relu_upper_bound)
    shift_x = (x + F32(relu_shift)).astype(np.float32)
    relu_x = np.where(shift_x <= ub, np.maximum(shift_x, F32(0)), ub).astype(np.float32)
    prod = ftz(x * relu_x)
    # UNCERTAIN (decision 3 vs QKeras float accident): x = -inf gives -inf*0 = NaN in QKeras;
    # hswish(-inf) is 0 mathematically, we use 0 for that product.
    prod = np.where(np.isneginf(x), F32(0), prod).astype(np.float32)
    h = ftz(prod / ub)
    return h, shift_x, relu_x


@_quiet
def ref_quantized_hswish(x, *, bits=8, integer=0, symmetric=0, alpha=None,
                         use_stochastic_rounding=False, scale_axis=None, qnoise_factor=1.0,
                         var_name=None, use_variables=False, relu_shift=3, relu_upper_bound=6,
                         training=False, u=None):
    """h = x*min(relu(x+shift), ub)/ub (float32), then quantized_bits(h) (keep_negative=True).
    STE: gradient of h (the quantized_bits part is form A)."""
    assert relu_upper_bound > 0 and relu_shift > 0
    x = _in(x)
    h, _, _ = _hswish_pre(x, relu_shift, relu_upper_bound)
    xq, scale = _qbits_xq(h, bits, integer, symmetric, True, alpha, use_stochastic_rounding,
                          scale_axis, None, None, None, None, training, u)
    y = _qnoise(h, xq, qnoise_factor, True)
    return _out(y, x, x.shape), scale


@_quiet
def ref_quantized_hswish_grad(x, dy, *, relu_shift=3, relu_upper_bound=6, training=False,
                              **_ignored):
    """dh/dx = relu_x/ub + x*[0 < x+shift <= ub]/ub, evaluated in TF's op order:
    g = dy/ub; g*relu_x + (g*x)*mask. UNCERTAIN: the spec does not pin the float op order."""
    x = _in(x)
    dy = f32(dy)
    ub = F32(relu_upper_bound)
    _, shift_x, relu_x = _hswish_pre(x, relu_shift, relu_upper_bound)
    g = ftz(dy / ub)
    a = ftz(g * relu_x)
    mask = (shift_x > 0) & (shift_x <= ub)
    b = np.where(mask, ftz(g * x), F32(0)).astype(np.float32)
    # NaN in -> NaN out (QKeras's where() would turn relu_x into ub and give ~dy; qnn_ext
    # propagates NaN instead, README "Numerics").
    return np.where(np.isnan(x), F32(np.nan), ftz(a + b)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# quantized_linear (§3.2)
# --------------------------------------------------------------------------------------------

def _linear_bounds(bits, symmetric, keep_negative):
    kn = bool(keep_negative)
    if bits == 1 and kn:
        return F32(-0.5), F32(0.5), F32(0.5)
    ubp = F32(2.0 ** (bits - int(kn)))
    lo = F32(int(kn)) * (-ubp + F32(symmetric))
    hi = ubp - F32(1)
    return F32(lo), F32(hi), F32(0.0)


def _linear_qs(x, bits, integer, symmetric, keep_negative, alpha, scale_axis, stoch, u0):
    kn = bool(keep_negative)
    dts = F32(2.0 ** (integer - bits + int(kn)))
    lo, hi, shift = _linear_bounds(bits, symmetric, kn)

    def scr(qs):
        sx = ftz(x / qs)
        c = _clip(sx, lo, hi)
        return (_round((c - shift).astype(np.float32), stoch, 1.0, u0) + shift).astype(np.float32)

    if isinstance(alpha, str):
        if alpha not in ("auto", "auto_po2"):
            raise ValueError("Invalid alpha '%s'" % alpha)
        # rank 1: _get_scaling_axis gives tf.range(0) = no axes, i.e. per element.
        axes = _scaling_axes(scale_axis, x.ndim)
        rng = (hi - lo).astype(np.float32)
        if kn:
            dmax = np.max(np.abs(x), axis=axes, keepdims=True) if axes else np.abs(x)
            qs = ((f32(dmax) * F32(2)).astype(np.float32) / rng).astype(np.float32)
        else:
            dmax = np.max(x, axis=axes, keepdims=True) if axes else x.copy()
            qs = (f32(dmax) / rng).astype(np.float32)
        qs = np.maximum(qs, EPS).astype(np.float32)
        if alpha == "auto_po2":
            qs = _po2_round_scale(qs)
            # tf.while_loop stops when no channel changes; a converged channel is a fixed point,
            # so running all iterations gives the same values.
            for _ in range(1 if shift != 0 else 5):
                qs = _ls_scale("auto_po2", x, scr(qs), scale_axis=scale_axis)
        scale = (qs / dts).astype(np.float32)
    else:
        if alpha is None:
            qs = dts
            scale = 1.0
        else:
            qs = (f32(alpha) * dts).astype(np.float32)
            scale = alpha
    return qs, scale, scr, lo, hi


@_quiet
def ref_quantized_linear(x, *, bits=8, integer=0, symmetric=1, keep_negative=True, alpha=None,
                         use_stochastic_rounding=False, scale_axis=None, qnoise_factor=1.0,
                         var_name=None, use_variables=False, training=False, u=None):
    """xq = qs*(R(C(x/qs, lo, hi) - shift) + shift), qs = 2**(i-b+kn) [*alpha] or data-dependent
    ("auto": max-based per channel, rank 1 per element; "auto_po2": po2 + up to 5 LS steps).
    y = x + qf*(xq - x). Gradient (no stop_gradient): (1-qf) + qf*[lo <= x/qs <= hi]."""
    if bits <= 0:
        raise ValueError("Bit count %r must be positive" % (bits,))
    x = _in(x)
    stoch = bool(use_stochastic_rounding) and training
    # UNCERTAIN: with auto_po2 + stochastic rounding QKeras also rounds stochastically inside the
    # scale iterations (fresh draws each time); we use draw 0 everywhere.
    u0 = _draw(u, 0, x.shape) if stoch else None
    qs, scale, scr, _, _ = _linear_qs(x, bits, integer, symmetric, keep_negative, alpha,
                                      scale_axis, stoch, u0)
    xq = (scr(qs) * qs).astype(np.float32)
    y = _qnoise(x, xq, qnoise_factor, True)
    return _out(y, x, x.shape), scale


@_quiet
def ref_quantized_linear_grad(x, dy, *, bits=8, integer=0, symmetric=1, keep_negative=True,
                              alpha=None, use_stochastic_rounding=False, scale_axis=None,
                              qnoise_factor=1.0, training=False, u=None, **_ignored):
    """dy * (1 if lo <= x/qs <= hi else 1-qf) (clip gradient inclusive at the bounds), the spec's
    exact factor. TF's autodiff evaluates (dy - qf*dy) + ((qf*dy)*qs)/qs instead, which can differ
    in the last bit or two; the tests allow that (the spec does not pin the op order)."""
    x = _in(x)
    stoch = bool(use_stochastic_rounding) and training
    u0 = _draw(u, 0, x.shape) if stoch else None
    qs, _, _, lo, hi = _linear_qs(x, bits, integer, symmetric, keep_negative, alpha, scale_axis,
                                  stoch, u0)
    sx = ftz(x / qs)
    inside = (sx >= lo) & (sx <= hi)
    fac = np.where(inside, F32(1), F32(1.0 - float(qnoise_factor))).astype(np.float32)
    return ftz(f32(dy) * fac)


# --------------------------------------------------------------------------------------------
# quantized_relu (§3.3)
# --------------------------------------------------------------------------------------------

def _relu_cap(bits, integer, negative_slope, relu_upper_bound, is_quantized_clip):
    nsb = bits - (1 if negative_slope != 0 else 0)
    m_i = F32(2.0 ** integer)
    m_f = F32(2.0 ** (integer - nsb))
    if is_quantized_clip:
        return (m_i - m_f).astype(np.float32)
    if relu_upper_bound is not None:
        return F32(relu_upper_bound)
    return None


def _leaky(x, slope):
    if slope == 0:
        return np.maximum(x, F32(0)).astype(np.float32)
    return np.where(x > 0, x, (x * F32(slope)).astype(np.float32)).astype(np.float32)


def _relu_xu(x, cap, slope):
    lr = _leaky(x, slope)
    if cap is None:
        return lr
    return np.where(x <= cap, lr, cap).astype(np.float32)


@_quiet
def ref_quantized_relu(x, *, bits=8, integer=0, use_sigmoid=0, negative_slope=0.0,
                       use_stochastic_rounding=False, relu_upper_bound=None,
                       is_quantized_clip=True, qnoise_factor=1.0, var_name=None, use_ste=True,
                       use_variables=False, enable_fast_inference=False, sigmoid="hard",
                       training=False, u=None):
    """Plain: xq = m_i*C(R(x*m/m_i)/m, 0, 1-1/m) (+ m_i*slope*C(R(p*slope)/(slope*m), -1, 0));
    use_sigmoid: p = sigma(x/m_i)*m, xq = m_i*C(2R(p)/m - 1, 0, 1-1/m) (+ slope term).
    Stochastic rounding uses precision 0.5. STE form A': gradient of x_u (1 on (0,cap], slope
    below/at 0, 0 above cap)."""
    assert negative_slope >= 0.0
    if negative_slope != 0.0:
        assert np.mod(np.log2(negative_slope), 1) == 0
    x = _in(x)
    if enable_fast_inference:
        # spec §3.3: m_i*C(R(x*2**(bits-integer))*2**-bits, 0, 1-2**-bits); no STE/qnoise.
        m_i = F32(2.0 ** integer)
        r = np.rint((x * F32(2.0 ** (bits - integer))).astype(np.float32))
        c = _clip((r * F32(2.0 ** -bits)).astype(np.float32), 0.0, F32(1) - F32(2.0 ** -bits))
        return _out((m_i * c).astype(np.float32), x, x.shape), None
    slope = float(negative_slope)
    nsb = bits - (1 if slope != 0 else 0)
    m = F32(2.0 ** nsb)
    m_i = F32(2.0 ** integer)
    cap = _relu_cap(bits, integer, slope, relu_upper_bound, is_quantized_clip)
    x_u = _relu_xu(x, cap, slope)
    stoch = bool(use_stochastic_rounding) and training
    # QKeras rounds the positive and the negative part with two separate uniform tensors: draw 0
    # for the positive part, draw 1 for the negative part (k = 2 when negative_slope > 0).
    # UNCERTAIN: the contract names only draw 0; draw 1 is what qnn_ext does (and QKeras's
    # two tf.random.uniform calls suggest).
    u0 = _draw(u, 0, x.shape) if stoch else None
    u1 = _draw(u, 1, x.shape) if (stoch and slope > 0) else None
    one_m = (F32(1) - F32(1) / m).astype(np.float32)
    if use_sigmoid:
        p = (_sig(ftz(x / m_i), sigmoid) * m).astype(np.float32)
        r = _round(p, stoch, 0.5, u0)
        t = (F32(2) * (r / m).astype(np.float32)).astype(np.float32) - F32(1)
        xq = (m_i * _clip(t, 0.0, one_m)).astype(np.float32)
        if slope > 0:
            nf = (F32(1) / (F32(slope) * m).astype(np.float32)).astype(np.float32)
            rn = _round((p * F32(slope)).astype(np.float32), stoch, 0.5, u1)
            tn = (F32(2) * (rn * nf).astype(np.float32)).astype(np.float32) - F32(1)
            xq = (xq + ((m_i * F32(slope)) * _clip(tn, -1.0, 0.0)).astype(np.float32))
    else:
        p = ((x * m).astype(np.float32) / m_i).astype(np.float32)
        r = _round(p, stoch, 0.5, u0)
        xq = (m_i * _clip((r / m).astype(np.float32), 0.0, one_m)).astype(np.float32)
        if slope > 0:
            nf = (F32(1) / (F32(slope) * m).astype(np.float32)).astype(np.float32)
            rn = _round((p * F32(slope)).astype(np.float32), stoch, 0.5, u1)
            xq = (xq + ((m_i * F32(slope))
                        * _clip((rn * nf).astype(np.float32), -1.0, 0.0)).astype(np.float32))
    xq = xq.astype(np.float32)
    if relu_upper_bound and not is_quantized_clip:
        ubf = F32(relu_upper_bound)
        xq = np.where(xq <= ubf, xq, ubf).astype(np.float32)
    y = _qnoise(x_u, xq, qnoise_factor, use_ste)
    return _out(y, x, x.shape), None


@_quiet
def ref_quantized_relu_grad(x, dy, *, bits=8, integer=0, negative_slope=0.0,
                            relu_upper_bound=None, is_quantized_clip=True, qnoise_factor=1.0,
                            use_ste=True, training=False, **_ignored):
    """dy * d x_u/dx * (1 or 1-qf): 1 on (0, cap], slope for x <= 0, 0 above cap. NaN: 0 with a
    cap (where(NaN <= cap) takes the cap branch), slope without (LeakyReluGrad: NaN > 0 false)."""
    x = _in(x)
    slope = float(negative_slope)
    cap = _relu_cap(bits, integer, slope, relu_upper_bound, is_quantized_clip)
    d = np.where(x > 0, F32(1), F32(slope)).astype(np.float32)
    if cap is not None:
        d = np.where(x <= cap, d, F32(0)).astype(np.float32)
    return ftz((f32(dy) * d).astype(np.float32) * _ste_factor(qnoise_factor, use_ste))


# --------------------------------------------------------------------------------------------
# quantized_tanh (§3.4), quantized_sigmoid (§3.5), quantized_ulaw (§3.6)
# --------------------------------------------------------------------------------------------

def _tanh_p(x, use_real_tanh, sigmoid):
    if use_real_tanh:
        return _tanh(x)
    return ((F32(2) * _sig(x, sigmoid)).astype(np.float32) - F32(1)).astype(np.float32)


@_quiet
def ref_quantized_tanh(x, *, bits=8, use_stochastic_rounding=False, symmetric=False,
                       use_real_tanh=False, sigmoid="hard", training=False, u=None):
    """p = tanh(x) or 2*sigma(x)-1; y = C(R(p*m)/m, -1+sym/m, 1-1/m), m = 2**(bits-1)
    (stochastic precision 0.5). STE form B: gradient p'(x) where the rounded value is in range."""
    x = _in(x)
    m = F32(2.0 ** (bits - 1))
    p = _tanh_p(x, use_real_tanh, sigmoid)
    stoch = bool(use_stochastic_rounding) and training
    r = _round((p * m).astype(np.float32), stoch, 0.5, _draw(u, 0, x.shape) if stoch else None)
    lo = F32(-1.0 + (1.0 * bool(symmetric)) / float(m))
    hi = F32(1.0 - 1.0 / float(m))
    y = _clip((r / m).astype(np.float32), lo, hi)
    return _out(y, x, x.shape), None


@_quiet
def ref_quantized_tanh_grad(x, dy, *, bits=8, use_stochastic_rounding=False, symmetric=False,
                            use_real_tanh=False, sigmoid="hard", training=False, u=None):
    """dy * [lo <= R(p*m)/m <= hi] * dp/dx (hard: 1 on |x|<1; real: 1 - tanh(x)**2)."""
    x = _in(x)
    m = F32(2.0 ** (bits - 1))
    p = _tanh_p(x, use_real_tanh, sigmoid)
    stoch = bool(use_stochastic_rounding) and training
    r = _round((p * m).astype(np.float32), stoch, 0.5, _draw(u, 0, x.shape) if stoch else None)
    v = (r / m).astype(np.float32)
    lo = F32(-1.0 + (1.0 * bool(symmetric)) / float(m))
    hi = F32(1.0 - 1.0 / float(m))
    inside = (v >= lo) & (v <= hi)
    dy = f32(dy)
    if use_real_tanh:
        g = (dy * (F32(1) - (p * p).astype(np.float32))).astype(np.float32)
    else:
        g = (F32(2) * _sig_grad(x, dy, sigmoid)).astype(np.float32)
    return ftz(np.where(inside, g, F32(0)))


def _sigmoid_p(x, use_real_sigmoid, sigmoid):
    return _sigmoid_real(x) if use_real_sigmoid else _sig(x, sigmoid)


@_quiet
def ref_quantized_sigmoid(x, *, bits=8, symmetric=False, use_real_sigmoid=False,
                          use_stochastic_rounding=False, sigmoid="hard", training=False, u=None):
    """p = sigmoid(x) or sigma(x); y = C(R(p*m)/m, sym/m, 1-1/m), m = 2**bits (stochastic
    precision 0.5). STE form B: gradient p'(x) where the rounded value is in range."""
    x = _in(x)
    m = F32(2.0 ** bits)
    p = _sigmoid_p(x, use_real_sigmoid, sigmoid)
    stoch = bool(use_stochastic_rounding) and training
    r = _round((p * m).astype(np.float32), stoch, 0.5, _draw(u, 0, x.shape) if stoch else None)
    lo = F32((1.0 * bool(symmetric)) / float(m))
    hi = F32(1.0 - 1.0 / float(m))
    y = _clip((r / m).astype(np.float32), lo, hi)
    return _out(y, x, x.shape), None


@_quiet
def ref_quantized_sigmoid_grad(x, dy, *, bits=8, symmetric=False, use_real_sigmoid=False,
                               use_stochastic_rounding=False, sigmoid="hard", training=False,
                               u=None):
    """dy * [lo <= R(p*m)/m <= hi] * dp/dx."""
    x = _in(x)
    m = F32(2.0 ** bits)
    p = _sigmoid_p(x, use_real_sigmoid, sigmoid)
    stoch = bool(use_stochastic_rounding) and training
    r = _round((p * m).astype(np.float32), stoch, 0.5, _draw(u, 0, x.shape) if stoch else None)
    v = (r / m).astype(np.float32)
    lo = F32((1.0 * bool(symmetric)) / float(m))
    hi = F32(1.0 - 1.0 / float(m))
    inside = (v >= lo) & (v <= hi)
    g = _sig_grad(x, dy, "real" if use_real_sigmoid else sigmoid)
    return ftz(np.where(inside, g, F32(0)))


def _ulaw_parts(x, bits, integer, symmetric, u, sigmoid):
    m = F32(2.0 ** (bits - 1))
    m_i = F32(2.0 ** integer)
    xs = ftz(x / m_i)
    p = (_sig(xs, sigmoid) * m).astype(np.float32)
    rp = ((F32(2) * (np.rint(p) / m).astype(np.float32)).astype(np.float32)
          - F32(1)).astype(np.float32)
    uu = F32(u)
    arg = (F32(1) + (uu * np.abs(rp)).astype(np.float32)).astype(np.float32)
    den = np.log(F32(1.0 + u)).astype(np.float32)  # a constant in TF
    ul = ((_sign(rp) * _log(arg)).astype(np.float32) / den).astype(np.float32)
    lo = F32(-1.0 + (1.0 * symmetric) / float(m))
    hi = F32(1.0 - 1.0 / float(m))
    return xs, m_i, rp, arg, den, ul, lo, hi


@_quiet
def ref_quantized_ulaw(x, *, bits=8, integer=0, symmetric=0, u=255.0, sigmoid="hard"):
    """p = sigma(x/m_i)*m; rp = 2R(p)/m - 1; y = m_i*C(sign(rp)*ln(1+u|rp|)/ln(1+u), -1+sym/m,
    1-1/m), m = 2**(bits-1). STE form B (no qnoise). The log makes it a few-ulp comparison."""
    x = _in(x)
    _, m_i, _, _, _, ul, lo, hi = _ulaw_parts(x, bits, integer, symmetric, u, sigmoid)
    y = (m_i * _clip(ul, lo, hi)).astype(np.float32)
    return _out(y, x, x.shape), None


@_quiet
def ref_quantized_ulaw_grad(x, dy, *, bits=8, integer=0, symmetric=0, u=255.0, sigmoid="hard"):
    """dy * [lo <= ul <= hi] * u/((1+u|rp|) ln(1+u)) * 2 * sigma'(x/m_i), where TF's autodiff gives
    0 when rp == 0 (d|rp|/drp = sign(0) = 0). UNCERTAIN: that zero (a band of x around 0) follows
    QKeras/TF; the spec only says "form B". Computed in float64, rounded once."""
    x = _in(x)
    xs, m_i, rp, arg, den, ul, lo, hi = _ulaw_parts(x, bits, integer, symmetric, u, sigmoid)
    inside = (ul >= lo) & (ul <= hi) & (rp != 0)
    dul = float(u) / (arg.astype(np.float64) * float(den))
    one = np.ones(x.shape, np.float32)
    sg = _sig_grad(xs, one, sigmoid).astype(np.float64)
    g = f32(dy).astype(np.float64) * dul * 2.0 * sg
    return ftz(np.where(inside, g, 0.0).astype(np.float32))


# --------------------------------------------------------------------------------------------
# quantized_po2 / quantized_relu_po2 (§3.7)
# --------------------------------------------------------------------------------------------

def _po2_exps(bits, max_value, quadratic_approximation, relu):
    if max_value is not None and max_value < 0:
        raise ValueError("po2 max_value should be non-negative.")
    need = 0 if (max_value is not None and max_value <= 1) else 1
    eff = (bits - need) if relu else (bits - 1 - need)
    min_exp = -2 ** eff
    max_exp = 2 ** eff - 1
    if quadratic_approximation:
        max_exp = 2 * (max_exp // 2)
    return min_exp, max_exp


def _stoch_po2(xin, u0):
    y = np.abs(xin).astype(np.float32)
    xl = _log2_round((y + EPS).astype(np.float32))
    po2 = _pow2(xl)
    left = np.where(po2 > y, xl - F32(1), xl).astype(np.float32)
    right = np.where(po2 > y, xl, xl + F32(1)).astype(np.float32)
    lo = _pow2(left)
    hi = _pow2(right)
    val = ((u0 * (hi - lo).astype(np.float32)).astype(np.float32) + lo).astype(np.float32)
    return np.where(y < val, left, right).astype(np.float32)


def _clip_po2(a, min_exp, max_exp, max_value, quadratic, stoch, log2_rounding, u0):
    """_clip_power_of_two: exponent of magnitude a (a < eps -> min_exp)."""
    assert log2_rounding in ("rnd", "floor")
    small = a < EPS
    xf = np.where(small, EPS, a).astype(np.float32)
    if max_value is not None:
        mv = F32(max_value)
        xf = np.where(xf >= mv, mv, xf).astype(np.float32)
    if quadratic:
        qfac = F32(2)
        xin = np.sqrt(xf).astype(np.float32)
    else:
        qfac = F32(1)
        xin = xf
    if log2_rounding == "floor":
        e = _log2_floor(xin)
    elif stoch:
        e = _stoch_po2(xin, u0)
    else:
        e = _log2_round(xin)
    e = (qfac * _clip(e, F32(min_exp), F32(max_exp))).astype(np.float32)
    return np.where(small, F32(min_exp), e).astype(np.float32)


@_quiet
def ref_quantized_po2(x, *, bits=8, max_value=None, use_stochastic_rounding=False,
                      quadratic_approximation=False, log2_rounding="rnd", qnoise_factor=1.0,
                      var_name=None, use_ste=True, use_variables=False, training=False, u=None):
    """xq = sign(x)(0->+1) * 2**e(|x|), e = C(R(log2 min(|x|, max_value)), min_exp, max_exp)
    (|x| < eps -> min_exp; quadratic: 2*C(R(log2 sqrt)), floor mode, stochastic po2 rounding).
    STE form A: gradient 1 (use_ste=False: 1-qf)."""
    x = _in(x)
    min_exp, max_exp = _po2_exps(bits, max_value, quadratic_approximation, relu=False)
    stoch = bool(use_stochastic_rounding) and training
    u0 = _draw(u, 0, x.shape) if stoch else None
    e = _clip_po2(np.abs(x), min_exp, max_exp, max_value, quadratic_approximation, stoch,
                  log2_rounding, u0)
    xq = (_sign_pm1(x) * _pow2(e)).astype(np.float32)
    y = _qnoise(x, xq, qnoise_factor, use_ste)
    return _out(y, x, x.shape), None


@_quiet
def ref_quantized_po2_grad(x, dy, *, qnoise_factor=1.0, use_ste=True, training=False,
                           **_ignored):
    """STE form A: dy (use_ste=False: dy*(1-qf))."""
    x = _in(x)
    return ftz(np.broadcast_to(f32(dy) * _ste_factor(qnoise_factor, use_ste), x.shape))


@_quiet
def ref_quantized_relu_po2(x, *, bits=8, max_value=None, negative_slope=0,
                           use_stochastic_rounding=False, quadratic_approximation=False,
                           log2_rounding="rnd", qnoise_factor=1.0, var_name=None, use_ste=True,
                           use_variables=False, training=False, u=None):
    """xq = 2**e(relu(x)) if x >= 0 or slope == 0 (negatives -> 2**min_exp) else
    -2**e(slope*|x|). STE form A' with x_u = leaky relu capped at max_value."""
    assert negative_slope >= 0.0
    if negative_slope != 0:
        assert np.mod(np.log2(negative_slope), 1) == 0
    x = _in(x)
    slope = float(negative_slope)
    min_exp, max_exp = _po2_exps(bits, max_value, quadratic_approximation, relu=True)
    x_u = _relu_xu(x, None if max_value is None else F32(max_value), slope)
    stoch = bool(use_stochastic_rounding) and training
    # Positive branch draw 0, negative branch draw 1 (k = 2 when negative_slope > 0), like
    # QKeras's two stochastic_round_po2 calls. UNCERTAIN: the contract names only draw 0.
    u0 = _draw(u, 0, x.shape) if stoch else None
    u1 = _draw(u, 1, x.shape) if (stoch and slope > 0) else None
    pos = _clip_po2(np.maximum(x, F32(0)).astype(np.float32), min_exp, max_exp, max_value,
                    quadratic_approximation, stoch, log2_rounding, u0)
    negm = (np.maximum(-x, F32(0)).astype(np.float32) * F32(slope)).astype(np.float32)
    neg = _clip_po2(negm, min_exp, max_exp, max_value, quadratic_approximation,
                    stoch and slope > 0, log2_rounding, u1)
    xq = np.where((x >= 0) | (slope == 0.0), _pow2(pos), -_pow2(neg)).astype(np.float32)
    y = _qnoise(x_u, xq, qnoise_factor, use_ste)
    return _out(y, x, x.shape), None


@_quiet
def ref_quantized_relu_po2_grad(x, dy, *, max_value=None, negative_slope=0, qnoise_factor=1.0,
                                use_ste=True, training=False, **_ignored):
    """dy * d x_u/dx: 1 on (0, max_value], slope for x <= 0, 0 above max_value (NaN: 0 with
    max_value, slope without); *(1-qf) if not use_ste."""
    x = _in(x)
    slope = float(negative_slope)
    d = np.where(x > 0, F32(1), F32(slope)).astype(np.float32)
    if max_value is not None:
        d = np.where(x <= F32(max_value), d, F32(0)).astype(np.float32)
    return ftz((f32(dy) * d).astype(np.float32) * _ste_factor(qnoise_factor, use_ste))


# --------------------------------------------------------------------------------------------
# binary / stochastic_binary (§3.8)
# --------------------------------------------------------------------------------------------

def _binary_prep(x, use_stochastic_rounding, training, u):
    """x after the optional stochastic pre-rounding, and k = sign with zeros resolved."""
    if use_stochastic_rounding and training:
        axis = None if x.ndim == 1 else tuple(range(x.ndim - 1))
        mx = np.max(np.abs(x), axis=axis, keepdims=True).astype(np.float32)
        mx = np.where(mx > 1, F32(1), mx).astype(np.float32)
        f = (F32(2) * mx).astype(np.float32)
        # UNCERTAIN: an all-zero channel gives 0/0 = NaN in QKeras here; tests avoid it.
        x = (f * _stoch_round(ftz(x / f), 0.125, _draw(u, 0, x.shape))).astype(np.float32)
        x = ftz(x)
    k = _sign(x)
    if use_stochastic_rounding:
        if training:
            rs = (F32(2) * np.rint(_draw(u, 1, x.shape))).astype(np.float32) - F32(1)
        else:
            # spec: zeros -> +1 in inference (QKeras multiplies by ones_like(tf.shape(x)), a
            # rank-length vector - a broadcasting bug for most shapes).
            rs = F32(1)
        k = (k + (F32(1) - np.abs(k)) * rs).astype(np.float32)
    k = (k + (F32(1) - np.abs(k))).astype(np.float32)
    return x, k


@_quiet
def ref_binary(x, *, use_01=False, alpha=None, use_stochastic_rounding=False, scale_axis=None,
               elements_per_scale=None, min_po2_exponent=None, max_po2_exponent=None,
               training=False, u=None):
    """k = sign(x) (0 -> +1; training+sr: x pre-rounded to f*sr(x/f, 1/8) with f = 2 min(max|x|,1),
    zeros get a random sign from draw 1); use_01 -> (k+1)/2; y = scale*k with scale = LS(alpha)
    (None -> 1). STE form A; alpha None -> surrogate tanh: gradient 1 - tanh(x)**2."""
    x = _in(x)
    xs, k = _binary_prep(x, use_stochastic_rounding, training, u)
    if use_01:
        k = ((k + F32(1)) / F32(2)).astype(np.float32)
    xa = _tanh(xs) if alpha is None else xs
    scale = _ls_scale(alpha, xa, k, scale_axis=scale_axis, elements_per_scale=elements_per_scale,
                      min_po2_exponent=min_po2_exponent, max_po2_exponent=max_po2_exponent)
    y = (_scale_f32(scale) * k).astype(np.float32)
    return _out(y, x, x.shape), scale


@_quiet
def ref_binary_grad(x, dy, *, alpha=None, use_stochastic_rounding=False, training=False, u=None,
                    **_ignored):
    """alpha None: dy*(1 - tanh(x')**2) (x' = x, or the pre-rounded x when training with sr);
    else dy."""
    x = _in(x)
    dy = f32(dy)
    if alpha is not None:
        return ftz(np.broadcast_to(dy, x.shape))
    xs, _ = _binary_prep(x, use_stochastic_rounding, training, u)
    t = _tanh(xs)
    return ftz((dy * (F32(1) - (t * t).astype(np.float32))).astype(np.float32))


@_quiet
def ref_stochastic_binary(x, *, alpha=None, temperature=6.0, use_real_sigmoid=True,
                          sigmoid="hard", training=False, u=None):
    """training: p = sigmoid(T*x/std) (std per channel + eps for string alpha, else 1),
    q = +1 if p >= u0 else -1 (QKeras: sign(p-u), 0 -> +1), scale = LS(alpha, x, sign(x)),
    y = scale*q (form A, gradient 1). Inference: binary(alpha)."""
    x = _in(x)
    if not training:
        return ref_binary(x, alpha=alpha)
    if isinstance(alpha, str):
        assert alpha in ("auto", "auto_po2")
        axis = tuple(range(x.ndim - 1)) if x.ndim > 1 else (0,)
        std = (_std(x, axis) + EPS).astype(np.float32)
    else:
        std = F32(1)
    t = ((F32(temperature) * x).astype(np.float32) / std).astype(np.float32)
    p = _sigmoid_real(t) if use_real_sigmoid else _sig(t, sigmoid)
    d = ftz((p - _draw(u, 0, x.shape)).astype(np.float32))
    q = _sign_pm1(d)
    scale = _ls_scale(alpha, x, _sign_pm1(x))
    y = (_scale_f32(scale) * q).astype(np.float32)
    return _out(y, x, x.shape), scale


@_quiet
def ref_stochastic_binary_grad(x, dy, *, alpha=None, training=False, **_ignored):
    """training: dy (form A on x); inference: binary's gradient."""
    x = _in(x)
    if training:
        return ftz(np.broadcast_to(f32(dy), x.shape))
    return ref_binary_grad(x, dy, alpha=alpha)


# --------------------------------------------------------------------------------------------
# ternary / stochastic_ternary (§3.9)
# --------------------------------------------------------------------------------------------

def _ternary_auto_scale0(x, alpha):
    axis = None if x.ndim == 1 else tuple(range(x.ndim - 1))
    mx = np.max(np.abs(x), axis=axis, keepdims=True).astype(np.float32)
    s = ((F32(2) * mx).astype(np.float32) / F32(3)).astype(np.float32)
    if alpha == "auto_po2":
        s = _po2_round_scale(s)
    return s


@_quiet
def ref_ternary(x, *, alpha=None, threshold=None, use_stochastic_rounding=False,
                number_of_unrolls=5, training=False, u=None):
    """Non-string alpha: q = sign(x)*[|x| >= t] (t = 0.33 default), scale = 1/alpha.
    String alpha: s = 2 max|x|/3 (po2 for auto_po2), then number_of_unrolls times
    q = sign(x)*[|s*R(x/s)| >= s/2], s = LS(x, q) (rank 1 element-wise after the first step).
    y = s*q. STE form A; alpha None -> surrogate tanh: gradient 1 - tanh(x)**2."""
    x = _in(x)
    if isinstance(alpha, str):
        assert alpha in ("auto", "auto_po2")
        assert threshold is None
    else:
        assert not use_stochastic_rounding
        assert not isinstance(threshold, str)
    if isinstance(alpha, str):
        scale = _ternary_auto_scale0(x, alpha)
        stoch = bool(use_stochastic_rounding) and training
        q = None
        for i in range(number_of_unrolls):
            thres = (scale / F32(2)).astype(np.float32)
            r = ftz(x / scale)
            # UNCERTAIN: the contract names no draw for ternary's stochastic rounding; draw i is
            # used for unroll i (precision 1/3).
            rr = _round(r, stoch, 1.0 / 3.0, _draw(u, i, x.shape) if stoch else None)
            v = (scale * rr).astype(np.float32)
            q = ((np.abs(v) >= thres).astype(np.float32) * _sign(x)).astype(np.float32)
            scale = _ls_scale(alpha, x, q)
        if q is None:
            raise NameError("number_of_unrolls must be >= 1 with a string alpha")
    else:
        scale = 1.0 if alpha is None else (alpha if isinstance(alpha, np.ndarray)
                                           else float(alpha))
        t = 0.33 if threshold is None else threshold
        q = ((np.abs(x) >= F32(t)).astype(np.float32) * _sign(x)).astype(np.float32)
    y = (_scale_f32(scale) * q).astype(np.float32)
    return _out(y, x, x.shape), scale


@_quiet
def ref_ternary_grad(x, dy, *, alpha=None, training=False, **_ignored):
    """alpha None: dy*(1 - tanh(x)**2); else dy."""
    x = _in(x)
    dy = f32(dy)
    if alpha is not None:
        return ftz(np.broadcast_to(dy, x.shape))
    t = _tanh(x)
    return ftz((dy * (F32(1) - (t * t).astype(np.float32))).astype(np.float32))


@_quiet
def ref_stochastic_ternary(x, *, alpha=None, threshold=None, temperature=8.0,
                           use_real_sigmoid=True, number_of_unrolls=5, sigmoid="hard",
                           training=False, u=None):
    """training (string alpha required): s from 2 max|x|/3 (po2) refined number_of_unrolls times
    with q = sign(x)*[|x| >= s/2]; xn = x/(std+eps), T = s/(2(std+eps)); q0 = +-1 by
    sigmoid(temp*(xn-T)) >= u0, q1 likewise with xn+T and u1; y = s*(q0+q1)/2 (form A, gradient 1).
    Inference: ternary(alpha, threshold, number_of_unrolls)."""
    x = _in(x)
    if not training:
        return ref_ternary(x, alpha=alpha, threshold=threshold,
                           number_of_unrolls=number_of_unrolls)
    assert isinstance(alpha, str) and alpha in ("auto", "auto_po2")
    axis = tuple(range(x.ndim - 1)) if x.ndim > 1 else (0,)
    xstd = _std(x, axis)
    mx = np.max(np.abs(x), axis=axis, keepdims=True).astype(np.float32)
    scale = ((F32(2) * mx).astype(np.float32) / F32(3)).astype(np.float32)
    if alpha == "auto_po2":
        scale = _po2_round_scale(scale)
    for _ in range(number_of_unrolls):
        T = (scale / F32(2)).astype(np.float32)
        qns = ((np.abs(x) >= T).astype(np.float32) * _sign(x)).astype(np.float32)
        scale = _ls_scale(alpha, x, qns)
    se = (xstd + EPS).astype(np.float32)
    xn = ftz(x / se)
    T = (scale / (F32(2) * se).astype(np.float32)).astype(np.float32)
    a0 = (F32(temperature) * (xn - T).astype(np.float32)).astype(np.float32)
    a1 = (F32(temperature) * (xn + T).astype(np.float32)).astype(np.float32)
    sg = _sigmoid_real if use_real_sigmoid else (lambda v: _sig(v, sigmoid))
    p0, p1 = sg(a0), sg(a1)
    q0 = _sign_pm1(ftz(p0 - _draw(u, 0, x.shape)))
    q1 = _sign_pm1(ftz(p1 - _draw(u, 1, x.shape)))
    q = ((q0 + q1) / F32(2)).astype(np.float32)
    y = (_scale_f32(scale) * q).astype(np.float32)
    return _out(y, x, x.shape), scale


@_quiet
def ref_stochastic_ternary_grad(x, dy, *, alpha=None, training=False, **_ignored):
    """training: dy; inference: ternary's gradient."""
    x = _in(x)
    if training:
        return ftz(np.broadcast_to(f32(dy), x.shape))
    return ref_ternary_grad(x, dy, alpha=alpha)


# --------------------------------------------------------------------------------------------
# bernoulli (§3.10)
# --------------------------------------------------------------------------------------------

@_quiet
def ref_bernoulli(x, *, alpha=None, temperature=6.0, use_real_sigmoid=True, sigmoid="hard",
                  training=False, u=None):
    """Always stochastic: p = sigmoid(T*x/std) (std per channel + eps for string alpha, else 1);
    q = 1 if p >= u0 else 0 (QKeras: sign(p-u), 0 -> +1, then (q+1)/2); scale = LS(alpha, x,
    step(x)) with step(0) = 1; y = scale*q. STE form A: gradient 1."""
    x = _in(x)
    if isinstance(alpha, str):
        assert alpha in ("auto", "auto_po2")
        axis = tuple(range(x.ndim - 1)) if x.ndim > 1 else (0,)
        std = (_std(x, axis) + EPS).astype(np.float32)
    else:
        std = F32(1)
    t = ((F32(temperature) * x).astype(np.float32) / std).astype(np.float32)
    p = _sigmoid_real(t) if use_real_sigmoid else _sig(t, sigmoid)
    q = _sign_pm1(ftz(p - _draw(u, 0, x.shape)))
    q = ((q + F32(1)) / F32(2)).astype(np.float32)
    qns = ((_sign_pm1(x) + F32(1)) / F32(2)).astype(np.float32)
    scale = _ls_scale(alpha, x, qns)
    y = (_scale_f32(scale) * q).astype(np.float32)
    return _out(y, x, x.shape), scale


@_quiet
def ref_bernoulli_grad(x, dy, **_ignored):
    """STE form A: dy."""
    x = _in(x)
    return ftz(np.broadcast_to(f32(dy), x.shape))


# --------------------------------------------------------------------------------------------
# lookup tables for the tests
# --------------------------------------------------------------------------------------------

QUANTIZERS = {
    "quantized_bits": (ref_quantized_bits, ref_quantized_bits_grad),
    "quantized_linear": (ref_quantized_linear, ref_quantized_linear_grad),
    "quantized_relu": (ref_quantized_relu, ref_quantized_relu_grad),
    "quantized_tanh": (ref_quantized_tanh, ref_quantized_tanh_grad),
    "quantized_sigmoid": (ref_quantized_sigmoid, ref_quantized_sigmoid_grad),
    "quantized_ulaw": (ref_quantized_ulaw, ref_quantized_ulaw_grad),
    "quantized_po2": (ref_quantized_po2, ref_quantized_po2_grad),
    "quantized_relu_po2": (ref_quantized_relu_po2, ref_quantized_relu_po2_grad),
    "quantized_hswish": (ref_quantized_hswish, ref_quantized_hswish_grad),
    "binary": (ref_binary, ref_binary_grad),
    "stochastic_binary": (ref_stochastic_binary, ref_stochastic_binary_grad),
    "ternary": (ref_ternary, ref_ternary_grad),
    "stochastic_ternary": (ref_stochastic_ternary, ref_stochastic_ternary_grad),
    "bernoulli": (ref_bernoulli, ref_bernoulli_grad),
}

FUNCTIONS = {
    "hard_sigmoid": (ref_hard_sigmoid, ref_hard_sigmoid_grad),
    "smooth_sigmoid": (ref_smooth_sigmoid, ref_smooth_sigmoid_grad),
    "binary_sigmoid": (ref_binary_sigmoid, ref_binary_sigmoid_grad),
    "binary_tanh": (ref_binary_tanh, ref_binary_tanh_grad),
    "hard_tanh": (ref_hard_tanh, ref_hard_tanh_grad),
    "smooth_tanh": (ref_smooth_tanh, ref_smooth_tanh_grad),
}
