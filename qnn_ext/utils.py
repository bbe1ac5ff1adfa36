"""QKeras's utilities: model files, quantized weights, qstats, model_quantize, BN folding helpers,
accumulator analysis, debugging, and the hls4ml precision export."""
from .backend import set_random_seed
from .hls4ml_export import export_hls4ml_config  # noqa: F401
from .model_quantize import model_quantize, quantize_activation  # noqa: F401
from .qkeras_tools import (analyze_accumulator, analyze_accumulator_from_sample,  # noqa: F401
                           clone_model_and_freeze_auto_po2_scale, convert_folded_model_to_normal,
                           quantized_model_debug, quantized_model_dump, unfold_model)
from .qkeras_utils import (model_save_quantized_weights, extract_model_operations,  # noqa: F401
                           print_qstats, get_model_sparsity, print_model_sparsity,
                           find_bn_fusing_layer_pair, add_bn_fusing_weights)

__all__ = ["set_random_seed", "load_qmodel", "quantized_model_from_json", "clone_model"]
__all__ += ["model_save_quantized_weights", "extract_model_operations", "print_qstats",
            "get_model_sparsity", "print_model_sparsity", "model_quantize", "quantize_activation",
            "analyze_accumulator", "analyze_accumulator_from_sample", "quantized_model_debug",
            "clone_model_and_freeze_auto_po2_scale", "find_bn_fusing_layer_pair",
            "add_bn_fusing_weights", "export_hls4ml_config", "convert_folded_model_to_normal",
            "unfold_model", "quantized_model_dump"]


def load_qmodel(filepath, custom_objects=None, compile=True):
    """QKeras's ``load_qmodel``: a model written by ``Model.save`` (see qnn_ext.saving)."""
    from .saving import load_model
    return load_model(filepath, custom_objects=custom_objects, compile=compile)


def quantized_model_from_json(json_string, custom_objects=None):
    """QKeras's ``quantized_model_from_json``: a new model from ``model.to_json()``."""
    from .saving import model_from_json
    return model_from_json(json_string, custom_objects=custom_objects)


def clone_model(model, custom_objects=None):
    """QKeras's ``clone_model``: same config, a copy of the weights (not compiled)."""
    from .saving import clone_model as _clone
    return _clone(model, custom_objects=custom_objects)
