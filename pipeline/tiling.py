"""Running a model over a full image in tiles: patches, dihedral transforms, blending windows, float64 accumulation.

The machinery every full-frame pass uses, TTA or not: a :class:`Tiler` (a model with its grid, blending, batch and
precision fixed once) accumulates patches into sum/weight maps; training's validation runs :func:`restore_tiled` (one
tiled pass) and :class:`pipeline.inference.Restorer` runs each TTA part through its Tiler. Kept apart from the TTA code
so that editing TTA leaves trained models up to date (training depends on this module, not on ``pipeline.inference``).

A *patch* ``(y, x, h, w, t)`` is a window of the input in image coordinates under dihedral transform ``t``. Every
patch is cut from the image, transformed, run through the model (in batches of equal-shape patches), transformed back
and added, times a blending window, into a float64 sum map and a weight map; the result is sum / weight. The window is
1 inside a patch and, on sides that lie inside the image, is zero for the first ``overlap // 4`` pixels (where a cut
receptive field makes the output unreliable) then rises along a raised cosine to 1 at ``overlap // 2``. Sides flush
with the image border are not tapered. Neighbouring tiles overlap by at least ``overlap`` pixels, so every pixel gets a
positive weight and no seams show; for a model whose receptive radius is below ``overlap // 4`` (a small padded conv
net) the tiled result equals the whole-image result.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from pipeline.device import autocast, model_device, resolve_device, resolve_precision, uses_channels_last

__all__ = [
    "Patch",
    "Tiler",
    "blend_window",
    "check_model_device",
    "dihedral",
    "dihedral_inverse",
    "from_batch",
    "hinet_positions",
    "restore_tiled",
    "tile_patches",
    "tile_positions",
    "to_batch",
]


class Patch(NamedTuple):
    """A window ``[y, y + h) x [x, x + w)`` of the image, run through the model under dihedral transform ``t``."""

    y: int
    x: int
    h: int
    w: int
    t: int


def _check_transform(i: int) -> None:
    if not 0 <= i < 8:
        raise ValueError(f"dihedral transform index must be in 0..7, got {i}")


def dihedral(x: Tensor, i: int) -> Tensor:
    """Dihedral transform ``i`` (0..7) of an (..., H, W) tensor: flip W if ``i >= 4``, then rot90 by ``i % 4``."""
    _check_transform(i)
    if i >= 4:
        x = x.flip(-1)
    return torch.rot90(x, i % 4, dims=(-2, -1))


def dihedral_inverse(x: Tensor, i: int) -> Tensor:
    """Exact inverse of :func:`dihedral`: rotate back first, then undo the flip."""
    _check_transform(i)
    x = torch.rot90(x, -(i % 4), dims=(-2, -1))
    if i >= 4:
        x = x.flip(-1)
    return x


def _check_tiling(tile: int, overlap: int) -> None:
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile must be a positive integer, got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < tile:
        raise ValueError(f"overlap must be an integer in [0, tile={tile}), got {overlap!r}")


def tile_positions(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``min(tile, size)`` covering ``[0, size)``.

    The stride adapts so the first tile starts at 0 and the last ends flush with the border, with consecutive tiles
    overlapping by at least ``overlap`` pixels.
    """
    _check_tiling(tile, overlap)
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if size <= tile:
        return [0]
    n = -(-(size - tile) // (tile - overlap)) + 1
    return [k * (size - tile) // (n - 1) for k in range(n)]


def hinet_positions(size: int, tile: int) -> list[int]:
    """Tile offsets as the public HINet/BasicSR validation grid places them: ``ceil(size / tile)`` tiles, stride
    ``ceil((size - tile) / (n - 1))`` from 0, the last tile moved back flush with the border (``tiling: hinet``)."""
    if size < 1 or tile < 1:
        raise ValueError(f"size and tile must be positive, got {size}, {tile}")
    if size <= tile:
        return [0]
    n = (size - 1) // tile + 1
    step = math.ceil((size - tile) / (n - 1) - 1e-8)
    out, pos = [], 0
    while True:
        if pos + tile >= size:
            out.append(size - tile)
            return out
        out.append(pos)
        pos += step


def _taper(d: Tensor, overlap: int) -> Tensor:
    """Window value at distance ``d`` (pixels) from a tapered edge."""
    margin, full = overlap // 4, overlap // 2
    ramp = full - margin
    if ramp <= 0:
        return (d >= margin).to(torch.float64)
    r = 0.5 - 0.5 * torch.cos(math.pi * (d - margin + 1) / (ramp + 1))
    return torch.where(d < margin, 0.0, torch.where(d >= full, 1.0, r))


def blend_window(length: int, overlap: int, flush_start: bool, flush_end: bool) -> Tensor:
    """1-D float64 blending weights for a patch side of ``length`` pixels; sides flush with the image stay at 1."""
    d = torch.arange(length, dtype=torch.float64)
    w = torch.ones(length, dtype=torch.float64)
    if not flush_start:
        w = torch.minimum(w, _taper(d, overlap))
    if not flush_end:
        w = torch.minimum(w, _taper(length - 1 - d, overlap))
    return w


def tile_patches(
    height: int, width: int, tile: int, overlap: int, transforms: Sequence[int] = (0,), *, tiling: str = "blended"
) -> list[Patch]:
    """The full-coverage grid of tiles, once per transform in ``transforms``; ``tiling: hinet`` places them as the
    public code does (:func:`hinet_positions`), ``blended`` with at least ``overlap`` pixels of overlap."""
    if tiling == "hinet":
        ys, xs = hinet_positions(height, tile), hinet_positions(width, tile)
    else:
        ys, xs = tile_positions(height, tile, overlap), tile_positions(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    return [Patch(y, x, th, tw, t) for t in transforms for y in ys for x in xs]


def _forward(model: nn.Module, x: Tensor, dtype: torch.dtype | None, channels_last: bool) -> Tensor:
    """Run the model on an NCHW batch and return its last output in float32 (models pad odd sizes themselves)."""
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(x.device, dtype):
        out = model(x)
    if isinstance(out, (list, tuple)):
        out = out[-1]
    return out.float()


@dataclass(frozen=True)
class Tiler:
    """A model run over an image patch by patch, with its grid, blending, batch, autocast dtype and memory format
    fixed once: what every full-frame pass (training's validation, each TTA part) is built on.

    ``tiling``: ``blended`` (raised-cosine windows, neighbours overlapping by at least ``overlap`` pixels) or
    ``hinet`` (the public code's grid, every pixel of every patch weighted 1: its count-map average). ``dtype`` is the
    autocast dtype (None: float32); ``channels_last`` feeds inputs in the model's memory format. The values are
    checked here, once.
    """

    model: nn.Module
    tile: int = 256
    overlap: int = 32
    tiling: str = "blended"
    batch: int = 8
    dtype: torch.dtype | None = None
    channels_last: bool = False

    def __post_init__(self):
        _check_tiling(self.tile, self.overlap)
        if self.tiling not in ("blended", "hinet"):
            raise ValueError(f"tiling must be 'blended' or 'hinet', got {self.tiling!r}")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"batch must be a positive integer, got {self.batch!r}")

    def tiles(self, height: int, width: int, transforms: Sequence[int] = (0,)) -> list[Patch]:
        """The full-coverage grid of an image of ``height`` x ``width``, once per dihedral transform."""
        return tile_patches(height, width, self.tile, self.overlap, transforms, tiling=self.tiling)

    def accumulate(
        self,
        image: Tensor,
        parts: dict[str, Iterable[Patch]],
        *,
        progress: bool = False,
        seconds: dict[str, float] | None = None,
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """Run each part's patches of a (1, C, H, W) image through the model into that part's float64 (sum, weight)
        maps; the restored image of a part is sum / weight.

        Patches stream in: each (part, transform, shape) group is run as soon as it holds ``batch`` patches. Batches
        never mix parts, so a part's maps are bit-identical whichever other parts run beside it. ``seconds``, when
        given, receives the model time spent per part.
        """
        if image.dim() != 4 or image.shape[0] != 1:
            raise ValueError(f"accumulate needs a (1, C, H, W) image, got shape {tuple(image.shape)}")
        _, c, height, width = image.shape
        maps = {
            name: (
                torch.zeros((1, c, height, width), dtype=torch.float64, device=image.device),
                torch.zeros((1, 1, height, width), dtype=torch.float64, device=image.device),
            )
            for name in parts
        }
        windows: dict[tuple[int, bool, bool], Tensor] = {}
        uniform = self.tiling == "hinet"

        def window(length: int, flush_start: bool, flush_end: bool) -> Tensor:
            key = (length, flush_start, flush_end)
            if key not in windows:
                windows[key] = (
                    torch.ones(length, dtype=torch.float64)
                    if uniform
                    else blend_window(length, self.overlap, flush_start, flush_end)
                ).to(image.device)
            return windows[key]

        total = sum(len(p) for p in parts.values()) if all(isinstance(p, Sequence) for p in parts.values()) else None
        bar = tqdm(total=total, desc="restore", unit="patch", leave=False, disable=None if progress else True)

        def run(name: str, group: list[Patch]) -> None:
            start = time.perf_counter()
            acc, weight = maps[name]
            t = group[0].t
            x = torch.stack([image[0, :, p.y : p.y + p.h, p.x : p.x + p.w] for p in group])
            out = dihedral_inverse(_forward(self.model, dihedral(x, t), self.dtype, self.channels_last), t)
            if out.shape != x.shape:
                raise ValueError(f"model returned shape {tuple(out.shape)} for input {tuple(x.shape)}")
            for p, o in zip(group, out, strict=True):
                win = window(p.h, p.y == 0, p.y + p.h == height)[:, None] * window(p.w, p.x == 0, p.x + p.w == width)
                acc[0, :, p.y : p.y + p.h, p.x : p.x + p.w] += o.double() * win
                weight[0, 0, p.y : p.y + p.h, p.x : p.x + p.w] += win
            if seconds is not None:
                if image.device.type == "cuda":
                    torch.cuda.synchronize(image.device)
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            bar.update(len(group))

        try:
            for name, patches in parts.items():
                pending: dict[tuple[int, int, int], list[Patch]] = {}
                for p in patches:
                    inside = 0 <= p.y and p.y + p.h <= height and 0 <= p.x and p.x + p.w <= width
                    if not (inside and p.h > 0 and p.w > 0):
                        raise ValueError(f"patch {p} lies outside the {height}x{width} image")
                    group = pending.setdefault((p.t, p.h, p.w), [])
                    group.append(p)
                    if len(group) == self.batch:
                        run(name, group)
                        pending[(p.t, p.h, p.w)] = []
                for group in pending.values():
                    if group:
                        run(name, group)
        finally:
            bar.close()
        return maps


@dataclass(frozen=True)
class _Layout:
    """How to hand the result back in the caller's format."""

    kind: str  # numpy | chw | nchw
    device: torch.device


def to_batch(image, device: torch.device) -> tuple[Tensor, _Layout]:
    """Accept HWC numpy (uint8 or float in [0, 1]) or CHW/NCHW float tensors; return an NCHW float32 tensor."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3:
            raise ValueError(f"numpy image must be HWC, got shape {image.shape}")
        if image.dtype == np.uint8:
            x = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
        elif np.issubdtype(image.dtype, np.floating):
            x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
        else:
            raise ValueError(f"numpy image must be uint8 or float, got {image.dtype}")
        return x[None].to(device), _Layout("numpy", torch.device("cpu"))
    if isinstance(image, Tensor):
        if not image.is_floating_point():
            raise ValueError(f"tensor image must be floating point in [0, 1], got {image.dtype}")
        if image.dim() == 3:
            return image[None].to(device, torch.float32), _Layout("chw", image.device)
        if image.dim() == 4:
            return image.to(device, torch.float32), _Layout("nchw", image.device)
        raise ValueError(f"tensor image must be CHW or NCHW, got shape {tuple(image.shape)}")
    raise ValueError(f"image must be a numpy array or a torch tensor, got {type(image).__name__}")


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cuda":
        current = torch.cuda.current_device()
        return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)
    return True


def check_model_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """The device to run on (default: where the model is); the model must already be there."""
    where = model_device(model)
    device = where if device is None else resolve_device(device)
    if not _same_device(device, where):
        raise ValueError(
            f"model is on {where} but device={device} was asked for; move it first (pipeline.device.prepare_model)"
        )
    return device


def restore_tiled(
    model: nn.Module,
    image,
    *,
    tile: int = 256,
    overlap: int = 32,
    batch: int = 8,
    precision: str = "auto",
    device: str | torch.device | None = None,
):
    """One blended tiled pass over ``image`` (HWC numpy or CHW/NCHW tensor, as :class:`pipeline.inference.Restorer`),
    clamped to [0, 1]: bit-identical to the Restorer's ``plain`` mode, without the TTA code (training validates with
    it, and must not depend on TTA code)."""
    device = check_model_device(model, device)
    dtype = resolve_precision(precision, device)
    tiler = Tiler(model, tile, overlap, "blended", batch, dtype, uses_channels_last(model))
    if model.training:
        warnings.warn("restore_tiled() called on a model in training mode; call model.eval() first", stacklevel=2)
    x, layout = to_batch(image, device)
    outs = []
    with torch.inference_mode():
        for frame in x.split(1):
            acc, weight = tiler.accumulate(frame, {"tiles": tiler.tiles(*frame.shape[-2:])})["tiles"]
            outs.append((acc / weight).float().clamp_(0.0, 1.0))
    return from_batch(torch.cat(outs), layout)


def from_batch(y: Tensor, layout: _Layout):
    """Hand an NCHW result back in the caller's format (see :func:`to_batch`)."""
    y = y.to(layout.device).clone()  # a normal tensor, not an inference tensor, so callers may modify it in place
    if layout.kind == "numpy":
        return y[0].permute(1, 2, 0).contiguous().numpy()
    return y[0] if layout.kind == "chw" else y
