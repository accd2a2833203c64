"""HINet (state-dict compatible with the public release), its named variants, checkpoint I/O and cost counts."""

from .complexity import count_macs, count_params
from .hinet import HINet, ModelError, identity_init
from .registry import create_model, list_models, register_model
from .weights import WeightsError, infer_config, load_model, load_weights, read_metadata, save_weights

__all__ = [
    "HINet",
    "ModelError",
    "WeightsError",
    "count_macs",
    "count_params",
    "create_model",
    "identity_init",
    "infer_config",
    "list_models",
    "load_model",
    "load_weights",
    "read_metadata",
    "register_model",
    "save_weights",
]
