"""Test-time augmentation over full frames: the x8 dihedral self-ensemble, random crops, and the one-pass ladder.

:class:`Restorer` is the one way to restore an image: built from a model and a :class:`pipeline.config.TTAConfig`,
it resolves the device, the autocast precision and the memory format once, then restores images under any list of
TTA modes. No model state is touched (the caller puts the model in eval mode and on its device, see
:func:`pipeline.device.prepare_model`) and no ground truth is needed to size anything. The tiling machinery (patches,
blending windows, float64 accumulation) lives in :mod:`pipeline.tiling`; this module plans which patches each TTA
mode runs and combines them.

A mode is a union of *parts*: the identity tiling pass (``tiles``), the seven other dihedral tiling passes
(``tiles_x7``) and ``N`` random crops each under a random dihedral transform (``crops``). Each part accumulates into
its own sum/weight maps, so a ladder of modes runs each part once and every mode is (sum of its parts) / (weight of
its parts). Cost in forwards of tile-sized inputs, with ``T`` tiles per pass: ``plain`` = T; ``x8`` = 8 T;
``crops`` = T + N; ``x8+crops`` = 8 T + N, and the ladder plain/x8/x8+crops costs 8 T + N in all. Patches are batched
``batch`` at a time per (part, transform, shape) group. Peak activation memory is set by ``batch`` and the tile/crop
size, never by the image size.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pipeline.config import CROP_TRANSFORMS, TTA_MODES, CropsConfig, TTAConfig
from pipeline.device import precision_name, resolve_precision, uses_channels_last
from pipeline.tiling import Patch, Tiler, check_model_device, from_batch, to_batch

__all__ = ["MODE_PARTS", "PARTS", "Restorer", "check_modes", "random_crops"]

# A plan's parts: the identity tiling pass, the seven other dihedral tiling passes, the random crops. Each mode is a
# union of parts; its result is (sum of the parts' weighted outputs) / (sum of their weights), added in this order.
PARTS = ("tiles", "tiles_x7", "crops")
MODE_PARTS: dict[str, tuple[str, ...]] = {
    "plain": ("tiles",),
    "x8": ("tiles", "tiles_x7"),
    "crops": ("tiles", "crops"),
    "x8+crops": ("tiles", "tiles_x7", "crops"),
}


def random_crops(height: int, width: int, crops: CropsConfig) -> list[Patch]:
    """``crops.n`` crops of ``crops.side`` (clipped to the image) at seeded random positions and random transforms.

    ``crops`` is a :class:`pipeline.config.CropsConfig`, which checked its values when it was made."""
    ch, cw = min(crops.side, height), min(crops.side, width)
    g = torch.Generator().manual_seed(crops.seed)
    ys = torch.randint(0, height - ch + 1, (crops.n,), generator=g).tolist()
    xs = torch.randint(0, width - cw + 1, (crops.n,), generator=g).tolist()
    choices = CROP_TRANSFORMS[crops.transforms]
    ts = torch.randint(0, len(choices), (crops.n,), generator=g).tolist()
    return [Patch(y, x, ch, cw, choices[t]) for y, x, t in zip(ys, xs, ts, strict=True)]


def check_modes(modes: Sequence[str]) -> tuple[str, ...]:
    """``modes`` without repeats, in order; an empty list or an unknown mode raises (modes are checked here only)."""
    modes = tuple(dict.fromkeys(modes))
    if not modes:
        raise ValueError("restoring needs at least one tta mode")
    for mode in modes:
        if mode not in TTA_MODES:
            raise ValueError(f"tta mode {mode!r} is not one of {list(TTA_MODES)}")
    return modes


def _combine(maps: dict[str, tuple[Tensor, Tensor]], mode: str) -> Tensor:
    """The float32 result of TTA ``mode`` from per-part (sum, weight) maps: parts summed in ``PARTS`` order."""
    names = MODE_PARTS[mode]
    acc, weight = maps[names[0]][0].clone(), maps[names[0]][1].clone()
    for n in names[1:]:
        acc += maps[n][0]
        weight += maps[n][1]
    if not bool((weight > 0).all()):
        raise RuntimeError("internal error: some pixels received no blending weight")
    return (acc / weight).float()


def _cast_conv_weights(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``model`` whose convolution and linear weights and biases are in ``dtype``: what autocast would cast
    them to on every forward. Normalisation parameters stay float32 (autocast runs those ops in float32; CPU
    instance norm refuses bf16 parameters)."""
    net = copy.deepcopy(model)
    for module in net.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)):
            module.to(dtype)
    return net


# Inductor options of ``tta.compile``. freezing: parameters are constants of the graph (valid because the Restorer
# only runs under inference_mode and never changes the weights), which lets inductor cast and pre-pack them once and
# fuse each convolution with its pointwise successors (oneDNN post-ops). Shapes stay torch.compile's default
# (static first, dynamic after a recompilation): crops come in batches of varying size, and static shapes would
# compile each size anew. Measured in bench/bench_inference.py.
COMPILE_OPTIONS = {"freezing": True}


class Restorer:
    """A model ready to restore full images of any size under TTA modes, with the tiling, batch, precision and crops
    of ``tta`` (default ``TTAConfig()``).

    The device (default: where the model's parameters are; the model must already be there), the autocast dtype and
    the memory format are resolved here, once, and every part of every mode runs through one
    :class:`pipeline.tiling.Tiler`. A ladder of modes runs each part's forwards once (plain, x8 and x8+crops together
    cost the forwards of x8+crops) and each mode's result is bit-identical to that mode restored alone.

    Speed options (both off by default; ``bench/bench_inference.py`` measures them): ``tta.cast_weights`` runs a
    copy of the model whose convolution and linear weights are already in the autocast dtype, so autocast does not
    re-cast them on every forward (the caller's model is untouched; fp32 runs ignore it); ``tta.compile`` wraps the
    model in ``torch.compile`` with inductor's freezing (:data:`COMPILE_OPTIONS`): the weights become constants,
    cast and pre-packed once, and each convolution runs fused with the activation or addition after it. Compilations
    (per patch shape; crop batches of another size add one with a dynamic batch) are paid on the first frames; it
    needs a C++ compiler on CPU.
    """

    def __init__(self, model: nn.Module, tta: TTAConfig | None = None, *, device: str | torch.device | None = None):
        self.tta = TTAConfig() if tta is None else tta
        self.model = model
        self.device = check_model_device(model, device)
        self.dtype = resolve_precision(self.tta.precision, self.device)
        net = model
        if self.tta.cast_weights and self.dtype is not None:
            net = _cast_conv_weights(model, self.dtype)
        if self.tta.compile:
            net = torch.compile(net, options=COMPILE_OPTIONS)
        self.tiler = Tiler(
            net,
            tile=self.tta.tile,
            overlap=self.tta.overlap,
            tiling=self.tta.tiling,
            batch=self.tta.batch,
            dtype=self.dtype,
            channels_last=uses_channels_last(model),
        )

    @property
    def precision(self) -> str:
        """The precision the forwards run in, as runtime records name it (bf16, fp16 or fp32)."""
        return precision_name(self.dtype)

    def plan(self, height: int, width: int, modes: Sequence[str]) -> dict[str, list[Patch]]:
        """The patches of each part ``modes`` need for an image of ``height`` x ``width``, in ``PARTS`` order."""
        return self._plan(height, width, check_modes(modes))

    def _plan(self, height: int, width: int, modes: tuple[str, ...]) -> dict[str, list[Patch]]:
        needed = {part for mode in modes for part in MODE_PARTS[mode]}
        parts: dict[str, list[Patch]] = {}
        if "tiles" in needed:
            parts["tiles"] = self.tiler.tiles(height, width, (0,))
        if "tiles_x7" in needed:
            parts["tiles_x7"] = self.tiler.tiles(height, width, CROP_TRANSFORMS["all8"][1:])
        if "crops" in needed:
            parts["crops"] = random_crops(height, width, self.tta.crops)
        return parts

    def restore(
        self,
        image,
        modes: Sequence[str] = ("plain",),
        *,
        clamp: bool = True,
        progress: bool = False,
        seconds: dict[str, float] | None = None,
    ) -> dict:
        """Restore ``image`` under every TTA mode of ``modes`` (plain | x8 | crops | x8+crops): ``{mode: result}``.

        ``image`` is an HWC numpy array (uint8, or float in [0, 1]) -> float32 HWC numpy, or a CHW/NCHW float tensor
        -> float32 tensor of the same layout on the input's device; values are clamped to [0, 1] unless
        ``clamp=False``. Runs under ``torch.inference_mode``; blending accumulates in float64. ``seconds`` receives
        the model time per part (a mode's own cost is the sum over its parts, ``MODE_PARTS``).
        """
        modes = check_modes(modes)
        if self.model.training:
            warnings.warn("Restorer used on a model in training mode; call model.eval() first", stacklevel=2)
        x, layout = to_batch(image, self.device)
        outs: dict[str, list[Tensor]] = {mode: [] for mode in modes}
        with torch.inference_mode():
            for frame in x.split(1):
                parts = self._plan(*frame.shape[-2:], modes)
                maps = self.tiler.accumulate(frame, parts, progress=progress, seconds=seconds)
                for mode in modes:
                    out = _combine(maps, mode)
                    outs[mode].append(out.clamp_(0.0, 1.0) if clamp else out)
        return {mode: from_batch(torch.cat(outs[mode]), layout) for mode in modes}
