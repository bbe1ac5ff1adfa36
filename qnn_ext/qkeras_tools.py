"""QKeras's model tools beyond the weight and cost reports: ``analyze_accumulator`` /
``analyze_accumulator_from_sample`` (accumulator widths), ``quantized_model_debug`` and
``quantized_model_dump`` (inspecting layer outputs), ``clone_model_and_freeze_auto_po2_scale``
and ``convert_folded_model_to_normal`` (preparing a model for hardware). Behaviour follows
QKeras's ``qkeras/utils.py``, ``estimate.py`` and ``bn_folding_utils.py`` (quantizers.md §5);
where QKeras is wrong the docstring says what we do instead.
"""
import numpy as np

from .qkeras_utils import _FOLDED, _UNFOLDED, _apply, _cls, model_save_quantized_weights
from .quantizers import quantized_bits

__all__ = ["analyze_accumulator", "analyze_accumulator_from_sample", "quantized_model_debug",
           "clone_model_and_freeze_auto_po2_scale", "convert_folded_model_to_normal",
           "unfold_model", "quantized_model_dump", "REGISTERED_LAYERS"]


# ---------------------------------------------------------------- accumulators
_ACC_LAYERS = ("QDense", "QConv1D", "QConv2D", "QDepthwiseConv2D", "QConv2DBatchnorm",
               "QDepthwiseConv2DBatchnorm")


def _kernel_and_bias(layer):
    """(kernel as (fan_in, output_channels), bias) of a conv/dense layer; folded layers give
    their quantized folded weights (QKeras unfolds them first)."""
    if _cls(layer) in _FOLDED:
        k, b = layer.get_folded_quantized_weight()  # what QKeras's unfold_model leaves there
    else:
        ws = layer.get_weights()
        k = ws[0]
        b = ws[1] if getattr(layer, "use_bias", False) else None
    if _cls(layer).startswith("QDepthwise"):
        # (kh, kw, C, dm): output channel c*dm + j sums over kh*kw taps only
        k = k.reshape(-1, k.shape[2] * k.shape[3])
    else:
        k = k.reshape(-1, k.shape[-1])
    if b is None:
        b = np.zeros((k.shape[1],), np.float32)
    return np.asarray(k, np.float64), np.asarray(b, np.float64)


def analyze_accumulator(in_model, x, verbose=False):
    """QKeras's ``analyze_accumulator``: for each QDense/QConv1D/QConv2D/QDepthwiseConv2D (and
    folded) layer, with ``x = {layer_name: (x_min, x_max)}`` its input range, the accumulator
    size ``ceil(log2(max_i max(n1_i, n0_i)))`` (no sign bit) where, per output channel i,
    ``P_i``/``N_i`` are the sums of the positive/negative weights (+ the bias if of that sign)
    and ``n1 = P*[x_max>0]*x_max + N*[x_min<0]*x_min``, ``n0 = -(N*[x_max>0]*x_max +
    P*[x_min<0]*x_min)``. Uses the float weights, as QKeras. Returns ``{layer_name: bits}``.

    QKeras loops over ``range(kernel.shape[1])``, right only for Dense; here every output
    channel of every layer type is used (identical for Dense)."""
    acc_sizes = {}
    for layer in in_model.layers:
        if _cls(layer) not in _ACC_LAYERS:
            continue
        if layer.name not in x:
            raise ValueError(f"analyze_accumulator: no input range for layer '{layer.name}' "
                             f"(x must map every quantized layer name to (min, max))")
        k, b = _kernel_and_bias(layer)
        x_min, x_max = (float(v) for v in x[layer.name])
        npp = (k * (k > 0)).sum(axis=0) + (b > 0) * b
        nnn = (k * (k < 0)).sum(axis=0) + (b < 0) * b
        n1 = npp * (x_max > 0) * x_max + nnn * (x_min < 0) * x_min
        n0 = -(nnn * (x_max > 0) * x_max + npp * (x_min < 0) * x_min)
        biggest = float(np.max(np.maximum(n1, n0)))
        bits = int(np.ceil(np.log2(biggest))) if biggest > 0 else 0
        acc_sizes[layer.name] = bits
        if verbose:
            print()
            print(layer.name, "- input range:", x[layer.name])
            print("  max value:", np.amax(k))
            print("  min value:", np.amin(k))
            print("  most positive sum:", np.amax(n1))
            print("  most negative sum:", -np.amax(n0))
            print("  number of bits:", bits)
    if verbose:
        print()
    return acc_sizes


def _layer_values(model, x):
    """Inference-mode run of `model` on `x` keeping every layer's (input, output), by name."""
    xs = model._check_inputs(x if isinstance(x, (list, tuple)) else [x])
    values = {id(t): a for t, a in zip(model.inputs, xs)}
    seen = {t.layer.name: (a, a) for t, a in zip(model.inputs, xs)}
    for t in model._order:
        ins = [values[id(u)] for u in t.inputs]
        values[id(t)] = t.layer.call(ins if len(ins) > 1 else ins[0], training=False)
        seen[t.layer.name] = (ins[0], values[id(t)])
    return seen


def analyze_accumulator_from_sample(in_model, x_sample, mode="conservative", verbose=False):
    """QKeras's ``analyze_accumulator_from_sample``: "sampled" -> ``ceil(log2(max|output|))``
    of each quantized conv/dense layer on `x_sample` (0 for an all-zero output);
    "conservative" -> the input ranges seen on `x_sample` fed to :func:`analyze_accumulator`."""
    if mode not in ("conservative", "sampled"):
        raise ValueError(f"analyze_accumulator_from_sample: mode has to be 'conservative' or "
                         f"'sampled', got {mode!r}")
    values = _layer_values(in_model, x_sample)
    names = [layer.name for layer in in_model.layers if _cls(layer) in _ACC_LAYERS]
    if mode == "sampled":
        out = {}
        for n in names:
            m = float(np.max(np.abs(values[n][1])))
            out[n] = int(np.ceil(np.log2(m))) if m != 0 else 0
        return out
    x_dict = {n: (float(np.min(values[n][0])), float(np.max(values[n][0]))) for n in names}
    return analyze_accumulator(in_model, x_dict, verbose)


# ---------------------------------------------------------------- debugging
REGISTERED_LAYERS = [
    "QActivation", "QAdaptiveActivation", "QDense", "QConv1D", "QConv2D", "QSeparableConv1D",
    "QSeparableConv2D", "QDepthwiseConv2D", "QConv2DTranspose", "QSimpleRNN", "QLSTM", "QGRU",
    "QBidirectional", "QBatchNormalization", "QConv2DBatchnorm", "QDepthwiseConv2DBatchnorm",
    "QAveragePooling2D", "QGlobalAveragePooling2D",
]
_PLOT_LAYERS = ("QConv1D", "QConv2D", "QConv2DTranspose", "QDense", "QActivation",
                "QAdaptiveActivation", "QSimpleRNN", "QLSTM", "QGRU", "QBidirectional",
                "QSeparableConv1D", "QSeparableConv2D")
_SCALED_LAYERS = ("QConv1D", "QConv2D", "QConv2DTranspose", "QDense", "QSimpleRNN", "QLSTM",
                  "QGRU", "QSeparableConv1D", "QSeparableConv2D", "QConv2DBatchnorm",
                  "QDepthwiseConv2DBatchnorm")


def _scale_of(quantizer):
    s = getattr(quantizer, "scale", None)
    return 1.0 if s is None else s


def quantized_model_debug(model, X_test, plot=False, plt_instance=None):
    """QKeras's ``quantized_model_debug``: prints ``input  min max`` of `X_test`, then for each
    Q layer ``name  min max`` of its output (divided by the activation's scale for
    QActivation, with `` a[min max]`` of that scale when it is not 1), `` (min max)`` of each
    quantized weight (the first weight of conv/dense layers divided by its quantizer's scale)
    and `` a(min max)`` of a per-channel scale. With ``plot``, histograms go to
    ``plt_instance`` (a matplotlib.pyplot-like object: hist, title, show)."""
    if plot and not plt_instance:
        raise ValueError("quantized_model_debug: plt_instance is required if plot is True")
    values = _layer_values(model, X_test)
    X = np.asarray(X_test[0] if isinstance(X_test, (list, tuple)) else X_test)
    print("{:30} {: 8.4f} {: 8.4f}".format("input", np.min(X), np.max(X)))
    for layer in model.layers:
        if _cls(layer) not in REGISTERED_LAYERS:
            continue
        p = values[layer.name][1]
        alpha = (_scale_of(layer.activation) if _cls(layer) in ("QActivation", "QAdaptiveActivation")
                 else 1.0)
        alpha = np.asarray(alpha, np.float64)
        print("{:30} {: 8.4f} {: 8.4f}".format(layer.name, np.min(p / alpha), np.max(p / alpha)),
              end="")
        if np.any(alpha != 1.0):
            print(" a[{: 8.4f} {:8.4f}]".format(np.min(alpha), np.max(alpha)))
        if plot and _cls(layer) in _PLOT_LAYERS:
            plt_instance.hist(p.flatten(), bins=25)
            plt_instance.title(layer.name + "(output)")
            plt_instance.show()
        alpha = None
        ws = layer.get_folded_weights() if _cls(layer) in _FOLDED else layer.get_weights()
        qs = layer.get_quantizers() if hasattr(layer, "get_quantizers") else []
        for i, w in enumerate(ws):
            q = qs[i] if i < len(qs) else None
            if q:
                w = _apply(q, w)
                if i == 0 and _cls(layer) in _SCALED_LAYERS:
                    alpha = np.asarray(_scale_of(q), np.float64)
                    safe = np.where(alpha == 0.0, 1.0, alpha)
                    w = np.where(alpha == 0.0, w * alpha, w / safe)  # a zero scale zeroes them
                    if plot:
                        plt_instance.hist(w.flatten(), bins=25)
                        plt_instance.title(layer.name + "(weights)")
                        plt_instance.show()
            print(" ({: 8.4f} {: 8.4f})".format(np.min(w), np.max(w)), end="")
        if alpha is not None and alpha.ndim > 0:
            print(" a({: 10.6f} {: 10.6f})".format(np.min(alpha), np.max(alpha)), end="")
        print("")


# ---------------------------------------------------------------- auto_po2 freezing
def _is_auto_po2_bits(q):
    return isinstance(q, quantized_bits) and isinstance(q.alpha, str) and q.alpha == "auto_po2"


def _quantizer_inputs(layer):
    """{config key of a quantizer: the array it quantizes} for a Q layer: its weights (folded
    ones for folded layers), and for QBatchNormalization also the inverse it computes."""
    if _cls(layer) in _FOLDED:
        fk, fb = layer.get_folded_weights()
        kname = "kernel" if _cls(layer) == "QConv2DBatchnorm" else "depthwise"
        return {f"{kname}_quantizer": fk, "bias_quantizer": fb}
    if _cls(layer) == "QBatchNormalization":
        c = layer.moving_mean.value.shape[0]
        g, b = layer._gamma_beta(c)
        gq = _apply(layer.gamma_quantizer_internal, g)
        vq = _apply(layer.variance_quantizer_internal, layer.moving_variance.value)
        inv = (gq / np.sqrt(vq + np.float32(layer.epsilon))).astype(np.float32)
        return {"gamma_quantizer": g, "beta_quantizer": b,
                "mean_quantizer": layer.moving_mean.value,
                "variance_quantizer": layer.moving_variance.value, "inverse_quantizer": inv}
    spec = getattr(layer, "_wspec", {})
    return {f"{w}_quantizer": sp["var"].value for w, sp in spec.items() if "var" in sp}


def clone_model_and_freeze_auto_po2_scale(orig_model=None, orig_model_path=None,
                                          quantize_model_weights=False):
    """QKeras's ``clone_model_and_freeze_auto_po2_scale``: a copy of the model in which every
    ``quantized_bits(alpha="auto_po2")`` quantizer carries, as ``post_training_scale``, the
    scale it computes on the layer's current weights (so the scale no longer follows the
    weights), with the same weights. At most one such quantizer per layer (ValueError
    otherwise). Returns ``(new_model, hw_weights)``, ``hw_weights`` being
    ``model_save_quantized_weights(new_model)`` if ``quantize_model_weights`` else None."""
    from .saving import _build, _class_name
    from .utils import load_qmodel
    if orig_model is None and orig_model_path is None:
        raise ValueError("clone_model_and_freeze_auto_po2_scale: give orig_model or orig_model_path")
    if orig_model is None:
        orig_model = load_qmodel(orig_model_path, compile=False)
    config = orig_model.get_config()
    for spec in config["layers"]:
        name = spec.get("name") or spec["config"].get("name")
        if spec["class_name"] == "InputLayer":
            continue
        layer = orig_model.get_layer(name)
        if not hasattr(layer, "get_quantizers"):
            continue
        found = [(key, getattr(layer, key + "_internal", None)) for key in spec["config"]
                 if key.endswith("_quantizer")]
        found = [(k, q) for k, q in found if _is_auto_po2_bits(q)]
        if len(found) > 1:
            raise ValueError(f"clone_model_and_freeze_auto_po2_scale: layer '{name}' has more than "
                             f"one auto_po2 quantizer ({', '.join(k for k, _ in found)}); only one "
                             f"is allowed")
        if not found:
            continue
        key, q = found[0]
        value = _quantizer_inputs(layer).get(key)
        if value is not None:
            q(np.asarray(value, np.float32), training=False)  # the scale of the current weights
        if q.scale is None:
            raise ValueError(f"clone_model_and_freeze_auto_po2_scale: the {key} of layer "
                             f"'{name}' has no scale: run the model once first")
        spec["config"][key]["config"]["post_training_scale"] = np.asarray(q.scale, np.float32).tolist()
    new_model = _build(_class_name(orig_model), config, None, f"model '{orig_model.name}'")
    new_model.set_weights(orig_model.get_weights())
    hw = model_save_quantized_weights(new_model) if quantize_model_weights else None
    return new_model, hw


# ---------------------------------------------------------------- unfolding and dumps
_BN_ONLY_KEYS = ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
                 "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
                 "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
                 "renorm", "renorm_clipping", "renorm_momentum", "fused", "virtual_batch_size",
                 "adjustment", "ema_freeze_delay", "folding_mode")


def convert_folded_model_to_normal(model):
    """QKeras's ``convert_folded_model_to_normal`` (``unfold_model``): a new model in which each
    QConv2DBatchnorm / QDepthwiseConv2DBatchnorm is the QConv2D / QDepthwiseConv2D (same
    quantizers, with a bias) holding :meth:`get_folded_quantized_weight`; every other layer keeps
    its config and weights. The two models give the same inference outputs."""
    from .saving import _build, _class_name
    config = model.get_config()
    for spec in config["layers"]:
        if spec["class_name"] in _UNFOLDED:
            spec["class_name"] = _UNFOLDED[spec["class_name"]]
            cfg = spec["config"]
            for k in _BN_ONLY_KEYS:
                cfg.pop(k, None)
            cfg["use_bias"] = True
    new = _build(_class_name(model), config, None, f"model '{model.name}'")
    for layer in model.layers:
        target = new.get_layer(layer.name)
        if _cls(layer) in _FOLDED:
            target.set_weights(layer.get_folded_quantized_weight())
        elif layer.get_weights():
            target.set_weights(layer.get_weights())
    return new


unfold_model = convert_folded_model_to_normal


def quantized_model_dump(model, x_test, output_dir=None, layers_to_dump=()):
    """QKeras's ``quantized_model_dump``: writes each chosen layer's inference output on `x_test`
    as raw float32 to ``<output_dir>/<layer_name>.bin`` (all layers when ``layers_to_dump`` is
    empty; ``output_dir`` is created, and defaults to a new temporary directory). Returns the
    directory."""
    import os
    import tempfile
    if not output_dir:
        output_dir = tempfile.mkdtemp(prefix="qnn_ext_dump_")
        print("temp dir", output_dir)
    if not os.path.exists(output_dir):
        os.makedirs(output_dir)
        print("create dir", output_dir)
    names = {layer.name for layer in model.layers}
    unknown = [n for n in layers_to_dump if n not in names]
    if unknown:
        raise ValueError(f"quantized_model_dump: no layer named {', '.join(map(repr, unknown))}")
    values = _layer_values(model, x_test)
    for layer in model.layers:
        if layer.name not in values or (layers_to_dump and layer.name not in layers_to_dump):
            continue
        base = os.path.basename(layer.name)
        if base != layer.name or base in ("", ".", ".."):
            raise ValueError(f"quantized_model_dump: layer name {layer.name!r} is not a file name")
        filename = os.path.join(output_dir, base + ".bin")
        print("writing the layer output tensor to ", filename)
        np.asarray(values[layer.name][1], dtype=np.float32).tofile(filename)
    return output_dir
