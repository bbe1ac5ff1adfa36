"""QKeras's model utilities: ``model_save_quantized_weights``, ``extract_model_operations``,
``print_qstats``, ``get_model_sparsity`` and ``print_model_sparsity``.

Behaviour follows QKeras's ``qkeras/utils.py`` and ``qkeras/estimate.py`` (quantizers.md §5),
including its quirks: ``model_save_quantized_weights`` (and therefore ``get_model_sparsity`` and
``print_qstats``) overwrite the model's weights with their quantized values, and the depthwise
weight count of ``extract_model_operations`` is QKeras's ``kh*kw*Co*Ci``.
"""
from collections import defaultdict

import numpy as np

from .layers.base import InputLayer
from .quantizers import quantized_bits, quantized_po2, quantized_relu, quantized_tanh, quantized_ulaw

__all__ = ["model_save_quantized_weights", "extract_model_operations", "print_qstats",
           "get_model_sparsity", "print_model_sparsity", "get_quant_mode", "get_operation_type",
           "find_bn_fusing_layer_pair", "add_bn_fusing_weights"]

_OP_LAYERS = ("QDense", "QConv2D", "QConv1D", "QDepthwiseConv2D", "QSeparableConv1D",
              "QSeparableConv2D")
_FOLDED = ("QConv2DBatchnorm", "QDepthwiseConv2DBatchnorm")
# QKeras's estimate functions unfold these first: they count as the plain Q conv they become
_UNFOLDED = {"QConv2DBatchnorm": "QConv2D", "QDepthwiseConv2DBatchnorm": "QDepthwiseConv2D"}
_RNN = ("QSimpleRNN", "QLSTM", "QGRU")


def _cls(layer):
    return type(layer).__name__


def _is_qlayer(layer):
    """A QKeras layer: has ``get_quantizers`` and a Q class name (our plain ``Activation`` also
    has ``get_quantizers``, Keras's does not)."""
    return hasattr(layer, "get_quantizers") and _cls(layer).startswith("Q")


def _graph(model):
    """(calls, consumers): the model's layer-call tensors in order and, per tensor id, the
    tensors computed from it."""
    calls = list(getattr(model, "_order", None) or [])
    if not calls and getattr(model, "layers", None):
        raise ValueError(f"model '{model.name}' is not built: call it or give an input shape")
    consumers = defaultdict(list)
    for t in calls:
        for u in t.inputs:
            consumers[id(u)].append(t)
    return calls, consumers


def _quantizer_name(quantizer):
    if isinstance(quantizer, str):
        return quantizer
    for attr in ("__name__", "name"):
        v = getattr(quantizer, attr, None)
        if isinstance(v, str):
            return v
    return type(quantizer).__name__


def _apply(quantizer, w):
    if not quantizer:
        return w
    return np.asarray(quantizer(np.asarray(w, dtype=np.float32)), dtype=np.float32)


# ---------------------------------------------------------------- quantized weights
def find_bn_fusing_layer_pair(model):
    """QKeras's ``find_bn_fusing_layer_pair``: QConv2D/QDepthwiseConv2D whose output feeds
    exactly one layer, a QBatchNormalization."""
    calls, consumers = _graph(model)
    pairs, skip = {}, set()
    for t in calls:
        nxt = consumers.get(id(t), [])
        if (_cls(t.layer) in ("QConv2D", "QDepthwiseConv2D") and len(nxt) == 1
                and _cls(nxt[0].layer) == "QBatchNormalization"):
            pairs[t.layer.name] = nxt[0].layer.name
            skip.add(nxt[0].layer.name)
    return pairs, skip


def add_bn_fusing_weights(prev_layer, bn_layer, saved_weights):
    """QKeras's ``add_bn_fusing_weights``: ``inv = Qg(gamma)/sqrt(Qv(var)+eps)`` [Qinv],
    ``fused_bias = inv*bias + Qb(beta) - inv*Qm(mean)``."""
    qs = bn_layer.get_quantizers()
    ws = bn_layer.get_weights()
    if qs[4] is not None and (qs[0] is not None or qs[3] is not None):
        raise ValueError("If using the inverse quantizer, the gamma and variance quantizers "
                         "should not be used in order to avoid quantizing a value twice.")
    gamma, beta, idx = np.float32(1.0), np.float32(0.0), 0
    if bn_layer.scale:
        gamma = _apply(bn_layer.gamma_quantizer_internal, ws[idx])
        idx += 1
    if bn_layer.center:
        beta = _apply(bn_layer.beta_quantizer_internal, ws[idx])
        idx += 1
    mean = _apply(bn_layer.mean_quantizer_internal, ws[idx])
    variance = _apply(bn_layer.variance_quantizer_internal, ws[idx + 1])
    inv = (gamma / np.sqrt(variance + np.float32(bn_layer.epsilon))).astype(np.float32)
    if bn_layer.inverse_quantizer_internal is not None:
        inv = _apply(bn_layer.inverse_quantizer_internal, inv)
    if getattr(prev_layer, "use_bias", False):
        cur = prev_layer.get_weights()
        if len(cur) != 2:
            raise ValueError(f"Weights should have length of 2. Found {len(cur)} instead.")
        prev_bias = cur[-1]
    else:
        prev_bias = 0
    entry = saved_weights[prev_layer.name]
    entry["enable_bn_fusing"] = True
    entry["fused_bn_layer_name"] = bn_layer.name
    entry["bn_inv"] = inv
    entry["fused_bias"] = (inv * prev_bias + beta - inv * mean).astype(np.float32)


_POOLING = ("QAveragePooling2D", "QGlobalAveragePooling2D")


def _pooling_factors(layer, calls):
    """QKeras's pooling entries: ``pool_area`` (pool_size product, or H*W of the input for the
    global pool), ``mult_factor = 1/pool_area`` and ``q_mult_factor = Q(1/pool_area)`` (the
    factor the layer really multiplies by; ``1/pool_area`` without an average_quantizer)."""
    if _cls(layer) == "QAveragePooling2D":
        area = int(np.prod(layer.pool_size))
    else:
        t = next((t for t in calls if t.layer is layer), None)
        shape = t.inputs[0].shape if t is not None else layer._build_input_shape
        if shape is None or shape[1] is None or shape[2] is None:
            raise ValueError(f"{layer.name}: the pooled input size is unknown, so is the pool area")
        area = int(shape[1]) * int(shape[2])
    mult = np.float32(1.0 / area)
    q = layer.average_quantizer_internal
    q_mult = _apply(q, np.array([mult], np.float32))[0] if q else mult
    return {"q_mult_factor": np.float32(q_mult), "mult_factor": mult, "pool_area": area}


def model_save_quantized_weights(model, filename=None, custom_objects={}):
    """QKeras's ``model_save_quantized_weights``: quantize every Q layer's weights, **set the
    model's weights to the quantized values**, and return ``{layer_name: {"weights": [hw
    arrays], "enable_bn_fusing": bool, ["signs"], ["scales"], [bn fusing info]}}``.

    Hardware weights: po2 quantizers give ``round(log2|w|)`` (plus "signs" in {-1, +1} for
    quantized_po2); ``quantized_bits(alpha="auto_po2")`` gives the integer weights
    ``w * 2**(bits-keep_negative) / 2**integer`` with "scales" ``scale * 2**integer /
    2**(bits-keep_negative)``; other weights are the quantized values. "signs" / "scales" are
    present when any weight of the layer produced them (QKeras's utils_test reports the scales of
    an auto_po2 kernel followed by a plainly quantized bias). QAveragePooling2D /
    QGlobalAveragePooling2D entries add ``pool_area``, ``mult_factor = 1/pool_area`` and
    ``q_mult_factor = Q(1/pool_area)``. ``filename`` ->
    ``model.save_weights(filename)``. ``custom_objects`` is accepted for signature
    compatibility (unused: the model's quantizer objects are used directly)."""
    saved = {}
    calls, _ = _graph(model)
    pairs, bn_skip = find_bn_fusing_layer_pair(model)
    print("... quantizing model")
    for layer in model.layers:
        if not _is_qlayer(layer):
            if layer.get_weights():
                print(" ", layer.name, "has not been quantized")
            continue
        folded = _cls(layer) in _FOLDED
        qs = layer.get_quantizers()
        if folded:
            ws = layer.get_folded_weights()
        else:
            ws = layer.get_weights()
            if _cls(layer) in _RNN:
                qs = qs[:-1]
        weights, hw_weights, signs, scales = [], [], [], []
        has_sign = has_scale = False
        for quantizer, weight in zip(qs, ws):
            weight = _apply(quantizer, weight)
            weights.append(weight)
            q_name = _quantizer_name(quantizer) if quantizer else ""
            if quantizer and "_po2" in q_name:
                has_sign = has_sign or isinstance(quantizer, quantized_po2)  # relu_po2: no sign
                sign = np.sign(weight)
                sign = sign + (1.0 - np.abs(sign))               # zeros -> +1
                with np.errstate(divide="ignore"):
                    hw = np.round(np.log2(np.abs(weight)))
                signs.append(sign)
                scales.append([])
            elif isinstance(quantizer, quantized_bits) and isinstance(quantizer.alpha, str) \
                    and quantizer.alpha == "auto_po2":
                m = np.float32(2.0 ** (quantizer.bits - int(bool(quantizer.keep_negative))))
                m_i = np.float32(2.0 ** quantizer.integer)
                if quantizer.scale is None:
                    raise ValueError("The auto_po2 quantizer has to be called first in order "
                                     "to know the values of scale.")
                scale = np.asarray(quantizer.scale, dtype=np.float32)
                with np.errstate(divide="ignore"):
                    log2val = np.log2(scale)
                if not np.all(np.round(log2val) - log2val == 0):
                    raise AssertionError("scale must be power of 2 values!")
                hw = weight * m / m_i
                scale = scale * m_i / m
                has_scale = True
                scales.append(scale)
                # (QKeras appends no sign entry here)
            else:
                hw = weight
                signs.append([])
                scales.append([])
            hw_weights.append(hw)
        saved[layer.name] = {"weights": hw_weights,
                             "enable_bn_fusing": _cls(layer) == "QBatchNormalization"
                             and layer.name in bn_skip}
        if has_sign:
            saved[layer.name]["signs"] = signs
        if has_scale:
            saved[layer.name]["scales"] = scales
        if _cls(layer) in _POOLING:
            saved[layer.name].update(_pooling_factors(layer, calls))
        if not folded:
            layer.set_weights(weights)
        else:
            print(layer.name, " conv and batchnorm weights cannot be seperately quantized "
                  "because they will be folded before quantization.")
        if layer.name in pairs:
            print(f"Fuse {layer.name} output with {pairs[layer.name]} for hardware inference.")
            add_bn_fusing_weights(layer, model.get_layer(pairs[layer.name]), saved)
    if filename:
        model.save_weights(filename)
    return saved


# ---------------------------------------------------------------- operation estimates
# (instance class name, mode, bits (-1: from the quantizer), sign)
_MODES = [
    ("quantized_bits", 0, -1, 1),
    ("bernoulli", 4, 1, 0),
    ("stochastic_ternary", 2, 2, 1),
    ("ternary", 2, 2, 1),
    ("stochastic_binary", 3, 1, 1),
    ("binary", 3, 1, 1),
    ("quantized_relu", 0, -1, 0),
    ("quantized_ulaw", 0, -1, 1),
    ("quantized_tanh", 0, -1, 1),
    ("quantized_po2", 1, -1, 1),
    ("quantized_relu_po2", 1, -1, 0),
    ("float", 5, 32, 1),
]

# rows: weight mode, columns: input mode (qb, po2, ternary, binary+-1, binary01, float)
_WX_TABLE = [
    ["mult", "barrel", "mux", "mux", "mux", "fmult"],
    ["barrel", "adder", "mux", "xor", "mux", "fmult"],
    ["mux", "mux", "mux", "mux", "xor", "fmult"],
    ["mux", "xor", "mux", "xor", "xor", "fmult"],
    ["mux", "mux", "xor", "xor", "xor", "fmult"],
    ["fmult", "fmult", "fmult", "fmult", "fmult", "fmult"],
]


def get_quant_mode(quant):
    """QKeras's ``get_quant_mode``: ``(mode, bits, sign)``; None or linear -> ``(5, 32, 1)``.
    quantized_bits/tanh/ulaw with 2 bits and integer 1 are ternary (mode 2); quantized_relu
    with 1 bit and integer 1 is binary {0,1} (mode 4). Unknown quantizers raise ValueError."""
    if not quant or getattr(quant, "__name__", None) == "linear":
        return (5, 32, 1)
    name = type(quant).__name__
    for inst, mode, bits, sign in _MODES:
        if name == inst:
            if bits == -1:
                bits = int(quant.bits)
                if isinstance(quant, (quantized_bits, quantized_tanh, quantized_ulaw)):
                    if bits == 2 and int(quant.integer) == 1:
                        mode = 2
                elif isinstance(quant, quantized_relu):
                    if bits == 1 and int(quant.integer) == 1:
                        mode = 4
            return (mode, bits, sign)
    raise ValueError("Quantizer {} Not Found".format(quant))


def _activation_cache(model):
    """QKeras's ``create_activation_cache``: the quantizer of each graph tensor (by id). Model
    inputs are assumed ``quantized_relu(8, 0)``; QActivation outputs carry their quantizer,
    QDense/QConv1D/QConv2D/QDepthwiseConv2D outputs their activation, other layers pass their
    (first) input's entry through."""
    input_quantizer = quantized_relu(8, 0)
    calls, _ = _graph(model)
    cache = {id(t): input_quantizer for t in model.inputs}
    for t in calls:
        layer = t.layer
        if isinstance(layer, InputLayer):
            cache[id(t)] = input_quantizer
        elif _cls(layer) in ("QActivation", "QAdaptiveActivation"):
            cache[id(t)] = getattr(layer, "quantizer", None) or layer.activation
        elif _UNFOLDED.get(_cls(layer), _cls(layer)) in ("QDense", "QConv2D", "QConv1D",
                                                           "QDepthwiseConv2D"):
            cache[id(t)] = layer.activation
        else:
            q = cache.get(id(t.inputs[0])) if t.inputs else None
            if q is None:
                raise ValueError("Unknown operation in {}".format(layer.name))
            cache[id(t)] = q
    return cache


def get_operation_type(layer, cache, input_tensor=None):
    """QKeras's ``get_operation_type``: ``(op, (w_mode, x_mode), (w_bits, x_bits),
    (w_sign, x_sign))`` with op one of mult, barrel, mux, xor, adder, fmult."""
    if not hasattr(layer, "get_quantizers"):
        raise ValueError("Cannot find suitable quantization candidates for {}".format(layer.name))
    w_mode, w_bits, w_sign = get_quant_mode(layer.get_quantizers()[0])
    xq = cache.get(id(input_tensor)) if input_tensor is not None else None
    if xq is None:
        print("cannot determine presently model for {}".format(layer.name))
        return "null", (w_mode, -1), (w_bits, -1), (w_sign, -1)
    x_mode, x_bits, x_sign = get_quant_mode(xq)
    return _WX_TABLE[w_mode][x_mode], (w_mode, x_mode), (w_bits, x_bits), (w_sign, x_sign)


def extract_model_operations(model):
    """QKeras's ``extract_model_operations``: ``{layer_name: {"type", "number_of_operations",
    "number_of_weights", "number_of_bias", "type_of_weights", "type_of_bias"}}`` for the Q
    conv/dense layers (folded QConv2DBatchnorm/QDepthwiseConv2DBatchnorm count as the QConv2D /
    QDepthwiseConv2D QKeras unfolds them into). Shapes come from the model's graph tensors."""
    cache = _activation_cache(model)
    calls, _ = _graph(model)
    ops = {}
    for t in calls:
        layer = t.layer
        cname = _UNFOLDED.get(_cls(layer), _cls(layer))
        if cname not in _OP_LAYERS:
            continue
        x = t.inputs[0]
        in_shape, out_shape = tuple(x.shape), tuple(t.shape)
        w = layer.get_folded_weights() if _cls(layer) in _FOLDED else layer.get_weights()
        qs = layer.get_quantizers()
        if cname in ("QConv2D", "QDepthwiseConv2D", "QSeparableConv2D"):
            ci = in_shape[3]
            _, ho, wo, co = out_shape
            kh, kw = w[0].shape[:2]
            if cname == "QConv2D":
                n_ops = ho * wo * co * kh * kw * ci
            elif cname == "QDepthwiseConv2D":
                n_ops = kh * kw * ho * wo * ci
            else:
                n_ops = kh * kw * ho * wo * ci + ho * wo * co
            if cname == "QSeparableConv2D":
                n_w = [kh * kw * ci, co * ci]
            else:
                n_w = kh * kw * co * ci     # QKeras's count (also for depthwise)
        elif cname in ("QConv1D", "QSeparableConv1D"):
            ci = in_shape[2]
            _, to, co = out_shape
            k = w[0].shape[0]
            if cname == "QConv1D":
                n_ops, n_w = to * co * k * ci, k * co * ci
            else:
                n_ops, n_w = k * to * ci + to * co, [k * ci, co * ci]
        else:  # QDense
            ishape = np.array([i for i in in_shape if i is not None])
            oshape = np.array([i for i in out_shape if i is not None])
            if int(np.sum(ishape > 1)) != 1 or int(np.sum(oshape > 1)) != 1:
                raise ValueError(f"{layer.name}: Tensor shape has multiple >1 size dims")
            n_ops = n_w = int(np.max(ishape)) * int(np.max(oshape))
        if cname.startswith("QSeparable"):
            n_b = w[2].shape[0] if len(w) > 2 else 0
            weight_type = [get_quant_mode(qs[0]), get_quant_mode(qs[1])]
            bias_type = get_quant_mode(qs[2])
        else:
            n_b = w[1].shape[0] if len(w) > 1 else 0
            weight_type = get_quant_mode(qs[0])
            bias_type = get_quant_mode(qs[1])
        ops[layer.name] = {
            "type": get_operation_type(layer, cache, x),
            "number_of_operations": int(n_ops),
            "number_of_weights": n_w if isinstance(n_w, list) else int(n_w),
            "number_of_bias": int(n_b),
            "type_of_weights": weight_type,
            "type_of_bias": bias_type,
        }
    return ops


def print_qstats(model):
    """QKeras's ``print_qstats``: operation counts and types, weight profiling and sparsity.
    Note: the sparsity block runs ``model_save_quantized_weights`` (weights are overwritten)."""
    model_ops = extract_model_operations(model)
    ops_table = defaultdict(lambda: 0)
    print("")
    print("Number of operations in model:")
    for name in sorted(model_ops):
        mode, _, sizes, signs = model_ops[name]["type"]
        number = model_ops[name]["number_of_operations"]
        sign = "s" if sum(signs) > 0 else "u"
        op_name = sign + mode + "_" + str(sizes[0]) + "_" + str(sizes[1])
        ops_table[op_name] += number
        print("    {:30}: {:5} ({})".format(str(name), str(number), str(op_name)))
    print("")
    print("Number of operation types in model:")
    for key in sorted(ops_table):
        if ops_table[key] > 0:
            print("    {:30}: {}".format(key, ops_table[key]))
    print("")
    print("Weight profiling:")
    total_bits = 0
    for name in sorted(model_ops):
        weight_type = model_ops[name]["type_of_weights"]
        n_weights = model_ops[name]["number_of_weights"]
        if isinstance(weight_type, list):
            for i, (w_type, w_number) in enumerate(zip(weight_type, n_weights)):
                total_bits += w_number * w_type[1]
                print("    {:30} : {:5} ({}-bit unit)".format(
                    str(name) + "_weights_" + str(i), str(w_number), str(w_type[1])))
        else:
            total_bits += n_weights * weight_type[1]
            print("    {:30} : {:5} ({}-bit unit)".format(
                str(name) + "_weights", str(n_weights), str(weight_type[1])))
        b_sizes = model_ops[name]["type_of_bias"][1]
        b_number = model_ops[name]["number_of_bias"]
        total_bits += b_number * b_sizes
        print("    {:30} : {:5} ({}-bit unit)".format(
            str(name) + "_bias", str(b_number), str(b_sizes)))
    print("    " + ("-" * 40))
    print("    {:30} : {:5}".format("Total Bits", total_bits))
    print("")
    print("Weight sparsity:")
    total_sparsity, per_layer = get_model_sparsity(model, per_layer=True)
    for layer in per_layer:
        print("    {:30} : {:.4f}".format(str(layer[0]), layer[1]))
    print("    " + ("-" * 40))
    print("    {:30} : {:.4f}".format("Total Sparsity", total_sparsity))


# ---------------------------------------------------------------- sparsity
_SPARSITY_ALLOW = [
    "QDense", "Dense", "QConv1D", "Conv1D", "QConv2D", "Conv2D",
    "QDepthwiseConv2D", "DepthwiseConv2D", "QSeparableConv1D", "SeparableConv1D",
    "QSeparableConv2D", "SeparableConv2D", "QOctaveConv2D", "QSimpleRNN", "RNN", "QLSTM", "QGRU",
    "QConv2DTranspose", "Conv2DTranspose", "QConv2DBatchnorm", "QDepthwiseConv2DBatchnorm",
]


def get_model_sparsity(model, per_layer=False, allow_list=None):
    """QKeras's ``get_model_sparsity``: fraction of zeros in the quantized weights and biases
    of the Q layers whose class is in ``allow_list`` (runs ``model_save_quantized_weights``
    first, so the model's weights are overwritten). Returns ``total`` or, with ``per_layer``,
    ``(total, [(layer_name, sparsity), ...])``."""
    if allow_list is None:
        allow_list = _SPARSITY_ALLOW
    model_save_quantized_weights(model)
    layer_sparsity, all_weights, total = [], [], 0.0
    for layer in model.layers:
        if _is_qlayer(layer) and _cls(layer) in allow_list:
            ws = layer.get_folded_weights() if _cls(layer) in _FOLDED else layer.get_weights()
            flat = [np.asarray(w).ravel() for w in ws]
            all_weights.extend(flat)
            lw = np.concatenate(flat) if flat else np.zeros(0, np.float32)
            layer_sparsity.append((layer.name, float(np.mean(lw == 0)) if lw.size else 0.0))
    if all_weights:
        cat = np.concatenate(all_weights)
        if cat.size:
            total = float(np.mean(cat == 0))
    return (total, layer_sparsity) if per_layer else total


_PRUNABLE = ("kernel", "depthwise_kernel", "pointwise_kernel", "pointwise")


def print_model_sparsity(model):
    """QKeras's ``print_model_sparsity``: per layer with prunable weights (the kernels, as
    tfmot's prune registry), ``name: (weight_name, sparsity), ...``; does not quantize."""
    print("Model Sparsity Summary ({})".format(model.name))
    print("--")
    for layer in model.layers:
        prunable = [v for v in getattr(layer, "weights", [])
                    if v.name.split("/")[-1] in _PRUNABLE]
        if prunable:
            parts = []
            for v in prunable:
                a = np.asarray(v.value if hasattr(v, "value") else v)
                parts.append("({}, {})".format(v.name, str(1.0 - np.count_nonzero(a) / float(a.size))))
            print("{}: {}".format(layer.name, ", ".join(parts)))
    print("\n")
