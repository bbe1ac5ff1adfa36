"""Keras-backend-like globals: the learning phase, epsilon, and the random stream.

QKeras picks stochastic vs deterministic quantization from the *global* learning phase
(`K.set_learning_phase(1)` in its tests), not from a layer's `training` argument; qnn_ext keeps
that rule: a quantizer called with ``training=None`` reads :func:`learning_phase`.
"""
import threading

import numpy as np

__all__ = ["set_learning_phase", "learning_phase", "epsilon", "image_data_format",
           "set_random_seed", "next_random_key", "clear_session", "set_conv_algorithm",
           "conv_algorithm"]

_state = threading.local()
_lock = threading.Lock()
_learning_phase = 0
_rng = np.random.Generator(np.random.PCG64())
_conv_algorithm = "auto"
_CONV_ALGORITHMS = ("auto", "direct", "winograd")


def set_learning_phase(value):
    """Set the global learning phase: 0 (inference, default) or 1 (training)."""
    global _learning_phase
    if isinstance(value, bool):
        value = int(value)
    if value not in (0, 1):
        raise ValueError(f"set_learning_phase: value must be 0 or 1, got {value!r}")
    _learning_phase = int(value)


def learning_phase():
    """The global learning phase (0 or 1)."""
    return _learning_phase


def resolve_training(training):
    """`training` if given, else the global learning phase, as a bool."""
    return bool(_learning_phase) if training is None else bool(training)


def epsilon():
    """Keras's fuzz factor, 1e-7, used in every scale denominator."""
    return 1e-7


def image_data_format():
    """Always "channels_last": the kernels are NHWC."""
    return "channels_last"


def set_random_seed(seed):
    """Seed every stochastic quantizer: the same seed gives the same draws in the same order."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative int, got {seed!r}")
    with _lock:
        _rng = np.random.Generator(np.random.PCG64(int(seed)))


def next_random_key():
    """A fresh 64-bit key for one stochastic kernel call (counter-based RNG in C)."""
    with _lock:
        return int(_rng.integers(0, 2**64, dtype=np.uint64))


def set_conv_algorithm(algo):
    """How convolution layers compute their forward pass and input gradient.

    ``"auto"`` (default): Winograd F(2x2, 3x3) for 3x3, stride-1, undilated, ungrouped layers
    with >= 16 input channels and >= 256 output tiles (where it measured 1.3-1.7x faster), the
    implicit-im2col GEMM otherwise. ``"direct"``: always the GEMM (the summation order of
    earlier releases). ``"winograd"``: Winograd wherever the shape allows. Winograd sums in
    another order, so results differ from the GEMM's by float32 rounding (of the same size as
    between ISA levels); the filter gradient always runs on the GEMM.
    """
    global _conv_algorithm
    if algo not in _CONV_ALGORITHMS:
        raise ValueError(f"set_conv_algorithm: algo must be one of {_CONV_ALGORITHMS}, "
                         f"got {algo!r}")
    _conv_algorithm = algo


def conv_algorithm():
    """The convolution algorithm set by :func:`set_conv_algorithm` ("auto" by default)."""
    return _conv_algorithm


def clear_session():
    """As Keras: restart automatic layer names from scratch ("dense", "dense_1", ... again),
    and free this thread's kernel workspace (the GEMM and convolution packing buffers kept
    between calls; the next layer call allocates it again)."""
    from .layers import base
    base._uids.clear()
    base.thread_workspace().release()
