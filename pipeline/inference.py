"""Test-time augmentation over full frames: the x8 dihedral self-ensemble, random crops, and the one-pass ladder.

Everything here is a pure function of (model, image): no model state is touched (the caller puts the model in eval
mode and on its device, see :func:`pipeline.device.prepare_model`) and no ground truth is needed to size anything.
The tiling machinery (patches, blending windows, float64 accumulation) lives in :mod:`pipeline.tiling`; this module
plans which patches each TTA mode runs and combines them.

A mode is a union of *parts*: the identity tiling pass (``tiles``), the seven other dihedral tiling passes
(``tiles_x7``) and ``N`` random crops each under a random dihedral transform (``crops``). Each part accumulates into
its own sum/weight maps, so a ladder of modes runs each part once and every mode is (sum of its parts) / (weight of
its parts). Cost in forwards of tile-sized inputs, with ``T`` tiles per pass: ``plain`` = T; ``x8`` = 8 T;
``crops`` = T + N; ``x8+crops`` = 8 T + N, and the ladder plain/x8/x8+crops costs 8 T + N in all. Patches are batched
``batch`` at a time per (part, transform, shape) group. Peak activation memory is set by ``batch`` and the tile/crop
size, never by the image size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pipeline.config import CropsConfig
from pipeline.device import resolve_precision, uses_channels_last
from pipeline.tiling import (
    Patch,
    _check_tiling,
    accumulate,
    accumulate_parts,
    blend_window,
    check_model_device,
    dihedral,
    dihedral_inverse,
    from_batch,
    tile_patches,
    tile_positions,
    to_batch,
)

__all__ = [
    "MODE_PARTS",
    "PARTS",
    "TRANSFORM_SETS",
    "TTA_MODES",
    "Patch",
    "accumulate",
    "accumulate_parts",
    "blend_window",
    "combine_parts",
    "dihedral",
    "dihedral_inverse",
    "plan_parts",
    "plan_patches",
    "random_crops",
    "restore",
    "restore_ladder",
    "tile_patches",
    "tile_positions",
]

TTA_MODES = ("plain", "x8", "crops", "x8+crops")
# A plan's parts: the identity tiling pass, the seven other dihedral tiling passes, the random crops. Each mode is a
# union of parts; its result is (sum of the parts' weighted outputs) / (sum of their weights), added in this order.
PARTS = ("tiles", "tiles_x7", "crops")
MODE_PARTS: dict[str, tuple[str, ...]] = {
    "plain": ("tiles",),
    "x8": ("tiles", "tiles_x7"),
    "crops": ("tiles", "crops"),
    "x8+crops": ("tiles", "tiles_x7", "crops"),
}
# 'flips' are the four shape-preserving transforms: identity, rot180 (flip H and W), flip W, flip H.
TRANSFORM_SETS: dict[str, tuple[int, ...]] = {"all8": tuple(range(8)), "identity": (0,), "flips": (0, 2, 4, 6)}


def random_crops(height: int, width: int, crops: CropsConfig) -> list[Patch]:
    """``crops.n`` crops of ``crops.size`` (clipped to the image) at seeded random positions and random transforms.

    ``crops`` is a :class:`pipeline.config.CropsConfig`, which checked its values when it was made."""
    ch, cw = min(crops.size, height), min(crops.size, width)
    g = torch.Generator().manual_seed(crops.seed)
    ys = torch.randint(0, height - ch + 1, (crops.n,), generator=g).tolist()
    xs = torch.randint(0, width - cw + 1, (crops.n,), generator=g).tolist()
    choices = TRANSFORM_SETS[crops.transforms]
    ts = torch.randint(0, len(choices), (crops.n,), generator=g).tolist()
    return [Patch(y, x, ch, cw, choices[t]) for y, x, t in zip(ys, xs, ts, strict=True)]


def plan_parts(
    height: int,
    width: int,
    *,
    tile: int,
    overlap: int,
    modes: Sequence[str],
    crops: CropsConfig | None = None,
    tiling: str = "blended",
) -> dict[str, list[Patch]]:
    """The parts ``modes`` need, in ``PARTS`` order: each TTA mode is a union of parts (``MODE_PARTS``), so a ladder
    of modes runs each part's forwards once."""
    for mode in modes:
        if mode not in TTA_MODES:
            raise ValueError(f"tta mode {mode!r} is not one of {list(TTA_MODES)}")
    needed = {part for mode in modes for part in MODE_PARTS[mode]}
    parts: dict[str, list[Patch]] = {}
    if "tiles" in needed:
        parts["tiles"] = tile_patches(height, width, tile, overlap, (0,), tiling=tiling)
    if "tiles_x7" in needed:
        parts["tiles_x7"] = tile_patches(height, width, tile, overlap, TRANSFORM_SETS["all8"][1:], tiling=tiling)
    if "crops" in needed:
        parts["crops"] = random_crops(height, width, crops if crops is not None else CropsConfig())
    return parts


def plan_patches(
    height: int, width: int, *, tile: int, overlap: int, tta: str, crops: CropsConfig | None = None
) -> list[Patch]:
    """Every patch one TTA mode runs for an image of ``height`` x ``width``: tiles (x1 or x8) plus random crops."""
    parts = plan_parts(height, width, tile=tile, overlap=overlap, modes=(tta,), crops=crops)
    return [p for part in parts.values() for p in part]


def combine_parts(maps: dict[str, tuple[Tensor, Tensor]], mode: str) -> Tensor:
    """The float32 result of TTA ``mode`` from per-part (sum, weight) maps: parts summed in ``PARTS`` order."""
    names = MODE_PARTS[mode]
    missing = [n for n in names if n not in maps]
    if missing:
        raise ValueError(f"tta mode {mode!r} needs part(s) {missing}; have {sorted(maps)}")
    acc, weight = maps[names[0]][0].clone(), maps[names[0]][1].clone()
    for n in names[1:]:
        acc += maps[n][0]
        weight += maps[n][1]
    if not bool((weight > 0).all()):
        raise RuntimeError("internal error: some pixels received no blending weight")
    return (acc / weight).float()


def restore(
    model: nn.Module,
    image,
    *,
    tile: int = 256,
    overlap: int = 32,
    tta: str = "plain",
    crops: CropsConfig | None = None,
    batch: int = 8,
    precision: str = "auto",
    device: str | torch.device | None = None,
    progress: bool = False,
    clamp: bool = True,
    tiling: str = "blended",
):
    """Restore a full image of any size with tiling and the ``tta`` mode (plain | x8 | crops | x8+crops).

    ``image`` is an HWC numpy array (uint8, or float in [0, 1]) -> float32 HWC numpy, or a CHW/NCHW float tensor ->
    float32 tensor of the same layout on the input's device; values are clamped to [0, 1] unless ``clamp=False``.
    ``crops`` (n, size, transforms, seed; default ``CropsConfig()``) is used by the crop modes. The model must already
    be on ``device`` (default: where its parameters are) and in eval mode; it is never moved or modified. Runs under
    ``torch.inference_mode`` and autocast per ``precision``; blending accumulates in float64.
    """
    return restore_ladder(
        model,
        image,
        modes=(tta,),
        tile=tile,
        overlap=overlap,
        crops=crops,
        batch=batch,
        precision=precision,
        device=device,
        progress=progress,
        clamp=clamp,
        tiling=tiling,
    )[tta]


def restore_ladder(
    model: nn.Module,
    image,
    *,
    modes: Sequence[str],
    tile: int = 256,
    overlap: int = 32,
    crops: CropsConfig | None = None,
    batch: int = 8,
    precision: str = "auto",
    device: str | torch.device | None = None,
    progress: bool = False,
    clamp: bool = True,
    seconds: dict[str, float] | None = None,
    tiling: str = "blended",
) -> dict:
    """Restore ``image`` under every TTA mode of ``modes`` from one set of forwards: ``{mode: result}``.

    Each part a mode needs (identity tiling, the seven other dihedral tilings, the random crops) runs once; each mode
    is then (sum of its parts) / (weight of its parts), bit-identical to :func:`restore` with that mode alone. A ladder
    of plain, x8 and x8+crops thus costs the forwards of x8+crops. Arguments and result format as :func:`restore`;
    ``seconds`` receives the model time per part (a mode's own cost is the sum over its parts, ``MODE_PARTS``).
    ``tiling``: ``blended`` (raised-cosine blending, at least ``overlap`` pixels of overlap) or ``hinet`` (the public
    code's grid and count-map average, to reproduce its numbers exactly).
    """
    if tiling not in ("blended", "hinet"):
        raise ValueError(f"tiling must be 'blended' or 'hinet', got {tiling!r}")
    _check_tiling(tile, overlap)
    modes = tuple(dict.fromkeys(modes))
    if not modes:
        raise ValueError("restore_ladder needs at least one tta mode")
    for mode in modes:
        if mode not in TTA_MODES:
            raise ValueError(f"tta mode {mode!r} is not one of {list(TTA_MODES)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if any(mode.endswith("crops") for mode in modes):
        crops = crops if crops is not None else CropsConfig()
    device = check_model_device(model, device)
    dtype = resolve_precision(precision, device)
    if model.training:
        import warnings

        warnings.warn("restore() called on a model in training mode; call model.eval() first", stacklevel=3)
    channels_last = uses_channels_last(model)

    x, layout = to_batch(image, device)
    outs: dict[str, list[Tensor]] = {mode: [] for mode in modes}
    with torch.inference_mode():
        for frame in x.split(1):
            h, w = frame.shape[-2:]
            parts = plan_parts(h, w, tile=tile, overlap=overlap, modes=modes, crops=crops, tiling=tiling)
            maps = accumulate_parts(
                model,
                frame,
                parts,
                overlap=overlap,
                batch=batch,
                dtype=dtype,
                channels_last=channels_last,
                progress=progress,
                seconds=seconds,
                uniform=tiling == "hinet",
            )
            for mode in modes:
                out = combine_parts(maps, mode)
                outs[mode].append(out.clamp_(0.0, 1.0) if clamp else out)
    return {mode: from_batch(torch.cat(outs[mode]), layout) for mode in modes}
