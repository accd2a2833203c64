"""Named HINet variants and a ``create_model(name, **overrides)`` factory (an explicit dict, no import magic)."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from .hinet import HINet, ModelError

__all__ = ["create_model", "list_models", "model_args", "register_model", "variant_config"]

_REDS_HIN = {"hin_position_left": 3, "hin_position_right": 4}  # REDS and GoPro releases: HIN in the last two levels
_ALL_HIN = {"hin_position_left": 0, "hin_position_right": 4}  # SIDD and Rain13K releases: HIN in every level

# name -> HINet constructor arguments (anything not given takes the constructor default).
_VARIANTS: dict[str, dict[str, Any]] = {
    "hinet-0.5x": {"wf": 32, **_REDS_HIN},
    "hinet-1x": {"wf": 64, **_REDS_HIN},  # the public REDS / GoPro release
    "hinet-2x": {"wf": 128, **_REDS_HIN},
    "hinet-2x-deep": {"wf": 128, "extra_blocks": 2, **_REDS_HIN},  # the NTIRE "wider, deeper" model (form unconfirmed)
    "hinet-1x-sidd": {"wf": 64, **_ALL_HIN},  # the public SIDD-1x release
    "hinet-0.5x-sidd": {"wf": 32, **_ALL_HIN},  # the public SIDD-0.5x release
    "hinet-1x-rain13k": {"wf": 64, **_ALL_HIN},  # the public Rain13K release (same form as SIDD-1x)
    "hinet-tiny": {"wf": 8, **_REDS_HIN},  # for tests
    "hinet-tiny-deep": {"wf": 8, "extra_blocks": 1, **_REDS_HIN},  # for tests
}


def model_args() -> tuple[str, ...]:
    """The constructor arguments a variant or an override may set."""
    return tuple(inspect.signature(HINet.__init__).parameters)[1:]


def _check_args(args: dict[str, Any], where: str) -> None:
    unknown = sorted(set(args) - set(model_args()))
    if unknown:
        raise ValueError(f"{where}: unknown HINet argument(s) {unknown}; valid: {list(model_args())}")


def register_model(name: str, *, overwrite: bool = False, **config: Any) -> None:
    """Add a named variant given by HINet constructor arguments; an existing name needs ``overwrite=True``."""
    if name in _VARIANTS and not overwrite:
        raise ValueError(f"model {name!r} is already registered; pass overwrite=True to replace it")
    _check_args(config, f"register_model({name!r})")
    _VARIANTS[name] = dict(config)


def list_models() -> list[str]:
    """Registered variant names, sorted."""
    return sorted(_VARIANTS)


def variant_config(name: str) -> dict[str, Any]:
    """The full constructor arguments of a variant (defaults filled in)."""
    if name not in _VARIANTS:
        raise ModelError(f"unknown model {name!r}; available: {list_models()}")
    defaults = {k: p.default for k, p in inspect.signature(HINet.__init__).parameters.items() if k != "self"}
    return {**defaults, **_VARIANTS[name]}


def create_model(name: str, *, device: str | torch.device | None = None, **overrides: Any) -> HINet:
    """Build a registered variant with constructor ``overrides`` (``None`` values are ignored, so optional config
    fields can be passed straight through).

    ``device='meta'`` builds it without allocating or initialising weights (instant even for hinet-2x-deep), e.g.
    for counting parameters and MACs or as a shell for ``load_state_dict(..., assign=True)``. The variant name is
    kept in ``model.variant``.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    _check_args(overrides, f"create_model({name!r})")
    config = {**variant_config(name), **overrides}
    if device is None:
        model = HINet(**config)
    else:
        with torch.device(device):
            model = HINet(**config)
    model.variant = name
    return model
