"""The per-layer precision configuration hls4ml derives from a QKeras model (quantizers.md §7
item 10), so a qnn_ext model's bit widths can be handed to hls4ml without QKeras.

Mapping (hls4ml's QKeras converter, written out; ``b`` bits, ``i`` integer bits):

=======================================  =======================  ===============================
quantizer                                 precision                why
=======================================  =======================  ===============================
quantized_bits(b, i) (keep_negative)      ``ap_fixed<b, i+1>``     step 2**(i+1-b), [-2**i, 2**i)
quantized_bits(b, i, keep_negative=0)     ``ap_ufixed<b, i>``      step 2**(i-b), [0, 2**i)
quantized_relu(b, i)                      ``ap_ufixed<b, i>``      same grid as above
quantized_relu(b, i, negative_slope=s)    ``ap_fixed<b, i+1>``     one of the b bits is the sign
binary / stochastic_binary                ``ap_uint<1>``           XNOR encoding (0 means -1)
ternary / stochastic_ternary              ``ap_int<2>``            {-1, 0, +1}
quantized_po2(b) / quantized_relu_po2(b)  ``ap_int<b>``            the exponent (hls4ml's
                                                                   ExponentPrecisionType)
none (float)                              the model default        ``ap_fixed<16,6>``
=======================================  =======================  ===============================

Unlike hls4ml, ``keep_negative=False`` gives the unsigned type (hls4ml always signs weights) and
``quantized_bits(b, b)`` stays ``ap_fixed<b, b+1>`` (hls4ml writes ``ap_int<b>``, whose step 1 is
not the quantizer's step 2). Quantizers with a scale (``alpha`` "auto"/"auto_po2" or a number
other than 1) store integers times a per-channel scale that hls4ml applies separately: the
precision given is that of the integers, and a ``UserWarning`` says so. Quantizers with no exact
fixed-point type (quantized_tanh, quantized_sigmoid, quantized_ulaw, ...) get the default
precision and a warning.
"""
import warnings

from .quantizers import (BaseQuantizer, binary, quantized_bits, quantized_po2, quantized_relu,
                         quantized_relu_po2, stochastic_binary, stochastic_ternary, ternary)

__all__ = ["export_hls4ml_config", "quantizer_precision", "DEFAULT_PRECISION"]

DEFAULT_PRECISION = "ap_fixed<16,6>"

# layer class -> (hls4ml precision key, attribute holding the resolved quantizer)
_WEIGHTS = {
    "QDense": (("weight", "kernel"), ("bias", "bias")),
    "QConv1D": (("weight", "kernel"), ("bias", "bias")),
    "QConv2D": (("weight", "kernel"), ("bias", "bias")),
    "QConv2DTranspose": (("weight", "kernel"), ("bias", "bias")),
    "QConv2DBatchnorm": (("weight", "kernel"), ("bias", "bias")),
    "QDepthwiseConv2D": (("weight", "depthwise"), ("bias", "bias")),
    "QDepthwiseConv2DBatchnorm": (("weight", "depthwise"), ("bias", "bias")),
    "QSeparableConv1D": (("depthwise", "depthwise"), ("pointwise", "pointwise"), ("bias", "bias")),
    "QSeparableConv2D": (("depthwise", "depthwise"), ("pointwise", "pointwise"), ("bias", "bias")),
    "QScaleShift": (("weight", "weight"), ("bias", "bias")),
}


def _has_scale(alpha):
    if alpha is None:
        return False
    if isinstance(alpha, str):
        return True
    try:
        return float(alpha) != 1.0
    except (TypeError, ValueError):
        return True  # an array of scales


def quantizer_precision(quantizer, where="quantizer"):
    """The hls4ml precision string of one quantizer (None -> None); see the module table."""
    if quantizer is None:
        return None
    q = quantizer
    if _has_scale(getattr(q, "alpha", None)) and isinstance(q, (quantized_bits, binary, ternary)):
        warnings.warn(f"{where}: {q} has a scale (alpha={q.alpha!r}); the precision is that of "
                      f"the unscaled values, hls4ml must apply the scale separately", UserWarning,
                      stacklevel=3)
    if isinstance(q, quantized_bits):
        b, i = int(q.bits), int(q.integer)
        return f"ap_fixed<{b},{i + 1}>" if q.keep_negative else f"ap_ufixed<{b},{i}>"
    if isinstance(q, (quantized_po2, quantized_relu_po2)):
        return f"ap_int<{int(q.bits)}>"
    if isinstance(q, quantized_relu) and not q.use_sigmoid:
        b, i = int(q.bits), int(q.integer)
        return f"ap_fixed<{b},{i + 1}>" if q.negative_slope else f"ap_ufixed<{b},{i}>"
    if isinstance(q, (binary, stochastic_binary)):
        return "ap_uint<1>"
    if isinstance(q, (ternary, stochastic_ternary)):
        return "ap_int<2>"
    warnings.warn(f"{where}: no exact hls4ml precision for {q}; using {DEFAULT_PRECISION}",
                  UserWarning, stacklevel=3)
    return DEFAULT_PRECISION


def _adaptive_precision(layer):
    """QAdaptiveActivation: integer bits differ per channel (per_channel=True), so one type
    must hold every channel's grid: width b + (max_i - min_i) with max_i integer bits."""
    ints = layer.integer_bits
    lo, hi = int(ints.min()), int(ints.max())
    b = layer.total_bits + hi - lo
    if layer.keep_negative:
        return f"ap_fixed<{b},{hi + 1}>"
    return f"ap_ufixed<{b},{hi}>"


def export_hls4ml_config(model, default_precision=DEFAULT_PRECISION, reuse_factor=1,
                         strategy="Latency"):
    """hls4ml's ``config_from_keras_model(model, granularity="name")`` for a qnn_ext model:
    ``{"Model": {"Precision", "ReuseFactor", "Strategy"}, "LayerName": {name: {"Precision":
    {...}}}}``. Weight layers get "weight"/"bias" (separable: "depthwise"/"pointwise"/"bias")
    from their quantizers (float weights: the default precision) and "result" from a quantizer
    activation; QActivation layers get "result"; the input layer gets the default; layers with
    neither weights nor quantizers are not listed (hls4ml gives them the model default). Values per the
    module table; the result is plain data (JSON-serialisable)."""
    layers = {}
    for layer in model.layers:
        cls = type(layer).__name__
        prec = {}
        # float weight layers (Dense, Conv2D, ...) list their weights at the default precision
        for key, attr in _WEIGHTS.get(cls) or _WEIGHTS.get("Q" + cls, ()):
            q = getattr(layer, f"{attr}_quantizer_internal", None)
            if attr == "bias" and not getattr(layer, "use_bias", True):
                continue
            p = quantizer_precision(q, f"{layer.name}.{attr}_quantizer")
            prec[key] = p if p is not None else default_precision
        act = getattr(layer, "activation", None)
        if cls == "QAdaptiveActivation" and getattr(layer, "built", False):
            prec["result"] = _adaptive_precision(layer)
        elif isinstance(act, BaseQuantizer) and cls != "QBatchNormalization":
            prec["result"] = quantizer_precision(act, f"{layer.name}.activation")
        if cls == "InputLayer":
            prec["result"] = default_precision
        if prec:
            layers[layer.name] = {"Precision": prec}
    return {"Model": {"Precision": default_precision, "ReuseFactor": int(reuse_factor),
                      "Strategy": strategy},
            "LayerName": layers}
