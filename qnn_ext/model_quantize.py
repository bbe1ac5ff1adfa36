"""QKeras's ``model_quantize``: a quantized model from a float model and a small config.

The model's config (the JSON of ``model.to_json()``) is rewritten layer by layer and rebuilt;
quantizer strings go through our parser (never ``eval``). Lookup for a layer (QKeras's
``get_config``): ``quantizer_config[layer_name]``, else ``quantizer_config[QClassName]``, then
the parameter inside that entry. There is no "default" key (QKeras's docstring mentions one, its
code does not implement it). quantizers.md §5 lists the rules; they are restated per branch below.
"""
import copy
import json
import re

import numpy as np

__all__ = ["model_quantize", "quantize_activation", "find_folding_pairs", "remove_folded_batchnorms"]

_WEIGHT_LAYERS = ("Dense", "Conv1D", "Conv2D", "Conv2DTranspose", "SeparableConv1D",
                  "SeparableConv2D")
_FOLDABLE = ("Conv2D", "DepthwiseConv2D")
# BatchNormalization arguments carried into a folded layer (QKeras drops them and so falls back
# to the defaults; keeping the user's epsilon/momentum is the only way the fold matches the BN)
_BN_KEYS = ("momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
            "moving_mean_initializer", "moving_variance_initializer", "beta_regularizer",
            "gamma_regularizer", "beta_constraint", "gamma_constraint")


def quantize_activation(layer_config, activation_bits):
    """QKeras's ``quantize_activation``: relu -> ``quantized_relu(bits)``, tanh ->
    ``quantized_tanh(bits)``, sigmoid -> ``quantized_sigmoid(bits)``; linear, None and every
    other activation are left as they are."""
    act = layer_config.get("activation")
    if act is None:
        return
    if isinstance(act, str):
        name = act
    elif isinstance(act, dict):
        name = act.get("class_name")
    else:
        name = getattr(act, "__name__", type(act).__name__)
    bits = str(activation_bits)
    table = {"relu": "quantized_relu", "tanh": "quantized_tanh", "sigmoid": "quantized_sigmoid"}
    if name in table:
        layer_config["activation"] = f"{table[name]}({bits})"


def _lookup(quantizer_config, layer, layer_class, parameter=None):
    """``config[layer_name]`` if present, else ``config[layer_class]``; then ``[parameter]``."""
    name = layer["config"].get("name")
    entry = quantizer_config.get(name, quantizer_config.get(layer_class))
    if entry is not None and parameter is not None:
        if not isinstance(entry, dict):
            raise ValueError(f"model_quantize: the entry for layer '{name}' ({layer_class}) must "
                             f"be a dict with '{parameter}', got {entry!r}")
        entry = entry.get(parameter)
    return entry


def _layer_name(spec):
    return spec.get("name") or spec.get("config", {}).get("name")


def _refs(spec):
    """The [layer_name, node, index] references of a functional layer's inbound nodes."""
    return [r for node in spec.get("inbound_nodes") or [] for r in node]


def find_folding_pairs(model_class, config):
    """QKeras's folding rule on a model config: ``{conv_name: bn_name}`` for every Conv2D /
    DepthwiseConv2D whose output feeds exactly one layer, a BatchNormalization (a model output
    counts as a consumer)."""
    layers = config["layers"]
    pairs = {}
    if model_class == "Sequential":
        for prev, spec in zip(layers, layers[1:]):
            if prev["class_name"] in _FOLDABLE and spec["class_name"] == "BatchNormalization":
                pairs[_layer_name(prev)] = _layer_name(spec)
        return pairs
    consumers = {}
    for spec in layers:
        for r in _refs(spec):
            consumers.setdefault(r[0], []).append(spec)
    outputs = [r[0] for r in config.get("output_layers", [])]
    for spec in layers:
        name = _layer_name(spec)
        nxt = consumers.get(name, [])
        if (spec["class_name"] in _FOLDABLE and len(nxt) == 1 and name not in outputs
                and nxt[0]["class_name"] == "BatchNormalization"):
            pairs[name] = _layer_name(nxt[0])
    return pairs


def remove_folded_batchnorms(config, pairs):
    """Drop the BatchNormalization of each (conv, bn) pair from the config; whatever read the
    BN reads the (now folded) convolution."""
    rename = {bn: conv for conv, bn in pairs.items()}
    config["layers"] = [s for s in config["layers"] if _layer_name(s) not in rename]
    for spec in config["layers"]:
        for node in spec.get("inbound_nodes") or []:
            for r in node:
                if r[0] in rename:
                    r[0] = rename[r[0]]
    for key in ("input_layers", "output_layers"):
        for r in config.get(key, []):
            if r[0] in rename:
                r[0] = rename[r[0]]
    return config


def _set_activation(layer_config, quantizer_config, layer, q_name, activation_bits):
    quantizer = _lookup(quantizer_config, layer, q_name, "activation_quantizer")
    if quantizer:
        layer_config["activation"] = quantizer
    else:
        quantize_activation(layer_config, activation_bits)


def _fold_settings(layer_config, quantizer_config, layer, q_name, bn_config):
    layer_config["use_bias"] = True  # folded layers need a bias to hold the BN shift
    mode = _lookup(quantizer_config, layer, q_name, "folding_mode")
    layer_config["folding_mode"] = mode if mode else "ema_stats_folding"
    delay = _lookup(quantizer_config, layer, q_name, "ema_freeze_delay")
    layer_config["ema_freeze_delay"] = delay if delay else None  # QKeras: 0 -> None
    for k in _BN_KEYS:
        if k in bn_config:
            layer_config[k] = bn_config[k]


def _quantize_weight_layer(layer, quantizer_config, activation_bits, folded):
    cfg, cls = layer["config"], layer["class_name"]
    name = cfg.get("name")
    fold = cls == "Conv2D" and name in folded
    q_name = "QConv2DBatchnorm" if fold else "Q" + cls
    kq = _lookup(quantizer_config, layer, q_name, "kernel_quantizer")
    bq = _lookup(quantizer_config, layer, q_name, "bias_quantizer") if cfg.get("use_bias", True) else None
    if fold and kq is None:  # the unfolded layer's entry is the fallback
        kq = _lookup(quantizer_config, layer, "QConv2D", "kernel_quantizer")
        bq = _lookup(quantizer_config, layer, "QConv2D", "bias_quantizer")
    separable = cls.startswith("Separable")
    if separable:
        # QKeras writes kernel_quantizer into a QSeparableConv config, which that layer rejects;
        # we take depthwise/pointwise_quantizer, with kernel_quantizer as the fallback for both
        dq = _lookup(quantizer_config, layer, q_name, "depthwise_quantizer") or kq
        pq = _lookup(quantizer_config, layer, q_name, "pointwise_quantizer") or kq
        if dq is None and pq is None:
            return False
        cfg["depthwise_quantizer"], cfg["pointwise_quantizer"] = dq, pq
    else:
        if kq is None:
            return False  # no kernel quantizer: the layer stays float
        cfg["kernel_quantizer"] = kq
    layer["class_name"] = q_name
    cfg["bias_quantizer"] = bq
    if fold:
        _fold_settings(cfg, quantizer_config, layer, q_name, folded[name])
    _set_activation(cfg, quantizer_config, layer, q_name, activation_bits)
    return fold


def _quantize_depthwise(layer, quantizer_config, activation_bits, folded):
    cfg = layer["config"]
    name = cfg.get("name")
    fold = name in folded
    q_name = "QDepthwiseConv2DBatchnorm" if fold else "QDepthwiseConv2D"
    dq = _lookup(quantizer_config, layer, q_name, "depthwise_quantizer")
    bq = _lookup(quantizer_config, layer, q_name, "bias_quantizer") if cfg.get("use_bias", True) else None
    if fold and dq is None:
        dq = _lookup(quantizer_config, layer, "QDepthwiseConv2D", "depthwise_quantizer")
        bq = _lookup(quantizer_config, layer, "QDepthwiseConv2D", "bias_quantizer")
    if dq is None:
        return False
    layer["class_name"] = q_name
    cfg["depthwise_quantizer"], cfg["bias_quantizer"] = dq, bq
    if fold:
        _fold_settings(cfg, quantizer_config, layer, q_name, folded[name])
    _set_activation(cfg, quantizer_config, layer, q_name, activation_bits)
    return fold


def _base_config(cfg):
    return {k: cfg[k] for k in ("name", "trainable", "dtype", "batch_input_shape") if k in cfg}


def _quantize_activation_layer(layer, quantizer_config, activation_bits, prefer_adaptive):
    cfg = layer["config"]
    first, second = (("QAdaptiveActivation", "QActivation") if prefer_adaptive
                     else ("QActivation", "QAdaptiveActivation"))
    quantizer, kind = _lookup(quantizer_config, layer, first), first
    if quantizer is None:
        quantizer, kind = _lookup(quantizer_config, layer, second), second
    if quantizer is None:
        return  # e.g. a softmax with no entry stays float
    act = cfg.get("activation")
    act_name = act if isinstance(act, str) else None
    if isinstance(quantizer, dict) and not quantizer.get(act_name):
        return  # the dict names other activations only
    layer["class_name"] = kind
    if isinstance(quantizer, dict):
        quantizer = quantizer[act_name]
    if quantizer and kind == "QAdaptiveActivation":
        # QKeras: the string's digits are total_bits, its parameters are dropped
        if not isinstance(quantizer, str) or "," in quantizer:
            raise ValueError(f"model_quantize: layer '{cfg.get('name')}': a QAdaptiveActivation "
                             f"entry takes only the total bits, e.g. 'quantized_relu(4)', got "
                             f"{quantizer!r}")
        digits = re.sub(r"[^\d]", "", quantizer)
        if not digits:
            raise ValueError(f"model_quantize: layer '{cfg.get('name')}': no bit count in the "
                             f"QAdaptiveActivation entry {quantizer!r}")
        cfg["total_bits"] = int(digits)
        quantizer = re.sub(r"\(.*", "", quantizer)
    if quantizer:
        cfg["activation"] = quantizer
    else:
        quantize_activation(cfg, activation_bits)


def _quantize_relu_layer(layer, quantizer_config, activation_bits):
    cfg = layer["config"]
    quantizer = _lookup(quantizer_config, layer, "QActivation")
    if quantizer is None:
        return
    if layer["class_name"] == "LeakyReLU":
        slope = cfg.get("alpha", 0.3)
    else:
        slope = cfg.get("negative_slope", 0.0)
    act_name = "leakyrelu" if slope and slope > 0 else "relu"
    if isinstance(quantizer, dict) and not quantizer.get(act_name):
        return
    # the relu-specific keys go: quantized relus carry their own bound and slope
    new_cfg = _base_config(cfg)
    new_cfg["activation"] = act_name if act_name == "relu" else "linear"
    if isinstance(quantizer, dict):
        quantizer = quantizer[act_name]
    if quantizer:
        new_cfg["activation"] = quantizer
    else:
        quantize_activation(new_cfg, activation_bits)
    layer["class_name"], layer["config"] = "QActivation", new_cfg


def _quantize_batchnorm(layer, quantizer_config):
    cfg = layer["config"]
    if cfg.get("name") not in quantizer_config and "QBatchNormalization" not in quantizer_config:
        return
    layer["class_name"] = "QBatchNormalization"
    for q in ("gamma_quantizer", "beta_quantizer", "mean_quantizer", "variance_quantizer"):
        cfg[q] = _lookup(quantizer_config, layer, "QBatchNormalization", q)


def _quantize_pooling(layer, quantizer_config, activation_bits):
    cfg = layer["config"]
    q_name = "Q" + layer["class_name"]
    aq = _lookup(quantizer_config, layer, q_name, "average_quantizer")
    if aq is None:
        return
    layer["class_name"] = q_name
    cfg["average_quantizer"] = aq
    _set_activation(cfg, quantizer_config, layer, q_name, activation_bits)


def model_quantize(model, quantizer_config, activation_bits, custom_objects=None,
                   transfer_weights=False, prefer_qadaptiveactivation=False,
                   enable_bn_folding=False):
    """QKeras's ``model_quantize``: a new model with the float layers replaced by their
    Q-versions where ``quantizer_config`` says so.

    * Dense/Conv1D/Conv2D/Conv2DTranspose -> Q-class when a ``kernel_quantizer`` is found
      (SeparableConv1D/2D: ``depthwise_quantizer``/``pointwise_quantizer``, falling back to
      ``kernel_quantizer``); DepthwiseConv2D -> ``depthwise_quantizer``. Also ``bias_quantizer``
      (only with use_bias) and ``activation_quantizer``; without the latter relu/tanh/sigmoid
      become ``quantized_relu/tanh/sigmoid(activation_bits)``.
    * ``Activation`` layers: the "QActivation" entry (by layer name or class) is a quantizer
      string for every activation or a dict ``{activation_name: quantizer}``; other activations
      (softmax) stay float. ReLU/LeakyReLU layers: "QActivation" with names "relu"/"leakyrelu".
    * BatchNormalization -> QBatchNormalization only if its name or "QBatchNormalization" is a
      key; missing gamma/beta/mean/variance quantizers are None.
    * AveragePooling2D/GlobalAveragePooling2D -> Q-versions with ``average_quantizer``.
    * ``enable_bn_folding``: Conv2D/DepthwiseConv2D feeding exactly one BatchNormalization ->
      QConv2DBatchnorm/QDepthwiseConv2DBatchnorm (use_bias forced on; ``folding_mode``,
      ``ema_freeze_delay`` from the entry; kernel/bias quantizers fall back to the
      QConv2D/QDepthwiseConv2D entry); the BN's epsilon, momentum, ... are carried over.
    * ``transfer_weights``: copies the weights layer by layer (not with folding, as QKeras).
    * ``prefer_qadaptiveactivation``: for Activation layers look up "QAdaptiveActivation"
      before "QActivation" (otherwise after); its string's digits become ``total_bits``
      (``"quantized_relu(4)"`` -> QAdaptiveActivation("quantized_relu", total_bits=4)).
    """
    from .saving import _class_name, model_from_json
    if not isinstance(quantizer_config, dict):
        raise TypeError(f"model_quantize: quantizer_config must be a dict, got "
                        f"{type(quantizer_config).__name__}")
    model_class = _class_name(model)
    config = json.loads(model.to_json())["config"]
    pairs = find_folding_pairs(model_class, config) if enable_bn_folding else {}
    bn_configs = {_layer_name(s): s["config"] for s in config["layers"]}
    candidates = {conv: bn_configs[bn] for conv, bn in pairs.items()}
    quantizer_config = copy.deepcopy(quantizer_config)
    done = set()
    for layer in config["layers"]:
        cls = layer["class_name"]
        if cls in _WEIGHT_LAYERS:
            if _quantize_weight_layer(layer, quantizer_config, activation_bits, candidates):
                done.add(_layer_name(layer))
        elif cls == "DepthwiseConv2D":
            if _quantize_depthwise(layer, quantizer_config, activation_bits, candidates):
                done.add(_layer_name(layer))
        elif cls == "Activation":
            _quantize_activation_layer(layer, quantizer_config, activation_bits,
                                       prefer_qadaptiveactivation)
        elif cls in ("ReLU", "LeakyReLU"):
            _quantize_relu_layer(layer, quantizer_config, activation_bits)
        elif cls == "BatchNormalization":
            _quantize_batchnorm(layer, quantizer_config)
        elif cls in ("AveragePooling2D", "GlobalAveragePooling2D"):
            _quantize_pooling(layer, quantizer_config, activation_bits)
    # a conv without a quantizer stays float with its BatchNormalization (QKeras removes the BN
    # before it knows whether the conv will be converted, and so loses it)
    folded = {conv: bn for conv, bn in pairs.items() if conv in done}
    remove_folded_batchnorms(config, folded)
    qmodel = model_from_json(json.dumps({"class_name": model_class, "config": config}),
                             custom_objects=custom_objects)
    if transfer_weights and not folded:
        for layer, qlayer in zip(model.layers, qmodel.layers):
            ws = layer.get_weights()
            if ws:
                qlayer.set_weights([np.array(w, copy=True) for w in ws])
    return qmodel
