"""Training losses: the public PSNR loss, L1, and the weighted sum over HINet's stage outputs.

Losses are always computed in float32 with autocast disabled, so a bf16 forward pass does not lose the small MSE
values the log of the PSNR loss is sensitive to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["L1Loss", "PSNRLoss", "build_loss", "stage_loss"]

LOSS_KINDS = ("psnr", "l1")


def _check_pair(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if pred.ndim != 4 or pred.shape != target.shape:
        raise ValueError(
            f"{name}: pred and target must be NCHW tensors of equal shape, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


class PSNRLoss(nn.Module):
    """``weight * 10/ln(10) * mean_over_batch(log(mean_CHW((pred - target)^2) + eps))`` on [0, 1] images.

    For one image with MSE ``m`` this is ``weight * 10 * log10(m + eps)``, i.e. ``-weight * PSNR(dB)`` for a peak of 1,
    so minimising it maximises the mean per-image log-PSNR, as in the public HINet / NAFNet code.
    """

    def __init__(self, weight: float = 1.0, eps: float = 1e-8):
        super().__init__()
        self.weight = float(weight)
        self.eps = float(eps)
        self.scale = 10.0 / math.log(10.0)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target, "PSNRLoss")
        with torch.autocast(device_type=pred.device.type, enabled=False):
            mse = ((pred.float() - target.float()) ** 2).mean(dim=(1, 2, 3))
            return self.weight * self.scale * torch.log(mse + self.eps).mean()


class L1Loss(nn.Module):
    """``weight * mean(|pred - target|)`` in float32."""

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = float(weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target, "L1Loss")
        with torch.autocast(device_type=pred.device.type, enabled=False):
            return self.weight * (pred.float() - target.float()).abs().mean()


def build_loss(kind: str = "psnr") -> nn.Module:
    """The unit-weight loss named ``kind`` (``psnr`` or ``l1``)."""
    if kind == "psnr":
        return PSNRLoss()
    if kind == "l1":
        return L1Loss()
    raise ValueError(f"loss kind must be one of {list(LOSS_KINDS)}, got {kind!r}")


def stage_loss(
    outputs: Sequence[torch.Tensor], target: torch.Tensor, weights: Sequence[float], kind: str = "psnr"
) -> torch.Tensor:
    """Sum of ``weights[i] * loss(outputs[i], target)`` over the model's stage outputs (float32 scalar).

    The public REDS recipe is the PSNR loss with weight 0.5 on each of HINet's two outputs.
    """
    if isinstance(outputs, torch.Tensor):
        raise ValueError("stage_loss: outputs must be the model's list of stage outputs, got a single tensor")
    outputs = list(outputs)
    weights = [float(w) for w in weights]
    if len(outputs) == 0:
        raise ValueError("stage_loss: outputs is empty")
    if len(weights) != len(outputs):
        raise ValueError(
            f"stage_loss: got {len(weights)} stage weight(s) {weights} for {len(outputs)} model output(s); "
            "give one weight per output"
        )
    loss_fn = build_loss(kind)
    total = None
    for w, out in zip(weights, outputs, strict=True):
        term = w * loss_fn(out, target)
        total = term if total is None else total + term
    return total
