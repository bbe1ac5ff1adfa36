"""qnn_ext: quantized neural networks (binary, ternary, N-bit) with QKeras semantics on C kernels.

    from qnn_ext import *        # QKeras's and Keras's names: QDense, QConv2D, quantized_bits, Model...
    q = quantized_bits(4, 0, 1)
    y = q(x)                     # float32 NumPy array, QKeras's values bit for bit
    dx = q.gradient(x, dy)       # straight-through estimator
"""
import os as _os

# libgomp's default wait policy spins for a while at every barrier. When the cores are shared
# with other busy processes (a second notebook, another OpenMP program), spinning threads burn
# the time slices their descheduled partners need: a 20 ms filter gradient took 500-700 ms on
# this project's 2-core VM. Sleeping waiters cost ~20 us per parallel region instead of ~3 us,
# which our kernels (threaded only above ~100 us of work) absorb. Set OMP_WAIT_POLICY=active
# before importing qnn_ext to override; libgomp reads it once, when it is loaded.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import _core  # noqa: E402
from . import backend, quantizers, utils
from .quantizers import *  # noqa: F401,F403  (QKeras's flat namespace)
from .quantizers import __all__ as _quantizer_names

__version__ = "0.1.0"


def build_info():
    """Build and runtime facts: ISA in use and available, compiler, OpenMP, threads, version."""
    return _core.build_info()


def set_num_threads(n):
    """Number of threads the C kernels use (OpenMP); also settable with OMP_NUM_THREADS."""
    _core.set_num_threads(n)


def get_num_threads():
    return _core.get_num_threads()


__all__ = list(_quantizer_names) + ["build_info", "set_num_threads", "get_num_threads",
                                    "backend", "quantizers", "utils"]

from . import (activations, callbacks, constraints, datasets, initializers, layers, losses,  # noqa: E402
               metrics, models, optimizers, regularizers)
from .layers import *  # noqa: F401,F403,E402
from .layers import __all__ as _layer_names  # noqa: E402
from .models import Model, Sequential  # noqa: E402

__all__ += list(_layer_names) + ["Model", "Sequential", "activations", "callbacks", "constraints",
                                 "datasets", "initializers", "layers", "losses", "metrics",
                                 "models", "optimizers", "regularizers"]
