"""Integer inference: turn a trained (fake-quant) model into bit-packed binary and int8 kernels."""
