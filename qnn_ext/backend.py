"""Keras-backend-like globals: the learning phase, epsilon, and the random stream.

QKeras picks stochastic vs deterministic quantization from the *global* learning phase
(`K.set_learning_phase(1)` in its tests), not from a layer's `training` argument; qnn_ext keeps
that rule: a quantizer called with ``training=None`` reads :func:`learning_phase`.
"""
import threading

import numpy as np

__all__ = ["set_learning_phase", "learning_phase", "epsilon", "image_data_format",
           "set_random_seed", "next_random_key", "clear_session"]

_state = threading.local()
_lock = threading.Lock()
_learning_phase = 0
_rng = np.random.Generator(np.random.PCG64())


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


def clear_session():
    """As Keras: restart automatic layer names from scratch ("dense", "dense_1", ... again),
    and free this thread's kernel workspace (the GEMM and convolution packing buffers kept
    between calls; the next layer call allocates it again)."""
    from .layers import base
    base._uids.clear()
    base.thread_workspace().release()
