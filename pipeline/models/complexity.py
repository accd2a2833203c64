"""Parameter and multiply-accumulate counts, computed on the meta device so even hinet-2x-deep costs no time.

MAC convention: :func:`count_macs` reports ``FlopCounterMode`` FLOPs / 2, i.e. one MAC per weight per output pixel
for ordinary convolutions and one per weight per *input* pixel for the 2x2 stride-2 transposed convolutions (their
true cost). Element-wise work (bias, activations, instance norm, sigmoid, additions) is not counted. For HINet 1x
(wf 64, REDS placement) at 256x256 this gives 157.60 GMACs, the "true" figure in reference-facts.md. The commonly
quoted 170.7 GMACs counts the transposed convolutions at their output resolution (4x their true cost: +12.9 GMACs
-> 170.5) plus some element-wise operations; it is not what this function returns.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_macs", "count_params"]


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared parameters counted once); works on meta-device models."""
    return sum(p.numel() for p in model.parameters())


def _meta_twin(model: nn.Module) -> nn.Module | None:
    """A weightless copy of a model that records its constructor arguments in ``.config``, else None."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        return None
    with torch.device("meta"):
        return type(model)(**config)


def count_macs(model: nn.Module, size: tuple[int, int], *, batch: int = 1, in_chn: int | None = None) -> int:
    """Multiply-accumulates of one forward pass on a ``batch x in_chn x H x W`` input (see the module docstring).

    Models with a ``.config`` (HINet) are rebuilt on the meta device, so nothing is computed and nothing is
    allocated; other modules run as given on a zero input on their own device. Sizes HINet pads are counted padded.
    """
    h, w = size
    if h < 1 or w < 1:
        raise ValueError(f"count_macs: size must be positive (H, W), got {size}")
    twin = _meta_twin(model)
    target = twin if twin is not None else model
    if in_chn is None:
        in_chn = getattr(target, "in_chn", 3)
    param = next(target.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    x = torch.zeros(batch, in_chn, h, w, device=device, dtype=dtype)
    was_training = target.training
    target.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            target(x)
    finally:
        target.train(was_training)
    return counter.get_total_flops() // 2
