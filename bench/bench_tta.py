"""TTA cost: x8 self-ensemble against one pass, random-crop TTA against bare batched forwards, seconds per 720p frame.

Run: ``python bench/bench_tta.py [--model hinet-0.5x --crop-size 128 --frame-models hinet-0.5x hinet-1x --full]``.
Checks, all through the default path (bf16 autocast + channels_last, batch 8):
- the Restorer's ``x8`` <= 8.4x its ``plain`` on a two-tile frame;
- N = 256 random crops through ``Tiler.accumulate`` (cut, transform, forward, inverse, blend) <= 1.15x the same N crops
  run as bare batched forwards of pre-cut tensors.
Seconds per 1280x720 frame for each mode are estimated as (patches the mode plans for a 720p frame) x (seconds per
patch in a full batch), measured per model; ``--full`` also restores a real 1280x720 frame once per mode and model.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from common import header, interleaved, median, paired_ratio, spread, verdict

from pipeline.config import TTA_MODES, CropsConfig, TTAConfig
from pipeline.device import autocast, resolve_device, resolve_precision
from pipeline.inference import Restorer, random_crops
from pipeline.models import create_model
from pipeline.tiling import Patch, Tiler, dihedral

FRAME = (720, 1280)


def _model(name: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name).eval().to(device).to(memory_format=torch.channels_last)


def x8_ratio(model, device, repeats: int, height: int, width: int) -> None:
    """x8 against plain restore of one frame (both tiled, batch 8)."""
    img = torch.rand(1, 3, height, width, device=device)
    restorer = Restorer(model)
    cases = {"plain": lambda: restorer.restore(img, ("plain",)), "x8": lambda: restorer.restore(img, ("x8",))}
    times = interleaved(cases, repeats=repeats, warmup=1, device=device)
    n = len(restorer.plan(height, width, ("plain",))["tiles"])
    print(f"x8 vs plain on a {height}x{width} frame ({n} tile(s) per pass):")
    for name, ts in times.items():
        print(f"  {name:6s} {spread(ts)}")
    ratio, best = paired_ratio(times, "x8", "plain")
    print(f"  x8 / plain: median of per-round ratios {ratio:.3f}, ratio of best times {best:.3f}")
    verdict("x8 cost / single pass", ratio, 8.4, higher_is_better=False, unit="x")


def crops_ratio(model, device, repeats: int, n: int, size: int, batch: int) -> None:
    """Random-crop TTA through Tiler.accumulate() against the same crops as bare batched forwards."""
    height, width = FRAME
    img = torch.rand(1, 3, height, width, device=device)
    crops = random_crops(height, width, CropsConfig(n=n, size=size, transforms="all8", seed=0))
    dtype = resolve_precision("auto", device)
    # The bare baseline gets its crops already cut, transformed, stacked and channels_last: only the forwards remain.
    groups: dict[int, list[Patch]] = {}
    for p in crops:
        groups.setdefault(p.t, []).append(p)
    stacks = []
    for t, ps in groups.items():
        for i in range(0, len(ps), batch):
            cut = torch.stack([img[0, :, p.y : p.y + p.h, p.x : p.x + p.w] for p in ps[i : i + batch]])
            stacks.append(dihedral(cut, t).contiguous(memory_format=torch.channels_last))

    def bare():
        with torch.inference_mode(), autocast(device, dtype):
            for x in stacks:
                model(x)

    tiler = Tiler(model, overlap=32, batch=batch, dtype=dtype, channels_last=True)

    def tta():
        with torch.inference_mode():
            tiler.accumulate(img, {"crops": crops})

    times = interleaved({"bare forwards": bare, "crop TTA": tta}, repeats=repeats, warmup=1, device=device)
    print(f"{n} random {size}x{size} crops on a 720p frame, batch {batch} ({len(stacks)} model calls):")
    for name, ts in times.items():
        print(f"  {name:14s} {spread(ts)}")
    ratio, best = paired_ratio(times, "crop TTA", "bare forwards")
    print(f"  crop TTA / bare: median of per-round ratios {ratio:.3f}, ratio of best times {best:.3f}")
    verdict(f"crop TTA (N={n}) / N batched forwards", ratio, 1.15, higher_is_better=False, unit="x")


def per_frame(name: str, device, repeats: int, batch: int, full: bool) -> None:
    """Seconds per 1280x720 frame for every TTA mode: estimated from the per-patch cost, measured with ``--full``."""
    model = _model(name, device)
    dtype = resolve_precision("auto", device)
    tile = torch.rand(1, 3, 256, 256, device=device)
    same = [Patch(0, 0, 256, 256, 0)] * batch
    tiler = Tiler(model, overlap=32, batch=batch, dtype=dtype, channels_last=True)

    def one_batch():
        with torch.inference_mode():
            tiler.accumulate(tile, {"tiles": same})

    times = interleaved({"batch": one_batch}, repeats=repeats, warmup=1, device=device)
    per_patch = median(times["batch"]) / batch
    print(f"{name}: {per_patch:.4f}s per 256x256 patch (batch {batch}, {spread(times['batch'])} per batch)")
    restorer = Restorer(model, TTAConfig(batch=batch, crops=CropsConfig()))
    for mode in TTA_MODES:
        n = sum(len(part) for part in restorer.plan(*FRAME, (mode,)).values())
        line = f"  {name:10s} {mode:9s} {n:4d} patches  estimated {n * per_patch:8.2f} s/frame"
        if full:
            img = torch.rand(1, 3, *FRAME, device=device)
            t = time.perf_counter()
            restorer.restore(img, (mode,))
            line += f"  measured {time.perf_counter() - t:8.2f} s/frame"
        print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hinet-0.5x", help="model for the two ratio checks")
    ap.add_argument("--frame-models", nargs="*", default=["hinet-0.5x", "hinet-1x"], help="models for s/frame")
    ap.add_argument("--crops", type=int, default=256, help="N random crops for the crop-TTA ratio")
    ap.add_argument("--crop-size", type=int, default=128, help="crop side for the ratio (the NTIRE setting is 256)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--x8-frame", type=int, nargs=2, default=[256, 480], metavar=("H", "W"))
    ap.add_argument("--full", action="store_true", help="also restore a real 1280x720 frame per mode and model")
    ap.add_argument("--skip", nargs="*", default=[], choices=["x8", "crops", "frame"])
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    device = resolve_device(args.device)
    header(f"TTA cost ({args.model} for ratios; {', '.join(args.frame_models)} for s/frame)", device)
    model = _model(args.model, device)
    if "x8" not in args.skip:
        x8_ratio(model, device, args.repeats, *args.x8_frame)
    if "crops" not in args.skip:
        crops_ratio(copy.deepcopy(model), device, args.repeats, args.crops, args.crop_size, args.batch)
    if "frame" not in args.skip:
        for name in args.frame_models:
            per_frame(name, device, args.repeats, args.batch, args.full)


if __name__ == "__main__":
    main()
