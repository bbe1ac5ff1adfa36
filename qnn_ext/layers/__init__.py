"""Layers: QKeras's quantized layers and the Keras layers a script needs around them."""
from .adaptive import QAdaptiveActivation
from .base import Input, InputLayer, KerasTensor, Layer
from .conv import (Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, QConv1D, QConv2D,
                   QConv2DTranspose, QDepthwiseConv2D, QSeparableConv1D, QSeparableConv2D,
                   SeparableConv1D, SeparableConv2D)
from .core import (Activation, Add, Concatenate, Dense, Dropout, Flatten, LeakyReLU, QActivation,
                   QDense, ReLU, Reshape, Softmax)
from .bn_folding import QConv2DBatchnorm, QDepthwiseConv2DBatchnorm
from .normalization import BatchNormalization, QBatchNormalization, QScaleShift
from .pooling import (AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D,
                      QAveragePooling2D, QGlobalAveragePooling2D)
from .quant_utils import QInitializer

_CLASSES = {c.__name__: c for c in (
    InputLayer, Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, QConv1D, QConv2D,
    QConv2DTranspose, QDepthwiseConv2D, QSeparableConv1D, QSeparableConv2D, SeparableConv1D,
    SeparableConv2D, Activation, Add, Concatenate, Dense, Dropout, Flatten, LeakyReLU,
    QActivation, QDense, ReLU, Reshape, Softmax, BatchNormalization, QBatchNormalization,
    QScaleShift, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D,
    QAveragePooling2D, QGlobalAveragePooling2D, QConv2DBatchnorm, QDepthwiseConv2DBatchnorm,
    QAdaptiveActivation)}

__all__ = sorted(_CLASSES) + ["Input", "Layer", "KerasTensor", "QInitializer", "deserialize"]


def deserialize(spec, custom_objects=None):
    """A layer from {"class_name", "config"}; only registered classes (and custom_objects)."""
    name = spec.get("class_name") if isinstance(spec, dict) else None
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"unknown layer class {name!r}; known: {', '.join(sorted(_CLASSES))}")
    return cls.from_config(spec.get("config", {}))
