"""Integer inference: turn a trained (fake-quant) model into bit-packed binary and int8 kernels.

    from qnn_ext import deploy
    im = deploy.convert(model)              # IntegerModel
    y = im.predict(x, batch_size=64)        # == model.predict(x) (see convert.py for when exactly)
    im.summary()                            # per layer: kernel, weight bits, bytes, MACs, latency
    im.save("model.qnnd"); im2 = deploy.load("model.qnnd")
"""
from .convert import ConversionError, plan
from .model import IntegerModel

__all__ = ["convert", "load", "IntegerModel", "ConversionError"]


def convert(model, input_quantizer=None, strict=True):
    """An IntegerModel computing ``model.predict``.

    input_quantizer: a quantizer (object, string or config) the input is assumed to be on; it is
    applied to the input first, and lets the first layer run on integer kernels too.
    strict: a layer with a quantized kernel and a quantized input that cannot be made exact
    raises ConversionError naming it; with strict=False it runs on the float kernels instead.
    """
    steps, in_shape, out_shape = plan(model, input_quantizer, strict)
    return IntegerModel(steps, in_shape, out_shape, name=f"{model.name}_int")


def load(path):
    """An IntegerModel from a file written by IntegerModel.save (validated, no code runs)."""
    from .fileio import load as _load
    return _load(path)
