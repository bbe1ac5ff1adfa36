"""QKeras's utilities (model tools arrive with the layers and model-file work)."""
from .backend import set_random_seed

__all__ = ["set_random_seed"]
