"""Device, precision and memory-format choices shared by training and inference.

Precision is applied through autocast only: weights stay float32, so choosing bf16 never changes a model's
parameters, and fp32 stays one argument away. One vocabulary, ``pipeline.config.PRECISIONS`` (auto, bf16, fp16, fp32),
names precision in params, records and CLIs; :func:`accelerate_precision` is the one translation to accelerate's
``mixed_precision`` (which spells fp32 ``no``) and :func:`precision_name` the one from a dtype.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from pipeline.config import PRECISIONS
from pipeline.errors import PipelineError

__all__ = [
    "PRECISIONS",
    "DeviceError",
    "accelerate_precision",
    "autocast",
    "cpu_has_native_bf16",
    "describe_device",
    "model_device",
    "precision_name",
    "prepare_model",
    "resolve_device",
    "resolve_precision",
    "uses_channels_last",
]


class DeviceError(PipelineError):
    """A device or precision asked for (``--device``, ``tta.precision``...) that this machine cannot give; the message
    names the value and what to use instead."""


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Map ``'auto'`` (or None) to CUDA when present, else CPU; other names are checked against what is available."""
    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"device {name!r} is not a valid torch device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but CUDA is not available on this machine")
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX). Without it oneDNN emulates bf16 and a bf16
    autocast step runs 15-25x *slower* than fp32 (measured on an AVX2-only AMD EPYC: 2.5 s vs 34-68 s per step)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str, device: torch.device | str) -> torch.dtype | None:
    """Return the autocast dtype for ``precision`` on ``device``, or None for plain float32.

    ``'auto'`` is bf16 on a CPU with native bf16 (AMX / AVX512-BF16; fp32 elsewhere: emulated bf16 is many times
    slower) and on CUDA (fp16 on GPUs without bf16); ``'fp16'`` is CUDA only; ``'fp32'`` disables autocast.
    """
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_native_bf16() else None
        return None
    if precision == "fp16":
        if device.type != "cuda":
            raise DeviceError(f"precision 'fp16' needs a CUDA device, got {device}; use bf16 or fp32")
        return torch.float16
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"precision 'bf16' is supported on cpu and cuda, got {device}")
    return torch.bfloat16


def precision_name(dtype: torch.dtype | None) -> str:
    """Name an autocast dtype (None: float32) in the project's vocabulary: bf16, fp16 or fp32."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def accelerate_precision(dtype: torch.dtype | None) -> str:
    """The same as accelerate's ``mixed_precision`` argument spells it: bf16, fp16 or no (float32)."""
    return {None: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast context for ``dtype`` on ``device``; a no-op context when ``dtype`` is None (float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def prepare_model(model: nn.Module, device: torch.device | str, channels_last: bool = True) -> nn.Module:
    """Move ``model`` to ``device`` (channels_last memory format when asked) and return it.

    Like ``nn.Module.to`` this moves the given model in place; it never changes the parameter dtype (precision is
    autocast's job) nor the train/eval mode. Inference functions never call it on a caller's model.
    """
    model = model.to(torch.device(device))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def uses_channels_last(model: nn.Module) -> bool:
    """True when the model's 4-D weights are stored channels_last, so inputs should be too."""
    for p in model.parameters():
        if p.dim() == 4 and p.shape[1] > 1 and (p.shape[2] > 1 or p.shape[3] > 1):
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def describe_device(device: torch.device | str) -> str:
    """A readable device name for runtime reports, e.g. ``'cuda:0 (NVIDIA H100 80GB HBM3)'`` or ``'cpu'``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type
